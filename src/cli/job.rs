//! `cost-tags job JOBID`: one job's project, nodes, time and cost (so far, or final),
//! where its price came from and the instances its nodes were, as a small table or JSON.
//! The job is read and priced in [`crate::cost::job`], joined with the head node's
//! instance timeline in [`crate::cost::job_instances`].

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Settings;
use crate::cost::job::{self, JobCost};
use crate::cost::job_instances::{job_instances, JobInstances};
use crate::cost::with_prices;
use crate::model::time::{Short, Timestamp};
use crate::report::text_table::Columns;
use crate::slurm::fields;

fn parse_job_id(s: &str) -> Result<String, String> {
    if fields::is_job_id(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a job id (123, 123_4 or 123+0)"))
    }
}

/// `cost-tags job JOBID`: what one job cost so far, or in the end.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
The job is priced as `cost-tags report` prices it (see its --help): a running job up to now.
Every run of a requeued job and every task of an array job is a line; the cost is their sum.
sacct is asked for this job alone, without --allusers:
  TZ=UTC SLURM_TIME_FORMAT=standard sacct --parsable2 --noheader --allocations --duplicates -j JOBID
    --format=JobID,State,User,Account,Partition,Start,End,NNodes,NCPUS,AllocTRES,NodeList,TimelimitRaw
