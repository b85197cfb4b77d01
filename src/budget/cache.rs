//! The budget cache: what `cost-tags budget refresh` last read from AWS Budgets, in one
//! JSON file that project-check reads on every submission. Written atomically (temporary
//! file, fsync, rename), so a reader sees the old cache or the new one, never half of one,
//! and readable by everyone (slurmctld runs project-check as `slurm`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The version of the file format, so a newer writer is not misread by an older reader.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetCache {
    pub format: u32,
    /// Seconds since the epoch when the budgets were read.
    pub refreshed_at: u64,
    pub account_id: String,
    /// Budget name -> its limit and spend.
    pub budgets: BTreeMap<String, BudgetSpend>,
}

/// One budget for its current period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpend {
    pub limit: f64,
    pub actual: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
    /// Currency (or unit) of all three amounts.
    pub unit: String,
    /// AWS's time unit: `MONTHLY`, `QUARTERLY`, `ANNUALLY`, `DAILY`, `CUSTOM`.
    pub period: String,
}

impl BudgetSpend {
    /// The period in the words of the refusal message ("for this month").
    pub fn period_word(&self) -> &'static str {
        match self.period.as_str() {
            "DAILY" => "day",
            "MONTHLY" => "month",
            "QUARTERLY" => "quarter",
            "ANNUALLY" => "year",
            _ => "period",
        }
    }

    /// Actual spend as a percentage of the limit (infinite for a zero limit with spend).
    pub fn percent_used(&self) -> f64 {
        if self.limit > 0.0 {
            self.actual / self.limit * 100.0
        } else if self.actual > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    }
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

impl BudgetCache {
    pub fn new(account_id: &str, now: SystemTime) -> BudgetCache {
        BudgetCache {
            format: FORMAT,
            refreshed_at: unix_seconds(now),
            account_id: account_id.to_string(),
            budgets: BTreeMap::new(),
        }
    }

    pub fn read(path: &Path) -> Result<BudgetCache, CacheError> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CacheError::Missing(path.to_path_buf()),
            _ => CacheError::Unreadable(path.to_path_buf(), e),
        })?;
        let cache: BudgetCache =
            serde_json::from_slice(&bytes).map_err(|e| CacheError::Corrupt(path.to_path_buf(), e.to_string()))?;
        if cache.format != FORMAT {
            return Err(CacheError::Corrupt(
                path.to_path_buf(),
                format!("format {} is not {FORMAT} (written by another version)", cache.format),
            ));
        }
        Ok(cache)
    }

    /// How old the cache is at `now` (zero if its time is in the future).
    pub fn age(&self, now: SystemTime) -> Duration {
        Duration::from_secs(unix_seconds(now).saturating_sub(self.refreshed_at))
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
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("budgets"),
            std::process::id()
        ));
        let result = (|| -> Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            serde_json::to_writer_pretty(&mut f, self)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            File::open(dir)?.sync_all()?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.with_context(|| format!("cannot write the budget cache {}", path.display()))
    }
}

pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BudgetCache {
        let mut c = BudgetCache::new("123456789012", UNIX_EPOCH + Duration::from_secs(1_000));
        c.budgets.insert(
            "P1".into(),
            BudgetSpend {
                limit: 100.0,
                actual: 25.5,
                forecast: Some(90.0),
                unit: "USD".into(),
                period: "MONTHLY".into(),
            },
        );
        c
    }

    #[test]
    fn round_trip_is_atomic_and_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/budgets.json");
        sample().write(&path).unwrap();
        assert_eq!(BudgetCache::read(&path).unwrap(), sample());
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("budgets.json")],
            "no temporary file left"
        );
    }

    #[test]
    fn missing_corrupt_and_foreign_caches_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budgets.json");
        assert!(matches!(BudgetCache::read(&path), Err(CacheError::Missing(_))));
        std::fs::write(&path, "{\"format\": 1, \"refreshed_at\": ").unwrap();
        let e = BudgetCache::read(&path).unwrap_err();
        assert!(
            matches!(e, CacheError::Corrupt(..)) && e.to_string().contains("budgets.json"),
            "{e}"
        );
        std::fs::write(
            &path,
            "{\"format\": 2, \"refreshed_at\": 1, \"account_id\": \"\", \"budgets\": {}}",
        )
        .unwrap();
        assert!(BudgetCache::read(&path).unwrap_err().to_string().contains("format 2"));
    }

    #[test]
    fn age_and_use() {
        let c = sample();
        assert_eq!(c.age(UNIX_EPOCH + Duration::from_secs(1_060)), Duration::from_secs(60));
        assert_eq!(c.age(UNIX_EPOCH), Duration::ZERO);
        let b = &c.budgets["P1"];
        assert_eq!(b.percent_used(), 25.5);
        assert_eq!(b.period_word(), "month");
    }
}
