//! project-check: may this user charge this project? The arguments, the user database
//! lookups, reading the files, and telling the user; the policy itself is
//! [`crate::submit::decision`].

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use crate::budget::gate::{self, Ask};
use crate::cli::job_size::{SizeArgs, SizeError};
use crate::config::Settings;
use crate::log;
use crate::slurm::job_request::JobRequest;
use crate::submit::decision::{self, Submission, Verdict};
use crate::submit::projects_file::{ReadError, SystemGroups, UserLines};

#[derive(Parser)]
#[command(
    name = "project-check",
    version,
    about = "Check that a Slurm user may charge a project (the cost-tags submit filter).",
    after_help = "\
MODES:
  project-check USER PROJECT   exit 0 if USER may use PROJECT, else exit 1 with
                               \"You are not allowed to use the project PROJECT\"
  project-check --list USER    print USER's projects, one per line
  project-check --submit --uid UID [--user NAME] [--comment C] [--account A] [--wckey W]
                               decide a submission the way job_submit.lua asks: the
                               project is taken from the field `project_source` names
                               (comment, account or wckey). No project: exit 1 with
                               'You need to specify a project. \"--comment ProjectName\"'.
                               Users in `exempt_users` (default root) always pass.
                               With --modify (scontrol update), only a field being changed
                               is checked, against the job owner's projects.

PROJECTS FILE (projects_file, default /opt/slurm/etc/projects_list.conf):
  alice = ProjectA, ProjectB   a user and the projects they may use; lines add up
  *=Shared                     a project everyone may use
  @physics=ProjectP            members of Unix group physics (system user database)
  # comment                    comments and blank lines are ignored
  Names match whole and case-sensitively. Project names: letters, digits and ._:/@+-,
  at most 128 characters (valid EC2 tag values and AWS Budget names).

SETTINGS: --config PATH, else $COST_TAGS_CONFIG, else /opt/slurm/etc/cost-tags.toml
(built-in defaults if that file is absent).

BUDGETS ([budget] enabled = true): an allowed project must also have budget left, as
the cache written by `cost-tags budget refresh` says (AWS is never called here):
  'The Project P does not have more budget allocated for this month.'
  'The Project P does not have any associated budget. Please ask the administrator to
   create it.' (on_missing = \"deny\", the default)
  A stale or unreadable cache allows (on_stale = \"allow\", the default) or refuses, and
  says why in syslog. With committed budgets, each accepted job's worst case is reserved
  in reservations_file until the next refresh, and counts against what is left.

EXIT CODES: 0 allowed, 1 refused, 2 settings or projects file unusable, bad usage."
)]
// The three modes are one flat set of flags to clap, which checks that they do not mix
// (each `--submit` option requires --submit; --list and USER PROJECT conflict with it
// and with each other); [`Args::mode`] then makes them a [`Mode`], as ripgrep's
// `HiArgs` makes a `Mode` of its low-level arguments. (Not a doc comment: clap would
// print it in --help.)
pub struct Args {
    /// Settings file (TOML).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print the projects USER may use, one per line.
    #[arg(long, value_name = "USER", conflicts_with_all = ["submit", "user", "project"])]
    list: Option<String>,
    #[command(flatten)]
    submission: SubmitArgs,
    /// The user to check.
    #[arg(required_unless_present_any = ["list", "submit"], conflicts_with = "submit")]
    user: Option<String>,
    /// The project to check.
    #[arg(required_unless_present_any = ["list", "submit"])]
    project: Option<String>,
}

// Every value job_submit.lua passes (the `--submit` options) is an `OsString`, made text
// by `submitted_fields`: bytes that are not UTF-8 are then the user's refusal (exit 1),
// where clap would call them bad usage (exit 2), which the filter shows as "the project
// check is broken". (Not a doc comment: clap would print it in --help.)
#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// Decide a job submission (the job_submit.lua mode).
    #[arg(long, requires = "uid")]
    submit: bool,
    /// With --submit: the job is being modified; only changed fields are given.
    #[arg(long, requires = "submit")]
    modify: bool,
    /// With --submit: uid of the job's owner (authoritative; Slurm authenticated it).
    #[arg(long, value_name = "UID", requires = "submit")]
    uid: Option<OsString>,
    /// With --submit: name of the job's owner, used when the uid has no passwd entry.
    #[arg(long = "user", value_name = "NAME", requires = "submit")]
    user_name: Option<OsString>,
    /// With --submit: uid of whoever submits or modifies, when not the owner.
    #[arg(long, value_name = "UID", requires = "submit")]
    by_uid: Option<OsString>,
    /// With --submit: the job's comment.
    #[arg(long, requires = "submit", allow_hyphen_values = true)]
    comment: Option<OsString>,
    /// With --submit: the job's account.
    #[arg(long, requires = "submit", allow_hyphen_values = true)]
    account: Option<OsString>,
    /// With --submit: the job's wckey.
    #[arg(long, requires = "submit", allow_hyphen_values = true)]
    wckey: Option<OsString>,
    /// With --submit: the job's size, for its worst case under `enforce = "committed"`.
    #[command(flatten)]
    size: SizeArgs,
}

