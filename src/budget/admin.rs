//! The administrator's budget operations, as the `cost-tags budget` commands use them:
//! refresh the cache project-check reads, check and create a project's budget, and the
//! spend-against-limit rows of `budget list`. Nothing here prints; see `cli::budget`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_budgets::types::TimeUnit;
use serde::Serialize;

use super::cache::{self, BudgetCache, CacheError, PartitionCost};
use super::reservations::{self, Journal};
use super::{spend, worst_case};
use crate::aws::budgets::{BudgetsApi, NewBudget};
use crate::aws::sdk::Runtime;
use crate::config::{BudgetFallback, Enforce, Settings};
use crate::cost::job_ids::JobIds;
use crate::cost::{read_sacct, with_prices};
use crate::log;
use crate::model::budget_spend::BudgetSpend;
use crate::model::project_name;
use crate::model::time::{self, Timestamp};
use crate::slurm::command::run_program;
use crate::slurm::sacct::Users;
use crate::slurm::scontrol::parse_scontrol_partitions;
use crate::slurm::squeue::{
    confirm_listed, node_jobs_format, parse_node_jobs, parse_pending_jobs, parse_shown_ids, pending_jobs_format,
    PendingJob, JOB_IDS_FORMAT, SHOWN_IDS_FORMAT,
};
use crate::submit::projects_file::ProjectsList;

/// How long one budget command may talk to AWS, retries included.
const AWS_TIME: Duration = Duration::from_secs(60);
/// How long a Slurm query may take.
const SLURM_TIME: Duration = Duration::from_secs(60);
/// AWS's limit on budget names.
const MAX_BUDGET_NAME: usize = 100;

/// What `budget refresh` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refreshed {
    /// The cache was rewritten.
    Written,
    /// AWS could not be read: the old cache, if any, is kept, and the reason logged.
    KeptOld,
    /// Slurm could not be read (sacct, squeue or the prices): the old cache, if any, is
    /// kept with its Slurm figures, its header marking the failure for the metrics; with
    /// `enforce = "spent"` AWS's figures are written instead (see [`refresh`]).
    SlurmUnread,
}

/// Reads every budget of the account (or takes `[budget.limits]`), adds what Slurm
/// accounting says each project accrued and committed since AWS last counted, running
/// and pending jobs (see [`super::spend`]), and what each partition's node-hour costs
/// (see [`super::worst_case`]), and rewrites the cache. An AWS failure is not an error: it
/// is logged, and the old cache stays for project-check.
///
/// A refresh that cannot read Slurm does not loosen anything. AWS's figures alone would
/// drop enforcement to "spent" (no accrued, committed or partition prices), so the
/// previous cache is kept whole: figures of one instant, with its own `refreshed_at`, so
/// that it turns stale (`max_age`, `on_stale`) if Slurm stays unreadable. Its header
/// records the failure (`slurm_failed_at`) for the metrics. With no previous cache none is
/// written. Only with `enforce = "spent"` and AWS Budgets, which enforce AWS's figures
/// alone, are those written (the failure still marked and logged).
pub(crate) fn refresh(settings: &Settings, now: Timestamp) -> Result<Refreshed> {
    let b = &settings.budget;
    let (account, budgets, cut_off) = if b.limits.is_empty() {
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
        // AWS's figures are as of each budget's last update; Slurm's count from the oldest.
        let cut_off = found.budgets.values().filter_map(|s| s.updated_at).min().unwrap_or(now);
        (account, found.budgets, cut_off)
    } else {
        let start = time::months_start(now, b.period.months());
        let budgets = b
            .limits
            .iter()
            .map(|(project, &limit)| {
                let spend = BudgetSpend {
                    limit,
                    unit: settings.pricing.currency.clone(),
                    period: b.period.aws_name().to_string(),
                    ..Default::default()
                };
                (b.budget_name(project), spend)
            })
            .collect();
        (String::new(), budgets, start)
    };
    let mut cache = BudgetCache::new(&account, now);
    cache.budgets = budgets;
    match from_slurm(settings, cut_off, now) {
        Ok((accounted, partitions)) => {
            for note in &accounted.notes {
                log::warn(&format!("budget refresh: {note}"));
            }
            for (name, spend) in cache.budgets.iter_mut() {
                let found = b
                    .project_of(name)
                    .and_then(|p| accounted.projects.get(p))
                    .cloned()
                    .unwrap_or_default();
                let (pending, unpriced) = spend::pending_cost(&found.pending, &partitions, spend.hours_left(now));
                for why in unpriced {
                    log::warn(&format!("budget refresh: {why}; it commits nothing"));
                }
                spend.accrued = Some(found.accrued);
                spend.committed = Some(found.committed + pending);
                spend.running_jobs = Some(found.running_jobs);
                spend.pending_jobs = Some(found.pending.len() as u64);
            }
            cache.header.partitions = partitions;
        }
        Err(e) if b.limits.is_empty() && b.enforce == Some(Enforce::Spent) => {
            log::error(&format!(
                "budget refresh: Slurm could not be read ({e:#}); enforce = \"spent\": the cache holds AWS's figures alone"
            ));
            cache.header.slurm_failed_at = Some(now);
        }
        Err(e) => return Ok(keep_after_slurm_failure(&b.cache_file, now, &e)),
    }
    cache.write(&b.cache_file)?;
    // Only now: until the new cache is in place, the old one's reservations still count.
    compact_reservations(settings, cache.header.refreshed_at, now);
    log::info(&format!(
        "budget cache {} refreshed: {} budgets{}",
        b.cache_file.display(),
        cache.budgets.len(),
        if account.is_empty() {
            String::new()
        } else {
            format!(" of account {account}")
        }
    ));
    Ok(Refreshed::Written)
}

