//! Golden tests of `cost-tags report --by job` (issue 24, items 2 and 4): one row per job
//! run of the hand-checked month (tests/data/sacct/month.txt, whose costs are worked out
//! at the top of report_golden.rs), the JSON `jobs` keys, `--top N`, and the efficiency
//! figures of tests/data/sacct/jobs-efficiency.txt, worked out below. Prices
//! (tests/data/sacct/pricing.toml): c5.xlarge 4 CPUs 0.36/h (0.0001/s), 0.18/h spot;
//! g4dn.2xlarge 8 CPUs 2 GPUs 1.80/h.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sacct")
        .join(name)
}

/// The window of report_golden.rs: 2024-03-01 to 03-02 12:00 (now).
fn report(file: &str, args: &[&str]) -> Output {
    Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(data("pricing.toml"))
        .args(["report", "--sacct-file"])
        .arg(data(file))
        .args([
            "--since",
            "2024-03-01",
            "--until",
            "2024-03-02",
            "--now",
            "2024-03-02T12:00:00",
        ])
        .args(["--by", "job"])
        .args(args)
        .env_remove("COST_TAGS_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run cost-tags")
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

const HEADER: &str = "job_id,state,user,group,account,project,partition,start,end,elapsed_seconds,nodes,cpus,gpus,\
                      instance_types,price_source,cost,cpu_efficiency,gpu,walltime_accuracy,wasted_cost,mem_efficiency\n";

/// Every run of month.txt by start time (not job id: 107 began before 101, 104 and 111
/// before 101), each cost as in report_golden.rs's table. Runs that started in the same
/// second keep sacct's order.
/// month.txt has no Group, TotalCPU, ElapsedRaw, TimelimitRaw, MaxRSS or ReqMem: the
/// group is empty and the efficiency unknown (empty), never 0. Start and end are the part in the window.
#[test]
fn csv_per_job_matches_the_hand_computed_figures() {
    let out = report("month.txt", &["--format", "csv"]);
    let expected = [
        // started 02-29 23:00, before 104_1: the hour in the window, whole node
        "107,COMPLETED,ctalice,,physics,ProjectA,compute,2024-03-01T00:00:00Z,2024-03-01T01:00:00Z,3600,1,4,0,c5.xlarge,on demand (settings),0.36,,false,,,",
        // spot at 0.18/h (0.00005/s), whole node: 3600 s, then 600 s
        "104_1,COMPLETED,ctbob,,chem,ProjectB,spot,2024-03-01T00:00:00Z,2024-03-01T01:00:00Z,3600,1,4,0,c5.xlarge,spot (settings),0.18,,false,,,",
        "104_2,FAILED,ctbob,,chem,ProjectB,spot,2024-03-01T00:30:00Z,2024-03-01T00:40:00Z,600,1,4,0,c5.xlarge,spot (settings),0.03,,false,,,",
        // no price: listed, cost empty; both started at 09:00, so in sacct's order
        "111,COMPLETED,ctcarol,,physics,ProjectC,debug,2024-03-01T09:00:00Z,2024-03-01T09:30:00Z,1800,1,1,0,,unpriced,,,false,,,",
        "112,COMPLETED,ctbob,,chem,ProjectB,gpu,2024-03-01T09:00:00Z,2024-03-01T10:00:00Z,3600,1,1,0,,unpriced,,,false,,,",
        // 1 of 4 CPUs, 7200 s x 0.0001 / 4
        "101,COMPLETED,ctalice,,physics,ProjectA,compute,2024-03-01T10:00:00Z,2024-03-01T12:00:00Z,7200,1,1,0,c5.xlarge,on demand (settings),0.18,,false,,,",
        // 2 of 4 CPUs, 3600 s x 0.0001 / 2 (started with 101: after it, as sacct lists them)
        "102,COMPLETED,ctbob,,chem,ProjectB,compute,2024-03-01T10:00:00Z,2024-03-01T11:00:00Z,3600,1,2,0,c5.xlarge,on demand (settings),0.18,,false,,,",
        // exclusive, 2 whole nodes, 1800 s x 0.0001 x 2
        "103,COMPLETED,ctalice,,physics,ProjectA,compute,2024-03-01T13:00:00Z,2024-03-01T13:30:00Z,1800,2,8,0,c5.xlarge,on demand (settings),0.36,,false,,,",
        // het job: a whole c5 for 1 h; half a g4dn (1 of 2 GPUs beats 2 of 8 CPUs), 1.80/2,
        // a GPU job: efficiency not given (gpu = true)
        "105+0,COMPLETED,ctalice,,physics,ProjectA,compute,2024-03-01T14:00:00Z,2024-03-01T15:00:00Z,3600,1,4,0,c5.xlarge,on demand (settings),0.36,,false,,,",
        "105+1,COMPLETED,ctalice,,physics,ProjectA,gpu,2024-03-01T14:00:00Z,2024-03-01T15:00:00Z,3600,1,2,1,g4dn.2xlarge,on demand (settings),0.9,,true,,,",
        // requeued: each run its own row, 1200 s and 3600 s at half a node
        "106,REQUEUED,ctcarol,,physics,ProjectC,compute,2024-03-01T16:00:00Z,2024-03-01T16:20:00Z,1200,1,2,0,c5.xlarge,on demand (settings),0.06,,false,,,",
        "106,COMPLETED,ctcarol,,physics,ProjectC,compute,2024-03-01T16:30:00Z,2024-03-01T17:30:00Z,3600,1,2,0,c5.xlarge,on demand (settings),0.18,,false,,,",
        // no comment: project (none), a quarter node for 1 h
        "117,COMPLETED,ctcarol,,physics,(none),compute,2024-03-01T18:00:00Z,2024-03-01T19:00:00Z,3600,1,1,0,c5.xlarge,on demand (settings),0.09,,false,,,",
        // whole node, 7200 s x 0.0001
        "110,COMPLETED,ctcarol,,physics,ProjectC,compute,2024-03-01T23:00:00Z,2024-03-02T01:00:00Z,7200,1,4,0,c5.xlarge,on demand (settings),0.72,,false,,,",
        // running: up to now (12:00), a quarter node
        "109,RUNNING,ctbob,,chem,ProjectB,compute,2024-03-02T10:00:00Z,2024-03-02T12:00:00Z,7200,1,1,0,c5.xlarge,on demand (settings),0.18,,false,,,",
    ];
    assert_eq!(ok_stdout(&out), format!("{HEADER}{}\n", expected.join("\n")));
    // The notes (unpriced, skipped lines) go to stderr beside CSV.
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(notes.contains("2 job runs could not be priced"), "{notes}");
    // The garbage, the bad time and End before Start; the step line 114.batch is passed
    // over (per job, sacct lists steps for their usage), not a line that could not be used.
    // No line of job 114 comes before it, so it counts for no job, and a warning says so.
    assert!(notes.contains("3 lines could not be used"), "{notes}");
    assert!(
        !notes
            .lines()
            .any(|l| l.starts_with("  line ") && l.contains("114.batch")),
        "{notes}"
    );
    assert!(
        notes.contains("1 step lines did not follow a line of their own job (114.batch)"),
        "{notes}"
    );
}

/// Efficiency, per job (cost x (1 - CPU efficiency) wasted):
///
/// | job | CPUs | TotalCPU        | ElapsedRaw | CPU eff.               | limit  | walltime      | cost                  | wasted            |
/// |-----|------|-----------------|------------|------------------------|--------|---------------|-----------------------|-------------------|
/// | 201 | 4    | 06:00:00 = 21600| 7200       | 21600/(7200x4) = .75   | 240 min| 7200/14400=.5 | 7200x.0001 = .72      | .72x.25 = .18     |
/// | 202 | 2    | 12:00 = 720     | 3600       | 720/(3600x2) = .1      | 60 min | 1             | 3600x.0001/2 = .18    | .18x.9 = .162     |
/// | 203 | 2+GPU| 01:00:00        | 3600       | null (gpu = true)      | 120 min| .5            | 1.80/2 = .9           | null              |
/// | 204 | 1    | (empty)         | 3600       | null (not recorded)    | UNLIMITED | null       | 3600x.0001/4 = .09    | null              |
/// | 205 | 4    | 03:36:00 = 12960| 7200       | 12960/(7200x4) = .45   | 180 min| 7200/10800=.667| in window 3600: .36  | .36x.55 = .198    |
///
/// 205 ran 23:00 to 01:00: its efficiency is the whole run's (TotalCPU is), its cost the
/// hour in the window. Total wasted: .18 + .162 + .198 = .54.
#[test]
fn efficiency_and_wasted_cost_per_job() {
    let out = report("jobs-efficiency.txt", &["--format", "csv"]);
    let expected = [
        // 205 began 02-29 23:00, before the others: first
        "205,COMPLETED,ctcarol,phys,physics,ProjectC,compute,2024-03-01T00:00:00Z,2024-03-01T01:00:00Z,3600,1,4,0,c5.xlarge,on demand (settings),0.36,0.45,false,0.667,0.198,",
        "201,COMPLETED,ctalice,phys,physics,ProjectA,compute,2024-03-01T10:00:00Z,2024-03-01T12:00:00Z,7200,1,4,0,c5.xlarge,on demand (settings),0.72,0.75,false,0.5,0.18,",
        "202,COMPLETED,ctbob,chem,chem,ProjectB,compute,2024-03-01T10:00:00Z,2024-03-01T11:00:00Z,3600,1,2,0,c5.xlarge,on demand (settings),0.18,0.1,false,1,0.162,",
        "203,COMPLETED,ctalice,phys,physics,ProjectA,gpu,2024-03-01T14:00:00Z,2024-03-01T15:00:00Z,3600,1,2,1,g4dn.2xlarge,on demand (settings),0.9,,true,0.5,,",
        "204,COMPLETED,ctbob,chem,chem,ProjectB,compute,2024-03-01T16:00:00Z,2024-03-01T17:00:00Z,3600,1,1,0,c5.xlarge,on demand (settings),0.09,,false,,,",
    ];
    assert_eq!(ok_stdout(&out), format!("{HEADER}{}\n", expected.join("\n")));
    let doc: Value = serde_json::from_str(&ok_stdout(&report("jobs-efficiency.txt", &["--format", "json"]))).unwrap();
    assert_eq!(doc["total"]["wasted_cost"], 0.54, "{doc:#}");
    assert_eq!(doc["total"]["cost"], 2.25, "{doc:#}");
    let jobs = doc["jobs"].as_array().unwrap();
    // By start time: 205 (02-29 23:00) first.
    assert_eq!(jobs[0]["job_id"], "205");
    assert_eq!(jobs[3]["cpu_efficiency"], Value::Null);
    assert_eq!(jobs[3]["gpu"], true);
    assert_eq!(
        jobs[4]["cpu_efficiency"],
        Value::Null,
        "TotalCPU not recorded: null, not 0"
    );
    // The table has the same figures, in percent.
    let table = ok_stdout(&report("jobs-efficiency.txt", &[]));
    let line = table.lines().find(|l| l.starts_with("201 ")).unwrap();
    assert!(line.contains(" 75% ") && line.ends_with("0.1800"), "{table}");
    assert!(
        table.contains("TOTAL 5 job runs, 6.00 hours, cost 2.25 USD, wasted 0.54"),
        "{table}"
    );
}

/// Memory efficiency: the largest MaxRSS of the job's steps (the step lines after the
/// job's own, whose MaxRSS is empty) over the memory it asked for, all nodes together
/// (tests/data/sacct/jobs-memory.txt; K, M, G are 1024s):
///
/// | job | ReqMem         | asked       | steps' MaxRSS                     | mem eff.            |
/// |-----|----------------|-------------|-----------------------------------|---------------------|
/// | 301 | 8G (22.05: the total) | 8 GiB | batch 1 GiB, extern 1 MiB, .0 2048M | 2 GiB / 8 GiB = .25 |
/// | 302 | 1000Mc, 2 CPUs | 2000M       | batch 1500M                       | 1500/2000 = .75     |
/// | 303 | 2000Mn, 2 nodes| 4000M       | batch 100M, .0 5000M (per task)   | 5000/4000 = 1.25    |
/// | 304 | 4G             | 4 GiB       | none (999.0 is another job's)     | null                |
/// | 305 | 1G, running    | 1 GiB       | batch 512M, still running         | null                |
///
/// 303 used more than it asked for (memory not enforced): above 1, not clipped. CPU
/// (TotalCPU / (ElapsedRaw x CPUs)), walltime and cost as in the test above:
///
/// | job | CPU eff.                | walltime        | cost                    | wasted             |
/// |-----|-------------------------|-----------------|-------------------------|--------------------|
/// | 301 | 7200/(3600x4) = .5      | 3600/7200 = .5  | whole node 3600x.0001 = .36 | .36x.5 = .18   |
/// | 302 | 2160/(3600x2) = .3      | 3600/3600 = 1   | half node = .18         | .18x.7 = .126      |
/// | 303 | 7200/(1800x8) = .5      | 1800/3600 = .5  | 2 nodes 1800x.0001x2 = .36 | .36x.5 = .18    |
/// | 304 | 1800/3600 = .5          | 3600/7200 = .5  | quarter node = .09      | .09x.5 = .045      |
/// | 305 | null (running)          | null (UNLIMITED)| 03-01 23:30 to now (03-02 12:00), quarter node: 45000x.0001/4 = 1.125 | null |
///
/// Total cost .36 + .18 + .36 + .09 + 1.125 = 2.115, wasted .18 + .126 + .18 + .045 = .531.
#[test]
fn memory_efficiency_is_the_steps_peak_over_the_request() {
    let out = report("jobs-memory.txt", &["--format", "csv"]);
    let expected = [
        "301,COMPLETED,ctalice,phys,physics,ProjectA,compute,2024-03-01T10:00:00Z,2024-03-01T11:00:00Z,3600,1,4,0,c5.xlarge,on demand (settings),0.36,0.5,false,0.5,0.18,0.25",
        "302,COMPLETED,ctbob,chem,chem,ProjectB,compute,2024-03-01T10:00:00Z,2024-03-01T11:00:00Z,3600,1,2,0,c5.xlarge,on demand (settings),0.18,0.3,false,1,0.126,0.75",
        "303,COMPLETED,ctcarol,phys,physics,ProjectC,compute,2024-03-01T13:00:00Z,2024-03-01T13:30:00Z,1800,2,8,0,c5.xlarge,on demand (settings),0.36,0.5,false,0.5,0.18,1.25",
        "304,COMPLETED,ctbob,chem,chem,ProjectB,compute,2024-03-01T16:00:00Z,2024-03-01T17:00:00Z,3600,1,1,0,c5.xlarge,on demand (settings),0.09,0.5,false,0.5,0.045,",
        "305,RUNNING,ctalice,phys,physics,ProjectA,compute,2024-03-01T23:30:00Z,2024-03-02T12:00:00Z,45000,1,1,0,c5.xlarge,on demand (settings),1.125,,false,,,",
    ];
    assert_eq!(ok_stdout(&out), format!("{HEADER}{}\n", expected.join("\n")));
    // Step lines are read, not skipped lines.
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(!notes.contains("could not be used"), "{notes}");
    let doc: Value = serde_json::from_str(&ok_stdout(&report("jobs-memory.txt", &["--format", "json"]))).unwrap();
    assert_eq!(doc["total"]["cost"], 2.115, "{doc:#}");
    assert_eq!(doc["total"]["wasted_cost"], 0.531, "{doc:#}");
    assert_eq!(doc["skipped"]["lines"], 0, "{doc:#}");
    let mem: Vec<&Value> = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| &j["mem_efficiency"])
        .collect();
    assert_eq!(
        mem,
        [
            &Value::from(0.25),
            &Value::from(0.75),
            &Value::from(1.25),
            &Value::Null,
            &Value::Null
        ]
    );
    // The table: MEM-EFF after CPU-EFF, in percent.
    let table = ok_stdout(&report("jobs-memory.txt", &[]));
    let line = table.lines().find(|l| l.starts_with("303 ")).unwrap();
    assert!(line.contains("    50%    125% "), "{table}");
    // --top holds rows until the end: the steps still count.
    let doc: Value = serde_json::from_str(&ok_stdout(&report(
        "jobs-memory.txt",
        &["--format", "json", "--top", "3"],
    )))
    .unwrap();
    let kept: Vec<(&str, &Value)> = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["job_id"].as_str().unwrap(), &j["mem_efficiency"]))
        .collect();
    // 305 (1.125), then 301 and 303 (.36 each), in either order.
    assert_eq!(kept[0], ("305", &Value::Null), "{doc:#}");
    assert!(kept.contains(&("301", &Value::from(0.25))), "{doc:#}");
    assert!(kept.contains(&("303", &Value::from(1.25))), "{doc:#}");
}

