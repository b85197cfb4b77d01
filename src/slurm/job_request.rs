//! What a job asks Slurm for, as Slurm writes it down: job_submit.lua's `job_desc` hands
//! numbers raw, with Slurm's sentinels for "not set" and "unlimited", TRES strings in two
//! spellings, and the array's index expression. Everything is parsed here, in tested
//! Rust, so the Lua shim stays a pipe and the budget prices the largest job the request
//! allows (`budget::worst_case`).

use std::fmt;

/// Slurm's NO_VAL and INFINITE for 32-bit fields, and the 16-bit ones.
const NO_VAL: u64 = 0xFFFF_FFFE;
const INFINITE: u64 = 0xFFFF_FFFF;
const NO_VAL16: u64 = 0xFFFE;
const INFINITE16: u64 = 0xFFFF;
/// More array tasks than Slurm's MaxArraySize can ever allow (4,000,001); an index
/// expression past it is refused rather than counted.
const MAX_ARRAY_TASKS: u64 = 4_000_001;

/// A job's time limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum TimeLimit {
    /// Not set: the partition's DefaultTime, else its MaxTime.
    #[default]
    Unset,
    /// `--time=UNLIMITED` (INFINITE): bounded only by the partition's MaxTime, if any.
    Unlimited,
    Minutes(u64),
}

/// The size of a job request; a field Slurm left unset is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JobRequest {
    /// Every partition listed (`-p a,b`); empty: the default partition.
    pub partitions: Vec<String>,
    pub time_limit: TimeLimit,
    pub min_nodes: Option<u32>,
    /// `-N 1-10`: the job may get up to 10 nodes.
    pub max_nodes: Option<u32>,
    /// `-n`.
    pub num_tasks: Option<u32>,
    pub cpus_per_task: Option<u32>,
    pub ntasks_per_node: Option<u32>,
    /// CPUs of the whole job (Slurm computes it from the others when it can).
    pub min_cpus: Option<u32>,
    /// `--exclusive`: whole nodes whatever CPUs it asks for.
    pub exclusive: bool,
    /// Tasks of the job array (1 for a plain job).
    pub array_tasks: u32,
    /// GPUs of the whole job (`--gpus`), per node (`--gpus-per-node`, `--gres`), per task.
    pub gpus_per_job: Option<u32>,
    pub gpus_per_node: Option<u32>,
    pub gpus_per_task: Option<u32>,
}

/// A field that is not what Slurm writes, named for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadField {
    pub field: &'static str,
    pub why: String,
}

impl fmt::Display for BadField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the job's {} {}", self.field, self.why)
    }
}

impl std::error::Error for BadField {}

fn bad(field: &'static str, why: impl Into<String>) -> BadField {
    BadField { field, why: why.into() }
}

impl JobRequest {
    /// The CPUs the job needs at least: `min_cpus`, or tasks × CPUs per task.
    pub(crate) fn cpus(&self) -> Option<u64> {
        let tasks = self
            .num_tasks
            .map(|n| u64::from(n) * u64::from(self.cpus_per_task.unwrap_or(1).max(1)));
        match (self.min_cpus.map(u64::from), tasks) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The GPUs of the whole job when it runs on `nodes` nodes: the largest of what each
    /// way of asking gives.
    pub(crate) fn gpus(&self, nodes: u64) -> u64 {
        let per_job = self.gpus_per_job.map_or(0, u64::from);
        let per_node = self.gpus_per_node.map_or(0, u64::from) * nodes;
        let per_task = self.gpus_per_task.map_or(0, u64::from) * u64::from(self.num_tasks.unwrap_or(1).max(1));
        per_job.max(per_node).max(per_task)
    }
}

/// A 32-bit count as job_desc holds it: NO_VAL and INFINITE are unset.
pub(crate) fn count32(field: &'static str, raw: &str) -> Result<Option<u32>, BadField> {
    let n = number(field, raw)?;
    if n >= NO_VAL {
        return Ok(None);
    }
    u32::try_from(n)
        .map(Some)
        .map_err(|_| bad(field, format!("is out of range ({n})")))
}

/// A 16-bit count (cpus_per_task, ntasks_per_node): NO_VAL16 and INFINITE16 are unset.
/// Slurm hands some of them over in 32 bits, so the 32-bit sentinels are unset too.
pub(crate) fn count16(field: &'static str, raw: &str) -> Result<Option<u32>, BadField> {
    let n = number(field, raw)?;
    if n == NO_VAL16 || n == INFINITE16 || n >= NO_VAL {
        return Ok(None);
    }
    u32::try_from(n)
        .map(Some)
        .map_err(|_| bad(field, format!("is out of range ({n})")))
}

/// job_desc's `time_limit` in minutes: INFINITE is unlimited, NO_VAL unset.
pub(crate) fn time_limit(raw: &str) -> Result<TimeLimit, BadField> {
    match number("time_limit", raw)? {
        INFINITE => Ok(TimeLimit::Unlimited),
        NO_VAL => Ok(TimeLimit::Unset),
        n if n > NO_VAL => Err(bad("time_limit", format!("is out of range ({n})"))),
        n => Ok(TimeLimit::Minutes(n)),
    }
}

/// job_desc's `shared`: 0 is `--exclusive` (JOB_SHARED_NONE); anything else shares.
pub(crate) fn exclusive(raw: &str) -> Result<bool, BadField> {
    Ok(number("shared", raw)? == 0)
}

fn number(field: &'static str, raw: &str) -> Result<u64, BadField> {
    // Lua 5.1 prints every number as a double: `4294967294` or `4.294967294e+09`.
    let text = raw.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Ok(n);
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(f as u64),
        _ => Err(bad(field, format!("is not a count ('{}')", printable(raw)))),
    }
}

