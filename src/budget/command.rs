//! `cost-tags budget`: refresh the cache project-check reads, create a project's budget,
//! and list spend against limits.

use std::collections::BTreeSet;
use std::process::ExitCode;
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
use crate::text_table::Columns;

/// How long one budget command may talk to AWS, retries included.
const AWS_TIME: Duration = Duration::from_secs(60);
/// AWS's limit on budget names.
const MAX_BUDGET_NAME: usize = 100;

#[derive(clap::Args, Debug, Clone)]
pub struct BudgetArgs {
    #[command(subcommand)]
    pub command: BudgetCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum BudgetCommand {
    /// Read every AWS Budget of the account and rewrite the cache project-check reads
    /// (run by a timer on the head node, as root). On failure the old cache is kept; exit 1.
    Refresh,
    /// Create a COST budget counting the spend tagged with PROJECT, with notifications.
    Create(CreateArgs),
    /// Spend against limit for each project's budget, and the projects that have none.
    List(ListArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CreateArgs {
    /// The project (as in projects_list.conf).
    pub project: String,
    /// The limit per period, a decimal amount (e.g. 500 or 1250.50).
    #[arg(long, value_name = "AMOUNT")]
    pub limit: String,
    #[arg(long, value_enum, default_value = "monthly")]
    pub period: Period,
    #[arg(long, default_value = "USD")]
    pub currency: String,
    /// E-mail told when actual spend passes the matching --at (repeatable).
    #[arg(long, value_name = "EMAIL")]
    pub notify: Vec<String>,
    /// Percent of the limit for the matching --notify: once for all, or once per --notify
    /// in the same order (default 100).
    #[arg(long, value_name = "PERCENT")]
    pub at: Vec<f64>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Monthly,
    Quarterly,
    Annually,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Read the cache instead of AWS (what project-check sees).
    #[arg(long)]
    pub cached: bool,
}

pub fn run(settings: &Settings, args: &BudgetArgs) -> Result<ExitCode> {
    log::init("cost-tags");
    match &args.command {
        BudgetCommand::Refresh => refresh(settings),
        BudgetCommand::Create(c) => create(settings, c),
        BudgetCommand::List(l) => list(settings, l),
    }
}

fn refresh(settings: &Settings) -> Result<ExitCode> {
    let b = &settings.budget;
    let now = SystemTime::now();
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
            return Ok(ExitCode::from(1));
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
    Ok(ExitCode::SUCCESS)
}

fn create(settings: &Settings, args: &CreateArgs) -> Result<ExitCode> {
    let new = new_budget(settings, args)?;
    Runtime::new()?.block_on(async {
        let api = BudgetsApi::connect(&settings.budget.account_id, AWS_TIME).await?;
        api.create(&new).await
    })?;
    println!(
        "created budget {} for project {}: {} {} {}, counting tag {}",
        new.name,
        args.project,
        new.limit,
        new.currency,
        new.period.as_str().to_lowercase(),
        new.tag_filter
    );
    if !settings.budget.enabled {
        println!("note: [budget] enabled = false in the settings, so project-check does not enforce it yet");
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks every argument before anything is sent.
fn new_budget(settings: &Settings, args: &CreateArgs) -> Result<NewBudget> {
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
        period: match args.period {
            Period::Monthly => TimeUnit::Monthly,
            Period::Quarterly => TimeUnit::Quarterly,
            Period::Annually => TimeUnit::Annually,
        },
        tag_filter: format!("user:{}${}", settings.tags.project, args.project),
        notify,
    })
}

/// One line of `budget list`.
#[derive(Debug, Serialize)]
struct ListRow {
    project: String,
    budget: Option<String>,
    #[serde(flatten)]
    spend: Option<BudgetSpend>,
    percent_used: Option<f64>,
    /// What project-check does with a new job of this project now.
    submissions: &'static str,
}

fn list(settings: &Settings, args: &ListArgs) -> Result<ExitCode> {
    let b = &settings.budget;
    let now = SystemTime::now();
    let (budgets, source) = if args.cached {
        let cache = BudgetCache::read(&b.cache_file)?;
        let source = format!(
            "cache {}, {} s old",
            b.cache_file.display(),
            cache.header.age(now).as_secs()
        );
        (cache.budgets, source)
    } else {
        let found = Runtime::new()?.block_on(async {
            let api = BudgetsApi::connect(&b.account_id, AWS_TIME).await?;
            api.all(now).await
        })?;
        for why in &found.skipped {
            eprintln!("cost-tags: budget skipped: {why}");
        }
        (found.budgets, "AWS Budgets".to_string())
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("Budgets from {source}; threshold {}%", b.threshold_percent);
    let mut table = vec![[
        "PROJECT", "BUDGET", "PERIOD", "LIMIT", "ACTUAL", "USED", "FORECAST", "NEW JOBS",
    ]
    .map(String::from)
    .to_vec()];
    for r in &rows {
        let s = r.spend.as_ref();
        let money = |v: Option<f64>| {
            v.map(|v| format!("{v:.2} {}", s.map_or("", |s| s.unit.as_str())))
                .unwrap_or_default()
        };
        table.push(vec![
            r.project.clone(),
            r.budget.clone().unwrap_or_else(|| "(none)".into()),
            s.map(|s| s.period.to_lowercase()).unwrap_or_default(),
            money(s.map(|s| s.limit)),
            money(s.map(|s| s.actual)),
            r.percent_used.map(|p| format!("{p:.1}%")).unwrap_or_default(),
            money(s.and_then(|s| s.forecast)),
            r.submissions.to_string(),
        ]);
    }
    print!("{}", Columns::default().render(&table));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(project: &str, limit: &str, notify: &[&str], at: &[f64]) -> CreateArgs {
        CreateArgs {
            project: project.into(),
            limit: limit.into(),
            period: Period::Quarterly,
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
