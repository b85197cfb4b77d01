//! The instance's tags through EC2: one CreateTags carrying every key that has a value,
//! one DeleteTags (keys only, so any value goes) for managed keys that must disappear.
//! Throttling (`RequestLimitExceeded`) and transient errors are retried by the SDK's
//! standard strategy, with exponential backoff and jitter, inside the caller's deadline.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_ec2::types::{Filter, Tag};

use super::sdk::{self, summary};
use crate::node::tags::{TagChange, TagMap};

/// One running instance of a cluster, as DescribeInstances gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInstance {
    pub instance_id: String,
    pub private_ip: Option<String>,
    pub private_dns: Option<String>,
    pub tags: TagMap,
}

/// An EC2 client whose every call ends within the time it was built with.
pub struct Ec2Tags {
    client: aws_sdk_ec2::Client,
}

impl Ec2Tags {
    /// Builds the client, in `AWS_REGION` when set, else the instance's own region
    /// (`fallback_region`). `budget` bounds each operation including its retries.
    pub async fn new(fallback_region: &str, budget: Duration) -> Ec2Tags {
        let config = sdk::load(sdk::region_or(fallback_region), budget).await;
        Ec2Tags {
            client: aws_sdk_ec2::Client::new(&config),
        }
    }

    /// Makes the instance's managed tags equal to `change.create`. At most two calls, and
    /// never a DeleteTags without keys (EC2 would delete every user tag).
    pub async fn apply(&self, instance_id: &str, change: &TagChange) -> Result<()> {
        if !change.create.is_empty() {
            let tags = change
                .create
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            self.client
                .create_tags()
                .resources(instance_id)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(summary)
                .context("EC2 CreateTags")?;
        }
        if !change.delete.is_empty() {
            let keys = change.delete.iter().map(|k| Tag::builder().key(k).build()).collect();
            self.delete_tags(instance_id, keys).await?;
        }
        Ok(())
    }

    /// The running instances of a ParallelCluster cluster (DescribeInstances filtered on
    /// the tag `parallelcluster:cluster-name`), every page, with their tags.
    pub async fn cluster_instances(&self, cluster_name: &str) -> Result<Vec<ClusterInstance>> {
        let mut found = Vec::new();
        let mut pages = self
            .client
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("tag:parallelcluster:cluster-name")
                    .values(cluster_name)
                    .build(),
            )
            .filters(Filter::builder().name("instance-state-name").values("running").build())
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(summary).context("EC2 DescribeInstances")?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = instance.instance_id() else { continue };
                found.push(ClusterInstance {
                    instance_id: id.to_string(),
                    private_ip: instance.private_ip_address().map(str::to_string),
                    private_dns: instance.private_dns_name().map(str::to_string),
                    tags: instance
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                        .collect(),
                });
            }
        }
        Ok(found)
    }

    /// Deletes `tags` from the instance, each only if it still has the given value (a tag
    /// rewritten meanwhile by a prolog is kept). Refuses an empty list, which EC2 would
    /// take as "every tag".
    pub async fn delete_if_unchanged(&self, instance_id: &str, tags: &TagMap) -> Result<()> {
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        self.delete_tags(instance_id, tags).await
    }

    /// The one way cost-tags sends DeleteTags. EC2 takes a DeleteTags without keys as
    /// "delete every user tag" (ParallelCluster's own included), so an empty list is
    /// refused here, whatever the caller computed.
    async fn delete_tags(&self, instance_id: &str, tags: Vec<Tag>) -> Result<()> {
        anyhow::ensure!(!tags.is_empty(), "refusing a DeleteTags without keys");
        self.client
            .delete_tags()
            .resources(instance_id)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(summary)
            .context("EC2 DeleteTags")?;
        Ok(())
    }

    /// The instance's tags among `keys` (DescribeTags), for status and repair.
    pub async fn current(&self, instance_id: &str, keys: &[String]) -> Result<TagMap> {
        let mut tags = TagMap::new();
        let mut pages = self
            .client
            .describe_tags()
            .filters(Filter::builder().name("resource-id").values(instance_id).build())
            .filters(Filter::builder().name("key").set_values(Some(keys.to_vec())).build())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(summary).context("EC2 DescribeTags")?;
            for t in page.tags() {
                if let (Some(k), Some(v)) = (t.key(), t.value()) {
                    tags.insert(k.to_string(), v.to_string());
                }
            }
        }
        Ok(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refused before anything is sent: the endpoint here could not answer anyway, so a
    /// guard that let the call through would fail with a transport error instead.
    #[test]
    fn a_delete_without_keys_is_never_sent() {
        let runtime = crate::aws::sdk::Runtime::new().unwrap();
        let error = runtime.block_on(async {
            let ec2 = Ec2Tags::new("us-east-1", Duration::from_millis(200)).await;
            let empty = ec2.delete_if_unchanged("i-0123456789abcdef0", &TagMap::new()).await;
            let direct = ec2.delete_tags("i-0123456789abcdef0", Vec::new()).await;
            (empty.unwrap_err().to_string(), direct.unwrap_err().to_string())
        });
        assert_eq!(error.0, "refusing a DeleteTags without keys");
        assert_eq!(error.1, "refusing a DeleteTags without keys");
    }
}
