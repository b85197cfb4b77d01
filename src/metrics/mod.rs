//! `cost-tags metrics`: spend as OpenMetrics text, for node_exporter's textfile collector
//! (and so Prometheus and its alerts). Per project, from the budget cache that `budget
//! refresh` keeps (no AWS call here: the head node's timer may run this every few
//! minutes): spend this budget period, the limit, what running jobs commit, how many run.
//! Per user, from sacct priced like the report: spend since the start of this month (UTC),
//! since budgets are per project and the cache knows nothing of users. The cache's age is
//! a metric too, so a refresh that stopped working can be alerted on, and whether the last
//! refresh could read Slurm (when it could not, the cache keeps older figures).
//!
//! Every family is a gauge (spend this period falls back to zero when a period starts);
//! amounts carry their currency as a label, since OpenMetrics units are SI-like suffixes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::budget::cache::BudgetCache;
use crate::config::BudgetSettings;
use crate::cost::{Dimension, Options, Report};
use crate::model::time::{self, Timestamp};
use crate::slurm::sacct;

/// What the metrics are made of.
#[derive(Debug, Clone)]
pub(crate) struct Figures<'a> {
    /// The budget cache, when there is one.
    pub budgets: Option<&'a BudgetCache>,
    /// To tell the project of a budget name (`name_template`).
    pub budget_settings: &'a BudgetSettings,
    /// User -> spend since `users_since`, in `currency`.
    pub users: &'a BTreeMap<String, f64>,
    pub currency: &'a str,
    pub users_since: Timestamp,
    pub now: Timestamp,
}

/// The report's options for the per-user figures: this month (UTC) up to `now`, by user,
/// for everyone's jobs when root runs it.
pub(crate) fn user_options(now: Timestamp, users: sacct::Users) -> Options {
    Options {
        since: time::month_start(now),
        until: now,
        now,
        by: vec![Dimension::User],
        every: None,
        top: None,
        chart: None,
        clusters: None,
        users,
        filters: Default::default(),
        account_tree: None,
    }
}

/// User -> cost of a report made with [`user_options`] (unpriced jobs count nothing).
pub(crate) fn users_of(report: &Report) -> BTreeMap<String, f64> {
    report
        .summary
        .groups
        .iter()
        .map(|(group, sums)| (group.join(" "), sums.cost))
        .collect()
}

/// A label value with `\`, `"` and newlines escaped, as OpenMetrics requires.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value: shortest decimal of the amount rounded to a millionth (no binary
/// noise such as 0.30000000000000004); OpenMetrics spellings for the non-finite.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        let rounded = (v * 1e6).round() / 1e6;
        // -0 reads oddly.
        format!("{}", rounded + 0.0)
    }
}

/// One metric family being written.
struct Family<'o> {
    out: &'o mut String,
    name: &'static str,
}

