//! Cost Explorer (`ce:GetCostAndUsage`), for `cost-tags report --billed`: what AWS billed
//! for one cluster (filtered on the tag `parallelcluster:cluster-name`), grouped by the
//! project tag. Cost Explorer answers from us-east-1; each request costs 0.01 USD, so a
//! report asks once per page and no more.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_costexplorer::types::{
    DateInterval, Expression, Granularity, GroupDefinition, GroupDefinitionType, TagValues,
};

use super::sdk::{self, summary};

/// The region Cost Explorer is called in.
const HOME_REGION: &str = "us-east-1";

/// The tag ParallelCluster puts on every resource of a cluster.
pub const CLUSTER_TAG: &str = "parallelcluster:cluster-name";

/// One amount of the bill: a period (`YYYY-MM-DD`, end exclusive), the project tag's
/// value (empty: no project tag), the amount and its currency.
#[derive(Debug, Clone, PartialEq)]
pub struct BilledAmount {
    pub start: String,
    pub end: String,
    pub project: String,
    pub amount: f64,
    pub unit: String,
}

pub struct CostExplorerApi {
    client: aws_sdk_costexplorer::Client,
}

/// What one query read: the amounts, and how many requests (pages) it took.
#[derive(Debug, Clone, Default)]
pub struct Bill {
    pub amounts: Vec<BilledAmount>,
    pub requests: u32,
}

impl CostExplorerApi {
    /// `budget` bounds each call, retries included.
    pub async fn connect(budget: Duration) -> CostExplorerApi {
        let config = sdk::load(sdk::region_or(HOME_REGION), budget).await;
        CostExplorerApi {
            client: aws_sdk_costexplorer::Client::new(&config),
        }
    }

    /// The cost of cluster `cluster` from `start` to `end` (dates, end exclusive), per
    /// day or month, grouped by the tag `project_key`, every page followed.
    pub async fn cost_by_project(
        &self,
        (start, end): (&str, &str),
        monthly: bool,
        cluster: &str,
        project_key: &str,
        metric: &str,
    ) -> Result<Bill> {
        let period = DateInterval::builder()
            .start(start)
            .end(end)
            .build()
            .context("Cost Explorer time period")?;
        let mut bill = Bill::default();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_cost_and_usage()
                .time_period(period.clone())
                .granularity(if monthly {
                    Granularity::Monthly
                } else {
                    Granularity::Daily
                })
                .metrics(metric)
                .filter(
                    Expression::builder()
                        .tags(TagValues::builder().key(CLUSTER_TAG).values(cluster).build())
                        .build(),
                )
                .group_by(
                    GroupDefinition::builder()
                        .r#type(GroupDefinitionType::Tag)
                        .key(project_key)
                        .build(),
                )
                .set_next_page_token(token.take())
                .send()
                .await
                .map_err(summary)
                .context("Cost Explorer GetCostAndUsage")?;
            bill.requests += 1;
            for result in page.results_by_time() {
                let (Some(start), Some(end)) = (
                    result.time_period().map(|p| p.start()),
                    result.time_period().map(|p| p.end()),
                ) else {
                    continue;
                };
                for group in result.groups() {
                    let Some(value) = group.metrics().and_then(|m| m.get(metric)) else {
                        continue;
                    };
                    let key = group.keys().first().map(String::as_str).unwrap_or_default();
                    // "aws-parallelcluster-project$ProjectA"; "...$" when untagged.
                    let project = key.split_once('$').map_or("", |(_, v)| v);
                    bill.amounts
                        .push(amount(start, end, project, value.amount(), value.unit())?);
                }
            }
            match page.next_page_token().filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
            if bill.requests >= 1000 {
                bail!("Cost Explorer GetCostAndUsage: more than 1000 pages; ask for a shorter window");
            }
        }
        Ok(bill)
    }
}

fn amount(start: &str, end: &str, project: &str, amount: Option<&str>, unit: Option<&str>) -> Result<BilledAmount> {
    let text = amount.unwrap_or("0");
    let value: f64 = text
        .parse()
        .with_context(|| format!("Cost Explorer: amount {text:?} is not a number"))?;
    Ok(BilledAmount {
        start: start.to_string(),
        end: end.to_string(),
        project: project.to_string(),
        amount: value,
        unit: unit.unwrap_or("USD").to_string(),
    })
}
