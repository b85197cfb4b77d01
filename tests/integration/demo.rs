//! The quick start's first command, `scripts/demo.sh` (issue 23 item 9), run as it is
//! built there (the `demo` example) and read as a newcomer reads it: every part of the
//! product shows, with figures, and nothing that is not a failure looks like one. It
//! starts its own private Slurm cluster, moto and IMDSv2 emulator, like every fixture
//! here, and stops them; without them it fails under CI=true and skips otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The demo, built by the cargo running these tests into the same target directory and
/// profile (cargo gives integration tests the binaries' paths, not the examples'). After
/// `cargo test`, which builds the examples, this build has nothing left to do.
fn demo_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    // target/<profile>/deps/integration-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).expect("profile dir");
    let target_dir = profile_dir.parent().expect("target dir");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "-q", "--example", "demo", "--profile", profile, "--target-dir"])
        .arg(target_dir)
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build --example demo failed");
    profile_dir.join("examples/demo")
}

/// The cells of a table row, split at runs of two or more spaces (empty cells vanish).
fn cells(row: &str) -> Vec<&str> {
    row.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect()
}

#[test]
fn the_demo_shows_the_whole_product_and_nothing_that_looks_like_a_failure() {
    if !super::support::require("root (the demo starts Slurm daemons)", nix::unistd::geteuid().is_root()) {
        return;
    }
    let out = Command::new(demo_exe()).output().expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed:\n{text}");
    if text.contains("SKIPPED") {
        // Outside CI, a missing Slurm or moto: the fixture said so and nothing ran.
        return;
    }
    let has = |s: &str| assert!(text.contains(s), "the demo does not show {s:?}:\n{text}");

    // The submit filter, through slurmctld: refusals in users' words, an injection inert.
    has("You need to specify a project");
    has("You are not allowed to use the project ProjectB");
    has("/tmp/pwned exists: false");
    // Tags follow the node's jobs, and the node is never drained.
    has("aws-parallelcluster-jobid      = 1 2");
    has("aws-parallelcluster-project    = GpuProject ProjectA");
    has("(no cost tags)");
    has("node state: idle (never drained)");
    // Budgets: a spent project refused, the worst case announced, and the list's figures
    // from Slurm (ACCRUED, COMMITTED) filled in, the held job's worst case committed.
    has("The Project GpuProject does not have more budget allocated for this month.");
    has("this job may cost up to 3.00 USD");
    let last_a = text
        .lines()
        .rfind(|l| l.trim_start().starts_with("ProjectA    ProjectA"))
        .expect("a ProjectA row in budget list");
    // PROJECT BUDGET PERIOD LIMIT ACTUAL ACCRUED COMMITTED (RESERVED empty) USED FORECAST NEW JOBS
    let row = cells(last_a);
    assert_eq!(row.len(), 10, "{last_a:?}");
    assert!(row[5].ends_with(" USD"), "ACCRUED is empty: {last_a:?}");
    assert_eq!(row[6], "3.00 USD", "COMMITTED: {last_a:?}");
    // Controller mode: the head node tags, the compute node makes no EC2 call.
    has("tagged by the head node");
    has("EC2 tag calls: from the compute node 0, from the head node");
    has("in sync");
    // Reports from slurmdbd: per project and user with a chart file, per job, one job as
    // its user, and the metrics.
    has("by project, user, in USD");
    let chart = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("(chart written to "))
        .and_then(|l| l.split(": open").next())
        .map(PathBuf::from)
        .expect("the chart's path");
    let svg = std::fs::read_to_string(&chart).expect("the chart file");
    let _ = std::fs::remove_file(&chart);
    assert!(svg.contains("<svg"), "{}", chart.display());
    has("Job runs from");
    has("$ sudo -u ctalice cost-tags job");
    has("Cost in all:");
    has("cost_tags_project_committed{project=\"ProjectA\",currency=\"USD\"}");
    has("# EOF");
    has("== done");
    // Nothing reads as a failure but the refusals, which are the point.
    let alarming: Vec<&str> = text
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            [
                "fatal",
                "panic",
                "error",
                "warning",
                "failed",
                "cannot",
                "could not",
                "skipped",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .filter(|l| !l.contains("sbatch: error:"))
        .filter(|l| !l.trim_start().starts_with("# HELP"))
        .collect();
    assert!(
        alarming.is_empty(),
        "lines a newcomer reads as failures:\n{}",
        alarming.join("\n")
    );
}
