//! Slurm accounting records: the exact sacct command the report runs (or that produces a
//! file for `--sacct-file`), and one `--parsable2` line parsed into a [`Record`] without
//! copying. Everything that makes a line unusable is a [`Skip`] reason the report counts.
//! The free-text field that names the project is asked for only when it does, and last
//! ([`crate::slurm::fields`] says why).

use std::path::Path;
use std::process::Command;

use crate::model::job::ProjectSource;
use crate::model::time::{self, Plain, Timestamp};
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
    /// `Group` (the job's Unix group), for `--by group` and `--group`.
    group: bool,
    /// A header without `Group` is refused (`--by group`, `--group`); else it reads empty.
    group_required: bool,
    /// `TotalCPU` and `ElapsedRaw`, for CPU efficiency (`--by job`, and the grouped
    /// report's wasted cost when it runs sacct itself).
    usage: bool,
    /// `MaxRSS` and `ReqMem` (with `TimelimitRaw` and the usage), for the efficiency of
    /// `--by job`.
    efficiency: bool,
    project: Option<ProjectField>,
}

impl Layout {
    pub fn new(source: ProjectSource, cluster: bool) -> Layout {
        Layout {
            cluster,
            time_limit: false,
            group: false,
            group_required: false,
            usage: false,
            efficiency: false,
            project: ProjectField::of(source),
        }
    }

    /// The same with what a per-job row shows beyond the charge: `TimelimitRaw`, `Group`,
    /// then `TotalCPU`, `ElapsedRaw`, `MaxRSS` and `ReqMem` (after `Group`). None of them is text a user
    /// writes. A saved file whose header lacks them still reads: those jobs' group is
    /// empty and their efficiency unknown (unless [`Layout::with_group`] requires it).
    pub fn with_efficiency(self) -> Layout {
        Layout {
            time_limit: true,
            group: true,
            usage: true,
            efficiency: true,
            ..self
        }
    }

    /// The same with `Group` (after `TimelimitRaw`), the job's Unix group.
    pub fn with_group(self) -> Layout {
        Layout {
            group: true,
            group_required: true,
            ..self
        }
    }

    /// The same with `TimelimitRaw` (after `Cluster`), for what running jobs commit.
    pub fn with_time_limit(self) -> Layout {
        Layout {
            time_limit: true,
            ..self
        }
    }

    /// The same with `TotalCPU` and `ElapsedRaw` (after `Group`), for the wasted cost of
    /// the grouped report. sacct prints TotalCPU 0 for every job with `--allocations`
    /// (checked with 22.05): with these fields it must run without it, and then lists
    /// each job's steps too, which [`Columns::parse`] passes over.
    pub fn with_usage(self) -> Layout {
        Layout { usage: true, ..self }
    }

    /// True when the usage fields are asked for: sacct then runs without
    /// `--allocations` and lists each job's steps after it (see [`Line::Step`]).
    pub fn reads_steps(&self) -> bool {
        self.usage
    }

    /// True when each step's `MaxRSS` is read: a job's record is complete only once the
    /// step lines after it are read ([`crate::cost::records`]).
    pub fn reads_step_memory(&self) -> bool {
        self.efficiency
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
        if self.group {
            f.push("Group");
        }
        if self.usage {
            f.extend(USAGE);
        }
        if self.efficiency {
            f.extend(MEMORY);
        }
        f.extend(self.project.map(ProjectField::sacct_name));
        f
    }

    /// The value of `--format`.
    pub fn format(&self) -> String {
        self.fields().join(",")
    }

