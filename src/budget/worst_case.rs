//! What a submission may cost at most: the most nodes its request allows × its time
//! limit (or its partition's DefaultTime, else MaxTime, else the rest of the budget's
//! period) × its share of each node × the hourly price of the partition's instance type,
//! × the tasks of its array, in the dearest partition it lists. `budget refresh` records
//! each partition's price and time limits in the budget cache; project-check prices the
//! worst case from that alone, with no call to AWS or Slurm on the submit path.

use std::collections::BTreeMap;

use super::cache::PartitionCost;
use crate::cost::Prices;
use crate::prices::cache::price_at;
use crate::slurm::job_request::{JobRequest, TimeLimit};
use crate::slurm::scontrol::SlurmPartition;

/// The most a job may cost, and what that is made of, for the messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorstCase {
    pub cost: f64,
    /// Tasks of the job array (1 for a plain job).
    pub tasks: u32,
    pub nodes: u64,
    pub hours: f64,
    pub instance: String,
}

impl WorstCase {
    /// `4 nodes x 2 h of c5.xlarge`; `10 tasks x 1 node x 1 h of c5.xlarge` for an array.
    pub(crate) fn describe(&self) -> String {
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
        let tasks = if self.tasks > 1 {
            format!("{} tasks x ", self.tasks)
        } else {
            String::new()
        };
        format!("{tasks}{nodes} x {hours} h of {}", self.instance)
    }
}

/// The worst case of `request`, or why it cannot be priced (no such partition, no price
/// for it, no time limit anywhere). `hours_left` is what remains of the budget's period:
/// a job with no time bound at all can lose the budget that much and no more.
pub(crate) fn worst_case(
    request: &JobRequest,
    partitions: &BTreeMap<String, PartitionCost>,
    hours_left: Option<f64>,
) -> Result<WorstCase, String> {
    let listed: Vec<(&str, &PartitionCost)> = if request.partitions.is_empty() {
        let default = partitions
            .iter()
            .find(|(_, p)| p.is_default)
            .ok_or("no default partition with a known price")?;
        vec![(default.0.as_str(), default.1)]
    } else {
        let known: Vec<_> = request
            .partitions
            .iter()
            .filter_map(|n| partitions.get(n).map(|p| (n.as_str(), p)))
            .collect();
        if known.is_empty() {
            // The user typed it: printed escaped and cut, never raw into syslog.
            return Err(format!(
                "partition {} has no known price",
                crate::model::project_name::printable(&request.partitions.join(","))
            ));
        }
        known
    };
    // `-p a,b`: the job runs in one of them; the dearest is the worst case.
    let mut worst: Option<WorstCase> = None;
    for (name, p) in listed {
        let w = in_partition(request, name, p, hours_left)?;
        if worst.as_ref().is_none_or(|x| w.cost > x.cost) {
            worst = Some(w);
        }
    }
    worst.ok_or_else(|| "no partition".to_string())
}

/// The worst case of `r` in partition `name`.
fn in_partition(r: &JobRequest, name: &str, p: &PartitionCost, hours_left: Option<f64>) -> Result<WorstCase, String> {
    let unbounded = || {
        hours_left.ok_or_else(|| {
            format!("no time limit: the job sets none, and partition {name} has no DefaultTime or MaxTime")
        })
    };
    let hours = match r.time_limit {
        TimeLimit::Minutes(m) => m as f64 / 60.0,
        TimeLimit::Unset => match p.default_minutes.or(p.max_minutes) {
            Some(m) => m as f64 / 60.0,
            None => unbounded()?,
        },
        TimeLimit::Unlimited => match p.max_minutes {
            Some(m) => m as f64 / 60.0,
            None => unbounded()?,
        },
    };
    let cpus_per_node = u64::from(p.cpus.max(1));
    let asked = u64::from(r.max_nodes.max(r.min_nodes).unwrap_or(1));
    let by_cpus = r.cpus().map_or(1, |c| c.div_ceil(cpus_per_node));
    let by_tasks = match (r.num_tasks, r.ntasks_per_node) {
        (Some(n), Some(per)) if per > 0 => u64::from(n).div_ceil(u64::from(per)),
        _ => 1,
    };
    // GPUs of the whole job that do not grow with the node count.
    let fixed_gpus = r.gpus(0);
    let by_gpus = if p.gpus > 0 {
        fixed_gpus.div_ceil(u64::from(p.gpus))
    } else {
        1
    };
    let nodes = asked.max(by_cpus).max(by_tasks).max(by_gpus).max(1);
    // A job sharing its nodes pays its part of them: the larger of its CPU and GPU parts.
    let share = if r.exclusive {
        1.0
    } else {
        let cpu_part = r.cpus().map_or(1.0, |c| c as f64 / (nodes * cpus_per_node) as f64);
        let gpu_part = if p.gpus > 0 {
            r.gpus(nodes) as f64 / (nodes * u64::from(p.gpus)) as f64
        } else {
            0.0
        };
        cpu_part.max(gpu_part).clamp(0.0, 1.0)
    };
    let tasks = r.array_tasks.max(1);
    Ok(WorstCase {
        cost: f64::from(tasks) * nodes as f64 * hours * share * p.hourly,
        tasks,
        nodes,
        hours,
        instance: p.instance.clone(),
    })
}

