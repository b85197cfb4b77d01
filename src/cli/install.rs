//! `cost-tags install` and `cost-tags uninstall`: the arguments of the ParallelCluster
//! custom action (scripts/multi-runner/cost-tags.sh passes its own on unchanged, in
//! either of ParallelCluster's two forms), and the narration an administrator reads in
//! the node's cloud-init log. Exit status 0 installed (or nothing to do), 1 failure, with
//! a line saying what and where; a usage error too is a failure the custom action's log
//! shows (exit 1, `ERROR:`), not clap's exit 2.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Parser;

use crate::config::TaggingMode;
use crate::install::{self, options, Level, Options, Request};
use crate::model::job::ProjectSource;
use crate::parallelcluster::cfnconfig::NodeRole;

/// Install cost-tags on this ParallelCluster node (head: the release into /opt/slurm,
/// Slurm's settings, the periodic jobs; compute: the state directory and `cost-tags
/// reconcile`; login: nothing), or uninstall exactly what an earlier install added.
#[derive(Parser, Debug, Default)]
#[command(
    args_override_self = true,
    after_help = "Arguments also take the form --option=value, and the multi-runner form (each with one more \
                  leading '-', when the first starts with '---').\n\
                  Environment: COST_TAGS_ROOT, a prefix for every path (tests); COST_TAGS_RELEASE_DIR, the \
                  release cost-tags.sh unpacked.\n\
                  Exit status: 0 installed (or nothing to do), 1 failure; the checks that can fail run before \
                  anything is changed. Every step is idempotent; the head node records what it did in \
                  /opt/slurm/etc/cost-tags/manifest, which --uninstall reads."
)]
pub(crate) struct InstallArgs {
    /// The release cost-tags.sh fetched and unpacked (a path, https:// or s3:// as given
    /// to it); this command reads the directory itself. Needed on the head node only.
    #[arg(long, value_name = "SRC")]
    pub release: Option<String>,
    /// The release tarball's SHA-256 (cost-tags.sh checks it before anything else).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// The job field naming the project (default comment).
    #[arg(long, value_name = "SRC", value_enum)]
    pub project_source: Option<ProjectSource>,
    /// Comma list of partition,account,cluster: also tag instances with
    /// aws-parallelcluster-partition/-account/-cluster.
    #[arg(long, value_name = "LIST")]
    pub extra_tags: Option<String>,
    /// strict = true: a tagging failure exits 1 (drains the node).
    #[arg(long)]
    pub strict: bool,
    /// Refuse jobs of projects whose AWS Budget is spent, and refresh the budgets every
    /// 10 minutes on the head node.
    #[arg(long)]
    pub budgets: bool,
    /// Do not schedule the daily `cost-tags prices refresh` on the head node.
    #[arg(long)]
    pub no_prices: bool,
    /// Write spend metrics to DIR/cost_tags.prom every 5 minutes (node_exporter's
    /// textfile directory; absolute, letters, digits, . _ - /).
    #[arg(long, value_name = "DIR")]
    pub metrics: Option<String>,
    /// Where slurm.conf is.
    #[arg(long, value_name = "DIR", default_value = "/opt/slurm/etc")]
    pub slurm_conf_dir: Option<PathBuf>,
    /// Run `scontrol reconfigure` even when COST_TAGS_ROOT is set.
    #[arg(long, conflicts_with = "no_reconfigure")]
    pub reconfigure: bool,
    /// Never run `scontrol reconfigure`.
    #[arg(long)]
    pub no_reconfigure: bool,
    /// Remove what the install added, restore what it changed.
    #[arg(long)]
    pub uninstall: bool,
    /// This node's role; default: cfn_node_type in /etc/parallelcluster/cfnconfig.
    #[arg(long, value_name = "ROLE", value_enum)]
    pub role: Option<NodeRole>,
    /// Who writes the instances' cost tags (default node).
    #[arg(long, value_name = "MODE", value_enum)]
    pub tagging: Option<TaggingMode>,
}

