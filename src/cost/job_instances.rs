//! The instances a job ran on, for `cost-tags job`: each run's nodes (sacct's NodeList,
//! expanded) and time (start to end, or to now while it runs) joined with the head
//! node's instance timeline ([`crate::cluster::timeline`]). The AWS bill names instances,
//! not nodes, and a dynamic node is a new instance each time it powers up: this join is
//! what ties a job to its lines of the bill.
//!
//! No timeline is no error: a node-mode install without `reconcile --cluster`, or a
//! login node, has none, and the job's cost does not depend on it. What is missing is
//! said in words.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::job::JobCost;
use crate::model::instance_timeline::Timeline;
use crate::model::time::Timestamp;
use crate::slurm::hostlist;

/// One instance that backed one of the job's nodes while a run of it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct JobInstance {
    /// The run's job id (a requeued job has several runs, an array job a run per task).
    pub job_id: String,
    pub node: String,
    pub instance_id: String,
    pub instance_type: String,
    /// `on-demand`, `spot`, ...
    pub lifecycle: String,
    pub zone: String,
    /// When the head node saw this instance back the node, first and last (seconds since
    /// the epoch, UTC).
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// What `cost-tags job` shows of the instances, and why none when none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct JobInstances {
    /// The timeline read; `None` when the settings switch it off.
    pub timeline: Option<PathBuf>,
    pub instances: Vec<JobInstance>,
    /// The job's nodes for which the timeline knows no instance in the run's time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes_without_instance: Vec<String>,
    /// Why no instance is listed, in words, when none is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_instances_because: Option<String>,
    /// Lines of the timeline that could not be read (skipped).
    #[serde(skip_serializing_if = "is_zero")]
    pub timeline_unreadable_lines: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Joins `job`'s runs with the timeline at `timeline` (`None`: switched off), whose
