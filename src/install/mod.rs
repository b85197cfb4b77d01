//! `cost-tags install` and `cost-tags uninstall`: what the ParallelCluster custom action
//! (scripts/multi-runner/cost-tags.sh, a thin shim that fetches and checks the release)
//! hands over to once the release is unpacked on the node.
//!
//! - [`options`]: the arguments, checked before anything changes;
//! - [`paths`]: every path read or written, under `COST_TAGS_ROOT` in tests;
//! - [`manifest`]: the head node's record of what the install did (the uninstall's input);
//! - [`files`]: writing, replacing, backing up and removing files against that record;
//! - [`slurm_conf`]: slurm.conf and its includes, parsed, extended and reverted (pure);
//! - [`periodic`]: the systemd timers (or cron files) of the periodic jobs;
//! - [`head`], [`compute`]: what each node role gets; [`controller`], controller mode's
//!   service and hooks; [`journal`], the reservation journal SlurmUser writes.
//!
//! Every step is idempotent (a second run changes nothing), checks that can fail run
//! before anything is changed, and the uninstall removes exactly what the install added.

pub(crate) mod compute;
pub(crate) mod controller;
pub(crate) mod files;
pub(crate) mod head;
pub(crate) mod journal;
pub(crate) mod manifest;
pub(crate) mod options;
pub(crate) mod paths;
pub(crate) mod periodic;
pub(crate) mod slurm_conf;
mod timers;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::parallelcluster::cfnconfig::{Cfnconfig, NodeRole};
use manifest::Manifest;
pub(crate) use options::Options;
use paths::Paths;

/// How loud a line of the installer's narration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warning,
}

/// The installer's narration (the cli prints it as it comes: a custom action's output
/// is all an administrator sees of it) and its count of changes.
pub(crate) struct Progress<'a> {
    sink: &'a mut dyn FnMut(Level, &str),
    changes: usize,
}

impl<'a> Progress<'a> {
    pub(crate) fn new(sink: &'a mut dyn FnMut(Level, &str)) -> Progress<'a> {
        Progress { sink, changes: 0 }
    }
    pub(crate) fn log(&mut self, message: impl AsRef<str>) {
        (self.sink)(Level::Info, message.as_ref());
    }
    pub(crate) fn warn(&mut self, message: impl AsRef<str>) {
        (self.sink)(Level::Warning, message.as_ref());
    }
    /// Says what changed and counts it: a run that counts none says "nothing changed"
    /// and does not reconfigure Slurm.
    pub(crate) fn changed(&mut self, message: impl AsRef<str>) {
        self.changes += 1;
        self.log(message);
    }
    /// Counts a change already said.
    pub(crate) fn count_change(&mut self) {
        self.changes += 1;
    }
    pub(crate) fn changes(&self) -> usize {
        self.changes
    }
}

/// One run: the paths, the manifest and the narration.
pub(crate) struct Session<'a> {
    pub paths: Paths,
    pub manifest: Manifest,
    pub out: Progress<'a>,
    /// Unit files (re)written in this run: their timers are restarted.
    pub units_written: Vec<PathBuf>,
}

/// What the cli hands over.
#[derive(Debug, Clone, Default)]
pub(crate) struct Request {
    pub options: Options,
    /// `COST_TAGS_ROOT`.
    pub root: Option<PathBuf>,
    /// The unpacked release (cost-tags.sh's staging directory, or `--release DIR`).
    pub release_dir: Option<PathBuf>,
}

/// Installs (or uninstalls) what this node's role needs.
pub(crate) fn run(request: &Request, sink: &mut dyn FnMut(Level, &str)) -> Result<()> {
    let options = &request.options;
    let paths = Paths::new(request.root.as_deref(), options.slurm_conf_dir.as_deref())?;
    let cfn = read_cfnconfig(&paths)?;
    let role = match (options.role, &cfn) {
        (Some(role), _) => role,
        (None, Some((path, cfn))) => role_of(path, cfn)?,
        (None, None) => bail!(
            "no {}: this is not an AWS ParallelCluster 3 node (or pass --role head|compute|login)",
            paths.under_root(crate::parallelcluster::cfnconfig::PATHS[0]).display()
        ),
    };
    let mut session = Session {
        paths,
        manifest: Manifest::default(),
        out: Progress::new(sink),
        units_written: Vec::new(),
    };
    let cfn = cfn.map(|(_, c)| c).unwrap_or_default();
    let root_note = match &session.paths.root {
        Some(r) => format!(", root {}", r.display()),
        None => String::new(),
    };
    session.out.log(format!(
        "node role {}, cluster {}, region {}{root_note}",
        role.name(),
        cfn.stack_name().unwrap_or("?"),
        cfn.region().unwrap_or("?"),
    ));
    match (role, options.uninstall) {
        (NodeRole::Head, false) => head::install(&mut session, options, release_dir(request)?),
        (NodeRole::Head, true) => head::uninstall(&mut session, options),
        (NodeRole::Compute, false) => compute::install(&mut session, options),
        (NodeRole::Compute, true) => compute::uninstall(&mut session),
        (NodeRole::Login, false) => {
            session.out.log("login node done");
            Ok(())
        }
        (NodeRole::Login, true) => {
            session.out.log("login node: nothing to uninstall");
            Ok(())
        }
    }
}

/// The release directory: the one cost-tags.sh unpacked, else `--release` when it is
/// a directory.
fn release_dir(request: &Request) -> Result<&Path> {
    if let Some(dir) = &request.release_dir {
        return Ok(dir);
    }
    match request.options.release.as_deref() {
        None => bail!("--release is required on the head node (see --help)"),
        Some(r) if Path::new(r).is_dir() => Ok(Path::new(r)),
        Some(r) => bail!(
            "--release {r}: cost-tags install reads an unpacked release directory; \
             scripts/multi-runner/cost-tags.sh fetches, checks and unpacks tarballs, https:// and s3://"
        ),
    }
}

fn read_cfnconfig(paths: &Paths) -> Result<Option<(PathBuf, Cfnconfig)>> {
    for path in paths.cfnconfig_candidates() {
        match Cfnconfig::read(&path) {
            Ok(c) => return Ok(Some((path, c))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    Ok(None)
}

fn role_of(path: &Path, cfn: &Cfnconfig) -> Result<NodeRole> {
    match cfn.node_type() {
        None => bail!("{} has no cfn_node_type", path.display()),
        Some(t) => NodeRole::from_node_type(t).with_context(|| {
            format!(
                "unknown node role cfn_node_type={t} in {} (expected HeadNode, ComputeFleet or LoginNode)",
                path.display()
            )
        }),
    }
}
