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
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BINS: [&str; 3] = ["project-check", "cost-prolog", "cost-epilog"];

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

fn write(path: &Path, content: &str, mode: u32) {
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
fn make_release(parent: &Path) -> PathBuf {
    let rel = parent.join("cost-tags-x86_64");
    for b in BINS {
        write(
            &rel.join("bin").join(b),
            &format!("#!/bin/sh\nexec '{}' \"$@\"\n", support::bin(b).display()),
            0o755,
        );
    }
    for f in [
        "job_submit.lua",
        "90_cost-tags-prolog",
        "90_cost-tags-epilog",
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

// ---------------------------------------------------------------------------------------
// Running the script

fn run_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(script())
        .args(args)
        .env("COST_TAGS_ROOT", root)
        .env_remove("SLURM_CONF")
        .envs(env.iter().copied())
        .current_dir(root)
        .stdin(Stdio::null());
    c.output().expect("run cost-tags.sh")
}

fn run(root: &Path, args: &[&str]) -> Output {
    run_env(root, args, &[])
}

fn text(out: &Output) -> String {
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

#[test]
fn head_node_pc39_installs_idempotently_and_uninstalls_exactly() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    let before = snapshot(root);
    let rel = release.to_str().unwrap();

    let out = ok(run(root, &["--release", rel, "--extra-tags", "partition,account"]));
    assert!(out.contains("not running scontrol reconfigure"), "{out}");
    assert!(out.contains("lists no projects yet"), "{out}");
    let after = snapshot(root);

    let etc = root.join("opt/slurm/etc");
    // Binaries: the release's, 0755; Slurm's own untouched.
    for b in BINS {
        let p = root.join("opt/slurm/bin").join(b);
        assert_eq!(
            fs::read(&p).unwrap(),
            fs::read(release.join("bin").join(b)).unwrap(),
            "{b}"
        );
        assert_eq!(mode(&p), 0o755, "{b}");
    }
    // Hooks in prolog.d/epilog.d, next to ParallelCluster's, pointing under the root.
    for (d, h) in [("prolog.d", "90_cost-tags-prolog"), ("epilog.d", "90_cost-tags-epilog")] {
        let p = etc.join("scripts").join(d).join(h);
        assert_eq!(read(&p), rooted(root, &release, &format!("scripts/slurm/{h}")));
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
        rooted(root, &release, "scripts/slurm/job_submit.lua")
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
    let check = Command::new(support::bin("project-check"))
        .args([
            "--config",
            etc.join("cost-tags.toml").to_str().unwrap(),
            "--list",
            "nobody",
        ])
        .output()
        .unwrap();
    assert!(check.status.success(), "installed settings unusable: {}", text(&check));
    let check = Command::new(support::bin("project-check"))
        .env("COST_TAGS_CONFIG", etc.join("cost-tags.toml"))
        .args(["ctnobody", "ProjectA"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    // Exactly these paths changed.
    let mut changed = diff(&before, &after);
    changed.retain(|l| !l.contains("opt/slurm/etc/cost-tags/"));
    changed.sort();
    let mut want: Vec<String> = [
        "+ opt/slurm/bin/cost-epilog",
        "+ opt/slurm/bin/cost-prolog",
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
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.sort();
    assert_eq!(changed, want);
    assert!(etc.join("cost-tags/manifest").is_file());

    // Second run: nothing changes, not even the manifest.
    let out = ok(run(root, &["--release", rel, "--extra-tags", "partition,account"]));
    assert!(out.contains("already installed: nothing changed"), "{out}");
    assert_same(&after, &snapshot(root), "second install");

    // Uninstall: the tree is as before the install, byte for byte.
    let out = ok(run(root, &["--uninstall"]));
    assert!(out.contains("restored"), "{out}");
    assert_same(&before, &snapshot(root), "uninstall");
    // And once more: nothing to do.
    let out = ok(run(root, &["--uninstall"]));
    assert!(out.contains("nothing installed"), "{out}");
    assert_same(&before, &snapshot(root), "second uninstall");
}

#[test]
fn head_node_without_prolog_d_gets_prolog_lines_in_its_own_include() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let root_dir = tempdir("ct-old-");
    let root = root_dir.path();
    head_old(root);
    let before = snapshot(root);
    let rel = release.to_str().unwrap();

    ok(run(
        root,
        &["--release", rel, "--project-source", "account", "--strict"],
    ));
    let after = snapshot(root);
    let etc = root.join("opt/slurm/etc");
    let hooks = etc.join("scripts/cost-tags");
    for h in ["90_cost-tags-prolog", "90_cost-tags-epilog"] {
        assert_eq!(
            read(&hooks.join(h)),
            rooted(root, &release, &format!("scripts/slurm/{h}"))
        );
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

    ok(run(
        root,
        &["--release", rel, "--project-source", "account", "--strict"],
    ));
    assert_same(&after, &snapshot(root), "second install");
    ok(run(root, &["--uninstall"]));
    assert_same(&before, &snapshot(root), "uninstall");
}

#[test]
fn an_existing_prolog_is_never_replaced() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let root_dir = tempdir("ct-old-");
    let root = root_dir.path();
    head_old(root);
    write(
        &root.join("opt/slurm/etc/slurm_parallelcluster.conf"),
        "SlurmctldHost=h\nProlog=/opt/slurm/etc/pcluster/prolog\nPrologFlags=alloc,serial\n",
        0o644,
    );
    let before = snapshot(root);
    let out = fails(
        run(root, &["--release", release.to_str().unwrap()]),
        "already sets Prolog=/opt/slurm/etc/pcluster/prolog",
    );
    assert!(out.contains("Nothing was changed"), "{out}");
    assert_same(&before, &snapshot(root), "refused install");
}

#[test]
fn flags_already_present_are_left_alone_in_any_case_and_spelling() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    let etc = root.join("opt/slurm/etc");
    let conf = PC39_SLURM_CONF.replace(
        "JobSubmitPlugins=require_timelimit",
        "jobsubmitplugins = job_submit/lua",
    );
    write(&etc.join("slurm.conf"), &conf, 0o644);
    write(
        &etc.join("pcluster/custom_slurm_settings_include_file_slurm.conf"),
        "PrologFlags=\"alloc,Contain\"\nAccountingStoreFlags=JOB_COMMENT\n",
        0o644,
    );
    ok(run(root, &["--release", release.to_str().unwrap()]));
    assert_eq!(read(&etc.join("slurm.conf")), conf + "include cost-tags_slurm.conf\n");
    assert_eq!(
        read(&etc.join("pcluster/custom_slurm_settings_include_file_slurm.conf")),
        "PrologFlags=\"alloc,Contain\"\nAccountingStoreFlags=JOB_COMMENT\n"
    );
    assert!(settings_lines(&read(&etc.join("cost-tags_slurm.conf"))).is_empty());
}

#[test]
fn compute_node_creates_its_state_dir_and_checks_the_binaries() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let root_dir = tempdir("ct-compute-");
    let root = root_dir.path();
    compute(root, &release, "ComputeFleet");
    let before = snapshot(root);

    // The same Args as on the head node: --release is not needed here and is ignored.
    let out = ok(run(
        root,
        &["--release", "s3://bucket/cost-tags.tar.gz", "--sha256", &"a".repeat(64)],
    ));
    assert!(out.contains("run here"), "{out}");
    let after = snapshot(root);
    assert_eq!(diff(&before, &after), vec!["+ var/spool/cost-tags".to_string()]);
    assert_eq!(after[Path::new("var/spool/cost-tags")], Entry::Dir(0o755));

    ok(run(root, &[]));
    assert_same(&after, &snapshot(root), "second run");
    ok(run(root, &["--uninstall"]));
    assert_same(&before, &snapshot(root), "uninstall");
}

#[test]
fn compute_node_without_the_head_nodes_install_fails_clearly() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let root_dir = tempdir("ct-compute-");
    let root = root_dir.path();
    compute(root, &release, "ComputeFleet");
    fs::remove_file(root.join("opt/slurm/bin/cost-epilog")).unwrap();
    let before = snapshot(root);
    fails(run(root, &[]), "run this script on the head node first");
    assert_same(&before, &snapshot(root), "failed check");

    // A binary that does not run here (e.g. built against a newer glibc).
    write(
        &root.join("opt/slurm/bin/cost-epilog"),
        "#!/bin/sh\necho 'GLIBC_2.36 not found' >&2\nexit 1\n",
        0o755,
    );
    let before = snapshot(root);
    fails(run(root, &[]), "does not run on this node");
    assert_same(&before, &snapshot(root), "failed check");
}

#[test]
fn login_node_only_checks() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let root_dir = tempdir("ct-login-");
    let root = root_dir.path();
    compute(root, &release, "LoginNode");
    let before = snapshot(root);
    let out = ok(run(root, &["--release", release.to_str().unwrap()]));
    assert!(out.contains("login node done"), "{out}");
    assert_same(&before, &snapshot(root), "login node");
    ok(run(root, &["--uninstall"]));
    assert_same(&before, &snapshot(root), "login node uninstall");
}

#[test]
fn tarball_with_sha256_installs_and_a_wrong_sha256_changes_nothing() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let tarball = make_tarball(&release);
    let good = sha256(&tarball);
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    let before = snapshot(root);
    let tb = tarball.to_str().unwrap();

    let bad = format!("{}{}", if good.starts_with('0') { "1" } else { "0" }, &good[1..]);
    let out = fails(run(root, &["--release", tb, "--sha256", &bad]), "sha256 mismatch");
    assert!(out.contains(&good) && out.contains(&bad), "{out}");
    assert_same(&before, &snapshot(root), "bad checksum");

    fails(
        run(root, &["--release", tb, "--sha256", "1234"]),
        "64 hexadecimal digits",
    );
    fails(
        run(root, &["--release", release.to_str().unwrap(), "--sha256", &good]),
        "is a directory",
    );
    assert_same(&before, &snapshot(root), "bad arguments");

    // Upper-case hex is fine; the tarball's top-level directory is found.
    let out = ok(run(root, &["--release", tb, "--sha256", &good.to_uppercase()]));
    assert!(out.contains("checksum verified"), "{out}");
    for b in BINS {
        assert_eq!(
            fs::read(root.join("opt/slurm/bin").join(b)).unwrap(),
            fs::read(release.join("bin").join(b)).unwrap()
        );
    }
    // The same release from a directory is the same install.
    let after = snapshot(root);
    ok(run(root, &["--release", release.to_str().unwrap()]));
    assert_same(&after, &snapshot(root), "directory after tarball");
}

