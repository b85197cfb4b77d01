//! Controller mode on a real Slurm (issue 22, "Tests"): slurmctld and slurmd with the
//! project's hooks (the compute node's prolog and epilog in controller mode, and the wake
//! hook as PrologSlurmctld and EpilogSlurmctld), `cost-tags reconcile --cluster --follow`
//! as the head node's service, moto behind a front that throttles as EC2 does.
//!
//! - sbatch tags the node's instance, woken by PrologSlurmctld (the service polls only once
//!   an hour here, so nothing else explains it); scancel removes the job's tags. The time
//!   from sbatch to the tags is printed, not asserted (speed goes in benches).
//! - Two jobs sharing the node: both in the tags, as cost-prolog writes them; ending one
//!   leaves exactly the other's.
//! - A node whose instance appears only later (powering up): its job runs, passes go on
//!   without failing and tag nothing; once the instance is launched and Slurm points the
//!   node at it, the next pass tags it.
//! - The compute node's hooks record the job in the ledger and make no AWS call at all:
//!   their EC2 endpoint and IMDS see no request, while the head node's front sees the
//!   CreateTags.

use crate::support;

use std::time::{Duration, Instant};

use support::head_node::{
    launch_instance, private_ip, set_node_host, HeadNode, ADMIN_TAGS, CLUSTER_TAG, NODE_TYPE_TAG,
};
use support::local_cluster::{tag_map, LocalCluster, LocalSetup};

const P: &str = "aws-parallelcluster-project";
const U: &str = "aws-parallelcluster-username";
const J: &str = "aws-parallelcluster-jobid";
/// Generous: the machine is shared; the measured times are printed.
const WAIT: Duration = Duration::from_secs(60);

/// A cluster in controller mode whose service passes every `poll_seconds` when nothing
/// wakes it, its compute instance tagged as ParallelCluster tags it. With `matched`,
/// Slurm's node points at that instance (as once ParallelCluster's resume program has
/// run); without, the node matches no instance yet. The head node has its instance too.
/// `more_settings` is appended to cost-tags.toml. Returns once the service's first pass
/// has ended.
fn controller_cluster(poll_seconds: u64, matched: bool, more_settings: &str) -> Option<(LocalCluster, HeadNode)> {
    let c = LocalCluster::start_with(
        &crate::bins(),
        LocalSetup {
            settings_tail: format!("[tagging]\nmode = \"controller\"\npoll_seconds = {poll_seconds}\n{more_settings}"),
            wake_hook: true,
            ..LocalSetup::default()
        },
    )?;
    let cluster = c.slurm.cluster_name().to_string();
    c.moto
        .create_tags(&c.instance, &[(CLUSTER_TAG, &cluster), (NODE_TYPE_TAG, "Compute")]);
    if matched {
        set_node_host(&c, &private_ip(&c.moto, &c.instance));
    }
    let head = HeadNode::start(&c);
    head.wait_until("the service's first pass", WAIT, || head.passes() >= 1);
    Some((c, head))
}

/// Waits until the instance's cost tags are `want`; returns how long that took from
/// `since`.
fn wait_for_tags(c: &LocalCluster, head: &HeadNode, want: &[(&str, &str)], since: Instant) -> Duration {
    let want = tag_map(want);
    head.wait_until(&format!("tags {want:?} on {}", c.instance), WAIT, || {
        c.cost_tags() == want
    });
    since.elapsed()
}

/// The summary line of the service's last pass.
fn last_pass(head: &HeadNode) -> String {
    let log = head.log();
    log.lines()
        .rev()
        .find(|l| l.contains("compute instances in sync"))
        .unwrap_or_default()
        .to_string()
}

/// Time since the wake hook last ran: the wake file's time is when it touched it.
fn since_the_hook_ran(c: &LocalCluster) -> Duration {
    let touched = std::fs::metadata(c.wake_file()).unwrap().modified().unwrap();
    std::time::SystemTime::now().duration_since(touched).unwrap_or_default()
}

/// The service ends on SIGTERM with exit 0, no pass of it failed, and the head node's
/// own cost tags are as its administrator set them.
fn stop_cleanly(c: &LocalCluster, mut head: HeadNode) {
    for (k, v) in ADMIN_TAGS {
        assert_eq!(c.moto.tags(&head.instance).get(*k).map(String::as_str), Some(*v));
    }
    let code = head.stop();
    let log = head.log();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("failed"), "{log}");
}

