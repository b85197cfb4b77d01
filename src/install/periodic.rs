//! The periodic jobs the installer schedules: `cost-tags reconcile` on every compute
//! node, and `budget refresh`, `prices refresh` and `metrics` on the head node.
//!
//! Each job is a systemd service + timer pair where systemd is the init system, and a
//! cron.d file otherwise. systemd comes first because a timer is supervised: it logs each
//! run to the journal, never starts a run while the previous one is still going (a slow
//! `sacct` or Price List call cannot pile up runs), starts relative to boot, and spreads
//! its start with `RandomizedDelaySec=`. cron is the fallback for images without systemd
//! (containers, minimal AMIs); where neither exists the job is not scheduled.
//!
//! The installer keeps no manifest on a compute node, so the first line of every file
//! written here carries [`JOB_MARK`]: a later run, or the uninstall, recognises its own
//! files by it (see [`is_ours`]) and never overwrites nor removes a file an administrator
//! wrote under the same name. The texts are byte for byte those of `write_job_files` in
//! `scripts/multi-runner/cost-tags.sh`, so that nodes installed by the script see no
//! change when the Rust installer runs again.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::node::env_file::PATH_ENV as ENV_FILE_VAR;

/// The first line of every job file the installer writes: how a later run (and the
/// uninstall of a compute node, which keeps no manifest) knows its own files. Unchanged
/// from cost-tags.sh so files written by it are recognised.
pub(crate) const JOB_MARK: &str = "# cost-tags.sh: ";

/// The directories searched after the jobs' own `bin_dir`, in the order a root login
/// shell has them. The job sets its PATH itself: neither systemd (whose default PATH
/// varies between versions) nor cron (`/usr/bin:/bin`) gives `sbin`, where Slurm's and
/// the system's tools may be.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One periodic job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Job {
    /// Compute nodes: reconcile the node's EC2 cost tags with its Slurm jobs (a missed
    /// epilog, a lost CreateTags).
    Reconcile,
    /// Head node: refresh the AWS Budgets cache `project-check` reads at submission.
    Budget,
    /// Head node: refresh the price cache `cost-tags report` reads.
    Prices,
    /// Head node: write the spend metrics to `output`, a file in node_exporter's
    /// textfile collector directory.
    Metrics {
        /// The `.prom` file written (under the root in tests).
        output: PathBuf,
    },
}

/// What a job runs and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobSpec {
    /// The systemd unit name without suffix, e.g. `cost-tags-reconcile`.
    pub name: &'static str,
    /// The cron.d file name, e.g. `cost-tags`.
    pub cron: &'static str,
    /// The `cost-tags` arguments, e.g. `reconcile` or `metrics --output /x/cost_tags.prom`.
    pub command: String,
    /// What the job does, for the unit's `Description=`.
    pub what: &'static str,
    /// Minutes after boot of the first run.
    pub boot_min: u32,
    /// Minutes between runs.
    pub every_min: u32,
    /// Up to this many seconds of random delay on each run, so that the nodes of a
    /// cluster (booted together by a scale-up, all on the same cron minute) do not call
    /// EC2, Budgets or the Price List in the same second and get throttled.
    pub jitter_s: u32,
}

impl JobSpec {
    /// The cron schedule: every `every_min` minutes, or `@daily` for a day (`*/1440` is
    /// not a valid minute field).
    fn cron_when(&self) -> String {
        if self.every_min == 1440 {
            "@daily".to_string()
        } else {
            format!("*/{} * * * *", self.every_min)
        }
    }
}

/// Where a job's files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobPaths {
    /// `<unit_dir>/<name>.service`
    pub service: PathBuf,
    /// `<unit_dir>/<name>.timer`
    pub timer: PathBuf,
    /// `<cron_dir>/<cron>`
    pub cron: PathBuf,
}

/// The texts of a job's files: the service and timer where systemd runs, the cron.d file
/// elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobFiles {
    /// The `.service` unit.
    pub service: String,
    /// The `.timer` unit.
    pub timer: String,
    /// The cron.d file.
    pub cron: String,
}

