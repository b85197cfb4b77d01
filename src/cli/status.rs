//! `cost-tags status`: the node's [`Status`], or with `--cluster` the whole cluster's
//! [`ClusterStatus`], as a table or JSON; exit 0 in sync, 1 out of sync, 2 when it cannot
//! tell. In controller mode a node's status is its ledger alone ([`LedgerStatus`]): the
//! node asks AWS nothing, and exit 0 means the ledger was read.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use crate::cluster::converge::{Cluster, ClusterArgs};
use crate::cluster::status::{ClusterStatus, Verdict};
use crate::config::{Settings, TaggingMode};
use crate::node::status::{ledger_status, status, LedgerStatus, Status};
use crate::report::text_table::Columns;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct StatusArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// On the head node: compare every compute instance's cost tags with what Slurm's jobs
    /// say (the plan of `reconcile --cluster`, not applied) and list those out of sync.
    #[arg(long)]
    pub cluster: bool,
    /// With --cluster: the cluster's name (tag parallelcluster:cluster-name); else
    /// `stack_name` from /etc/parallelcluster/cfnconfig.
    #[arg(long, value_name = "NAME", requires = "cluster")]
    pub cluster_name: Option<String>,
    #[arg(long, hide = true, default_value = "squeue")]
    pub squeue: PathBuf,
    #[arg(long, hide = true, default_value = "scontrol")]
    pub scontrol: PathBuf,
    #[arg(long, hide = true, default_value = "/etc/parallelcluster/cfnconfig")]
    pub cfnconfig: PathBuf,
}

/// How long `status --cluster` waits out a throttled DescribeInstances.
const CLUSTER_STATUS_GIVE_UP: Duration = Duration::from_secs(60);

/// `cost-tags status`: exit 0 in sync, 1 out of sync; an error (exit 2) when it cannot tell.
pub(crate) fn run(settings: &Settings, args: &StatusArgs) -> Result<ExitCode> {
    if args.cluster {
        return run_cluster(settings, args);
    }
    if settings.tagging.mode == TaggingMode::Controller {
        let s = ledger_status(settings)?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&s)?)?;
        } else {
            super::print(&ledger_table(&s))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let s = status(settings)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&s)?)?;
    } else {
        super::print(&table(&s))?;
    }
    Ok(if s.in_sync {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_cluster(settings: &Settings, args: &StatusArgs) -> Result<ExitCode> {
    let cluster_args = ClusterArgs {
        dry_run: true,
        cluster_name: args.cluster_name.clone(),
        cfnconfig: args.cfnconfig.clone(),
        rate: None,
        give_up_after: CLUSTER_STATUS_GIVE_UP,
        squeue: args.squeue.clone(),
        scontrol: args.scontrol.clone(),
    };
    let s = Cluster::connect(settings, &cluster_args)?.status(settings, &cluster_args)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&s)?)?;
    } else {
        super::print(&cluster_table(&s))?;
    }
    Ok(match s.verdict() {
        Verdict::InSync => ExitCode::SUCCESS,
        Verdict::OutOfSync => ExitCode::from(1),
        Verdict::CannotTell => ExitCode::from(2),
    })
}

fn cluster_table(s: &ClusterStatus) -> String {
    let mut out = format!(
        "cluster {}: {} running instances, {} compute instances in sync, {} out of sync, {} unknown\n",
        s.cluster,
        s.instances,
        s.in_sync,
        s.out_of_sync.len(),
        s.unknown.len()
    );
    if !s.out_of_sync.is_empty() {
        let mut rows = vec![vec![
            "INSTANCE".to_string(),
            "NODE".into(),
            "TAG: INSTANCE -> SLURM".into(),
        ]];
        for o in &s.out_of_sync {
            for (n, d) in o.difference.iter().enumerate() {
                let (id, node) = if n == 0 {
                    (
                        o.instance_id.clone(),
                        o.node.clone().unwrap_or_else(|| "(no node)".into()),
                    )
                } else {
                    (String::new(), String::new())
                };
                rows.push(vec![id, node, d.to_string()]);
            }
        }
        out += "\n";
        out += &Columns::at_least(&[0, 0]).render(&rows);
    }
    for u in &s.unknown {
        out += &format!("{} (node {}): cannot tell: {}\n", u.instance_id, u.node, u.why);
    }
    for node in &s.nodes_without_instance {
        out += &format!(
            "node {node}: runs jobs, no instance is it yet (powering up, or its NodeAddr is not its instance's private IP)\n"
        );
    }
    out += match s.verdict() {
        Verdict::InSync => "\nin sync\n",
        Verdict::OutOfSync => "\nOUT OF SYNC: run `cost-tags reconcile --cluster`\n",
        Verdict::CannotTell => "\nCANNOT TELL for every instance\n",
    };
    out
}

fn ledger_table(s: &LedgerStatus) -> String {
    let mut out = format!("ledger    {}\n", s.ledger.display());
    out += &format!("jobs      {}\n", s.jobs.len());
    for j in &s.jobs {
        out += &format!(
            "          {} user={} project={} partition={}\n",
            j.id, j.user, j.project, j.partition
        );
    }
    let mut rows = vec![vec!["TAG".to_string(), "FROM THE LEDGER".into()]];
    for (k, v) in &s.desired {
        rows.push(vec![k.clone(), format!("{v:?}")]);
    }
    if s.desired.is_empty() {
        rows.push(vec!["(none)".into(), String::new()]);
    }
    out += "\n";
    out += &Columns::at_least(&[0, 0]).render(&rows);
    out += "\ncontroller mode: the head node writes this instance's tags; this node asks AWS nothing.\n\
            Compare them there with `cost-tags status --cluster`.\n";
    out
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
        (true, Some(f)) => out += &format!("owed      yes, since {} (unix): {}\n", f.at_unix.as_second(), f.reason),
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
    use crate::model::tag_set::TagMap;
    use crate::node::status::difference;

    fn map(pairs: &[(&str, &str)]) -> TagMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
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
