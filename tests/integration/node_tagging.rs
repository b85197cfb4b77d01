//! cost-prolog and cost-epilog as whole processes, through the real aws-sdk-ec2 to a
//! local moto server (behind a fault-injecting proxy) and IMDSv2 from the emulator.
//! Tags are checked with DescribeTags on moto itself.

use crate::support;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::aws_proxy::{AwsProxy, ProxyMode};
use support::imds::{Imds, ImdsMode};
use support::moto::{apply_env, MotoServer};

const PROJECT: &str = "aws-parallelcluster-project";
const USER: &str = "aws-parallelcluster-username";
const JOBID: &str = "aws-parallelcluster-jobid";

/// One compute node: its instance in moto, its IMDS, its state and settings.
struct Node {
    moto: MotoServer,
    proxy: AwsProxy,
    imds: Imds,
    instance: String,
    dir: tempfile::TempDir,
}

impl Node {
    fn start(extra_settings: &str) -> Option<Node> {
        let moto = MotoServer::start()?;
        let instance = moto.run_instances(1).remove(0);
        let proxy = AwsProxy::start(&moto.endpoint());
        let imds = Imds::start(&instance, "us-east-1");
        let dir = tempfile::tempdir().unwrap();
        let node = Node {
            moto,
            proxy,
            imds,
            instance,
            dir,
        };
        node.write_settings(extra_settings);
        Some(node)
    }

    fn write_settings(&self, extra: &str) {
        let d = self.dir.path();
        std::fs::write(
            d.join("cost-tags.toml"),
            format!(
                "state_dir = {:?}\ncache_dir = {:?}\n{}{extra}\n",
                d.join("state"),
                d.join("run"),
                if extra.contains("deadline") {
                    ""
                } else {
                    "deadline = 3\n"
                }
            ),
        )
        .unwrap();
    }

    fn command(&self, binary: &str, job: &str, user: &str, project: &str) -> Command {
        let mut c = Command::new(crate::bin(binary));
        apply_env(&mut c, &self.proxy.endpoint());
        c.envs(self.imds.env())
            .env("COST_TAGS_CONFIG", self.dir.path().join("cost-tags.toml"))
            // Not this machine's /opt/slurm/etc/cost-tags.env.
            .env("COST_TAGS_ENV_FILE", self.dir.path().join("cost-tags.env"))
            .env("SLURM_JOB_ID", job)
            .env("SLURM_JOB_USER", user)
            .env("SLURM_JOB_COMMENT", project)
            .env("SLURM_JOB_PARTITION", "compute")
            .env("SLURM_CLUSTER_NAME", "test")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, binary: &str, job: &str, user: &str, project: &str) -> (Output, Duration) {
        let started = Instant::now();
        let out = self.command(binary, job, user, project).output().unwrap();
        (out, started.elapsed())
    }

