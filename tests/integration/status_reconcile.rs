//! `cost-tags status` and `cost-tags reconcile` as whole processes against moto (behind the
//! fault proxy) and the IMDSv2 emulator. squeue is the stand-in of
//! tests/support/src/slurm_standin.rs (it prints what Slurm prints for the `-o` it is given,
//! free text raw), scontrol a tiny script with a fixed answer, both passed with the hidden
//! `--squeue`/`--scontrol` options; the real-Slurm end to end is in tests/integration/reconcile_slurm.rs.

use crate::support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use support::aws_proxy::{AwsProxy, ProxyMode};
use support::imds::Imds;
use support::moto::{apply_env, block_on, MotoServer};
use support::slurm_standin::{job, SlurmStandin};

const PROJECT: &str = "aws-parallelcluster-project";
const USER: &str = "aws-parallelcluster-username";
const JOBID: &str = "aws-parallelcluster-jobid";
const CLUSTER_TAG: &str = "parallelcluster:cluster-name";

struct Node {
    slurm: SlurmStandin,
    moto: MotoServer,
    proxy: AwsProxy,
    imds: Imds,
    instance: String,
    dir: tempfile::TempDir,
}

/// A running job on `node` with `comment` and no account, as squeue prints it.
fn running(id: &str, user: &str, node: &str, comment: &str) -> serde_json::Value {
    let mut j = job(id, user, &[node]);
    j["comment"] = comment.into();
    j["account"] = "".into();
    j
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes an executable script that records its arguments in `NAME.args` and prints
/// `NAME.out` (exit code from `NAME.rc` when present).
fn fake_program(dir: &std::path::Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let d = dir.display();
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{d}/{name}.args'\ncat '{d}/{name}.out' 2>/dev/null\n\
             [ -r '{d}/{name}.rc' ] && {{ echo '{name} is broken' >&2; exit \"$(cat '{d}/{name}.rc')\"; }}\nexit 0\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join(format!("{name}.out")), "").unwrap();
    path
}

impl Node {
    fn start() -> Option<Node> {
        Node::start_with("")
    }

    /// A node whose settings also have `extra` lines.
    fn start_with(extra: &str) -> Option<Node> {
        let moto = MotoServer::start()?;
        let instance = moto.run_instances(1).remove(0);
        let proxy = AwsProxy::start(&moto.endpoint());
        let imds = Imds::start(&instance, "us-east-1");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("cost-tags.toml"),
            format!(
                "state_dir = {:?}\ncache_dir = {:?}\ndeadline = 4\n{extra}",
                d.join("state"),
                d.join("run")
            ),
        )
        .unwrap();
        fake_program(d, "scontrol");
        Some(Node {
            slurm: SlurmStandin::new(),
            moto,
            proxy,
            imds,
            instance,
            dir,
        })
    }

    fn command(&self, binary: &str) -> Command {
        let mut c = Command::new(crate::bin(binary));
        apply_env(&mut c, &self.proxy.endpoint());
        c.envs(self.imds.env())
            .env("COST_TAGS_CONFIG", self.dir.path().join("cost-tags.toml"))
            .env("SLURM_CLUSTER_NAME", "test")
            .stdin(Stdio::null());
        c
    }

    fn prolog(&self, job: &str, user: &str, project: &str) {
        let out = self
            .command("cost-prolog")
            .env("SLURM_JOB_ID", job)
            .env("SLURM_JOB_USER", user)
            .env("SLURM_JOB_COMMENT", project)
            .env("SLURM_JOB_PARTITION", "compute")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }

    /// `cost-tags ARGS` with the stand-in squeue and the fake scontrol.
    fn cost_tags(&self, args: &[&str]) -> Output {
        let out = self.cost_tags_command(args).output().unwrap();
        eprintln!(
            "cost-tags {args:?} -> {:?}\n{}{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    fn cost_tags_command(&self, args: &[&str]) -> Command {
        let mut c = self.command("cost-tags");
        c.args(args);
        if args.contains(&"reconcile") {
            c.arg("--squeue")
                .arg(self.slurm.squeue())
                .arg("--scontrol")
                .arg(self.dir.path().join("scontrol"));
        }
        c
    }

    /// The arguments of every squeue call since the last look.
    fn squeue_calls(&self) -> Vec<Vec<String>> {
        let calls = self.slurm.calls("squeue");
        let _ = std::fs::remove_file(self.slurm.dir().join("squeue.calls"));
        calls
    }

    fn cost_tags_on(&self, instance: &str) -> BTreeMap<String, String> {
        self.moto
            .tags(instance)
            .into_iter()
            .filter(|(k, _)| k.starts_with("aws-parallelcluster-"))
            .collect()
    }

    fn ledger_path(&self) -> PathBuf {
        self.dir.path().join("state/ledger.json")
    }

    fn ledger(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.ledger_path()).unwrap()).unwrap()
    }

    fn ledger_ids(&self) -> Vec<String> {
        self.ledger()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect()
    }
}

