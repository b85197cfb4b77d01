//! From the jobs on a node to the tags its EC2 instance must carry. The tag set is always
//! recomputed from the whole ledger, never patched, so it cannot drift from the jobs that
//! really run. Values of several jobs are sorted, de-duplicated and joined; every value is
//! made valid for EC2 whatever the job's user wrote.

use std::collections::BTreeSet;

use crate::config::TagSettings;
use crate::model::job::Job;
use crate::model::tag_set::{is_tag_char, TagMap, MAX_VALUE_LEN};

/// One job's value is cut to this, so that one item and a `+N more` marker always fit.
const MAX_ITEM_LEN: usize = 200;

/// One job's value made tag-safe: other characters become `_`, surrounding spaces go,
/// and it is cut to a length that leaves room for the `+N more` marker.
pub(crate) fn sanitize_item(raw: &str) -> String {
    let cleaned: String = raw
        .trim()
        .chars()
        .map(|c| if is_tag_char(c) { c } else { '_' })
        .take(MAX_ITEM_LEN)
        .collect();
    cleaned.trim().to_string()
}

/// The instance's tags for `jobs`: for each key switched on, the sorted, unique,
/// sanitized values of the jobs, joined with the separator. Keys with no value are left
/// out (they are to be deleted).
pub(crate) fn desired_tags(jobs: &[Job], settings: &TagSettings) -> TagMap {
    let mut tags = TagMap::new();
    for (field, key) in settings.named_keys() {
        let values: BTreeSet<SortKey> = jobs
            .iter()
            .map(|job| sanitize_item(job.field(field)))
            .filter(|v| !v.is_empty())
            .map(SortKey)
            .collect();
        if !values.is_empty() {
            let items: Vec<String> = values.into_iter().map(|k| k.0).collect();
            tags.insert(key.to_string(), join_within_limit(&items, &settings.separator));
        }
    }
    tags
}

/// Every key cost-tags manages, whether or not it currently has a value.
pub(crate) fn managed_keys(settings: &TagSettings) -> Vec<String> {
    settings.named_keys().map(|(_, key)| key.to_string()).collect()
}

/// Joins `items` with `sep`; when the result would pass EC2's 256-character limit, the
/// list is cut at a whole item and ends with `+N more`.
fn join_within_limit(items: &[String], sep: &str) -> String {
    let full = items.join(sep);
    if full.len() <= MAX_VALUE_LEN {
        return full;
    }
    let mut kept = String::new();
    for (i, item) in items.iter().enumerate() {
        let candidate_len = kept.len() + if i == 0 { 0 } else { sep.len() } + item.len();
        let marker = format!("{sep}+{} more", items.len() - i - 1);
        if candidate_len + marker.len() > MAX_VALUE_LEN {
            return format!("{kept}{sep}+{} more", items.len() - i);
        }
        if i > 0 {
            kept.push_str(sep);
        }
        kept.push_str(item);
    }
    kept
}