    fn prolog(&self, job: &str, user: &str, project: &str) -> Output {
        let (out, _) = self.run("cost-prolog", job, user, project);
        assert_eq!(
            out.status.code(),
            Some(0),
            "prolog {job}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn epilog(&self, job: &str) -> Output {
        let (out, _) = self.run("cost-epilog", job, "someone", "");
        assert_eq!(
            out.status.code(),
            Some(0),
            "epilog {job}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The instance's cost tags as moto has them (not through the proxy).
    fn cost_tags(&self) -> BTreeMap<String, String> {
        self.moto
            .tags(&self.instance)
            .into_iter()
            .filter(|(k, _)| k.starts_with("aws-parallelcluster-"))
            .collect()
    }

    fn ledger(&self) -> serde_json::Value {
        let path = self.dir.path().join("state/ledger.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn prolog_tags_epilog_untags_shared_node_aggregates() {
    let Some(node) = Node::start("") else { return };
    node.moto
        .create_tags(&node.instance, &[("Name", "Compute"), ("team", "hpc")]);

    node.prolog("101", "ctalice", "ProjectA");
    assert_eq!(
        node.cost_tags(),
        tags(&[(PROJECT, "ProjectA"), (USER, "ctalice"), (JOBID, "101")])
    );
    assert_eq!(
        node.proxy.count("CreateTags"),
        1,
        "one CreateTags at job start: {:?}",
        node.proxy.counts()
    );
    let imds_after_first = node.imds.requests();
    assert!(imds_after_first >= 2, "first run asks IMDS");

    // A second job shares the node: values aggregate, and IMDS is not asked again.
    node.prolog("99", "ctbob", "ProjectB");
    assert_eq!(
        node.cost_tags(),
        tags(&[
            (PROJECT, "ProjectA ProjectB"),
            (USER, "ctalice ctbob"),
            (JOBID, "99 101")
        ])
    );
    assert_eq!(
        node.imds.requests(),
        imds_after_first,
        "identity must come from the cache"
    );

    // The first job ends: the other's tags remain exactly.
    node.proxy.reset_counts();
    node.epilog("101");
    assert_eq!(
        node.cost_tags(),
        tags(&[(PROJECT, "ProjectB"), (USER, "ctbob"), (JOBID, "99")])
    );
    assert_eq!(
        node.proxy.counts().values().sum::<u64>(),
        1,
        "{:?}",
        node.proxy.counts()
    );

    // The last job ends: the cost tags go, with one DeleteTags; user tags stay.
    node.proxy.reset_counts();
    node.epilog("99");
    assert_eq!(node.cost_tags(), BTreeMap::new());
    assert_eq!(node.proxy.counts(), BTreeMap::from([("DeleteTags".to_string(), 1)]));
    let all = node.moto.tags(&node.instance);
    assert_eq!(all.get("Name").map(String::as_str), Some("Compute"));
    assert_eq!(all.get("team").map(String::as_str), Some("hpc"));

    // An epilog for a job the node never saw changes nothing and calls nobody.
    node.proxy.reset_counts();
    node.epilog("12345");
    assert_eq!(node.proxy.counts().values().sum::<u64>(), 0);
}

#[test]
fn controller_mode_keeps_the_ledger_and_calls_neither_aws_nor_imds() {
    let Some(node) = Node::start("[tagging]\nmode = \"controller\"\n") else {
        return;
    };
    node.prolog("101", "ctalice", "ProjectA");
    node.prolog("99", "ctbob", "ProjectB");
    let ids = |node: &Node| -> Vec<String> {
        node.ledger()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&node), ["101", "99"]);
    node.epilog("101");
    assert_eq!(ids(&node), ["99"]);
    assert_eq!(node.ledger()["owed"], false, "nothing is owed: the head node tags");
    assert_eq!(node.proxy.requests(), 0, "{:?}", node.proxy.counts());
    assert_eq!(node.imds.requests(), 0, "{:?}", node.imds.counts());
    assert_eq!(node.cost_tags(), BTreeMap::new());
}

#[test]
fn requeued_prolog_adds_the_job_once() {
    let Some(node) = Node::start("") else { return };
    node.prolog("7", "ctalice", "ProjectA");
    node.proxy.reset_counts();
    node.prolog("7", "ctalice", "ProjectA");
    assert_eq!(node.ledger()["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(
        node.proxy.counts().values().sum::<u64>(),
        0,
        "nothing changed, nothing sent"
    );
    assert_eq!(node.cost_tags()[JOBID], "7");
}

#[test]
fn configured_keys_separator_and_hostile_values() {
    let settings = "[tags]\nuser = \"\"\npartition = \"aws-parallelcluster-partition\"\nseparator = \"/\"";
    let Some(node) = Node::start(settings) else { return };
    node.prolog("1", "ctalice", "'; rm -rf / $(id)\n");
    node.prolog("2", "ctalice", &"P".repeat(1024));
    let got = node.cost_tags();
    assert!(!got.contains_key(USER), "an empty key name switches the key off");
    assert_eq!(got["aws-parallelcluster-partition"], "compute");
    assert_eq!(got[JOBID], "1/2");
    let project = &got[PROJECT];
    assert!(project.len() <= 256, "{project}");
    assert!(
        project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " +-=._:/@".contains(c)),
        "{project}"
    );
}

#[test]
fn concurrent_prologs_and_epilogs_end_with_exactly_the_remaining_jobs() {
    let Some(node) = Node::start("deadline = 30") else {
        return;
    };
    let spawn = |bin: &str, job: u32| {
        node.command(
            bin,
            &job.to_string(),
            &format!("user{}", job % 5),
            &format!("Project{}", job % 3),
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
    };
    let first: Vec<_> = (1..=40).map(|j| spawn("cost-prolog", j)).collect();
    for mut c in first {
        assert!(c.wait().unwrap().success());
    }
    // Epilogs for the even jobs race with prologs for 41..=56.
    let mut second: Vec<_> = (2..=40).step_by(2).map(|j| spawn("cost-epilog", j)).collect();
    second.extend((41..=56).map(|j| spawn("cost-prolog", j)));
    for mut c in second {
        assert!(c.wait().unwrap().success());
    }
    let mut remaining: Vec<u32> = (1..=40).filter(|j| j % 2 == 1).chain(41..=56).collect();
    remaining.sort();
    let ledger_ids: Vec<u32> = {
        let mut v: Vec<u32> = node.ledger()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().parse().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ledger_ids, remaining);
    assert_eq!(node.ledger()["owed"], false);
    let got = node.cost_tags();
    let ids: Vec<String> = remaining.iter().map(u32::to_string).collect();
    assert_eq!(got[JOBID], ids.join(" "));
    assert_eq!(got[PROJECT], "Project0 Project1 Project2");
    eprintln!(
        "76 processes, AWS calls: {:?} (coalesced by the apply lock)",
        node.proxy.counts()
    );
}

/// Each fault: the binary exits 0 within the deadline, the ledger records the debt, and
/// the next run after recovery pays it.
#[test]
fn aws_faults_never_fail_the_job_and_debts_are_paid() {
    let Some(node) = Node::start("") else { return };
    let deadline = Duration::from_secs(3);
    for (i, mode) in [
        ProxyMode::Refuse,
        ProxyMode::Error500,
        ProxyMode::Throttle,
        ProxyMode::Hang,
    ]
    .into_iter()
    .enumerate()
    {
        let job = (200 + i).to_string();
        node.proxy.set_mode(mode);
        let (out, took) = node.run("cost-prolog", &job, "ctalice", "ProjectA");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{mode:?}: {stderr}");
        assert!(
            took < deadline + Duration::from_millis(1500),
            "{mode:?} took {took:?}, deadline {deadline:?}"
        );
        assert!(stderr.contains("tags owed"), "{mode:?}: {stderr}");
        assert_eq!(node.ledger()["owed"], true, "{mode:?}");
        assert!(node.ledger()["last_failure"]["reason"].is_string());

        node.proxy.set_mode(ProxyMode::Pass);
        // An epilog for some other job (nothing to change in the ledger) pays the debt.
        node.epilog("999999");
        assert_eq!(node.ledger()["owed"], false, "{mode:?}");
        assert_eq!(node.cost_tags()[JOBID], job, "{mode:?}");
        node.epilog(&job);
        assert!(node.cost_tags().is_empty());
    }
}

#[test]
fn imds_faults_never_fail_the_job() {
    let Some(node) = Node::start("") else { return };
    for mode in [ImdsMode::Refuse, ImdsMode::Hang] {
        node.imds.set_mode(mode);
        let (out, took) = node.run("cost-prolog", "300", "ctalice", "ProjectA");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{mode:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(took < Duration::from_millis(4500), "{mode:?} took {took:?}");
        assert_eq!(node.ledger()["owed"], true);
    }
    node.imds.set_mode(ImdsMode::Normal);
    node.prolog("301", "ctalice", "ProjectA");
    assert_eq!(node.cost_tags()[JOBID], "300 301");
}

#[test]
fn strict_turns_failure_into_exit_1() {
    let Some(node) = Node::start("strict = true") else {
        return;
    };
    node.proxy.set_mode(ProxyMode::Refuse);
    let (out, _) = node.run("cost-prolog", "5", "ctalice", "ProjectA");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn broken_settings_or_environment_do_not_drain() {
    let Some(node) = Node::start("") else { return };
    std::fs::write(node.dir.path().join("cost-tags.toml"), "deadline = \"soon\"\n").unwrap();
    let (out, _) = node.run("cost-prolog", "5", "ctalice", "ProjectA");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cost-tags.toml"));
    node.write_settings("");
    let mut c = node.command("cost-prolog", "5", "ctalice", "ProjectA");
    let out = c.env_remove("SLURM_JOB_ID").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SLURM_JOB_ID"));
}

/// cost-tags.env wins over the process environment (slurmd passes a prolog none of its
/// own, so the file is what an administrator means); one that others may write is
/// ignored, with an error naming it, because it can make the SDK run code as root.
#[test]
fn env_file_wins_unless_others_can_write_it() {
    use std::os::unix::fs::PermissionsExt;
    let Some(node) = Node::start("") else { return };
    let env_file = node.dir.path().join("cost-tags.env");
    std::fs::write(
        &env_file,
        format!("export AWS_ENDPOINT_URL='{}'\n", node.proxy.endpoint()),
    )
    .unwrap();
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let nothing_listens = format!("http://127.0.0.1:{}", support::process::free_port());
    let mut c = node.command("cost-prolog", "21", "ctalice", "ProjectA");
    let out = c.env("AWS_ENDPOINT_URL", &nothing_listens).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        node.cost_tags().get(JOBID).map(String::as_str),
        Some("21"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut c = node.command("cost-prolog", "22", "ctalice", "ProjectA");
    let out = c.env("AWS_ENDPOINT_URL", &nothing_listens).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: writable by group or others", env_file.display())),
        "{stderr}"
    );
    assert_eq!(node.ledger()["owed"], true, "the dead endpoint was used: {stderr}");
}
