//! A throwaway Slurm accounting database for integration tests: a private MariaDB
//! (`mariadbd` with its own datadir and socket, TCP on 127.0.0.1 at a free port, run as
//! root) and a `slurmdbd` (free port on 127.0.0.1) authenticated by a private `munged`.
//! All three are children of the test process, configured from one `tempfile::TempDir`,
//! and dropping the fixture stops exactly them, by pid.
//!
//! Use: `SlurmDbd::start(accounts)` registers a fresh cluster name with its accounts and
//! users, then `SlurmOptions { extra_conf: dbd.slurm_conf_lines(), .. }` makes a
//! [`super::slurm::SlurmCluster`] of that name store its jobs there, comments included.
//!
//! # Facts established with Slurm 22.05.8 and MariaDB 10.11 (Debian bookworm)
//!
//! * Clients (sacctmgr, sacct, slurmctld) authenticate to slurmdbd through the munge
//!   socket named by `AccountingStoragePass`, not `AuthInfo`: without it they use the
//!   system socket `/run/munge/munge.socket.2` and fail with "Protocol authentication
//!   error". So the cluster keeps its own munged and talks to slurmdbd through ours.
//! * slurmdbd reads `slurmdbd.conf` beside `$SLURM_CONF`; the file must be mode 0600 and
//!   `DbdHost` the short host name. It creates its tables on first start (a few seconds).
//! * The cluster must be added (`sacctmgr -i add cluster`) before slurmctld starts, so
//!   the fixture picks the cluster name and the Slurm fixture takes it via `ClusterName=`.
//! * `mariadb-install-db --auth-root-authentication-method=socket` lets root in over the
//!   private socket without a password; slurmdbd gets its own user on 127.0.0.1.
//!
//! Needs root and the Debian packages `mariadb-server` and `slurmdbd` (plus what the Slurm
//! fixture needs). When something is missing, `start` calls `super::require` and returns
//! `None`.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::process::{
    alive, append_file, find_program, free_port, read_lossy, require_host_name_on_127_0_0_1, short_hostname,
    stop_child, tail,
};

const START_TIMEOUT: Duration = Duration::from_secs(90);
const DB_USER: &str = "slurm";
const DB_PASSWORD: &str = "cost-tags-test";

/// A running private accounting database. Dropping it stops it.
pub struct SlurmDbd {
    dir: tempfile::TempDir,
    cluster: String,
    dbd_port: u16,
    munged: Option<Child>,
    mariadbd: Option<Child>,
    slurmdbd: Option<Child>,
    bins: Bins,
}

#[derive(Clone)]
struct Bins {
    mariadbd: PathBuf,
    install_db: PathBuf,
    mariadb: PathBuf,
    slurmdbd: PathBuf,
    sacctmgr: PathBuf,
    munged: PathBuf,
}

fn find_bins() -> Result<Bins, String> {
    let mut missing = Vec::new();
    let mut f = |name: &str| {
        find_program(name).unwrap_or_else(|| {
            missing.push(name.to_string());
            PathBuf::new()
        })
    };
    let bins = Bins {
        mariadbd: f("mariadbd"),
        install_db: f("mariadb-install-db"),
        mariadb: f("mariadb"),
        slurmdbd: f("slurmdbd"),
        sacctmgr: f("sacctmgr"),
        munged: f("munged"),
    };
    if missing.is_empty() {
        Ok(bins)
    } else {
        Err(missing.join(", "))
    }
}

