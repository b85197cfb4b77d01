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
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::daemons::{self, Daemons};
use super::process::{free_port, require_host_name_on_127_0_0_1, short_hostname};

const START_TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(250);
const DB_USER: &str = "slurm";
const DB_PASSWORD: &str = "cost-tags-test";
const LOGS: &[&str] = &["munged.log", "mariadbd.log", "slurmdbd.stderr", "slurmdbd.log"];

/// A running private accounting database. Dropping it stops it.
pub struct SlurmDbd {
    cluster: String,
    dbd_port: u16,
    sacctmgr: PathBuf,
    daemons: Daemons,
}

impl SlurmDbd {
    /// Starts munged, MariaDB and slurmdbd, and registers a new cluster with `accounts`
    /// (account name, its users). Returns `None` (after `super::require`) when the
    /// programs are missing or not root; panics with the logs if they do not come up.
    pub fn start(accounts: &[(&str, &[&str])]) -> Option<SlurmDbd> {
        let [mariadbd, install_db, mariadb, slurmdbd, sacctmgr, munged] = daemons::programs(
            "slurmdbd fixture",
            "Slurm accounting (mariadb-server + slurmdbd)",
            [
                "mariadbd",
                "mariadb-install-db",
                "mariadb",
                "slurmdbd",
                "sacctmgr",
                "munged",
            ],
        )?;
        require_host_name_on_127_0_0_1();
        let daemons = Daemons::new(
            "slurmdbd fixture",
            "cost-tags-slurmdbd-",
            &["run"],
            LOGS,
            30,
            START_TIMEOUT,
        );
        let d = daemons.path().to_path_buf();
        let suffix: String = {
            let mut b = [0u8; 6];
            File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
            b.iter().map(|x| (b'a' + x % 26) as char).collect()
        };
        let cluster = format!("ctdb{suffix}");
        let dbd_port = free_port();
        // From here on a panic drops `daemons`, which stops whatever was started.
        daemons.start_munged(&munged);

        // MariaDB: a fresh datadir, root over the private socket, slurmdbd's user on TCP.
        let install = Command::new(&install_db)
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
        let db_socket = d.join("run/mariadbd.sock");
        let mut db = Command::new(&mariadbd);
        db.arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("db").display()))
            .arg(format!("--socket={}", db_socket.display()))
            .arg(format!("--port={db_port}"))
            .args(["--bind-address=127.0.0.1", "--user=root", "--skip-log-bin"])
            .arg(format!("--pid-file={}", d.join("run/mariadbd.pid").display()))
            .arg(format!("--log-error={}", d.join("log/mariadbd.log").display()))
            // slurmdbd warns below these; they also make its table creation quicker.
            .args(["--innodb-buffer-pool-size=128M", "--innodb-lock-wait-timeout=900"]);
        daemons.spawn("mariadbd", db, "mariadbd.log", Duration::from_secs(30));
        let sql = |statement: &str| sql(&mariadb, &db_socket, statement);
        daemons.wait_for("mariadbd answering on its socket", POLL, || {
            sql("SELECT 1").map(|o| o.status.success()).unwrap_or(false)
        });
        let grant = format!(
            "CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'; \
             GRANT ALL ON slurm_acct_db.* TO '{DB_USER}'@'127.0.0.1';"
        );
        let out = sql(&grant).expect("run mariadb");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        // slurmdbd reads slurmdbd.conf beside $SLURM_CONF; slurm.conf here is the one
        // sacctmgr uses before the cluster exists.
        let munge_socket = daemons.munge_socket();
        let lines = [
            "AuthType=auth/munge".to_string(),
            format!("AuthInfo=socket={}", munge_socket.display()),
            format!("DbdHost={}", short_hostname()),
            "DbdAddr=127.0.0.1".into(),
            // Not in slurmdbd.conf(5) for this option, but read: without it, slurmdbd
            // listens on 0.0.0.0; with it, on what the host name resolves to (loopback).
            "CommunicationParameters=NoInAddrAny".into(),
            format!("DbdPort={dbd_port}"),
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
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(d.join("slurmdbd.conf"))
            .and_then(|mut f| f.write_all((lines.join("\n") + "\n").as_bytes()))
            .expect("write slurmdbd.conf");
        let client = [
            format!("ClusterName={cluster}"),
            format!("SlurmctldHost={}(127.0.0.1)", short_hostname()),
            "AuthType=auth/munge".into(),
            format!("AuthInfo=socket={}", munge_socket.display()),
            "AccountingStorageType=accounting_storage/slurmdbd".into(),
            "AccountingStorageHost=127.0.0.1".into(),
            format!("AccountingStoragePort={dbd_port}"),
            format!("AccountingStoragePass={}", munge_socket.display()),
            "NodeName=placeholder CPUs=1 State=UNKNOWN".into(),
            "PartitionName=placeholder Nodes=placeholder".into(),
        ];
        let fx = SlurmDbd {
            cluster,
            dbd_port,
            sacctmgr,
            daemons,
        };
        fs::write(fx.client_conf(), client.join("\n") + "\n").unwrap();
        let mut dbd = Command::new(&slurmdbd);
        dbd.arg("-D").env("SLURM_CONF", fx.client_conf());
        fx.daemons
            .spawn("slurmdbd", dbd, "slurmdbd.stderr", Duration::from_secs(15));
        fx.daemons.wait_for("slurmdbd answering sacctmgr", POLL, || {
            fx.sacctmgr(&["-n", "-P", "list", "cluster"]).status.success()
        });

        let cluster = &fx.cluster;
        fx.sacctmgr_ok(&["-i", "add", "cluster", cluster]);
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

    /// slurmdbd's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.dbd_port
    }

    /// slurm.conf for Slurm clients before a cluster runs (sacctmgr).
    pub fn client_conf(&self) -> PathBuf {
        self.daemons.path().join("slurm.conf")
    }

    /// `SlurmOptions::extra_conf` lines that make a Slurm fixture store its jobs (and
    /// their comments) here, under this fixture's cluster name.
    pub fn slurm_conf_lines(&self) -> Vec<String> {
        vec![
            format!("ClusterName={}", self.cluster),
            "AccountingStorageType=accounting_storage/slurmdbd".into(),
            "AccountingStorageHost=127.0.0.1".into(),
            format!("AccountingStoragePort={}", self.dbd_port),
            format!("AccountingStoragePass={}", self.daemons.munge_socket().display()),
            "AccountingStoreFlags=job_comment".into(),
        ]
    }

    /// Runs sacctmgr against this database (with the client slurm.conf).
    pub fn sacctmgr(&self, args: &[&str]) -> Output {
        Command::new(&self.sacctmgr)
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
        self.daemons.log_tails()
    }
}

/// Runs `statement` as MariaDB's root over the private socket.
fn sql(mariadb: &Path, socket: &Path, statement: &str) -> std::io::Result<Output> {
    Command::new(mariadb)
        .arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .args(["-u", "root", "-e", statement])
        .stdin(Stdio::null())
        .output()
}
