//! Tagging end to end on a real Slurm: slurmd runs the project's prolog/epilog hooks,
//! which run cost-prolog/cost-epilog against moto and the IMDSv2 emulator. A running job
//! makes its tags appear; jobs sharing the node aggregate; an ending job leaves the
//! others' tags; with AWS down, jobs still run and the node is never drained.

use crate::support;

use std::time::Duration;

use support::aws_proxy::ProxyMode;
use support::local_cluster::{tag_map, LocalCluster};

const P: &str = "aws-parallelcluster-project";
const U: &str = "aws-parallelcluster-username";
const J: &str = "aws-parallelcluster-jobid";
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn jobs_tag_and_untag_their_node() {
    let Some(c) = LocalCluster::start(&crate::bins()) else {
        return;
    };

    let a = c
        .sbatch("ctalice", &["--comment", "ProjectA", "-n1", "--wrap", "sleep 60"])
        .unwrap();
    c.slurm.wait_job_state(a, &["RUNNING"], WAIT);
    let want = tag_map(&[(P, "ProjectA"), (U, "ctalice"), (J, &a.to_string())]);
    assert_eq!(c.wait_for_tags(&want, WAIT), want, "{}", c.slurm.log_tails());

    // A second job shares the node (2 CPUs, one each): the tags aggregate.
    let b = c
        .sbatch("ctbob", &["--comment", "ProjectB", "-n1", "--wrap", "sleep 60"])
        .unwrap();
    c.slurm.wait_job_state(b, &["RUNNING"], WAIT);
    let both = tag_map(&[(P, "ProjectA ProjectB"), (U, "ctalice ctbob"), (J, &format!("{a} {b}"))]);
    assert_eq!(c.wait_for_tags(&both, WAIT), both);

    // The first ends: the second's tags remain.
    c.slurm.run_root("scancel", &[a.to_string()]);
    let only_b = tag_map(&[(P, "ProjectB"), (U, "ctbob"), (J, &b.to_string())]);
    assert_eq!(c.wait_for_tags(&only_b, WAIT), only_b);

    // The last ends: the cost tags are gone.
    c.slurm.run_root("scancel", &[b.to_string()]);
    assert_eq!(c.wait_for_tags(&tag_map(&[]), WAIT), tag_map(&[]));

    // AWS down: the job still runs to completion, the node stays up, the debt is kept.
    c.proxy.set_mode(ProxyMode::Refuse);
    let d = c
        .sbatch("ctalice", &["--comment", "ProjectC", "--wrap", "sleep 1"])
        .unwrap();
    let state = c
        .slurm
        .wait_job_state(d, &["COMPLETED", "FAILED", "CANCELLED"], Duration::from_secs(60));
    assert_eq!(state, "COMPLETED", "{}", c.slurm.log_tails());
    assert!(!c.slurm.node_is_drained(), "node drained: {}", c.slurm.node_reason());
    assert_eq!(c.ledger()["owed"], true, "{}", c.ledger());

    // AWS back: the next job start pays what is owed and tags exactly its own job.
    c.proxy.set_mode(ProxyMode::Pass);
    let e = c
        .sbatch("ctbob", &["--comment", "Shared", "--wrap", "sleep 60"])
        .unwrap();
    c.slurm.wait_job_state(e, &["RUNNING"], WAIT);
    let want = tag_map(&[(P, "Shared"), (U, "ctbob"), (J, &e.to_string())]);
    assert_eq!(c.wait_for_tags(&want, WAIT), want);
    // The prolog records the debt as paid once CreateTags has returned, so on a loaded
    // machine the tags can be seen a moment before the ledger says so.
    let until = std::time::Instant::now() + WAIT;
    while c.ledger()["owed"] != false && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.ledger()["owed"], false, "{}", c.ledger());
    assert!(!c.slurm.node_is_drained());
}
