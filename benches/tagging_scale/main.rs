//! Benchmark of EC2 tagging at scale in both modes, against moto behind a front that
//! throttles CreateTags and DeleteTags as EC2 documents (100 tokens, 10 a second, per
//! action; support/aws_proxy.rs, `Ec2TagBuckets`), from no cost tag at all:
//!
//! - workloads: N nodes with one job each (10 projects, 20 users), N = 200 and 1,000,
//!   and an array of 1,000 one-CPU tasks packed 4 to a node on 250 nodes;
//! - node mode: every job's cost-prolog started at once, each node with its own IMDSv2
//!   emulator ([`node_run`]);
//! - controller mode: one `cost-tags reconcile --cluster` pass at each rate (5 calls a
//!   second, the default, and 9), then a pass with nothing to change ([`controller_run`]);
//!   the CPU each pass used, its own apart from the Slurm commands it ran
//!   ([`child_cpu`]).
//!
//! When a tag was right is told from the front's journal of what it relayed to moto
//! ([`tag_timeline`]), and what moto holds at the end is checked. Prints tables; asserts
//! nothing about time. Run: `cargo bench --bench tagging_scale` (or with `--profile dev`;
//! the tables say which build ran). Chosen by environment variables: `TAGGING_SCALE_N`
//! (default `200,1000`), `TAGGING_SCALE_ARRAY` (tasks, default `1000`, `0` for none),
//! `TAGGING_SCALE_RATES` (default `5,9`), `TAGGING_SCALE_MODES` (default
//! `node,controller`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use cost_tags_test_support as support;

mod child_cpu;
mod controller_run;
mod node_run;
mod scenario;
mod tag_timeline;

use std::time::{Duration, Instant};

use controller_run::ControllerRow;
use node_run::NodeRow;
use scenario::Scenario;
use support::sim_cluster::SimCluster;

/// Array tasks a node runs at once (one-CPU tasks on a 4-vCPU c5.xlarge).
const TASKS_PER_NODE: usize = 4;

/// The settings of every run: moto takes seconds to describe 1,000 tagged instances
/// (more than the default 10 s deadline for one EC2 call on this shared 2-core machine,
/// where EC2 itself answers in about one), so calls get a minute.
const SETTINGS: &str = "deadline = 60\n";

fn list<T: std::str::FromStr>(var: &str, default: &str) -> Vec<T> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// What was measured on one simulated cluster.
struct Measured {
    workload: String,
    /// One DescribeInstances of every instance, straight to moto, nothing else running.
    moto_describe: Duration,
    /// One `squeue -o %A|%N` of the stand-in.
    squeue: Duration,
    node: Option<NodeRow>,
    controller: Vec<ControllerRow>,
}

