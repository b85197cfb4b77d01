//! What cost-prolog and cost-epilog do: record the job's start or end in the node ledger,
//! then bring the instance's tags in line with the whole ledger, all within the deadline.
//! A failure of AWS or IMDS is logged and recorded as owed; the next run on the node
//! pays it. Whether a failure becomes a non-zero exit is the binary's call (`strict`).
//!
//! In controller mode (`[tagging] mode = "controller"`) the head node tags every instance
//! and the compute role holds no tagging right: the ledger is still kept (it is local,
//! cheap, and what `cost-tags status` shows), but no IMDS or EC2 call is made.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::{Settings, TaggingMode};
use crate::model::job::Job;
use crate::model::tag_set::{TagChange, TagMap};
use crate::node::instance::InstanceSession;
use crate::node::ledger::{Failure, Ledger};
use crate::node::tags::{desired_tags, managed_keys};

/// Which end of the job this run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Prolog,
    Epilog,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Prolog => "cost-prolog",
            Hook::Epilog => "cost-epilog",
        }
    }
}

/// What a successful run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// The instance already had the ledger's tags (another run applied them).
    UpToDate,
    /// Tags were written.
    Applied(TagMap),
    /// Controller mode: the ledger is updated, the head node writes the tags.
    LedgerOnly,
}

/// Records `job` starting or ending and applies the node's tags. Every wait is bounded by
/// `settings.deadline`; the error says what is owed and why.
pub fn run(hook: Hook, settings: &Settings, job: &Job) -> Result<Done> {
    let started = Instant::now();
    let deadline = started + settings.deadline;
    // The last slice of the deadline is kept for writing down the outcome.
    let network_deadline = deadline - (settings.deadline / 10).min(Duration::from_millis(300));
    let ledger = Ledger::open(&settings.state_dir)?;
    ledger.update(network_deadline, |s| match hook {
        Hook::Prolog => s.add(job.clone()),
        Hook::Epilog => s.remove(&job.id),
    })?;
    if settings.tagging.mode == TaggingMode::Controller {
        return Ok(Done::LedgerOnly);
    }
    let result = apply_owed(settings, &ledger, &mut InstanceSession::new(settings), network_deadline);
    if let Err(e) = &result {
        let failure = Failure::now(&job.id, format!("{e:#}"));
        ledger
            .update(deadline, |s| {
                s.owed = true;
                s.last_failure = Some(failure);
            })
            .context("cannot record that tags are owed")?;
    }
    result
}

/// Applies the ledger's tag set if the instance may not have it. Holds the apply lock
/// during the AWS calls so that calls never overtake each other.
pub fn apply_owed(
    settings: &Settings,
    ledger: &Ledger,
    instance: &mut InstanceSession<'_>,
    deadline: Instant,
) -> Result<Done> {
    let _apply = ledger
        .lock_apply(deadline)
        .context("another run is still talking to AWS")?;
    let state = ledger.read()?;
    let desired = desired_tags(&state.jobs, &settings.tags);
    if !state.needs_apply(&desired) {
        return Ok(Done::UpToDate);
    }
    let change = TagChange::new(&desired, &managed_keys(&settings.tags));
    instance.apply(&change, deadline)?;
    ledger.update(deadline, |s| {
        s.applied = desired.clone();
        s.owed = false;
        s.last_failure = None;
    })?;
    Ok(Done::Applied(desired))
}
