//! `cost-tags reconcile --cluster`, on the head node: every running instance of the
//! cluster whose Slurm node runs no job (or which is no Slurm node) loses its managed cost
//! tags.
//!
//! Calls are paced at `--rate` per second, so the one squeue snapshot can be minutes old
//! when an instance's turn comes: squeue is asked again about that node right before its
//! DeleteTags, and a node that runs a job by then keeps its tags. Each tag is deleted only
//! if it still has the value seen, so a prolog that tagged the node for a job of another
//! user or project keeps those. What remains is the round trip of one DeleteTags: a job
//! allocated after that last squeue answer whose prolog tags the instance (same user and
//! project) before the DeleteTags lands loses those two tags until `cost-tags reconcile`
//! runs on the node. A prolog starts after slurmctld has allocated the job and told
//! slurmd, and then needs IMDS and its own CreateTags, so the race needs both within tens
//! of milliseconds.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::aws::ec2::{ClusterInstance, Ec2Tags};
use crate::aws::imds;
use crate::cluster::pacer::Pacer;
use crate::config::Settings;
use crate::log;
use crate::node::tags::{managed_keys, TagMap};
use crate::parallelcluster::cfnconfig::Cfnconfig;
use crate::slurm::command::run_program;
use crate::slurm::scontrol::{parse_scontrol_nodes, SlurmNode};
use crate::slurm::squeue::{parse_busy_nodes, parse_job_ids, JOB_IDS_FORMAT};

/// How long a Slurm query on the head node may take.
const HEAD_SLURM_TIMEOUT: Duration = Duration::from_secs(60);

/// The job states in which a node is not idle, for the head node's sweep: a completing
/// job's epilog still owns the node's tags.
const HEAD_BUSY_STATES: &str = "CONFIGURING,RUNNING,SUSPENDED,COMPLETING";

/// The Slurm node an instance is: NodeAddr or NodeHostName equal to its private IP, or
/// to the first label of its private DNS name.
pub fn node_of<'a>(instance: &ClusterInstance, nodes: &'a [SlurmNode]) -> Option<&'a SlurmNode> {
    let mut names: Vec<&str> = Vec::new();
    if let Some(ip) = instance.private_ip.as_deref().filter(|s| !s.is_empty()) {
        names.push(ip);
    }
    if let Some(host) = instance
        .private_dns
        .as_deref()
        .and_then(|d| d.split('.').next())
        .filter(|s| !s.is_empty())
    {
        names.push(host);
    }
    nodes
        .iter()
        .find(|n| names.iter().any(|a| *a == n.addr || *a == n.hostname))
}

/// The jobs holding `node` now, from one squeue query (job ids only: nothing a job's
/// submitter writes can forge them).
fn jobs_on_node(squeue: &Path, node: &str) -> Result<BTreeSet<String>> {
    let text = run_program(
        squeue,
        &["-h", "-a", "-w", node, "-t", HEAD_BUSY_STATES, "-o", JOB_IDS_FORMAT],
        Instant::now() + HEAD_SLURM_TIMEOUT,
    )?;
    parse_job_ids(&text)
}

/// What `cost-tags reconcile --cluster` is asked to do.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Say what would change; change nothing.
    pub dry_run: bool,
    /// The cluster's name (tag `parallelcluster:cluster-name`); else `stack_name` from
    /// `cfnconfig`.
    pub cluster_name: Option<String>,
    pub cfnconfig: PathBuf,
    /// At most this many EC2 calls per second.
    pub rate: f64,
    pub squeue: PathBuf,
    pub scontrol: PathBuf,
}

/// One idle instance that carried cost tags, and what became of them.
#[derive(Debug)]
pub struct InstanceStep<'a> {
    pub instance_id: &'a str,
    /// Its Slurm node, if it is one.
    pub node: Option<&'a str>,
    /// Its cost tags when the sweep saw it.
    pub tags: &'a TagMap,
    pub outcome: InstanceOutcome,
}

#[derive(Debug)]
pub enum InstanceOutcome {
    /// A dry run: the tags would be removed.
    WouldRemove,
    Removed,
    /// Slurm, asked again right before the call, lists these jobs on the node.
    KeptJobStarted(Vec<String>),
    /// Slurm could not be asked again, so the tags stay (a failure).
    KeptSlurmUnanswered(String),
    /// DeleteTags failed (a failure).
    RemoveFailed(String),
}

impl InstanceOutcome {
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            InstanceOutcome::KeptSlurmUnanswered(_) | InstanceOutcome::RemoveFailed(_)
        )
    }
}

/// The line the command prints and logs for the instance.
impl fmt::Display for InstanceStep<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node {
            Some(n) => write!(f, "{} (node {n}, no job): ", self.instance_id)?,
            None => write!(f, "{} (no Slurm node): ", self.instance_id)?,
        }
        let listed = || {
            let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            tags.join(", ")
        };
        match &self.outcome {
            InstanceOutcome::WouldRemove => write!(f, "would remove {}", listed()),
            InstanceOutcome::Removed => write!(f, "removed {}", listed()),
            InstanceOutcome::KeptJobStarted(ids) => write!(f, "kept, job {} started meanwhile", ids.join(", ")),
            InstanceOutcome::KeptSlurmUnanswered(e) => write!(f, "kept, cannot ask Slurm again: {e}"),
            InstanceOutcome::RemoveFailed(e) => write!(f, "could not remove cost tags: {e}"),
        }
    }
}

/// What the sweep did, in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSummary {
    pub cluster: String,
    pub dry_run: bool,
    /// The cluster's running instances.
    pub instances: usize,
    /// Those whose Slurm node runs a job.
    pub busy: usize,
    /// Untagged (or that would be, on a dry run).
    pub changed: usize,
    pub failed: usize,
}

