//! The costing engine: Slurm accounting records (from sacct, run here or saved to a file,
//! read by [`crate::slurm::sacct`]) are priced one by one as they stream in ([`pricing`]), with their
//! efficiency ([`efficiency`]), and summed per group and period ([`aggregate`],
//! [`period`]) into a [`Report`]; runs listed one by one go to a [`priced_run::JobSink`].
//! One job's cost is [`job`], and the instances it ran on [`job_instances`]; the AWS
//! bill beside it is [`billed`]. Budgets, metrics and `cost-tags job` use this engine;
//! how a report is shown (table, CSV, JSON, chart, HTML) is [`crate::report`].

pub(crate) mod aggregate;
pub(crate) mod billed;
pub(crate) mod efficiency;
pub(crate) mod fast_map;
pub(crate) mod filter;
pub(crate) mod job;
pub(crate) mod job_ids;
pub(crate) mod job_instances;
pub(crate) mod period;
pub(crate) mod priced_run;
pub(crate) mod pricing;

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader};
use std::process::Stdio;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::config::{PricingSettings, Settings};

use crate::cost::period::Every;
use crate::model::job::ProjectSource;
use crate::model::time::Timestamp;
use crate::parallelcluster::fleet_config;
use crate::prices::cache::PriceCache;
use crate::prices::merge::{self, PriceSource};
use crate::slurm::account_tree::{AccountTree, Roll};
use crate::slurm::sacct::{self, Line, Skip};
use aggregate::{Diagnostics, SpendTable, Summary, KEY_SEPARATOR};
use fast_map::FastMap;
use filter::Filters;
use job_ids::JobIds;
use pricing::Pricer;

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
    /// The Slurm cluster (with `--clusters`).
    Cluster,
    /// The job's Unix group (sacct's `Group`).
    Group,
    /// The parent of the job's Slurm account in the association tree (sacctmgr's, or
    /// `--account-tree`); a top-level account stands for itself. See
    /// [`crate::slurm::account_tree`].
    #[serde(rename = "parent_account")]
    ParentAccount,
    /// One row per job run, with its efficiency ([`crate::report::job_rows`]); alone in `--by`.
    Job,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Project => "project",
            Dimension::User => "user",
            Dimension::Partition => "partition",
            Dimension::Account => "account",
            Dimension::Cluster => "cluster",
            Dimension::Group => "group",
            Dimension::ParentAccount => "parent_account",
            Dimension::Job => "job",
        }
    }
}

/// Groups drawn in a chart when `--top` does not say.
pub(crate) const CHART_TOP: usize = 10;

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
    /// `--clusters`: the clusters whose jobs sacct lists (a list, or `all`); `None`:
    /// this cluster's.
    pub clusters: Option<String>,
    /// Everyone's jobs (`--allusers`, root) or the caller's own (an ordinary user).
    pub users: sacct::Users,
    /// Only these users, accounts, partitions, groups, projects.
    pub filters: Filters,
    /// The account tree `--by parent-account` rolls accounts up with.
    pub account_tree: Option<AccountTree>,
}

impl Options {
    /// `--by job`: a row per job run instead of groups.
    pub fn per_job(&self) -> bool {
        self.by.contains(&Dimension::Job)
    }

    /// The sacct fields a report with these options reads.
    pub fn layout(&self, source: ProjectSource) -> sacct::Layout {
        let layout = sacct::Layout::new(source, self.clusters.is_some());
        let layout = if self.per_job() {
            layout.with_efficiency()
        } else {
            layout
        };
        if self.by.contains(&Dimension::Group) || self.filters.needs_group() {
            layout.with_group()
        } else {
            layout
        }
    }
}

/// A finished report.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub options: Options,
    pub currency: String,
    pub project_source: ProjectSource,
    pub summary: Summary,
    pub diagnostics: Diagnostics,
    /// The chart's figures, when a chart was asked for.
    pub chart: Option<Summary>,
    /// Where the price of each instance type that priced a job came from.
    pub price_sources: BTreeMap<String, PriceSource>,
    /// What AWS billed, with `--billed`.
    pub billed: Option<billed::Billed>,
}

/// The value of one grouping field for a record; empty values read `(none)`.
fn value<'a>(record: &sacct::Record<'a>, d: Dimension, source: ProjectSource) -> &'a str {
    let v = match d {
        Dimension::Project => source.pick(record.comment.trim(), record.account, record.wckey),
        Dimension::User => record.user,
        Dimension::Partition => record.partition,
        Dimension::Account => record.account,
        Dimension::Cluster => record.cluster,
        Dimension::Group => record.group,
        // Rolled up in `build_confirmed`, which has the tree.
        Dimension::ParentAccount => record.account,
        // Per-job rows are written as they come; the sums have one group, the total.
        Dimension::Job => "",
    };
    if v.is_empty() {
        "(none)"
    } else {
        v
    }
}

