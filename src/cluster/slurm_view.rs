//! What Slurm says about the whole cluster, for the head node's convergence: the nodes
//! (to match instances) and, for each node, the jobs holding it.
//!
//! The jobs come from two squeue queries, as on a node ([`crate::node::repair`]): first
//! their fields, in the format cost-reconcile uses on a node (the project's field last,
//! only when it is the project), then their ids and nodes alone (`%A|%N`), which nothing
//! a user writes can forge. A job is believed only when both agree: a job printed twice
//! (a forged line naming a real job) or listed only by the second query (it started in
//! between) leaves its nodes *unknown*, and the convergence leaves their tags as they
//! are until the next pass; a job that only the first query prints (it ended in between,
//! or a forged line naming no running job) holds no node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::model::job::Job;
use crate::model::job::ProjectSource;
use crate::slurm::command::run_program;
use crate::slurm::scontrol::{parse_scontrol_nodes, SlurmNode};
use crate::slurm::squeue::{node_jobs_format, parse_job_nodes, parse_node_jobs, JOB_NODES_FORMAT, NODE_STATES};

/// How long one Slurm query on the head node may take.
const HEAD_SLURM_TIMEOUT: Duration = Duration::from_secs(60);

/// Node name -> ids of the jobs holding it.
pub(crate) type JobIds = BTreeMap<String, BTreeSet<String>>;

/// One snapshot of the cluster as Slurm sees it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlurmView {
    pub nodes: Vec<SlurmNode>,
    /// Node name -> its jobs, with the fields that become tags.
    pub jobs: BTreeMap<String, Vec<Job>>,
    /// Node name -> the ids of its jobs, from the query no user can forge.
    pub ids: JobIds,
    /// Nodes whose jobs cannot be told this time, and why.
    pub unknown: BTreeMap<String, String>,
}

/// Slurm, as the convergence asks it: a whole snapshot, then the cheap query again right
/// before each EC2 call.
pub(crate) trait ClusterSlurm {
    fn view(&mut self) -> Result<SlurmView>;
    /// Node name -> job ids now ([`JOB_NODES_FORMAT`] only).
    fn job_ids(&mut self) -> Result<JobIds>;
}

/// Builds the view from the nodes, the jobs with their fields (first query), and the
/// jobs with their nodes (second query); see the module doc.
pub(crate) fn build_view(
    nodes: Vec<SlurmNode>,
    with_fields: Vec<Job>,
    with_nodes: &BTreeMap<String, BTreeSet<String>>,
) -> SlurmView {
    let mut by_id: BTreeMap<&str, Vec<&Job>> = BTreeMap::new();
    for job in &with_fields {
        by_id.entry(job.id.as_str()).or_default().push(job);
    }
    let mut view = SlurmView {
        nodes,
        ..SlurmView::default()
    };
    for (id, held) in with_nodes {
        let found = by_id.get(id.as_str()).map_or(&[][..], Vec::as_slice);
        let why = match found {
            [job] => {
                for node in held {
                    view.jobs.entry(node.clone()).or_default().push((*job).clone());
                }
                None
            }
            [] => Some(format!("job {id} started while Slurm was asked")),
            _ => Some(format!(
                "squeue printed job {id} twice: a newline in a job's free text (its comment) forged a line"
            )),
        };
        for node in held {
            view.ids.entry(node.clone()).or_default().insert(id.clone());
            if let Some(why) = &why {
                view.unknown.insert(node.clone(), why.clone());
            }
        }
    }
    view
}

/// Inverts squeue's job id -> nodes into node -> job ids.
pub(crate) fn ids_by_node(with_nodes: &BTreeMap<String, BTreeSet<String>>) -> JobIds {
    let mut ids = JobIds::new();
    for (id, nodes) in with_nodes {
        for node in nodes {
            ids.entry(node.clone()).or_default().insert(id.clone());
        }
    }
    ids
}

/// The real Slurm, through its commands.
pub(crate) struct SlurmCommands {
    pub squeue: PathBuf,
    pub scontrol: PathBuf,
    pub project_source: ProjectSource,
    /// The Slurm cluster's name, for the cluster tag (what slurmd gives prologs as
    /// `SLURM_CLUSTER_NAME`).
    pub cluster: String,
}

impl SlurmCommands {
    fn squeue(&self, format: &str) -> Result<String> {
        run_program(
            &self.squeue,
            &["-h", "-a", "-t", NODE_STATES, "-o", format],
            Instant::now() + HEAD_SLURM_TIMEOUT,
        )
    }
}

impl ClusterSlurm for SlurmCommands {
    fn view(&mut self) -> Result<SlurmView> {
        let nodes = parse_scontrol_nodes(&run_program(
            &self.scontrol,
            &["show", "nodes", "-o"],
            Instant::now() + HEAD_SLURM_TIMEOUT,
        )?);
        let fields = self.squeue(&node_jobs_format(self.project_source))?;
        let with_nodes = parse_job_nodes(&self.squeue(JOB_NODES_FORMAT)?)?;
        let jobs = parse_node_jobs(&fields, self.project_source, &self.cluster)?;
        Ok(build_view(nodes, jobs, &with_nodes))
    }

    fn job_ids(&mut self) -> Result<JobIds> {
        Ok(ids_by_node(&parse_job_nodes(&self.squeue(JOB_NODES_FORMAT)?)?))
    }
}

/// The Slurm cluster's name from `scontrol show config` (`ClusterName = x`).
pub(crate) fn slurm_cluster_name(scontrol: &std::path::Path) -> Result<String> {
    let text = run_program(scontrol, &["show", "config"], Instant::now() + HEAD_SLURM_TIMEOUT)?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "ClusterName")
        .map(|(_, v)| v.trim().to_string())
        .ok_or_else(|| anyhow::anyhow!("scontrol show config names no ClusterName"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, user: &str) -> Job {
        Job {
            id: id.into(),
            user: user.into(),
            project: "P".into(),
            ..Job::default()
        }
    }

    fn nodes(pairs: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        pairs
            .iter()
            .map(|(id, n)| (id.to_string(), n.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn jobs_both_queries_agree_on_hold_their_nodes() {
        let view = build_view(
            Vec::new(),
            vec![job("5", "alice"), job("6", "bob")],
            &nodes(&[("5", &["n1", "n2"]), ("6", &["n1"])]),
        );
        assert_eq!(view.jobs["n1"].len(), 2, "a shared node");
        assert_eq!(view.jobs["n2"][0].user, "alice");
        assert_eq!(view.ids["n1"].len(), 2);
        assert!(view.unknown.is_empty());
    }

    #[test]
    fn a_forged_or_racing_job_leaves_its_nodes_unknown() {
        // Job 9 forged by a comment: printed by the first query only; holds nothing.
        // Job 6 printed twice: its node is unknown. Job 7 started in between: unknown.
        let view = build_view(
            Vec::new(),
            vec![job("5", "a"), job("9", "victim"), job("6", "b"), job("6", "victim")],
            &nodes(&[("5", &["n1"]), ("6", &["n2"]), ("7", &["n3"])]),
        );
        assert_eq!(view.jobs.keys().collect::<Vec<_>>(), ["n1"]);
        assert!(view.unknown["n2"].contains("twice"));
        assert!(view.unknown["n3"].contains("started"));
        assert!(!view.jobs.values().flatten().any(|j| j.user == "victim"));
    }
}
