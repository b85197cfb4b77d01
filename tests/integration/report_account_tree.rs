//! `cost-tags report --by parent-account` against real Slurm accounting (issue 24, item
//! 3): a two-level account tree in slurmdbd (root > dept > lab1, lab2; root > solo),
//! ctalice runs in lab1 and solo, ctbob in lab2. The report asks the real sacctmgr for the
//! tree: both labs' jobs roll up to dept, with exactly the cost the per-account report
//! gives the two labs, and solo (a child of root) stands for itself. The same tree saved
//! from sacctmgr and given with --account-tree gives the same report.

use crate::support;

use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cost_tags::slurm::account_tree::SACCTMGR_ARGS;
use serde_json::Value;
use support::slurm::{ensure_test_users, parse_job_id, SlurmCluster, SlurmOptions};
use support::slurmdbd::SlurmDbd;

/// One node of 2 CPUs at 3.6/h (0.001/s); the project is the account, so no comment is
/// needed.
const SETTINGS: &str = r#"
project_source = "account"
[pricing]
currency = "EUR"
fleet_config = ""
cache_file = ""
[pricing.instances.local]
on_demand = 3.6
cpus = 2
[pricing.partitions.compute]
instance = "local"
"#;

fn utc(t: u64) -> String {
    cost_tags::model::time::Plain(cost_tags::model::time::Timestamp::from_second(t as i64)).to_string()
}

