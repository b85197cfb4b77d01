//! What every AWS client of cost-tags shares: the standard SDK environment, a time bound
//! on each operation including its retries, and one-line error summaries.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The region from `AWS_REGION`/`AWS_DEFAULT_REGION` when set, else `fallback` (the
/// instance's own, or the home region of a global service), so no IMDS lookup is made.
pub fn region_or(fallback: &str) -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
        .unwrap_or_else(|| fallback.to_string())
}

/// SDK settings from the standard environment (`AWS_ENDPOINT_URL`, credentials chain...)
/// whose every operation, retries included, ends within `budget`.
pub async fn load(region: String, budget: Duration) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1).min(budget))
        .operation_attempt_timeout(Duration::from_secs(3).min(budget))
        .operation_timeout(budget)
        .build();
    let retries = RetryConfig::standard()
        // Under account-wide throttling many nodes retry at once; the deadline, not
        // the attempt count, is what bounds the run (measured in tests/scale_throttled.rs:
        // 10 attempts let nodes give up with seconds of deadline left).
        .with_max_attempts(30)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(2));
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await
}

/// One line for logs and the ledger: the service's error code and message when AWS
/// answered, else the transport error (timeout, refused), cut to a readable length. The
/// SDK's full context includes the raw HTTP response.
pub fn summary<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> anyhow::Error {
    if let (Some(code), message) = (e.code(), e.message()) {
        return anyhow::anyhow!("{code}: {}", message.unwrap_or("(no message)"));
    }
    let full = DisplayErrorContext(&e).to_string();
    let cut: String = full.chars().take(300).collect();
    anyhow::anyhow!("{cut}{}", if cut.len() < full.len() { "..." } else { "" })
}
