//! The reservation journal: what the submissions accepted since the last `budget refresh`
//! may cost, so that jobs accepted between two refreshes do not each see the same money
//! left (the reservations of Gold and Moab Accounting Manager: available = limit − spent
//! − accrued − committed − reserved).
//!
//! project-check appends one JSON line per accepted submission, `{"at":unix_secs,
//! "budget":"name","cost":1.23}`, its worst case, and counts a project's lines newer than
//! the cache's `refreshed_at` against what the cache says is left. `budget refresh` then
//! drops the lines its own snapshot covers (made before its `refreshed_at`: those jobs are
//! now in squeue as pending or running commitments, or in sacct as accrued spend) and
//! rewrites the rest, so the journal holds one refresh period of submissions at most.
//!
//! - **Who writes it.** slurmctld runs project-check as SlurmUser, so the journal is that
//!   user's file, mode 0600, created with `O_NOFOLLOW` (never through a symlink) in a
//!   directory only root or that user can write. The refresh (root) rewrites it keeping
//!   its owner and mode. A journal or directory anyone else can write is distrusted: its
//!   lines could free a project's money (by truncation) or freeze it.
//! - **Locking.** Every reader and writer holds an exclusive `flock` on the file, so a
//!   check reads, decides and appends as one step, and a compaction cannot lose a line
//!   appended meanwhile. The compaction replaces the file (rename), so a locker checks
//!   after locking that the path still names the file it locked, else opens it again.
//! - **What a line is worth.** A torn or garbled line (a crash mid-write, a hand edit) is
//!   skipped and counted, never a panic; a cost that is negative or not finite counts for
//!   nothing. Appends are not fsynced: a power cut may lose the last lines, which the next
//!   refresh counts from squeue anyway.
//! - **Refused later.** A submission project-check accepts that slurmctld then refuses (a
//!   bad partition, a limit) keeps its reservation until the next refresh: the journal
//!   cannot know, and this errs towards refusing, for one refresh period at most.
//! - **The bound.** A reservation never counts for longer than the cache's `max_age` after
//!   it was made, nor when it claims to be from more than [`cache::FUTURE_SKEW`] in the
//!   future. `max_age` because a reservation only ever counts against a fresh cache, one
//!   refreshed less than `max_age` ago, and every job submitted before that refresh is in
//!   its snapshot: past `max_age` a reservation is either covered by a newer refresh or
//!   the cache is stale and `on_stale` decides without it. So the bound never drops a
//!   reservation that still matters, and a dead refresh freezes nothing that staleness
//!   does not already decide. A line from the future (the clock stepped back) would
//!   otherwise outlive every refresh until the clock caught up.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::cache;
use crate::model::time::{seconds, Timestamp};
use crate::state::atomic_file;

/// How long a check waits for the lock (a compaction holds it for milliseconds; the
/// submission waits in slurmctld meanwhile, so not long).
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(2);

/// One accepted submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Reservation {
    /// When it was accepted (seconds since the epoch in the journal).
    pub at: Timestamp,
    /// The budget it is charged to (the project's budget name).
    pub budget: String,
    /// Its worst case, in the budget's unit.
    pub cost: f64,
}

impl Reservation {
    /// Whether it counts against a cache refreshed at `since`, at `now` (seconds), with
    /// the cache's `max_age` (see the module notes for the bound).
    pub(crate) fn counts(&self, since: Timestamp, now: Timestamp, max_age: Duration) -> bool {
        self.at >= since
            && self.at + seconds(max_age) >= now
            && self.at <= now + seconds(cache::FUTURE_SKEW)
            && self.cost.is_finite()
            && self.cost >= 0.0
    }
}