    /// True when the comment is asked for: its records must then be confirmed against
    /// sacct's bare list of job ids ([`crate::cost::job_ids`]).
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
    /// The job's Unix group; empty unless asked for.
    pub group: &'a str,
    /// The time limit in minutes when asked for and set (`None`: UNLIMITED, or not asked).
    pub time_limit: Option<u64>,
    /// CPU seconds its steps used (sacct's `TotalCPU`, user and system), when asked for
    /// and recorded (`None`: not asked, or empty).
    pub total_cpu: Option<f64>,
    /// The job's whole run time in seconds (`ElapsedRaw`), when asked for.
    pub elapsed_raw: Option<u64>,
    /// The memory the job asked for, all nodes together, in KiB (`ReqMem`, see
    /// [`req_mem`]), when asked for and known.
    pub req_mem: Option<u64>,
    /// The largest `MaxRSS` of the job's steps in KiB (each one the peak of the step's
    /// largest task), when asked for and recorded: [`crate::cost::records`] fills it in from
    /// the step lines that follow the job's own (whose MaxRSS is empty).
    pub max_rss: Option<u64>,
    /// Empty unless `WCKey` is the project's field (and so asked for).
    pub wckey: &'a str,
    /// Empty unless `Comment` is the project's field (and so asked for).
    pub comment: &'a str,
}

#[cfg(test)]
impl Record<'static> {
    /// For unit tests: job 1 of user `u`, account `a`, partition `p`, COMPLETED, one
    /// hour on one CPU of node `n1`, nothing else known. Tests change what they test
    /// with `Record { field, ..Record::example() }`.
    pub(crate) fn example() -> Record<'static> {
        Record {
            job_id: "1",
            state: "COMPLETED",
            user: "u",
            account: "a",
            partition: "p",
            start: Some(Timestamp::from_second(0)),
            end: Some(Timestamp::from_second(3600)),
            nodes: 1,
            cpus: 1,
            gpus: 0,
            node_list: "n1",
            cluster: "",
            group: "",
            time_limit: None,
            total_cpu: None,
            elapsed_raw: None,
            req_mem: None,
            max_rss: None,
            wckey: "",
            comment: "",
        }
    }
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
    /// A job step, when the efficiency fields are asked for: sacct then lists steps too
    /// (their CPU time adds up on the job's line), and a step is nothing to charge. Its
    /// `MaxRSS` (KiB) counts towards its job's peak.
    Step {
        /// The id of the job the step belongs to (`123_7` for `123_7.batch`).
        job_id: &'a str,
        max_rss: Option<u64>,
    },
}

/// Why a line cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

