//! project-check's size arguments: job_submit.lua passes `job_desc`'s fields raw (Slurm's
//! sentinels, TRES strings, the array expression), each as bytes that may not be text;
//! [`crate::slurm::job_request`] reads them into the request the budget prices.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use clap::Args;

use crate::slurm::job_request::{self, BadField, JobRequest};

/// The job's size, as job_submit.lua passes it from `job_desc` (all raw, all optional).
#[derive(Args, Debug, Default, Clone)]
pub(crate) struct SizeArgs {
    /// With --submit: every partition asked for, comma-separated; unset: the default.
    #[arg(long, value_name = "NAMES", requires = "submit", allow_hyphen_values = true)]
    partition: Option<OsString>,
    /// With --submit: `time_limit` in minutes; 4294967295 (INFINITE) is UNLIMITED,
    /// 4294967294 (NO_VAL) unset.
    #[arg(long, value_name = "MINUTES", requires = "submit", allow_hyphen_values = true)]
    time_limit: Option<OsString>,
    /// With --submit: `min_nodes` and `max_nodes` (`-N 1-10`).
    #[arg(long, value_name = "N", requires = "submit", allow_hyphen_values = true)]
    min_nodes: Option<OsString>,
    #[arg(long, value_name = "N", requires = "submit", allow_hyphen_values = true)]
    max_nodes: Option<OsString>,
    /// With --submit: `num_tasks`, `cpus_per_task`, `ntasks_per_node`, `min_cpus`.
    #[arg(long, value_name = "N", requires = "submit", allow_hyphen_values = true)]
    num_tasks: Option<OsString>,
    #[arg(long, value_name = "N", requires = "submit", allow_hyphen_values = true)]
    cpus_per_task: Option<OsString>,
    #[arg(long, value_name = "N", requires = "submit", allow_hyphen_values = true)]
    ntasks_per_node: Option<OsString>,
    #[arg(long, value_name = "N", requires = "submit", allow_hyphen_values = true)]
    min_cpus: Option<OsString>,
    /// With --submit: `shared`; 0 is --exclusive.
    #[arg(long, value_name = "N", requires = "submit", allow_hyphen_values = true)]
    shared: Option<OsString>,
    /// With --submit: `array_inx`, the array's index expression (`0-9`, `1-9:2%4`).
    #[arg(long, value_name = "EXPR", requires = "submit", allow_hyphen_values = true)]
    array_inx: Option<OsString>,
    /// With --submit: `tres_per_job`, `tres_per_node`, `tres_per_task` (`gres/gpu:8`,
    /// `gres:gpu:a100:2`, `gpu:8`).
    #[arg(long, value_name = "TRES", requires = "submit", allow_hyphen_values = true)]
    tres_per_job: Option<OsString>,
    #[arg(long, value_name = "TRES", requires = "submit", allow_hyphen_values = true)]
    tres_per_node: Option<OsString>,
    #[arg(long, value_name = "TRES", requires = "submit", allow_hyphen_values = true)]
    tres_per_task: Option<OsString>,
    /// With --modify: the job as it is, one `FIELD=VALUE` per job_rec field (the size
    /// fields above, and comment, account, wckey), so the change can be priced.
    #[arg(long, value_name = "FIELD=VALUE", requires = "modify", allow_hyphen_values = true)]
    was: Vec<OsString>,
}

impl SizeArgs {
    /// The request these fields describe, or the first field that is not text (the
    /// user's bytes: their refusal) or not what Slurm writes (the filter's fault).
    pub(crate) fn request(&self) -> Result<JobRequest, SizeError> {
        // The job's current values were the user's text once too: bytes that are not
        // UTF-8 are refused the same way, whatever field they are in.
        if self.was.iter().any(|w| w.to_str().is_none()) {
            return Err(SizeError::NotText("--was"));
        }
        request_from(|field| self.given(field))
    }

    /// For `scontrol update`: the job as it would be after the change (each field being
    /// changed, else the job's current value from `--was`), and as it is now. `None`
    /// when no size field is being changed.
    pub(crate) fn modified(&self) -> Result<Option<(JobRequest, JobRequest)>, SizeError> {
        let before = |field: &str| self.was(field);
        let changing: Vec<&'static str> = FIELDS
            .iter()
            .copied()
            .filter(|f| self.given(f).is_some_and(|v| !unset(f, v)))
            .collect();
        if changing.is_empty() {
            return Ok(None);
        }
        let mut after = request_from(|field| {
            if changing.contains(&field) {
                self.given(field)
            } else {
                before(field)
            }
        })?;
        // job_rec does not say whether the job is --exclusive: after the change it is
        // priced on whole nodes, the job as it is on its CPUs (the smaller room). Errs
        // towards refusing.
        if !changing.contains(&"shared") && before("shared").is_none() {
            after.exclusive = true;
        }
        Ok(Some((after, request_from(before)?)))
    }

