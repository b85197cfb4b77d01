//! The tag set: the tags cost-tags puts on an instance (key -> value), EC2's rules for
//! keys and values, the job fields a tag can carry, and the change that brings an
//! instance's tags to a desired set. What the tags of given jobs are is node policy
//! ([`crate::node::tags`]); this is what every folder that reads or writes tags shares.

use std::collections::BTreeMap;

/// Tag key -> value.
pub type TagMap = BTreeMap<String, String>;

/// EC2's limit on a tag value.
pub const MAX_VALUE_LEN: usize = 256;
/// EC2's limit on a tag key.
pub const MAX_KEY_LEN: usize = 127;

/// Characters EC2 accepts in tag keys and values everywhere (also in services that are
/// stricter than EC2 itself): ASCII letters, digits, space and `+ - = . _ : / @`.
pub fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " +-=._:/@".contains(c)
}

/// Whether `s` uses only tag-safe characters.
pub fn is_value_text(s: &str) -> bool {
    s.chars().all(is_tag_char)
}

/// Checks a configured tag key against EC2's rules.
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.len() > MAX_KEY_LEN {
        return Err(format!("tag key {key:?} is longer than {MAX_KEY_LEN} characters"));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(format!("tag key {key:?} starts with `aws:`, which AWS reserves"));
    }
    if key.trim() != key || !is_value_text(key) {
        return Err(format!(
            "tag key {key:?} must use only letters, digits, inner spaces and + - = . _ : / @"
        ));
    }
    Ok(())
}

/// A job attribute that can become a tag: one per key of `[tags]`. An enum, so that
/// every place that maps a field to its value covers every field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TagField {
    Project,
    User,
    JobId,
    Partition,
    Account,
    Cluster,
}

impl TagField {
    /// Its key's name in `[tags]`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            TagField::Project => "project",
            TagField::User => "user",
            TagField::JobId => "job_id",
            TagField::Partition => "partition",
            TagField::Account => "account",
            TagField::Cluster => "cluster",
        }
    }
}

/// The EC2 calls that turn whatever the instance has into `desired`: one CreateTags with
/// every desired key, and a DeleteTags (by key only) for managed keys with no value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagChange {
    pub create: TagMap,
    pub delete: Vec<String>,
}

impl TagChange {
    /// `managed`: every key cost-tags manages (what is not desired among them goes).
    pub fn new(desired: &TagMap, managed: &[String]) -> TagChange {
        TagChange {
            create: desired.clone(),
            delete: managed.iter().filter(|k| !desired.contains_key(*k)).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert!(validate_key("aws-parallelcluster-project").is_ok());
        assert!(validate_key("AWS:x").is_err());
        assert!(validate_key(&"k".repeat(128)).is_err());
        assert!(validate_key("a;b").is_err());
        assert!(validate_key(" lead").is_err());
    }
}