#[test]
fn bad_releases_fail_before_anything_changes() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    let before = snapshot(root);

    fails(run(root, &[]), "--release is required on the head node");
    fails(
        run(root, &["--release", "/nonexistent/release"]),
        "no such file or directory",
    );
    fails(
        run(root, &["--release", "ftp://example.com/x.tar.gz"]),
        "unsupported scheme",
    );
    let junk = work.path().join("junk.tar.gz");
    fs::write(&junk, b"not a tarball").unwrap();
    fails(
        run(root, &["--release", junk.to_str().unwrap()]),
        "cannot unpack the release",
    );
    fs::remove_file(release.join("scripts/slurm/job_submit.lua")).unwrap();
    fails(
        run(root, &["--release", release.to_str().unwrap()]),
        "lacks: scripts/slurm/job_submit.lua",
    );
    fails(run(root, &["--project-source", "email"]), "--project-source must be");
    fails(
        run(root, &["--extra-tags", "partition,jobname"]),
        "unknown tag 'jobname'",
    );
    fails(run(root, &["--bogus"]), "unknown argument '--bogus'");
    assert_same(&before, &snapshot(root), "failed runs");
}

#[test]
fn unknown_role_and_missing_cfnconfig_fail() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    let rel = release.to_str().unwrap();
    write(
        &root.join("etc/parallelcluster/cfnconfig"),
        "stack_name=mycluster\ncfn_node_type=MasterServer\n",
        0o644,
    );
    let before = snapshot(root);
    fails(
        run(root, &["--release", rel]),
        "unknown node role cfn_node_type=MasterServer",
    );
    assert_same(&before, &snapshot(root), "unknown role");

    fs::remove_file(root.join("etc/parallelcluster/cfnconfig")).unwrap();
    let before = snapshot(root);
    fails(
        run(root, &["--release", rel]),
        "this is not an AWS ParallelCluster 3 node",
    );
    assert_same(&before, &snapshot(root), "no cfnconfig");

    // /opt/parallelcluster/cfnconfig is read too.
    write(
        &root.join("opt/parallelcluster/cfnconfig"),
        "cfn_node_type=\"LoginNode\"\n",
        0o644,
    );
    fails(run(root, &[]), "not found in");
}