/// [`build_confirmed`] with the `[pricing]` settings alone: the unit tests' shorthand.
#[cfg(test)]
pub(crate) fn build(settings: &Settings, options: &Options, input: impl BufRead) -> io::Result<Report> {
    build_confirmed(&Prices::settings_only(settings), options, input, None)
}

/// Reads sacct lines from `input` and builds the report with `prices`, charging only
/// records whose job id `ids` still lists (see [`job_ids`]). Only I/O errors fail; every
/// line that cannot be used is counted in the report's diagnostics.
pub(crate) fn build_confirmed(
    prices: &Prices,
    options: &Options,
    input: impl BufRead,
    ids: Option<JobIds>,
) -> io::Result<Report> {
    build_with_jobs(prices, options, input, ids, None)
}

/// [`build_confirmed`] that also hands each job run, as it is priced, to `jobs` (`--by
/// job`). The first error `jobs` returns (its output closed) ends the report with it.
pub(crate) fn build_with_jobs(
    prices: &Prices,
    options: &Options,
    input: impl BufRead,
    ids: Option<JobIds>,
    jobs: Option<&mut dyn priced_run::JobSink>,
) -> io::Result<Report> {
    let layout = options.layout(prices.settings.project_source);
    build_from(prices, options, layout, input, ids, jobs)
}

/// [`build_with_jobs`] reading the fields of `layout` (which may ask for more than
/// [`Options::layout`]: the usage fields of a live grouped report).
fn build_from(
    prices: &Prices,
    options: &Options,
    layout: sacct::Layout,
    mut input: impl BufRead,
    mut ids: Option<JobIds>,
    mut jobs: Option<&mut dyn priced_run::JobSink>,
) -> io::Result<Report> {
    let mut sink_error: Option<io::Error> = None;
    let settings = &prices.settings;
    let mut pricer = Pricer::new(&settings.pricing, prices.cache.clone());
    // Other clusters' jobs (`--clusters`) with their own node shapes.
    let mut cluster_pricers: FastMap<String, Pricer> = prices
        .clusters
        .iter()
        .map(|(name, pricing)| (name.clone(), Pricer::for_cluster(pricing, prices.cache.clone(), false)))
        .collect();
    let mut table = SpendTable::new(options.every, options.since, options.until);
    let mut chart_table = options
        .chart
        .filter(|&c| Some(c) != options.every)
        .map(|c| SpendTable::new(Some(c), options.since, options.until));
    let mut diag = Diagnostics::default();
    let source = settings.project_source;
    let filtering = !options.filters.is_empty();

    let mut rolls = AccountRolls::default();

    let mut key = String::with_capacity(128);
    let forged = records(&mut input, layout, ids.as_mut(), &mut diag, |line_no, record, diag| {
        if sink_error.is_some() {
            return;
        }
        if filtering
            && !options.filters.keeps(
                &record,
                source.pick(record.comment.trim(), record.account, record.wckey),
            )
        {
            return;
        }
        let Some(start) = record.start else {
            diag.not_run += 1;
            return;
        };
        // No End yet: still running (or suspended, holding its nodes): charged up to now.
        let end = record.end.unwrap_or(options.now);
        if end < start {
            diag.skip(line_no, format!("job {}: End is before Start", record.job_id));
            return;
        }
        let (from, to) = (start.max(options.since), end.min(options.until));
        if to <= from {
            diag.not_run += 1;
            return;
        }
        if record.nodes == 0 {
            diag.skip(line_no, format!("job {}: ran on 0 nodes (NNodes)", record.job_id));
            return;
        }
        let record_pricer = match cluster_pricers.get_mut(record.cluster) {
            Some(p) => p,
            None => &mut pricer,
        };
        let rate = match record_pricer.rate(&record) {
            Ok(r) => Some(r),
            Err(reason) => {
                diag.unpriced(reason, record.job_id, to - from);
                None
            }
        };
        if let Some(sink) = jobs.as_deref_mut() {
            let run = priced_run::PricedRun {
                record: &record,
                project: value(&record, Dimension::Project, source),
                from,
                to,
                cost: rate.as_ref().map(|r| r.cost(from, to)),
                pricer: rate.is_some().then_some(&*record_pricer),
            };
            if let Err(e) = sink.run(&run) {
                sink_error = Some(e);
                return;
            }
        }
        key.clear();
        for (i, d) in options.by.iter().enumerate() {
            if i > 0 {
                key.push(KEY_SEPARATOR);
            }
            let v = match (d, &options.account_tree) {
                (Dimension::ParentAccount, Some(tree)) => rolls.group(tree, &record),
                _ => value(&record, *d, source),
            };
            if v.contains(KEY_SEPARATOR) {
                key.push_str(&v.replace(KEY_SEPARATOR, "?"));
            } else {
                key.push_str(v);
            }
        }
        let charged = aggregate::Charged {
            cpus: record.cpus,
            rate: rate.as_ref(),
            efficiency: efficiency::Efficiency::of(&record),
        };
        let group = table.group(&key);
        table.charge(group, from, to, &charged);
        if let Some(c) = chart_table.as_mut() {
            let group = c.group(&key);
            c.charge(group, from, to, &charged);
        }
        diag.runs += 1;
    })?;
    if let Some(e) = sink_error {
        return Err(e);
    }

    if pricer.is_empty() && diag.runs > 0 {
        diag.warnings
            .push("the settings have no [pricing] instances: no job could be priced (see docs/report.md)".into());
    }
    rolls.warn(&mut diag);
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
    let mut price_sources = BTreeMap::new();
    let all_pricers = || std::iter::once(&pricer).chain(cluster_pricers.values());
    for name in all_pricers().flat_map(Pricer::used_instance_types) {
        if let Some(source) = prices.sources.get(name) {
            price_sources.insert(name.to_string(), source.clone());
        }
    }
    for ((name, partition), source) in all_pricers().flat_map(Pricer::spot_sources) {
        if let Some(s) = price_sources.get_mut(name) {
            s.spot.insert(partition.clone(), source.clone());
        }
    }
    Ok(Report {
        options: options.clone(),
        currency: settings.pricing.currency.clone(),
        project_source: source,
        summary,
        diagnostics: diag,
        chart,
        price_sources,
        billed: None,
    })
}