(with \",WCKey\" or \",Comment\" as for the report), so an ordinary user sees their own jobs,
and others' only as Slurm's PrivateData allows.
The instances each node was while the job ran come from the instance timeline the head node's
`cost-tags reconcile --cluster` writes ([timeline] file, timeline.jsonl in state_dir); without
one (a node-mode install, another node than the head node) the job is shown without them.
Exit codes: 0 shown, 1 sacct shows no such job (or not to you), 2 cannot tell (bad settings,
sacct failed).")]
pub(crate) struct JobArgs {
    /// The job id (an array task as 123_4)
    #[arg(value_name = "JOBID", value_parser = parse_job_id)]
    pub job_id: String,
    /// One JSON document instead of the table
    #[arg(long)]
    pub json: bool,
    /// Read saved sacct output (made with the command below; "-" for stdin) instead of
    /// running sacct
    #[arg(long, value_name = "FILE", hide = true)]
    pub sacct_file: Option<PathBuf>,
}

/// Reads and prices the job, prints it; exit 1 when sacct shows no such job.
pub(crate) fn run(settings: &Settings, args: &JobArgs) -> anyhow::Result<ExitCode> {
    let now = Timestamp::now();
    let prices = with_prices(settings, now)?;
    let job = match &args.sacct_file {
        Some(path) => {
            let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            job::from_records(&prices, &args.job_id, &mut io::BufReader::new(file), None, now)
                .with_context(|| format!("reading {}", path.display()))?
        }
        None => job::run_sacct(&prices, &args.job_id, now)?,
    };
    let instances = job_instances(
        &job,
        settings.timeline_file().as_deref(),
        settings.timeline.rewrite_seconds,
    );
    let text = if args.json {
        let shown = Shown {
            job: &job,
            instances: &instances,
        };
        serde_json::to_string_pretty(&shown)? + "\n"
    } else if job.runs.is_empty() {
        String::new()
    } else {
        table(&job) + &instances_table(&instances)
    };
    super::print(&text)?;
    if job.runs.is_empty() {
        eprintln!(
            "cost-tags: sacct shows no job {} (no such job, or not yours to see)",
            job.job_id
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// What `--json` prints: the job's cost, then `timeline`, `instances` and the other
/// fields of [`JobInstances`].
#[derive(serde::Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    job: &'a JobCost,
    #[serde(flatten)]
    instances: &'a JobInstances,
}

/// The instances of the job's nodes, a line each, or why there are none.
pub(crate) fn instances_table(shown: &JobInstances) -> String {
    let mut out = String::new();
    if !shown.instances.is_empty() {
        let header = [
            "JOB",
            "NODE",
            "INSTANCE",
            "TYPE",
            "LIFECYCLE",
            "ZONE",
            "SEEN FROM",
            "SEEN UNTIL",
        ];
        let rows: Vec<Vec<String>> = shown
            .instances
            .iter()
            .map(|i| {
                vec![
                    i.job_id.clone(),
                    i.node.clone(),
                    i.instance_id.clone(),
                    i.instance_type.clone(),
                    i.lifecycle.clone(),
                    i.zone.clone(),
                    Short(i.first_seen).to_string(),
                    Short(i.last_seen).to_string(),
                ]
            })
            .collect();
        let mut columns = Columns::default();
        columns.measure(&header);
        for row in &rows {
            columns.measure(row);
        }
        out.push('\n');
        columns.push_line(&mut out, &header);
        for row in &rows {
            columns.push_line(&mut out, row);
        }
    }
    if !shown.instances.is_empty() && !shown.nodes_without_instance.is_empty() {
        let _ = writeln!(
            out,
            "instances: none known for {}",
            shown.nodes_without_instance.join(", ")
        );
    }
    if let Some(why) = &shown.no_instances_because {
        let _ = writeln!(out, "\ninstances: {why}.");
    }
    if shown.timeline_unreadable_lines > 0 {
        let _ = writeln!(
            out,
            "instances: {} unreadable lines of the timeline skipped.",
            shown.timeline_unreadable_lines
        );
    }
    out
}

/// `H:MM:SS` (hours unbounded).
fn duration(seconds: i64) -> String {
    format!("{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

fn time(t: Option<Timestamp>, none: &str) -> String {
    t.map(|t| Short(t).to_string()).unwrap_or_else(|| none.to_string())
}

/// The table for people: a line per run, the total when there are several, then where
/// the prices came from and what could not be priced.
pub(crate) fn table(job: &JobCost) -> String {
    let mut out = String::new();
    if job.runs.is_empty() {
        return out;
    }
    let header = [
        "JOB",
        "STATE",
        "USER",
        "PROJECT",
        "PARTITION",
        "NODES",
        "START",
        "END",
        "TIME",
        "COST",
    ];
    let rows: Vec<Vec<String>> = job
        .runs
        .iter()
        .map(|r| {
            vec![
                r.job_id.clone(),
                r.state.clone(),
                r.user.clone(),
                if r.project.is_empty() {
                    "(none)".into()
                } else {
                    r.project.clone()
                },
                r.partition.clone(),
                format!("{} ({})", r.nodes, r.node_list),
                time(r.start, "-"),
                time(r.end, if r.running() { "(running)" } else { "-" }),
                duration(r.seconds),
                match r.cost {
                    Some(c) => format!("{c:.2}"),
                    None => "unpriced".into(),
                },
            ]
        })
        .collect();
    let mut columns = Columns::default().right_aligned_from(8);
    columns.measure(&header);
    for row in &rows {
        columns.measure(row);
    }
    columns.push_line(&mut out, &header);
    for row in &rows {
        columns.push_line(&mut out, row);
    }
    let running = job.runs.iter().any(|r| r.running());
    let so_far = if running { "so far" } else { "in all" };
    let _ = writeln!(
        out,
        "\nCost {so_far}: {:.2} {} for {} of run time ({}).",
        job.total(),
        job.currency,
        duration(job.seconds()),
        if running {
            format!("running, charged up to {}", Short(job.now))
        } else {
            "final".to_string()
        }
    );
    for r in job.runs.iter().filter(|r| r.unpriced.is_some()) {
        let _ = writeln!(
            out,
            "unpriced: run of {} in partition {}: {}",
            r.job_id,
            r.partition,
            r.unpriced.as_deref().unwrap_or_default()
        );
    }
    for (name, source) in &job.price_sources {
        match source.age_seconds {
            Some(age) => {
                let _ = writeln!(
                    out,
                    "price: {name} on demand from the price cache (AWS Price List), read {:.1} hours ago.",
                    age as f64 / 3600.0
                );
            }
            None => {
                let _ = writeln!(out, "price: {name} from the settings ([pricing.instances]).");
            }
        }
        for (partition, spot) in &source.spot {
            let _ = writeln!(out, "price: {name} spot in partition {partition}: {spot}.");
        }
    }
    for note in &job.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::job::ProjectSource;
    use crate::slurm::sacct::{self, Layout};
    use clap::Args;

    #[test]
    fn help_shows_the_exact_sacct_command() {
        let help = JobArgs::augment_args(clap::Command::new("job"))
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        let layout = Layout::new(ProjectSource::Account, false).with_time_limit();
        let line = sacct::line_of(&sacct::job_arguments("JOBID", &layout.format()));
        let (command, format) = line.split_once(" --format=").unwrap();
        assert!(
            help.contains(&format!("{command}\n    --format={format}\n")),
            "{line}\n{help}"
        );
    }
    use crate::cost::job::JobRun;
    use crate::prices::merge::PriceSource;

    #[test]
    fn table_says_so_far_for_a_running_job_and_where_prices_came_from() {
        let run = JobRun {
            job_id: "7".into(),
            state: "RUNNING".into(),
            user: "alice".into(),
            account: "physics".into(),
            project: "ProjectA".into(),
            partition: "p".into(),
            nodes: 2,
            node_list: "n[1-2]".into(),
            cpus: 8,
            gpus: 0,
            start: Some(Timestamp::UNIX_EPOCH),
            end: None,
            time_limit_minutes: Some(60),
            seconds: 5400,
            cost: Some(10.8),
            unpriced: None,
        };
        let job = JobCost {
            job_id: "7".into(),
            currency: "USD".into(),
            now: Timestamp::from_second(5400),
            runs: vec![run],
            price_sources: [(
                "c5.xlarge".to_string(),
                PriceSource {
                    on_demand: "price cache",
                    age_seconds: Some(7200),
                    spot: Default::default(),
                },
            )]
            .into(),
            notes: vec![],
        };
        let text = table(&job);
        assert!(
            text.starts_with("JOB  STATE    USER   PROJECT   PARTITION  NODES"),
            "{text}"
        );
        assert!(
            text.contains("2 (n[1-2])") && text.contains("(running)") && text.contains("1:30:00"),
            "{text}"
        );
        assert!(text.contains("Cost so far: 10.80 USD for 1:30:00"), "{text}");
        assert!(
            text.contains("price: c5.xlarge on demand from the price cache (AWS Price List), read 2.0 hours ago."),
            "{text}"
        );
        assert_eq!(duration(90_061), "25:01:01");
    }
}