impl SlurmDbd {
    /// Starts munged, MariaDB and slurmdbd, and registers a new cluster with `accounts`
    /// (account name, its users). Returns `None` (after `super::require`) when the
    /// programs are missing or not root; panics with the logs if they do not come up.
    pub fn start(accounts: &[(&str, &[&str])]) -> Option<SlurmDbd> {
        let bins = match find_bins() {
            Ok(b) => b,
            Err(missing) => {
                eprintln!("slurmdbd fixture: missing programs: {missing}");
                super::require("Slurm accounting (mariadb-server + slurmdbd)", false);
                return None;
            }
        };
        if !nix::unistd::geteuid().is_root() {
            super::require("Slurm accounting fixture running as root", false);
            return None;
        }
        require_host_name_on_127_0_0_1();
        let dir = tempfile::Builder::new()
            .prefix("cost-tags-slurmdbd-")
            .tempdir()
            .unwrap();
        let d = dir.path().to_path_buf();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["munge", "log", "run"] {
            fs::create_dir(d.join(sub)).unwrap();
            fs::set_permissions(d.join(sub), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let suffix: String = {
            let mut b = [0u8; 6];
            File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
            b.iter().map(|x| (b'a' + x % 26) as char).collect()
        };
        let mut fx = SlurmDbd {
            dir,
            cluster: format!("ctdb{suffix}"),
            dbd_port: free_port(),
            munged: None,
            mariadbd: None,
            slurmdbd: None,
            bins: bins.clone(),
        };
        // From here on a panic drops `fx`, which stops whatever was started.
        let started = Instant::now();

        // munged with its own key.
        let key = d.join("munge/munge.key");
        {
            let mut bytes = [0u8; 1024];
            File::open("/dev/urandom").unwrap().read_exact(&mut bytes).unwrap();
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .open(&key)
                .unwrap();
            std::io::Write::write_all(&mut f, &bytes).unwrap();
        }
        let munge_log = d.join("log/munged.log");
        fx.munged = Some(
            Command::new(&bins.munged)
                .arg("--foreground")
                .arg("--force")
                .arg(format!("--socket={}", fx.munge_socket().display()))
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--pid-file={}", d.join("munge/munged.pid").display()))
                .arg(format!("--log-file={}", munge_log.display()))
                .arg(format!("--seed-file={}", d.join("munge/munged.seed").display()))
                .stdin(Stdio::null())
                .stdout(append_file(&munge_log))
                .stderr(append_file(&munge_log))
                .spawn()
                .expect("spawn munged"),
        );
        fx.wait_for("munged socket", started, |fx| fx.munge_socket().exists());

        // MariaDB: a fresh datadir, root over the private socket, slurmdbd's user on TCP.
        let install = Command::new(&bins.install_db)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("db").display()))
            .args([
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run mariadb-install-db");
        assert!(
            install.status.success(),
            "mariadb-install-db failed:\n{}{}",
            String::from_utf8_lossy(&install.stdout),
            String::from_utf8_lossy(&install.stderr)
        );
        let db_port = free_port();
        let db_log = d.join("log/mariadbd.log");
        fx.mariadbd = Some(
            Command::new(&bins.mariadbd)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", d.join("db").display()))
                .arg(format!("--socket={}", fx.db_socket().display()))
                .arg(format!("--port={db_port}"))
                .args(["--bind-address=127.0.0.1", "--user=root", "--skip-log-bin"])
                .arg(format!("--pid-file={}", d.join("run/mariadbd.pid").display()))
                .arg(format!("--log-error={}", db_log.display()))
                // slurmdbd warns below these; they also make its table creation quicker.
                .args(["--innodb-buffer-pool-size=128M", "--innodb-lock-wait-timeout=900"])
                .stdin(Stdio::null())
                .stdout(append_file(&db_log))
                .stderr(append_file(&db_log))
                .spawn()
                .expect("spawn mariadbd"),
        );
        fx.wait_for("mariadbd answering on its socket", started, |fx| {
            fx.sql("SELECT 1").map(|o| o.status.success()).unwrap_or(false)
        });
        let grant = format!(
            "CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'; \
             GRANT ALL ON slurm_acct_db.* TO '{DB_USER}'@'127.0.0.1';"
        );
        let out = fx.sql(&grant).expect("run mariadb");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        // slurmdbd reads slurmdbd.conf beside $SLURM_CONF; slurm.conf here is the one
        // sacctmgr uses before the cluster exists.
        let dbd_conf = d.join("slurmdbd.conf");
        let lines = [
            "AuthType=auth/munge".to_string(),
            format!("AuthInfo=socket={}", fx.munge_socket().display()),
            format!("DbdHost={}", short_hostname()),
            "DbdAddr=127.0.0.1".into(),
            // Not in slurmdbd.conf(5) for this option, but read: without it, slurmdbd
            // listens on 0.0.0.0; with it, on what the host name resolves to (loopback).
            "CommunicationParameters=NoInAddrAny".into(),
            format!("DbdPort={}", fx.dbd_port),
            "SlurmUser=root".into(),
            "StorageType=accounting_storage/mysql".into(),
            "StorageHost=127.0.0.1".into(),
            format!("StoragePort={db_port}"),
            format!("StorageUser={DB_USER}"),
            format!("StoragePass={DB_PASSWORD}"),
            "StorageLoc=slurm_acct_db".into(),
            format!("PidFile={}", d.join("run/slurmdbd.pid").display()),
            format!("LogFile={}", d.join("log/slurmdbd.log").display()),
            "DebugLevel=info".into(),
        ];
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&dbd_conf)
                .unwrap();
            std::io::Write::write_all(&mut f, (lines.join("\n") + "\n").as_bytes()).unwrap();
        }
        let client = [
            format!("ClusterName={}", fx.cluster),
            format!("SlurmctldHost={}(127.0.0.1)", short_hostname()),
            "AuthType=auth/munge".into(),
            format!("AuthInfo=socket={}", fx.munge_socket().display()),
            "AccountingStorageType=accounting_storage/slurmdbd".into(),
            "AccountingStorageHost=127.0.0.1".into(),
            format!("AccountingStoragePort={}", fx.dbd_port),
            format!("AccountingStoragePass={}", fx.munge_socket().display()),
            "NodeName=placeholder CPUs=1 State=UNKNOWN".into(),
            "PartitionName=placeholder Nodes=placeholder".into(),
        ];
        fs::write(fx.client_conf(), client.join("\n") + "\n").unwrap();
        let dbd_log = d.join("log/slurmdbd.stderr");
        fx.slurmdbd = Some(
            Command::new(&bins.slurmdbd)
                .arg("-D")
                .env("SLURM_CONF", fx.client_conf())
                .stdin(Stdio::null())
                .stdout(append_file(&dbd_log))
                .stderr(append_file(&dbd_log))
                .current_dir(&d)
                .spawn()
                .expect("spawn slurmdbd"),
        );
        fx.wait_for("slurmdbd answering sacctmgr", started, |fx| {
            fx.sacctmgr(&["-n", "-P", "list", "cluster"]).status.success()
        });

        let cluster = fx.cluster.clone();
        fx.sacctmgr_ok(&["-i", "add", "cluster", &cluster]);
        for (account, users) in accounts {
            fx.sacctmgr_ok(&["-i", "add", "account", account, &format!("cluster={cluster}")]);
            for user in *users {
                fx.sacctmgr_ok(&[
                    "-i",
                    "add",
                    "user",
                    user,
                    &format!("account={account}"),
                    &format!("cluster={cluster}"),
                ]);
            }
        }
        Some(fx)
    }

