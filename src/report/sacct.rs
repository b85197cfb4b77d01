//! Slurm accounting records: the exact sacct command the report runs (or that produces a
//! file for `--sacct-file`), and one `--parsable2` line parsed into a [`Record`] without
//! copying. Everything that makes a line unusable is a [`Skip`] reason the report counts.
//! The free-text field that names the project is asked for only when it does, and last
//! ([`crate::slurm::fields`] says why).

use std::path::Path;
use std::process::Command;

use super::calendar::{self, Plain, Timestamp};
use crate::config::ProjectSource;
use crate::slurm::fields::{self, ProjectField};

/// The fields the report always asks for, in this order. None of them is free text that
/// a job's submitter writes (project-check refuses control characters in the account).
pub const FIELDS: [&str; 11] = [
    "JobID",
    "State",
    "User",
    "Account",
    "Partition",
    "Start",
    "End",
    "NNodes",
    "NCPUS",
    "AllocTRES",
    "NodeList",
];

/// The fields asked for under one `project_source`: [`FIELDS`], `Cluster` when several
/// clusters are asked about (`--clusters`), then `WCKey` or `Comment` when that is the
/// project, and never otherwise (see [`crate::slurm::fields`]). The saved file of
/// `--sacct-file` must be made with the same list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    cluster: bool,
    time_limit: bool,
    project: Option<ProjectField>,
}

impl Layout {
    pub fn new(source: ProjectSource, cluster: bool) -> Layout {
        Layout {
            cluster,
            time_limit: false,
            project: ProjectField::of(source),
        }
    }

    /// The same with `TimelimitRaw` (after `Cluster`), for what running jobs commit.
    pub fn with_time_limit(self) -> Layout {
        Layout {
            time_limit: true,
            ..self
        }
    }

    /// The field names, in order.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut f = FIELDS.to_vec();
        if self.cluster {
            f.push("Cluster");
        }
        if self.time_limit {
            f.push("TimelimitRaw");
        }
        f.extend(self.project.map(ProjectField::sacct_name));
        f
    }

    /// The value of `--format`.
    pub fn format(&self) -> String {
        self.fields().join(",")
    }

    /// True when the comment is asked for: its records must then be confirmed against
    /// sacct's bare list of job ids ([`super::job_ids`]).
    pub fn has_comment(&self) -> bool {
        self.project == Some(ProjectField::Comment)
    }
}

/// Whose jobs sacct is asked about. sacct lists everyone's jobs only to root (or
/// SlurmUser, or an operator); for anyone else `--allusers` is ignored, so the report says
/// what it covers instead of passing a flag that does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Users {
    /// `--allusers`: everyone's jobs.
    All,
    /// No `--allusers`: the caller's own jobs.
    Own,
}

impl Users {
    /// `All` for root, `Own` for anyone else (an ordinary user running the report).
    pub fn of_caller() -> Users {
        if nix::unistd::geteuid().is_root() {
            Users::All
        } else {
            Users::Own
        }
    }
}

/// The arguments of the sacct run (after the program name) for the window `[since, until)`
/// and the fields `format` (a [`Layout::format`], or just `JobID`).
/// `--allocations`: one line per job allocation, never its steps (no double counting);
/// `--duplicates`: every run of a requeued job is its own line, so each run is charged;
/// `--truncate`: Start and End clipped to the window; `--allusers`: everyone's jobs;
/// `--clusters LIST` (or `all`) when given: those clusters' jobs instead of this one's.
pub fn arguments(since: Timestamp, until: Timestamp, format: &str, clusters: Option<&str>) -> Vec<String> {
    arguments_for(Users::All, since, until, format, clusters)
}

/// [`arguments`] for `users`: without `--allusers` for [`Users::Own`].
pub fn arguments_for(
    users: Users,
    since: Timestamp,
    until: Timestamp,
    format: &str,
    clusters: Option<&str>,
) -> Vec<String> {
    let mut args: Vec<String> = vec!["--parsable2".into(), "--noheader".into()];
    if users == Users::All {
        args.push("--allusers".into());
    }
    args.extend(["--allocations", "--duplicates", "--truncate"].map(String::from));
    args.extend([
        "-S".to_string(),
        Plain(since).to_string(),
        "-E".to_string(),
        Plain(until).to_string(),
        format!("--format={format}"),
    ]);
    if let Some(clusters) = clusters {
        args.extend(["--clusters".to_string(), clusters.to_string()]);
    }
    args
}

