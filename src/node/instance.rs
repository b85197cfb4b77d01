//! This node's EC2 instance as one run sees it: its identity (IMDSv2, cached on disk) and
//! one EC2 client, set up on first use and reused for the rest of the run, on one runtime
//! that never waits for a blocked name lookup (see [`sdk::Runtime`]). `reconcile` on a
//! node reads the tags, then repairs them: one set-up, not two.

use std::time::Instant;

use anyhow::Result;

use crate::aws::imds::{self, InstanceIdentity};
use crate::aws::{ec2::Ec2Tags, sdk};
use crate::config::Settings;
use crate::node::tags::{TagChange, TagMap};

/// The AWS side of one run on a node.
pub struct InstanceSession<'s> {
    settings: &'s Settings,
    runtime: sdk::Runtime,
    connected: Option<(InstanceIdentity, Ec2Tags)>,
}

impl<'s> InstanceSession<'s> {
    /// Nothing is asked of IMDS or AWS until a call needs it.
    pub fn new(settings: &'s Settings) -> Result<InstanceSession<'s>> {
        Ok(InstanceSession {
            settings,
            runtime: sdk::Runtime::new()?,
            connected: None,
        })
    }

    /// The instance's identity and its tags among `keys` as EC2 has them now (no EC2 call
    /// for no keys), within `deadline`.
    pub fn tags(&mut self, keys: &[String], deadline: Instant) -> Result<(InstanceIdentity, TagMap)> {
        let (settings, connected) = (self.settings, &mut self.connected);
        self.runtime.within(deadline, async move {
            let (identity, ec2) = connect(connected, settings, deadline).await?;
            let tags = if keys.is_empty() {
                TagMap::new()
            } else {
                ec2.current(&identity.instance_id, keys).await?
            };
            Ok((identity.clone(), tags))
        })
    }

    /// Makes the instance's managed tags what `change` says, within `deadline`.
    pub fn apply(&mut self, change: &TagChange, deadline: Instant) -> Result<()> {
        let (settings, connected) = (self.settings, &mut self.connected);
        self.runtime.within(deadline, async move {
            let (identity, ec2) = connect(connected, settings, deadline).await?;
            ec2.apply(&identity.instance_id, change).await
        })
    }
}

/// The identity and client, set up on the first call of the run.
async fn connect<'c>(
    connected: &'c mut Option<(InstanceIdentity, Ec2Tags)>,
    settings: &Settings,
    deadline: Instant,
) -> Result<&'c (InstanceIdentity, Ec2Tags)> {
    let pair = match connected.take() {
        Some(pair) => pair,
        None => {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let identity = imds::identity(&settings.cache_dir, remaining).await?;
            let ec2 = Ec2Tags::new(&identity.region, remaining).await;
            (identity, ec2)
        }
    };
    Ok(connected.insert(pair))
}