fn time(field: &str, value: &str) -> Result<Option<Timestamp>, Skip> {
    match value {
        "" | "Unknown" | "None" => Ok(None),
        v => time::parse(v)
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

/// Where a value goes in [`Columns::parse`]: [`FIELDS`] by their index, then these.
const CLUSTER: usize = FIELDS.len();
const TIME_LIMIT: usize = FIELDS.len() + 1;
const GROUP: usize = FIELDS.len() + 2;
const TOTAL_CPU: usize = FIELDS.len() + 3;
const ELAPSED: usize = FIELDS.len() + 4;
const MAX_RSS: usize = FIELDS.len() + 5;
const REQ_MEM: usize = FIELDS.len() + 6;
const PROJECT: usize = FIELDS.len() + 7;
const SLOTS: usize = FIELDS.len() + 8;

/// The fields [`Layout::with_usage`] adds after `Group`, in this order.
const USAGE: [&str; 2] = ["TotalCPU", "ElapsedRaw"];
/// The fields [`Layout::with_efficiency`] adds after those.
const MEMORY: [&str; 2] = ["MaxRSS", "ReqMem"];

/// A memory size as sacct prints it, a number and a binary unit (`214368K`, `300M`,
/// `1.50G`), in KiB; a number alone is in `bare_unit_kib` KiB (sacct's own unit for the
/// field). `None` when empty, 0 or not a size: sacct prints nothing (or 0) for what it
/// did not record, which is unknown, not nothing used.
pub fn memory_kib(text: &str, bare_unit_kib: f64) -> Option<u64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let scale = match unit {
        "" => bare_unit_kib,
        "K" => 1.0,
        "M" => 1024.0,
        "G" => 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0,
        "P" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let value: f64 = number.parse().ok().filter(|v: &f64| v.is_finite() && *v > 0.0)?;
    Some((value * scale).round() as u64)
}

/// `ReqMem` of a job line, all nodes together, in KiB. Slurm 21.08 and later (Debian 12
/// has 22.05) print the job's total, the `mem` of its ReqTRES (`300M`; `--mem-per-cpu
/// 100M` on 2 CPUs prints `200M`). Earlier releases print the request as made, per
/// node (`4000Mn`) or per CPU (`4000Mc`): multiplied by the job's nodes or CPUs.
pub fn req_mem(text: &str, nodes: u32, cpus: u32) -> Option<u64> {
    let text = text.trim();
    let (size, times) = match text.strip_suffix('n') {
        Some(size) => (size, nodes),
        None => match text.strip_suffix('c') {
            Some(size) => (size, cpus),
            None => (text, 1),
        },
    };
    memory_kib(size, 1024.0)
        .map(|kib| kib * u64::from(times))
        .filter(|&kib| kib > 0)
}

/// `TotalCPU` as sacct prints it, `[D-][HH:]MM:SS[.mmm]`, in seconds; `None` when empty
/// or not a duration (never 0 for a value sacct did not record).
pub fn total_cpu(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let (days, clock) = match text.split_once('-') {
        Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
        None => (0, text),
    };
    let mut seconds = 0.0;
    // Two or three parts, without collecting them (once per line of a million).
    let count = clock.bytes().filter(|&b| b == b':').count() + 1;
    if !(2..=3).contains(&count) {
        return None;
    }
    for (i, part) in clock.split(':').enumerate() {
        let last = i + 1 == count;
        let value: f64 = if last {
            part.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0)?
        } else {
            f64::from(part.parse::<u32>().ok()?)
        };
        seconds = seconds * 60.0 + value;
    }
    Some(days as f64 * 86_400.0 + seconds)
}
/// A column the report does not read (an extra field of a header).
const UNREAD: u8 = u8::MAX;

/// sacct fields whose value a person writes and sacct prints raw, `|` included. When one
/// is the last column of a file with a header, a `|` in it stays in it, as with the
/// project's own field last in the report's command.
const FREE_TEXT: [&str; 9] = [
    "Comment",
    "AdminComment",
    "SystemComment",
    "WCKey",
    "JobName",
    "SubmitLine",
    "WorkDir",
    "Constraints",
    "Extra",
];

/// A header names no field the report needs: the file cannot be read by name, and
/// guessing by position would charge the wrong fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField {
    /// The field, as the report asks sacct for it.
    pub field: &'static str,
    /// The header's line number (1 unless blank lines come first).
    pub line: u64,
    /// The fields the report reads with this `project_source`, comma-separated.
    pub format: String,
}

impl std::fmt::Display for MissingField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: the header has no {} field, which the report needs (make the file with \
             sacct --parsable2 --format={})",
            self.line, self.field, self.format
        )
    }
}

impl std::error::Error for MissingField {}

impl MissingField {
    /// The [`MissingField`] inside an I/O error from reading records, if that is what it is.
    pub fn of(e: &std::io::Error) -> Option<&MissingField> {
        e.get_ref().and_then(|inner| inner.downcast_ref())
    }
}

/// Where each field the report reads sits in a line, worked out once per input (from the
/// header when it has one) so that each of a million lines is only split and indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    layout: Layout,
    /// For each column, the slot its value goes to ([`UNREAD`]: not read).
    slot: Vec<u8>,
    /// The last column may hold `|` (free text): lines are split into at most as many
    /// fields as there are columns; otherwise a `|` more is a field too many.
    last_is_text: bool,
    /// The header line, when the input has one: the same line again later (files joined
    /// with `cat`) is skipped as a header.
    header: Option<String>,
    /// `TotalCPU` and `ElapsedRaw` are read (asked for, or named by the header), and step
    /// lines are passed over.
    usage: bool,
}

impl Columns {
    /// The columns of a file without a header: exactly `layout`'s fields, in its order.
    pub fn of(layout: Layout) -> Columns {
        let mut slot: Vec<u8> = (0..FIELDS.len() as u8).collect();
        for (asked, s) in [
            (layout.cluster, CLUSTER),
            (layout.time_limit, TIME_LIMIT),
            (layout.group, GROUP),
            (layout.usage, TOTAL_CPU),
            (layout.usage, ELAPSED),
            (layout.efficiency, MAX_RSS),
            (layout.efficiency, REQ_MEM),
            (layout.project.is_some(), PROJECT),
        ] {
            if asked {
                slot.push(s as u8);
            }
        }
        Columns {
            layout,
            slot,
            last_is_text: layout.project.is_some(),
            header: None,
            usage: layout.usage,
        }
    }

