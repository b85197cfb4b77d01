//! `scripts/multi-runner/cost-tags.sh` end to end on a real, running Slurm: the fixture
//! cluster starts plain (no job_submit.lua, no prolog, no epilog), the script installs
//! cost-tags into it as on a head node (its slurm.conf directory given with
//! `--slurm-conf-dir`, everything else under a private `COST_TAGS_ROOT`) and runs
//! `scontrol reconfigure`; without any restart, submissions are then checked and jobs tag
//! their node's EC2 instance (moto + the IMDSv2 emulator, wired through `cost-tags.env`
//! as an administrator would point the hooks at a VPC endpoint). The uninstall puts
//! slurm.conf back byte for byte and, after another reconfigure, jobs run unchecked again.
//!
//! Established here with Slurm 22.05: `scontrol reconfigure` is enough for all of it.
//! slurmctld loads the job_submit/lua plugin and reads PrologFlags=Alloc, and slurmd the
//! new Prolog=/Epilog=, from an `include` line added to a running cluster's slurm.conf;
//! removing them again takes effect the same way.

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::managed_script::{make_release, text, write};
use support::imds::Imds;
use support::local_cluster::PROJECTS;
use support::moto::{env_for, MotoServer};
use support::slurm::{ensure_test_users, parse_job_id, SlurmCluster, SlurmOptions};

