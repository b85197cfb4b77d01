//! `cost-tags job JOBID`: one job's cost, so far while it runs, final once it ended,
//! priced exactly as the report prices it ([`Pricer`]), so that what a user sees for a
//! job adds up to what the report charges their project. sacct is asked for that job id
//! alone, without `--allusers`: sacct then shows an ordinary user their own jobs (or
//! more, as PrivateData allows) and root any job, so no rule of ours decides who may see
//! what. A requeued job has a line per run (`--duplicates`), an array job a line per task;
//! each is a [`JobRun`], and the cost is their sum.

use std::collections::BTreeMap;
use std::io::{self, BufRead};

use serde::Serialize;

use super::aggregate::Diagnostics;
use super::job_ids::JobIds;
use super::pricing::Pricer;
use super::{records, spawn_sacct, Prices};
use crate::model::time::Timestamp;
use crate::prices::merge::PriceSource;
use crate::slurm::sacct;

/// One allocation (or one run of it) of the job, priced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct JobRun {
    pub job_id: String,
    pub state: String,
    pub user: String,
    pub account: String,
    /// The project, from the field `project_source` names; empty when the job has none.
    pub project: String,
    pub partition: String,
    pub nodes: u32,
    pub node_list: String,
    pub cpus: u32,
    pub gpus: u32,
    /// `None`: not started (pending, or cancelled before it ran).
    pub start: Option<Timestamp>,
    /// `None`: still running (charged up to now).
    pub end: Option<Timestamp>,
    /// The time limit in minutes (`None`: UNLIMITED).
    pub time_limit_minutes: Option<u64>,
    /// Seconds run so far (final once it ended).
    pub seconds: i64,
    /// Cost of those seconds; `None` when the run cannot be priced (see `unpriced`).
    pub cost: Option<f64>,
    /// Why it cannot be priced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpriced: Option<String>,
}

impl JobRun {
    /// Still running (or suspended): started on its nodes, and no end yet.
    pub(crate) fn running(&self) -> bool {
        self.start.is_some() && self.end.is_none() && self.nodes > 0
    }
}

/// What sacct showed of one job id, priced at `now`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct JobCost {
    /// The job id asked about.
    pub job_id: String,
    pub currency: String,
    pub now: Timestamp,
    /// Every run sacct showed; empty when it showed none (no such job, or not the
    /// caller's to see).
    pub runs: Vec<JobRun>,
    /// Where the price of each instance type that priced a run came from.
    pub price_sources: BTreeMap<String, PriceSource>,
    /// Lines that could not be used, and the fleet configuration's notes.
    pub notes: Vec<String>,
}

impl JobCost {
    /// The cost of every priced run (what the report charges, from the first second).
    pub(crate) fn total(&self) -> f64 {
        // An empty f64 sum is -0.0, which prints as "-0.00"; adding 0.0 makes it 0.0.
        self.runs.iter().filter_map(|r| r.cost).sum::<f64>() + 0.0
    }

    /// Seconds of every run.
    pub(crate) fn seconds(&self) -> i64 {
        self.runs.iter().map(|r| r.seconds).sum()
    }
}

/// The sacct fields read: the report's, with the time limit.
pub(crate) fn layout(prices: &Prices) -> sacct::Layout {
    sacct::Layout::new(prices.settings.project_source, false).with_time_limit()
}

/// Prices the runs in sacct lines (made with [`layout`]) at `now`. With `ids` (the
/// comment is asked for), lines whose job id sacct's bare list lacks are forged and
/// skipped, as in the report.
pub(crate) fn from_records(
    prices: &Prices,
    job_id: &str,
    input: &mut impl BufRead,
    ids: Option<JobIds>,
    now: Timestamp,
) -> io::Result<JobCost> {
    let mut pricer = Pricer::new(&prices.settings.pricing, prices.cache.clone());
    let source = prices.settings.project_source;
    let mut diag = Diagnostics::default();
    let mut ids = ids;
    let mut runs = Vec::new();
    records(input, layout(prices), ids.as_mut(), &mut diag, |_, record, _| {
        // A record on no nodes held nothing (slurmdbd may have a pending job's start
        // before its allocation): nothing to charge, as the report skips it.
        let (seconds, priced) = match record.start.filter(|_| record.nodes > 0) {
            Some(start) => {
                let end = record.end.unwrap_or(now).max(start);
                let priced = if end == start {
                    Ok(0.0)
                } else {
                    pricer.rate(&record).map(|rate| rate.cost(start, end))
                };
                (end - start, priced)
            }
            None => (0, Ok(0.0)),
        };
        runs.push(JobRun {
            job_id: record.job_id.to_string(),
            state: record.state.to_string(),
            user: record.user.to_string(),
            account: record.account.to_string(),
            project: source
                .pick(record.comment.trim(), record.account, record.wckey)
                .to_string(),
            partition: record.partition.to_string(),
            nodes: record.nodes,
            node_list: record.node_list.to_string(),
            cpus: record.cpus,
            gpus: record.gpus,
            start: record.start,
            end: record.end,
            time_limit_minutes: record.time_limit,
            seconds,
            cost: priced.as_ref().ok().copied(),
            unpriced: priced.err(),
        });
    })?;
    let mut price_sources = BTreeMap::new();
    for name in pricer.used_instance_types() {
        if let Some(source) = prices.sources.get(name) {
            price_sources.insert(name.to_string(), source.clone());
        }
    }
    for ((name, partition), spot) in pricer.spot_sources() {
        if let Some(s) = price_sources.get_mut(name) {
            s.spot.insert(partition.clone(), spot.clone());
        }
    }
    let mut notes = prices.notes.clone();
    notes.extend(
        diag.first_skipped
            .iter()
            .map(|(line, why)| format!("sacct line {line} skipped: {why}")),
    );
    Ok(JobCost {
        job_id: job_id.to_string(),
        currency: prices.settings.pricing.currency.clone(),
        now,
        runs,
        price_sources,
        notes,
    })
}

