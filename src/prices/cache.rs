//! The price cache: what `cost-tags prices refresh` last read from AWS, in one JSON file
//! the report reads (`[pricing] cache_file`, default `/var/spool/cost-tags/prices.json`).
//! Written atomically and readable by everyone: prices are public, and users may run the
//! report on their own jobs.
//!
//! ```json
//! {
//!   "format": "cost-tags-prices/1",
//!   "region": "eu-west-1",
//!   "refreshed_at": 1764460800,
//!   "currency": "USD",
//!   "instance_types": {"c5.xlarge": {"vcpus": 4, "cores": 2, "gpus": 0, "on_demand": 0.192}},
//!   "zones": {"spot": ["eu-west-1a"]},
//!   "spot": {"c5.xlarge": {"eu-west-1a": [[1764374400, 0.0712], [1764403200, 0.0698]]}}
//! }
//! ```
//!
//! `zones` maps a partition (a ParallelCluster queue) to the Availability Zones of its
//! subnets. A spot series lists the price changes, each in force from its instant until
//! the next one.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::time::Timestamp;
use crate::state::atomic_file;

/// The file format; a reader refuses any other.
pub const FORMAT: &str = "cost-tags-prices/1";

/// An instance type as EC2 and the Price List describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceType {
    pub vcpus: u32,
    /// Physical cores: the CPUs Slurm counts on a node with multithreading off.
    pub cores: u32,
    #[serde(default)]
    pub gpus: u32,
    /// On-demand Linux price per hour in the region; `None` when the Price List has none.
    pub on_demand: Option<f64>,
}

/// A spot price history: `(instant, price per hour)`, sorted by instant, each price in
/// force until the next change.
pub type SpotSeries = Vec<(Timestamp, f64)>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceCache {
    pub format: String,
    pub region: String,
    /// Seconds since the epoch when the prices were read.
    pub refreshed_at: Timestamp,
    pub currency: String,
    pub instance_types: BTreeMap<String, InstanceType>,
    /// Partition -> the Availability Zones of its subnets.
    #[serde(default)]
    pub zones: BTreeMap<String, Vec<String>>,
    /// Instance type -> Availability Zone -> spot price changes.
    #[serde(default)]
    pub spot: BTreeMap<String, BTreeMap<String, SpotSeries>>,
}

impl PriceCache {
    pub fn new(region: &str, refreshed_at: Timestamp) -> PriceCache {
        PriceCache {
            format: FORMAT.into(),
            region: region.into(),
            refreshed_at,
            currency: "USD".into(),
            instance_types: BTreeMap::new(),
            zones: BTreeMap::new(),
            spot: BTreeMap::new(),
        }
    }

    /// Reads and checks the cache; the error names the file.
    pub fn read(path: &Path) -> Result<PriceCache> {
        let text = std::fs::read(path).with_context(|| format!("cannot read the price cache {}", path.display()))?;
        let cache: PriceCache = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a cost-tags price cache", path.display()))?;
        cache
            .check()
            .with_context(|| format!("{}: unusable price cache", path.display()))?;
        Ok(cache)
    }

    /// Writes the cache atomically (mode 0644): readers see the old file or the new one.
    pub fn write(&self, path: &Path) -> Result<()> {
        self.check()?;
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        atomic_file::replace(path, &text, 0o644).with_context(|| format!("cannot write {}", path.display()))
    }

    fn check(&self) -> Result<()> {
        if self.format != FORMAT {
            bail!("format {:?}, expected {FORMAT:?}", self.format);
        }
        let price_ok = |p: f64| p.is_finite() && p >= 0.0;
        for (name, t) in &self.instance_types {
            if t.vcpus == 0 || t.cores == 0 || !t.on_demand.is_none_or(price_ok) {
                bail!("instance type {name:?}: vcpus and cores must be at least 1, prices 0 or more");
            }
        }
        for (name, zones) in &self.spot {
            for (zone, series) in zones {
                if series.windows(2).any(|w| w[0].0 >= w[1].0) || series.iter().any(|&(_, p)| !price_ok(p)) {
                    bail!("spot prices of {name:?} in {zone}: instants must increase, prices be 0 or more");
                }
            }
        }
        Ok(())
    }

