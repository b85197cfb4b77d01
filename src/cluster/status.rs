//! `cost-tags status --cluster`, on the head node: the convergence's plan for the whole
//! cluster ([`crate::cluster::plan::targets`], from the same DescribeInstances and Slurm
//! snapshot a pass reads) compared and never applied. Exit codes as for a node's
//! `status`: 0 when every compute instance carries Slurm's tags, 1 when one does not, 2
//! when it cannot tell (EC2 or Slurm unreadable, or a node whose jobs Slurm could not tell
//! while every other instance is right).

use serde::Serialize;

use crate::aws::ec2::ClusterInstance;
use crate::cluster::plan::{busy_nodes_without_instance, targets, Skipped};
use crate::cluster::slurm_view::SlurmView;
use crate::config::TagSettings;
use crate::node::status::{difference, TagDifference};

/// An instance whose cost tags are not what Slurm's jobs say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct OutOfSync {
    pub instance_id: String,
    /// Its Slurm node; none for an instance that is no node (it must carry no cost tag).
    pub node: Option<String>,
    pub difference: Vec<TagDifference>,
}

/// What `cost-tags status --cluster --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ClusterStatus {
    pub cluster: String,
    /// Running instances of the cluster (head and login nodes included).
    pub instances: usize,
    /// Compute instances carrying exactly Slurm's tags.
    pub in_sync: usize,
    pub out_of_sync: Vec<OutOfSync>,
    /// Whose node's jobs Slurm could not tell: neither right nor wrong.
    pub unknown: Vec<Skipped>,
    /// Slurm nodes running jobs that no instance is yet
    /// ([`crate::cluster::plan::busy_nodes_without_instance`]). They do not change the
    /// verdict: a node powering up is one for minutes, and normal.
    pub nodes_without_instance: Vec<String>,
}

/// Whether the cluster is in sync, as the exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    InSync,
    OutOfSync,
    CannotTell,
}

impl ClusterStatus {
    pub(crate) fn new(
        cluster: &str,
        instances: &[ClusterInstance],
        view: &SlurmView,
        tags: &TagSettings,
    ) -> ClusterStatus {
        let (targets, unknown) = targets(instances, view, tags);
        let in_sync = targets.iter().filter(|t| t.in_sync()).count();
        let out_of_sync = targets
            .into_iter()
            .filter(|t| !t.in_sync())
            .map(|t| OutOfSync {
                difference: difference(&t.desired, &t.seen),
                instance_id: t.instance_id,
                node: t.node,
            })
            .collect();
        ClusterStatus {
            cluster: cluster.to_string(),
            instances: instances.len(),
            in_sync,
            out_of_sync,
            unknown,
            nodes_without_instance: busy_nodes_without_instance(instances, view),
        }
    }

    pub(crate) fn verdict(&self) -> Verdict {
        if !self.out_of_sync.is_empty() {
            Verdict::OutOfSync
        } else if !self.unknown.is_empty() {
            Verdict::CannotTell
        } else {
            Verdict::InSync
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::job::Job;
    use crate::slurm::scontrol::SlurmNode;

    fn instance(id: &str, ip: &str, tags: &[(&str, &str)]) -> ClusterInstance {
        ClusterInstance {
            instance_id: id.into(),
            private_ip: Some(ip.into()),
            private_dns: None,
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..ClusterInstance::default()
        }
    }

    #[test]
    fn lists_the_instances_out_of_sync_and_tells_what_it_cannot() {
        let mut view = SlurmView::default();
        for (name, ip) in [("n0", "10.0.0.1"), ("n1", "10.0.0.2"), ("n2", "10.0.0.3")] {
            view.nodes.push(SlurmNode {
                name: name.into(),
                addr: ip.into(),
                hostname: name.into(),
            });
        }
        let job = Job {
            id: "7".into(),
            user: "ann".into(),
            project: "P".into(),
            ..Job::default()
        };
        view.jobs.insert("n0".into(), vec![job]);
        let instances = [
            instance("i-0", "10.0.0.1", &[]),
            instance("i-1", "10.0.0.2", &[]),
            instance("i-h", "10.0.0.9", &[("parallelcluster:node-type", "HeadNode")]),
        ];
        let s = ClusterStatus::new("c1", &instances, &view, &TagSettings::default());
        assert_eq!((s.instances, s.in_sync), (3, 1));
        assert_eq!(s.out_of_sync.len(), 1);
        assert_eq!(s.out_of_sync[0].instance_id, "i-0");
        assert_eq!(s.out_of_sync[0].difference.len(), 3);
        assert_eq!(s.verdict(), Verdict::OutOfSync);

        view.jobs.clear();
        view.unknown.insert("n1".into(), "squeue disagreed".into());
        let s = ClusterStatus::new("c1", &instances, &view, &TagSettings::default());
        assert_eq!((s.in_sync, s.unknown.len()), (1, 1));
        assert_eq!(s.verdict(), Verdict::CannotTell);
        view.unknown.clear();
        let s = ClusterStatus::new("c1", &instances, &view, &TagSettings::default());
        assert_eq!(s.verdict(), Verdict::InSync);

        // n2 runs a job and no instance is it yet: listed, and still in sync.
        view.ids.insert("n2".into(), ["8".to_string()].into());
        let s = ClusterStatus::new("c1", &instances, &view, &TagSettings::default());
        assert_eq!(s.nodes_without_instance, ["n2"]);
        assert_eq!(s.verdict(), Verdict::InSync);
    }
}