/// Each Slurm partition's price and time limits, from the report's prices (settings,
/// price cache, fleet file): the partition's instance type, or the dearest of those its
/// node patterns give (`QUEUE-st-*`, `QUEUE-dy-*` for ParallelCluster queues); spot
/// partitions at the latest spot price of their zone (or the region's average).
pub(crate) fn partition_costs(prices: &Prices, slurm: &[SlurmPartition]) -> BTreeMap<String, PartitionCost> {
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
            ("open".to_string(), p("c5.xlarge", 0.17, 4, 0, None, None, false)),
            ("gpu".to_string(), p("g5.12xlarge", 5.672, 48, 4, None, None, false)),
        ]
        .into()
    }

    fn request(partition: &str, minutes: u64) -> JobRequest {
        JobRequest {
            partitions: vec![partition.to_string()],
            time_limit: TimeLimit::Minutes(minutes),
            array_tasks: 1,
            ..Default::default()
        }
    }

    fn cost(r: &JobRequest) -> f64 {
        worst_case(r, &partitions(), Some(100.0)).unwrap().cost
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn tasks_beyond_one_node_take_more_nodes() {
        // sbatch -n 400 -t 60 on 4-CPU nodes: 400 / 4 = 100 nodes x 1 h x 0.17 = 17.00.
        let r = JobRequest {
            num_tasks: Some(400),
            min_cpus: Some(400),
            ..request("compute", 60)
        };
        let w = worst_case(&r, &partitions(), None).unwrap();
        assert!(close(w.cost, 17.0), "{w:?}");
        assert_eq!(w.describe(), "100 nodes x 1 h of c5.xlarge");
        // --ntasks-per-node=2: 400 / 2 = 200 nodes, half of each: 200 x 0.5 x 0.17 = 17.00.
        let spread = JobRequest {
            ntasks_per_node: Some(2),
            ..r.clone()
        };
        assert_eq!(worst_case(&spread, &partitions(), None).unwrap().nodes, 200);
        // Exclusive: whole nodes, 200 x 0.17 = 34.00.
        let exclusive = JobRequest {
            exclusive: true,
            ..spread
        };
        assert!(close(cost(&exclusive), 34.0));
    }

    #[test]
    fn a_node_range_is_priced_at_its_top() {
        // -N 1-10 --exclusive -t 60: 10 nodes x 1 h x 0.17 = 1.70.
        let r = JobRequest {
            min_nodes: Some(1),
            max_nodes: Some(10),
            exclusive: true,
            ..request("compute", 60)
        };
        assert!(close(cost(&r), 1.7));
    }

    #[test]
    fn every_array_task_counts() {
        // --array=0-9 -N1 --exclusive -t 60: 10 tasks x 1 node x 1 h x 0.17 = 1.70.
        let r = JobRequest {
            min_nodes: Some(1),
            exclusive: true,
            array_tasks: 10,
            ..request("compute", 60)
        };
        let w = worst_case(&r, &partitions(), None).unwrap();
        assert!(close(w.cost, 1.7));
        assert_eq!(w.describe(), "10 tasks x 1 node x 1 h of c5.xlarge");
    }

    #[test]
    fn time_unset_unlimited_and_none_anywhere() {
        let whole = |partition: &str, time_limit| JobRequest {
            min_nodes: Some(1),
            exclusive: true,
            time_limit,
            ..request(partition, 0)
        };
        // Unset: DefaultTime 60 min, 0.17.
        assert!(close(cost(&whole("compute", TimeLimit::Unset)), 0.17));
        // UNLIMITED: MaxTime 1440 min = 24 h x 0.17 = 4.08.
        assert!(close(cost(&whole("compute", TimeLimit::Unlimited)), 4.08));
        // UNLIMITED where the partition has no MaxTime: the rest of the budget's period,
        // 100 h here, x 0.17 = 17.00; with no period known it cannot be priced.
        assert!(close(cost(&whole("open", TimeLimit::Unlimited)), 17.0));
        let e = worst_case(&whole("open", TimeLimit::Unlimited), &partitions(), None).unwrap_err();
        assert!(e.contains("no time limit"), "{e}");
    }

    #[test]
    fn gpus_per_job_take_as_many_nodes_as_they_need() {
        // -p gpu --gpus=8 -t 60 on 4-GPU g5.12xlarge: 8 / 4 = 2 nodes, all their GPUs:
        // 2 x 1 h x 5.672 = 11.344.
        let r = JobRequest {
            gpus_per_job: Some(8),
            min_cpus: Some(1),
            ..request("gpu", 60)
        };
        let w = worst_case(&r, &partitions(), None).unwrap();
        assert!(close(w.cost, 11.344), "{w:?}");
        assert_eq!(w.nodes, 2);
        // 1 GPU per node on 1 node, 1 CPU: a quarter of the node (GPUs) = 1.418.
        let one = JobRequest {
            gpus_per_node: Some(1),
            gpus_per_job: None,
            ..r
        };
        assert!(close(cost(&one), 1.418));
    }

    #[test]
    fn several_partitions_the_dearest_and_unknown_ones() {
        let r = JobRequest {
            partitions: vec!["compute".into(), "gpu".into(), "nosuch".into()],
            min_nodes: Some(1),
            exclusive: true,
            ..request("x", 60)
        };
        assert_eq!(worst_case(&r, &partitions(), None).unwrap().instance, "g5.12xlarge");
        let unknown = JobRequest {
            partitions: vec!["debug".into()],
            ..r.clone()
        };
        assert!(worst_case(&unknown, &partitions(), None)
            .unwrap_err()
            .contains("no known price"));
        // No partition named: the default one.
        let default = JobRequest {
            partitions: vec![],
            ..r
        };
        assert_eq!(worst_case(&default, &partitions(), None).unwrap().instance, "c5.xlarge");
    }

    #[test]
    fn a_shared_job_pays_its_part() {
        // 2 CPUs on one 4-CPU node, DefaultTime 1 h: 0.5 x 0.17 = 0.085.
        let r = JobRequest {
            min_cpus: Some(2),
            time_limit: TimeLimit::Unset,
            ..request("compute", 0)
        };
        assert!(close(cost(&r), 0.085));
    }
}
