//! The node ledger: the single source of truth for which jobs run on this node, what tags
//! were last applied to its instance, and whether tags are owed after a failure.
//!
//! It lives in `state_dir/ledger.json`, changed only under an exclusive `flock` on
//! `state_dir/ledger.lock` and rewritten atomically (temporary file, fsync, rename, fsync
//! of the directory), so concurrent prologs and epilogs never lose an update and a crash
//! at any point leaves either the old or the new ledger. A second lock, `apply.lock`,
//! serialises the AWS calls: whoever holds it applies the newest ledger, so a burst of
//! job starts on one node costs far fewer calls than jobs.
//!
//! `state_dir` must be a directory only root can change (see `trusted_dir`), and the
//! ledger is mode 0600: it names other users' jobs, which Slurm's PrivateData may hide.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::model::job::Job;
use crate::model::tag_set::TagMap;
use crate::model::time::Timestamp;
use crate::state::atomic_file;
use crate::state::trusted_dir;

/// What the ledger file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerState {
    /// Jobs running on this node, in the order they started.
    pub jobs: Vec<Job>,
    /// The managed tags the instance carried after the last successful AWS call.
    pub applied: TagMap,
    /// The last AWS call failed or never finished: the instance's tags are unknown and
    /// the next run must apply the ledger whatever `applied` says.
    pub owed: bool,
    /// Why tags are owed, for `cost-tags status` and the logs.
    pub last_failure: Option<Failure>,
}

/// A failed attempt to bring the tags in line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// When (seconds since the epoch in the ledger file).
    pub at_unix: Timestamp,
    pub job_id: String,
    pub reason: String,
}

impl Failure {
    pub fn now(job_id: &str, reason: impl Into<String>) -> Failure {
        Failure {
            at_unix: Timestamp::now(),
            job_id: job_id.to_string(),
            reason: reason.into(),
        }
    }
}

impl LedgerState {
    /// Adds a job; a job already present (a requeued job's second prolog) is replaced,
    /// never added twice. Returns whether anything changed.
    pub fn add(&mut self, job: Job) -> bool {
        match self.jobs.iter_mut().find(|j| j.id == job.id) {
            Some(existing) if *existing == job => false,
            Some(existing) => {
                *existing = job;
                true
            }
            None => {
                self.jobs.push(job);
                true
            }
        }
    }

    /// Removes a job; an unknown job is a no-op. Returns whether anything changed.
    pub fn remove(&mut self, job_id: &str) -> bool {
        let before = self.jobs.len();
        self.jobs.retain(|j| j.id != job_id);
        self.jobs.len() != before
    }

    /// Whether the instance must be told `desired`.
    pub fn needs_apply(&self, desired: &TagMap) -> bool {
        self.owed || self.applied != *desired
    }
}

/// The ledger of one node, in one directory.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

