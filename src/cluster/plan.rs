//! From EC2's instances and Slurm's jobs to the fewest tag calls: what each instance must
//! carry (the very function cost-prolog applies to its ledger,
//! [`crate::node::tags::desired_tags`]), the difference with what the same
//! DescribeInstances answer says it carries, and those differences grouped into calls of
//! up to 1,000 instances.
//!
//! The order favours what finance reads: project and user first, one CreateTags per
//! value (ten projects are ten calls, whatever the number of instances), or one per
//! (project, user) pair when there are fewer pairs than values (ten projects and twenty
//! users, each user working for one project, are twenty calls rather than thirty: all
//! within the bucket's burst, so none waits for the pacing); then the other
//! keys, one CreateTags per tag set (a job id is usually one node's, so that is a call a
//! node, paced); then the removals, one DeleteTags per set of tags seen, each tag
//! deleted only if it still has the value seen (EC2 DeleteTags with Key and Value): a
//! tag that someone rewrote since the DescribeInstances is kept.
//!
//! CreateTags that would go to exactly the same instances are one call, placed where
//! the first of them was: a job starting on its own nodes (the usual change between two
//! passes) has its project, user and job id set in one call rather than three, which
//! is also one `squeue` asked of slurmctld rather than three (the convergence asks Slurm
//! again before each call). It changes nothing for a large convergence, where a project
//! or a user spans many jobs' instances and the project and user calls still go first.

use std::collections::{BTreeMap, HashMap};

use crate::aws::ec2::ClusterInstance;
use crate::cluster::slurm_view::SlurmView;
use crate::config::TagSettings;
use crate::model::tag_set::TagMap;
use crate::node::tags::{desired_tags, managed_keys};
use crate::slurm::scontrol::SlurmNode;

/// EC2's limit on the resources of one CreateTags or DeleteTags.
pub(crate) const MAX_IDS_PER_CALL: usize = 1000;

/// The tag ParallelCluster puts on each of its instances: `Compute`, `HeadNode`,
/// `LoginNode`.
const NODE_TYPE_TAG: &str = "parallelcluster:node-type";

/// Whether an instance may back a Slurm node: the head node and login nodes are tagged by
/// their administrators, not by jobs. An instance ParallelCluster did not label counts.
pub(crate) fn is_compute(instance: &ClusterInstance) -> bool {
    instance.tags.get(NODE_TYPE_TAG).is_none_or(|t| t == "Compute")
}

/// The Slurm nodes by address and host name: each instance is then found with a look-up
/// or two. (A search through every node for each instance made a pass over 1,000
/// instances a million comparisons.)
pub(crate) struct NodeIndex<'a> {
    nodes: &'a [SlurmNode],
    /// NodeAddr or NodeHostName -> the first node (in Slurm's order) that has it.
    by_name: HashMap<&'a str, usize>,
}

impl<'a> NodeIndex<'a> {
    pub(crate) fn new(nodes: &'a [SlurmNode]) -> NodeIndex<'a> {
        let mut by_name = HashMap::with_capacity(nodes.len() * 2);
        for (i, node) in nodes.iter().enumerate() {
            for name in [node.addr.as_str(), node.hostname.as_str()] {
                if !name.is_empty() {
                    by_name.entry(name).or_insert(i);
                }
            }
        }
        NodeIndex { nodes, by_name }
    }

    /// The Slurm node an instance is: NodeAddr or NodeHostName equal to its private IP,
    /// or to the first label of its private DNS name (the first such node in Slurm's
    /// order, should two claim it).
    pub(crate) fn node_of(&self, instance: &ClusterInstance) -> Option<&'a SlurmNode> {
        let ip = instance.private_ip.as_deref();
        let host = instance.private_dns.as_deref().and_then(|d| d.split('.').next());
        [ip, host]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .filter_map(|name| self.by_name.get(name).copied())
            .min()
            .map(|i| &self.nodes[i])
    }
}