/// Keeps the cache at `path` after Slurm could not be read (see [`refresh`]), marking the
/// failure in its header, and logs it.
fn keep_after_slurm_failure(path: &Path, now: Timestamp, e: &anyhow::Error) -> Refreshed {
    let kept = match cache::mark_slurm_failed(path, now) {
        Ok(old) => format!(
            "keeping the cache of {} s ago with its Slurm figures",
            old.age(now).as_secs()
        ),
        Err(c) => match c.downcast_ref::<CacheError>() {
            Some(CacheError::Missing(_) | CacheError::Corrupt(..)) => {
                format!("writing none: there is no usable cache ({c})")
            }
            _ => format!("keeping the cache, unmarked: {c:#}"),
        },
    };
    log::error(&format!(
        "budget refresh failed: Slurm could not be read ({e:#}); {kept}"
    ));
    Refreshed::SlurmUnread
}

/// Drops from the reservation journal what a refresh at `refreshed_at` covers (and
/// anything past its bound: see [`reservations`]), keeping its owner and mode. A
/// journal that cannot be compacted is logged and left: its old lines no longer count
/// against the new cache anyway, and a distrusted one stops project-check by itself.
fn compact_reservations(settings: &Settings, refreshed_at: Timestamp, now: Timestamp) {
    let b = &settings.budget;
    let path = &b.reservations_file;
    let compacted = Journal::open(path, false, Instant::now() + reservations::LOCK_WAIT).and_then(|j| {
        j.map(|j| j.compact(|r| r.counts(refreshed_at, now, b.max_age)))
            .transpose()
    });
    match compacted {
        Ok(Some(done)) if done.dropped + done.bad_lines > 0 => log::info(&format!(
            "{}: {} reservations covered by this refresh dropped, {} kept{}",
            path.display(),
            done.dropped,
            done.kept,
            if done.bad_lines > 0 {
                format!(", {} bad lines dropped", done.bad_lines)
            } else {
                String::new()
            }
        )),
        Ok(_) => {}
        Err(e) => log::error(&format!("budget refresh: {e}")),
    }
}

/// What the reservation journal holds per budget against the cache refreshed at `since`
/// (for `budget list`); `None` with why when it cannot be read.
fn reserved_totals(settings: &Settings, since: Timestamp, now: Timestamp) -> Result<BTreeMap<String, f64>, String> {
    let b = &settings.budget;
    let journal = Journal::open(&b.reservations_file, false, Instant::now() + reservations::LOCK_WAIT)
        .map_err(|e| e.to_string())?;
    match journal {
        None => Ok(BTreeMap::new()),
        Some(mut j) => j
            .totals(since, now, b.max_age)
            .map(|(totals, _)| totals)
            .map_err(|e| e.to_string()),
    }
}

/// The project of each running job, as squeue says it (sacct has no comment for a job
/// until it ends). Asked twice, the second time for job ids alone, so a forged line
/// (a newline in a comment) names no job (see [`crate::slurm::squeue::confirm_jobs`]).
fn running_projects(settings: &Settings) -> Result<BTreeMap<String, String>> {
    let source = settings.project_source;
    let ask = |format: &str| {
        run_program(
            Path::new("squeue"),
            &["-h", "-a", "-t", "RUNNING", "-o", format],
            Instant::now() + SLURM_TIME,
        )
    };
    let jobs = parse_node_jobs(&ask(&node_jobs_format(source))?, source, "")?;
    // A job that ended between the two calls is simply not running any more.
    let (jobs, _gone) = confirm_listed(jobs, &ask(JOB_IDS_FORMAT)?)?;
    // sacct names a task of an array job `4_1`, squeue's %A another number.
    let shown = parse_shown_ids(&ask(SHOWN_IDS_FORMAT)?)?;
    Ok(jobs
        .into_iter()
        .map(|j| (shown.get(&j.id).cloned().unwrap_or(j.id), j.project))
        .collect())
}

