//! Node shapes from what ParallelCluster already provides: its fleet configuration
//! (`/etc/parallelcluster/slurm_plugin/fleet-config.json` on the head node) says which
//! instance type each compute resource of each queue runs and whether the queue is spot.
//! ParallelCluster names nodes `QUEUE-st-RESOURCE-N` (static) and `QUEUE-dy-RESOURCE-N`
//! (dynamic), and a queue is a Slurm partition, so the report needs no `[[pricing.nodes]]`
//! for them: only the hourly prices and CPU counts in `[pricing.instances]`. Explicit
//! settings win: fleet patterns go after `[[pricing.nodes]]`, and a partition configured
//! in `[pricing.partitions]` keeps its settings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::config::{NodePricing, PartitionPricing, PricingSettings};

/// Where ParallelCluster writes the fleet configuration on the head node.
pub(crate) const DEFAULT_PATH: &str = "/etc/parallelcluster/slurm_plugin/fleet-config.json";

/// The fields of a compute resource this reads; ParallelCluster writes more.
#[derive(Debug, Deserialize)]
struct ComputeResource {
    #[serde(rename = "Instances", default)]
    instances: Vec<InstanceEntry>,
    #[serde(rename = "CapacityType", default)]
    capacity_type: Option<String>,
    #[serde(rename = "Networking", default)]
    networking: Option<Networking>,
}

#[derive(Debug, Deserialize)]
struct Networking {
    #[serde(rename = "SubnetIds", default)]
    subnet_ids: Vec<String>,
}

impl ComputeResource {
    fn is_spot(&self) -> bool {
        self.capacity_type
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("spot"))
    }
}

/// A queue (a Slurm partition) as `prices refresh` needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Queue {
    /// Every instance type its compute resources run.
    pub instance_types: BTreeSet<String>,
    /// Some compute resource of it runs spot.
    pub spot: bool,
    /// The subnets its nodes launch in.
    pub subnets: BTreeSet<String>,
}

/// The queues of the fleet file at `path`.
pub(crate) fn read_queues(path: &Path) -> Result<BTreeMap<String, Queue>> {
    let fleet = read(path)?;
    Ok(fleet
        .iter()
        .map(|(name, resources)| {
            let mut queue = Queue::default();
            for r in resources.values() {
                queue.spot |= r.is_spot();
                queue
                    .instance_types
                    .extend(r.instances.iter().map(|i| i.instance_type.clone()));
                queue
                    .subnets
                    .extend(r.networking.iter().flat_map(|n| n.subnet_ids.iter().cloned()));
            }
            (name.clone(), queue)
        })
        .collect())
}

fn read(path: &Path) -> Result<FleetConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the fleet configuration {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a ParallelCluster fleet configuration", path.display()))
}

#[derive(Debug, Deserialize)]
struct InstanceEntry {
    #[serde(rename = "InstanceType")]
    instance_type: String,
}

type FleetConfig = BTreeMap<String, BTreeMap<String, ComputeResource>>;

/// The fleet file to read: the one the settings name (an empty name switches it off),
/// else ParallelCluster's when it exists.
pub(crate) fn path_to_read(pricing: &PricingSettings) -> Option<PathBuf> {
    match &pricing.fleet_config {
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
    }
}

/// `pricing` with the fleet's node patterns and spot queues added, and notes on what the
/// fleet says but the report cannot price.
pub(crate) fn apply_file(pricing: &PricingSettings, path: &Path) -> Result<(PricingSettings, Vec<String>)> {
    Ok(apply(pricing, &read(path)?, path))
}

