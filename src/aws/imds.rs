//! Which EC2 instance this node is, and in which region: asked of IMDSv2 once, then
//! cached so later jobs make no IMDS call. The cache sits in `cache_dir` (default
//! `/run/cost-tags`, a tmpfs) and records the kernel's boot id: a cache from another boot,
//! or one baked into an AMI, is ignored and replaced.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::state::atomic_file;

/// The instance this process runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceIdentity {
    pub instance_id: String,
    pub region: String,
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    boot_id: String,
    #[serde(flatten)]
    identity: InstanceIdentity,
}

/// The cache file under `cache_dir`.
pub(crate) fn cache_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join("instance-identity.json")
}

/// The cached identity if it was written during this boot.
pub(crate) fn cached(cache_dir: &Path) -> Option<InstanceIdentity> {
    // A cache others could write would let them choose the instance that gets tagged.
    crate::state::trusted_dir::check(cache_dir).ok()?;
    let bytes = std::fs::read(cache_path(cache_dir)).ok()?;
    let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
    (Some(entry.boot_id) == boot_id() && valid_instance_id(&entry.identity.instance_id)).then_some(entry.identity)
}

/// The identity from the cache, or else from IMDSv2 (then cached). `timeout` bounds the
/// IMDS exchange, retries included.
pub(crate) async fn identity(cache_dir: &Path, timeout: Duration) -> Result<InstanceIdentity> {
    if let Some(identity) = cached(cache_dir) {
        return Ok(identity);
    }
    let identity = fetch(timeout).await?;
    if let Err(e) = store(cache_dir, &identity) {
        // Not fatal: the next run asks IMDS again.
        crate::log::warn(&format!("cannot cache the instance identity: {e:#}"));
    }
    Ok(identity)
}

/// One token request and one identity-document request to IMDSv2, never through a proxy.
///
/// The SDK's default client takes `HTTP_PROXY` from the environment for IMDS too (it is
/// http://), unless `NO_PROXY` lists its address. A proxy cannot reach this instance's
/// IMDS: it fails, or answers with the identity of the instance the proxy runs on, and
/// that instance would get the job's tags. So the IMDS client is the same hyper 1 /
/// rustls client without proxy settings (whose roots are loaded only for an `https://`
/// IMDS endpoint).
async fn fetch(timeout: Duration) -> Result<InstanceIdentity> {
    let direct = super::http_client::client(super::http_client::Proxy::None);
    let client = aws_config::imds::client::Client::builder()
        .configure(&aws_config::provider_config::ProviderConfig::default().with_http_client(direct))
        .max_attempts(3)
        .connect_timeout(Duration::from_millis(500).min(timeout))
        .read_timeout(Duration::from_secs(2).min(timeout))
        .operation_timeout(timeout)
        .build();
    let document = tokio::time::timeout(timeout, client.get("/latest/dynamic/instance-identity/document"))
        .await
        .context("IMDS did not answer in time")?
        .context("IMDS instance identity document")?;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Document {
        instance_id: String,
        region: String,
    }
    let doc: Document =
        serde_json::from_str(document.as_ref()).context("IMDS instance identity document is not the expected JSON")?;
    anyhow::ensure!(
        valid_instance_id(&doc.instance_id),
        "IMDS gave an invalid instance id {:?}",
        doc.instance_id
    );
    Ok(InstanceIdentity {
        instance_id: doc.instance_id,
        region: doc.region,
    })
}

fn store(cache_dir: &Path, identity: &InstanceIdentity) -> Result<()> {
    let boot_id = boot_id().context("no boot id in /proc")?;
    crate::state::trusted_dir::prepare(cache_dir).context("cache_dir")?;
    let entry = CacheEntry {
        boot_id,
        identity: identity.clone(),
    };
    atomic_file::replace(&cache_path(cache_dir), &serde_json::to_vec(&entry)?, 0o644)?;
    Ok(())
}

/// Changes at every boot; an image made from a running instance carries a stale one.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// `i-` and 8 or 17 hex digits.
pub(crate) fn valid_instance_id(id: &str) -> bool {
    id.strip_prefix("i-")
        .is_some_and(|hex| matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids() {
        assert!(valid_instance_id("i-0123456789abcdef0"));
        assert!(valid_instance_id("i-12345678"));
        assert!(!valid_instance_id("i-123"));
        assert!(!valid_instance_id("i-0123456789abcdefg"));
        assert!(!valid_instance_id("0123456789abcdef0"));
    }

    #[test]
    fn cache_round_trip_and_boot_check() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cached(dir.path()), None);
        let id = InstanceIdentity {
            instance_id: "i-0123456789abcdef0".into(),
            region: "eu-west-1".into(),
        };
        store(dir.path(), &id).unwrap();
        assert_eq!(cached(dir.path()), Some(id.clone()));
        // A cache from another boot (or baked into an AMI) is not trusted.
        let other_boot = r#"{"boot_id":"00000000-0000-0000-0000-000000000000","instance_id":"i-0123456789abcdef0","region":"eu-west-1"}"#;
        std::fs::write(cache_path(dir.path()), other_boot).unwrap();
        assert_eq!(cached(dir.path()), None);
        std::fs::write(cache_path(dir.path()), "garbage").unwrap();
        assert_eq!(cached(dir.path()), None);
    }
}