impl Job {
    /// What the job runs and when.
    pub(crate) fn spec(&self) -> JobSpec {
        match self {
            Job::Reconcile => JobSpec {
                name: "cost-tags-reconcile",
                cron: "cost-tags",
                command: "reconcile".to_string(),
                what: "reconcile this node's EC2 cost tags with its Slurm jobs",
                boot_min: 1,
                every_min: 5,
                jitter_s: 60,
            },
            Job::Budget => JobSpec {
                name: "cost-tags-budget-refresh",
                cron: "cost-tags-budget",
                command: "budget refresh".to_string(),
                what: "refresh the AWS Budgets cache that project-check reads",
                boot_min: 2,
                every_min: 10,
                jitter_s: 120,
            },
            // Daily: on-demand prices change a few times a year, and spot prices are
            // fetched as a history, so a later refresh corrects what a report of the last
            // day priced at the previous price. Up to 30 min of random delay spreads a
            // fleet of clusters (all on cron's @daily, or started together) over the
            // Price List.
            Job::Prices => JobSpec {
                name: "cost-tags-prices-refresh",
                cron: "cost-tags-prices",
                command: "prices refresh".to_string(),
                what: "refresh the price cache that cost-tags report reads",
                boot_min: 5,
                every_min: 1440,
                jitter_s: 1800,
            },
            // node_exporter reads the file at every scrape: 5 minutes keeps per user spend
            // (a sacct pass) current without loading slurmdbd.
            Job::Metrics { output } => JobSpec {
                name: "cost-tags-metrics",
                cron: "cost-tags-metrics",
                command: format!("metrics --output {}", output.display()),
                what: "write the spend metrics node_exporter's textfile collector reads",
                boot_min: 3,
                every_min: 5,
                jitter_s: 30,
            },
        }
    }

    /// "`<name>`.timer"
    pub(crate) fn timer_unit(&self) -> String {
        format!("{}.timer", self.spec().name)
    }

    /// Where the job's files go: the units in `unit_dir` (`/etc/systemd/system`), the
    /// cron file in `cron_dir` (`/etc/cron.d`), both under the root in tests.
    pub(crate) fn paths(&self, unit_dir: &Path, cron_dir: &Path) -> JobPaths {
        let spec = self.spec();
        JobPaths {
            service: unit_dir.join(format!("{}.service", spec.name)),
            timer: unit_dir.join(format!("{}.timer", spec.name)),
            cron: cron_dir.join(spec.cron),
        }
    }