#[test]
fn unwritable_paths_and_a_foreign_job_submit_lua_change_nothing() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let rel = release.to_str().unwrap();

    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    fs::remove_dir_all(root.join("opt/slurm/bin")).unwrap();
    write(&root.join("opt/slurm/bin"), "not a directory\n", 0o644);
    let before = snapshot(root);
    fails(run(root, &["--release", rel]), "is not a directory");
    assert_same(&before, &snapshot(root), "unwritable bin");

    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    write(
        &root.join("opt/slurm/etc/job_submit.lua"),
        "function slurm_job_submit() return 0 end\n",
        0o644,
    );
    let before = snapshot(root);
    fails(run(root, &["--release", rel]), "exists and is not cost-tags'");
    assert_same(&before, &snapshot(root), "foreign job_submit.lua");

    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    fs::remove_file(root.join("opt/slurm/etc/slurm.conf")).unwrap();
    let before = snapshot(root);
    fails(run(root, &["--release", rel]), "no slurm.conf");
    assert_same(&before, &snapshot(root), "no slurm.conf");
}

#[test]
fn multi_runner_prefixed_arguments_work() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let rel = release.to_str().unwrap();

    let plain_dir = tempdir("ct-head-");
    head_pc39(plain_dir.path());
    ok(run(
        plain_dir.path(),
        &["--release", rel, "--extra-tags", "cluster", "--strict"],
    ));

    let mr_dir = tempdir("ct-head-");
    head_pc39(mr_dir.path());
    let dashed = format!("-{rel}");
    ok(run(
        mr_dir.path(),
        &["---release", &dashed, "---extra-tags", "-cluster", "---strict"],
    ));
    let toml = read(&mr_dir.path().join("opt/slurm/etc/cost-tags.toml"));
    assert!(
        toml.contains("cluster = \"aws-parallelcluster-cluster\"") && toml.contains("strict = true"),
        "{toml}"
    );
    // The same install as with plain arguments (paths differ only by the root).
    let norm = |root: &Path| -> BTreeMap<PathBuf, Entry> {
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
    };
    assert_same(&norm(plain_dir.path()), &norm(mr_dir.path()), "multi-runner vs plain");
    // --option=value works too, in both forms.
    let eq_dir = tempdir("ct-head-");
    head_pc39(eq_dir.path());
    ok(run(
        eq_dir.path(),
        &[&format!("---release={rel}"), "---extra-tags=cluster", "---strict"],
    ));
    assert_same(&norm(plain_dir.path()), &norm(eq_dir.path()), "--option=value");

    // Uninstall in multi-runner form.
    ok(run(mr_dir.path(), &["---uninstall"]));
    let fresh = tempdir("ct-head-");
    head_pc39(fresh.path());
    assert_same(&norm(fresh.path()), &norm(mr_dir.path()), "multi-runner uninstall");

    // A list that starts in multi-runner form must stay in it.
    let out = fails(run(mr_dir.path(), &["---release", rel]), "lacks its leading '-'");
    assert!(out.contains("multi-runner form"), "{out}");
    // Help in both forms.
    for args in [&["--help"][..], &["---help"][..], &["-h"][..]] {
        let out = ok(run(mr_dir.path(), args));
        assert!(
            out.contains("Usage: cost-tags.sh") && out.contains("Multi-runner form"),
            "{out}"
        );
    }
}

