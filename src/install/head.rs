//! The head node: the release into /opt/slurm (shared with every other node over NFS),
//! the hooks, job_submit.lua, Slurm's settings, the settings and projects files, the
//! periodic jobs of the head node, then `scontrol reconfigure`. Everything it adds or
//! changes goes into the manifest; the uninstall removes exactly that and restores what it
//! edited.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::files::{check_dir_writable, copy_exact, mode_of, sha256_file, write_atomic};
use super::manifest::{sha_and_backup, Key, Manifest};
use super::options::Reconfigure;
use super::periodic::{self, Init, InitSystem, Job};
use super::slurm_conf::{self, Includes, Scan};
use super::{controller, journal, Options, Session};
use crate::config::{Settings, TaggingMode};

/// The binaries of a release; all four are needed (cost-tags runs the install itself
/// and the periodic jobs).
pub(crate) const RELEASE_BINS: [&str; 4] = ["project-check", "cost-prolog", "cost-epilog", "cost-tags"];
const PROLOG_HOOK: &str = "90_cost-tags-prolog";
const EPILOG_HOOK: &str = "90_cost-tags-epilog";
const INCLUDE_LINE: &str = "include cost-tags_slurm.conf";

const PROJECTS_TEMPLATE: &str = "\
# cost-tags: who may charge which project (read by project-check, see its --help).
# Until lines are added here EVERY job is refused with \"You are not allowed to use the
# project ...\" (users in exempt_users of cost-tags.toml, root by default, excepted).
#
# alice = ProjectA, ProjectC      # alice may use ProjectA and ProjectC
# alice = ProjectD                # several lines for one user add up
# *=Shared                        # a project everyone may use
# @physics=ProjectP               # members of Unix group physics (LDAP/AD users work)
#
# Names match whole and case-sensitively. Project names: ASCII letters, digits and
# . _ : / @ + -  (1 to 128 characters).
";

/// Where the Slurm hooks go.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hooks {
    /// `dropin` (prolog.d/epilog.d, ParallelCluster 3.6+) or `fallback` (our own
    /// directory with Prolog=/Epilog= lines).
    layout: &'static str,
    prolog: PathBuf,
    epilog: PathBuf,
}

/// A periodic job of the head node and whether this run wants it.
struct HeadJob {
    job: Job,
    on: bool,
}

