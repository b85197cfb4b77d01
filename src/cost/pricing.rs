//! What a job costs per second it runs: for each of its nodes, the instance type's hourly
//! price (spot when its partition is spot) times the job's share of that node. The share
//! is the job's CPUs on the node over the node's CPUs, or its GPU share when the instance
//! has GPUs and that is larger, and never more than the whole node; an exclusive job is
//! given every CPU of its nodes by Slurm, so it pays whole nodes. A node whose instance
//! type is not known is never guessed: the job is reported as unpriced.
//!
//! A spot node's price is the settings' spot price when they give one, else the spot
//! price history in the price cache for the partition's zone, which changes while a job
//! runs: such a job is charged each price for the seconds it was in force.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::fast_map::FastMap;
use crate::config::PricingSettings;
use crate::model::time::Timestamp;
use crate::prices::cache::{self, PriceCache, SpotSeries};
use crate::slurm::hostlist;
use crate::slurm::sacct::Record;

struct Instance {
    name: String,
    on_demand: f64,
    spot: Option<f64>,
    cpus: f64,
    gpus: f64,
}

struct Partition {
    instance: Option<usize>,
    spot: bool,
    /// Per instance index, the cache's spot history for nodes of this partition, looked
    /// up on first use.
    spot_series: Vec<Option<Option<Arc<SpotSeries>>>>,
}

/// Prices jobs from the `[pricing]` settings and, for spot, the price cache.
pub(crate) struct Pricer {
    instances: Vec<Instance>,
    partitions: FastMap<String, Partition>,
    cache: Option<PriceCache>,
    /// The cache's zones name this cluster's partitions (not another one's).
    zones_apply: bool,
    /// How each (instance type, partition) spot price was found, for the report's notes.
    spot_sources: BTreeMap<(String, String), String>,
    /// Which instances priced at least one job.
    used: Vec<bool>,
    patterns: Vec<(String, usize)>,
    /// Node name -> the instance its first matching pattern gives. Bounded by the number
    /// of nodes in the cluster, not of jobs.
    node_cache: FastMap<String, Option<usize>>,
    /// The instance of each node of the job being priced (reused between jobs).
    scratch: Vec<usize>,
}

/// The price of a job while it runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rate {
    /// Currency per second, for the nodes whose price does not change.
    pub per_second: f64,
    /// The job's shares of its nodes added up (2 whole nodes = 2.0, half of one = 0.5).
    pub nodes: f64,
    /// Spot nodes priced from a history: the history and the job's share of such nodes.
    pub spot: Vec<(Arc<SpotSeries>, f64)>,
}

impl Rate {
    /// What the job costs over `[from, to)`.
    pub(crate) fn cost(&self, from: Timestamp, to: Timestamp) -> f64 {
        let spot: f64 = self
            .spot
            .iter()
            .map(|(series, share)| share * cache::cost_over(series, from, to))
            .sum();
        self.per_second * (to - from) as f64 + spot
    }
}

/// `*` matches any run of characters, `?` exactly one; everything else itself.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

impl Pricer {
    /// `settings` must already hold the cache's instance types (see
    /// [`crate::prices::merge::with_cache`]); the cache is kept for spot histories.
    pub(crate) fn new(settings: &PricingSettings, cache: Option<PriceCache>) -> Pricer {
        Pricer::for_cluster(settings, cache, true)
    }

    /// [`Pricer::new`] for the jobs of one cluster; `local` when it is the cluster whose
    /// queues the cache's zones describe.
    pub(crate) fn for_cluster(settings: &PricingSettings, cache: Option<PriceCache>, local: bool) -> Pricer {
        let instances: Vec<Instance> = settings
            .instances
            .iter()
            .map(|(name, i)| Instance {
                name: name.clone(),
                on_demand: i.on_demand,
                spot: i.spot,
                cpus: f64::from(i.cpus),
                gpus: f64::from(i.gpus),
            })
            .collect();
        let index = |name: &str| instances.iter().position(|i| i.name == name);
        let partitions = settings
            .partitions
            .iter()
            .map(|(name, p)| {
                let instance = p.instance.as_deref().and_then(index);
                let partition = Partition {
                    instance,
                    spot: p.spot,
                    spot_series: Vec::new(),
                };
                (name.clone(), partition)
            })
            .collect();
        let patterns = settings
            .nodes
            .iter()
            .filter_map(|n| Some((n.pattern.clone(), index(&n.instance)?)))
            .collect();
        Pricer {
            instances,
            partitions,
            used: vec![false; settings.instances.len()],
            cache,
            zones_apply: local,
            spot_sources: BTreeMap::new(),
            patterns,
            node_cache: FastMap::default(),
            scratch: Vec::new(),
        }
    }

    /// True when no price at all is configured (every job would be unpriced).
    pub(crate) fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// How the spot histories used so far were found: (instance type, partition) -> source.
    pub(crate) fn spot_sources(&self) -> &BTreeMap<(String, String), String> {
        &self.spot_sources
    }

