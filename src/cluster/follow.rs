//! `cost-tags reconcile --cluster --follow`: the convergence as a service on the head
//! node. A pass, then a wait until woken or until `[tagging] poll_seconds` pass, then the
//! next pass; passes never overlap (one thread runs them one after the other).
//!
//! The wake-up is a file's modification time: PrologSlurmctld and EpilogSlurmctld run
//! `touch -c` on it (scripts/slurm/cost-tags-wake), which cannot block nor fail a job,
//! and reading it is one `stat` every [`WAKE_CHECK`]. A FIFO would wake sooner but a
//! writer can block on it, and a hook of slurmctld must never wait. A touch during a pass
//! is seen after it (the time is read when the pass starts), so a job that started while
//! Slurm was being read is never missed. Passes start at most once every [`MIN_GAP`],
//! however often the hooks run, which bounds what the loop costs slurmctld: each pass is
//! one `scontrol show nodes` and two `squeue`, plus one `squeue` per tag call
//! ([`crate::cluster::converge`]).
//!
//! Stopping (SIGTERM, set by the command line in `stop`) is seen within a
//! [`WAKE_CHECK`] while waiting, and before each call during a pass: no call is cut
//! short, and what the pass leaves is recomputed by the next one to run.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use crate::cluster::converge::{Cluster, ClusterArgs, ConvergeSummary, Event};
use crate::config::Settings;

/// How often the wake file and the stop flag are looked at while waiting.
pub(crate) const WAKE_CHECK: Duration = Duration::from_millis(200);
/// At most one pass a second, whatever wakes the loop.
pub(crate) const MIN_GAP: Duration = Duration::from_secs(1);

/// The file whose modification time wakes the loop (`wake` in the cache directory,
/// `/run/cost-tags/wake` by default).
#[derive(Debug)]
pub(crate) struct WakeFile {
    path: PathBuf,
    /// Its time when the current pass started.
    seen: Option<SystemTime>,
}

impl WakeFile {
    /// The wake file in `dir`, created if missing (mode 0644, never through a symlink)
    /// and handed to `owner` (the SlurmUser, who runs PrologSlurmctld) when given.
    pub(crate) fn prepare(dir: &Path, owner: Option<&str>) -> Result<WakeFile> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("wake");
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .with_context(|| format!("cannot create the wake file {}", path.display()))?;
        if let Some(name) = owner {
            let user = nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .with_context(|| format!("no user {name} to own {}", path.display()))?;
            nix::unistd::fchown(std::os::fd::AsRawFd::as_raw_fd(&file), Some(user.uid), Some(user.gid))
                .with_context(|| format!("cannot give {} to {name}", path.display()))?;
        }
        Ok(WakeFile { path, seen: None })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn time(&self) -> Option<SystemTime> {
        fs::symlink_metadata(&self.path).and_then(|m| m.modified()).ok()
    }

    /// Remembers the file's time: touches from now on wake the loop.
    fn arm(&mut self) {
        self.seen = self.time();
    }

    /// Whether the file was touched since [`WakeFile::arm`].
    fn touched(&self) -> bool {
        let now = self.time();
        now.is_some() && now != self.seen
    }
}

/// What the loop reports, for the command line to show.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// A call or a skipped instance of the current pass.
    Event(&'a Event<'a>),
    Passed(&'a ConvergeSummary),
    /// The pass could not start (EC2 or Slurm unreadable); the next one tries again.
    PassFailed(&'a anyhow::Error),
    /// Why the next pass starts.
    Next(Wakeup),
}

/// Why a pass starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wakeup {
    Woken,
    Polled,
}

/// Runs passes until `stop` is set; returns then, between passes.
pub(crate) fn follow(
    cluster: &mut Cluster,
    settings: &Settings,
    args: &ClusterArgs,
    wake: &mut WakeFile,
    stop: &AtomicBool,
    mut report: impl FnMut(Step<'_>),
) -> Result<()> {
    let poll = Duration::from_secs(settings.tagging.poll_seconds);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        wake.arm();
        match cluster.converge(settings, args, Some(stop), |e| report(Step::Event(e))) {
            Ok(summary) => report(Step::Passed(&summary)),
            Err(e) => report(Step::PassFailed(&e)),
        }
        let Some(why) = wait(wake, stop, started + MIN_GAP, started + poll) else {
            break;
        };
        report(Step::Next(why));
    }
    Ok(())
}

/// Waits until the wake file is touched (but not before `earliest`) or `latest`; None
/// when `stop` is set meanwhile.
fn wait(wake: &WakeFile, stop: &AtomicBool, earliest: Instant, latest: Instant) -> Option<Wakeup> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let now = Instant::now();
        if now >= latest {
            return Some(Wakeup::Polled);
        }
        if now >= earliest && wake.touched() {
            return Some(Wakeup::Woken);
        }
        std::thread::sleep(WAKE_CHECK.min(latest - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touch_after_arming_wakes_and_a_missing_file_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut wake = WakeFile::prepare(&dir.path().join("run"), None).unwrap();
        wake.arm();
        assert!(!wake.touched());
        let later = SystemTime::now() + Duration::from_secs(5);
        fs::File::options()
            .write(true)
            .open(wake.path())
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(wake.touched());
        wake.arm();
        assert!(!wake.touched());
        fs::remove_file(wake.path()).unwrap();
        assert!(!wake.touched());
        // Prepared again (the next start of the service), it is there again.
        let wake = WakeFile::prepare(&dir.path().join("run"), None).unwrap();
        assert!(wake.path().is_file());
    }

    #[test]
    fn waiting_ends_when_woken_polled_or_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut wake = WakeFile::prepare(dir.path(), None).unwrap();
        let stop = AtomicBool::new(false);
        let now = Instant::now();
        assert_eq!(wait(&wake, &stop, now, now), Some(Wakeup::Polled));
        wake.seen = Some(SystemTime::UNIX_EPOCH);
        assert_eq!(
            wait(&wake, &stop, now, now + Duration::from_secs(3600)),
            Some(Wakeup::Woken)
        );
        stop.store(true, Ordering::Relaxed);
        assert_eq!(wait(&wake, &stop, now, now + Duration::from_secs(3600)), None);
    }
}
