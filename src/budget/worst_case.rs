//! What a submission may cost at most: its time limit (or its partition's default, else
//! maximum) × its nodes × its share of each node × the hourly price of the partition's
//! instance type. `budget refresh` records each partition's price and time limits in the
//! budget cache; project-check prices the worst case from that alone, with no call to AWS
//! or Slurm on the submit path.

use std::collections::BTreeMap;

use super::cache::PartitionCost;
use crate::prices::cache::price_at;
use crate::report::Prices;
use crate::slurm::scontrol::SlurmPartition;

/// A submission's size, as job_submit.lua passes it (fields Slurm leaves unset are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSize {
    pub partition: Option<String>,
    /// `--time` in minutes.
    pub time_limit_minutes: Option<u64>,
    /// `--nodes` (the minimum; 1 when unset).
    pub nodes: Option<u32>,
    /// CPUs of the whole job (Slurm's `min_cpus`); unset: whole nodes.
    pub cpus: Option<u32>,
    /// GPUs per node.
    pub gpus: Option<u32>,
}

/// The most a job may cost, and what that is made of, for the messages.
#[derive(Debug, Clone, PartialEq)]
pub struct WorstCase {
    pub cost: f64,
    pub nodes: u32,
    pub hours: f64,
    pub instance: String,
}

impl WorstCase {
    /// `4 nodes x 2 h of c5.xlarge`
    pub fn describe(&self) -> String {
        let hours = if self.hours.fract() == 0.0 {
            format!("{}", self.hours)
        } else {
            format!("{:.2}", self.hours)
        };
        let nodes = if self.nodes == 1 {
            "1 node".to_string()
        } else {
            format!("{} nodes", self.nodes)
        };
        format!("{nodes} x {hours} h of {}", self.instance)
    }
}

/// The worst case of `size`, or why it cannot be priced (no such partition, no price for
/// it, no time limit anywhere).
pub fn worst_case(size: &JobSize, partitions: &BTreeMap<String, PartitionCost>) -> Result<WorstCase, String> {
    let (name, p) = match &size.partition {
        // `--partition a,b`: the job runs in one of them; the dearest is the worst case.
        Some(list) => list
            .split(',')
            .filter_map(|n| partitions.get(n).map(|p| (n.to_string(), p)))
            .max_by(|a, b| a.1.hourly.total_cmp(&b.1.hourly))
            .ok_or_else(|| {
                // The user typed it: printed escaped and cut, never raw into syslog.
                format!(
                    "partition {} has no known price",
                    crate::submit::project_name::printable(list)
                )
            })?,
        None => partitions
            .iter()
            .find(|(_, p)| p.is_default)
            .map(|(n, p)| (n.clone(), p))
            .ok_or("no default partition with a known price")?,
    };
    let minutes = size
        .time_limit_minutes
        .or(p.default_minutes)
        .or(p.max_minutes)
        .ok_or_else(|| {
            format!("no time limit: the job sets none, and partition {name} has no DefaultTime or MaxTime")
        })?;
    let nodes = size.nodes.unwrap_or(1).max(1);
    let mut share: f64 = match size.cpus {
        Some(cpus) => f64::from(cpus) / f64::from(nodes) / f64::from(p.cpus.max(1)),
        None => 1.0,
    };
    if let (Some(gpus), true) = (size.gpus, p.gpus > 0) {
        share = share.max(f64::from(gpus) / f64::from(p.gpus));
    }
    let share = share.clamp(0.0, 1.0);
    let hours = minutes as f64 / 60.0;
    Ok(WorstCase {
        cost: hours * f64::from(nodes) * share * p.hourly,
        nodes,
        hours,
        instance: p.instance.clone(),
    })
}

