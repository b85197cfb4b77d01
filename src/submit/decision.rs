//! A job submission (or modification) as job_submit.lua sees it, and whether it may go
//! in: the user must name a project in the field `project_source` says, and the projects
//! file must allow that project to that user. The messages are the ones users of the
//! public ParallelCluster scripts already know.
//!
//! Before any of that, the free-text fields must be plain one-line text, whoever submits:
//! Slurm prints them raw in `sacct --parsable2` and `squeue -o`, so a newline in a comment
//! would start a line that reads as another job's record (forged attribution).

use crate::config::Settings;
use crate::model::job::ProjectSource;
use crate::model::project_name;
use crate::submit::projects_file::{GroupMembership, ProjectsList};

/// What job_submit.lua knows about a submission. Fields are `None` when Slurm left them
/// unset; for a modification only the fields being changed are set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Submission {
    pub user: String,
    pub comment: Option<String>,
    pub account: Option<String>,
    pub wckey: Option<String>,
    /// `scontrol update`: absent fields are not being changed.
    pub modify: bool,
    /// Who submits or modifies, when not the owner (an operator's `scontrol update`).
    pub by_user: Option<String>,
}

/// The outcome, with the message shown to the submitter when refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed {
        project: String,
    },
    /// An exempt user (root, service accounts) needs no project.
    Exempt,
    /// A modification that does not touch the project field.
    ProjectUnchanged,
    Denied(String),
}

impl Verdict {
    pub(crate) fn is_allowed(&self) -> bool {
        !matches!(self, Verdict::Denied(_))
    }
}

impl Submission {
    /// The project field `source` selects, as given (it may be absent or empty).
    pub(crate) fn project_field(&self, source: ProjectSource) -> Option<&str> {
        source.pick(self.comment.as_deref(), self.account.as_deref(), self.wckey.as_deref())
    }

    /// The free-text fields that were given, with the flag that sets each.
    fn text_fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("--comment", self.comment.as_deref()),
            ("--account", self.account.as_deref()),
            ("--wckey", self.wckey.as_deref()),
        ]
        .into_iter()
        .filter_map(|(flag, value)| Some((flag, value?)))
    }
}

/// A field value job_submit.lua passed as raw bytes: text, or the refusal a user gets
/// for a value that is not (a user's typo must never look like a broken filter).
pub(crate) fn text_field(flag: &str, value: std::ffi::OsString) -> Result<String, Verdict> {
    value.into_string().map_err(|_| not_text_refusal(flag))
}

/// The refusal for a value job_submit.lua passed under `flag` that is not UTF-8 text.
pub(crate) fn not_text_refusal(flag: &str) -> Verdict {
    Verdict::Denied(format!("The {flag} value is not valid UTF-8 text. Use plain text."))
}

/// The refusal for a control character (bytes below 0x20, and DEL) in a free-text field,
/// or `None` when every field is plain one-line text.
pub(crate) fn control_character_refusal(submission: &Submission) -> Option<String> {
    submission.text_fields().find_map(|(flag, value)| {
        let (at, c) = value.chars().enumerate().find(|&(_, c)| c < ' ' || c == '\u{7f}')?;
        let what = match c {
            '\n' => "a newline".to_string(),
            '\r' => "a carriage return".to_string(),
            '\t' => "a tab".to_string(),
            c => format!("the control character U+{:04X}", u32::from(c)),
        };
        Some(format!(
            "The {flag} value contains {what} (character {}). Job comments, accounts and wckeys must be plain text on one line.",
            at + 1
        ))
    })
}

/// Decides a submission against the settings and the projects file.
pub(crate) fn decide(
    settings: &Settings,
    projects: &ProjectsList<'_>,
    groups: &mut dyn GroupMembership,
    submission: &Submission,
) -> Verdict {
    if let Some(refusal) = control_character_refusal(submission) {
        return Verdict::Denied(refusal);
    }
    let exempt = |user: &String| settings.exempt_users.contains(user);
    if exempt(&submission.user) || submission.by_user.as_ref().is_some_and(exempt) {
        return Verdict::Exempt;
    }
    let field = submission.project_field(settings.project_source);
    if submission.modify && field.is_none() {
        return Verdict::ProjectUnchanged;
    }
    // Not trimmed: the prolog tags exactly what Slurm stored, so only an exact name passes.
    let project = field.unwrap_or("");
    if project.trim().is_empty() {
        return Verdict::Denied(no_project_message(settings.project_source));
    }
    decide_project(projects, groups, &submission.user, project)
}

/// Decides whether `user` may use `project` (the `project-check USER PROJECT` question).
pub(crate) fn decide_project(
    projects: &ProjectsList<'_>,
    groups: &mut dyn GroupMembership,
    user: &str,
    project: &str,
) -> Verdict {
    if project_name::validate(project).is_err() {
        return Verdict::Denied(format!(
            "You are not allowed to use the project {} (project names use only letters, digits and {}, at most {} characters)",
            project_name::printable(project),
            project_name::PUNCTUATION,
            project_name::MAX_LEN
        ));
    }
    if projects.allows(user, project, groups) {
        Verdict::Allowed {
            project: project.to_string(),
        }
    } else {
        Verdict::Denied(not_allowed_message(project))
    }
}

