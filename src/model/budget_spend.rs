//! A budget's limit and spend for its current period, as AWS Budgets reports it and
//! Slurm's accounting adds to it: read from AWS (`aws::budgets`), kept in the budget
//! cache (`budget::cache`), shown by `cost-tags budget list` and the metrics.

use serde::{Deserialize, Serialize};

use super::time::{self, Timestamp};

/// One budget for its current period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpend {
    pub limit: f64,
    pub actual: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
    /// Currency (or unit) of all three amounts.
    pub unit: String,
    /// AWS's time unit: `MONTHLY`, `QUARTERLY`, `ANNUALLY`, `DAILY`, `CUSTOM`.
    pub period: String,
    /// When AWS last updated `actual` (seconds since the epoch), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// Spent since `actual` was last updated, from Slurm accounting (priced like the
    /// report); with `[budget.limits]`, everything spent this period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accrued: Option<f64>,
    /// What the running jobs may still cost up to their time limits, and the pending
    /// jobs at their worst case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<f64>,
    /// Jobs of the project running at the refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_jobs: Option<u64>,
    /// Jobs of the project pending at the refresh (counted in `committed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_jobs: Option<u64>,
}

impl BudgetSpend {
    /// The period in the words of the refusal message ("for this month").
    pub fn period_word(&self) -> &'static str {
        match self.period.as_str() {
            "DAILY" => "day",
            "MONTHLY" => "month",
            "QUARTERLY" => "quarter",
            "ANNUALLY" => "year",
            _ => "period",
        }
    }

    /// Hours from `now` to the end of the budget's current period: all a job with no
    /// time bound can cost this budget. A custom period counts as a month.
    pub fn hours_left(&self, t: Timestamp) -> f64 {
        let end = match self.period.as_str() {
            "DAILY" => time::day(t).1,
            "QUARTERLY" => time::months(t, 3).1,
            "ANNUALLY" => time::months(t, 12).1,
            _ => time::months(t, 1).1,
        };
        (end - t).max(0) as f64 / 3600.0
    }

    /// Spent or committed: AWS's actual spend, what accrued since, what running jobs
    /// may still cost.
    pub fn committed_total(&self) -> f64 {
        self.actual + self.accrued.unwrap_or(0.0) + self.committed.unwrap_or(0.0)
    }

    /// Actual spend as a percentage of the limit (infinite for a zero limit with spend).
    pub fn percent_used(&self) -> f64 {
        if self.limit > 0.0 {
            self.actual / self.limit * 100.0
        } else if self.actual > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    }
}
