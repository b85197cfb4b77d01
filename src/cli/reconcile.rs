//! `cost-tags reconcile`: repair what lost prologs and epilogs, crashes and AWS outages
//! leave behind, on one compute node ([`crate::node::repair`]) or, with `--cluster`, across
//! the whole cluster from the head node ([`crate::cluster::converge`]). The arguments, what
//! is printed as the work goes, and the exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use std::time::Duration;

use crate::cluster::converge::{reconcile_cluster, Cluster, ClusterArgs};
use crate::cluster::follow::{self, Step, WakeFile, Wakeup};
use crate::config::Settings;
use crate::log;
use crate::node::repair::{describe_job, reconcile_node, RepairOptions, RepairStep};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ReconcileArgs {
    /// Print what would change; change nothing (no ledger write, no CreateTags/DeleteTags).
    #[arg(long)]
    pub dry_run: bool,
    /// This node's Slurm name; else /etc/parallelcluster/slurm_plugin/slurm_nodename, else
    /// the short host name.
    #[arg(long, value_name = "NAME", conflicts_with = "cluster")]
    pub node: Option<String>,
    /// On the head node: bring the cost tags of every instance of the cluster in line
    /// with Slurm's jobs (adding as well as removing), in few calls, paced; and record
    /// which instance backed which node in the instance timeline (`[timeline] file`).
    #[arg(long)]
    pub cluster: bool,
    /// With --cluster: the cluster's name (tag parallelcluster:cluster-name); else
    /// `stack_name` from /etc/parallelcluster/cfnconfig.
    #[arg(long, value_name = "NAME", requires = "cluster")]
    pub cluster_name: Option<String>,
    /// With --cluster: at most this many EC2 calls per second on average (default:
    /// `[tagging] calls_per_second`, 5).
    #[arg(long, value_name = "N", requires = "cluster")]
    pub rate: Option<f64>,
    /// With --cluster: run as a service, one pass after the other, each started when the
    /// wake file (`wake` in the cache directory, touched by PrologSlurmctld and
    /// EpilogSlurmctld) is touched or after `[tagging] poll_seconds` (30). SIGTERM ends it
    /// between passes, exit 0.
    #[arg(long, requires = "cluster", conflicts_with = "dry_run")]
    pub follow: bool,
    /// With --follow: the user who runs PrologSlurmctld (SlurmUser), made owner of the
    /// wake file so that the hook can touch it.
    #[arg(long, value_name = "USER", requires = "follow")]
    pub wake_user: Option<String>,
    /// With --cluster: stop after this many seconds and leave the rest to the next pass.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, requires = "cluster")]
    pub give_up_after: u64,
    #[arg(long, hide = true, default_value = "squeue")]
    pub squeue: PathBuf,
    #[arg(long, hide = true, default_value = "scontrol")]
    pub scontrol: PathBuf,
    #[arg(long, hide = true, default_value = "/etc/parallelcluster/cfnconfig")]
    pub cfnconfig: PathBuf,
    #[arg(
        long,
        hide = true,
        default_value = "/etc/parallelcluster/slurm_plugin/slurm_nodename"
    )]
    pub nodename_file: PathBuf,
}

/// `cost-tags reconcile [--cluster]`: on a node exit 0 once repaired or owed; with
/// `--cluster`, exit 1 when an instance could not be handled. Errors are exit 2.
pub(crate) fn run(settings: &Settings, args: &ReconcileArgs) -> Result<ExitCode> {
    log::init("cost-tags-reconcile");
    if args.cluster {
        let options = ClusterArgs {
            dry_run: args.dry_run,
            cluster_name: args.cluster_name.clone(),
            cfnconfig: args.cfnconfig.clone(),
            rate: args.rate,
            give_up_after: Duration::from_secs(args.give_up_after),
            squeue: args.squeue.clone(),
            scontrol: args.scontrol.clone(),
        };
        if args.follow {
            return run_follow(settings, args, &options);
        }
        // A closed stdout drops the lines, never the pass half done, and the exit status
        // stays the pass's (1 when a change could not be made).
        let summary = reconcile_cluster(settings, &options, |event| {
            let line = event.to_string();
            drop(outln!("{line}"));
            log::info(&line);
        })?;
        drop(outln!("{summary}"));
        log::info(&summary.to_string());
        return Ok(if summary.has_failures() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let options = RepairOptions {
        dry_run: args.dry_run,
        node: args.node.clone(),
        nodename_file: args.nodename_file.clone(),
        squeue: args.squeue.clone(),
    };
    reconcile_node(settings, &options, print_repair_step)?;
    Ok(ExitCode::SUCCESS)
}

/// Set by SIGTERM and SIGINT: `--follow` ends between passes.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// `reconcile --cluster --follow`: passes until SIGTERM, then exit 0. A pass that fails
/// is logged and the next one tries again; only a failure to start at all is an error.
fn run_follow(settings: &Settings, args: &ReconcileArgs, options: &ClusterArgs) -> Result<ExitCode> {
    let handler = SigAction::new(SigHandler::Handler(request_stop), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(signal, &handler) }.context("cannot handle SIGTERM")?;
    }
    let mut wake = WakeFile::prepare(&settings.cache_dir, args.wake_user.as_deref())?;
    let mut cluster = Cluster::connect(settings, options)?;
    let say = |line: String| {
        drop(outln!("{line}"));
        log::info(&line);
    };
    say(format!(
        "following cluster {}: a pass when {} is touched, else every {} s",
        cluster.name,
        wake.path().display(),
        settings.tagging.poll_seconds
    ));
    follow::follow(&mut cluster, settings, options, &mut wake, &STOP, |step| match step {
        Step::Event(e) => say(e.to_string()),
        Step::Passed(summary) => say(summary.to_string()),
        Step::PassFailed(e) => {
            let line = format!("pass failed, the next one tries again: {e:#}");
            drop(outln!("{line}"));
            log::error(&line);
        }
        Step::Next(Wakeup::Woken) => say("woken: next pass".into()),
        Step::Next(Wakeup::Polled) => say("poll interval: next pass".into()),
    })?;
    say("stopped".into());
    Ok(ExitCode::SUCCESS)
}

/// One repair step on stdout; a closed stdout drops the line, never the repair half done.
fn print_repair_step(step: RepairStep<'_>) {
    match step {
        RepairStep::Ledger { node, change, dry_run } => {
            let (dropped, added) = if dry_run {
                ("would drop", "would add")
            } else {
                ("dropped", "added")
            };
            for j in &change.dropped {
                drop(outln!(
                    "ledger: {dropped} job {} (no longer runs on {node})",
                    describe_job(j)
                ));
            }
            for j in &change.added {
                drop(outln!("ledger: {added} job {} (runs on {node})", describe_job(j)));
            }
            if change.dropped.is_empty() && change.added.is_empty() {
                drop(outln!("ledger: in line with Slurm on {node}"));
            }
        }
        RepairStep::TagsInSync { dry_run: true } => drop(outln!("tags: in sync, nothing to change")),
        RepairStep::TagsInSync { dry_run: false } => drop(outln!("tags: in sync")),
        RepairStep::TagDiffers {
            difference,
            dry_run: true,
        } => drop(outln!("tags: would change {difference}")),
        RepairStep::TagDiffers {
            difference,
            dry_run: false,
        } => drop(outln!("tags: repairing {difference}")),
        RepairStep::TagsByController => drop(outln!(
            "tags: controller mode, the head node tags this instance (`cost-tags reconcile --cluster`); AWS not asked"
        )),
    }
}
