//! What EC2 says about what it sells, for `cost-tags prices refresh`: instance shapes
//! (DescribeInstanceTypes), spot price history (DescribeSpotPriceHistory, Linux/UNIX) and
//! the Availability Zone of each subnet (DescribeSubnets). Every page is read.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_ec2::primitives::DateTime;
use aws_sdk_ec2::types::InstanceType;

use super::sdk::{self, summary};
use crate::model::time::Timestamp;

/// An instance type's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub vcpus: u32,
    pub cores: u32,
    pub gpus: u32,
}

pub(crate) struct Ec2Catalog {
    client: aws_sdk_ec2::Client,
}

impl Ec2Catalog {
    /// A client in `region`; `budget` bounds each call, retries included.
    pub(crate) async fn new(region: &str, budget: Duration) -> Ec2Catalog {
        let config = sdk::load(region.to_string(), budget).await;
        Ec2Catalog {
            client: aws_sdk_ec2::Client::new(&config),
        }
    }

    /// The shape of each of `types` EC2 knows in the region (unknown names are left out:
    /// EC2 refuses a request naming one, so they are asked one at a time then).
    pub(crate) async fn shapes(&self, types: &[String]) -> Result<BTreeMap<String, Shape>> {
        match self.describe_types(types).await {
            Ok(found) => Ok(found),
            Err(e) if types.len() > 1 => {
                let mut found = BTreeMap::new();
                for t in types {
                    if let Ok(one) = self.describe_types(std::slice::from_ref(t)).await {
                        found.extend(one);
                    }
                }
                if found.is_empty() {
                    return Err(e);
                }
                Ok(found)
            }
            Err(e) => Err(e),
        }
    }

    async fn describe_types(&self, types: &[String]) -> Result<BTreeMap<String, Shape>> {
        let mut found = BTreeMap::new();
        let mut pages = self
            .client
            .describe_instance_types()
            .set_instance_types(Some(types.iter().map(|t| InstanceType::from(t.as_str())).collect()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(summary).context("EC2 DescribeInstanceTypes")?;
            for info in page.instance_types() {
                let (Some(name), Some(cpu)) = (info.instance_type(), info.v_cpu_info()) else {
                    continue;
                };
                let vcpus = cpu.default_v_cpus().unwrap_or(0).max(0) as u32;
                let cores = cpu.default_cores().map_or(vcpus, |c| c.max(0) as u32);
                let gpus = info.gpu_info().map_or(0, |g| {
                    g.gpus().iter().map(|d| d.count().unwrap_or(0).max(0) as u32).sum()
                });
                if vcpus == 0 {
                    bail!("EC2 DescribeInstanceTypes: {} has no vCPU count", name.as_str());
                }
                found.insert(
                    name.as_str().to_string(),
                    Shape {
                        vcpus,
                        cores: cores.max(1),
                        gpus,
                    },
                );
            }
        }
        Ok(found)
    }

    /// The Linux/UNIX spot price changes of `types` in every zone of the region over
    /// `[from, to)`, sorted; EC2 includes the price already in force at `from`.
    pub(crate) async fn spot_history(
        &self,
        types: &[String],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<BTreeMap<String, BTreeMap<String, Vec<(Timestamp, f64)>>>> {
        let mut found: BTreeMap<String, BTreeMap<String, Vec<(Timestamp, f64)>>> = BTreeMap::new();
        if types.is_empty() {
            return Ok(found);
        }
        let mut pages = self
            .client
            .describe_spot_price_history()
            .set_instance_types(Some(types.iter().map(|t| InstanceType::from(t.as_str())).collect()))
            .product_descriptions("Linux/UNIX")
            .start_time(DateTime::from_secs(from.as_second()))
            .end_time(DateTime::from_secs(to.as_second()))
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(summary).context("EC2 DescribeSpotPriceHistory")?;
            for p in page.spot_price_history() {
                let (Some(t), Some(zone), Some(price), Some(at)) =
                    (p.instance_type(), p.availability_zone(), p.spot_price(), p.timestamp())
                else {
                    continue;
                };
                let price: f64 = price
                    .parse()
                    .with_context(|| format!("EC2 DescribeSpotPriceHistory: price {price:?} is not a number"))?;
                found
                    .entry(t.as_str().to_string())
                    .or_default()
                    .entry(zone.to_string())
                    .or_default()
                    .push((Timestamp::from_second(at.secs()), price));
            }
        }
        for series in found.values_mut().flat_map(|z| z.values_mut()) {
            series.sort_by_key(|&(t, _)| t);
            series.dedup_by_key(|&mut (t, _)| t);
        }
        Ok(found)
    }

    /// The Availability Zone of each of `subnets`.
    pub(crate) async fn subnet_zones(&self, subnets: &[String]) -> Result<BTreeMap<String, String>> {
        let mut found = BTreeMap::new();
        if subnets.is_empty() {
            return Ok(found);
        }
        let mut pages = self
            .client
            .describe_subnets()
            .set_subnet_ids(Some(subnets.to_vec()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(summary).context("EC2 DescribeSubnets")?;
            for s in page.subnets() {
                if let (Some(id), Some(zone)) = (s.subnet_id(), s.availability_zone()) {
                    found.insert(id.to_string(), zone.to_string());
                }
            }
        }
        Ok(found)
    }
}
