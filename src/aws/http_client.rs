//! The HTTP client every AWS call of cost-tags uses: the SDK's default HTTPS client, built
//! the same way, except that the TLS half, and with it the system's root certificates, is
//! only built when a request needs TLS.
//!
//! The SDK's default (`aws_smithy_runtime::client::http::default_https_client` on our
//! behavior version) is one hyper 1 connector with rustls 0.23 on aws-lc, `HTTP_PROXY` /
//! `HTTPS_PROXY` / `NO_PROXY` from the environment, and the roots rustls-native-certs finds:
//! only `SSL_CERT_FILE` / `SSL_CERT_DIR` when either is set, else the distribution's bundle
//! and certificate directories (`/etc/ssl/certs/ca-certificates.crt` and `/etc/ssl/certs` on
//! Debian and Ubuntu, `/etc/pki/tls/certs/ca-bundle.crt` and `/etc/pki/tls/certs` on Amazon
//! Linux and RHEL). Building that connector reads every one of those files (once per
//! process) and parses the certificates into a trust store (at each build), and the SDK
//! builds it twice per client: once when the client is made (only to load them early) and
//! once at the first request. On a Debian store (the 144-certificate bundle plus the 145
//! files of `/etc/ssl/certs`) that was about 2.7 ms of cost-prolog's 8.6 ms, on every run,
//! also for a plain `http://` endpoint that never uses them.
//!
//! This client keeps two connectors made by the same SDK builder with the same settings
//! (timeouts, sleep, proxy from the environment): one without TLS, for `http://` requests,
//! and the default TLS one, built once, at the first request that needs it (`https://`, or
//! `http://` through an `https://` proxy, which the plain one cannot reach). Nothing about
//! trust changes: an `https://` request is verified against exactly the roots, from exactly
//! the same files and variables, as with the SDK's default client; only the moment they are
//! loaded moves, and a run that makes no TLS connection does not load them. What a run saves:
//! - `http://` endpoints (a local EC2 stand-in, the tests and the node_hooks bench, IMDS):
//!   the whole root loading, both times.
//! - `https://` endpoints (EC2 in production): the early, thrown-away load at client
//!   creation. The roots are still read and parsed once, at the first request.

use std::sync::{Arc, OnceLock};

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;

/// Starts the TLS stack's random number generator on a thread of its own, when this
/// process's AWS endpoint will likely be `https://`, and returns at once.
///
/// aws-lc seeds its generator once per process, at the first use, from two sources: the
/// kernel (`getrandom`) and CPU jitter entropy, which takes some 25 ms of CPU. The first use
/// is the TLS handshake's ClientHello, so a prolog paid all of it between the TCP connect
/// and the handshake, on its one thread. Started here, the seeding runs while the main
/// thread updates the ledger, loads the SDK settings and roots and connects. Same
/// generator, same sources, same seed quality: only when it happens changes. Skipped when
/// `AWS_ENDPOINT_URL_EC2` or `AWS_ENDPOINT_URL` is `http://` (the requests make no TLS,
/// so nothing would use it); anywhere else (the real EC2 endpoint) the work was going to be
/// done anyway. The thread is never joined: if the process ends first, it ends with it.
///
/// Call it only once the environment is final (no `set_var` after): it starts a thread.
pub(crate) fn start_rng() {
    let endpoint = ["AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.is_empty()));
    if endpoint.is_some_and(|e| is_scheme(e.trim(), "http://")) && !env_proxy_is_https(|v| std::env::var(v).ok()) {
        return;
    }
    let _ = std::thread::Builder::new().name("rng-seed".into()).spawn(|| {
        let mut bytes = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut bytes);
    });
}

/// Whether the proxy settings come from the environment (the SDK's default) or are off
/// (IMDS: a proxy cannot reach this instance's IMDS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proxy {
    FromEnv,
    None,
}

impl Proxy {
    fn config(self) -> ProxyConfig {
        match self {
            Proxy::FromEnv => ProxyConfig::from_env(),
            Proxy::None => ProxyConfig::disabled(),
        }
    }
}