    /// The three texts; etc_dir is where cost-tags.env is (/opt/slurm/etc, under the root
    /// in tests), bin_dir where cost-tags is.
    ///
    /// Paths are joined as the script joined them (`$DIR/name`) and are not quoted: the
    /// installer's directories hold no spaces nor shell characters.
    ///
    /// No shell reads `cost-tags.env`: `cost-tags` reads it itself (`node::env_file`),
    /// with the checks the hooks make, so a file someone other than root can write is
    /// ignored and logged rather than run as root. The jobs name the file in
    /// `COST_TAGS_ENV_FILE`. (Sourcing it ran `$(...)` in a group-writable file as root.)
    ///
    /// The timer has no `Persistent=`: it applies to `OnCalendar=` timers only, and these
    /// are monotonic (`OnBootSec=` + `OnUnitActiveSec=`), so a run missed while the node
    /// was off happens `boot_min` after the next boot anyway. The cron file does the same
    /// with an `@reboot` line, and its jitter is a `sleep $((RANDOM % N))` in cron's bash
    /// (hence `SHELL=/bin/bash`; cron turns `\%` into `%`). Output goes nowhere in cron
    /// (no mail to root every 5 minutes): `cost-tags` logs to syslog.
    pub(crate) fn files(&self, etc_dir: &Path, bin_dir: &Path) -> JobFiles {
        let spec = self.spec();
        let JobSpec {
            name,
            what,
            boot_min,
            every_min,
            jitter_s,
            ..
        } = spec;
        let cmd = &spec.command;
        let env = format!("{}/cost-tags.env", etc_dir.display());
        let bin = format!("{}/cost-tags", bin_dir.display());
        let path = format!("{}:{SYSTEM_PATH}", bin_dir.display());
        let run = format!("exec {bin} {cmd}");
        let service = format!(
            "{JOB_MARK}runs `cost-tags {cmd}`, from {name}.timer. Written by the\n\
             # ParallelCluster custom action cost-tags.sh (its --uninstall removes it); a new run overwrites it.\n\
             [Unit]\n\
             Description=cost-tags: {what}\n\
             Wants=network-online.target\n\
             After=network-online.target remote-fs.target\n\
             ConditionFileIsExecutable={bin}\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             Environment=PATH={path}\n\
             # cost-tags reads this file itself, as the Slurm hooks do (never a shell).\n\
             Environment={ENV_FILE_VAR}={env}\n\
             # Messages go to syslog.\n\
             ExecStart={bin} {cmd}\n"
        );
        let timer = format!(
            "{JOB_MARK}runs {name}.service {boot_min} min after boot, then every {every_min} min,\n\
             # each time up to {jitter_s} s later at random. Written by the ParallelCluster custom action\n\
             # cost-tags.sh (its --uninstall removes it); a new run overwrites it.\n\
             # (Persistent= applies to OnCalendar= timers only: these are monotonic.)\n\
             [Unit]\n\
             Description=cost-tags: {what}, every {every_min} minutes\n\
             \n\
             [Timer]\n\
             OnBootSec={boot_min}min\n\
             OnUnitActiveSec={every_min}min\n\
             RandomizedDelaySec={jitter_s}\n\
             \n\
             [Install]\n\
             WantedBy=timers.target\n"
        );
        let when = spec.cron_when();
        let boot_s = u64::from(boot_min) * 60;
        let cron = format!(
            "{JOB_MARK}runs `cost-tags {cmd}` {boot_min} min after boot and every {every_min} min,\n\
             # up to {jitter_s} s later at random (no systemd on this node). Written by the ParallelCluster\n\
             # custom action cost-tags.sh (its --uninstall removes it); a new run overwrites it.\n\
             # Messages go to syslog. cron reads '\\%' as '%'.\n\
             SHELL=/bin/bash\n\
             PATH={path}\n\
             {ENV_FILE_VAR}={env}\n\
             {when} root sleep $((RANDOM \\% {jitter_s})); {run} >/dev/null 2>&1\n\
             @reboot root sleep {boot_s}; {run} >/dev/null 2>&1\n"
        );
        JobFiles { service, timer, cron }
    }
}

/// The init system that runs the periodic jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Init {
    /// A service + timer pair per job.
    Systemd,
    /// A cron.d file per job.
    Cron,
    /// Neither: the jobs are not scheduled.
    None,
}

impl Init {
    /// "systemd", "cron" or "none", as the script's `INIT` and the installer's messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Init::Systemd => "systemd",
            Init::Cron => "cron",
            Init::None => "none",
        }
    }
}

/// systemd when `systemctl` is on PATH and /run/systemd/system is a directory (sd_booted),
/// else cron when cron_dir is a directory, else none. With a root (tests,
/// COST_TAGS_ROOT): systemd when `<root>/run/systemd/system` is a directory, systemctl is
/// never run (`live` false).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InitSystem {
    /// Which files the jobs get.
    pub init: Init,
    /// Whether `systemctl` may be run to enable and start the timers: systemd is the
    /// running init of this machine, not a directory under a test root.
    pub live: bool,
}

