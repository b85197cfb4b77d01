//! A job as the prolog and epilog see it: read from the environment slurmd gives them
//! (never from `scontrol`, which prologs must not call), and validated before it can reach
//! the ledger; and which of a job's fields names its project ([`ProjectSource`]), which
//! every reader of a job (submission, squeue, sacct, prolog) asks.

use serde::{Deserialize, Serialize};

use super::tag_set::TagField;

/// Which job field names the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProjectSource {
    /// `sbatch --comment Project` (what users of the public scripts already do).
    #[default]
    Comment,
    /// `sbatch --account Project` (when Slurm accounting associations are used).
    Account,
    /// `sbatch --wckey Project`.
    Wckey,
}

impl ProjectSource {
    /// Of a job's comment, account and wckey, the one this source names. Every reader of
    /// a job's project (a submission, an sacct record, a squeue line) picks through here.
    pub fn pick<T>(self, comment: T, account: T, wckey: T) -> T {
        match self {
            ProjectSource::Comment => comment,
            ProjectSource::Account => account,
            ProjectSource::Wckey => wckey,
        }
    }

    /// Its name in the settings file and in the report's JSON.
    pub fn name(self) -> &'static str {
        self.pick("comment", "account", "wckey")
    }

    /// The submission flag that sets this field, for messages users can act on.
    pub fn flag(self) -> &'static str {
        self.pick("--comment", "--account", "--wckey")
    }

    /// The variable slurmd gives prologs and epilogs for this field (`SLURM_WCKEY` only
    /// from Slurm 23.11 on).
    pub fn prolog_variable(self) -> &'static str {
        self.pick("SLURM_JOB_COMMENT", "SLURM_JOB_ACCOUNT", "SLURM_WCKEY")
    }
}

/// The attributes of a running job that end up in tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Job {
    pub id: String,
    pub user: String,
    pub project: String,
    #[serde(default)]
    pub partition: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub cluster: String,
}

impl Job {
    /// Reads the job from Slurm's prolog/epilog variables through `var` (the process
    /// environment in production). The project comes from the field `source` selects:
    /// `SLURM_JOB_COMMENT` (absent when the job has none), `SLURM_JOB_ACCOUNT`, or
    /// `SLURM_WCKEY` (which slurmd does not give node prologs before Slurm 23.11; the project
    /// is then empty and its tag left out).
    pub fn from_env(source: ProjectSource, var: impl Fn(&str) -> Option<String>) -> Result<Job, String> {
        let id = var("SLURM_JOB_ID").ok_or("SLURM_JOB_ID is not set (not run by slurmd?)")?;
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("SLURM_JOB_ID {id:?} is not a job number"));
        }
        let user = var("SLURM_JOB_USER")
            .filter(|u| !u.is_empty())
            .ok_or("SLURM_JOB_USER is not set")?;
        Ok(Job {
            id,
            user,
            project: var(source.prolog_variable()).unwrap_or_default(),
            partition: var("SLURM_JOB_PARTITION").unwrap_or_default(),
            account: var("SLURM_JOB_ACCOUNT").unwrap_or_default(),
            cluster: var("SLURM_CLUSTER_NAME").unwrap_or_default(),
        })
    }

    /// The value of `field`, as its tag carries it.
    pub fn field(&self, field: TagField) -> &str {
        match field {
            TagField::Project => &self.project,
            TagField::User => &self.user,
            TagField::JobId => &self.id,
            TagField::Partition => &self.partition,
            TagField::Account => &self.account,
            TagField::Cluster => &self.cluster,
        }
    }

    /// The job from this process's environment.
    pub fn from_process_env(source: ProjectSource) -> Result<Job, String> {
        Job::from_env(source, |name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_the_slurm_variables() {
        let vars = env(&[
            ("SLURM_JOB_ID", "42"),
            ("SLURM_JOB_USER", "alice"),
            ("SLURM_JOB_COMMENT", "ProjectA"),
            ("SLURM_JOB_ACCOUNT", "acct"),
            ("SLURM_JOB_PARTITION", "compute"),
            ("SLURM_CLUSTER_NAME", "c1"),
        ]);
        let job = Job::from_env(ProjectSource::Comment, &vars).unwrap();
        assert_eq!(
            (job.id.as_str(), job.user.as_str(), job.project.as_str()),
            ("42", "alice", "ProjectA")
        );
        assert_eq!(
            (job.partition.as_str(), job.account.as_str(), job.cluster.as_str()),
            ("compute", "acct", "c1")
        );
        assert_eq!(Job::from_env(ProjectSource::Account, &vars).unwrap().project, "acct");
    }

    #[test]
    fn missing_comment_gives_empty_project() {
        let job = Job::from_env(
            ProjectSource::Comment,
            env(&[("SLURM_JOB_ID", "1"), ("SLURM_JOB_USER", "u")]),
        )
        .unwrap();
        assert_eq!(job.project, "");
    }

    #[test]
    fn refuses_what_is_not_a_job() {
        assert!(Job::from_env(ProjectSource::Comment, env(&[]))
            .unwrap_err()
            .contains("SLURM_JOB_ID"));
        for bad in ["", "12a", "1;rm", "../x", &"9".repeat(21)] {
            let e = Job::from_env(
                ProjectSource::Comment,
                env(&[("SLURM_JOB_ID", bad), ("SLURM_JOB_USER", "u")]),
            );
            assert!(e.is_err(), "{bad:?}");
        }
        assert!(Job::from_env(ProjectSource::Comment, env(&[("SLURM_JOB_ID", "1")]))
            .unwrap_err()
            .contains("SLURM_JOB_USER"));
    }
}