    /// The instance types that priced at least one job so far.
    pub(crate) fn used_instance_types(&self) -> impl Iterator<Item = &str> {
        self.instances
            .iter()
            .zip(&self.used)
            .filter(|(_, &u)| u)
            .map(|(i, _)| i.name.as_str())
    }

    /// The instance types of the nodes of the job [`Pricer::rate`] last priced (when it
    /// returned a rate), each once, in node order: what a per-job row names. It reads what
    /// `rate` keeps anyway, so pricing a job costs nothing more for it.
    pub(crate) fn last_instance_types(&self) -> impl Iterator<Item = &str> {
        let nodes = &self.scratch;
        nodes
            .iter()
            .enumerate()
            // A node of the type before it is no new type (most jobs: one type), so the
            // scan back only runs where the type changes.
            .filter(move |&(k, i)| k == 0 || (nodes[k - 1] != *i && !nodes[..k].contains(i)))
            .map(|(_, &i)| self.instances[i].name.as_str())
    }

    /// Whether the nodes of `partition` are charged at spot prices.
    pub(crate) fn is_spot(&self, partition: &str) -> bool {
        self.partitions.get(partition).is_some_and(|p| p.spot)
    }

    /// Whether instance type `name` has a spot price in the settings (else a spot node of
    /// it is priced from the cache's history).
    pub(crate) fn has_settings_spot(&self, name: &str) -> bool {
        self.instances.iter().any(|i| i.name == name && i.spot.is_some())
    }

    /// The job's rate, or why it cannot be priced.
    pub(crate) fn rate(&mut self, job: &Record<'_>) -> Result<Rate, String> {
        let partition = self.partitions.get(job.partition);
        let spot = partition.is_some_and(|p| p.spot);
        let partition_instance = partition.and_then(|p| p.instance);

        // Instance of each node: patterns need node names; without patterns every node of
        // the job is its partition's type and the node count is enough.
        let per_node = &mut self.scratch;
        per_node.clear();
        if self.patterns.is_empty() {
            let Some(i) = partition_instance else {
                return Err(no_type(job.partition, false));
            };
            per_node.resize(job.nodes as usize, i);
        } else {
            let (cache, patterns) = (&mut self.node_cache, &self.patterns);
            let mut missing = false;
            hostlist::expand(job.node_list, |name| {
                match node_instance(cache, patterns, name).or(partition_instance) {
                    Some(i) => per_node.push(i),
                    None => missing = true,
                }
            })
            .map_err(|e| e.to_string())?;
            if missing {
                return Err(no_type(job.partition, true));
            }
        }
        if per_node.is_empty() {
            return Err("no nodes allocated".into());
        }
        let per_node = std::mem::take(&mut self.scratch);
        let priced = self.price_nodes(job, spot, &per_node);
        if priced.is_ok() {
            for &i in &per_node {
                self.used[i] = true;
            }
        }
        self.scratch = per_node;
        priced
    }

    /// The rate of a job on the nodes `per_node` (an instance index per node).
    fn price_nodes(&mut self, job: &Record<'_>, spot: bool, per_node: &[usize]) -> Result<Rate, String> {
        let count = per_node.len() as f64;
        let (cpus, gpus) = (f64::from(job.cpus) / count, f64::from(job.gpus) / count);
        let mut rate = Rate {
            per_second: 0.0,
            nodes: 0.0,
            spot: Vec::new(),
        };
        for &i in per_node {
            let inst = &self.instances[i];
            let mut share = cpus / inst.cpus;
            if inst.gpus > 0.0 {
                share = share.max(gpus / inst.gpus);
            }
            let share = share.min(1.0);
            rate.nodes += share;
            match (spot, inst.spot) {
                (false, _) => rate.per_second += inst.on_demand * share / 3600.0,
                (true, Some(hourly)) => rate.per_second += hourly * share / 3600.0,
                (true, None) => {
                    let series = self.spot_history(job.partition, i).ok_or_else(|| {
                        format!(
                            "partition {} is spot but instance type {} has no spot price in the settings \
                             nor a spot history in the price cache",
                            job.partition, self.instances[i].name
                        )
                    })?;
                    match rate.spot.iter_mut().find(|(s, _)| Arc::ptr_eq(s, &series)) {
                        Some((_, total)) => *total += share,
                        None => rate.spot.push((series, share)),
                    }
                }
            }
        }
        Ok(rate)
    }

    /// The cache's spot history for instance `i` on a node of `partition`, found once.
    fn spot_history(&mut self, partition: &str, i: usize) -> Option<Arc<SpotSeries>> {
        let cache = self.cache.as_ref()?;
        let p = self.partitions.get_mut(partition)?;
        if p.spot_series.len() <= i {
            p.spot_series.resize(i + 1, None);
        }
        if let Some(found) = &p.spot_series[i] {
            return found.clone();
        }
        let name = &self.instances[i].name;
        let zone_of = self.zones_apply.then_some(partition);
        let found = cache.spot_series(name, zone_of).map(|(series, source)| {
            self.spot_sources.insert((name.clone(), partition.to_string()), source);
            Arc::new(series)
        });
        p.spot_series[i] = Some(found.clone());
        found
    }
}

