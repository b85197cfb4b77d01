//! `cost-tags reconcile` on a real Slurm (LocalCluster: slurmctld, slurmd, the project's
//! prolog/epilog hooks, moto behind the proxy, the IMDSv2 emulator): a running job's tags
//! deleted by hand are restored, and a ledger entry whose epilog never ran (with its
//! tags) is removed, from real squeue queries for the node; a job comment with a newline
//! (which the real squeue prints raw) puts no forged job in the ledger, and the squeue
//! stand-in of the other tests prints exactly what the real one does for it.

use crate::support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::local_cluster::{tag_map, LocalCluster};
use support::moto::{env_for, AWS_ENV_TO_REMOVE};
use support::slurm_standin::SlurmStandin;

const P: &str = "aws-parallelcluster-project";
const U: &str = "aws-parallelcluster-username";
const J: &str = "aws-parallelcluster-jobid";
const WAIT: Duration = Duration::from_secs(30);

/// `cost-tags reconcile --node NODE` as root, with the environment the hooks get from
/// cost-tags.env, plus SLURM_CONF so the real squeue reaches the fixture.
fn reconcile(c: &LocalCluster) -> Output {
    let mut cmd = Command::new(crate::bin("cost-tags"));
    for v in AWS_ENV_TO_REMOVE {
        cmd.env_remove(v);
    }
    cmd.envs(env_for(&c.proxy.endpoint()))
        .envs(c.imds.env())
        .envs(c.slurm.env())
        .env("COST_TAGS_CONFIG", c.opt_slurm.join("etc/cost-tags.toml"))
        .args(["reconcile", "--node", c.slurm.node_name()])
        .stdin(Stdio::null());
    let out = cmd.output().unwrap();
    eprintln!(
        "reconcile -> {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn reconcile_restores_running_jobs_tags_and_removes_stale_ones() {
    let Some(c) = LocalCluster::start(&crate::bins()) else {
        return;
    };

    // A running job's tags deleted by hand come back.
    let a = c
        .sbatch("ctalice", &["--comment", "ProjectA", "-n1", "--wrap", "sleep 120"])
        .unwrap();
    c.slurm.wait_job_state(a, &["RUNNING"], WAIT);
    let want = tag_map(&[(P, "ProjectA"), (U, "ctalice"), (J, &a.to_string())]);
    assert_eq!(c.wait_for_tags(&want, WAIT), want, "{}", c.slurm.log_tails());
    c.moto.delete_tags(&c.instance, &[P, J]);
    assert_eq!(c.cost_tags(), tag_map(&[(U, "ctalice")]));
    let out = reconcile(&c);
    assert_eq!(out.status.code(), Some(0), "{}", c.slurm.log_tails());
    assert_eq!(c.cost_tags(), want);

    // A job whose prolog never recorded it is added from squeue.
    let ledger = c.ledger();
    std::fs::write(
        c.ledger_path(),
        serde_json::to_vec(
            &serde_json::json!({"jobs": [], "applied": ledger["applied"], "owed": false, "last_failure": null}),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(reconcile(&c).status.code(), Some(0));
    assert_eq!(c.ledger()["jobs"][0]["id"], a.to_string());
    assert_eq!(c.ledger()["jobs"][0]["project"], "ProjectA");
    assert_eq!(c.cost_tags(), want);

    // The node goes idle; then a job whose epilog never ran is left in the ledger, with
    // its tags on the instance (as after slurmd died while the job was cancelled).
    c.slurm.run_root("scancel", &[a.to_string()]);
    assert_eq!(c.wait_for_tags(&tag_map(&[]), WAIT), tag_map(&[]));
    assert!(c.slurm.cancel_all_and_wait());
    let stale = tag_map(&[(P, "ProjectB"), (U, "ctbob"), (J, "999999")]);
    std::fs::write(
        c.ledger_path(),
        serde_json::to_vec(&serde_json::json!({
            "jobs": [{"id": "999999", "user": "ctbob", "project": "ProjectB",
                      "partition": "compute", "account": "", "cluster": ""}],
            "applied": stale, "owed": false, "last_failure": null
        }))
        .unwrap(),
    )
    .unwrap();
    c.moto
        .create_tags(&c.instance, &[(P, "ProjectB"), (U, "ctbob"), (J, "999999")]);
    let out = reconcile(&c);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("dropped job 999999"));
    assert_eq!(c.ledger()["jobs"], serde_json::json!([]));
    assert_eq!(c.ledger()["owed"], false);
    assert_eq!(c.cost_tags(), tag_map(&[]));
}

/// Issue 11, item 1, on a real Slurm: the submit filter is taken away (as for jobs
/// submitted before it was installed), and ctalice's comment holds a newline followed by
/// a line in the shape of reconcile's old squeue format, naming job 9999999 of ctbob.
#[test]
fn a_comment_with_a_newline_puts_no_forged_job_in_the_ledger() {
    let Some(c) = LocalCluster::start(&crate::bins()) else {
        return;
    };
    std::fs::write(
        c.slurm.conf_dir().join("job_submit.lua"),
        "function slurm_job_submit(d, p, u) return slurm.SUCCESS end\n\
         function slurm_job_modify(d, j, p, u) return slurm.SUCCESS end\n\
         return slurm.SUCCESS\n",
    )
    .unwrap();
    let comment = "ProjectA\n9999999|ctbob|compute|VictimProject|(null)|VictimProject";
    let a = c
        .sbatch("ctalice", &["--comment", comment, "-n1", "--wrap", "sleep 120"])
        .unwrap();
    c.slurm.wait_job_state(a, &["RUNNING"], WAIT);
    // The real squeue prints the comment raw: its second line reads like a job.
    let raw = c
        .slurm
        .run_root("squeue", &["-h", "-a", "-j", &a.to_string(), "-o", "%A|%k"]);
    assert_eq!(
        String::from_utf8_lossy(&raw.stdout),
        format!("{a}|{comment}\n"),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    // The stand-in of the other tests prints the same for the formats reconcile uses.
    let partition = c
        .slurm
        .run_root("squeue", &["-h", "-a", "-j", &a.to_string(), "-o", "%P"]);
    let standin = SlurmStandin::new();
    let mut job = support::slurm_standin::job(&a.to_string(), "ctalice", &[c.slurm.node_name()]);
    job["partition"] = String::from_utf8_lossy(&partition.stdout).trim().into();
    job["account"] = "".into();
    job["comment"] = comment.into();
    standin.set_jobs(&[job]);
    for format in ["%A|%u|%P|%a|%k", "%A|%u|%P|%a", "%A"] {
        let args = [
            "-h",
            "-a",
            "-w",
            c.slurm.node_name(),
            "-t",
            "CONFIGURING,RUNNING,SUSPENDED",
            "-o",
            format,
        ];
        let real = c.slurm.run_root("squeue", &args);
        let stood_in = Command::new(standin.squeue()).args(args).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&stood_in.stdout),
            String::from_utf8_lossy(&real.stdout),
            "{format}"
        );
    }
    let ids = |c: &LocalCluster| -> Vec<String> {
        c.ledger()["jobs"]
            .as_array()
            .map(|jobs| {
                jobs.iter()
                    .map(|j| j["id"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = std::fs::read(c.ledger_path()).unwrap_or_default();

    // project_source = comment: the forged line names a job `squeue -o %A` does not list,
    // so nothing changes.
    let out = reconcile(&c);
    assert_eq!(out.status.code(), Some(2), "{}", c.slurm.log_tails());
    assert!(String::from_utf8_lossy(&out.stderr).contains("job 9999999"));
    assert_eq!(std::fs::read(c.ledger_path()).unwrap_or_default(), before);

    // project_source = account: the comment is not even asked for.
    let settings = c.opt_slurm.join("etc/cost-tags.toml");
    let text = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(&settings, format!("project_source = \"account\"\n{text}")).unwrap();
    let out = reconcile(&c);
    assert_eq!(out.status.code(), Some(0), "{}", c.slurm.log_tails());
    assert_eq!(ids(&c), [a.to_string()]);
    c.slurm.run_root("scancel", &[a.to_string()]);
}
