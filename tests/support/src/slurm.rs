//! A throwaway, real, single-node Slurm cluster for integration tests.
//!
//! [`SlurmCluster::start`] runs a private `munged`, `slurmctld -D` and `slurmd -D` as
//! children of the test process, all configured from one private directory (a
//! `tempfile::TempDir`): munge key and socket, `slurm.conf`, `job_submit.lua`,
//! StateSaveLocation, SlurmdSpoolDir, pid files and logs. Ports are picked free on
//! 127.0.0.1, the cluster and node names are random, so several fixtures (several test
//! threads, several test processes) can run at the same time. Dropping the fixture
//! cancels all jobs, then stops exactly the three processes it started, by pid
//! (SIGTERM, bounded wait, SIGKILL, reap). Nothing is ever killed by name.
//!
//! Needs root (slurmd must run jobs as other users) and the Debian packages
//! `slurm-wlm` (slurmctld, slurmd, slurm-client), `slurm-wlm-basic-plugins` (job_submit/lua)
//! and `munge`; `setpriv` (util-linux) for [`SlurmCluster::run_as`]. When something is
//! missing, `start` calls `super::require` (skip loudly, or panic under `CI=true`) and
//! returns `None`.
//!
//! # Facts established with Slurm 22.05.8 (Debian bookworm), checked by `tests/integration/slurm_fixture.rs`
//!
//! * **Prolog/Epilog environment.** slurmd does NOT pass its own environment to the
//!   Prolog/Epilog: they are exec'd with a freshly built environment that holds only
//!   Slurm's variables — `SLURM_JOB_ID`, `SLURM_JOBID`, `SLURM_JOB_USER`, `SLURM_JOB_UID`,
//!   `SLURM_UID`, `SLURM_JOB_GID`, `SLURM_JOB_PARTITION`, `SLURM_JOB_COMMENT`,
//!   `SLURM_JOB_WORK_DIR`, `SLURM_JOB_STDOUT`, `SLURM_JOB_STDIN`, `SLURM_JOB_NUM_NODES`,
//!   `SLURM_NODELIST`, `SLURM_JOB_CPUS_PER_NODE`, `SLURM_JOB_RESTART_COUNT`,
//!   `SLURM_CLUSTER_NAME`, `SLURMD_NODENAME`, `SLURM_CONF`,
//!   `SLURM_SCRIPT_CONTEXT` (`prolog_slurmd` / `epilog_slurmd`), and in the Epilog also
//!   `SLURM_JOB_EXIT_CODE`, `SLURM_JOB_EXIT_CODE2`, `SLURM_JOB_DERIVED_EC`. There is no
//!   `PATH` and no `HOME` (a `/bin/sh` script falls back to dash's built-in default
//!   PATH). So a variable such as `AWS_ENDPOINT_URL` or `COST_TAGS_CONFIG` set in
//!   slurmd's environment ([`SlurmOptions::daemon_env`]) does **not** reach the prolog:
//!   a prolog wrapper script must export whatever cost-prolog needs itself (or
//!   cost-prolog must read it from its config file). `SLURM_CONF` *is* there, so a
//!   script can find this fixture's directory with `dirname "$SLURM_CONF"`.
//!   The Prolog and Epilog run as root (SlurmdUser), cwd is slurmd's cwd.
//! * **job_submit.lua.** `job_desc.user_name` IS set in `slurm_job_submit` (e.g.
//!   `"ctalice"`), as is the `submit_uid` argument. `slurm.log_user(...)` followed by
//!   `return slurm.ERROR` makes sbatch exit 1 with `sbatch: error: <message>` on stderr.
//!   `slurm.log_info(...)` lines appear in the slurmctld log prefixed with `lua: `.
//! * `squeue -j ID` prints nothing for a COMPLETED job, so [`SlurmCluster::job_state`]
//!   uses `scontrol -o show job ID` (jobs stay visible for MinJobAge = 300 s).
//! * `CommunicationParameters=NoInAddrAny` binds slurmd (and clients) to 127.0.0.1, but
//!   slurmctld needs `NoCtldInAddrAny` as well, or it listens on 0.0.0.0; with both,
//!   every daemon listens on loopback only (checked by `tests/integration/slurm_fixture.rs`). Both
//!   bind to what the host name resolves to, which must be 127.0.0.1 (checked at start;
//!   with Debian's 127.0.1.1 the daemons work but srun's I/O does not connect). Only
//!   munge credentials made with this fixture's random key are accepted.
//! * slurmctld caches group membership: call [`ensure_test_users`] *before* starting a
//!   cluster.
//! * If the test process is SIGKILLed, the daemons survive; their pids are in
//!   `<dir>/run/*.pid` and `<dir>/munge/munged.pid`.