#[test]
fn admin_edits_survive_uninstall_and_are_never_overwritten() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let rel = release.to_str().unwrap();
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    let etc = root.join("opt/slurm/etc");
    // An older project-check installed by hand: replaced, and restored by the uninstall.
    write(
        &root.join("opt/slurm/bin/project-check"),
        "#!/bin/sh\necho old\n",
        0o750,
    );
    let before = snapshot(root);

    ok(run(root, &["--release", rel]));
    let projects = "ctalice = ProjectA\n";
    fs::write(etc.join("projects_list.conf"), projects).unwrap();
    // A new run leaves the edited file alone, and the toml too (options apply to a new one).
    let toml = read(&etc.join("cost-tags.toml"));
    fs::write(
        etc.join("cost-tags.toml"),
        toml.replace("deadline = 10", "deadline = 7"),
    )
    .unwrap();
    let out = ok(run(root, &["--release", rel, "--strict"]));
    assert!(out.contains("apply to a new cost-tags.toml only"), "{out}");
    assert_eq!(read(&etc.join("projects_list.conf")), projects);
    assert!(read(&etc.join("cost-tags.toml")).contains("strict = false"));
    // The site changes slurm.conf after the install (ParallelCluster or an admin).
    let mut conf = read(&etc.join("slurm.conf"));
    conf.push_str("SlurmctldDebug=debug\n");
    fs::write(etc.join("slurm.conf"), &conf).unwrap();

    let out = ok(run(root, &["--uninstall"]));
    assert!(
        out.contains(&format!(
            "kept {}: it was changed since the install",
            etc.join("projects_list.conf").display()
        )),
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
    let now = snapshot(root);
    let mut leftover: Vec<_> = diff(&expected, &now);
    leftover.retain(|l| !l.starts_with("+ opt/slurm/etc/cost-tags"));
    assert!(leftover.is_empty(), "{}", leftover.join("\n"));
    assert!(out.contains("its original is kept in"), "{out}");
    assert_eq!(read(&root.join("opt/slurm/bin/project-check")), "#!/bin/sh\necho old\n");
    assert_eq!(mode(&root.join("opt/slurm/bin/project-check")), 0o750);
}

#[test]
fn parallelcluster_rewriting_a_file_between_runs_is_followed() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let rel = release.to_str().unwrap();
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    let etc = root.join("opt/slurm/etc");
    ok(run(root, &["--release", rel]));
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
    let updated = snapshot(root);

    // OnNodeUpdated runs the script again: it puts its settings back...
    let out = ok(run(root, &["--release", rel]));
    assert!(out.contains("changed since the last run"), "{out}");
    assert_eq!(
        read(&etc.join("pcluster/custom_slurm_settings_include_file_slurm.conf")),
        "PrologFlags=Contain,Alloc\nMaxJobCount=20000\n"
    );
    assert!(read(&etc.join("slurm.conf")).ends_with("MinJobAge=600\ninclude cost-tags_slurm.conf\n"));
    // ...and an uninstall now returns to the regenerated files, not the first ones.
    ok(run(root, &["--uninstall"]));
    let now = snapshot(root);
    let mut d = diff(&updated, &now);
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
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let rel = release.to_str().unwrap();
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    let calls = work.path().join("scontrol.calls");
    // A stand-in scontrol in /opt/slurm/bin (where ParallelCluster has the real one).
    write(
        &root.join("opt/slurm/bin/scontrol"),
        &format!(
            "#!/bin/sh\necho \"$* SLURM_CONF=$SLURM_CONF\" >> '{}'\n[ \"$1\" = reconfigure ] && exit \"${{FAKE_RC:-0}}\"\nexit \"${{FAKE_PING_RC:-0}}\"\n",
            calls.display()
        ),
        0o755,
    );
    let conf = root.join("opt/slurm/etc/slurm.conf");
    let calls_text = || fs::read_to_string(&calls).unwrap_or_default();

    let out = ok(run(root, &["--release", rel, "--reconfigure"]));
    assert!(out.contains("scontrol reconfigure: done"), "{out}");
    assert_eq!(calls_text(), format!("reconfigure SLURM_CONF={}\n", conf.display()));
    // Nothing changed: no reconfigure.
    ok(run(root, &["--release", rel, "--reconfigure"]));
    assert_eq!(calls_text().lines().count(), 1);
    // slurmctld down (cluster creation before it starts): a warning, not a failure.
    ok(run(root, &["--uninstall", "--no-reconfigure"]));
    assert_eq!(calls_text().lines().count(), 1);
    let out = ok(run_env(
        root,
        &["--release", rel, "--reconfigure"],
        &[("FAKE_RC", "1"), ("FAKE_PING_RC", "1")],
    ));
    assert!(out.contains("slurmctld is not reachable"), "{out}");
    // slurmctld up but refusing the configuration: a failure.
    ok(run(root, &["--uninstall"]));
    fails(
        run_env(
            root,
            &["--release", rel, "--reconfigure"],
            &[("FAKE_RC", "1"), ("FAKE_PING_RC", "0")],
        ),
        "scontrol reconfigure failed",
    );
}

/// Serves `body` once per connection on 127.0.0.1 (enough for curl).
fn serve(body: Vec<u8>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let (status, payload) = if req.starts_with("GET /cost-tags.tar.gz ") {
                ("200 OK", body.clone())
            } else {
                ("404 Not Found", b"no".to_vec())
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len()
            );
            let _ = s.write_all(&payload);
        }
    });
    port
}

#[test]
fn release_downloaded_over_http_is_verified() {
    if !support::on_path("curl") {
        support::require("curl", false);
        return;
    }
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let tarball = make_tarball(&release);
    let port = serve(fs::read(&tarball).unwrap());
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    let before = snapshot(root);
    let env = [("NO_PROXY", "127.0.0.1"), ("no_proxy", "127.0.0.1")];
    let url = format!("http://127.0.0.1:{port}/cost-tags.tar.gz");

    fails(
        run_env(
            root,
            &["--release", &format!("http://127.0.0.1:{port}/missing.tar.gz")],
            &env,
        ),
        "cannot download",
    );
    fails(
        run_env(root, &["--release", &url, "--sha256", &"0".repeat(64)], &env),
        "sha256 mismatch",
    );
    assert_same(&before, &snapshot(root), "failed downloads");
    ok(run_env(root, &["--release", &url, "--sha256", &sha256(&tarball)], &env));
    assert!(root.join("opt/slurm/etc/job_submit.lua").is_file());
}