    /// The spot history of `instance_type` for a node of `partition` (of this cluster;
    /// `None` for another one's): its queue's zone when the partition has exactly one,
    /// else the average over the region's zones (and a note saying so). `None` when there
    /// is no spot history for the type.
    pub fn spot_series(&self, instance_type: &str, partition: Option<&str>) -> Option<(SpotSeries, String)> {
        let by_zone = self.spot.get(instance_type).filter(|z| !z.is_empty())?;
        if let Some([zone]) = partition.and_then(|p| self.zones.get(p)).map(Vec::as_slice) {
            if let Some(series) = by_zone.get(zone) {
                return Some((series.clone(), format!("spot price history, {zone}")));
            }
        }
        let series: Vec<&SpotSeries> = by_zone.values().collect();
        Some((
            average(&series),
            format!(
                "spot price history, average of {} zones of {} (the partition's zone is not known)",
                series.len(),
                self.region
            ),
        ))
    }
}

/// The average of several price histories: at every instant any of them changes, the
/// mean of the prices each has in force then (a series not started yet counts with its
/// first price).
pub fn average(series: &[&SpotSeries]) -> SpotSeries {
    let mut instants: Vec<Timestamp> = series.iter().flat_map(|s| s.iter().map(|&(t, _)| t)).collect();
    instants.sort_unstable();
    instants.dedup();
    let live: Vec<&SpotSeries> = series.iter().copied().filter(|s| !s.is_empty()).collect();
    if live.is_empty() {
        return Vec::new();
    }
    instants
        .into_iter()
        .map(|t| {
            let sum: f64 = live.iter().map(|s| price_at(s, t)).sum();
            (t, sum / live.len() as f64)
        })
        .collect()
}

/// The price in force at `t`; before the first change, the first price.
pub fn price_at(series: &[(Timestamp, f64)], t: Timestamp) -> f64 {
    match series.partition_point(|&(at, _)| at <= t) {
        0 => series.first().map_or(0.0, |&(_, p)| p),
        n => series[n - 1].1,
    }
}

/// The integral of an hourly price over `[from, to)`, in price-hours: the cost of one
/// whole node over that time.
pub fn cost_over(series: &[(Timestamp, f64)], from: Timestamp, to: Timestamp) -> f64 {
    if to <= from || series.is_empty() {
        return 0.0;
    }
    // One binary search; then each change in the run is read in order.
    let mut next = series.partition_point(|&(at, _)| at <= from);
    let mut price = match next {
        0 => series[0].1,
        n => series[n - 1].1,
    };
    let (mut total, mut t) = (0.0, from);
    while t < to {
        let until = series.get(next).map_or(to, |&(at, _)| at.min(to));
        total += price * (until - t) as f64;
        if let Some(&(_, p)) = series.get(next) {
            price = p;
        }
        t = until;
        next += 1;
    }
    total / 3600.0
}

