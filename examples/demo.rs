//! The quick-start demonstration (`scripts/demo.sh`): cost-tags on a throwaway local
//! cluster (private Slurm, moto as AWS, the IMDSv2 emulator), narrated. An example rather
//! than a test, so that the demo builds the binaries, the fixtures it uses and itself in one
//! `cargo build --bins --example demo`, not the whole integration test tree; run it as
//! root with `scripts/demo.sh`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use cost_tags_test_support as support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::head_node::{private_ip, set_node_host, HeadNode, CLUSTER_TAG, NODE_TYPE_TAG};
use support::local_cluster::{LocalCluster, LocalSetup, PROJECTS};
use support::Bins;

/// The local node's price: its instance (moto's) is a t3.micro, priced here at a made-up
/// 36 USD an hour (a cent a second) so that the demo's jobs of a few seconds show in the
/// report; the type the report and `cost-tags job` name is the instance's own.
const PRICING: &str = r#"
[pricing]
currency = "USD"
fleet_config = ""
cache_file = ""
[pricing.instances."t3.micro"]
on_demand = 36.0
cpus = 2
[pricing.partitions.compute]
instance = "t3.micro"
[pricing.partitions.gpu]
instance = "t3.micro"
"#;

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
    let mut all = vec!["-o", "/dev/null"];
    all.extend_from_slice(args);
    let out = c.slurm.run_as(user, "sbatch", &all);
    let said = String::from_utf8_lossy(&out.stderr);
    let said = said.lines().map(|l| format!("\n              {l}")).collect::<String>();
    match support::slurm::parse_job_id(&out.stdout).filter(|_| out.status.success()) {
        Some(id) => {
            println!("    ACCEPTED: job {id}{said}");
            Some(id)
        }
        None => {
            println!("    REFUSED:{said}");
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
    let mut cmd = std::process::Command::new(&c.bins.cost_tags);
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

/// `cost-tags ARGS` as the job user `user` (no AWS, no root): what sacct lets them see.
fn as_user(c: &LocalCluster, user: &str, args: &[&str]) {
    println!("\n  $ sudo -u {user} cost-tags {}", args.join(" "));
    let settings = c.settings_path();
    let mut all = vec!["--config", settings.to_str().unwrap()];
    all.extend(args);
    let out = c.slurm.run_as(user, c.bins.cost_tags.to_str().unwrap(), &all);
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
    {
        println!("    {line}");
    }
}

/// Waits (bounded) until slurmdbd has recorded `jobs` as ended, so the report sees them.
fn wait_accounted(c: &LocalCluster, jobs: &[u32]) {
    let ids = jobs.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < until {
        let out = c.slurm.run_root(
            "sacct",
            &[
                "--allocations",
                "--noheader",
                "--parsable2",
                "--format=State",
                "-j",
                &ids,
            ],
        );
        let states = String::from_utf8_lossy(&out.stdout).to_string();
        let ended = states
            .lines()
            .filter(|l| !l.starts_with("RUNNING") && !l.starts_with("PENDING"))
            .count();
        if ended >= jobs.len() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Reports from Slurm accounting: per project and user with a chart, one job as the
/// user who ran it, and the metrics Prometheus scrapes.
fn reports(c: &LocalCluster, jobs: &[u32]) {
    println!("\n== reports (sacct from the local slurmdbd -> priced jobs; the node, a t3.micro, costs a made-up 36 USD an hour here)");
    wait_accounted(c, jobs);
    let chart = std::env::temp_dir().join(format!("cost-tags-demo-{}.svg", std::process::id()));
    let chart_arg = chart.display().to_string();
    admin(c, &["report", "--by", "project,user", "--chart", &chart_arg]);
    println!("    (chart written to {chart_arg}: open it in a browser)");
    admin(c, &["report", "--by", "job"]);
    // The controller's job: the instance timeline says which instance was its node.
    if let Some(job) = jobs.last() {
        as_user(c, "ctalice", &["job", &job.to_string()]);
    }
    admin(c, &["metrics"]);
}

/// Controller mode: the head node tags, the compute node's hooks make no AWS call.
fn controller_mode(c: &LocalCluster) -> u32 {
    println!("\n== controller mode ([tagging] mode = \"controller\": only the head node calls EC2)");
    let settings = c.settings_path();
    let mut text = std::fs::read_to_string(&settings).unwrap();
    text.push_str("[tagging]\nmode = \"controller\"\npoll_seconds = 3600\n");
    std::fs::write(&settings, text).unwrap();
    // As ParallelCluster tags and registers a compute node's instance.
    let cluster = c.slurm.cluster_name().to_string();
    c.moto
        .create_tags(&c.instance, &[(CLUSTER_TAG, &cluster), (NODE_TYPE_TAG, "Compute")]);
    set_node_host(c, &private_ip(&c.moto, &c.instance));
    println!("\n  # systemctl start cost-tags-converge   (cost-tags reconcile --cluster --follow)");
    let mut head = HeadNode::start(c);
    head.wait_until("the first pass", Duration::from_secs(60), || head.passes() >= 1);
    let compute_calls = c.proxy.count("CreateTags") + c.proxy.count("DeleteTags");
    let a = submit(
        c,
        "ctalice",
        &["--comment", "ProjectA", "-n1", "-t", "10", "--wrap", "sleep 30"],
    )
    .unwrap();
    wait_tags(c, &format!("job {a} running, tagged by the head node"), &a.to_string());
    std::thread::sleep(Duration::from_secs(3));
    println!("\n  $ scancel {a}");
    c.slurm.run_root("scancel", &[a.to_string()]);
    wait_tags(c, "job ended, untagged by the head node", "");
    println!(
        "\n    EC2 tag calls: from the compute node {}, from the head node {} (PrologSlurmctld and EpilogSlurmctld woke it)",
        c.proxy.count("CreateTags") + c.proxy.count("DeleteTags") - compute_calls,
        head.front.count("CreateTags") + head.front.count("DeleteTags"),
    );
    admin(c, &["status", "--cluster", "--cluster-name", &cluster]);
    head.stop();
    a
}

/// Budgets on: a spent project stops taking jobs; the submit path reads only the cache.
fn budgets(c: &LocalCluster) {
    println!("\n== budgets ([budget] enabled = true; project-check reads only the refreshed cache)");
    let settings = c.opt_slurm.join("etc/cost-tags.toml");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    let cache = c.opt_slurm.join("etc/budgets.jsonl");
    // Committed budgets: AWS's spend, plus what Slurm accounting says was accrued since
    // and what running and pending jobs may still cost, priced by [pricing].
    let journal = c.opt_slurm.join("etc/reservations.jsonl");
    text.push_str(&format!(
        "[budget]\nenabled = true\nenforce = \"committed\"\ncache_file = {cache:?}\nreservations_file = {journal:?}\n"
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
    let held = submit(
        c,
        "ctalice",
        &["--comment", "ProjectA", "-t", "10", "--hold", "--wrap", "hostname"],
    );
    println!("\n  (the next refresh counts the held job's worst case as COMMITTED; its reservation, made before");
    println!("   that refresh, then no longer counts: the journal holds only what no refresh has seen yet)");
    // The journal and the cache count in whole seconds, and a reservation of the refresh's
    // own second still counts (the refresh may not have seen that job): a second apart.
    std::thread::sleep(Duration::from_millis(1100));
    admin(c, &["budget", "refresh"]);
    admin(c, &["budget", "list"]);
    if let Some(id) = held {
        c.slurm.run_root("scancel", &[id.to_string()]);
    }
}

fn main() {
    println!("\n== cost-tags demo: starting a private Slurm cluster, moto (AWS) and IMDSv2 ...");
    let Some(c) = LocalCluster::start_with(
        &Bins::beside_current_exe(),
        LocalSetup {
            settings_tail: PRICING.to_string(),
            wake_hook: true,
            accounting: true,
        },
    ) else {
        return;
    };
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
    let d = controller_mode(&c);
    reports(&c, &[a, b, d]);
    println!("\n== done; everything above ran on a real Slurm and the real AWS SDK, all local.\n");
}