pub(crate) fn install(s: &mut Session, options: &Options, release: &Path) -> Result<()> {
    let p = s.paths.clone();
    if !p.conf_dir.is_dir() {
        bail!(
            "no Slurm configuration directory {} (is this a ParallelCluster head node with Slurm?)",
            p.conf_dir.display()
        );
    }
    // slurm.conf and every include are edited where their links point (files::target).
    s.paths.slurm_conf = s.target(&p.slurm_conf)?;
    if !s.paths.slurm_conf.is_file() {
        bail!(
            "no slurm.conf in {} (is this a ParallelCluster head node with Slurm?)",
            p.conf_dir.display()
        );
    }
    let _lock = lock(&p.conf_dir)?;
    // Without --tagging the mode stays what the settings in effect say (node when there
    // are none): a rerun of the custom action never switches it by omission.
    let in_effect = fs::read_to_string(&p.settings)
        .ok()
        .and_then(|t| Settings::parse(&t, &p.settings).ok())
        .map(|st| st.tagging.mode);
    let options = &Options {
        tagging: Some(options.tagging.or(in_effect).unwrap_or_default()),
        ..options.clone()
    };
    let source = options.release.clone().unwrap_or_else(|| release.display().to_string());
    check_release(release, &source)?;
    s.manifest = Manifest::load(&p.manifest)?;
    let scan = scan(s)?;
    let scan = edited_where_linked(s, scan)?;
    let hooks = hooks(s, &scan)?;

    // Stage every file and check for conflicts before changing anything.
    let rooted = |name: &str| -> Result<Vec<u8>> {
        let text = fs::read_to_string(release.join("scripts/slurm").join(name))
            .with_context(|| format!("cannot read {name} of the release"))?;
        Ok(match &p.root {
            Some(r) => text.replace("/opt/slurm/", &format!("{}/opt/slurm/", r.display())),
            None => text,
        }
        .into_bytes())
    };
    let prolog = rooted(PROLOG_HOOK)?;
    let epilog = rooted(EPILOG_HOOK)?;
    let lua = rooted("job_submit.lua")?;
    let settings = settings_file(options, s)?;
    let init = periodic::detect(p.root.as_deref(), &p.cron_dir);
    let jobs = head_jobs(s, options, init)?;
    let controller = match options.tagging.unwrap_or_default() {
        TaggingMode::Controller => Some(controller::stage(s, release, &scan, init)?),
        TaggingMode::Node => None,
    };
    check_lua(s, &lua)?;
    for d in [&p.bin_dir, &p.etc_dir, &p.conf_dir, &p.manifest_dir] {
        check_dir_writable(d)?;
    }
    for f in [&hooks.prolog, &hooks.epilog] {
        check_dir_writable(f.parent().unwrap_or(Path::new("/")))?;
    }
    for b in RELEASE_BINS {
        s.target(&p.bin_dir.join(b))?;
    }
    for f in [
        &hooks.prolog,
        &hooks.epilog,
        &p.lua,
        &p.our_conf,
        &p.settings,
        &p.projects,
        &p.manifest,
    ] {
        s.target(f)?;
    }

    // Apply. A failure from here on leaves the manifest saying what was done.
    let staged = Staged {
        release,
        hooks: &hooks,
        prolog,
        epilog,
        lua,
        settings,
        scan: &scan,
        jobs: &jobs,
        init,
        controller: controller.as_ref(),
    };
    if let Err(e) = apply(s, options, &staged) {
        return match s.save_manifest() {
            Ok(()) => Err(anyhow!(
                "{e:#}\nthe changes made so far are recorded in {} (--uninstall removes them)",
                p.manifest.display()
            )),
            Err(_) => Err(e),
        };
    }
    for head_job in jobs.iter().filter(|j| j.on) {
        let units_changed = head_job_changed(s, &head_job.job);
        s.timer_activate(&head_job.job, init, units_changed)?;
        let init_name = init.init.name();
        let spec = head_job.job.spec();
        let scheduled = match &head_job.job {
            Job::Budget => format!(
                "cost-tags budget refresh scheduled every {} minutes ({init_name})",
                spec.every_min
            ),
            Job::Prices => format!("cost-tags prices refresh scheduled daily ({init_name})"),
            Job::Metrics { output } => format!(
                "cost-tags metrics writes {} every {} minutes ({init_name})",
                output.display(),
                spec.every_min
            ),
            // Compute nodes' job, never among the head node's.
            Job::Reconcile => continue,
        };
        s.out.log(scheduled);
    }
    if let Some(st) = &controller {
        let poll = fs::read_to_string(&p.settings)
            .ok()
            .and_then(|t| Settings::parse(&t, &p.settings).ok())
            .unwrap_or_default()
            .tagging
            .poll_seconds;
        controller::activate(s, st, init, poll)?;
    }
    if s.out.changes() == 0 {
        s.out.log("already installed: nothing changed");
    } else {
        reconfigure(s, options)?;
    }
    let projects = fs::read_to_string(&p.projects).unwrap_or_default();
    if projects
        .lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#'))
    {
        s.out.warn(format!(
            "{} lists no projects yet: every job is refused until you add lines such as 'alice = ProjectA'",
            p.projects.display()
        ));
    }
    s.out.log(format!(
        "head node done (hooks: {} layout; manifest: {})",
        hooks.layout,
        p.manifest.display()
    ));
    Ok(())
}

/// Whether the units of `job` were (re)written in this run: the timer must then be
/// restarted. Known from the unit files' records, which the apply step updated.
fn head_job_changed(s: &Session, job: &Job) -> bool {
    let paths = job.paths(&s.paths.unit_dir, &s.paths.cron_dir);
    s.units_written.iter().any(|p| *p == paths.service || *p == paths.timer)
}

struct Staged<'a> {
    release: &'a Path,
    hooks: &'a Hooks,
    prolog: Vec<u8>,
    epilog: Vec<u8>,
    lua: Vec<u8>,
    settings: Vec<u8>,
    scan: &'a Scan,
    jobs: &'a [HeadJob],
    init: InitSystem,
    /// Controller mode's files, or None (node mode: an earlier run's are removed).
    controller: Option<&'a controller::Staged>,
}