fn apply(pricing: &PricingSettings, fleet: &FleetConfig, path: &Path) -> (PricingSettings, Vec<String>) {
    let mut out = pricing.clone();
    let mut notes = Vec::new();
    for (queue, resources) in fleet {
        let spot = resources.values().any(ComputeResource::is_spot);
        if spot && !pricing.partitions.contains_key(queue) {
            out.partitions.insert(
                queue.clone(),
                PartitionPricing {
                    instance: None,
                    spot: true,
                },
            );
        }
        for (name, resource) in resources {
            let types: Vec<&str> = resource.instances.iter().map(|i| i.instance_type.as_str()).collect();
            let [instance] = types[..] else {
                notes.push(format!(
                    "{}: queue {queue} compute resource {name} runs {}: its nodes are priced only by [[pricing.nodes]] or [pricing.partitions]",
                    path.display(),
                    if types.is_empty() { "no instance type".to_string() } else { format!("any of {}", types.join(", ")) }
                ));
                continue;
            };
            if !pricing.instances.contains_key(instance) {
                notes.push(format!(
                    "{}: queue {queue} compute resource {name} runs {instance}, which has no price in [pricing.instances]",
                    path.display()
                ));
                continue;
            }
            for kind in ["st", "dy"] {
                out.nodes.push(NodePricing {
                    pattern: format!("{queue}-{kind}-{name}-*"),
                    instance: instance.to_string(),
                });
            }
        }
    }
    (out, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InstancePricing;

    const FLEET: &str = r#"{
        "cpu": {
            "c5": {"Api": "run-instances", "CapacityType": "on-demand", "Instances": [{"InstanceType": "c5.xlarge"}]},
            "mixed": {"Api": "create-fleet", "Instances": [{"InstanceType": "c5.xlarge"}, {"InstanceType": "m5.xlarge"}]},
            "unpriced": {"Api": "run-instances", "Instances": [{"InstanceType": "x2.huge"}]}
        },
        "spot": {
            "c5": {"Api": "create-fleet", "CapacityType": "spot", "AllocationStrategy": "lowest-price",
                   "Instances": [{"InstanceType": "c5.xlarge"}], "Networking": {"SubnetIds": ["subnet-1"]}}
        },
        "manual": {
            "c5": {"Api": "run-instances", "CapacityType": "spot", "Instances": [{"InstanceType": "c5.xlarge"}]}
        }
    }"#;

    fn pricing() -> PricingSettings {
        let mut p = PricingSettings::default();
        p.instances.insert(
            "c5.xlarge".into(),
            InstancePricing {
                on_demand: 0.17,
                spot: Some(0.07),
                cpus: 4,
                gpus: 0,
            },
        );
        p.partitions.insert(
            "manual".into(),
            PartitionPricing {
                instance: None,
                spot: false,
            },
        );
        p.nodes.push(NodePricing {
            pattern: "special-*".into(),
            instance: "c5.xlarge".into(),
        });
        p
    }

    #[test]
    fn queues_and_compute_resources_become_node_patterns() {
        let fleet: FleetConfig = serde_json::from_str(FLEET).unwrap();
        let (p, notes) = apply(&pricing(), &fleet, Path::new("/f.json"));
        let patterns: Vec<&str> = p.nodes.iter().map(|n| n.pattern.as_str()).collect();
        assert_eq!(
            patterns,
            [
                "special-*",
                "cpu-st-c5-*",
                "cpu-dy-c5-*",
                "manual-st-c5-*",
                "manual-dy-c5-*",
                "spot-st-c5-*",
                "spot-dy-c5-*"
            ]
        );
        assert!(p.partitions["spot"].spot);
        assert!(!p.partitions["manual"].spot, "explicit partition settings win");
        assert!(!p.partitions.contains_key("cpu"));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("compute resource mixed runs any of c5.xlarge, m5.xlarge"),
            "{}",
            notes[0]
        );
        assert!(notes[1].contains("x2.huge, which has no price"), "{}", notes[1]);
    }

    #[test]
    fn queues_list_their_types_spot_and_subnets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.json");
        std::fs::write(&path, FLEET).unwrap();
        let queues = read_queues(&path).unwrap();
        let cpu = &queues["cpu"];
        assert_eq!(
            cpu.instance_types.iter().map(String::as_str).collect::<Vec<_>>(),
            ["c5.xlarge", "m5.xlarge", "x2.huge"]
        );
        assert!(!cpu.spot && cpu.subnets.is_empty());
        let spot = &queues["spot"];
        assert!(spot.spot);
        assert_eq!(spot.subnets.iter().collect::<Vec<_>>(), ["subnet-1"]);
    }

    #[test]
    fn the_file_is_optional_unless_named() {
        let mut p = PricingSettings {
            fleet_config: Some(PathBuf::new()),
            ..PricingSettings::default()
        };
        assert_eq!(path_to_read(&p), None);
        p.fleet_config = Some(PathBuf::from("/nonexistent/fleet.json"));
        let named = path_to_read(&p).unwrap();
        assert!(apply_file(&p, &named)
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/fleet.json"));
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("fleet.json");
        std::fs::write(&bad, "[1, 2]").unwrap();
        assert!(
            format!("{:#}", apply_file(&p, &bad).unwrap_err()).contains("not a ParallelCluster fleet configuration")
        );
    }
}