/// A submission's final answer: the verdict, a note for the administrator's log, and a
/// line for the submitter on acceptance (what the job may cost, what is left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decided {
    pub verdict: Verdict,
    pub log: Option<String>,
    pub tell: Option<String>,
}

/// What the budget says of an allowed project (`budget::gate` decides it from the
/// budget cache); [`with_budget`] combines it with the projects file's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BudgetVerdict {
    /// Within budget, or (with `on_missing = "allow"`) no budget to check; `tell` is the
    /// line for the submitter (what the job may cost, what is left) when there is one.
    Allowed { tell: Option<String> },
    /// Let through although the cache could not tell (`on_stale = "allow"`); the reason is
    /// for the administrator's log.
    AllowedUnchecked(String),
    /// Refused: `message` for the submitter, `log` for the administrator when there is
    /// more to say than the message does.
    Denied { message: String, log: Option<String> },
}

/// Combines the projects file's verdict with the budget's: when budgets are on, an allowed
/// project also needs budget left, as `budget` (the cache lookup) says; it is asked only
/// for an allowed project.
pub(crate) fn with_budget(verdict: Verdict, budgets_on: bool, budget: impl FnOnce(&str) -> BudgetVerdict) -> Decided {
    let project = match verdict {
        Verdict::Allowed { project } if budgets_on => project,
        verdict => {
            return Decided {
                verdict,
                log: None,
                tell: None,
            }
        }
    };
    let (verdict, log, tell) = match budget(&project) {
        BudgetVerdict::Allowed { tell } => (Verdict::Allowed { project }, None, tell),
        BudgetVerdict::AllowedUnchecked(why) => (Verdict::Allowed { project }, Some(why), None),
        BudgetVerdict::Denied { message, log } => (Verdict::Denied(message), log, None),
    };
    Decided { verdict, log, tell }
}

/// The refusal for a job that names no project.
pub(crate) fn no_project_message(source: ProjectSource) -> String {
    format!("You need to specify a project. \"{} ProjectName\"", source.flag())
}

