//! cost-tags: the administrator's tool. Each subcommand is one job an administrator does
//! on the head node; the work lives in the library (`cost_tags::report`, ...) and the
//! printing in `cost_tags::cli`; this file only parses arguments, loads the settings once
//! and maps errors to exit code 2 (a reader that went away, `| head`, to a quiet 0).
//!
//! Exit codes: each subcommand documents its own; 2 always means it could not do its job
//! (unusable settings, bad arguments, a failed Slurm command), with the reason on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cost_tags::cli::budget::{self, BudgetArgs};
use cost_tags::cli::install::{self, InstallArgs};
use cost_tags::cli::job::{self, JobArgs};
use cost_tags::cli::metrics::{self, MetricsArgs};
use cost_tags::cli::prices::{self, PricesArgs};
use cost_tags::cli::reconcile::{self, ReconcileArgs};
use cost_tags::cli::report::{self, ReportArgs};
use cost_tags::cli::status::{self, StatusArgs};
use cost_tags::config::Settings;

#[derive(Parser)]
#[command(
    name = "cost-tags",
    version,
    about = "Administer cost-tags: spend reports, node tag repair, project budgets.",
    after_help = "SETTINGS: --config PATH, else $COST_TAGS_CONFIG, else /opt/slurm/etc/cost-tags.toml \
                  (built-in defaults if that file is absent)."
)]
struct Cli {
    /// Settings file (TOML).
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// What jobs cost, per project, user, partition or account, over time (from sacct).
    Report(ReportArgs),
    /// One job's project, nodes, time and cost so far (or final), its price source and
    /// the instances its nodes were (from the head node's timeline); anyone may run it on
    /// the jobs sacct shows them (exit 0 shown, 1 no such job).
    Job(JobArgs),
    /// OpenMetrics text for node_exporter's textfile collector: per project spend, limit,
    /// committed and running jobs (budget cache); per user spend this month (sacct).
    Metrics(MetricsArgs),
    /// On a compute node: the instance's cost tags against the jobs in the node ledger
    /// (exit 0 in sync, 1 out of sync, 2 cannot tell); in controller mode the ledger alone,
    /// asking AWS nothing (exit 0 read).
    Status(StatusArgs),
    /// Repair tags: on a compute node, bring the ledger in line with Slurm and the tags in
    /// line with the ledger; with --cluster on the head node, every instance's tags in
    /// line with Slurm's jobs, and the instance timeline recorded.
    Reconcile(ReconcileArgs),
    /// AWS Budgets per project: refresh the cache project-check reads, create, list.
    Budget(BudgetArgs),
    /// Prices from AWS: refresh the price cache the report prices from.
    Prices(PricesArgs),
    /// Install on this ParallelCluster node what its role needs (run by the custom action
    /// scripts/multi-runner/cost-tags.sh; exit 0 done, 1 failed, nothing changed).
    Install(InstallArgs),
    /// Remove what `install` added on this node and restore what it changed.
    Uninstall(InstallArgs),
}

fn main() -> ExitCode {
    // The installer takes the custom action's arguments in either of ParallelCluster's
    // forms, and runs before any settings file exists (or with a broken one).
    let args: Vec<String> = std::env::args().collect();
    if let Some(sub @ ("install" | "uninstall")) = args.get(1).map(String::as_str) {
        return install::main(sub, args[2..].to_vec());
    }
    let cli = Cli::parse();
    // cost-tags.env holds the AWS settings of this node (region, proxy, profile), which
    // the scheduled jobs and an administrator's commands need as the hooks do. Read here,
    // with the hooks' checks, before anything reads the environment and while this
    // process has one thread; never by a shell (a file root does not own would run as root).
    cost_tags::node::env_file::apply();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cost-tags: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match &cli.command {
        Command::Install(args) => return install::run(args, false, "cost-tags install"),
        Command::Uninstall(args) => return install::run(args, true, "cost-tags uninstall"),
        Command::Report(args) => report::run(&settings, args),
        Command::Job(args) => job::run(&settings, args),
        Command::Metrics(args) => metrics::run(&settings, args),
        Command::Status(args) => status::run(&settings, args),
        Command::Reconcile(args) => reconcile::run(&settings, args),
        Command::Budget(args) => budget::run(&settings, args),
        Command::Prices(args) => prices::run(&settings, args),
    };
    cost_tags::cli::exit_code("cost-tags", outcome)
}
