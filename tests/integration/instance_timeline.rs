//! The instance timeline (issue 22, item 6), with whole processes against moto behind the
//! throttling front: each `cost-tags reconcile --cluster` records which instance backed
//! which Slurm node (type, lifecycle, zone, first and last seen, as DescribeInstances
//! says), extends the same interval while nothing changes, opens a second one when a
//! node's instance is replaced (a spot instance, as moto launches one), drops intervals
//! past the retention, skips and keeps a damaged line; a timeline that cannot be written
//! never stops the tagging; and `cost-tags job` (from a saved sacct file) lists the
//! instances of the job's nodes, or says plainly that there is no timeline.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cost_tags::model::time::{Plain, Timestamp};
use serde_json::Value;
use support::sim_cluster::{SimCluster, JOBID};

/// Prices from nowhere but the settings, so that the machine's own files play no part.
const NO_PRICE_FILES: &str = "[pricing]\nfleet_config = \"\"\ncache_file = \"\"\n";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn timeline_path(c: &SimCluster) -> PathBuf {
    c.dir.path().join("state/timeline.jsonl")
}

/// The file's lines as JSON: the header, then the intervals; an unreadable line as a string.
fn lines(path: &Path) -> (Value, Vec<Value>, Vec<String>) {
    let body = std::fs::read_to_string(path).unwrap();
    let mut all = body.lines();
    let header: Value = serde_json::from_str(all.next().unwrap()).unwrap();
    let (mut intervals, mut bad) = (Vec::new(), Vec::new());
    for line in all {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => intervals.push(v),
            Err(_) => bad.push(line.to_string()),
        }
    }
    (header, intervals, bad)
}

fn reconcile(c: &SimCluster) -> String {
    let out = c.reconcile_command(&[]).output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    stdout
}

/// Passes a second apart record different seconds (the file counts in whole seconds).
fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

fn interval_of<'a>(intervals: &'a [Value], instance: &str) -> &'a Value {
    intervals
        .iter()
        .find(|i| i["instance_id"] == instance)
        .unwrap_or_else(|| panic!("no interval of {instance}: {intervals:#?}"))
}

/// `cost-tags job JOBID --sacct-file FILE [--json]` with `settings`.
fn job(settings: &Path, job_id: &str, sacct: &Path, json: bool) -> Output {
    let mut c = Command::new(crate::bin("cost-tags"));
    c.env("COST_TAGS_CONFIG", settings)
        .env("TZ", "UTC")
        .args(["job", job_id, "--sacct-file"])
        .arg(sacct)
        .stdin(Stdio::null());
    if json {
        c.arg("--json");
    }
    c.output().unwrap()
}

/// A saved sacct line (the layout `cost-tags job --help` names) of a job running on
/// `nodes` since `start`.
fn running_job(dir: &Path, job_id: &str, nodes: &str, count: u32, start: i64) -> PathBuf {
    let path = dir.join(format!("sacct-{job_id}.txt"));
    std::fs::write(
        &path,
        format!(
            "{job_id}|RUNNING|ann|physics|q|{}|Unknown|{count}|{}|cpu={},node={count}|{nodes}|UNLIMITED|P1\n",
            Plain(Timestamp::from_second(start)),
            2 * count,
            2 * count
        ),
    )
    .unwrap();
    path
}