fn apply(s: &mut Session, options: &Options, staged: &Staged) -> Result<()> {
    let p = s.paths.clone();
    refresh_edited(s)?;
    s.ensure_dir(&p.bin_dir, 0o755, true)?;
    for b in RELEASE_BINS {
        let content = fs::read(staged.release.join("bin").join(b)).with_context(|| format!("cannot read bin/{b}"))?;
        s.put_file(&content, &p.bin_dir.join(b), 0o755)?;
    }
    if !s.put_once(&staged.settings, &p.settings, 0o644)? {
        s.out.log(format!("{} exists: left as it is", p.settings.display()));
        if options.project_source.is_some() || options.extra_tags.is_some() || options.strict {
            s.out.warn(format!(
                "--project-source/--extra-tags/--strict apply to a new cost-tags.toml only: edit {} to change them",
                p.settings.display()
            ));
        }
        let in_effect = fs::read_to_string(&p.settings)
            .ok()
            .and_then(|t| Settings::parse(&t, &p.settings).ok());
        let enabled = in_effect.as_ref().is_some_and(|st| st.budget.enabled);
        let mode = in_effect.as_ref().map(|st| st.tagging.mode).unwrap_or_default();
        let wanted = options.tagging.unwrap_or_default();
        if mode != wanted {
            let name = |m: TaggingMode| match m {
                TaggingMode::Node => "node",
                TaggingMode::Controller => "controller",
            };
            s.out.warn(format!(
                "--tagging {}: {} is not the one cost-tags wrote and says mode = \"{}\": set '[tagging]' 'mode = \"{}\"' in it, or compute nodes and the head node disagree on who tags",
                name(wanted),
                p.settings.display(),
                name(mode),
                name(wanted)
            ));
        }
        if options.budgets && !enabled {
            s.out.warn(format!(
                "--budgets: {} does not enable budgets and is not the one cost-tags wrote: add '[budget]' with 'enabled = true' to it",
                p.settings.display()
            ));
        }
    }
    if !s.put_once(PROJECTS_TEMPLATE.as_bytes(), &p.projects, 0o644)? {
        s.out.log(format!("{} exists: left as it is", p.projects.display()));
    }
    let in_effect = fs::read_to_string(&p.settings)
        .ok()
        .and_then(|t| Settings::parse(&t, &p.settings).ok());
    if let Some(settings) = &in_effect {
        journal::ensure(s, settings, &staged.scan.slurm_user())?;
    }
    for (content, dest) in [
        (&staged.prolog, &staged.hooks.prolog),
        (&staged.epilog, &staged.hooks.epilog),
    ] {
        s.ensure_dir(dest.parent().unwrap_or(Path::new("/")), 0o755, true)?;
        s.put_file(content, dest, 0o755)?;
    }
    s.put_file(&staged.lua, &p.lua, 0o644)?;
    controller::apply(s, staged.controller)?;
    slurm_settings(s, staged)?;
    let metrics_output = staged.jobs.iter().find_map(|j| match &j.job {
        Job::Metrics { output } if j.on => Some(output.clone()),
        _ => None,
    });
    metrics_output_forget(s, metrics_output.as_deref())?;
    for head_job in staged.jobs {
        apply_job(s, head_job, staged.init)?;
    }
    finish_edited(s)?;
    s.save_manifest()
}

