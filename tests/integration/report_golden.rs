//! Golden tests of `cost-tags report` on hand-checked sacct samples (tests/data/sacct/):
//! shared nodes, exclusive jobs, arrays, het jobs, requeues, window edges, running jobs,
//! unpriced nodes and malformed lines. Every expected number is worked out in the
//! comments from the sample and `pricing.toml`:
//!
//!   c5.xlarge: 4 CPUs, 0.36/h on demand (0.0001 per second), 0.18/h spot
//!   g4dn.2xlarge: 8 CPUs, 2 GPUs, 1.80/h
//!   partitions: compute = c5 on demand, spot = c5 spot, gpu = nodes `gpu-*-g4-*` only,
//!   debug = not priced.
//!
//! Window of most tests: --since 2024-03-01 --until 2024-03-02 (= up to 03-03 00:00),
//! --now 2024-03-02T12:00:00, so the window really ends at 03-02 12:00.
//!
//! | job   | what                       | seconds in window | CPUs | share     | cost               |
//! |-------|----------------------------|-------------------|------|-----------|--------------------|
//! | 101   | A, shares q-dy-c5-1        | 7200 (10-12h)     | 1    | 1/4       | 7200*.0001/4 = .18 |
//! | 102   | B, shares q-dy-c5-1        | 3600              | 2    | 2/4       | .18                |
//! | 103   | A, exclusive, 2 nodes      | 1800              | 8    | 2 x 1     | 1800*.0001*2 = .36 |
//! | 104_1 | B, array task, spot        | 3600              | 4    | 1         | 3600*.00005 = .18  |
//! | 104_2 | B, array task, spot        | 600               | 4    | 1         | 600*.00005 = .03   |
//! | 104_[3-5] | pending array rest     | -                 |      |           | not run            |
//! | 105+0 | A, het component, c5       | 3600              | 4    | 1         | .36                |
//! | 105+1 | A, het component, g4 GPU   | 3600              | 2 +1 GPU | max(2/8, 1/2) = 1/2 | 1.80/2 = .90 |
//! | 106   | C, requeued: 1st run       | 1200              | 2    | 1/2       | 1200*.0001/2 = .06 |
//! | 106   | C, 2nd run                 | 3600              | 2    | 1/2       | .18                |
//! | 107   | A, started 02-29 23:00     | 3600 (clipped)    | 4    | 1         | .36                |
//! | 109   | B, RUNNING since 03-02 10h | 7200 (to now)     | 1    | 1/4       | .18                |
//! | 110   | C, 03-01 23h - 03-02 01h   | 7200 (3600 a day) | 4    | 1         | .72 (.36 a day)    |
//! | 111   | C, partition debug         | 1800              | 1    | -         | unpriced           |
//! | 112   | B, gpu node gpu-dy-p3-1    | 3600              | 1    | -         | unpriced           |
//! | 113   | A, cancelled before start  | -                 |      |           | not run            |
//! | 114.batch, garbage, 25:00, End<Start | -             |      |           | 4 skipped lines    |
//! | 117   | no comment -> (none)       | 3600              | 1    | 1/4       | .09                |
//! | 118   | A, 02-20, outside window   | -                 |      |           | not run            |
//!
//! Per project (jobs, elapsed s, CPU s, charged node s, cost, unpriced):
//!   A: 101 103 105+0 105+1 107 = 5, 7200+1800+3600+3600+3600 = 19800,
//!      7200+14400+14400+7200+14400 = 57600, 1800+3600+3600+1800+3600 = 14400, 2.16, 0
//!   C: 106 106 110 111 = 4, 1200+3600+7200+1800 = 13800, 2400+7200+28800+1800 = 40200,
//!      600+1800+7200 = 9600, .06+.18+.72 = .96, 1
//!   B: 102 104_1 104_2 109 112 = 5, 3600+3600+600+7200+3600 = 18600,
//!      7200+14400+2400+7200+3600 = 34800, 1800+3600+600+1800 = 7800, .18+.18+.03+.18 = .57, 1
//!   (none): 117 = 1, 3600, 3600, 900, .09, 0
//!   total: 15, 55800, 136200, 32700, 3.78, 2

use crate::support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cost_tags::slurm::sacct::FIELDS;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sacct")
        .join(name)
}

fn report_with(config: &Path, file: &str, args: &[&str]) -> Output {
    Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(config)
        .args(["report", "--sacct-file"])
        .arg(data(file))
        .args(args)
        .env_remove("COST_TAGS_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run cost-tags")
}

const WINDOW: [&str; 6] = [
    "--since",
    "2024-03-01",
    "--until",
    "2024-03-02",
    "--now",
    "2024-03-02T12:00:00",
];

fn report(args: &[&str]) -> Output {
    let mut all: Vec<&str> = WINDOW.to_vec();
    all.extend_from_slice(args);
    report_with(&data("pricing.toml"), "month.txt", &all)
}

fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok_stdout(&report(&all))).unwrap()
}

