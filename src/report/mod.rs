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

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::config::{ProjectSource, Settings};
use crate::parallelcluster::fleet_config;
use aggregate::{Diagnostics, SpendTable, Summary, KEY_SEPARATOR};
use calendar::{Every, Short, Timestamp};
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

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people, with notes on what is not in the sums.
    Table,
    /// One row per group and period, then period and grand totals (see docs/report.md).
    Csv,
    /// One document with rows, totals, unpriced jobs and skipped lines (see docs/report.md).
    Json,
}

/// Groups drawn in a chart when `--top` does not say.
pub const CHART_TOP: usize = 10;

fn parse_since(s: &str) -> Result<Timestamp, String> {
    calendar::parse(s)
        .map(|(t, _)| t)
        .ok_or_else(|| format!("{s:?} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]"))
}

fn parse_until(s: &str) -> Result<Timestamp, String> {
    // A bare date means "up to the end of that day": --until 2024-03-31 includes the 31st.
    calendar::parse(s)
        .map(|(t, timed)| if timed { t } else { t + 86_400 })
        .ok_or_else(|| format!("{s:?} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]"))
}

/// `cost-tags report`: what jobs cost, per project, user, partition or account, over time.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
All times are UTC. A job is charged, for each second it ran inside the window and for each
of its nodes, the node's hourly price (settings [pricing]) times the job's share of the
node: its CPUs over the node's CPUs, or its GPU share if larger, at most the whole node
(exclusive jobs hold every CPU, so they pay whole nodes). Requeued runs are each charged;
running jobs are charged up to now. Jobs on nodes without a known price are listed as
unpriced, never guessed. Without --sacct-file the report runs:
  TZ=UTC SLURM_TIME_FORMAT=standard sacct --parsable2 --noheader --allusers --allocations
    --duplicates --truncate -S SINCE -E UNTIL
    --format=JobID,State,User,Account,Partition,Start,End,NNodes,NCPUS,AllocTRES,NodeList
with \",WCKey\" or \",Comment\" added to --format when project_source names that field (never
otherwise: Slurm prints free text raw, and a newline in it could forge a record). With the
comment, the same command with --format=JobID runs first: a record whose job id it does not
list (as often) is skipped as forged.
Exit codes: 0 report printed, 2 no report (bad settings or arguments, sacct failed).")]
pub struct ReportArgs {
    /// First instant of the report: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] [default: the
    /// first day of this month]
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    pub since: Option<Timestamp>,
    /// End of the report; a bare date includes that whole day [default: now]
    #[arg(long, value_name = "DATE", value_parser = parse_until)]
    pub until: Option<Timestamp>,
    /// Group by these, in this order (comma-separated)
    #[arg(long, value_name = "FIELDS", value_delimiter = ',', default_value = "project")]
    pub by: Vec<Dimension>,
    /// Also split spend by calendar day, ISO week (from Monday) or month
    #[arg(long, value_name = "PERIOD")]
    pub every: Option<Every>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Draw cumulative spend over time, one line per group, into this SVG file (per
    /// --every, else per day)
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    /// Keep the N most expensive groups; add the others up as "(other)"
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub top: Option<u64>,
    /// Read saved sacct output (made with the command below; "-" for stdin) instead of
    /// running sacct
    #[arg(long, value_name = "FILE")]
    pub sacct_file: Option<PathBuf>,
    /// Charge running jobs up to this instant instead of the current time (for a saved
    /// file, the time it was saved)
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub now: Option<Timestamp>,
}

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

impl Options {
    /// Resolves the defaults: the window runs from the first of this month to now, and
    /// never past now (nothing has been spent there yet).
    pub fn from_args(args: &ReportArgs, clock: Timestamp) -> anyhow::Result<Options> {
        let now = args.now.unwrap_or(clock);
        let since = args.since.unwrap_or_else(|| calendar::month_start(now));
        let until = args.until.unwrap_or(now).min(now);
        if since >= until {
            bail!(
                "nothing to report: --since {} is not before the end of the window {} (--until, or now)",
                Short(since),
                Short(until)
            );
        }
        let mut by = Vec::new();
        for d in &args.by {
            if by.contains(d) {
                bail!("--by names {} twice", d.name());
            }
            by.push(*d);
        }
        Ok(Options {
            since,
            until,
            now,
            by,
            every: args.every,
            top: args.top.map(|n| n as usize),
            chart: args.chart.as_ref().map(|_| args.every.unwrap_or(Every::Day)),
        })
    }
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

fn unix_now() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as Timestamp)
        .unwrap_or(0)
}

