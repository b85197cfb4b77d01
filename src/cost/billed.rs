//! The bill beside the estimate (`cost-tags report --billed`): what Cost Explorer says
//! AWS billed the cluster over the report's window, per project tag, and the cost no
//! project tag explains (idle and booting nodes, the head node, storage, the rest of the
//! cluster's resources). With `--overhead proportional` that untagged cost is spread
//! over the projects in proportion to their estimated cost.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::Options;
use crate::aws::cost_explorer::{Bill, CostExplorerApi, CLUSTER_TAG};
use crate::aws::sdk::Runtime;
use crate::cost::period::Every;
use crate::model::time::{self, Timestamp};

/// How long Cost Explorer may take, retries included.
const AWS_TIME: Duration = Duration::from_secs(60);

/// Cost Explorer's metrics a report may compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Metric {
    #[value(name = "UnblendedCost")]
    UnblendedCost,
    #[value(name = "NetAmortizedCost")]
    NetAmortizedCost,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::UnblendedCost => "UnblendedCost",
            Metric::NetAmortizedCost => "NetAmortizedCost",
        }
    }
}

/// What to do with the cost that carries no project tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overhead {
    /// Show it on its own, as `(untagged)`.
    None,
    /// Add it to the projects in proportion to their estimated cost.
    Proportional,
}

/// The bill over the report's window.
#[derive(Debug, Clone)]
pub(crate) struct Billed {
    pub metric: Metric,
    pub currency: String,
    pub cluster: String,
    pub overhead: Overhead,
    /// (period start, period end, project; empty when untagged, amount).
    pub amounts: Vec<(Timestamp, Timestamp, String, f64)>,
    /// GetCostAndUsage requests made (0.01 USD each).
    pub requests: u32,
    /// The whole days the bill covers (Cost Explorer counts in days).
    pub window: (Timestamp, Timestamp),
    pub notes: Vec<String>,
}

impl Billed {
    /// Billed to `project` (`""`: untagged) in `[from, to)`: the amounts of the days or
    /// months that start there (`from` is taken from the start of its day, as Cost
    /// Explorer counts whole days).
    pub(crate) fn project_in(&self, project: &str, period: (Timestamp, Timestamp)) -> f64 {
        self.in_period(period)
            .filter(|(_, _, p, _)| p == project)
            .map(|a| a.3)
            .sum()
    }

    /// Billed to the cluster in `[from, to)`, tagged or not.
    pub(crate) fn all_in(&self, period: (Timestamp, Timestamp)) -> f64 {
        self.in_period(period).map(|a| a.3).sum()
    }

    fn in_period(
        &self,
        (from, to): (Timestamp, Timestamp),
    ) -> impl Iterator<Item = &(Timestamp, Timestamp, String, f64)> {
        let from = time::day(from).0;
        self.amounts
            .iter()
            .filter(move |(start, ..)| (from..to).contains(start))
    }

    pub(crate) fn total(&self) -> f64 {
        self.amounts.iter().map(|a| a.3).sum()
    }

    pub(crate) fn untagged(&self) -> f64 {
        self.by_project().get("").copied().unwrap_or(0.0)
    }

    /// Billed per project tag value; `""` is the untagged cost.
    pub(crate) fn by_project(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (_, _, p, amount) in &self.amounts {
            *out.entry(p.clone()).or_insert(0.0) += amount;
        }
        out
    }

    /// The untagged cost of `[from, to)` that `--overhead proportional` adds to a project
    /// whose estimate there is `estimate` out of `all_estimates`; 0 without it.
    pub(crate) fn overhead_share(&self, period: (Timestamp, Timestamp), estimate: f64, all_estimates: f64) -> f64 {
        if self.overhead == Overhead::None || all_estimates <= 0.0 {
            return 0.0;
        }
        self.project_in("", period) * estimate / all_estimates
    }
}

/// The window of whole UTC days Cost Explorer is asked about: from the day of `since` to
/// the end of the day of `until` (Cost Explorer's end date is exclusive).
pub(crate) fn days(options: &Options) -> (Timestamp, Timestamp) {
    let (start, first_end) = time::day(options.since);
    // The end of the day holding the window's last second.
    let end = time::day(options.until - 1).1;
    (start, end.max(first_end))
}

