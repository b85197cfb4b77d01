//! `cost-tags report`: the chargeback report. Slurm accounting records (from sacct, run
//! here or saved to a file) are priced one by one as they stream in ([`pricing`]), summed
//! per group and period ([`aggregate`]), and printed as a table, CSV or JSON ([`output`]),
//! with an optional SVG chart of spend over time ([`chart`]).

pub mod aggregate;
pub mod calendar;
pub mod chart;
pub mod job_ids;
mod json_layout;
pub mod output;
pub mod pricing;
pub mod sacct;

use std::io::{self, BufRead, BufReader};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::config::{ProjectSource, Settings};
use crate::parallelcluster::fleet_config;
use aggregate::{Diagnostics, SpendTable, Summary, KEY_SEPARATOR};
use calendar::{Every, Timestamp};
use job_ids::JobIds;
use pricing::Pricer;
use sacct::{Line, Skip};

/// What jobs are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    /// The project, from the job field `project_source` names.
    Project,
    User,
    Partition,
    /// The Slurm account.
    Account,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Project => "project",
            Dimension::User => "user",
            Dimension::Partition => "partition",
            Dimension::Account => "account",
        }
    }
}

/// Groups drawn in a chart when `--top` does not say.
pub const CHART_TOP: usize = 10;

/// What is being reported, as resolved from the arguments and the clock.
#[derive(Debug, Clone)]
pub struct Options {
    pub since: Timestamp,
    pub until: Timestamp,
    pub now: Timestamp,
    pub by: Vec<Dimension>,
    pub every: Option<Every>,
    pub top: Option<usize>,
    /// The periods of the chart, when one is wanted.
    pub chart: Option<Every>,
}

/// A finished report.
#[derive(Debug, Clone)]
pub struct Report {
    pub options: Options,
    pub currency: String,
    pub project_source: ProjectSource,
    pub summary: Summary,
    pub diagnostics: Diagnostics,
    /// The chart's figures, when a chart was asked for.
    pub chart: Option<Summary>,
}

pub fn unix_now() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as Timestamp)
        .unwrap_or(0)
}

/// The value of one grouping field for a record; empty values read `(none)`.
fn value<'a>(record: &sacct::Record<'a>, d: Dimension, source: ProjectSource) -> &'a str {
    let v = match d {
        Dimension::Project => source.pick(record.comment.trim(), record.account, record.wckey),
        Dimension::User => record.user,
        Dimension::Partition => record.partition,
        Dimension::Account => record.account,
    };
    if v.is_empty() {
        "(none)"
    } else {
        v
    }
}

/// Reads sacct lines from `input` and builds the report. Only I/O errors fail; every
/// line that cannot be used is counted in the report's diagnostics.
pub fn build(settings: &Settings, options: &Options, input: impl BufRead) -> io::Result<Report> {
    build_confirmed(settings, options, input, None)
}