#[test]
fn release_downloaded_from_s3() {
    // The AWS CLI is on ParallelCluster's AMIs, not among this repository's test
    // dependencies: without it this test only says so (the next one always runs).
    if !support::on_path("aws") {
        eprintln!("\n!!!!!! SKIPPING: the AWS CLI (aws) is not installed; s3:// tested with a stand-in only !!!!!!\n");
        return;
    }
    let Some(moto) = support::moto::MotoServer::start() else {
        return;
    };
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let tarball = make_tarball(&release);
    let env_owned = support::moto::env_for(&moto.endpoint());
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let aws = |args: &[&str]| {
        let out = Command::new("aws")
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "aws {args:?}: {}", text(&out));
    };
    aws(&["s3api", "create-bucket", "--bucket", "ct-releases"]);
    aws(&[
        "s3",
        "cp",
        tarball.to_str().unwrap(),
        "s3://ct-releases/v1/cost-tags-x86_64.tar.gz",
    ]);

    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    let before = snapshot(root);
    fails(
        run_env(root, &["--release", "s3://ct-releases/v1/nope.tar.gz"], &env),
        "cannot download s3://ct-releases/v1/nope.tar.gz",
    );
    assert_same(&before, &snapshot(root), "failed download");
    let out = ok(run_env(
        root,
        &[
            "---release",
            "-s3://ct-releases/v1/cost-tags-x86_64.tar.gz",
            "---sha256",
            &format!("-{}", sha256(&tarball)),
        ],
        &env,
    ));
    assert!(out.contains("checksum verified"), "{out}");
    assert!(root.join("opt/slurm/bin/cost-prolog").is_file());
}

/// `s3://` goes through `aws s3 cp --only-show-errors SRC DEST`: a stand-in `aws` on PATH
/// serves a local directory as the bucket and records the calls.
#[test]
fn release_from_s3_uses_aws_s3_cp() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let tarball = make_tarball(&release);
    let bucket = work.path().join("bucket");
    fs::create_dir_all(bucket.join("rel")).unwrap();
    fs::copy(&tarball, bucket.join("rel/cost-tags.tar.gz")).unwrap();
    let bin = work.path().join("fake-bin");
    let calls = work.path().join("aws.calls");
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
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let env = [("PATH", path.as_str())];
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    let before = snapshot(root);

    let out = fails(
        run_env(root, &["--release", "s3://my-bucket/rel/missing.tar.gz"], &env),
        "cannot download s3://my-bucket/rel/missing.tar.gz",
    );
    assert!(out.contains("s3:GetObject"), "{out}");
    assert_same(&before, &snapshot(root), "failed download");
    let out = ok(run_env(
        root,
        &[
            "--release",
            "s3://my-bucket/rel/cost-tags.tar.gz",
            "--sha256",
            &sha256(&tarball),
        ],
        &env,
    ));
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
    for b in BINS {
        assert_eq!(
            fs::read(root.join("opt/slurm/bin").join(b)).unwrap(),
            fs::read(release.join("bin").join(b)).unwrap()
        );
    }
}

#[test]
fn script_is_shellcheck_clean() {
    if !support::on_path("shellcheck") {
        eprintln!("\n!!!!!! SKIPPING: shellcheck is not installed (apt-get install shellcheck) !!!!!!\n");
        return;
    }
    let out = Command::new("shellcheck").arg(script()).output().unwrap();
    assert!(out.status.success(), "shellcheck:\n{}", text(&out));
}

// ---------------------------------------------------------------------------------------
// Periodic jobs: `cost-tags reconcile` on compute nodes, `cost-tags budget refresh` on the
// head node with --budgets. systemd counts as present under COST_TAGS_ROOT when
// <root>/run/systemd/system exists; else cron when <root>/etc/cron.d exists. A stand-in
// `systemctl` first on PATH proves the script never runs it under COST_TAGS_ROOT.

/// A `systemctl` that records its calls; returns (calls file, PATH to run the script with).
fn fake_systemctl(work: &Path) -> (PathBuf, String) {
    let bin = work.join("fake-systemctl");
    let calls = work.join("systemctl.calls");
    write(
        &bin.join("systemctl"),
        &format!("#!/bin/sh\necho \"$*\" >> '{}'\nexit 0\n", calls.display()),
        0o755,
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    (calls, path)
}

/// A stand-in `cost-tags` in the node's /opt/slurm/bin that answers --version and records
/// every other call with the FOO and PATH it got; returns the calls file.
fn fake_cost_tags(root: &Path, work: &Path) -> PathBuf {
    let calls = work.join("cost-tags.calls");
    write(
        &root.join("opt/slurm/bin/cost-tags"),
        &format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'cost-tags 9.9.9'; exit 0; }}\n\
             echo \"$* FOO=$FOO PATH=$PATH\" >> '{}'\n",
            calls.display()
        ),
        0o755,
    );
    // The AWS settings file of the Slurm hooks, in the form the hooks source.
    write(
        &root.join("opt/slurm/etc/cost-tags.env"),
        "export FOO='bar baz'\n",
        0o600,
    );
    calls
}

/// Adds `bin/cost-tags` (optional in a release) to a release made by `make_release`.
fn add_cost_tags(release: &Path) {
    write(
        &release.join("bin/cost-tags"),
        &format!("#!/bin/sh\nexec '{}' \"$@\"\n", support::bin("cost-tags").display()),
        0o755,
    );
}

/// The value of the first `KEY=` line of a unit or cron file.
fn unit_value(text: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key}= in:\n{text}"))
        .to_string()
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

