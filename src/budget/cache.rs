//! The budget cache: what `cost-tags budget refresh` last read from AWS Budgets, in one
//! JSON Lines file that project-check reads on every submission: a header line, then one
//! line per budget, sorted by name. Written atomically (temporary file, fsync, rename), so
//! a reader sees the old cache or the new one, never half of one, and readable by everyone
//! (slurmctld runs project-check as `slurm`).
//!
//! A submission needs one budget, so [`lookup`] finds its line with one substring search,
//! streamed through a 16 KiB buffer, and parses only that line and the header: a cache
//! of thousands of budgets costs project-check microseconds, not a full JSON parse
//! (measured in scripts/bench.sh). The search relies on how [`BudgetCache::write`] lays
//! lines out; when it finds nothing, the whole file is parsed, so a file laid out
//! differently is read right, only slower.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::budget_spend::BudgetSpend;
use crate::model::time::Timestamp;
use crate::state::atomic_file;

/// The version of the file format, so a newer writer is not misread by an older reader.
pub const FORMAT: u32 = 1;

/// How far in the future `refreshed_at` may be and still count as fresh. The cache is
/// written on the head node and read by project-check on the same head node (or on a
/// login node through NFS), so a few seconds of clock skew are normal; five minutes is
/// far more than NTP-synchronised machines drift, and far less than `max_age`'s default.
/// Beyond it the clock is wrong (or the cache was forged or copied from elsewhere), and
/// a cache whose age cannot be told must not stay "fresh" forever.
pub const FUTURE_SKEW: Duration = Duration::from_secs(5 * 60);

/// The first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheHeader {
    pub format: u32,
    /// Seconds since the epoch when the budgets were read.
    pub refreshed_at: Timestamp,
    pub account_id: String,
    /// What a node-hour of each partition costs and how long a job may run there, for
    /// the worst case of a submission (`enforce = "committed"`); empty when prices are
    /// not known.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partitions: BTreeMap<String, PartitionCost>,
    /// When a later refresh could not read Slurm (seconds since the epoch): the figures
    /// are still those of `refreshed_at`, kept rather than replaced by AWS's alone (see
    /// `budget::admin::refresh`); the metrics say so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_failed_at: Option<Timestamp>,
}

/// A partition as project-check prices a submission's worst case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionCost {
    /// The instance type of its nodes (the most expensive when they differ).
    pub instance: String,
    /// Price of one node per hour (the latest spot price for a spot partition).
    pub hourly: f64,
    /// CPUs and GPUs of one node.
    pub cpus: u32,
    #[serde(default)]
    pub gpus: u32,
    /// Slurm's DefaultTime and MaxTime in minutes; `None`: not set (or UNLIMITED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_minutes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_minutes: Option<u64>,
    /// Slurm's default partition (jobs without `--partition` go there).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_default: bool,
}

/// A budget line: the name first, so a line can be found by its start. (serde cannot
/// deny unknown fields through `flatten`; a reader ignores fields it does not know.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BudgetLine {
    name: String,
    #[serde(flatten)]
    spend: BudgetSpend,
}

/// The whole cache.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetCache {
    pub header: CacheHeader,
    /// Budget name -> its limit and spend.
    pub budgets: BTreeMap<String, BudgetSpend>,
}

/// What project-check needs: how fresh the cache is, and one budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    pub header: CacheHeader,
    pub budget: Option<BudgetSpend>,
}

/// Why the cache cannot be used.
#[derive(Debug)]
pub enum CacheError {
    Missing(PathBuf),
    Unreadable(PathBuf, std::io::Error),
    Corrupt(PathBuf, String),
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheError::Missing(p) => write!(
                f,
                "{}: no budget cache (has `cost-tags budget refresh` run?)",
                p.display()
            ),
            CacheError::Unreadable(p, e) => write!(f, "{}: cannot read the budget cache: {e}", p.display()),
            CacheError::Corrupt(p, why) => write!(f, "{}: unusable budget cache: {why}", p.display()),
        }
    }
}

impl std::error::Error for CacheError {}

impl CacheHeader {
    /// How old the cache is at `now` (zero if its time is in the future).
    pub fn age(&self, now: Timestamp) -> Duration {
        Duration::from_secs(u64::try_from(now - self.refreshed_at).unwrap_or(0))
    }