/// The arguments that list one job's allocations (each run of it, with `--duplicates`)
/// whatever their time: sacct's default window with `-j` starts at the epoch. No
/// `--allusers`: sacct shows an ordinary user their own jobs (or everyone's, as
/// PrivateData allows) and root every job.
pub fn job_arguments(job_id: &str, format: &str) -> Vec<String> {
    [
        "--parsable2",
        "--noheader",
        "--allocations",
        "--duplicates",
        "-j",
        job_id,
    ]
    .map(String::from)
    .into_iter()
    .chain([format!("--format={format}")])
    .collect()
}

/// The sacct process for `args`, without a shell: times in UTC, in sacct's standard
/// format whatever `SLURM_TIME_FORMAT` the caller has.
pub fn command_with(program: &Path, args: &[String]) -> Command {
    let mut c = Command::new(program);
    c.args(args).env("TZ", "UTC").env("SLURM_TIME_FORMAT", "standard");
    c
}

/// `args` as a person would type them, for documentation and error messages.
pub fn line_of(args: &[String]) -> String {
    format!("TZ=UTC SLURM_TIME_FORMAT=standard sacct {}", args.join(" "))
}

/// The sacct process of [`arguments`] (everyone's jobs).
pub fn command(program: &Path, since: Timestamp, until: Timestamp, format: &str, clusters: Option<&str>) -> Command {
    command_with(program, &arguments(since, until, format, clusters))
}

/// The command line of [`arguments`] as a person would type it.
pub fn command_line(since: Timestamp, until: Timestamp, format: &str, clusters: Option<&str>) -> String {
    line_of(&arguments(since, until, format, clusters))
}

/// One job allocation (or one run of it) as sacct reports it. Times are `None` when sacct
/// says `Unknown` or `None` (not started, or still running).
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub job_id: &'a str,
    pub state: &'a str,
    pub user: &'a str,
    pub account: &'a str,
    pub partition: &'a str,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub nodes: u32,
    pub cpus: u32,
    /// `gres/gpu=N` of AllocTRES (all nodes together), 0 when absent.
    pub gpus: u32,
    pub node_list: &'a str,
    /// Empty unless several clusters are asked about.
    pub cluster: &'a str,
    /// The time limit in minutes when asked for and set (`None`: UNLIMITED, or not asked).
    pub time_limit: Option<u64>,
    /// Empty unless `WCKey` is the project's field (and so asked for).
    pub wckey: &'a str,
    /// Empty unless `Comment` is the project's field (and so asked for).
    pub comment: &'a str,
}

/// What a line holds.
#[derive(Debug, PartialEq)]
// Each line's `Line` is matched at once and dropped: boxing the record would allocate per
// line of a million-line report for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Line<'a> {
    Job(Record<'a>),
    /// The header sacct prints without `--noheader`, with exactly the report's fields.
    Header,
    Blank,
}

/// Why a line cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

fn time(field: &str, value: &str) -> Result<Option<Timestamp>, Skip> {
    match value {
        "" | "Unknown" | "None" => Ok(None),
        v => calendar::parse(v)
            .map(|(t, _)| Some(t))
            .ok_or_else(|| Skip(format!("{field} {v:?} is not a time (YYYY-MM-DDTHH:MM:SS)"))),
    }
}

fn count(field: &str, value: &str) -> Result<u32, Skip> {
    value
        .parse()
        .map_err(|_| Skip(format!("{field} {value:?} is not a whole number")))
}

/// `gres/gpu=N` in an AllocTRES list (the untyped total, not `gres/gpu:a100=N`).
fn gpus(tres: &str) -> Result<u32, Skip> {
    match tres.split(',').find_map(|item| item.strip_prefix("gres/gpu=")) {
        Some(n) => count("AllocTRES gres/gpu", n),
        None => Ok(0),
    }
}

