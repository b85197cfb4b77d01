//! `cost-tags status` on a compute node: which instance this is, the jobs in the node
//! ledger, the tags they imply, the tags the instance really carries (DescribeTags), whether
//! tags are owed and why, and the difference. Exit 0 when the instance carries exactly
//! the ledger's tags, 1 when it does not, 2 when it cannot tell (IMDS or AWS unreachable,
//! ledger unreadable). Bounded by `deadline`, like the hooks. Printed by `cli::status`.
//!
//! In controller mode the node holds no tagging right and makes no AWS call, `status`
//! included ([`ledger_status`]): it shows the ledger and the tags it implies, and says
//! that the head node writes them (`cost-tags status --cluster` there compares them).

use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::Settings;
use crate::model::job::Job;
use crate::model::tag_set::TagMap;
use crate::node::instance::InstanceSession;
use crate::node::ledger::{Failure, Ledger};
use crate::node::tags::{desired_tags, managed_keys};

/// A managed key whose value on the instance is not the ledger's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TagDifference {
    pub key: String,
    /// What the ledger implies (None: the key must not be there).
    pub want: Option<String>,
    /// What the instance has (None: the key is missing).
    pub have: Option<String>,
}

/// `key: "old" -> "new"`, with `(none)` for a missing side.
impl std::fmt::Display for TagDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.as_ref().map_or("(none)".to_string(), |v| format!("{v:?}"));
        write!(f, "{}: {} -> {}", self.key, show(&self.have), show(&self.want))
    }
}

/// The keys where `actual` differs from `desired`, sorted by key.
pub(crate) fn difference(desired: &TagMap, actual: &TagMap) -> Vec<TagDifference> {
    let keys: std::collections::BTreeSet<&String> = desired.keys().chain(actual.keys()).collect();
    keys.into_iter()
        .filter(|k| desired.get(*k) != actual.get(*k))
        .map(|k| TagDifference {
            key: k.clone(),
            want: desired.get(k).cloned(),
            have: actual.get(k).cloned(),
        })
        .collect()
}

/// What `cost-tags status --json` prints.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Status {
    pub instance_id: String,
    pub region: String,
    pub jobs: Vec<Job>,
    pub desired: TagMap,
    pub actual: TagMap,
    pub owed: bool,
    pub last_failure: Option<Failure>,
    pub in_sync: bool,
    pub difference: Vec<TagDifference>,
}

/// Gathers the node's status: ledger (read without locking) and the instance's tags.
pub(crate) fn status(settings: &Settings) -> Result<Status> {
    let deadline = Instant::now() + settings.deadline;
    let state = Ledger::open(&settings.state_dir)?
        .read()
        .context("cannot read the node ledger")?;
    let desired = desired_tags(&state.jobs, &settings.tags);
    let (identity, actual) = InstanceSession::new(settings).tags(&managed_keys(&settings.tags), deadline)?;
    let difference = difference(&desired, &actual);
    Ok(Status {
        instance_id: identity.instance_id,
        region: identity.region,
        jobs: state.jobs,
        in_sync: difference.is_empty(),
        desired,
        actual,
        owed: state.owed,
        last_failure: state.last_failure,
        difference,
    })
}

/// What `cost-tags status --json` prints in controller mode.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LedgerStatus {
    /// Always `controller`, so that a script can tell this from [`Status`].
    pub mode: &'static str,
    pub ledger: std::path::PathBuf,
    pub jobs: Vec<Job>,
    /// The tags the jobs imply, which the head node writes on this instance.
    pub desired: TagMap,
}

/// Controller mode's status: the ledger alone, read without locking and without any
/// IMDS or EC2 call. An error means the ledger cannot be read.
pub(crate) fn ledger_status(settings: &Settings) -> Result<LedgerStatus> {
    let ledger = Ledger::open(&settings.state_dir)?;
    let state = ledger.read().context("cannot read the node ledger")?;
    Ok(LedgerStatus {
        mode: "controller",
        ledger: ledger.path(),
        desired: desired_tags(&state.jobs, &settings.tags),
        jobs: state.jobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> TagMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn difference_lists_missing_extra_and_wrong_keys() {
        let desired = map(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let actual = map(&[("a", "1"), ("b", "x"), ("d", "4")]);
        let d = difference(&desired, &actual);
        let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["b", "c", "d"]);
        assert_eq!(d[0].want.as_deref(), Some("2"));
        assert_eq!(d[0].have.as_deref(), Some("x"));
        assert_eq!(d[1].have, None);
        assert_eq!(d[2].want, None);
        assert!(difference(&desired, &desired).is_empty());
    }
}