#[test]
fn compute_node_schedules_reconcile_with_a_systemd_timer() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let root_dir = tempdir("ct-compute-");
    let root = root_dir.path();
    compute(root, &release, "ComputeFleet");
    let calls = fake_cost_tags(root, work.path());
    fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    let (systemctl_calls, path) = fake_systemctl(work.path());
    let env = [("PATH", path.as_str())];
    let before = snapshot(root);

    let out = ok(run_env(root, &[], &env));
    assert!(
        out.contains("cost-tags reconcile scheduled every 5 minutes (systemd)"),
        "{out}"
    );
    assert!(
        out.contains("COST_TAGS_ROOT is set: not running systemctl (a real node runs 'systemctl enable --now cost-tags-reconcile.timer')"),
        "{out}"
    );
    let after = snapshot(root);
    assert_eq!(
        sorted(diff(&before, &after)),
        vec![
            "+ etc/systemd/system/cost-tags-reconcile.service",
            "+ etc/systemd/system/cost-tags-reconcile.timer",
            "+ var/spool/cost-tags",
        ]
    );
    let units = root.join("etc/systemd/system");
    let service = read(&units.join("cost-tags-reconcile.service"));
    let timer = read(&units.join("cost-tags-reconcile.timer"));
    for (f, t) in [("service", &service), ("timer", &timer)] {
        assert!(t.starts_with("# cost-tags.sh: "), "{f}:\n{t}");
        assert_eq!(mode(&units.join(format!("cost-tags-reconcile.{f}"))), 0o644);
    }
    let r = root.display();
    assert_eq!(unit_value(&service, "Type"), "oneshot");
    assert_eq!(
        unit_value(&service, "ExecStart"),
        format!(
            "/bin/sh -c '[ -r {r}/opt/slurm/etc/cost-tags.env ] && . {r}/opt/slurm/etc/cost-tags.env; \
             exec {r}/opt/slurm/bin/cost-tags reconcile'"
        )
    );
    assert!(!service.contains("User="), "runs as root:\n{service}");
    assert_eq!(unit_value(&timer, "OnBootSec"), "1min");
    assert_eq!(unit_value(&timer, "OnUnitActiveSec"), "5min");
    assert_eq!(unit_value(&timer, "RandomizedDelaySec"), "60");
    assert_eq!(unit_value(&timer, "WantedBy"), "timers.target");

    // What systemd would run: it reads cost-tags.env as the hooks do (export lines) and
    // finds Slurm's commands on PATH.
    let exec = unit_value(&service, "ExecStart");
    let inner = exec
        .strip_prefix("/bin/sh -c '")
        .and_then(|s| s.strip_suffix('\''))
        .unwrap();
    let unit_path = unit_value(&service, "Environment").replacen("PATH=", "", 1);
    assert!(unit_path.starts_with(&format!("{r}/opt/slurm/bin:")), "{unit_path}");
    let st = Command::new("/bin/sh")
        .args(["-c", inner])
        .env_clear()
        .env("PATH", &unit_path)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(read(&calls), format!("reconcile FOO=bar baz PATH={unit_path}\n"));

    // Second run: byte-identical.
    let out = ok(run_env(root, &[], &env));
    assert!(!out.contains("installed"), "{out}");
    assert_same(&after, &snapshot(root), "second run");

    // Uninstall removes exactly these files.
    let out = ok(run_env(root, &["--uninstall"], &env));
    assert!(
        out.contains(&format!(
            "removed {}",
            units.join("cost-tags-reconcile.timer").display()
        )),
        "{out}"
    );
    assert_same(&before, &snapshot(root), "uninstall");
    assert!(
        !systemctl_calls.exists(),
        "systemctl ran under COST_TAGS_ROOT: {}",
        read(&systemctl_calls)
    );
}

#[test]
fn compute_node_without_systemd_schedules_reconcile_from_cron_d() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let root_dir = tempdir("ct-compute-");
    let root = root_dir.path();
    compute(root, &release, "ComputeFleet");
    let calls = fake_cost_tags(root, work.path());
    fs::create_dir_all(root.join("etc/cron.d")).unwrap();
    let (systemctl_calls, path) = fake_systemctl(work.path());
    let env = [("PATH", path.as_str())];
    let before = snapshot(root);

    let out = ok(run_env(root, &[], &env));
    assert!(
        out.contains("cost-tags reconcile scheduled every 5 minutes (cron)"),
        "{out}"
    );
    let after = snapshot(root);
    assert_eq!(
        sorted(diff(&before, &after)),
        vec!["+ etc/cron.d/cost-tags", "+ var/spool/cost-tags"]
    );
    let cron_file = root.join("etc/cron.d/cost-tags");
    assert_eq!(mode(&cron_file), 0o644);
    let cron = read(&cron_file);
    assert!(cron.starts_with("# cost-tags.sh: "), "{cron}");
    let r = root.display();
    let run_line = format!(
        "[ -r {r}/opt/slurm/etc/cost-tags.env ] && . {r}/opt/slurm/etc/cost-tags.env; \
         exec {r}/opt/slurm/bin/cost-tags reconcile >/dev/null 2>&1"
    );
    assert_eq!(
        settings_lines(&cron),
        vec![
            "SHELL=/bin/bash".to_string(),
            format!("PATH={r}/opt/slurm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            format!("*/5 * * * * root sleep $((RANDOM \\% 60)); {run_line}"),
            format!("@reboot root sleep 60; {run_line}"),
        ]
    );
    // The command as cron runs it ('\%' becomes '%', SHELL and PATH from the file), with
    // the random sleep cut short.
    let every = settings_lines(&cron)[2].clone();
    let cmd = every.strip_prefix("*/5 * * * * root ").unwrap().replace("\\%", "%");
    let cron_path = unit_value(&cron, "PATH");
    let st = Command::new("/bin/bash")
        .args(["-c", &format!("sleep() {{ :; }}; {cmd}")])
        .env_clear()
        .env("PATH", &cron_path)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(read(&calls), format!("reconcile FOO=bar baz PATH={cron_path}\n"));

    // Second run: no duplicate line, nothing changes.
    ok(run_env(root, &[], &env));
    assert_same(&after, &snapshot(root), "second run");
    ok(run_env(root, &["--uninstall"], &env));
    assert_same(&before, &snapshot(root), "uninstall");

    // The node gains systemd (a new image): the timer replaces the cron file.
    ok(run_env(root, &[], &env));
    fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    let out = ok(run_env(root, &[], &env));
    assert!(out.contains("(this node now uses systemd)"), "{out}");
    assert!(!cron_file.exists());
    assert!(root.join("etc/systemd/system/cost-tags-reconcile.timer").is_file());
    ok(run_env(root, &["--uninstall"], &env));
    assert!(!root.join("etc/systemd/system/cost-tags-reconcile.timer").exists());
    assert!(!root.join("etc/systemd/system/cost-tags-reconcile.service").exists());
    fs::remove_dir_all(root.join("run")).unwrap();
    fs::remove_dir_all(root.join("etc/systemd")).unwrap();
    assert_same(&before, &snapshot(root), "uninstall after the switch");
    assert!(!systemctl_calls.exists(), "systemctl ran under COST_TAGS_ROOT");
}

