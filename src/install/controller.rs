//! Controller mode on the head node (`cost-tags install --tagging controller`): the
//! convergence as a service, and the slurmctld hooks that wake it.
//!
//! - With systemd: `cost-tags-converge.service` runs `cost-tags reconcile --cluster
//!   --follow` (Restart=always), and `PrologSlurmctld`/`EpilogSlurmctld` in cost-tags'
//!   own slurm.conf include run scripts/slurm/cost-tags-wake, which touches the wake file
//!   (it always exits 0: a failing PrologSlurmctld requeues the job). A key the site
//!   already sets, anywhere in slurm.conf or its includes, is never replaced: the service
//!   then polls (`[tagging] poll_seconds`), and the installer says so.
//! - Without systemd: a cron.d file runs one pass a minute, each given up after 50 s (and
//!   passes take a lock, so they never overlap); no hook, since nothing would be woken.
//!
//! Every file goes through `Session::put_file` and the manifest, as the other files of
//! the head node; switching back to node mode (or `--uninstall`) stops the service and
//! removes exactly these files, and the include is rewritten without the hook lines.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::periodic::{self, Init, InitSystem, JOB_MARK};
use super::slurm_conf::Scan;
use super::Session;
use crate::config::Settings;
use crate::node::env_file::PATH_ENV as ENV_FILE_VAR;

/// The systemd unit (without `.service`) and the cron.d file.
pub(crate) const SERVICE: &str = "cost-tags-converge";
/// The hook script, in the release's scripts/slurm and in the hook directory.
pub(crate) const WAKE_HOOK: &str = "cost-tags-wake";
/// The wake file as the release's hook names it; the installer writes the real one.
const WAKE_IN_RELEASE: &str = "/run/cost-tags/wake";
/// See [`periodic`]: neither systemd nor cron gives sbin.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What controller mode installs on this head node, decided before anything changes.
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    pub init: Init,
    pub service: PathBuf,
    pub cron: PathBuf,
    pub hook: PathBuf,
    /// The hook script, its wake file written in.
    pub hook_text: Vec<u8>,
    /// Lines for cost-tags' slurm.conf include.
    pub conf_lines: Vec<String>,
    /// Slurm keys the site already sets (key, file, line), left as they are.
    pub site_keys: Vec<(String, PathBuf, usize)>,
    pub slurm_user: String,
}

/// Where controller mode's files go, whatever the mode (removing them needs them too).
pub(crate) fn paths(s: &Session) -> (PathBuf, PathBuf, PathBuf) {
    let p = &s.paths;
    (
        p.unit_dir.join(format!("{SERVICE}.service")),
        p.cron_dir.join(SERVICE),
        p.bin_dir.join(WAKE_HOOK),
    )
}

/// Checks and stages controller mode: the hook from `release`, the wake file from the
/// settings in effect, the keys the site sets.
pub(crate) fn stage(s: &mut Session, release: &Path, scan: &Scan, init: InitSystem) -> Result<Staged> {
    let p = s.paths.clone();
    if init.init == Init::None {
        bail!(
            "--tagging controller: neither systemd nor cron ({}) on this node to run the convergence. Nothing was changed.",
            p.cron_dir.display()
        );
    }
    let (service, cron, hook) = paths(s);
    // The settings in effect after this run: an existing file is kept unless it is the
    // one cost-tags wrote, and that one has the installer's cache_dir.
    let cache_dir = fs::read_to_string(&p.settings)
        .ok()
        .and_then(|t| Settings::parse(&t, &p.settings).ok())
        .map_or_else(|| p.cache_dir.clone(), |st| st.cache_dir);
    let wake = cache_dir.join("wake");
    let wake = wake.to_string_lossy();
    if !plain_path(&wake) {
        bail!("--tagging controller: the wake file {wake} (cache_dir of the settings) must be an absolute path of letters, digits, '.', '_', '-' and '/'. Nothing was changed.");
    }
    let source = release.join("scripts/slurm").join(WAKE_HOOK);
    let text =
        fs::read_to_string(&source).map_err(|e| anyhow::anyhow!("the release lacks scripts/slurm/{WAKE_HOOK}: {e}"))?;
    if !text.contains(WAKE_IN_RELEASE) {
        bail!("the release's scripts/slurm/{WAKE_HOOK} does not name {WAKE_IN_RELEASE}");
    }
    let hook_text = text.replace(WAKE_IN_RELEASE, &wake).into_bytes();
    let slurm_user = scan.slurm_user();
    if !slurm_user
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        bail!("--tagging controller: SlurmUser={slurm_user} is not a plain user name. Nothing was changed.");
    }
    let (mut conf_lines, mut site_keys) = (Vec::new(), Vec::new());
    if init.init == Init::Systemd {
        for key in ["PrologSlurmctld", "EpilogSlurmctld"] {
            match scan.get(key) {
                Some(at) => site_keys.push((key.to_string(), at.file.clone(), at.line)),
                None => conf_lines.push(format!("{key}={}", hook.display())),
            }
        }
        super::files::check_dir_writable(&p.unit_dir)?;
        s.target(&service)?;
        s.target(&hook)?;
    } else {
        super::files::check_dir_writable(&p.cron_dir)?;
        s.target(&cron)?;
    }
    Ok(Staged {
        init: init.init,
        service,
        cron,
        hook,
        hook_text,
        conf_lines,
        site_keys,
        slurm_user,
    })
}

