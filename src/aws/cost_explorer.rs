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
pub(crate) const CLUSTER_TAG: &str = "parallelcluster:cluster-name";

/// One amount of the bill: a period (`YYYY-MM-DD`, end exclusive), the project tag's
/// value (empty: no project tag), the amount and its currency.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BilledAmount {
    pub start: String,
    pub end: String,
    pub project: String,
    pub amount: f64,
    pub unit: String,
}

pub(crate) struct CostExplorerApi {
    client: aws_sdk_costexplorer::Client,
}

/// What one query read: the amounts, and how many requests (pages) it took.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bill {
    pub amounts: Vec<BilledAmount>,
    pub requests: u32,
}

impl CostExplorerApi {
    /// `budget` bounds each call, retries included.
    pub(crate) async fn connect(budget: Duration) -> CostExplorerApi {
        let config = sdk::load(sdk::region_or(HOME_REGION), budget).await;
        CostExplorerApi {
            client: aws_sdk_costexplorer::Client::new(&config),
        }
    }

    /// The cost of cluster `cluster` from `start` to `end` (dates, end exclusive), per
    /// day or month, grouped by the tag `project_key`, every page followed.
    pub(crate) async fn cost_by_project(
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
                        .push(amount((start, end), project, metric, value.amount(), value.unit())?);
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

/// One amount of the answer, a finite number: credits and refunds are negative and kept,
/// but `NaN` or an infinity (`1e400` reads as one) would make every sum it enters `NaN`,
/// printed as such in the table and the CSV. The error names the period, the project and
/// the field; a text that is not a number is quoted, a non-finite one is not, so no `NaN`
/// or `inf` is ever printed.
fn amount(
    (start, end): (&str, &str),
    project: &str,
    metric: &str,
    amount: Option<&str>,
    unit: Option<&str>,
) -> Result<BilledAmount> {
    let text = amount.unwrap_or("0").trim();
    let field = format!("Metrics.{metric}.Amount");
    let whose = if project.is_empty() {
        "the untagged cost".to_string()
    } else {
        format!("project {project:?}")
    };
    let value = match text.parse::<f64>() {
        Ok(value) if value.is_finite() => value,
        Ok(_) => bail!("Cost Explorer: {field} of {whose} for {start} to {end} is not a finite number"),
        Err(_) => bail!("Cost Explorer: {field} {text:?} of {whose} for {start} to {end} is not a number"),
    };
    Ok(BilledAmount {
        start: start.to_string(),
        end: end.to_string(),
        project: project.to_string(),
        amount: value,
        unit: unit.unwrap_or("USD").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_finite_numbers_and_credits_are_kept() {
        let period = ("2024-03-10", "2024-03-11");
        let read = |text: &str| amount(period, "P1", "UnblendedCost", Some(text), Some("USD"));
        assert_eq!(read("1.25").unwrap().amount, 1.25);
        assert_eq!(read("-0.40").unwrap().amount, -0.4, "a credit");
        for text in ["NaN", "nan", "inf", "-Infinity", "1e400", "-1e400"] {
            let e = read(text).unwrap_err().to_string();
            assert_eq!(
                e,
                "Cost Explorer: Metrics.UnblendedCost.Amount of project \"P1\" for 2024-03-10 to 2024-03-11 \
                 is not a finite number",
                "{text}"
            );
        }
        let e = read("lots").unwrap_err().to_string();
        assert!(e.contains("\"lots\"") && e.contains("2024-03-10 to 2024-03-11"), "{e}");
        let untagged = amount(period, "", "UnblendedCost", Some("NaN"), None).unwrap_err();
        assert!(untagged.to_string().contains("of the untagged cost for"), "{untagged}");
    }
}