#[test]
fn compute_node_without_cost_tags_in_the_release_schedules_nothing() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let root_dir = tempdir("ct-compute-");
    let root = root_dir.path();
    compute(root, &release, "ComputeFleet");
    fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    fs::create_dir_all(root.join("etc/cron.d")).unwrap();
    let (systemctl_calls, path) = fake_systemctl(work.path());
    let env = [("PATH", path.as_str())];
    let before = snapshot(root);

    let out = ok(run_env(root, &[], &env));
    assert!(
        out.contains(&format!(
            "no {}/opt/slurm/bin/cost-tags (optional in a release): cost-tags reconcile is not scheduled on this node",
            root.display()
        )),
        "{out}"
    );
    assert_eq!(
        diff(&before, &snapshot(root)),
        vec!["+ var/spool/cost-tags".to_string()]
    );

    // A release without cost-tags after one with it: the earlier timer goes.
    fake_cost_tags(root, work.path());
    ok(run_env(root, &[], &env));
    assert!(root.join("etc/systemd/system/cost-tags-reconcile.timer").is_file());
    fs::remove_file(root.join("opt/slurm/bin/cost-tags")).unwrap();
    let out = ok(run_env(root, &[], &env));
    assert!(out.contains("is not scheduled on this node"), "{out}");
    assert!(
        !root.join("etc/systemd/system/cost-tags-reconcile.timer").exists(),
        "{out}"
    );
    assert!(
        !root.join("etc/systemd/system/cost-tags-reconcile.service").exists(),
        "{out}"
    );
    // A file of the same name the script did not write is never removed.
    let foreign = root.join("etc/cron.d/cost-tags");
    write(&foreign, "*/7 * * * * root /usr/local/bin/site-job\n", 0o644);
    let out = ok(run_env(root, &["--uninstall"], &env));
    assert!(out.contains("it was not written by cost-tags.sh"), "{out}");
    assert_eq!(read(&foreign), "*/7 * * * * root /usr/local/bin/site-job\n");
    assert!(!systemctl_calls.exists(), "systemctl ran under COST_TAGS_ROOT");
}

