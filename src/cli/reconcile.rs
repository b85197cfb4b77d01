//! `cost-tags reconcile`: repair what lost prologs and epilogs, crashes and AWS outages
//! leave behind, on one compute node ([`crate::node::repair`]) or, with `--cluster`, across
//! the whole cluster from the head node ([`crate::cluster::converge`]). The arguments, what
//! is printed as the work goes, and the exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use std::time::Duration;

use crate::cluster::converge::{reconcile_cluster, ClusterArgs};
use crate::config::Settings;
use crate::log;
use crate::node::repair::{describe_job, reconcile_node, RepairOptions, RepairStep};

#[derive(clap::Args, Debug, Clone)]
pub struct ReconcileArgs {
    /// Print what would change; change nothing (no ledger write, no CreateTags/DeleteTags).
    #[arg(long)]
    pub dry_run: bool,
    /// This node's Slurm name; else /etc/parallelcluster/slurm_plugin/slurm_nodename, else
    /// the short host name.
    #[arg(long, value_name = "NAME", conflicts_with = "cluster")]
    pub node: Option<String>,
    /// On the head node: bring the cost tags of every instance of the cluster in line
    /// with Slurm's jobs (adding as well as removing), in few calls, paced.
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
pub fn run(settings: &Settings, args: &ReconcileArgs) -> Result<ExitCode> {
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
