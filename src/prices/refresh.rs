//! `cost-tags prices refresh`: for every instance type the cluster uses, its shape
//! (DescribeInstanceTypes), its on-demand price in the cluster's region (the Price List)
//! and its spot price history per zone (DescribeSpotPriceHistory); for every queue of the
//! fleet, the zones of its subnets (DescribeSubnets). All of it is written in one step to
//! the price cache; any failure leaves the old cache as it was.
//!
//! The instance types are those of the fleet configuration, those `[pricing]` names (its
//! instances, partitions and node patterns, and those of `[pricing.clusters.NAME]` and
//! their fleet files) and any asked for on the command line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::future::join_all;

use super::cache::{self, InstanceType, PriceCache};
use crate::aws::ec2_catalog::Ec2Catalog;
use crate::aws::imds;
use crate::aws::price_list::PriceListApi;
use crate::aws::sdk::Runtime;
use crate::config::Settings;
use crate::model::time::Timestamp;
use crate::parallelcluster::fleet_config;

/// How long each AWS call may take, retries included.
const AWS_TIME: Duration = Duration::from_secs(60);
/// How long the whole refresh may take. It runs from a oneshot timer (and cron), which
/// must end: each call is bounded by [`AWS_TIME`], but a run of calls (pages, chunks of
/// instance types) needs a bound of its own.
const REFRESH_TIME: Duration = Duration::from_secs(600);
/// How many calls to the Price List run at once.
const PARALLEL_PRICE_QUERIES: usize = 8;

#[derive(Debug, Clone)]
pub(crate) struct RefreshOptions {
    /// Instance types to price besides the cluster's.
    pub instance_types: Vec<String>,
    /// How many days of spot price history to read (EC2 keeps 90).
    pub spot_days: u32,
}

/// What a refresh wrote.
#[derive(Debug, Clone)]
pub(crate) struct Refreshed {
    pub path: PathBuf,
    pub region: String,
    /// Instance types EC2 described.
    pub instance_types: usize,
    /// Of those, the ones the Price List gave an on-demand price for.
    pub priced: usize,
    /// Spot histories (instance type and zone) now in the cache.
    pub spot_series: usize,
    /// Types that could not be described or priced, and the like.
    pub notes: Vec<String>,
}

/// The instance types and queues to refresh, from the settings and the fleet file.
fn wanted(
    settings: &Settings,
    options: &RefreshOptions,
) -> Result<(BTreeSet<String>, BTreeMap<String, fleet_config::Queue>)> {
    let pricing = &settings.pricing;
    let mut types: BTreeSet<String> = options.instance_types.iter().cloned().collect();
    types.extend(pricing.instances.keys().cloned());
    types.extend(pricing.partitions.values().filter_map(|p| p.instance.clone()));
    types.extend(pricing.nodes.iter().map(|n| n.instance.clone()));
    let queues = match fleet_config::path_to_read(pricing) {
        Some(path) => fleet_config::read_queues(&path)?,
        None => BTreeMap::new(),
    };
    types.extend(queues.values().flat_map(|q| q.instance_types.iter().cloned()));
    // Other clusters' types too (their queues' zones are not looked up: their spot jobs
    // are priced at the region's average, and the report says so).
    for name in pricing.clusters.keys() {
        let other = pricing.for_cluster(name);
        types.extend(other.partitions.values().filter_map(|p| p.instance.clone()));
        types.extend(other.nodes.iter().map(|n| n.instance.clone()));
        if let Some(path) = fleet_config::path_to_read(&other) {
            let queues = fleet_config::read_queues(&path)?;
            types.extend(queues.values().flat_map(|q| q.instance_types.iter().cloned()));
        }
    }
    types.retain(|t| !t.is_empty());
    Ok((types, queues))
}