    fn wait_for(&mut self, what: &str, started: Instant, mut ready: impl FnMut(&mut SlurmDbd) -> bool) {
        loop {
            if ready(self) {
                return;
            }
            let dead = [
                ("munged", &mut self.munged),
                ("mariadbd", &mut self.mariadbd),
                ("slurmdbd", &mut self.slurmdbd),
            ]
            .into_iter()
            .filter_map(|(name, c)| (c.is_some() && !alive(c)).then_some(name))
            .collect::<Vec<_>>();
            if !dead.is_empty() || started.elapsed() > START_TIMEOUT {
                panic!(
                    "slurmdbd fixture: no {what} after {:?} (exited: {dead:?})\n{}",
                    started.elapsed(),
                    self.log_tails()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn sql(&self, statement: &str) -> std::io::Result<Output> {
        Command::new(&self.bins.mariadb)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.db_socket().display()))
            .args(["-u", "root", "-e", statement])
            .stdin(Stdio::null())
            .output()
    }

    /// slurmdbd's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.dbd_port
    }

    pub fn munge_socket(&self) -> PathBuf {
        self.dir.path().join("munge/munge.sock")
    }

    fn db_socket(&self) -> PathBuf {
        self.dir.path().join("run/mariadbd.sock")
    }

    /// slurm.conf for Slurm clients before a cluster runs (sacctmgr).
    pub fn client_conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// `SlurmOptions::extra_conf` lines that make a Slurm fixture store its jobs (and
    /// their comments) here, under this fixture's cluster name.
    pub fn slurm_conf_lines(&self) -> Vec<String> {
        vec![
            format!("ClusterName={}", self.cluster),
            "AccountingStorageType=accounting_storage/slurmdbd".into(),
            "AccountingStorageHost=127.0.0.1".into(),
            format!("AccountingStoragePort={}", self.dbd_port),
            format!("AccountingStoragePass={}", self.munge_socket().display()),
            "AccountingStoreFlags=job_comment".into(),
        ]
    }

    /// Runs sacctmgr against this database (with the client slurm.conf).
    pub fn sacctmgr(&self, args: &[&str]) -> Output {
        Command::new(&self.bins.sacctmgr)
            .args(args)
            .env("SLURM_CONF", self.client_conf())
            .stdin(Stdio::null())
            .output()
            .expect("run sacctmgr")
    }

    fn sacctmgr_ok(&self, args: &[&str]) {
        let out = self.sacctmgr(args);
        assert!(
            out.status.success(),
            "sacctmgr {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tails()
        );
    }

    /// The last lines of every log, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut s = format!("slurmdbd fixture dir: {}\n", self.dir.path().display());
        for name in ["munged.log", "mariadbd.log", "slurmdbd.stderr", "slurmdbd.log"] {
            s.push_str(&format!(
                "----- {name} (tail) -----\n{}\n",
                tail(&read_lossy(&self.dir.path().join("log").join(name)), 30)
            ));
        }
        s
    }
}

impl Drop for SlurmDbd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("slurmdbd fixture: test panicked; logs:\n{}", self.log_tails());
        }
        stop_child(&mut self.slurmdbd, Duration::from_secs(15));
        stop_child(&mut self.mariadbd, Duration::from_secs(30));
        stop_child(&mut self.munged, Duration::from_secs(5));
        if std::env::var_os("CT_KEEP_SLURM_DIR").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("slurmdbd fixture: kept {}", self.dir.path().display());
        }
    }
}