/// open intervals may be up to `rewrite_seconds` older than the service's last pass
/// ([`Timeline::extend_open_to`]).
pub(crate) fn job_instances(job: &JobCost, timeline: Option<&Path>, rewrite_seconds: u32) -> JobInstances {
    let mut shown = JobInstances {
        timeline: timeline.map(Path::to_path_buf),
        instances: Vec::new(),
        nodes_without_instance: Vec::new(),
        no_instances_because: None,
        timeline_unreadable_lines: 0,
    };
    let Some(path) = timeline else {
        shown.no_instances_because =
            Some("no instance timeline: the settings switch it off ([timeline] file = \"\")".into());
        return shown;
    };
    let mut read = match Timeline::read(path) {
        Ok(Some(read)) => read,
        Ok(None) => {
            shown.no_instances_because = Some(format!(
                "no instance timeline at {}: the head node's `cost-tags reconcile --cluster` writes it \
                 (a node-mode install that does not run it, or another node than the head node, has none)",
                path.display()
            ));
            return shown;
        }
        Err(e) => {
            shown.no_instances_because = Some(format!("the instance timeline cannot be read: {e:#}"));
            return shown;
        }
    };
    shown.timeline_unreadable_lines = read.bad_lines.len();
    if let Some(last) = read.last_pass {
        read.extend_open_to(job.now.min(last + i64::from(rewrite_seconds)));
    }
    for run in &job.runs {
        let Some(start) = run.start.filter(|_| run.nodes > 0) else {
            continue;
        };
        let end = run.end.unwrap_or(job.now).max(start);
        let mut nodes = Vec::new();
        if let Err(e) = hostlist::expand(&run.node_list, |n| nodes.push(n.to_string())) {
            shown.nodes_without_instance.push(format!("{} ({e})", run.node_list));
            continue;
        }
        for node in nodes {
            let found = read.on_node(&node, start, end);
            if found.is_empty() && !shown.nodes_without_instance.contains(&node) {
                shown.nodes_without_instance.push(node.clone());
            }
            shown.instances.extend(found.into_iter().map(|i| JobInstance {
                job_id: run.job_id.clone(),
                node: node.clone(),
                instance_id: i.instance_id.clone(),
                instance_type: i.instance_type.clone(),
                lifecycle: i.lifecycle.clone(),
                zone: i.zone.clone(),
                first_seen: i.first_seen,
                last_seen: i.last_seen,
            }));
        }
    }
    if shown.instances.is_empty() {
        shown.no_instances_because = Some(if job.runs.iter().any(|r| r.start.is_some() && r.nodes > 0) {
            format!(
                "the instance timeline {} has no instance for the job's nodes while it ran",
                path.display()
            )
        } else {
            "the job has not run on any node".to_string()
        });
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::job::JobRun;
    use crate::model::instance_timeline::test_support::seen;

    fn run(job_id: &str, node_list: &str, start: i64, end: Option<i64>) -> JobRun {
        JobRun {
            job_id: job_id.into(),
            state: "COMPLETED".into(),
            user: "alice".into(),
            account: "a".into(),
            project: "P".into(),
            partition: "q".into(),
            nodes: 2,
            node_list: node_list.into(),
            cpus: 8,
            gpus: 0,
            start: Some(Timestamp::from_second(start)),
            end: end.map(Timestamp::from_second),
            time_limit_minutes: None,
            seconds: 0,
            cost: None,
            unpriced: None,
        }
    }

    fn job(runs: Vec<JobRun>, now: i64) -> JobCost {
        JobCost {
            job_id: "7".into(),
            currency: "USD".into(),
            now: Timestamp::from_second(now),
            runs,
            price_sources: Default::default(),
            notes: vec![],
        }
    }

    #[test]
    fn each_node_of_each_run_gets_the_instance_that_backed_it_then() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.jsonl");
        let mut t = Timeline::default();
        t.record(
            &[seen("i-1", "q-dy-c5-1"), seen("i-2", "q-dy-c5-2")],
            Timestamp::from_second(100),
        );
        t.record(
            &[seen("i-1", "q-dy-c5-1"), seen("i-2", "q-dy-c5-2")],
            Timestamp::from_second(200),
        );
        t.record(&[seen("i-3", "q-dy-c5-1")], Timestamp::from_second(300));
        std::fs::write(&path, [t.to_bytes(), b"not json\n".to_vec()].concat()).unwrap();

        // Run 7 on both nodes 150..250; requeued, it runs on node 1 since 290.
        let j = job(
            vec![
                run("7", "q-dy-c5-[1-2]", 150, Some(250)),
                run("7", "q-dy-c5-1", 290, None),
            ],
            400,
        );
        let shown = job_instances(&j, Some(&path), 0);
        let got: Vec<(&str, &str)> = shown
            .instances
            .iter()
            .map(|i| (i.node.as_str(), i.instance_id.as_str()))
            .collect();
        assert_eq!(got, [("q-dy-c5-1", "i-1"), ("q-dy-c5-2", "i-2"), ("q-dy-c5-1", "i-3")]);
        assert_eq!(shown.instances[0].lifecycle, "spot");
        assert_eq!(shown.timeline_unreadable_lines, 1);
        assert!(shown.no_instances_because.is_none() && shown.nodes_without_instance.is_empty());

        // Before any pass saw the node: said, not an error.
        let early = job_instances(&job(vec![run("8", "q-dy-c5-9", 0, Some(50))], 400), Some(&path), 0);
        assert!(early.instances.is_empty());
        assert_eq!(early.nodes_without_instance, ["q-dy-c5-9"]);
        assert!(early
            .no_instances_because
            .unwrap()
            .contains("has no instance for the job's nodes"));
    }

    #[test]
    fn an_interval_open_at_the_last_write_lasts_up_to_rewrite_seconds_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.jsonl");
        let mut t = Timeline::default();
        t.record(&[seen("i-1", "n1")], Timestamp::from_second(100));
        std::fs::write(&path, t.to_bytes()).unwrap();
        // Passes at 130..=160 only extended i-1 and did not rewrite the file.
        let j = job(vec![run("7", "n1", 150, Some(160))], 170);
        assert!(
            job_instances(&j, Some(&path), 0).instances.is_empty(),
            "read as written"
        );
        let shown = job_instances(&j, Some(&path), 300);
        assert_eq!(shown.instances.len(), 1);
        assert_eq!(shown.instances[0].instance_id, "i-1");
        // Never past the rewrite period: the service may have stopped since.
        let late = job(vec![run("7", "n1", 450, Some(460))], 900);
        assert!(job_instances(&late, Some(&path), 300).instances.is_empty());
    }

    #[test]
    fn no_timeline_is_said_plainly() {
        let dir = tempfile::tempdir().unwrap();
        let j = job(vec![run("7", "n1", 0, Some(10))], 20);
        let missing = job_instances(&j, Some(&dir.path().join("timeline.jsonl")), 0);
        assert!(missing.instances.is_empty());
        assert!(
            missing
                .no_instances_because
                .unwrap()
                .contains("no instance timeline at"),
            "a node mode install"
        );
        let off = job_instances(&j, None, 0);
        assert!(off.no_instances_because.unwrap().contains("switch it off"));
    }
}