/// Slurm settings: keys that exist are extended where they are, the others go into our
/// own file, included from slurm.conf by one line.
fn slurm_settings(s: &mut Session, staged: &Staged) -> Result<()> {
    let p = s.paths.clone();
    let scan = staged.scan;
    let mut wanted = vec![("JobSubmitPlugins", "lua"), ("PrologFlags", "Alloc")];
    if scan
        .get("accountingstoragetype")
        .is_some_and(|o| o.value.to_ascii_lowercase().contains("slurmdbd"))
    {
        wanted.push(("AccountingStoreFlags", "job_comment"));
    }
    let mut ours = Vec::new();
    for (key, item) in wanted {
        let Some(at) = scan.get(key) else {
            ours.push(format!("{key}={item}"));
            continue;
        };
        if slurm_conf::has_item(&at.value, item) {
            continue;
        }
        edit_begin(s, &at.file)?;
        let text = read_text(&at.file)?;
        write_conf(&at.file, &slurm_conf::add_item(&text, at.line, item))?;
        s.manifest.set(
            Key::Merge {
                file: at.file.clone(),
                key: key.to_string(),
                item: item.to_string(),
            },
            String::new(),
        );
        let sep = if at.value.is_empty() { "" } else { "," };
        s.out.changed(format!(
            "{}: {key}={}{sep}{item} (line {})",
            at.file.display(),
            at.value,
            at.line
        ));
    }
    if staged.hooks.layout == "fallback" {
        if scan.get("prolog").is_none() {
            ours.push(format!("Prolog={}", staged.hooks.prolog.display()));
        }
        if scan.get("epilog").is_none() {
            ours.push(format!("Epilog={}", staged.hooks.epilog.display()));
        }
    }
    if let Some(c) = staged.controller {
        ours.extend(c.conf_lines.iter().cloned());
    }
    // The header cost-tags.sh 1.x wrote, kept word for word: an upgrade then finds the
    // file unchanged and has no reason to reconfigure slurmctld.
    let mut text = String::from(
        "# cost-tags: Slurm settings added by cost-tags.sh, included from slurm.conf.\n\
         # Settings that already existed elsewhere were extended where they are; only those\n\
         # found nowhere are here. cost-tags.sh --uninstall removes this file and its include.\n",
    );
    for line in ours {
        text.push_str(&line);
        text.push('\n');
    }
    s.put_file(text.as_bytes(), &p.our_conf, 0o644)?;
    if !scan.ours_included {
        edit_begin(s, &p.slurm_conf)?;
        let text = read_text(&p.slurm_conf)?;
        write_conf(&p.slurm_conf, &slurm_conf::append_line(&text, INCLUDE_LINE))?;
        s.manifest.set(
            Key::Line {
                file: p.slurm_conf.clone(),
                line: INCLUDE_LINE.to_string(),
            },
            String::new(),
        );
        s.out
            .changed(format!("{}: added '{INCLUDE_LINE}'", p.slurm_conf.display()));
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Rewrites a configuration file, keeping its mode and owner.
fn write_conf(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, text.as_bytes(), mode_of(path).unwrap_or(0o644))
}

/// Before the first edit of a configuration file: its original is saved, once.
fn edit_begin(s: &mut Session, file: &Path) -> Result<()> {
    let key = Key::Edited(file.to_path_buf());
    if !s.manifest.has(&key) {
        let backup = s.back_up(file)?;
        s.manifest.set(key, format!("pending\t{backup}"));
    }
    Ok(())
}

/// Edited files someone changed since the last run (ParallelCluster rewrites some on an
/// update): the saved original becomes the current file minus cost-tags' recorded
/// changes, and records whose change is gone are dropped (this run makes them again).
fn refresh_edited(s: &mut Session) -> Result<()> {
    for key in s.manifest.keys() {
        let Key::Edited(file) = &key else { continue };
        let value = s.manifest.get(&key).unwrap_or_default().to_string();
        let (sha, backup) = sha_and_backup(&value);
        if !file.is_file() {
            s.out.warn(format!(
                "{} (edited by an earlier run) is gone; forgetting its edits",
                file.display()
            ));
            s.manifest.remove(&key);
            for (change_key, _) in s.manifest.changes_to(file) {
                s.manifest.remove(&change_key);
            }
            continue;
        }
        if sha256_file(file).ok().as_deref() == Some(sha) {
            continue;
        }
        let changes = s.manifest.changes_to(file);
        let only: Vec<_> = changes.iter().map(|(_, c)| c.clone()).collect();
        let reverted = slurm_conf::revert(&read_text(file)?, &only);
        for i in reverted.gone {
            s.manifest.remove(&changes[i].0);
        }
        let saved = s.paths.backup_dir.join(backup);
        let backup_dir = s.paths.backup_dir.clone();
        s.ensure_dir(&backup_dir, 0o700, false)?;
        copy_exact(file, &saved)?;
        write_conf(&saved, &reverted.text)?;
        s.out.log(format!(
            "{} changed since the last run: its saved original is refreshed",
            file.display()
        ));
        let now = sha256_file(file)?;
        s.manifest.set(key.clone(), format!("{now}\t{backup}"));
    }
    Ok(())
}

/// Every edited file's record gets its final SHA-256 (the uninstall restores the saved
/// original only when the file is still as the install left it).
fn finish_edited(s: &mut Session) -> Result<()> {
    for key in s.manifest.keys() {
        let Key::Edited(file) = &key else { continue };
        if file.is_file() {
            let backup = sha_and_backup(s.manifest.get(&key).unwrap_or_default()).1.to_string();
            s.manifest.set(key.clone(), format!("{}\t{backup}", sha256_file(file)?));
        }
    }
    Ok(())
}

/// The scan with each file named where a write to it goes: an include that is a link
/// is edited at its target, and recorded by that name; one that cannot be is refused
/// here, before anything changes.
fn edited_where_linked(s: &Session, mut scan: Scan) -> Result<Scan> {
    for file in &mut scan.files {
        *file = s.target(file)?;
    }
    for at in scan.keys.values_mut() {
        at.file = s.target(&at.file)?;
    }
    Ok(scan)
}

/// Reads slurm.conf and its includes, warning about includes that are not there.
fn scan(s: &mut Session) -> Result<Scan> {
    let p = &s.paths;
    let includes = Includes {
        conf_dir: &p.conf_dir,
        root: p.root.as_deref(),
        our_conf: &p.our_conf,
    };
    let mut read = |path: &Path| match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    };
    let scan = slurm_conf::scan(&p.slurm_conf, &includes, &mut read)
        .with_context(|| format!("cannot read {} or a file it includes", p.slurm_conf.display()))?;
    for missing in &scan.missing_includes {
        s.out
            .warn(format!("included file {} not found (ignored)", missing.display()));
    }
    Ok(scan)
}

