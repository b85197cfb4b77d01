//! The EC2 calls the convergence makes, behind a trait: the logic is tested without a
//! network ([`crate::cluster::converge`]'s tests), the real SDK against moto
//! (tests/integration/cluster_converge.rs).

use std::time::Duration;

use crate::aws::ec2::{CallError, ClusterInstance, Ec2Tags};
use crate::aws::sdk::Runtime;
use crate::cluster::plan::{Action, Batch};

/// One DescribeInstances page: the instances, and the token of the next page.
pub(crate) type InstancesPage = (Vec<ClusterInstance>, Option<String>);

pub(crate) trait TagApi {
    /// One page of the cluster's running instances, with their tags.
    fn instances_page(&mut self, cluster: &str, next: Option<&str>) -> Result<InstancesPage, CallError>;
    /// One CreateTags or DeleteTags (with Key and Value) for the batch.
    fn apply(&mut self, batch: &Batch) -> Result<(), CallError>;
}

/// The real EC2, without the SDK's own retries (the convergence's token bucket retries).
pub(crate) struct Ec2TagApi {
    runtime: Runtime,
    ec2: Ec2Tags,
}

impl Ec2TagApi {
    /// A client in `AWS_REGION`, else `fallback_region`; each call ends within `budget`.
    pub(crate) fn new(fallback_region: &str, budget: Duration) -> anyhow::Result<Ec2TagApi> {
        let runtime = Runtime::new()?;
        let ec2 = runtime.block_on(Ec2Tags::without_retries(fallback_region, budget));
        Ok(Ec2TagApi { runtime, ec2 })
    }
}

impl TagApi for Ec2TagApi {
    fn instances_page(&mut self, cluster: &str, next: Option<&str>) -> Result<InstancesPage, CallError> {
        self.runtime.block_on(self.ec2.cluster_instances_page(cluster, next))
    }

    fn apply(&mut self, batch: &Batch) -> Result<(), CallError> {
        self.runtime.block_on(async {
            match batch.action {
                Action::Create => self.ec2.create_on(&batch.instance_ids, &batch.tags).await,
                Action::DeleteIfUnchanged => self.ec2.delete_if_unchanged_on(&batch.instance_ids, &batch.tags).await,
            }
        })
    }
}
