//! The ParallelCluster custom action `scripts/multi-runner/cost-tags.sh`, run with
//! `COST_TAGS_ROOT` against fake node trees laid out as ParallelCluster lays them out: a
//! 3.9 head node (prolog.d/epilog.d, slurm.conf including slurm_parallelcluster.conf and
//! the CustomSlurmSettings file, PrologFlags=Contain and a JobSubmitPlugins value already
//! set), an older head node without prolog.d, compute and login nodes.
//!
//! Each install is checked file by file, then run again (the whole tree, bytes and modes,
//! must not change), then uninstalled (the tree must equal the one before the install).
//! Failures (bad checksum, unknown role, conflicts, unwritable paths) must say what is
//! wrong and change nothing.
//!
//! The release the tests install is a directory (or a tarball of it) with `bin/*` as
//! two-line wrappers that exec the binaries cargo built (a debug binary is over 500 MB;
//! the script copies whatever is in bin/) and the repository's `scripts/slurm`.

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::rc::Rc;
use std::sync::Arc;

use support::http::{Reply, Request, Response, Server};

const BINS: [&str; 4] = ["project-check", "cost-prolog", "cost-epilog", "cost-tags"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo().join("scripts/multi-runner/cost-tags.sh")
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    d
}

pub(crate) fn write(path: &Path, content: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Assembles a release directory `<parent>/cost-tags-x86_64` (bin/ + scripts/slurm/).
pub(crate) fn make_release(parent: &Path) -> PathBuf {
    let rel = parent.join("cost-tags-x86_64");
    for b in BINS {
        write(
            &rel.join("bin").join(b),
            &format!("#!/bin/sh\nexec '{}' \"$@\"\n", crate::bin(b).display()),
            0o755,
        );
    }
    for f in [
        "job_submit.lua",
        "90_cost-tags-prolog",
        "90_cost-tags-epilog",
        "cost-tags-wake",
        "slurm.conf.example",
    ] {
        let src = repo().join("scripts/slurm").join(f);
        let mode = mode(&src);
        write(&rel.join("scripts/slurm").join(f), &read(&src), mode);
    }
    rel
}

/// `tar -czf <parent>/<name>.tar.gz` of a release directory (with its top-level dir).
fn make_tarball(release: &Path) -> PathBuf {
    let out = release.with_extension("tar.gz");
    let st = Command::new("tar")
        .arg("-C")
        .arg(release.parent().unwrap())
        .arg("-czf")
        .arg(&out)
        .arg(release.file_name().unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    out
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Snapshots: every path under a root with its type, mode and content.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Dir(u32),
    File(u32, Vec<u8>),
    Link(PathBuf),
}

type Snapshot = BTreeMap<PathBuf, Entry>;

fn snapshot(root: &Path) -> Snapshot {
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let m = md.permissions().mode() & 0o7777;
            if md.file_type().is_symlink() {
                out.insert(rel, Entry::Link(fs::read_link(&p).unwrap()));
            } else if md.is_dir() {
                out.insert(rel, Entry::Dir(m));
                walk(root, &p, out);
            } else {
                out.insert(rel, Entry::File(m, fs::read(&p).unwrap()));
            }
        }
    }
    let mut s = Snapshot::new();
    walk(root, root, &mut s);
    s
}

/// Paths that differ between two snapshots (added, removed or changed).
fn diff(a: &Snapshot, b: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (p, e) in a {
        match b.get(p) {
            None => out.push(format!("- {}", p.display())),
            Some(f) if f != e => out.push(format!("~ {}", p.display())),
            _ => {}
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) {
            out.push(format!("+ {}", p.display()));
        }
    }
    out
}

#[track_caller]
fn assert_same(before: &Snapshot, after: &Snapshot, what: &str) {
    let d = diff(before, after);
    assert!(d.is_empty(), "{what}: the tree changed:\n{}", d.join("\n"));
}

/// The snapshot with the root's path replaced by ROOT and the manifest directory left out:
/// two trees installed the same way compare equal.
fn normalized(root: &Path) -> Snapshot {
    snapshot(root)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("opt/slurm/etc/cost-tags"))
        .map(|(p, e)| match e {
            Entry::File(m, b) => (
                p,
                Entry::File(
                    m,
                    String::from_utf8_lossy(&b)
                        .replace(root.to_str().unwrap(), "ROOT")
                        .into_bytes(),
                ),
            ),
            other => (p, other),
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------
// Running the script

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn ok(out: Output) -> String {
    let t = text(&out);
    assert!(out.status.success(), "cost-tags.sh failed ({}):\n{t}", out.status);
    t
}

/// Asserts a failure (exit 1) whose stderr contains `want`; returns the output.
#[track_caller]
fn fails(out: Output, want: &str) -> String {
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "cost-tags.sh should fail with 1:\n{t}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ERROR: "), "no ERROR line:\n{t}");
    assert!(err.contains(want), "stderr lacks {want:?}:\n{t}");
    t
}

// ---------------------------------------------------------------------------------------
// Fake node trees

fn cfnconfig(root: &Path, role: &str) {
    write(
        &root.join("etc/parallelcluster/cfnconfig"),
        &format!(
            "stack_name=mycluster\ncfn_region=eu-west-1\ncfn_node_type={role}\ncfn_cluster_user=ec2-user\n\
             cfn_head_node=ip-10-0-0-10\ncfn_scheduler_queue_name=q1\n"
        ),
        0o644,
    );
}

