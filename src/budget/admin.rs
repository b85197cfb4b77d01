//! The administrator's budget operations, as the `cost-tags budget` commands use them:
//! refresh the cache project-check reads, check and create a project's budget, and the
//! spend-against-limit rows of `budget list`. Nothing here prints; see `cli::budget`.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use aws_sdk_budgets::types::TimeUnit;
use serde::Serialize;

use super::cache::{BudgetCache, BudgetSpend};
use crate::aws::budgets::{BudgetsApi, NewBudget};
use crate::aws::sdk::Runtime;
use crate::config::{BudgetFallback, Settings};
use crate::log;
use crate::submit::project_name;
use crate::submit::projects_file::ProjectsList;

/// How long one budget command may talk to AWS, retries included.
const AWS_TIME: Duration = Duration::from_secs(60);
/// AWS's limit on budget names.
const MAX_BUDGET_NAME: usize = 100;

/// What `budget refresh` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// The cache was rewritten.
    Written,
    /// AWS could not be read: the old cache, if any, is kept, and the reason logged.
    KeptOld,
}

/// Reads every budget of the account and rewrites the cache. An AWS failure is not an
/// error: it is logged, and the old cache stays for project-check.
pub fn refresh(settings: &Settings, now: SystemTime) -> Result<Refreshed> {
    let b = &settings.budget;
    let read = Runtime::new()?.block_on(async {
        let api = BudgetsApi::connect(&b.account_id, AWS_TIME).await?;
        let found = api.all(now).await?;
        anyhow::Ok((api.account_id().to_string(), found))
    });
    let (account, found) = match read {
        Ok(r) => r,
        Err(e) => {
            let old = match BudgetCache::read(&b.cache_file) {
                Ok(c) => format!("keeping the cache of {} s ago", c.header.age(now).as_secs()),
                Err(e) => format!("and there is no usable cache ({e})"),
            };
            log::error(&format!("budget refresh failed, {old}: {e:#}"));
            return Ok(Refreshed::KeptOld);
        }
    };
    for why in &found.skipped {
        log::warn(&format!("budget skipped: {why}"));
    }
    let mut cache = BudgetCache::new(&account, now);
    cache.budgets = found.budgets;
    cache.write(&b.cache_file)?;
    log::info(&format!(
        "budget cache {} refreshed: {} budgets of account {account}",
        b.cache_file.display(),
        cache.budgets.len()
    ));
    Ok(Refreshed::Written)
}

/// A project's budget as the administrator asks for it, before any check.
#[derive(Debug, Clone)]
pub struct BudgetRequest {
    /// The project (as in projects_list.conf).
    pub project: String,
    /// The limit per period, a decimal amount as typed (sent to AWS as text).
    pub limit: String,
    pub period: TimeUnit,
    pub currency: String,
    /// E-mail addresses told when actual spend passes the matching `at`.
    pub notify: Vec<String>,
    /// Percent of the limit: once for all addresses, or once per address (default 100).
    pub at: Vec<f64>,
}

/// Checks the request and creates the budget; nothing is sent unless every field is good.
pub fn create(settings: &Settings, request: &BudgetRequest) -> Result<NewBudget> {
    let new = new_budget(settings, request)?;
    Runtime::new()?.block_on(async {
        let api = BudgetsApi::connect(&settings.budget.account_id, AWS_TIME).await?;
        api.create(&new).await
    })?;
    Ok(new)
}

/// Checks every argument before anything is sent.
fn new_budget(settings: &Settings, args: &BudgetRequest) -> Result<NewBudget> {
    project_name::validate(&args.project).map_err(anyhow::Error::msg)?;
    let name = settings.budget.budget_name(&args.project);
    if name.contains([':', '\\']) || name.len() > MAX_BUDGET_NAME {
        bail!("budget name {name:?} is not a valid AWS Budget name (at most {MAX_BUDGET_NAME} characters, no ':' or '\\')");
    }
    let limit = args.limit.trim();
    let valid_amount = !limit.is_empty()
        && limit.chars().all(|c| c.is_ascii_digit() || c == '.')
        && limit.matches('.').count() <= 1
        && limit.parse::<f64>().is_ok_and(|v| v > 0.0);
    if !valid_amount {
        bail!(
            "--limit {:?}: expected a positive decimal amount such as 500 or 1250.50",
            args.limit
        );
    }
    if args.currency.len() != 3 || !args.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        bail!(
            "--currency {:?}: expected a three-letter code such as USD",
            args.currency
        );
    }
    if args.at.len() > 1 && args.at.len() != args.notify.len() {
        bail!(
            "--at is given {} times for {} --notify: give it once, or once per --notify",
            args.at.len(),
            args.notify.len()
        );
    }
    if !args.at.is_empty() && args.notify.is_empty() {
        bail!("--at needs a --notify address");
    }
    let mut notify = Vec::new();
    for (i, email) in args.notify.iter().enumerate() {
        let at = args.at.get(i).or(args.at.first()).copied().unwrap_or(100.0);
        if !(at.is_finite() && at > 0.0 && at <= 1000.0) {
            bail!("--at {at}: expected a percentage above 0 and at most 1000");
        }
        let (local, domain) = email.split_once('@').unwrap_or_default();
        if local.is_empty() || !domain.contains('.') || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bail!("--notify {}: not an e-mail address", project_name::printable(email));
        }
        notify.push((email.clone(), at));
    }
    Ok(NewBudget {
        name,
        limit: limit.to_string(),
        currency: args.currency.clone(),
        period: args.period.clone(),
        tag_filter: format!("user:{}${}", settings.tags.project, args.project),
        notify,
    })
}

