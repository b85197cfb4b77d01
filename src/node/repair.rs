//! `cost-tags reconcile` on a compute node: repair what lost prologs and epilogs, crashes
//! and AWS outages leave behind.
//!
//! squeue says which jobs really run on the node (asked twice: once for the jobs' fields,
//! once for their ids alone, which nothing a user writes can forge; see
//! [`crate::slurm::squeue::confirm_jobs`]); the ledger drops the jobs that are gone and gains the ones
//! missing, then the instance's actual managed tags (DescribeTags) are compared with the
//! ledger's and applied through [`hook::apply_owed`] when they differ. The ledger is read
//! before squeue is asked and changed under its lock after: a job is dropped only if it was
//! already in the ledger before the query (so a prolog racing the query is never undone),
//! and added only if the ledger had it neither before nor now (so an epilog racing the
//! query is never undone). Bounded by `deadline`; an AWS failure is recorded as owed and
//! exits 0, like the hooks; a failed squeue changes nothing and exits 2.
//!
//! In controller mode the ledger is still brought in line with Slurm (squeue is local to
//! the cluster), but the instance's tags are the head node's business: no IMDS or EC2
//! call, and the step says so.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::{Settings, TaggingMode};
use crate::log;
use crate::model::job::Job;
use crate::node::hook::{self, Done};
use crate::node::instance::InstanceSession;
use crate::node::ledger::{Failure, Ledger, LedgerState};
use crate::node::status::{difference, TagDifference};
use crate::node::tags::{desired_tags, managed_keys};
use crate::slurm::command::run_program;
use crate::slurm::squeue::{confirm_jobs, node_jobs_format, parse_node_jobs, JOB_IDS_FORMAT, NODE_STATES};

/// What `cost-tags reconcile` on a node is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct RepairOptions {
    /// Say what would change; change nothing.
    pub dry_run: bool,
    /// This node's Slurm name, if given; else read from `nodename_file`, else the short
    /// host name.
    pub node: Option<String>,
    pub nodename_file: PathBuf,
    pub squeue: PathBuf,
}

/// What [`reconcile_node`] reports as it goes, in order, for the command line to show:
/// the ledger's change first, so it is seen even if AWS then takes the whole deadline.
#[derive(Debug)]
pub(crate) enum RepairStep<'a> {
    /// The ledger brought in line with Slurm (or what would change, on a dry run).
    Ledger {
        node: &'a str,
        change: &'a LedgerChange,
        dry_run: bool,
    },
    /// The instance carries the ledger's tags.
    TagsInSync { dry_run: bool },
    /// A managed tag differs from the ledger's, and is being repaired (unless a dry run).
    TagDiffers {
        difference: &'a TagDifference,
        dry_run: bool,
    },
    /// Controller mode: the head node tags this instance; AWS was not asked.
    TagsByController,
}

/// What reconciling changed in the ledger.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct LedgerChange {
    pub dropped: Vec<Job>,
    pub added: Vec<Job>,
}

/// Brings `state` in line with `running` (squeue's answer): drops jobs that were in
/// `before` (the ledger as read before squeue was asked) but do not run, adds running jobs
/// that were in neither `before` nor `state`, keeps the rest as they are.
pub(crate) fn reconcile_jobs(state: &mut LedgerState, before: &[Job], running: &[Job]) -> LedgerChange {
    let running_ids: BTreeSet<&str> = running.iter().map(|j| j.id.as_str()).collect();
    let before_ids: BTreeSet<&str> = before.iter().map(|j| j.id.as_str()).collect();
    let mut change = LedgerChange::default();
    state.jobs.retain(|j| {
        let stale = before_ids.contains(j.id.as_str()) && !running_ids.contains(j.id.as_str());
        if stale {
            change.dropped.push(j.clone());
        }
        !stale
    });
    for job in running {
        if !before_ids.contains(job.id.as_str()) && !state.jobs.iter().any(|j| j.id == job.id) {
            state.jobs.push(job.clone());
            change.added.push(job.clone());
        }
    }
    change
}