/// prolog.d/epilog.d when this Slurm has them; else our own directory, with Prolog= and
/// Epilog= lines only where none is set (an existing one is never replaced).
fn hooks(s: &mut Session, scan: &Scan) -> Result<Hooks> {
    let p = &s.paths;
    if p.prolog_d.is_dir() && p.epilog_d.is_dir() {
        let set = scan.get("prolog").map(|o| o.value.clone()).unwrap_or_default();
        if !set.contains("/prolog.d/") {
            s.out.warn(format!(
                "Prolog= does not point into {} (it is '{set}'): the hook there will not run",
                p.prolog_d.display()
            ));
        }
        return Ok(Hooks {
            layout: "dropin",
            prolog: p.prolog_d.join(PROLOG_HOOK),
            epilog: p.epilog_d.join(EPILOG_HOOK),
        });
    }
    let hooks = Hooks {
        layout: "fallback",
        prolog: p.hook_dir.join(PROLOG_HOOK),
        epilog: p.hook_dir.join(EPILOG_HOOK),
    };
    for (key, name, want) in [("prolog", "Prolog", &hooks.prolog), ("epilog", "Epilog", &hooks.epilog)] {
        if let Some(at) = scan.get(key) {
            if Path::new(&at.value) != want.as_path() {
                bail!(
                    "this Slurm has no {} and already sets {name}={} ({}, line {}); cost-tags will not replace it. \
                     Call {} from that script (or use prolog.d/epilog.d with Prolog={}/*), then run this again. Nothing was changed.",
                    p.prolog_d.display(),
                    at.value,
                    at.file.display(),
                    at.line,
                    want.display(),
                    p.prolog_d.display()
                );
            }
        }
    }
    Ok(hooks)
}

/// The release holds what the install copies.
fn check_release(dir: &Path, source: &str) -> Result<()> {
    let mut lacking = Vec::new();
    for b in RELEASE_BINS {
        if !dir.join("bin").join(b).is_file() {
            lacking.push(format!("bin/{b}"));
        }
    }
    for f in ["job_submit.lua", PROLOG_HOOK, EPILOG_HOOK] {
        if !dir.join("scripts/slurm").join(f).is_file() {
            lacking.push(format!("scripts/slurm/{f}"));
        }
    }
    if !lacking.is_empty() {
        bail!("the release {source} lacks: {}", lacking.join(" "));
    }
    Ok(())
}

