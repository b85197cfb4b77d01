//! The quick-start demonstration (`scripts/demo.sh`): cost-tags on a throwaway local
//! cluster (private Slurm, moto as AWS, the IMDSv2 emulator), narrated. Ignored by the
//! test suite; run it with `cargo test --test demo -- --ignored --nocapture`.

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

fn wait_tags(c: &LocalCluster, what: &str) {
    std::thread::sleep(Duration::from_millis(500));
    println!("    instance {} tags ({what}):", c.instance);
    show_tags(&c.cost_tags());
}

#[test]
#[ignore = "demonstration; run by scripts/demo.sh"]
fn demo() {
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
    wait_tags(&c, &format!("job {a} running"));
    let b = submit(&c, "ctbob", &["--comment", "GpuProject", "-n1", "--wrap", "sleep 30"]).unwrap();
    c.slurm.wait_job_state(b, &["RUNNING"], Duration::from_secs(30));
    wait_tags(&c, &format!("jobs {a} and {b} share the node"));
    println!("\n  $ scancel {a}");
    c.slurm.run_root("scancel", &[a.to_string()]);
    c.slurm
        .wait_job_state(a, &["CANCELLED", "COMPLETED"], Duration::from_secs(30));
    wait_tags(&c, &format!("job {a} ended, {b} still running"));
    println!("\n  $ scancel {b}");
    c.slurm.run_root("scancel", &[b.to_string()]);
    c.slurm
        .wait_job_state(b, &["CANCELLED", "COMPLETED"], Duration::from_secs(30));
    wait_tags(&c, "node idle");
    println!("\n   node state: {} (never drained)", c.slurm.node_state());
    println!("\n== done; everything above ran on a real Slurm and the real AWS SDK, all local.\n");
}