use std::ffi::OsStr;
use std::fmt::Display;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::daemons::{self, find_programs, Daemons};
use super::process::{find_program, free_port, read_lossy, require_host_name_on_127_0_0_1, short_hostname};

/// How the cluster is configured. `SlurmOptions::default()` gives a plain cluster
/// (2 CPUs, partitions `compute` (default) and `gpu`, no plugins, no prolog).
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// Contents of `job_submit.lua` (placed beside slurm.conf); enables
    /// `JobSubmitPlugins=lua`. It must define `slurm_job_submit` and `slurm_job_modify`.
    pub job_submit_lua: Option<String>,
    /// `Prolog=` script (run as root by slurmd at allocation: `PrologFlags=Alloc`).
    pub prolog: Option<PathBuf>,
    /// `Epilog=` script (run as root by slurmd when the job ends).
    pub epilog: Option<PathBuf>,
    /// Extra slurm.conf lines. A line whose key is one the fixture already sets (e.g.
    /// `AccountingStorageType=...`, `SlurmctldDebug=debug`) replaces the fixture's
    /// line; other lines are appended. `{node}` and `{dir}` are replaced by the node
    /// name and the fixture directory, so `PartitionName=x Nodes={node}` works.
    pub extra_conf: Vec<String>,
    /// Environment given to slurmctld and slurmd on top of the test's own (e.g.
    /// `COST_TAGS_CONFIG`). NB: it does not reach Prolog/Epilog (see module doc).
    pub daemon_env: Vec<(String, String)>,
    /// CPUs of the single node.
    pub cpus: u32,
    /// Also create partition `gpu` on the same node (not default).
    pub gpu_partition: bool,
    /// `GresTypes=gpu`, so that `--gpus` requests reach job_submit.lua as slurmctld
    /// fills them. (The node itself has none: slurmd without GPU devices reports 0 and
    /// the node is drained; a job asking for GPUs then pends, which a filter test wants.)
    pub gres_gpu: bool,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            job_submit_lua: None,
            prolog: None,
            epilog: None,
            extra_conf: Vec::new(),
            daemon_env: Vec::new(),
            cpus: 2,
            gpu_partition: true,
            gres_gpu: false,
        }
    }
}

/// A running private cluster. Dropping it stops it.
pub struct SlurmCluster {
    conf: PathBuf,
    node: String,
    cluster: String,
    ctld_port: u16,
    slurmd_port: u16,
    bins: Bins,
    /// Declared last: dropped (the daemons stopped) after [`SlurmCluster`]'s own drop has
    /// cancelled the jobs.
    daemons: Daemons,
}

#[derive(Clone, Debug)]
struct Bins {
    sinfo: PathBuf,
    squeue: PathBuf,
    scontrol: PathBuf,
    scancel: PathBuf,
    setpriv: PathBuf,
}