#[test]
fn sbatch_tags_the_nodes_instance_and_scancel_untags_it() {
    let Some((c, head)) = controller_cluster(3600, true, "") else {
        return;
    };
    let before = head.passes();
    let submitted = Instant::now();
    let a = c
        .sbatch("ctalice", &["--comment", "ProjectA", "-n1", "--wrap", "sleep 300"])
        .unwrap();
    let tagged = wait_for_tags(
        &c,
        &head,
        &[(P, "ProjectA"), (U, "ctalice"), (J, &a.to_string())],
        submitted,
    );
    eprintln!(
        "controller mode: sbatch to tagged {:.2} s (PrologSlurmctld to tagged {:.2} s)",
        tagged.as_secs_f64(),
        since_the_hook_ran(&c).as_secs_f64()
    );
    assert!(head.passes() > before, "tagged by a woken pass");
    // Its project, user and job id in one call.
    assert_eq!(head.front.count("CreateTags"), 1, "{}", head.log());
    assert!(head.log().contains("woken: next pass"), "{}", head.log());

    // Passes start at most a second apart (follow::MIN_GAP): a job cancelled at once
    // would wait for that, not for the service.
    std::thread::sleep(Duration::from_secs(1));
    let cancelled = Instant::now();
    c.slurm.run_root("scancel", &[a.to_string()]);
    let untagged = wait_for_tags(&c, &head, &[], cancelled);
    eprintln!(
        "controller mode: scancel to untagged {:.2} s (EpilogSlurmctld to untagged {:.2} s)",
        untagged.as_secs_f64(),
        since_the_hook_ran(&c).as_secs_f64()
    );
    assert_eq!(head.front.count("DeleteTags"), 1, "{}", head.log());
    // Other tags stay; the front throttled nothing.
    assert_eq!(c.moto.tags(&c.instance)[CLUSTER_TAG], head.cluster);
    assert_eq!(head.front.throttled(), 0, "{:?}", head.front.counts());
    stop_cleanly(&c, head);
}

#[test]
fn two_jobs_sharing_the_node_are_both_in_its_tags_and_one_ending_leaves_the_other() {
    let Some((c, head)) = controller_cluster(3600, true, "") else {
        return;
    };
    // Two CPUs, one each: the node is shared.
    let a = c
        .sbatch("ctalice", &["--comment", "ProjectA", "-n1", "--wrap", "sleep 300"])
        .unwrap();
    let b = c
        .sbatch("ctbob", &["--comment", "ProjectB", "-n1", "--wrap", "sleep 300"])
        .unwrap();
    c.slurm.wait_job_state(a, &["RUNNING"], WAIT);
    c.slurm.wait_job_state(b, &["RUNNING"], WAIT);
    // What cost-prolog writes for a shared node: values sorted, joined by a space.
    let both = [(P, "ProjectA ProjectB"), (U, "ctalice ctbob"), (J, &format!("{a} {b}"))];
    wait_for_tags(&c, &head, &both, Instant::now());

    c.slurm.run_root("scancel", &[a.to_string()]);
    wait_for_tags(
        &c,
        &head,
        &[(P, "ProjectB"), (U, "ctbob"), (J, &b.to_string())],
        Instant::now(),
    );
    c.slurm.run_root("scancel", &[b.to_string()]);
    wait_for_tags(&c, &head, &[], Instant::now());
    stop_cleanly(&c, head);
}

#[test]
fn a_node_whose_instance_appears_later_is_tagged_by_the_next_pass() {
    // Nothing wakes the service when an instance appears: it polls every second.
    let Some((c, head)) = controller_cluster(1, false, "") else {
        return;
    };
    let cluster = head.cluster.clone();
    let a = c
        .sbatch("ctalice", &["--comment", "ProjectA", "-n1", "--wrap", "sleep 300"])
        .unwrap();
    c.slurm.wait_job_state(a, &["RUNNING"], WAIT);
    // The node is powering up: no instance is it yet. Passes go on, none fails, and
    // nothing is tagged (not the cluster's other compute instance, not the head node).
    let seen = head.passes();
    head.wait_until("two more passes", WAIT, || head.passes() >= seen + 2);
    assert_eq!(head.front.count("CreateTags"), 0, "{:?}", head.front.counts());
    assert_eq!(c.cost_tags(), tag_map(&[]));
    // ...and both say which node waits for its instance, the cluster still in sync.
    let waiting = "1 Slurm nodes running jobs with no instance yet";
    assert!(last_pass(&head).contains(waiting), "{}", head.log());
    let status = head.status(&c);
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(
        status.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        text.contains(&format!(
            "node {}: runs jobs, no instance is it yet",
            c.slurm.node_name()
        )),
        "{text}"
    );

    // The instance is launched, tagged as ParallelCluster tags it; Slurm does not point
    // the node at it yet: still nothing to tag.
    let (id, ip) = launch_instance(&c.moto, None, &[(CLUSTER_TAG, &cluster), (NODE_TYPE_TAG, "Compute")]);
    let seen = head.passes();
    head.wait_until("two more passes", WAIT, || head.passes() >= seen + 2);
    assert_eq!(head.front.count("CreateTags"), 0, "{:?}", head.front.counts());

    // The resume program points the node at it: the next pass tags it, and only it.
    let pointed = Instant::now();
    set_node_host(&c, &ip);
    let want = tag_map(&[(P, "ProjectA"), (U, "ctalice"), (J, &a.to_string())]);
    head.wait_until("the new instance's tags", WAIT, || {
        c.moto
            .tags(&id)
            .into_iter()
            .filter(|(k, _)| k.starts_with("aws-parallelcluster-"))
            .collect::<std::collections::BTreeMap<_, _>>()
            == want
    });
    eprintln!(
        "controller mode: instance matched to tagged {:.2} s",
        pointed.elapsed().as_secs_f64()
    );
    assert_eq!(c.cost_tags(), tag_map(&[]), "the other compute instance");
    let seen = head.passes();
    head.wait_until("one more pass", WAIT, || head.passes() > seen);
    assert!(!last_pass(&head).contains(waiting), "{}", head.log());
    let status = head.status(&c);
    assert_eq!(status.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&status.stdout).contains("no instance"));
    c.slurm.run_root("scancel", &[a.to_string()]);
    stop_cleanly(&c, head);
}