/// Orders job ids numerically (`9` before `10`) and everything else as text.
#[derive(PartialEq, Eq)]
struct SortKey(String);

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match (numeric(&self.0), numeric(&other.0)) {
            (true, true) => (self.0.len(), &self.0).cmp(&(other.0.len(), &other.0)),
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            (false, false) => self.0.cmp(&other.0),
        }
    }
}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tag_set::{is_value_text, TagChange};

    fn job(id: &str, user: &str, project: &str) -> Job {
        Job {
            id: id.into(),
            user: user.into(),
            project: project.into(),
            partition: "compute".into(),
            account: String::new(),
            cluster: "c1".into(),
        }
    }

    fn defaults() -> TagSettings {
        TagSettings::default()
    }

    #[test]
    fn one_job_gives_the_three_default_keys() {
        let tags = desired_tags(&[job("42", "alice", "ProjectA")], &defaults());
        assert_eq!(
            tags,
            TagMap::from([
                ("aws-parallelcluster-jobid".into(), "42".into()),
                ("aws-parallelcluster-project".into(), "ProjectA".into()),
                ("aws-parallelcluster-username".into(), "alice".into()),
            ])
        );
    }

    #[test]
    fn shared_node_values_are_sorted_unique_joined() {
        let jobs = [
            job("10", "bob", "ProjectB"),
            job("9", "alice", "ProjectA"),
            job("11", "alice", "ProjectA"),
        ];
        let tags = desired_tags(&jobs, &defaults());
        assert_eq!(tags["aws-parallelcluster-jobid"], "9 10 11");
        assert_eq!(tags["aws-parallelcluster-project"], "ProjectA ProjectB");
        assert_eq!(tags["aws-parallelcluster-username"], "alice bob");
        // Order of the ledger does not matter.
        let mut reversed = jobs.clone();
        reversed.reverse();
        assert_eq!(desired_tags(&reversed, &defaults()), tags);
    }

    #[test]
    fn optional_keys_disabled_keys_and_separator() {
        let settings = TagSettings {
            partition: "aws-parallelcluster-partition".into(),
            cluster: "cluster".into(),
            user: String::new(),
            separator: "/".into(),
            ..defaults()
        };
        let tags = desired_tags(&[job("1", "a", "P"), job("2", "b", "Q")], &settings);
        assert_eq!(tags["aws-parallelcluster-jobid"], "1/2");
        assert_eq!(tags["aws-parallelcluster-partition"], "compute");
        assert_eq!(tags["cluster"], "c1");
        assert!(!tags.contains_key("aws-parallelcluster-username"));
        // account is switched off by default and empty: neither key appears.
        assert_eq!(tags.len(), 4);
    }

    #[test]
    fn hostile_values_become_valid() {
        let tags = desired_tags(&[job("1", "al ice", "'; rm -rf / $(id) `x` é\n")], &defaults());
        let project = &tags["aws-parallelcluster-project"];
        assert!(is_value_text(project), "{project}");
        assert_eq!(project, "__ rm -rf / __id_ _x_ _");
        let long = desired_tags(&[job("1", "u", &"p".repeat(5000))], &defaults());
        assert!(long["aws-parallelcluster-project"].len() <= MAX_VALUE_LEN);
    }

    #[test]
    fn long_lists_are_cut_at_a_whole_item_and_marked() {
        let jobs: Vec<Job> = (1..=100)
            .map(|i| job(&format!("{}", 1_000_000 + i), "u", "P"))
            .collect();
        let ids = &desired_tags(&jobs, &defaults())["aws-parallelcluster-jobid"];
        assert!(ids.len() <= MAX_VALUE_LEN, "{}", ids.len());
        let (kept, marker) = ids.rsplit_once(" +").unwrap();
        let kept: Vec<&str> = kept.split(' ').collect();
        assert!(kept.iter().all(|id| id.len() == 7), "an item was cut: {ids}");
        assert_eq!(marker, format!("{} more", 100 - kept.len()));
        assert_eq!(kept[0], "1000001");
    }

    #[test]
    fn a_single_long_item_still_fits_with_its_marker() {
        let jobs = vec![job("1", "u", &"a".repeat(300)), job("2", "u", &"b".repeat(300))];
        let project = &desired_tags(&jobs, &defaults())["aws-parallelcluster-project"];
        assert!(project.len() <= MAX_VALUE_LEN);
        assert!(project.ends_with(" +1 more"), "{project}");
    }

    #[test]
    fn change_deletes_only_managed_keys_without_value() {
        let settings = TagSettings {
            account: "acct".into(),
            ..defaults()
        };
        let desired = desired_tags(&[job("1", "u", "P")], &settings);
        let change = TagChange::new(&desired, &managed_keys(&settings));
        assert_eq!(change.create, desired);
        assert_eq!(change.delete, vec!["acct".to_string()]);
        let empty = TagChange::new(&TagMap::new(), &managed_keys(&settings));
        assert!(empty.create.is_empty());
        assert_eq!(empty.delete.len(), 4);
    }
}