#[test]
fn json_jobs_have_the_documented_keys() {
    let text = ok_stdout(&report("month.txt", &["--format", "json"]));
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["by"], serde_json::json!(["job"]));
    // One run per line, keys in the CSV's order.
    let first = text
        .lines()
        .find(|l| l.trim_start().starts_with('{') && l.contains("job_id"))
        .unwrap();
    assert!(
        first.trim_start().starts_with("{\"job_id\":\"107\",\"state\""),
        "{text}"
    );
    let jobs = doc["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 15, "every run, requeues included: {doc:#}");
    let mut keys: Vec<&str> = HEADER.trim_end().split(',').collect();
    keys.sort_unstable();
    for job in jobs {
        let mut got: Vec<&str> = job.as_object().unwrap().keys().map(String::as_str).collect();
        got.sort_unstable();
        assert_eq!(got, keys, "{job}");
    }
    // The rows add up to the grouped report's total (3.78, report_golden.rs).
    let sum: f64 = jobs.iter().filter_map(|j| j["cost"].as_f64()).sum();
    assert!((sum - 3.78).abs() < 1e-9, "{sum}");
    assert_eq!(doc["total"]["cost"], 3.78);
    assert_eq!(doc["total"]["jobs"], 15);
    assert_eq!(doc["unpriced"]["jobs"], 2);
}

/// `--top 3`: the three most expensive runs, most expensive first: 105+1 (.90), 110
/// (.72), then one of the .36 runs (the first of them sacct listed, 103); the total is
/// still every run's.
#[test]
fn top_keeps_the_most_expensive_runs() {
    let doc: Value =
        serde_json::from_str(&ok_stdout(&report("month.txt", &["--format", "json", "--top", "3"]))).unwrap();
    let ids: Vec<&str> = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[..2], ["105+1", "110"], "{doc:#}");
    assert_eq!(ids.len(), 3);
    assert_eq!(doc["jobs"][2]["cost"], 0.36, "{doc:#}");
    assert_eq!(doc["total"]["cost"], 3.78);
    // Filters combine: ProjectC's runs only.
    let out = ok_stdout(&report("month.txt", &["--format", "csv", "--project", "ProjectC"]));
    let ids: Vec<&str> = out.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(ids, ["111", "106", "106", "110"]);
    // --by job stands alone.
    let out = report("month.txt", &["--every", "day"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--by job"), "{out:?}");
}