/// See [`InitSystem`]. `/run/systemd/system` is the test `sd_booted()` makes: systemd
/// packages are installed on many images that boot without it (containers), where
/// `systemctl` is present but cannot start anything, so its presence alone decides
/// nothing.
pub(crate) fn detect(root: Option<&Path>, cron_dir: &Path) -> InitSystem {
    let (systemd, live) = match root {
        Some(root) => (root.join("run/systemd/system").is_dir(), false),
        None => {
            let systemd = systemctl_on_path() && Path::new("/run/systemd/system").is_dir();
            (systemd, systemd)
        }
    };
    let init = if systemd {
        Init::Systemd
    } else if cron_dir.is_dir() {
        Init::Cron
    } else {
        Init::None
    };
    InitSystem { init, live }
}

/// Whether an executable `systemctl` is in a PATH directory, as the script's `command -v
/// systemctl`. Without PATH, the directories a shell would search.
fn systemctl_on_path() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from(SYSTEM_PATH));
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join("systemctl")).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Whether path is a regular file (not a symlink) whose first line starts with JOB_MARK.
///
/// A symlink is never ours (the installer writes regular files), and following one could
/// make the caller replace or remove a file elsewhere. The file opened is checked to be
/// the one examined (same device and inode), so a file swapped in between is not read as
/// ours either. Any error reading it means not ours: the caller then leaves it alone.
pub(crate) fn is_ours(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.file_type().is_file() {
        return false;
    }
    // Never through a symlink, and never blocking on a FIFO swapped in meanwhile.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let Ok(file) = opened else {
        return false;
    };
    match file.metadata() {
        Ok(m) if m.is_file() && m.dev() == meta.dev() && m.ino() == meta.ino() => {}
        _ => return false,
    }
    // The mark holds no newline, so "the first line starts with the mark" is "the file
    // starts with the mark": read no more than its length.
    let mut head = Vec::with_capacity(JOB_MARK.len());
    match file.take(JOB_MARK.len() as u64).read_to_end(&mut head) {
        Ok(_) => head == JOB_MARK.as_bytes(),
        Err(_) => false,
    }
}

/// Runs `systemctl ARGS` (stdin null), `Err("systemctl ARGS failed: <output>")` on failure.
///
/// The output (stdout then stderr, trailing newlines removed) is kept for the message
/// only: systemctl says there why a unit could not be enabled or started.
pub(crate) fn systemctl(args: &[&str]) -> Result<(), String> {
    let failed = |why: &str| format!("systemctl {} failed: {why}", args.join(" "));
    let out = Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(&e.to_string()))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let text = text.trim_end_matches('\n');
    if text.is_empty() {
        Err(failed(&out.status.to_string()))
    } else {
        Err(failed(text))
    }
}