/// How many tasks an array index expression names: `0-9` is 10, `1-9:2` is 5 (1, 3, 5,
/// 7, 9), `1,3,5-7` is 5. A `%4` limit only says how many run at once: every task may
/// still run, so it does not lower the count.
pub(crate) fn array_task_count(expr: &str) -> Result<u32, BadField> {
    let field = "array_inx";
    let body = expr.split_once('%').map_or(expr, |(b, _)| b).trim();
    if body.is_empty() {
        return Err(bad(field, "is empty"));
    }
    let mut total: u64 = 0;
    for part in body.split(',') {
        let (range, step) = match part.split_once(':') {
            Some((r, s)) => (r, parse_index(field, s)?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(bad(field, format!("has a step of 0 ('{}')", printable(expr))));
        }
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (parse_index(field, a)?, parse_index(field, b)?),
            None => {
                let i = parse_index(field, range)?;
                (i, i)
            }
        };
        if last < first {
            return Err(bad(
                field,
                format!("has a range that runs backwards ('{}')", printable(expr)),
            ));
        }
        total += (last - first) / step + 1;
        if total > MAX_ARRAY_TASKS {
            return Err(bad(field, format!("names more than {MAX_ARRAY_TASKS} tasks")));
        }
    }
    Ok(total as u32)
}

fn parse_index(field: &'static str, text: &str) -> Result<u64, BadField> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| bad(field, format!("is not an index expression ('{}')", printable(text))))
}

/// The GPU count in a TRES request: `gres/gpu:8` (Slurm 23.02 on), `gres:gpu:8` (22.05),
/// the older `gpu:8`, typed forms such as `gres/gpu:a100:2`, and a list of several
/// (`cpu=4,gres/gpu:2` or `gres:gpu:1,gres:gpu:a100:2`, which add up). A GPU named with
/// no count is one GPU. `None`: no GPU asked for.
pub(crate) fn gpus_in_tres(field: &'static str, tres: &str) -> Result<Option<u32>, BadField> {
    let mut total: Option<u64> = None;
    for item in tres.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let name = item
            .strip_prefix("gres/")
            .or_else(|| item.strip_prefix("gres:"))
            .unwrap_or(item);
        let mut parts = name.split(':');
        if parts.next() != Some("gpu") {
            continue;
        }
        let rest: Vec<&str> = parts.collect();
        let count = match rest.as_slice() {
            [] => 1,
            [one] => one.parse::<u64>().unwrap_or(1),
            [.., last] => last.parse::<u64>().map_err(|_| {
                bad(
                    field,
                    format!("has a GPU request without a count ('{}')", printable(item)),
                )
            })?,
        };
        total = Some(total.unwrap_or(0) + count);
    }
    match total {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| bad(field, format!("asks for too many GPUs ({n})"))),
    }
}

