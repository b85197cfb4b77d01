//! What every AWS client of cost-tags shares: the standard SDK environment, a time bound
//! on each operation including its retries, a runtime that returns at its deadline, and
//! one-line error summaries.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The region from `AWS_REGION`/`AWS_DEFAULT_REGION` when set, else `fallback` (the
/// instance's own, or the home region of a global service), so no IMDS lookup is made.
pub(crate) fn region_or(fallback: &str) -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
        .unwrap_or_else(|| fallback.to_string())
}

/// A tokio runtime that, when it goes, does not wait for what is still running.
///
/// Dropping a plain tokio runtime waits for its blocking threads, and the SDK resolves
/// host names with getaddrinfo on one of them (hyper's resolver uses `spawn_blocking`).
/// With a name server that never answers, glibc waits 5 s per attempt, twice, per server:
/// a prolog with `deadline = 2` ran 11 s. `shutdown_background` does not wait; a thread
/// still in getaddrinfo dies with the process when `main` returns. Every AWS caller uses
/// this one, so no command outlives its deadline on a dead resolver.
pub(crate) struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    pub(crate) fn new() -> anyhow::Result<Runtime> {
        Ok(Runtime(Some(
            tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        )))
    }

    /// Runs `work` to its end on this runtime.
    pub(crate) fn block_on<F: Future>(&self, work: F) -> F::Output {
        self.0
            .as_ref()
            .expect("runtime is present until dropped")
            .block_on(work)
    }

    /// Runs `work` until it ends or `deadline` passes, then returns at once, leaving
    /// behind whatever has not finished.
    pub(crate) fn within<T>(
        &self,
        deadline: Instant,
        work: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let budget = deadline.saturating_duration_since(Instant::now());
        let outcome = self.block_on(async { tokio::time::timeout(budget, work).await });
        outcome.map_err(|_| anyhow::anyhow!("AWS did not answer within {:.1} s", budget.as_secs_f64()))?
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// SDK settings from the standard environment (`AWS_ENDPOINT_URL`, credentials chain...)
/// whose every operation, retries included, ends within `budget`. The HTTP client is the
/// SDK's default HTTPS client, whose system roots are loaded only once a request needs TLS
/// ([`super::http_client`]).
pub(crate) async fn load(region: String, budget: Duration) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1).min(budget))
        .operation_attempt_timeout(Duration::from_secs(3).min(budget))
        .operation_timeout(budget)
        .build();
    let retries = RetryConfig::standard()
        // Under account-wide throttling many nodes retry at once; the deadline, not
        // the attempt count, is what bounds the run (measured in tests/integration/scale_throttled.rs:
        // 10 attempts let nodes give up with seconds of deadline left).
        .with_max_attempts(30)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(2));
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(super::http_client::client(super::http_client::Proxy::FromEnv))
        .region(Region::new(region))
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await
}

/// One line for logs and the ledger: the service's error code and message when AWS
/// answered, else the transport error (timeout, refused), cut to a readable length. The
/// SDK's full context includes the raw HTTP response.
pub(crate) fn summary<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> anyhow::Error {
    if let (Some(code), message) = (e.code(), e.message()) {
        return anyhow::anyhow!("{code}: {}", message.unwrap_or("(no message)"));
    }
    let full = DisplayErrorContext(&e).to_string();
    let cut: String = full.chars().take(300).collect();
    anyhow::anyhow!("{cut}{}", if cut.len() < full.len() { "..." } else { "" })
}