#[test]
fn stale_entry_dropped_missing_entry_added_and_tags_follow() {
    let Some(n) = Node::start() else { return };
    n.moto.create_tags(&n.instance, &[("team", "hpc")]);
    n.prolog("101", "ctalice", "ProjectA");
    assert_eq!(n.cost_tags_on(&n.instance)[JOBID], "101");

    // 101 is gone (its epilog never ran); 102 runs but its prolog never recorded it. The
    // comment keeps its `|` (it is the last field).
    n.slurm.set_jobs(&[running("102", "ctbob", "q-dy-c5-1", "ProjectB|x")]);
    let out = n.cost_tags(&["reconcile", "--node", "q-dy-c5-1"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("dropped job 101"), "{stdout}");
    assert!(stdout.contains("added job 102"), "{stdout}");
    let asked = |format: &str| {
        [
            "-h",
            "-a",
            "-w",
            "q-dy-c5-1",
            "-t",
            "CONFIGURING,RUNNING,SUSPENDED",
            "-o",
            format,
        ]
        .map(String::from)
    };
    assert_eq!(n.squeue_calls(), [asked("%A|%u|%P|%a|%k"), asked("%A")]);
    assert_eq!(n.ledger_ids(), ["102"]);
    let job = &n.ledger()["jobs"][0];
    assert_eq!(
        (&job["user"], &job["project"], &job["partition"], &job["cluster"]),
        (&"ctbob".into(), &"ProjectB|x".into(), &"compute".into(), &"test".into())
    );
    assert_eq!(n.ledger()["owed"], false);
    assert_eq!(
        n.cost_tags_on(&n.instance),
        tags(&[(PROJECT, "ProjectB_x"), (USER, "ctbob"), (JOBID, "102")])
    );
    assert_eq!(n.moto.tags(&n.instance)["team"], "hpc", "user tags stay");

    // Nothing running: everything goes, with one DeleteTags and no CreateTags.
    n.slurm.set_jobs(&[]);
    n.proxy.reset_counts();
    assert_eq!(
        n.cost_tags(&["reconcile", "--node", "q-dy-c5-1"]).status.code(),
        Some(0)
    );
    assert!(n.ledger_ids().is_empty());
    assert!(n.cost_tags_on(&n.instance).is_empty());
    assert_eq!(n.proxy.count("DeleteTags"), 1, "{:?}", n.proxy.counts());
    assert_eq!(n.proxy.count("CreateTags"), 0, "{:?}", n.proxy.counts());
    assert_eq!(n.moto.tags(&n.instance)["team"], "hpc");

    // In line: a second run only looks (DescribeTags), writes nothing.
    n.proxy.reset_counts();
    let out = n.cost_tags(&["reconcile", "--node", "q-dy-c5-1"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("in sync"));
    assert_eq!(n.proxy.count("CreateTags") + n.proxy.count("DeleteTags"), 0);
}

#[test]
fn controller_mode_reconcile_on_a_node_repairs_the_ledger_and_asks_no_aws() {
    let Some(n) = Node::start_with("[tagging]\nmode = \"controller\"\n") else {
        return;
    };
    n.prolog("101", "ctalice", "ProjectA");
    n.slurm.set_jobs(&[running("102", "ctbob", "q-dy-c5-1", "ProjectB")]);
    for args in [
        &["reconcile", "--node", "q-dy-c5-1", "--dry-run"][..],
        &["reconcile", "--node", "q-dy-c5-1"],
    ] {
        let out = n.cost_tags(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let stdout = text(&out.stdout);
        assert!(stdout.contains("job 101"), "{stdout}");
        assert!(
            stdout.contains("tags: controller mode, the head node tags this instance"),
            "{stdout}"
        );
    }
    assert_eq!(n.ledger_ids(), ["102"]);
    assert_eq!(n.proxy.requests(), 0, "{:?}", n.proxy.counts());
    assert_eq!(n.imds.requests(), 0, "{:?}", n.imds.counts());
    assert!(n.cost_tags_on(&n.instance).is_empty());
}

/// Issue 22: in controller mode a compute node holds no tagging right, and `status` on
/// it asks neither EC2 nor IMDS anything: it shows the ledger and says who tags.
#[test]
fn controller_mode_status_shows_the_ledger_and_asks_no_aws() {
    let Some(n) = Node::start_with("[tagging]\nmode = \"controller\"\n") else {
        return;
    };
    n.prolog("101", "ctalice", "ProjectA");
    let out = n.cost_tags(&["status"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("101 user=ctalice project=ProjectA"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(PROJECT) && l.ends_with(" \"ProjectA\"")),
        "{stdout}"
    );
    assert!(
        stdout.contains("controller mode: the head node writes this instance's tags")
            && stdout.contains("`cost-tags status --cluster`"),
        "{stdout}"
    );
    let out = n.cost_tags(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["mode"], "controller");
    assert_eq!(shown["jobs"][0]["id"], "101");
    assert_eq!(shown["desired"][JOBID], "101");
    // Nothing reached the EC2 endpoint nor IMDS, the ledger's run included.
    assert_eq!(n.proxy.requests(), 0, "{:?}", n.proxy.counts());
    assert_eq!(n.imds.requests(), 0, "{:?}", n.imds.counts());
    assert!(n.cost_tags_on(&n.instance).is_empty());

    // A ledger that cannot be read: it cannot tell, exit 2.
    std::fs::write(n.ledger_path(), "{").unwrap();
    let out = n.cost_tags(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("cannot read the node ledger"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn tags_deleted_by_hand_are_seen_by_status_and_restored() {
    let Some(n) = Node::start() else { return };
    n.prolog("7", "ctalice", "ProjectA");
    n.slurm.set_jobs(&[running("7", "ctalice", "n1", "ProjectA")]);

    let out = n.cost_tags(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "in sync");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["instance_id"], n.instance.as_str());
    assert_eq!(s["region"], "us-east-1");
    assert_eq!(s["in_sync"], true);
    assert_eq!(s["owed"], false);
    assert_eq!(s["last_failure"], serde_json::Value::Null);
    assert_eq!(s["jobs"][0]["id"], "7");
    assert_eq!(s["desired"][JOBID], "7");
    assert_eq!(s["actual"], s["desired"]);
    assert_eq!(s["difference"], serde_json::json!([]));

    n.moto.delete_tags(&n.instance, &[JOBID, PROJECT]);
    let out = n.cost_tags(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "out of sync");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["in_sync"], false);
    assert_eq!(s["actual"], serde_json::json!({ USER: "ctalice" }));
    assert_eq!(
        s["difference"],
        serde_json::json!([
            {"key": JOBID, "want": "7", "have": null},
            {"key": PROJECT, "want": "ProjectA", "have": null},
        ])
    );
    let table = n.cost_tags(&["status"]);
    assert_eq!(table.status.code(), Some(1));
    let table = text(&table.stdout);
    assert!(
        table.contains(&n.instance) && table.contains("DIFFERS") && table.contains("OUT OF SYNC"),
        "{table}"
    );

    // The ledger says all is applied; only the real tags show the damage. Reconcile looks.
    let out = n.cost_tags(&["reconcile", "--node", "n1"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("ledger: in line"), "{}", text(&out.stdout));
    assert_eq!(
        n.cost_tags_on(&n.instance),
        tags(&[(PROJECT, "ProjectA"), (USER, "ctalice"), (JOBID, "7")])
    );
    assert_eq!(n.cost_tags(&["status"]).status.code(), Some(0));
}

#[test]
fn dry_run_changes_nothing() {
    let Some(n) = Node::start() else { return };
    n.prolog("7", "ctalice", "ProjectA");
    n.moto.delete_tags(&n.instance, &[USER]);
    n.slurm.set_jobs(&[running("8", "ctbob", "n1", "ProjectB")]);
    let ledger_before = std::fs::read(n.ledger_path()).unwrap();
    let tags_before = n.moto.tags(&n.instance);
    n.proxy.reset_counts();

    let out = n.cost_tags(&["reconcile", "--dry-run", "--node", "n1"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("would drop job 7"), "{stdout}");
    assert!(stdout.contains("would add job 8"), "{stdout}");
    assert!(
        stdout.contains(&format!("would change {JOBID}: \"7\" -> \"8\"")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("would change {USER}: (none) -> \"ctbob\"")),
        "{stdout}"
    );

    assert_eq!(std::fs::read(n.ledger_path()).unwrap(), ledger_before);
    assert_eq!(n.moto.tags(&n.instance), tags_before);
    assert_eq!(n.proxy.count("CreateTags") + n.proxy.count("DeleteTags"), 0);
}

#[test]
fn failed_squeue_changes_nothing_and_aws_failure_is_owed() {
    let Some(n) = Node::start() else { return };
    n.prolog("7", "ctalice", "ProjectA");
    let ledger_before = std::fs::read(n.ledger_path()).unwrap();

    n.slurm
        .fail("squeue", Some("Unable to contact slurm controller (connect failure)"));
    let out = n.cost_tags(&["reconcile", "--node", "n1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Unable to contact"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(n.ledger_path()).unwrap(), ledger_before);
    n.slurm.fail("squeue", None);

    // AWS down: the ledger is repaired, the debt recorded, exit 0; status cannot tell (2).
    n.slurm.set_jobs(&[]);
    n.proxy.set_mode(ProxyMode::Refuse);
    let out = n.cost_tags(&["reconcile", "--node", "n1"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(n.ledger_ids().is_empty());
    assert_eq!(n.ledger()["owed"], true);
    assert!(n.ledger()["last_failure"]["reason"].is_string());
    assert_eq!(n.cost_tags(&["status"]).status.code(), Some(2));

    // AWS back: the next reconcile pays.
    n.proxy.set_mode(ProxyMode::Pass);
    assert_eq!(n.cost_tags(&["reconcile", "--node", "n1"]).status.code(), Some(0));
    assert_eq!(n.ledger()["owed"], false);
    assert!(n.cost_tags_on(&n.instance).is_empty());
    let out = n.cost_tags(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0));
}

/// (instance id, private ip) of every instance moto has.
fn private_ips(moto: &MotoServer) -> BTreeMap<String, String> {
    let client = moto.client();
    block_on(async move {
        let out = client.describe_instances().send().await.unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                (
                    i.instance_id().unwrap().to_string(),
                    i.private_ip_address().unwrap().to_string(),
                )
            })
            .collect()
    })
}

#[test]
fn cluster_reconcile_converges_every_instance_to_slurms_jobs() {
    let Some(n) = Node::start() else { return };
    // n.instance is not part of the cluster. Six more: busy (two jobs), idle, unmapped,
    // busy (by a hostlist), the head node, and one of another cluster.
    let ids = n.moto.run_instances(6);
    let ips = private_ips(&n.moto);
    let cost = [(PROJECT, "ProjectA"), (USER, "ctalice"), (JOBID, "5")];
    for (i, id) in ids.iter().enumerate() {
        let cluster = if i == 5 { "other" } else { "c1" };
        let mut t = vec![(CLUSTER_TAG, cluster), ("team", "hpc")];
        t.push(("parallelcluster:node-type", if i == 4 { "HeadNode" } else { "Compute" }));
        t.extend(cost);
        n.moto.create_tags(id, &t);
    }
    n.moto.create_tags(&n.instance, &cost);
    // Nodes 1..4: ids[0] is q-dy-c5-1 by NodeAddr, ids[1] q-dy-c5-2 by NodeHostName,
    // ids[3] q-dy-c5-4; ids[2] is no Slurm node; q-dy-c5-3 has no instance.
    let scontrol = format!(
        "NodeName=q-dy-c5-1 Arch=x86_64 NodeAddr={} NodeHostName=q-dy-c5-1 Version=23.11\n\
         NodeName=q-dy-c5-2 NodeAddr=q-dy-c5-2 NodeHostName={} OS=Linux 6.1 x\n\
         NodeName=q-dy-c5-3 NodeAddr=q-dy-c5-3 NodeHostName=q-dy-c5-3\n\
         NodeName=q-dy-c5-4 NodeAddr={} NodeHostName=q-dy-c5-4\n",
        ips[&ids[0]], ips[&ids[1]], ips[&ids[3]]
    );
    std::fs::write(n.dir.path().join("scontrol.out"), scontrol).unwrap();
    let mut wide = running("5", "ctalice", "q-dy-c5-1", "ProjectA");
    wide["nodes"] = serde_json::json!(["q-dy-c5-1", "q-dy-c5-3", "q-dy-c5-4"]);
    wide["nodelist"] = "q-dy-c5-[1,3-4]".into();
    n.slurm
        .set_jobs(&[wide, running("6", "ctalice", "q-dy-c5-1", "ProjectA")]);

    let before: Vec<_> = ids.iter().map(|id| n.moto.tags(id)).collect();
    n.proxy.reset_counts();
    let args = ["reconcile", "--cluster", "--cluster-name", "c1", "--rate", "50"];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = n.cost_tags(&dry);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("CreateTags {JOBID}=\"5 6\" on 1 ({}): would send", ids[0])),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "DeleteTags (if unchanged) {JOBID}=\"5\", {PROJECT}=\"ProjectA\", {USER}=\"ctalice\" on 2 ({}, {}): would send",
            ids[1], ids[2]
        )),
        "{stdout}"
    );
    let after: Vec<_> = ids.iter().map(|id| n.moto.tags(id)).collect();
    assert_eq!(after, before, "dry run changed tags");
    assert_eq!(n.proxy.count("DeleteTags") + n.proxy.count("CreateTags"), 0);
    n.squeue_calls();

    let out = n.cost_tags(&args);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("5 running instances, 1 compute instances in sync, 3 changed in 2 calls (0 throttled)"),
        "{stdout}"
    );
    assert_eq!(n.scontrol_args(), ["show", "nodes", "-o"]);
    // One snapshot (fields, then ids and nodes), then the ids and nodes again right
    // before each of the two calls.
    let states = "CONFIGURING,RUNNING,SUSPENDED";
    let ids_query = vec!["-h", "-a", "-t", states, "-o", "%A|%N"];
    assert_eq!(
        n.squeue_calls(),
        [
            vec!["-h", "-a", "-t", states, "-o", "%A|%u|%P|%a|%k"],
            ids_query.clone(),
            ids_query.clone(),
            ids_query,
        ]
    );
    assert_eq!(n.proxy.count("DeleteTags"), 1, "{:?}", n.proxy.counts());
    assert_eq!(n.proxy.count("CreateTags"), 1, "{:?}", n.proxy.counts());
    let full = tags(&cost);
    for (i, id) in ids.iter().enumerate() {
        let want = match i {
            0 => tags(&[(PROJECT, "ProjectA"), (USER, "ctalice"), (JOBID, "5 6")]),
            1 | 2 => tags(&[]),
            _ => full.clone(),
        };
        assert_eq!(n.cost_tags_on(id), want, "instance {i}");
        assert_eq!(n.moto.tags(id)["team"], "hpc", "user tags stay on {i}");
    }
    assert_eq!(n.cost_tags_on(&n.instance), full, "not in the cluster");

    // Nothing left to do: no tag call, one DescribeInstances.
    n.proxy.reset_counts();
    let out = n.cost_tags(&args);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(n.proxy.counts(), [("DescribeInstances".to_string(), 1)].into());

    // A failing Slurm is exit 2 and no change.
    n.slurm.fail("squeue", Some("Unable to contact slurm controller"));
    n.moto.create_tags(&ids[1], &cost);
    assert_eq!(n.cost_tags(&args).status.code(), Some(2));
    assert_eq!(n.cost_tags_on(&ids[1]), full);
}

impl Node {
    fn scontrol_args(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("scontrol.args"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Issue 11, item 1: a job's comment `x\n9999999|...` is printed raw by squeue, and its
/// second line reads like the record of a job that does not run here.
#[test]
fn a_newline_in_a_comment_cannot_put_a_job_in_the_ledger() {
    // project_source = account: the comment is not asked for at all.
    let Some(n) = Node::start_with("project_source = \"account\"\n") else {
        return;
    };
    let mut mallory = job("12", "ctmallory", &["n1"]);
    mallory["comment"] = "x\n9999999|victim|compute|VictimProject|(null)|y".into();
    n.slurm.set_jobs(&[mallory.clone()]);
    let out = n.cost_tags(&["reconcile", "--node", "n1"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(n.ledger_ids(), ["12"]);
    assert_eq!(n.ledger()["jobs"][0]["project"], "physics");
    for call in n.squeue_calls() {
        assert!(
            !call.iter().any(|a| a.contains("%k")),
            "asked for the comment: {call:?}"
        );
    }
    assert_eq!(
        n.cost_tags_on(&n.instance),
        tags(&[(PROJECT, "physics"), (USER, "ctmallory"), (JOBID, "12")])
    );

    // project_source = comment: the comment must be asked for, and last. A forged line
    // names a job that `squeue -o %A` does not list: nothing changes, loudly.
    let Some(n) = Node::start() else { return };
    n.prolog("12", "ctmallory", "x");
    let ledger_before = std::fs::read(n.ledger_path()).unwrap();
    mallory["comment"] = "x\n9999999|victim|compute|physics|(null)|VictimProject".into();
    n.slurm.set_jobs(&[mallory]);
    let out = n.cost_tags(&["reconcile", "--node", "n1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("job 9999999") && stderr.contains("forged"), "{stderr}");
    assert_eq!(std::fs::read(n.ledger_path()).unwrap(), ledger_before);
    assert_eq!(n.cost_tags_on(&n.instance)[JOBID], "12");
}

/// Issue 11, item 6: `reconcile --cluster` takes its squeue snapshot, then a job of the
/// same user and project starts on an idle node that still carries the stale tags of the
/// last one (its prolog rewrites the same project and user, and a new job id), before
/// that node's turn to lose them comes: the second query (ids and nodes, asked after the
/// fields) lists the job, so the node is left as it is.
#[test]
fn cluster_reconcile_keeps_the_tags_of_a_job_that_started_after_the_snapshot() {
    let Some(n) = Node::start() else { return };
    let id = n.moto.run_instances(1).remove(0);
    let ip = private_ips(&n.moto)[&id].clone();
    let stale = [(PROJECT, "ProjectA"), (USER, "ctalice"), (JOBID, "5")];
    let mut t = vec![(CLUSTER_TAG, "c1"), ("parallelcluster:node-type", "Compute")];
    t.extend(stale);
    n.moto.create_tags(&id, &t);
    std::fs::write(
        n.dir.path().join("scontrol.out"),
        format!("NodeName=q-dy-c5-1 NodeAddr={ip} NodeHostName=q-dy-c5-1\n"),
    )
    .unwrap();

    n.slurm.hold("squeue");
    let child = n
        .cost_tags_command(&["reconcile", "--cluster", "--cluster-name", "c1", "--rate", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // squeue has read that no job runs; job 6 starts now and its prolog tags the node.
    n.slurm.wait_held("squeue", std::time::Duration::from_secs(30));
    n.slurm.set_jobs(&[job("6", "ctalice", &["q-dy-c5-1"])]);
    n.moto
        .create_tags(&id, &[(PROJECT, "ProjectA"), (USER, "ctalice"), (JOBID, "6")]);
    n.slurm.release("squeue");
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    eprintln!("{stdout}{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        n.cost_tags_on(&id),
        tags(&[(PROJECT, "ProjectA"), (USER, "ctalice"), (JOBID, "6")]),
        "job 6 lost its tags"
    );
    assert!(
        stdout.contains("(node q-dy-c5-1): left as it is: job 6 started while Slurm was asked"),
        "{stdout}"
    );
    assert!(stdout.contains("0 changed in 0 calls"), "{stdout}");
}