impl InstallArgs {
    fn options(&self, uninstall: bool) -> anyhow::Result<Options> {
        Ok(Options {
            release: self.release.clone(),
            sha256: self.sha256.as_deref().map(options::sha256).transpose()?,
            project_source: self.project_source,
            extra_tags: self.extra_tags.as_deref().map(options::ExtraTags::parse).transpose()?,
            strict: self.strict,
            budgets: self.budgets,
            prices: !self.no_prices,
            metrics_dir: self.metrics.as_deref().map(options::metrics_dir).transpose()?,
            // The default is written out for --help; under COST_TAGS_ROOT it moves.
            slurm_conf_dir: self
                .slurm_conf_dir
                .clone()
                .filter(|d| d.as_os_str() != "/opt/slurm/etc"),
            reconfigure: match (self.reconfigure, self.no_reconfigure) {
                (true, _) => options::Reconfigure::Always,
                (_, true) => options::Reconfigure::Never,
                _ => options::Reconfigure::Auto,
            },
            uninstall: uninstall || self.uninstall,
            role: self.role,
            tagging: self.tagging,
        })
    }
}

/// The argv of `cost-tags [--config PATH] install|uninstall ARGS` with ARGS in the plain
/// form (`subcommand` is where `install` or `uninstall` is). ParallelCluster's
/// multi-runner gives each argument one more leading '-' (`---release -s3://b/r.tar.gz`):
/// that is a spelling of the argv, not an option, so it is undone before clap reads it.
pub(crate) fn plain_argv(mut argv: Vec<OsString>, subcommand: usize) -> Result<Vec<OsString>, String> {
    let args = argv.split_off((subcommand + 1).min(argv.len()));
    argv.extend(plain_form(args)?);
    Ok(argv)
}

/// When the first argument starts with '---' the whole list is in the multi-runner form
/// and one '-' comes off every argument; no option starts with '---' otherwise, so the
/// two forms cannot be confused (cost-tags.sh applies the same rule).
fn plain_form(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    if !args.first().is_some_and(|a| a.as_bytes().starts_with(b"---")) {
        return Ok(args);
    }
    args.into_iter()
        .map(|a| match a.as_bytes().strip_prefix(b"-") {
            Some(rest) => Ok(OsString::from_vec(rest.to_vec())),
            None => Err(format!(
                "multi-runner form (the first argument starts with '---'): argument '{}' lacks its leading '-'",
                a.to_string_lossy()
            )),
        })
        .collect()
}

/// A command line clap refused (or `--help`, which it printed): `prefix: ERROR: why`,
/// exit 1, as every other failure of the custom action.
pub(crate) fn usage_error(prefix: &str, e: &clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    failed(prefix, &clap_message(e))
}

/// Runs a parsed install or uninstall, printing as it goes. `config` is cost-tags'
/// `--config`, which the installer refuses: it reads no settings, and writes them where
/// project-check and the hooks look for them.
pub(crate) fn run(args: &InstallArgs, config: Option<&Path>, uninstall: bool, prefix: &str) -> ExitCode {
    if let Some(path) = config {
        return failed(
            prefix,
            &format!(
                "--config {}: the installer reads no settings file and writes its own beside slurm.conf; leave --config out",
                path.display()
            ),
        );
    }
    // Files and directories get the modes the installer gives them, whatever the caller's
    // umask (a custom action's may be 077: /etc/systemd/system must stay readable).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let options = match args.options(uninstall) {
        Ok(o) => o,
        Err(e) => return failed(prefix, &format!("{e:#}")),
    };
    let request = Request {
        options,
        root: std::env::var_os("COST_TAGS_ROOT")
            .filter(|r| !r.is_empty())
            .map(PathBuf::from),
        release_dir: std::env::var_os("COST_TAGS_RELEASE_DIR")
            .filter(|r| !r.is_empty())
            .map(PathBuf::from),
    };
    let mut print = |level: Level, line: &str| match level {
        // A closed stdout drops the progress lines, never the install half done: the
        // exit status is the install's.
        Level::Info => drop(outln!("{prefix}: {line}")),
        Level::Warning => eprintln!("{prefix}: WARNING: {line}"),
    };
    match install::run(&request, &mut print) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(prefix, &format!("{e:#}")),
    }
}

/// Prints a failure (its first line marked ERROR, as the custom action's log is searched
/// for) and gives exit status 1.
pub(crate) fn failed(prefix: &str, message: &str) -> ExitCode {
    let mut lines = message.lines();
    eprintln!("{prefix}: ERROR: {}", lines.next().unwrap_or_default());
    for line in lines {
        eprintln!("{prefix}: {line}");
    }
    ExitCode::from(1)
}

