//! `cost-tags reconcile`: repair what lost prologs and epilogs, crashes and AWS outages
//! leave behind, on one compute node ([`crate::node::repair`]) or, with `--cluster`, across
//! the whole cluster from the head node ([`crate::cluster::sweep`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::cluster::sweep::reconcile_cluster;
use crate::config::Settings;
use crate::log;
use crate::node::repair::reconcile_node;

#[derive(clap::Args, Debug, Clone)]
pub struct ReconcileArgs {
    /// Print what would change; change nothing (no ledger write, no CreateTags/DeleteTags).
    #[arg(long)]
    pub dry_run: bool,
    /// This node's Slurm name; else /etc/parallelcluster/slurm_plugin/slurm_nodename, else
    /// the short host name.
    #[arg(long, value_name = "NAME", conflicts_with = "cluster")]
    pub node: Option<String>,
    /// On the head node: remove the cost tags of every cluster instance that runs no job.
    #[arg(long)]
    pub cluster: bool,
    /// With --cluster: the cluster's name (tag parallelcluster:cluster-name); else
    /// `stack_name` from /etc/parallelcluster/cfnconfig.
    #[arg(long, value_name = "NAME", requires = "cluster")]
    pub cluster_name: Option<String>,
    /// With --cluster: at most this many EC2 tag calls per second.
    #[arg(long, value_name = "N", default_value_t = 5.0, requires = "cluster")]
    pub rate: f64,
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

/// `cost-tags reconcile [--cluster]`.
pub fn run(settings: &Settings, args: &ReconcileArgs) -> Result<ExitCode> {
    log::init("cost-tags-reconcile");
    if args.cluster {
        reconcile_cluster(settings, args)
    } else {
        reconcile_node(settings, args)
    }
}