/// One line of `budget list`.
#[derive(Debug, Serialize)]
pub struct ListRow {
    pub project: String,
    pub budget: Option<String>,
    #[serde(flatten)]
    pub spend: Option<BudgetSpend>,
    pub percent_used: Option<f64>,
    /// What project-check does with a new job of this project now.
    pub submissions: &'static str,
}

/// The rows of `budget list`: one per project named in the projects file or by a budget,
/// from AWS (or the cache when `cached`), with where the figures came from and the
/// budgets AWS returned that were skipped, and why.
pub struct BudgetList {
    pub rows: Vec<ListRow>,
    pub source: String,
    pub skipped: Vec<String>,
}

pub fn list(settings: &Settings, cached: bool, now: SystemTime) -> Result<BudgetList> {
    let b = &settings.budget;
    let (budgets, source, skipped) = if cached {
        let cache = BudgetCache::read(&b.cache_file)?;
        let source = format!(
            "cache {}, {} s old",
            b.cache_file.display(),
            cache.header.age(now).as_secs()
        );
        (cache.budgets, source, Vec::new())
    } else {
        let found = Runtime::new()?.block_on(async {
            let api = BudgetsApi::connect(&b.account_id, AWS_TIME).await?;
            api.all(now).await
        })?;
        (found.budgets, "AWS Budgets".to_string(), found.skipped)
    };
    // Every project named in the projects file, so the ones without a budget show too.
    let text = std::fs::read(&settings.projects_file)
        .with_context(|| format!("cannot read {}", settings.projects_file.display()))?;
    let projects = ProjectsList::parse(&text, &settings.projects_file)?;
    let mut names: BTreeSet<String> = projects.all_projects().map(str::to_string).collect();
    names.extend(budgets.keys().filter_map(|n| b.project_of(n)).map(str::to_string));

    let rows: Vec<ListRow> = names
        .into_iter()
        .map(|project| {
            let name = b.budget_name(&project);
            let spend = budgets.get(&name).cloned();
            let submissions = match (&spend, b.enabled) {
                (_, false) => "not checked",
                (Some(s), true) if s.percent_used() >= b.threshold_percent => "refused",
                (Some(_), true) => "allowed",
                (None, true) if b.on_missing == BudgetFallback::Allow => "allowed",
                (None, true) => "refused",
            };
            ListRow {
                project,
                budget: spend.as_ref().map(|_| name),
                percent_used: spend.as_ref().map(|s| (s.percent_used() * 10.0).round() / 10.0),
                spend,
                submissions,
            }
        })
        .collect();
    Ok(BudgetList { rows, source, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(project: &str, limit: &str, notify: &[&str], at: &[f64]) -> BudgetRequest {
        BudgetRequest {
            project: project.into(),
            limit: limit.into(),
            period: TimeUnit::Quarterly,
            currency: "USD".into(),
            notify: notify.iter().map(|s| s.to_string()).collect(),
            at: at.to_vec(),
        }
    }

    #[test]
    fn a_budget_counts_the_projects_tag() {
        let s = Settings::default();
        let n = new_budget(
            &s,
            &args("ProjectA", "1250.50", &["a@x.org", "b@x.org"], &[80.0, 100.0]),
        )
        .unwrap();
        assert_eq!(n.name, "ProjectA");
        assert_eq!(n.tag_filter, "user:aws-parallelcluster-project$ProjectA");
        assert_eq!(n.period, TimeUnit::Quarterly);
        assert_eq!(n.notify, vec![("a@x.org".into(), 80.0), ("b@x.org".into(), 100.0)]);
        let one_at = new_budget(&s, &args("P", "5", &["a@x.org", "b@x.org"], &[90.0])).unwrap();
        assert!(one_at.notify.iter().all(|(_, at)| *at == 90.0));
        assert_eq!(
            new_budget(&s, &args("P", "5", &["a@x.org"], &[])).unwrap().notify[0].1,
            100.0
        );
    }

    #[test]
    fn bad_arguments_are_refused_before_any_call() {
        let s = Settings::default();
        for (a, want) in [
            (args("Bad Name", "5", &[], &[]), "contains ' '"),
            (args("a:b", "5", &[], &[]), "not a valid AWS Budget name"),
            (args(&"P".repeat(101), "5", &[], &[]), "not a valid AWS Budget name"),
            (args("P", "-5", &[], &[]), "positive decimal"),
            (args("P", "1e3", &[], &[]), "positive decimal"),
            (args("P", "0", &[], &[]), "positive decimal"),
            (args("P", "5", &["nobody"], &[]), "not an e-mail"),
            (args("P", "5", &[], &[80.0]), "needs a --notify"),
            (args("P", "5", &["a@x.org"], &[0.0]), "percentage"),
            (
                args("P", "5", &["a@x.org", "b@x.org", "c@x.org"], &[1.0, 2.0]),
                "once per --notify",
            ),
        ] {
            let e = new_budget(&s, &a).unwrap_err().to_string();
            assert!(e.contains(want), "{a:?}: {e}");
        }
    }
}
