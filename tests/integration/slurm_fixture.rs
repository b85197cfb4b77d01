//! Smoke test of the real-Slurm fixture (tests/support/src/slurm.rs): a private cluster
//! starts, runs a user's job through a job_submit.lua, Prolog and Epilog, rejects a job
//! from Lua with the user-visible message, leaves the node undrained, and two clusters
//! can run at the same time.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use support::slurm::{ensure_test_users, parse_job_id, SlurmCluster, SlurmOptions};

const LUA: &str = r#"
function slurm_job_submit(job_desc, part_list, submit_uid)
  slurm.log_info("fixture-lua: user_name=%s submit_uid=%s comment=%s",
                 tostring(job_desc.user_name), tostring(submit_uid), tostring(job_desc.comment))
  if job_desc.comment == "reject-me" then
    slurm.log_user("rejected by fixture")
    return slurm.ERROR
  end
  return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
  return slurm.SUCCESS
end

return slurm.SUCCESS
"#;

/// A script that appends "<which> <jobid> <user> <context>" to <fixture dir>/<which>.log
/// and dumps its whole environment. The fixture dir is found from SLURM_CONF, which is
/// in the prolog's environment (PATH is not: keep to shell built-ins and `env`).
fn hook_script(dir: &Path, which: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{which}.sh"));
    fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             d=\"${{SLURM_CONF%/*}}\"\n\
             echo \"{which} $SLURM_JOB_ID $SLURM_JOB_USER $SLURM_SCRIPT_CONTEXT\" >> \"$d/{which}.log\"\n\
             env > \"$d/{which}.env.$SLURM_JOB_ID\"\n\
             exit 0\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn wait_for_file_containing(path: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn slurm_fixture_runs_jobs_through_lua_prolog_and_epilog() {
    if !support::slurm::available() {
        // Let start() report the skip (or fail under CI=true).
        assert!(SlurmCluster::start(SlurmOptions::default()).is_none());
        return;
    }
    ensure_test_users();

    let scripts = tempfile::tempdir().unwrap();
    fs::set_permissions(scripts.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let opts = SlurmOptions {
        job_submit_lua: Some(LUA.to_string()),
        prolog: Some(hook_script(scripts.path(), "prolog")),
        epilog: Some(hook_script(scripts.path(), "epilog")),
        daemon_env: vec![
            ("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()),
            ("CT_FIXTURE_DAEMON_MARK".into(), "from-slurmd-env".into()),
        ],
        ..SlurmOptions::default()
    };

    let t0 = Instant::now();
    let cluster = SlurmCluster::start(opts).expect("slurm available");
    eprintln!(
        "slurm fixture started in {:?} (node {}, cluster {}, ctld port {}, slurmd port {})",
        t0.elapsed(),
        cluster.node_name(),
        cluster.cluster_name(),
        cluster.slurmctld_port(),
        cluster.slurmd_port()
    );
    assert_eq!(cluster.node_state(), "idle");
    assert!(cluster.conf_path().starts_with(cluster.dir()));
    assert_eq!(cluster.env()[0].0, "SLURM_CONF");

    // setpriv --init-groups gives supplementary groups.
    let groups = |u: &str| String::from_utf8_lossy(&cluster.run_as(u, "id", &["-nG"]).stdout).into_owned();
    assert!(groups("ctbob").split_whitespace().any(|g| g == "ctgpu"));
    assert!(!groups("ctalice").split_whitespace().any(|g| g == "ctgpu"));
    let whoami = cluster.run_as("ctcarol", "id", &["-un"]);
    assert_eq!(String::from_utf8_lossy(&whoami.stdout).trim(), "ctcarol");

    // Accepted job: runs, prolog and epilog run for it.
    let t_job = Instant::now();
    let out = cluster.run_as(
        "ctalice",
        "sbatch",
        &["--comment", "ok", "-o", "/dev/null", "--wrap", "sleep 1"],
    );
    assert!(
        out.status.success(),
        "sbatch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = parse_job_id(&out.stdout).expect("job id");
    let state = cluster.wait_job_state(
        id,
        &["COMPLETED", "FAILED", "CANCELLED", "NODE_FAIL", "TIMEOUT"],
        Duration::from_secs(60),
    );
    assert_eq!(state, "COMPLETED");
    eprintln!("job {id} completed {:?} after submission", t_job.elapsed());

    let d = cluster.dir();
    let prolog_log = wait_for_file_containing(&d.join("prolog.log"), &format!("prolog {id} "), Duration::from_secs(10));
    assert!(
        prolog_log.contains(&format!("prolog {id} ctalice prolog_slurmd")),
        "prolog.log: {prolog_log:?}"
    );
    let epilog_log = wait_for_file_containing(&d.join("epilog.log"), &format!("epilog {id} "), Duration::from_secs(10));
    assert!(
        epilog_log.contains(&format!("epilog {id} ctalice epilog_slurmd")),
        "epilog.log: {epilog_log:?}"
    );

    // What the prolog's environment holds: only Slurm's variables, not slurmd's env.
    let penv = fs::read_to_string(d.join(format!("prolog.env.{id}"))).unwrap();
    eprintln!("----- prolog environment -----\n{penv}------------------------------");
    assert!(penv.contains(&format!("SLURM_JOB_ID={id}\n")));
    assert!(penv.contains("SLURM_JOB_USER=ctalice\n"));
    assert!(penv.contains("SLURM_JOB_COMMENT=ok\n"));
    assert!(penv.contains(&format!("SLURM_CONF={}\n", cluster.conf_path().display())));
    assert!(!penv.contains("AWS_ENDPOINT_URL"), "slurmd's env reached the prolog");
    assert!(
        !penv.contains("CT_FIXTURE_DAEMON_MARK"),
        "slurmd's env reached the prolog"
    );
    assert!(!penv.lines().any(|l| l.starts_with("PATH=")), "prolog got a PATH");
    let eenv = fs::read_to_string(d.join(format!("epilog.env.{id}"))).unwrap();
    assert!(!eenv.contains("AWS_ENDPOINT_URL"), "slurmd's env reached the epilog");

    // A second partition exists on the same node.
    let out = cluster.run_as("ctbob", "sbatch", &["-p", "gpu", "-o", "/dev/null", "--wrap", "true"]);
    assert!(
        out.status.success(),
        "sbatch -p gpu: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gid = parse_job_id(&out.stdout).unwrap();
    assert_eq!(
        cluster.wait_job_state(gid, &["COMPLETED", "FAILED"], Duration::from_secs(60)),
        "COMPLETED"
    );

    // Rejected job: the Lua message reaches the user.
    let out = cluster.run_as(
        "ctalice",
        "sbatch",
        &["--comment", "reject-me", "-o", "/dev/null", "--wrap", "sleep 1"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "rejected job was accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("rejected by fixture"), "stderr: {stderr}");

    // job_desc.user_name is set in slurm_job_submit (22.05).
    let ctld = cluster.slurmctld_log();
    let lua_lines: Vec<&str> = ctld.lines().filter(|l| l.contains("fixture-lua:")).collect();
    eprintln!("----- job_submit.lua log lines -----\n{}", lua_lines.join("\n"));
    assert!(
        lua_lines
            .iter()
            .any(|l| l.contains("user_name=ctalice") && l.contains("comment=ok")),
        "{lua_lines:?}"
    );

    // Nothing drained the node.
    assert!(
        !cluster.node_is_drained(),
        "node drained: {} ({})",
        cluster.node_state(),
        cluster.node_reason()
    );
    assert_eq!(cluster.node_state(), "idle");

    // Cancel path: a long job is cancelled and the queue empties.
    let out = cluster.run_as("ctcarol", "sbatch", &["-o", "/dev/null", "--wrap", "sleep 300"]);
    let lid = parse_job_id(&out.stdout).expect("job id");
    cluster.wait_job_state(lid, &["RUNNING"], Duration::from_secs(30));
    assert!(cluster.cancel_all_and_wait());
    assert_eq!(cluster.job_state(lid).as_deref(), Some("CANCELLED"));
    assert!(
        !cluster.node_is_drained(),
        "node drained after scancel: {}",
        cluster.node_reason()
    );

    let t_drop = Instant::now();
    drop(cluster);
    eprintln!("slurm fixture stopped in {:?}", t_drop.elapsed());
}

#[test]
fn two_slurm_fixtures_run_side_by_side() {
    if !support::slurm::available() {
        assert!(SlurmCluster::start(SlurmOptions::default()).is_none());
        return;
    }
    let t0 = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                SlurmCluster::start(SlurmOptions {
                    cpus: 1 + i,
                    gpu_partition: false,
                    ..Default::default()
                })
                .expect("slurm available")
            })
        })
        .collect();
    // Join both before looking at either, so a start that fails in one thread cannot end
    // the test while the other thread still holds (and would leak) a running cluster.
    let joined: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    let clusters: Vec<SlurmCluster> = joined.into_iter().map(|r| r.unwrap()).collect();
    eprintln!("two slurm fixtures started in parallel in {:?}", t0.elapsed());

    let (a, b) = (&clusters[0], &clusters[1]);
    assert_ne!(a.node_name(), b.node_name());
    assert_ne!(a.cluster_name(), b.cluster_name());
    assert_ne!(a.slurmctld_port(), b.slurmctld_port());
    for (c, cpus) in [(a, "1"), (b, "2")] {
        // Each cluster's clients see exactly its own node.
        let out = c.run_root("sinfo", &["-h", "-N", "-o", "%N %c %T"]);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(text, format!("{} {cpus} idle", c.node_name()));
        let out = c.run_root("scontrol", &["show", "config"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains(c.cluster_name()));
        // Both daemons listen on loopback only.
        for port in [c.slurmctld_port(), c.slurmd_port()] {
            assert_eq!(
                support::process::listening_addresses(port),
                vec!["127.0.0.1".to_string()],
                "port {port}"
            );
        }
    }
    drop(clusters);
}