/// The settings file a new install writes, from the options.
fn settings_file(options: &Options, s: &Session) -> Result<Vec<u8>> {
    let p = &s.paths;
    let mut st = Settings {
        projects_file: p.projects.clone(),
        project_source: options.project_source.unwrap_or_default(),
        state_dir: p.state_dir.clone(),
        cache_dir: p.cache_dir.clone(),
        strict: options.strict,
        ..Settings::default()
    };
    let extra = options.extra_tags.unwrap_or_default();
    let key = |on: bool, name: &str| {
        if on {
            format!("aws-parallelcluster-{name}")
        } else {
            String::new()
        }
    };
    st.tags.partition = key(extra.partition, "partition");
    st.tags.account = key(extra.account, "account");
    st.tags.cluster = key(extra.cluster, "cluster");
    st.budget.enabled = options.budgets;
    st.tagging.mode = options.tagging.unwrap_or_default();
    let body = st.to_toml().context("cannot write the settings")?;
    Ok(format!(
        "# cost-tags settings (see \"Settings\" in the cost-tags README), written by cost-tags install\n\
         # because none existed. It is never overwritten once edited.\n\n{body}"
    )
    .into_bytes())
}

/// Which periodic jobs this run wants on the head node, checked before anything changes.
fn head_jobs(s: &mut Session, options: &Options, init: InitSystem) -> Result<Vec<HeadJob>> {
    let p = s.paths.clone();
    let cron = p.cron_dir.display().to_string();
    if options.budgets && init.init == Init::None {
        bail!("--budgets: neither systemd nor cron ({cron}) on this node to run cost-tags budget refresh. Nothing was changed.");
    }
    let mut prices = options.prices;
    if prices && init.init == Init::None {
        s.out.warn(format!(
            "neither systemd nor cron ({cron}) on this node: cost-tags prices refresh is not scheduled; run '{} prices refresh' daily from your own scheduler (or pass --no-prices)",
            p.bin_dir.join("cost-tags").display()
        ));
        prices = false;
    }
    let mut metrics = None;
    if let Some(dir) = &options.metrics_dir {
        let rooted = p.under_root(dir);
        if !rooted.is_dir() {
            bail!("--metrics {dir}: no such directory (node_exporter's textfile directory must exist). Nothing was changed.");
        }
        if init.init == Init::None {
            bail!("--metrics: neither systemd nor cron ({cron}) on this node to run cost-tags metrics. Nothing was changed.");
        }
        metrics = Some(rooted.join("cost_tags.prom"));
    }
    let jobs = vec![
        HeadJob {
            job: Job::Budget,
            on: options.budgets,
        },
        HeadJob {
            job: Job::Prices,
            on: prices,
        },
        HeadJob {
            on: metrics.is_some(),
            job: Job::Metrics {
                output: metrics.unwrap_or_default(),
            },
        },
    ];
    for j in jobs.iter().filter(|j| j.on) {
        let paths = j.job.paths(&p.unit_dir, &p.cron_dir);
        if init.init == Init::Systemd {
            check_dir_writable(&p.unit_dir)?;
            s.target(&paths.service)?;
            s.target(&paths.timer)?;
        } else {
            check_dir_writable(&p.cron_dir)?;
            s.target(&paths.cron)?;
        }
    }
    Ok(jobs)
}

/// The units of a head-node job are installed when it is on (recorded in the manifest),
/// else those an earlier run installed are removed, the timer disabled first.
fn apply_job(s: &mut Session, head_job: &HeadJob, init: InitSystem) -> Result<()> {
    let job = &head_job.job;
    let p = s.paths.clone();
    let paths = job.paths(&p.unit_dir, &p.cron_dir);
    let files = job.files(&p.etc_dir, &p.bin_dir);
    if head_job.on && init.init == Init::Systemd {
        s.ensure_dir(&p.unit_dir, 0o755, true)?;
        for (text, path) in [(&files.service, &paths.service), (&files.timer, &paths.timer)] {
            let before = s.out.changes();
            s.put_file(text.as_bytes(), path, 0o644)?;
            if s.out.changes() != before {
                s.units_written.push(path.clone());
            }
        }
        return s.drop_recorded(&paths.cron);
    }
    if head_job.on {
        s.ensure_dir(&p.cron_dir, 0o755, true)?;
        s.put_file(files.cron.as_bytes(), &paths.cron, 0o644)?;
    } else {
        s.drop_recorded(&paths.cron)?;
    }
    if s.recorded(&paths.timer) || s.recorded(&paths.service) {
        if s.recorded(&paths.timer) {
            s.timer_disable(job);
        }
        s.drop_recorded(&paths.timer)?;
        s.drop_recorded(&paths.service)?;
        s.timer_forget();
    }
    Ok(())
}