/// A user's text for a message: control characters escaped, cut at 64 characters.
fn printable(text: &str) -> String {
    let mut out: String = text.chars().take(64).flat_map(char::escape_default).collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels_are_unset_or_unlimited() {
        assert_eq!(count32("min_nodes", "4294967294"), Ok(None));
        assert_eq!(count32("min_nodes", "4.294967294e+09"), Ok(None));
        assert_eq!(count32("min_nodes", "4294967295"), Ok(None));
        assert_eq!(count32("min_nodes", "10"), Ok(Some(10)));
        assert_eq!(count16("cpus_per_task", "65534"), Ok(None));
        assert_eq!(count16("cpus_per_task", "2"), Ok(Some(2)));
        assert_eq!(time_limit("4294967295"), Ok(TimeLimit::Unlimited));
        assert_eq!(time_limit("4294967294"), Ok(TimeLimit::Unset));
        assert_eq!(time_limit("60"), Ok(TimeLimit::Minutes(60)));
        assert!(exclusive("0").unwrap());
        assert!(!exclusive("65534").unwrap());
        let e = count32("num_tasks", "4; rm -rf /").unwrap_err();
        assert_eq!(e.to_string(), "the job's num_tasks is not a count ('4; rm -rf /')");
        assert!(count32("num_tasks", "-1").is_err());
    }

    #[test]
    fn array_expressions() {
        // 0..=9: 10 tasks.
        assert_eq!(array_task_count("0-9"), Ok(10));
        // 1, 3, 5, 7, 9: (9 - 1) / 2 + 1 = 5.
        assert_eq!(array_task_count("1-9:2"), Ok(5));
        // The %4 limit runs 4 at once; all 10 still run: 10.
        assert_eq!(array_task_count("0-9%4"), Ok(10));
        // 1, 3, and 5, 6, 7: 5.
        assert_eq!(array_task_count("1,3,5-7"), Ok(5));
        // 0-10 step 3: 0, 3, 6, 9: (10 - 0) / 3 + 1 = 4.
        assert_eq!(array_task_count("0-10:3"), Ok(4));
        assert_eq!(array_task_count("7"), Ok(1));
        assert!(array_task_count("9-1").is_err());
        assert!(array_task_count("1-9:0").is_err());
        assert!(array_task_count("a-b").is_err());
        assert!(array_task_count("0-99999999999").is_err());
    }

    #[test]
    fn gpus_in_every_spelling() {
        assert_eq!(gpus_in_tres("tres_per_job", "gres/gpu:8"), Ok(Some(8)));
        assert_eq!(gpus_in_tres("tres_per_job", "gres:gpu:8"), Ok(Some(8)));
        assert_eq!(gpus_in_tres("tres_per_node", "gpu:8"), Ok(Some(8)));
        assert_eq!(gpus_in_tres("tres_per_node", "gres/gpu:a100:2"), Ok(Some(2)));
        assert_eq!(gpus_in_tres("tres_per_node", "gres:gpu:a100:2"), Ok(Some(2)));
        assert_eq!(gpus_in_tres("tres_per_node", "gres/gpu"), Ok(Some(1)));
        // 1 untyped + 2 a100 = 3.
        assert_eq!(gpus_in_tres("tres_per_node", "gres:gpu:1,gres:gpu:a100:2"), Ok(Some(3)));
        assert_eq!(gpus_in_tres("tres_per_node", "cpu=4,gres/shard:2"), Ok(None));
        assert_eq!(gpus_in_tres("tres_per_node", ""), Ok(None));
        assert!(gpus_in_tres("tres_per_node", "gres/gpu:a100:x").is_err());
    }

    #[test]
    fn cpus_and_gpus_of_the_whole_job() {
        let r = JobRequest {
            num_tasks: Some(400),
            cpus_per_task: Some(2),
            ..Default::default()
        };
        // 400 tasks x 2 CPUs = 800.
        assert_eq!(r.cpus(), Some(800));
        let g = JobRequest {
            num_tasks: Some(3),
            gpus_per_task: Some(2),
            gpus_per_node: Some(4),
            ..Default::default()
        };
        // Per task 3 x 2 = 6; per node on 1 node 4, on 2 nodes 8.
        assert_eq!(g.gpus(1), 6);
        assert_eq!(g.gpus(2), 8);
    }
}
