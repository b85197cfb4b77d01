//! `cost-tags metrics` end to end: a budget cache and saved sacct output in, a file for
//! node_exporter's textfile collector out, read back by prometheus-client's strict
//! OpenMetrics parser (the Python reference implementation) and checked against figures
//! computed by hand.

use crate::support;

use std::collections::BTreeMap;
use std::process::Command;

use cost_tags::budget::cache::BudgetCache;
use cost_tags::model::budget_spend::BudgetSpend;
use cost_tags::model::time;

/// Parses OpenMetrics text from stdin; prints [name, labels, value] per sample as JSON.
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    assert family.type == "gauge", family
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;

pub(crate) fn parser_available() -> bool {
    support::tool_command("python3")
        .args(["-c", "import prometheus_client.openmetrics.parser"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn metrics_file_parses_as_openmetrics_with_the_hand_computed_figures() {
    if !support::require(
        "python3 with prometheus-client (pip install prometheus-client)",
        parser_available(),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = |s: &str| time::parse(s).unwrap().0;
    let now = t("2024-03-15T12:00");

    // The budget cache as `budget refresh` leaves it, two minutes ago.
    let mut cache = BudgetCache::new("123456789012", now - 120);
    cache.budgets.insert(
        "hpc-ProjectA".into(),
        BudgetSpend {
            limit: 100.0,
            actual: 40.0,
            unit: "USD".into(),
            period: "MONTHLY".into(),
            accrued: Some(2.5),
            committed: Some(12.0),
            running_jobs: Some(1),
            ..BudgetSpend::default()
        },
    );
    let cache_file = dir.path().join("budgets.jsonl");
    cache.write(&cache_file).unwrap();
    let settings = dir.path().join("cost-tags.toml");
    std::fs::write(
        &settings,
        format!(
            "project_source = \"account\"\n[budget]\nname_template = \"hpc-{{project}}\"\ncache_file = {:?}\n\
             [pricing]\nfleet_config = \"\"\ncache_file = \"\"\n\
             [pricing.instances.n]\non_demand = 3.6\ncpus = 4\n[pricing.partitions.p]\ninstance = \"n\"\n",
            cache_file
        ),
    )
    .unwrap();
    // A node is 3.6/h. alice: 1 h of a whole node (3.6), and half a node for the 30 min
    // her running job has run (0.9) = 4.5. bob: 2 h of a whole node, 1 h of it in March
    // = 3.6 (the window starts on the 1st, 00:00 UTC).
    let sacct = dir.path().join("sacct.txt");
    std::fs::write(
        &sacct,
        "\
1|COMPLETED|alice|physics|p|2024-03-10T10:00:00|2024-03-10T11:00:00|1|4|cpu=4,node=1|n1
2|RUNNING|alice|physics|p|2024-03-15T11:30:00|Unknown|1|2|cpu=2,node=1|n2
3|COMPLETED|bob|chem|p|2024-02-29T23:00:00|2024-03-01T01:00:00|1|4|cpu=4,node=1|n3
",
    )
    .unwrap();
    let prom = dir.path().join("cost_tags.prom");
    let out = Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(&settings)
        .args(["metrics", "--now", "2024-03-15T12:00", "--sacct-file"])
        .arg(&sacct)
        .arg("--output")
        .arg(&prom)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "--output writes the file only");
    let text = std::fs::read_to_string(&prom).unwrap();
    // node_exporter reads every *.prom in its directory: nothing else is left there.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".prom"))
        .collect();
    assert_eq!(names, ["cost_tags.prom"]);

    let mut python = support::tool_command("python3")
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    python.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let parsed = python.wait_with_output().unwrap();
    assert!(
        parsed.status.success(),
        "not OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let samples: Vec<(String, BTreeMap<String, String>, f64)> = serde_json::from_slice(&parsed.stdout).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|s| s.2)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in {text}"))
    };
    let project = [("project", "ProjectA"), ("currency", "USD")];
    assert_eq!(
        value("cost_tags_project_spend", &project),
        42.5,
        "40 from AWS + 2.5 accrued"
    );
    assert_eq!(value("cost_tags_project_limit", &project), 100.0);
    assert_eq!(value("cost_tags_project_committed", &project), 12.0);
    assert_eq!(value("cost_tags_project_running_jobs", &[("project", "ProjectA")]), 1.0);
    assert_eq!(value("cost_tags_budget_cache_age_seconds", &[]), 120.0);
    assert_eq!(value("cost_tags_budget_slurm_read_ok", &[]), 1.0);
    assert_eq!(
        value("cost_tags_user_spend", &[("user", "alice"), ("currency", "USD")]),
        4.5
    );
    assert_eq!(
        value("cost_tags_user_spend", &[("user", "bob"), ("currency", "USD")]),
        3.6
    );
    assert_eq!(samples.len(), 8, "{text}");

    // Without a budget cache: the users' figures alone, and said.
    std::fs::remove_file(&cache_file).unwrap();
    let out = Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(&settings)
        .args(["metrics", "--now", "2024-03-15T12:00", "--sacct-file"])
        .arg(&sacct)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("cost_tags_user_spend{user=\"bob\",currency=\"USD\"} 3.6\n"),
        "{text}"
    );
    assert!(!text.contains("cost_tags_project_spend{"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no project metrics"));
}

/// The samples of OpenMetrics `text` as prometheus-client's strict parser reads them
/// (`[name, labels, value]`); panics when it is not OpenMetrics.
pub(crate) fn parse(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut python = support::tool_command("python3")
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    python.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let parsed = python.wait_with_output().unwrap();
    assert!(
        parsed.status.success(),
        "not OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    serde_json::from_slice(&parsed.stdout).unwrap()
}