const PC39_SLURM_CONF: &str = "\
#
# Example slurm.conf file. Please run configurator.html
# (in doc/html) to build a configuration file customized
# for your environment.
#
# CLUSTER SETTINGS
ClusterName=mycluster
SlurmUser=slurm
SlurmctldPort=6820-6829
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=/var/spool/slurm.state
SlurmdSpoolDir=/var/spool/slurmd
SwitchType=switch/none
ReconfigFlags=KeepPartState
#
# PROLOG AND EPILOG
Prolog=/opt/slurm/etc/scripts/prolog.d/*
Epilog=/opt/slurm/etc/scripts/epilog.d/*
SchedulerParameters=nohold_on_prolog_fail
BatchStartTimeout=180
#
# SCHEDULING, JOB, AND NODE SETTINGS
EnforcePartLimits=ALL
SchedulerType=sched/backfill
ProctrackType=proctrack/cgroup
JobSubmitPlugins=require_timelimit   # added by the site
MpiDefault=none
#
# WARNING!!! The slurm_parallelcluster.conf file included below can be updated by the pcluster process.
# Please do not edit it.
include slurm_parallelcluster.conf

# WARNING!!! The custom_slurm_settings_include_file_slurm.conf file included below can be updated by the pcluster process.
# Please do not edit it.
include pcluster/custom_slurm_settings_include_file_slurm.conf
";

const PC39_PARALLELCLUSTER_CONF: &str = "\
SlurmctldHost=ip-10-0-0-10(10.0.0.10)
SuspendTime=600
ResumeTimeout=1800
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=ip-10-0-0-10
AccountingStoragePort=6819
AccountingStorageUser=slurm
JobAcctGatherType=jobacct_gather/cgroup

include /opt/slurm/etc/pcluster/slurm_parallelcluster_q1_partition.conf
include /opt/slurm/etc/pcluster/slurm_parallelcluster_q2_partition.conf

SuspendExcNodes=q1-st-c5-[1-1]
";

/// A head node as ParallelCluster 3.9+ leaves it.
fn head_pc39(root: &Path) {
    cfnconfig(root, "HeadNode");
    let etc = root.join("opt/slurm/etc");
    write(&root.join("opt/slurm/bin/sinfo"), "#!/bin/sh\necho fake sinfo\n", 0o755);
    write(&etc.join("slurm.conf"), PC39_SLURM_CONF, 0o644);
    write(
        &etc.join("slurm_parallelcluster.conf"),
        PC39_PARALLELCLUSTER_CONF,
        0o644,
    );
    for q in ["q1", "q2"] {
        write(
            &etc.join(format!("pcluster/slurm_parallelcluster_{q}_partition.conf")),
            &format!(
                "NodeSet={q}_nodes Nodes={q}-dy-c5-[1-10]\nPartitionName={q} Nodes={q}_nodes MaxTime=INFINITE State=UP\n"
            ),
            0o644,
        );
    }
    write(
        &etc.join("pcluster/custom_slurm_settings_include_file_slurm.conf"),
        "PrologFlags=Contain\n",
        0o644,
    );
    for d in ["prolog.d", "epilog.d"] {
        for f in ["90_pcluster_health_check_manager", "90_pcluster_noop"] {
            write(
                &etc.join("scripts").join(d).join(f),
                &format!("#!/bin/bash\n# {f}\nexit 0\n"),
                0o755,
            );
        }
    }
    fs::create_dir_all(root.join("var/spool")).unwrap();
}

/// A head node from before ParallelCluster 3.6: no prolog.d, no Prolog=, no includes of
/// custom settings; accounting with an AccountingStoreFlags value already set.
fn head_old(root: &Path) {
    cfnconfig(root, "HeadNode");
    let etc = root.join("opt/slurm/etc");
    write(
        &etc.join("slurm.conf"),
        "ClusterName=mycluster\nSlurmUser=slurm\nSchedulerType=sched/backfill\n\
         AccountingStorageType=accounting_storage/slurmdbd\nAccountingStoreFlags=job_env\n\
         include slurm_parallelcluster.conf",
        0o644,
    );
    write(
        &etc.join("slurm_parallelcluster.conf"),
        "SlurmctldHost=ip-10-0-0-10(10.0.0.10)\nPartitionName=q1 Nodes=q1-dy-c5-[1-10]\n",
        0o644,
    );
    fs::create_dir_all(root.join("opt/slurm/bin")).unwrap();
}

/// A compute node: /opt/slurm as the head node shares it after an install.
fn compute(root: &Path, release: &Path, role: &str) {
    cfnconfig(root, role);
    for b in BINS {
        write(
            &root.join("opt/slurm/bin").join(b),
            &read(&release.join("bin").join(b)),
            0o755,
        );
    }
    write(
        &root.join("opt/slurm/etc/scripts/prolog.d/90_cost-tags-prolog"),
        &read(&release.join("scripts/slurm/90_cost-tags-prolog")),
        0o755,
    );
    fs::create_dir_all(root.join("var/spool")).unwrap();
}

/// The release file as installed under `root`: /opt/slurm/ moved under it.
fn rooted(root: &Path, release: &Path, rel: &str) -> String {
    read(&release.join(rel)).replace("/opt/slurm/", &format!("{}/opt/slurm/", root.display()))
}

fn settings_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------
// A case: a node tree, the release, the script's environment

/// How a node tree is laid out before the script runs.
#[derive(Clone, Copy)]
enum Layout {
    /// A ParallelCluster 3.9+ head node ([`head_pc39`]).
    Head,
    /// A head node from before ParallelCluster 3.6 ([`head_old`]).
    OldHead,
    /// A compute or login node ([`compute`]) with this `cfn_node_type`.
    Compute(&'static str),
}

/// One case's node tree, the release the script installs, and the environment the script
/// runs in. A case builds one, runs the script on it and looks at the tree.
struct Node {
    /// Holds the release and the stand-ins' call records; shared with [`Node::sibling`]s.
    work: Rc<tempfile::TempDir>,
    release: PathBuf,
    root_dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Node {
    /// A fresh release and a tree laid out as `layout`.
    fn new(layout: Layout) -> Node {
        let work = Rc::new(tempdir("ct-ms-"));
        let release = make_release(work.path());
        Node::lay_out(work, release, Vec::new(), layout)
    }

    /// Another tree laid out as `layout`, with the same release and environment.
    fn sibling(&self, layout: Layout) -> Node {
        Node::lay_out(self.work.clone(), self.release.clone(), self.env.clone(), layout)
    }

    fn lay_out(work: Rc<tempfile::TempDir>, release: PathBuf, env: Vec<(String, String)>, layout: Layout) -> Node {
        let root_dir = tempdir("ct-node-");
        match layout {
            Layout::Head => head_pc39(root_dir.path()),
            Layout::OldHead => head_old(root_dir.path()),
            Layout::Compute(role) => compute(root_dir.path(), &release, role),
        }
        Node {
            work,
            release,
            root_dir,
            env,
        }
    }

    fn root(&self) -> &Path {
        self.root_dir.path()
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }
    fn etc(&self) -> PathBuf {
        self.path("opt/slurm/etc")
    }
    /// Scratch space beside the release, for stand-ins and their call records.
    fn work(&self) -> &Path {
        self.work.path()
    }
    fn release(&self) -> &Path {
        &self.release
    }
    /// The release directory, as `--release` takes it.
    fn rel(&self) -> &str {
        self.release.to_str().unwrap()
    }
    fn read(&self, rel: &str) -> String {
        read(&self.path(rel))
    }
    fn write(&self, rel: &str, content: &str, mode: u32) {
        write(&self.path(rel), content, mode)
    }
    /// Creates directories under the root (`run/systemd/system` makes systemd present,
    /// `etc/cron.d` cron).
    fn mkdirs(&self, dirs: &[&str]) {
        for d in dirs {
            fs::create_dir_all(self.path(d)).unwrap();
        }
    }
    fn snapshot(&self) -> Snapshot {
        snapshot(self.root())
    }
    fn normalized(&self) -> Snapshot {
        normalized(self.root())
    }

    /// Sets `key` for every run of the script from now on.
    fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }
    /// Puts `dir` first on the script's PATH.
    fn prepend_path(&mut self, dir: &Path) {
        let now = self.env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
        let now = now.unwrap_or_else(|| std::env::var("PATH").unwrap_or_default());
        self.set_env("PATH", &format!("{}:{now}", dir.display()));
    }

    /// Runs the script under `COST_TAGS_ROOT` with `args` and the node's environment plus `env`.
    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new("bash")
            .arg(script())
            .args(args)
            .env("COST_TAGS_ROOT", self.root())
            .env_remove("SLURM_CONF")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied())
            .current_dir(self.root())
            .stdin(Stdio::null())
            .output()
            .expect("run cost-tags.sh")
    }
    /// Runs the script, which must succeed; returns its output.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        ok(self.run_with(args, &[]))
    }
    /// Runs the script, which must fail saying `want`; returns its output.
    #[track_caller]
    fn fails(&self, args: &[&str], want: &str) -> String {
        fails(self.run_with(args, &[]), want)
    }
    /// Like [`Node::fails`], and the tree must be as it was.
    #[track_caller]
    fn refuses(&self, args: &[&str], want: &str) -> String {
        let before = self.snapshot();
        let out = self.fails(args, want);
        assert_same(&before, &self.snapshot(), want);
        out
    }

    /// The cycle every install must pass: install with `args` (`check` gets the output and
    /// the tree before and after), the same run again (nothing may change, byte or mode),
    /// then `--uninstall` (the tree must be as before the install). Returns the outputs
    /// of the second run and of the uninstall.
    #[track_caller]
    fn cycle(&self, args: &[&str], check: impl FnOnce(&str, &Snapshot, &Snapshot)) -> [String; 2] {
        let before = self.snapshot();
        let out = self.ok(args);
        let after = self.snapshot();
        check(&out, &before, &after);
        let again = self.ok(args);
        assert_same(&after, &self.snapshot(), "second install");
        let uninstall = self.ok(&["--uninstall"]);
        assert_same(&before, &self.snapshot(), "uninstall");
        [again, uninstall]
    }

    /// The node's cost-tags binaries are the release's.
    #[track_caller]
    fn assert_release_bins(&self) {
        for b in BINS {
            let installed = self.path("opt/slurm/bin").join(b);
            assert_eq!(
                fs::read(&installed).unwrap(),
                fs::read(self.release.join("bin").join(b)).unwrap(),
                "{b}"
            );
        }
    }

    /// project-check loads the installed cost-tags.toml.
    #[track_caller]
    fn assert_settings_usable(&self) {
        let check = Command::new(crate::bin("project-check"))
            .args(["--config", self.etc().join("cost-tags.toml").to_str().unwrap()])
            .args(["--list", "nobody"])
            .output()
            .unwrap();
        assert!(check.status.success(), "installed settings unusable: {}", text(&check));
    }

    /// A `systemctl` first on the script's PATH that records its calls; returns the
    /// calls file (the script must never create it under COST_TAGS_ROOT).
    fn fake_systemctl(&mut self) -> PathBuf {
        let bin = self.work().join("fake-systemctl");
        let calls = self.work().join("systemctl.calls");
        write(
            &bin.join("systemctl"),
            &format!("#!/bin/sh\necho \"$*\" >> '{}'\nexit 0\n", calls.display()),
            0o755,
        );
        self.prepend_path(&bin);
        calls
    }

    /// A stand-in `cost-tags` in the node's /opt/slurm/bin that answers --version, runs
    /// `install` with the real one, and records every other call with the FOO,
    /// COST_TAGS_ENV_FILE and PATH it got; returns the calls file.
    fn fake_cost_tags(&self) -> PathBuf {
        let calls = self.work().join("cost-tags.calls");
        self.write(
            "opt/slurm/bin/cost-tags",
            &format!(
                "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'cost-tags 9.9.9'; exit 0; }}\n\
                 [ \"$1\" = install ] && exec '{}' \"$@\"\n\
                 echo \"$* FOO=$FOO ENV=$COST_TAGS_ENV_FILE PATH=$PATH\" >> '{}'\n",
                crate::bin("cost-tags").display(),
                calls.display()
            ),
            0o755,
        );
        // The AWS settings file of the Slurm hooks: no job may source it with a shell
        // (FOO stays unset); cost-tags reads it itself, named by COST_TAGS_ENV_FILE.
        self.write("opt/slurm/etc/cost-tags.env", "export FOO='bar baz'\n", 0o600);
        calls
    }

    /// What a periodic job runs from cron: `cost-tags <command>`, no shell reading the
    /// hooks' env file first.
    fn job_command(&self, command: &str) -> String {
        format!("exec {}", self.job_exec(command))
    }
    fn job_exec(&self, command: &str) -> String {
        format!("{}/opt/slurm/bin/cost-tags {command}", self.root().display())
    }
    /// What a stand-in from [`Node::fake_cost_tags`] records for `command`, run by a job.
    fn job_call(&self, command: &str, path: &str) -> String {
        let env = self.etc().join("cost-tags.env");
        format!("{command} FOO= ENV={} PATH={path}\n", env.display())
    }

    /// Checks the oneshot service and the timer `<unit>.service`/`<unit>.timer` for
    /// `cost-tags <command>`: run as root, the hooks' env file read, the timer's
    /// OnBootSec, OnUnitActiveSec and RandomizedDelaySec as `timing`. Returns both texts.
    #[track_caller]
    fn assert_timer_units(&self, unit: &str, command: &str, timing: [&str; 3]) -> (String, String) {
        let units = self.path("etc/systemd/system");
        let service = read(&units.join(format!("{unit}.service")));
        let timer = read(&units.join(format!("{unit}.timer")));
        assert_eq!(unit_value(&service, "Type"), "oneshot");
        assert_eq!(unit_value(&service, "ExecStart"), self.job_exec(command));
        let env = self.etc().join("cost-tags.env");
        assert!(
            service.contains(&format!("\nEnvironment=COST_TAGS_ENV_FILE={}\n", env.display())),
            "{service}"
        );
        assert!(!service.contains("User="), "runs as root:\n{service}");
        for (key, want) in ["OnBootSec", "OnUnitActiveSec", "RandomizedDelaySec"]
            .into_iter()
            .zip(timing)
        {
            assert_eq!(unit_value(&timer, key), want, "{key}");
        }
        assert_eq!(unit_value(&timer, "WantedBy"), "timers.target");
        (service, timer)
    }

    /// The two lines of a cron file for `cost-tags <command>` every `minutes` minutes,
    /// after a random sleep of up to `delay` seconds (and `delay` seconds after a reboot).
    fn cron_lines(&self, command: &str, minutes: u32, delay: u32) -> [String; 2] {
        let run = format!("{} >/dev/null 2>&1", self.job_command(command));
        [
            format!("*/{minutes} * * * * root sleep $((RANDOM \\% {delay})); {run}"),
            format!("@reboot root sleep {delay}; {run}"),
        ]
    }
}

/// The value of the first `KEY=` line of a unit or cron file.
fn unit_value(text: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key}= in:\n{text}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------

#[test]
fn head_node_pc39_installs_idempotently_and_uninstalls_exactly() {
    let node = Node::new(Layout::Head);
    let (root, etc, release) = (node.root(), node.etc(), node.release());
    let args = ["--release", node.rel(), "--extra-tags", "partition,account"];
    let [again, uninstall] = node.cycle(&args, |out, before, after| {
        assert!(out.contains("not running scontrol reconfigure"), "{out}");
        assert!(out.contains("lists no projects yet"), "{out}");
        // Binaries: the release's, 0755; Slurm's own untouched.
        node.assert_release_bins();
        for b in BINS {
            assert_eq!(mode(&root.join("opt/slurm/bin").join(b)), 0o755, "{b}");
        }
        // Hooks in prolog.d/epilog.d, next to ParallelCluster's, pointing under the root.
        for (d, h) in [("prolog.d", "90_cost-tags-prolog"), ("epilog.d", "90_cost-tags-epilog")] {
            let p = etc.join("scripts").join(d).join(h);
            assert_eq!(read(&p), rooted(root, release, &format!("scripts/slurm/{h}")));
            assert!(read(&p).contains(&format!(":-{}/opt/slurm/bin}}/cost-", root.display())));
            assert!(read(&p).contains(&format!(":-{}/opt/slurm/etc/cost-tags.env}}", root.display())));
            assert_eq!(mode(&p), 0o755);
        }
        assert!(
            !etc.join("scripts/cost-tags").exists(),
            "fallback hook dir used on a 3.9 layout"
        );
        // job_submit.lua beside slurm.conf.
        assert_eq!(
            read(&etc.join("job_submit.lua")),
            rooted(root, release, "scripts/slurm/job_submit.lua")
        );
        assert_eq!(mode(&etc.join("job_submit.lua")), 0o644);
        // slurm.conf: JobSubmitPlugins extended in place (comment kept), one include at the end.
        let want_conf = PC39_SLURM_CONF.replace(
            "JobSubmitPlugins=require_timelimit   # added",
            "JobSubmitPlugins=require_timelimit,lua   # added",
        ) + "include cost-tags_slurm.conf\n";
        assert_eq!(read(&etc.join("slurm.conf")), want_conf);
        // PrologFlags extended where it is: the CustomSlurmSettings include file.
        assert_eq!(
            read(&etc.join("pcluster/custom_slurm_settings_include_file_slurm.conf")),
            "PrologFlags=Contain,Alloc\n"
        );
        // Our include holds only what exists nowhere else: job_comment (slurmdbd is in use).
        assert_eq!(
            settings_lines(&read(&etc.join("cost-tags_slurm.conf"))),
            vec!["AccountingStoreFlags=job_comment"]
        );
        assert_eq!(read(&etc.join("slurm_parallelcluster.conf")), PC39_PARALLELCLUSTER_CONF);
        // Settings and projects list: new, valid, with the chosen options.
        let toml = read(&etc.join("cost-tags.toml"));
        assert!(toml.contains("partition = \"aws-parallelcluster-partition\""), "{toml}");
        assert!(toml.contains("account = \"aws-parallelcluster-account\""), "{toml}");
        assert!(toml.contains("cluster = \"\""), "{toml}");
        assert!(toml.contains("project_source = \"comment\""), "{toml}");
        assert!(toml.contains(&format!(
            "projects_file = \"{}/opt/slurm/etc/projects_list.conf\"",
            root.display()
        )));
        assert!(settings_lines(&read(&etc.join("projects_list.conf"))).is_empty());
        node.assert_settings_usable();
        let check = Command::new(crate::bin("project-check"))
            .env("COST_TAGS_CONFIG", etc.join("cost-tags.toml"))
            .args(["ctnobody", "ProjectA"])
            .output()
            .unwrap();
        assert_eq!(check.status.code(), Some(1), "{}", text(&check));
        // Exactly these paths changed.
        let mut changed = diff(before, after);
        changed.retain(|l| !l.contains("opt/slurm/etc/cost-tags/"));
        let want = [
            "+ opt/slurm/bin/cost-epilog",
            "+ opt/slurm/bin/cost-prolog",
            "+ opt/slurm/bin/cost-tags",
            "+ opt/slurm/bin/project-check",
            "+ opt/slurm/etc/cost-tags",
            "+ opt/slurm/etc/cost-tags.toml",
            "+ opt/slurm/etc/cost-tags_slurm.conf",
            "+ opt/slurm/etc/job_submit.lua",
            "+ opt/slurm/etc/projects_list.conf",
            "+ opt/slurm/etc/scripts/epilog.d/90_cost-tags-epilog",
            "+ opt/slurm/etc/scripts/prolog.d/90_cost-tags-prolog",
            "~ opt/slurm/etc/pcluster/custom_slurm_settings_include_file_slurm.conf",
            "~ opt/slurm/etc/slurm.conf",
        ];
        assert_eq!(sorted(changed), sorted(want.map(String::from).to_vec()));
        assert!(etc.join("cost-tags/manifest").is_file());
    });
    // The second run changed nothing, not even the manifest; the uninstall restored the
    // tree byte for byte.
    assert!(again.contains("already installed: nothing changed"), "{again}");
    assert!(uninstall.contains("restored"), "{uninstall}");
    // And once more: nothing to do.
    let before = node.snapshot();
    let out = node.ok(&["--uninstall"]);
    assert!(out.contains("nothing installed"), "{out}");
    assert_same(&before, &node.snapshot(), "second uninstall");
}