/// The instance the first pattern matching `node` gives, remembered per node name.
fn node_instance(
    cache: &mut FastMap<String, Option<usize>>,
    patterns: &[(String, usize)],
    node: &str,
) -> Option<usize> {
    if let Some(&hit) = cache.get(node) {
        return hit;
    }
    let found = patterns
        .iter()
        .find(|(pattern, _)| glob_match(pattern, node))
        .map(|&(_, i)| i);
    cache.insert(node.to_string(), found);
    found
}

/// Why a job's nodes have no instance type. The reason names the partition, not the
/// node, so the unpriced list stays one line per partition however many nodes it has.
fn no_type(partition: &str, patterns: bool) -> String {
    if patterns {
        format!(
            "nodes of partition {partition:?} match no [[pricing.nodes]] pattern and the partition has no instance type"
        )
    } else {
        format!("partition {partition:?} has no instance type in [pricing.partitions]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn pricer(extra: &str) -> Pricer {
        let text = format!(
            "[pricing.instances.c5]\non_demand = 0.36\nspot = 0.18\ncpus = 4\n\
             [pricing.instances.g4]\non_demand = 1.8\ncpus = 8\ngpus = 2\n\
             [pricing.partitions.compute]\ninstance = \"c5\"\n\
             [pricing.partitions.spot]\ninstance = \"c5\"\nspot = true\n{extra}"
        );
        Pricer::new(
            &Settings::parse(&text, std::path::Path::new("t.toml")).unwrap().pricing,
            None,
        )
    }

    fn job<'a>(partition: &'a str, nodes: u32, cpus: u32, gpus: u32, list: &'a str) -> Record<'a> {
        Record {
            partition,
            nodes,
            cpus,
            gpus,
            node_list: list,
            ..Record::example()
        }
    }

    fn hourly(r: &Rate) -> f64 {
        (r.per_second * 3600.0 * 1e9).round() / 1e9
    }

    #[test]
    fn shares_of_nodes() {
        let mut p = pricer("");
        // 1 of 4 CPUs of a 0.36/h node: 0.09/h, a quarter node.
        let r = p.rate(&job("compute", 1, 1, 0, "n1")).unwrap();
        assert_eq!((hourly(&r), r.nodes), (0.09, 0.25));
        // Exclusive: all 4 CPUs on each of 2 nodes = 2 whole nodes, 0.72/h.
        let r = p.rate(&job("compute", 2, 8, 0, "n[1-2]")).unwrap();
        assert_eq!((hourly(&r), r.nodes), (0.72, 2.0));
        // More CPUs than the settings know of is still one whole node.
        assert_eq!(hourly(&p.rate(&job("compute", 1, 64, 0, "n1")).unwrap()), 0.36);
        // Spot partition: 2 of 4 CPUs at 0.18/h.
        assert_eq!(hourly(&p.rate(&job("spot", 1, 2, 0, "n1")).unwrap()), 0.09);
        let e = p.rate(&job("debug", 1, 1, 0, "n1")).unwrap_err();
        assert!(e.contains("partition \"debug\""), "{e}");
    }

    #[test]
    fn gpu_share_and_patterns() {
        let mut p = pricer("[[pricing.nodes]]\npattern = \"gpu-*-g4-*\"\ninstance = \"g4\"\n");
        // 1 of 2 GPUs but only 1 of 8 CPUs: pays the GPU share, half of 1.8/h.
        let r = p.rate(&job("gpu", 1, 1, 1, "gpu-dy-g4-3")).unwrap();
        assert_eq!((hourly(&r), r.nodes), (0.9, 0.5));
        assert_eq!(p.last_instance_types().collect::<Vec<_>>(), ["g4"]);
        p.rate(&job("compute", 3, 3, 0, "gpu-dy-g4-1,q-[1-2]")).unwrap();
        assert_eq!(p.last_instance_types().collect::<Vec<_>>(), ["g4", "c5"]);
        // Nodes of the compute partition fall back to the partition's type.
        assert_eq!(
            hourly(&p.rate(&job("compute", 2, 2, 0, "q-dy-c5-[1-2]")).unwrap()),
            0.18
        );
        let e = p.rate(&job("gpu", 2, 2, 0, "gpu-dy-g4-1,other-1")).unwrap_err();
        assert!(e.contains("nodes of partition \"gpu\""), "{e}");
        assert!(p
            .rate(&job("gpu", 1, 1, 0, "gpu-dy-g4-[1"))
            .unwrap_err()
            .contains("hostlist"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("q-*-c5-*", "q-dy-c5-17"));
        assert!(glob_match("n?", "n1") && !glob_match("n?", "n12"));
        assert!(glob_match("*", "") && glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("q-*-c5-*", "q-dy-c6-1") && !glob_match("abc", "abcd"));
    }
}
