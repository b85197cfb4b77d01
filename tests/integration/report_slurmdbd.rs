//! `cost-tags report` end to end against real Slurm accounting: a private cluster stores
//! its jobs in slurmdbd + MariaDB (tests/support/src/slurmdbd.rs), ctalice and ctbob run short
//! jobs with project comments in partitions compute and gpu (shared, exclusive, array),
//! and the report — running the real sacct itself — must charge per project exactly the
//! seconds Slurm accounted and the cost those seconds are worth. Then, with
//! project_source = "account", a comment holding a newline and a forged record (which the
//! real sacct prints raw) must charge nothing; with the comment as the project, the forged
//! line is skipped because sacct's bare list of job ids does not have it.

use crate::support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::moto::{self, MotoServer};
use support::price_list::{linux_product, PriceListStandIn};
use support::slurm::{ensure_test_users, parse_job_id, SlurmCluster, SlurmOptions};
use support::slurmdbd::SlurmDbd;

/// One node of 2 CPUs: "local" costs 3.6/h (0.001/s) on demand, 1.8/h (0.0005/s) spot;
/// the gpu partition is spot.
const SETTINGS: &str = r#"
project_source = "comment"
[pricing]
currency = "EUR"
fleet_config = ""
cache_file = ""
[pricing.instances.local]
on_demand = 3.6
spot = 1.8
cpus = 2
[pricing.partitions.compute]
instance = "local"
[pricing.partitions.gpu]
instance = "local"
spot = true
"#;

fn utc(t: u64) -> String {
    cost_tags::model::time::Plain(cost_tags::model::time::Timestamp::from_second(t as i64)).to_string()
}

