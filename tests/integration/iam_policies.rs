//! The IAM policies in scripts/iam and the example cluster configuration, checked with the
//! tools AWS users check them with: every policy is JSON that parliament (an IAM linter
//! built from AWS's Service Authorization Reference) finds nothing wrong with once its
//! placeholders are filled; the compute policy, whose credentials every job can read,
//! grants nothing beyond the tag calls and DescribeTags, fenced to this cluster's compute
//! nodes and cost keys; and ParallelCluster's own schema loads examples/cluster-config.yaml.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{self, require};

/// The policies' placeholders and the values scripts/iam/README.md's `sed` puts there.
const PLACEHOLDERS: [(&str, &str); 3] = [
    ("CLUSTER_NAME", "mycluster"),
    ("REGION", "us-east-1"),
    ("ACCOUNT_ID", "111122223333"),
];

/// The only actions the compute policy may allow.
const COMPUTE_ACTIONS: [&str; 3] = ["ec2:CreateTags", "ec2:DeleteTags", "ec2:DescribeTags"];

/// The python that loads the example with ParallelCluster's schema: it reads the path of
/// the configuration and the cluster name from its arguments, and prints the policies
/// attached to the head node and to each queue as JSON.
const LOAD_CLUSTER_CONFIG: &str = r#"
import json, sys, yaml
from pcluster.schemas.cluster_schema import ClusterSchema
with open(sys.argv[1]) as f:
    config = ClusterSchema(cluster_name=sys.argv[2]).load(yaml.safe_load(f))
