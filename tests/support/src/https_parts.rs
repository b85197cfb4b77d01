//! Real parts for testing the binaries' HTTPS stack: a test certificate authority, a TLS
//! endpoint in front of moto, and an HTTP proxy of the kind sites put in front of AWS.
//!
//! * [`TestCa`]: a fresh CA (rcgen) per test, written as a PEM file, and server
//!   certificates it signs. Being new, it is in no system store unless a test puts it there.
//! * [`TlsFront`]: a TLS server on 127.0.0.1 (tokio-rustls, on the rustls 0.23 and aws-lc
//!   the binaries use) in front of hyper's HTTP/1.1 server, whose service relays each
//!   request to a plain-HTTP upstream (moto) with hyper's client; it records every
//!   handshake that failed and why (a client that does not trust the certificate sends
//!   `UnknownCA`).
//! * [`HttpProxy`]: a forward proxy on 127.0.0.1, hyper's HTTP/1.1 server: absolute-form
//!   requests (`POST http://host:port/ HTTP/1.1`, what a client sends for `http://`
//!   through `HTTP_PROXY`) are relayed with hyper's client, and `CONNECT host:port` is
//!   answered 200, after which the upgraded connection (`hyper::upgrade::on`) and the
//!   upstream's are copied both ways (what a client does for `https://` through
//!   `HTTPS_PROXY`). It records each request line it got.
//!
//! Both servers listen on a port the kernel picks, run their connections as tasks on a
//! tokio runtime of their own (one thread), and stop on drop: the runtime is dropped with
//! every task, which closes every connection and tunnel. Neither needs a raw listener (no
//! test makes them refuse, drop or hang connections; `http::Server` does that).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::http;

/// A certificate authority made for one test.
pub struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA certificate to `path` (PEM) and returns the path.
    pub fn write_pem(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.pem).expect("write CA PEM");
        path.to_path_buf()
    }

    /// A server certificate for `localhost` and 127.0.0.1, and its key.
    pub fn server_cert(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("server certificate");
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

/// The runtime and accept loop both servers share: a tokio runtime of its own (one thread
/// drives it), a listener on 127.0.0.1 on a port the kernel picks, and a task per
/// connection. Dropping it drops the runtime and with it every task, so every socket
/// (connections and tunnels) is closed when the drop returns.
struct Listener {
    port: u16,
    stopping: Arc<tokio::sync::Notify>,
    driver: Option<JoinHandle<()>>,
}

impl Listener {
    fn start<F, Fut>(name: &str, serve: F) -> Listener
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(async { tokio::net::TcpListener::bind("127.0.0.1:0").await })
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let stopping = Arc::new(tokio::sync::Notify::new());
        let until = stopping.clone();
        let driver = std::thread::Builder::new()
            .name(format!("{name}-io"))
            .spawn(move || {
                runtime.block_on(async move {
                    let accept = async {
                        loop {
                            match listener.accept().await {
                                Ok((tcp, _)) => {
                                    // A response goes out as several TLS records; without
                                    // this, Nagle's algorithm holds the last one until the
                                    // client's delayed ACK (about 40 ms a request).
                                    let _ = tcp.set_nodelay(true);
                                    tokio::spawn(serve(tcp));
                                }
                                // A transient error such as EMFILE: back off briefly.
                                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                            }
                        }
                    };
                    tokio::select! {
                        () = accept => {}
                        () = until.notified() => {}
                    }
                });
                // Dropping the runtime here drops every connection's task and socket.
            })
            .expect("spawn the server thread");
        Listener {
            port,
            stopping,
            driver: Some(driver),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stopping.notify_one();
        if let Some(d) = self.driver.take() {
            let _ = d.join();
        }
    }
}

type Answer = Result<hyper::Response<Full<Bytes>>, std::convert::Infallible>;

/// A plain answer of our own (an error the relay met).
fn plain(status: u16, text: String) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    resp
}

/// Relays `req` (its body read whole) to `upstream` (`host:port`) on a new connection, as
/// `target` (origin form), and returns the upstream's answer; hop-by-hop headers (and
/// `Proxy-*`) are not copied either way.
async fn relay(
    upstream: &str,
    target: &str,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, String> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let mut out = hyper::Request::builder().method(parts.method).uri(target);
    for (k, v) in &parts.headers {
        if !http::is_hop_header(k.as_str()) && !k.as_str().starts_with("proxy-") {
            out = out.header(k, v);
        }
    }
    let out = out.body(Full::new(body)).map_err(|e| e.to_string())?;
    let mut sender = http::connect(upstream).await.map_err(|e| e.to_string())?;
    let (parts, body) = http::exchange(&mut sender, out)
        .await
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut resp = hyper::Response::new(Full::new(body));
    *resp.status_mut() = parts.status;
    for (k, v) in &parts.headers {
        if !http::is_hop_header(k.as_str()) {
            resp.headers_mut().append(k, v.clone());
        }
    }
    if let Some(reason) = parts.extensions.get::<hyper::ext::ReasonPhrase>() {
        resp.extensions_mut().insert(reason.clone());
    }
    Ok(resp)
}

