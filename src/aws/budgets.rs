//! AWS Budgets, for `cost-tags budget`: read every budget of the account (to refresh the
//! cache project-check reads) and create a project's budget. Budgets is a global service
//! signed in us-east-1 unless `AWS_REGION` says otherwise; the account is the caller's
//! (STS GetCallerIdentity) unless the settings name it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_budgets::types::{
    Budget, BudgetType, ComparisonOperator, Notification, NotificationType, NotificationWithSubscribers, Spend,
    Subscriber, SubscriptionType, ThresholdType, TimeUnit,
};

use super::sdk::{self, summary};
use crate::model::budget_spend::BudgetSpend;
use crate::model::time::Timestamp;

/// The region AWS Budgets lives in.
const HOME_REGION: &str = "us-east-1";

pub(crate) struct BudgetsApi {
    client: aws_sdk_budgets::Client,
    account_id: String,
}

/// A budget to create: a COST budget on the spend tagged with one project.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewBudget {
    pub name: String,
    /// A decimal amount, as AWS takes it (`"500"`, `"1250.50"`).
    pub limit: String,
    pub currency: String,
    pub period: TimeUnit,
    /// `user:<tag key>$<value>`: the cost allocation tag the budget counts.
    pub tag_filter: String,
    /// E-mail and percentage of actual spend for each notification.
    pub notify: Vec<(String, f64)>,
}

/// What `all` could read: budgets by name, and one reason per budget it could not use
/// (one without a limit for the current period).
#[derive(Debug, Default)]
pub(crate) struct AccountBudgets {
    pub budgets: BTreeMap<String, BudgetSpend>,
    pub skipped: Vec<String>,
}

/// Why a budget cannot be used.
#[derive(Debug, Clone, PartialEq)]
enum Unusable {
    /// No limit for the current period: the budget is left out, as if it did not exist.
    NoLimit(String),
    /// An amount that is not a finite number, or a limit not above 0. Nothing of the answer
    /// is used: a cache holding it would read as corrupt (JSON has no NaN), and a corrupt
    /// cache follows `on_stale`, which may admit what `on_missing` refuses.
    BadAmount(String),
}

impl BudgetsApi {
    /// Connects, asking STS for the account when `account_id` is empty. Each call, retries
    /// included, ends within `budget`.
    pub(crate) async fn connect(account_id: &str, budget: Duration) -> Result<BudgetsApi> {
        let config = sdk::load(sdk::region_or(HOME_REGION), budget).await;
        let account_id = if account_id.is_empty() {
            aws_sdk_sts::Client::new(&config)
                .get_caller_identity()
                .send()
                .await
                .map_err(summary)
                .context("STS GetCallerIdentity (set budget.account_id to skip it)")?
                .account()
                .ok_or_else(|| anyhow!("STS GetCallerIdentity returned no account"))?
                .to_string()
        } else {
            account_id.to_string()
        };
        Ok(BudgetsApi {
            client: aws_sdk_budgets::Client::new(&config),
            account_id,
        })
    }

    pub(crate) fn account_id(&self) -> &str {
        &self.account_id
    }

    /// Every budget of the account (DescribeBudgets, all pages) for its current period.
    pub(crate) async fn all(&self, now: Timestamp) -> Result<AccountBudgets> {
        let mut found = AccountBudgets::default();
        let mut pages = self
            .client
            .describe_budgets()
            .account_id(&self.account_id)
            .max_results(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(summary).context("Budgets DescribeBudgets")?;
            for budget in page.budgets() {
                let name = budget.budget_name();
                match spend_of(budget, now) {
                    Ok(spend) => {
                        found.budgets.insert(name.to_string(), spend);
                    }
                    Err(Unusable::NoLimit(why)) => found.skipped.push(format!("{name}: {why}")),
                    Err(Unusable::BadAmount(why)) => bail!("Budgets DescribeBudgets: budget {name:?}: {why}"),
                }
            }
        }
        Ok(found)
    }