/// Parses one line of `sacct --parsable2` output made with `layout`. A line with another
/// number of fields, or whose JobID is not a job id, is skipped: it is not what sacct
/// prints for a job, whatever made it (a newline in a free-text field, or a file made with
/// other fields).
pub fn parse_line(line: &str, layout: Layout) -> Result<Line<'_>, Skip> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.trim().is_empty() {
        return Ok(Line::Blank);
    }
    let names = layout.fields();
    let Some(f) = fields::split(line, names.len(), layout.project.is_some()) else {
        return Err(Skip(format!(
            "{} fields instead of {} (was the file made with --parsable2 --format={}?)",
            line.split('|').count(),
            names.len(),
            layout.format()
        )));
    };
    if f[0] == FIELDS[0] && f[1] == FIELDS[1] {
        return if f == names {
            Ok(Line::Header)
        } else {
            Err(Skip(format!("header with other fields than {}", layout.format())))
        };
    }
    let job_id = f[0];
    if job_id.contains('.') && fields::is_job_id(job_id.split('.').next().unwrap_or_default()) {
        return Err(Skip(format!(
            "job step {job_id} (only allocations are charged; run sacct with --allocations)"
        )));
    }
    if !fields::is_job_id(job_id) {
        return Err(Skip(format!("JobID {job_id:?} is not a job id")));
    }
    let mut next = FIELDS.len();
    let mut optional = |asked: bool| {
        let value = asked.then(|| f.get(next).copied().unwrap_or_default());
        next += usize::from(asked);
        value
    };
    let cluster = optional(layout.cluster).unwrap_or_default();
    let time_limit = optional(layout.time_limit).and_then(|t| t.parse().ok());
    let project = optional(layout.project.is_some()).unwrap_or_default();
    let (wckey, comment) = match layout.project {
        Some(ProjectField::Wckey) => (project.strip_prefix('*').unwrap_or(project), ""),
        Some(ProjectField::Comment) => ("", project),
        None => ("", ""),
    };
    Ok(Line::Job(Record {
        job_id,
        state: f[1],
        user: f[2],
        account: f[3],
        partition: f[4],
        start: time("Start", f[5])?,
        end: time("End", f[6])?,
        nodes: count("NNodes", f[7])?,
        cpus: count("NCPUS", f[8])?,
        gpus: gpus(f[9])?,
        node_list: f[10],
        cluster,
        time_limit,
        wckey,
        comment,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMENT: Layout = Layout {
        cluster: false,
        time_limit: false,
        project: Some(ProjectField::Comment),
    };
    const ACCOUNT: Layout = Layout {
        cluster: false,
        time_limit: false,
        project: None,
    };
    const WCKEY: Layout = Layout {
        cluster: false,
        time_limit: false,
        project: Some(ProjectField::Wckey),
    };

    #[test]
    fn several_clusters_add_the_cluster_before_the_free_text() {
        let layout = Layout::new(ProjectSource::Comment, true);
        assert_eq!(layout.fields()[FIELDS.len()..], ["Cluster", "Comment"]);
        let Line::Job(r) = parse_line("9|RUNNING|a|b|c|2024-03-01T10:00:00|Unknown|1|1||n1|east|P|x", layout).unwrap()
        else {
            panic!()
        };
        assert_eq!((r.cluster, r.comment), ("east", "P|x"));
        let limited = layout.with_time_limit();
        assert_eq!(limited.fields()[FIELDS.len()..], ["Cluster", "TimelimitRaw", "Comment"]);
        let Line::Job(r) = parse_line(
            "9|RUNNING|a|b|c|2024-03-01T10:00:00|Unknown|1|1||n1|east|120|P",
            limited,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!((r.cluster, r.time_limit, r.comment), ("east", Some(120), "P"));
        let Line::Job(r) = parse_line(
            "9|RUNNING|a|b|c|2024-03-01T10:00:00|Unknown|1|1||n1|east|UNLIMITED|P",
            limited,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(r.time_limit, None);
        let args = arguments(0, 1, "JobID", Some("east,west"));
        assert_eq!(args[args.len() - 2..], ["--clusters", "east,west"]);
    }

    #[test]
    fn an_ordinary_users_command_omits_allusers_and_says_so() {
        let all = arguments_for(Users::All, 0, 1, "JobID", None);
        let own = arguments_for(Users::Own, 0, 1, "JobID", None);
        assert!(all.contains(&"--allusers".to_string()));
        assert!(!own.contains(&"--allusers".to_string()));
        assert_eq!(all.len(), own.len() + 1);
        // What the error message shows is what ran.
        assert!(!line_of(&own).contains("--allusers"), "{}", line_of(&own));
        assert_eq!(line_of(&all), command_line(0, 1, "JobID", None));
        let job = job_arguments("42_3", "JobID,State");
        assert_eq!(
            line_of(&job),
            "TZ=UTC SLURM_TIME_FORMAT=standard sacct --parsable2 --noheader --allocations --duplicates \
             -j 42_3 --format=JobID,State"
        );
    }

    #[test]
    fn parses_an_allocation() {
        let line = "123_7|COMPLETED|alice|physics|compute|2024-03-01T10:00:00|2024-03-01T11:00:00|2|8|billing=8,cpu=8,gres/gpu:t4=2,gres/gpu=2,mem=16G,node=2|q-dy-c5-[1-2]|ProjectA|x\n";
        let Line::Job(r) = parse_line(line, COMMENT).unwrap() else {
            panic!()
        };
        assert_eq!(r.job_id, "123_7");
        assert_eq!(
            (r.user, r.account, r.partition, r.wckey),
            ("alice", "physics", "compute", "")
        );
        assert_eq!(r.start, Some(1_709_287_200));
        assert_eq!(r.end, Some(1_709_290_800));
        assert_eq!((r.nodes, r.cpus, r.gpus), (2, 8, 2));
        assert_eq!(r.node_list, "q-dy-c5-[1-2]");
        assert_eq!(r.comment, "ProjectA|x");

        let Line::Job(r) = parse_line("9|RUNNING|a|b|c|2024-03-01T10:00:00|Unknown|1|1||n1|*wk", WCKEY).unwrap() else {
            panic!()
        };
        assert_eq!((r.wckey, r.comment), ("wk", ""));
        let Line::Job(r) = parse_line("9+1|RUNNING|a|b|c|2024-03-01T10:00:00|Unknown|1|1||n1", ACCOUNT).unwrap() else {
            panic!()
        };
        assert_eq!((r.job_id, r.account, r.wckey, r.comment), ("9+1", "b", "", ""));
    }

    #[test]
    fn unknown_times_and_headers() {
        let Line::Job(r) = parse_line("9|RUNNING|a|b|c|2024-03-01T10:00:00|Unknown|1|1||n1|", COMMENT).unwrap() else {
            panic!()
        };
        assert_eq!(r.end, None);
        assert_eq!(parse_line(&COMMENT.fields().join("|"), COMMENT).unwrap(), Line::Header);
        assert_eq!(parse_line(&FIELDS.join("|"), ACCOUNT).unwrap(), Line::Header);
        assert_eq!(parse_line("  \n", COMMENT).unwrap(), Line::Blank);
    }

    #[test]
    fn only_the_project_field_is_asked_and_last() {
        assert_eq!(Layout::new(ProjectSource::Account, false).fields(), FIELDS);
        assert_eq!(
            Layout::new(ProjectSource::Comment, false).fields().last(),
            Some(&"Comment")
        );
        assert_eq!(Layout::new(ProjectSource::Wckey, false).fields().last(), Some(&"WCKey"));
        for source in [ProjectSource::Account, ProjectSource::Wckey] {
            assert!(!Layout::new(source, false).format().contains("Comment"), "{source:?}");
        }
        assert!(!Layout::new(ProjectSource::Comment, false).format().contains("WCKey"));
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let cases = [
            (COMMENT, "garbage", "1 fields instead of 12"),
            (
                COMMENT,
                "9.batch|COMPLETED|a|b|c|2024-03-01T10:00:00|2024-03-01T11:00:00|1|1||n1|",
                "job step 9.batch",
            ),
            (
                COMMENT,
                "9|COMPLETED|a|b|c|yesterday|2024-03-01T11:00:00|1|1||n1|",
                "Start \"yesterday\"",
            ),
            (
                COMMENT,
                "9|COMPLETED|a|b|c|2024-03-01T10:00:00|2024-03-01T11:00:00|x|1||n1|",
                "NNodes \"x\"",
            ),
            (
                COMMENT,
                "9|COMPLETED|a|b|c|2024-03-01T10:00:00|2024-03-01T11:00:00|1|1|gres/gpu=z|n1|",
                "gres/gpu",
            ),
            (COMMENT, "JobID|State|User", "fields instead"),
            // The second line of a comment: not a job id, or one field too many.
            (
                COMMENT,
                "y|COMPLETED|a|b|c|2024-03-01T10:00:00|2024-03-01T11:00:00|1|1||n1|",
                "JobID \"y\" is not a job id",
            ),
            (
                ACCOUNT,
                "9|COMPLETED|a|b|c|2024-03-01T10:00:00|2024-03-01T11:00:00|1|1||n1|x",
                "12 fields instead of 11",
            ),
        ];
        for (layout, line, want) in cases {
            let e = parse_line(line, layout).unwrap_err().0;
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn command_is_exact() {
        let (since, _) = calendar::parse("2024-03-01").unwrap();
        let (until, _) = calendar::parse("2024-04-01").unwrap();
        assert_eq!(
            command_line(since, until, &COMMENT.format(), None),
            "TZ=UTC SLURM_TIME_FORMAT=standard sacct --parsable2 --noheader --allusers --allocations \
             --duplicates --truncate -S 2024-03-01T00:00:00 -E 2024-04-01T00:00:00 \
             --format=JobID,State,User,Account,Partition,Start,End,NNodes,NCPUS,AllocTRES,NodeList,Comment"
        );
        assert!(command_line(since, until, &ACCOUNT.format(), None)
            .ends_with("--format=JobID,State,User,Account,Partition,Start,End,NNodes,NCPUS,AllocTRES,NodeList"));
    }
}