/// The request's target in origin form (`/path?query`).
fn origin_form(uri: &hyper::Uri) -> String {
    uri.path_and_query().map_or("/", |p| p.as_str()).to_string()
}

/// A TLS endpoint relaying to a plain-HTTP upstream.
pub struct TlsFront {
    listener: Listener,
    served: Arc<AtomicU64>,
    handshake_errors: Arc<Mutex<Vec<String>>>,
}

impl TlsFront {
    /// Serves `cert`/`key` on 127.0.0.1 and relays to `upstream` (`http://host:port`):
    /// tokio-rustls terminates TLS, hyper serves HTTP/1.1 over it, and each request goes
    /// to the upstream on a connection of its own (hyper's client).
    pub fn start(upstream: &str, cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> TlsFront {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .expect("server certificate and key"),
        );
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let upstream: Arc<str> = upstream.trim_start_matches("http://").trim_end_matches('/').into();
        let served = Arc::new(AtomicU64::new(0));
        let handshake_errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let (served2, errors2) = (served.clone(), handshake_errors.clone());
        let listener = Listener::start("tls-front", move |tcp| {
            let (acceptor, upstream, served, errors) =
                (acceptor.clone(), upstream.clone(), served2.clone(), errors2.clone());
            async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        // rustls's words, e.g. "received fatal alert: UnknownCA".
                        errors.lock().unwrap().push(e.to_string());
                        return;
                    }
                };
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let (upstream, served) = (upstream.clone(), served.clone());
                    async move {
                        let target = origin_form(req.uri());
                        let resp = relay(&upstream, &target, req)
                            .await
                            .unwrap_or_else(|e| plain(502, format!("TLS front: upstream {upstream}: {e}")));
                        served.fetch_add(1, Ordering::SeqCst);
                        Answer::Ok(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .header_read_timeout(None)
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            }
        });
        TlsFront {
            listener,
            served,
            handshake_errors,
        }
    }

    pub fn port(&self) -> u16 {
        self.listener.port
    }

    /// Requests relayed to the upstream.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// Why each failed handshake failed (rustls's words, e.g. "received fatal alert: UnknownCA").
    pub fn handshake_errors(&self) -> Vec<String> {
        self.handshake_errors.lock().unwrap().clone()
    }
}

/// A forward HTTP proxy with CONNECT tunnels.
pub struct HttpProxy {
    listener: Listener,
    seen: Arc<Mutex<Vec<String>>>,
}

impl HttpProxy {
    /// A hyper HTTP/1.1 server (with upgrades, for CONNECT) on 127.0.0.1.
    pub fn start() -> HttpProxy {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen2 = seen.clone();
        let listener = Listener::start("http-proxy", move |tcp| {
            let seen = seen2.clone();
            async move {
                let service = hyper::service::service_fn(move |req| proxy(seen.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .header_read_timeout(None)
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            }
        });
        HttpProxy { listener, seen }
    }

    /// `http://127.0.0.1:PORT`, for HTTP_PROXY / HTTPS_PROXY.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.listener.port)
    }

    /// Each request line received, in order: `CONNECT host:port` or `METHOD http://...`.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// One request to the proxy: `CONNECT host:port` opens a tunnel (200, then the upgraded
/// connection and the upstream's copied both ways until either ends); an absolute-form
/// `http://` request is relayed; anything else gets 400.
async fn proxy(seen: Arc<Mutex<Vec<String>>>, req: hyper::Request<Incoming>) -> Answer {
    seen.lock().unwrap().push(format!("{} {}", req.method(), req.uri()));
    if req.method() == hyper::Method::CONNECT {
        let target = req.uri().to_string();
        let Ok(mut upstream) = tokio::net::TcpStream::connect(target.as_str()).await else {
            return Ok(plain(502, format!("HTTP proxy: cannot reach {target}")));
        };
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(req).await {
                let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(upgraded), &mut upstream).await;
            }
        });
        return Ok(hyper::Response::new(Full::new(Bytes::new())));
    }
    let authority = match (req.uri().scheme_str(), req.uri().authority()) {
        (Some("http"), Some(a)) => format!("{}:{}", a.host(), a.port_u16().unwrap_or(80)),
        _ => {
            return Ok(plain(
                400,
                "HTTP proxy: not an absolute-form http:// target".to_string(),
            ))
        }
    };
    let target = origin_form(req.uri());
    Ok(relay(&authority, &target, req)
        .await
        .unwrap_or_else(|e| plain(502, format!("HTTP proxy: upstream {authority}: {e}"))))
}