/// The metrics file the installed metrics job writes (from its recorded service or cron
/// file), if any.
fn metrics_installed_output(s: &Session) -> Option<PathBuf> {
    let paths = Job::Metrics { output: PathBuf::new() }.paths(&s.paths.unit_dir, &s.paths.cron_dir);
    for f in [paths.service, paths.cron] {
        if !s.recorded(&f) {
            continue;
        }
        let text = fs::read_to_string(&f).ok()?;
        return text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let rest = l.split(" metrics --output ").nth(1)?;
            let end = rest.find([' ', ';', '\'']).unwrap_or(rest.len());
            Some(PathBuf::from(&rest[..end]))
        });
    }
    None
}

/// Removes the metrics file an earlier run's job wrote, unless it is still written
/// (`keep`): once the job stops, a file left behind would show frozen figures forever.
fn metrics_output_forget(s: &mut Session, keep: Option<&Path>) -> Result<()> {
    let Some(old) = metrics_installed_output(s) else {
        return Ok(());
    };
    if Some(old.as_path()) == keep {
        return Ok(());
    }
    if fs::symlink_metadata(&old).is_ok_and(|m| m.is_file()) {
        fs::remove_file(&old).with_context(|| format!("cannot remove {}", old.display()))?;
        s.out
            .changed(format!("removed {} (the metrics the job wrote)", old.display()));
    }
    Ok(())
}

/// Refuses a job_submit.lua that is not cost-tags' (Slurm loads only one).
fn check_lua(s: &Session, staged: &[u8]) -> Result<()> {
    let lua = &s.target(&s.paths.lua)?;
    if fs::symlink_metadata(lua).is_err() {
        return Ok(());
    }
    let same = fs::read(lua).is_ok_and(|c| c == staged);
    match s.manifest.written(lua) {
        Some(key) => {
            let sha = sha_and_backup(s.manifest.get(&key).unwrap_or_default()).0.to_string();
            if sha256_file(lua).ok() != Some(sha) && !same {
                bail!(
                    "{} was changed since cost-tags installed it; move your changes elsewhere (or remove the file) and run this again. Nothing was changed.",
                    lua.display()
                );
            }
        }
        None if !same => bail!(
            "{} exists and is not cost-tags' (Slurm loads only one job_submit.lua): merge scripts/slurm/job_submit.lua of the release into it by hand, or move it away and run this again. Nothing was changed.",
            lua.display()
        ),
        None => {}
    }
    Ok(())
}