/// Why the journal cannot be used.
#[derive(Debug)]
pub(crate) enum JournalError {
    /// Someone else than root or its owner could have written it (or its directory).
    Distrusted(PathBuf, String),
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalError::Distrusted(p, why) => {
                write!(f, "{}: reservation journal distrusted: {why}", p.display())
            }
            JournalError::Io(p, e) => {
                write!(f, "{}: reservation journal unusable: {e}", p.display())?;
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) {
                    // What SlurmUser cannot do for itself in a directory of root's.
                    write!(
                        f,
                        " (create it once as SlurmUser's, mode 0600, in a directory only root or \
                         SlurmUser can write: see \"Budgets\" in the cost-tags README)"
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for JournalError {}

/// What a budget has reserved.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Reserved {
    pub cost: f64,
    /// Reservations that count.
    pub count: usize,
    /// Lines skipped as torn or garbled, or with a cost that is not a finite amount.
    pub bad_lines: usize,
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Compacted {
    pub kept: usize,
    pub dropped: usize,
    pub bad_lines: usize,
}

/// The journal, open and locked until dropped.
pub(crate) struct Journal {
    file: Flock<File>,
    path: PathBuf,
    /// Whether the file ends with a newline (or is empty), as the last read saw it.
    ends_clean: bool,
}

impl Journal {
    /// Opens the journal at `path`, creating it (mode 0600, the running user's) when
    /// `create` and missing, and locks it, waiting until `deadline`. `Ok(None)`: missing
    /// and not to be created.
    pub(crate) fn open(path: &Path, create: bool, deadline: Instant) -> Result<Option<Journal>, JournalError> {
        let io = |e: std::io::Error| JournalError::Io(path.to_path_buf(), e);
        loop {
            let file = match OpenOptions::new()
                .read(true)
                .append(true)
                .create(create)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(JournalError::Distrusted(path.to_path_buf(), "it is a symlink".into()))
                }
                Err(e) => return Err(io(e)),
            };
            let meta = file.metadata().map_err(io)?;
            trusted(path, &meta)?;
            let file = lock(file, deadline).map_err(io)?;
            // A compaction may have replaced the file while we waited: lock the new one.
            match std::fs::symlink_metadata(path) {
                Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {
                    return Ok(Some(Journal {
                        file,
                        path: path.to_path_buf(),
                        ends_clean: true,
                    }))
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            }
        }
    }

    /// What `budget` has reserved against a cache refreshed at `since`, at `now`: the
    /// file is streamed, and only the lines naming the budget are parsed.
    pub(crate) fn reserved(
        &mut self,
        budget: &str,
        since: Timestamp,
        now: Timestamp,
        max_age: Duration,
    ) -> Result<Reserved, JournalError> {
        let mut needle = b",\"budget\":".to_vec();
        serde_json::to_writer(&mut needle, budget).map_err(|e| self.io(std::io::Error::other(e)))?;
        needle.push(b',');
        let finder = memchr::memmem::Finder::new(&needle);
        let mut sum = Reserved::default();
        let mut wanted = |line: &[u8]| finder.find(line).is_some();
        self.scan(&mut wanted, |r| match r {
            Some(r) if r.counts(since, now, max_age) => {
                sum.cost += r.cost;
                sum.count += 1;
            }
            Some(r) if !(r.cost.is_finite() && r.cost >= 0.0) => sum.bad_lines += 1,
            Some(_) => {}
            None => sum.bad_lines += 1,
        })?;
        Ok(sum)
    }

    /// Every budget's reservations against a cache refreshed at `since` (for `budget
    /// list`), and the bad lines.
    pub(crate) fn totals(
        &mut self,
        since: Timestamp,
        now: Timestamp,
        max_age: Duration,
    ) -> Result<(std::collections::BTreeMap<String, f64>, usize), JournalError> {
        let mut totals = std::collections::BTreeMap::new();
        let mut bad = 0;
        self.scan(&mut |_| true, |r| match r {
            Some(r) if r.counts(since, now, max_age) => *totals.entry(r.budget).or_insert(0.0) += r.cost,
            Some(_) => {}
            None => bad += 1,
        })?;
        Ok((totals, bad))
    }

    /// Appends `r` in one write.
    pub(crate) fn append(&mut self, r: &Reservation) -> Result<(), JournalError> {
        let mut line = if self.ends_clean { Vec::new() } else { b"\n".to_vec() };
        serde_json::to_writer(&mut line, r).map_err(|e| self.io(std::io::Error::other(e)))?;
        line.push(b'\n');
        let result = (&*self.file).write_all(&line);
        result.map_err(|e| self.io(e))?;
        self.ends_clean = true;
        Ok(())
    }

    /// Keeps only the reservations `keep` wants, dropping bad lines too, and replaces the
    /// file atomically with the same owner and mode (the refresh runs as root; the
    /// journal stays SlurmUser's). Nothing is written when nothing is dropped. Takes the
    /// journal: once replaced, this handle names the old file; the lock goes with it.
    pub(crate) fn compact(mut self, keep: impl Fn(&Reservation) -> bool) -> Result<Compacted, JournalError> {
        let mut done = Compacted::default();
        let mut text = Vec::new();
        self.scan(&mut |_| true, |r| match r {
            Some(r) if !(r.cost.is_finite() && r.cost >= 0.0) => done.bad_lines += 1,
            Some(r) if keep(&r) => {
                done.kept += 1;
                // Serialising a Reservation read from JSON cannot fail.
                let _ = serde_json::to_writer(&mut text, &r);
                text.push(b'\n');
            }
            Some(_) => done.dropped += 1,
            None => done.bad_lines += 1,
        })?;
        if done.dropped + done.bad_lines == 0 {
            return Ok(done);
        }
        let meta = self.file.metadata().map_err(|e| self.io(e))?;
        atomic_file::replace_owned(&self.path, &text, meta.mode() & 0o7777, meta.uid(), meta.gid())
            .map_err(|e| self.io(e))?;
        Ok(done)
    }

    /// Streams the lines from the start: `wanted` picks, from the raw line, the ones to
    /// parse; `each` gets each picked line parsed, or `None` for one that is not a
    /// reservation.
    fn scan(
        &mut self,
        wanted: &mut dyn FnMut(&[u8]) -> bool,
        mut each: impl FnMut(Option<Reservation>),
    ) -> Result<(), JournalError> {
        let path = self.path.clone();
        let io = |e: std::io::Error| JournalError::Io(path.clone(), e);
        (&*self.file).seek(SeekFrom::Start(0)).map_err(io)?;
        let mut reader = BufReader::with_capacity(64 * 1024, &*self.file);
        let mut line = Vec::with_capacity(128);
        self.ends_clean = true;
        loop {
            line.clear();
            if read_line(&mut reader, &mut line).map_err(io)? == 0 {
                return Ok(());
            }
            self.ends_clean = line.last() == Some(&b'\n');
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            // A line that is not one whole object (torn by a crash) is bad, whatever it names.
            if !(text.starts_with(b"{") && text.ends_with(b"}")) {
                each(None);
                continue;
            }
            if wanted(text) {
                each(serde_json::from_slice::<Reservation>(text).ok());
            }
        }
    }

    fn io(&self, e: std::io::Error) -> JournalError {
        JournalError::Io(self.path.clone(), e)
    }
}

/// A line, however long: `read_until` with the interruptions retried.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<usize> {
    loop {
        match reader.read_until(b'\n', line) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The journal and its directory may be written by their owner alone, and the owner must
/// be root or the running user (project-check: SlurmUser). Root (the refresh, `budget
/// list`) also accepts a journal of another user (SlurmUser's, as it should be) in a
/// directory that root or that same user owns.
fn trusted(path: &Path, meta: &std::fs::Metadata) -> Result<(), JournalError> {
    let distrust = |why: String| Err(JournalError::Distrusted(path.to_path_buf(), why));
    let me = nix::unistd::geteuid();
    let owner_ok = |uid: u32| uid == 0 || uid == me.as_raw();
    if !meta.is_file() {
        return distrust("not a regular file".into());
    }
    if meta.mode() & 0o022 != 0 {
        return distrust(format!("writable by group or others (mode {:o})", meta.mode() & 0o7777));
    }
    if !owner_ok(meta.uid()) && !me.is_root() {
        return distrust(format!("owned by uid {}, not by root or uid {me}", meta.uid()));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let d = std::fs::metadata(dir).map_err(|e| JournalError::Io(dir.to_path_buf(), e))?;
    if !(owner_ok(d.uid()) || d.uid() == meta.uid()) {
        return distrust(format!("its directory {} is owned by uid {}", dir.display(), d.uid()));
    }
    if d.mode() & 0o022 != 0 {
        return distrust(format!(
            "its directory {} is writable by group or others (mode {:o})",
            dir.display(),
            d.mode() & 0o7777
        ));
    }
    Ok(())
}

/// flock has no timeout: poll without blocking, backing off, until the deadline.
fn lock(mut file: File, deadline: Instant) -> std::io::Result<Flock<File>> {
    let mut pause = Duration::from_millis(1);
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((returned, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                file = returned;
                if Instant::now() + pause > deadline {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "timed out waiting for its lock",
                    ));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err((_, errno)) => return Err(errno.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const T0: Timestamp = Timestamp::constant(1_700_000_000);
    const HOUR: Duration = Duration::from_secs(3600);

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn open(path: &Path) -> Journal {
        Journal::open(path, true, soon()).unwrap().unwrap()
    }

    fn r(at: Timestamp, budget: &str, cost: f64) -> Reservation {
        Reservation {
            at,
            budget: budget.into(),
            cost,
        }
    }

    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn appended_reservations_add_up_per_budget_since_the_refresh() {
        let dir = private_dir();
        let path = dir.path().join("reservations.jsonl");
        // Missing and not to be created (the refresh, `budget list`): nothing to do.
        assert!(Journal::open(&path, false, soon()).unwrap().is_none());
        let mut j = open(&path);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        for res in [
            r(T0 - 10, "ProjectA", 100.0), // before the refresh at T0: covered by it
            r(T0, "ProjectA", 0.17),       // the refresh's own second: counts (errs refusing)
            r(T0 + 5, "ProjectA", 0.17),
            r(T0 + 6, "ProjectAB", 7.0), // another budget whose name starts the same
            r(T0 + 7, "odd \"name\"", 2.0),
        ] {
            j.append(&res).unwrap();
        }
        let got = j.reserved("ProjectA", T0, T0 + 60, HOUR).unwrap();
        assert_eq!((got.count, got.bad_lines), (2, 0));
        assert!((got.cost - 0.34).abs() < 1e-9, "{got:?}");
        assert_eq!(j.reserved("odd \"name\"", T0, T0 + 60, HOUR).unwrap().cost, 2.0);
        assert_eq!(j.reserved("Project", T0, T0 + 60, HOUR).unwrap().count, 0);
        let (totals, bad) = j.totals(T0, T0 + 60, HOUR).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(totals.len(), 3);
        assert_eq!(totals["ProjectAB"], 7.0);
        drop(j);
        // The format is one compact JSON object a line, as documented.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().nth(1),
            Some("{\"at\":1700000000,\"budget\":\"ProjectA\",\"cost\":0.17}")
        );
    }

    #[test]
    fn torn_and_garbled_lines_are_skipped_and_counted() {
        let dir = private_dir();
        let path = dir.path().join("reservations.jsonl");
        let t0 = T0.as_second();
        std::fs::write(
            &path,
            format!(
                "{{\"at\":{t0},\"budget\":\"P\",\"cost\":1.0}}\n\
                 garbage \u{0} here\n\
                 \n\
                 {{\"at\":{t0},\"budget\":\"P\",\"cost\":\"lots\"}}\n\
                 {{\"at\":{t0},\"budget\":\"P\",\"cost\":-5.0}}\n\
                 {{\"at\":{t0},\"budget\":\"P\",\"cost\":1e999}}\n\
                 {{\"at\":{t0},\"budget\":\"Q\",\"cost\":3.0}}\n\
                 {{\"at\":{t0},\"budget\":\"P\",\"co"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut j = open(&path);
        // 1.0 counts; the garbage, the text cost, the negative and the overflowing costs
        // and the torn last line do not.
        let got = j.reserved("P", T0, T0, HOUR).unwrap();
        assert_eq!((got.cost, got.count, got.bad_lines), (1.0, 1, 5));
        // An append after a torn line starts a line of its own.
        j.append(&r(T0 + 1, "P", 2.0)).unwrap();
        let got = j.reserved("P", T0, T0 + 1, HOUR).unwrap();
        assert_eq!((got.cost, got.count), (3.0, 2));
        // A compaction drops the bad lines.
        let done = j.compact(|_| true).unwrap();
        assert_eq!((done.kept, done.dropped, done.bad_lines), (3, 0, 5));
        let mut j = open(&path);
        assert_eq!(j.reserved("P", T0, T0 + 1, HOUR).unwrap().bad_lines, 0);
    }

    #[test]
    fn a_journal_others_can_write_is_distrusted() {
        let dir = private_dir();
        let path = dir.path().join("reservations.jsonl");
        drop(open(&path));
        for mode in [0o620, 0o602, 0o666] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = Journal::open(&path, true, soon()).err().unwrap();
            assert!(
                matches!(e, JournalError::Distrusted(..)) && e.to_string().contains("writable by group or others"),
                "{mode:o}: {e}"
            );
        }
        // 0640 is fine: SlurmUser's group may read it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        open(&path);
        // Its directory too.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = Journal::open(&path, true, soon()).err().unwrap();
        assert!(e.to_string().contains("its directory"), "{e}");
    }

    /// Ownership by another user needs root to set up; the suite runs as root in CI.
    #[test]
    fn a_journal_of_another_user_is_distrusted_unless_root_reads_it() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs as root");
            eprintln!("\n!!!!!! SKIPPING: needs root to chown !!!!!!\n");
            return;
        }
        let dir = private_dir();
        let path = dir.path().join("reservations.jsonl");
        drop(open(&path));
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        // Root (the refresh) accepts SlurmUser's journal in root's directory.
        open(&path);
        // Anyone else is refused a journal that is neither theirs nor root's: as nobody's
        // uid 65533, in a child so that this process keeps its root.
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "budget::reservations::tests::distrusted_as_another_user",
                "--ignored",
                "--nocapture",
            ])
            .env("RESERVATIONS_TEST_PATH", &path)
            .output()
            .unwrap();
        assert!(
            child.status.success() && String::from_utf8_lossy(&child.stdout).contains("1 passed"),
            "{}{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
    }

    /// Run by the test above, as root: becomes uid 65533 and opens the journal of uid 65534.
    #[test]
    #[ignore]
    fn distrusted_as_another_user() {
        let Some(path) = std::env::var_os("RESERVATIONS_TEST_PATH") else {
            return;
        };
        nix::unistd::setresuid(65533.into(), 65533.into(), 0.into()).unwrap();
        let e = Journal::open(Path::new(&path), true, soon()).err().unwrap();
        // Its mode 0600 keeps uid 65533 out before the owner check can even run.
        assert!(
            matches!(&e, JournalError::Io(_, io) if io.kind() == std::io::ErrorKind::PermissionDenied)
                || e.to_string().contains("owned by uid 65534"),
            "{e}"
        );
    }

    #[test]
    fn a_symlink_is_never_followed() {
        let dir = private_dir();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let path = dir.path().join("reservations.jsonl");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let e = Journal::open(&path, true, soon()).err().unwrap();
        assert!(e.to_string().contains("symlink"), "{e}");
        // A dangling one is not created through either.
        let dangling = dir.path().join("dangling.jsonl");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(Journal::open(&dangling, true, soon()).is_err());
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(std::fs::read(&victim).unwrap(), b"secret");
    }

    #[test]
    fn a_reservation_counts_since_the_refresh_within_the_bound() {
        let max_age = Duration::from_secs(1800);
        let made = r(T0, "P", 1.0);
        // Against a cache refreshed before it, while the cache can be fresh.
        assert!(made.counts(T0 - 100, T0, max_age));
        assert!(made.counts(T0, T0 + 1800, max_age));
        // Covered by a refresh after it.
        assert!(!made.counts(T0 + 1, T0 + 2, max_age));
        // Never longer than max_age after it was made, whatever the cache says.
        assert!(!made.counts(T0 - 100, T0 + 1801, max_age));
        // From the future, beyond the clock skew allowed: the clock was wrong.
        assert!(made.counts(T0 - 100, T0 - 300, max_age));
        assert!(!made.counts(T0 - 1000, T0 - 301, max_age));
        // Not an amount.
        assert!(!r(T0, "P", f64::NAN).counts(T0, T0, max_age));
        assert!(!r(T0, "P", f64::INFINITY).counts(T0, T0, max_age));
        assert!(!r(T0, "P", -1.0).counts(T0, T0, max_age));
    }

    /// What `budget refresh` does at T: drops what its snapshot covers, keeps the rest,
    /// and the file stays its owner's, with its mode.
    #[test]
    fn a_compaction_drops_what_the_refresh_covers_and_keeps_owner_and_mode() {
        let dir = private_dir();
        let path = dir.path().join("reservations.jsonl");
        let mut j = open(&path);
        for at in [T0 - 20, T0 - 1, T0, T0 + 30] {
            j.append(&r(at, "P", 1.0)).unwrap();
        }
        drop(j);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let root = nix::unistd::geteuid().is_root();
        if root {
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        }
        let before = std::fs::metadata(&path).unwrap();
        let j = open(&path);
        let done = j.compact(|r| r.at >= T0).unwrap();
        assert_eq!((done.kept, done.dropped, done.bad_lines), (2, 2, 0));
        let after = std::fs::metadata(&path).unwrap();
        assert_ne!(before.ino(), after.ino(), "replaced, not edited in place");
        assert_eq!(after.mode() & 0o7777, 0o640);
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        let mut j = open(&path);
        let got = j.reserved("P", Timestamp::UNIX_EPOCH, T0 + 30, HOUR).unwrap();
        assert_eq!((got.cost, got.count), (2.0, 2));
        // Nothing more to drop: the file is not rewritten.
        assert_eq!(j.compact(|r| r.at >= T0).unwrap().dropped, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), after.ino());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("reservations.jsonl")]);
    }

    /// A check waiting on the lock while a compaction replaces the file appends to the new
    /// file, not to the one renamed away.
    #[test]
    fn a_waiting_check_follows_a_compaction() {
        let dir = private_dir();
        let path = dir.path().join("reservations.jsonl");
        let mut j = open(&path);
        j.append(&r(T0 - 5, "P", 1.0)).unwrap();
        j.append(&r(T0 + 5, "P", 2.0)).unwrap();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut j = open(&path);
                j.append(&r(T0 + 6, "P", 4.0)).unwrap();
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        j.compact(|r| r.at >= T0).unwrap();
        waiter.join().unwrap();
        let mut j = open(&path);
        let got = j.reserved("P", T0, T0 + 6, HOUR).unwrap();
        assert_eq!((got.cost, got.count), (6.0, 2));
    }
}
