//! What each project spent and committed according to Slurm accounting, priced the way the
//! report prices jobs: `budget refresh` adds it to what AWS Budgets last said.
//!
//! * **Accrued**: every job-second from the cut-off to now (completed and running jobs).
//!   The cut-off is when AWS last updated the budgets' actual spend (the oldest update of
//!   the account's budgets, so a second is never left out; one AWS already counted may be
//!   counted twice, which errs on the side of refusing), or the period's start with
//!   `[budget.limits]`.
//! * **Committed**: what each running job may still cost, from now to its start plus its
//!   time limit (a job without one commits nothing more and is named in the log), and
//!   what each pending job may cost at its worst case ([`pending_cost`]), from squeue's
//!   account of its request: a queued job has been accepted, so the budget owes it.

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::Result;

use super::cache::PartitionCost;
use super::worst_case::worst_case;
use crate::cost::aggregate::Diagnostics;
use crate::cost::job_ids::JobIds;
use crate::cost::pricing::Pricer;
use crate::cost::{records, Prices};
use crate::model::time::Timestamp;
use crate::slurm::sacct;
use crate::slurm::squeue::PendingJob;

/// One project's spend from Slurm accounting.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ProjectSpend {
    pub accrued: f64,
    pub committed: f64,
    pub running_jobs: u64,
    /// Its pending jobs, priced per budget by [`pending_cost`] (an unbounded job's worst
    /// case depends on the budget's period).
    pub pending: Vec<PendingJob>,
}

/// What a pass over sacct's records found.
#[derive(Debug, Default)]
pub(crate) struct Accounted {
    pub projects: BTreeMap<String, ProjectSpend>,
    /// Jobs that could not be priced, running jobs without a time limit, skipped lines.
    pub notes: Vec<String>,
}

/// The sacct fields this reads: the report's, with the time limit.
pub(crate) fn layout(prices: &Prices) -> sacct::Layout {
    sacct::Layout::new(prices.settings.project_source, false).with_time_limit()
}