/// What project-check was asked: one of its three modes, each with what it needs.
#[derive(Debug)]
pub enum Mode {
    /// `project-check USER PROJECT`, by hand: may USER charge PROJECT?
    Check { user: String, project: String },
    /// `project-check --list USER`: the projects USER may charge.
    List { user: String },
    /// `project-check --submit ...`: job_submit.lua deciding a submission or a change.
    Submit(Box<SubmitArgs>),
}

impl Args {
    /// The mode these arguments ask for, and the settings file they name.
    pub fn mode(self) -> Result<(Mode, Option<PathBuf>), Unusable> {
        let mode = match (self.list, self.submission.submit, self.user, self.project) {
            (Some(user), ..) => Mode::List { user },
            (None, true, ..) => Mode::Submit(Box::new(self.submission)),
            (None, false, Some(user), Some(project)) => Mode::Check { user, project },
            // clap requires USER PROJECT without --list or --submit.
            _ => {
                return Err(Unusable(
                    "give USER PROJECT, --list USER or --submit (see --help)".into(),
                ))
            }
        };
        Ok((mode, self.config))
    }
}

/// Why the answer could not be given (exit 2).
#[derive(Debug)]
pub struct Unusable(pub String);

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unusable {}

/// Decides, and tells the user on stderr when refused: true when the job may go in.
/// Errors are [`Unusable`], or stdout closed under `--list` (see [`super::exit_code`]).
pub fn run(args: Args) -> anyhow::Result<bool> {
    let (mode, config) = args.mode()?;
    match mode {
        Mode::Check { user, project } => check(config, &user, &project),
        Mode::List { user } => list(config, &user),
        Mode::Submit(submission) => submit(config, &submission),
    }
}

/// `project-check USER PROJECT`.
fn check(config: Option<PathBuf>, user: &str, project: &str) -> anyhow::Result<bool> {
    let settings = load(config)?;
    let kept = user_lines(&settings, user)?;
    let mut groups = SystemGroups::default();
    let verdict = decision::decide_project(&kept.list(), &mut groups, user, project);
    finish(&settings, verdict, None)
}

/// `project-check --list USER`.
fn list(config: Option<PathBuf>, user: &str) -> anyhow::Result<bool> {
    let settings = load(config)?;
    let kept = user_lines(&settings, user)?;
    for project in kept.list().projects_for(user, &mut SystemGroups::default()) {
        outln!("{project}")?;
    }
    Ok(true)
}

/// `project-check --submit ...`: a new job, or with `--modify` a change to one.
fn submit(config: Option<PathBuf>, args: &SubmitArgs) -> anyhow::Result<bool> {
    // A value from the user that is not text is the user's to fix (exit 1), never a
    // broken filter, even when the settings are unusable too.
    let given = match submitted_fields(args) {
        Ok(given) => given,
        Err(FieldError::User(refusal)) => return Ok(tell_user(refusal)),
        Err(FieldError::Usage(why)) => return Err(why.into()),
    };
    let settings = load(config)?;
    let user = owner_name(given.uid, given.user_name.as_deref())?;
    let kept = user_lines(&settings, &user)?;
    let mut groups = SystemGroups::default();
    let by_user = match given.by_uid.filter(|&by| Some(by) != given.uid) {
        Some(by) => Some(owner_name(Some(by), None)?),
        None => None,
    };
    let submission = Submission {
        user,
        comment: given.comment,
        account: given.account,
        wckey: given.wckey,
        modify: args.modify,
        by_user,
    };
    let verdict = decision::decide(&settings, &kept.list(), &mut groups, &submission);
    // `scontrol update` of a job's size, not its project: the change is priced against
    // the job's current project, with the job's own worst case as room.
    let replacing = match (&verdict, &given.modified) {
        (Verdict::ProjectUnchanged, Some((_, before))) => {
            current_project(args, settings.project_source).map(|project| (project, before))
        }
        _ => None,
    };
    let verdict = match &replacing {
        Some((project, _)) => Verdict::Allowed {
            project: project.clone(),
        },
        None => verdict,
    };
    let ask = match (&given.modified, &replacing) {
        (Some((after, _)), Some((_, before))) => Some(Ask {
            job: after,
            replacing: Some(before),
        }),
        // A new project for the job: it pays the whole job.
        (Some((after, _)), None) => Some(Ask::new(after)),
        (None, _) if !args.modify => Some(Ask::new(&given.request)),
        (None, _) => None,
    };
    finish(&settings, verdict, ask)
}