impl<'o> Family<'o> {
    fn new(out: &'o mut String, name: &'static str, help: &str, unit: Option<&str>) -> Family<'o> {
        let _ = writeln!(out, "# TYPE {name} gauge");
        if let Some(unit) = unit {
            let _ = writeln!(out, "# UNIT {name} {unit}");
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.out, "{}", self.name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = write!(self.out, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

/// The whole exposition, ending with `# EOF`. Budgets whose names do not follow
/// `name_template` are not a project's and are left out.
pub(crate) fn text(f: &Figures<'_>) -> String {
    let mut out = String::new();
    let projects: Vec<(&str, &crate::model::budget_spend::BudgetSpend)> = f
        .budgets
        .iter()
        .flat_map(|c| c.budgets.iter())
        .filter_map(|(name, spend)| Some((f.budget_settings.project_of(name)?, spend)))
        .collect();
    if let Some(cache) = f.budgets {
        let age = (f.now - cache.header.refreshed_at).max(0);
        Family::new(
            &mut out,
            "cost_tags_budget_cache_age_seconds",
            "Seconds since cost-tags budget refresh last wrote the budget cache the project figures come from.",
            Some("seconds"),
        )
        .sample(&[], age as f64);
        Family::new(
            &mut out,
            "cost_tags_budget_slurm_read_ok",
            "1 when the last budget refresh read Slurm accounting and squeue; 0 when it could not, and the budget cache keeps the figures of its last good read (or, with enforce = spent, AWS's alone).",
            None,
        )
        .sample(&[], if cache.header.slurm_failed_at.is_some() { 0.0 } else { 1.0 });
    }
    let mut family = Family::new(
        &mut out,
        "cost_tags_project_spend",
        "Spend of the project this budget period: what AWS Budgets last said plus what Slurm accounting accrued since (budget cache).",
        None,
    );
    for (project, spend) in &projects {
        family.sample(
            &[("project", project), ("currency", &spend.unit)],
            spend.actual + spend.accrued.unwrap_or(0.0),
        );
    }
    let mut family = Family::new(
        &mut out,
        "cost_tags_project_limit",
        "Budget limit of the project for this budget period (budget cache).",
        None,
    );
    for (project, spend) in &projects {
        family.sample(&[("project", project), ("currency", &spend.unit)], spend.limit);
    }
    let mut family = Family::new(
        &mut out,
        "cost_tags_project_committed",
        "What the project's running jobs may still cost, from the last budget refresh to their time limits (budget cache).",
        None,
    );
    for (project, spend) in &projects {
        if let Some(committed) = spend.committed {
            family.sample(&[("project", project), ("currency", &spend.unit)], committed);
        }
    }
    let mut family = Family::new(
        &mut out,
        "cost_tags_project_running_jobs",
        "Jobs of the project running at the last budget refresh (budget cache).",
        None,
    );
    for (project, spend) in &projects {
        if let Some(running) = spend.running_jobs {
            family.sample(&[("project", project)], running as f64);
        }
    }
    let mut family = Family::new(
        &mut out,
        "cost_tags_user_spend",
        &format!(
            "Spend of the user's jobs since the start of this month (UTC, {}), priced like cost-tags report from sacct.",
            time::Plain(f.users_since)
        ),
        None,
    );
    for (user, cost) in f.users {
        family.sample(&[("user", user), ("currency", f.currency)], *cost);
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::budget_spend::BudgetSpend;

    #[test]
    fn the_exposition_is_the_hand_computed_figures() {
        let now = time::parse("2024-03-15T12:00").unwrap().0;
        let refreshed = now - 300;
        let mut cache = BudgetCache::new("123456789012", refreshed);
        let spend = |limit, actual, accrued, committed, running| BudgetSpend {
            limit,
            actual,
            unit: "USD".into(),
            period: "MONTHLY".into(),
            accrued,
            committed,
            running_jobs: running,
            ..BudgetSpend::default()
        };
        cache.budgets.insert(
            "hpc-ProjectA".into(),
            spend(500.0, 120.5, Some(4.25), Some(30.0), Some(2)),
        );
        // Refreshed before accrued spend was known: no committed, no running jobs.
        cache
            .budgets
            .insert("hpc-Odd\"name\\x".into(), spend(100.0, 0.1, None, None, None));
        cache
            .budgets
            .insert("someone-elses".into(), spend(1.0, 1.0, None, None, None));
        let settings = BudgetSettings {
            name_template: "hpc-{project}".into(),
            ..BudgetSettings::default()
        };
        // 0.1 + 0.2 is 0.30000000000000004 in binary: printed 0.3.
        let users: BTreeMap<String, f64> = [("alice".to_string(), 0.1 + 0.2), ("bob".to_string(), 7.0)].into();
        let text = text(&Figures {
            budgets: Some(&cache),
            budget_settings: &settings,
            users: &users,
            currency: "USD",
            users_since: time::month_start(now),
            now,
        });
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "cost_tags_budget_cache_age_seconds 300",
                "cost_tags_budget_slurm_read_ok 1",
                // 120.5 + 4.25 accrued since AWS's figure.
                "cost_tags_project_spend{project=\"Odd\\\"name\\\\x\",currency=\"USD\"} 0.1",
                "cost_tags_project_spend{project=\"ProjectA\",currency=\"USD\"} 124.75",
                "cost_tags_project_limit{project=\"Odd\\\"name\\\\x\",currency=\"USD\"} 100",
                "cost_tags_project_limit{project=\"ProjectA\",currency=\"USD\"} 500",
                "cost_tags_project_committed{project=\"ProjectA\",currency=\"USD\"} 30",
                "cost_tags_project_running_jobs{project=\"ProjectA\"} 2",
                "cost_tags_user_spend{user=\"alice\",currency=\"USD\"} 0.3",
                "cost_tags_user_spend{user=\"bob\",currency=\"USD\"} 7",
            ]
        );
        assert!(text.ends_with("\n# EOF\n"), "{text}");
        assert!(
            text.contains("# UNIT cost_tags_budget_cache_age_seconds seconds\n"),
            "{text}"
        );
        assert!(
            text.contains("since the start of this month (UTC, 2024-03-01T00:00:00)"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE ").count(), 7, "{text}");
        assert_eq!(escape("a\nb"), "a\\nb");
        // A refresh that could not read Slurm kept the cache and marked it.
        cache.header.slurm_failed_at = Some(now);
        let marked = super::text(&Figures {
            budgets: Some(&cache),
            budget_settings: &settings,
            users: &users,
            currency: "USD",
            users_since: Timestamp::UNIX_EPOCH,
            now,
        });
        assert!(marked.contains("\ncost_tags_budget_slurm_read_ok 0\n"), "{marked}");
    }

    #[test]
    fn without_a_cache_only_users() {
        let users = BTreeMap::new();
        let settings = BudgetSettings::default();
        let text = text(&Figures {
            budgets: None,
            budget_settings: &settings,
            users: &users,
            currency: "EUR",
            users_since: Timestamp::UNIX_EPOCH,
            now: Timestamp::UNIX_EPOCH,
        });
        assert!(!text.contains("cache_age") && !text.contains("slurm_read_ok"), "{text}");
        assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
        assert_eq!(number(-0.0), "0");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}