impl fmt::Display for SweepSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster {}: {} running instances, {} with jobs, {} {}",
            self.cluster,
            self.instances,
            self.busy,
            self.changed,
            if self.dry_run { "would be untagged" } else { "untagged" },
        )?;
        if self.failed > 0 {
            write!(f, ", {} failed", self.failed)?;
        }
        Ok(())
    }
}

/// `cost-tags reconcile --cluster`, telling `progress` about each idle instance that
/// carried cost tags. An error means the sweep could not start (no cluster name, EC2 or
/// Slurm unreadable); failures on single instances are counted in the summary.
pub fn reconcile_cluster(
    settings: &Settings,
    args: &SweepOptions,
    mut progress: impl FnMut(&InstanceStep<'_>),
) -> Result<SweepSummary> {
    anyhow::ensure!(args.rate > 0.0 && args.rate.is_finite(), "--rate must be more than 0");
    let name = Cfnconfig::cluster_name(args.cluster_name.as_deref(), &args.cfnconfig)?;
    let keys = managed_keys(&settings.tags);
    let runtime = crate::aws::sdk::Runtime::new()?;
    let budget = settings.deadline;
    let ec2 = runtime.block_on(async {
        let region_set = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|r| !r.is_empty()));
        let fallback = if region_set {
            String::new()
        } else {
            imds::identity(&settings.cache_dir, budget)
                .await
                .context("no AWS_REGION and no region from IMDS")?
                .region
        };
        anyhow::Ok(Ec2Tags::new(&fallback, budget).await)
    })?;
    let mut pacer = Pacer::new(args.rate);
    pacer.wait();
    let mut instances = runtime.block_on(ec2.cluster_instances(&name))?;
    instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    // Slurm is asked after EC2, so its answer is as fresh as possible when tags go.
    let nodes = parse_scontrol_nodes(&run_program(
        &args.scontrol,
        &["show", "nodes", "-o"],
        Instant::now() + HEAD_SLURM_TIMEOUT,
    )?);
    let busy = parse_busy_nodes(&run_program(
        &args.squeue,
        &["-h", "-a", "-t", HEAD_BUSY_STATES, "-o", "%N"],
        Instant::now() + HEAD_SLURM_TIMEOUT,
    )?)?;

    let (mut changed, mut failed) = (0usize, 0usize);
    for instance in &instances {
        // The head node and login nodes are tagged by their administrators, not by jobs.
        if instance
            .tags
            .get("parallelcluster:node-type")
            .is_some_and(|t| t != "Compute")
        {
            continue;
        }
        let cost: TagMap = keys
            .iter()
            .filter_map(|k| instance.tags.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        if cost.is_empty() {
            continue;
        }
        let node = node_of(instance, &nodes);
        if node.is_some_and(|n| busy.contains(&n.name)) {
            continue;
        }
        let mut step = InstanceStep {
            instance_id: &instance.instance_id,
            node: node.map(|n| n.name.as_str()),
            tags: &cost,
            outcome: InstanceOutcome::WouldRemove,
        };
        if args.dry_run {
            changed += 1;
            progress(&step);
            continue;
        }
        pacer.wait();
        // The snapshot may be minutes old by now (the pacing): a job that started on the
        // node since then may already carry the same user and project tags, which the
        // value-conditional delete would take from it. So Slurm is asked again about this
        // node right before the call (see the module doc for the window that remains).
        let asked_again = match node {
            Some(n) => jobs_on_node(&args.squeue, &n.name).map(|ids| ids.into_iter().collect()),
            None => Ok(Vec::new()),
        };
        step.outcome = match asked_again {
            Ok(ids) if !ids.is_empty() => InstanceOutcome::KeptJobStarted(ids),
            Err(e) => InstanceOutcome::KeptSlurmUnanswered(format!("{e:#}")),
            Ok(_) => match runtime.block_on(ec2.delete_if_unchanged(&instance.instance_id, &cost)) {
                Ok(()) => InstanceOutcome::Removed,
                Err(e) => InstanceOutcome::RemoveFailed(format!("{e:#}")),
            },
        };
        match &step.outcome {
            InstanceOutcome::Removed => changed += 1,
            o if o.is_failure() => failed += 1,
            _ => {}
        }
        let line = step.to_string();
        if step.outcome.is_failure() {
            log::error(&line);
        } else {
            log::info(&line);
        }
        progress(&step);
    }
    let busy = instances
        .iter()
        .filter(|i| node_of(i, &nodes).is_some_and(|n| busy.contains(&n.name)))
        .count();
    Ok(SweepSummary {
        cluster: name,
        dry_run: args.dry_run,
        instances: instances.len(),
        busy,
        changed,
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_the_node_with_its_address_or_host_name() {
        let nodes = vec![SlurmNode {
            name: "q-dy-c5-1".into(),
            addr: "10.0.0.5".into(),
            hostname: "ip-10-0-0-5".into(),
        }];
        let inst = |ip: &str, dns: &str| ClusterInstance {
            instance_id: "i-1".into(),
            private_ip: Some(ip.into()),
            private_dns: Some(dns.into()),
            tags: TagMap::new(),
        };
        assert_eq!(node_of(&inst("10.0.0.5", ""), &nodes).unwrap().name, "q-dy-c5-1");
        assert_eq!(
            node_of(&inst("10.9.9.9", "ip-10-0-0-5.ec2.internal"), &nodes)
                .unwrap()
                .name,
            "q-dy-c5-1"
        );
        assert!(node_of(&inst("1.2.3.4", ""), &nodes).is_none());
    }
}