/// `scontrol reconfigure`, so that slurmctld reads the new settings.
fn reconfigure(s: &mut Session, options: &Options) -> Result<()> {
    match options.reconfigure {
        Reconfigure::Never => {
            s.out
                .log("not running scontrol reconfigure (--no-reconfigure); run it to apply the Slurm settings");
            return Ok(());
        }
        Reconfigure::Auto if s.paths.root.is_some() => {
            s.out
                .log("COST_TAGS_ROOT is set: not running scontrol reconfigure (--reconfigure forces it)");
            return Ok(());
        }
        _ => {}
    }
    let ours = s.paths.bin_dir.join("scontrol");
    let scontrol = if is_executable(&ours) {
        ours
    } else if let Some(found) = on_path("scontrol") {
        found
    } else {
        s.out
            .warn("scontrol not found: run 'scontrol reconfigure' to apply the Slurm settings");
        return Ok(());
    };
    let run = |verb: &str| {
        std::process::Command::new(&scontrol)
            .arg(verb)
            .env("SLURM_CONF", &s.paths.slurm_conf)
            .stdin(std::process::Stdio::null())
            .output()
    };
    let out = run("reconfigure").with_context(|| format!("cannot run {}", scontrol.display()))?;
    if out.status.success() {
        s.out.log("scontrol reconfigure: done");
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = text.trim_end();
    if !run("ping").is_ok_and(|o| o.status.success()) {
        s.out.warn(format!(
            "slurmctld is not reachable (scontrol reconfigure: {text}); it reads the new settings when it starts"
        ));
        return Ok(());
    }
    bail!("scontrol reconfigure failed: {text}")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// Holds an exclusive lock on the Slurm configuration directory while the install runs:
/// two runs at once (an update while the first is still going) would interleave edits.
fn lock(dir: &Path) -> Result<nix::fcntl::Flock<fs::File>> {
    let file = fs::File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut file = file;
    loop {
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = f;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(_) => bail!("another cost-tags install is running on {}", dir.display()),
        }
    }
}

pub(crate) fn uninstall(s: &mut Session, options: &Options) -> Result<()> {
    let p = s.paths.clone();
    let _lock = if p.conf_dir.is_dir() {
        Some(lock(&p.conf_dir)?)
    } else {
        None
    };
    s.manifest = Manifest::load(&p.manifest)?;
    if s.manifest.is_empty() {
        s.out.log(format!(
            "no manifest at {}: nothing installed by cost-tags.sh here",
            p.manifest.display()
        ));
        return Ok(());
    }
    let mut kept_backups = false;
    let mut kept = false;
    // 1. Configuration first, so that Slurm stops using the files before they go.
    for key in s.manifest.keys() {
        let Key::Edited(file) = &key else { continue };
        let value = s.manifest.get(&key).unwrap_or_default().to_string();
        let (sha, backup) = sha_and_backup(&value);
        let saved = p.backup_dir.join(backup);
        if !file.is_file() {
            s.out
                .warn(format!("{} is gone; nothing to restore there", file.display()));
        } else if sha256_file(file).ok().as_deref() == Some(sha) && fs::symlink_metadata(&saved).is_ok() {
            copy_exact(&saved, file)?;
            let _ = fs::remove_file(&saved);
            s.out.log(format!("restored {}", file.display()));
        } else {
            let changes: Vec<_> = s.manifest.changes_to(file).into_iter().map(|(_, c)| c).collect();
            let reverted = slurm_conf::revert(&read_text(file)?, &changes);
            write_conf(file, &reverted.text)?;
            for done in reverted.done {
                s.out.log(format!("{}: {done}", file.display()));
            }
            s.out.warn(format!(
                "{} was changed since the install: removed only cost-tags' own values; its original is kept in {}",
                file.display(),
                saved.display()
            ));
            kept_backups = true;
        }
    }
    kept |= s.remove_recorded(&Key::File(p.our_conf.clone()))?;
    reconfigure(s, options)?;
    // 2. Files, newest first; a timer is stopped before its units go.
    metrics_output_forget(s, None)?;
    let converge = controller::paths(s).0;
    let mut units = s.recorded(&converge);
    if units {
        controller::stop(s);
    }
    for job in [Job::Budget, Job::Prices, Job::Metrics { output: PathBuf::new() }] {
        let paths = job.paths(&p.unit_dir, &p.cron_dir);
        units |= s.recorded(&paths.timer) || s.recorded(&paths.service);
        if s.recorded(&paths.timer) {
            s.timer_disable(&job);
        }
    }
    for key in s.manifest.keys().into_iter().rev() {
        if matches!(key, Key::File(_) | Key::Replaced(_)) {
            kept |= s.remove_recorded(&key)?;
        }
    }
    if units {
        s.timer_forget();
    }
    // 3. The directories it created, deepest first, when empty.
    for key in s.manifest.keys().into_iter().rev() {
        let Key::Dir(dir) = &key else { continue };
        if !dir.is_dir() {
            continue;
        }
        if fs::remove_dir(dir).is_ok() {
            s.out.log(format!("removed directory {}", dir.display()));
        } else {
            s.out.warn(format!("kept directory {}: it is not empty", dir.display()));
            kept = true;
        }
    }
    let _ = fs::remove_file(&p.manifest);
    if !kept_backups {
        let _ = fs::remove_dir_all(&p.backup_dir);
        let _ = fs::remove_dir(&p.manifest_dir);
    }
    s.out.log(if kept {
        "uninstalled (some files were kept, see above)"
    } else {
        "uninstalled"
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projects_template_lists_no_project() {
        assert!(PROJECTS_TEMPLATE.lines().all(|l| l.starts_with('#')));
    }
}