/// Sums accrued and committed spend per project from sacct lines over `[cut_off, now)`.
/// `live` gives the project of running jobs by job id, as squeue says it: slurmdbd learns
/// a job's comment only when the job ends, so sacct shows running jobs without one.
pub(crate) fn from_records(
    prices: &Prices,
    input: &mut impl BufRead,
    ids: Option<JobIds>,
    live: &BTreeMap<String, String>,
    cut_off: Timestamp,
    now: Timestamp,
) -> Result<Accounted> {
    let mut pricer = Pricer::new(&prices.settings.pricing, prices.cache.clone());
    let source = prices.settings.project_source;
    let mut found = Accounted::default();
    let mut diag = Diagnostics::default();
    let mut ids = ids;
    let mut unlimited = Vec::new();
    records(input, layout(prices), ids.as_mut(), &mut diag, |_, record, diag| {
        let Some(start) = record.start else { return };
        // sacct's --truncate gives a running job the window's end as its End: the state
        // says it still runs.
        let running = record.end.is_none() || record.state == "RUNNING";
        let mut project = source.pick(record.comment.trim(), record.account, record.wckey);
        if project.is_empty() && running {
            project = live.get(record.job_id).map_or("", String::as_str);
        }
        if project.is_empty() || record.nodes == 0 {
            return;
        }
        let end = record.end.unwrap_or(now);
        let (from, to) = (start.max(cut_off), end.min(now));
        let rate = match pricer.rate(&record) {
            Ok(rate) => rate,
            Err(reason) => {
                diag.unpriced(reason, record.job_id, (to - from).max(0));
                return;
            }
        };
        let spend = found.projects.entry(project.to_string()).or_default();
        if to > from {
            spend.accrued += rate.cost(from, to);
        }
        if running {
            spend.running_jobs += 1;
            match record.time_limit {
                Some(minutes) => {
                    let limit_end = start + i64::try_from(minutes).unwrap_or(i64::MAX).saturating_mul(60);
                    if limit_end > now {
                        spend.committed += rate.cost(now, limit_end);
                    }
                }
                None => unlimited.push(record.job_id.to_string()),
            }
        }
    })?;
    if diag.unpriced > 0 {
        found.notes.push(format!(
            "{} job runs could not be priced and count nothing: {}",
            diag.unpriced,
            diag.unpriced_reasons.keys().cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    if !unlimited.is_empty() {
        found.notes.push(format!(
            "running jobs without a time limit commit nothing beyond now: {}",
            unlimited.join(", ")
        ));
    }
    if diag.skipped > 0 {
        found
            .notes
            .push(format!("{} sacct lines could not be used", diag.skipped));
    }
    Ok(found)
}

/// What `pending` jobs may cost in all, each at its worst case in `partitions` (a job
/// with no time bound until the budget period ends, `hours_left` from now), and the jobs
/// that could not be priced (a partition without a known price), which count nothing.
pub(crate) fn pending_cost(
    pending: &[PendingJob],
    partitions: &BTreeMap<String, PartitionCost>,
    hours_left: f64,
) -> (f64, Vec<String>) {
    let mut total = 0.0;
    let mut unpriced = Vec::new();
    for job in pending {
        match worst_case(&job.request, partitions, Some(hours_left)) {
            Ok(w) => total += w.cost,
            Err(why) => unpriced.push(format!("pending job {}: {why}", job.id)),
        }
    }
    (total, unpriced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::model::time::parse;

    fn t(s: &str) -> Timestamp {
        parse(s).unwrap().0
    }

    #[test]
    fn accrued_from_the_cut_off_and_committed_to_the_time_limit() {
        let settings = Settings::parse(
            "project_source = \"comment\"\n[pricing]\nfleet_config = \"\"\ncache_file = \"\"\n\
             [pricing.instances.n]\non_demand = 3.6\ncpus = 4\n[pricing.partitions.p]\ninstance = \"n\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let prices = Prices::settings_only(&settings);
        // cut-off 10:00, now 12:00; a whole node is 3.6/h, 0.001/s.
        let sacct = "\
1|COMPLETED|u|a|p|2024-03-01T09:00:00|2024-03-01T11:00:00|1|4|cpu=4|n1|60|A
2|RUNNING|u|a|p|2024-03-01T11:00:00|2024-03-01T12:00:00|2|8|cpu=8|n[1-2]|180|A
3|RUNNING|u|a|p|2024-03-01T11:30:00|Unknown|1|2|cpu=2|n3|UNLIMITED|B
4|PENDING|u|a|p|Unknown|Unknown|1|4|cpu=4|None assigned|60|B
";
        // Job 5 runs; sacct has no comment for it yet, squeue does.
        let sacct = format!("{sacct}5|RUNNING|u|a|p|2024-03-01T11:00:00|Unknown|1|4|cpu=4|n4|120|\n");
        let live = [("5".to_string(), "B".to_string())].into();
        let found = from_records(
            &prices,
            &mut sacct.as_bytes(),
            None,
            &live,
            t("2024-03-01T10:00"),
            t("2024-03-01T12:00"),
        )
        .unwrap();
        // Job 4 is pending: sacct has no start for it, squeue prices it (pending_cost).
        assert!(found.projects["B"].pending.is_empty());
        let a = &found.projects["A"];
        // Job 1: 10:00-11:00 after the cut-off, 1 h x 3.6 = 3.6; job 2: 11:00-12:00 on 2
        // nodes = 7.2. Job 2 commits 12:00-14:00 (3 h limit from 11:00) x 2 nodes = 14.4.
        assert!((a.accrued - 10.8).abs() < 1e-9, "{a:?}");
        assert!((a.committed - 14.4).abs() < 1e-9, "{a:?}");
        assert_eq!(a.running_jobs, 1);
        // Job 3: half a node for 30 min = 0.9; no time limit: commits nothing, and said.
        // Job 5 (project from squeue): 1 h so far = 3.6, commits 12:00-13:00 = 3.6.
        let b = &found.projects["B"];
        assert!(
            (b.accrued - 4.5).abs() < 1e-9 && (b.committed - 3.6).abs() < 1e-9,
            "{b:?}"
        );
        assert_eq!(b.running_jobs, 2);
        assert!(
            found
                .notes
                .iter()
                .any(|n| n.contains("without a time limit") && n.contains('3')),
            "{:?}",
            found.notes
        );
    }

    #[test]
    fn pending_jobs_commit_their_worst_case() {
        use crate::slurm::job_request::{JobRequest, TimeLimit};
        let partitions: BTreeMap<String, PartitionCost> = [(
            "p".to_string(),
            PartitionCost {
                instance: "n".into(),
                hourly: 3.6,
                cpus: 4,
                gpus: 0,
                default_minutes: None,
                max_minutes: None,
                is_default: true,
            },
        )]
        .into();
        let job = |id: &str, request: JobRequest| PendingJob {
            id: id.into(),
            project: "A".into(),
            request,
        };
        let pending = [
            // -N 1-3 --exclusive -t 30 --array=0-1: 2 tasks x 3 nodes x 0.5 h x 3.6 = 10.8.
            job(
                "7",
                JobRequest {
                    partitions: vec!["p".into()],
                    time_limit: TimeLimit::Minutes(30),
                    min_nodes: Some(1),
                    max_nodes: Some(3),
                    exclusive: true,
                    array_tasks: 2,
                    ..Default::default()
                },
            ),
            // 2 CPUs of 4, no time bound: half a node until the period's end, 10 h left:
            // 0.5 x 10 h x 3.6 = 18.
            job(
                "8",
                JobRequest {
                    time_limit: TimeLimit::Unlimited,
                    min_cpus: Some(2),
                    array_tasks: 1,
                    ..Default::default()
                },
            ),
            // A partition without a price: counts nothing, and named.
            job(
                "9",
                JobRequest {
                    partitions: vec!["nosuch".into()],
                    array_tasks: 1,
                    ..Default::default()
                },
            ),
        ];
        let (cost, unpriced) = pending_cost(&pending, &partitions, 10.0);
        // 10.8 + 18 = 28.8.
        assert!((cost - 28.8).abs() < 1e-9, "{cost}");
        assert_eq!(unpriced.len(), 1);
        assert!(
            unpriced[0].starts_with("pending job 9: partition \"nosuch\""),
            "{unpriced:?}"
        );
    }
}