    /// The job's current value of a job_rec field (`--was FIELD=VALUE`, the last wins).
    pub(crate) fn was(&self, field: &str) -> Option<&OsStr> {
        self.was.iter().rev().find_map(|item| {
            let value = item.as_bytes().strip_prefix(field.as_bytes())?.strip_prefix(b"=")?;
            Some(OsStr::from_bytes(value))
        })
    }

    /// The raw value of one job_desc field, when job_submit.lua passed it.
    fn given(&self, field: &str) -> Option<&OsStr> {
        let value = match field {
            "partition" => &self.partition,
            "time_limit" => &self.time_limit,
            "min_nodes" => &self.min_nodes,
            "max_nodes" => &self.max_nodes,
            "num_tasks" => &self.num_tasks,
            "cpus_per_task" => &self.cpus_per_task,
            "ntasks_per_node" => &self.ntasks_per_node,
            "min_cpus" => &self.min_cpus,
            "shared" => &self.shared,
            "array_inx" => &self.array_inx,
            "tres_per_job" => &self.tres_per_job,
            "tres_per_node" => &self.tres_per_node,
            "tres_per_task" => &self.tres_per_task,
            // Never in job_desc: from `--was` only.
            _ => return None,
        };
        value.as_deref()
    }
}

/// The job_desc fields that size a job, as job_submit.lua names them.
const FIELDS: [&str; 13] = [
    "partition",
    "time_limit",
    "min_nodes",
    "max_nodes",
    "num_tasks",
    "cpus_per_task",
    "ntasks_per_node",
    "min_cpus",
    "shared",
    "array_inx",
    "tres_per_job",
    "tres_per_node",
    "tres_per_task",
];

/// Whether a value job_desc holds for `field` means "not set" (in a modification: not
/// being changed): empty, or Slurm's NO_VAL.
fn unset(field: &str, raw: &OsStr) -> bool {
    let Some(text) = raw.to_str() else { return false };
    if text.trim().is_empty() {
        return true;
    }
    match field {
        "time_limit" => job_request::time_limit(text) == Ok(job_request::TimeLimit::Unset),
        "cpus_per_task" | "ntasks_per_node" | "shared" => job_request::count16("", text) == Ok(None),
        "min_nodes" | "max_nodes" | "num_tasks" | "min_cpus" => job_request::count32("", text) == Ok(None),
        _ => false,
    }
}

