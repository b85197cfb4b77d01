//! Writing the instance timeline ([`crate::model::instance_timeline`]) after each
//! convergence (`reconcile --cluster`, each pass of `--follow`): the instances of the
//! pass that back Slurm nodes, matched as the tags are.
//!
//! The file is rewritten whole and atomically ([`atomic_file`]), in a directory only root
//! can change ([`trusted_dir`]), mode 0644: it names instances and nodes, no user nor job,
//! and `cost-tags job` runs as any user. Passes never overlap (`converge.lock`), so
//! there is one writer. A line that cannot be read is skipped and counted, never fatal,
//! and kept as it is when the file is rewritten: the other lines are used, and nothing
//! is destroyed that an administrator may want to look at.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::aws::ec2::ClusterInstance;
use crate::cluster::plan::{is_compute, NodeIndex};
use crate::config::Settings;
use crate::model::instance_timeline::{Recorded, Sighting, Timeline};
use crate::model::time::Timestamp;
use crate::slurm::scontrol::SlurmNode;
use crate::state::{atomic_file, trusted_dir};

/// What writing the timeline after a pass did, for the pass's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Updated {
    pub recorded: Recorded,
    /// Dropped for being older than the retention.
    pub dropped: usize,
    /// Intervals in the file now.
    pub intervals: usize,
    /// Lines that could not be read (kept as they are).
    pub bad_lines: usize,
    /// Whether the file was replaced (see [`TimelineFile::rewrite_seconds`]).
    pub rewritten: bool,
}

/// The instances of a pass that back a Slurm node (head and login nodes left out), each
/// matched to its node as the tags are.
pub(crate) fn sightings(instances: &[ClusterInstance], nodes: &[SlurmNode]) -> Vec<Sighting> {
    let index = NodeIndex::new(nodes);
    instances
        .iter()
        .filter(|i| is_compute(i))
        .filter_map(|i| {
            index.node_of(i).map(|n| Sighting {
                instance_id: i.instance_id.clone(),
                node: n.name.clone(),
                instance_type: i.instance_type.clone(),
                lifecycle: i.lifecycle.clone(),
                zone: i.zone.clone(),
            })
        })
        .collect()
}

/// Where a pass records the timeline, and for how long it keeps an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimelineFile {
    pub path: PathBuf,
    pub retention_days: u32,
    /// A pass that opens, closes and drops nothing only moves `last_seen` forward: the
    /// file is then rewritten at most this often (seconds), not at every pass
    /// (`[timeline] rewrite_seconds`).
    pub rewrite_seconds: u32,
}

impl TimelineFile {
    /// The timeline the settings name ([`Settings::timeline_file`]); `None` when off.
    pub(crate) fn from_settings(settings: &Settings) -> Option<TimelineFile> {
        settings.timeline_file().map(|path| TimelineFile {
            path,
            retention_days: settings.timeline.retention_days,
            rewrite_seconds: settings.timeline.rewrite_seconds,
        })
    }

