//! The instance timeline, as data: which EC2 instance backed which Slurm node, and when.
//! The AWS bill (CUR, Cost Explorer by resource) names instances; Slurm's accounting names
//! nodes, and a ParallelCluster node name is reused by a new instance each time its
//! dynamic node powers up again. The head node's convergence records what each pass saw
//! ([`crate::cluster::timeline`] writes the file); `cost-tags job` reads it to join a
//! job's nodes and time with the instances (a shared noun, so it lives on the ground
//! floor).
//!
//! The file (`[timeline] file`, `timeline.jsonl` in `state_dir` by default) is JSON
//! Lines: a header `{"format":1,"last_pass":T}`, then one [`Interval`] a line; times are
//! [`Timestamp`]s, written as seconds since the epoch (UTC). It stays
//! small: one line per (instance, node) interval, whose `last_seen` is moved forward in
//! place while the same instance backs the same node. An interval is still open when it
//! was seen by the last pass the header names; an instance missing from a pass (stopped,
//! replaced, gone) closes its interval, and if it comes back it gets a new one, so a
//! stopped and restarted instance is not billed to the jobs of the gap. Intervals last
//! seen longer ago than the retention are dropped when the file is rewritten.
//!
//! A line that cannot be read is skipped and counted, never fatal, and kept as it is
//! when the file is rewritten: the other lines are used, and nothing is destroyed that
//! an administrator may want to look at.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::time::Timestamp;

/// The version of the file's layout: a newer one is neither misread nor overwritten.
pub const FORMAT: u32 = 1;

const DAY: i64 = 86_400;

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: u32,
    /// When the last pass that wrote the file saw the cluster's instances.
    last_pass: Option<Timestamp>,
}

/// An instance backing a Slurm node, as one pass saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub instance_id: String,
    pub node: String,
    pub instance_type: String,
    /// `on-demand`, `spot`, ... ([`crate::aws::ec2::lifecycle_name`]).
    pub lifecycle: String,
    pub zone: String,
}

/// One instance backing one node, from the first pass that saw it to the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub instance_id: String,
    pub node: String,
    pub instance_type: String,
    pub lifecycle: String,
    pub zone: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

impl Interval {
    fn is_valid(&self) -> bool {
        !self.instance_id.is_empty() && !self.node.is_empty() && self.first_seen <= self.last_seen
    }

    /// Whether it overlaps `from..=to`.
    pub fn overlaps(&self, from: Timestamp, to: Timestamp) -> bool {
        self.first_seen <= to && self.last_seen >= from
    }
}

/// A line that could not be read: its number (from 1) and bytes, kept as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub number: usize,
    pub bytes: Vec<u8>,
}

/// The whole file, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    pub last_pass: Option<Timestamp>,
    pub intervals: Vec<Interval>,
    pub bad_lines: Vec<BadLine>,
}

/// What one pass changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Intervals opened: an instance seen backing a node for the first time (again).
    pub opened: usize,
    /// Intervals whose `last_seen` moved forward.
    pub extended: usize,
    /// Intervals the last pass saw that this one did not: they end at the last pass.
    pub closed: usize,
}