/// The settings, or why they cannot be used.
fn load(config: Option<PathBuf>) -> Result<Settings, Unusable> {
    Settings::load(config.as_deref()).map_err(|e| Unusable(e.to_string()))
}

/// The projects file's lines that can concern `user` (the whole file is checked).
fn user_lines(settings: &Settings, user: &str) -> Result<UserLines, Unusable> {
    let cannot_read = |e: std::io::Error| {
        Unusable(format!(
            "{}: cannot read projects file: {e}",
            settings.projects_file.display()
        ))
    };
    let file = std::fs::File::open(&settings.projects_file).map_err(cannot_read)?;
    UserLines::read(file, &settings.projects_file, user).map_err(|e| match e {
        ReadError::Io(e) => cannot_read(e),
        ReadError::Parse(e) => Unusable(e.to_string()),
    })
}

/// The projects file's verdict with the budget's (`ask`: the job's worst case, when
/// budgets are committed), logged and told: true when the job may go in.
fn finish(settings: &Settings, verdict: Verdict, ask: Option<Ask>) -> anyhow::Result<bool> {
    let decided = decision::with_budget(verdict, settings.budget.enabled, |project| {
        gate::check(&settings.budget, project, ask, crate::model::time::Timestamp::now())
    });
    // For syslog only: on a refusal, stderr is the user's message.
    if let Some(note) = decided.log {
        log::init("project-check");
        log::warn_to_syslog(&note);
    }
    // On acceptance, job_submit.lua shows what project-check prints to the submitter.
    if let (Some(line), true) = (&decided.tell, decided.verdict.is_allowed()) {
        outln!("{line}")?;
    }
    Ok(tell_user(decided.verdict))
}

/// The values job_submit.lua passed on, as text and numbers.
struct GivenFields {
    uid: Option<u32>,
    by_uid: Option<u32>,
    user_name: Option<String>,
    comment: Option<String>,
    account: Option<String>,
    wckey: Option<String>,
    request: JobRequest,
    /// `--modify` of a size field: the job after the change, and as it is.
    modified: Option<(JobRequest, JobRequest)>,
}

/// The project a job has now (`--was`), when it is a valid name: a modification that
/// leaves it alone is priced against it.
fn current_project(args: &SubmitArgs, source: crate::model::job::ProjectSource) -> Option<String> {
    let text = |field: &str| args.size.was(field).and_then(|v| v.to_str());
    let project = source.pick(text("comment"), text("account"), text("wckey"))?;
    crate::model::project_name::validate(project).ok()?;
    Some(project.to_string())
}

/// Why the values passed cannot be used.
enum FieldError {
    /// Bytes that are not text: the user's to fix (Slurm passes what was typed).
    User(Verdict),
    /// Text where job_submit.lua writes a number: the filter's fault.
    Usage(Unusable),
}

/// Slurm passes the user's bytes as they were typed; a value that is not text is refused,
/// whichever flag it came in (even a number: the message must not depend on which
/// field a future job_submit.lua passes).
fn submitted_fields(args: &SubmitArgs) -> Result<GivenFields, FieldError> {
    let text = |flag: &str, value: &Option<OsString>| {
        value
            .clone()
            .map(|v| decision::text_field(flag, v))
            .transpose()
            .map_err(FieldError::User)
    };
    fn number<N: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<Option<N>, FieldError> {
        value
            .map(|v| {
                v.parse()
                    .map_err(|_| FieldError::Usage(Unusable(format!("{flag} takes a number, not {v:?}"))))
            })
            .transpose()
    }
    Ok(GivenFields {
        uid: number("--uid", text("--uid", &args.uid)?)?,
        by_uid: number("--by-uid", text("--by-uid", &args.by_uid)?)?,
        user_name: text("--user", &args.user_name)?,
        comment: text("--comment", &args.comment)?,
        account: text("--account", &args.account)?,
        wckey: text("--wckey", &args.wckey)?,
        request: args.size.request().map_err(size_error)?,
        modified: if args.modify {
            args.size.modified().map_err(size_error)?
        } else {
            None
        },
    })
}