/// The bill of cluster `cluster`, grouped by `project_key`, over the report's window:
/// per day, or per month with `--every month`.
pub(crate) fn fetch(
    options: &Options,
    cluster: &str,
    project_key: &str,
    metric: Metric,
    overhead: Overhead,
) -> Result<Billed> {
    let window = days(options);
    let monthly = options.every == Some(Every::Month);
    let (start, end) = (date(window.0), date(window.1));
    let bill = Runtime::new()?.block_on(async {
        let api = CostExplorerApi::connect(AWS_TIME).await;
        api.cost_by_project((&start, &end), monthly, cluster, project_key, metric.name())
            .await
    })?;
    from_bill(bill, window, cluster, project_key, metric, overhead)
}

fn date(t: Timestamp) -> String {
    time::Plain(t).to_string()[..10].to_string()
}

/// The report's view of what Cost Explorer answered, with the notes a reader needs.
pub(crate) fn from_bill(
    bill: Bill,
    window: (Timestamp, Timestamp),
    cluster: &str,
    project_key: &str,
    metric: Metric,
    overhead: Overhead,
) -> Result<Billed> {
    let mut amounts = Vec::new();
    let mut currency = None;
    for a in &bill.amounts {
        let parse = |d: &str| {
            time::parse(d)
                .map(|(t, _)| t)
                .with_context(|| format!("Cost Explorer: {d:?} is not a date"))
        };
        // Cost Explorer's reader refuses these already; a Bill made elsewhere must not put
        // NaN into every sum the table and the CSV print.
        if !a.amount.is_finite() {
            bail!(
                "Cost Explorer: Metrics.{}.Amount of project {:?} for {} to {} is not a finite number",
                metric.name(),
                a.project,
                a.start,
                a.end
            );
        }
        amounts.push((parse(&a.start)?, parse(&a.end)?, a.project.clone(), a.amount));
        currency.get_or_insert_with(|| a.unit.clone());
    }
    let mut billed = Billed {
        metric,
        currency: currency.unwrap_or_else(|| "USD".into()),
        cluster: cluster.to_string(),
        overhead,
        amounts,
        requests: bill.requests,
        window,
        notes: Vec::new(),
    };
    billed.notes.push(format!(
        "billed: Cost Explorer {} of cluster {cluster} from {} to {} (whole days, UTC); it lags by up to a day, \
         so the last day may still grow. {} request{} at 0.01 USD each.",
        metric.name(),
        time::Short(window.0),
        time::Short(window.1),
        billed.requests,
        if billed.requests == 1 { "" } else { "s" },
    ));
    let credits: Vec<f64> = billed.amounts.iter().map(|a| a.3).filter(|a| *a < 0.0).collect();
    if !credits.is_empty() {
        billed.notes.push(format!(
            "billed: {} amount{} below 0 ({:.2} {} in all): credits or refunds, counted as billed, so a \
             project's billed cost can be below its estimate, or below 0.",
            credits.len(),
            if credits.len() == 1 { "" } else { "s" },
            credits.iter().sum::<f64>(),
            billed.currency,
        ));
    }
    let total = billed.total();
    if billed.amounts.is_empty() || total == 0.0 {
        billed.notes.push(format!(
            "billed: Cost Explorer has no cost for the tag {CLUSTER_TAG} = {cluster}. If the cluster ran in this \
             window, activate {CLUSTER_TAG} as a cost allocation tag (Billing and Cost Management console, Cost \
             allocation tags); it counts from activation on, after up to 24 hours."
        ));
    } else if billed.by_project().keys().all(String::is_empty) {
        billed.notes.push(format!(
            "billed: none of the cluster's cost carries the tag {project_key}. Activate {project_key} as a cost \
             allocation tag (Billing and Cost Management console, Cost allocation tags); it counts from \
             activation on, after up to 24 hours."
        ));
    }
    Ok(billed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::cost_explorer::BilledAmount;

    fn amount(start: &str, end: &str, project: &str, amount: f64) -> BilledAmount {
        BilledAmount {
            start: start.into(),
            end: end.into(),
            project: project.into(),
            amount,
            unit: "USD".into(),
        }
    }

    fn t(s: &str) -> Timestamp {
        time::parse(s).unwrap().0
    }

    #[test]
    fn sums_per_project_period_and_overhead() {
        let bill = Bill {
            amounts: vec![
                amount("2024-03-01", "2024-03-02", "A", 3.0),
                amount("2024-03-01", "2024-03-02", "", 1.0),
                amount("2024-03-02", "2024-03-03", "A", 2.0),
                amount("2024-03-02", "2024-03-03", "B", 4.0),
                amount("2024-03-02", "2024-03-03", "", 3.0),
            ],
            requests: 2,
        };
        let window = (t("2024-03-01"), t("2024-03-03"));
        let b = from_bill(bill, window, "c", "k", Metric::UnblendedCost, Overhead::Proportional).unwrap();
        assert_eq!((b.total(), b.untagged()), (13.0, 4.0));
        assert_eq!(b.project_in("A", (t("2024-03-02"), t("2024-03-03"))), 2.0);
        assert_eq!(b.by_project()["B"], 4.0);
        // Day 2: 3.0 untagged; a project with 1 of the day's 4 estimated gets a quarter.
        assert_eq!(b.overhead_share((t("2024-03-02"), t("2024-03-03")), 1.0, 4.0), 0.75);
        assert!(b.notes[0].contains("2 requests at 0.01 USD"), "{:?}", b.notes);
        let none = Billed {
            overhead: Overhead::None,
            ..b.clone()
        };
        assert_eq!(none.overhead_share(window, 1.0, 4.0), 0.0);
    }

    #[test]
    fn credits_are_kept_and_noted_and_non_finite_amounts_refused() {
        let window = (t("2024-03-01"), t("2024-03-02"));
        let bill = Bill {
            amounts: vec![
                amount("2024-03-01", "2024-03-02", "A", 3.0),
                amount("2024-03-01", "2024-03-02", "A", -1.25),
                amount("2024-03-01", "2024-03-02", "", -0.5),
            ],
            requests: 1,
        };
        let b = from_bill(bill, window, "c", "k", Metric::UnblendedCost, Overhead::None).unwrap();
        assert_eq!((b.total(), b.by_project()["A"], b.untagged()), (1.25, 1.75, -0.5));
        assert!(
            b.notes
                .iter()
                .any(|n| n.contains("2 amounts below 0 (-1.75 USD in all): credits or refunds")),
            "{:?}",
            b.notes
        );
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let bill = Bill {
                amounts: vec![amount("2024-03-01", "2024-03-02", "A", bad)],
                requests: 1,
            };
            let e = from_bill(bill, window, "c", "k", Metric::UnblendedCost, Overhead::None)
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                "Cost Explorer: Metrics.UnblendedCost.Amount of project \"A\" for 2024-03-01 to 2024-03-02 is not a \
                 finite number"
            );
        }
    }

    #[test]
    fn says_which_tag_to_activate() {
        let window = (t("2024-03-01"), t("2024-03-02"));
        let empty = from_bill(
            Bill::default(),
            window,
            "c1",
            "proj",
            Metric::UnblendedCost,
            Overhead::None,
        )
        .unwrap();
        assert!(
            empty.notes[1].contains("activate parallelcluster:cluster-name"),
            "{:?}",
            empty.notes
        );
        let untagged = Bill {
            amounts: vec![amount("2024-03-01", "2024-03-02", "", 5.0)],
            requests: 1,
        };
        let b = from_bill(untagged, window, "c1", "proj", Metric::UnblendedCost, Overhead::None).unwrap();
        assert!(
            b.notes[1].contains("Activate proj as a cost allocation tag"),
            "{:?}",
            b.notes
        );
    }

    #[test]
    fn whole_days() {
        let options = Options {
            since: t("2024-03-01T10:00"),
            until: t("2024-03-05T00:00"),
            now: Timestamp::UNIX_EPOCH,
            by: vec![],
            every: None,
            top: None,
            chart: None,
            clusters: None,
            users: crate::slurm::sacct::Users::All,
            filters: Default::default(),
            account_tree: None,
        };
        assert_eq!(days(&options), (t("2024-03-01"), t("2024-03-05")));
        let partial = Options {
            until: t("2024-03-05T00:01"),
            ..options
        };
        assert_eq!(days(&partial).1, t("2024-03-06"));
    }
}