/// clap's error as one line, an unknown argument named as cost-tags.sh named it, and a
/// value outside a list as the installer always said it (`--role must be head, compute
/// or login, got 'HeadNode'`).
fn clap_message(e: &clap::Error) -> String {
    match (e.kind(), e.get(ContextKind::InvalidArg)) {
        (ErrorKind::UnknownArgument, Some(arg)) => return format!("unknown argument '{arg}' (see --help)"),
        (ErrorKind::InvalidValue, Some(ContextValue::String(arg))) => {
            if let (Some(ContextValue::Strings(valid)), Some(ContextValue::String(value))) =
                (e.get(ContextKind::ValidValue), e.get(ContextKind::InvalidValue))
            {
                let flag = arg.split(' ').next().unwrap_or(arg);
                return format!("{flag} must be {}, got '{value}'", one_of(valid));
            }
        }
        _ => {}
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// `a`, `a or b`, `a, b or c`.
fn one_of(values: &[String]) -> String {
    match values {
        [] => String::new(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<InstallArgs, clap::Error> {
        InstallArgs::try_parse_from(std::iter::once("cost-tags install").chain(args.iter().copied()))
    }

    #[test]
    fn both_value_forms_and_a_repeated_option_work() {
        let a = parse(&["--release=/r", "--metrics", "/m/", "--release", "/s"]).unwrap();
        assert_eq!(a.release.as_deref(), Some("/s"));
        let o = a.options(false).unwrap();
        assert_eq!(o.metrics_dir.as_deref(), Some("/m"));
        assert!(o.prices && !o.uninstall);
        assert_eq!(o.slurm_conf_dir, None);
    }

    #[test]
    fn an_unknown_argument_and_a_value_outside_the_list_are_named() {
        let e = parse(&["--bogus"]).unwrap_err();
        assert_eq!(clap_message(&e), "unknown argument '--bogus' (see --help)");
        let e = parse(&["--release"]).unwrap_err();
        assert!(clap_message(&e).contains("--release"), "{}", clap_message(&e));
        let e = parse(&["--role", "HeadNode"]).unwrap_err();
        assert_eq!(
            clap_message(&e),
            "--role must be head, compute or login, got 'HeadNode'"
        );
        let e = parse(&["--tagging=head"]).unwrap_err();
        assert_eq!(clap_message(&e), "--tagging must be node or controller, got 'head'");
        let e = parse(&["--project-source", "email"]).unwrap_err();
        assert_eq!(
            clap_message(&e),
            "--project-source must be comment, account or wckey, got 'email'"
        );
    }

    #[test]
    fn roles_and_modes_are_typed() {
        let a = parse(&["--role", "compute", "--tagging", "controller", "--project-source=wckey"]).unwrap();
        let o = a.options(true).unwrap();
        assert_eq!(
            (o.role, o.tagging, o.project_source, o.uninstall),
            (
                Some(NodeRole::Compute),
                Some(TaggingMode::Controller),
                Some(ProjectSource::Wckey),
                true
            )
        );
    }

    fn os(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_multi_runner_form_loses_one_dash_after_the_subcommand_only() {
        assert_eq!(
            plain_argv(
                os(&["cost-tags", "install", "---release", "-s3://b/r.tar.gz", "---strict"]),
                1
            )
            .unwrap(),
            os(&["cost-tags", "install", "--release", "s3://b/r.tar.gz", "--strict"])
        );
        assert_eq!(
            plain_argv(os(&["cost-tags", "--config", "-c", "uninstall", "---uninstall"]), 3).unwrap(),
            os(&["cost-tags", "--config", "-c", "uninstall", "--uninstall"])
        );
        let plain = os(&["cost-tags", "install", "--release", "/r", "--sha256=ab"]);
        assert_eq!(plain_argv(plain.clone(), 1).unwrap(), plain);
        assert_eq!(
            plain_argv(os(&["cost-tags", "install"]), 1).unwrap(),
            os(&["cost-tags", "install"])
        );
        let e = plain_argv(os(&["cost-tags", "install", "---release", "/r"]), 1).unwrap_err();
        assert!(e.contains("argument '/r' lacks its leading '-'"), "{e}");
    }
}