fn size_error(e: SizeError) -> FieldError {
    match e {
        SizeError::NotText(flag) => FieldError::User(decision::not_text_refusal(flag)),
        SizeError::Bad(bad) => FieldError::Usage(Unusable(bad.to_string())),
    }
}

/// Prints the refusal, if any, for the user; true when the job may go in.
fn tell_user(verdict: Verdict) -> bool {
    if let Verdict::Denied(message) = &verdict {
        eprintln!("{message}");
    }
    verdict.is_allowed()
}

/// The job owner's name: from the uid Slurm authenticated when the user database knows
/// it, else the name job_submit.lua passed.
fn owner_name(uid: Option<u32>, name: Option<&str>) -> Result<String, Unusable> {
    if let Some(uid) = uid {
        if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            return Ok(user.name);
        }
    }
    match name.filter(|n| !n.is_empty()) {
        Some(name) => Ok(name.to_string()),
        None => Err(Unusable(format!(
            "unknown user: uid {} has no entry in the user database and no user name was given",
            uid.map_or("?".into(), |u| u.to_string())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn given(extra: &[OsString]) -> Result<GivenFields, FieldError> {
        let mut argv: Vec<OsString> = ["project-check", "--submit", "--uid", "1000"]
            .map(OsString::from)
            .to_vec();
        argv.extend_from_slice(extra);
        match Args::try_parse_from(argv).expect("clap takes any bytes").mode() {
            Ok((Mode::Submit(submission), _)) => submitted_fields(&submission),
            _ => panic!("--submit is the submit mode"),
        }
    }

    #[test]
    fn bytes_are_the_user_s_and_a_non_number_is_the_filter_s() {
        let bad = OsString::from_vec(b"4\xff".to_vec());
        for flag in ["--partition", "--min-nodes", "--by-uid"] {
            match given(&[flag.into(), bad.clone()]) {
                Err(FieldError::User(Verdict::Denied(message))) => assert_eq!(
                    message,
                    format!("The {flag} value is not valid UTF-8 text. Use plain text.")
                ),
                _ => panic!("{flag}: bytes that are not UTF-8 are the user's refusal"),
            }
        }
        match given(&["--min-nodes".into(), "two\n".into()]) {
            Err(FieldError::Usage(Unusable(why))) => assert_eq!(why, r"the job's min_nodes is not a count ('two\n')"),
            _ => panic!("a non-number where the Lua writes a number is the filter's fault"),
        }
        let ok = given(&["--min-nodes".into(), "2".into(), "--partition".into(), "gpu".into()])
            .ok()
            .unwrap();
        assert_eq!(
            (ok.uid, ok.request.min_nodes, ok.request.partitions),
            (Some(1000), Some(2), vec!["gpu".to_string()])
        );
    }

    fn mode(argv: &[&str]) -> Result<Mode, clap::error::ErrorKind> {
        let args = Args::try_parse_from(std::iter::once("project-check").chain(argv.iter().copied()));
        Ok(args.map_err(|e| e.kind())?.mode().expect("clap checked the mode").0)
    }

    #[test]
    fn each_mode_is_one_variant_and_clap_refuses_a_mix() {
        use clap::error::ErrorKind;
        assert!(
            matches!(mode(&["alice", "P"]), Ok(Mode::Check { user, project }) if user == "alice" && project == "P")
        );
        assert!(matches!(mode(&["--list", "alice"]), Ok(Mode::List { user }) if user == "alice"));
        assert!(
            matches!(mode(&["--submit", "--uid", "7", "--comment", "-x"]), Ok(Mode::Submit(s)) if s.comment.as_deref() == Some("-x".as_ref()))
        );
        for (mixed, kind) in [
            (
                &["--list", "alice", "--submit", "--uid", "1"][..],
                ErrorKind::ArgumentConflict,
            ),
            (&["--list", "alice", "bob"][..], ErrorKind::ArgumentConflict),
            (&["--submit", "--uid", "1", "alice"][..], ErrorKind::ArgumentConflict),
            (
                &["alice", "P", "--comment", "P"][..],
                ErrorKind::MissingRequiredArgument,
            ),
            (&["--submit"][..], ErrorKind::MissingRequiredArgument),
            (&["--modify", "--uid", "1"][..], ErrorKind::MissingRequiredArgument),
            (&["alice"][..], ErrorKind::MissingRequiredArgument),
            (&[][..], ErrorKind::MissingRequiredArgument),
        ] {
            assert_eq!(mode(mixed).err(), Some(kind), "{mixed:?}");
        }
    }
}
