//! The workloads measured: what Slurm runs on the simulated cluster, what each prolog
//! would be started with, and the tags each instance must end with.

use std::collections::HashMap;

use aws_sdk_ec2::types::Tag;
use serde_json::Value;

use crate::support::moto::{block_on, error_text};
use crate::support::sim_cluster::{SimCluster, JOBID, PROJECT, USER};
use crate::tag_timeline::Tags;

/// One job start, as slurmd would run the prolog for it.
pub struct Prolog {
    /// The node's index in the cluster.
    pub node: usize,
    pub job: u32,
    pub user: String,
    pub project: String,
}

pub struct Scenario {
    pub name: String,
    /// What squeue prints.
    pub jobs: Vec<Value>,
    /// One per job and node (node mode).
    pub prologs: Vec<Prolog>,
    /// Instance id -> its cost tags once everything is right.
    pub want: HashMap<String, Tags>,
}

fn tags(project: &str, user: &str, jobid: &str) -> Tags {
    [(PROJECT, project), (USER, user), (JOBID, jobid)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One job per node, 10 projects and 20 users: node K runs job 1000+K of `user{K % 20}`,
/// `Project{K % 10}` (the set-up).
pub fn one_job_per_node(c: &SimCluster) -> Scenario {
    let n = c.nodes.len();
    let prologs: Vec<Prolog> = (0..n)
        .map(|k| Prolog {
            node: k,
            job: 1000 + k as u32,
            user: format!("user{}", k % 20),
            project: format!("Project{}", k % 10),
        })
        .collect();
    let want = prologs
        .iter()
        .map(|p| {
            (
                c.instances[p.node].clone(),
                tags(&p.project, &p.user, &p.job.to_string()),
            )
        })
        .collect();
    Scenario {
        name: format!("{n} nodes, 1 job each"),
        jobs: c.one_job_per_node(10, 20),
        prologs,
        want,
    }
}

/// An array of `tasks` one-CPU tasks (`sbatch --array=1-1000` by one user for one
/// project), packed `per_node` to a node as Slurm packs them when nothing asks for
/// exclusive nodes (c5.xlarge: 4 vCPUs): task T is job 5001+T on node T / per_node.
/// Every node then carries `per_node` job ids, and all share one project and one user.
pub fn array(c: &SimCluster, tasks: usize, per_node: usize) -> Scenario {
    assert_eq!(c.nodes.len() * per_node, tasks, "the cluster is sized for the array");
    let (user, project) = ("alice", "Project0");
    let prologs: Vec<Prolog> = (0..tasks)
        .map(|t| Prolog {
            node: t / per_node,
            job: 5001 + t as u32,
            user: user.into(),
            project: project.into(),
        })
        .collect();
    let jobs = prologs.iter().map(|p| c.job(p.job, user, project, &[p.node])).collect();
    let want = (0..c.nodes.len())
        .map(|k| {
            let ids: Vec<String> = prologs
                .iter()
                .filter(|p| p.node == k)
                .map(|p| p.job.to_string())
                .collect();
            (c.instances[k].clone(), tags(project, user, &ids.join(" ")))
        })
        .collect();
    Scenario {
        name: format!("array of {tasks} tasks, {per_node} a node on {} nodes", c.nodes.len()),
        jobs,
        prologs,
        want,
    }
}

/// Removes every cost tag straight in moto (not through the throttling front), so the
/// next run starts from none.
pub fn untag_all(c: &SimCluster) {
    let client = c.moto.client();
    for chunk in c.instances.chunks(1000) {
        let ids = chunk.to_vec();
        let client = client.clone();
        block_on(async move {
            let mut call = client.delete_tags().set_resources(Some(ids));
            for key in [PROJECT, USER, JOBID] {
                call = call.tags(Tag::builder().key(key).build());
            }
            call.send()
                .await
                .unwrap_or_else(|e| panic!("moto DeleteTags: {}", error_text(&e)));
        });
    }
}
