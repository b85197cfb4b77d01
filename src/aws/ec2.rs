//! The instance's tags through EC2: one CreateTags carrying every key that has a value,
//! one DeleteTags (keys only, so any value goes) for managed keys that must disappear.
//! Throttling (`RequestLimitExceeded`) and transient errors are retried by the SDK's
//! standard strategy, with exponential backoff and jitter, inside the caller's deadline.
//! The head node's client ([`Ec2Tags::without_retries`]) tags up to 1,000 instances a
//! call and leaves retrying to its caller's token bucket.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, Tag};

use super::sdk::{self, summary};
use crate::model::tag_set::{TagChange, TagMap};

/// One running instance of a cluster, as DescribeInstances gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClusterInstance {
    pub instance_id: String,
    pub private_ip: Option<String>,
    pub private_dns: Option<String>,
    pub tags: TagMap,
    /// `c5.xlarge`; empty when EC2 did not say.
    pub instance_type: String,
    /// How it is bought, from `InstanceLifecycle` ([`lifecycle_name`]).
    pub lifecycle: String,
    /// Its availability zone (`us-east-1a`); empty when EC2 did not say.
    pub zone: String,
}

/// What DescribeInstances' `InstanceLifecycle` means for the bill: EC2 leaves it out for
/// an on-demand instance and says `spot`, `scheduled` or `capacity-block` otherwise. The
/// timeline (and a per-job join with the bill) needs a word in every case.
pub(crate) fn lifecycle_name(instance_lifecycle: Option<&str>) -> String {
    match instance_lifecycle.map(str::trim) {
        None | Some("") => "on-demand".to_string(),
        Some(other) => other.to_string(),
    }
}

/// An EC2 client whose every call ends within the time it was built with.
pub(crate) struct Ec2Tags {
    client: aws_sdk_ec2::Client,
}

impl Ec2Tags {
    /// Builds the client, in `AWS_REGION` when set, else the instance's own region
    /// (`fallback_region`). `budget` bounds each operation including its retries.
    pub(crate) async fn new(fallback_region: &str, budget: Duration) -> Ec2Tags {
        let config = sdk::load(sdk::region_or(fallback_region), budget).await;
        Ec2Tags {
            client: aws_sdk_ec2::Client::new(&config),
        }
    }

    /// The head node's client: no retry of its own (the SDK's standard retries would
    /// resend a throttled call at once, out of the caller's budget); every error comes
    /// back, throttling told apart ([`CallError::Throttled`]), for the caller's
    /// [`crate::cluster::pacing::TokenBucket`] to retry later.
    pub(crate) async fn without_retries(fallback_region: &str, budget: Duration) -> Ec2Tags {
        let config = sdk::load(sdk::region_or(fallback_region), budget).await;
        // One attempt may take the whole budget: a DescribeInstances page of 1,000
        // instances can take longer than the 3 s the node hooks allow an attempt.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1).min(budget))
            .operation_attempt_timeout(budget)
            .operation_timeout(budget)
            .build();
        let config = aws_sdk_ec2::config::Builder::from(&config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts)
            .build();
        Ec2Tags {
            client: aws_sdk_ec2::Client::from_conf(config),
        }
    }