impl Timeline {
    /// Reads the file's bytes. Never fails on a line: what cannot be read (bad UTF-8
    /// included) is a [`BadLine`], kept byte for byte. Fails only on a header of a newer
    /// format, which this version must not rewrite.
    pub fn parse(bytes: &[u8]) -> Result<Timeline> {
        let mut timeline = Timeline::default();
        for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let bad = || BadLine {
                number: n + 1,
                bytes: raw.to_vec(),
            };
            let Ok(line) = std::str::from_utf8(raw) else {
                timeline.bad_lines.push(bad());
                continue;
            };
            if n == 0 {
                if let Ok(header) = serde_json::from_str::<Header>(line) {
                    if header.format != FORMAT {
                        bail!(
                            "the timeline is of format {} (this cost-tags reads format {FORMAT}): left as it is",
                            header.format
                        );
                    }
                    timeline.last_pass = header.last_pass;
                    continue;
                }
            }
            match serde_json::from_str::<Interval>(line) {
                Ok(interval) if interval.is_valid() => timeline.intervals.push(interval),
                _ => timeline.bad_lines.push(bad()),
            }
        }
        Ok(timeline)
    }

    /// Reads `path`; `None` when there is no such file (no convergence ran here: a node
    /// mode install, or a node that is not the head node).
    pub fn read(path: &Path) -> Result<Option<Timeline>> {
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Timeline::parse(&bytes)
            .map(Some)
            .with_context(|| format!("{}", path.display()))
    }

    /// Records what a pass saw at `now`: an interval that was open (seen by the last
    /// pass) and is seen again is extended to `now`; any other sighting opens an interval.
    /// A clock that went back is taken as standing still, so no interval ends before it
    /// starts.
    pub fn record(&mut self, seen: &[Sighting], now: Timestamp) -> Recorded {
        let now = self.last_pass.map_or(now, |last| now.max(last));
        let mut open: HashMap<(String, String), usize> = HashMap::new();
        if let Some(last) = self.last_pass {
            for (i, interval) in self.intervals.iter().enumerate() {
                if interval.last_seen == last {
                    open.insert((interval.instance_id.clone(), interval.node.clone()), i);
                }
            }
        }
        let mut recorded = Recorded::default();
        let was_open = open.len();
        let mut seen_again = std::collections::HashSet::new();
        for s in seen {
            let key = (s.instance_id.clone(), s.node.clone());
            match open.get(&key) {
                Some(&i) => {
                    seen_again.insert(i);
                    let interval = &mut self.intervals[i];
                    if interval.last_seen != now {
                        interval.last_seen = now;
                        recorded.extended += 1;
                    }
                }
                None => {
                    open.insert(key, self.intervals.len());
                    self.intervals.push(Interval {
                        instance_id: s.instance_id.clone(),
                        node: s.node.clone(),
                        instance_type: s.instance_type.clone(),
                        lifecycle: s.lifecycle.clone(),
                        zone: s.zone.clone(),
                        first_seen: now,
                        last_seen: now,
                    });
                    recorded.opened += 1;
                }
            }
        }
        recorded.closed = was_open - seen_again.len();
        self.last_pass = Some(now);
        recorded
    }

    /// Drops the intervals last seen more than `retention_days` before `now`; returns
    /// how many.
    pub fn drop_older_than(&mut self, retention_days: u32, now: Timestamp) -> usize {
        let horizon = now - i64::from(retention_days) * DAY;
        let before = self.intervals.len();
        self.intervals.retain(|i| i.last_seen >= horizon);
        before - self.intervals.len()
    }

    /// For a reader: the intervals still open at the file's last write are taken to last
    /// until `until` (never before they were last seen). A pass that only extends does
    /// not rewrite the file (`[timeline] rewrite_seconds`), so an open interval was seen
    /// up to the service's latest pass, which the file does not hold: a reader passes
    /// `min(now, last_pass + rewrite_seconds)`.
    pub fn extend_open_to(&mut self, until: Timestamp) {
        let Some(last) = self.last_pass else { return };
        for interval in self.intervals.iter_mut().filter(|i| i.last_seen == last) {
            interval.last_seen = until.max(last);
        }
    }

    /// The intervals in which an instance backed `node` during `from..=to`.
    pub fn on_node(&self, node: &str, from: Timestamp, to: Timestamp) -> Vec<&Interval> {
        self.intervals
            .iter()
            .filter(|i| i.node == node && i.overlaps(from, to))
            .collect()
    }

    /// The file's bytes: the header, the intervals oldest first, then the lines that
    /// could not be read, as they were.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            format: FORMAT,
            last_pass: self.last_pass,
        };
        let mut sorted: Vec<&Interval> = self.intervals.iter().collect();
        sorted.sort_by(|a, b| (a.first_seen, &a.node, &a.instance_id).cmp(&(b.first_seen, &b.node, &b.instance_id)));
        let mut out = Vec::new();
        for line in std::iter::once(serde_json::to_string(&header))
            .chain(sorted.into_iter().map(serde_json::to_string))
            .flatten()
        {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        for bad in &self.bad_lines {
            out.extend_from_slice(&bad.bytes);
            out.push(b'\n');
        }
        out
    }
}