/// Each Slurm partition's price and time limits, from the report's prices (settings,
/// price cache, fleet file): the partition's instance type, or the dearest of those its
/// node patterns give (`QUEUE-st-*`, `QUEUE-dy-*` for ParallelCluster queues); spot
/// partitions at the latest spot price of their zone (or the region's average).
pub fn partition_costs(prices: &Prices, slurm: &[SlurmPartition]) -> BTreeMap<String, PartitionCost> {
    let pricing = &prices.settings.pricing;
    let mut names: Vec<String> = slurm.iter().map(|p| p.name.clone()).collect();
    names.extend(pricing.partitions.keys().cloned());
    names.sort();
    names.dedup();
    let mut out = BTreeMap::new();
    for name in names {
        let settings = pricing.partitions.get(&name);
        let spot = settings.is_some_and(|p| p.spot);
        let mut types: Vec<&str> = settings.and_then(|p| p.instance.as_deref()).into_iter().collect();
        let prefix = format!("{name}-");
        types.extend(
            pricing
                .nodes
                .iter()
                .filter(|n| n.pattern.starts_with(&prefix))
                .map(|n| n.instance.as_str()),
        );
        let priced = types.into_iter().filter_map(|t| {
            let i = pricing.instances.get(t)?;
            let hourly = match (spot, i.spot) {
                (false, _) => i.on_demand,
                (true, Some(s)) => s,
                (true, None) => {
                    let (series, _) = prices.cache.as_ref()?.spot_series(t, Some(&name))?;
                    price_at(&series, series.last()?.0)
                }
            };
            Some((t, hourly, i.cpus, i.gpus))
        });
        let Some((instance, hourly, cpus, gpus)) = priced.max_by(|a, b| a.1.total_cmp(&b.1)) else {
            continue;
        };
        let limits = slurm.iter().find(|p| p.name == name);
        out.insert(
            name.clone(),
            PartitionCost {
                instance: instance.to_string(),
                hourly,
                cpus,
                gpus,
                default_minutes: limits.and_then(|p| p.default_minutes),
                max_minutes: limits.and_then(|p| p.max_minutes),
                is_default: limits.is_some_and(|p| p.is_default),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partitions() -> BTreeMap<String, PartitionCost> {
        let p = |instance: &str, hourly, cpus, gpus, default_minutes, max_minutes, is_default| PartitionCost {
            instance: instance.into(),
            hourly,
            cpus,
            gpus,
            default_minutes,
            max_minutes,
            is_default,
        };
        [
            (
                "compute".to_string(),
                p("c5.xlarge", 0.17, 4, 0, Some(60), Some(1440), true),
            ),
            ("gpu".to_string(), p("g4dn.xlarge", 0.526, 4, 1, None, None, false)),
        ]
        .into()
    }

    #[test]
    fn the_worst_case_of_a_submission() {
        let size = JobSize {
            partition: Some("compute".into()),
            time_limit_minutes: Some(120),
            nodes: Some(4),
            cpus: None,
            gpus: None,
        };
        let w = worst_case(&size, &partitions()).unwrap();
        // 2 h x 4 whole nodes x 0.17 = 1.36
        assert!((w.cost - 1.36).abs() < 1e-12);
        assert_eq!(w.describe(), "4 nodes x 2 h of c5.xlarge");
        // 2 CPUs on 1 node of 4 CPUs: half a node, for the partition's DefaultTime (1 h).
        let half = JobSize {
            cpus: Some(2),
            nodes: None,
            time_limit_minutes: None,
            ..size.clone()
        };
        assert!((worst_case(&half, &partitions()).unwrap().cost - 0.085).abs() < 1e-12);
        // No --partition: the default one.
        let default = JobSize {
            partition: None,
            ..half.clone()
        };
        assert_eq!(worst_case(&default, &partitions()).unwrap().instance, "c5.xlarge");
        // A GPU job pays its GPU share: 1 of 1 GPU = the whole node, though 1 of 4 CPUs.
        let gpu = JobSize {
            partition: Some("gpu".into()),
            time_limit_minutes: Some(60),
            nodes: Some(1),
            cpus: Some(1),
            gpus: Some(1),
        };
        assert!((worst_case(&gpu, &partitions()).unwrap().cost - 0.526).abs() < 1e-12);
        // No time limit anywhere: cannot be priced, and says why.
        let unlimited = JobSize {
            time_limit_minutes: None,
            ..gpu
        };
        assert!(worst_case(&unlimited, &partitions())
            .unwrap_err()
            .contains("no time limit"));
        let unknown = JobSize {
            partition: Some("debug".into()),
            ..size
        };
        assert!(worst_case(&unknown, &partitions())
            .unwrap_err()
            .contains("no known price"));
    }
}
