//! Controller mode measured: one `cost-tags reconcile --cluster` pass from no cost tag
//! at all, then a second pass with nothing to change, each one process whose CPU is
//! read when it ends ([`crate::child_cpu`]).

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::child_cpu::{wait_with_cpu, ChildCpu};
use crate::scenario::{untag_all, Scenario};
use crate::support::aws_proxy::ProxyMode;
use crate::support::sim_cluster::{SimCluster, PROJECT, USER};
use crate::tag_timeline::Timeline;

/// What one rate measured.
pub struct ControllerRow {
    pub rate: f64,
    pub first_keys_right: Option<Duration>,
    pub all_right: Option<Duration>,
    /// What moto holds once the pass has ended: every instance right.
    pub verified: bool,
    pub creates: u64,
    pub deletes: u64,
    pub throttled: u64,
    /// From the start of the process to the moment its DescribeInstances reached the front.
    pub until_describe: Duration,
    /// moto's time for that DescribeInstances (received to answered, at the front).
    pub describe: Duration,
    /// From moto's answer to the first tag call reaching the front (Slurm asked, plan made).
    pub describe_to_first_call: Duration,
    /// Tag calls answered until project and user were right, and moto's time in them.
    pub first_keys_calls: usize,
    pub first_keys_moto: Duration,
    pub pass: Duration,
    pub pass_cpu: ChildCpu,
    /// squeue runs during the pass.
    pub squeue_runs: usize,
    pub in_sync: InSyncPass,
}

/// The second pass, with nothing to change.
pub struct InSyncPass {
    pub tag_calls: u64,
    pub describe_pages: u64,
    pub took: Duration,
    pub cpu: ChildCpu,
}

/// Runs the pass at `rate` calls a second, from no cost tag.
pub fn run(c: &SimCluster, s: &Scenario, rate: f64) -> ControllerRow {
    untag_all(c);
    c.slurm.set_jobs(&s.jobs);
    // A full bucket at the front, as for an account whose other tools are quiet.
    c.proxy.set_mode(ProxyMode::Ec2TagBuckets);
    c.proxy.reset_counts();
    c.proxy.keep_journal();
    let squeue_before = c.slurm.calls("squeue").len();
    let log = c.dir.path().join(format!("reconcile-{}-{rate}.out", s.name));
    let started = Instant::now();
    let out = std::fs::File::create(&log).unwrap();
    let mut child = c
        .reconcile_command(&["--rate", &rate.to_string()])
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let pass_cpu = wait_with_cpu(&mut child);
    let pass = started.elapsed();
    // Exit 1: some instance was left when the pass gave up (its time limit); the timeline
    // then says "not reached", and the run goes on.
    assert!(
        matches!(pass_cpu.exit_code, Some(0 | 1)),
        "reconcile --cluster failed: {}",
        tail(&log)
    );
    let journal = c.proxy.journal();
    let timeline = Timeline::replay(&journal, started, &s.want, &[PROJECT, USER]);
    let describe = journal
        .iter()
        .find(|r| r.action == "DescribeInstances")
        .expect("the pass described the instances");
    let first_call = journal
        .iter()
        .filter(|r| r.action == "CreateTags" || r.action == "DeleteTags")
        .map(|r| r.received)
        .min()
        .unwrap_or(describe.answered);
    let first_keys_done = started + timeline.first_keys_right.unwrap_or(pass);
    let first_keys: Vec<_> = journal
        .iter()
        .filter(|r| (r.action == "CreateTags" || r.action == "DeleteTags") && r.answered <= first_keys_done)
        .collect();
    let got = c.cost_tags();
    let verified = s.want.iter().all(|(id, want)| got.get(id) == Some(want));
    ControllerRow {
        rate,
        first_keys_right: timeline.first_keys_right,
        all_right: timeline.all_right,
        verified,
        creates: c.proxy.count("CreateTags"),
        deletes: c.proxy.count("DeleteTags"),
        throttled: c.proxy.throttled(),
        until_describe: describe.received.saturating_duration_since(started),
        describe: describe.answered.saturating_duration_since(describe.received),
        describe_to_first_call: first_call.saturating_duration_since(describe.answered),
        first_keys_calls: first_keys.len(),
        first_keys_moto: first_keys.iter().map(|r| r.answered - r.received).sum(),
        pass,
        pass_cpu,
        squeue_runs: c.slurm.calls("squeue").len() - squeue_before,
        in_sync: in_sync_pass(c, &c.dir.path().join(format!("in-sync-{}-{rate}.out", s.name))),
    }
}

/// A pass right after the first: nothing to change.
fn in_sync_pass(c: &SimCluster, log: &std::path::Path) -> InSyncPass {
    c.proxy.reset_counts();
    let out = std::fs::File::create(log).unwrap();
    let started = Instant::now();
    let mut child = c
        .reconcile_command(&[])
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let cpu = wait_with_cpu(&mut child);
    assert_eq!(cpu.exit_code, Some(0), "the in-sync pass failed: {}", tail(log));
    InSyncPass {
        tag_calls: c.proxy.count("CreateTags") + c.proxy.count("DeleteTags"),
        describe_pages: c.proxy.count("DescribeInstances"),
        took: started.elapsed(),
        cpu,
    }
}

/// The end of a log, for a failure's message.
fn tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}