/// The value of one grouping field for a record; empty values read `(none)`.
fn value<'a>(record: &sacct::Record<'a>, d: Dimension, source: ProjectSource) -> &'a str {
    let v = match d {
        Dimension::Project => match source {
            ProjectSource::Comment => record.comment.trim(),
            ProjectSource::Account => record.account,
            ProjectSource::Wckey => record.wckey,
        },
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

/// Runs the report: reads the records (running sacct unless `--sacct-file`), prints the
/// report on stdout and writes the chart. Errors mean no report (exit 2 in the binary).
pub fn run(settings: &Settings, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let options = Options::from_args(args, unix_now())?;
    let (settings, fleet_notes) = with_fleet(settings)?;
    let settings = &settings;
    let mut report = match &args.sacct_file {
        Some(path) if path.as_os_str() == "-" => {
            build(settings, &options, io::stdin().lock()).context("reading sacct records from stdin")?
        }
        Some(path) => {
            let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            build(settings, &options, BufReader::with_capacity(1 << 18, file))
                .with_context(|| format!("reading {}", path.display()))?
        }
        None => run_sacct(settings, &options)?,
    };
    report.diagnostics.warnings.extend(fleet_notes);

    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match args.format {
        Format::Table => output::table(&report, &mut out)?,
        Format::Csv => {
            output::csv(&report, &mut out)?;
            output::notes(&report, &mut io::stderr().lock())?;
        }
        Format::Json => output::json(&report, &mut out)?,
    }
    out.flush()?;
    if let (Some(path), Some(chart)) = (&args.chart, &report.chart) {
        let svg = chart::svg(&report, chart);
        std::fs::write(path, svg).with_context(|| format!("cannot write the chart {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
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
fn run_sacct(settings: &Settings, options: &Options) -> anyhow::Result<Report> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Args;

    #[test]
    fn help_shows_the_exact_sacct_fields() {
        let help = ReportArgs::augment_args(clap::Command::new("report"))
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(
            help.contains(&format!("--format={}\n", sacct::FIELDS.join(","))),
            "{help}"
        );
        assert!(help.contains("\",WCKey\"") && help.contains("\",Comment\""), "{help}");
        for flag in [
            "--parsable2",
            "--noheader",
            "--allusers",
            "--allocations",
            "--duplicates",
            "--truncate",
        ] {
            assert!(help.contains(flag), "{flag} missing from {help}");
        }
    }

    #[test]
    fn window_defaults_to_this_month_so_far() {
        let args = ReportArgs {
            since: None,
            until: None,
            by: vec![Dimension::Project],
            every: None,
            format: Format::Table,
            chart: None,
            top: None,
            sacct_file: None,
            now: None,
        };
        let (now, _) = calendar::parse("2024-03-15T08:30:00").unwrap();
        let o = Options::from_args(&args, now).unwrap();
        assert_eq!((o.since, o.until), (calendar::parse("2024-03-01").unwrap().0, now));
        // --until in the future stops at now; nothing to report on the 1st at midnight.
        let future = ReportArgs {
            until: Some(now + 86_400),
            ..args.clone()
        };
        assert_eq!(Options::from_args(&future, now).unwrap().until, now);
        let (first, _) = calendar::parse("2024-03-01").unwrap();
        assert!(Options::from_args(&args, first).is_err());
    }
}