#[test]
fn report_charges_what_slurm_accounted() {
    if !support::slurm::available() {
        // Let the fixture say what is missing (and fail under CI=true).
        assert!(SlurmCluster::start(SlurmOptions::default()).is_none());
        return;
    }
    ensure_test_users();
    // None (after a loud skip, or a panic under CI=true) without mariadb-server + slurmdbd.
    let Some(dbd) = SlurmDbd::start(&[("physics", &["ctalice", "ctbob"])]) else {
        return;
    };
    let opts = SlurmOptions {
        extra_conf: dbd.slurm_conf_lines(),
        ..SlurmOptions::default()
    };
    let Some(cluster) = SlurmCluster::start(opts) else {
        return;
    };
    // slurmdbd, slurmctld and slurmd listen on loopback only (MariaDB binds 127.0.0.1).
    for port in [dbd.port(), cluster.slurmctld_port(), cluster.slurmd_port()] {
        assert_eq!(
            support::process::listening_addresses(port),
            vec!["127.0.0.1".to_string()],
            "port {port}"
        );
    }
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 600;

    let submit = |user: &str, args: &[&str]| {
        let out = cluster.run_as(user, "sbatch", args);
        assert!(
            out.status.success(),
            "sbatch {args:?} as {user}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            cluster.log_tails()
        );
        parse_job_id(&out.stdout).expect("job id")
    };
    // ProjectA: one CPU of two (half the node), then the whole node (--exclusive).
    let alice_half = submit(
        "ctalice",
        &["-p", "compute", "-n1", "--comment", "ProjectA", "--wrap", "sleep 2"],
    );
    submit(
        "ctalice",
        &[
            "-p",
            "compute",
            "--exclusive",
            "--comment",
            "ProjectA",
            "--wrap",
            "sleep 3",
        ],
    );
    // ProjectB: spot partition, one CPU, and a two-task array.
    submit(
        "ctbob",
        &["-p", "gpu", "-n1", "--comment", "ProjectB", "--wrap", "sleep 2"],
    );
    submit(
        "ctbob",
        &[
            "-p",
            "gpu",
            "-n1",
            "--array=1-2",
            "--comment",
            "ProjectB",
            "--wrap",
            "sleep 1",
        ],
    );
    let allocations = 5;

    let deadline = Instant::now() + Duration::from_secs(120);
    while !cluster.active_jobs().is_empty() {
        assert!(
            Instant::now() < deadline,
            "jobs still running:\n{}",
            cluster.log_tails()
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // What Slurm accounted, once slurmdbd has every allocation with its end.
    let accounted = || -> Vec<(String, String, u64, u64)> {
        let out = cluster
            .command_root("sacct")
            .args([
                "--parsable2",
                "--noheader",
                "--allusers",
                "--allocations",
                "--duplicates",
            ])
            .args([
                "-S",
                &utc(since),
                "--format=JobID,Partition,ElapsedRaw,AllocCPUS,Comment,End",
            ])
            .env("TZ", "UTC")
            .output()
            .expect("sacct");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.ends_with("|Unknown"))
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                (
                    f[4].to_string(),
                    f[1].to_string(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                )
            })
            .collect()
    };
    let mut jobs = accounted();
    while jobs.len() < allocations {
        assert!(
            Instant::now() < deadline,
            "slurmdbd has {} of {allocations} finished allocations: {jobs:?}\n{}\n{}",
            jobs.len(),
            cluster.log_tails(),
            dbd.log_tails()
        );
        std::thread::sleep(Duration::from_millis(500));
        jobs = accounted();
    }

    // Expected per project: seconds as Slurm counted them, and their worth: 0.001/s on
    // demand or 0.0005/s spot, times the share of the 2-CPU node (AllocCPUS / 2).
    let mut expected: BTreeMap<String, (u64, f64, u64)> = BTreeMap::new();
    for (project, partition, elapsed, cpus) in &jobs {
        let per_second = if partition == "gpu" { 0.0005 } else { 0.001 };
        let share = (*cpus as f64 / 2.0).min(1.0);
        let e = expected.entry(project.clone()).or_default();
        e.0 += elapsed;
        e.1 += *elapsed as f64 * per_second * share;
        e.2 += 1;
    }
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        ["ProjectA", "ProjectB"],
        "{jobs:?}"
    );
    assert!(
        jobs.iter().any(|j| j.3 == 2),
        "the --exclusive job holds both CPUs: {jobs:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cost-tags.toml");
    std::fs::write(&settings, SETTINGS).unwrap();
    let out = Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(&settings)
        .args(["report", "--since", &utc(since), "--format", "json", "--by", "project"])
        .env("SLURM_CONF", cluster.conf_path())
        .output()
        .expect("run cost-tags report");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cost-tags report failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["currency"], "EUR");
    assert_eq!(doc["skipped"]["lines"], 0, "{doc:#}");
    assert_eq!(doc["unpriced"]["jobs"], 0, "{doc:#}");
    assert_eq!(doc["warnings"], serde_json::json!([]), "comments were stored: {doc:#}");
    for group in doc["groups"].as_array().unwrap() {
        let project = group["group"]["project"].as_str().unwrap();
        let (seconds, cost, runs) = expected[project];
        assert_eq!(group["elapsed_seconds"].as_u64(), Some(seconds), "{project}: {doc:#}");
        assert_eq!(group["jobs"].as_u64(), Some(runs), "{project}: {doc:#}");
        let got = group["cost"].as_f64().unwrap();
        assert!(
            (got - cost).abs() < 1e-6,
            "{project}: cost {got}, expected {cost} ({jobs:?})"
        );
    }
    assert_eq!(doc["groups"].as_array().unwrap().len(), 2, "{doc:#}");

    // Several clusters in one slurmdbd (issue 13, item 5): the real sacct's --clusters and
    // Cluster field, here with this fixture's one cluster, give the same total.
    let out = Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(&settings)
        .args(["report", "--since", &utc(since), "--format", "json", "--by", "cluster"])
        .args(["--clusters", cluster.cluster_name()])
        .env("SLURM_CONF", cluster.conf_path())
        .output()
        .expect("run cost-tags report --clusters");
    let by_cluster: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let groups = by_cluster["groups"].as_array().unwrap();
    assert_eq!(
        groups.len(),
        1,
        "{by_cluster:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(groups[0]["group"]["cluster"], cluster.cluster_name(), "{by_cluster:#}");
    assert_eq!(by_cluster["skipped"]["lines"], 0, "{by_cluster:#}");
    let total = |d: &Value| d["total"]["cost"].as_f64().unwrap();
    assert!((total(&by_cluster) - total(&doc)).abs() < 1e-6, "{by_cluster:#}");

    users_see_their_own(
        &cluster,
        since,
        &settings,
        &alice_half.to_string(),
        expected["ProjectA"].1,
    );
    billed_beside_the_estimate(&cluster, since, &doc);

    // Issue 11, item 1: with project_source = "account", ctbob's comment holds a newline
    // and then a whole sacct line in the shape the report used to ask for (all fields,
    // Comment last): a 500-node hour charged to account "victim". The real sacct prints
    // it raw; the report must not ask for the comment at all.
    let forged = format!(
        "9999999|COMPLETED|ctvictim|victim|compute||{}|{}|500|1000|billing=1000,cpu=1000,node=500|n[1-500]|",
        utc(since + 60),
        utc(since + 3660)
    );
    // The same in the shape asked for today (TotalCPU and ElapsedRaw, Comment last, no
    // WCKey), as job 9999998.
    let forged_now = format!(
        "9999998|COMPLETED|ctvictim|victim|compute|{}|{}|500|1000|billing=1000,cpu=1000,node=500|n[1-500]|\
         01:00:00|3600|VictimProject",
        utc(since + 60),
        utc(since + 3660)
    );
    let hostile = submit(
        "ctbob",
        &[
            "-p",
            "compute",
            "-n1",
            "--account",
            "physics",
            "--comment",
            &format!("ProjectB\n{forged}\n{forged_now}"),
            "--wrap",
            "sleep 1",
        ],
    );
    // sacct as the report runs it, once slurmdbd has the job's whole record (its end may
    // arrive before its start, without which -S does not select it), and with Comment.
    let raw = || {
        let out = cluster
            .command_root("sacct")
            .args([
                "--parsable2",
                "--noheader",
                "--allusers",
                "--allocations",
                "--duplicates",
            ])
            .args(["-S", &utc(since), "--format=JobID,Partition,End,Comment"])
            .env("TZ", "UTC")
            .output()
            .expect("sacct");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let recorded = format!("{hostile}|compute|");
    while !raw()
        .lines()
        .any(|l| l.starts_with(&recorded) && !l.contains("|Unknown|"))
    {
        assert!(Instant::now() < deadline, "job {hostile} not recorded: {}", raw());
        std::thread::sleep(Duration::from_millis(500));
    }
    // The real sacct prints the comment raw: its second line reads like a record.
    assert!(raw().lines().any(|l| l.starts_with("9999999|")), "{}", raw());
    assert!(raw().lines().any(|l| l.starts_with("9999998|")), "{}", raw());
    std::fs::write(
        &settings,
        SETTINGS.replace("project_source = \"comment\"", "project_source = \"account\""),
    )
    .unwrap();
    let out = Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(&settings)
        .args(["report", "--since", &utc(since), "--format", "json", "--by", "account"])
        .env("SLURM_CONF", cluster.conf_path())
        .output()
        .expect("run cost-tags report");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let accounts: Vec<&str> = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"]["account"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(accounts, ["physics"], "{doc:#}");
    assert_eq!(doc["total"]["jobs"].as_u64(), Some(allocations as u64 + 1), "{doc:#}");

    // project_source = "comment": the comment must be asked for, and the forged lines are
    // printed. The old-shaped one has a field too many (skipped as unreadable); the other
    // names a job the real sacct's bare list of ids does not have (skipped as forged).
    std::fs::write(&settings, SETTINGS).unwrap();
    let out = Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(&settings)
        .args(["report", "--since", &utc(since), "--format", "json", "--by", "account"])
        .env("SLURM_CONF", cluster.conf_path())
        .output()
        .expect("run cost-tags report");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["groups"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!(doc["total"]["jobs"].as_u64(), Some(allocations as u64 + 1), "{doc:#}");
    assert_eq!(doc["skipped"]["lines"], 2, "{doc:#}");
    assert!(
        doc["skipped"].to_string().contains("job 9999998: not in sacct's list"),
        "{doc:#}"
    );

    a_running_job_costs_so_far(&cluster, &settings);
    // Last: its job would count in the reports above.
    committed_spend_of_a_running_job(&cluster, false);
    committed_spend_of_a_running_job(&cluster, true);
}

/// Issue 14, item 4b: while ctalice's job runs, `cost-tags job` (as her) charges it up to
/// now: the seconds since its start, at half a 3.6/h node, and says "so far".
fn a_running_job_costs_so_far(cluster: &SlurmCluster, settings: &std::path::Path) {
    let out = cluster.run_as(
        "ctalice",
        "sbatch",
        &["-p", "compute", "-n1", "--comment", "ProjectA", "--wrap", "sleep 120"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let job = parse_job_id(&out.stdout).expect("job id").to_string();
    let cost_tags = crate::bin("cost-tags");
    let show = |json: bool| {
        let mut args = vec!["--config", settings.to_str().unwrap(), "job", &job];
        if json {
            args.push("--json");
        }
        cluster.run_as("ctalice", cost_tags.to_str().unwrap(), &args)
    };
    // slurmdbd has the start a moment after slurmctld.
    let deadline = Instant::now() + Duration::from_secs(60);
    let shown = loop {
        let out = show(true);
        if out.status.success() {
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
            let run = &doc["runs"][0];
            if run["state"] == "RUNNING" && run["nodes"].as_u64() > Some(0) && run["seconds"].as_i64() > Some(0) {
                break doc;
            }
        }
        assert!(
            Instant::now() < deadline,
            "job {job} never showed as running: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let run = &shown["runs"][0];
    assert!(run["end"].is_null(), "{shown:#}");
    assert_eq!(run["state"], "RUNNING", "{shown:#}");
    let seconds = run["seconds"].as_i64().unwrap();
    assert_eq!(
        shown["now"].as_i64().unwrap() - run["start"].as_i64().unwrap(),
        seconds,
        "{shown:#}"
    );
    assert!(
        (run["cost"].as_f64().unwrap() - seconds as f64 * 0.0005).abs() < 1e-9,
        "{shown:#}"
    );
    let table = String::from_utf8_lossy(&show(false).stdout).into_owned();
    assert!(
        table.contains("(running)") && table.contains("Cost so far: "),
        "{table}"
    );
    cluster.run_root("scancel", &[&job]);
}

/// Issue 14, items 4b and 4c, as ctalice: `cost-tags job` shows her half-node job at what
/// its accounted seconds are worth, and `cost-tags report` reports her own jobs (ProjectA
/// alone, at what the report charged it for everyone) and says so.
fn users_see_their_own(cluster: &SlurmCluster, since: u64, settings: &std::path::Path, job: &str, project_a: f64) {
    let dir = settings.parent().unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(settings, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let cost_tags = crate::bin("cost-tags");
    let as_alice = |args: &[&str]| {
        let mut all = vec!["--config", settings.to_str().unwrap()];
        all.extend(args);
        cluster.run_as("ctalice", cost_tags.to_str().unwrap(), &all)
    };

    let out = as_alice(&["job", job, "--json"]);
    assert!(
        out.status.success(),
        "cost-tags job {job} as ctalice: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = shown["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{shown:#}");
    let run = &runs[0];
    assert_eq!(
        (run["user"].as_str(), run["project"].as_str()),
        (Some("ctalice"), Some("ProjectA")),
        "{shown:#}"
    );
    assert_eq!(run["state"], "COMPLETED", "{shown:#}");
    // What Slurm accounted for the job, and its worth: half of a 3.6/h node.
    let elapsed = cluster.run_root(
        "sacct",
        &[
            "--parsable2",
            "--noheader",
            "--allocations",
            "-j",
            job,
            "--format=ElapsedRaw",
        ],
    );
    let elapsed: i64 = String::from_utf8_lossy(&elapsed.stdout).trim().parse().unwrap();
    assert_eq!(run["seconds"].as_i64(), Some(elapsed), "{shown:#}");
    let cost = run["cost"].as_f64().unwrap();
    assert!((cost - elapsed as f64 * 0.0005).abs() < 1e-9, "{shown:#}");
    assert_eq!(shown["price_sources"]["local"]["on_demand"], "settings", "{shown:#}");
    let table = as_alice(&["job", job]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("ProjectA") && text.contains("Cost in all: ") && text.contains("price: local"),
        "{text}"
    );
    // No such job (or not hers): exit 1.
    let out = as_alice(&["job", "999999"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));

    let out = as_alice(&["report", "--since", &utc(since), "--format", "json", "--by", "project"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let groups = doc["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "ctalice sees only ProjectA: {doc:#}");
    assert_eq!(groups[0]["group"]["project"], "ProjectA");
    assert!(
        (groups[0]["cost"].as_f64().unwrap() - project_a).abs() < 1e-6,
        "{doc:#}"
    );
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == cost_tags::cli::report::OWN_JOBS),
        "{doc:#}"
    );
}

/// Issue 13 end to end: prices from AWS (moto, the Price List stand-in), the estimate from
/// the real sacct, the bill from Cost Explorer answers queued in moto. With the overhead
/// spread, the projects' billed costs add up to the cluster's bill, each project's share of
/// the untagged cost is its share of the estimate, and the cache priced every job.
fn billed_beside_the_estimate(cluster: &SlurmCluster, since: u64, accounted: &Value) {
    let Some(moto) = MotoServer::start() else { return };
    let mut products = crate::prices::products();
    products.push(linux_product("C5L", "c5.large", "us-east-1", "0.0850000000"));
    let price_list = PriceListStandIn::start(products);
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cost-tags.toml");
    std::fs::write(
        &settings,
        format!(
            "project_source = \"comment\"\ncache_dir = \"{d}/run\"\n[pricing]\nfleet_config = \"\"\n\
             cache_file = \"{d}/prices.json\"\n[pricing.partitions.compute]\ninstance = \"c5.large\"\n\
             [pricing.partitions.gpu]\ninstance = \"c5.large\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let cost_tags = |args: &[&str]| {
        let mut cmd = Command::new(crate::bin("cost-tags"));
        moto::apply_env(&mut cmd, &moto.endpoint());
        let out = cmd
            .env("AWS_ENDPOINT_URL_PRICING", price_list.endpoint())
            .env("SLURM_CONF", cluster.conf_path())
            .arg("--config")
            .arg(&settings)
            .args(args)
            .output()
            .expect("run cost-tags");
        assert!(
            out.status.success(),
            "cost-tags {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    cost_tags(&["prices", "refresh"]);
    // One day of bill, the day the window starts (whatever day it ends).
    let (day, next) = (&utc(since)[..10], &utc(since + 86_400)[..10]);
    let bill = crate::prices::ce_day(day, next, &[("ProjectA", "1.00"), ("ProjectB", "2.00"), ("", "3.00")]);
    let results = vec![serde_json::json!({ "ResultsByTime": [bill] })];
    moto.queue_cost_and_usage(&results);
    let out = cost_tags(&[
        "report",
        "--since",
        &utc(since),
        "--format",
        "json",
        "--billed",
        "--cluster-name",
        "c1",
        "--overhead",
        "proportional",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["unpriced"]["jobs"], 0, "the cache priced every job: {doc:#}");
    // The same projects as the report priced from the settings (more jobs may have run
    // since, in the phases before this one, but no other project).
    let projects = |d: &Value| {
        let mut p: Vec<String> = d["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["group"]["project"].to_string())
            .collect();
        p.sort();
        p
    };
    assert_eq!(projects(&doc), projects(accounted), "{doc:#}");
    let billed = &doc["billed"];
    let total = billed["total"].as_f64().unwrap();
    let untagged = billed["untagged"].as_f64().unwrap();
    assert!((total - 6.0).abs() < 1e-9 && (untagged - 3.0).abs() < 1e-9, "{doc:#}");
    let estimate: f64 = doc["total"]["cost"].as_f64().unwrap();
    let mut sum = 0.0;
    for g in doc["groups"].as_array().unwrap() {
        let project = g["group"]["project"].as_str().unwrap();
        let (cost, billed_cost, overhead) = (
            g["cost"].as_f64().unwrap(),
            g["billed_cost"].as_f64().unwrap(),
            g["overhead_cost"].as_f64().unwrap(),
        );
        assert!(cost > 0.0, "{project}: {doc:#}");
        // The costs are printed to 6 decimals and these jobs cost fractions of a cent:
        // the share computed from the printed figures is that much less exact.
        let rounding = 2.0 * untagged * 1e-6 / estimate;
        assert!(
            (overhead - untagged * cost / estimate).abs() <= rounding,
            "{project}: share of the estimate: {doc:#}"
        );
        assert!(
            (billed_cost - overhead - billed["by_project"][project].as_f64().unwrap()).abs() < 1e-5,
            "{doc:#}"
        );
        sum += billed_cost;
    }
    assert!(
        (sum - total).abs() < 1e-5,
        "the projects' billed costs add up to the bill: {sum} vs {total}"
    );
}

/// Issue 14: `budget refresh` with `[budget.limits]` (no AWS Budgets) counts what a running
/// job has spent so far and what it commits up to its time limit, from the real sacct and
/// scontrol: a whole 2-CPU node at 3.6/h (0.001/s) for a 10-minute limit makes 0.6 in all.
/// With `array`, the job is task 1 of an array: sacct names it `N_1`, squeue's %A by
/// another number, and its project (from squeue while it runs) must still be found.
fn committed_spend_of_a_running_job(cluster: &SlurmCluster, array: bool) {
    // Another project for the array, so that the first call's job is not counted again.
    let project = if array { "ProjectD" } else { "ProjectC" };
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cost-tags.toml");
    let cache = dir.path().join("budgets.jsonl");
    std::fs::write(
        &settings,
        format!("{SETTINGS}[budget]\nenabled = true\ncache_file = {cache:?}\n[budget.limits]\n{project} = 100\n"),
    )
    .unwrap();
    let mut args = vec![
        "-o",
        "/dev/null",
        "-p",
        "compute",
        "-N1",
        "--exclusive",
        "--time",
        "10",
        "--comment",
        project,
        "--wrap",
        "sleep 120",
    ];
    if array {
        args.extend(["--array", "1-1"]);
    }
    let out = cluster.run_as("ctalice", "sbatch", &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let job = parse_job_id(&out.stdout).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(
        &cluster
            .run_root("squeue", &["-h", "-j", &job.to_string(), "-o", "%T"])
            .stdout,
    )
    .contains("RUNNING")
    {
        let queue = cluster.run_root("squeue", &["-h", "-a", "-o", "%i %T %r %P"]);
        assert!(
            Instant::now() < deadline,
            "job {job} never ran: {}",
            String::from_utf8_lossy(&queue.stdout)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // slurmctld tells slurmdbd of the start a moment later: wait until sacct knows it.
    while !String::from_utf8_lossy(
        &Command::new("sacct")
            .args(["-n", "-X", "-o", "State", "-j", &job.to_string()])
            .env("SLURM_CONF", cluster.conf_path())
            .output()
            .unwrap()
            .stdout,
    )
    .contains("RUNNING")
    {
        assert!(Instant::now() < deadline, "sacct never listed job {job} as running");
        std::thread::sleep(Duration::from_millis(300));
    }
    // Two seconds of it spent by the refresh, the rest of its 10 minutes committed.
    std::thread::sleep(Duration::from_secs(2));
    let out = Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(&settings)
        .args(["budget", "refresh"])
        .env("SLURM_CONF", cluster.conf_path())
        .output()
        .expect("budget refresh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    cluster.run_root("scancel", &[&job.to_string()]);
    let text = std::fs::read_to_string(&cache).unwrap();
    let text = format!("{text}\nbudget refresh said: {}", String::from_utf8_lossy(&out.stderr));
    let line = text
        .lines()
        .find(|l| l.contains(&format!("\"{project}\"")))
        .unwrap_or_else(|| panic!("{text}"));
    let spend: Value = serde_json::from_str(line).unwrap();
    let (accrued, committed) = (spend["accrued"].as_f64().unwrap(), spend["committed"].as_f64().unwrap());
    assert_eq!(spend["running_jobs"], 1, "{text}");
    assert_eq!(spend["actual"], 0.0, "no AWS Budgets: Slurm's figures alone: {text}");
    assert!(accrued > 0.0 && committed > 0.0, "{text}");
    // Spent so far plus committed to the limit is the whole 10 minutes (Slurm counts
    // whole seconds, and the refresh took a moment between its two instants).
    assert!(
        (accrued + committed - 0.6).abs() < 0.01,
        "{accrued} + {committed}: {text}"
    );
    // The header records the partitions' prices and time limits for project-check.
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["partitions"]["compute"]["hourly"], 3.6, "{text}");
    assert_eq!(header["partitions"]["compute"]["is_default"], true, "{text}");
}

/// Issue 21, items 3 and 5, through `budget refresh` with AWS Budgets (moto) and the real
/// Slurm: pending jobs are committed at their worst case, from squeue; a refresh whose
/// sacct cannot reach slurmdbd exits 1, keeps the previous cache's Slurm figures (never
/// AWS's alone), says so in the log, and the metrics show it.
#[test]
fn budget_refresh_commits_pending_jobs_and_keeps_slurms_figures_when_it_cannot_read_it() {
    if !support::slurm::available() {
        assert!(SlurmCluster::start(SlurmOptions::default()).is_none());
        return;
    }
    if !support::require(
        "python3 with prometheus-client (pip install prometheus-client)",
        crate::metrics::parser_available(),
    ) {
        return;
    }
    ensure_test_users();
    let Some(dbd) = SlurmDbd::start(&[("physics", &["ctalice", "ctbob"])]) else {
        return;
    };
    let opts = SlurmOptions {
        extra_conf: dbd.slurm_conf_lines(),
        ..SlurmOptions::default()
    };
    let Some(cluster) = SlurmCluster::start(opts) else {
        return;
    };
    let Some(moto) = MotoServer::start() else { return };
    // Longer than squeue's default column of 20: the project field must come whole.
    let project = "ProjectPendingWithALongName";
    support::moto::block_on(async {
        let client = support::moto::budgets_client(&moto.endpoint());
        support::moto::add_budget(&client, project, "100", "1.5").await;
    });
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cost-tags.toml");
    let cache = dir.path().join("budgets.jsonl");
    std::fs::write(
        &settings,
        format!("{SETTINGS}[budget]\nenabled = true\ncache_file = {cache:?}\n"),
    )
    .unwrap();
    let submit = |user: &str, args: &[&str]| {
        let out = cluster.run_as(user, "sbatch", args);
        assert!(
            out.status.success(),
            "sbatch {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_job_id(&out.stdout).unwrap().to_string()
    };
    // Held: up to 3 whole nodes for 30 min, 2 array tasks: 2 x 3 x 0.5 h x 3.6 = 10.8.
    let held = submit(
        "ctalice",
        &[
            "--hold",
            "-o",
            "/dev/null",
            "-p",
            "compute",
            "-N",
            "1-3",
            "--exclusive",
            "-t",
            "30",
            "--array=0-1",
            "--comment",
            project,
            "--wrap",
            "true",
        ],
    );
    // Not before an hour from now: one CPU of the 2-CPU spot node for 1 h: 0.5 x 1.8 = 0.9.
    let later = submit(
        "ctbob",
        &[
            "--begin=now+1hour",
            "-o",
            "/dev/null",
            "-p",
            "gpu",
            "-n1",
            "-t",
            "60",
            "--comment",
            project,
            "--wrap",
            "true",
        ],
    );
    let refresh = |conf: &std::path::Path| {
        let mut cmd = Command::new(crate::bin("cost-tags"));
        moto::apply_env(&mut cmd, &moto.endpoint());
        cmd.arg("--config")
            .arg(&settings)
            .args(["budget", "refresh"])
            .env("SLURM_CONF", conf)
            .output()
            .expect("budget refresh")
    };
    let out = refresh(cluster.conf_path());
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{said}");
    let before = std::fs::read_to_string(&cache).unwrap();
    let line = before
        .lines()
        .find(|l| l.contains(&format!("\"{project}\"")))
        .unwrap_or_else(|| panic!("{before}\n{said}"));
    let spend: Value = serde_json::from_str(line).unwrap();
    assert_eq!(spend["pending_jobs"], 2, "{before}\n{said}");
    assert_eq!(spend["running_jobs"], 0, "{before}\n{said}");
    assert_eq!(spend["actual"], 1.5, "{before}");
    // 10.8 + 0.9 = 11.7, nothing else queued or running.
    let committed = spend["committed"].as_f64().unwrap();
    assert!((committed - 11.7).abs() < 1e-9, "{committed}: {before}\n{said}");

    // slurmdbd unreachable: the same cluster, its accounting port closed.
    let conf = std::fs::read_to_string(cluster.conf_path()).unwrap();
    let port = format!("AccountingStoragePort={}", dbd.port());
    assert!(conf.contains(&port), "{conf}");
    let broken = dir.path().join("slurm.conf");
    std::fs::write(
        &broken,
        conf.replace(
            &port,
            &format!("AccountingStoragePort={}", support::process::free_port()),
        ),
    )
    .unwrap();
    let out = refresh(&broken);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("Slurm could not be read"), "{said}");
    assert!(said.contains("with its Slurm figures"), "{said}");
    let after = std::fs::read_to_string(&cache).unwrap();
    // The budgets' lines as they were (never AWS's figure alone); the header marked.
    assert_eq!(
        after.lines().skip(1).collect::<Vec<_>>(),
        before.lines().skip(1).collect::<Vec<_>>()
    );
    let (old, new): (Value, Value) = (
        serde_json::from_str(before.lines().next().unwrap()).unwrap(),
        serde_json::from_str(after.lines().next().unwrap()).unwrap(),
    );
    assert_eq!(new["refreshed_at"], old["refreshed_at"], "its age still shows: {after}");
    assert_eq!(new["partitions"], old["partitions"], "{after}");
    assert!(new["slurm_failed_at"].as_u64().is_some(), "{after}");

    let read_ok = || {
        let out = Command::new(crate::bin("cost-tags"))
            .arg("--config")
            .arg(&settings)
            .arg("metrics")
            .env("SLURM_CONF", cluster.conf_path())
            .output()
            .expect("cost-tags metrics");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        crate::metrics::parse(&text)
            .into_iter()
            .find(|(name, _, _)| name == "cost_tags_budget_slurm_read_ok")
            .unwrap_or_else(|| panic!("{text}"))
            .2
    };
    assert_eq!(read_ok(), 0.0);
    // Slurm back: the next refresh writes its figures, and the mark is gone.
    assert_eq!(refresh(cluster.conf_path()).status.code(), Some(0));
    assert_eq!(read_ok(), 1.0);
    cluster.run_root("scancel", &[held.as_str(), later.as_str()]);
}

/// Issue 24, item 4: `report --by job` against the real sacct. ctalice runs a busy loop
/// on one CPU for 4 s and a 4 s sleep; the busy job's TotalCPU (what slurmstepd recorded)
/// is most of its elapsed time, the sleeping one's next to none, and the wasted cost is
/// the cost times the unused share. A third job asks for 300 MB and fills 200 MiB: its
/// batch step's MaxRSS (what jobacct_gather/linux sampled, each second here) is most of
/// its request, the sleeping job's (no `--mem`: the node's 512 MB) next to nothing.
#[test]
fn per_job_rows_tell_a_busy_job_from_a_sleeping_one() {
    if !support::slurm::available() {
        assert!(SlurmCluster::start(SlurmOptions::default()).is_none());
        return;
    }
    ensure_test_users();
    let Some(dbd) = SlurmDbd::start(&[("physics", &["ctalice", "ctbob"])]) else {
        return;
    };
    // The fixture gathers no usage by default; TotalCPU and MaxRSS need a gather plugin,
    // and a 4 s job's peak memory a sample a second (the default is every 30 s).
    let mut extra_conf = dbd.slurm_conf_lines();
    extra_conf.push("JobAcctGatherType=jobacct_gather/linux".into());
    extra_conf.push("JobAcctGatherFrequency=task=1".into());
    let opts = SlurmOptions {
        extra_conf,
        ..SlurmOptions::default()
    };
    let Some(cluster) = SlurmCluster::start(opts) else {
        return;
    };
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 60;
    let submit = |mem: &[&str], wrap: &str| {
        let mut args = vec![
            "-o",
            "/dev/null",
            "-p",
            "compute",
            "-n1",
            "-t",
            "5",
            "--comment",
            "ProjectE",
        ];
        args.extend(mem);
        args.extend(["--wrap", wrap]);
        let out = cluster.run_as("ctalice", "sbatch", &args);
        assert!(
            out.status.success(),
            "sbatch {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            cluster.log_tails()
        );
        parse_job_id(&out.stdout).expect("job id").to_string()
    };
    let busy = submit(&[], "timeout 4 sh -c 'while :; do :; done'; true");
    let idle = submit(&[], "sleep 4");
    // 200 MiB written (so resident), held for 4 s.
    let hog = submit(
        &["--mem=300M"],
        "python3 -c \"b = b'x' * (200 << 20); import time; time.sleep(4)\"",
    );
    // A second Unix group: ctbob runs sbatch under his supplementary group ctgpu (`sg`),
    // so the job's Group in sacct is ctgpu, not the primary group of the others.
    let other_group = {
        let out = cluster.run_as(
            "ctbob",
            "sg",
            &[
                "ctgpu",
                "-c",
                "sbatch -o /dev/null -p compute -n1 -t 5 --comment ProjectG --wrap 'sleep 2'",
            ],
        );
        assert!(
            out.status.success(),
            "sg ctgpu sbatch as ctbob: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_job_id(&out.stdout).expect("job id").to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cost-tags.toml");
    std::fs::write(&settings, SETTINGS).unwrap();
    let report = || {
        let out = Command::new(crate::bin("cost-tags"))
            .arg("--config")
            .arg(&settings)
            .args(["report", "--since", &utc(since), "--by", "job", "--format", "json"])
            .env("SLURM_CONF", cluster.conf_path())
            .output()
            .expect("run cost-tags report --by job");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc
    };
    // Both ended and recorded with their CPU time (the batch step's record may come
    // after the job's end).
    let raw = || {
        let out = cluster
            .command_root("sacct")
            .args(["--parsable2", "--allusers", "--truncate", "-S", &utc(since)])
            .args(["--format=JobID,State,ElapsedRaw,NCPUS,TotalCPU,UserCPU,MaxRSS,ReqMem,Comment"])
            .output()
            .expect("sacct");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = |doc: &Value, id: &str| {
        doc["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job_id"] == id)
            .cloned()
    };
    let doc = loop {
        let doc = report();
        let done = job(&doc, &other_group).is_some_and(|j| j["state"] == "COMPLETED")
            && [&busy, &idle, &hog].iter().all(|id| {
                job(&doc, id).is_some_and(|j| {
                    j["state"] == "COMPLETED" && !j["cpu_efficiency"].is_null() && !j["mem_efficiency"].is_null()
                })
            });
        let busy_counted = job(&doc, &busy).is_some_and(|j| j["cpu_efficiency"].as_f64() > Some(0.0));
        if done && busy_counted {
            break doc;
        }
        assert!(
            Instant::now() < deadline,
            "jobs not recorded: {doc:#}\n{}\n{}\n{}",
            raw(),
            cluster.log_tails(),
            dbd.log_tails()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // sacct lists the steps too (for their usage): passed over, not skipped lines. (While
    // the jobs were being recorded, a poll could find them in the records but not yet in
    // the list of ids asked just before: hence checked on the final report only.)
    assert_eq!(doc["skipped"]["lines"], 0, "{doc:#}");
    // Two Unix groups: `--by group` splits the four jobs' cost between them.
    let group_of = |id: &str| job(&doc, id).unwrap()["group"].as_str().unwrap().to_string();
    assert_eq!(group_of(&other_group), "ctgpu", "{doc:#}");
    let primary = group_of(&busy);
    assert_ne!(primary, "ctgpu", "{doc:#}");
    let out = Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(&settings)
        .args(["report", "--since", &utc(since), "--by", "group", "--format", "json"])
        .env("SLURM_CONF", cluster.conf_path())
        .output()
        .expect("run cost-tags report --by group");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let by_group: Value = serde_json::from_slice(&out.stdout).unwrap();
    let groups: BTreeMap<String, f64> = by_group["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"]["group"].as_str().unwrap().to_string(),
                g["cost"].as_f64().unwrap(),
            )
        })
        .collect();
    let cost_of = |ids: &[&String]| -> f64 {
        ids.iter()
            .map(|id| job(&doc, id).unwrap()["cost"].as_f64().unwrap())
            .sum()
    };
    assert_eq!(groups.len(), 2, "{by_group:#}");
    assert!(
        (groups["ctgpu"] - cost_of(&[&other_group])).abs() < 1e-4,
        "{by_group:#}\n{doc:#}"
    );
    assert!(
        (groups[&primary] - cost_of(&[&busy, &idle, &hog])).abs() < 1e-4,
        "{by_group:#}\n{doc:#}"
    );
    let (busy, idle, hog) = (
        job(&doc, &busy).unwrap(),
        job(&doc, &idle).unwrap(),
        job(&doc, &hog).unwrap(),
    );
    // 200 MiB of 300 MB asked is .67 (MaxRSS measured 214368K: .70); a sleep's few MiB
    // of the node's 512 MB, under .02.
    let memory = |j: &Value| j["mem_efficiency"].as_f64().unwrap();
    assert!(memory(&hog) > 0.6 && memory(&hog) < 0.9, "hog: {hog}");
    assert!(memory(&idle) < 0.05, "sleeping: {idle}");
    let efficiency = |j: &Value| j["cpu_efficiency"].as_f64().unwrap();
    // On a shared 2-core machine a 4 s busy loop measured 1.5 to 2.1 s of CPU (1.5 while
    // the memory job ran beside it); a sleep, a few milliseconds.
    assert!(efficiency(&busy) > 0.15, "busy: {busy}");
    assert!(efficiency(&idle) < 0.05, "sleeping: {idle}");
    assert!(
        efficiency(&busy) > 10.0 * efficiency(&idle),
        "busy: {busy}\nsleeping: {idle}"
    );
    for j in [&busy, &idle] {
        assert_eq!(j["gpu"], false, "{j}");
        assert_eq!(j["instance_types"], "local", "{j}");
        assert_eq!(j["project"], "ProjectE", "{j}");
        assert_eq!(j["user"], "ctalice", "{j}");
        assert!(!j["group"].as_str().unwrap().is_empty(), "sacct's Group: {j}");
        // Half the 2-CPU node at 0.001/s for its seconds; wasted the unused share.
        let cost = j["cost"].as_f64().unwrap();
        let expected = j["elapsed_seconds"].as_f64().unwrap() * 0.001 / 2.0;
        assert!((cost - expected).abs() < 1e-6, "{j}");
        let wasted = j["wasted_cost"].as_f64().unwrap();
        assert!((wasted - cost * (1.0 - efficiency(j))).abs() < 1e-5, "{j}");
        // A 5 min limit: a few seconds of it used.
        let walltime = j["walltime_accuracy"].as_f64().unwrap();
        assert!(walltime > 0.0 && walltime < 0.1, "{j}");
    }
    // The grouped report (sacct without --allocations, for TotalCPU): ProjectE's wasted
    // cost is the three jobs' (what --by job says), none of them left out (ctgpu's job is
    // ProjectG's).
    let out = Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(&settings)
        .args(["report", "--since", &utc(since), "--by", "project", "--format", "json"])
        .env("SLURM_CONF", cluster.conf_path())
        .output()
        .expect("run cost-tags report --by project");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let grouped: Value = serde_json::from_slice(&out.stdout).unwrap();
    let per_job: f64 = [&busy, &idle, &hog]
        .iter()
        .map(|j| j["wasted_cost"].as_f64().unwrap())
        .sum();
    let group = grouped["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"]["project"] == "ProjectE")
        .expect("ProjectE in the grouped report");
    assert_eq!(group["jobs"], 3, "{grouped:#}");
    assert_eq!(group["wasted_unknown_jobs"], 0, "{grouped:#}");
    let wasted = group["wasted_cost"].as_f64().unwrap();
    assert!(
        (wasted - per_job).abs() < 1e-5,
        "{wasted} against {per_job}: {grouped:#}"
    );
    assert_eq!(grouped["skipped"]["lines"], 0, "steps are passed over: {grouped:#}");
}
