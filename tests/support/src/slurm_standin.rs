//! A faithful stand-in for `sacct` and `squeue` (slurm_standin.py): it honours the
//! `--format`/`-o` it is given and prints what Slurm prints for those fields, free text
//! raw. Tests put it first on PATH (the report runs `sacct` from PATH) or pass its
//! `squeue` with reconcile's hidden `--squeue`; they change what Slurm says between calls
//! with [`SlurmStandin::set_jobs`], and can hold a call between reading the jobs and
//! answering ([`SlurmStandin::hold`]) to play a job starting at that moment.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SCRIPT: &str = include_str!("slurm_standin.py");

pub struct SlurmStandin {
    dir: tempfile::TempDir,
}

/// A running job on `nodes` with everything Slurm prints filled in (no comment, no wckey,
/// account `physics`, one CPU, 2024-03-01 10:00-11:00 for sacct); change fields with
/// `job["comment"] = ...`.
pub fn job(id: &str, user: &str, nodes: &[&str]) -> Value {
    json!({
        "id": id, "user": user, "state": "RUNNING", "partition": "compute",
        "account": "physics", "wckey": "", "comment": "",
        "nodes": nodes, "nodelist": nodes.join(","), "nnodes": nodes.len().to_string(),
        "ncpus": "1", "tres": format!("billing=1,cpu=1,node={}", nodes.len()),
        "start": "2024-03-01T10:00:00", "end": "2024-03-01T11:00:00",
    })
}

impl SlurmStandin {
    /// Writes the stand-in scripts into a fresh temporary directory.
    // No `Default`: making one writes files, which a default value should not do.
    #[allow(clippy::new_without_default)]
    pub fn new() -> SlurmStandin {
        let dir = tempfile::tempdir().unwrap();
        for name in ["sacct", "squeue"] {
            let path = dir.path().join(name);
            std::fs::write(&path, SCRIPT).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let s = SlurmStandin { dir };
        s.set_jobs(&[]);
        s
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn squeue(&self) -> PathBuf {
        self.dir.path().join("squeue")
    }

    /// PATH with the stand-ins first.
    pub fn path_env(&self) -> OsString {
        let mut dirs = vec![self.dir.path().to_path_buf()];
        dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
        std::env::join_paths(dirs).unwrap()
    }

    /// What Slurm knows from now on.
    pub fn set_jobs(&self, jobs: &[Value]) {
        let tmp = self.dir.path().join("jobs.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(jobs).unwrap()).unwrap();
        std::fs::rename(tmp, self.dir.path().join("jobs.json")).unwrap();
    }

    /// The arguments of every call of `name` so far.
    pub fn calls(&self, name: &str) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.calls")))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Calls of `name` fail with `message` on stderr (exit 1), as when slurmctld is down;
    /// `None` makes them answer again.
    pub fn fail(&self, name: &str, message: Option<&str>) {
        let path = self.dir.path().join(format!("{name}.fail"));
        match message {
            Some(m) => std::fs::write(path, m).unwrap(),
            None => std::fs::remove_file(path).unwrap(),
        }
    }

    /// The next call of `name` reads the jobs, then waits for [`SlurmStandin::release`].
    pub fn hold(&self, name: &str) {
        std::fs::write(self.dir.path().join(format!("{name}.hold")), "").unwrap();
    }

    /// Waits until a call of `name` is held (it has read the jobs it will print).
    pub fn wait_held(&self, name: &str, timeout: Duration) {
        let held = self.dir.path().join(format!("{name}.held"));
        let until = Instant::now() + timeout;
        while !held.exists() {
            assert!(Instant::now() < until, "{name} was never called");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lets held calls answer; later calls are not held.
    pub fn release(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(format!("{name}.hold"))).unwrap();
    }
}
