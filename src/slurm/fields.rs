//! Which job fields `report` (sacct) and `reconcile` (squeue) ask Slurm for, and how a
//! line of their `|`-separated answer is split back into those fields.
//!
//! Slurm prints free text raw: a newline in a job's comment (or wckey, or an account
//! nobody validated) starts a new output line, and whoever submitted the job chose that
//! line's text, so it can look like another job's record. So the free-text field that
//! names the project is asked for only when `project_source` says it is the project, and
//! always last: a `|` inside it then stays in it, and a newline inside it can only add
//! whole lines after the job's own. Those lines must have exactly the expected number of
//! fields and a real job id to be taken for a record; what a well-formed forged line can
//! still do is up to each caller (see the README's threat model).

use crate::model::job::ProjectSource;

/// The field that names the project when it is not one the callers ask for anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProjectField {
    /// `--wckey`: sacct `WCKey`, squeue `%w`.
    Wckey,
    /// `--comment`: sacct `Comment`, squeue `%k`.
    Comment,
}

impl ProjectField {
    /// The extra field `source` needs; `None` for the account, which is always asked.
    pub(crate) fn of(source: ProjectSource) -> Option<ProjectField> {
        source.pick(Some(ProjectField::Comment), None, Some(ProjectField::Wckey))
    }

    /// Its name in `sacct --format`.
    pub(crate) fn sacct_name(self) -> &'static str {
        match self {
            ProjectField::Wckey => "WCKey",
            ProjectField::Comment => "Comment",
        }
    }

    /// Its code in `squeue -o`.
    pub(crate) fn squeue_code(self) -> &'static str {
        match self {
            ProjectField::Wckey => "%w",
            ProjectField::Comment => "%k",
        }
    }
}

/// Splits one output line into exactly `count` `|`-separated fields. When `last_is_text`,
/// the last field keeps any `|` it holds (Slurm does not escape it); otherwise a line with
/// more or fewer fields than asked is `None`.
pub(crate) fn split(line: &str, count: usize, last_is_text: bool) -> Option<Vec<&str>> {
    let fields: Vec<&str> = if last_is_text {
        line.splitn(count, '|').collect()
    } else {
        line.split('|').collect()
    };
    (fields.len() == count).then_some(fields)
}

/// True for a job id as Slurm prints an allocation: `123`, an array task `123_7` (or a
/// pending array `123_[1-5%2]`), a heterogeneous job component `123+0`. A forged line
/// must at least get this right to be counted.
pub(crate) fn is_job_id(id: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let (base, rest) = match id.find(['_', '+']) {
        Some(i) => id.split_at(i),
        None => (id, ""),
    };
    if !digits(base) {
        return false;
    }
    if let Some(het) = rest.strip_prefix('+') {
        return digits(het);
    }
    match rest.strip_prefix('_') {
        None => rest.is_empty(),
        Some(task) => {
            let pending = task
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b"-,%:".contains(&b)));
            digits(task) || pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_project_field_is_added() {
        assert_eq!(ProjectField::of(ProjectSource::Account), None);
        assert_eq!(
            ProjectField::of(ProjectSource::Comment).map(ProjectField::sacct_name),
            Some("Comment")
        );
        assert_eq!(
            ProjectField::of(ProjectSource::Wckey).map(ProjectField::squeue_code),
            Some("%w")
        );
    }

    #[test]
    fn split_is_exact_unless_the_last_field_is_text() {
        assert_eq!(split("1|a|b", 3, false), Some(vec!["1", "a", "b"]));
        assert_eq!(split("1|a|b|c", 3, false), None);
        assert_eq!(split("1|a", 3, false), None);
        assert_eq!(split("1|a|b|c", 3, true), Some(vec!["1", "a", "b|c"]));
        assert_eq!(split("1|a", 3, true), None);
    }

    #[test]
    fn job_ids() {
        for ok in ["1", "123_7", "123_[1-5%2]", "123_[1,3]", "123+0"] {
            assert!(is_job_id(ok), "{ok}");
        }
        for bad in [
            "",
            "x",
            "12a",
            "123.batch",
            "123_",
            "123+",
            "_1",
            "123_[]",
            "123_[a]",
            "123_4+1",
            "-1",
            "1 ",
            "123456789012345678901",
        ] {
            assert!(!is_job_id(bad), "{bad}");
        }
    }
}