/// An exclusive lock held until dropped.
pub struct HeldLock(#[allow(dead_code)] Flock<File>);

impl Ledger {
    const FILE: &'static str = "ledger.json";

    /// Opens (creating if needed) the ledger in `dir`, which must be private to root.
    pub fn open(dir: &Path) -> Result<Ledger> {
        trusted_dir::prepare(dir).context("state_dir")?;
        Ok(Ledger { dir: dir.to_path_buf() })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(Self::FILE)
    }

    /// Reads the ledger without locking: writers replace it atomically, so a reader sees
    /// a whole old or a whole new ledger.
    pub fn read(&self) -> Result<LedgerState> {
        let path = self.path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).with_context(|| format!("{}: ledger is not valid JSON", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LedgerState::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Changes the ledger under its lock: reads it, lets `change` edit it, writes it back
    /// atomically if it changed. Waits for the lock until `deadline` at most.
    pub fn update<R>(&self, deadline: Instant, change: impl FnOnce(&mut LedgerState) -> R) -> Result<(R, LedgerState)> {
        let _lock = self.lock("ledger.lock", deadline)?;
        let mut state = match self.read() {
            Ok(state) => state,
            Err(e) => self.set_aside_unreadable(e)?,
        };
        let before = state.clone();
        let result = change(&mut state);
        if state != before {
            self.write(&state)?;
        }
        Ok((result, state))
    }

    /// Takes the lock that serialises AWS calls for this node, waiting until `deadline`.
    pub fn lock_apply(&self, deadline: Instant) -> Result<HeldLock> {
        self.lock("apply.lock", deadline)
    }

    /// A ledger that cannot be parsed (a disk error, a hand edit) is kept beside for the
    /// administrator and replaced by an empty one that owes tags, so the node keeps working.
    fn set_aside_unreadable(&self, error: anyhow::Error) -> Result<LedgerState> {
        let aside = self.dir.join(format!("ledger.json.unreadable.{}", std::process::id()));
        std::fs::rename(self.path(), &aside).with_context(|| format!("{error:#}; and cannot move it aside"))?;
        Ok(LedgerState {
            owed: true,
            last_failure: Some(Failure::now("", format!("{error:#}; kept as {}", aside.display()))),
            ..LedgerState::default()
        })
    }

    fn write(&self, state: &LedgerState) -> Result<()> {
        let path = self.path();
        let bytes = serde_json::to_vec_pretty(state)?;
        atomic_file::replace(&path, &bytes, 0o600).with_context(|| format!("cannot write {}", path.display()))
    }

    fn lock(&self, name: &str, deadline: Instant) -> Result<HeldLock> {
        let path = self.dir.join(name);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .with_context(|| format!("cannot open lock {}", path.display()))?;
        // flock has no timeout: poll without blocking, backing off, until the deadline.
        let mut pause = Duration::from_millis(1);
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(HeldLock(lock)),
                Err((returned, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                    file = returned;
                    if Instant::now() + pause > deadline {
                        anyhow::bail!("timed out waiting for {}", path.display());
                    }
                    std::thread::sleep(pause + Duration::from_micros(fastrand::u64(0..1000)));
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err((_, errno)) => return Err(errno).with_context(|| format!("cannot lock {}", path.display())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> Job {
        Job {
            id: id.into(),
            user: "u".into(),
            project: "P".into(),
            ..Job::default()
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn add_is_idempotent_remove_of_unknown_is_a_no_op() {
        let mut s = LedgerState::default();
        assert!(s.add(job("1")));
        assert!(!s.add(job("1")));
        assert_eq!(s.jobs.len(), 1);
        assert!(!s.remove("2"));
        assert!(s.remove("1"));
        assert!(s.jobs.is_empty());
    }

    #[test]
    fn requeued_job_with_new_attributes_replaces_the_old_entry() {
        let mut s = LedgerState::default();
        s.add(job("1"));
        let mut moved = job("1");
        moved.partition = "gpu".into();
        assert!(s.add(moved.clone()));
        assert_eq!(s.jobs, vec![moved]);
    }

    #[test]
    fn persists_and_only_writes_changes() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.read().unwrap(), LedgerState::default());
        ledger.update(soon(), |s| s.add(job("7"))).unwrap();
        assert_eq!(ledger.read().unwrap().jobs, vec![job("7")]);
        let modified = std::fs::metadata(ledger.path()).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (changed, _) = ledger.update(soon(), |s| s.add(job("7"))).unwrap();
        assert!(!changed);
        assert_eq!(std::fs::metadata(ledger.path()).unwrap().modified().unwrap(), modified);
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().contains(".tmp")), "{names:?}");
    }

    #[test]
    fn needs_apply_when_owed_or_different() {
        let mut s = LedgerState::default();
        assert!(!s.needs_apply(&TagMap::new()));
        let desired = TagMap::from([("k".to_string(), "v".to_string())]);
        assert!(s.needs_apply(&desired));
        s.applied = desired.clone();
        assert!(!s.needs_apply(&desired));
        s.owed = true;
        assert!(s.needs_apply(&desired));
    }

    #[test]
    fn unreadable_ledger_is_kept_aside_and_tags_are_owed() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        std::fs::write(ledger.path(), b"{not json").unwrap();
        let (_, state) = ledger.update(soon(), |s| s.add(job("1"))).unwrap();
        assert!(state.owed);
        assert_eq!(state.jobs, vec![job("1")]);
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with("ledger.json.unreadable."))
            .expect("kept aside");
        assert_eq!(std::fs::read(dir.path().join(aside)).unwrap(), b"{not json");
    }

    #[test]
    fn lock_waits_until_deadline_then_fails() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let _held = ledger.lock_apply(soon()).unwrap();
        let err = ledger
            .lock_apply(Instant::now() + Duration::from_millis(50))
            .err()
            .unwrap();
        assert!(err.to_string().contains("timed out"), "{err}");
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let ledger = Ledger::open(dir.path()).unwrap();
                std::thread::spawn(move || {
                    ledger.update(soon(), |s| s.add(job(&i.to_string()))).unwrap();
                    if i % 2 == 0 {
                        ledger.update(soon(), |s| s.remove(&i.to_string())).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut ids: Vec<u32> = Ledger::open(dir.path())
            .unwrap()
            .read()
            .unwrap()
            .jobs
            .iter()
            .map(|j| j.id.parse().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, (0..32).filter(|i| i % 2 == 1).collect::<Vec<_>>());
    }
}