    /// After a pass: reads the timeline (none yet: an empty one), records what the pass
    /// saw at `now`, drops what is older than the retention, and replaces the file. On
    /// an error the file is as it was.
    pub(crate) fn update(&self, seen: &[Sighting], now: Timestamp) -> Result<Updated> {
        let path = &self.path;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        trusted_dir::prepare(dir).context("the timeline's directory")?;
        let mut timeline = Timeline::read(path)?.unwrap_or_default();
        let written_at = timeline.last_pass;
        let recorded = timeline.record(seen, now);
        let dropped = timeline.drop_older_than(self.retention_days, now);
        let changed = recorded.opened + recorded.closed + dropped > 0;
        let due = written_at.is_none_or(|at| now - at >= i64::from(self.rewrite_seconds));
        if changed || due {
            atomic_file::replace(path, &timeline.to_bytes(), 0o644)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(Updated {
            recorded,
            dropped,
            intervals: timeline.intervals.len(),
            bad_lines: timeline.bad_lines.len(),
            rewritten: changed || due,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::instance_timeline::test_support::{seen, spans};

    #[test]
    fn a_pass_that_only_extends_rewrites_the_file_at_most_every_rewrite_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.jsonl");
        let file = TimelineFile {
            path: path.clone(),
            retention_days: 400,
            rewrite_seconds: 300,
        };
        assert!(
            file.update(&[seen("i-1", "n1")], Timestamp::from_second(100))
                .unwrap()
                .rewritten,
            "opened"
        );
        let u = file.update(&[seen("i-1", "n1")], Timestamp::from_second(130)).unwrap();
        assert_eq!((u.recorded.extended, u.rewritten), (1, false));
        assert_eq!(
            spans(&Timeline::read(&path).unwrap().unwrap()),
            [("i-1", "n1", 100, 100)]
        );
        // Read back, the interval is still open: the next pass extends it.
        assert!(
            !file
                .update(&[seen("i-1", "n1")], Timestamp::from_second(399))
                .unwrap()
                .rewritten
        );
        assert!(
            file.update(&[seen("i-1", "n1")], Timestamp::from_second(400))
                .unwrap()
                .rewritten,
            "due"
        );
        assert_eq!(
            spans(&Timeline::read(&path).unwrap().unwrap()),
            [("i-1", "n1", 100, 400)]
        );
        // A change is written at once: n2 opens, then i-1 is gone (it ends at 410).
        assert!(
            file.update(&[seen("i-1", "n1"), seen("i-2", "n2")], Timestamp::from_second(410))
                .unwrap()
                .rewritten
        );
        let u = file.update(&[seen("i-2", "n2")], Timestamp::from_second(420)).unwrap();
        assert_eq!((u.recorded.closed, u.rewritten), (1, true));
        assert_eq!(
            spans(&Timeline::read(&path).unwrap().unwrap()),
            [("i-1", "n1", 100, 410), ("i-2", "n2", 410, 420)]
        );
    }

    #[test]
    fn update_creates_extends_and_replaces_the_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool/timeline.jsonl");
        assert_eq!(Timeline::read(&path).unwrap(), None);
        let file = TimelineFile {
            path: path.clone(),
            retention_days: 400,
            rewrite_seconds: 0,
        };
        let u = file.update(&[seen("i-1", "n1")], Timestamp::from_second(100)).unwrap();
        assert_eq!((u.recorded.opened, u.intervals), (1, 1));
        let u = file.update(&[seen("i-1", "n1")], Timestamp::from_second(130)).unwrap();
        assert_eq!((u.recorded.opened, u.recorded.extended, u.intervals), (0, 1, 1));
        let t = Timeline::read(&path).unwrap().unwrap();
        assert_eq!(spans(&t), [("i-1", "n1", 100, 130)]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("timeline.jsonl")]);
    }

    #[test]
    fn only_compute_instances_that_are_slurm_nodes_are_sighted() {
        let node = |name: &str, addr: &str| SlurmNode {
            name: name.into(),
            addr: addr.into(),
            hostname: name.into(),
        };
        let instance = |id: &str, ip: &str, kind: &str| ClusterInstance {
            instance_id: id.into(),
            private_ip: Some(ip.into()),
            tags: [("parallelcluster:node-type".to_string(), kind.to_string())].into(),
            instance_type: "c5.large".into(),
            lifecycle: "on-demand".into(),
            zone: "eu-west-1b".into(),
            ..ClusterInstance::default()
        };
        let nodes = [node("q-dy-c5-1", "10.0.0.1")];
        let instances = [
            instance("i-1", "10.0.0.1", "Compute"),
            instance("i-head", "10.0.0.1", "HeadNode"),
            instance("i-2", "10.0.0.2", "Compute"),
        ];
        let s = sightings(&instances, &nodes);
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].instance_id.as_str(), s[0].node.as_str(), s[0].zone.as_str()),
            ("i-1", "q-dy-c5-1", "eu-west-1b")
        );
    }
}