/// The accounts `--by parent-account` could not roll up, for the report's warnings.
#[derive(Debug, Default)]
struct AccountRolls {
    /// Job runs whose account the tree does not hold, and the first few such accounts.
    unknown: (u64, Vec<String>),
    /// Job runs whose account has a different parent on different clusters.
    disputed: (u64, Vec<String>),
}

impl AccountRolls {
    /// The group of `record` under `--by parent-account`: its account's parent, or its
    /// account itself (a top-level account, or one the tree cannot place: counted).
    fn group<'a>(&mut self, tree: &'a AccountTree, record: &sacct::Record<'a>) -> &'a str {
        let account = if record.account.is_empty() {
            "(none)"
        } else {
            record.account
        };
        let (runs, examples) = match tree.roll_up(record.cluster, account) {
            Roll::Group(g) => return g,
            Roll::Unknown => &mut self.unknown,
            Roll::Disputed => &mut self.disputed,
        };
        *runs += 1;
        if examples.len() < aggregate::EXAMPLES && !examples.iter().any(|a| a == account) {
            examples.push(account.to_string());
        }
        account
    }

    fn warn(&self, diag: &mut Diagnostics) {
        let (runs, accounts) = &self.unknown;
        if *runs > 0 {
            diag.warnings.push(format!(
                "{runs} job runs are under accounts the account tree does not have ({}{}): each is shown \
                 under its own account (deleted since, or the tree is another cluster's?)",
                accounts.join(", "),
                if accounts.len() == aggregate::EXAMPLES {
                    ", ..."
                } else {
                    ""
                }
            ));
        }
        let (runs, accounts) = &self.disputed;
        if *runs > 0 {
            diag.warnings.push(format!(
                "{runs} job runs are under accounts whose parent differs between clusters ({}): each is \
                 shown under its own account; --clusters reads each job's cluster and rolls it up there",
                accounts.join(", ")
            ));
        }
    }
}

