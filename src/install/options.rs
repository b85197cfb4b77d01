//! What `cost-tags install` is asked to do, checked before anything is touched. The
//! arguments are those of the ParallelCluster custom action cost-tags.sh, which passes
//! them on unchanged; clap reads them (`cli::install`), and the values clap cannot
//! check by itself are checked here.

use anyhow::{bail, Result};

use crate::config::TaggingMode;

use crate::model::job::ProjectSource;
use crate::parallelcluster::cfnconfig::NodeRole;

/// Whether to run `scontrol reconfigure` after changing Slurm's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Reconfigure {
    /// Yes, except under `COST_TAGS_ROOT` (a fake tree has no slurmctld of its own).
    #[default]
    Auto,
    Always,
    Never,
}

/// The extra tag keys `--extra-tags` switches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ExtraTags {
    pub partition: bool,
    pub account: bool,
    pub cluster: bool,
}

impl ExtraTags {
    /// `partition,account,cluster` in any order and number.
    pub(crate) fn parse(list: &str) -> Result<ExtraTags> {
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
pub(crate) struct Options {
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

/// `--sha256`: 64 hexadecimal digits, in either case.
pub(crate) fn sha256(value: &str) -> Result<String> {
    let lower = value.to_ascii_lowercase();
    if lower.len() != 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--sha256 must be 64 hexadecimal digits, got '{lower}'");
    }
    Ok(lower)
}

/// `--metrics DIR`: it goes into a unit file and a cron line unquoted, so it leaves no
/// room for interpretation: absolute, letters, digits, `.`, `_`, `-` and `/` only.
pub(crate) fn metrics_dir(value: &str) -> Result<String> {
    if !value.starts_with('/') {
        bail!("--metrics needs an absolute directory, got '{value}'");
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b)) {
        bail!("--metrics: only letters, digits, '.', '_', '-' and '/' in the directory, got '{value}'");
    }
    let trimmed = value.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/".into() } else { trimmed.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let t = ExtraTags::parse("partition,cluster").unwrap();
        assert!(t.partition && t.cluster && !t.account);
        assert!(ExtraTags::parse("partition,jobname")
            .unwrap_err()
            .to_string()
            .contains("unknown tag 'jobname'"));
    }
}