fn main() {
    let sizes: Vec<usize> = list("TAGGING_SCALE_N", "200,1000");
    let array: Vec<usize> = list("TAGGING_SCALE_ARRAY", "1000");
    let rates: Vec<f64> = list("TAGGING_SCALE_RATES", "5,9");
    let modes: Vec<String> = list("TAGGING_SCALE_MODES", "node,controller");
    let workloads = sizes
        .iter()
        .map(|&n| (n, None))
        .chain(array.iter().filter(|&&t| t > 0).map(|&t| (t / TASKS_PER_NODE, Some(t))));
    let mut all = Vec::new();
    for (nodes, array_tasks) in workloads {
        let Some(c) = SimCluster::start(&support::bins!(), nodes, SETTINGS) else {
            return;
        };
        let s: Scenario = match array_tasks {
            None => scenario::one_job_per_node(&c),
            Some(tasks) => scenario::array(&c, tasks, TASKS_PER_NODE),
        };
        eprintln!("== {}", s.name);
        let t = Instant::now();
        let _ = c.cost_tags();
        let moto_describe = t.elapsed();
        c.slurm.set_jobs(&s.jobs);
        let t = Instant::now();
        let out = std::process::Command::new(c.slurm.squeue())
            .args(["-h", "-a", "-o", "%A|%N"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let squeue = t.elapsed();
        let node = modes.iter().any(|m| m == "node").then(|| {
            let row = node_run::run(&c, &s);
            eprintln!(
                "   node mode: {} of {} right after 10 s",
                row.right_after_10s, row.instances
            );
            row
        });
        let mut controller = Vec::new();
        if modes.iter().any(|m| m == "controller") {
            for &rate in &rates {
                let row = controller_run::run(&c, &s, rate);
                eprintln!(
                    "   controller at {rate}/s: project+user right {}, every tag right {}, {} CreateTags, {} throttled; DescribeInstances {}; in-sync pass {} tag calls, {} pages, CPU {} (stand-ins {}); full pass CPU {} (stand-ins {})",
                    secs(row.first_keys_right),
                    secs(row.all_right),
                    row.creates,
                    row.throttled,
                    ms(row.describe),
                    row.in_sync.tag_calls,
                    row.in_sync.describe_pages,
                    ms(row.in_sync.cpu.own),
                    ms(row.in_sync.cpu.children),
                    ms(row.pass_cpu.own),
                    ms(row.pass_cpu.children)
                );
                controller.push(row);
            }
        }
        all.push(Measured {
            workload: s.name.clone(),
            moto_describe,
            squeue,
            node,
            controller,
        });
    }
    print_tables(&all);
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("not reached".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn print_tables(all: &[Measured]) {
    let build = if cfg!(debug_assertions) {
        "dev profile (unoptimized)"
    } else {
        "optimized (bench profile)"
    };
    println!("\nBuild: {build}. EC2 front: CreateTags and DeleteTags each 100 tokens, 10 a second.\n");
    println!("Node mode: every cost-prolog at once, each node with its own IMDS emulator");
    println!();
    println!("| workload | prologs | exit not 0 | instances right after 10 s | project+user right | every tag right | right at the end | ledgers owing | CreateTags | throttled | last prolog ended | prologs' CPU |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for m in all {
        if let Some(r) = &m.node {
            println!(
                "| {} | {} | {} | {} of {} | {} | {} | {} | {} | {} | {} | {:.1} s | {:.1} s |",
                m.workload,
                r.prologs,
                r.failed_prologs,
                r.right_after_10s,
                r.instances,
                secs(r.first_keys_right),
                secs(r.all_right),
                r.right_at_end,
                r.owed,
                r.creates,
                r.throttled,
                r.burst.as_secs_f64(),
                r.cpu.as_secs_f64(),
            );
        }
    }
    println!();
    println!("Controller mode: one `cost-tags reconcile --cluster` pass from no tag, then one with nothing to change");
    println!();
    println!("| workload | calls/s | project+user right | every tag right | all right in moto after | CreateTags | DeleteTags | throttled | in-sync pass: tag calls | in-sync pass: DescribeInstances pages |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for m in all {
        for r in &m.controller {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m.workload,
                r.rate,
                secs(r.first_keys_right),
                secs(r.all_right),
                if r.verified { "yes" } else { "NO" },
                r.creates,
                r.deletes,
                r.throttled,
                r.in_sync.tag_calls,
                r.in_sync.describe_pages,
            );
        }
    }
    println!();
    println!(
        "Where the time of a pass goes (times at the front; moto's and the Slurm stand-in's own times measured alone)"
    );
    println!();
    println!("| workload | calls/s | start to DescribeInstances | its answer (moto) | DescribeInstances alone (moto, idle) | answer to first tag call | calls until project+user right | moto's time in them | one squeue (stand-in) | squeue runs | whole pass |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for m in all {
        for r in &m.controller {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
                m.workload,
                r.rate,
                ms(r.until_describe),
                ms(r.describe),
                ms(m.moto_describe),
                ms(r.describe_to_first_call),
                r.first_keys_calls,
                ms(r.first_keys_moto),
                ms(m.squeue),
                r.squeue_runs,
                r.pass.as_secs_f64(),
            );
        }
    }
    println!();
    println!("Head-node CPU per pass (user + system): cost-tags itself, and the squeue/scontrol stand-ins it ran (Python and sh)");
    println!();
    println!("| workload | calls/s | full pass: cost-tags | full pass: stand-ins | in-sync pass: cost-tags | in-sync pass: stand-ins | in-sync pass: wall |");
    println!("|---|---|---|---|---|---|---|");
    for m in all {
        for r in &m.controller {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                m.workload,
                r.rate,
                ms(r.pass_cpu.own),
                ms(r.pass_cpu.children),
                ms(r.in_sync.cpu.own),
                ms(r.in_sync.cpu.children),
                ms(r.in_sync.took),
            );
        }
    }
}