/// Refreshes the price cache at `now`. An error means nothing was written.
pub(crate) fn refresh(settings: &Settings, options: &RefreshOptions, now: Timestamp) -> Result<Refreshed> {
    let path = settings
        .pricing
        .cache_file
        .clone()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_PRICE_CACHE));
    let (types, queues) = wanted(settings, options)?;
    anyhow::ensure!(
        !types.is_empty(),
        "no instance types to price: no fleet configuration, no [pricing] entries, no --instance-type"
    );
    let types: Vec<String> = types.into_iter().collect();
    let old = PriceCache::read(&path).ok();
    let runtime = Runtime::new()?;
    let deadline = Instant::now() + REFRESH_TIME;
    let spot_from = now - i64::from(options.spot_days) * 86_400;
    // The Price List stops at `deadline` naming the instance type; this is the backstop
    // for the other calls, a second later so that the named error wins.
    let backstop = deadline + Duration::from_secs(1);
    let (region, shapes, prices, spot, subnet_zones) = runtime.within(backstop, async {
        let region = match ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
        {
            Some(r) => r,
            None => {
                imds::identity(&settings.cache_dir, settings.deadline)
                    .await
                    .context("no AWS_REGION, and IMDS did not say the region")?
                    .region
            }
        };
        let ec2 = Ec2Catalog::new(&region, AWS_TIME).await;
        let shapes = ec2.shapes(&types).await?;
        let known: Vec<String> = shapes.keys().cloned().collect();
        let price_list = PriceListApi::connect(AWS_TIME).await;
        let mut prices = BTreeMap::new();
        for chunk in known.chunks(PARALLEL_PRICE_QUERIES) {
            let answers = join_all(chunk.iter().map(|t| price_list.on_demand_hourly(t, &region, deadline))).await;
            for (t, answer) in chunk.iter().zip(answers) {
                prices.insert(
                    t.clone(),
                    answer.with_context(|| format!("the on-demand price of {t}"))?,
                );
            }
        }
        let spot = ec2.spot_history(&known, spot_from, now).await?;
        let subnets: Vec<String> = queues
            .values()
            .flat_map(|q| q.subnets.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let subnet_zones = ec2.subnet_zones(&subnets).await?;
        anyhow::Ok((region, shapes, prices, spot, subnet_zones))
    })?;

    let mut notes = Vec::new();
    let mut new = PriceCache::new(&region, now);
    for t in &types {
        match shapes.get(t) {
            None => notes.push(format!(
                "{t}: EC2 does not know this instance type in {region}; not cached"
            )),
            Some(shape) => {
                let on_demand = prices.get(t).copied().flatten();
                if on_demand.is_none() {
                    notes.push(format!("{t}: the Price List has no on-demand Linux price in {region}"));
                }
                new.instance_types.insert(
                    t.clone(),
                    InstanceType {
                        vcpus: shape.vcpus,
                        cores: shape.cores,
                        gpus: shape.gpus,
                        on_demand,
                    },
                );
            }
        }
    }
    for (queue, q) in &queues {
        let zones: BTreeSet<String> = q.subnets.iter().filter_map(|s| subnet_zones.get(s).cloned()).collect();
        if !zones.is_empty() {
            new.zones.insert(queue.clone(), zones.into_iter().collect());
        }
    }
    // Keep what the old cache knew before this window, for reports of older months.
    new.spot = spot;
    if let Some(old) = old.as_ref().filter(|o| o.region == region) {
        for (t, zones) in &old.spot {
            for (zone, series) in zones {
                let merged = cache::merge_history(
                    series,
                    spot_from,
                    new.spot.get(t).and_then(|z| z.get(zone)).map_or(&[][..], Vec::as_slice),
                );
                new.spot.entry(t.clone()).or_default().insert(zone.clone(), merged);
            }
        }
    }
    new.write(&path)?;
    Ok(Refreshed {
        path,
        region,
        instance_types: new.instance_types.len(),
        priced: new.instance_types.values().filter(|t| t.on_demand.is_some()).count(),
        spot_series: new.spot.values().map(|z| z.len()).sum(),
        notes,
    })
}