print(json.dumps({
    "head_node": [p.policy for p in config.head_node.iam.additional_iam_policies],
    "queues": {q.name: [p.policy for p in q.iam.additional_iam_policies] for q in config.scheduling.queues},
}))
"#;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every policy file in scripts/iam, sorted.
fn policy_files() -> Vec<PathBuf> {
    let dir = repo().join("scripts/iam");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read scripts/iam")
        .map(|e| e.expect("scripts/iam entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for wanted in ["cost-tags-compute-policy.json", "cost-tags-head-policy.json"] {
        assert!(
            files.iter().any(|f| f.ends_with(wanted)),
            "scripts/iam/{wanted} is missing"
        );
    }
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn parse(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The policy as it is uploaded: placeholders filled as the README does.
fn rendered(path: &Path) -> String {
    PLACEHOLDERS.iter().fold(read(path), |text, (placeholder, value)| {
        text.replace(placeholder, value)
    })
}

fn statements(policy: &Value) -> &Vec<Value> {
    policy["Statement"].as_array().expect("Statement is a list")
}

/// A string-or-list element (Action, Resource, a condition value) as a list.
fn list(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().map(|v| v.as_str().expect("a string")).collect(),
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

fn sid(statement: &Value) -> &str {
    statement["Sid"].as_str().expect("every statement has a Sid")
}

#[test]
fn every_policy_file_is_json_with_named_statements() {
    for path in policy_files() {
        let policy = parse(&path);
        // Policy variables and sound condition semantics need this version.
        assert_eq!(policy["Version"], "2012-10-17", "{}", path.display());
        let statements = statements(&policy);
        assert!(!statements.is_empty(), "{} has no statement", path.display());
        let mut sids: Vec<&str> = statements.iter().map(sid).collect();
        sids.sort_unstable();
        sids.dedup();
        assert_eq!(sids.len(), statements.len(), "{}: Sids must be unique", path.display());
        serde_json::from_str::<Value>(&rendered(&path)).expect("the filled-in policy is JSON");
    }
}

/// The README's table is the only place that says which command needs a statement.
#[test]
fn every_statement_is_explained_in_the_readme() {
    let readme = read(&repo().join("scripts/iam/README.md"));
    for path in policy_files() {
        for statement in statements(&parse(&path)) {
            let row = format!("| `{}` |", sid(statement));
            assert!(
                readme.contains(&row),
                "scripts/iam/README.md has no table row for {row}"
            );
        }
    }
}

#[test]
fn parliament_finds_nothing_in_any_policy() {
    let available = support::tool_command("parliament")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !require("parliament (pip install parliament)", available) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let lint = |path: &Path| {
        // stdin must not be a pipe: parliament would take it for a policy.
        let out = support::tool_command("parliament")
            .arg("--json")
            .arg("--files")
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .expect("run parliament");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    // The linter really looks: a wildcard grant is a finding.
    let canary = dir.path().join("canary.json");
    std::fs::write(
        &canary,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}"#,
    )
    .expect("write canary");
    let (ok, findings) = lint(&canary);
    assert!(
        !ok && findings.contains("RESOURCE_STAR"),
        "parliament missed a wildcard grant: {findings}"
    );

    for path in policy_files() {
        let filled = dir.path().join(path.file_name().expect("file name"));
        std::fs::write(&filled, rendered(&path)).expect("write filled-in policy");
        let (ok, findings) = lint(&filled);
        assert!(
            ok && findings.is_empty(),
            "parliament on {}:\n{findings}",
            path.display()
        );
    }
}

/// A CreateTags/DeleteTags statement must be fenced to this cluster's compute instances
/// and to the cost keys, and must refuse a DeleteTags without keys (which deletes every tag).
fn assert_tagging_is_fenced(statement: &Value) {
    let name = sid(statement);
    assert_eq!(
        list(&statement["Resource"]),
        ["arn:aws:ec2:REGION:ACCOUNT_ID:instance/*"],
        "{name}: instances of the cluster's account and region only"
    );
    let condition = &statement["Condition"];
    let equals = &condition["StringEquals"];
    assert_eq!(
        equals["aws:ResourceTag/parallelcluster:cluster-name"], "CLUSTER_NAME",
        "{name}: this cluster only"
    );
    assert_eq!(
        equals["aws:ResourceTag/parallelcluster:node-type"], "Compute",
        "{name}: compute nodes only"
    );
    assert_eq!(
        list(&condition["ForAllValues:StringLike"]["aws:TagKeys"]),
        ["aws-parallelcluster-*"],
        "{name}: cost keys only"
    );
    assert_eq!(
        condition["Null"]["aws:TagKeys"], "false",
        "{name}: a request must name its keys"
    );
}

fn allowed_actions(policy: &Value) -> Vec<(&Value, String)> {
    statements(policy)
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| {
            // NotAction and NotResource grant everything they do not name.
            assert!(
                s.get("NotAction").is_none() && s.get("NotResource").is_none(),
                "{}",
                sid(s)
            );
            list(&s["Action"]).into_iter().map(move |a| (s, a.to_string()))
        })
        .collect()
}

#[test]
fn compute_policy_grants_only_fenced_tagging_and_describe_tags() {
    let policy = parse(&repo().join("scripts/iam/cost-tags-compute-policy.json"));
    let allowed = allowed_actions(&policy);
    for (statement, action) in &allowed {
        // IAM compares actions case-insensitively; a wildcard would match more than these.
        assert!(
            COMPUTE_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(action)),
            "{}: the compute policy may not allow {action}: every job can use it",
            sid(statement)
        );
        if !action.eq_ignore_ascii_case("ec2:DescribeTags") {
            assert_tagging_is_fenced(statement);
        }
    }
    for needed in COMPUTE_ACTIONS {
        assert!(
            allowed.iter().any(|(_, a)| a == needed),
            "the compute policy must allow {needed}"
        );
    }
}

#[test]
fn head_policy_tags_only_like_the_compute_policy() {
    let policy = parse(&repo().join("scripts/iam/cost-tags-head-policy.json"));
    let tagging: Vec<_> = allowed_actions(&policy)
        .into_iter()
        .filter(|(_, a)| {
            let a = a.to_ascii_lowercase();
            a.starts_with("ec2:") && (a.contains("tags") || a.contains('*')) && a != "ec2:describetags"
        })
        .collect();
    assert!(
        !tagging.is_empty(),
        "reconcile --cluster needs ec2:CreateTags and ec2:DeleteTags"
    );
    for (statement, action) in tagging {
        assert!(
            action == "ec2:CreateTags" || action == "ec2:DeleteTags",
            "{}: the head node only creates and deletes tags, not {action}",
            sid(statement)
        );
        assert_tagging_is_fenced(statement);
    }
}

/// A python that has ParallelCluster: scripts/install-deps.sh's virtual environment, else
/// the one on PATH.
fn pcluster_python() -> Option<PathBuf> {
    [
        repo().join("target/venv-pcluster/bin/python3"),
        PathBuf::from("python3"),
    ]
    .into_iter()
    .find(|python| {
        Command::new(python)
            .args(["-c", "import pcluster.schemas.cluster_schema"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn example_cluster_config_loads_with_parallelclusters_schema() {
    let python = pcluster_python();
    if !require(
        "aws-parallelcluster (scripts/install-deps.sh: target/venv-pcluster)",
        python.is_some(),
    ) {
        return;
    }
    let out = Command::new(python.expect("checked above"))
        .arg("-c")
        .arg(LOAD_CLUSTER_CONFIG)
        .arg(repo().join("examples/cluster-config.yaml"))
        .arg("mycluster")
        // Offline: the schema needs a region, and must not look for credentials.
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "ParallelCluster's schema refuses examples/cluster-config.yaml:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let attached: Value = serde_json::from_slice(&out.stdout).expect("the loader prints JSON");
    assert_eq!(
        list(&attached["head_node"]),
        ["arn:aws:iam::111122223333:policy/cost-tags-head-mycluster"],
        "the head node gets the head policy"
    );
    let queues = attached["queues"].as_object().expect("queues");
    assert!(!queues.is_empty());
    for (queue, policies) in queues {
        assert_eq!(
            list(policies),
            ["arn:aws:iam::111122223333:policy/cost-tags-compute-mycluster"],
            "queue {queue} gets the compute policy, and only it"
        );
    }
}
