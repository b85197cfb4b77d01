//! `cost-tags status` on a compute node: which instance this is, the jobs in the node
//! ledger, the tags they imply, the tags the instance really carries (DescribeTags), whether
//! tags are owed and why, and the difference. Exit 0 when the instance carries exactly
//! the ledger's tags, 1 when it does not, 2 when it cannot tell (IMDS or AWS unreachable,
//! ledger unreadable). Bounded by `deadline`, like the hooks.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::Settings;
use crate::node::instance::InstanceSession;
use crate::node::job::Job;
use crate::node::ledger::{Failure, Ledger};
use crate::node::tags::{desired_tags, managed_keys, TagMap};
use crate::text_table::Columns;

#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A managed key whose value on the instance is not the ledger's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagDifference {
    pub key: String,
    /// What the ledger implies (None: the key must not be there).
    pub want: Option<String>,
    /// What the instance has (None: the key is missing).
    pub have: Option<String>,
}

/// The keys where `actual` differs from `desired`, sorted by key.
pub fn difference(desired: &TagMap, actual: &TagMap) -> Vec<TagDifference> {
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
pub struct Status {
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
pub fn status(settings: &Settings) -> Result<Status> {
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

/// `cost-tags status`: exit 0 in sync, 1 out of sync; an error (exit 2) when it cannot tell.
pub fn run(settings: &Settings, args: &StatusArgs) -> Result<ExitCode> {
    let s = status(settings)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", table(&s));
    }
    Ok(if s.in_sync {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn table(s: &Status) -> String {
    let mut out = format!("instance  {} ({})\n", s.instance_id, s.region);
    out += &format!("jobs      {}\n", s.jobs.len());
    for j in &s.jobs {
        out += &format!(
            "          {} user={} project={} partition={}\n",
            j.id, j.user, j.project, j.partition
        );
    }
    match (&s.owed, &s.last_failure) {
        (false, _) => out += "owed      no\n",
        (true, Some(f)) => out += &format!("owed      yes, since {} (unix): {}\n", f.at_unix, f.reason),
        (true, None) => out += "owed      yes\n",
    }
    let keys: std::collections::BTreeSet<&String> = s.desired.keys().chain(s.actual.keys()).collect();
    let mut rows = vec![vec!["TAG".to_string(), "STATE".into(), "LEDGER -> INSTANCE".into()]];
    for k in keys {
        let (want, have) = (s.desired.get(k), s.actual.get(k));
        let state = if want == have { "ok" } else { "DIFFERS" };
        let show = |v: Option<&String>| v.map_or("(none)".to_string(), |v| format!("{v:?}"));
        rows.push(vec![
            k.clone(),
            state.into(),
            format!("{} -> {}", show(want), show(have)),
        ]);
    }
    // STATE is 8 wide whatever the states, so the values stay put when a tag differs.
    out += "\n";
    out += &Columns::at_least(&[0, 8]).render(&rows);
    out += if s.in_sync {
        "\nin sync\n"
    } else {
        "\nOUT OF SYNC: run `cost-tags reconcile`\n"
    };
    out
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

    #[test]
    fn table_keeps_the_values_column_in_place() {
        let desired = map(&[("aws-parallelcluster-project", "P"), ("b", "2")]);
        let actual = map(&[("aws-parallelcluster-project", "Q"), ("b", "2")]);
        let s = Status {
            instance_id: "i-1".into(),
            region: "eu-west-1".into(),
            jobs: Vec::new(),
            difference: difference(&desired, &actual),
            in_sync: false,
            desired,
            actual,
            owed: false,
            last_failure: None,
        };
        let t = table(&s);
        assert!(
            t.ends_with(
                "\nTAG                          STATE     LEDGER -> INSTANCE\n\
                 aws-parallelcluster-project  DIFFERS   \"P\" -> \"Q\"\n\
                 b                            ok        \"2\" -> \"2\"\n\
                 \nOUT OF SYNC: run `cost-tags reconcile`\n"
            ),
            "{t}"
        );
    }
}