/// A request from a lookup of raw job_desc fields by name.
fn request_from<'a>(raw: impl Fn(&'static str) -> Option<&'a OsStr>) -> Result<JobRequest, SizeError> {
    let text =
        |field: &'static str| -> Result<Option<String>, SizeError> { raw(field).map(|v| utf8(field, v)).transpose() };
    let count32 = |field| -> Result<Option<u32>, SizeError> {
        Ok(match text(field)? {
            Some(t) => job_request::count32(field, &t)?,
            None => None,
        })
    };
    let count16 = |field| -> Result<Option<u32>, SizeError> {
        Ok(match text(field)? {
            Some(t) => job_request::count16(field, &t)?,
            None => None,
        })
    };
    let gpus = |field| -> Result<Option<u32>, SizeError> {
        Ok(match text(field)? {
            Some(t) => job_request::gpus_in_tres(field, &t)?,
            None => None,
        })
    };
    Ok(JobRequest {
        partitions: text("partition")?
            .map(|p| {
                p.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        time_limit: match text("time_limit")? {
            Some(t) => job_request::time_limit(&t)?,
            None => Default::default(),
        },
        min_nodes: count32("min_nodes")?,
        max_nodes: count32("max_nodes")?,
        num_tasks: count32("num_tasks")?,
        cpus_per_task: count16("cpus_per_task")?,
        ntasks_per_node: count16("ntasks_per_node")?,
        min_cpus: count32("min_cpus")?,
        exclusive: match text("shared")? {
            Some(t) => job_request::exclusive(&t)?,
            None => false,
        },
        // job_rec has the count of an array's tasks, job_desc their expression.
        array_tasks: match (text("array_inx")?, count32("array_task_cnt")?) {
            (Some(t), _) if !t.trim().is_empty() => job_request::array_task_count(&t)?,
            (_, Some(n)) => n.max(1),
            _ => 1,
        },
        gpus_per_job: gpus("tres_per_job")?,
        gpus_per_node: gpus("tres_per_node")?,
        gpus_per_task: gpus("tres_per_task")?,
    })
}

/// Why the size fields cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SizeError {
    /// The bytes under this flag are not UTF-8 text.
    NotText(&'static str),
    Bad(BadField),
}

impl From<BadField> for SizeError {
    fn from(bad: BadField) -> SizeError {
        SizeError::Bad(bad)
    }
}

/// The flag a job_desc field comes in.
fn flag(field: &'static str) -> &'static str {
    match field {
        "partition" => "--partition",
        "time_limit" => "--time-limit",
        "min_nodes" => "--min-nodes",
        "max_nodes" => "--max-nodes",
        "num_tasks" => "--num-tasks",
        "cpus_per_task" => "--cpus-per-task",
        "ntasks_per_node" => "--ntasks-per-node",
        "min_cpus" => "--min-cpus",
        "shared" => "--shared",
        "array_inx" => "--array-inx",
        "tres_per_job" => "--tres-per-job",
        "tres_per_node" => "--tres-per-node",
        _ => "--tres-per-task",
    }
}

fn utf8(field: &'static str, raw: &OsStr) -> Result<String, SizeError> {
    raw.to_str().map(str::to_string).ok_or(SizeError::NotText(flag(field)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::job_request::TimeLimit;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[arg(long)]
        submit: bool,
        #[arg(long)]
        modify: bool,
        #[command(flatten)]
        size: SizeArgs,
    }

    fn parse(args: &[&str]) -> Result<JobRequest, SizeError> {
        let mut argv = vec!["t", "--submit"];
        argv.extend_from_slice(args);
        Cli::parse_from(argv).size.request()
    }

    #[test]
    fn raw_job_desc_fields() {
        let r = parse(&[
            "--partition",
            "a,b",
            "--time-limit",
            "4294967295",
            "--min-nodes",
            "1",
            "--max-nodes",
            "10",
            "--num-tasks",
            "4294967294",
            "--cpus-per-task",
            "65534",
            "--shared",
            "0",
            "--array-inx",
            "1-9:2%4",
            "--tres-per-job",
            "gres/gpu:8",
        ])
        .unwrap();
        assert_eq!(r.partitions, ["a", "b"]);
        assert_eq!(r.time_limit, TimeLimit::Unlimited);
        assert_eq!(
            (r.min_nodes, r.max_nodes, r.num_tasks, r.cpus_per_task),
            (Some(1), Some(10), None, None)
        );
        assert!(r.exclusive);
        assert_eq!(r.array_tasks, 5);
        assert_eq!(r.gpus_per_job, Some(8));
        let plain = parse(&[]).unwrap();
        assert_eq!((plain.array_tasks, plain.time_limit), (1, TimeLimit::Unset));
        assert!(matches!(parse(&["--min-nodes", "x"]), Err(SizeError::Bad(b)) if b.field == "min_nodes"));
    }

    #[test]
    fn bytes_that_are_not_text_name_the_field() {
        use std::os::unix::ffi::OsStrExt;
        let bad = OsStr::from_bytes(b"gpu\xff");
        let argv: Vec<OsString> = vec!["t".into(), "--submit".into(), "--tres-per-node".into(), bad.into()];
        let e = Cli::parse_from(argv).size.request().unwrap_err();
        assert_eq!(e, SizeError::NotText("--tres-per-node"));
    }

    #[test]
    fn a_modification_overlays_the_job_as_it_is() {
        let argv = [
            "t",
            "--submit",
            "--modify",
            "--min-nodes",
            "4",
            "--time-limit",
            "4294967294",
            "--was",
            "min_nodes=1",
            "--was",
            "time_limit=60",
            "--was",
            "partition=compute",
            "--was",
            "comment=ProjectA",
        ];
        let cli = Cli::parse_from(argv);
        let (after, before) = cli.size.modified().unwrap().unwrap();
        // NumNodes changes to 4; the time limit (NO_VAL: not changed) stays 60; whole nodes
        // after the change (job_rec cannot tell --exclusive), the CPUs' share before.
        assert_eq!((after.min_nodes, after.time_limit), (Some(4), TimeLimit::Minutes(60)));
        assert!(after.exclusive && !before.exclusive);
        assert_eq!(after.partitions, ["compute"]);
        assert_eq!((before.min_nodes, before.time_limit), (Some(1), TimeLimit::Minutes(60)));
        assert_eq!(cli.size.was("comment"), Some(OsStr::new("ProjectA")));
        // Nothing of the size changes: nothing to price.
        let quiet = Cli::parse_from([
            "t",
            "--submit",
            "--modify",
            "--time-limit",
            "4294967294",
            "--was",
            "min_nodes=1",
        ]);
        assert_eq!(quiet.size.modified().unwrap(), None);
    }
}
