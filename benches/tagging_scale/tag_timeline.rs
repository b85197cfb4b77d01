//! When each instance's tags became right, told from the requests the throttling front
//! relayed to moto ([`support::aws_proxy::Relayed`]) rather than by asking moto: moto
//! takes seconds to describe 1,000 instances, so polling it would both blur the times
//! and slow the run being measured. moto applies a CreateTags or DeleteTags before it
//! answers, so the moment the front got moto's answer is when the tags were there.
//! Replays CreateTags (sets each tag) and DeleteTags (Key and Value: only where the
//! value matches; Key alone: whatever the value), starting from no cost tag.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::support::aws_proxy::Relayed;

pub type Tags = BTreeMap<String, String>;

/// What the replay found.
pub struct Timeline {
    /// When every instance first had `first_keys` right, since the start.
    pub first_keys_right: Option<Duration>,
    /// When every instance first had every wanted tag right (and no other cost tag).
    pub all_right: Option<Duration>,
    /// (since the start, instances fully right) after each relayed tag call.
    steps: Vec<(Duration, usize)>,
}

impl Timeline {
    /// Replays `journal` (tag calls answered 200) from `start`; `want` is each
    /// instance's tags; `first_keys` the keys that matter first (project and user).
    pub fn replay(journal: &[Relayed], start: Instant, want: &HashMap<String, Tags>, first_keys: &[&str]) -> Timeline {
        let mut have: HashMap<&str, Tags> = want.keys().map(|id| (id.as_str(), Tags::new())).collect();
        let first_right = |id: &str, tags: &Tags| first_keys.iter().all(|k| tags.get(*k) == want[id].get(*k));
        let (mut n_first, mut n_all) = (0, 0);
        let mut timeline = Timeline {
            first_keys_right: None,
            all_right: None,
            steps: Vec::new(),
        };
        for call in journal.iter().filter(|c| c.status == 200) {
            let Some((ids, tags)) = parse_tag_call(&call.body) else {
                continue;
            };
            for id in &ids {
                let Some(current) = have.get_mut(id.as_str()) else {
                    continue;
                };
                let (was_first, was_all) = (first_right(id, current), *current == want[id]);
                for (key, value) in &tags {
                    match (call.action.as_str(), value) {
                        ("CreateTags", Some(v)) => {
                            current.insert(key.clone(), v.clone());
                        }
                        ("DeleteTags", Some(v)) if current.get(key) == Some(v) => {
                            current.remove(key);
                        }
                        ("DeleteTags", None) => {
                            current.remove(key);
                        }
                        _ => {}
                    }
                }
                let (is_first, is_all) = (first_right(id, current), *current == want[id]);
                n_first = n_first + usize::from(is_first) - usize::from(was_first);
                n_all = n_all + usize::from(is_all) - usize::from(was_all);
            }
            let at = call.answered.saturating_duration_since(start);
            if n_first == want.len() && timeline.first_keys_right.is_none() {
                timeline.first_keys_right = Some(at);
            }
            if n_all == want.len() && timeline.all_right.is_none() {
                timeline.all_right = Some(at);
            }
            timeline.steps.push((at, n_all));
        }
        timeline
    }

    /// Instances fully right at `at` after the start.
    pub fn right_at(&self, at: Duration) -> usize {
        self.steps
            .iter()
            .take_while(|(t, _)| *t <= at)
            .last()
            .map_or(0, |(_, n)| *n)
    }
}

/// The instance ids of a tag call, and its tags (a DeleteTags tag may have no value).
type TagCall = (Vec<String>, Vec<(String, Option<String>)>);

/// The instance ids and the (key, value) tags of a CreateTags or DeleteTags form body
/// (`ResourceId.1=i-1&Tag.1.Key=k&Tag.1.Value=v`); None for any other action.
fn parse_tag_call(body: &str) -> Option<TagCall> {
    let (mut ids, mut keys, mut values) = (Vec::new(), BTreeMap::new(), BTreeMap::new());
    let mut action = None;
    for pair in body.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (url_decode(k), url_decode(v));
        if k == "Action" {
            action = Some(v);
        } else if k.starts_with("ResourceId.") {
            ids.push(v);
        } else if let Some(rest) = k.strip_prefix("Tag.") {
            match rest.split_once('.') {
                Some((n, "Key")) => {
                    keys.insert(n.to_string(), v);
                }
                Some((n, "Value")) => {
                    values.insert(n.to_string(), v);
                }
                _ => {}
            }
        }
    }
    matches!(action.as_deref(), Some("CreateTags" | "DeleteTags")).then(|| {
        let tags = keys
            .into_iter()
            .map(|(n, key)| (key, values.get(&n).cloned()))
            .collect();
        (ids, tags)
    })
}

/// application/x-www-form-urlencoded decoding: `+` is a space, `%XX` a byte.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