#[test]
fn head_node_without_prolog_d_gets_prolog_lines_in_its_own_include() {
    let node = Node::new(Layout::OldHead);
    let args = ["--release", node.rel(), "--project-source", "account", "--strict"];
    node.cycle(&args, |_, _, _| {
        let etc = node.etc();
        let hooks = etc.join("scripts/cost-tags");
        for h in ["90_cost-tags-prolog", "90_cost-tags-epilog"] {
            let want = rooted(node.root(), node.release(), &format!("scripts/slurm/{h}"));
            assert_eq!(read(&hooks.join(h)), want);
            assert_eq!(mode(&hooks.join(h)), 0o755);
        }
        assert_eq!(mode(&etc.join("scripts")), 0o755);
        assert_eq!(
            settings_lines(&read(&etc.join("cost-tags_slurm.conf"))),
            vec![
                "JobSubmitPlugins=lua".to_string(),
                "PrologFlags=Alloc".to_string(),
                format!("Prolog={}/90_cost-tags-prolog", hooks.display()),
                format!("Epilog={}/90_cost-tags-epilog", hooks.display()),
            ]
        );
        // slurm.conf had no final newline: one is added before the include line.
        assert_eq!(
            read(&etc.join("slurm.conf")),
            "ClusterName=mycluster\nSlurmUser=slurm\nSchedulerType=sched/backfill\n\
             AccountingStorageType=accounting_storage/slurmdbd\nAccountingStoreFlags=job_env,job_comment\n\
             include slurm_parallelcluster.conf\ninclude cost-tags_slurm.conf\n"
        );
        let toml = read(&etc.join("cost-tags.toml"));
        assert!(toml.contains("project_source = \"account\""), "{toml}");
        assert!(toml.contains("strict = true"), "{toml}");
        assert!(toml.contains("partition = \"\""), "{toml}");
    });
}

#[test]
fn an_existing_prolog_is_never_replaced() {
    let node = Node::new(Layout::OldHead);
    node.write(
        "opt/slurm/etc/slurm_parallelcluster.conf",
        "SlurmctldHost=h\nProlog=/opt/slurm/etc/pcluster/prolog\nPrologFlags=alloc,serial\n",
        0o644,
    );
    let out = node.refuses(
        &["--release", node.rel()],
        "already sets Prolog=/opt/slurm/etc/pcluster/prolog",
    );
    assert!(out.contains("Nothing was changed"), "{out}");
}

#[test]
fn flags_already_present_are_left_alone_in_any_case_and_spelling() {
    let node = Node::new(Layout::Head);
    let etc = node.etc();
    let conf = PC39_SLURM_CONF.replace(
        "JobSubmitPlugins=require_timelimit",
        "jobsubmitplugins = job_submit/lua",
    );
    write(&etc.join("slurm.conf"), &conf, 0o644);
    let custom = "PrologFlags=\"alloc,Contain\"\nAccountingStoreFlags=JOB_COMMENT\n";
    write(
        &etc.join("pcluster/custom_slurm_settings_include_file_slurm.conf"),
        custom,
        0o644,
    );
    node.ok(&["--release", node.rel()]);
    assert_eq!(read(&etc.join("slurm.conf")), conf + "include cost-tags_slurm.conf\n");
    assert_eq!(
        read(&etc.join("pcluster/custom_slurm_settings_include_file_slurm.conf")),
        custom
    );
    assert!(settings_lines(&read(&etc.join("cost-tags_slurm.conf"))).is_empty());
}

#[test]
fn compute_node_creates_its_state_dir_and_checks_the_binaries() {
    let node = Node::new(Layout::Compute("ComputeFleet"));
    let before = node.snapshot();
    // The same Args as on the head node: --release is not needed here and is ignored.
    let out = node.ok(&["--release", "s3://bucket/cost-tags.tar.gz", "--sha256", &"a".repeat(64)]);
    assert!(out.contains("run here"), "{out}");
    let after = node.snapshot();
    assert_eq!(diff(&before, &after), vec!["+ var/spool/cost-tags".to_string()]);
    assert_eq!(after[Path::new("var/spool/cost-tags")], Entry::Dir(0o755));

    node.ok(&[]);
    assert_same(&after, &node.snapshot(), "second run");
    node.ok(&["--uninstall"]);
    assert_same(&before, &node.snapshot(), "uninstall");
}

#[test]
fn compute_node_without_the_head_nodes_install_fails_clearly() {
    let node = Node::new(Layout::Compute("ComputeFleet"));
    fs::remove_file(node.path("opt/slurm/bin/cost-epilog")).unwrap();
    node.refuses(&[], "run this script on the head node first");

    // A binary that does not run here (e.g. built against a newer glibc).
    node.write(
        "opt/slurm/bin/cost-epilog",
        "#!/bin/sh\necho 'GLIBC_2.36 not found' >&2\nexit 1\n",
        0o755,
    );
    node.refuses(&[], "does not run on this node");
}

#[test]
fn login_node_only_checks() {
    let node = Node::new(Layout::Compute("LoginNode"));
    let before = node.snapshot();
    let out = node.ok(&["--release", node.rel()]);
    assert!(out.contains("login node done"), "{out}");
    assert_same(&before, &node.snapshot(), "login node");
    node.ok(&["--uninstall"]);
    assert_same(&before, &node.snapshot(), "login node uninstall");
}

#[test]
fn tarball_with_sha256_installs_and_a_wrong_sha256_changes_nothing() {
    let node = Node::new(Layout::Head);
    let tarball = make_tarball(node.release());
    let good = sha256(&tarball);
    let tb = tarball.to_str().unwrap();

    let bad = format!("{}{}", if good.starts_with('0') { "1" } else { "0" }, &good[1..]);
    let out = node.refuses(&["--release", tb, "--sha256", &bad], "sha256 mismatch");
    assert!(out.contains(&good) && out.contains(&bad), "{out}");
    node.refuses(&["--release", tb, "--sha256", "1234"], "64 hexadecimal digits");
    node.refuses(&["--release", node.rel(), "--sha256", &good], "is a directory");

    // Upper-case hex is fine; the tarball's top-level directory is found.
    let out = node.ok(&["--release", tb, "--sha256", &good.to_uppercase()]);
    assert!(out.contains("checksum verified"), "{out}");
    node.assert_release_bins();
    // The same release from a directory is the same install.
    let after = node.snapshot();
    node.ok(&["--release", node.rel()]);
    assert_same(&after, &node.snapshot(), "directory after tarball");
}

#[test]
fn bad_releases_fail_before_anything_changes() {
    let node = Node::new(Layout::Head);
    node.refuses(&[], "--release is required on the head node");
    node.refuses(&["--release", "/nonexistent/release"], "no such file or directory");
    node.refuses(&["--release", "ftp://example.com/x.tar.gz"], "unsupported scheme");
    let junk = node.work().join("junk.tar.gz");
    fs::write(&junk, b"not a tarball").unwrap();
    node.refuses(&["--release", junk.to_str().unwrap()], "cannot unpack the release");
    fs::remove_file(node.release().join("scripts/slurm/job_submit.lua")).unwrap();
    node.refuses(&["--release", node.rel()], "lacks: scripts/slurm/job_submit.lua");
    node.refuses(
        &["--release", node.rel(), "--project-source", "email"],
        "--project-source must be",
    );
    node.refuses(
        &["--release", node.rel(), "--extra-tags", "partition,jobname"],
        "unknown tag 'jobname'",
    );
    node.refuses(&["--release", node.rel(), "--bogus"], "unknown argument '--bogus'");
}

#[test]
fn unknown_role_and_missing_cfnconfig_fail() {
    let node = Node::new(Layout::Head);
    node.write(
        "etc/parallelcluster/cfnconfig",
        "stack_name=mycluster\ncfn_node_type=MasterServer\n",
        0o644,
    );
    node.refuses(
        &["--release", node.rel()],
        "unknown node role cfn_node_type=MasterServer",
    );

    fs::remove_file(node.path("etc/parallelcluster/cfnconfig")).unwrap();
    node.refuses(&["--release", node.rel()], "this is not an AWS ParallelCluster 3 node");

    // /opt/parallelcluster/cfnconfig is read too.
    node.write("opt/parallelcluster/cfnconfig", "cfn_node_type=\"LoginNode\"\n", 0o644);
    node.fails(&[], "not found in");
}

#[test]
fn unwritable_paths_and_a_foreign_job_submit_lua_change_nothing() {
    let node = Node::new(Layout::Head);
    fs::remove_dir_all(node.path("opt/slurm/bin")).unwrap();
    node.write("opt/slurm/bin", "not a directory\n", 0o644);
    node.refuses(&["--release", node.rel()], "is not a directory");

    let node = node.sibling(Layout::Head);
    node.write(
        "opt/slurm/etc/job_submit.lua",
        "function slurm_job_submit() return 0 end\n",
        0o644,
    );
    node.refuses(&["--release", node.rel()], "exists and is not cost-tags'");

    let node = node.sibling(Layout::Head);
    fs::remove_file(node.path("opt/slurm/etc/slurm.conf")).unwrap();
    node.refuses(&["--release", node.rel()], "no slurm.conf");
}

#[test]
fn multi_runner_prefixed_arguments_work() {
    let plain = Node::new(Layout::Head);
    let rel = plain.rel();
    plain.ok(&["--release", rel, "--extra-tags", "cluster", "--strict"]);

    let mr = plain.sibling(Layout::Head);
    let dashed = format!("-{rel}");
    mr.ok(&["---release", &dashed, "---extra-tags", "-cluster", "---strict"]);
    let toml = mr.read("opt/slurm/etc/cost-tags.toml");
    assert!(
        toml.contains("cluster = \"aws-parallelcluster-cluster\"") && toml.contains("strict = true"),
        "{toml}"
    );
    // The same install as with plain arguments (paths differ only by the root).
    assert_same(&plain.normalized(), &mr.normalized(), "multi-runner vs plain");
    // --option=value works too, in both forms.
    let eq = plain.sibling(Layout::Head);
    eq.ok(&[&format!("---release={rel}"), "---extra-tags=cluster", "---strict"]);
    assert_same(&plain.normalized(), &eq.normalized(), "--option=value");

    // Uninstall in multi-runner form.
    mr.ok(&["---uninstall"]);
    let fresh = plain.sibling(Layout::Head);
    assert_same(&fresh.normalized(), &mr.normalized(), "multi-runner uninstall");

    // A list that starts in multi-runner form must stay in it.
    let out = mr.fails(&["---release", rel], "lacks its leading '-'");
    assert!(out.contains("multi-runner form"), "{out}");
    // Help in both forms.
    for args in [&["--help"][..], &["---help"][..], &["-h"][..]] {
        let out = mr.ok(args);
        assert!(
            out.contains("Usage: cost-tags.sh") && out.contains("Multi-runner form"),
            "{out}"
        );
    }
}