    /// One page (up to 1,000) of the running instances of a ParallelCluster cluster
    /// (DescribeInstances filtered on the tag `parallelcluster:cluster-name`), with their
    /// tags, and the token of the next page.
    pub(crate) async fn cluster_instances_page(
        &self,
        cluster_name: &str,
        next: Option<&str>,
    ) -> Result<(Vec<ClusterInstance>, Option<String>), CallError> {
        let page = self
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
            .set_next_token(next.map(str::to_string))
            .send()
            .await
            .map_err(|e| CallError::of(e, "EC2 DescribeInstances"))?;
        let found = page
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|instance| {
                Some(ClusterInstance {
                    instance_id: instance.instance_id()?.to_string(),
                    private_ip: instance.private_ip_address().map(str::to_string),
                    private_dns: instance.private_dns_name().map(str::to_string),
                    tags: instance
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                        .collect(),
                    instance_type: instance
                        .instance_type()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default(),
                    lifecycle: lifecycle_name(instance.instance_lifecycle().map(|l| l.as_str())),
                    zone: instance
                        .placement()
                        .and_then(|p| p.availability_zone())
                        .unwrap_or_default()
                        .to_string(),
                })
            })
            .collect();
        Ok((found, page.next_token().filter(|t| !t.is_empty()).map(str::to_string)))
    }

    /// One CreateTags setting `tags` on every instance of `ids` (at most 1,000).
    pub(crate) async fn create_on(&self, ids: &[String], tags: &TagMap) -> Result<(), CallError> {
        if ids.is_empty() || tags.is_empty() {
            return Ok(());
        }
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        self.client
            .create_tags()
            .set_resources(Some(ids.to_vec()))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| CallError::of(e, "EC2 CreateTags"))?;
        Ok(())
    }

    /// One DeleteTags removing `tags` from every instance of `ids` (at most 1,000), each
    /// tag only where it still has the value given. Refuses an empty tag list, which EC2
    /// would take as "every tag".
    pub(crate) async fn delete_if_unchanged_on(&self, ids: &[String], tags: &TagMap) -> Result<(), CallError> {
        if ids.is_empty() {
            return Ok(());
        }
        if tags.is_empty() {
            return Err(CallError::Failed(anyhow::anyhow!("refusing a DeleteTags without keys")));
        }
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        self.client
            .delete_tags()
            .set_resources(Some(ids.to_vec()))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| CallError::of(e, "EC2 DeleteTags"))?;
        Ok(())
    }

    /// Makes the instance's managed tags equal to `change.create`. At most two calls, and
    /// never a DeleteTags without keys (EC2 would delete every user tag).
    pub(crate) async fn apply(&self, instance_id: &str, change: &TagChange) -> Result<()> {
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
    pub(crate) async fn current(&self, instance_id: &str, keys: &[String]) -> Result<TagMap> {
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

/// Why a call of the head node's client did not go through.
#[derive(Debug)]
pub(crate) enum CallError {
    /// EC2 said `RequestLimitExceeded` (or another throttling code): try later, slower.
    Throttled,
    /// Anything else: denied, invalid, no answer within the time allowed.
    Failed(anyhow::Error),
}

impl CallError {
    fn of<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
        e: SdkError<E, R>,
        what: &str,
    ) -> CallError {
        match e.code() {
            Some("RequestLimitExceeded" | "Throttling" | "ThrottlingException") => CallError::Throttled,
            _ => CallError::Failed(summary(e).context(what.to_string())),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Throttled => write!(f, "throttled (RequestLimitExceeded)"),
            CallError::Failed(e) => write!(f, "{e:#}"),
        }
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
            let ids = ["i-0123456789abcdef0".to_string()];
            let empty = ec2.delete_if_unchanged_on(&ids, &TagMap::new()).await;
            let direct = ec2.delete_tags("i-0123456789abcdef0", Vec::new()).await;
            (empty.unwrap_err().to_string(), direct.unwrap_err().to_string())
        });
        assert_eq!(error.0, "refusing a DeleteTags without keys");
        assert_eq!(error.1, "refusing a DeleteTags without keys");
    }

    #[test]
    fn an_instance_without_lifecycle_is_on_demand() {
        assert_eq!(lifecycle_name(None), "on-demand");
        assert_eq!(lifecycle_name(Some("")), "on-demand");
        assert_eq!(lifecycle_name(Some("spot")), "spot");
        assert_eq!(lifecycle_name(Some("capacity-block")), "capacity-block");
        let sdk = aws_sdk_ec2::types::InstanceLifecycleType::Spot;
        assert_eq!(lifecycle_name(Some(sdk.as_str())), "spot");
    }
}
