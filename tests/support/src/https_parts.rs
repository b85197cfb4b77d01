//! Real parts for testing the binaries' HTTPS stack: a test certificate authority, a TLS
//! endpoint in front of moto, and an HTTP proxy of the kind sites put in front of AWS.
//!
//! * [`TestCa`]: a fresh CA (rcgen) per test, written as a PEM file, and server
//!   certificates it signs. Being new, it is in no system store unless a test puts it there.
//! * [`TlsFront`]: a TLS server (rustls) on 127.0.0.1 that terminates TLS and relays each
//!   HTTP/1.1 request to a plain-HTTP upstream (moto); it records every handshake that
//!   failed and why (a client that does not trust the certificate sends `UnknownCA`).
//! * [`HttpProxy`]: a forward proxy on 127.0.0.1: absolute-form requests
//!   (`POST http://host:port/ HTTP/1.1`, what a client sends for `http://` through
//!   `HTTP_PROXY`) are relayed, and `CONNECT host:port` opens a tunnel (what a client
//!   does for `https://` through `HTTPS_PROXY`). It records each request line it got.
//!
//! Both servers use a thread per connection and stop, closing their connections, on drop.

use std::io::{self, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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

/// Accept loop and connection bookkeeping shared by both servers.
struct Listener {
    port: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(name: &str, serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let serve = Arc::new(serve);
        let (stop2, conns2) = (stop.clone(), conns.clone());
        let thread_name = name.to_string();
        let acceptor = std::thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(clone) = stream.try_clone() {
                        conns2.lock().unwrap().push(clone);
                    }
                    let serve = serve.clone();
                    let _ = std::thread::Builder::new()
                        .name(format!("{thread_name}-conn"))
                        .spawn(move || serve(stream));
                }
            })
            .expect("spawn accept thread");
        Listener {
            port,
            stop,
            conns,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// Sends `req` to `upstream` (`host:port`) on a new connection and returns its answer.
fn relay(upstream: &str, req: &http::Request) -> io::Result<http::Response> {
    let stream = TcpStream::connect(upstream)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    http::write_request(&mut writer, req)?;
    http::read_response(&mut BufReader::new(stream), req.method == "HEAD")
}

/// A TLS endpoint relaying to a plain-HTTP upstream.
pub struct TlsFront {
    listener: Listener,
    served: Arc<AtomicU64>,
    handshake_errors: Arc<Mutex<Vec<String>>>,
}

impl TlsFront {
    /// Serves `cert`/`key` on 127.0.0.1 and relays to `upstream` (`http://host:port`).
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
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let served = Arc::new(AtomicU64::new(0));
        let handshake_errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let (served2, errors2) = (served.clone(), handshake_errors.clone());
        let listener = Listener::start("tls-front", move |tcp| {
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
            // A response goes out as several TLS records; without this, Nagle's algorithm
            // holds the last one until the client's delayed ACK (about 40 ms a request).
            let _ = tcp.set_nodelay(true);
            let conn = rustls::ServerConnection::new(config.clone()).expect("TLS server connection");
            let mut reader = BufReader::new(rustls::StreamOwned::new(conn, tcp));
            loop {
                let req = match http::read_request(&mut reader, || Ok(())) {
                    Ok(Some(req)) => req,
                    Ok(None) => return,
                    Err(e) => {
                        if reader.get_ref().conn.is_handshaking() {
                            errors2.lock().unwrap().push(e.to_string());
                        }
                        return;
                    }
                };
                let resp = relay(&upstream, &req)
                    .unwrap_or_else(|e| http::Response::new(502, format!("TLS front: upstream {upstream}: {e}")));
                served2.fetch_add(1, Ordering::SeqCst);
                let close = req.wants_close();
                if http::write_response(reader.get_mut(), &resp, close, req.method == "HEAD").is_err() || close {
                    return;
                }
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
    pub fn start() -> HttpProxy {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen2 = seen.clone();
        let listener = Listener::start("http-proxy", move |client| {
            let _ = serve_proxy(client, &seen2);
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

fn serve_proxy(client: TcpStream, seen: &Mutex<Vec<String>>) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut to_client = client.try_clone()?;
    let mut reader = BufReader::new(client);
    loop {
        let mut continue_to = to_client.try_clone()?;
        let Some(mut req) =
            http::read_request(&mut reader, || continue_to.write_all(b"HTTP/1.1 100 Continue\r\n\r\n"))?
        else {
            return Ok(());
        };
        seen.lock().unwrap().push(format!("{} {}", req.method, req.target));
        if req.method == "CONNECT" {
            let upstream = match TcpStream::connect(req.target.as_str()) {
                Ok(s) => s,
                Err(_) => {
                    to_client
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
                    return Ok(());
                }
            };
            to_client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            // Upstream to client on a thread, client to upstream here (through `reader`,
            // which may already hold the first bytes of the tunnel).
            let (mut up_read, mut up_write) = (upstream.try_clone()?, upstream);
            let mut down = to_client.try_clone()?;
            let back = std::thread::spawn(move || {
                let _ = io::copy(&mut up_read, &mut down);
                let _ = down.shutdown(Shutdown::Write);
            });
            reader.get_ref().set_read_timeout(None)?;
            let _ = io::copy(&mut reader, &mut up_write);
            let _ = up_write.shutdown(Shutdown::Write);
            let _ = back.join();
            return Ok(());
        }
        // Absolute form: http://authority/path?query
        let Some(rest) = req.target.strip_prefix("http://") else {
            let resp = http::Response::new(400, "HTTP proxy: not an absolute-form http:// target");
            return http::write_response(&mut to_client, &resp, true, false);
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
            None => (rest.to_string(), "/".to_string()),
        };
        req.target = path;
        req.headers
            .retain(|(k, _)| !k.to_ascii_lowercase().starts_with("proxy-"));
        let resp = relay(&authority, &req)
            .unwrap_or_else(|e| http::Response::new(502, format!("HTTP proxy: upstream {authority}: {e}")));
        let close = req.wants_close();
        http::write_response(&mut to_client, &resp, close, req.method == "HEAD")?;
        if close {
            return Ok(());
        }
    }
}