#[test]
fn admin_edits_survive_uninstall_and_are_never_overwritten() {
    let node = Node::new(Layout::Head);
    let etc = node.etc();
    // An older project-check installed by hand: replaced, and restored by the uninstall.
    node.write("opt/slurm/bin/project-check", "#!/bin/sh\necho old\n", 0o750);
    let before = node.snapshot();

    node.ok(&["--release", node.rel()]);
    let projects = "ctalice = ProjectA\n";
    fs::write(etc.join("projects_list.conf"), projects).unwrap();
    // A new run leaves the edited file alone, and the toml too (options apply to a new one).
    let toml = read(&etc.join("cost-tags.toml"));
    fs::write(
        etc.join("cost-tags.toml"),
        toml.replace("deadline = 10", "deadline = 7"),
    )
    .unwrap();
    let out = node.ok(&["--release", node.rel(), "--strict"]);
    assert!(out.contains("apply to a new cost-tags.toml only"), "{out}");
    assert_eq!(read(&etc.join("projects_list.conf")), projects);
    assert!(read(&etc.join("cost-tags.toml")).contains("strict = false"));
    // The site changes slurm.conf after the install (ParallelCluster or an admin).
    let mut conf = read(&etc.join("slurm.conf"));
    conf.push_str("SlurmctldDebug=debug\n");
    fs::write(etc.join("slurm.conf"), &conf).unwrap();

    let out = node.ok(&["--uninstall"]);
    let kept = etc.join("projects_list.conf");
    assert!(
        out.contains(&format!("kept {}: it was changed since the install", kept.display())),
        "{out}"
    );
    assert!(out.contains("restored the previous"), "{out}");
    let mut expected = before.clone();
    // What remains: the admin's two files, and slurm.conf with the admin's line and
    // without cost-tags' values; its original stays saved.
    expected.insert(
        "opt/slurm/etc/projects_list.conf".into(),
        Entry::File(0o644, projects.into()),
    );
    let toml_now = fs::read(etc.join("cost-tags.toml")).unwrap();
    expected.insert("opt/slurm/etc/cost-tags.toml".into(), Entry::File(0o644, toml_now));
    expected.insert(
        "opt/slurm/etc/slurm.conf".into(),
        Entry::File(0o644, format!("{PC39_SLURM_CONF}SlurmctldDebug=debug\n").into_bytes()),
    );
    let mut leftover: Vec<_> = diff(&expected, &node.snapshot());
    leftover.retain(|l| !l.starts_with("+ opt/slurm/etc/cost-tags"));
    assert!(leftover.is_empty(), "{}", leftover.join("\n"));
    assert!(out.contains("its original is kept in"), "{out}");
    assert_eq!(node.read("opt/slurm/bin/project-check"), "#!/bin/sh\necho old\n");
    assert_eq!(mode(&node.path("opt/slurm/bin/project-check")), 0o750);
}

#[test]
fn parallelcluster_rewriting_a_file_between_runs_is_followed() {
    let node = Node::new(Layout::Head);
    let etc = node.etc();
    node.ok(&["--release", node.rel()]);
    // pcluster update-cluster regenerates the CustomSlurmSettings file (our Alloc is gone)
    // and, say, slurm.conf with one more line (our include is gone).
    let custom = "PrologFlags=Contain\nMaxJobCount=20000\n";
    write(
        &etc.join("pcluster/custom_slurm_settings_include_file_slurm.conf"),
        custom,
        0o644,
    );
    let rerendered = format!("{PC39_SLURM_CONF}MinJobAge=600\n");
    write(&etc.join("slurm.conf"), &rerendered, 0o644);
    let updated = node.snapshot();

    // OnNodeUpdated runs the script again: it puts its settings back...
    let out = node.ok(&["--release", node.rel()]);
    assert!(out.contains("changed since the last run"), "{out}");
    assert_eq!(
        read(&etc.join("pcluster/custom_slurm_settings_include_file_slurm.conf")),
        "PrologFlags=Contain,Alloc\nMaxJobCount=20000\n"
    );
    assert!(read(&etc.join("slurm.conf")).ends_with("MinJobAge=600\ninclude cost-tags_slurm.conf\n"));
    // ...and an uninstall now returns to the regenerated files, not the first ones.
    node.ok(&["--uninstall"]);
    let mut d = diff(&updated, &node.snapshot());
    d.retain(|l| {
        !l.contains("opt/slurm/bin/")
            && !l.contains("cost-tags")
            && !l.contains("job_submit.lua")
            && !l.contains("projects_list.conf")
    });
    assert!(d.is_empty(), "{}", d.join("\n"));
    assert_eq!(read(&etc.join("slurm.conf")), rerendered);
    assert_eq!(
        read(&etc.join("pcluster/custom_slurm_settings_include_file_slurm.conf")),
        custom
    );
    assert!(!etc.join("cost-tags").exists());
}

#[test]
fn reconfigure_runs_scontrol_with_the_right_slurm_conf() {
    let node = Node::new(Layout::Head);
    let rel = node.rel();
    let calls = node.work().join("scontrol.calls");
    // A stand-in scontrol in /opt/slurm/bin (where ParallelCluster has the real one).
    node.write(
        "opt/slurm/bin/scontrol",
        &format!(
            "#!/bin/sh\necho \"$* SLURM_CONF=$SLURM_CONF\" >> '{}'\n[ \"$1\" = reconfigure ] && exit \"${{FAKE_RC:-0}}\"\nexit \"${{FAKE_PING_RC:-0}}\"\n",
            calls.display()
        ),
        0o755,
    );
    let conf = node.etc().join("slurm.conf");
    let calls_text = || fs::read_to_string(&calls).unwrap_or_default();

    let out = node.ok(&["--release", rel, "--reconfigure"]);
    assert!(out.contains("scontrol reconfigure: done"), "{out}");
    assert_eq!(calls_text(), format!("reconfigure SLURM_CONF={}\n", conf.display()));
    // Nothing changed: no reconfigure.
    node.ok(&["--release", rel, "--reconfigure"]);
    assert_eq!(calls_text().lines().count(), 1);
    // slurmctld down (cluster creation before it starts): a warning, not a failure.
    node.ok(&["--uninstall", "--no-reconfigure"]);
    assert_eq!(calls_text().lines().count(), 1);
    let down = [("FAKE_RC", "1"), ("FAKE_PING_RC", "1")];
    let out = ok(node.run_with(&["--release", rel, "--reconfigure"], &down));
    assert!(out.contains("slurmctld is not reachable"), "{out}");
    // slurmctld up but refusing the configuration: a failure.
    node.ok(&["--uninstall"]);
    let refusing = [("FAKE_RC", "1"), ("FAKE_PING_RC", "0")];
    fails(
        node.run_with(&["--release", rel, "--reconfigure"], &refusing),
        "scontrol reconfigure failed",
    );
}

#[test]
fn release_downloaded_over_http_is_verified() {
    if !support::on_path("curl") {
        support::require("curl", false);
        return;
    }
    let mut node = Node::new(Layout::Head);
    node.set_env("NO_PROXY", "127.0.0.1");
    node.set_env("no_proxy", "127.0.0.1");
    let tarball = make_tarball(node.release());
    let body = fs::read(&tarball).unwrap();
    let server = Server::start(
        "release",
        Arc::new(move |req: &Request| match (req.method.as_str(), req.target.as_str()) {
            ("GET", "/cost-tags.tar.gz") => Reply::Send(Response::new(200, body.clone())),
            _ => Reply::Send(Response::new(404, "no")),
        }),
    )
    .expect("start the release server");
    let url = |file: &str| format!("http://127.0.0.1:{}/{file}", server.port());

    node.refuses(&["--release", &url("missing.tar.gz")], "cannot download");
    node.refuses(
        &["--release", &url("cost-tags.tar.gz"), "--sha256", &"0".repeat(64)],
        "sha256 mismatch",
    );
    node.ok(&["--release", &url("cost-tags.tar.gz"), "--sha256", &sha256(&tarball)]);
    assert!(node.etc().join("job_submit.lua").is_file());
}

#[test]
fn release_downloaded_from_s3() {
    // The AWS CLI is on ParallelCluster's AMIs; install-deps puts it in the project's
    // .venv (the next test, with a stand-in, always runs).
    let Some(aws_cli) = support::tool("aws") else {
        support::require("the AWS CLI (aws)", false);
        return;
    };
    let Some(moto) = support::moto::MotoServer::start() else {
        return;
    };
    let mut node = Node::new(Layout::Head);
    for (k, v) in support::moto::env_for(&moto.endpoint()) {
        node.set_env(&k, &v);
    }
    // The script finds `aws` on PATH, as on a node.
    node.prepend_path(aws_cli.parent().unwrap());
    let tarball = make_tarball(node.release());
    let aws = |args: &[&str]| {
        let out = Command::new(&aws_cli)
            .args(args)
            .envs(node.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(out.status.success(), "aws {args:?}: {}", text(&out));
    };
    aws(&["s3api", "create-bucket", "--bucket", "ct-releases"]);
    let object = "s3://ct-releases/v1/cost-tags-x86_64.tar.gz";
    aws(&["s3", "cp", tarball.to_str().unwrap(), object]);

    node.refuses(
        &["--release", "s3://ct-releases/v1/nope.tar.gz"],
        "cannot download s3://ct-releases/v1/nope.tar.gz",
    );
    let sha = format!("-{}", sha256(&tarball));
    let out = node.ok(&["---release", &format!("-{object}"), "---sha256", &sha]);
    assert!(out.contains("checksum verified"), "{out}");
    assert!(node.path("opt/slurm/bin/cost-prolog").is_file());
}

/// `s3://` goes through `aws s3 cp --only-show-errors SRC DEST`: a stand-in `aws` on PATH
/// serves a local directory as the bucket and records the calls.
#[test]
fn release_from_s3_uses_aws_s3_cp() {
    let mut node = Node::new(Layout::Head);
    let tarball = make_tarball(node.release());
    let bucket = node.work().join("bucket");
    fs::create_dir_all(bucket.join("rel")).unwrap();
    fs::copy(&tarball, bucket.join("rel/cost-tags.tar.gz")).unwrap();
    let bin = node.work().join("fake-bin");
    let calls = node.work().join("aws.calls");
    write(
        &bin.join("aws"),
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{calls}'\n[ \"$1 $2 $3\" = 's3 cp --only-show-errors' ] || exit 2\n\
             src=${{4#s3://my-bucket/}}\ncp '{bucket}'/\"$src\" \"$5\" 2>/dev/null || {{ echo 'fatal error: Not Found' >&2; exit 1; }}\n",
            calls = calls.display(),
            bucket = bucket.display()
        ),
        0o755,
    );
    node.prepend_path(&bin);

    let out = node.refuses(
        &["--release", "s3://my-bucket/rel/missing.tar.gz"],
        "cannot download s3://my-bucket/rel/missing.tar.gz",
    );
    assert!(out.contains("s3:GetObject"), "{out}");
    let sha = sha256(&tarball);
    let out = node.ok(&["--release", "s3://my-bucket/rel/cost-tags.tar.gz", "--sha256", &sha]);
    assert!(out.contains("checksum verified"), "{out}");
    let recorded = fs::read_to_string(&calls).unwrap();
    assert!(
        recorded
            .lines()
            .last()
            .unwrap()
            .starts_with("s3 cp --only-show-errors s3://my-bucket/rel/cost-tags.tar.gz /"),
        "{recorded}"
    );
    node.assert_release_bins();
}

