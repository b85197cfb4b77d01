//! Compute nodes: the state directory of the node hooks, and `cost-tags reconcile` every
//! 5 minutes. The binaries and hooks themselves come from the head node over NFS
//! (/opt/slurm), so a compute node keeps no manifest: the mark on the first line of each
//! job file is how its uninstall knows them.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use anyhow::{Context, Result};

use super::files::{check_dir_writable, mode_of, same_file, write_atomic};
use super::periodic::{self, is_ours, Init, Job};
use super::{Options, Session};

pub(crate) fn install(s: &mut Session, options: &Options) -> Result<()> {
    let head_only = [
        (options.release.is_some(), "--release"),
        (options.budgets, "--budgets"),
        (!options.prices, "--no-prices"),
        (options.metrics_dir.is_some(), "--metrics"),
    ];
    for (given, option) in head_only {
        if given {
            s.out
                .log(format!("compute node: {option} is used on the head node only"));
        }
    }
    let p = &s.paths;
    if !p.prolog_d.join("90_cost-tags-prolog").is_file() && !p.hook_dir.join("90_cost-tags-prolog").is_file() {
        let dir = p.scripts_dir.display().to_string();
        s.out.warn(format!(
            "no cost-tags prolog hook under {dir}: jobs on this node will not be tagged"
        ));
    }
    let state = s.paths.state_dir.clone();
    if state.is_dir() {
        if mode_of(&state) != Some(0o755) {
            fs::set_permissions(&state, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot chmod {}", state.display()))?;
            s.out.changed(format!("{}: mode 0755", state.display()));
        }
    } else {
        check_dir_writable(&state)?;
        fs::create_dir_all(&state).with_context(|| format!("cannot create {}", state.display()))?;
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755))?;
        if nix::unistd::geteuid().is_root() {
            let _ = std::os::unix::fs::chown(&state, Some(0), Some(0));
        }
        s.out.changed(format!("created {}", state.display()));
    }
    schedule_reconcile(s)?;
    s.out.log("compute node done");
    Ok(())
}

pub(crate) fn uninstall(s: &mut Session) -> Result<()> {
    for dir in [s.paths.state_dir.clone(), s.paths.cache_dir.clone()] {
        if dir.is_dir() {
            fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
            s.out
                .log(format!("removed {} (the node's job ledger and cache)", dir.display()));
        }
    }
    remove_reconcile(s)?;
    s.out.log("compute node uninstalled");
    Ok(())
}

/// `cost-tags reconcile` from a systemd timer, else from cron; a file of the same name
/// the installer did not write is left alone (and nothing is scheduled).
fn schedule_reconcile(s: &mut Session) -> Result<()> {
    let job = Job::Reconcile;
    let init = periodic::detect(s.paths.root.as_deref(), &s.paths.cron_dir);
    let paths = job.paths(&s.paths.unit_dir, &s.paths.cron_dir);
    let files = job.files(&s.paths.etc_dir, &s.paths.bin_dir);
    let (want, other) = match init.init {
        Init::None => {
            let bin = s.paths.bin_dir.join("cost-tags");
            s.out.warn(format!(
                "neither systemd nor cron ({}) on this node: cost-tags reconcile is not scheduled; run '{} reconcile' every few minutes from your own scheduler",
                s.paths.cron_dir.display(),
                bin.display()
            ));
            return Ok(());
        }
        Init::Systemd => (
            vec![
                (paths.service.clone(), files.service),
                (paths.timer.clone(), files.timer),
            ],
            vec![paths.cron.clone()],
        ),
        Init::Cron => (
            vec![(paths.cron.clone(), files.cron)],
            vec![paths.service.clone(), paths.timer.clone()],
        ),
    };
    // A link is written through to its target, as on the head node (files::target).
    let want = want
        .into_iter()
        .map(|(path, text)| Ok((s.target(&path)?, text)))
        .collect::<Result<Vec<_>>>()?;
    for (path, _) in &want {
        if fs::symlink_metadata(path).is_ok() && !is_ours(path) {
            s.out.warn(format!(
                "{} exists and was not written by cost-tags.sh: left as it is, cost-tags reconcile is not scheduled by this script",
                path.display()
            ));
            return Ok(());
        }
    }
    let dir = want[0].0.parent().map(|d| d.to_path_buf()).unwrap_or_default();
    check_dir_writable(&dir)?;
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut units_changed = false;
    for (path, text) in &want {
        if same_file(text.as_bytes(), path, 0o644) {
            continue;
        }
        let verb = if path.exists() { "updated" } else { "installed" };
        write_atomic(path, text.as_bytes(), 0o644)?;
        s.out.changed(format!("{verb} {}", path.display()));
        units_changed = true;
    }
    for path in other {
        if is_ours(&path) {
            fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            s.out.changed(format!(
                "removed {} (this node now uses {})",
                path.display(),
                init.init.name()
            ));
        }
    }
    s.timer_activate(&job, init, units_changed)?;
    let every = job.spec().every_min;
    s.out.log(format!(
        "cost-tags reconcile scheduled every {every} minutes ({})",
        init.init.name()
    ));
    Ok(())
}

/// Removes the reconcile job's files (those carrying the mark), the timer stopped first.
fn remove_reconcile(s: &mut Session) -> Result<()> {
    let job = Job::Reconcile;
    let paths = job.paths(&s.paths.unit_dir, &s.paths.cron_dir);
    if is_ours(&paths.timer) {
        s.timer_disable(&job);
    }
    let mut gone = false;
    for path in [paths.service, paths.timer, paths.cron] {
        if fs::symlink_metadata(&path).is_err() {
            continue;
        }
        if is_ours(&path) {
            fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            s.out.log(format!("removed {}", path.display()));
            gone = true;
        } else {
            s.out
                .warn(format!("kept {}: it was not written by cost-tags.sh", path.display()));
        }
    }
    if gone {
        s.timer_forget();
    }
    Ok(())
}