#[test]
fn csv_per_project_matches_the_hand_computed_figures() {
    let out = report(&["--format", "csv"]);
    assert_eq!(
        ok_stdout(&out),
        "kind,period_start,period_end,project,jobs,elapsed_seconds,cpu_seconds,charged_node_seconds,cost,unpriced_jobs,currency,wasted_cost,wasted_unknown_jobs\n\
         group,2024-03-01T00:00:00Z,2024-03-02T12:00:00Z,ProjectA,5,19800,57600,14400.000,2.160000,0,USD,,5\n\
         group,2024-03-01T00:00:00Z,2024-03-02T12:00:00Z,ProjectC,4,13800,40200,9600.000,0.960000,1,USD,,3\n\
         group,2024-03-01T00:00:00Z,2024-03-02T12:00:00Z,ProjectB,5,18600,34800,7800.000,0.570000,1,USD,,4\n\
         group,2024-03-01T00:00:00Z,2024-03-02T12:00:00Z,(none),1,3600,3600,900.000,0.090000,0,USD,,1\n\
         total,2024-03-01T00:00:00Z,2024-03-02T12:00:00Z,,15,55800,136200,32700.000,3.780000,2,USD,,13\n"
    );
    // Beside CSV, what is not in the sums goes to stderr.
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(notes.contains("2 job runs could not be priced"), "{notes}");
    assert!(notes.contains("4 lines could not be used"), "{notes}");
    assert!(notes.contains("3 job records had no run time"), "{notes}");
}

#[test]
fn every_day_splits_runs_that_cross_midnight() {
    // Day 1 (03-01): C = 106 106 111 and 110's first hour: 1200+3600+1800+3600 = 10200 s,
    //   CPU 2400+7200+1800+14400 = 25800, node s 600+1800+3600 = 6000, .06+.18+.36 = .60.
    //   B = 102 104_1 104_2 112: 3600+3600+600+3600 = 11400 s, CPU 7200+14400+2400+3600 =
    //   27600, node s 1800+3600+600 = 6000, .18+.18+.03 = .39.
    // Day 2 (03-02, up to now = 12:00): C = 110's second hour (3600 s, .36),
    //   B = 109 running 10:00-12:00 (7200 s, 1 CPU, 1800 node s, .18).
    // Job 110 counts once in C's group_total (4 jobs), once in each day.
    let out = report(&["--format", "csv", "--by", "project,user", "--every", "day"]);
    assert_eq!(
        ok_stdout(&out),
        "kind,period_start,period_end,project,user,jobs,elapsed_seconds,cpu_seconds,charged_node_seconds,cost,unpriced_jobs,currency,wasted_cost,wasted_unknown_jobs\n\
         group,2024-03-01T00:00:00Z,2024-03-02T00:00:00Z,ProjectA,ctalice,5,19800,57600,14400.000,2.160000,0,USD,,5\n\
         group,2024-03-01T00:00:00Z,2024-03-02T00:00:00Z,ProjectC,ctcarol,4,10200,25800,6000.000,0.600000,1,USD,,3\n\
         group,2024-03-01T00:00:00Z,2024-03-02T00:00:00Z,ProjectB,ctbob,4,11400,27600,6000.000,0.390000,1,USD,,3\n\
         group,2024-03-01T00:00:00Z,2024-03-02T00:00:00Z,(none),ctcarol,1,3600,3600,900.000,0.090000,0,USD,,1\n\
         group,2024-03-02T00:00:00Z,2024-03-02T12:00:00Z,ProjectC,ctcarol,1,3600,14400,3600.000,0.360000,0,USD,,1\n\
         group,2024-03-02T00:00:00Z,2024-03-02T12:00:00Z,ProjectB,ctbob,1,7200,7200,1800.000,0.180000,0,USD,,1\n\
         group_total,2024-03-01T00:00:00Z,2024-03-02T12:00:00Z,ProjectA,ctalice,5,19800,57600,14400.000,2.160000,0,USD,,5\n\
         group_total,2024-03-01T00:00:00Z,2024-03-02T12:00:00Z,ProjectC,ctcarol,4,13800,40200,9600.000,0.960000,1,USD,,3\n\
         group_total,2024-03-01T00:00:00Z,2024-03-02T12:00:00Z,ProjectB,ctbob,5,18600,34800,7800.000,0.570000,1,USD,,4\n\
         group_total,2024-03-01T00:00:00Z,2024-03-02T12:00:00Z,(none),ctcarol,1,3600,3600,900.000,0.090000,0,USD,,1\n\
         period_total,2024-03-01T00:00:00Z,2024-03-02T00:00:00Z,,,14,45000,114600,27300.000,3.240000,2,USD,,12\n\
         period_total,2024-03-02T00:00:00Z,2024-03-02T12:00:00Z,,,2,10800,21600,5400.000,0.540000,0,USD,,2\n\
         total,2024-03-01T00:00:00Z,2024-03-02T12:00:00Z,,,15,55800,136200,32700.000,3.780000,2,USD,,13\n"
    );
}

