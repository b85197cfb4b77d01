//! `cost-tags report`: the arguments, the window they resolve to, and where the report
//! goes (stdout in the chosen format, the chart to its file). The report itself is built
//! in [`crate::report`].

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::config::Settings;
use crate::cost::billed::{self, Metric, Overhead};
use crate::cost::filter::Filters;
use crate::cost::period::Every;
use crate::cost::{build_confirmed, run_sacct, with_prices, Dimension, Options};
use crate::model::time::{self, Short, Timestamp};
use crate::parallelcluster::cfnconfig::Cfnconfig;
use crate::report::{chart, html, output};
use crate::slurm::account_tree::AccountTree;
use crate::slurm::sacct;

mod jobs;

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people, with notes on what is not in the sums.
    Table,
    /// One row per group and period, then period and grand totals (see docs/report.md).
    Csv,
    /// One document with rows, totals, unpriced jobs and skipped lines (see docs/report.md).
    Json,
    /// One self-contained HTML page for people: the table, the chart and the notes.
    Html,
}

fn parse_since(s: &str) -> Result<Timestamp, String> {
    time::parse(s)
        .map(|(t, _)| t)
        .ok_or_else(|| format!("{s:?} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]"))
}

fn parse_until(s: &str) -> Result<Timestamp, String> {
    // A bare date means "up to the end of that day": --until 2024-03-31 includes the 31st.
    time::parse(s)
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
  TZ=UTC SLURM_TIME_FORMAT=standard sacct --parsable2 --noheader --allusers
    --duplicates --truncate -S SINCE -E UNTIL
    --format=JobID,State,User,Account,Partition,Start,End,NNodes,NCPUS,AllocTRES,NodeList,TotalCPU,ElapsedRaw
without --allocations, which makes sacct print TotalCPU 0 (TotalCPU gives the wasted cost);
the job steps it then lists are passed over. A saved file without a header holds the fields
of earlier releases, made with --allocations:
    --format=JobID,State,User,Account,Partition,Start,End,NNodes,NCPUS,AllocTRES,NodeList
each with \",WCKey\" or \",Comment\" added to --format when project_source names that field (never
otherwise: Slurm prints free text raw, and a newline in it could forge a record). With the
comment, the same command with --format=JobID runs first: a record whose job id it does not
list (as often) is skipped as forged. Run by anyone but root, the command has no --allusers:
sacct shows an ordinary user only their own jobs, and the report says so.
A saved file (--sacct-file) with a header line is read by the header's field names, in any
order, other fields ignored.
Exit codes: 0 report printed, 1 the saved file's header lacks a field the report reads or
--billed could not use Cost Explorer, 2 no report (bad settings or arguments, sacct failed).")]
pub struct ReportArgs {
    /// First instant of the report: YYYY-MM-DD, YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS [default: the
    /// first day of this month]
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    pub since: Option<Timestamp>,
    /// End of the report; a bare date includes that whole day [default: now]
    #[arg(long, value_name = "DATE", value_parser = parse_until)]
    pub until: Option<Timestamp>,
    /// Group by these, in this order (comma-separated); `job` alone: one row per job run,
    /// with its CPU efficiency and wasted cost, by start time (past about 40,000 runs, sorted
    /// through a temporary file in $TMPDIR; COST_TAGS_SORT_MEMORY sets the memory, 32 MiB)
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
    /// Keep the N most expensive groups; add the others up as "(other)". With --by job:
    /// the N most expensive job runs, most expensive first
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
    /// The clusters whose jobs to report, comma-separated, or `all` (sacct --clusters;
    /// their slurmdbd must be this one's); adds sacct's Cluster field, for `--by cluster`
    /// and the per-cluster pricing of `[pricing.clusters.NAME]`
    #[arg(long, value_name = "LIST|all")]
    pub clusters: Option<String>,
    /// Only these users' jobs (comma-separated; sacct --user). An ordinary user sees
    /// what sacct shows them
    #[arg(long, value_name = "USER[,USER]", value_delimiter = ',')]
    pub user: Vec<String>,
    /// Only jobs charged to these Slurm accounts (sacct --accounts)
    #[arg(long, value_name = "ACCOUNT[,ACCOUNT]", value_delimiter = ',')]
    pub account: Vec<String>,
    /// Only jobs that ran in these partitions (sacct --partition)
    #[arg(long, value_name = "PARTITION[,PARTITION]", value_delimiter = ',')]
    pub partition: Vec<String>,
    /// Only jobs of these Unix groups (sacct --group)
    #[arg(long, value_name = "GROUP[,GROUP]", value_delimiter = ',')]
    pub group: Vec<String>,
    /// Only jobs of these projects (applied to the records read)
    #[arg(long, value_name = "PROJECT[,PROJECT]", value_delimiter = ',')]
    pub project: Vec<String>,
    /// Put what AWS billed beside the estimate (Cost Explorer, the cluster's cost by
    /// project tag; needs `--by project`). Each Cost Explorer request costs 0.01 USD.
    #[arg(long)]
    pub billed: bool,
    /// With --billed: the cluster (tag parallelcluster:cluster-name) [default: stack_name
    /// in /etc/parallelcluster/cfnconfig]
    #[arg(long, value_name = "NAME", requires = "billed")]
    pub cluster_name: Option<String>,
    /// With --billed: the Cost Explorer metric
    #[arg(
        long,
        value_enum,
        value_name = "METRIC",
        default_value = "UnblendedCost",
        requires = "billed"
    )]
    pub billed_metric: Metric,
    /// With --billed: leave the untagged cost on its own line (none) or spread it over the
    /// projects in proportion to their estimated cost (proportional)
    #[arg(long, value_enum, default_value = "none", requires = "billed")]
    pub overhead: Overhead,
    /// With `--by parent-account`: read the account tree from this file, saved with
    /// `sacctmgr -n -P list associations format=Cluster,Account,ParentName,User`, instead
    /// of asking sacctmgr
    #[arg(long, value_name = "FILE")]
    pub account_tree: Option<PathBuf>,
    #[arg(long, hide = true, default_value = "/etc/parallelcluster/cfnconfig")]
    pub cfnconfig: PathBuf,
}