/// The nodes running jobs that no running instance of the cluster is: a node powering
/// up, whose instance is not launched yet or not yet given to Slurm as its
/// NodeAddr/NodeHostName. Its jobs are tagged by the first pass after that. Listed, so
/// that a cluster where no node ever matches (NodeAddr is not the instance's private IP)
/// does not look in sync while nothing is tagged.
pub(crate) fn busy_nodes_without_instance(instances: &[ClusterInstance], view: &SlurmView) -> Vec<String> {
    let index = NodeIndex::new(&view.nodes);
    let matched: std::collections::BTreeSet<&str> = instances
        .iter()
        .filter_map(|i| index.node_of(i))
        .map(|n| n.name.as_str())
        .collect();
    view.ids
        .keys()
        .filter(|n| !matched.contains(n.as_str()))
        .cloned()
        .collect()
}

/// One compute instance, what it carries and what it must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub instance_id: String,
    /// Its Slurm node, if it is one (an instance that is no node must carry no cost tag).
    pub node: Option<String>,
    /// Its managed tags, as DescribeInstances gave them.
    pub seen: TagMap,
    pub desired: TagMap,
}

impl Target {
    pub(crate) fn in_sync(&self) -> bool {
        self.seen == self.desired
    }
}

/// An instance left as it is this time, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Skipped {
    pub instance_id: String,
    pub node: String,
    pub why: String,
}

/// Each compute instance's target, and the instances whose node's jobs Slurm could not
/// tell for sure. The head node and login nodes are tagged by their administrators, not
/// by jobs, and are left out.
pub(crate) fn targets(
    instances: &[ClusterInstance],
    view: &SlurmView,
    settings: &TagSettings,
) -> (Vec<Target>, Vec<Skipped>) {
    let keys = managed_keys(settings);
    let index = NodeIndex::new(&view.nodes);
    let (mut found, mut skipped) = (Vec::new(), Vec::new());
    for instance in instances {
        if !is_compute(instance) {
            continue;
        }
        let node = index.node_of(instance).map(|n| n.name.clone());
        if let Some(why) = node.as_ref().and_then(|n| view.unknown.get(n)) {
            skipped.push(Skipped {
                instance_id: instance.instance_id.clone(),
                node: node.clone().unwrap_or_default(),
                why: why.clone(),
            });
            continue;
        }
        let jobs = node
            .as_ref()
            .and_then(|n| view.jobs.get(n))
            .map_or(&[][..], Vec::as_slice);
        found.push(Target {
            instance_id: instance.instance_id.clone(),
            node,
            seen: keys
                .iter()
                .filter_map(|k| instance.tags.get(k).map(|v| (k.clone(), v.clone())))
                .collect(),
            desired: desired_tags(jobs, settings),
        });
    }
    (found, skipped)
}

/// What one call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Action {
    Create,
    /// Each tag only where it still has the value given.
    DeleteIfUnchanged,
}

/// One CreateTags or DeleteTags: the same tags on (or off) up to 1,000 instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub action: Action,
    pub tags: TagMap,
    pub instance_ids: Vec<String>,
}