/// (group values in `--by` order, jobs, cost) of each group of a JSON report.
fn groups(doc: &Value) -> Vec<(Vec<String>, u64, f64)> {
    let by: Vec<&str> = doc["by"]
        .as_array()
        .expect("by")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            let values = by
                .iter()
                .map(|d| g["group"][d].as_str().unwrap_or("").to_string())
                .collect();
            (
                values,
                g["jobs"].as_u64().unwrap_or(0),
                g["cost"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect()
}

#[test]
fn labs_roll_up_to_their_department() {
    if !support::slurm::available() {
        // Let the fixture say what is missing (and fail under CI=true).
        assert!(SlurmCluster::start(SlurmOptions::default()).is_none());
        return;
    }
    ensure_test_users();
    let Some(dbd) = SlurmDbd::start(&[]) else {
        return;
    };
    let sacctmgr = |args: &[&str]| {
        let out = dbd.sacctmgr(args);
        assert!(
            out.status.success(),
            "sacctmgr {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            dbd.log_tails()
        );
        out
    };
    // The fixture's one cluster: accounts and users go on it without naming it.
    sacctmgr(&["-i", "add", "account", "dept", "parent=root"]);
    sacctmgr(&["-i", "add", "account", "lab1", "parent=dept"]);
    sacctmgr(&["-i", "add", "account", "lab2", "parent=dept"]);
    sacctmgr(&["-i", "add", "account", "solo", "parent=root"]);
    sacctmgr(&["-i", "add", "user", "ctalice", "account=lab1"]);
    sacctmgr(&["-i", "add", "user", "ctalice", "account=solo"]);
    sacctmgr(&["-i", "add", "user", "ctbob", "account=lab2"]);
    let tree = String::from_utf8(sacctmgr(&SACCTMGR_ARGS).stdout).unwrap();
    // What Slurm prints: account associations name their parent, user ones do not.
    for line in [
        "|lab1|dept|",
        "|lab2|dept|",
        "|dept|root|",
        "|solo|root|",
        "|lab1||ctalice",
    ] {
        assert!(tree.contains(line), "{line} not in sacctmgr's tree:\n{tree}");
    }

    let opts = SlurmOptions {
        extra_conf: dbd.slurm_conf_lines(),
        ..SlurmOptions::default()
    };
    let Some(cluster) = SlurmCluster::start(opts) else {
        return;
    };
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 600;
    let submit = |user: &str, account: &str, seconds: &str| {
        let wrap = format!("sleep {seconds}");
        // No output file: job ids start at 1 in every fixture, and /tmp/slurm-1.out may be
        // another user's from an earlier run.
        let args = [
            "-p",
            "compute",
            "-n1",
            "-A",
            account,
            "-o",
            "/dev/null",
            "--wrap",
            wrap.as_str(),
        ];
        let out = cluster.run_as(user, "sbatch", &args);
        assert!(
            out.status.success(),
            "sbatch {args:?} as {user}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            cluster.log_tails()
        );
        parse_job_id(&out.stdout).expect("job id")
    };
    submit("ctalice", "lab1", "2");
    submit("ctbob", "lab2", "3");
    submit("ctalice", "solo", "1");
    let allocations: u64 = 3;

    // Once slurmdbd has every allocation with its end.
    let deadline = Instant::now() + Duration::from_secs(120);
    let recorded = || {
        let out = cluster
            .command_root("sacct")
            .args([
                "--parsable2",
                "--noheader",
                "--allusers",
                "--allocations",
                "--duplicates",
            ])
            .args(["-S", &utc(since), "--format=JobID,Account,State,Start,End"])
            .env("TZ", "UTC")
            .output()
            .expect("sacct");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Its start too: slurmdbd may get a job's end before its start.
    let finished = |text: &str| {
        text.lines()
            .filter(|l| l.contains("|COMPLETED|") && !l.contains("|Unknown"))
            .count() as u64
    };
    while finished(&recorded()) < allocations {
        assert!(
            Instant::now() < deadline,
            "slurmdbd has not {allocations} finished allocations:\n{}\n{}\n{}",
            recorded(),
            cluster.log_tails(),
            dbd.log_tails()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cost-tags.toml");
    std::fs::write(&settings, SETTINGS).unwrap();
    let until = utc(since + 1200);
    let report = |args: &[&str]| -> Value {
        let out: Output = Command::new(crate::bin("cost-tags"))
            .arg("--config")
            .arg(&settings)
            .args(["report", "--since", &utc(since), "--until", &until, "--now", &until])
            .args(["--format", "json"])
            .args(args)
            .env("SLURM_CONF", cluster.conf_path())
            .output()
            .expect("run cost-tags report");
        assert!(
            out.status.success(),
            "report {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["warnings"], serde_json::json!([]), "{doc:#}");
        assert_eq!(doc["total"]["jobs"].as_u64(), Some(allocations), "{doc:#}");
        doc
    };

    let by_account = report(&["--by", "account"]);
    let cost_of = |account: &str| {
        groups(&by_account)
            .into_iter()
            .find(|(g, _, _)| g == &[account])
            .unwrap_or_else(|| panic!("{account}: {by_account:#}"))
            .2
    };
    let dept = cost_of("lab1") + cost_of("lab2");
    assert!(dept > 0.0, "{by_account:#}");

    // sacctmgr asked by the report.
    let by_parent = report(&["--by", "parent-account"]);
    assert_eq!(by_parent["by"], serde_json::json!(["parent_account"]));
    let got = groups(&by_parent);
    assert_eq!(got.len(), 2, "{by_parent:#}");
    let (_, jobs, cost) = got.iter().find(|g| g.0 == ["dept"]).expect("dept, the labs' parent");
    assert_eq!(*jobs, 2, "{by_parent:#}");
    assert!((cost - dept).abs() < 1e-6, "dept {cost}, labs {dept}: {by_parent:#}");
    let solo = got
        .iter()
        .find(|g| g.0 == ["solo"])
        .expect("solo, a child of root, as itself");
    assert_eq!(solo.1, 1);
    assert!((solo.2 - cost_of("solo")).abs() < 1e-9);

    // Both levels: each lab under its department.
    let both = report(&["--by", "parent-account,account"]);
    let mut pairs: Vec<(Vec<String>, u64)> = groups(&both).into_iter().map(|(g, n, _)| (g, n)).collect();
    pairs.sort();
    let pair = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
    assert_eq!(
        pairs,
        [
            (pair("dept", "lab1"), 1),
            (pair("dept", "lab2"), 1),
            (pair("solo", "solo"), 1)
        ],
        "{both:#}"
    );

    // The tree saved from sacctmgr, for offline use: the same report.
    let saved = dir.path().join("tree.txt");
    std::fs::write(&saved, &tree).unwrap();
    let offline = report(&["--by", "parent-account", "--account-tree", saved.to_str().unwrap()]);
    assert_eq!(offline["groups"], by_parent["groups"]);
}
