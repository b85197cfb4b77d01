//! What `cost-tags install` is asked to do, checked before anything is touched. The
//! arguments are those of the ParallelCluster custom action cost-tags.sh, which passes
//! them on unchanged, in either of the two forms ParallelCluster uses.

use anyhow::{bail, Result};

use crate::config::TaggingMode;

use crate::model::job::ProjectSource;
use crate::parallelcluster::cfnconfig::NodeRole;

/// Whether to run `scontrol reconfigure` after changing Slurm's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reconfigure {
    /// Yes, except under `COST_TAGS_ROOT` (a fake tree has no slurmctld of its own).
    #[default]
    Auto,
    Always,
    Never,
}

/// The extra tag keys `--extra-tags` switches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtraTags {
    pub partition: bool,
    pub account: bool,
    pub cluster: bool,
}

impl ExtraTags {
    /// `partition,account,cluster` in any order and number.
    pub fn parse(list: &str) -> Result<ExtraTags> {
        let mut tags = ExtraTags::default();
        for t in list.split([',', ' ']).filter(|t| !t.is_empty()) {
            match t {
                "partition" => tags.partition = true,
                "account" => tags.account = true,
                "cluster" => tags.cluster = true,
                _ => bail!("--extra-tags: unknown tag '{t}' (known: partition, account, cluster)"),
            }
        }
        Ok(tags)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Where the release came from (a path, an https:// URL or an s3:// URI), for messages.
    pub release: Option<String>,
    /// Lowercase, 64 hexadecimal digits: cost-tags.sh checked the tarball with it.
    pub sha256: Option<String>,
    /// `--project-source`, when given (it only shapes a new settings file).
    pub project_source: Option<ProjectSource>,
    /// `--extra-tags`, when given.
    pub extra_tags: Option<ExtraTags>,
    pub strict: bool,
    pub budgets: bool,
    /// The daily price refresh (on unless `--no-prices`).
    pub prices: bool,
    /// node_exporter's textfile directory (absolute, no trailing `/`).
    pub metrics_dir: Option<String>,
    pub slurm_conf_dir: Option<std::path::PathBuf>,
    pub reconfigure: Reconfigure,
    pub uninstall: bool,
    /// `--role`, else the role cfnconfig gives.
    pub role: Option<NodeRole>,
    /// `--tagging`: who writes the tags (node mode unless given).
    pub tagging: Option<TaggingMode>,
}

/// The older ParallelCluster "multi-runner" passes each argument with one more leading
/// '-' (`---release -s3://b/r.tar.gz`). When the first argument starts with '---' the
/// whole list is in that form and one '-' comes off every argument; no option starts
/// with '---' otherwise, so the two forms cannot be confused.
pub fn plain_form(args: Vec<String>) -> Result<Vec<String>> {
    if !args.first().is_some_and(|a| a.starts_with("---")) {
        return Ok(args);
    }
    args.into_iter()
        .map(|a| match a.strip_prefix('-') {
            Some(rest) => Ok(rest.to_string()),
            None => {
                bail!("multi-runner form (the first argument starts with '---'): argument '{a}' lacks its leading '-'")
            }
        })
        .collect()
}

/// `--sha256`: 64 hexadecimal digits, in either case.
pub fn sha256(value: &str) -> Result<String> {
    let lower = value.to_ascii_lowercase();
    if lower.len() != 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--sha256 must be 64 hexadecimal digits, got '{lower}'");
    }
    Ok(lower)
}

/// `--metrics DIR`: it goes into a unit file and a cron line unquoted, so it leaves no
/// room for interpretation: absolute, letters, digits, `.`, `_`, `-` and `/` only.
pub fn metrics_dir(value: &str) -> Result<String> {
    if !value.starts_with('/') {
        bail!("--metrics needs an absolute directory, got '{value}'");
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b)) {
        bail!("--metrics: only letters, digits, '.', '_', '-' and '/' in the directory, got '{value}'");
    }
    let trimmed = value.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/".into() } else { trimmed.into() })
}

/// `--project-source`.
pub fn project_source(value: &str) -> Result<ProjectSource> {
    match value {
        "comment" => Ok(ProjectSource::Comment),
        "account" => Ok(ProjectSource::Account),
        "wckey" => Ok(ProjectSource::Wckey),
        _ => bail!("--project-source must be comment, account or wckey, got '{value}'"),
    }
}

/// `--tagging`.
pub fn tagging(value: &str) -> Result<TaggingMode> {
    match value {
        "node" => Ok(TaggingMode::Node),
        "controller" => Ok(TaggingMode::Controller),
        _ => bail!("--tagging must be node or controller, got '{value}'"),
    }
}

/// `--role`.
pub fn role(value: &str) -> Result<NodeRole> {
    NodeRole::from_option(value).ok_or_else(|| anyhow::anyhow!("--role must be head, compute or login, got '{value}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_multi_runner_form_loses_one_dash_everywhere() {
        assert_eq!(
            plain_form(strings(&["---release", "-s3://b/r.tar.gz", "---strict"])).unwrap(),
            strings(&["--release", "s3://b/r.tar.gz", "--strict"])
        );
        let plain = strings(&["--release", "/r", "--sha256=ab"]);
        assert_eq!(plain_form(plain.clone()).unwrap(), plain);
        let e = plain_form(strings(&["---release", "/r"])).unwrap_err();
        assert!(e.to_string().contains("lacks its leading '-'"), "{e}");
    }

    #[test]
    fn values_are_checked() {
        let sha = "A".repeat(64);
        assert_eq!(sha256(&sha).unwrap(), "a".repeat(64));
        assert!(sha256("1234")
            .unwrap_err()
            .to_string()
            .contains("64 hexadecimal digits"));
        assert!(sha256(&"g".repeat(64)).is_err());
        assert_eq!(metrics_dir("/var/lib/ne/").unwrap(), "/var/lib/ne");
        assert!(metrics_dir("var/lib")
            .unwrap_err()
            .to_string()
            .contains("absolute directory"));
        assert!(metrics_dir("/var/lib/a b")
            .unwrap_err()
            .to_string()
            .contains("only letters"));
        assert!(metrics_dir("/x;rm").is_err());
        assert_eq!(project_source("wckey").unwrap(), ProjectSource::Wckey);
        assert!(project_source("email")
            .unwrap_err()
            .to_string()
            .contains("--project-source must be"));
        let t = ExtraTags::parse("partition,cluster").unwrap();
        assert!(t.partition && t.cluster && !t.account);
        assert!(ExtraTags::parse("partition,jobname")
            .unwrap_err()
            .to_string()
            .contains("unknown tag 'jobname'"));
        assert_eq!(tagging("controller").unwrap(), TaggingMode::Controller);
        assert!(tagging("head").unwrap_err().to_string().contains("node or controller"));
        assert_eq!(role("compute").unwrap(), NodeRole::Compute);
        assert!(role("HeadNode").is_err());
    }
}