const START_TIMEOUT: Duration = Duration::from_secs(60);
const PROGRAMS: [&str; 9] = [
    "munged",
    "slurmctld",
    "slurmd",
    "sinfo",
    "squeue",
    "scontrol",
    "scancel",
    "setpriv",
    "sbatch",
];
const LOGS: &[&str] = &[
    "munged.log",
    "slurmctld.stderr",
    "slurmctld.log",
    "slurmd.stderr",
    "slurmd.log",
];

/// True when a Slurm cluster can be started here (binaries present, running as root).
pub fn available() -> bool {
    find_programs(PROGRAMS).is_ok() && nix::unistd::geteuid().is_root()
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut x = nanos
        ^ ((std::process::id() as u64) << 32)
        ^ (COUNTER.fetch_add(1, Ordering::Relaxed) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser, then 8 base-36 lowercase chars (letters first, keeps names valid)
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| {
            let c = alphabet[(x % 36) as usize] as char;
            x /= 36;
            c
        })
        .collect()
}

impl SlurmCluster {
    /// Starts munged, slurmctld and slurmd and returns once `sinfo` shows the node idle.
    /// Returns `None` (after `super::require`) when Slurm/munge are missing or not root.
    /// Panics, with the daemons' log tails, if the node is not idle within 60 s.
    pub fn start(opts: SlurmOptions) -> Option<SlurmCluster> {
        let [munged, slurmctld, slurmd, sinfo, squeue, scontrol, scancel, setpriv, _sbatch] =
            daemons::programs("slurm fixture", "Slurm (slurm-wlm + munge)", PROGRAMS)?;
        require_host_name_on_127_0_0_1();
        let daemons = Daemons::new(
            "slurm fixture",
            "cost-tags-slurm-",
            &["state", "spool", "run"],
            LOGS,
            40,
            START_TIMEOUT,
        );
        let d = daemons.path().to_path_buf();

        let id = unique_suffix();
        let cluster = format!("ct{id}");
        let node = format!("ct{id}-1");
        let ctld_port = free_port();
        let mut slurmd_port = free_port();
        while slurmd_port == ctld_port {
            slurmd_port = free_port();
        }
        let sock = daemons.munge_socket();

        // slurm.conf
        let mut lines: Vec<String> = vec![
            format!("ClusterName={cluster}"),
            format!("SlurmctldHost={}(127.0.0.1)", short_hostname()),
            format!("SlurmctldPort={ctld_port}"),
            format!("SlurmdPort={slurmd_port}"),
            "AuthType=auth/munge".into(),
            format!("AuthInfo=socket={}", sock.display()),
            "CredType=cred/munge".into(),
            "SlurmUser=root".into(),
            "SlurmdUser=root".into(),
            format!("StateSaveLocation={}", d.join("state").display()),
            format!("SlurmdSpoolDir={}", d.join("spool").display()),
            format!("SlurmctldPidFile={}", d.join("run/slurmctld.pid").display()),
            format!("SlurmdPidFile={}", d.join("run/slurmd.pid").display()),
            format!("SlurmctldLogFile={}", d.join("log/slurmctld.log").display()),
            format!("SlurmdLogFile={}", d.join("log/slurmd.log").display()),
            "SlurmctldDebug=info".into(),
            "SlurmdDebug=info".into(),
            "ProctrackType=proctrack/linuxproc".into(),
            "TaskPlugin=task/none".into(),
            "JobAcctGatherType=jobacct_gather/none".into(),
            "AccountingStorageType=accounting_storage/none".into(),
            "JobCompType=jobcomp/none".into(),
            "SelectType=select/cons_tres".into(),
            "SelectTypeParameters=CR_Core".into(),
            "SchedulerType=sched/backfill".into(),
            "SchedulerParameters=nohold_on_prolog_fail".into(),
            "ReturnToService=2".into(),
            "MailProg=/bin/true".into(),
            "MpiDefault=none".into(),
            "SwitchType=switch/none".into(),
            "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny".into(),
            "KillWait=2".into(),
            "InactiveLimit=0".into(),
        ];
        if let Some(lua) = &opts.job_submit_lua {
            fs::write(d.join("job_submit.lua"), lua).unwrap();
            lines.push("JobSubmitPlugins=lua".into());
        }
        if let Some(p) = &opts.prolog {
            lines.push(format!("Prolog={}", p.display()));
        }
        if let Some(p) = &opts.epilog {
            lines.push(format!("Epilog={}", p.display()));
        }
        if opts.prolog.is_some() || opts.epilog.is_some() {
            lines.push("PrologFlags=Alloc".into());
        }
        let key_of = |l: &str| l.split('=').next().unwrap_or("").trim().to_ascii_lowercase();
        if opts.gres_gpu {
            lines.push("GresTypes=gpu".into());
        }
        let mut tail_lines = vec![
            format!(
                "NodeName={node} NodeAddr=127.0.0.1 Port={slurmd_port} CPUs={} RealMemory=512 State=UNKNOWN",
                opts.cpus
            ),
            format!("PartitionName=compute Nodes={node} Default=YES MaxTime=INFINITE State=UP"),
        ];
        if opts.gpu_partition {
            tail_lines.push(format!(
                "PartitionName=gpu Nodes={node} Default=NO MaxTime=INFINITE State=UP"
            ));
        }
        for extra in &opts.extra_conf {
            let extra = extra
                .replace("{node}", &node)
                .replace("{dir}", &d.display().to_string());
            let k = key_of(&extra);
            if k == "nodename" || k == "partitionname" {
                tail_lines.push(extra);
            } else if let Some(existing) = lines.iter_mut().find(|l| key_of(l) == k) {
                *existing = extra;
            } else {
                lines.push(extra);
            }
        }
        lines.extend(tail_lines);
        // `extra_conf` may name the cluster (the slurmdbd fixture's): report that one.
        let cluster = lines
            .iter()
            .find(|l| key_of(l) == "clustername")
            .and_then(|l| l.split_once('='))
            .map_or(cluster, |(_, name)| name.trim().to_string());
        let conf = d.join("slurm.conf");
        fs::write(&conf, lines.join("\n") + "\n").unwrap();
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();

        // From here on, a panic drops `daemons`, which stops whatever was started.
        daemons.start_munged(&munged);
        let daemon = |program: &Path, args: &[&str]| {
            let mut c = Command::new(program);
            c.args(args)
                .env("SLURM_CONF", &conf)
                .envs(opts.daemon_env.iter().map(|(k, v)| (k, v)));
            c
        };
        let conf_s = conf.to_str().unwrap();
        daemons.spawn(
            "slurmctld",
            daemon(&slurmctld, &["-D", "-f", conf_s]),
            "slurmctld.stderr",
            Duration::from_secs(15),
        );
        daemons.spawn(
            "slurmd",
            daemon(&slurmd, &["-D", "-f", conf_s, "-N", &node]),
            "slurmd.stderr",
            Duration::from_secs(10),
        );
        let cluster_fx = SlurmCluster {
            conf: conf.clone(),
            node,
            cluster,
            ctld_port,
            slurmd_port,
            bins: Bins {
                sinfo,
                squeue,
                scontrol,
                scancel,
                setpriv,
            },
            daemons,
        };
        cluster_fx
            .daemons
            .wait_for("idle node", Duration::from_millis(200), || {
                cluster_fx.node_state() == "idle"
            });
        Some(cluster_fx)
    }