    /// How far in the future `refreshed_at` is at `now` (zero if it is not); more than
    /// [`FUTURE_SKEW`] means the cache's age cannot be told.
    pub fn ahead(&self, now: Timestamp) -> Duration {
        Duration::from_secs(u64::try_from(self.refreshed_at - now).unwrap_or(0))
    }
}

/// Finds budget `name` in the cache at `path` (see the module notes).
pub fn lookup(path: &Path, name: &str) -> Result<Lookup, CacheError> {
    let corrupt = |why: String| CacheError::Corrupt(path.to_path_buf(), why);
    let mut needle = b"\n{\"name\":".to_vec();
    serde_json::to_writer(&mut needle, name).map_err(|e| corrupt(e.to_string()))?;
    needle.push(b',');
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let (first, line) = find_line(file, &needle).map_err(|e| io_error(path, e))?;
    let header = parse_header(&first).map_err(corrupt)?;
    if let Some(line) = line {
        let found: BudgetLine = serde_json::from_slice(&line).map_err(|e| corrupt(format!("budget {name:?}: {e}")))?;
        return Ok(Lookup {
            header,
            budget: Some(found.spend),
        });
    }
    let mut all = parse_all(&read_bytes(path)?).map_err(corrupt)?;
    Ok(Lookup {
        header: all.header,
        budget: all.budgets.remove(name),
    })
}