/// The note on an ordinary user's report: sacct showed them only their own jobs.
pub const OWN_JOBS: &str = "report of your own jobs (ordinary users see only theirs)";

/// Resolves the defaults: the window runs from the first of this month to now, and never
/// past now (nothing has been spent there yet).
pub fn options(args: &ReportArgs, clock: Timestamp) -> anyhow::Result<Options> {
    let now = args.now.unwrap_or(clock);
    let since = args.since.unwrap_or_else(|| time::month_start(now));
    let until = args.until.unwrap_or(now).min(now);
    if since >= until {
        bail!(
            "nothing to report: --since {} is not before the end of the window {} (--until, or now)",
            Short(since),
            Short(until)
        );
    }
    if args.by.contains(&Dimension::Cluster) && args.clusters.is_none() {
        bail!("--by cluster needs --clusters (a list, or all)");
    }
    if let Some(list) = &args.clusters {
        let names_ok = list
            .split(',')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        if !names_ok {
            bail!("--clusters {list:?}: expected cluster names separated by commas, or all");
        }
    }
    if args.billed && (args.by != [Dimension::Project] || args.top.is_some()) {
        bail!("--billed compares per project: use it with --by project alone, and without --top");
    }
    if args.billed && args.format == Format::Html {
        bail!("--format html does not show --billed yet: use --format table, csv or json with --billed");
    }
    if args.account_tree.is_some() && !args.by.contains(&Dimension::ParentAccount) {
        bail!("--account-tree is read for --by parent-account: add it to --by, or leave the file out");
    }
    if args.by.contains(&Dimension::Job)
        && (args.by.len() > 1 || args.every.is_some() || args.chart.is_some() || args.billed)
    {
        bail!("--by job lists job runs one by one: use it alone, without --every, --chart or --billed");
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
        // The HTML statement draws the chart inline (the per-job one lists runs instead).
        chart: (args.chart.is_some() || (args.format == Format::Html && !args.by.contains(&Dimension::Job)))
            .then(|| args.every.unwrap_or(Every::Day)),
        clusters: args.clusters.clone(),
        users: sacct::Users::of_caller(),
        filters: filters(args)?,
        account_tree: None,
    })
}

/// The filters, each a list of names sacct would take (no empty name, no blank or
/// control character: they go to sacct as one argument each, never through a shell).
fn filters(args: &ReportArgs) -> anyhow::Result<Filters> {
    for (flag, values) in [
        ("--user", &args.user),
        ("--account", &args.account),
        ("--partition", &args.partition),
        ("--group", &args.group),
        ("--project", &args.project),
    ] {
        if let Some(bad) = values
            .iter()
            .find(|v| v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control() || c == '='))
        {
            bail!("{flag} {bad:?}: expected names separated by commas");
        }
    }
    Ok(Filters {
        users: args.user.clone(),
        accounts: args.account.clone(),
        partitions: args.partition.clone(),
        groups: args.group.clone(),
        projects: args.project.clone(),
    })
}

