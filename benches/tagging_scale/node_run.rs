//! Node mode measured the same way: every job's cost-prolog started at once, each node
//! with its own state, cache and IMDSv2 emulator (its own instance identity, asked for
//! as on a freshly booted dynamic node), against the same throttling front.
//!
//! The prologs are spawned held (a shell waiting on stdin) and let go together, so the
//! burst starts within milliseconds, and run at nice 19 so that moto and the front,
//! which stand for AWS and its own machines, answer promptly (as in
//! tests/integration/scale_throttled.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::child_cpu::wait_with_cpu;
use crate::scenario::{untag_all, Scenario};
use crate::support::aws_proxy::ProxyMode;
use crate::support::imds::Imds;
use crate::support::moto::{apply_env, REGION};
use crate::support::sim_cluster::{SimCluster, CLUSTER, PROJECT, USER};
use crate::tag_timeline::Timeline;

/// When "after 10 s" is read: the prolog's default deadline.
pub const LOOK_AFTER: Duration = Duration::from_secs(10);

pub struct NodeRow {
    pub prologs: usize,
    pub instances: usize,
    /// Instances with every tag right 10 s after the burst started.
    pub right_after_10s: usize,
    pub first_keys_right: Option<Duration>,
    pub all_right: Option<Duration>,
    /// Instances right in moto once every prolog had ended.
    pub right_at_end: usize,
    /// Nodes whose ledger says tags are owed (left to the next hook or the node's
    /// reconcile timer).
    pub owed: usize,
    pub failed_prologs: usize,
    pub creates: u64,
    pub throttled: u64,
    /// Until the last prolog ended.
    pub burst: Duration,
    /// CPU of all the prologs together.
    pub cpu: Duration,
}

pub fn run(c: &SimCluster, s: &Scenario) -> NodeRow {
    untag_all(c);
    c.proxy.set_mode(ProxyMode::Ec2TagBuckets);
    c.proxy.reset_counts();
    c.proxy.keep_journal();
    let root = tempfile::tempdir_in(c.dir.path()).unwrap();
    let nodes: BTreeSet<usize> = s.prologs.iter().map(|p| p.node).collect();
    let node_dir = |k: usize| root.path().join(format!("node-{k}"));
    let imds: BTreeMap<usize, Imds> = nodes
        .iter()
        .map(|&k| (k, Imds::start(&c.instances[k], REGION)))
        .collect();
    for &k in &nodes {
        let dir = node_dir(k);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("cost-tags.toml"),
            format!(
                "state_dir = {:?}\ncache_dir = {:?}\n",
                dir.join("state"),
                dir.join("run")
            ),
        )
        .unwrap();
    }
    let bin = crate::support::bins!().cost_prolog;
    let mut held: Vec<Child> = s
        .prologs
        .iter()
        .map(|p| {
            let dir = node_dir(p.node);
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg("read -r go && exec \"$0\"").arg(&bin);
            apply_env(&mut cmd, &c.proxy.endpoint());
            cmd.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds[&p.node].endpoint())
                .env("COST_TAGS_CONFIG", dir.join("cost-tags.toml"))
                .env("SLURM_JOB_ID", p.job.to_string())
                .env("SLURM_JOB_USER", &p.user)
                .env("SLURM_JOB_COMMENT", &p.project)
                .env("SLURM_JOB_PARTITION", "compute")
                .env("SLURM_CLUSTER_NAME", CLUSTER)
                .env("SLURMD_NODENAME", &c.nodes[p.node])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.join(format!("prolog-{}.stderr", p.job))).unwrap(),
                ));
            // SAFETY: setpriority is async-signal-safe and touches only the child.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                    libc::setpriority(libc::PRIO_PROCESS, 0, 19);
                    Ok(())
                });
            }
            cmd.spawn().expect("spawn a held cost-prolog")
        })
        .collect();
    let mut pipes: Vec<_> = held.iter_mut().map(|c| c.stdin.take().expect("held")).collect();
    let started = Instant::now();
    for p in &mut pipes {
        p.write_all(b"go\n").expect("let a prolog go");
    }
    drop(pipes);
    let (mut cpu, mut failed) = (Duration::ZERO, 0);
    for child in &mut held {
        let used = wait_with_cpu(child);
        cpu += used.own + used.children;
        failed += usize::from(used.exit_code != Some(0));
    }
    let burst = started.elapsed();
    let timeline = Timeline::replay(&c.proxy.journal(), started, &s.want, &[PROJECT, USER]);
    let got = c.cost_tags();
    let owed = nodes
        .iter()
        .filter(|&&k| {
            std::fs::read(node_dir(k).join("state/ledger.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|l| l["owed"] == true)
        })
        .count();
    drop(imds);
    NodeRow {
        prologs: s.prologs.len(),
        instances: s.want.len(),
        right_after_10s: timeline.right_at(LOOK_AFTER),
        first_keys_right: timeline.first_keys_right,
        all_right: timeline.all_right,
        right_at_end: s.want.iter().filter(|(id, want)| got.get(*id) == Some(want)).count(),
        owed,
        failed_prologs: failed,
        creates: c.proxy.count("CreateTags"),
        throttled: c.proxy.throttled(),
        burst,
        cpu,
    }
}
