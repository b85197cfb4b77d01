//! The price cache put to use: its instance types fill in what `[pricing.instances]` does
//! not say, and each instance type's price is traced to where it came from.

use std::collections::BTreeMap;

use serde::Serialize;

use super::cache::PriceCache;
use crate::config::{InstancePricing, PricingSettings};
use crate::model::time::Timestamp;

/// Where an instance type's prices came from, for the report's notes and its JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PriceSource {
    /// `settings` ([pricing.instances]) or `price cache` (the AWS Price List).
    pub on_demand: &'static str,
    /// The cache's age when the report ran, when the price came from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    /// Partition -> where its spot price history came from, for spot nodes priced from
    /// the cache (a settings entry with a `spot` price gives that price instead).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub spot: BTreeMap<String, String>,
}

/// `pricing` with every instance type the cache knows and the settings do not (its vCPUs
/// as the node's CPUs, its GPUs, its on-demand price), and the source of each price.
/// Types the Price List had no price for are left out: a job on them stays unpriced.
pub(crate) fn with_cache(
    pricing: &PricingSettings,
    cache: Option<&PriceCache>,
    now: Timestamp,
) -> (PricingSettings, BTreeMap<String, PriceSource>) {
    let mut out = pricing.clone();
    let mut sources: BTreeMap<String, PriceSource> = pricing
        .instances
        .keys()
        .map(|name| {
            let source = PriceSource {
                on_demand: "settings",
                age_seconds: None,
                spot: BTreeMap::new(),
            };
            (name.clone(), source)
        })
        .collect();
    let Some(cache) = cache else {
        return (out, sources);
    };
    for (name, t) in &cache.instance_types {
        let Some(on_demand) = t.on_demand else { continue };
        if out.instances.contains_key(name) {
            continue;
        }
        out.instances.insert(
            name.clone(),
            InstancePricing {
                on_demand,
                spot: None,
                cpus: t.vcpus,
                gpus: t.gpus,
            },
        );
        sources.insert(
            name.clone(),
            PriceSource {
                on_demand: "price cache",
                age_seconds: Some((now - cache.refreshed_at).max(0)),
                spot: BTreeMap::new(),
            },
        );
    }
    (out, sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prices::cache::InstanceType;

    #[test]
    fn settings_win_and_the_cache_fills_in() {
        let mut pricing = PricingSettings::default();
        pricing.instances.insert(
            "c5.xlarge".into(),
            InstancePricing {
                on_demand: 0.2,
                spot: None,
                cpus: 2,
                gpus: 0,
            },
        );
        let mut cache = PriceCache::new("us-east-1", crate::model::time::Timestamp::from_second(1000));
        let shape = |on_demand| InstanceType {
            vcpus: 4,
            cores: 2,
            gpus: 1,
            on_demand,
        };
        cache.instance_types.insert("c5.xlarge".into(), shape(Some(0.17)));
        cache.instance_types.insert("g4dn.xlarge".into(), shape(Some(0.526)));
        cache.instance_types.insert("u-6tb1.metal".into(), shape(None));
        let (merged, sources) = with_cache(&pricing, Some(&cache), crate::model::time::Timestamp::from_second(4600));
        assert_eq!(merged.instances["c5.xlarge"].on_demand, 0.2);
        assert_eq!(merged.instances["g4dn.xlarge"].on_demand, 0.526);
        assert_eq!(
            (
                merged.instances["g4dn.xlarge"].cpus,
                merged.instances["g4dn.xlarge"].gpus
            ),
            (4, 1)
        );
        assert!(!merged.instances.contains_key("u-6tb1.metal"));
        assert_eq!(sources["c5.xlarge"].on_demand, "settings");
        assert_eq!(sources["g4dn.xlarge"].age_seconds, Some(3600));
    }
}