/// Issue 24, item 4: the wasted cost per group, from a saved file whose header names
/// TotalCPU and ElapsedRaw (tests/data/sacct/jobs-efficiency.txt, each job worked out in
/// report_jobs.rs): the sum over the group's runs of cost x (1 - CPU efficiency), for the
/// runs whose CPU efficiency is known; the others are counted, not guessed.
///
/// | project  | runs                                   | wasted          | unknown        |
/// |----------|----------------------------------------|-----------------|----------------|
/// | ProjectA | 201 (.72 x .25 = .18), 203 (GPU)       | .18             | 1 (GPU)        |
/// | ProjectB | 202 (.18 x .9 = .162), 204 (no TotalCPU)| .162           | 1              |
/// | ProjectC | 205 (.36 x .55 = .198)                 | .198            | 0              |
/// | total    |                                        | .54 (as --by job's total) | 2 (1 GPU) |
///
/// A headerless saved file is read with the fields of earlier releases (no TotalCPU):
/// every run unknown, wasted_cost null, no WASTED column in the table.
#[test]
fn wasted_cost_per_group_from_the_cpu_efficiency() {
    let doc: Value = serde_json::from_str(&ok_stdout(&report_with(
        &data("pricing.toml"),
        "jobs-efficiency.txt",
        &[WINDOW.as_slice(), &["--format", "json"]].concat(),
    )))
    .unwrap();
    let group = |name: &str| {
        let g = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"]["project"] == name)
            .unwrap_or_else(|| panic!("{name}: {doc:#}"));
        (g["wasted_cost"].clone(), g["wasted_unknown_jobs"].clone())
    };
    assert_eq!(group("ProjectA"), (0.18.into(), 1.into()), "{doc:#}");
    assert_eq!(group("ProjectB"), (0.162.into(), 1.into()), "{doc:#}");
    assert_eq!(group("ProjectC"), (0.198.into(), 0.into()), "{doc:#}");
    assert_eq!(doc["total"]["wasted_cost"], 0.54, "{doc:#}");
    assert_eq!(doc["total"]["wasted_unknown_jobs"], 2, "{doc:#}");
    assert_eq!(doc["total"]["wasted_unknown_gpu_jobs"], 1, "{doc:#}");
    let out = report_with(
        &data("pricing.toml"),
        "jobs-efficiency.txt",
        &[WINDOW.as_slice(), &["--format", "csv"]].concat(),
    );
    let csv = ok_stdout(&out);
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",currency,wasted_cost,wasted_unknown_jobs"),
        "{csv}"
    );
    assert!(csv.contains(",ProjectB,") && csv.contains(",USD,0.162000,1\n"), "{csv}");
    assert!(csv.ends_with(",USD,0.540000,2\n"), "{csv}");
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(
        notes.contains("2 priced job runs are not in the wasted cost, their CPU efficiency unknown: 1 GPU jobs"),
        "{notes}"
    );
    let table = ok_stdout(&report_with(&data("pricing.toml"), "jobs-efficiency.txt", &WINDOW));
    assert!(table.contains("UNPRICED  WASTED"), "{table}");
    let total: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("TOTAL"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(total[total.len() - 2..], ["2.25", "0.54"], "{table}");
    // month.txt has no header naming TotalCPU: nothing known, nothing claimed.
    let month = json(&[]);
    assert_eq!(month["total"]["wasted_cost"], Value::Null, "{month:#}");
    assert!(!ok_stdout(&report(&[])).contains("WASTED"));
}