/// The calls that bring every target to its desired tags, in the order of the module doc.
pub(crate) fn batches(targets: &[Target], settings: &TagSettings) -> Vec<Batch> {
    let first: Vec<&str> = [settings.project.as_str(), settings.user.as_str()]
        .into_iter()
        .filter(|k| !k.is_empty())
        .collect();
    let mut by_value: BTreeMap<(usize, TagMap), Vec<String>> = BTreeMap::new();
    let mut by_pair: BTreeMap<TagMap, Vec<String>> = BTreeMap::new();
    let mut by_set: BTreeMap<TagMap, Vec<String>> = BTreeMap::new();
    let mut removals: BTreeMap<TagMap, Vec<String>> = BTreeMap::new();
    for t in targets {
        let (mut rest, mut pair) = (TagMap::new(), TagMap::new());
        for (k, v) in &t.desired {
            if t.seen.get(k) == Some(v) {
                continue;
            }
            match first.iter().position(|f| f == k) {
                Some(rank) => {
                    by_value
                        .entry((rank, TagMap::from([(k.clone(), v.clone())])))
                        .or_default()
                        .push(t.instance_id.clone());
                    pair.insert(k.clone(), v.clone());
                }
                None => {
                    rest.insert(k.clone(), v.clone());
                }
            }
        }
        if !pair.is_empty() {
            by_pair.entry(pair).or_default().push(t.instance_id.clone());
        }
        if !rest.is_empty() {
            by_set.entry(rest).or_default().push(t.instance_id.clone());
        }
        let gone: TagMap = t
            .seen
            .iter()
            .filter(|(k, _)| !t.desired.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !gone.is_empty() {
            removals.entry(gone).or_default().push(t.instance_id.clone());
        }
    }
    // Project and user by value, or by (project, user) pair when that is fewer calls.
    let first_calls: Vec<(TagMap, Vec<String>)> = if by_pair.len() < by_value.len() {
        by_pair.into_iter().collect()
    } else {
        by_value.into_iter().map(|((_, tags), ids)| (tags, ids)).collect()
    };
    let creates = same_instances_together(first_calls.into_iter().chain(by_set));
    let mut calls = Vec::new();
    for (action, tags, ids) in creates
        .into_iter()
        .map(|(t, i)| (Action::Create, t, i))
        .chain(removals.into_iter().map(|(t, i)| (Action::DeleteIfUnchanged, t, i)))
    {
        for chunk in ids.chunks(MAX_IDS_PER_CALL) {
            calls.push(Batch {
                action,
                tags: tags.clone(),
                instance_ids: chunk.to_vec(),
            });
        }
    }
    calls
}

/// The tag sets to create, those going to the same instances joined in one, where the
/// first of them was (module doc). Their keys never clash: an instance has one desired
/// value per key, so two sets with different values of a key never go to the same
/// instances. Instance ids are listed in the targets' order in every set, so the same
/// instances are the same list.
fn same_instances_together(creates: impl Iterator<Item = (TagMap, Vec<String>)>) -> Vec<(TagMap, Vec<String>)> {
    let mut joined: Vec<(TagMap, Vec<String>)> = Vec::new();
    let mut by_ids: std::collections::HashMap<Vec<String>, usize> = std::collections::HashMap::new();
    for (tags, ids) in creates {
        match by_ids.get(&ids) {
            Some(&at) => joined[at].0.extend(tags),
            None => {
                by_ids.insert(ids.clone(), joined.len());
                joined.push((tags, ids));
            }
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::job::Job;

    const P: &str = "aws-parallelcluster-project";
    const U: &str = "aws-parallelcluster-username";
    const J: &str = "aws-parallelcluster-jobid";

    fn map(pairs: &[(&str, &str)]) -> TagMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn target(id: &str, seen: &[(&str, &str)], desired: &[(&str, &str)]) -> Target {
        Target {
            instance_id: id.into(),
            node: None,
            seen: map(seen),
            desired: map(desired),
        }
    }

    fn node(name: &str, ip: &str) -> SlurmNode {
        SlurmNode {
            name: name.into(),
            addr: ip.into(),
            hostname: name.into(),
        }
    }

    fn instance(id: &str, ip: &str, tags: &[(&str, &str)]) -> ClusterInstance {
        ClusterInstance {
            instance_id: id.into(),
            private_ip: Some(ip.into()),
            private_dns: None,
            tags: map(tags),
            ..ClusterInstance::default()
        }
    }

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
            ..ClusterInstance::default()
        };
        let index = NodeIndex::new(&nodes);
        assert_eq!(index.node_of(&inst("10.0.0.5", "")).unwrap().name, "q-dy-c5-1");
        assert_eq!(
            index
                .node_of(&inst("10.9.9.9", "ip-10-0-0-5.ec2.internal"))
                .unwrap()
                .name,
            "q-dy-c5-1"
        );
        assert!(index.node_of(&inst("1.2.3.4", "")).is_none());
    }

    #[test]
    fn two_nodes_claiming_an_instance_the_first_in_slurms_order_is_it() {
        let nodes = vec![node("a", "10.0.0.9"), node("b", "10.0.0.5"), node("c", "")];
        let mut inst = instance("i-1", "10.0.0.5", &[]);
        inst.private_dns = Some("a.ec2.internal".into());
        let index = NodeIndex::new(&nodes);
        assert_eq!(index.node_of(&inst).unwrap().name, "a", "its host name names node a");
        inst.private_dns = None;
        assert_eq!(index.node_of(&inst).unwrap().name, "b");
        inst.private_ip = Some(String::new());
        assert!(index.node_of(&inst).is_none(), "an empty address matches no node");
    }

    #[test]
    fn targets_use_the_prologs_function_shared_nodes_included() {
        let job = |id: &str, user: &str, project: &str| Job {
            id: id.into(),
            user: user.into(),
            project: project.into(),
            ..Job::default()
        };
        let mut view = SlurmView {
            nodes: vec![node("n1", "10.0.0.1"), node("n2", "10.0.0.2"), node("n3", "10.0.0.3")],
            ..SlurmView::default()
        };
        let shared = vec![job("10", "bob", "B"), job("9", "alice", "A")];
        view.jobs.insert("n1".into(), shared.clone());
        view.unknown
            .insert("n3".into(), "job 7 started while Slurm was asked".into());
        let instances = [
            instance("i-1", "10.0.0.1", &[("team", "x"), (P, "old")]),
            instance("i-2", "10.0.0.2", &[(J, "4")]),
            instance("i-3", "10.0.0.3", &[]),
            instance("i-4", "10.9.9.9", &[(U, "carol")]),
            instance("i-5", "10.0.0.1", &[(NODE_TYPE_TAG, "HeadNode"), (P, "admin")]),
        ];
        let settings = TagSettings::default();
        let (found, skipped) = targets(&instances, &view, &settings);
        assert_eq!(found.len(), 3, "the head node is left out");
        assert_eq!(found[0].desired, desired_tags(&shared, &settings));
        assert_eq!(found[0].desired[J], "9 10");
        assert_eq!(found[0].seen, map(&[(P, "old")]), "only managed keys");
        assert_eq!((found[1].node.as_deref(), found[1].desired.len()), (Some("n2"), 0));
        assert_eq!((found[2].node.as_deref(), found[2].desired.len()), (None, 0));
        assert_eq!(skipped.len(), 1);
        assert_eq!(
            (skipped[0].instance_id.as_str(), skipped[0].node.as_str()),
            ("i-3", "n3")
        );
    }

    #[test]
    fn a_busy_node_no_instance_is_listed_until_its_instance_appears() {
        let mut view = SlurmView {
            nodes: vec![node("n1", "10.0.0.1"), node("n2", "n2"), node("n3", "10.0.0.3")],
            ..SlurmView::default()
        };
        // n1 and n2 run jobs; n2 is powering up (its NodeAddr is still its name).
        view.ids.insert("n1".into(), ["5".to_string()].into());
        view.ids.insert("n2".into(), ["6".to_string()].into());
        let mut instances = vec![instance("i-1", "10.0.0.1", &[]), instance("i-3", "10.0.0.3", &[])];
        assert_eq!(busy_nodes_without_instance(&instances, &view), ["n2"]);
        // Launched, and given to Slurm.
        instances.push(instance("i-2", "10.0.0.2", &[]));
        view.nodes[1].addr = "10.0.0.2".into();
        assert!(busy_nodes_without_instance(&instances, &view).is_empty());
    }

    #[test]
    fn project_and_user_go_first_by_pair_or_value_the_rest_by_set_removals_last() {
        let targets = vec![
            target("i-1", &[], &[(P, "A"), (U, "alice"), (J, "1")]),
            target("i-2", &[], &[(P, "A"), (U, "bob"), (J, "2")]),
            target("i-3", &[(P, "A"), (U, "bob")], &[(P, "A"), (U, "bob"), (J, "3")]),
            target(
                "i-4",
                &[(P, "A"), (U, "bob"), (J, "3")],
                &[(P, "A"), (U, "bob"), (J, "3")],
            ),
            target("i-5", &[(P, "B"), (U, "x"), (J, "7")], &[]),
            target("i-6", &[(P, "B"), (U, "x"), (J, "8")], &[(P, "B")]),
        ];
        let plan = batches(&targets, &TagSettings::default());
        let shown: Vec<(Action, TagMap, Vec<&str>)> = plan
            .iter()
            .map(|b| {
                (
                    b.action,
                    b.tags.clone(),
                    b.instance_ids.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        use Action::*;
        assert_eq!(
            shown,
            vec![
                // Two (project, user) pairs are fewer calls than three values (A, alice,
                // bob); a pair's and a job id's call to the same instance: one call.
                (Create, map(&[(P, "A"), (U, "alice"), (J, "1")]), vec!["i-1"]),
                (Create, map(&[(P, "A"), (U, "bob"), (J, "2")]), vec!["i-2"]),
                (Create, map(&[(J, "3")]), vec!["i-3"]),
                (DeleteIfUnchanged, map(&[(P, "B"), (U, "x"), (J, "7")]), vec!["i-5"]),
                (DeleteIfUnchanged, map(&[(U, "x"), (J, "8")]), vec!["i-6"]),
            ]
        );
        let synced: Vec<Target> = targets.iter().filter(|t| t.in_sync()).cloned().collect();
        assert_eq!(synced.len(), 1);
        assert!(
            batches(&synced, &TagSettings::default()).is_empty(),
            "nothing to change, no call"
        );
    }

    /// Each call's tags and instances, to compare with what a test expects.
    fn tags_and_instances(plan: &[Batch]) -> Vec<(TagMap, Vec<&str>)> {
        plan.iter()
            .map(|b| (b.tags.clone(), b.instance_ids.iter().map(String::as_str).collect()))
            .collect()
    }

    #[test]
    fn every_project_with_every_user_goes_by_value() {
        // Two projects times two users: four pairs, four values; by value, one call each.
        let targets: Vec<Target> = [("A", "alice"), ("A", "bob"), ("B", "alice"), ("B", "bob")]
            .iter()
            .enumerate()
            .map(|(k, (p, u))| target(&format!("i-{k}"), &[(J, "9")], &[(P, p), (U, u), (J, "9")]))
            .collect();
        let plan = batches(&targets, &TagSettings::default());
        let shown = tags_and_instances(&plan);
        assert_eq!(
            shown,
            vec![
                (map(&[(P, "A")]), vec!["i-0", "i-1"]),
                (map(&[(P, "B")]), vec!["i-2", "i-3"]),
                (map(&[(U, "alice")]), vec!["i-0", "i-2"]),
                (map(&[(U, "bob")]), vec!["i-1", "i-3"]),
            ]
        );
    }

    #[test]
    fn calls_carry_at_most_a_thousand_instances() {
        let targets: Vec<Target> = (0..2500)
            .map(|i| target(&format!("i-{i}"), &[], &[(P, "A"), (U, "u"), (J, "5")]))
            .collect();
        let plan = batches(&targets, &TagSettings::default());
        let sizes: Vec<usize> = plan.iter().map(|b| b.instance_ids.len()).collect();
        assert_eq!(
            sizes,
            [1000, 1000, 500],
            "the same tags on the same instances: one call each"
        );
        assert_eq!(plan[0].tags, map(&[(P, "A"), (U, "u"), (J, "5")]));
    }

    #[test]
    fn a_job_starting_on_its_own_nodes_is_one_call() {
        // Job 7 starts on i-1 and i-2 (all three keys there: one call). Job 8 on i-3 and
        // job 9 on i-4, both of project B: three (project, user) pairs are fewer calls
        // than four values (A, B, bob, carol), so each job is one call with its pair.
        let targets = vec![
            target("i-1", &[], &[(P, "A"), (U, "alice"), (J, "7")]),
            target("i-2", &[], &[(P, "A"), (U, "alice"), (J, "7")]),
            target("i-3", &[], &[(P, "B"), (U, "bob"), (J, "8")]),
            target("i-4", &[], &[(P, "B"), (U, "carol"), (J, "9")]),
        ];
        let plan = batches(&targets, &TagSettings::default());
        let shown = tags_and_instances(&plan);
        assert_eq!(
            shown,
            vec![
                (map(&[(P, "A"), (U, "alice"), (J, "7")]), vec!["i-1", "i-2"]),
                (map(&[(P, "B"), (U, "bob"), (J, "8")]), vec!["i-3"]),
                (map(&[(P, "B"), (U, "carol"), (J, "9")]), vec!["i-4"]),
            ]
        );
    }
}
