//! `cost-tags report --by job` rows by start time (issue 24): a saved sacct file whose
//! start order is not its job id order, sorted in memory and with a budget so small
//! (`COST_TAGS_SORT_MEMORY`) that the sort spills hundreds of runs to its temporary file;
//! every format gives the same order both ways, ties keep sacct's order, and a temporary
//! directory that cannot be used is a clear error.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const SETTINGS: &str = "tests/data/sacct/pricing.toml";

/// `lines` job runs in job id order, started at random minutes of 2024-03-01 (many
/// starting in the same minute), a few pending (no start: no row) and a few requeued (two
/// runs of one id, the second later).
fn sacct_file(path: &Path, lines: usize) {
    let mut rng = fastrand::Rng::with_seed(24);
    let mut text =
        String::from("JobID|State|User|Account|Partition|Start|End|NNodes|NCPUS|AllocTRES|NodeList|Comment\n");
    let time = |minute: u32| format!("2024-03-01T{:02}:{:02}:00", minute / 60, minute % 60);
    for id in 1000..1000 + lines {
        let start = rng.u32(0..600);
        let end = start + rng.u32(1..300);
        let run = |state: &str, start: u32, end: u32| {
            format!(
                "{id}|{state}|ctalice|physics|compute|{}|{}|1|1|billing=1,cpu=1,node=1|q-dy-c5-1|ProjectA\n",
                time(start),
                time(end)
            )
        };
        match rng.u8(..20) {
            0 => {
                let _ = writeln!(
                    text,
                    "{id}|PENDING|ctalice|physics|compute|Unknown|Unknown|1|1||None assigned|ProjectA"
                );
            }
            1 => {
                text.push_str(&run("REQUEUED", start, start + 1));
                text.push_str(&run("COMPLETED", start + 2, end + 2));
            }
            _ => text.push_str(&run("COMPLETED", start, end)),
        }
    }
    std::fs::write(path, text).unwrap();
}

fn report(file: &Path, format: &str, budget: Option<&str>, tmpdir: Option<&Path>) -> Output {
    let mut cmd = Command::new(crate::bin("cost-tags"));
    cmd.arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(SETTINGS))
        .args(["report", "--sacct-file"])
        .arg(file)
        .args([
            "--since",
            "2024-03-01",
            "--until",
            "2024-03-02",
            "--now",
            "2024-03-02T12:00:00",
            "--by",
            "job",
            "--format",
            format,
        ])
        .env_remove("COST_TAGS_CONFIG")
        .env_remove("COST_TAGS_SORT_MEMORY")
        .stdin(Stdio::null());
    if let Some(b) = budget {
        cmd.env("COST_TAGS_SORT_MEMORY", b);
    }
    if let Some(dir) = tmpdir {
        cmd.env("TMPDIR", dir);
    }
    cmd.output().expect("run cost-tags")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn rows_come_by_start_time_in_memory_and_spilled() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sacct.txt");
    sacct_file(&file, 3000);
    let csv = ok(report(&file, "csv", None, None));
    // (start, job id, state) of each row, and the same in sacct's order.
    let rows: Vec<(String, u64, String)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[7].to_string(), f[0].parse().unwrap(), f[1].to_string())
        })
        .collect();
    let mut by_id = rows.clone();
    by_id.sort_by_key(|r| r.1);
    assert_ne!(rows, by_id, "the file's start order must differ from its job id order");
    // Every row but the pending ones, each requeued run.
    let pending = std::fs::read_to_string(&file).unwrap().matches("|PENDING|").count();
    assert_eq!(
        rows.len(),
        3000 - pending + std::fs::read_to_string(&file).unwrap().matches("|REQUEUED|").count()
    );
    // By start (RFC 3339 in UTC: text order is time order); a tie in sacct's order: job id,
    // then a requeued job's runs in turn (they never start together here).
    let mut expected = by_id.clone();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(rows, expected);
    assert!(
        rows.windows(2).any(|w| w[0].0 == w[1].0),
        "some runs must start together"
    );

    // A budget of 16 KiB (the least): about 30 rows a run, so about a hundred runs are merged.
    let spilled = ok(report(&file, "csv", Some("0"), Some(dir.path())));
    assert_eq!(spilled, csv);
    for format in ["json", "table", "html"] {
        let in_memory = ok(report(&file, format, None, None));
        let spilled = ok(report(&file, format, Some("8192"), Some(dir.path())));
        assert_eq!(spilled, in_memory, "{format}");
    }
    // JSON: the same order as the CSV, and valid (the separators are written at the end).
    let doc: Value = serde_json::from_str(&ok(report(&file, "json", Some("0"), None))).unwrap();
    let ids: Vec<u64> = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, rows.iter().map(|r| r.1).collect::<Vec<_>>());
    // The temporary file has no name: nothing is left in TMPDIR.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("sacct.txt")], "{left:?}");
}

#[test]
fn a_temporary_directory_that_cannot_be_used_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sacct.txt");
    sacct_file(&file, 500);
    let missing = dir.path().join("no such directory");
    let out = report(&file, "csv", Some("0"), Some(&missing));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot create the temporary file that sorts the rows by start time")
            && stderr.contains("no such directory")
            && stderr.contains("TMPDIR"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Within the budget no file is needed: the same directory does no harm.
    ok(report(&file, "csv", None, Some(&missing)));
    // A budget that is not a number is refused, naming the variable.
    let out = report(&file, "csv", Some("32M"), None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("COST_TAGS_SORT_MEMORY"));
}