/// Issue 11, item 1: with project_source = "account", mallory's comment holds a newline
/// and, after it, a whole sacct line: a 500-node day charged to account chem. The report
/// runs sacct itself (the stand-in of tests/support/src/slurm_standin.rs, first on PATH, which
/// prints the fields asked for as Slurm does, free text raw).
#[test]
fn a_newline_in_a_comment_cannot_forge_a_charge() {
    let slurm = support::slurm_standin::SlurmStandin::new();
    let forged = "9999999|COMPLETED|ctvictim|chem|compute||2024-03-01T00:00:00|2024-03-02T00:00:00|500|2000|\
                  billing=2000,cpu=2000,node=500|q-dy-c5-[1-500]|";
    let mut mallory = support::slurm_standin::job("301", "ctmallory", &["q-dy-c5-1"]);
    mallory["comment"] = format!("x\n{forged}").into();
    let mut bob = support::slurm_standin::job("302", "ctbob", &["q-dy-c5-2"]);
    bob["account"] = "chem".into();
    slurm.set_jobs(&[mallory.clone(), bob.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("account.toml");
    let pricing = std::fs::read_to_string(data("pricing.toml")).unwrap();
    std::fs::write(
        &config,
        pricing.replace("project_source = \"comment\"", "project_source = \"account\""),
    )
    .unwrap();
    let run = |config: &Path| {
        Command::new(crate::bin("cost-tags"))
            .arg("--config")
            .arg(config)
            .arg("report")
            .args(WINDOW)
            .args(["--format", "json"])
            .env("PATH", slurm.path_env())
            .env_remove("COST_TAGS_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // One CPU of four for an hour each: .09 per project.
    let doc: Value = serde_json::from_str(&ok_stdout(&run(&config))).unwrap();
    assert_eq!(cost_of(&doc["groups"], "project", "physics"), 0.09, "{doc}");
    assert_eq!(cost_of(&doc["groups"], "project", "chem"), 0.09, "{doc}");
    assert_eq!(doc["total"]["jobs"], 2, "{doc}");
    let format = &slurm.calls("sacct")[0];
    assert!(
        format
            .iter()
            .any(|a| a == "--format=JobID,State,User,Account,Partition,Start,End,NNodes,NCPUS,AllocTRES,NodeList,TotalCPU,ElapsedRaw"),
        "{format:?}"
    );

    // project_source = comment: the comment is asked for, last, and a well-formed line
    // after a newline is possible. It names a job sacct's bare list of ids (asked first)
    // does not have: skipped, with a warning. A second line that is no record at all
    // (two fields) is skipped too.
    let forged = "9999999|COMPLETED|ctvictim|chem|compute|2024-03-01T00:00:00|2024-03-02T00:00:00|500|2000|\
                  billing=2000,cpu=2000,node=500|q-dy-c5-[1-500]|00:00:00|86400|VictimProject";
    mallory["comment"] = format!("ProjectA\n{forged}\nProjectB|COMPLETED").into();
    bob["comment"] = "ProjectB".into();
    slurm.set_jobs(&[mallory, bob]);
    let doc: Value = serde_json::from_str(&ok_stdout(&run(&data("pricing.toml")))).unwrap();
    assert_eq!(cost_of(&doc["groups"], "project", "ProjectA"), 0.09, "{doc}");
    assert_eq!(cost_of(&doc["groups"], "project", "ProjectB"), 0.09, "{doc}");
    assert_eq!(doc["total"]["jobs"], 2, "{doc}");
    let skipped = doc["skipped"].to_string();
    assert!(skipped.contains("job 9999999: not in sacct's list of job ids"), "{doc}");
    assert!(skipped.contains("2 fields instead of 14"), "{doc}");
    assert!(doc["warnings"].to_string().contains("newlines"), "{doc}");
    let calls = slurm.calls("sacct");
    let formats: Vec<&String> = calls[1..]
        .iter()
        .filter_map(|c| c.iter().find(|a| a.starts_with("--format=")))
        .collect();
    assert_eq!(
        formats,
        [
            "--format=JobID",
            "--format=JobID,State,User,Account,Partition,Start,End,NNodes,NCPUS,AllocTRES,NodeList,TotalCPU,ElapsedRaw,Comment"
        ]
    );
}

fn cost_of(groups: &Value, key: &str, name: &str) -> f64 {
    groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"][key] == name)
        .unwrap_or_else(|| panic!("no group {key}={name} in {groups:#}"))["cost"]
        .as_f64()
        .unwrap()
}

#[test]
fn json_by_partition_lists_unpriced_jobs_and_skipped_lines() {
    let doc = json(&["--by", "partition"]);
    assert_eq!(doc["format"], "cost-tags-report/1");
    assert_eq!(doc["since"], "2024-03-01T00:00:00Z");
    assert_eq!(doc["until"], "2024-03-02T12:00:00Z");
    assert_eq!(doc["by"], serde_json::json!(["partition"]));
    // compute: 101 102 103 105+0 106 106 107 109 110 117
    //   = .18+.18+.36+.36+.06+.18+.36+.18+.72+.09 = 2.67
    // gpu: 105+1 = .90 (112 unpriced); spot: 104_1 + 104_2 = .21; debug: 111 unpriced.
    let groups = &doc["groups"];
    assert_eq!(cost_of(groups, "partition", "compute"), 2.67);
    assert_eq!(cost_of(groups, "partition", "gpu"), 0.9);
    assert_eq!(cost_of(groups, "partition", "spot"), 0.21);
    assert_eq!(cost_of(groups, "partition", "debug"), 0.0);
    assert_eq!(doc["total"]["cost"], 3.78);
    assert_eq!(doc["total"]["jobs"], 15);
    assert_eq!(doc["total"]["unpriced_jobs"], 2);
    assert_eq!(doc["unpriced"]["jobs"], 2);
    let reasons = doc["unpriced"]["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 2);
    assert_eq!(reasons[0]["examples"], serde_json::json!(["111"]));
    assert_eq!(reasons[0]["elapsed_seconds"], 1800);
    assert!(reasons[1]["reason"].as_str().unwrap().contains("partition \"gpu\""));
    assert_eq!(reasons[1]["examples"], serde_json::json!(["112"]));
    assert_eq!(doc["skipped"]["lines"], 4);
    let first: Vec<u64> = doc["skipped"]["first"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["line"].as_u64().unwrap())
        .collect();
    assert_eq!(first, [18, 19, 21, 22]);
    assert!(doc["skipped"]["first"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("114.batch"));
    assert_eq!(doc["not_run"], 3);
    assert_eq!(doc["lines"], 24);
    assert_eq!(doc["warnings"], serde_json::json!([]));
}

#[test]
fn window_edges_clip_jobs() {
    // --until 2024-03-01 means up to 03-02 00:00: 109 (starts 03-02) has no time in it
    // and 110 keeps one hour: 3.78 - .18 - .36 = 3.24.
    let out = report_with(
        &data("pricing.toml"),
        "month.txt",
        &[
            "--since",
            "2024-03-01",
            "--until",
            "2024-03-01",
            "--now",
            "2024-03-02T12:00:00",
            "--format",
            "json",
        ],
    );
    let doc: Value = serde_json::from_str(&ok_stdout(&out)).unwrap();
    assert_eq!(doc["until"], "2024-03-02T00:00:00Z");
    assert_eq!(doc["total"]["cost"], 3.24);
    assert_eq!(doc["not_run"], 4);

    // 10:30 to 13:15 on 03-01: 101 keeps 5400 s (1 CPU: 5400*.0001/4 = .135),
    // 102 keeps 1800 s (2 CPUs: 1800*.0001/2 = .09), 103 keeps 900 s on 2 whole nodes
    // (900*.0001*2 = .18). A = .135 + .18 = .315, B = .09. Every other record with a start
    // has no time in the window: 15 not run.
    let out = report_with(
        &data("pricing.toml"),
        "month.txt",
        &[
            "--since",
            "2024-03-01T10:30",
            "--until",
            "2024-03-01T13:15",
            "--now",
            "2024-03-02T12:00:00",
            "--format",
            "json",
        ],
    );
    let doc: Value = serde_json::from_str(&ok_stdout(&out)).unwrap();
    assert_eq!(cost_of(&doc["groups"], "project", "ProjectA"), 0.315);
    assert_eq!(cost_of(&doc["groups"], "project", "ProjectB"), 0.09);
    assert_eq!(doc["total"]["elapsed_seconds"], 5400 + 1800 + 900);
    assert_eq!(doc["total"]["cost"], 0.405);
    assert_eq!(doc["not_run"], 15);
}

#[test]
fn running_jobs_are_charged_up_to_now() {
    // 109 runs from 03-02 10:00 with End=Unknown: at now = 11:00 it has run 3600 s
    // (1 CPU: .09), at 12:00 7200 s (.18).
    let at = |now: &str| {
        let out = report_with(
            &data("pricing.toml"),
            "month.txt",
            &[
                "--since",
                "2024-03-02",
                "--until",
                "2024-03-02",
                "--now",
                now,
                "--format",
                "json",
                "--by",
                "project,user",
            ],
        );
        let doc: Value = serde_json::from_str(&ok_stdout(&out)).unwrap();
        let bob = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"]["user"] == "ctbob")
            .unwrap()
            .clone();
        (bob["elapsed_seconds"].as_i64().unwrap(), bob["cost"].as_f64().unwrap())
    };
    assert_eq!(at("2024-03-02T11:00:00"), (3600, 0.09));
    assert_eq!(at("2024-03-02T12:00:00"), (7200, 0.18));
}

#[test]
fn top_keeps_the_most_expensive_groups() {
    // A 2.16 and C .96 stay; B .57 + (none) .09 = .66 in 6 jobs become (other).
    let doc = json(&["--top", "2"]);
    let groups = doc["groups"].as_array().unwrap();
    let names: Vec<&str> = groups.iter().map(|g| g["group"]["project"].as_str().unwrap()).collect();
    assert_eq!(names, ["ProjectA", "ProjectC", "(other)"]);
    assert_eq!(groups[2]["cost"], 0.66);
    assert_eq!(groups[2]["jobs"], 6);
    assert_eq!(doc["other_groups"], 2);
    assert_eq!(doc["total"]["cost"], 3.78);
}

#[test]
fn table_shows_totals_and_notes() {
    let text = ok_stdout(&report(&["--by", "project,user", "--every", "day"]));
    assert!(
        text.starts_with("Spend from 2024-03-01 to 2024-03-02 12:00 UTC, by project, user, per day, in USD\n"),
        "{text}"
    );
    let line = |start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(line("TOTAL"), ["TOTAL", "15", "15.50", "37.83", "9.08", "3.78", "2"]);
    assert_eq!(
        line("2024-03-02  (all)"),
        ["2024-03-02", "(all)", "(all)", "2", "3.00", "6.00", "1.50", "0.54"]
    );
    assert!(
        text.contains("  1 run, 0.50 hours: nodes of partition \"debug\" match no [[pricing.nodes]] pattern"),
        "{text}"
    );
    assert!(text.contains("  line 19: 1 fields instead of 12"), "{text}");
}

#[test]
fn project_from_account_and_missing_comments() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("account.toml");
    let pricing = std::fs::read_to_string(data("pricing.toml")).unwrap();
    std::fs::write(
        &config,
        pricing.replace("project_source = \"comment\"", "project_source = \"account\""),
    )
    .unwrap();
    // physics = A's jobs + C's jobs + 117 = 2.16 + .96 + .09 = 3.21; chem = B = .57. The
    // same sample without the Comment column: sacct is not asked for it then.
    let out = report_with(
        &config,
        "month-account.txt",
        &[&WINDOW[..], &["--format", "json"]].concat(),
    );
    let doc: Value = serde_json::from_str(&ok_stdout(&out)).unwrap();
    assert_eq!(cost_of(&doc["groups"], "project", "physics"), 3.21);
    assert_eq!(cost_of(&doc["groups"], "project", "chem"), 0.57);

    // Comments are the project source, but slurmdbd stored none: say why.
    let out = report_with(
        &data("pricing.toml"),
        "no_comments.txt",
        &[&WINDOW[..], &["--format", "csv"]].concat(),
    );
    ok_stdout(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AccountingStoreFlags=job_comment"), "{stderr}");
    // Grouped by user only, the project does not matter: no warning.
    let out = report_with(
        &data("pricing.toml"),
        "no_comments.txt",
        &[&WINDOW[..], &["--by", "user"]].concat(),
    );
    assert!(!ok_stdout(&out).contains("job_comment"));
}

#[test]
fn chart_has_a_labelled_line_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("spend.svg");
    let out = report(&["--every", "day", "--chart", svg.to_str().unwrap(), "--top", "3"]);
    ok_stdout(&out);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{text}");
    // (other) = (none) is summed in the subtitle, not drawn.
    assert_eq!(text.matches("<polyline").count(), 3, "one line per kept group");
    for label in [
        ">ProjectA 2.16 USD<",
        ">ProjectC 0.96 USD<",
        ">ProjectB 0.57 USD<",
        ">Not drawn: 1 smaller group, 0.09 USD together<",
    ] {
        assert!(text.contains(label), "{label} missing in\n{text}");
    }
    assert!(text.trim_end().ends_with("</svg>"));
}

#[test]
fn reads_stdin_and_refuses_bad_requests() {
    let mut child = Command::new(crate::bin("cost-tags"))
        .args(["--config"])
        .arg(data("pricing.toml"))
        .args(["report", "--sacct-file", "-", "--format", "csv"])
        .args(WINDOW)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(data("month.txt")).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(ok_stdout(&out)
        .ends_with("total,2024-03-01T00:00:00Z,2024-03-02T12:00:00Z,,15,55800,136200,32700.000,3.780000,2,USD,,13\n"));

    let refused = |args: &[&str], why: &str| {
        let out = report_with(&data("pricing.toml"), "month.txt", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    };
    refused(&["--since", "2024-03-05", "--until", "2024-03-01"], "nothing to report");
    refused(&["--since", "March"], "is not YYYY-MM-DD");
    refused(&["--by", "project,project"], "twice");
    refused(&["--by", "colour"], "colour");
    refused(&["--top", "0"], "0");
    let out = Command::new(crate::bin("cost-tags"))
        .args(["--config"])
        .arg(data("pricing.toml"))
        .args(["report", "--sacct-file", "/nonexistent/sacct.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/sacct.txt"));
}

/// Instance types and spot queues from ParallelCluster's fleet configuration
/// (tests/data/sacct/fleet-config.json), prices from the settings only:
///   201: cpu-dy-c5-[1-2], 8 CPUs on 2 c5 nodes, 3600 s: 2 x 3600 x .0001 = .72
///   202: spot-st-c5-1 in the spot queue: 3600 x .00005 = .18
///   203: cpu-dy-big-1, an x2iedn.32xlarge without a price: unpriced, with a note
#[test]
fn parallelcluster_fleet_config_gives_node_types_and_spot_queues() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cost-tags.toml");
    std::fs::write(
        &config,
        format!(
            "[pricing]\nfleet_config = {:?}\n[pricing.instances.\"c5.xlarge\"]\non_demand = 0.36\nspot = 0.18\ncpus = 4\n",
            data("fleet-config.json")
        ),
    )
    .unwrap();
    let out = report_with(
        &config,
        "fleet.txt",
        &[
            "--since",
            "2024-03-01",
            "--until",
            "2024-03-01",
            "--now",
            "2024-03-02T00:00:00",
            "--by",
            "project",
            "--format",
            "json",
        ],
    );
    let doc: Value = serde_json::from_str(&ok_stdout(&out)).unwrap();
    let cost = |project: &str| {
        doc["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["group"]["project"] == project)
            .unwrap_or_else(|| panic!("{project} in {doc}"))["cost"]
            .as_f64()
            .unwrap()
    };
    assert!((cost("ProjectA") - 0.72).abs() < 1e-9, "{doc}");
    assert!((cost("ProjectB") - 0.18).abs() < 1e-9, "{doc}");
    assert_eq!(doc["unpriced"]["jobs"], 1, "{doc}");
    let warnings = doc["warnings"].to_string();
    assert!(
        warnings.contains("compute resource big runs x2iedn.32xlarge, which has no price"),
        "{warnings}"
    );
}

/// Issue 20, item 6: saved files are read by their header. `month.txt` rewritten with
/// `columns`: each line of the twelve canonical fields becomes those fields, by name, in
/// that order (`Extra`-like names not among them get `x`); other lines (garbage, blank)
/// stay as they are. Returns the new file's path.
fn rewritten(dir: &Path, name: &str, columns: &[&str], value: impl Fn(&str, &[&str]) -> Option<String>) -> String {
    // The report's fields, then the comment (the project of `month.txt`).
    let canonical: Vec<&str> = FIELDS.iter().copied().chain(["Comment"]).collect();
    let month = std::fs::read_to_string(data("month.txt")).unwrap();
    let mut out = String::new();
    for (i, line) in month.lines().enumerate() {
        let fields: Vec<&str> = line.split('|').collect();
        if fields.len() != canonical.len() {
            out.push_str(line);
        } else if i == 0 {
            out.push_str(&columns.join("|"));
        } else {
            let row: Vec<String> = columns
                .iter()
                .map(|c| match canonical.iter().position(|f| f.eq_ignore_ascii_case(c)) {
                    Some(at) => fields[at].to_string(),
                    None => value(c, &fields).unwrap_or_else(|| "x".into()),
                })
                .collect();
            out.push_str(&row.join("|"));
        }
        out.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path.to_str().unwrap().to_string()
}

/// The JSON report without what may differ between two layouts of the same records: the
/// wording of a garbage line's skip reason (it names the expected fields) and the
/// project_source.
fn figures(out: &Output) -> Value {
    let mut doc: Value = serde_json::from_str(&ok_stdout(out)).unwrap();
    doc["project_source"] = Value::Null;
    for skip in doc["skipped"]["first"].as_array_mut().unwrap() {
        if skip["reason"].as_str().unwrap().contains(" fields instead of ") {
            skip["reason"] = "fields instead of".into();
        }
    }
    doc
}

fn with_source(dir: &Path, source: &str) -> PathBuf {
    let config = dir.join(format!("{source}.toml"));
    let pricing = std::fs::read_to_string(data("pricing.toml")).unwrap();
    std::fs::write(
        &config,
        pricing.replace(
            "project_source = \"comment\"",
            &format!("project_source = \"{source}\""),
        ),
    )
    .unwrap();
    config
}

/// The previous release documented `--format=JobID,State,User,Account,Partition,WCKey,Start,
/// End,NNodes,NCPUS,AllocTRES,NodeList,Comment`. A file saved with it loads with its
/// projects, whether they are the WCKey (here `*`-prefixed, sacct's default-wckey mark) or
/// the comment.
#[test]
fn a_file_saved_by_the_previous_release_loads_with_its_projects() {
    let dir = tempfile::tempdir().unwrap();
    let previous = [
        "JobID",
        "State",
        "User",
        "Account",
        "Partition",
        "WCKey",
        "Start",
        "End",
        "NNodes",
        "NCPUS",
        "AllocTRES",
        "NodeList",
        "Comment",
    ];
    let wckey_of = |c: &str, fields: &[&str]| {
        (c == "WCKey").then(|| match fields[11] {
            "" => String::new(),
            project => format!("*{project}"),
        })
    };
    let file = rewritten(dir.path(), "previous.txt", &previous, wckey_of);
    let canonical = figures(&report(&["--format", "json"]));
    let args: Vec<&str> = WINDOW.iter().copied().chain(["--format", "json"]).collect();
    let by_wckey = report_with(&with_source(dir.path(), "wckey"), &file, &args);
    assert_eq!(figures(&by_wckey), canonical);
    assert_eq!(cost_of(&figures(&by_wckey)["groups"], "project", "ProjectA"), 2.16);
    let by_comment = report_with(&data("pricing.toml"), &file, &args);
    assert_eq!(figures(&by_comment), canonical);
}

/// A header in another order, in other case, with fields the report does not read, gives
/// the same report as the canonical order; a row with a field more or fewer than that
/// header is skipped and counted.
#[test]
fn a_header_in_another_order_with_extra_fields_gives_the_same_figures() {
    let dir = tempfile::tempdir().unwrap();
    let columns = [
        "NodeList",
        "jobidraw",
        "Comment",
        "ALLOCTRES",
        "NCPUS",
        "NNodes",
        "JobName",
        "end",
        "Start",
        "Partition",
        "Account",
        "User",
        "State",
        "JobID",
        "Elapsed",
    ];
    let file = rewritten(dir.path(), "reordered.txt", &columns, |c, f| {
        (c == "JobName").then(|| format!("run-{}", f[0]))
    });
    let args: Vec<&str> = WINDOW.iter().copied().chain(["--format", "json"]).collect();
    let reordered = report_with(&data("pricing.toml"), &file, &args);
    assert_eq!(figures(&reordered), figures(&report(&["--format", "json"])));

    // Two rows more, after the header: a field too many, a field too few.
    let text = std::fs::read_to_string(&file).unwrap();
    let (header, rest) = text.split_once('\n').unwrap();
    let row = "q-dy-c5-1|120|ProjectA|cpu=4|4|1|run|2024-03-01T03:00:00|2024-03-01T02:00:00|compute|\
               physics|ctalice|COMPLETED|120|01:00:00";
    let more = row.replacen("ProjectA", "Project|A", 1);
    let fewer = row.replacen("|run", "", 1);
    std::fs::write(&file, format!("{header}\n{more}\n{fewer}\n{rest}")).unwrap();
    let doc: Value = serde_json::from_str(&ok_stdout(&report_with(&data("pricing.toml"), &file, &args))).unwrap();
    assert_eq!(doc["lines"], 26, "{doc}");
    assert_eq!(doc["skipped"]["lines"], 6, "{doc}");
    assert_eq!(doc["total"]["cost"], 3.78, "{doc}");
    let first = &doc["skipped"]["first"];
    assert_eq!(
        (first[0]["line"].as_u64(), first[1]["line"].as_u64()),
        (Some(2), Some(3)),
        "{doc}"
    );
    assert!(
        first[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("16 fields instead of 15 (the header's fields)"),
        "{doc}"
    );
    assert!(
        first[1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("14 fields instead of 15 (the header's fields)"),
        "{doc}"
    );
}

/// A header without a field the report reads: exit 1, naming the field and the file,
/// and no report.
#[test]
fn a_header_missing_a_field_is_exit_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let columns = [
        "JobID",
        "State",
        "User",
        "Account",
        "Partition",
        "Start",
        "End",
        "NNodes",
        "AllocTRES",
        "NodeList",
        "Comment",
    ];
    let file = rewritten(dir.path(), "no-ncpus.txt", &columns, |_, _| None);
    let out = report_with(&data("pricing.toml"), &file, &WINDOW);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains(&file), "{stderr}");
    assert!(stderr.contains("line 1: the header has no NCPUS field"), "{stderr}");
    // month.txt, made for project_source = "comment", has no WCKey to read a project from.
    let wckey = with_source(dir.path(), "wckey");
    let out = report_with(&wckey, "month.txt", &WINDOW);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no WCKey field"));
}

/// Issue 24: filters with sacct's meaning, on a saved file (where every filter is applied
/// to the records read). Figures from the table at the top.
#[test]
fn filters_narrow_the_report_to_users_projects_partitions_and_groups() {
    // ProjectA: 101 103 105+0 105+1 107 = 5 jobs, 2.16.
    let a = json(&["--project", "ProjectA"]);
    assert_eq!(
        (a["total"]["jobs"].clone(), a["total"]["cost"].clone()),
        (5.into(), 2.16.into()),
        "{a}"
    );
    // ctbob in spot: 104_1 and 104_2, .18 + .03 = .21.
    let spot = json(&["--user", "ctbob", "--partition", "spot"]);
    assert_eq!(spot["total"]["jobs"], 2, "{spot}");
    assert_eq!(spot["total"]["cost"], 0.21, "{spot}");
    // A list is any of them: ProjectA or ProjectB.
    let ab = json(&["--project", "ProjectA,ProjectB", "--by", "user"]);
    assert_eq!(ab["total"]["cost"], 2.73, "{ab}");
    // Nothing matches: an empty report, not an error.
    let none = json(&["--user", "nobody"]);
    assert_eq!(none["total"]["jobs"], 0, "{none}");
    let bad = report(&["--user", "a b"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--user \"a b\""));

    // The same file with each user's Unix group (a header names the fields): `--by group`
    // and `--group` read it, and a group is its users' jobs.
    let dir = tempfile::tempdir().unwrap();
    let columns: Vec<&str> = FIELDS.iter().copied().chain(["Group", "Comment"]).collect();
    let grouped = rewritten(dir.path(), "grouped.txt", &columns, |name, fields| {
        (name == "Group").then(|| {
            match fields[2] {
                "ctalice" => "phys",
                "ctbob" => "chem",
                _ => "other",
            }
            .to_string()
        })
    });
    let run = |args: &[&str]| -> Value {
        let mut all: Vec<&str> = WINDOW.to_vec();
        all.extend_from_slice(&["--format", "json"]);
        all.extend_from_slice(args);
        let out = Command::new(crate::bin("cost-tags"))
            .arg("--config")
            .arg(data("pricing.toml"))
            .args(["report", "--sacct-file", &grouped])
            .args(&all)
            .env_remove("COST_TAGS_CONFIG")
            .output()
            .unwrap();
        serde_json::from_str(&ok_stdout(&out)).unwrap()
    };
    let phys = run(&["--group", "phys"]);
    let alice = json(&["--user", "ctalice"]);
    assert_eq!(phys["total"], alice["total"], "{phys}");
    let by_group = run(&["--by", "group"]);
    assert_eq!(by_group["total"], json(&[])["total"], "{by_group}");
    let names: Vec<String> = by_group["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"]["group"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        names.contains(&"phys".to_string()) && names.contains(&"chem".to_string()),
        "{by_group}"
    );
}
