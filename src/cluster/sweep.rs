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
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::aws::ec2::{ClusterInstance, Ec2Tags};
use crate::aws::imds;
use crate::cluster::pacer::Pacer;
use crate::config::Settings;
use crate::log;
use crate::node::tags::{managed_keys, TagMap};
use crate::parallelcluster::cfnconfig::cfnconfig_stack_name;
use crate::reconcile::ReconcileArgs;
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

/// `cost-tags reconcile --cluster`.
pub fn reconcile_cluster(settings: &Settings, args: &ReconcileArgs) -> Result<ExitCode> {
    anyhow::ensure!(args.rate > 0.0 && args.rate.is_finite(), "--rate must be more than 0");
    let name = match &args.cluster_name {
        Some(n) => n.clone(),
        None => {
            let text = std::fs::read_to_string(&args.cfnconfig)
                .with_context(|| format!("cannot read {} (or pass --cluster-name)", args.cfnconfig.display()))?;
            cfnconfig_stack_name(&text)
                .with_context(|| format!("no stack_name in {} (pass --cluster-name)", args.cfnconfig.display()))?
        }
    };
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
        let who = match node {
            Some(n) => format!("{} (node {}, no job)", instance.instance_id, n.name),
            None => format!("{} (no Slurm node)", instance.instance_id),
        };
        let listed: Vec<String> = cost.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        if args.dry_run {
            println!("{who}: would remove {}", listed.join(", "));
            changed += 1;
            continue;
        }
        pacer.wait();
        // The snapshot may be minutes old by now (the pacing): a job that started on the
        // node since then may already carry the same user and project tags, which the
        // value-conditional delete would take from it. So Slurm is asked again about this
        // node right before the call (see the module doc for the window that remains).
        if let Some(n) = node {
            match jobs_on_node(&args.squeue, &n.name) {
                Ok(ids) if ids.is_empty() => {}
                Ok(ids) => {
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    let line = format!("{who}: kept, job {} started meanwhile", ids.join(", "));
                    println!("{line}");
                    log::info(&line);
                    continue;
                }
                Err(e) => {
                    failed += 1;
                    let line = format!("{who}: kept, cannot ask Slurm again: {e:#}");
                    println!("{line}");
                    log::error(&line);
                    continue;
                }
            }
        }
        match runtime.block_on(ec2.delete_if_unchanged(&instance.instance_id, &cost)) {
            Ok(()) => {
                changed += 1;
                let line = format!("{who}: removed {}", listed.join(", "));
                println!("{line}");
                log::info(&line);
            }
            Err(e) => {
                failed += 1;
                let line = format!("{who}: could not remove cost tags: {e:#}");
                println!("{line}");
                log::error(&line);
            }
        }
    }
    let busy_count = instances
        .iter()
        .filter(|i| node_of(i, &nodes).is_some_and(|n| busy.contains(&n.name)))
        .count();
    println!(
        "cluster {name}: {} running instances, {busy_count} with jobs, {changed} {}{}",
        instances.len(),
        if args.dry_run { "would be untagged" } else { "untagged" },
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
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
