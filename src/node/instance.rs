//! This node's EC2 instance as one run sees it: its identity (IMDSv2, cached on disk) and
//! one EC2 client, set up on first use and reused for the rest of the run, on one runtime
//! that never waits for a blocked name lookup (see [`sdk::Runtime`]). `reconcile` on a
//! node reads the tags, then repairs them: one set-up, not two. A prolog whose tags are
//! already applied sets up nothing, not even the runtime.

use std::time::Instant;

use anyhow::Result;

use crate::aws::imds::{self, InstanceIdentity};
use crate::aws::{ec2::Ec2Tags, sdk};
use crate::config::Settings;
use crate::model::tag_set::{TagChange, TagMap};

/// The instance's identity and the EC2 client for its region.
type Connection = (InstanceIdentity, Ec2Tags);

/// The AWS side of one run on a node.
pub struct InstanceSession<'s> {
    settings: &'s Settings,
    runtime: Option<sdk::Runtime>,
    connected: Option<Connection>,
}

impl<'s> InstanceSession<'s> {
    /// Nothing is set up, nor asked of IMDS or AWS, until a call needs it.
    pub fn new(settings: &'s Settings) -> InstanceSession<'s> {
        InstanceSession {
            settings,
            runtime: None,
            connected: None,
        }
    }

    /// The instance's identity and its tags among `keys` as EC2 has them now (no EC2 call
    /// for no keys), within `deadline`.
    pub fn tags(&mut self, keys: &[String], deadline: Instant) -> Result<(InstanceIdentity, TagMap)> {
        let (settings, connected, runtime) = self.parts()?;
        runtime.within(deadline, async move {
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
        let (settings, connected, runtime) = self.parts()?;
        runtime.within(deadline, async move {
            let (identity, ec2) = connect(connected, settings, deadline).await?;
            ec2.apply(&identity.instance_id, change).await
        })
    }

    /// The settings, the connection slot and the runtime (built on the first call).
    fn parts(&mut self) -> Result<(&'s Settings, &mut Option<Connection>, &sdk::Runtime)> {
        let runtime = match self.runtime.take() {
            Some(runtime) => runtime,
            None => sdk::Runtime::new()?,
        };
        Ok((self.settings, &mut self.connected, self.runtime.insert(runtime)))
    }
}

/// The identity and client, set up on the first call of the run.
async fn connect<'c>(
    connected: &'c mut Option<Connection>,
    settings: &Settings,
    deadline: Instant,
) -> Result<&'c Connection> {
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