/// Runs sacct for `job_id` (see the module notes) and prices what it shows at `now`.
/// With the comment as the project, sacct's bare list of the job's ids comes first, as
/// in the report.
pub(crate) fn run_sacct(prices: &Prices, job_id: &str, now: Timestamp) -> anyhow::Result<JobCost> {
    let layout = layout(prices);
    let ids = if layout.has_comment() {
        Some(spawn_sacct(&sacct::job_arguments(job_id, "JobID"), JobIds::read)?)
    } else {
        None
    };
    spawn_sacct(&sacct::job_arguments(job_id, &layout.format()), |mut out| {
        from_records(prices, job_id, &mut out, ids, now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::model::time::parse;

    fn t(s: &str) -> Timestamp {
        parse(s).unwrap().0
    }

    fn prices() -> Prices {
        let settings = Settings::parse(
            "project_source = \"comment\"\n[pricing]\ncurrency = \"EUR\"\nfleet_config = \"\"\ncache_file = \"\"\n\
             [pricing.instances.n]\non_demand = 3.6\nspot = 1.8\ncpus = 4\n\
             [pricing.partitions.p]\ninstance = \"n\"\n\
             [pricing.partitions.s]\ninstance = \"n\"\nspot = true\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        Prices::settings_only(&settings)
    }

    #[test]
    fn a_running_job_costs_what_it_ran_so_far_and_a_requeued_one_every_run() {
        let prices = prices();
        let now = t("2024-03-01T12:30");
        // Job 7 ran once on 2 whole nodes (8 of 8 CPUs) 09:00-10:00, was requeued, and
        // runs again since 12:00 on half of one spot node (2 of 4 CPUs).
        let sacct = "\
7|REQUEUED|alice|physics|p|2024-03-01T09:00:00|2024-03-01T10:00:00|2|8|cpu=8,node=2|n[1-2]|120|ProjectA
7|RUNNING|alice|physics|s|2024-03-01T12:00:00|Unknown|1|2|cpu=2,node=1|n3|UNLIMITED|ProjectA
";
        let job = from_records(&prices, "7", &mut sacct.as_bytes(), None, now).unwrap();
        assert_eq!(job.runs.len(), 2);
        let (first, second) = (&job.runs[0], &job.runs[1]);
        // 1 h x 3.6/h x 2 nodes = 7.2, final.
        assert_eq!((first.seconds, first.cost, first.running()), (3600, Some(7.2), false));
        assert_eq!(first.project, "ProjectA");
        assert_eq!(first.time_limit_minutes, Some(120));
        // 30 min so far x 1.8/h x half a node = 0.45.
        assert_eq!(second.seconds, 1800);
        assert!((second.cost.unwrap() - 0.45).abs() < 1e-12, "{second:?}");
        assert!(second.running() && second.time_limit_minutes.is_none());
        assert!((job.total() - 7.65).abs() < 1e-12);
        assert_eq!(job.seconds(), 5400);
        assert_eq!(job.currency, "EUR");
        assert_eq!(job.price_sources["n"].on_demand, "settings");
    }

    #[test]
    fn pending_unpriced_and_forged_lines() {
        let prices = prices();
        let now = t("2024-03-01T12:00");
        // 8 is pending (slurmdbd may know a start before the nodes); 9 ran in a partition nobody prices; the line of 10 came from a
        // newline in a comment: sacct's list of ids does not have it.
        let sacct = "\
8|PENDING|bob|physics|p|2024-03-01T11:00:00|Unknown|0|0||n1|60|B
9|COMPLETED|bob|physics|x|2024-03-01T10:00:00|2024-03-01T11:00:00|1|4|cpu=4,node=1|x1|60|B
10|COMPLETED|bob|physics|p|2024-03-01T10:00:00|2024-03-01T11:00:00|1|4|cpu=4,node=1|n1|60|B
";
        let ids = JobIds::read("8\n9\n".as_bytes()).unwrap();
        let job = from_records(&prices, "8", &mut sacct.as_bytes(), Some(ids), now).unwrap();
        assert_eq!(job.runs.len(), 2, "{job:?}");
        // Pending, though slurmdbd already has a start: no nodes, nothing run.
        assert_eq!((job.runs[0].seconds, job.runs[0].cost), (0, Some(0.0)));
        assert!(!job.runs[0].running());
        assert_eq!(job.runs[1].cost, None);
        assert!(job.runs[1].unpriced.as_deref().unwrap().contains('x'), "{job:?}");
        assert!(job.notes.iter().any(|n| n.contains("job 10")), "{:?}", job.notes);
        assert_eq!(job.total(), 0.0);
        let unpriced_only = JobCost {
            runs: vec![job.runs[1].clone()],
            ..job.clone()
        };
        assert_eq!(format!("{:.2}", unpriced_only.total()), "0.00", "not -0.00");
    }
}
