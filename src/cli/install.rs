//! `cost-tags install` and `cost-tags uninstall`: the arguments of the ParallelCluster
//! custom action (scripts/multi-runner/cost-tags.sh passes its own on unchanged, in
//! either of ParallelCluster's two forms), and the narration an administrator reads in
//! the node's cloud-init log. Exit status 0 installed (or nothing to do), 1 failure, with
//! a line saying what and where.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::{ContextKind, ErrorKind};
use clap::Parser;

use crate::install::{self, options, Level, Options, Request};

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
pub struct InstallArgs {
    /// The release cost-tags.sh fetched and unpacked (a path, https:// or s3:// as given
    /// to it); this command reads the directory itself. Needed on the head node only.
    #[arg(long, value_name = "SRC")]
    pub release: Option<String>,
    /// The release tarball's SHA-256 (cost-tags.sh checks it before anything else).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// comment (default) | account | wckey: the job field naming the project.
    #[arg(long, value_name = "SRC")]
    pub project_source: Option<String>,
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
    /// head | compute | login; default: cfn_node_type in /etc/parallelcluster/cfnconfig.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// node (default) | controller: who writes the instances' cost tags. controller: the
    /// head node alone (a service running `cost-tags reconcile --cluster --follow`, woken
    /// by PrologSlurmctld/EpilogSlurmctld), compute nodes make no AWS call.
    #[arg(long, value_name = "MODE")]
    pub tagging: Option<String>,
}

impl InstallArgs {
    fn options(&self, uninstall: bool) -> anyhow::Result<Options> {
        Ok(Options {
            release: self.release.clone(),
            sha256: self.sha256.as_deref().map(options::sha256).transpose()?,
            project_source: self
                .project_source
                .as_deref()
                .map(options::project_source)
                .transpose()?,
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
            role: self.role.as_deref().map(options::role).transpose()?,
            tagging: self.tagging.as_deref().map(options::tagging).transpose()?,
        })
    }
}

/// `cost-tags install ARGS` / `cost-tags uninstall ARGS` (`args` without the program
/// and subcommand): both argument forms, clap's errors in the installer's words.
pub fn main(subcommand: &str, args: Vec<String>) -> ExitCode {
    let prefix = format!("cost-tags {subcommand}");
    let fail = |message: &str| failed(&prefix, message);
    let args = match options::plain_form(args) {
        Ok(a) => a,
        Err(e) => return fail(&e.to_string()),
    };
    let parsed = InstallArgs::try_parse_from(std::iter::once(prefix.clone()).chain(args));
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&clap_message(&e)),
    };
    run(&parsed, subcommand == "uninstall", &prefix)
}

/// Runs a parsed install or uninstall, printing as it goes.
pub fn run(args: &InstallArgs, uninstall: bool, prefix: &str) -> ExitCode {
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
fn failed(prefix: &str, message: &str) -> ExitCode {
    let mut lines = message.lines();
    eprintln!("{prefix}: ERROR: {}", lines.next().unwrap_or_default());
    for line in lines {
        eprintln!("{prefix}: {line}");
    }
    ExitCode::from(1)
}

/// clap's error as one line, an unknown argument named as cost-tags.sh named it.
fn clap_message(e: &clap::Error) -> String {
    if e.kind() == ErrorKind::UnknownArgument {
        if let Some(arg) = e.get(ContextKind::InvalidArg) {
            return format!("unknown argument '{arg}' (see --help)");
        }
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
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
    fn an_unknown_argument_is_named() {
        let e = parse(&["--bogus"]).unwrap_err();
        assert_eq!(clap_message(&e), "unknown argument '--bogus' (see --help)");
        let e = parse(&["--release"]).unwrap_err();
        assert!(clap_message(&e).contains("--release"), "{}", clap_message(&e));
    }
}