#[test]
fn each_pass_records_which_instance_backed_which_node_and_cost_tags_job_lists_them() {
    // Every pass rewrites the file here (by default one that only extends does so at
    // most every 300 s: the unit tests of cluster::timeline).
    let settings = format!("{NO_PRICE_FILES}[timeline]\nrewrite_seconds = 0\n");
    let Some(mut c) = SimCluster::start(&crate::bins(), 3, &settings) else {
        return;
    };
    c.slurm.set_jobs(&[c.job(1, "ann", "P1", &[0, 1])]);
    let path = timeline_path(&c);

    // The first pass opens an interval per node, with what EC2 says of the instance.
    let stdout = reconcile(&c);
    assert!(
        stdout.contains("; timeline: 3 intervals (3 opened, 0 extended)"),
        "{stdout}"
    );
    assert_eq!(c.cost_tags()[&c.instances[0]][JOBID], "1", "the tags went first");
    let (header, intervals, bad) = lines(&path);
    assert_eq!((intervals.len(), bad.len()), (3, 0), "{intervals:#?}");
    let first = header["last_pass"].as_i64().unwrap();
    for (k, id) in c.instances.iter().enumerate() {
        let i = interval_of(&intervals, id);
        let (instance_type, lifecycle, zone) = c.facts(id);
        assert_eq!(
            (i["node"].as_str(), i["instance_type"].as_str(), i["lifecycle"].as_str()),
            (Some(c.nodes[k].as_str()), Some("t3.micro"), Some("on-demand")),
            "{i}"
        );
        assert_eq!((instance_type.as_str(), lifecycle.as_str()), ("t3.micro", "on-demand"));
        assert!(!zone.is_empty());
        assert_eq!(i["zone"], zone.as_str());
        assert_eq!(
            (i["first_seen"].as_i64(), i["last_seen"].as_i64()),
            (Some(first), Some(first))
        );
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644,
        "any user's `cost-tags job` reads it"
    );

    // A second pass: the same instances on the same nodes, no new line.
    next_second();
    let stdout = reconcile(&c);
    assert!(
        stdout.contains("; timeline: 3 intervals (0 opened, 3 extended)"),
        "{stdout}"
    );
    let (header, intervals, _) = lines(&path);
    let second = header["last_pass"].as_i64().unwrap();
    assert!(second > first);
    assert_eq!(intervals.len(), 3);
    assert!(intervals
        .iter()
        .all(|i| i["first_seen"] == first && i["last_seen"] == second));

    // Node 3 powers down and up again on a spot instance: a second interval behind it,
    // and the first one ends where it was last seen.
    let old = c.instances[2].clone();
    let new = c.replace_with_spot(2);
    next_second();
    let stdout = reconcile(&c);
    assert!(
        stdout.contains("; timeline: 4 intervals (1 opened, 2 extended, 1 closed)"),
        "{stdout}"
    );
    let (header, intervals, _) = lines(&path);
    let third = header["last_pass"].as_i64().unwrap();
    let (o, n) = (interval_of(&intervals, &old), interval_of(&intervals, &new));
    assert_eq!(
        (o["node"].as_str(), o["last_seen"].as_i64()),
        (Some("q-dy-c5-3"), Some(second))
    );
    assert_eq!(
        (n["node"].as_str(), n["instance_type"].as_str(), n["lifecycle"].as_str()),
        (Some("q-dy-c5-3"), Some("c5.large"), Some("spot")),
        "{n}"
    );
    assert_eq!(
        (n["first_seen"].as_i64(), n["last_seen"].as_i64()),
        (Some(third), Some(third))
    );

    // `cost-tags job` joins the job's nodes and time with the timeline.
    let settings = c.dir.path().join("cost-tags.toml");
    let sacct = running_job(c.dir.path(), "1", "q-dy-c5-[1-2]", 2, first - 3600);
    let out = job(&settings, "1", &sacct, true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<(&str, &str)> = shown["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["node"].as_str().unwrap(), i["instance_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            ("q-dy-c5-1", c.instances[0].as_str()),
            ("q-dy-c5-2", c.instances[1].as_str())
        ],
        "{shown:#}"
    );
    assert_eq!(shown["runs"][0]["job_id"], "1", "the cost is still there: {shown:#}");
    let sacct = running_job(c.dir.path(), "2", "q-dy-c5-3", 1, first - 3600);
    let out = job(&settings, "2", &sacct, false);
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}{}", text(&out.stderr));
    assert!(table.contains("INSTANCE") && table.contains("LIFECYCLE"), "{table}");
    let row_of = |id: &str| {
        table
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} not listed:\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row_of(&old)[..5],
        ["2", "q-dy-c5-3", old.as_str(), "t3.micro", "on-demand"]
    );
    assert_eq!(row_of(&new)[..5], ["2", "q-dy-c5-3", new.as_str(), "c5.large", "spot"]);

    // A damaged line is skipped, counted and kept; the others are used and extended.
    let mut body = std::fs::read_to_string(&path).unwrap();
    body.push_str("{\"instance_id\":\"i-cut\",\"node\n");
    // An interval last seen 401 days ago goes at the next rewrite.
    body.push_str(&format!(
        "{{\"instance_id\":\"i-0ld\",\"node\":\"q-dy-c5-1\",\"instance_type\":\"t3.micro\",\"lifecycle\":\"on-demand\",\"zone\":\"us-east-1a\",\"first_seen\":{},\"last_seen\":{}}}\n",
        first - 402 * 86_400,
        first - 401 * 86_400
    ));
    std::fs::write(&path, body).unwrap();
    next_second();
    let stdout = reconcile(&c);
    assert!(
        stdout.contains(
            "; timeline: 4 intervals (0 opened, 3 extended, 1 dropped after the retention, 1 unreadable lines skipped and kept)"
        ),
        "{stdout}"
    );
    let (_, intervals, bad) = lines(&path);
    assert_eq!(bad, ["{\"instance_id\":\"i-cut\",\"node"]);
    assert_eq!(intervals.len(), 4);
    assert!(intervals.iter().all(|i| i["instance_id"] != "i-0ld"));
    let out = job(
        &settings,
        "1",
        &running_job(c.dir.path(), "1", "q-dy-c5-[1-2]", 2, first),
        false,
    );
    assert!(
        text(&out.stdout).contains("instances: 1 unreadable lines of the timeline skipped."),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_timeline_that_cannot_be_written_never_stops_the_tags() {
    let Some(c) = SimCluster::start(&crate::bins(), 2, "") else {
        return;
    };
    let blocked = c.dir.path().join("blocked");
    std::fs::write(&blocked, "a file where a directory should be").unwrap();
    let settings = c.dir.path().join("cost-tags.toml");
    let mut body = std::fs::read_to_string(&settings).unwrap();
    body.push_str(&format!("[timeline]\nfile = {:?}\n", blocked.join("timeline.jsonl")));
    std::fs::write(&settings, body).unwrap();
    c.slurm.set_jobs(&[c.job(1, "ann", "P1", &[0])]);
    let stdout = reconcile(&c);
    assert!(stdout.contains("; timeline NOT written: "), "{stdout}");
    assert_eq!(c.cost_tags()[&c.instances[0]][JOBID], "1");
}

#[test]
fn without_a_timeline_cost_tags_job_says_so_and_shows_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cost-tags.toml");
    std::fs::write(
        &settings,
        format!("state_dir = {:?}\n{NO_PRICE_FILES}", dir.path().join("state")),
    )
    .unwrap();
    let sacct = running_job(dir.path(), "5", "q-dy-c5-1", 1, 1_700_000_000);
    let out = job(&settings, "5", &sacct, false);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("Cost so far"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "instances: no instance timeline at {}",
            dir.path().join("state/timeline.jsonl").display()
        )),
        "{stdout}"
    );
    let out = job(&settings, "5", &sacct, true);
    assert_eq!(out.status.code(), Some(0));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["instances"], serde_json::json!([]));
    assert!(shown["no_instances_because"]
        .as_str()
        .unwrap()
        .contains("node-mode install"));
}