#[test]
fn script_is_shellcheck_clean() {
    if !support::require("shellcheck", support::on_path("shellcheck")) {
        return;
    }
    let out = Command::new("shellcheck").arg(script()).output().unwrap();
    assert!(out.status.success(), "shellcheck:\n{}", text(&out));
}

// ---------------------------------------------------------------------------------------
// Periodic jobs: `cost-tags reconcile` on compute nodes, `cost-tags budget refresh` on the
// head node with --budgets, `cost-tags prices refresh` on the head node unless --no-prices. systemd counts as present under COST_TAGS_ROOT when
// <root>/run/systemd/system exists; else cron when <root>/etc/cron.d exists. A stand-in
// `systemctl` first on PATH proves the script never runs it under COST_TAGS_ROOT.

#[test]
fn compute_node_schedules_reconcile_with_a_systemd_timer() {
    let mut node = Node::new(Layout::Compute("ComputeFleet"));
    let calls = node.fake_cost_tags();
    node.mkdirs(&["run/systemd/system", "etc/systemd/system"]);
    let systemctl_calls = node.fake_systemctl();
    let units = node.path("etc/systemd/system");

    let [again, uninstall] = node.cycle(&[], |out, before, after| {
        assert!(
            out.contains("cost-tags reconcile scheduled every 5 minutes (systemd)"),
            "{out}"
        );
        assert!(
            out.contains("COST_TAGS_ROOT is set: not running systemctl (a real node runs 'systemctl enable --now cost-tags-reconcile.timer')"),
            "{out}"
        );
        assert_eq!(
            sorted(diff(before, after)),
            vec![
                "+ etc/systemd/system/cost-tags-reconcile.service",
                "+ etc/systemd/system/cost-tags-reconcile.timer",
                "+ var/spool/cost-tags",
            ]
        );
        let (service, timer) = node.assert_timer_units("cost-tags-reconcile", "reconcile", ["1min", "5min", "60"]);
        for (f, t) in [("service", &service), ("timer", &timer)] {
            assert!(t.starts_with("# cost-tags.sh: "), "{f}:\n{t}");
            assert_eq!(mode(&units.join(format!("cost-tags-reconcile.{f}"))), 0o644);
        }

        // What systemd would run: it reads cost-tags.env as the hooks do (export lines) and
        // finds Slurm's commands on PATH.
        let unit_path = unit_value(&service, "Environment").replacen("PATH=", "", 1);
        let bin = node.path("opt/slurm/bin");
        assert!(unit_path.starts_with(&format!("{}:", bin.display())), "{unit_path}");
        assert!(run_unit(&service, &[]).status.success());
        assert_eq!(read(&calls), node.job_call("reconcile", &unit_path));
    });
    // The second run was byte-identical; the uninstall removed exactly these files.
    assert!(!again.contains("installed"), "{again}");
    let timer = units.join("cost-tags-reconcile.timer");
    assert!(
        uninstall.contains(&format!("removed {}", timer.display())),
        "{uninstall}"
    );
    assert!(
        !systemctl_calls.exists(),
        "systemctl ran under COST_TAGS_ROOT: {}",
        read(&systemctl_calls)
    );
}

#[test]
fn compute_node_without_systemd_schedules_reconcile_from_cron_d() {
    let mut node = Node::new(Layout::Compute("ComputeFleet"));
    let calls = node.fake_cost_tags();
    node.mkdirs(&["etc/cron.d"]);
    let systemctl_calls = node.fake_systemctl();
    let cron_file = node.path("etc/cron.d/cost-tags");

    // The second run writes no duplicate line and changes nothing.
    node.cycle(&[], |out, before, after| {
        assert!(
            out.contains("cost-tags reconcile scheduled every 5 minutes (cron)"),
            "{out}"
        );
        assert_eq!(
            sorted(diff(before, after)),
            vec!["+ etc/cron.d/cost-tags", "+ var/spool/cost-tags"]
        );
        assert_eq!(mode(&cron_file), 0o644);
        let cron = read(&cron_file);
        assert!(cron.starts_with("# cost-tags.sh: "), "{cron}");
        let bin = node.path("opt/slurm/bin");
        let path = format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            bin.display()
        );
        let [every, reboot] = node.cron_lines("reconcile", 5, 60);
        assert_eq!(
            settings_lines(&cron),
            vec![
                "SHELL=/bin/bash".to_string(),
                format!("PATH={path}"),
                format!("COST_TAGS_ENV_FILE={}", node.etc().join("cost-tags.env").display()),
                every,
                reboot
            ]
        );
        let cron_path = run_cron_line(&cron, "*/5 * * * * root ");
        assert_eq!(read(&calls), node.job_call("reconcile", &cron_path));
    });

    // The node gains systemd (a new image): the timer replaces the cron file.
    let before = node.snapshot();
    node.ok(&[]);
    node.mkdirs(&["run/systemd/system", "etc/systemd/system"]);
    let out = node.ok(&[]);
    assert!(out.contains("(this node now uses systemd)"), "{out}");
    assert!(!cron_file.exists());
    assert!(node.path("etc/systemd/system/cost-tags-reconcile.timer").is_file());
    node.ok(&["--uninstall"]);
    assert!(!node.path("etc/systemd/system/cost-tags-reconcile.timer").exists());
    assert!(!node.path("etc/systemd/system/cost-tags-reconcile.service").exists());
    fs::remove_dir_all(node.path("run")).unwrap();
    fs::remove_dir_all(node.path("etc/systemd")).unwrap();
    assert_same(&before, &node.snapshot(), "uninstall after the switch");
    assert!(!systemctl_calls.exists(), "systemctl ran under COST_TAGS_ROOT");
}

#[test]
fn compute_node_keeps_files_it_did_not_write() {
    // cost-tags is part of every release now (it runs the install), so a compute node
    // always schedules reconcile; what it never does is touch a file of the same name
    // that it did not write.
    let mut node = Node::new(Layout::Compute("ComputeFleet"));
    node.mkdirs(&["etc/cron.d"]);
    let systemctl_calls = node.fake_systemctl();
    let foreign = "*/7 * * * * root /usr/local/bin/site-job\n";
    node.write("etc/cron.d/cost-tags", foreign, 0o644);
    let before = node.snapshot();
    let out = node.ok(&[]);
    assert!(out.contains("was not written by cost-tags.sh: left as it is"), "{out}");
    assert_eq!(
        diff(&before, &node.snapshot()),
        vec!["+ var/spool/cost-tags".to_string()]
    );
    let out = node.ok(&["--uninstall"]);
    assert!(out.contains("it was not written by cost-tags.sh"), "{out}");
    assert_eq!(node.read("etc/cron.d/cost-tags"), foreign);
    assert_same(&before, &node.snapshot(), "uninstall");
    assert!(!systemctl_calls.exists(), "systemctl ran under COST_TAGS_ROOT");
}

#[test]
fn head_node_budgets_install_the_refresh_timer_and_uninstall_exactly() {
    let mut node = Node::new(Layout::Head);
    let systemctl_calls = node.fake_systemctl();
    node.mkdirs(&["run/systemd/system"]);
    let args = ["--release", node.rel(), "--budgets"];

    let [again, _] = node.cycle(&args, |out, before, after| {
        assert!(
            out.contains("cost-tags budget refresh scheduled every 10 minutes (systemd)"),
            "{out}"
        );
        assert!(out.contains("not running systemctl"), "{out}");
        // cost-tags.toml: a [budget] table, switched on, that the settings loader accepts.
        let toml = node.read("opt/slurm/etc/cost-tags.toml");
        let table = toml
            .split("\n[budget]")
            .nth(1)
            .unwrap_or_else(|| panic!("no [budget]:\n{toml}"));
        assert_eq!(
            settings_lines(table)
                .first()
                .map(|l| l.split('#').next().unwrap().trim()),
            Some("enabled = true"),
            "{toml}"
        );
        node.assert_settings_usable();
        // The units, as root, recorded in the manifest.
        node.assert_timer_units("cost-tags-budget-refresh", "budget refresh", ["2min", "10min", "120"]);
        let manifest = node.read("opt/slurm/etc/cost-tags/manifest");
        for f in ["cost-tags-budget-refresh.service", "cost-tags-budget-refresh.timer"] {
            let unit = node.path("etc/systemd/system").join(f);
            assert!(manifest.contains(&format!("file\t{}", unit.display())), "{manifest}");
        }
        // Beside them the daily price refresh, on by default with bin/cost-tags.
        let mut changed = diff(before, after);
        changed.retain(|l| l.contains("etc/systemd") || l.contains("cron") || l.contains("bin/cost-tags"));
        assert_eq!(
            sorted(changed),
            vec![
                "+ etc/systemd",
                "+ etc/systemd/system",
                "+ etc/systemd/system/cost-tags-budget-refresh.service",
                "+ etc/systemd/system/cost-tags-budget-refresh.timer",
                "+ etc/systemd/system/cost-tags-prices-refresh.service",
                "+ etc/systemd/system/cost-tags-prices-refresh.timer",
                "+ opt/slurm/bin/cost-tags",
            ]
        );
    });
    assert!(again.contains("already installed: nothing changed"), "{again}");

    // The multi-runner form installs the same.
    let mr = node.sibling(Layout::Head);
    mr.mkdirs(&["run/systemd/system"]);
    let mr_before = mr.snapshot();
    mr.ok(&["---release", &format!("-{}", node.rel()), "---budgets"]);
    node.ok(&args);
    assert_same(&node.normalized(), &mr.normalized(), "multi-runner vs plain");
    mr.ok(&["---uninstall"]);
    assert_same(&mr_before, &mr.snapshot(), "multi-runner uninstall");
    assert!(!systemctl_calls.exists(), "systemctl ran under COST_TAGS_ROOT");
}

#[test]
fn head_node_budgets_fall_back_to_cron_and_follow_the_option() {
    let node = Node::new(Layout::Head);
    let rel = node.rel();
    node.mkdirs(&["etc/cron.d"]);
    let before = node.snapshot();

    let out = node.ok(&["--release", rel, "--budgets"]);
    assert!(
        out.contains("cost-tags budget refresh scheduled every 10 minutes (cron)"),
        "{out}"
    );
    let after = node.snapshot();
    let cron_file = node.path("etc/cron.d/cost-tags-budget");
    assert_eq!(mode(&cron_file), 0o644);
    let cron = read(&cron_file);
    assert_eq!(settings_lines(&cron)[3..], node.cron_lines("budget refresh", 10, 120));
    assert!(!node.path("etc/systemd").exists());
    assert!(node.read("opt/slurm/etc/cost-tags.toml").contains("\n[budget]"));

    node.ok(&["--release", rel, "--budgets"]);
    assert_same(&after, &node.snapshot(), "second install");

    // Without --budgets the script's own unedited settings and the cron file follow.
    let out = node.ok(&["--release", rel]);
    assert!(out.contains(&format!("removed {}", cron_file.display())), "{out}");
    assert!(!cron_file.exists());
    assert!(!node.read("opt/slurm/etc/cost-tags.toml").contains("[budget]"));
    node.ok(&["--uninstall"]);
    assert_same(&before, &node.snapshot(), "uninstall");
}

