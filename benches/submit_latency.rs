//! Benchmark of what the submit filter costs a user: sbatch latency (start of sbatch to
//! its job id) through a real slurmctld, without the filter and with job_submit.lua
//! calling project-check (under `timeout`, against a projects file of 10,000 users).
//! Two throwaway clusters run side by side and submissions alternate between them, so
//! both see the same machine load. Prints medians; asserts nothing about time.
//! Run: `cargo build --release --bins && cargo bench --bench submit_latency`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use cost_tags_test_support as support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use support::slurm::{ensure_test_users, parse_job_id, SlurmCluster, SlurmOptions};

const SUBMISSIONS: usize = 150;

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A cluster whose slurmctld runs the project's job_submit.lua, and its settings dir.
fn filtered_cluster() -> Option<(SlurmCluster, tempfile::TempDir)> {
    let etc = tempfile::Builder::new()
        .prefix("cost-tags-bench-etc")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(etc.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut projects = String::from("# 10,000 users x 5 projects; the submitter is the last\n");
    for u in 0..10_000 {
        let list: Vec<String> = (0..5).map(|k| format!("Project{:04}", (u * 7 + k) % 2000)).collect();
        projects.push_str(&format!("user{u:05}={}\n", list.join(", ")));
    }
    projects.push_str("ctalice = ProjectA\n");
    std::fs::write(etc.path().join("projects_list.conf"), projects).unwrap();
    let settings = etc.path().join("cost-tags.toml");
    std::fs::write(
        &settings,
        format!("projects_file = {:?}\n", etc.path().join("projects_list.conf")),
    )
    .unwrap();
    let lua =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/job_submit.lua")).unwrap();
    let cluster = SlurmCluster::start(SlurmOptions {
        job_submit_lua: Some(lua),
        daemon_env: vec![
            (
                "COST_TAGS_PROJECT_CHECK".into(),
                support::bins!().project_check.display().to_string(),
            ),
            ("COST_TAGS_CONFIG".into(), settings.display().to_string()),
        ],
        ..SlurmOptions::default()
    })?;
    Some((cluster, etc))
}

/// One sbatch as ctalice, timed from start to exit (it exits once it has the job id).
fn submit(cluster: &SlurmCluster) -> Duration {
    let args = ["-o", "/dev/null", "--hold", "--comment", "ProjectA", "--wrap", "true"];
    let started = Instant::now();
    let out = cluster.run_as("ctalice", "sbatch", &args);
    let took = started.elapsed();
    assert!(
        out.status.success() && parse_job_id(&out.stdout).is_some(),
        "sbatch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn main() {
    ensure_test_users();
    let Some(plain) = SlurmCluster::start(SlurmOptions::default()) else {
        return;
    };
    let Some((filtered, _etc)) = filtered_cluster() else {
        return;
    };
    for _ in 0..10 {
        submit(&plain);
        submit(&filtered);
    }
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..SUBMISSIONS {
        without.push(submit(&plain));
        with.push(submit(&filtered));
    }
    let (m0, m1) = (quantile(&mut without, 0.5), quantile(&mut with, 0.5));
    println!("  sbatch to job id, {SUBMISSIONS} submissions each (median / p90):");
    println!(
        "    without the filter   {} / {}",
        ms(m0),
        ms(quantile(&mut without, 0.9))
    );
    println!(
        "    with the filter      {} / {}   (job_submit.lua -> timeout -> project-check, 10,001 users)",
        ms(m1),
        ms(quantile(&mut with, 0.9))
    );
    println!("    median overhead      {}", ms(m1.saturating_sub(m0)));
}