    /// The columns a header line names, when `line` (the input's first line that is not
    /// blank, number `line_no`) is one: `None` when it is not a header (a record). A header
    /// is what sacct prints without `--noheader`: field names only, `JobID` among them
    /// (a record's fields include its times and an empty or `=`-holding AllocTRES, so no
    /// record reads as one). Names compare case-insensitively, as sacct's `--format` does;
    /// the order is free and fields the report does not read are ignored.
    pub fn from_header(line: &str, layout: Layout, line_no: u64) -> Option<Result<Columns, MissingField>> {
        let line = trim_end(line);
        let names: Vec<&str> = line.split('|').collect();
        let is_name = |n: &&str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric());
        if !names.iter().all(is_name) || !names.iter().any(|n| n.eq_ignore_ascii_case(FIELDS[0])) {
            return None;
        }
        let mut slot = vec![UNREAD; names.len()];
        let wanted = Columns::of(layout);
        for (name, &s) in layout.fields().into_iter().zip(&wanted.slot) {
            match names.iter().position(|n| n.eq_ignore_ascii_case(name)) {
                // A name given twice: the first is the one read.
                Some(i) if slot[i] == UNREAD => slot[i] = s,
                Some(_) => {}
                // Efficiency is unknown without them, not wrong.
                None if layout.efficiency
                    && (name == "TimelimitRaw"
                        || MEMORY.contains(&name)
                        || (name == "Group" && !layout.group_required)) => {}
                None if layout.usage && USAGE.contains(&name) => {}
                None => {
                    return Some(Err(MissingField {
                        field: name,
                        line: line_no,
                        format: layout.format(),
                    }))
                }
            }
        }
        // A saved file that has the usage fields gives the grouped report its wasted cost
        // even though a file without a header is read without them.
        if !layout.usage {
            for (name, s) in USAGE.into_iter().zip([TOTAL_CPU, ELAPSED]) {
                if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(name)) {
                    if slot[i] == UNREAD {
                        slot[i] = s as u8;
                    }
                }
            }
        }
        // Steps are passed over whenever usage is asked for, even from a file without it.
        let usage = layout.usage || slot.contains(&(TOTAL_CPU as u8));
        let last_is_text = names
            .last()
            .is_some_and(|last| FREE_TEXT.iter().any(|t| t.eq_ignore_ascii_case(last)));
        Some(Ok(Columns {
            layout,
            slot,
            last_is_text,
            header: Some(line.to_string()),
            usage,
        }))
    }

    /// The JobID field of `line` (without its line ending), found without parsing the
    /// rest: whether a line is a job step, and whose, before it is parsed.
    pub fn job_id<'a>(&self, line: &'a str) -> &'a str {
        let column = self.slot.iter().position(|&s| s == 0).unwrap_or(0);
        let line = trim_end(line);
        if column == 0 {
            // The usual case, without a char searcher.
            return line
                .as_bytes()
                .iter()
                .position(|&b| b == b'|')
                .map_or(line, |at| &line[..at]);
        }
        line.split('|').nth(column).unwrap_or("")
    }

    /// How many fields a line has.
    fn count(&self) -> usize {
        self.slot.len()
    }

    /// Parses one line of `sacct --parsable2` output with these columns. A line with another
    /// number of fields, or whose JobID is not a job id, is skipped: it is not what sacct
    /// prints for a job, whatever made it (a newline in a free-text field, or a file made
    /// with other fields).
    pub fn parse<'a>(&self, line: &'a str) -> Result<Line<'a>, Skip> {
        let line = trim_end(line);
        if line.trim().is_empty() {
            return Ok(Line::Blank);
        }
        let columns = self.count();
        // One piece more than the columns when the last is not text: a `|` too many shows.
        let pieces = if self.last_is_text { columns } else { columns + 1 };
        let mut f = [""; SLOTS];
        // `line.splitn(pieces, '|')` by hand: a byte scan per field instead of a char
        // searcher per field (the largest single cost of reading a million lines).
        let mut n = 0;
        let mut rest = line;
        loop {
            let value = if n + 1 == pieces {
                rest
            } else {
                rest.as_bytes()
                    .iter()
                    .position(|&b| b == b'|')
                    .map_or(rest, |at| &rest[..at])
            };
            if let Some(&s) = self.slot.get(n) {
                if s != UNREAD {
                    f[usize::from(s)] = value;
                }
            }
            n += 1;
            // `|` is ASCII: the byte after it starts a char.
            match rest.get(value.len() + 1..) {
                Some(after) if value.len() < rest.len() => rest = after,
                _ => break,
            }
        }
        if n != columns {
            let n = line.split('|').count();
            return Err(Skip(match self.header {
                Some(_) => format!("{n} fields instead of {columns} (the header's fields)"),
                None => format!(
                    "{n} fields instead of {columns} (was the file made with --parsable2 --format={}?)",
                    self.layout.format()
                ),
            }));
        }
        if let Some(header) = &self.header {
            if f[0].eq_ignore_ascii_case(FIELDS[0]) {
                return if line == header {
                    Ok(Line::Header)
                } else {
                    Err(Skip("a header with other fields than the file's first".into()))
                };
            }
        } else if f[0] == FIELDS[0] && f[1] == FIELDS[1] {
            let names = self.layout.fields();
            return if line.split('|').eq(names.iter().copied()) {
                Ok(Line::Header)
            } else {
                Err(Skip(format!("header with other fields than {}", self.layout.format())))
            };
        }
        let job_id = f[0];
        if let Some((job, _)) = job_id.split_once('.').filter(|(job, _)| fields::is_job_id(job)) {
            if self.usage {
                return Ok(Line::Step {
                    job_id: job,
                    max_rss: memory_kib(f[MAX_RSS], 1.0),
                });
            }
            return Err(Skip(format!(
                "job step {job_id} (only allocations are charged; run sacct with --allocations)"
            )));
        }
        if !fields::is_job_id(job_id) {
            return Err(Skip(format!("JobID {job_id:?} is not a job id")));
        }
        let project = f[PROJECT];
        let (wckey, comment) = match self.layout.project {
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
            cluster: f[CLUSTER],
            group: f[GROUP],
            time_limit: if self.layout.time_limit {
                f[TIME_LIMIT].parse().ok()
            } else {
                None
            },
            total_cpu: if self.usage { total_cpu(f[TOTAL_CPU]) } else { None },
            elapsed_raw: if self.usage { f[ELAPSED].parse().ok() } else { None },
            req_mem: if self.layout.efficiency {
                req_mem(f[REQ_MEM], count("NNodes", f[7])?, count("NCPUS", f[8])?)
            } else {
                None
            },
            max_rss: if self.layout.efficiency {
                memory_kib(f[MAX_RSS], 1.0)
            } else {
                None
            },
            wckey,
            comment,
        }))
    }
}

