//! Slurm accounting records: the exact sacct command the report runs (or that produces a
//! file for `--sacct-file`), and one `--parsable2` line parsed into a [`Record`] without
//! copying. Everything that makes a line unusable is a [`Skip`] reason the report counts.

use std::path::Path;
use std::process::Command;

use super::calendar::{self, Plain, Timestamp};

/// The fields the report asks for, in this order. `Comment` is last so that a `|` inside
/// a comment (sacct does not escape it) cannot shift the other fields.
pub const FIELDS: [&str; 13] = [
    "JobID",
    "State",
    "User",
    "Account",
    "Partition",
    "WCKey",
    "Start",
    "End",
    "NNodes",
    "NCPUS",
    "AllocTRES",
    "NodeList",
    "Comment",
];

/// The arguments of the sacct run (after the program name) for the window `[since, until)`.
/// `--allocations`: one line per job allocation, never its steps (no double counting);
/// `--duplicates`: every run of a requeued job is its own line, so each run is charged;
/// `--truncate`: Start and End clipped to the window; `--allusers`: everyone's jobs.
pub fn arguments(since: Timestamp, until: Timestamp) -> Vec<String> {
    let mut args: Vec<String> = [
        "--parsable2",
        "--noheader",
        "--allusers",
        "--allocations",
        "--duplicates",
        "--truncate",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "-S".to_string(),
        Plain(since).to_string(),
        "-E".to_string(),
        Plain(until).to_string(),
        format!("--format={}", FIELDS.join(",")),
    ]);
    args
}

/// The sacct process, without a shell: times in UTC, in sacct's standard format whatever
/// `SLURM_TIME_FORMAT` the caller has.
pub fn command(program: &Path, since: Timestamp, until: Timestamp) -> Command {
    let mut c = Command::new(program);
    c.args(arguments(since, until))
        .env("TZ", "UTC")
        .env("SLURM_TIME_FORMAT", "standard");
    c
}

/// The command line as a person would type it, for documentation and error messages.
pub fn command_line(since: Timestamp, until: Timestamp) -> String {
    format!(
        "TZ=UTC SLURM_TIME_FORMAT=standard sacct {}",
        arguments(since, until).join(" ")
    )
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
    pub wckey: &'a str,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub nodes: u32,
    pub cpus: u32,
    /// `gres/gpu=N` of AllocTRES (all nodes together), 0 when absent.
    pub gpus: u32,
    pub node_list: &'a str,
    pub comment: &'a str,
}

/// What a line holds.
#[derive(Debug, PartialEq)]
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

/// Parses one line of `sacct --parsable2` output with [`FIELDS`].
pub fn parse_line(line: &str) -> Result<Line<'_>, Skip> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.trim().is_empty() {
        return Ok(Line::Blank);
    }
    let mut f: [&str; FIELDS.len()] = [""; FIELDS.len()];
    let mut n = 0;
    for (slot, value) in f.iter_mut().zip(line.splitn(FIELDS.len(), '|')) {
        *slot = value;
        n += 1;
    }
    if n < FIELDS.len() {
        return Err(Skip(format!(
            "{n} fields instead of {} (was the file made with --parsable2 --format={}?)",
            FIELDS.len(),
            FIELDS.join(",")
        )));
    }
    if f[0] == FIELDS[0] && f[1] == FIELDS[1] {
        return if f == FIELDS {
            Ok(Line::Header)
        } else {
            Err(Skip(format!("header with other fields than {}", FIELDS.join(","))))
        };
    }
    let job_id = f[0];
    if job_id.is_empty() {
        return Err(Skip("empty JobID".into()));
    }
    if job_id.contains('.') {
        return Err(Skip(format!(
            "job step {job_id} (only allocations are charged; run sacct with --allocations)"
        )));
    }
    Ok(Line::Job(Record {
        job_id,
        state: f[1],
        user: f[2],
        account: f[3],
        partition: f[4],
        wckey: f[5].strip_prefix('*').unwrap_or(f[5]),
        start: time("Start", f[6])?,
        end: time("End", f[7])?,
        nodes: count("NNodes", f[8])?,
        cpus: count("NCPUS", f[9])?,
        gpus: gpus(f[10])?,
        node_list: f[11],
        comment: f[12],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_allocation() {
        let line = "123_7|COMPLETED|alice|physics|compute|*wk|2024-03-01T10:00:00|2024-03-01T11:00:00|2|8|billing=8,cpu=8,gres/gpu:t4=2,gres/gpu=2,mem=16G,node=2|q-dy-c5-[1-2]|ProjectA|x\n";
        let Line::Job(r) = parse_line(line).unwrap() else {
            panic!()
        };
        assert_eq!(r.job_id, "123_7");
        assert_eq!(
            (r.user, r.account, r.partition, r.wckey),
            ("alice", "physics", "compute", "wk")
        );
        assert_eq!(r.start, Some(1_709_287_200));
        assert_eq!(r.end, Some(1_709_290_800));
        assert_eq!((r.nodes, r.cpus, r.gpus), (2, 8, 2));
        assert_eq!(r.node_list, "q-dy-c5-[1-2]");
        assert_eq!(r.comment, "ProjectA|x");
    }

    #[test]
    fn unknown_times_and_headers() {
        let Line::Job(r) = parse_line("9|RUNNING|a|b|c||2024-03-01T10:00:00|Unknown|1|1||n1|").unwrap() else {
            panic!()
        };
        assert_eq!(r.end, None);
        assert_eq!(parse_line(&FIELDS.join("|")).unwrap(), Line::Header);
        assert_eq!(parse_line("  \n").unwrap(), Line::Blank);
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let cases = [
            ("garbage", "1 fields instead of 13"),
            (
                "9.batch|COMPLETED|a|b|c||2024-03-01T10:00:00|2024-03-01T11:00:00|1|1||n1|",
                "job step 9.batch",
            ),
            (
                "9|COMPLETED|a|b|c||yesterday|2024-03-01T11:00:00|1|1||n1|",
                "Start \"yesterday\"",
            ),
            (
                "9|COMPLETED|a|b|c||2024-03-01T10:00:00|2024-03-01T11:00:00|x|1||n1|",
                "NNodes \"x\"",
            ),
            (
                "9|COMPLETED|a|b|c||2024-03-01T10:00:00|2024-03-01T11:00:00|1|1|gres/gpu=z|n1|",
                "gres/gpu",
            ),
            ("JobID|State|User", "fields instead"),
        ];
        for (line, want) in cases {
            let e = parse_line(line).unwrap_err().0;
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn command_is_exact() {
        let (since, _) = calendar::parse("2024-03-01").unwrap();
        let (until, _) = calendar::parse("2024-04-01").unwrap();
        assert_eq!(
            command_line(since, until),
            "TZ=UTC SLURM_TIME_FORMAT=standard sacct --parsable2 --noheader --allusers --allocations \
             --duplicates --truncate -S 2024-03-01T00:00:00 -E 2024-04-01T00:00:00 \
             --format=JobID,State,User,Account,Partition,WCKey,Start,End,NNodes,NCPUS,AllocTRES,NodeList,Comment"
        );
    }
}