    /// Creates the budget with its notifications in one CreateBudget call.
    #[allow(deprecated)]
    pub(crate) async fn create(&self, new: &NewBudget) -> Result<()> {
        let budget = Budget::builder()
            .budget_name(&new.name)
            .budget_type(BudgetType::Cost)
            .time_unit(new.period.clone())
            .budget_limit(Spend::builder().amount(&new.limit).unit(&new.currency).build()?)
            // The filter the issue, the public scripts and the console's "Tag" filter all
            // write; FilterExpression is its newer equivalent.
            .cost_filters("TagKeyValue", vec![new.tag_filter.clone()])
            .build()?;
        let mut request = self.client.create_budget().account_id(&self.account_id).budget(budget);
        for (email, percent) in &new.notify {
            request = request.notifications_with_subscribers(
                NotificationWithSubscribers::builder()
                    .notification(
                        Notification::builder()
                            .notification_type(NotificationType::Actual)
                            .comparison_operator(ComparisonOperator::GreaterThan)
                            .threshold(*percent)
                            .threshold_type(ThresholdType::Percentage)
                            .build()?,
                    )
                    .subscribers(
                        Subscriber::builder()
                            .subscription_type(SubscriptionType::Email)
                            .address(email)
                            .build()?,
                    )
                    .build()?,
            );
        }
        request.send().await.map_err(summary).context("Budgets CreateBudget")?;
        Ok(())
    }
}

/// Limit and spend for the period containing `now`. A budget with planned limits uses
/// the one whose period started last.
fn spend_of(budget: &Budget, now: Timestamp) -> Result<BudgetSpend, Unusable> {
    let (limit, limit_field) = match (budget.budget_limit(), budget.planned_budget_limits()) {
        (Some(limit), _) => (limit, "BudgetLimit.Amount".to_string()),
        (None, Some(planned)) => planned
            .iter()
            .filter_map(|(start, spend)| Some((Timestamp::from_second(start.parse::<i64>().ok()?), start, spend)))
            .filter(|(start, ..)| *start <= now)
            .max_by_key(|(start, ..)| *start)
            .map(|(_, start, spend)| (spend, format!("PlannedBudgetLimits.{start}.Amount")))
            .ok_or_else(|| Unusable::NoLimit("no planned limit for the current period".into()))?,
        (None, None) => return Err(Unusable::NoLimit("no limit".into())),
    };
    let spend = budget.calculated_spend();
    let limit_value = amount(limit, &limit_field)?;
    if limit_value <= 0.0 {
        return Err(Unusable::BadAmount(format!(
            "its limit ({limit_field}) is {limit_value}, not above 0"
        )));
    }
    Ok(BudgetSpend {
        limit: limit_value,
        actual: match spend.and_then(|s| s.actual_spend()) {
            Some(s) => amount(s, "CalculatedSpend.ActualSpend.Amount")?,
            None => 0.0,
        },
        forecast: match spend.and_then(|s| s.forecasted_spend()) {
            Some(s) => Some(amount(s, "CalculatedSpend.ForecastedSpend.Amount")?),
            None => None,
        },
        unit: limit.unit().to_string(),
        period: budget.time_unit().as_str().to_string(),
        updated_at: budget.last_updated_time().map(|t| Timestamp::from_second(t.secs())),
        accrued: None,
        committed: None,
        running_jobs: None,
        pending_jobs: None,
    })
}

