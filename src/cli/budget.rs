//! `cost-tags budget`: refresh the cache project-check reads, create a project's budget,
//! and list spend against limits. The work is in [`crate::budget::admin`]; this is the
//! arguments, the printing and the exit codes.

use std::process::ExitCode;

use anyhow::Result;
use aws_sdk_budgets::types::TimeUnit;

use crate::budget::admin::{self, BudgetRequest, Refreshed};
use crate::config::Settings;
use crate::log;
use crate::model::time::Timestamp;
use crate::report::text_table::Columns;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct BudgetArgs {
    #[command(subcommand)]
    pub command: BudgetCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub(crate) enum BudgetCommand {
    /// Read every AWS Budget of the account and rewrite the cache project-check reads
    /// (run by a timer on the head node, as root). On failure (AWS, or Slurm accounting
    /// and squeue) the old cache is kept; exit 1.
    Refresh,
    /// Create a COST budget counting the spend tagged with PROJECT, with notifications.
    Create(CreateArgs),
    /// Spend against limit for each project's budget, and the projects that have none.
    List(ListArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct CreateArgs {
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
pub(crate) enum Period {
    Monthly,
    Quarterly,
    Annually,
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Read the cache instead of AWS (what project-check sees).
    #[arg(long)]
    pub cached: bool,
}

pub(crate) fn run(settings: &Settings, args: &BudgetArgs) -> Result<ExitCode> {
    log::init("cost-tags");
    match &args.command {
        BudgetCommand::Refresh => Ok(match admin::refresh(settings, Timestamp::now())? {
            Refreshed::Written => ExitCode::SUCCESS,
            Refreshed::KeptOld | Refreshed::SlurmUnread => ExitCode::from(1),
        }),
        BudgetCommand::Create(c) => create(settings, c),
        BudgetCommand::List(l) => list(settings, l),
    }
}

fn create(settings: &Settings, args: &CreateArgs) -> Result<ExitCode> {
    let request = BudgetRequest {
        project: args.project.clone(),
        limit: args.limit.clone(),
        period: match args.period {
            Period::Monthly => TimeUnit::Monthly,
            Period::Quarterly => TimeUnit::Quarterly,
            Period::Annually => TimeUnit::Annually,
        },
        currency: args.currency.clone(),
        notify: args.notify.clone(),
        at: args.at.clone(),
    };
    let new = admin::create(settings, &request)?;
    outln!(
        "created budget {} for project {}: {} {} {}, counting tag {}",
        new.name,
        args.project,
        new.limit,
        new.currency,
        new.period.as_str().to_lowercase(),
        new.tag_filter
    )?;
    if !settings.budget.enabled {
        outln!("note: [budget] enabled = false in the settings, so project-check does not enforce it yet")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn list(settings: &Settings, args: &ListArgs) -> Result<ExitCode> {
    let b = &settings.budget;
    let list = admin::list(settings, args.cached, Timestamp::now())?;
    for why in &list.skipped {
        eprintln!("cost-tags: budget skipped: {why}");
    }
    for note in &list.notes {
        eprintln!("cost-tags: {note}");
    }
    let rows = list.rows;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("Budgets from {}; threshold {}%", list.source, b.threshold_percent)?;
    let mut table = vec![[
        "PROJECT",
        "BUDGET",
        "PERIOD",
        "LIMIT",
        "ACTUAL",
        "ACCRUED",
        "COMMITTED",
        "RESERVED",
        "USED",
        "FORECAST",
        "NEW JOBS",
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
            money(s.and_then(|s| s.accrued)),
            money(s.and_then(|s| s.committed)),
            money(r.reserved),
            r.percent_used.map(|p| format!("{p:.1}%")).unwrap_or_default(),
            money(s.and_then(|s| s.forecast)),
            r.submissions.to_string(),
        ]);
    }
    super::print(&Columns::default().render(&table))?;
    Ok(ExitCode::SUCCESS)
}
