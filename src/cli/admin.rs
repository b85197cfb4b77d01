//! `cost-tags`, the administrator's tool: its command line and the dispatch to each
//! subcommand. Each subcommand is one job an administrator does on the head node; this
//! module parses the arguments, loads the settings once and maps errors to exit code 2 (a
//! reader that went away, `| head`, to a quiet 0).
//!
//! Exit codes: each subcommand documents its own; 2 always means it could not do its job
//! (unusable settings, bad arguments, a failed Slurm command), with the reason on stderr.
//! `install` and `uninstall` are the exception: run by a ParallelCluster custom action,
//! every failure of theirs, bad arguments included, is exit 1 with an `ERROR:` line.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::budget::{self, BudgetArgs};
use super::install::{self, InstallArgs};
use super::job::{self, JobArgs};
use super::metrics::{self, MetricsArgs};
use super::prices::{self, PricesArgs};
use super::reconcile::{self, ReconcileArgs};
use super::report::{self, ReportArgs};
use super::status::{self, StatusArgs};
use crate::config::Settings;

#[derive(Parser)]
#[command(
    name = "cost-tags",
    version,
    about = "Administer cost-tags: spend reports, node tag repair, project budgets.",
    after_help = "SETTINGS: --config PATH, else $COST_TAGS_CONFIG, else /opt/slurm/etc/cost-tags.toml \
                  (built-in defaults if that file is absent)."
)]
struct Cli {
    /// Settings file (TOML); install and uninstall read none, and refuse it.
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

// One value per run: its size does not matter, a Box would only obscure clap's derive.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Admin(Admin),
    /// Install on this ParallelCluster node what its role needs (run by the custom action
    /// scripts/multi-runner/cost-tags.sh; exit 0 done, 1 failed, nothing changed).
    Install(InstallArgs),
    /// Remove what `install` added on this node and restore what it changed.
    Uninstall(InstallArgs),
}

/// The commands that read the settings (the installer reads none).
#[derive(Subcommand)]
enum Admin {
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
}

/// Runs `cost-tags` with the process's arguments: the whole of `src/bin/cost-tags.rs`.
pub fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let installer = installer(&argv);
    // The installer runs as a custom action: its usage errors are failures in its words
    // (exit 1), and its arguments may come in the multi-runner form.
    let parsed = match installer {
        Some((at, prefix)) => match install::plain_argv(argv, at) {
            Ok(argv) => Cli::try_parse_from(argv).map_err(|e| install::usage_error(prefix, &e)),
            Err(why) => Err(install::failed(prefix, &why)),
        },
        None => Ok(Cli::parse_from(argv)),
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let command = match cli.command {
        // Before any settings file exists (or with a broken one): the installer reads none.
        Command::Install(args) => return install::run(&args, cli.config.as_deref(), false, "cost-tags install"),
        Command::Uninstall(args) => return install::run(&args, cli.config.as_deref(), true, "cost-tags uninstall"),
        Command::Admin(command) => command,
    };
    // cost-tags.env holds the AWS settings of this node (region, proxy, profile), which
    // the scheduled jobs and an administrator's commands need as the hooks do. Read here,
    // with the hooks' checks, before anything reads the environment and while this
    // process has one thread; never by a shell (a file root does not own would run as root).
    crate::node::env_file::apply();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cost-tags: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match &command {
        Admin::Report(args) => report::run(&settings, args),
        Admin::Job(args) => job::run(&settings, args),
        Admin::Metrics(args) => metrics::run(&settings, args),
        Admin::Status(args) => status::run(&settings, args),
        Admin::Reconcile(args) => reconcile::run(&settings, args),
        Admin::Budget(args) => budget::run(&settings, args),
        Admin::Prices(args) => prices::run(&settings, args),
    };
    super::exit_code("cost-tags", outcome)
}

/// Where `install` or `uninstall` stands in `argv`, and its name for messages, when it is
/// the subcommand: after the program and cost-tags' only global option, `--config`.
fn installer(argv: &[OsString]) -> Option<(usize, &'static str)> {
    let mut at = 1;
    loop {
        match argv.get(at)?.to_str()? {
            "--config" => at += 2,
            a if a.starts_with("--config=") => at += 1,
            "install" => return Some((at, "cost-tags install")),
            "uninstall" => return Some((at, "cost-tags uninstall")),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn argv(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_installer_is_found_after_the_global_options() {
        assert_eq!(
            installer(&argv(&["cost-tags", "install", "---release"])),
            Some((1, "cost-tags install"))
        );
        assert_eq!(
            installer(&argv(&["c", "--config", "x", "uninstall"])),
            Some((3, "cost-tags uninstall"))
        );
        assert_eq!(
            installer(&argv(&["c", "--config=x", "install"])),
            Some((2, "cost-tags install"))
        );
        assert_eq!(installer(&argv(&["c", "report", "install"])), None);
        assert_eq!(installer(&argv(&["c", "--config"])), None);
        assert_eq!(installer(&argv(&["c"])), None);
        // `installer` knows the global options: a new one must be taught to it.
        let globals: Vec<String> = Cli::command()
            .get_arguments()
            .filter(|a| a.is_global_set())
            .map(|a| a.get_id().to_string())
            .collect();
        assert_eq!(globals, ["config"]);
    }

    #[test]
    fn install_is_parsed_like_every_command() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(argv(&[
            "c",
            "install",
            "--role",
            "login",
            "--release=/r",
            "--release",
            "/s",
        ]))
        .unwrap();
        match cli.command {
            Command::Install(a) => assert_eq!(
                (a.role, a.release.as_deref()),
                (Some(crate::parallelcluster::cfnconfig::NodeRole::Login), Some("/s"))
            ),
            _ => panic!("install"),
        }
    }
}