/// The SDK's default HTTPS client, with its TLS half built at the first request that needs
/// it (see the module's documentation).
pub(crate) fn client(proxy: Proxy) -> SharedHttpClient {
    let configure = move |settings: Option<&HttpConnectorSettings>, components: Option<&RuntimeComponents>| {
        let mut builder = ConnectorBuilder::default();
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(proxy.config()));
        builder
    };
    let plain = Builder::new()
        .build_with_connector_fn(move |settings, components| configure(settings, components).build_http());
    let tls = Builder::new().build_with_connector_fn(move |settings, components| {
        configure(settings, components)
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .build()
    });
    let http_needs_tls = proxy == Proxy::FromEnv && env_proxy_is_https(|v| std::env::var(v).ok());
    TlsWhenNeeded {
        plain,
        tls,
        http_needs_tls,
    }
    .into_shared()
}

/// True when a proxy variable that can apply to an `http://` request names an `https://`
/// proxy: only the TLS connector can talk to it.
fn env_proxy_is_https(var: impl Fn(&str) -> Option<String>) -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .filter_map(|v| var(v))
        .any(|url| is_scheme(url.trim(), "https://"))
}

fn is_scheme(uri: &str, scheme: &str) -> bool {
    uri.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme))
}

#[derive(Debug)]
struct TlsWhenNeeded {
    plain: SharedHttpClient,
    tls: SharedHttpClient,
    /// `http://` requests go through an `https://` proxy.
    http_needs_tls: bool,
}

impl HttpClient for TlsWhenNeeded {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        // Both clients cache their connector per settings, so the TLS one is built once per
        // process and settings, however many connectors are handed out here.
        SplitConnector {
            plain: self.plain.http_connector(settings, components),
            http_needs_tls: self.http_needs_tls,
            tls: Arc::new(LazyTls {
                client: self.tls.clone(),
                settings: settings.clone(),
                components: components.clone(),
                connector: OnceLock::new(),
            }),
        }
        .into_shared()
    }

    // `validate_base_client_config` keeps the trait's default (nothing): the SDK's client
    // builds its TLS connector there, only to load the roots early.

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.tls.connector_metadata()
    }
}

#[derive(Debug)]
struct LazyTls {
    client: SharedHttpClient,
    settings: HttpConnectorSettings,
    components: RuntimeComponents,
    connector: OnceLock<SharedHttpConnector>,
}

impl LazyTls {
    fn get(&self) -> &SharedHttpConnector {
        self.connector
            .get_or_init(|| self.client.http_connector(&self.settings, &self.components))
    }
}

#[derive(Debug)]
struct SplitConnector {
    plain: SharedHttpConnector,
    http_needs_tls: bool,
    tls: Arc<LazyTls>,
}

impl HttpConnector for SplitConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if needs_tls(request.uri(), self.http_needs_tls) {
            self.tls.get().call(request)
        } else {
            self.plain.call(request)
        }
    }
}

/// Every request that is not plain `http://` (or is, through an `https://` proxy) takes the
/// SDK's TLS connector, so anything unexpected is handled as the SDK's default would.
fn needs_tls(uri: &str, http_needs_tls: bool) -> bool {
    !is_scheme(uri, "http://") || http_needs_tls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_skips_tls() {
        assert!(!needs_tls("http://127.0.0.1:5000/", false));
        assert!(!needs_tls("HTTP://localhost/", false));
        assert!(needs_tls("https://ec2.us-east-1.amazonaws.com/", false));
        assert!(needs_tls("HTTPS://ec2.us-east-1.amazonaws.com/", false));
        assert!(needs_tls("http://127.0.0.1:5000/", true));
        assert!(needs_tls("", false));
        assert!(needs_tls("http:/", false));
    }

    #[test]
    fn an_https_proxy_for_http_requests_needs_tls() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |v: &str| pairs.iter().find(|(k, _)| *k == v).map(|(_, x)| x.to_string())
        };
        assert!(!env_proxy_is_https(env(&[])));
        assert!(!env_proxy_is_https(env(&[("HTTP_PROXY", "http://proxy:3128")])));
        // HTTPS_PROXY applies to https:// requests only, which take TLS anyway.
        assert!(!env_proxy_is_https(env(&[("HTTPS_PROXY", "https://proxy:3128")])));
        assert!(env_proxy_is_https(env(&[("http_proxy", " HTTPS://proxy:3128")])));
        assert!(env_proxy_is_https(env(&[("ALL_PROXY", "https://proxy")])));
        assert!(env_proxy_is_https(env(&[("all_proxy", "https://proxy")])));
    }
}