/// The refusal for a project the user may not use.
pub(crate) fn not_allowed_message(project: &str) -> String {
    format!("You are not allowed to use the project {project}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    struct NoGroups;
    impl GroupMembership for NoGroups {
        fn is_member(&mut self, _: &str, _: &str) -> bool {
            false
        }
    }

    const FILE: &str = "alice=ProjectA, ProjectC\nbob=ProjectB\n";

    fn check(settings: &Settings, s: Submission) -> Verdict {
        let list = ProjectsList::parse(FILE.as_bytes(), Path::new("p")).unwrap();
        decide(settings, &list, &mut NoGroups, &s)
    }

    fn sub(user: &str, comment: Option<&str>) -> Submission {
        Submission {
            user: user.into(),
            comment: comment.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn allowed_denied_missing() {
        let s = Settings::default();
        assert!(matches!(
            check(&s, sub("alice", Some("ProjectA"))),
            Verdict::Allowed { .. }
        ));
        assert_eq!(
            check(&s, sub("alice", Some("ProjectB"))),
            Verdict::Denied("You are not allowed to use the project ProjectB".into())
        );
        let missing = Verdict::Denied("You need to specify a project. \"--comment ProjectName\"".into());
        assert_eq!(check(&s, sub("alice", None)), missing);
        assert_eq!(check(&s, sub("alice", Some("  "))), missing);
    }

    #[test]
    fn exempt_users_pass_without_project() {
        assert_eq!(check(&Settings::default(), sub("root", None)), Verdict::Exempt);
    }

    #[test]
    fn source_selects_field_and_message() {
        let s = Settings {
            project_source: ProjectSource::Account,
            ..Default::default()
        };
        assert_eq!(
            check(&s, sub("alice", Some("ProjectA"))),
            Verdict::Denied("You need to specify a project. \"--account ProjectName\"".into())
        );
        let with_account = Submission {
            account: Some("ProjectA".into()),
            ..sub("alice", None)
        };
        assert!(check(&s, with_account).is_allowed());
        let s = Settings {
            project_source: ProjectSource::Wckey,
            ..Default::default()
        };
        let with_wckey = Submission {
            wckey: Some("ProjectB".into()),
            ..sub("bob", None)
        };
        assert!(check(&s, with_wckey).is_allowed());
    }

    #[test]
    fn modify_checks_only_a_changed_project() {
        let s = Settings::default();
        let untouched = Submission {
            modify: true,
            ..sub("alice", None)
        };
        assert_eq!(check(&s, untouched), Verdict::ProjectUnchanged);
        let to_other = Submission {
            modify: true,
            ..sub("alice", Some("ProjectB"))
        };
        assert!(!check(&s, to_other).is_allowed());
        let cleared = Submission {
            modify: true,
            ..sub("alice", Some(""))
        };
        assert!(!check(&s, cleared).is_allowed());
    }

    #[test]
    fn hostile_comments_are_denied_with_a_one_line_message() {
        let s = Settings::default();
        for hostile in ["'; touch /tmp/x; '", "$(id)", "`id`", &"A".repeat(1024), "Project A"] {
            match check(&s, sub("alice", Some(hostile))) {
                Verdict::Denied(m) => {
                    assert!(m.starts_with("You are not allowed to use the project"), "{m}");
                    assert!(!m.contains('\n'), "{m}");
                    assert!(m.len() < 300, "{m}");
                }
                v => panic!("{hostile:?} gave {v:?}"),
            }
        }
    }

    /// A newline in any free-text field would forge a record in sacct and squeue output,
    /// so it is refused whichever field names the project, and even for exempt users.
    #[test]
    fn control_characters_are_refused_in_every_field_whatever_the_source() {
        let forged = "x\n9999999|victim|compute|VictimProject|(null)|y";
        for source in [ProjectSource::Comment, ProjectSource::Account, ProjectSource::Wckey] {
            let s = Settings {
                project_source: source,
                ..Default::default()
            };
            let fine = Submission {
                comment: Some("ProjectA".into()),
                account: Some("ProjectA".into()),
                wckey: Some("ProjectA".into()),
                ..sub("alice", None)
            };
            assert!(check(&s, fine.clone()).is_allowed());
            for flag in ["--comment", "--account", "--wckey"] {
                let mut hostile = fine.clone();
                let field = match flag {
                    "--comment" => &mut hostile.comment,
                    "--account" => &mut hostile.account,
                    _ => &mut hostile.wckey,
                };
                *field = Some(forged.into());
                let expected = format!(
                    "The {flag} value contains a newline (character 2). Job comments, accounts and wckeys must be plain text on one line."
                );
                assert_eq!(check(&s, hostile.clone()), Verdict::Denied(expected.clone()));
                hostile.user = "root".into();
                assert_eq!(check(&s, hostile), Verdict::Denied(expected), "exempt users too");
            }
        }
        for (value, what) in [
            ("a\tb", "a tab"),
            ("a\rb", "a carriage return"),
            ("a\u{7f}b", "the control character U+007F"),
            ("a\u{1b}[2Jb", "the control character U+001B"),
            ("a\u{0}b", "the control character U+0000"),
        ] {
            match check(&Settings::default(), sub("alice", Some(value))) {
                Verdict::Denied(m) => assert!(m.contains(what), "{value:?}: {m}"),
                v => panic!("{value:?} gave {v:?}"),
            }
        }
        // Printable unicode is text, not a control character: refused only as a project name.
        match check(&Settings::default(), sub("alice", Some("Projekt\u{e9}"))) {
            Verdict::Denied(m) => assert!(m.starts_with("You are not allowed"), "{m}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_modification_by_an_exempt_operator_passes() {
        let s = Settings::default();
        let by_root = Submission {
            modify: true,
            by_user: Some("root".into()),
            ..sub("alice", Some("ProjectB"))
        };
        assert_eq!(check(&s, by_root), Verdict::Exempt);
        let by_bob = Submission {
            modify: true,
            by_user: Some("bob".into()),
            ..sub("alice", Some("ProjectB"))
        };
        assert!(!check(&s, by_bob).is_allowed());
    }

    #[test]
    fn a_value_that_is_not_utf8_is_a_plain_refusal() {
        use std::os::unix::ffi::OsStringExt;
        assert_eq!(text_field("--comment", "ProjectA".into()), Ok("ProjectA".to_string()));
        assert_eq!(
            text_field("--comment", std::ffi::OsString::from_vec(b"Proj\xffA".to_vec())),
            Err(Verdict::Denied(
                "The --comment value is not valid UTF-8 text. Use plain text.".into()
            ))
        );
    }

    #[test]
    fn the_budget_is_asked_only_for_an_allowed_project_with_budgets_on() {
        let allowed = || Verdict::Allowed { project: "P".into() };
        let never = |_: &str| -> BudgetVerdict { panic!("the budget was asked") };
        let plain = |verdict: Verdict| Decided {
            verdict,
            log: None,
            tell: None,
        };
        assert_eq!(with_budget(allowed(), false, never), plain(allowed()));
        assert_eq!(with_budget(Verdict::Exempt, true, never), plain(Verdict::Exempt));
        let denied = Verdict::Denied("no".into());
        assert_eq!(with_budget(denied.clone(), true, never), plain(denied));
        assert_eq!(
            with_budget(allowed(), true, |_| BudgetVerdict::Allowed {
                tell: Some("cost".into())
            }),
            Decided {
                tell: Some("cost".into()),
                ..plain(allowed())
            }
        );
        assert_eq!(
            with_budget(allowed(), true, |_| BudgetVerdict::AllowedUnchecked("stale".into())),
            Decided {
                log: Some("stale".into()),
                ..plain(allowed())
            }
        );
        let spent = |p: &str| BudgetVerdict::Denied {
            message: format!("{p} spent"),
            log: Some("note".into()),
        };
        assert_eq!(
            with_budget(allowed(), true, spent),
            Decided {
                log: Some("note".into()),
                ..plain(Verdict::Denied("P spent".into()))
            }
        );
    }
}
