//! The daemon starter the Slurm and slurmdbd fixtures share: one private directory (a
//! `tempfile::TempDir`, removed on drop unless `CT_KEEP_SLURM_DIR` is set), a private
//! `munged` with its own random key, daemons started as children of the test process with
//! their output appended to a log file, waits that fail with the log tails as soon as a
//! daemon exits, and, on drop, each daemon stopped by its pid (SIGTERM, bounded wait,
//! SIGKILL, reap) in the reverse order of their start. Nothing is ever killed by name.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::process::{alive, append_file, find_program, read_lossy, stop_child, tail};

/// `names` found on PATH or in the sbin/bin directories, or the missing ones, joined.
pub fn find_programs<const N: usize>(names: [&str; N]) -> Result<[PathBuf; N], String> {
    let found = names.map(find_program);
    let missing: Vec<&str> = names
        .iter()
        .zip(&found)
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        Ok(found.map(Option::unwrap))
    } else {
        Err(missing.join(", "))
    }
}

/// The programs a fixture runs, when it can start here (all present, running as root);
/// else `None` after `super::require` (skip loudly, or panic under `CI=true`) for `needs`.
pub fn programs<const N: usize>(fixture: &str, needs: &str, names: [&str; N]) -> Option<[PathBuf; N]> {
    let found = match find_programs(names) {
        Ok(found) => found,
        Err(missing) => {
            eprintln!("{fixture}: missing programs: {missing}");
            super::require(needs, false);
            return None;
        }
    };
    if !nix::unistd::geteuid().is_root() {
        super::require(&format!("{needs} fixture running as root"), false);
        return None;
    }
    Some(found)
}

struct Daemon {
    name: &'static str,
    child: Option<Child>,
    /// How long it may take to stop after SIGTERM.
    grace: Duration,
}

/// A fixture's directory and the daemons it started. Dropping it stops them.
pub struct Daemons {
    /// Names the fixture in messages ("slurm fixture").
    fixture: &'static str,
    dir: tempfile::TempDir,
    daemons: Mutex<Vec<Daemon>>,
    /// Files under `log/` whose tails go into failure messages.
    logs: &'static [&'static str],
    tail_lines: usize,
    started: Instant,
    /// How long the whole start may take.
    timeout: Duration,
    /// Set when a panic message already carries the log tails (drop then stays quiet).
    logs_shown: AtomicBool,
}

impl Daemons {
    /// A fresh directory `<tmp>/<prefix>XXXX` with the subdirectories `subdirs` (and
    /// `log`, `munge`), all mode 0755 so that non-root users reach sockets and configs.
    pub fn new(
        fixture: &'static str,
        prefix: &str,
        subdirs: &[&str],
        logs: &'static [&'static str],
        tail_lines: usize,
        timeout: Duration,
    ) -> Daemons {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("create fixture dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["log", "munge"].iter().chain(subdirs) {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
            fs::set_permissions(dir.path().join(sub), fs::Permissions::from_mode(0o755)).unwrap();
        }
        Daemons {
            fixture,
            dir,
            daemons: Mutex::new(Vec::new()),
            logs,
            tail_lines,
            started: Instant::now(),
            timeout,
            logs_shown: AtomicBool::new(false),
        }
    }

    /// The fixture's private directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The private munge socket.
    pub fn munge_socket(&self) -> PathBuf {
        self.path().join("munge/munge.sock")
    }

    /// Starts `munged` with a new random key (1024 bytes, 0400) on [`Self::munge_socket`]
    /// and waits for the socket. Only credentials made with this key are accepted.
    pub fn start_munged(&self, munged: &Path) {
        let d = self.path().to_path_buf();
        let key = d.join("munge/munge.key");
        let mut bytes = [0u8; 1024];
        File::open("/dev/urandom").unwrap().read_exact(&mut bytes).unwrap();
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&key)
            .and_then(|mut f| f.write_all(&bytes))
            .expect("write the munge key");
        let mut c = Command::new(munged);
        c.arg("--foreground")
            .arg("--force")
            .arg(format!("--socket={}", self.munge_socket().display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}", d.join("munge/munged.pid").display()))
            .arg(format!("--log-file={}", d.join("log/munged.log").display()))
            .arg(format!("--seed-file={}", d.join("munge/munged.seed").display()));
        self.spawn("munged", c, "munged.log", Duration::from_secs(5));
        self.wait_for("munged socket", Duration::from_millis(20), || {
            self.munge_socket().exists()
        });
    }

    /// Starts `command` as daemon `name`: stdin empty, stdout and stderr appended to
    /// `log/<log>`, cwd the fixture directory. Dropping stops it with `grace` after SIGTERM.
    pub fn spawn(&self, name: &'static str, mut command: Command, log: &str, grace: Duration) {
        let log = self.path().join("log").join(log);
        let child = command
            .stdin(Stdio::null())
            .stdout(append_file(&log))
            .stderr(append_file(&log))
            .current_dir(self.path())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: spawn {name}: {e}", self.fixture));
        self.daemons.lock().unwrap().push(Daemon {
            name,
            child: Some(child),
            grace,
        });
    }

    /// The daemons that were started and have exited.
    pub fn exited(&self) -> Vec<&'static str> {
        let mut daemons = self.daemons.lock().unwrap();
        daemons
            .iter_mut()
            .filter_map(|d| (!alive(&mut d.child)).then_some(d.name))
            .collect()
    }

    /// Polls `ready` every `poll` until it holds. Panics, with the log tails, when a
    /// daemon has exited or the start has taken longer than the fixture's timeout.
    pub fn wait_for(&self, what: &str, poll: Duration, mut ready: impl FnMut() -> bool) {
        loop {
            let exited = self.exited();
            if exited.is_empty() && ready() {
                return;
            }
            if !exited.is_empty() || self.started.elapsed() > self.timeout {
                self.logs_shown.store(true, Ordering::SeqCst);
                panic!(
                    "{}: no {what} after {:?} (exited: {exited:?})\n{}",
                    self.fixture,
                    self.started.elapsed(),
                    self.log_tails()
                );
            }
            std::thread::sleep(poll);
        }
    }

    /// The last lines of every log, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut s = format!("{} dir: {}\n", self.fixture, self.path().display());
        for name in self.logs {
            let text = read_lossy(&self.path().join("log").join(name));
            s.push_str(&format!(
                "----- {name} (tail) -----\n{}\n",
                tail(&text, self.tail_lines)
            ));
        }
        s
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.logs_shown.load(Ordering::SeqCst) {
            eprintln!("{}: test panicked; logs:\n{}", self.fixture, self.log_tails());
        }
        for d in self
            .daemons
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
            .rev()
        {
            stop_child(&mut d.child, d.grace);
        }
        if std::env::var_os("CT_KEEP_SLURM_DIR").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("{}: kept {}", self.fixture, self.path().display());
        }
    }
}