/// Reads sacct lines from `input` and hands each usable record to `each`, with its line
/// number: lines that cannot be used are counted in `diag` and, with `ids` (the comment
/// is asked for), so are records whose job id sacct's bare list does not hold (a line
/// forged by a newline in a job comment). A step line's MaxRSS counts only for the job
/// line just before it, and with `ids` only when the list holds the step too (else that
/// job's peak is unknown). Returns how many lines were forged.
///
/// When the first line that is not blank is a header (a saved file made without
/// `--noheader`), the fields are read by the header's names, so a file made with another
/// release's `--format`, or with the fields in another order, still reads; a header
/// without a field `layout` needs is an `InvalidData` error holding a
/// [`sacct::MissingField`]. Without a header, lines hold exactly `layout`'s fields.
pub(crate) fn records(
    input: &mut impl BufRead,
    layout: sacct::Layout,
    ids: Option<&mut JobIds>,
    diag: &mut Diagnostics,
    each: impl FnMut(u64, sacct::Record<'_>, &mut Diagnostics),
) -> io::Result<u64> {
    let mut reader = Reader {
        columns: sacct::Columns::of(layout),
        ids,
        forged: 0,
        each,
    };
    let mut buf = Vec::with_capacity(512);
    let mut line_no = 0u64;
    let mut first = true;
    // With the steps listed (`--by job`), a job's line is held until its steps have been
    // read, for their peak memory: the line, its number and the steps' largest MaxRSS.
    // Each line is checked as UTF-8 once: the held line is the String it became, and its
    // buffer is the next line's.
    let steps = layout.reads_step_memory();
    let mut held = String::with_capacity(512);
    let mut held_no = 0u64;
    let mut held_id = String::new();
    let mut held_rss: Option<u64> = None;
    // A step of the held job was not on sacct's list of ids: its peak is unknown.
    let mut held_forged = false;
    // Step lines that followed no line of their own job, and the first few ids.
    let mut strays: (u64, Vec<String>) = (0, Vec::new());
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            if held_no > 0 {
                reader.line(&held, held_no, held_rss.filter(|_| !held_forged), diag);
            }
            stray_steps_warning(&strays, diag);
            return Ok(reader.forged);
        }
        line_no += 1;
        diag.lines += 1;
        if !steps {
            let text = String::from_utf8_lossy(&buf);
            if first && !text.trim().is_empty() {
                first = false;
                if let Some(header) = sacct::Columns::from_header(&text, layout, line_no) {
                    reader.columns = header.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    continue;
                }
            }
            reader.line(&text, line_no, None, diag);
            continue;
        }
        let text = match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        if first && !text.trim().is_empty() {
            first = false;
            if let Some(header) = sacct::Columns::from_header(&text, layout, line_no) {
                reader.columns = header.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                buf = text.into_bytes();
                continue;
            }
        }
        let job_id = reader.columns.job_id(&text);
        if job_id.contains('.') {
            match reader.columns.parse(&text) {
                Ok(Line::Step { job_id: job, max_rss }) => {
                    // With sacct's list of ids (the comment is read), a step must be on it
                    // too, as many times as listed: a line forged by a newline in a
                    // comment either names a step sacct does not have, or repeats a real
                    // one and uses up its listing. Either way the job's peak is then
                    // unknown, never the forged figure.
                    let listed = reader.ids.as_deref_mut().is_none_or(|ids| ids.take(job_id));
                    if !listed {
                        reader.forged += 1;
                        diag.skip(
                            line_no,
                            format!(
                                "job step {job_id}: not in sacct's list of job ids (or listed fewer times): \
                                 a line forged by a newline in a job comment; job {job}'s memory efficiency \
                                 is left unknown"
                            ),
                        );
                    }
                    // sacct lists a job's steps right after it: a step is counted only
                    // for the job line just before it, which is then still to be checked
                    // (and charged) as any job line. Another job's step (its job line
                    // unusable, or a forged one) adds to nothing, and is counted.
                    if held_no > 0 && job == held_id {
                        if listed {
                            held_rss = held_rss.max(max_rss);
                        } else {
                            held_forged = true;
                        }
                    } else if listed {
                        strays.0 += 1;
                        if strays.1.len() < aggregate::EXAMPLES {
                            strays.1.push(job_id.to_string());
                        }
                    }
                }
                Ok(_) => {}
                Err(Skip(why)) => diag.skip(line_no, why),
            }
            buf = text.into_bytes();
            continue;
        }
        if held_no > 0 {
            reader.line(&held, held_no, held_rss.filter(|_| !held_forged), diag);
        }
        held_id.clear();
        held_id.push_str(job_id);
        buf = std::mem::replace(&mut held, text).into_bytes();
        held_no = line_no;
        held_rss = None;
        held_forged = false;
    }
}

/// The warning on step lines that followed no line of their own job (see [`records`]).
fn stray_steps_warning((count, examples): &(u64, Vec<String>), diag: &mut Diagnostics) {
    if *count > 0 {
        diag.warnings.push(format!(
            "{count} step lines did not follow a line of their own job ({}{}): their MaxRSS counts \
             for no job's memory efficiency (their job's line was unusable, or they were forged \
             by a newline in a job comment)",
            examples.join(", "),
            if *count > examples.len() as u64 { ", ..." } else { "" }
        ));
    }
}

/// What [`records`] does with each line that is not a step.
struct Reader<'i, F> {
    columns: sacct::Columns,
    ids: Option<&'i mut JobIds>,
    forged: u64,
    each: F,
}

