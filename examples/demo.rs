//! The quick-start demonstration (`scripts/demo.sh`): cost-tags on a throwaway local
//! cluster (private Slurm, moto as AWS, the IMDSv2 emulator), narrated. An example rather
//! than a test, so that the demo builds the binaries, the fixtures it uses and itself in one
//! `cargo build --bins --example demo`, not the whole integration test tree; run it as
//! root with `scripts/demo.sh`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../tests/integration/support/mod.rs"]
#[allow(dead_code)] // the demo uses a few of the test fixtures
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::local_cluster::{LocalCluster, PROJECTS};

fn show_tags(tags: &BTreeMap<String, String>) {
    if tags.is_empty() {
        println!("      (no cost tags)");
    }
    for (k, v) in tags {
        println!("      {k:<30} = {v}");
    }
}

fn submit(c: &LocalCluster, user: &str, args: &[&str]) -> Option<u32> {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains(' ') || a.contains('\'') {
                format!("{a:?}")
            } else {
                a.to_string()
            }
        })
        .collect();
    println!("\n  $ sudo -u {user} sbatch {}", shown.join(" "));
    match c.sbatch(user, args) {
        Ok(id) => {
            println!("    ACCEPTED: job {id}");
            Some(id)
        }
        Err(e) => {
            println!("    REFUSED:  {e}");
            None
        }
    }
}

/// Shows the instance's tags once the prologs/epilogs have run: when its job-id tag is
/// `job_ids` (none when empty), or after 10 s.
fn wait_tags(c: &LocalCluster, what: &str, job_ids: &str) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let mut tags = c.cost_tags();
    while tags.get("aws-parallelcluster-jobid").map_or("", String::as_str) != job_ids
        && std::time::Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(100));
        tags = c.cost_tags();
    }
    println!("    instance {} tags ({what}):", c.instance);
    show_tags(&tags);
}

/// `cost-tags ARGS` as an administrator on the head node would run it (AWS is moto).
fn admin(c: &LocalCluster, args: &[&str]) {
    println!("\n  # cost-tags {}", args.join(" "));
    let mut cmd = std::process::Command::new(support::bin("cost-tags"));
    support::moto::apply_env(&mut cmd, &c.moto.endpoint());
    // The local cluster's Slurm, as on a head node: its squeue and scontrol answer.
    let out = cmd
        .envs(c.slurm.env())
        .env("COST_TAGS_CONFIG", c.opt_slurm.join("etc/cost-tags.toml"))
        .args(args)
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
    {
        println!("    {line}");
    }
}

/// Budgets on: a spent project stops taking jobs; the submit path reads only the cache.
fn budgets(c: &LocalCluster) {
    println!("\n== budgets ([budget] enabled = true; project-check reads only the refreshed cache)");
    let settings = c.opt_slurm.join("etc/cost-tags.toml");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    let cache = c.opt_slurm.join("etc/budgets.jsonl");
    // This cluster keeps no accounting (no slurmdbd): the budget is AWS's spend alone
    // (with committed budgets a refresh that cannot read sacct keeps the old cache).
    let journal = c.opt_slurm.join("etc/reservations.jsonl");
    text.push_str(&format!(
        "[budget]\nenabled = true\nenforce = \"spent\"\ncache_file = {cache:?}\nreservations_file = {journal:?}\n"
    ));
    std::fs::write(&settings, text).unwrap();
    admin(
        c,
        &[
            "budget",
            "create",
            "ProjectA",
            "--limit",
            "500",
            "--notify",
            "pi@example.org",
            "--at",
            "80",
        ],
    );
    // AWS computes spend itself; moto keeps the spend it is given.
    println!("\n  (AWS has counted 1020.00 USD of GpuProject's 1000.00 USD this month)");
    let client = support::moto::budgets_client(&c.moto.endpoint());
    support::moto::block_on(support::moto::add_budget(&client, "GpuProject", "1000", "1020.00"));
    admin(c, &["budget", "refresh"]);
    admin(c, &["budget", "list"]);
    submit(c, "ctbob", &["--comment", "GpuProject", "--wrap", "hostname"]);
    submit(c, "ctalice", &["--comment", "ProjectC", "--wrap", "hostname"]);
    submit(c, "ctalice", &["--comment", "ProjectA", "--hold", "--wrap", "hostname"]);
}

fn main() {
    println!("\n== cost-tags demo: starting a private Slurm cluster, moto (AWS) and IMDSv2 ...");
    let Some(c) = LocalCluster::start() else { return };
    println!(
        "   Slurm cluster {} (node {}), EC2 instance {} in moto\n",
        c.slurm.cluster_name(),
        c.slurm.node_name(),
        c.instance
    );
    println!(
        "== projects_list.conf\n{}",
        PROJECTS.lines().map(|l| format!("   {l}\n")).collect::<String>()
    );

    println!("== the submit filter (job_submit.lua -> project-check, inside slurmctld)");
    submit(&c, "ctalice", &["--wrap", "hostname"]);
    submit(&c, "ctalice", &["--comment", "ProjectB", "--wrap", "hostname"]);
    submit(&c, "ctbob", &["--comment", "ProjectA", "--wrap", "hostname"]);
    submit(&c, "ctalice", &["--comment=Proj", "--wrap", "hostname"]);
    submit(
        &c,
        "ctalice",
        &["--comment", "'; touch /tmp/pwned; '", "--wrap", "hostname"],
    );
    println!("    /tmp/pwned exists: {}", std::path::Path::new("/tmp/pwned").exists());

    println!("\n== tagging (prolog.d -> cost-prolog, epilog.d -> cost-epilog)");
    let a = submit(&c, "ctalice", &["--comment", "ProjectA", "-n1", "--wrap", "sleep 30"]).unwrap();
    c.slurm.wait_job_state(a, &["RUNNING"], Duration::from_secs(30));
    wait_tags(&c, &format!("job {a} running"), &a.to_string());
    let b = submit(&c, "ctbob", &["--comment", "GpuProject", "-n1", "--wrap", "sleep 30"]).unwrap();
    c.slurm.wait_job_state(b, &["RUNNING"], Duration::from_secs(30));
    wait_tags(&c, &format!("jobs {a} and {b} share the node"), &format!("{a} {b}"));
    println!("\n  $ scancel {a}");
    c.slurm.run_root("scancel", &[a.to_string()]);
    c.slurm
        .wait_job_state(a, &["CANCELLED", "COMPLETED"], Duration::from_secs(30));
    wait_tags(&c, &format!("job {a} ended, {b} still running"), &b.to_string());
    println!("\n  $ scancel {b}");
    c.slurm.run_root("scancel", &[b.to_string()]);
    c.slurm
        .wait_job_state(b, &["CANCELLED", "COMPLETED"], Duration::from_secs(30));
    wait_tags(&c, "node idle", "");
    println!("\n   node state: {} (never drained)", c.slurm.node_state());

    budgets(&c);
    println!("\n== done; everything above ran on a real Slurm and the real AWS SDK, all local.\n");
}
