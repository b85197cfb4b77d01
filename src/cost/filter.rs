//! Narrowing a report to some users, accounts, partitions, Unix groups or projects, with
//! sacct's meaning. The filters sacct has (`--user`, `--accounts`, `--partition`,
//! `--group`) are passed to it, so slurmdbd does the work; the project filter, and every
//! filter on a saved `--sacct-file`, is applied to the records read. Applying a filter
//! sacct already applied again is one comparison per record and changes nothing.

use crate::slurm::sacct::Record;

/// What a report is narrowed to; an empty list keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub users: Vec<String>,
    pub accounts: Vec<String>,
    pub partitions: Vec<String>,
    /// Unix groups (sacct's `Group`).
    pub groups: Vec<String>,
    pub projects: Vec<String>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.accounts.is_empty()
            && self.partitions.is_empty()
            && self.groups.is_empty()
            && self.projects.is_empty()
    }

    /// Whether the records must carry the job's Unix group.
    pub fn needs_group(&self) -> bool {
        !self.groups.is_empty()
    }

    /// sacct's options for the filters it has. `--user` also lifts `--allusers`' limit
    /// for an ordinary user only as far as slurmdbd's PrivateData allows: sacct shows them
    /// what they may see, as `cost-tags job` does.
    pub fn sacct_arguments(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (flag, values) in [
            ("--user", &self.users),
            ("--accounts", &self.accounts),
            ("--partition", &self.partitions),
            ("--group", &self.groups),
        ] {
            if !values.is_empty() {
                args.push(format!("{flag}={}", values.join(",")));
            }
        }
        args
    }

    /// Whether `record`, whose project is `project`, is kept. A job that ran in several
    /// partitions (`a,b`) is kept when one of them is asked for, as sacct keeps it.
    pub fn keeps(&self, record: &Record<'_>, project: &str) -> bool {
        let any = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        any(&self.users, record.user)
            && any(&self.accounts, record.account)
            && any(&self.groups, record.group)
            && any(&self.projects, project)
            && (self.partitions.is_empty() || record.partition.split(',').any(|p| any(&self.partitions, p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(user: &'a str, account: &'a str, partition: &'a str, group: &'a str) -> Record<'a> {
        Record {
            user,
            account,
            partition,
            group,
            end: Some(crate::model::time::Timestamp::from_second(60)),
            ..Record::example()
        }
    }

    #[test]
    fn every_filter_and_their_combination() {
        let r = record("alice", "physics", "compute,gpu", "phys");
        assert!(Filters::default().keeps(&r, "P"));
        let f = |users: &[&str], projects: &[&str], partitions: &[&str], groups: &[&str]| Filters {
            users: users.iter().map(|s| s.to_string()).collect(),
            projects: projects.iter().map(|s| s.to_string()).collect(),
            partitions: partitions.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert!(f(&["bob", "alice"], &[], &[], &[]).keeps(&r, "P"));
        assert!(!f(&["bob"], &[], &[], &[]).keeps(&r, "P"));
        assert!(f(&[], &["P"], &["gpu"], &["phys"]).keeps(&r, "P"));
        assert!(!f(&["alice"], &["Q"], &[], &[]).keeps(&r, "P"));
        assert!(!f(&[], &[], &["debug"], &[]).keeps(&r, "P"));
        assert!(!f(&[], &[], &[], &["chem"]).keeps(&r, "P"));
        assert_eq!(
            f(&["alice", "bob"], &["P"], &["gpu"], &["phys"]).sacct_arguments(),
            ["--user=alice,bob", "--partition=gpu", "--group=phys"]
        );
    }
}