/// The first line of `file`, and the line that `needle` (which starts with a newline)
/// begins, if any. The file goes through a small buffer rather than into memory whole:
/// project-check does this on every submission, and faulting in a buffer the size of a
/// cache of thousands of budgets costs more than searching it.
fn find_line(mut file: impl Read, needle: &[u8]) -> std::io::Result<(Vec<u8>, Option<Vec<u8>>)> {
    const CHUNK: usize = 16 * 1024;
    let finder = memchr::memmem::Finder::new(needle);
    let mut buf: Vec<u8> = Vec::with_capacity(2 * CHUNK);
    // Appends up to CHUNK bytes; false at the end of the file.
    let mut more = |buf: &mut Vec<u8>| -> std::io::Result<bool> {
        let old = buf.len();
        buf.resize(old + CHUNK, 0);
        let read = loop {
            match file.read(&mut buf[old..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        buf.truncate(old + read.as_ref().copied().unwrap_or(0));
        read.map(|n| n > 0)
    };
    // The header: up to the first newline, which may start the needle.
    let mut from = 0;
    let header = loop {
        if let Some(end) = memchr::memchr(b'\n', &buf[from..]) {
            break buf[..from + end].to_vec();
        }
        from = buf.len();
        if !more(&mut buf)? {
            return Ok((buf, None));
        }
    };
    // No match starts before `from`; the bytes before it that could start one are kept.
    from = header.len();
    loop {
        if let Some(at) = finder.find(&buf[from..]) {
            let start = from + at + 1;
            let mut end = start;
            loop {
                if let Some(newline) = memchr::memchr(b'\n', &buf[end..]) {
                    return Ok((header, Some(buf[start..end + newline].to_vec())));
                }
                end = buf.len();
                if !more(&mut buf)? {
                    return Ok((header, Some(buf[start..].to_vec())));
                }
            }
        }
        let keep = buf.len().saturating_sub(needle.len() - 1).max(from);
        buf.drain(..keep);
        from = 0;
        if !more(&mut buf)? {
            return Ok((header, None));
        }
    }
}

impl BudgetCache {
    pub fn new(account_id: &str, now: Timestamp) -> BudgetCache {
        BudgetCache {
            header: CacheHeader {
                format: FORMAT,
                refreshed_at: now,
                account_id: account_id.to_string(),
                partitions: BTreeMap::new(),
                slurm_failed_at: None,
            },
            budgets: BTreeMap::new(),
        }
    }

    /// The whole cache, every line checked.
    pub fn read(path: &Path) -> Result<BudgetCache, CacheError> {
        parse_all(&read_bytes(path)?).map_err(|why| CacheError::Corrupt(path.to_path_buf(), why))
    }

    /// The text of the file: the header, then one compact JSON object per budget.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string(&self.header).unwrap_or_default();
        text.push('\n');
        for (name, spend) in &self.budgets {
            let line = BudgetLine {
                name: name.clone(),
                spend: spend.clone(),
            };
            text.push_str(&serde_json::to_string(&line).unwrap_or_default());
            text.push('\n');
        }
        text
    }

    /// Replaces the file at `path` in one step, mode 0644, creating its directory.
    pub fn write(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
        atomic_file::replace(path, self.to_text().as_bytes(), 0o644)
            .with_context(|| format!("cannot write the budget cache {}", path.display()))
    }
}

/// Marks the cache at `path` as kept after a refresh that could not read Slurm
/// (`slurm_failed_at`), rewriting its header line alone: the budget lines stay byte for
/// byte (a parse and re-print of their amounts need not be), and so does `refreshed_at`,
/// so the figures still age. Returns the header as it was.
pub fn mark_slurm_failed(path: &Path, at: Timestamp) -> Result<CacheHeader> {
    let bytes = read_bytes(path)?;
    // Every line checked, as a reader would.
    parse_all(&bytes).map_err(|why| CacheError::Corrupt(path.to_path_buf(), why))?;
    let (first, rest) = match memchr::memchr(b'\n', &bytes) {
        Some(i) => (&bytes[..i], &bytes[i..]),
        None => (&bytes[..], &b""[..]),
    };
    let old = parse_header(first).map_err(|why| CacheError::Corrupt(path.to_path_buf(), why))?;
    let mut header = old.clone();
    header.slurm_failed_at = Some(at);
    let mut text = serde_json::to_vec(&header)?;
    text.extend_from_slice(rest);
    atomic_file::replace(path, &text, 0o644)
        .with_context(|| format!("cannot write the budget cache {}", path.display()))?;
    Ok(old)
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, CacheError> {
    std::fs::read(path).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: std::io::Error) -> CacheError {
    match e.kind() {
        std::io::ErrorKind::NotFound => CacheError::Missing(path.to_path_buf()),
        _ => CacheError::Unreadable(path.to_path_buf(), e),
    }
}

fn parse_header(line: &[u8]) -> Result<CacheHeader, String> {
    let header: CacheHeader = serde_json::from_slice(line).map_err(|e| format!("line 1: {e}"))?;
    if header.format != FORMAT {
        return Err(format!(
            "format {} is not {FORMAT} (written by another version)",
            header.format
        ));
    }
    Ok(header)
}

fn parse_all(bytes: &[u8]) -> Result<BudgetCache, String> {
    let mut lines = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.trim_ascii().is_empty());
    let header = parse_header(lines.next().map_or(&[][..], |(_, l)| l))?;
    let mut budgets = BTreeMap::new();
    for (i, line) in lines {
        let b: BudgetLine = serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        budgets.insert(b.name, b.spend);
    }
    Ok(BudgetCache { header, budgets })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(limit: f64, actual: f64) -> BudgetSpend {
        BudgetSpend {
            limit,
            actual,
            forecast: Some(90.0),
            unit: "USD".into(),
            period: "MONTHLY".into(),
            ..Default::default()
        }
    }

    fn sample() -> BudgetCache {
        let mut c = BudgetCache::new("123456789012", Timestamp::from_second(1_000));
        c.budgets.insert("P1".into(), spend(100.0, 25.5));
        c.budgets.insert("P10".into(), spend(10.0, 1.0));
        c.budgets.insert("odd \"name\" é/x".into(), spend(5.0, 6.0));
        c
    }

    #[test]
    fn round_trip_is_atomic_and_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/budgets.jsonl");
        sample().write(&path).unwrap();
        assert_eq!(BudgetCache::read(&path).unwrap(), sample());
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("budgets.jsonl")],
            "no temporary file left"
        );
    }

    #[test]
    fn lookup_finds_exactly_one_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budgets.jsonl");
        let c = sample();
        c.write(&path).unwrap();
        for name in ["P1", "P10", "odd \"name\" é/x"] {
            let found = lookup(&path, name).unwrap();
            assert_eq!(found.header, c.header);
            assert_eq!(found.budget.as_ref(), c.budgets.get(name), "{name}");
        }
        assert_eq!(lookup(&path, "P").unwrap().budget, None);
        assert_eq!(lookup(&path, "P100").unwrap().budget, None);
    }

    /// Hands out its text a few bytes at a time, with an interruption now and then.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.1 += 1;
            if self.1.is_multiple_of(5) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = (1 + self.1 % 7).min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn lookup_in_a_large_cache_finds_every_budget_across_read_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budgets.jsonl");
        let mut c = BudgetCache::new("123456789012", Timestamp::from_second(7));
        for i in 0..3000 {
            c.budgets.insert(format!("P{i}"), spend(100.0 + i as f64, i as f64));
        }
        c.write(&path).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 4 * 16 * 1024);
        for i in (0..3000).step_by(7).chain([2999]) {
            let name = format!("P{i}");
            let found = lookup(&path, &name).unwrap();
            assert_eq!(found.header, c.header);
            assert_eq!(found.budget.as_ref(), c.budgets.get(&name), "{name}");
        }
        assert_eq!(lookup(&path, "P3000").unwrap().budget, None);

        // Through reads of a few bytes, the same lines as a search of the whole text.
        let text = c.to_text();
        for name in ["P0", "P1", "P29", "P2999", "Q"] {
            let needle = format!("\n{{\"name\":\"{name}\",");
            let (first, line) = find_line(Trickle(text.as_bytes(), 0), needle.as_bytes()).unwrap();
            assert_eq!(first, text.lines().next().unwrap().as_bytes());
            let want = text
                .lines()
                .find(|l| l.starts_with(&needle[1..]))
                .map(|l| l.as_bytes().to_vec());
            assert_eq!(line, want, "{name}");
        }
        // No newline at all, or none after the line found.
        let (first, line) = find_line(&b"{\"format\":1"[..], b"\n{\"name\":\"P\",").unwrap();
        assert_eq!((first.as_slice(), line), (&b"{\"format\":1"[..], None));
        let (_, line) = find_line(&b"h\n{\"name\":\"P\",1}"[..], b"\n{\"name\":\"P\",").unwrap();
        assert_eq!(line.unwrap(), b"{\"name\":\"P\",1}");
    }

    #[test]
    fn a_file_laid_out_differently_is_still_read_right() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budgets.jsonl");
        std::fs::write(
            &path,
            "{ \"format\": 1, \"refreshed_at\": 5, \"account_id\": \"1\" }\n\n\
             { \"period\": \"MONTHLY\", \"name\": \"P1\", \"limit\": 1, \"actual\": 2, \"unit\": \"USD\" }\n",
        )
        .unwrap();
        assert_eq!(lookup(&path, "P1").unwrap().budget.unwrap().actual, 2.0);
    }

    #[test]
    fn missing_corrupt_and_foreign_caches_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budgets.jsonl");
        assert!(matches!(lookup(&path, "P"), Err(CacheError::Missing(_))));
        std::fs::write(&path, "{\"format\": 1, \"refreshed_at\": ").unwrap();
        let e = lookup(&path, "P").unwrap_err();
        assert!(
            matches!(e, CacheError::Corrupt(..)) && e.to_string().contains("budgets.jsonl"),
            "{e}"
        );
        std::fs::write(&path, "{\"format\": 2, \"refreshed_at\": 1, \"account_id\": \"\"}\n").unwrap();
        assert!(lookup(&path, "P").unwrap_err().to_string().contains("format 2"));
        // A damaged budget line is an error, not a missing budget.
        std::fs::write(
            &path,
            "{\"format\":1,\"refreshed_at\":1,\"account_id\":\"\"}\n{\"name\":\"P\",\"limit\":\n",
        )
        .unwrap();
        assert!(matches!(lookup(&path, "P"), Err(CacheError::Corrupt(..))));
        assert!(matches!(lookup(&path, "Q"), Err(CacheError::Corrupt(..))));
    }

    #[test]
    fn age_and_use() {
        let c = sample();
        assert_eq!(c.header.age(Timestamp::from_second(1_060)), Duration::from_secs(60));
        assert_eq!(c.header.age(Timestamp::UNIX_EPOCH), Duration::ZERO);
        assert_eq!(c.header.ahead(Timestamp::from_second(1_060)), Duration::ZERO);
        assert_eq!(c.header.ahead(Timestamp::from_second(400)), Duration::from_secs(600));
        let b = &c.budgets["P1"];
        assert_eq!(b.percent_used(), 25.5);
        assert_eq!(b.period_word(), "month");
    }
}