/// The amount of `spend`, a finite number. `field` names it as AWS does. A text that is not
/// a number is quoted; `NaN`, `inf` and `1e400` (which Rust reads as infinite) are not, so
/// that no such word reaches a log or a cache.
fn amount(spend: &Spend, field: &str) -> Result<f64, Unusable> {
    let text = spend.amount().trim();
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err(Unusable::BadAmount(format!("{field} is not a finite number"))),
        Err(_) => Err(Unusable::BadAmount(format!("{field} {text:?} is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_budgets::types::CalculatedSpend;

    fn spend(amount: &str) -> Spend {
        Spend::builder().amount(amount).unit("USD").build().unwrap()
    }

    #[test]
    fn limit_and_spend_of_a_budget() {
        let b = Budget::builder()
            .budget_name("P")
            .budget_type(BudgetType::Cost)
            .time_unit(TimeUnit::Monthly)
            .budget_limit(spend("100.0"))
            .calculated_spend(
                CalculatedSpend::builder()
                    .actual_spend(spend("12.5"))
                    .forecasted_spend(spend("80"))
                    .build(),
            )
            .build()
            .unwrap();
        let s = spend_of(&b, Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(
            (s.limit, s.actual, s.forecast, s.period.as_str()),
            (100.0, 12.5, Some(80.0), "MONTHLY")
        );
    }

    #[test]
    fn planned_limits_use_the_current_period() {
        let b = Budget::builder()
            .budget_name("P")
            .budget_type(BudgetType::Cost)
            .time_unit(TimeUnit::Monthly)
            .planned_budget_limits("1000", spend("10"))
            .planned_budget_limits("2000", spend("20"))
            .planned_budget_limits("3000", spend("30"))
            .build()
            .unwrap();
        let s = spend_of(&b, Timestamp::from_second(2500)).unwrap();
        assert_eq!((s.limit, s.actual), (20.0, 0.0));
        assert!(matches!(
            spend_of(&b, Timestamp::from_second(500)),
            Err(Unusable::NoLimit(_))
        ));
    }

    #[test]
    fn unusable_amounts_are_reported() {
        let b = Budget::builder()
            .budget_name("P")
            .budget_type(BudgetType::Cost)
            .time_unit(TimeUnit::Monthly)
            .budget_limit(spend("lots"))
            .build()
            .unwrap();
        let Unusable::BadAmount(why) = spend_of(&b, Timestamp::UNIX_EPOCH).unwrap_err() else {
            panic!("a bad amount")
        };
        assert!(why.contains("lots") && why.contains("BudgetLimit.Amount"), "{why}");
    }

    #[test]
    fn amounts_must_be_finite_and_limits_above_0() {
        let budget = |limit: &str, actual: &str, forecast: &str| {
            Budget::builder()
                .budget_name("P")
                .budget_type(BudgetType::Cost)
                .time_unit(TimeUnit::Monthly)
                .budget_limit(spend(limit))
                .calculated_spend(
                    CalculatedSpend::builder()
                        .actual_spend(spend(actual))
                        .forecasted_spend(spend(forecast))
                        .build(),
                )
                .build()
                .unwrap()
        };
        for (b, field) in [
            (budget("NaN", "1", "1"), "BudgetLimit.Amount is not a finite number"),
            (budget("inf", "1", "1"), "BudgetLimit.Amount is not a finite number"),
            (budget("1e400", "1", "1"), "BudgetLimit.Amount is not a finite number"),
            (budget("0", "1", "1"), "BudgetLimit.Amount) is 0, not above 0"),
            (budget("-5", "1", "1"), "BudgetLimit.Amount) is -5, not above 0"),
            (budget("100", "NaN", "1"), "ActualSpend.Amount is not a finite number"),
            (
                budget("100", "1", "-inf"),
                "ForecastedSpend.Amount is not a finite number",
            ),
        ] {
            match spend_of(&b, Timestamp::UNIX_EPOCH) {
                Err(Unusable::BadAmount(why)) => {
                    assert!(why.contains(field), "{why}");
                    assert!(!why.to_lowercase().contains("nan") && !why.contains("inf"), "{why}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        // A credit makes actual spend negative: a real amount, kept.
        assert_eq!(
            spend_of(&budget("100", "-2.5", "0"), Timestamp::UNIX_EPOCH)
                .unwrap()
                .actual,
            -2.5
        );
    }
}