/// For the unit tests here and of the timeline's writer and readers.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Sighting, Timeline};

    /// A spot c5.xlarge in us-east-1a seen backing `node`.
    pub(crate) fn seen(instance: &str, node: &str) -> Sighting {
        Sighting {
            instance_id: instance.into(),
            node: node.into(),
            instance_type: "c5.xlarge".into(),
            lifecycle: "spot".into(),
            zone: "us-east-1a".into(),
        }
    }

    /// Each interval as (instance, node, first seen, last seen).
    pub(crate) fn spans(t: &Timeline) -> Vec<(&str, &str, i64, i64)> {
        t.intervals
            .iter()
            .map(|i| {
                (
                    i.instance_id.as_str(),
                    i.node.as_str(),
                    i.first_seen.as_second(),
                    i.last_seen.as_second(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{seen, spans};
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second)
    }

    #[test]
    fn the_same_instance_on_the_same_node_extends_one_interval() {
        let mut t = Timeline::default();
        let r = t.record(&[seen("i-1", "n1"), seen("i-2", "n2")], at(100));
        assert_eq!((r.opened, r.extended), (2, 0));
        let r = t.record(&[seen("i-1", "n1"), seen("i-2", "n2")], at(130));
        assert_eq!((r.opened, r.extended), (0, 2));
        t.record(&[seen("i-1", "n1"), seen("i-2", "n2"), seen("i-1", "n1")], at(160));
        assert_eq!(spans(&t), [("i-1", "n1", 100, 160), ("i-2", "n2", 100, 160)]);
        assert_eq!(t.last_pass, Some(at(160)));
    }

    #[test]
    fn a_replaced_instance_opens_a_second_interval_and_closes_the_first() {
        let mut t = Timeline::default();
        t.record(&[seen("i-1", "n1")], at(100));
        t.record(&[seen("i-1", "n1")], at(130));
        // n1 powered down, then up again on a new instance.
        t.record(&[], at(160));
        t.record(&[seen("i-9", "n1")], at(190));
        t.record(&[seen("i-9", "n1")], at(220));
        assert_eq!(spans(&t), [("i-1", "n1", 100, 130), ("i-9", "n1", 190, 220)]);
        assert_eq!(t.on_node("n1", at(0), at(140)).len(), 1);
        assert_eq!(t.on_node("n1", at(125), at(195)).len(), 2);
        assert_eq!(t.on_node("n1", at(140), at(180)).len(), 0, "between the two: nobody");
        assert!(t.on_node("n2", at(0), at(999)).is_empty());
    }

    #[test]
    fn an_instance_missing_from_a_pass_gets_a_new_interval_when_it_comes_back() {
        // A stopped and restarted instance keeps its id; the gap is not its.
        let mut t = Timeline::default();
        t.record(&[seen("i-1", "n1")], at(100));
        t.record(&[], at(130));
        t.record(&[seen("i-1", "n1")], at(160));
        assert_eq!(spans(&t), [("i-1", "n1", 100, 100), ("i-1", "n1", 160, 160)]);
    }

    #[test]
    fn a_clock_that_went_back_never_makes_an_interval_end_before_it_starts() {
        let mut t = Timeline::default();
        t.record(&[seen("i-1", "n1")], at(100));
        t.record(&[seen("i-1", "n1"), seen("i-2", "n2")], at(50));
        assert_eq!(spans(&t), [("i-1", "n1", 100, 100), ("i-2", "n2", 100, 100)]);
        assert!(t.intervals.iter().all(Interval::is_valid));
    }

    #[test]
    fn intervals_older_than_the_retention_are_dropped() {
        let mut t = Timeline::default();
        t.record(&[seen("i-old", "n1")], at(0));
        t.record(&[seen("i-new", "n1")], at(10 * DAY));
        assert_eq!(t.drop_older_than(400, at(400 * DAY)), 0, "exactly 400 days: kept");
        assert_eq!(t.drop_older_than(400, at(400 * DAY + 1)), 1);
        assert_eq!(spans(&t), [("i-new", "n1", 10 * DAY, 10 * DAY)]);
    }

    #[test]
    fn the_text_reads_back_and_bad_lines_are_skipped_counted_and_kept() {
        let mut t = Timeline::default();
        t.record(&[seen("i-2", "n2")], at(200));
        t.record(&[seen("i-2", "n2"), seen("i-1", "n1")], at(230));
        let text = String::from_utf8(t.to_bytes()).unwrap();
        assert!(text.starts_with("{\"format\":1,\"last_pass\":230}\n"), "{text}");
        let back = Timeline::parse(text.as_bytes()).unwrap();
        assert_eq!(back.intervals.len(), 2);
        assert_eq!(back.last_pass, Some(at(230)));
        assert_eq!(back.intervals[0].lifecycle, "spot");

        let lines: Vec<&str> = text.lines().collect();
        let mut damaged = format!(
            "{}\n{{\"instance_id\":\"i-3\",\"no\n\n{}\n{}\n",
            lines[0],
            lines[1],
            lines[2].replace("\"first_seen\":230", "\"first_seen\":999")
        )
        .into_bytes();
        // A node name cut in the middle of a UTF-8 character.
        let mut cut = lines[1].replace("\"n2\"", "\"n\u{e9}\"").into_bytes();
        let e9 = cut.iter().position(|&b| b == 0xc3).unwrap();
        cut.remove(e9 + 1);
        damaged.extend_from_slice(&cut);
        damaged.push(b'\n');
        let read = Timeline::parse(&damaged).unwrap();
        assert_eq!(spans(&read), [("i-2", "n2", 200, 230)]);
        let numbers: Vec<usize> = read.bad_lines.iter().map(|b| b.number).collect();
        assert_eq!(numbers, [2, 5, 6], "a cut line, one ending before it starts, bad UTF-8");
        let rewritten = read.to_bytes();
        assert!(String::from_utf8_lossy(&rewritten).contains("{\"instance_id\":\"i-3\",\"no\n"));
        assert!(
            rewritten.ends_with(&[cut.as_slice(), b"\n"].concat()),
            "kept byte for byte"
        );
        assert_eq!(Timeline::parse(&rewritten).unwrap().bad_lines.len(), 3);

        // A damaged header is a bad line: nothing is open, the rest is read.
        let read = Timeline::parse(text.replacen("{\"format\"", "{\"form", 1).as_bytes()).unwrap();
        assert_eq!(
            (read.last_pass, read.intervals.len(), read.bad_lines.len()),
            (None, 2, 1)
        );
        // A newer format is neither read nor rewritten.
        assert!(Timeline::parse(text.replacen("\"format\":1", "\"format\":2", 1).as_bytes()).is_err());
    }
}