    /// The fixture's private directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.daemons.path()
    }
    /// Path of slurm.conf.
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }
    /// Directory holding slurm.conf and job_submit.lua (same as `dir()`).
    pub fn conf_dir(&self) -> &Path {
        self.dir()
    }
    pub fn node_name(&self) -> &str {
        &self.node
    }
    pub fn cluster_name(&self) -> &str {
        &self.cluster
    }
    pub fn slurmctld_port(&self) -> u16 {
        self.ctld_port
    }
    pub fn slurmd_port(&self) -> u16 {
        self.slurmd_port
    }
    /// Environment a Slurm client needs to talk to this cluster.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("SLURM_CONF".to_string(), self.conf.display().to_string())]
    }

    /// A `Command` that runs `program` as `user` (via `setpriv --reuid --regid
    /// --init-groups`, so supplementary groups such as ctgpu apply), with SLURM_CONF,
    /// USER/LOGNAME, HOME=/tmp and cwd /tmp. Add args/env and run it.
    fn command_as(&self, user: &str, program: &str) -> Command {
        let pw = nix::unistd::User::from_name(user)
            .expect("getpwnam")
            .unwrap_or_else(|| panic!("no such user {user:?} (call ensure_test_users first?)"));
        let program = find_program(program)
            .map(|p| p.into_os_string())
            .unwrap_or_else(|| program.into());
        let mut c = Command::new(&self.bins.setpriv);
        c.arg(format!("--reuid={}", pw.uid))
            .arg(format!("--regid={}", pw.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .env("SLURM_CONF", &self.conf)
            .env("USER", user)
            .env("LOGNAME", user)
            .env("HOME", "/tmp")
            .current_dir("/tmp")
            .stdin(Stdio::null());
        c
    }

    /// Runs a Slurm client (or any program) as an unprivileged `user`; see `command_as`.
    pub fn run_as<S: AsRef<OsStr>>(&self, user: &str, program: &str, args: &[S]) -> Output {
        self.command_as(user, program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program} as {user}: {e}"))
    }

    /// A `Command` running `program` as root with SLURM_CONF set, cwd /tmp.
    pub fn command_root(&self, program: &str) -> Command {
        let program = find_program(program)
            .map(|p| p.into_os_string())
            .unwrap_or_else(|| program.into());
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf).current_dir("/tmp").stdin(Stdio::null());
        c
    }

    /// Runs `program` as root with SLURM_CONF set.
    pub fn run_root<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Output {
        self.command_root(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
    }

    /// Job state (`PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, ...) from
    /// `scontrol -o show job ID`; `None` if slurmctld does not know the job.
    pub fn job_state(&self, jobid: impl Display) -> Option<String> {
        let out = Command::new(&self.bins.scontrol)
            .args(["-o", "show", "job", &jobid.to_string()])
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("JobState="))
            .map(str::to_string)
    }

    /// Polls until the job is in one of `states`; returns that state. Panics (with the
    /// log tails) on timeout.
    pub fn wait_job_state(&self, jobid: impl Display, states: &[&str], timeout: Duration) -> String {
        let jobid = jobid.to_string();
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.job_state(&jobid);
            if let Some(s) = &st {
                if states.iter().any(|w| w.eq_ignore_ascii_case(s)) {
                    return s.clone();
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "job {jobid}: state {st:?} not in {states:?} after {timeout:?}\n{}",
                    self.log_tails()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Node state as sinfo prints it (`%T`): `idle`, `mixed`, `allocated`, `drained`,
    /// `draining`, `down`, with `*` appended when not responding. "" when unknown.
    pub fn node_state(&self) -> String {
        self.sinfo_node_field("%T")
    }

    /// The node's Reason (`sinfo %E`), e.g. why it was drained; "none" if none.
    pub fn node_reason(&self) -> String {
        self.sinfo_node_field("%E")
    }

    /// True when the node is drained or draining (a failing Prolog drains the node).
    pub fn node_is_drained(&self) -> bool {
        let s = self.node_state();
        s.contains("drain")
    }

    fn sinfo_node_field(&self, fmt: &str) -> String {
        let out = Command::new(&self.bins.sinfo)
            .args(["-h", "-n", &self.node, "-o", fmt])
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        match out {
            // One line per partition; the node's state is the same in each.
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            _ => String::new(),
        }
    }

    /// Job ids (`%i`) slurmctld still considers active (pending, running, completing...).
    pub fn active_jobs(&self) -> Vec<String> {
        let out = Command::new(&self.bins.squeue)
            .args(["-h", "-o", "%i"])
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// scancel every job (as root) and wait until the queue is empty (up to 30 s).
    /// Returns whether the queue emptied.
    pub fn cancel_all_and_wait(&self) -> bool {
        self.cancel_all_within(Duration::from_secs(30))
    }

    fn cancel_all_within(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut last_cancel: Option<Instant> = None;
        loop {
            let jobs = self.active_jobs();
            if jobs.is_empty() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            if last_cancel.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
                let _ = Command::new(&self.bins.scancel)
                    .args(&jobs)
                    .env("SLURM_CONF", &self.conf)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                last_cancel = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn slurmctld_log(&self) -> String {
        read_lossy(&self.dir().join("log/slurmctld.log"))
    }

    /// The last lines of every daemon log, for failure messages.
    pub fn log_tails(&self) -> String {
        self.daemons.log_tails()
    }
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        if self.daemons.exited().is_empty() && !self.cancel_all_within(Duration::from_secs(20)) {
            eprintln!("slurm fixture: jobs still active at teardown: {:?}", self.active_jobs());
        }
    }
}

/// Parses `Submitted batch job N` (sbatch's stdout) into N.
pub fn parse_job_id(sbatch_stdout: &[u8]) -> Option<u32> {
    String::from_utf8_lossy(sbatch_stdout)
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// Creates (idempotently; safe when several test processes race) the test accounts:
/// `ctalice` (not in ctgpu), `ctbob` (supplementary member of group `ctgpu`), `ctcarol`
/// (no special group). All are non-root, no home, shell /bin/sh, primary group `users`.
/// Call it before starting a cluster (slurmctld caches group membership). Requires root.
pub fn ensure_test_users() {
    use std::sync::Mutex;
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let _g = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    // Cross-process lock (useradd has its own /etc/passwd lock, but fails rather than
    // waits when another useradd holds it).
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open("/tmp/cost-tags-test-users.lock")
        .expect("open users lock");
    use std::os::unix::io::AsRawFd;
    // SAFETY: valid fd; the lock is released when `lock` is closed.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };

    let run = |program: &str, args: &[&str], ok_codes: &[i32]| {
        let path = find_program(program).unwrap_or_else(|| panic!("{program} not found"));
        for attempt in 0..20 {
            let out = Command::new(&path).args(args).output().unwrap();
            let code = out.status.code().unwrap_or(-1);
            if ok_codes.contains(&code) {
                return;
            }
            // 1 = can't lock /etc/passwd (someone else is editing): retry.
            if attempt == 19 {
                panic!(
                    "{program} {args:?} exited {code}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    let user_exists = |u: &str| nix::unistd::User::from_name(u).ok().flatten().is_some();
    let group_exists = |g: &str| nix::unistd::Group::from_name(g).ok().flatten().is_some();

    if !group_exists("ctgpu") {
        run("groupadd", &["ctgpu"], &[0, 9]); // 9 = group already exists
    }
    for u in ["ctalice", "ctbob", "ctcarol"] {
        if !user_exists(u) {
            run("useradd", &["-M", "-N", "-s", "/bin/sh", u], &[0, 9]); // 9 = user exists
        }
    }
    let members = nix::unistd::Group::from_name("ctgpu")
        .unwrap()
        .map(|g| g.mem)
        .unwrap_or_default();
    if !members.iter().any(|m| m == "ctbob") {
        run("usermod", &["-aG", "ctgpu", "ctbob"], &[0]);
    }
    for u in ["ctalice", "ctcarol"] {
        if members.iter().any(|m| m == u) {
            run("gpasswd", &["-d", u, "ctgpu"], &[0, 3]);
        }
    }
}