fn node_name(args: &RepairOptions) -> Result<String> {
    if let Some(n) = &args.node {
        return Ok(n.clone());
    }
    if let Ok(text) = std::fs::read_to_string(&args.nodename_file) {
        let name = text.trim();
        if !name.is_empty() {
            return Ok(name.to_string());
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").context("cannot read the host name")?;
    let short = host.trim().split('.').next().unwrap_or("").to_string();
    anyhow::ensure!(!short.is_empty(), "empty host name; pass --node");
    Ok(short)
}

/// A job as the repair messages name it.
pub(crate) fn describe_job(j: &Job) -> String {
    format!("{} (user {}, project {:?})", j.id, j.user, j.project)
}

/// `cost-tags reconcile` on this node, telling `progress` each step. Returns once the
/// ledger and the tags are repaired, or the tags recorded as owed (an AWS failure is
/// not an error, as in the hooks); an error means Slurm could not be asked or the ledger
/// not be written, and then nothing changed.
pub(crate) fn reconcile_node(
    settings: &Settings,
    args: &RepairOptions,
    mut progress: impl FnMut(RepairStep<'_>),
) -> Result<()> {
    let started = Instant::now();
    let deadline = started + settings.deadline;
    let network_deadline = deadline - (settings.deadline / 10).min(Duration::from_millis(300));
    let ledger = Ledger::open(&settings.state_dir)?;
    let mut instance = InstanceSession::new(settings);
    // The ledger before squeue is asked (see the module doc for why).
    let before = ledger.read().unwrap_or_default();
    let node = node_name(args)?;
    let ask = |format: &str| {
        run_program(
            &args.squeue,
            &["-h", "-a", "-w", &node, "-t", NODE_STATES, "-o", format],
            network_deadline,
        )
        .context("cannot ask Slurm which jobs run here; nothing changed")
    };
    let output = ask(&node_jobs_format(settings.project_source))?;
    let ids = ask(JOB_IDS_FORMAT)?;
    let cluster = std::env::var("SLURM_CLUSTER_NAME")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| before.jobs.iter().map(|j| j.cluster.clone()).find(|c| !c.is_empty()))
        .unwrap_or_default();
    let running = parse_node_jobs(&output, settings.project_source, &cluster)
        .and_then(|jobs| confirm_jobs(jobs, &ids))
        .map_err(|e| {
            log::error(&format!("node {node}: {e:#}; nothing changed"));
            e
        })
        .context("cannot read squeue's answer; nothing changed")?;

    if args.dry_run {
        let mut after = before.clone();
        let change = reconcile_jobs(&mut after, &before.jobs, &running);
        progress(RepairStep::Ledger {
            node: &node,
            change: &change,
            dry_run: true,
        });
        if settings.tagging.mode == TaggingMode::Controller {
            progress(RepairStep::TagsByController);
            return Ok(());
        }
        let desired = desired_tags(&after.jobs, &settings.tags);
        let (_, actual) = instance
            .tags(&managed_keys(&settings.tags), network_deadline)
            .context("cannot read the instance's tags")?;
        let diff = difference(&desired, &actual);
        if diff.is_empty() {
            progress(RepairStep::TagsInSync { dry_run: true });
        }
        for difference in &diff {
            progress(RepairStep::TagDiffers {
                difference,
                dry_run: true,
            });
        }
        return Ok(());
    }

    let (change, state) = ledger.update(network_deadline, |s| reconcile_jobs(s, &before.jobs, &running))?;
    progress(RepairStep::Ledger {
        node: &node,
        change: &change,
        dry_run: false,
    });
    for j in &change.dropped {
        log::info(&format!(
            "node {node}: dropped job {} (no longer runs)",
            describe_job(j)
        ));
    }
    for j in &change.added {
        log::info(&format!(
            "node {node}: added job {} (runs, was missing)",
            describe_job(j)
        ));
    }
    if settings.tagging.mode == TaggingMode::Controller {
        progress(RepairStep::TagsByController);
        return Ok(());
    }

    let owe = |reason: String| -> Result<()> {
        log::error(&format!(
            "node {node}: tags owed, will be applied by the next run: {reason}"
        ));
        ledger
            .update(deadline, |s| {
                s.owed = true;
                s.last_failure = Some(Failure::now("", reason));
            })
            .context("cannot record that tags are owed")?;
        Ok(())
    };
    let desired = desired_tags(&state.jobs, &settings.tags);
    let actual = match instance.tags(&managed_keys(&settings.tags), network_deadline) {
        Ok((_, actual)) => actual,
        Err(e) => return owe(format!("{e:#}")),
    };
    let diff = difference(&desired, &actual);
    if diff.is_empty() {
        // The instance is right: say so in the ledger, if the jobs did not change meanwhile.
        ledger.update(deadline, |s| {
            if desired_tags(&s.jobs, &settings.tags) == actual {
                s.applied = actual.clone();
                s.owed = false;
                s.last_failure = None;
            }
        })?;
        progress(RepairStep::TagsInSync { dry_run: false });
        return Ok(());
    }
    for difference in &diff {
        progress(RepairStep::TagDiffers {
            difference,
            dry_run: false,
        });
        log::info(&format!("node {node}: repairing tag {difference}"));
    }
    ledger.update(deadline, |s| s.owed = true)?;
    match hook::apply_owed(settings, &ledger, &mut instance, network_deadline) {
        Ok(Done::Applied(tags)) => {
            log::info(&format!("node {node}: instance tags now {tags:?}"));
            Ok(())
        }
        Ok(Done::UpToDate | Done::LedgerOnly) => Ok(()),
        Err(e) => owe(format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> Job {
        Job {
            id: id.into(),
            user: "u".into(),
            project: "P".into(),
            ..Job::default()
        }
    }

    #[test]
    fn reconcile_drops_stale_adds_missing_and_respects_races() {
        let before = vec![job("1"), job("2")];
        let mut state = LedgerState {
            jobs: before.clone(),
            ..LedgerState::default()
        };
        let change = reconcile_jobs(&mut state, &before, &[job("2"), job("3")]);
        assert_eq!(change.dropped, vec![job("1")]);
        assert_eq!(change.added, vec![job("3")]);
        assert_eq!(state.jobs, vec![job("2"), job("3")]);

        // A prolog added 4 after squeue answered: kept. An epilog removed 5 (which squeue
        // still saw) meanwhile: not re-added.
        let before = vec![job("5")];
        let mut state = LedgerState {
            jobs: vec![job("4")],
            ..LedgerState::default()
        };
        let change = reconcile_jobs(&mut state, &before, &[job("5")]);
        assert_eq!(change, LedgerChange::default());
        assert_eq!(state.jobs, vec![job("4")]);
    }
}
