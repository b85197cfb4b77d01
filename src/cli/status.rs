//! `cost-tags status`: the node's [`Status`] as a table or JSON; exit 0 in sync, 1 out of
//! sync, an error (exit 2) when it cannot tell.

use std::process::ExitCode;

use anyhow::Result;

use crate::config::Settings;
use crate::node::status::{status, Status};
use crate::text_table::Columns;

#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `cost-tags status`: exit 0 in sync, 1 out of sync; an error (exit 2) when it cannot tell.
pub fn run(settings: &Settings, args: &StatusArgs) -> Result<ExitCode> {
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
    use crate::node::status::difference;
    use crate::node::tags::TagMap;

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