/// Every pending job with a project, sized from squeue's fields that no user writes (the
/// project's last), confirmed by a second call for ids alone (see
/// [`crate::slurm::squeue::parse_pending_jobs`]).
fn pending_jobs(settings: &Settings) -> Result<Vec<PendingJob>> {
    let source = settings.project_source;
    let ask = |flag: &str, format: &str| {
        run_program(
            Path::new("squeue"),
            &["-h", "-a", "-t", "PENDING", flag, format],
            Instant::now() + SLURM_TIME,
        )
    };
    let text = ask("-O", &pending_jobs_format(source))?;
    let jobs = parse_pending_jobs(&text, source, &ask("-o", JOB_IDS_FORMAT)?)?;
    Ok(jobs.into_iter().filter(|j| !j.project.is_empty()).collect())
}

/// What Slurm accounting says each project accrued since `cut_off` and committed, and
/// each partition's node-hour, priced like the report.
fn from_slurm(
    settings: &Settings,
    cut_off: Timestamp,
    now: Timestamp,
) -> Result<(spend::Accounted, BTreeMap<String, PartitionCost>)> {
    let prices = with_prices(settings, now)?;
    let slurm_partitions = match run_program(
        Path::new("scontrol"),
        &["show", "partitions", "-o"],
        Instant::now() + SLURM_TIME,
    ) {
        Ok(text) => parse_scontrol_partitions(&text),
        Err(e) => {
            log::warn(&format!("budget refresh: no partition time limits ({e:#})"));
            Vec::new()
        }
    };
    let partitions = worst_case::partition_costs(&prices, &slurm_partitions);
    let layout = spend::layout(&prices);
    let window = (cut_off.min(now - 1), now);
    let ids = if layout.has_comment() {
        Some(read_sacct(Users::All, window, None, "JobID", JobIds::read)?)
    } else {
        None
    };
    // Pending first: a job that starts in between is then counted twice (pending and
    // running), which errs towards refusing, rather than not at all.
    let pending = pending_jobs(settings)?;
    let live = running_projects(settings)?;
    let mut accounted = read_sacct(Users::All, window, None, &layout.format(), |mut out| {
        spend::from_records(&prices, &mut out, ids, &live, cut_off, now).map_err(std::io::Error::other)
    })?;
    for job in pending {
        accounted
            .projects
            .entry(job.project.clone())
            .or_default()
            .pending
            .push(job);
    }
    Ok((accounted, partitions))
}

