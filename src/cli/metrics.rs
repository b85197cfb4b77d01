//! `cost-tags metrics`: the OpenMetrics text of [`crate::metrics`], on stdout or replacing
//! a file atomically, so that node_exporter's textfile collector, which may read the file
//! at any moment, reads the old exposition or the new one, never half of one.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::budget::cache::{BudgetCache, CacheError};
use crate::config::Settings;
use crate::cost::{build_confirmed, run_sacct, with_prices};
use crate::metrics::{self, Figures};
use crate::model::time::{self, Timestamp};
use crate::slurm::sacct;
use crate::state::atomic_file;

fn parse_time(s: &str) -> Result<Timestamp, String> {
    time::parse(s)
        .map(|(t, _)| t)
        .ok_or_else(|| format!("{s:?} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]"))
}

/// `cost-tags metrics`: spend per project and per user for Prometheus.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Metrics (all gauges): cost_tags_project_spend, _limit, _committed (currency label) and
_running_jobs per project, from the budget cache of `cost-tags budget refresh` (no AWS call);
cost_tags_user_spend per user since the start of this month (UTC), from sacct priced like
`cost-tags report` (everyone's jobs when run as root); cost_tags_budget_cache_age_seconds;
cost_tags_budget_slurm_read_ok (0: the last refresh could not read Slurm, older figures kept).
For node_exporter: --output /var/lib/node_exporter/textfile/cost_tags.prom (the file is
replaced atomically, mode 0644). The managed script's --metrics DIR runs this every 5 minutes.
Exit codes: 0 written, 2 not written (bad settings, unreadable cache, sacct failed).")]
pub(crate) struct MetricsArgs {
    /// Replace this file (atomically) instead of printing on stdout
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Read saved sacct output (the report's format) instead of running sacct
    #[arg(long, value_name = "FILE", hide = true)]
    pub sacct_file: Option<PathBuf>,
    /// Take this instant as now (with --sacct-file)
    #[arg(long, value_name = "TIME", value_parser = parse_time, hide = true)]
    pub now: Option<Timestamp>,
}

/// Builds the exposition and writes it. A missing budget cache only leaves the project
/// figures out (said on stderr); an unreadable one is an error, as is sacct failing:
/// the old file then stays, and its age shows in the cache-age metric's staleness.
pub(crate) fn run(settings: &Settings, args: &MetricsArgs) -> anyhow::Result<ExitCode> {
    let now = args.now.unwrap_or_else(Timestamp::now);
    let budgets = match BudgetCache::read(&settings.budget.cache_file) {
        Ok(cache) => Some(cache),
        Err(e @ CacheError::Missing(_)) => {
            eprintln!("cost-tags: {e}: no project metrics");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let prices = with_prices(settings, now)?;
    let users = sacct::Users::of_caller();
    if users == sacct::Users::Own && args.sacct_file.is_none() {
        eprintln!("cost-tags: not root: cost_tags_user_spend covers your own jobs only");
    }
    let options = metrics::user_options(now, users);
    let report = match &args.sacct_file {
        Some(path) => {
            let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            build_confirmed(&prices, &options, BufReader::new(file), None)
                .with_context(|| format!("reading {}", path.display()))?
        }
        None => run_sacct(&prices, &options)?,
    };
    let per_user = metrics::users_of(&report);
    let text = metrics::text(&Figures {
        budgets: budgets.as_ref(),
        budget_settings: &settings.budget,
        users: &per_user,
        currency: &prices.settings.pricing.currency,
        users_since: options.since,
        now,
    });
    match &args.output {
        Some(path) => atomic_file::replace(path, text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => super::print(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}