const P: &str = "aws-parallelcluster-project";
const U: &str = "aws-parallelcluster-username";
const J: &str = "aws-parallelcluster-jobid";
const WAIT: Duration = Duration::from_secs(30);

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs the script with `args` plus `--slurm-conf-dir DIR --reconfigure` (in multi-runner
/// form when `args` are).
fn run_script(root: &Path, conf_dir: &Path, args: &[&str]) -> String {
    let dash = if args.first().is_some_and(|a| a.starts_with("---")) {
        "-"
    } else {
        ""
    };
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/multi-runner/cost-tags.sh"))
        .args(args)
        .arg(format!("{dash}--slurm-conf-dir"))
        .arg(format!("{dash}{}", conf_dir.display()))
        .arg(format!("{dash}--reconfigure"))
        .env("COST_TAGS_ROOT", root)
        .env_remove("SLURM_CONF")
        .stdin(Stdio::null())
        .output()
        .expect("run cost-tags.sh");
    let t = text(&out);
    assert!(out.status.success(), "cost-tags.sh {args:?} failed:\n{t}");
    t
}

fn sbatch(slurm: &SlurmCluster, user: &str, args: &[&str]) -> Result<u32, String> {
    let mut all = vec!["-o", "/dev/null"];
    all.extend_from_slice(args);
    let out = slurm.run_as(user, "sbatch", &all);
    if out.status.success() {
        Ok(parse_job_id(&out.stdout).expect("job id"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn cost_tags(moto: &MotoServer, instance: &str) -> BTreeMap<String, String> {
    moto.tags(instance)
        .into_iter()
        .filter(|(k, _)| k.starts_with("aws-parallelcluster-"))
        .collect()
}

fn wait_for_tags(moto: &MotoServer, instance: &str, want: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let until = Instant::now() + WAIT;
    loop {
        let got = cost_tags(moto, instance);
        if &got == want || Instant::now() > until {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tag_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn show_config(slurm: &SlurmCluster, key: &str) -> String {
    let out = slurm.run_root("scontrol", &["show", "config"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .map(|l| l.split_once('=').map(|x| x.1).unwrap_or("").trim().to_string())
        .unwrap_or_default()
}

#[test]
fn managed_script_installs_into_a_running_slurm_and_uninstalls() {
    if !support::require("Slurm (slurm-wlm + munge) as root", support::slurm::available()) {
        return;
    }
    let Some(moto) = MotoServer::start() else { return };
    ensure_test_users();
    let instance = moto.run_instances(1).remove(0);
    let imds = Imds::start(&instance, "us-east-1");

    // The head node's private root: cfnconfig, and the AWS wiring for the hooks.
    let root_dir = tempfile::Builder::new().prefix("ct-e2e-root-").tempdir().unwrap();
    let root = root_dir.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    write(
        &root.join("etc/parallelcluster/cfnconfig"),
        "stack_name=e2e\ncfn_region=us-east-1\ncfn_node_type=HeadNode\n",
        0o644,
    );
    let etc = root.join("opt/slurm/etc");
    let settings = etc.join("cost-tags.toml");
    let mut env = env_for(&moto.endpoint());
    env.extend(imds.env());
    env.push(("COST_TAGS_CONFIG".into(), settings.display().to_string()));
    let env_file: String = env
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect();
    write(&etc.join("cost-tags.env"), &env_file, 0o600);
    let work = tempfile::tempdir().unwrap();
    let release = make_release(work.path());

    // A plain cluster; slurmctld's environment names the settings the install will write
    // (project-check's default /opt/slurm/etc/cost-tags.toml is not under our root).
    let Some(slurm) = SlurmCluster::start(SlurmOptions {
        daemon_env: vec![("COST_TAGS_CONFIG".into(), settings.display().to_string())],
        ..SlurmOptions::default()
    }) else {
        return;
    };
    let conf_before = fs::read(slurm.conf_path()).unwrap();
    let free = sbatch(&slurm, "ctalice", &["--wrap", "true"]).expect("plain cluster accepts any job");
    slurm.wait_job_state(free, &["COMPLETED"], WAIT);

    // Install, as the head node's OnNodeConfigured would (multi-runner form, for good measure).
    let out = run_script(
        root,
        slurm.conf_dir(),
        &["---release", &format!("-{}", release.display())],
    );
    assert!(out.contains("scontrol reconfigure: done"), "{out}");
    assert!(out.contains("hooks: fallback layout"), "{out}");
    let include = slurm.conf_dir().join("cost-tags_slurm.conf");
    let ours = fs::read_to_string(&include).unwrap();
    for line in ["JobSubmitPlugins=lua", "PrologFlags=Alloc", "Prolog=", "Epilog="] {
        assert!(ours.contains(line), "{line} missing from {ours}");
    }
    assert!(slurm.conf_dir().join("job_submit.lua").is_file());
    // slurmctld took the settings without a restart.
    assert_eq!(show_config(&slurm, "JobSubmitPlugins"), "lua", "{}", slurm.log_tails());
    assert!(
        show_config(&slurm, "PrologFlags").contains("Alloc"),
        "{}",
        slurm.log_tails()
    );
    assert!(show_config(&slurm, "Prolog").ends_with("/90_cost-tags-prolog"));

    // The default projects list lists nobody: every job is refused (fail closed).
    let err = sbatch(&slurm, "ctalice", &["--comment", "ProjectA", "--wrap", "true"]).unwrap_err();
    assert!(err.contains("You are not allowed to use the project ProjectA"), "{err}");

    // The administrator fills it in.
    fs::write(etc.join("projects_list.conf"), PROJECTS).unwrap();
    let err = sbatch(&slurm, "ctalice", &["--wrap", "true"]).unwrap_err();
    assert!(
        err.contains("You need to specify a project. \"--comment ProjectName\""),
        "{err}"
    );
    let err = sbatch(&slurm, "ctbob", &["--comment", "ProjectA", "--wrap", "true"]).unwrap_err();
    assert!(err.contains("You are not allowed to use the project ProjectA"), "{err}");

    // A batch job tags the node while it runs, and untags it when it ends.
    let a = sbatch(&slurm, "ctalice", &["--comment", "ProjectA", "--wrap", "sleep 60"]).unwrap();
    slurm.wait_job_state(a, &["RUNNING"], WAIT);
    let want = tag_map(&[(P, "ProjectA"), (U, "ctalice"), (J, &a.to_string())]);
    assert_eq!(wait_for_tags(&moto, &instance, &want), want, "{}", slurm.log_tails());
    slurm.run_root("scancel", &[a.to_string()]);
    assert_eq!(wait_for_tags(&moto, &instance, &tag_map(&[])), tag_map(&[]));

    // An allocation without any step is tagged too: slurmd runs the prolog at allocation,
    // so PrologFlags=Alloc reached slurmd as well.
    let out = slurm.run_as("ctbob", "salloc", &["--no-shell", "-n1", "--comment", "ProjectB"]);
    assert!(out.status.success(), "salloc: {}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let b: u32 = err
        .split_whitespace()
        .skip_while(|w| *w != "allocation")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no job id in salloc output: {err}"));
    let want = tag_map(&[(P, "ProjectB"), (U, "ctbob"), (J, &b.to_string())]);
    assert_eq!(wait_for_tags(&moto, &instance, &want), want, "{}", slurm.log_tails());
    slurm.run_root("scancel", &[b.to_string()]);
    assert_eq!(wait_for_tags(&moto, &instance, &tag_map(&[])), tag_map(&[]));
    assert!(!slurm.node_is_drained(), "node drained: {}", slurm.node_reason());
    assert!(slurm.cancel_all_and_wait());

    // Running the install again changes nothing and does not reconfigure.
    let out = run_script(root, slurm.conf_dir(), &["--release", release.to_str().unwrap()]);
    assert!(out.contains("already installed: nothing changed"), "{out}");
    assert!(!out.contains("scontrol reconfigure: done"), "{out}");

    // Uninstall: slurm.conf byte for byte as before; jobs are no longer checked.
    let out = run_script(root, slurm.conf_dir(), &["--uninstall"]);
    assert!(out.contains("scontrol reconfigure: done"), "{out}");
    assert!(out.contains("kept") && out.contains("projects_list.conf"), "{out}");
    assert_eq!(fs::read(slurm.conf_path()).unwrap(), conf_before);
    assert!(!include.exists() && !slurm.conf_dir().join("job_submit.lua").exists());
    assert!(!etc.join("cost-tags").exists() && !root.join("opt/slurm/bin").exists());
    assert_eq!(show_config(&slurm, "JobSubmitPlugins"), "(null)");
    let c = sbatch(&slurm, "ctcarol", &["--wrap", "sleep 2"]).expect("no filter after the uninstall");
    assert_eq!(slurm.wait_job_state(c, &["COMPLETED", "FAILED"], WAIT), "COMPLETED");
    assert_eq!(cost_tags(&moto, &instance), tag_map(&[]));
    assert!(!slurm.node_is_drained(), "node drained: {}", slurm.node_reason());
}