#[test]
fn head_node_without_budgets_installs_no_budget_units() {
    let node = Node::new(Layout::Head);
    let rel = node.rel();
    node.mkdirs(&["run/systemd/system", "etc/cron.d"]);

    let before = node.snapshot();
    let out = node.ok(&["--release", rel]);
    assert!(!out.contains("budget"), "{out}");
    // Only the daily price refresh (on by default) has units.
    let mut units: Vec<_> = fs::read_dir(node.path("etc/systemd/system"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    units.sort();
    assert_eq!(
        units,
        ["cost-tags-prices-refresh.service", "cost-tags-prices-refresh.timer"]
    );
    assert_eq!(fs::read_dir(node.path("etc/cron.d")).unwrap().count(), 0);
    assert!(!node.read("opt/slurm/etc/cost-tags.toml").contains("[budget]"));
    node.ok(&["--uninstall"]);
    assert_same(&before, &node.snapshot(), "uninstall");

    // Neither systemd nor cron: --budgets cannot be honoured, and says so.
    fs::remove_dir_all(node.path("run")).unwrap();
    fs::remove_dir_all(node.path("etc/cron.d")).unwrap();
    node.refuses(&["--release", rel, "--budgets"], "neither systemd nor cron");
}

#[test]
fn head_node_prices_refresh_runs_daily_from_a_systemd_timer() {
    let mut node = Node::new(Layout::Head);
    let systemctl_calls = node.fake_systemctl();
    node.mkdirs(&["run/systemd/system"]);
    let args = ["--release", node.rel()];
    let units = node.path("etc/systemd/system");

    let [again, uninstall] = node.cycle(&args, |out, before, after| {
        assert!(
            out.contains("cost-tags prices refresh scheduled daily (systemd)"),
            "{out}"
        );
        assert!(
            out.contains("a real node runs 'systemctl enable --now cost-tags-prices-refresh.timer'"),
            "{out}"
        );
        // 5 minutes after boot, then once a day, up to 30 minutes late at random; as root.
        let (service, timer) = node.assert_timer_units(
            "cost-tags-prices-refresh",
            "prices refresh",
            ["5min", "1440min", "1800"],
        );
        for (f, t) in [("service", &service), ("timer", &timer)] {
            assert!(t.starts_with("# cost-tags.sh: "), "{f}:\n{t}");
            assert_eq!(mode(&units.join(format!("cost-tags-prices-refresh.{f}"))), 0o644);
        }
        // Recorded in the manifest, so the uninstall removes them.
        let manifest = node.read("opt/slurm/etc/cost-tags/manifest");
        for f in ["cost-tags-prices-refresh.service", "cost-tags-prices-refresh.timer"] {
            assert!(
                manifest.contains(&format!("file\t{}", units.join(f).display())),
                "{manifest}"
            );
        }
        let mut changed = diff(before, after);
        changed.retain(|l| l.contains("etc/systemd") || l.contains("cron") || l.contains("bin/cost-tags"));
        assert_eq!(
            sorted(changed),
            vec![
                "+ etc/systemd",
                "+ etc/systemd/system",
                "+ etc/systemd/system/cost-tags-prices-refresh.service",
                "+ etc/systemd/system/cost-tags-prices-refresh.timer",
                "+ opt/slurm/bin/cost-tags",
            ]
        );
    });
    assert!(again.contains("already installed: nothing changed"), "{again}");
    // The timer is disabled before its units go.
    let disable = uninstall
        .find("a real node runs 'systemctl disable --now cost-tags-prices-refresh.timer'")
        .unwrap_or_else(|| panic!("{uninstall}"));
    let removed = uninstall
        .find(&format!(
            "removed {}",
            units.join("cost-tags-prices-refresh.timer").display()
        ))
        .unwrap_or_else(|| panic!("{uninstall}"));
    assert!(disable < removed, "{uninstall}");

    // Both argument forms install the same: plain with --option=value, and the
    // multi-runner's.
    let eq = node.sibling(Layout::Head);
    eq.mkdirs(&["run/systemd/system"]);
    eq.ok(&[&format!("--release={}", node.rel())]);
    let mr = node.sibling(Layout::Head);
    mr.mkdirs(&["run/systemd/system"]);
    let mr_before = mr.snapshot();
    mr.ok(&["---release", &format!("-{}", node.rel())]);
    node.ok(&args);
    assert_same(&node.normalized(), &eq.normalized(), "--release=SRC vs plain");
    assert_same(&node.normalized(), &mr.normalized(), "multi-runner vs plain");
    // --no-prices in the multi-runner form takes the units away again, timer first.
    let out = mr.ok(&["---release", &format!("-{}", node.rel()), "---no-prices"]);
    assert!(
        out.contains("systemctl disable --now cost-tags-prices-refresh.timer"),
        "{out}"
    );
    assert!(
        !mr.path("etc/systemd/system/cost-tags-prices-refresh.timer").exists(),
        "{out}"
    );
    assert!(
        !mr.path("etc/systemd/system/cost-tags-prices-refresh.service").exists(),
        "{out}"
    );
    mr.ok(&["---uninstall"]);
    assert_same(&mr_before, &mr.snapshot(), "multi-runner uninstall");
    assert!(!systemctl_calls.exists(), "systemctl ran under COST_TAGS_ROOT");
}

#[test]
fn head_node_prices_refresh_falls_back_to_cron_and_no_prices_removes_it() {
    let node = Node::new(Layout::Head);
    let rel = node.rel();
    node.mkdirs(&["etc/cron.d"]);
    let cron_file = node.path("etc/cron.d/cost-tags-prices");

    node.cycle(&["--release", rel], |out, before, after| {
        assert!(out.contains("cost-tags prices refresh scheduled daily (cron)"), "{out}");
        assert_eq!(mode(&cron_file), 0o644);
        let cron = read(&cron_file);
        assert!(cron.starts_with("# cost-tags.sh: "), "{cron}");
        // A daily line and one 5 minutes after a reboot, like the other jobs.
        let run = format!("{} >/dev/null 2>&1", node.job_command("prices refresh"));
        assert_eq!(
            settings_lines(&cron)[3..],
            [
                format!("@daily root sleep $((RANDOM \\% 1800)); {run}"),
                format!("@reboot root sleep 300; {run}"),
            ]
        );
        assert!(!node.path("etc/systemd").exists());
        let mut changed = diff(before, after);
        changed.retain(|l| l.contains("cron") || l.contains("bin/cost-tags"));
        assert_eq!(
            sorted(changed),
            vec!["+ etc/cron.d/cost-tags-prices", "+ opt/slurm/bin/cost-tags"]
        );
    });

    // --no-prices installs none, and takes away the one an earlier run installed.
    let before = node.snapshot();
    node.ok(&["--release", rel, "--no-prices"]);
    assert!(!cron_file.exists());
    node.ok(&["--release", rel]);
    assert!(cron_file.is_file());
    let out = node.ok(&["--release", rel, "--no-prices"]);
    assert!(out.contains(&format!("removed {}", cron_file.display())), "{out}");
    assert!(!cron_file.exists());
    let after = node.snapshot();
    node.ok(&["--release", rel, "--no-prices"]);
    assert_same(&after, &node.snapshot(), "second --no-prices install");

    // With --budgets too: two cron files, each its own.
    node.ok(&["--release", rel, "--budgets"]);
    assert!(cron_file.is_file());
    assert!(node.path("etc/cron.d/cost-tags-budget").is_file());
    node.ok(&["--uninstall"]);
    assert_same(&before, &node.snapshot(), "uninstall");

    // What cron runs: cost-tags.env read as the hooks do, then `cost-tags prices refresh`
    // (a stand-in in place of the installed binary; the random sleep cut short).
    node.ok(&["--release", rel]);
    let calls = node.fake_cost_tags();
    let cron_path = run_cron_line(&read(&cron_file), "@daily root ");
    assert_eq!(read(&calls), node.job_call("prices refresh", &cron_path));
}

#[test]
fn a_release_without_cost_tags_is_refused_and_no_init_means_no_price_refresh() {
    let node = Node::new(Layout::Head);
    let rel = node.rel();

    // bin/cost-tags runs the install itself: a release without it is refused.
    let cost_tags = node.release().join("bin/cost-tags");
    let kept = read(&cost_tags);
    fs::remove_file(&cost_tags).unwrap();
    node.refuses(&["--release", rel], "lacks: cost-tags");
    write(&cost_tags, &kept, 0o755);

    // Neither systemd nor cron: unlike --budgets, not an error (nothing depends on the
    // cache being fresh); a warning says how to run it, and nothing is scheduled.
    let before = node.snapshot();
    let out = node.ok(&["--release", rel]);
    assert!(
        out.contains("WARNING: neither systemd nor cron") && out.contains("prices refresh is not scheduled"),
        "{out}"
    );
    assert!(!node.path("etc/systemd").exists());
    assert!(!node.path("etc/cron.d").exists());
    // --no-prices silences it.
    let out = node.ok(&["--release", rel, "--no-prices"]);
    assert!(!out.contains("WARNING: neither systemd nor cron"), "{out}");
    node.ok(&["--uninstall"]);
    assert_same(&before, &node.snapshot(), "uninstall");

    // With systemd, a later run with --no-prices removes the units an earlier one wrote.
    node.mkdirs(&["run/systemd/system"]);
    node.ok(&["--release", rel]);
    let timer = node.path("etc/systemd/system/cost-tags-prices-refresh.timer");
    assert!(timer.is_file());
    let out = node.ok(&["--release", rel, "--no-prices"]);
    assert!(out.contains(&format!("removed {}", timer.display())), "{out}");
    assert!(!node
        .path("etc/systemd/system/cost-tags-prices-refresh.service")
        .exists());
    node.ok(&["--uninstall"]);
}

#[test]
fn head_node_metrics_for_node_exporter_every_five_minutes_and_gone_with_the_job() {
    let node = Node::new(Layout::Head);
    let rel = node.rel();
    node.mkdirs(&["run/systemd/system", "var/lib/node_exporter/textfile", "srv/metrics"]);
    let prom = node.path("var/lib/node_exporter/textfile/cost_tags.prom");
    let command = format!("metrics --output {}", prom.display());
    // A trailing slash is the same directory.
    let args = ["--release", rel, "--metrics", "/var/lib/node_exporter/textfile/"];

    let [again, _] = node.cycle(&args, |out, before, after| {
        assert!(
            out.contains(&format!(
                "cost-tags metrics writes {} every 5 minutes (systemd)",
                prom.display()
            )),
            "{out}"
        );
        // 3 minutes after boot, then every 5, up to 30 s late at random; as root.
        node.assert_timer_units("cost-tags-metrics", &command, ["3min", "5min", "30"]);
        let manifest = node.read("opt/slurm/etc/cost-tags/manifest");
        assert!(manifest.contains("cost-tags-metrics.timer"), "{manifest}");
        let mut changed = diff(before, after);
        changed.retain(|l| l.contains("metrics") || l.contains("node_exporter"));
        assert_eq!(
            sorted(changed),
            vec![
                "+ etc/systemd/system/cost-tags-metrics.service",
                "+ etc/systemd/system/cost-tags-metrics.timer",
            ]
        );
    });
    assert!(again.contains("already installed: nothing changed"), "{again}");

    // Once the timer has written the file, the uninstall takes it too: figures nobody
    // updates any more must not stay on the dashboards.
    let before = node.snapshot();
    node.ok(&args);
    write(&prom, "# EOF\n", 0o644);
    let out = node.ok(&["--uninstall"]);
    assert!(out.contains(&format!("removed {}", prom.display())), "{out}");
    assert_same(&before, &node.snapshot(), "uninstall after the timer ran");

    // Another directory moves the job and drops the old file; no --metrics drops both.
    node.ok(&args);
    write(&prom, "# EOF\n", 0o644);
    let out = node.ok(&["--release", rel, "--metrics", "/srv/metrics"]);
    assert!(!prom.exists(), "{out}");
    let moved = node.path("srv/metrics/cost_tags.prom");
    node.assert_timer_units(
        "cost-tags-metrics",
        &format!("metrics --output {}", moved.display()),
        ["3min", "5min", "30"],
    );
    write(&moved, "# EOF\n", 0o644);
    let out = node.ok(&["--release", rel]);
    assert!(!moved.exists(), "{out}");
    assert!(
        !node.path("etc/systemd/system/cost-tags-metrics.timer").exists(),
        "{out}"
    );
    node.ok(&["--uninstall"]);
    assert_same(&before, &node.snapshot(), "uninstall after moving and dropping");

    // Without systemd: a cron file, whose line runs `cost-tags metrics --output FILE`.
    fs::remove_dir_all(node.path("run")).unwrap();
    node.mkdirs(&["etc/cron.d"]);
    node.ok(&args);
    let cron = read(&node.path("etc/cron.d/cost-tags-metrics"));
    let run = format!("{} >/dev/null 2>&1", node.job_command(&command));
    assert_eq!(
        settings_lines(&cron)[3..],
        [
            format!("*/5 * * * * root sleep $((RANDOM \\% 30)); {run}"),
            format!("@reboot root sleep 180; {run}"),
        ]
    );
    let calls = node.fake_cost_tags();
    let every = settings_lines(&cron)[3].clone();
    let cmd = every.strip_prefix("*/5 * * * * root ").unwrap().replace("\\%", "%");
    let st = Command::new("/bin/bash")
        .args(["-c", &format!("sleep() {{ :; }}; {cmd}")])
        .env_clear()
        .env("PATH", unit_value(&cron, "PATH"))
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        read(&calls).starts_with(&format!("{command} FOO= ENV=")),
        "{}",
        read(&calls)
    );
    node.ok(&["--uninstall"]);

    // What cannot work is refused before anything changes.
    node.refuses(&["--release", rel, "--metrics", "var/lib"], "absolute directory");
    node.refuses(&["--release", rel, "--metrics", "/var/lib/a b"], "only letters");
    node.refuses(&["--release", rel, "--metrics", "/nonexistent"], "no such directory");
    let bare = Node::new(Layout::Head);
    bare.mkdirs(&["srv/metrics"]);
    bare.refuses(
        &["--release", bare.rel(), "--metrics", "/srv/metrics"],
        "--metrics: neither systemd nor cron",
    );
}

/// Runs the first job line of cron file `cron` (the line after SHELL= and PATH=, which
/// starts with `schedule`) as cron would: '\%' becomes '%', with only the file's PATH, and
/// the random sleep cut short. Returns that PATH.
/// Runs a service as systemd would: ExecStart split on blanks (no shell), with only
/// the unit's `Environment=` variables and `extra`.
fn run_unit(service: &str, extra: &[(&str, &str)]) -> Output {
    let exec = unit_value(service, "ExecStart");
    let mut words = exec.split(' ');
    let env = service
        .lines()
        .filter_map(|l| l.strip_prefix("Environment=")?.split_once('='));
    Command::new(words.next().unwrap())
        .args(words)
        .env_clear()
        .envs(env)
        .envs(extra.iter().copied())
        .output()
        .unwrap()
}

fn run_cron_line(cron: &str, schedule: &str) -> String {
    let line = settings_lines(cron)[3].clone();
    let cmd = line.strip_prefix(schedule).unwrap().replace("\\%", "%");
    let cron_path = unit_value(cron, "PATH");
    // cron puts a crontab's variable lines into the job's environment.
    let st = Command::new("/bin/bash")
        .args(["-c", &format!("sleep() {{ :; }}; {cmd}")])
        .env_clear()
        .env("PATH", &cron_path)
        .env("COST_TAGS_ENV_FILE", unit_value(cron, "COST_TAGS_ENV_FILE"))
        .status()
        .unwrap();
    assert!(st.success(), "{line}");
    cron_path
}

// ---------------------------------------------------------------------------------------
// Issue 20: the admin path. Scheduled jobs never source cost-tags.env with a shell, and
// every file the install edits is written through a symbolic link only to a target in
// the same tree, keeping that target's mode; anything else is refused, nothing changed.

/// Every installed job's command, run as its init system would run it; returns the
/// combined output of each.
fn run_installed_jobs(node: &Node, env: &[(&str, &str)]) -> Vec<String> {
    let mut outputs = Vec::new();
    for dir in ["etc/systemd/system", "etc/cron.d"] {
        let Ok(entries) = fs::read_dir(node.path(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("cost-tags") || name.ends_with(".timer") {
                continue;
            }
            let text = read(&path);
            let out = if name.ends_with(".service") {
                run_unit(&text, env)
            } else {
                let line = settings_lines(&text)[3].clone();
                let (_, cmd) = line.split_once(" root ").unwrap();
                // Kept from the job's own output (cron's goes nowhere; it logs to syslog).
                let cmd = cmd.replace(" >/dev/null 2>&1", "");
                let mut c = Command::new("/bin/bash");
                c.args(["-c", &format!("sleep() {{ :; }}; {}", cmd.replace("\\%", "%"))])
                    .env_clear();
                for l in &settings_lines(&text)[..3] {
                    let (k, v) = l.split_once('=').unwrap();
                    c.env(k, v);
                }
                c.envs(env.iter().copied()).output().unwrap()
            };
            outputs.push(format!("{name}: {}", text_of(&out)));
        }
    }
    outputs
}

fn text_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_group_writable_env_file_runs_nothing_from_any_installed_job() {
    for init in ["run/systemd/system", "etc/cron.d"] {
        let head = Node::new(Layout::Head);
        head.mkdirs(&[init, "var/lib/node_exporter/textfile"]);
        let out = head.ok(&[
            "--release",
            head.rel(),
            "--budgets",
            "--metrics",
            "/var/lib/node_exporter/textfile",
        ]);
        assert!(out.contains("cost-tags metrics writes"), "{out}");
        let compute = head.sibling(Layout::Compute("ComputeFleet"));
        compute.mkdirs(&[init]);
        compute.ok(&[]);
        let marker = head.work().join("sourced");
        for node in [&head, &compute] {
            // What a shell would run when sourcing it, in a file root does not alone control.
            node.write(
                "opt/slurm/etc/cost-tags.env",
                &format!(
                    "HTTPS_PROXY=$(touch {})\nexport AWS_REGION=`touch {}`\n",
                    marker.display(),
                    marker.display()
                ),
                0o664,
            );
            // The jobs' AWS calls fail fast: no instance metadata, no credentials, settings
            // from the node's tree.
            let settings = node.etc().join("cost-tags.toml");
            let env = [
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("COST_TAGS_CONFIG", settings.to_str().unwrap()),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9"),
            ];
            let outputs = run_installed_jobs(node, &env);
            let want = if node.path("opt/slurm/etc/slurm.conf").exists() {
                3
            } else {
                1
            };
            assert_eq!(outputs.len(), want, "{outputs:#?}");
            for out in &outputs {
                assert!(
                    out.contains("cost-tags.env: writable by group or others (mode 664)")
                        && out.contains("file ignored"),
                    "{out}"
                );
            }
        }
        assert!(!marker.exists(), "a job ran the env file's command substitution");
    }
}

/// A head node whose slurm.conf is a link to `target` (made by `place`), relative to etc.
fn head_with_linked(file: &str, target: &str) -> Node {
    let node = Node::new(Layout::Head);
    let etc = node.etc();
    let real = etc.join(target);
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::rename(etc.join(file), &real).unwrap();
    std::os::unix::fs::symlink(target, etc.join(file)).unwrap();
    node
}

#[test]
fn a_symlinked_slurm_conf_is_edited_at_its_target_keeping_its_mode() {
    let node = head_with_linked("slurm.conf", "managed/slurm.conf");
    let etc = node.etc();
    let link = etc.join("slurm.conf");
    let real = etc.join("managed/slurm.conf");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
    let original = read(&real);
    let args = ["--release", node.rel()];
    node.cycle(&args, |out, _, _| {
        assert!(
            fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
            "the link stays"
        );
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("managed/slurm.conf"));
        assert_eq!(mode(&real), 0o600, "{out}");
        let text = read(&real);
        assert!(text.contains("include cost-tags_slurm.conf"), "{text}");
    });
    // A 0664 target is edited and leaves group-unwritable; the uninstall gives back 0664.
    fs::set_permissions(&real, fs::Permissions::from_mode(0o664)).unwrap();
    node.ok(&args);
    assert_eq!(mode(&real), 0o644);
    node.ok(&["--uninstall"]);
    assert_eq!(read(&real), original);
}

#[test]
fn a_symlinked_include_is_edited_at_its_target() {
    let node = Node::new(Layout::Head);
    let etc = node.etc();
    // The key the install extends (JobSubmitPlugins) in an include that is a link.
    let conf = read(&etc.join("slurm.conf"));
    fs::write(etc.join("slurm.conf"), format!("{conf}include site/submit.conf\n")).unwrap();
    fs::create_dir_all(etc.join("site/real")).unwrap();
    write(&etc.join("site/real/submit.conf"), "JobSubmitPlugins=pbs\n", 0o640);
    std::os::unix::fs::symlink("real/submit.conf", etc.join("site/submit.conf")).unwrap();
    node.cycle(&["--release", node.rel()], |out, _, _| {
        assert!(fs::symlink_metadata(etc.join("site/submit.conf"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            read(&etc.join("site/real/submit.conf")),
            "JobSubmitPlugins=pbs,lua\n",
            "{out}"
        );
        assert_eq!(mode(&etc.join("site/real/submit.conf")), 0o640);
    });
}

#[test]
fn links_that_leave_the_tree_or_dangle_are_refused_and_nothing_changes() {
    // slurm.conf pointing outside the node's tree (as /etc/... would on a real node).
    let outside = tempdir("ct-outside-");
    let node = Node::new(Layout::Head);
    let etc = node.etc();
    let elsewhere = outside.path().join("slurm.conf");
    fs::rename(etc.join("slurm.conf"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, etc.join("slurm.conf")).unwrap();
    let out = node.refuses(&["--release", node.rel()], "is a symbolic link to");
    assert!(out.contains(&etc.join("slurm.conf").display().to_string()), "{out}");
    assert!(out.contains("outside"), "{out}");

    // A dangling job_submit.lua, and a unit pointing out of the unit directory.
    let node = Node::new(Layout::Head);
    std::os::unix::fs::symlink("gone.lua", node.etc().join("job_submit.lua")).unwrap();
    let out = node.refuses(&["--release", node.rel()], "which does not exist");
    assert!(out.contains("job_submit.lua is a symbolic link to gone.lua"), "{out}");

    let node = Node::new(Layout::Head);
    node.mkdirs(&["run/systemd/system", "etc/systemd/system"]);
    let victim = node.etc().join("projects_list.conf");
    fs::write(&victim, "").unwrap();
    std::os::unix::fs::symlink(
        &victim,
        node.path("etc/systemd/system/cost-tags-prices-refresh.service"),
    )
    .unwrap();
    let out = node.refuses(&["--release", node.rel()], "outside");
    assert!(out.contains("cost-tags-prices-refresh.service"), "{out}");
}

#[test]
fn a_slurm_conf_with_mode_0600_stays_0600_and_nothing_written_is_group_writable() {
    let node = Node::new(Layout::Head);
    node.mkdirs(&["run/systemd/system"]);
    let etc = node.etc();
    fs::set_permissions(etc.join("slurm.conf"), fs::Permissions::from_mode(0o600)).unwrap();
    node.cycle(&["--release", node.rel(), "--budgets"], |_, before, after| {
        assert_eq!(mode(&etc.join("slurm.conf")), 0o600);
        for line in diff(before, after) {
            let rel = line.trim_start_matches(['+', '~', ' ']).trim();
            let path = node.path(rel.split_whitespace().next().unwrap());
            let m = fs::symlink_metadata(&path).unwrap();
            assert_eq!(
                m.permissions().mode() & 0o022,
                0,
                "{line}: mode {:o}",
                m.permissions().mode()
            );
        }
    });
}

// ---------------------------------------------------------------------------------------
// Controller mode (`--tagging controller`, issue 22)

#[test]
fn controller_mode_installs_the_service_and_the_slurmctld_hooks_and_uninstalls_exactly() {
    let mut node = Node::new(Layout::Head);
    let systemctl_calls = node.fake_systemctl();
    node.mkdirs(&["run/systemd/system"]);
    let args = ["--release", node.rel(), "--tagging", "controller"];
    let [again, _] = node.cycle(&args, |out, before, after| {
        assert!(
            out.contains("controller mode: cost-tags reconcile --cluster --follow runs as cost-tags-converge.service, woken by PrologSlurmctld and EpilogSlurmctld"),
            "{out}"
        );
        assert!(out.contains("a real node runs 'systemctl enable --now cost-tags-converge.service'"), "{out}");
        let etc = node.etc();
        let toml = read(&etc.join("cost-tags.toml"));
        assert!(toml.contains("\n[tagging]\nmode = \"controller\"\n"), "{toml}");
        node.assert_settings_usable();
        // The service: reconcile --cluster --follow, restarted always, as root.
        let unit = node.path("etc/systemd/system/cost-tags-converge.service");
        assert_eq!(mode(&unit), 0o644);
        let service = read(&unit);
        assert_eq!(
            unit_value(&service, "ExecStart"),
            node.job_exec("reconcile --cluster --follow --wake-user slurm")
        );
        assert_eq!(unit_value(&service, "Restart"), "always");
        assert_eq!(unit_value(&service, "KillMode"), "mixed");
        assert!(!service.contains("User="), "runs as root:\n{service}");
        // The hook: the release's, with this node's wake file; never group/other-writable.
        let hook = node.path("opt/slurm/bin/cost-tags-wake");
        assert_eq!(mode(&hook), 0o755);
        let wake = node.path("run/cost-tags/wake");
        assert_eq!(
            read(&hook),
            read(&node.release().join("scripts/slurm/cost-tags-wake"))
                .replace("/run/cost-tags/wake", wake.to_str().unwrap())
        );
        assert!(settings_lines(&read(&hook)).contains(&format!("touch -c {} >/dev/null 2>&1", wake.display())));
        // slurmctld runs it, from cost-tags' own include.
        let ours = settings_lines(&read(&etc.join("cost-tags_slurm.conf")));
        for key in ["PrologSlurmctld", "EpilogSlurmctld"] {
            assert!(ours.contains(&format!("{key}={}", hook.display())), "{ours:?}");
        }
        let mut changed = diff(before, after);
        changed.retain(|l| l.contains("systemd") || l.contains("wake"));
        assert_eq!(
            sorted(changed),
            vec![
                "+ etc/systemd",
                "+ etc/systemd/system",
                "+ etc/systemd/system/cost-tags-converge.service",
                "+ etc/systemd/system/cost-tags-prices-refresh.service",
                "+ etc/systemd/system/cost-tags-prices-refresh.timer",
                "+ opt/slurm/bin/cost-tags-wake",
            ]
        );
    });
    assert!(again.contains("already installed: nothing changed"), "{again}");
    assert!(!systemctl_calls.exists(), "systemctl ran under COST_TAGS_ROOT");
}

#[test]
fn controller_mode_never_replaces_the_sites_prolog_slurmctld_and_says_it_polls() {
    let mut node = Node::new(Layout::Head);
    node.fake_systemctl();
    node.mkdirs(&["run/systemd/system"]);
    let custom = "pcluster/custom_slurm_settings_include_file_slurm.conf";
    let site = "PrologFlags=Contain\nPrologSlurmctld=/opt/site/prolog_ctld\n";
    node.write(&format!("opt/slurm/etc/{custom}"), site, 0o644);
    let args = ["--release", node.rel(), "--tagging", "controller"];
    node.cycle(&args, |out, _, _| {
        assert!(
            out.contains("PrologSlurmctld is already set")
                && out.contains("not replaced; the convergence polls every 30 s"),
            "{out}"
        );
        assert!(out.contains("woken by EpilogSlurmctld and polling every 30 s"), "{out}");
        let etc = node.etc();
        assert_eq!(
            read(&etc.join(custom)),
            site.replace("Contain", "Contain,Alloc"),
            "the site's PrologSlurmctld is untouched"
        );
        let ours = settings_lines(&read(&etc.join("cost-tags_slurm.conf")));
        assert!(!ours.iter().any(|l| l.starts_with("PrologSlurmctld")), "{ours:?}");
        assert!(ours.iter().any(|l| l.starts_with("EpilogSlurmctld=")), "{ours:?}");
    });

    // Both set: no hook line at all, the service polls.
    node.write(
        &format!("opt/slurm/etc/{custom}"),
        &format!("{site}EpilogSlurmctld=/opt/site/epilog_ctld\n"),
        0o644,
    );
    let out = node.ok(&args);
    assert!(
        out.contains("runs as cost-tags-converge.service, polling every 30 s"),
        "{out}"
    );
    let ours = settings_lines(&read(&node.etc().join("cost-tags_slurm.conf")));
    assert!(!ours.iter().any(|l| l.contains("Slurmctld")), "{ours:?}");
    node.ok(&["--uninstall"]);
}

#[test]
fn controller_mode_without_systemd_runs_a_pass_a_minute_from_cron() {
    let node = Node::new(Layout::Head);
    node.mkdirs(&["etc/cron.d"]);
    let args = ["--release", node.rel(), "--tagging", "controller"];
    node.cycle(&args, |out, _, _| {
        assert!(out.contains("runs every minute from"), "{out}");
        let cron_file = node.path("etc/cron.d/cost-tags-converge");
        assert_eq!(mode(&cron_file), 0o644);
        let cron = read(&cron_file);
        assert_eq!(
            settings_lines(&cron).last().unwrap(),
            &format!(
                "* * * * * root {} >/dev/null 2>&1",
                node.job_command("reconcile --cluster --give-up-after 50")
            )
        );
        // Nothing to wake: no hook, no slurmctld line.
        assert!(!node.path("opt/slurm/bin/cost-tags-wake").exists());
        assert!(!read(&node.etc().join("cost-tags_slurm.conf")).contains("Slurmctld"));
    });
}

#[test]
fn switching_between_node_and_controller_mode_works_both_ways() {
    let mut node = Node::new(Layout::Head);
    node.fake_systemctl();
    node.mkdirs(&["run/systemd/system"]);
    let before = node.snapshot();
    let rel = node.rel().to_string();
    node.ok(&["--release", &rel]);
    let node_mode = node.snapshot();
    let conf = node.etc().join("cost-tags_slurm.conf");
    let toml = node.etc().join("cost-tags.toml");
    let unit = node.path("etc/systemd/system/cost-tags-converge.service");
    let hook = node.path("opt/slurm/bin/cost-tags-wake");

    node.ok(&["--release", &rel, "--tagging", "controller"]);
    assert!(read(&toml).contains("mode = \"controller\""));
    assert!(unit.is_file() && hook.is_file());
    assert!(read(&conf).contains("PrologSlurmctld="));
    // A rerun without --tagging keeps the mode the settings say.
    let out = node.ok(&["--release", &rel]);
    assert!(out.contains("already installed: nothing changed"), "{out}");

    let out = node.ok(&["--release", &rel, "--tagging", "node"]);
    assert!(out.contains(&format!("removed {}", unit.display())), "{out}");
    assert!(!unit.exists() && !hook.exists());
    // Back to the node-mode install, file for file (only the empty unit directory the
    // controller run made may stay, as for the other units).
    let mut d = diff(&node_mode, &node.snapshot());
    d.retain(|l| !l.starts_with("~ opt/slurm/etc/cost-tags/manifest"));
    assert!(d.is_empty(), "{d:?}");
    node.ok(&["--uninstall"]);
    assert_same(&before, &node.snapshot(), "uninstall");
}

#[test]
fn an_edited_settings_file_is_kept_and_the_mode_it_says_is_followed() {
    let node = Node::new(Layout::Head);
    node.mkdirs(&["etc/cron.d"]);
    node.write(
        "opt/slurm/etc/cost-tags.toml",
        "[tagging]\nmode = \"controller\"\n",
        0o644,
    );
    // The site's file says controller: without --tagging that is the mode installed.
    let out = node.ok(&["--release", node.rel()]);
    assert!(out.contains("runs every minute from"), "{out}");
    // Asked for node mode, the file wins nowhere silently: it is kept, and said.
    let out = node.ok(&["--release", node.rel(), "--tagging", "node"]);
    assert!(out.contains("set '[tagging]' 'mode = \"node\"'"), "{out}");
    assert!(!node.path("etc/cron.d/cost-tags-converge").exists());
    assert_eq!(
        read(&node.etc().join("cost-tags.toml")),
        "[tagging]\nmode = \"controller\"\n"
    );
    node.ok(&["--uninstall"]);
}

/// Issue 21: with --budgets the head node gets the reservation journal project-check
/// appends to as SlurmUser (who cannot create files in root's /var/spool/cost-tags):
/// empty, SlurmUser's, mode 0600; the uninstall removes it while it is still empty.
#[test]
fn budgets_create_the_reservation_journal_for_slurm_user() {
    use std::os::unix::fs::MetadataExt;
    let node = Node::new(Layout::Head);
    node.mkdirs(&["run/systemd/system"]);
    let journal = node.path("var/spool/cost-tags/reservations.jsonl");
    let [again, _] = node.cycle(&["--release", node.rel(), "--budgets"], |out, before, after| {
        assert!(out.contains("(the reservation journal project-check writes)"), "{out}");
        let meta = fs::symlink_metadata(&journal).unwrap();
        assert!(meta.is_file() && meta.len() == 0);
        assert_eq!(meta.mode() & 0o7777, 0o600);
        if let Ok(Some(slurm)) = nix::unistd::User::from_name("slurm") {
            assert_eq!(meta.uid(), slurm.uid.as_raw(), "SlurmUser's");
        }
        let added: Vec<String> = diff(before, after)
            .into_iter()
            .filter(|l| l.contains("var/spool"))
            .collect();
        assert_eq!(
            sorted(added),
            ["+ var/spool/cost-tags", "+ var/spool/cost-tags/reservations.jsonl"]
        );
    });
    assert!(!again.contains("reservation journal"), "created once: {again}");
    // Without budgets, no journal.
    let plain = node.sibling(Layout::Head);
    plain.ok(&["--release", plain.rel()]);
    assert!(!plain.path("var/spool/cost-tags").exists());
}

/// `cost-tags install` called directly, as cost-tags.sh calls it (issue 23, item 6): clap
/// parses it like every other command, the multi-runner form is undone after the global
/// options too, roles and modes are typed values named in the installer's words, and
/// `--config` is refused, never loaded (the installer reads no settings: before, `cost-tags
/// --config F install` went through the settings file and failed with exit 2 when it was
/// broken). Every refusal is exit 1 with an ERROR line, and leaves the root empty.
#[test]
fn the_installer_s_command_line_is_parsed_like_every_command() {
    let root = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(crate::bin("cost-tags"))
            .args(args)
            .env("COST_TAGS_ROOT", root.path())
            .env_remove("COST_TAGS_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("run cost-tags")
    };
    let out = ok(run(&["install", "---role", "-login"]));
    assert!(out.contains("cost-tags install: login node done"), "{out}");
    let out = ok(run(&["uninstall", "---role=login"]));
    assert!(
        out.contains("cost-tags uninstall: login node: nothing to uninstall"),
        "{out}"
    );
    let broken = root.path().join("broken.toml");
    fs::write(&broken, "this is = not [toml\n").unwrap();
    let joined = format!("--config={}", broken.display());
    for config in [vec!["--config", broken.to_str().unwrap()], vec![joined.as_str()]] {
        let args: Vec<&str> = config.into_iter().chain(["install", "---role", "-login"]).collect();
        fails(run(&args), "the installer reads no settings file");
    }
    let wrong = fails(run(&["install", "--role", "HeadNode"]), "");
    assert!(
        wrong.contains("cost-tags install: ERROR: --role must be head, compute or login, got 'HeadNode'"),
        "{wrong}"
    );
    fails(
        run(&["uninstall", "---tagging", "-both"]),
        "--tagging must be node or controller, got 'both'",
    );
    fails(run(&["install", "--bogus"]), "unknown argument '--bogus' (see --help)");
    fails(
        run(&["install", "---role", "login"]),
        "argument 'login' lacks its leading '-'",
    );
    let help = ok(run(&["install", "--help"]));
    assert!(help.contains("--role <ROLE>") && help.contains("login: "), "{help}");
    let entries: Vec<_> = fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "broken.toml")
        .collect();
    assert!(entries.is_empty(), "the refusals changed the root: {entries:?}");
}
