//! A reader that goes away (`cost-tags report --format csv | head -1`) is not an error:
//! every command that prints exits 0 and says nothing, as ripgrep does. Before, the
//! report printed "cost-tags: Broken pipe (os error 32)" and exited 2, and commands using
//! `println!` panicked (exit 101).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn pricing() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sacct/pricing.toml")
}

/// Saved sacct output of `jobs` jobs, each with its own project: one CSV row each, far
/// more than a pipe buffer (64 KiB).
fn many_jobs(dir: &Path, jobs: u32) -> PathBuf {
    let mut text =
        String::from("JobID|State|User|Account|Partition|Start|End|NNodes|NCPUS|AllocTRES|NodeList|Comment\n");
    for job in 1..=jobs {
        text.push_str(&format!(
            "{job}|COMPLETED|ctalice|physics|compute|2024-03-01T10:00:00|2024-03-01T12:00:00|1|1|billing=1,cpu=1,node=1|q-dy-c5-1|Project{job}\n"
        ));
    }
    let path = dir.join("sacct.txt");
    std::fs::write(&path, text).unwrap();
    path
}

fn report(sacct: &Path, format: &str) -> Command {
    let mut cmd = Command::new(crate::bin("cost-tags"));
    cmd.arg("--config")
        .arg(pricing())
        .args([
            "report",
            "--since",
            "2024-03-01",
            "--until",
            "2024-03-02",
            "--now",
            "2024-03-03",
        ])
        .arg("--sacct-file")
        .arg(sacct)
        .args(["--format", format])
        .env_remove("COST_TAGS_CONFIG")
        .stdin(Stdio::null());
    cmd
}

/// Runs with stdout a pipe whose only reader is closed before the command starts: its
/// very first write fails with EPIPE.
fn with_closed_stdout(cmd: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(writer).stderr(Stdio::piped()).output().unwrap()
}

/// Reads the first line, then closes the pipe, as `| head -1` does.
fn head_1(cmd: &mut Command) -> (String, Output) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    (first, child.wait_with_output().unwrap())
}

fn assert_quiet_success(out: &Output, what: &str) {
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stderr).as_ref()),
        (Some(0), ""),
        "{what}: a closed stdout must be a quiet exit 0"
    );
}

#[test]
fn report_csv_into_head_1_exits_0_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let sacct = many_jobs(dir.path(), 5000);
    // The whole report is well over a pipe buffer, so it is cut off by the reader.
    let full = report(&sacct, "csv").output().unwrap();
    assert!(full.status.success(), "{}", String::from_utf8_lossy(&full.stderr));
    assert!(full.stdout.len() > 256 * 1024, "only {} bytes", full.stdout.len());
    let (first, out) = head_1(&mut report(&sacct, "csv"));
    assert!(first.starts_with("kind,"), "{first:?}");
    assert_quiet_success(&out, "report --format csv | head -1");
}

#[test]
fn every_printing_command_exits_0_quietly_into_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let sacct = many_jobs(dir.path(), 50);
    for format in ["csv", "table", "json"] {
        assert_quiet_success(&with_closed_stdout(&mut report(&sacct, format)), format);
    }
    // project-check --list prints with println! before: a panic, exit 101.
    std::fs::write(dir.path().join("projects_list.conf"), "alice = ProjectA, ProjectB\n").unwrap();
    let settings = dir.path().join("cost-tags.toml");
    std::fs::write(
        &settings,
        format!("projects_file = {:?}\n", dir.path().join("projects_list.conf")),
    )
    .unwrap();
    let mut list = Command::new(crate::bin("project-check"));
    list.arg("--config")
        .arg(&settings)
        .args(["--list", "alice"])
        .env_remove("COST_TAGS_CONFIG");
    assert_quiet_success(&with_closed_stdout(&mut list), "project-check --list");
    // budget list from the cache (none yet: an empty table, still printed).
    let mut budgets = Command::new(crate::bin("cost-tags"));
    budgets
        .arg("--config")
        .arg(&settings)
        .args(["budget", "list", "--cached"])
        .env_remove("COST_TAGS_CONFIG");
    let shown = budgets.output().unwrap();
    if shown.status.success() && !shown.stdout.is_empty() {
        assert_quiet_success(&with_closed_stdout(&mut budgets), "budget list --cached");
    } else {
        eprintln!(
            "budget list --cached did not print here ({:?}: {}); not tried into a closed pipe",
            shown.status.code(),
            String::from_utf8_lossy(&shown.stderr)
        );
    }
}
