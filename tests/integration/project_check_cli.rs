//! project-check as administrators and job_submit.lua run it: exit codes, messages, the
//! settings file rules, and errors that name the file and line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(projects: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("projects_list.conf"), projects).unwrap();
        std::fs::write(
            dir.path().join("cost-tags.toml"),
            format!("projects_file = {:?}\n", dir.path().join("projects_list.conf")),
        )
        .unwrap();
        Setup { dir }
    }

    fn settings(&self) -> PathBuf {
        self.dir.path().join("cost-tags.toml")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(crate::bin("project-check"))
            .arg("--config")
            .arg(self.settings())
            .args(args)
            .env_remove("COST_TAGS_CONFIG")
            .output()
            .unwrap()
    }

    /// A submission (job_submit.lua's call) from uid 3999999, which has no passwd entry,
    /// with the user name Slurm gave.
    fn submit_named(&self, user: &str, comment: &str) -> Output {
        self.run(&["--submit", "--uid", "3999999", "--user", user, "--comment", comment])
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const PROJECTS: &str = "alice=ProjectA, ProjectC\nalice = ProjectD\nbob=ProjectB\n*=Shared\n";

#[test]
fn allowed_and_refused_by_hand() {
    let s = Setup::new(PROJECTS);
    let ok = s.run(&["alice", "ProjectA"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(ok.stdout.is_empty() && ok.stderr.is_empty());
    let no = s.run(&["bob", "ProjectA"]);
    assert_eq!(no.status.code(), Some(1));
    assert_eq!(stderr(&no), "You are not allowed to use the project ProjectA\n");
    assert_eq!(s.run(&["nobody-here", "Shared"]).status.code(), Some(0));
    assert_eq!(s.run(&["nobody-here", "ProjectA"]).status.code(), Some(1));
}

#[test]
fn list_gives_the_union_sorted() {
    let s = Setup::new(PROJECTS);
    let out = s.run(&["--list", "alice"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ProjectA\nProjectC\nProjectD\nShared\n"
    );
}

#[test]
fn submit_mode_uses_uid_and_project_source() {
    let s = Setup::new("root=Admin\n");
    // uid 0 is root, exempt by default: passes with no project at all.
    assert_eq!(s.run(&["--submit", "--uid", "0"]).status.code(), Some(0));
    // With no exempt users, root needs a project like anyone.
    std::fs::write(
        s.settings(),
        format!(
            "projects_file = {:?}\nexempt_users = []\nproject_source = \"account\"\n",
            s.dir.path().join("projects_list.conf")
        ),
    )
    .unwrap();
    let out = s.run(&["--submit", "--uid", "0", "--comment", "Admin"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "You need to specify a project. \"--account ProjectName\"\n"
    );
    assert_eq!(
        s.run(&["--submit", "--uid", "0", "--account", "Admin"]).status.code(),
        Some(0)
    );
    // A modification that does not touch the account is not checked.
    assert_eq!(
        s.run(&["--submit", "--modify", "--uid", "0", "--comment", "x"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn unknown_uid_without_name_is_a_clear_error() {
    let s = Setup::new(PROJECTS);
    let out = s.run(&["--submit", "--uid", "3999999", "--comment", "ProjectA"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("uid 3999999"), "{}", stderr(&out));
    let named = s.submit_named("alice", "ProjectA");
    assert_eq!(named.status.code(), Some(0), "{}", stderr(&named));
}

#[test]
fn malformed_projects_file_names_file_and_line() {
    let s = Setup::new("alice=ProjectA\n\nbob ProjectB\n");
    let out = s.run(&["alice", "ProjectA"]);
    assert_eq!(out.status.code(), Some(2));
    let file = s.dir.path().join("projects_list.conf");
    assert!(
        stderr(&out).contains(&format!("{}:3: ", file.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn settings_errors_name_the_file_and_key() {
    let s = Setup::new(PROJECTS);
    std::fs::write(s.settings(), "project_sauce = \"comment\"\n").unwrap();
    let out = s.run(&["alice", "ProjectA"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&s.settings().display().to_string()) && err.contains("project_sauce"),
        "{err}"
    );

    let missing = Command::new(crate::bin("project-check"))
        .args(["--config", "/nonexistent/cost-tags.toml", "alice", "ProjectA"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("/nonexistent/cost-tags.toml"));

    // COST_TAGS_CONFIG names the file when --config does not.
    let via_env = Command::new(crate::bin("project-check"))
        .args(["alice", "ProjectA"])
        .env("COST_TAGS_CONFIG", "/nonexistent/env.toml")
        .output()
        .unwrap();
    assert_eq!(via_env.status.code(), Some(2));
    assert!(stderr(&via_env).contains("/nonexistent/env.toml"));
}

#[test]
fn missing_projects_file_is_a_configuration_error() {
    let s = Setup::new(PROJECTS);
    std::fs::remove_file(s.dir.path().join("projects_list.conf")).unwrap();
    let out = s.run(&["alice", "ProjectA"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("projects_list.conf"));
}

#[test]
fn help_explains_the_modes() {
    let out = Command::new(crate::bin("project-check"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["--list", "--submit", "EXIT CODES", "@physics", "project_source"] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
    assert!(Path::new(&crate::bin("project-check")).exists());
}

/// sssd with `use_fully_qualified_names` and winbind name users `alice@corp.example` and
/// `CORP\alice`; the filter fails closed, so such a line once refused every job.
#[test]
fn directory_service_user_names_work() {
    let s = Setup::new("alice@corp.example = ProjectA\nCORP\\bob = ProjectB\n@domain users@corp.example = Shared\n");
    assert_eq!(s.run(&["alice@corp.example", "ProjectA"]).status.code(), Some(0));
    assert_eq!(s.run(&["alice", "ProjectA"]).status.code(), Some(1));
    assert_eq!(s.run(&["CORP\\bob", "ProjectB"]).status.code(), Some(0));
    let named = s.submit_named("alice@corp.example", "ProjectA");
    assert_eq!(named.status.code(), Some(0), "{}", stderr(&named));
}

/// What a user typed is refused with exit 1 and a message for the user, never exit 2
/// (which job_submit.lua reports to the administrator as a broken filter).
#[test]
fn user_text_that_is_not_text_is_refused_not_an_error() {
    use std::os::unix::ffi::OsStrExt;
    let s = Setup::new(PROJECTS);
    let out = Command::new(crate::bin("project-check"))
        .arg("--config")
        .arg(s.settings())
        .args(["--submit", "--uid", "3999999", "--user", "alice", "--comment"])
        .arg(std::ffi::OsStr::from_bytes(b"Project\xffA"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "The --comment value is not valid UTF-8 text. Use plain text.\n"
    );
    let out = s.run(&[
        "--submit",
        "--uid",
        "3999999",
        "--user",
        "alice",
        "--comment",
        "ProjectA",
        "--wckey",
        "a\nb",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("The --wckey value contains a newline"),
        "{}",
        stderr(&out)
    );
}

/// The options job_submit.lua passes to project-check, read from the script itself so
/// that an option added there later is tried here too: the `"--name"` literals, and the
/// fields `add_fields` turns into `--comment`, `--account` and `--wckey`.
fn options_the_filter_passes() -> Vec<String> {
    let lua =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/job_submit.lua")).unwrap();
    let mut options: Vec<String> = lua
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("--") && s.len() > 2 && s[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .map(str::to_string)
        .collect();
    let fields = lua
        .split_once("for _, field in ipairs({")
        .and_then(|(_, rest)| rest.split_once('}'))
        .expect("add_fields' list of fields in job_submit.lua")
        .0;
    options.extend(fields.split('"').skip(1).step_by(2).map(|field| format!("--{field}")));
    // The size fields, passed as `--` and the job_desc field with `_` as `-`.
    let sizes = lua
        .split_once("local SIZE_FIELDS = {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .expect("SIZE_FIELDS in job_submit.lua")
        .0;
    options.extend(
        sizes
            .split('"')
            .skip(1)
            .step_by(2)
            .map(|field| format!("--{}", field.replace('_', "-"))),
    );
    options.sort();
    options.dedup();
    options
}

/// Every value job_submit.lua passes can carry bytes that are not UTF-8 (a partition,
/// account or wckey typed with a Latin-1 keyboard), and each is the user's to fix: exit
/// 1 with a message that names the option and does not echo the bytes (a terminal
/// escape among them must not reach the user's terminal). Before, every option but
/// --comment, --account, --wckey and --user was parsed by clap: exit 2, which the
/// filter shows as "the project check is broken". The numbers (--uid, --nodes, ...) are
/// written by the Lua itself and the user name comes from slurmctld, so sbatch cannot
/// make them bad bytes (tests/integration/submit_filter.rs drives the others through
/// slurmctld); here each runs with the argv the Lua builds, one value replaced.
#[test]
fn every_value_the_filter_passes_may_be_bad_bytes() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let options = options_the_filter_passes();
    for known in [
        "--uid",
        "--by-uid",
        "--user",
        "--comment",
        "--account",
        "--wckey",
        "--partition",
        "--min-nodes",
        "--tres-per-job",
        "--array-inx",
    ] {
        assert!(
            options.iter().any(|o| o == known),
            "{known} not found in job_submit.lua: {options:?}"
        );
    }
    let s = Setup::new(PROJECTS);
    // What the Lua passes for a new job (uid 3999999 has no passwd entry: --user counts).
    let job: [(&str, &str); 13] = [
        ("--uid", "3999999"),
        ("--by-uid", "3999999"),
        ("--user", "alice"),
        ("--time-limit", "60"),
        ("--min-nodes", "1"),
        ("--max-nodes", "4294967294"),
        ("--min-cpus", "2"),
        ("--shared", "65534"),
        ("--array-inx", "0-9%2"),
        ("--tres-per-node", "gres:gpu:1"),
        ("--partition", "compute"),
        ("--comment", "ProjectA"),
        ("--account", "physics"),
    ];
    let bad = b"Proj\x1b[2J\xff\xfeect".to_vec();
    // --submit and --modify are switches: they carry no value.
    for option in options
        .iter()
        .filter(|o| !["--submit", "--modify"].contains(&o.as_str()))
    {
        let mut argv: Vec<OsString> = vec!["--submit".into()];
        for (name, value) in job.iter().filter(|(name, _)| name != option) {
            argv.push(name.into());
            argv.push(value.into());
        }
        if option == "--was" {
            // The job as it is: passed only for `scontrol update`.
            argv.push("--modify".into());
        }
        argv.push(option.into());
        argv.push(OsString::from_vec(bad.clone()));
        let out = Command::new(crate::bin("project-check"))
            .arg("--config")
            .arg(s.settings())
            .args(&argv)
            .env_remove("COST_TAGS_CONFIG")
            .output()
            .unwrap();
        assert_eq!(
            (out.status.code(), stderr(&out)),
            (
                Some(1),
                format!("The {option} value is not valid UTF-8 text. Use plain text.\n")
            ),
            "{option} with bytes that are not UTF-8"
        );
        assert!(out.stdout.is_empty());
    }
    // The same values as text are accepted: the refusal above is the bytes', not the argv's.
    let argv: Vec<&str> = std::iter::once("--submit")
        .chain(job.iter().flat_map(|(n, v)| [*n, *v]))
        .collect();
    let ok = s.run(&argv);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
}