/// Every key cost-tags can set, on: the partition, account and cluster tags too.
const ALL_KEYS: &str = "[tags]\npartition = \"aws-parallelcluster-partition\"\n\
    account = \"aws-parallelcluster-account\"\ncluster = \"aws-parallelcluster-cluster\"\n";

#[test]
fn the_compute_nodes_hooks_make_no_aws_call_and_the_head_node_tags_what_they_record() {
    let Some((c, head)) = controller_cluster(3600, true, ALL_KEYS) else {
        return;
    };
    let a = c
        .sbatch(
            "ctbob",
            &["--comment", "ProjectB", "-n1", "-p", "gpu", "--wrap", "sleep 300"],
        )
        .unwrap();
    c.slurm.wait_job_state(a, &["RUNNING"], WAIT);
    // The prolog ran: it recorded the job, as it saw it in its environment.
    let id = a.to_string();
    head.wait_until("the prolog", WAIT, || c.ledger()["jobs"][0]["id"] == id.as_str());
    let job = c.ledger()["jobs"][0].clone();
    let field = |name: &str| job[name].as_str().unwrap_or_default().to_string();
    // The head node writes what cost-prolog would have, from squeue and scontrol.
    let recorded: Vec<(String, String)> = [
        (P, field("project")),
        (U, field("user")),
        (J, field("id")),
        ("aws-parallelcluster-partition", field("partition")),
        ("aws-parallelcluster-account", field("account")),
        ("aws-parallelcluster-cluster", field("cluster")),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let recorded: Vec<(&str, &str)> = recorded.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        (field("project"), field("partition"), field("cluster")),
        ("ProjectB".into(), "gpu".into(), c.slurm.cluster_name().into()),
        "{job}"
    );
    wait_for_tags(&c, &head, &recorded, Instant::now());

    c.slurm.run_root("scancel", &[a.to_string()]);
    wait_for_tags(&c, &head, &[], Instant::now());
    // The epilog ran too.
    head.wait_until("the epilog", WAIT, || c.ledger()["jobs"] == serde_json::json!([]));
    assert!(head.front.count("CreateTags") >= 1, "{:?}", head.front.counts());
    assert_eq!(c.proxy.requests(), 0, "the hooks' EC2: {:?}", c.proxy.counts());
    assert_eq!(c.imds.requests(), 0, "the hooks' IMDS: {:?}", c.imds.counts());
    stop_cleanly(&c, head);
}

#[test]
fn an_arrays_tasks_sharing_the_node_carry_the_job_ids_their_prologs_record() {
    let Some((c, head)) = controller_cluster(3600, true, "") else {
        return;
    };
    let array = c
        .sbatch(
            "ctalice",
            &["--comment", "ProjectC", "-n1", "--array=1-2", "--wrap", "sleep 300"],
        )
        .unwrap();
    // Each task is a job of its own for the prolog (SLURM_JOB_ID), and for squeue's %A.
    let ids = || -> Vec<String> {
        let mut ids: Vec<String> = c.ledger()["jobs"]
            .as_array()
            .map(|jobs| {
                jobs.iter()
                    .map(|j| j["id"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(0));
        ids
    };
    head.wait_until("both tasks' prologs", WAIT, || ids().len() == 2);
    let recorded = ids().join(" ");
    assert!(recorded.contains(&array.to_string()), "{recorded}");
    wait_for_tags(
        &c,
        &head,
        &[(P, "ProjectC"), (U, "ctalice"), (J, &recorded)],
        Instant::now(),
    );
    c.slurm.run_root("scancel", &[array.to_string()]);
    wait_for_tags(&c, &head, &[], Instant::now());
    stop_cleanly(&c, head);
}