/// A project's budget as the administrator asks for it, before any check.
#[derive(Debug, Clone)]
pub(crate) struct BudgetRequest {
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
pub(crate) fn create(settings: &Settings, request: &BudgetRequest) -> Result<NewBudget> {
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
        && limit.parse::<f64>().is_ok_and(|v| v.is_finite() && v > 0.0);
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
pub(crate) struct ListRow {
    pub project: String,
    pub budget: Option<String>,
    #[serde(flatten)]
    pub spend: Option<BudgetSpend>,
    pub percent_used: Option<f64>,
    /// The worst cases of the submissions accepted since the cache's refresh (the
    /// reservation journal), when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved: Option<f64>,
    /// What project-check does with a new job of this project now.
    pub submissions: &'static str,
}

/// The rows of `budget list`: one per project named in the projects file or by a budget,
/// from AWS (or the cache when `cached`), with where the figures came from and the
/// budgets AWS returned that were skipped, and why.
pub(crate) struct BudgetList {
    pub rows: Vec<ListRow>,
    pub source: String,
    pub skipped: Vec<String>,
    /// What could not be shown, and why (the reservation journal unreadable).
    pub notes: Vec<String>,
}

/// Adds to budgets read from AWS what only the cache has: Slurm's accrued and committed
/// spend (and the job counts) of its refresh, so that the list shows, and decides, what
/// project-check does. Only where AWS's figure is still the one the cache was refreshed
/// with: accrued is the spend *since* that figure, and added to a newer one it would
/// count twice. Returns how many budgets got Slurm's figures and how many could not.
fn with_slurm_figures(budgets: &mut BTreeMap<String, BudgetSpend>, cache: &BudgetCache) -> (usize, usize) {
    let (mut added, mut stale) = (0, 0);
    for (name, live) in budgets.iter_mut() {
        let Some(cached) = cache.budgets.get(name) else {
            continue;
        };
        if cached.accrued.is_none() && cached.committed.is_none() {
            continue;
        }
        if cached.actual == live.actual && cached.updated_at == live.updated_at && cached.period == live.period {
            live.accrued = cached.accrued;
            live.committed = cached.committed;
            live.running_jobs = cached.running_jobs;
            live.pending_jobs = cached.pending_jobs;
            added += 1;
        } else {
            stale += 1;
        }
    }
    (added, stale)
}

pub(crate) fn list(settings: &Settings, cached: bool, now: Timestamp) -> Result<BudgetList> {
    let b = &settings.budget;
    let mut notes = Vec::new();
    let (budgets, source, skipped, since) = if cached {
        let cache = BudgetCache::read(&b.cache_file)?;
        let source = format!(
            "cache {}, {} s old",
            b.cache_file.display(),
            cache.header.age(now).as_secs()
        );
        (cache.budgets, source, Vec::new(), Some(cache.header.refreshed_at))
    } else {
        let found = Runtime::new()?.block_on(async {
            let api = BudgetsApi::connect(&b.account_id, AWS_TIME).await?;
            api.all(now).await
        })?;
        let mut budgets = found.budgets;
        let mut source = "AWS Budgets".to_string();
        // Reservations count against the cache's refresh, whatever this list reads; and
        // Slurm's figures (accrued, committed) exist only in the cache.
        let cache = BudgetCache::read(&b.cache_file).ok();
        if let Some(cache) = &cache {
            let (added, stale) = with_slurm_figures(&mut budgets, cache);
            if added > 0 {
                source = format!(
                    "AWS Budgets; ACCRUED and COMMITTED from Slurm at the cache's refresh, {} s ago",
                    cache.header.age(now).as_secs()
                );
            }
            if stale > 0 {
                notes.push(format!(
                    "{stale} budget(s) without ACCRUED and COMMITTED: AWS's spend changed since the \
                     cache's refresh, so Slurm's figures of then no longer add to it (run `cost-tags \
                     budget refresh`)"
                ));
            }
        }
        (budgets, source, found.skipped, cache.map(|c| c.header.refreshed_at))
    };
    let reserved = match since.map(|since| reserved_totals(settings, since, now)) {
        Some(Ok(totals)) => Some(totals),
        Some(Err(why)) => {
            notes.push(format!("no RESERVED column: {why}"));
            None
        }
        None => None,
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
            let reserved = reserved.as_ref().and_then(|r| r.get(&name).copied());
            // What counts: AWS's actual spend, or with committed budgets (and figures from
            // Slurm in the cache) everything spent, committed and reserved.
            let counts = |s: &BudgetSpend| match (b.enforce, s.accrued) {
                (Some(crate::config::Enforce::Spent), _) | (_, None) => s.actual,
                _ => s.committed_total() + reserved.unwrap_or(0.0),
            };
            let submissions = match (&spend, b.enabled) {
                (_, false) => "not checked",
                (Some(s), true) if counts(s) >= s.limit * b.threshold_percent / 100.0 => "refused",
                (Some(_), true) => "allowed",
                (None, true) if b.on_missing == BudgetFallback::Allow => "allowed",
                (None, true) => "refused",
            };
            ListRow {
                project,
                budget: spend.as_ref().map(|_| name),
                percent_used: spend.as_ref().map(|s| (s.percent_used() * 10.0).round() / 10.0),
                reserved: spend.as_ref().and(reserved),
                spend,
                submissions,
            }
        })
        .collect();
    Ok(BudgetList {
        rows,
        source,
        skipped,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_list_takes_slurms_figures_only_where_aws_has_not_moved() {
        let spend = |actual: f64| BudgetSpend {
            limit: 500.0,
            actual,
            unit: "USD".into(),
            period: "MONTHLY".into(),
            ..BudgetSpend::default()
        };
        let mut cache = BudgetCache::new("123456789012", Timestamp::from_second(1_700_000_000));
        for (name, actual) in [("Same", 10.0), ("Moved", 10.0), ("AwsOnly", 0.0)] {
            let mut s = spend(actual);
            if name != "AwsOnly" {
                s.accrued = Some(4.0);
                s.committed = Some(3.0);
                s.running_jobs = Some(1);
            }
            cache.budgets.insert(name.into(), s);
        }
        let mut live: BTreeMap<String, BudgetSpend> = [
            ("Same", spend(10.0)),
            ("Moved", spend(12.5)),
            ("AwsOnly", spend(0.0)),
            ("New", spend(1.0)),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        assert_eq!(with_slurm_figures(&mut live, &cache), (1, 1));
        assert_eq!((live["Same"].accrued, live["Same"].committed), (Some(4.0), Some(3.0)));
        assert_eq!(live["Same"].running_jobs, Some(1));
        assert_eq!(live["Same"].committed_total(), 17.0);
        // AWS counted more since the refresh: the accrued of then would count twice.
        assert_eq!((live["Moved"].accrued, live["Moved"].committed), (None, None));
        assert_eq!(live["Moved"].actual, 12.5);
        assert_eq!(live["AwsOnly"].accrued, None);
        assert_eq!(live["New"], spend(1.0));
    }

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