/// `line` without its line ending.
fn trim_end(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// Parses one line of a file without a header made with `layout` (see [`Columns::parse`]).
pub fn parse_line(line: &str, layout: Layout) -> Result<Line<'_>, Skip> {
    Columns::of(layout).parse(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMENT: Layout = Layout {
        cluster: false,
        time_limit: false,
        group: false,
        group_required: false,
        usage: false,
        efficiency: false,
        project: Some(ProjectField::Comment),
    };
    const ACCOUNT: Layout = Layout {
        cluster: false,
        time_limit: false,
        group: false,
        group_required: false,
        usage: false,
        efficiency: false,
        project: None,
    };
    const WCKEY: Layout = Layout {
        cluster: false,
        time_limit: false,
        group: false,
        group_required: false,
        usage: false,
        efficiency: false,
        project: Some(ProjectField::Wckey),
    };

    #[test]
    fn efficiency_fields_go_before_the_free_text_and_total_cpu_reads_sacct_durations() {
        let layout = Layout::new(ProjectSource::Comment, false).with_efficiency();
        assert_eq!(
            layout.fields()[FIELDS.len()..],
            [
                "TimelimitRaw",
                "Group",
                "TotalCPU",
                "ElapsedRaw",
                "MaxRSS",
                "ReqMem",
                "Comment"
            ]
        );
        let line =
            "7|COMPLETED|u|a|p|2024-03-01T00:00:00|2024-03-01T01:00:00|1|2|cpu=2|n1|60|g|01:30.500|3600||300M|P|x";
        match Columns::of(layout).parse(line) {
            Ok(Line::Job(r)) => {
                assert_eq!((r.time_limit, r.group, r.comment), (Some(60), "g", "P|x"));
                assert_eq!((r.total_cpu, r.elapsed_raw), (Some(90.5), Some(3600)));
                assert_eq!((r.req_mem, r.max_rss), (Some(300 * 1024), None));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(total_cpu("1-02:03:04"), Some(93_784.0));
        assert_eq!(total_cpu("02:03:04"), Some(7384.0));
        assert_eq!(total_cpu("00:00:00"), Some(0.0));
        for unrecorded in ["", "  ", "x", "1:2:3:4", "-1:00"] {
            assert_eq!(total_cpu(unrecorded), None, "{unrecorded:?}");
        }
        // A saved file without them reads; --group still needs Group.
        let old = "JobID|State|User|Account|Partition|Start|End|NNodes|NCPUS|AllocTRES|NodeList|Comment";
        assert!(matches!(Columns::from_header(old, layout, 1), Some(Ok(_))));
        let e = Columns::from_header(old, layout.with_group(), 1).unwrap().unwrap_err();
        assert_eq!(e.field, "Group");
    }

    #[test]
    fn steps_are_passed_over_when_usage_is_read_and_skipped_otherwise() {
        let line = "7.batch|COMPLETED|u|a|p|2024-03-01T00:00:00|2024-03-01T01:00:00|1|1|cpu=1|n1|Proj";
        assert!(matches!(Columns::of(COMMENT).parse(line), Err(Skip(why)) if why.contains("job step 7.batch")));
        let layout = Layout::new(ProjectSource::Comment, false).with_efficiency();
        let fields = layout.fields();
        // The same step with the efficiency fields (before the free text).
        let values: Vec<&str> = fields
            .iter()
            .enumerate()
            .map(|(i, _)| match i {
                0 => "7.batch",
                1 => "COMPLETED",
                5 => "2024-03-01T00:00:00",
                6 => "2024-03-01T01:00:00",
                7 | 8 => "1",
                9 => "cpu=1",
                _ => "",
            })
            .collect();
        assert_eq!(
            Columns::of(layout).parse(&values.join("|")),
            Ok(Line::Step {
                job_id: "7",
                max_rss: None
            })
        );
        let columns = Columns::of(layout);
        let rss = fields.iter().position(|f| *f == "MaxRSS").unwrap();
        let mut values = values;
        values[0] = "7_3.0";
        values[rss] = "214368K";
        assert_eq!(columns.job_id(&values.join("|")), "7_3.0");
        assert_eq!(
            columns.parse(&values.join("|")),
            Ok(Line::Step {
                job_id: "7_3",
                max_rss: Some(214_368)
            })
        );
    }

    /// What sacct 22.05 printed on the real slurmdbd fixture (tests/integration/
    /// report_slurmdbd.rs): `ReqMem` is the job's total (`--mem-per-cpu=100M` on 2 CPUs
    /// printed `200M`); before 21.08 it carried `n` (per node) or `c` (per CPU).
    #[test]
    fn memory_sizes_and_requests() {
        assert_eq!(memory_kib("214368K", 1.0), Some(214_368));
        assert_eq!(memory_kib("1.50G", 1.0), Some(1_572_864));
        assert_eq!(
            memory_kib("300", 1024.0),
            Some(307_200),
            "a bare number is the field's unit"
        );
        for unknown in ["", "0", "0K", "x", "12Q", "-5M", "NaNK"] {
            assert_eq!(memory_kib(unknown, 1.0), None, "{unknown:?}");
        }
        assert_eq!(req_mem("300M", 2, 8), Some(307_200), "22.05: the total");
        assert_eq!(req_mem("4000Mn", 2, 8), Some(2 * 4000 * 1024), "per node x nodes");
        assert_eq!(req_mem("1Gc", 2, 8), Some(8 * 1024 * 1024), "per CPU x CPUs");
        assert_eq!(req_mem("0n", 2, 8), None);
    }

    #[test]
    fn the_group_goes_before_the_free_text() {
        let layout = Layout::new(ProjectSource::Comment, false).with_group();
        assert_eq!(layout.fields().last(), Some(&"Comment"));
        assert_eq!(layout.fields()[layout.fields().len() - 2], "Group");
        let line = "7|COMPLETED|u|a|p|2024-03-01T00:00:00|2024-03-01T01:00:00|1|1|cpu=1|n1|phys|Proj|ect";
        match Columns::of(layout).parse(line) {
            Ok(Line::Job(r)) => assert_eq!((r.group, r.comment), ("phys", "Proj|ect")),
            other => panic!("{other:?}"),
        }
    }

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
        let args = arguments(
            crate::model::time::Timestamp::from_second(0),
            crate::model::time::Timestamp::from_second(1),
            "JobID",
            Some("east,west"),
        );
        assert_eq!(args[args.len() - 2..], ["--clusters", "east,west"]);
    }

    #[test]
    fn an_ordinary_users_command_omits_allusers_and_says_so() {
        let all = arguments_for(
            Users::All,
            crate::model::time::Timestamp::from_second(0),
            crate::model::time::Timestamp::from_second(1),
            "JobID",
            None,
        );
        let own = arguments_for(
            Users::Own,
            crate::model::time::Timestamp::from_second(0),
            crate::model::time::Timestamp::from_second(1),
            "JobID",
            None,
        );
        assert!(all.contains(&"--allusers".to_string()));
        assert!(!own.contains(&"--allusers".to_string()));
        assert_eq!(all.len(), own.len() + 1);
        // What the error message shows is what ran.
        assert!(!line_of(&own).contains("--allusers"), "{}", line_of(&own));
        assert_eq!(
            line_of(&all),
            command_line(
                crate::model::time::Timestamp::from_second(0),
                crate::model::time::Timestamp::from_second(1),
                "JobID",
                None
            )
        );
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
        assert_eq!(r.start, Some(crate::model::time::Timestamp::from_second(1_709_287_200)));
        assert_eq!(r.end, Some(crate::model::time::Timestamp::from_second(1_709_290_800)));
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

    /// What the previous release's documented command asked for: `WCKey` sixth and
    /// `Comment` last, whatever the project.
    const PREVIOUS: &str = "JobID|State|User|Account|Partition|WCKey|Start|End|NNodes|NCPUS|AllocTRES|NodeList|Comment";

    fn header(line: &str, layout: Layout) -> Columns {
        Columns::from_header(line, layout, 1)
            .expect("a header")
            .expect("every field")
    }

    fn job<'a>(columns: &Columns, line: &'a str) -> Record<'a> {
        match columns.parse(line) {
            Ok(Line::Job(r)) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn a_file_of_the_previous_release_reads_by_its_header() {
        let line = "7|COMPLETED|alice|physics|compute|*wk|2024-03-01T10:00:00|2024-03-01T11:00:00|2|8|\
                    gres/gpu=2|q-dy-c5-[1-2]|Project|A\n";
        let r = job(&header(PREVIOUS, WCKEY), line);
        assert_eq!((r.job_id, r.account, r.wckey, r.comment), ("7", "physics", "wk", ""));
        assert_eq!(
            (r.start, r.end),
            (
                Some(crate::model::time::Timestamp::from_second(1_709_287_200)),
                Some(crate::model::time::Timestamp::from_second(1_709_290_800))
            )
        );
        assert_eq!((r.nodes, r.cpus, r.gpus, r.node_list), (2, 8, 2, "q-dy-c5-[1-2]"));
        // Comment is last there: a `|` in it stays in it.
        let r = job(&header(PREVIOUS, COMMENT), line);
        assert_eq!((r.wckey, r.comment), ("", "Project|A"));
        let r = job(&header(PREVIOUS, ACCOUNT), line);
        assert_eq!((r.account, r.wckey, r.comment), ("physics", "", ""));
        // The same header again (files joined with cat) is a header; another is skipped.
        assert_eq!(
            header(PREVIOUS, WCKEY).parse(&format!("{PREVIOUS}\r\n")),
            Ok(Line::Header)
        );
        assert!(header(PREVIOUS, WCKEY).parse(&FIELDS.join("|")).is_err());
        // Today's rule for a file without a header: every line of it is skipped.
        assert!(parse_line(line, WCKEY).is_err());
    }

    #[test]
    fn a_header_in_any_order_and_case_with_extra_fields() {
        let canonical = Layout::new(ProjectSource::Comment, true).with_time_limit();
        let names = "nodelist|JobIDRaw|Comment|CLUSTER|jobid|Elapsed|AllocTRES|End|Start|NNodes|\
                     NCPUS|Partition|Account|User|State|TimelimitRaw|JobName";
        let columns = header(names, canonical);
        let line = "n1|9|P|x|east|9|00:10:00|gres/gpu=1|2024-03-01T11:00:00|2024-03-01T10:00:00|1|4|\
                    gpu|phys|bob|COMPLETED|60|my|job";
        // The comment is not last here: a `|` in it shifts the fields after it, and then
        // the JobID column holds the cluster (JobName, last, absorbs the extra field).
        let e = columns.parse(line).unwrap_err().0;
        assert!(e.contains("JobID \"east\""), "{e}");
        let line = line.replacen("P|x", "P x", 1);
        let same = "9|COMPLETED|bob|phys|gpu|2024-03-01T10:00:00|2024-03-01T11:00:00|1|4|gres/gpu=1|n1|east|60|P x";
        assert_eq!(job(&columns, &line), job(&Columns::of(canonical), same));
        // A field too many or too few, with the last not free text: skipped.
        let columns = header(
            "Start|End|JobID|State|User|Account|Partition|NNodes|NCPUS|AllocTRES|NodeList|Comment|Elapsed",
            COMMENT,
        );
        let ok = "2024-03-01T10:00:00|Unknown|9|RUNNING|a|b|c|1|1||n1|P|00:01:00";
        assert_eq!(job(&columns, ok).comment, "P");
        for bad in [format!("{ok}|x"), ok.rsplit_once('|').unwrap().0.to_string()] {
            let e = columns.parse(&bad).unwrap_err().0;
            assert!(e.contains("instead of 13 (the header's fields)"), "{e}");
        }
    }

    #[test]
    fn a_header_without_a_needed_field_names_it() {
        let no_wckey = PREVIOUS.replace("|WCKey", "");
        let e = Columns::from_header(&no_wckey, WCKEY, 3).unwrap().unwrap_err();
        assert_eq!((e.field, e.line), ("WCKey", 3));
        assert!(e.to_string().contains("line 3: the header has no WCKey field"), "{e}");
        let e = Columns::from_header("JobID|State", ACCOUNT, 1).unwrap().unwrap_err();
        assert_eq!(e.field, "User");
        let limited = Layout::new(ProjectSource::Account, false).with_time_limit();
        let e = Columns::from_header(PREVIOUS, limited, 1).unwrap().unwrap_err();
        assert_eq!(e.field, "TimelimitRaw");
        // What is not a header: records, pending or not, and garbage.
        for line in [
            "9|PENDING|a|b|c|Unknown|Unknown|1|1||None assigned",
            "9|RUNNING|a|b|c|2024-03-01T10:00:00|Unknown|1|1|cpu=1|n1",
            "garbage",
            "",
        ] {
            assert_eq!(Columns::from_header(line, ACCOUNT, 1), None, "{line}");
        }
    }

    #[test]
    fn command_is_exact() {
        let (since, _) = time::parse("2024-03-01").unwrap();
        let (until, _) = time::parse("2024-04-01").unwrap();
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