/// Keeps the history already cached before `fetched_from` and the freshly read history
/// from then on, so reports of months older than the fetch window still find prices.
pub fn merge_history(old: &[(Timestamp, f64)], fetched_from: Timestamp, new: &[(Timestamp, f64)]) -> SpotSeries {
    let mut out: SpotSeries = old.iter().copied().filter(|&(t, _)| t < fetched_from).collect();
    out.extend(new.iter().copied());
    out.sort_by_key(|&(t, _)| t);
    out.dedup_by_key(|&mut (t, _)| t);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds)
    }

    /// A series from (seconds, price) points.
    fn series(points: &[(i64, f64)]) -> SpotSeries {
        points.iter().map(|&(t, p)| (at(t), p)).collect()
    }

    #[test]
    fn cost_follows_each_price_for_the_time_it_was_in_force() {
        // 0.10/h from 0, 0.20/h from 2 h, 0.05/h from 5 h.
        let s = series(&[(0, 0.10), (2 * H, 0.20), (5 * H, 0.05)]);
        // 1 h to 6 h: 1 h x 0.10 + 3 h x 0.20 + 1 h x 0.05 = 0.75
        assert!((cost_over(&s, at(H), at(6 * H)) - 0.75).abs() < 1e-12);
        // Before the first change: the first price (30 min x 0.10).
        assert!((cost_over(&s, at(-H / 2), at(0)) - 0.05).abs() < 1e-12);
        assert_eq!(cost_over(&s, at(3 * H), at(3 * H)), 0.0);
        assert_eq!(price_at(&s, at(2 * H)), 0.20);
        assert_eq!(price_at(&s, at(2 * H - 1)), 0.10);
    }

    #[test]
    fn averages_and_zones() {
        let a = series(&[(0, 0.10), (2 * H, 0.30)]);
        let b = series(&[(H, 0.20)]);
        // At 0: a 0.10, b (not started) 0.20 -> 0.15; at 1 h: 0.15; at 2 h: 0.25.
        let avg: SpotSeries = average(&[&a, &b])
            .into_iter()
            .map(|(t, p)| (t, (p * 1e9).round() / 1e9))
            .collect();
        assert_eq!(avg, series(&[(0, 0.15), (H, 0.15), (2 * H, 0.25)]));
        let mut cache = PriceCache::new("eu-west-1", at(0));
        cache.spot.insert(
            "c5.xlarge".into(),
            [("eu-west-1a".to_string(), a.clone()), ("eu-west-1b".to_string(), b)].into(),
        );
        cache.zones.insert("spot".into(), vec!["eu-west-1a".into()]);
        cache
            .zones
            .insert("wide".into(), vec!["eu-west-1a".into(), "eu-west-1b".into()]);
        let (series, note) = cache.spot_series("c5.xlarge", Some("spot")).unwrap();
        assert_eq!((series, note.as_str()), (a, "spot price history, eu-west-1a"));
        let (series, note) = cache.spot_series("c5.xlarge", Some("wide")).unwrap();
        assert_eq!(series.len(), 3);
        assert!(note.contains("average of 2 zones"), "{note}");
        assert!(cache.spot_series("m5.large", Some("spot")).is_none());
        let (_, note) = cache.spot_series("c5.xlarge", None).unwrap();
        assert!(
            note.contains("average of 2 zones"),
            "another cluster's partition: {note}"
        );
    }

    #[test]
    fn merged_history_keeps_old_points_before_the_fetch() {
        let old = series(&[(0, 0.1), (10, 0.2), (20, 0.3)]);
        let new = series(&[(15, 0.25), (30, 0.4)]);
        assert_eq!(
            merge_history(&old, at(15), &new),
            series(&[(0, 0.1), (10, 0.2), (15, 0.25), (30, 0.4)])
        );
    }

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/prices.json");
        let mut cache = PriceCache::new("us-east-1", at(1_764_460_800));
        cache.instance_types.insert(
            "c5.xlarge".into(),
            InstanceType {
                vcpus: 4,
                cores: 2,
                gpus: 0,
                on_demand: Some(0.17),
            },
        );
        cache.spot.insert(
            "c5.xlarge".into(),
            [("us-east-1a".to_string(), series(&[(0, 0.07)]))].into(),
        );
        cache.write(&path).unwrap();
        assert_eq!(PriceCache::read(&path).unwrap(), cache);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);

        std::fs::write(&path, br#"{"format":"cost-tags-prices/9"}"#).unwrap();
        let e = format!("{:#}", PriceCache::read(&path).unwrap_err());
        assert!(e.contains("prices.json"), "{e}");
        let mut bad = cache.clone();
        bad.spot
            .insert("x".into(), [("z".to_string(), series(&[(5, 0.1), (5, 0.2)]))].into());
        assert!(bad.write(&path).is_err());
    }
}