/// Absolute, and nothing a shell or a unit file would read as more than a path.
fn plain_path(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
}

/// The service: started at boot, restarted whatever ends it. SIGTERM goes to cost-tags
/// alone (KillMode=mixed), which ends between passes; an squeue it started finishes.
pub(crate) fn service_text(etc_dir: &Path, bin_dir: &Path, slurm_user: &str) -> String {
    let bin = format!("{}/cost-tags", bin_dir.display());
    let env = format!("{}/cost-tags.env", etc_dir.display());
    let path = format!("{}:{SYSTEM_PATH}", bin_dir.display());
    format!(
        "{JOB_MARK}runs `cost-tags reconcile --cluster --follow` (controller mode). Written by the\n\
         # ParallelCluster custom action cost-tags.sh (its --uninstall removes it); a new run overwrites it.\n\
         # Each pass costs slurmctld one scontrol show nodes and two squeue, plus one squeue per\n\
         # tag call; passes start when PrologSlurmctld/EpilogSlurmctld wake it, else every\n\
         # [tagging] poll_seconds (30 by default), at most one a second.\n\
         [Unit]\n\
         Description=cost-tags: converge every instance's cost tags to Slurm's jobs\n\
         Wants=network-online.target\n\
         After=network-online.target remote-fs.target slurmctld.service\n\
         ConditionFileIsExecutable={bin}\n\
         \n\
         [Service]\n\
         Type=simple\n\
         Environment=PATH={path}\n\
         # cost-tags reads this file itself, as the Slurm hooks do (never a shell).\n\
         Environment={ENV_FILE_VAR}={env}\n\
         # The wake file goes to {slurm_user}, who runs PrologSlurmctld. Messages go to syslog.\n\
         ExecStart={bin} reconcile --cluster --follow --wake-user {slurm_user}\n\
         Restart=always\n\
         RestartSec=10\n\
         KillMode=mixed\n\
         TimeoutStopSec=60\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The cron fallback: one pass a minute, given up after 50 s.
pub(crate) fn cron_text(etc_dir: &Path, bin_dir: &Path) -> String {
    let bin = format!("{}/cost-tags", bin_dir.display());
    let env = format!("{}/cost-tags.env", etc_dir.display());
    let path = format!("{}:{SYSTEM_PATH}", bin_dir.display());
    format!(
        "{JOB_MARK}runs `cost-tags reconcile --cluster` every minute (controller mode; no systemd\n\
         # on this node). Written by the ParallelCluster custom action cost-tags.sh (its --uninstall\n\
         # removes it); a new run overwrites it. Messages go to syslog.\n\
         SHELL=/bin/sh\n\
         PATH={path}\n\
         {ENV_FILE_VAR}={env}\n\
         * * * * * root exec {bin} reconcile --cluster --give-up-after 50 >/dev/null 2>&1\n"
    )
}

/// Writes controller mode's files (`staged` Some) or removes those an earlier run wrote
/// (None: node mode), the service stopped before its unit goes. A unit (re)written is
/// added to `units_written`, so that [`activate`] restarts it.
pub(crate) fn apply(s: &mut Session, staged: Option<&Staged>) -> Result<()> {
    let p = s.paths.clone();
    let (service, cron, hook) = paths(s);
    let Some(st) = staged else {
        return remove(s);
    };
    if st.init == Init::Systemd {
        s.ensure_dir(&p.unit_dir, 0o755, true)?;
        let before = s.out.changes();
        s.put_file(
            service_text(&p.etc_dir, &p.bin_dir, &st.slurm_user).as_bytes(),
            &service,
            0o644,
        )?;
        if s.out.changes() != before {
            s.units_written.push(service.clone());
        }
        s.put_file(&st.hook_text, &hook, 0o755)?;
        return s.drop_recorded(&cron);
    }
    s.ensure_dir(&p.cron_dir, 0o755, true)?;
    s.put_file(cron_text(&p.etc_dir, &p.bin_dir).as_bytes(), &cron, 0o644)?;
    if s.recorded(&service) {
        stop(s);
        s.drop_recorded(&service)?;
        s.timer_forget();
    }
    s.drop_recorded(&hook)
}

/// Removes every file of controller mode an earlier run wrote, the service stopped first.
pub(crate) fn remove(s: &mut Session) -> Result<()> {
    let (service, cron, hook) = paths(s);
    if s.recorded(&service) {
        stop(s);
        s.drop_recorded(&service)?;
        s.timer_forget();
    }
    s.drop_recorded(&cron)?;
    s.drop_recorded(&hook)
}

/// Stops and disables the service (before its unit goes, or at the uninstall).
pub(crate) fn stop(s: &mut Session) {
    let unit = format!("{SERVICE}.service");
    if s.paths.root.is_some() {
        s.out.log(format!(
            "COST_TAGS_ROOT is set: not running systemctl (a real node runs 'systemctl disable --now {unit}')"
        ));
        return;
    }
    if !periodic::detect(None, &s.paths.cron_dir).live {
        return;
    }
    match periodic::systemctl(&["disable", "--now", &unit]) {
        Ok(()) => s.out.log(format!("{unit}: stopped and disabled")),
        Err(e) => s.out.warn(e),
    }
}

/// After the files are written: the service runs (restarted when its unit changed), and
/// the administrator is told how the convergence is woken.
pub(crate) fn activate(s: &mut Session, st: &Staged, init: InitSystem, poll_s: u64) -> Result<()> {
    let unit = format!("{SERVICE}.service");
    let unit_changed = s.units_written.contains(&st.service);
    if st.init == Init::Cron {
        s.out.log(format!(
            "controller mode: cost-tags reconcile --cluster runs every minute from {} (cron; no systemd)",
            st.cron.display()
        ));
        return Ok(());
    }
    if s.paths.root.is_some() {
        s.out.log(format!(
            "COST_TAGS_ROOT is set: not running systemctl (a real node runs 'systemctl enable --now {unit}')"
        ));
    } else if init.live {
        if unit_changed {
            periodic::systemctl(&["daemon-reload"]).map_err(anyhow::Error::msg)?;
            periodic::systemctl(&["enable", &unit]).map_err(anyhow::Error::msg)?;
            periodic::systemctl(&["restart", &unit]).map_err(anyhow::Error::msg)?;
            s.out.log(format!("{unit}: enabled and (re)started"));
        } else if !periodic::timer_running(&unit) {
            periodic::systemctl(&["enable", "--now", &unit]).map_err(anyhow::Error::msg)?;
            s.out.changed(format!("{unit}: enabled and started"));
        }
    }
    let mut woken: Vec<&str> = Vec::new();
    for line in &st.conf_lines {
        woken.push(line.split('=').next().unwrap_or_default());
    }
    s.out.log(format!(
        "controller mode: cost-tags reconcile --cluster --follow runs as {unit}, {}",
        if woken.is_empty() {
            format!("polling every {poll_s} s")
        } else {
            format!("woken by {} and polling every {poll_s} s", woken.join(" and "))
        }
    ));
    for (key, file, line) in &st.site_keys {
        s.out.warn(format!(
            "{key} is already set ({}, line {line}): not replaced; the convergence polls every {poll_s} s instead. \
             To wake it at once, call {} from that script (it always exits 0)",
            file.display(),
            st.hook.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_restarts_always_and_stops_cost_tags_alone() {
        let t = service_text(Path::new("/opt/slurm/etc"), Path::new("/opt/slurm/bin"), "slurm");
        assert!(t.starts_with(JOB_MARK));
        for line in [
            "\nExecStart=/opt/slurm/bin/cost-tags reconcile --cluster --follow --wake-user slurm\n",
            "\nRestart=always\n",
            "\nKillMode=mixed\n",
            "\nType=simple\n",
            "\nEnvironment=COST_TAGS_ENV_FILE=/opt/slurm/etc/cost-tags.env\n",
            "\nWantedBy=multi-user.target\n",
        ] {
            assert!(t.contains(line), "{line}: {t}");
        }
        let c = cron_text(Path::new("/opt/slurm/etc"), Path::new("/opt/slurm/bin"));
        assert!(c.starts_with(JOB_MARK));
        assert!(c.contains(
            "\n* * * * * root exec /opt/slurm/bin/cost-tags reconcile --cluster --give-up-after 50 >/dev/null 2>&1\n"
        ));
    }

    #[test]
    fn only_plain_paths_go_into_the_hook() {
        assert!(plain_path("/run/cost-tags/wake"));
        for bad in ["run/x", "/a b", "/a'b", "/a;b", "/a\nb", "/$(x)"] {
            assert!(!plain_path(bad), "{bad}");
        }
    }
}