impl<F: FnMut(u64, sacct::Record<'_>, &mut Diagnostics)> Reader<'_, F> {
    /// Parses `text` (line `line_no`) and hands its record, with the peak memory of its
    /// steps `steps_rss`, to `each`, or counts why it cannot be used.
    fn line(&mut self, text: &str, line_no: u64, steps_rss: Option<u64>, diag: &mut Diagnostics) {
        let mut record = match self.columns.parse(text) {
            Ok(Line::Job(r)) => r,
            Ok(Line::Header | Line::Blank | Line::Step { .. }) => return,
            Err(Skip(why)) => {
                diag.skip(line_no, why);
                return;
            }
        };
        if let Some(ids) = self.ids.as_deref_mut() {
            if !ids.take(record.job_id) {
                self.forged += 1;
                diag.skip(
                    line_no,
                    format!(
                        "job {}: not in sacct's list of job ids (or listed fewer times): a line forged \
                         by a newline in a job comment",
                        record.job_id
                    ),
                );
                return;
            }
        }
        if !record.comment.trim().is_empty() {
            diag.comments += 1;
        }
        record.max_rss = record.max_rss.max(steps_rss);
        (self.each)(line_no, record, diag);
    }
}

/// What a report prices with: the settings with the price cache's instance types added
/// and ParallelCluster's fleet configuration applied, the cache (for spot histories), and
/// where each price comes from.
#[derive(Debug, Clone)]
pub(crate) struct Prices {
    pub settings: Settings,
    /// `[pricing.clusters.NAME]`, each resolved the same way.
    pub clusters: BTreeMap<String, PricingSettings>,
    pub cache: Option<PriceCache>,
    pub sources: BTreeMap<String, PriceSource>,
    /// What the fleet configuration says that cannot be priced, and the like.
    pub notes: Vec<String>,
}

impl Prices {
    /// The `[pricing]` settings alone: no cache, no fleet configuration (unit tests).
    #[cfg(test)]
    pub(crate) fn settings_only(settings: &Settings) -> Prices {
        let (_, sources) = merge::with_cache(&settings.pricing, None, Timestamp::UNIX_EPOCH);
        Prices {
            settings: settings.clone(),
            clusters: BTreeMap::new(),
            cache: None,
            sources,
            notes: Vec::new(),
        }
    }
}

/// Reads the price cache (see [`crate::prices`]) and the fleet configuration (see
/// [`fleet_config`]) into the [`Prices`] of a report run at `now`. A price cache that is
/// named but unreadable is an error; a partition or node pattern naming an instance type
/// nobody prices is one too, naming the setting.
pub(crate) fn with_prices(settings: &Settings, now: Timestamp) -> anyhow::Result<Prices> {
    let mut settings = settings.clone();
    let cache = match settings.pricing.cache_to_read() {
        Some(path) => Some(PriceCache::read(&path)?),
        None => None,
    };
    let (pricing, sources) = merge::with_cache(&settings.pricing, cache.as_ref(), now);
    let spot_known = |name: &str| {
        cache
            .as_ref()
            .is_some_and(|c| c.spot.get(name).is_some_and(|z| !z.is_empty()))
    };
    let mut notes = Vec::new();
    let mut resolve = |pricing: PricingSettings, what: &str| -> anyhow::Result<PricingSettings> {
        let pricing = match fleet_config::path_to_read(&pricing) {
            Some(path) => {
                let (pricing, fleet_notes) = fleet_config::apply_file(&pricing, &path)?;
                notes.extend(fleet_notes);
                pricing
            }
            None => pricing,
        };
        pricing
            .check_references(spot_known)
            .map_err(|e| anyhow::anyhow!("{what}{e}"))?;
        Ok(pricing)
    };
    let mut clusters = BTreeMap::new();
    for name in pricing.clusters.keys() {
        let resolved = resolve(pricing.for_cluster(name), &format!("cluster {name}: "))?;
        clusters.insert(name.clone(), resolved);
    }
    settings.pricing = resolve(pricing, "")?;
    Ok(Prices {
        settings,
        clusters,
        cache,
        sources,
        notes,
    })
}

/// Runs sacct (no shell) and builds the report from its output as it arrives. When the
/// comment is asked for, sacct first lists the window's job ids alone, to confirm the
/// records with ([`job_ids`]): asked first, so a job that starts in between is only in
/// the second answer, where its run (after the window's end) costs nothing.
pub(crate) fn run_sacct(prices: &Prices, options: &Options) -> anyhow::Result<Report> {
    run_sacct_with_jobs(prices, options, None)
}

/// [`run_sacct`] handing each job run to `jobs` as it is priced (see [`build_with_jobs`]).
pub(crate) fn run_sacct_with_jobs(
    prices: &Prices,
    options: &Options,
    jobs: Option<&mut dyn priced_run::JobSink>,
) -> anyhow::Result<Report> {
    let layout = options.layout(prices.settings.project_source);
    let args = |format: &str| {
        let mut args = sacct::arguments_for(
            options.users,
            options.since,
            options.until,
            format,
            options.clusters.as_deref(),
        );
        args.extend(options.filters.sacct_arguments());
        args
    };
    // The same filters for the ids as for the records: each record finds its id.
    let ids = if layout.has_comment() {
        let mut ids = args("JobID");
        if layout.reads_step_memory() {
            // The steps' ids too: a step line's MaxRSS counts only when sacct lists it.
            ids.retain(|a| a != "--allocations");
        }
        Some(spawn_sacct(&ids, JobIds::read)?)
    } else {
        None
    };
    // The grouped report's wasted cost needs TotalCPU too (a saved file without a header
    // is read with the fields of earlier releases, which have none).
    let layout = layout.with_usage();
    let mut records = args(&layout.format());
    if layout.reads_steps() {
        // `--allocations` reads no steps, so every job's TotalCPU would be 0: sacct lists
        // the steps too, and their CPU time adds up on the job's own line.
        records.retain(|a| a != "--allocations");
    }
    spawn_sacct(&records, |out| build_from(prices, options, layout, out, ids, jobs))
}

/// Runs sacct over `[since, until)` for `format` and hands its output, as it arrives, to
/// `read`. No shell; sacct's own messages go to stderr.
pub(crate) fn read_sacct<T>(
    users: sacct::Users,
    (since, until): (Timestamp, Timestamp),
    clusters: Option<&str>,
    format: &str,
    read: impl FnOnce(BufReader<std::process::ChildStdout>) -> io::Result<T>,
) -> anyhow::Result<T> {
    let args = sacct::arguments_for(users, since, until, format, clusters);
    spawn_sacct(&args, read)
}

/// Runs sacct with `args` and hands its output, as it arrives, to `read`; a failure
/// names the command line.
pub(crate) fn spawn_sacct<T>(
    args: &[String],
    read: impl FnOnce(BufReader<std::process::ChildStdout>) -> io::Result<T>,
) -> anyhow::Result<T> {
    let mut child = sacct::command_with("sacct".as_ref(), args)
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
            sacct::line_of(args)
        );
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::parse;
    use crate::prices::cache::{InstanceType, PriceCache};

    /// Hostile sacct output for `--by job` (the fields of its layout; the comment last):
    /// job comments with newlines that print step lines with a huge MaxRSS, for another
    /// job, for no job, for their own job under a new step id, and repeating their own
    /// job's real step id. A step counts only for the job line just before it, and (with
    /// sacct's list of ids, as when the comment is read) only as often as sacct lists it;
    /// otherwise the job's memory peak is unknown, never the forged one.
    #[test]
    fn forged_step_lines_count_for_no_job() {
        let job = |id: &str, comment: &str| {
            format!(
                "{id}|COMPLETED|u|a|p|2024-03-01T10:00:00|2024-03-01T11:00:00|1|4|cpu=4|n1|60|g|01:00:00|3600||4G|{comment}\n"
            )
        };
        let step = |id: &str, rss: &str| {
            format!(
                "{id}|COMPLETED||a||2024-03-01T10:00:00|2024-03-01T11:00:00|1|4|cpu=4|n1||g|00:10:00|3600|{rss}||\n"
            )
        };
        let input = [
            job("1", "fine"),
            step("1.batch", "1G"),
            // Job 2's comment prints a step of job 1, and one of a job with no line.
            job("2", "a"),
            step("1.0", "100G"),
            step("7.batch", "100G"),
            // Job 3's comment prints a step of its own that sacct does not have.
            job("3", "b"),
            step("3.0", "100G"),
            step("3.batch", "1G"),
            // Job 4's comment repeats its own real step, before the real one.
            job("4", "c"),
            step("4.batch", "100G"),
            step("4.batch", "1G"),
        ]
        .concat();
        let layout = sacct::Layout::new(ProjectSource::Comment, false).with_efficiency();
        let read = |ids: Option<&mut JobIds>| {
            let mut diag = Diagnostics::default();
            let mut peaks = Vec::new();
            let forged = records(&mut input.as_bytes(), layout, ids, &mut diag, |_, r, _| {
                peaks.push((r.job_id.to_string(), r.max_rss));
            })
            .unwrap();
            (peaks, forged, diag)
        };
        const GIB: u64 = 1024 * 1024;
        let peak = |peaks: &[(String, Option<u64>)], id: &str| peaks.iter().find(|p| p.0 == id).and_then(|p| p.1);

        // A saved file (no list of ids): another job's step and a step of no job count
        // for nothing and are said; a job's own forged steps cannot be told apart.
        let (peaks, forged, diag) = read(None);
        assert_eq!(peaks.len(), 4, "{peaks:?}");
        assert_eq!(peak(&peaks, "1"), Some(GIB));
        assert_eq!(peak(&peaks, "2"), None, "1.0 and 7.batch are not job 2's");
        assert_eq!(forged, 0);
        assert!(
            diag.warnings
                .iter()
                .any(|w| w.starts_with("2 step lines did not follow a line of their own job (1.0, 7.batch)")),
            "{:?}",
            diag.warnings
        );

        // With sacct's list (jobs and their steps, as sacct lists them without
        // --allocations): every forged step is caught.
        let mut ids = JobIds::read("1\n1.batch\n2\n3\n3.batch\n4\n4.batch\n".as_bytes()).unwrap();
        let (peaks, forged, diag) = read(Some(&mut ids));
        assert_eq!(peaks.len(), 4, "every job line is still charged: {peaks:?}");
        assert_eq!(peak(&peaks, "1"), Some(GIB));
        assert_eq!(peak(&peaks, "2"), None);
        assert_eq!(peak(&peaks, "3"), None, "a step sacct does not list: unknown, not 100G");
        assert_eq!(
            peak(&peaks, "4"),
            None,
            "a step listed once, read twice: unknown, not 100G"
        );
        assert_eq!(forged, 4, "1.0, 7.batch, 3.0 and the second 4.batch");
        assert_eq!(diag.skipped, 4);
        assert!(diag.warnings.is_empty(), "{:?}", diag.warnings);
    }

    fn t(s: &str) -> Timestamp {
        parse(s).unwrap().0
    }

    /// A month of on-demand and spot jobs priced from the price cache alone (no
    /// `[pricing.instances]`), against the hand computation in the comments.
    #[test]
    fn a_month_priced_from_the_cache_is_the_hand_computation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.json");
        let mut cache = PriceCache::new("us-east-1", t("2024-04-01"));
        let shape = |vcpus, gpus, on_demand| InstanceType {
            vcpus,
            cores: vcpus / 2,
            gpus,
            on_demand: Some(on_demand),
        };
        cache.instance_types.insert("c5.xlarge".into(), shape(4, 0, 0.17));
        cache.instance_types.insert("g4dn.xlarge".into(), shape(4, 1, 0.526));
        cache.zones.insert("spot".into(), vec!["us-east-1a".into()]);
        cache.spot.insert(
            "c5.xlarge".into(),
            [
                (
                    "us-east-1a".to_string(),
                    vec![(t("2024-03-01"), 0.06), (t("2024-03-10T12:00"), 0.09)],
                ),
                ("us-east-1b".to_string(), vec![(t("2024-03-01"), 0.10)]),
            ]
            .into(),
        );
        cache.write(&path).unwrap();
        let toml = format!(
            "project_source = \"comment\"\n[pricing]\nfleet_config = \"\"\ncache_file = \"{}\"\n\
             [pricing.partitions.compute]\ninstance = \"c5.xlarge\"\n\
             [pricing.partitions.spot]\ninstance = \"c5.xlarge\"\nspot = true\n\
             [pricing.partitions.wide]\ninstance = \"c5.xlarge\"\nspot = true\n\
             [pricing.partitions.gpu]\ninstance = \"g4dn.xlarge\"\n",
            path.display()
        );
        let settings = Settings::parse(&toml, std::path::Path::new("t.toml")).unwrap();
        let prices = with_prices(&settings, t("2024-04-01T02:00")).unwrap();
        let sacct = "\
201|COMPLETED|u1|a|compute|2024-03-05T10:00:00|2024-03-05T12:00:00|1|2|cpu=2,node=1|compute-1|P1
202|COMPLETED|u1|a|spot|2024-03-10T11:00:00|2024-03-10T14:00:00|1|4|cpu=4,node=1|spot-1|P1
203|COMPLETED|u2|a|wide|2024-03-02T00:00:00|2024-03-02T02:00:00|2|8|cpu=8,node=2|wide-[1-2]|P2
204|COMPLETED|u2|a|gpu|2024-03-20T00:00:00|2024-03-20T01:00:00|1|1|cpu=1,gres/gpu=1,node=1|gpu-1|P2
";
        let options = Options {
            since: t("2024-03-01"),
            until: t("2024-04-01"),
            now: t("2024-04-01"),
            by: vec![Dimension::Project],
            every: None,
            top: None,
            chart: None,
            clusters: None,
            users: sacct::Users::All,
            filters: Filters::default(),
            account_tree: None,
        };
        let report = build_confirmed(&prices, &options, sacct.as_bytes(), None).unwrap();
        let cost = |project: &str| {
            let (_, sums) = report.summary.groups.iter().find(|(g, _)| g[0] == project).unwrap();
            (sums.cost * 1e6).round() / 1e6
        };
        // 201: on demand, 2 h x 0.17/h x 2 of 4 CPUs                         = 0.17
        // 202: spot in us-east-1a, 1 h x 0.06 + 2 h x 0.09 (price changed at 12:00) = 0.24
        assert_eq!(cost("P1"), 0.41);
        // 203: spot, zone of "wide" unknown: the average of 1a and 1b,
        //      (0.06 + 0.10) / 2 = 0.08/h, 2 nodes x 2 h                      = 0.32
        // 204: 1 of 4 CPUs but the only GPU: the whole node, 1 h x 0.526    = 0.526
        assert_eq!(cost("P2"), 0.846);
        assert_eq!(report.diagnostics.unpriced, 0);
        let c5 = &report.price_sources["c5.xlarge"];
        assert_eq!((c5.on_demand, c5.age_seconds), ("price cache", Some(7200)));
        assert_eq!(c5.spot["spot"], "spot price history, us-east-1a");
        assert!(c5.spot["wide"].contains("average of 2 zones"), "{:?}", c5.spot);
        assert!(report.price_sources.contains_key("g4dn.xlarge"));
    }

    #[test]
    fn an_instance_type_nobody_prices_names_the_setting() {
        let settings = Settings::parse(
            "[pricing]\nfleet_config = \"\"\ncache_file = \"\"\n[pricing.partitions.compute]\ninstance = \"c5.xlarge\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let e = with_prices(&settings, Timestamp::UNIX_EPOCH).unwrap_err().to_string();
        assert!(
            e.contains("pricing.partitions.compute.instance") && e.contains("prices refresh"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod several_clusters {
    use super::*;

    /// Two clusters in one slurmdbd: the same partition name is c5.xlarge nodes on east
    /// (the settings' own mapping) and m5.2xlarge nodes on west ([pricing.clusters.west]).
    #[test]
    fn each_cluster_prices_with_its_own_node_shapes() {
        let toml = "project_source = \"account\"\n[pricing]\nfleet_config = \"\"\ncache_file = \"\"\n\
                    [pricing.instances.\"c5.xlarge\"]\non_demand = 0.2\ncpus = 4\n\
                    [pricing.instances.\"m5.2xlarge\"]\non_demand = 0.4\ncpus = 8\n\
                    [pricing.partitions.compute]\ninstance = \"c5.xlarge\"\n\
                    [pricing.clusters.west.partitions.compute]\ninstance = \"m5.2xlarge\"\n";
        let settings = Settings::parse(toml, std::path::Path::new("t.toml")).unwrap();
        let prices = with_prices(&settings, Timestamp::UNIX_EPOCH).unwrap();
        let t = |s: &str| crate::model::time::parse(s).unwrap().0;
        let options = Options {
            since: t("2024-03-01"),
            until: t("2024-04-01"),
            now: t("2024-04-01"),
            by: vec![Dimension::Cluster],
            every: None,
            top: None,
            chart: None,
            clusters: Some("all".into()),
            users: sacct::Users::All,
            filters: Filters::default(),
            account_tree: None,
        };
        // Each job: 4 CPUs for 1 h on one node of partition compute.
        let sacct = "\
1|COMPLETED|u|P|compute|2024-03-05T10:00:00|2024-03-05T11:00:00|1|4|cpu=4,node=1|n1|east
1|COMPLETED|u|P|compute|2024-03-05T10:00:00|2024-03-05T11:00:00|1|4|cpu=4,node=1|n1|west
";
        let report = build_confirmed(&prices, &options, sacct.as_bytes(), None).unwrap();
        let cost = |cluster: &str| {
            let (_, sums) = report.summary.groups.iter().find(|(g, _)| g[0] == cluster).unwrap();
            (sums.cost * 1e6).round() / 1e6
        };
        assert_eq!(cost("east"), 0.2, "a whole c5.xlarge for 1 h");
        assert_eq!(cost("west"), 0.2, "half an m5.2xlarge (4 of 8 CPUs) for 1 h");
        let broken = "[pricing]\nfleet_config = \"\"\ncache_file = \"\"\n\
                      [pricing.clusters.west.partitions.compute]\ninstance = \"m5.24xlarge\"\n";
        let settings = Settings::parse(broken, std::path::Path::new("t.toml")).unwrap();
        let e = with_prices(&settings, Timestamp::UNIX_EPOCH).unwrap_err().to_string();
        assert!(
            e.starts_with("cluster west: pricing.partitions.compute.instance"),
            "{e}"
        );
    }
}