/// `systemctl is-enabled --quiet T` and `systemctl is-active --quiet T` both succeed.
///
/// How a rerun with unchanged units knows whether the timer still needs `enable --now`
/// (an administrator may have stopped or disabled it). Any failure to run systemctl is
/// "not running": enabling it again is harmless.
pub(crate) fn timer_running(timer_unit: &str) -> bool {
    let quiet = |verb: &str| {
        Command::new("systemctl")
            .args([verb, "--quiet", timer_unit])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    quiet("is-enabled") && quiet("is-active")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The expected texts with ETC_DIR=/opt/slurm/etc and BIN_DIR=/opt/slurm/bin. They
    // differ from what cost-tags.sh 1.x wrote only where it sourced cost-tags.env with a
    // shell (issue 20): a rerun on such a node rewrites them once.

    const RECONCILE_SERVICE: &str = r#"# cost-tags.sh: runs `cost-tags reconcile`, from cost-tags-reconcile.timer. Written by the
# ParallelCluster custom action cost-tags.sh (its --uninstall removes it); a new run overwrites it.
[Unit]
Description=cost-tags: reconcile this node's EC2 cost tags with its Slurm jobs
Wants=network-online.target
After=network-online.target remote-fs.target
ConditionFileIsExecutable=/opt/slurm/bin/cost-tags

[Service]
Type=oneshot
Environment=PATH=/opt/slurm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# cost-tags reads this file itself, as the Slurm hooks do (never a shell).
Environment=COST_TAGS_ENV_FILE=/opt/slurm/etc/cost-tags.env
# Messages go to syslog.
ExecStart=/opt/slurm/bin/cost-tags reconcile
"#;

    const RECONCILE_TIMER: &str = r#"# cost-tags.sh: runs cost-tags-reconcile.service 1 min after boot, then every 5 min,
# each time up to 60 s later at random. Written by the ParallelCluster custom action
# cost-tags.sh (its --uninstall removes it); a new run overwrites it.
# (Persistent= applies to OnCalendar= timers only: these are monotonic.)
[Unit]
Description=cost-tags: reconcile this node's EC2 cost tags with its Slurm jobs, every 5 minutes

[Timer]
OnBootSec=1min
OnUnitActiveSec=5min
RandomizedDelaySec=60

[Install]
WantedBy=timers.target
"#;

    const RECONCILE_CRON: &str = r#"# cost-tags.sh: runs `cost-tags reconcile` 1 min after boot and every 5 min,
# up to 60 s later at random (no systemd on this node). Written by the ParallelCluster
# custom action cost-tags.sh (its --uninstall removes it); a new run overwrites it.
# Messages go to syslog. cron reads '\%' as '%'.
SHELL=/bin/bash
PATH=/opt/slurm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COST_TAGS_ENV_FILE=/opt/slurm/etc/cost-tags.env
*/5 * * * * root sleep $((RANDOM \% 60)); exec /opt/slurm/bin/cost-tags reconcile >/dev/null 2>&1
@reboot root sleep 60; exec /opt/slurm/bin/cost-tags reconcile >/dev/null 2>&1
"#;

    const PRICES_CRON: &str = r#"# cost-tags.sh: runs `cost-tags prices refresh` 5 min after boot and every 1440 min,
# up to 1800 s later at random (no systemd on this node). Written by the ParallelCluster
# custom action cost-tags.sh (its --uninstall removes it); a new run overwrites it.
# Messages go to syslog. cron reads '\%' as '%'.
SHELL=/bin/bash
PATH=/opt/slurm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COST_TAGS_ENV_FILE=/opt/slurm/etc/cost-tags.env
@daily root sleep $((RANDOM \% 1800)); exec /opt/slurm/bin/cost-tags prices refresh >/dev/null 2>&1
@reboot root sleep 300; exec /opt/slurm/bin/cost-tags prices refresh >/dev/null 2>&1
"#;

    fn metrics() -> Job {
        Job::Metrics {
            output: PathBuf::from("/var/lib/node_exporter/textfile_collector/cost_tags.prom"),
        }
    }

    fn files(job: &Job) -> JobFiles {
        job.files(Path::new("/opt/slurm/etc"), Path::new("/opt/slurm/bin"))
    }

    fn assert_files(job: &Job, service: &str, timer: &str, cron: &str) {
        let f = files(job);
        assert_eq!(f.service, service, "{job:?} service");
        assert_eq!(f.timer, timer, "{job:?} timer");
        assert_eq!(f.cron, cron, "{job:?} cron");
    }

    #[test]
    fn reconcile_files_are_those_of_the_script() {
        assert_files(&Job::Reconcile, RECONCILE_SERVICE, RECONCILE_TIMER, RECONCILE_CRON);
    }

    /// The other jobs share the reconcile job's templates (checked whole above); what is
    /// their own: the command, the timing, and @daily for a daily job.
    #[test]
    fn other_jobs_differ_only_in_command_and_timing() {
        assert_eq!(files(&Job::Prices).cron, PRICES_CRON);
        let budget = files(&Job::Budget);
        assert!(
            budget
                .service
                .contains("\nExecStart=/opt/slurm/bin/cost-tags budget refresh\n"),
            "{}",
            budget.service
        );
        assert!(budget
            .timer
            .contains("\nOnBootSec=2min\nOnUnitActiveSec=10min\nRandomizedDelaySec=120\n"));
        assert!(
            budget.cron.contains("\n*/10 * * * * root sleep $((RANDOM \\% 120)); "),
            "{}",
            budget.cron
        );
        let m = files(&metrics());
        let exec = "/opt/slurm/bin/cost-tags metrics --output /var/lib/node_exporter/textfile_collector/cost_tags.prom";
        assert!(m.service.contains(&format!("\nExecStart={exec}\n")), "{}", m.service);
        assert!(m
            .timer
            .contains("\nOnBootSec=3min\nOnUnitActiveSec=5min\nRandomizedDelaySec=30\n"));
        assert!(m
            .cron
            .contains(&format!("\n@reboot root sleep 180; exec {exec} >/dev/null 2>&1\n")));
    }

    #[test]
    fn every_file_starts_with_the_mark() {
        for job in [Job::Reconcile, Job::Budget, Job::Prices, metrics()] {
            let f = files(&job);
            for text in [&f.service, &f.timer, &f.cron] {
                assert!(text.starts_with(JOB_MARK), "{job:?}: {text}");
            }
        }
    }

    #[test]
    fn directories_under_a_root_are_used_as_given() {
        let f = Job::Reconcile.files(Path::new("/r/opt/slurm/etc"), Path::new("/r/opt/slurm/bin"));
        assert!(f
            .service
            .contains("ConditionFileIsExecutable=/r/opt/slurm/bin/cost-tags\n"));
        assert!(f.service.contains("Environment=PATH=/r/opt/slurm/bin:/usr/local/sbin:"));
        assert!(f.cron.contains("\nCOST_TAGS_ENV_FILE=/r/opt/slurm/etc/cost-tags.env\n"));
        assert!(f
            .service
            .contains("\nEnvironment=COST_TAGS_ENV_FILE=/r/opt/slurm/etc/cost-tags.env\n"));
        for text in [&f.service, &f.cron] {
            assert!(!text.contains(". /r/opt/slurm/etc/cost-tags.env"), "{text}");
        }
    }

    #[test]
    fn specs() {
        let s = Job::Reconcile.spec();
        assert_eq!(
            (s.name, s.cron, s.command.as_str()),
            ("cost-tags-reconcile", "cost-tags", "reconcile")
        );
        assert_eq!((s.boot_min, s.every_min, s.jitter_s), (1, 5, 60));
        assert_eq!(s.cron_when(), "*/5 * * * *");
        let s = Job::Budget.spec();
        assert_eq!(
            (s.name, s.cron, s.command.as_str()),
            ("cost-tags-budget-refresh", "cost-tags-budget", "budget refresh")
        );
        assert_eq!(s.cron_when(), "*/10 * * * *");
        let s = Job::Prices.spec();
        assert_eq!(
            (s.name, s.cron, s.command.as_str()),
            ("cost-tags-prices-refresh", "cost-tags-prices", "prices refresh")
        );
        assert_eq!(s.cron_when(), "@daily");
        let s = Job::Metrics {
            output: PathBuf::from("/x/cost_tags.prom"),
        }
        .spec();
        assert_eq!(
            (s.name, s.cron, s.command.as_str()),
            (
                "cost-tags-metrics",
                "cost-tags-metrics",
                "metrics --output /x/cost_tags.prom"
            )
        );
    }

    #[test]
    fn timer_units() {
        assert_eq!(Job::Reconcile.timer_unit(), "cost-tags-reconcile.timer");
        assert_eq!(Job::Budget.timer_unit(), "cost-tags-budget-refresh.timer");
        assert_eq!(Job::Prices.timer_unit(), "cost-tags-prices-refresh.timer");
        assert_eq!(metrics().timer_unit(), "cost-tags-metrics.timer");
    }

    #[test]
    fn paths() {
        let unit = Path::new("/etc/systemd/system");
        let cron = Path::new("/etc/cron.d");
        let expected = [
            (Job::Reconcile, "cost-tags-reconcile", "cost-tags"),
            (Job::Budget, "cost-tags-budget-refresh", "cost-tags-budget"),
            (Job::Prices, "cost-tags-prices-refresh", "cost-tags-prices"),
            (metrics(), "cost-tags-metrics", "cost-tags-metrics"),
        ];
        for (job, name, cron_name) in expected {
            assert_eq!(
                job.paths(unit, cron),
                JobPaths {
                    service: PathBuf::from(format!("/etc/systemd/system/{name}.service")),
                    timer: PathBuf::from(format!("/etc/systemd/system/{name}.timer")),
                    cron: PathBuf::from(format!("/etc/cron.d/{cron_name}")),
                }
            );
        }
    }

    #[test]
    fn init_names() {
        assert_eq!(Init::Systemd.name(), "systemd");
        assert_eq!(Init::Cron.name(), "cron");
        assert_eq!(Init::None.name(), "none");
    }

    #[test]
    fn detect_under_a_root() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let cron_dir = root.join("etc/cron.d");
        let none = InitSystem {
            init: Init::None,
            live: false,
        };
        assert_eq!(detect(Some(root), &cron_dir), none);

        std::fs::create_dir_all(&cron_dir).unwrap();
        let cron = InitSystem {
            init: Init::Cron,
            live: false,
        };
        assert_eq!(detect(Some(root), &cron_dir), cron);

        // A file where the directory should be is not systemd.
        std::fs::create_dir_all(root.join("run/systemd")).unwrap();
        std::fs::write(root.join("run/systemd/system"), "").unwrap();
        assert_eq!(detect(Some(root), &cron_dir), cron);

        std::fs::remove_file(root.join("run/systemd/system")).unwrap();
        std::fs::create_dir(root.join("run/systemd/system")).unwrap();
        let systemd = InitSystem {
            init: Init::Systemd,
            live: false,
        };
        assert_eq!(detect(Some(root), &cron_dir), systemd);
        std::fs::remove_dir(&cron_dir).unwrap();
        assert_eq!(detect(Some(root), &cron_dir), systemd);
    }

    #[test]
    fn detect_without_a_root_is_live_only_with_systemd() {
        let dir = tempfile::tempdir().unwrap();
        let found = detect(None, &dir.path().join("absent"));
        assert_eq!(found.live, found.init == Init::Systemd);
        assert_ne!(found.init, Init::Cron);
    }

    #[test]
    fn is_ours_only_for_a_marked_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();

        let marked = dir.join("marked");
        std::fs::write(&marked, RECONCILE_TIMER).unwrap();
        assert!(is_ours(&marked));

        let mark_only = dir.join("mark-only");
        std::fs::write(&mark_only, JOB_MARK).unwrap();
        assert!(is_ours(&mark_only));

        let unmarked = dir.join("unmarked");
        std::fs::write(&unmarked, "# written by the administrator\n[Unit]\n").unwrap();
        assert!(!is_ours(&unmarked));

        // The mark on a later line does not count.
        let later = dir.join("later");
        std::fs::write(&later, format!("\n{RECONCILE_CRON}")).unwrap();
        assert!(!is_ours(&later));

        let short = dir.join("short");
        std::fs::write(&short, "# cost-tags").unwrap();
        assert!(!is_ours(&short));

        let empty = dir.join("empty");
        std::fs::write(&empty, "").unwrap();
        assert!(!is_ours(&empty));

        let link = dir.join("link");
        std::os::unix::fs::symlink(&marked, &link).unwrap();
        assert!(!is_ours(&link));

        let subdir = dir.join("subdir");
        std::fs::create_dir(&subdir).unwrap();
        assert!(!is_ours(&subdir));

        assert!(!is_ours(&dir.join("missing")));
    }

    #[test]
    fn systemctl_failure_names_the_command() {
        // Where systemctl is absent (containers, CI) spawning fails; where present, an
        // unknown verb fails. Either way the message names the command.
        let err = systemctl(&["no-such-verb", "cost-tags-test.timer"]).unwrap_err();
        assert!(
            err.starts_with("systemctl no-such-verb cost-tags-test.timer failed: "),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_timer_is_not_running() {
        assert!(!timer_running("cost-tags-no-such-unit-for-tests.timer"));
    }
}
