//! The node's state files under attack: a job user who can write where the ledger lives
//! could plant symlinks that make a root hook overwrite other files, or a cached identity
//! that sends the tags to another instance. cost-prolog refuses such a directory, logs
//! why, and exits 0 (a hook that fails drains the node).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// cost-prolog for job 42 with `state_dir`; IMDS and AWS point at a closed port, so
/// nothing leaves the machine.
fn prolog(dir: &Path, state_dir: &Path) -> Output {
    let settings = dir.join("cost-tags.toml");
    std::fs::write(
        &settings,
        format!(
            "state_dir = {state_dir:?}\ncache_dir = {:?}\ndeadline = 2\n",
            dir.join("run")
        ),
    )
    .unwrap();
    Command::new(crate::bin("cost-prolog"))
        .env("COST_TAGS_CONFIG", &settings)
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("SLURM_JOB_ID", "42")
        .env("SLURM_JOB_USER", "alice")
        .env("SLURM_JOB_COMMENT", "ProjectA")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_state_dir_others_can_write_is_refused_and_nothing_is_overwritten() {
    let top = tempfile::tempdir().unwrap();
    let shared = top.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = top.path().join("victim");
    std::fs::write(&victim, "secret").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    // What a user could plant: the lock, and the temporary names the old code used
    // (`.ledger.json.{pid}.tmp`) for the next pids to be handed out.
    std::os::unix::fs::symlink(&victim, shared.join("ledger.lock")).unwrap();
    let last_pid: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1);
    for pid in last_pid..last_pid + 500 {
        std::os::unix::fs::symlink(&victim, shared.join(format!(".ledger.json.{pid}.tmp"))).unwrap();
    }

    let out = prolog(top.path(), &shared);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a hook must not drain the node: {stderr}");
    assert!(stderr.contains("writable by group or others"), "{stderr}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"secret");
    assert_eq!(std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn the_ledger_is_private_to_root() {
    let top = tempfile::tempdir().unwrap();
    let state = top.path().join("state");
    let out = prolog(top.path(), &state);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // AWS is unreachable here, so the job is recorded and its tags are owed.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state.join("ledger.json")), 0o600);
    assert_eq!(mode(&state), 0o755);
    let ledger = std::fs::read_to_string(state.join("ledger.json")).unwrap();
    assert!(
        ledger.contains("\"42\"") && ledger.contains("\"owed\": true"),
        "{ledger}"
    );
}