#[test]
fn head_node_budgets_install_the_refresh_timer_and_uninstall_exactly() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    add_cost_tags(&release);
    let rel = release.to_str().unwrap();
    let (systemctl_calls, path) = fake_systemctl(work.path());
    let env = [("PATH", path.as_str())];
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    let before = snapshot(root);

    let out = ok(run_env(root, &["--release", rel, "--budgets"], &env));
    assert!(
        out.contains("cost-tags budget refresh scheduled every 10 minutes (systemd)"),
        "{out}"
    );
    assert!(out.contains("not running systemctl"), "{out}");
    let after = snapshot(root);
    let etc = root.join("opt/slurm/etc");
    // cost-tags.toml: a [budget] table, switched on, that the settings loader accepts.
    let toml = read(&etc.join("cost-tags.toml"));
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
    let check = Command::new(support::bin("project-check"))
        .args([
            "--config",
            etc.join("cost-tags.toml").to_str().unwrap(),
            "--list",
            "nobody",
        ])
        .output()
        .unwrap();
    assert!(check.status.success(), "installed settings unusable: {}", text(&check));
    // The units, as root, recorded in the manifest.
    let units = root.join("etc/systemd/system");
    let service = read(&units.join("cost-tags-budget-refresh.service"));
    let timer = read(&units.join("cost-tags-budget-refresh.timer"));
    let r = root.display();
    assert_eq!(unit_value(&service, "Type"), "oneshot");
    assert_eq!(
        unit_value(&service, "ExecStart"),
        format!(
            "/bin/sh -c '[ -r {r}/opt/slurm/etc/cost-tags.env ] && . {r}/opt/slurm/etc/cost-tags.env; \
             exec {r}/opt/slurm/bin/cost-tags budget refresh'"
        )
    );
    assert!(!service.contains("User="), "runs as root:\n{service}");
    assert_eq!(unit_value(&timer, "OnBootSec"), "2min");
    assert_eq!(unit_value(&timer, "OnUnitActiveSec"), "10min");
    assert_eq!(unit_value(&timer, "RandomizedDelaySec"), "120");
    assert_eq!(unit_value(&timer, "WantedBy"), "timers.target");
    let manifest = read(&etc.join("cost-tags/manifest"));
    for f in ["cost-tags-budget-refresh.service", "cost-tags-budget-refresh.timer"] {
        assert!(
            manifest.contains(&format!("file\t{}", units.join(f).display())),
            "{manifest}"
        );
    }
    let mut changed = diff(&before, &after);
    changed.retain(|l| l.contains("etc/systemd") || l.contains("cron") || l.contains("bin/cost-tags"));
    assert_eq!(
        sorted(changed),
        vec![
            "+ etc/systemd",
            "+ etc/systemd/system",
            "+ etc/systemd/system/cost-tags-budget-refresh.service",
            "+ etc/systemd/system/cost-tags-budget-refresh.timer",
            "+ opt/slurm/bin/cost-tags",
        ]
    );

    let out = ok(run_env(root, &["--release", rel, "--budgets"], &env));
    assert!(out.contains("already installed: nothing changed"), "{out}");
    assert_same(&after, &snapshot(root), "second install");
    ok(run_env(root, &["--uninstall"], &env));
    assert_same(&before, &snapshot(root), "uninstall");

    // The multi-runner form installs the same.
    let mr_dir = tempdir("ct-head-");
    head_pc39(mr_dir.path());
    fs::create_dir_all(mr_dir.path().join("run/systemd/system")).unwrap();
    let mr_before = snapshot(mr_dir.path());
    ok(run_env(
        mr_dir.path(),
        &["---release", &format!("-{rel}"), "---budgets"],
        &env,
    ));
    ok(run_env(root, &["--release", rel, "--budgets"], &env));
    assert_same(&normalized(root), &normalized(mr_dir.path()), "multi-runner vs plain");
    ok(run_env(mr_dir.path(), &["---uninstall"], &env));
    assert_same(&mr_before, &snapshot(mr_dir.path()), "multi-runner uninstall");
    assert!(!systemctl_calls.exists(), "systemctl ran under COST_TAGS_ROOT");
}

#[test]
fn head_node_budgets_fall_back_to_cron_and_follow_the_option() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    add_cost_tags(&release);
    let rel = release.to_str().unwrap();
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    fs::create_dir_all(root.join("etc/cron.d")).unwrap();
    let before = snapshot(root);

    let out = ok(run(root, &["--release", rel, "--budgets"]));
    assert!(
        out.contains("cost-tags budget refresh scheduled every 10 minutes (cron)"),
        "{out}"
    );
    let after = snapshot(root);
    let cron_file = root.join("etc/cron.d/cost-tags-budget");
    assert_eq!(mode(&cron_file), 0o644);
    let cron = read(&cron_file);
    let r = root.display();
    let run_line = format!(
        "[ -r {r}/opt/slurm/etc/cost-tags.env ] && . {r}/opt/slurm/etc/cost-tags.env; \
         exec {r}/opt/slurm/bin/cost-tags budget refresh >/dev/null 2>&1"
    );
    assert_eq!(
        settings_lines(&cron)[2..],
        [
            format!("*/10 * * * * root sleep $((RANDOM \\% 120)); {run_line}"),
            format!("@reboot root sleep 120; {run_line}"),
        ]
    );
    assert!(!root.join("etc/systemd").exists());
    assert!(read(&root.join("opt/slurm/etc/cost-tags.toml")).contains("\n[budget]"));

    ok(run(root, &["--release", rel, "--budgets"]));
    assert_same(&after, &snapshot(root), "second install");

    // Without --budgets the script's own unedited settings and the cron file follow.
    let out = ok(run(root, &["--release", rel]));
    assert!(out.contains(&format!("removed {}", cron_file.display())), "{out}");
    assert!(!cron_file.exists());
    assert!(!read(&root.join("opt/slurm/etc/cost-tags.toml")).contains("[budget]"));
    ok(run(root, &["--uninstall"]));
    assert_same(&before, &snapshot(root), "uninstall");
}

#[test]
fn head_node_without_budgets_installs_no_budget_units() {
    let work = tempdir("ct-ms-");
    let release = make_release(work.path());
    let rel = release.to_str().unwrap();
    let root_dir = tempdir("ct-head-");
    let root = root_dir.path();
    head_pc39(root);
    fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    fs::create_dir_all(root.join("etc/cron.d")).unwrap();
    let before = snapshot(root);

    // --budgets needs cost-tags in the release: refused before anything changes.
    let out = fails(
        run(root, &["--release", rel, "--budgets"]),
        "--budgets needs bin/cost-tags",
    );
    assert!(out.contains("Nothing was changed"), "{out}");
    assert_same(&before, &snapshot(root), "refused --budgets");

    add_cost_tags(&release);
    let out = ok(run(root, &["--release", rel]));
    assert!(!out.contains("budget"), "{out}");
    assert!(!root.join("etc/systemd").exists());
    assert_eq!(fs::read_dir(root.join("etc/cron.d")).unwrap().count(), 0);
    assert!(!read(&root.join("opt/slurm/etc/cost-tags.toml")).contains("[budget]"));
    ok(run(root, &["--uninstall"]));
    assert_same(&before, &snapshot(root), "uninstall");

    // Neither systemd nor cron: --budgets cannot be honoured, and says so.
    fs::remove_dir_all(root.join("run")).unwrap();
    fs::remove_dir_all(root.join("etc/cron.d")).unwrap();
    let before = snapshot(root);
    fails(run(root, &["--release", rel, "--budgets"]), "neither systemd nor cron");
    assert_same(&before, &snapshot(root), "no scheduler");
}