/// Runs the report: reads the records (running sacct unless `--sacct-file`), prints the
/// report on stdout and writes the chart. Errors mean no report (exit 2 in the binary);
/// so does exit 1, when Cost Explorer cannot be read or its answer used for `--billed`.
pub fn run(settings: &Settings, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let mut options = options(args, Timestamp::now())?;
    if options.by.contains(&Dimension::ParentAccount) {
        // The tree is the cluster's even for a saved sacct file, unless saved too.
        options.account_tree = Some(match &args.account_tree {
            Some(path) => AccountTree::read(path)?,
            None => AccountTree::from_sacctmgr()?,
        });
    }
    let prices = with_prices(settings, Timestamp::now())?;
    if options.per_job() {
        return jobs::run(&prices, &options, args);
    }
    let read = match &args.sacct_file {
        Some(path) if path.as_os_str() == "-" => Some((
            "sacct records from stdin".to_string(),
            build_confirmed(&prices, &options, io::stdin().lock(), None),
        )),
        Some(path) => {
            let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            Some((
                path.display().to_string(),
                build_confirmed(&prices, &options, BufReader::with_capacity(1 << 18, file), None),
            ))
        }
        None => None,
    };
    let mut report = match read {
        Some((_, Ok(report))) => report,
        // The file is readable but not by the report: the caller's to fix, like a bad line.
        Some((name, Err(e))) if sacct::MissingField::of(&e).is_some() => {
            eprintln!("cost-tags: reading {name}: {e}");
            return Ok(ExitCode::from(1));
        }
        Some((name, Err(e))) => return Err(e).with_context(|| format!("reading {name}")),
        None => run_sacct(&prices, &options)?,
    };
    report.diagnostics.warnings.extend(prices.notes);
    if args.sacct_file.is_none() && options.users == sacct::Users::Own {
        report.diagnostics.warnings.push(OWN_JOBS.into());
    }
    if args.billed {
        let cluster = Cfnconfig::cluster_name(args.cluster_name.as_deref(), &args.cfnconfig)?;
        let project_key = &prices.settings.tags.project;
        // Exit 1, like the refresh commands when AWS cannot be read: Cost Explorer failed
        // or answered an amount that is not a number; no report is printed.
        match billed::fetch(&options, &cluster, project_key, args.billed_metric, args.overhead) {
            Ok(b) => report.billed = Some(b),
            Err(e) => {
                eprintln!("cost-tags: no report: {e:#}");
                return Ok(ExitCode::from(1));
            }
        }
    }

    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let printed = match args.format {
        Format::Table => output::table(&report, &mut out),
        Format::Csv => output::csv(&report, &mut out),
        Format::Json => output::json(&report, &mut out),
        Format::Html => html::html(&report, &mut out),
    };
    printed.and_then(|()| out.flush()).map_err(super::StdoutError)?;
    if args.format == Format::Csv {
        output::notes(&report, &mut io::stderr().lock())?;
    }
    if let (Some(path), Some(chart)) = (&args.chart, &report.chart) {
        let svg = chart::svg(&report, chart);
        std::fs::write(path, svg).with_context(|| format!("cannot write the chart {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
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
            billed: false,
            clusters: None,
            user: vec![],
            account: vec![],
            partition: vec![],
            group: vec![],
            project: vec![],
            cluster_name: None,
            billed_metric: Metric::UnblendedCost,
            overhead: Overhead::None,
            account_tree: None,
            cfnconfig: PathBuf::new(),
        };
        let (now, _) = time::parse("2024-03-15T08:30:00").unwrap();
        let o = options(&args, now).unwrap();
        assert_eq!((o.since, o.until), (time::parse("2024-03-01").unwrap().0, now));
        // --until in the future stops at now; nothing to report on the 1st at midnight.
        let future = ReportArgs {
            until: Some(now + 86_400),
            ..args.clone()
        };
        assert_eq!(options(&future, now).unwrap().until, now);
        let (first, _) = time::parse("2024-03-01").unwrap();
        assert!(options(&args, first).is_err());
    }
}
