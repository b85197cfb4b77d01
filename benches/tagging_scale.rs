//! Benchmark of the head node's convergence (`cost-tags reconcile --cluster`, controller
//! mode) against moto behind a front that throttles CreateTags and DeleteTags as EC2
//! documents (100 tokens, 10 a second, per action): N = 200 and 1,000 instances, 10
//! projects, 20 users, one job per node, no tag at the start. Prints the time until every
//! project and user tag is right, until every tag is right, the calls made and the
//! throttled answers; then a pass with nothing to change (its tag calls and
//! DescribeInstances pages). Asserts nothing about time.
//! Run: `cargo bench --bench tagging_scale` (N from `TAGGING_SCALE_N`, e.g. `200,1000`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../tests/integration/support/mod.rs"]
#[allow(dead_code)] // the benches use a few of the test fixtures
mod support;

use std::time::{Duration, Instant};

use support::sim_cluster::{SimCluster, JOBID, PROJECT, USER};

fn main() {
    let sizes: Vec<usize> = std::env::var("TAGGING_SCALE_N")
        .unwrap_or_else(|_| "200,1000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    println!("| N | project+user right | every tag right | CreateTags | DeleteTags | throttled | in-sync pass: tag calls | DescribeInstances |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let Some(c) = SimCluster::start(n, "") else { return };
        let jobs = c.one_job_per_node(10, 20);
        c.slurm.set_jobs(&jobs);
        let want = |k: usize, key: &str| match key {
            PROJECT => format!("Project{}", k % 10),
            USER => format!("user{}", k % 20),
            _ => (1000 + k).to_string(),
        };
        c.proxy.reset_counts();
        let started = Instant::now();
        let mut child = c
            .reconcile_command(&[])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let (mut first, mut all) = (None, None);
        while all.is_none() {
            std::thread::sleep(Duration::from_millis(250));
            let got = c.cost_tags();
            let right = |keys: &[&str]| {
                c.instances
                    .iter()
                    .enumerate()
                    .all(|(k, id)| keys.iter().all(|key| got[id].get(*key) == Some(&want(k, key))))
            };
            if first.is_none() && right(&[PROJECT, USER]) {
                first = Some(started.elapsed());
            }
            if right(&[PROJECT, USER, JOBID]) {
                all = Some(started.elapsed());
            }
            // Once the pass has ended, one more look (its last call may have landed
            // after this one's reading).
            if all.is_none() && child.try_wait().unwrap().is_some() {
                let got = c.cost_tags();
                let done = c.instances.iter().enumerate().all(|(k, id)| {
                    [PROJECT, USER, JOBID]
                        .iter()
                        .all(|key| got[id].get(*key) == Some(&want(k, key)))
                });
                if !done {
                    println!("N={n}: the pass ended with tags still wrong");
                    break;
                }
                all = Some(started.elapsed());
            }
        }
        let _ = child.wait();
        let (creates, deletes, throttled) = (
            c.proxy.count("CreateTags"),
            c.proxy.count("DeleteTags"),
            c.proxy.throttled(),
        );
        c.proxy.reset_counts();
        let out = c.reconcile_command(&[]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let secs = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64()));
        println!(
            "| {n} | {} | {} | {creates} | {deletes} | {throttled} | {} | {} |",
            secs(first),
            secs(all),
            c.proxy.count("CreateTags") + c.proxy.count("DeleteTags"),
            c.proxy.count("DescribeInstances"),
        );
    }
}