/// [`build`], charging only records whose job id `ids` still lists (see [`job_ids`]).
pub fn build_confirmed(
    settings: &Settings,
    options: &Options,
    mut input: impl BufRead,
    mut ids: Option<JobIds>,
) -> io::Result<Report> {
    let mut pricer = Pricer::new(&settings.pricing);
    let mut table = SpendTable::new(options.every, options.since, options.until);
    let mut chart_table = options
        .chart
        .filter(|&c| Some(c) != options.every)
        .map(|c| SpendTable::new(Some(c), options.since, options.until));
    let mut diag = Diagnostics::default();
    let source = settings.project_source;
    let layout = sacct::Layout::new(source);

    let mut buf = Vec::with_capacity(512);
    let mut key = String::with_capacity(128);
    let mut line_no = 0u64;
    let mut forged = 0u64;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        diag.lines += 1;
        let text = String::from_utf8_lossy(&buf);
        let record = match sacct::parse_line(&text, layout) {
            Ok(Line::Job(r)) => r,
            Ok(Line::Header | Line::Blank) => continue,
            Err(Skip(why)) => {
                diag.skip(line_no, why);
                continue;
            }
        };
        if let Some(ids) = ids.as_mut() {
            if !ids.take(record.job_id) {
                forged += 1;
                diag.skip(
                    line_no,
                    format!(
                        "job {}: not in sacct's list of job ids (or listed fewer times): a line forged \
                         by a newline in a job comment",
                        record.job_id
                    ),
                );
                continue;
            }
        }
        if !record.comment.trim().is_empty() {
            diag.comments += 1;
        }
        let Some(start) = record.start else {
            diag.not_run += 1;
            continue;
        };
        // No End yet: still running (or suspended, holding its nodes): charged up to now.
        let end = record.end.unwrap_or(options.now);
        if end < start {
            diag.skip(line_no, format!("job {}: End is before Start", record.job_id));
            continue;
        }
        let (from, to) = (start.max(options.since), end.min(options.until));
        if to <= from {
            diag.not_run += 1;
            continue;
        }
        if record.nodes == 0 {
            diag.skip(line_no, format!("job {}: ran on 0 nodes (NNodes)", record.job_id));
            continue;
        }
        let rate = match pricer.rate(&record) {
            Ok(r) => Some(r),
            Err(reason) => {
                diag.unpriced(reason, record.job_id, to - from);
                None
            }
        };
        key.clear();
        for (i, d) in options.by.iter().enumerate() {
            if i > 0 {
                key.push(KEY_SEPARATOR);
            }
            let v = value(&record, *d, source);
            if v.contains(KEY_SEPARATOR) {
                key.push_str(&v.replace(KEY_SEPARATOR, "?"));
            } else {
                key.push_str(v);
            }
        }
        let group = table.group(&key);
        table.charge(group, from, to, record.cpus, rate);
        if let Some(c) = chart_table.as_mut() {
            let group = c.group(&key);
            c.charge(group, from, to, record.cpus, rate);
        }
        diag.runs += 1;
    }

    if pricer.is_empty() && diag.runs > 0 {
        diag.warnings
            .push("the settings have no [pricing] instances: no job could be priced (see docs/report.md)".into());
    }
    if forged > 0 {
        diag.warnings.push(format!(
            "{forged} lines named jobs sacct does not list (as often): job comments hold newlines, and \
             what follows a newline can read like a record. They were skipped; a real record of a job \
             whose id a forged line used first may be among them (see the skipped lines)"
        ));
    }
    let records = diag.runs + diag.not_run;
    if source == ProjectSource::Comment && options.by.contains(&Dimension::Project) && records > 0 && diag.comments == 0
    {
        diag.warnings.push(
            "no job has a comment, so every project reads (none): slurmdbd stores job comments only \
             with AccountingStoreFlags=job_comment in slurm.conf, which is probably missing"
                .into(),
        );
    }
    let summary = table.summarize(options.top);
    let chart = options.chart.map(|_| match &chart_table {
        Some(c) => c.summarize(Some(options.top.unwrap_or(CHART_TOP))),
        None => table.summarize(Some(options.top.unwrap_or(CHART_TOP))),
    });
    Ok(Report {
        options: options.clone(),
        currency: settings.pricing.currency.clone(),
        project_source: source,
        summary,
        diagnostics: diag,
        chart,
    })
}

/// The settings with ParallelCluster's fleet configuration applied (see [`fleet_config`]), and
/// notes on what it says that cannot be priced.
pub fn with_fleet(settings: &Settings) -> anyhow::Result<(Settings, Vec<String>)> {
    let mut settings = settings.clone();
    let Some(path) = fleet_config::path_to_read(&settings.pricing) else {
        return Ok((settings, Vec::new()));
    };
    let (pricing, notes) = fleet_config::apply_file(&settings.pricing, &path)?;
    settings.pricing = pricing;
    Ok((settings, notes))
}

/// Runs sacct (no shell) and builds the report from its output as it arrives. When the
/// comment is asked for, sacct first lists the window's job ids alone, to confirm the
/// records with ([`job_ids`]): asked first, so a job that starts in between is only in
/// the second answer, where its run (after the window's end) costs nothing.
pub fn run_sacct(settings: &Settings, options: &Options) -> anyhow::Result<Report> {
    let layout = sacct::Layout::new(settings.project_source);
    let ids = if layout.has_comment() {
        Some(read_sacct(options, "JobID", JobIds::read)?)
    } else {
        None
    };
    read_sacct(options, &layout.format(), |out| {
        build_confirmed(settings, options, out, ids)
    })
}

/// Runs sacct for `format` and hands its output, as it arrives, to `read`.
fn read_sacct<T>(
    options: &Options,
    format: &str,
    read: impl FnOnce(BufReader<std::process::ChildStdout>) -> io::Result<T>,
) -> anyhow::Result<T> {
    let mut child = sacct::command("sacct".as_ref(), options.since, options.until, format)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run sacct (is Slurm's client installed and on PATH? or use --sacct-file)")?;
    let stdout = child.stdout.take().context("sacct's output")?;
    let built = read(BufReader::with_capacity(1 << 18, stdout));
    let status = child.wait().context("waiting for sacct")?;
    let value = built.context("reading sacct's output")?;
    if !status.success() {
        bail!(
            "sacct failed ({status}); its message is above. The command was: {}",
            sacct::command_line(options.since, options.until, format)
        );
    }
    Ok(value)
}
