//! HTTP/1.1 for the fixtures, all of it hyper 1's: the server the IMDS emulator, the
//! fault-injecting AWS proxy, the Price List stand-in and the managed-script release
//! download run on, and a blocking client for the AWS proxy's upstream calls, moto's setup
//! calls and tests that speak HTTP themselves. No message is parsed or written here.
//!
//! [`Server`] serves each connection with hyper 1 (`hyper::server::conn::http1`: parsing,
//! keep-alive, `Expect: 100-continue`, chunked bodies, 400 on a malformed request) on a
//! tokio runtime of its own; the handler, plain blocking code, runs on the runtime's
//! blocking threads. What hyper does not do, because a test needs it, stays in our hands:
//! the listening socket is a raw `std` listener, so that [`Server::set_refusing`] can make
//! the port refuse connections (ECONNREFUSED) and take them again on the SAME port,
//! [`Server::set_closing_all`] can accept and drop them unread, and every open connection
//! can be shut down at once ([`Reply::Hang`] holds one unanswered). Loopback only.
//!
//! [`Connection`] (and [`fetch`], one request on a connection of its own) is hyper's
//! HTTP/1.1 client (`hyper::client::conn::http1`) behind a blocking API, driven by one
//! shared runtime thread; `connect` and `exchange` are its async halves, which the
//! relays of `https_parts` use on their own runtime.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use std::future::Future;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};

/// Largest body accepted, as a guard.
const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Request target as sent: path plus optional `?query`.
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
    /// Path without query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            reason: reason(status).to_string(),
            headers: Vec::new(),
            body: body.into(),
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    pub fn get_header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Hop-by-hop and framing headers that a relay must not copy (hyper frames each message
/// it writes itself).
pub fn is_hop_header(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "content-length",
        "te",
        "trailer",
        "upgrade",
        "expect",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

fn io_error(e: impl Into<BoxError>) -> io::Error {
    io::Error::other(e)
}

/// Longest wait for a TCP connection, and for a whole answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// The runtime the blocking client ([`Connection`]) runs on: one thread, shared by every
/// caller, started on first use and never stopped.
fn client_runtime() -> &'static tokio::runtime::Handle {
    static CLIENT: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("HTTP client runtime");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("http-client".to_string())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("spawn the HTTP client thread");
        handle
    })
}

/// Runs `fut` on the client runtime and waits for its output (from plain blocking code:
/// a test, a [`Server`] handler).
fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    client_runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("the HTTP client runtime stopped")
}

/// Opens a TCP connection to `addr` (`host:port`) and makes it a hyper HTTP/1.1 client
/// connection, driven by a task on the calling runtime.
pub(crate) async fn connect<B>(addr: &str) -> io::Result<hyper::client::conn::http1::SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr}")))??;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .map_err(io_error)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends `req` on `sender` and reads the whole answer (within [`ANSWER_TIMEOUT`]).
pub(crate) async fn exchange(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: hyper::Request<Full<Bytes>>,
) -> io::Result<hyper::Response<Bytes>> {
    let answer = async {
        sender.ready().await.map_err(io_error)?;
        let (parts, body) = sender.send_request(req).await.map_err(io_error)?.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(io_error)?
            .to_bytes();
        Ok(hyper::Response::from_parts(parts, body))
    };
    tokio::time::timeout(ANSWER_TIMEOUT, answer)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))?
}

/// One HTTP/1.1 client connection (hyper's client) behind a blocking API: for the AWS
/// proxy's upstream calls, moto's setup calls and tests that speak HTTP themselves.
/// Requests go one after the other on the same connection while the server keeps it alive.
pub struct Connection {
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// Connects to `addr` (`host:port`).
    pub fn open(addr: &str) -> io::Result<Connection> {
        let addr = addr.to_string();
        let sender = run(async move { connect(&addr).await })?;
        Ok(Connection { sender: Some(sender) })
    }

    /// Sends `req` and returns the answer. `req`'s framing headers are left to hyper
    /// (Content-Length from the body), except `Transfer-Encoding: chunked`, which is kept
    /// so that a test can send a chunked body.
    pub fn send(&mut self, req: &Request) -> io::Result<Response> {
        let mut sender = self
            .sender
            .take()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection lost"))?;
        let req = to_hyper_request(req)?;
        let (sender, answer) = run(async move {
            let answer = exchange(&mut sender, req).await;
            (sender, answer)
        });
        if answer.is_ok() {
            self.sender = Some(sender);
        }
        Ok(from_hyper_response(answer?))
    }

    /// True once the server has closed the connection (waiting up to `wait` for it).
    pub fn closed_within(&self, wait: Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let closed = self.sender.as_ref().is_none_or(|s| s.is_closed());
            if closed || std::time::Instant::now() >= deadline {
                return closed;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Sends `req` to `addr` (`host:port`) on a connection of its own, and returns the answer.
pub fn fetch(addr: &str, req: &Request) -> io::Result<Response> {
    Connection::open(addr)?.send(req)
}

fn to_hyper_request(req: &Request) -> io::Result<hyper::Request<Full<Bytes>>> {
    let mut out = hyper::Request::builder()
        .method(req.method.as_str())
        .uri(req.target.as_str());
    for (k, v) in &req.headers {
        let chunked = k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked");
        if chunked || !is_hop_header(k) {
            out = out.header(k.as_str(), v.as_str());
        }
    }
    out.body(Full::new(Bytes::from(req.body.clone()))).map_err(io_error)
}

fn from_hyper_response(resp: hyper::Response<Bytes>) -> Response {
    let (parts, body) = resp.into_parts();
    let reason = match parts.extensions.get::<hyper::ext::ReasonPhrase>() {
        Some(r) => String::from_utf8_lossy(r.as_bytes()).into_owned(),
        None => parts.status.canonical_reason().unwrap_or("").to_string(),
    };
    Response {
        status: parts.status.as_u16(),
        reason,
        headers: string_headers(&parts.headers),
        body: body.to_vec(),
    }
}

fn string_headers(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// What a handler wants done with a request.
pub enum Reply {
    /// Send this response (connection kept alive unless the client asked otherwise).
    Send(Response),
    /// Close the connection without answering.
    Close,
    /// Never answer: hold the connection until [`Server::notify_change`] is called
    /// or the server stops, then close it unanswered.
    Hang,
}

pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

struct Inner {
    name: String,
    listener: TcpListener,
    port: u16,
    stop: AtomicBool,
    /// Accept-and-close every connection at once.
    closing_all: AtomicBool,
    /// Listening state: false while refusing (listener shut down, port still bound).
    refusing: Mutex<bool>,
    /// Bumped by notify_change; hung connections wait on it.
    epoch: Mutex<u64>,
    changed: Condvar,
    /// A duplicate of each open connection's socket, to shut it down from outside.
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
    /// CPU time spent serving connections (hyper's parsing and writing on the runtime's
    /// thread, the handler on a blocking thread), in nanoseconds.
    cpu_nanos: AtomicU64,
    handler: Handler,
}

/// An HTTP/1.1 server on 127.0.0.1 (see the module's documentation). Dropping it stops
/// the accept thread (joined) and the runtime, and shuts down every open connection.
pub struct Server {
    inner: Arc<Inner>,
    acceptor: Option<JoinHandle<()>>,
    /// Drives the runtime until told to stop, then drops it with whatever it still holds.
    driver: Option<(JoinHandle<()>, Arc<tokio::sync::Notify>)>,
}

/// Binds 127.0.0.1 on a free port chosen by the kernel, then re-binds that port
/// explicitly: a socket bound to an explicit port keeps it while its listen queue
/// is shut down (see [`Server::set_refusing`]), one bound to port 0 would lose it.
fn bind_free_port() -> io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap())
}

impl Server {
    pub fn start(name: &str, handler: Handler) -> io::Result<Server> {
        let listener = bind_free_port()?;
        let port = listener.local_addr()?.port();
        let inner = Arc::new(Inner {
            name: name.to_string(),
            listener,
            port,
            stop: AtomicBool::new(false),
            closing_all: AtomicBool::new(false),
            refusing: Mutex::new(false),
            epoch: Mutex::new(0),
            changed: Condvar::new(),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            cpu_nanos: AtomicU64::new(0),
            handler,
        });
        // One thread runs the connections (hyper), a handler runs on a blocking thread
        // (hundreds at once in the scale tests; a hung request holds one).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .thread_name(format!("{name}-handler"))
            .thread_stack_size(256 * 1024)
            .max_blocking_threads(2048)
            .build()?;
        let handle = runtime.handle().clone();
        let stopping = Arc::new(tokio::sync::Notify::new());
        let until = stopping.clone();
        let driver = std::thread::Builder::new().name(format!("{name}-io")).spawn(move || {
            runtime.block_on(until.notified());
            // Handlers still running (a relay waiting on its upstream) end on their own.
            runtime.shutdown_background();
        })?;
        let i2 = inner.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || accept_loop(i2, handle))?;
        Ok(Server {
            inner,
            acceptor: Some(acceptor),
            driver: Some((driver, stopping)),
        })
    }

    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// Wakes hung connections (they close unanswered) after a mode change.
    pub fn notify_change(&self) {
        *self.inner.epoch.lock().unwrap() += 1;
        self.inner.changed.notify_all();
    }

    /// Accept-and-close mode: every new connection is closed before anything is
    /// read; open connections are shut down when it is switched on.
    pub fn set_closing_all(&self, on: bool) {
        self.inner.closing_all.store(on, Ordering::SeqCst);
        if on {
            self.close_connections();
        }
    }

    /// Real connection refusal. Switching on shuts the listening socket down: on
    /// Linux it leaves LISTEN (the kernel answers new SYNs with RST, so connect()
    /// fails with ECONNREFUSED) but stays bound to its port, so switching off
    /// simply listen()s again on the same port, with no window in which another
    /// socket could take it. Open connections are shut down too. (This is why the
    /// listener is a raw socket and not one hyper or tokio owns.)
    pub fn set_refusing(&self, on: bool) {
        let mut refusing = self.inner.refusing.lock().unwrap();
        if on == *refusing {
            return;
        }
        let fd = self.inner.listener.as_raw_fd();
        if on {
            // SAFETY: plain syscall on a descriptor we own for our whole lifetime.
            let rc = unsafe { libc::shutdown(fd, libc::SHUT_RD) };
            assert_eq!(
                rc,
                0,
                "{}: shutdown(listener): {}",
                self.inner.name,
                io::Error::last_os_error()
            );
            *refusing = true;
            drop(refusing);
            self.close_connections();
        } else {
            // SAFETY: as above.
            let rc = unsafe { libc::listen(fd, 1024) };
            assert_eq!(
                rc,
                0,
                "{}: listen() again on port {}: {}",
                self.inner.name,
                self.inner.port,
                io::Error::last_os_error()
            );
            *refusing = false;
            drop(refusing);
        }
        self.notify_change();
    }

    /// Shuts down every open connection (hyper sees the end of its stream and stops).
    pub fn close_connections(&self) {
        for (_, c) in self.inner.conns.lock().unwrap().drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// CPU time (user + system) the server has spent serving connections so far: the
    /// server's own share of the test process.
    pub fn cpu_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.inner.cpu_nanos.load(Ordering::SeqCst))
    }

    /// Number of connections currently open.
    pub fn open_connections(&self) -> usize {
        self.inner.conns.lock().unwrap().len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        {
            let refusing = self.inner.refusing.lock().unwrap();
            if !*refusing {
                // Wakes the blocked accept() (it returns EINVAL).
                // SAFETY: plain syscall on our own descriptor.
                unsafe { libc::shutdown(self.inner.listener.as_raw_fd(), libc::SHUT_RD) };
            }
        }
        self.notify_change();
        self.close_connections();
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        if let Some((driver, stopping)) = self.driver.take() {
            stopping.notify_one();
            let _ = driver.join();
        }
        // Connections accepted while we were stopping.
        self.close_connections();
    }
}

fn accept_loop(inner: Arc<Inner>, runtime: tokio::runtime::Handle) {
    loop {
        if inner.stop.load(Ordering::SeqCst) {
            return;
        }
        {
            // While refusing, wait for a change instead of spinning on EINVAL.
            let mut epoch = inner.epoch.lock().unwrap();
            while *inner.refusing.lock().unwrap() && !inner.stop.load(Ordering::SeqCst) {
                epoch = inner.changed.wait(epoch).unwrap();
            }
        }
        if inner.stop.load(Ordering::SeqCst) {
            return;
        }
        match inner.listener.accept() {
            Ok((stream, _)) => {
                if inner.stop.load(Ordering::SeqCst) {
                    return;
                }
                if inner.closing_all.load(Ordering::SeqCst) {
                    let _ = stream.shutdown(Shutdown::Both);
                    continue;
                }
                let id = inner.next_id.fetch_add(1, Ordering::SeqCst);
                match stream.try_clone() {
                    Ok(c) => {
                        inner.conns.lock().unwrap().insert(id, c);
                    }
                    Err(_) => continue,
                }
                runtime.spawn(serve_connection(inner.clone(), id, stream));
            }
            Err(_) => {
                // EINVAL after shutdown (refusing or stopping), or a transient
                // error such as EMFILE: back off briefly.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// Serves one connection with hyper until either side closes it, counting the CPU time of
/// each step; then shuts the socket down and forgets it.
async fn serve_connection(inner: Arc<Inner>, id: u64, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let tcp = stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpStream::from_std(stream));
    if let Ok(tcp) = tcp {
        let i2 = inner.clone();
        let service = hyper::service::service_fn(move |req| answer(i2.clone(), req));
        let conn = hyper::server::conn::http1::Builder::new()
            .header_read_timeout(None)
            .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
        let mut conn = std::pin::pin!(conn);
        let _ = std::future::poll_fn(|cx| {
            let before = thread_cpu();
            let step = conn.as_mut().poll(cx);
            inner
                .cpu_nanos
                .fetch_add(thread_cpu().saturating_sub(before), Ordering::SeqCst);
            step
        })
        .await;
    }
    if let Some(c) = inner.conns.lock().unwrap().remove(&id) {
        let _ = c.shutdown(Shutdown::Both);
    }
}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One request: read whole, handed to the handler on a blocking thread, answered. An
/// error makes hyper close the connection without an answer ([`Reply::Close`],
/// [`Reply::Hang`] once released, a stopping server).
async fn answer(inner: Arc<Inner>, req: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, BoxError> {
    if inner.stop.load(Ordering::SeqCst) || inner.closing_all.load(Ordering::SeqCst) {
        return Err("server stopping".into());
    }
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, MAX_BODY).collect().await?.to_bytes();
    let request = Request {
        method: parts.method.as_str().to_string(),
        target: parts.uri.to_string(),
        version: format!("{:?}", parts.version),
        headers: string_headers(&parts.headers),
        body: body.to_vec(),
    };
    let i2 = inner.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let before = thread_cpu();
        let reply = (i2.handler)(&request);
        if let Reply::Hang = reply {
            let mut epoch = i2.epoch.lock().unwrap();
            let start = *epoch;
            while *epoch == start && !i2.stop.load(Ordering::SeqCst) {
                epoch = i2.changed.wait(epoch).unwrap();
            }
        }
        i2.cpu_nanos
            .fetch_add(thread_cpu().saturating_sub(before), Ordering::SeqCst);
        reply
    })
    .await?;
    if inner.stop.load(Ordering::SeqCst) {
        return Err("server stopping".into());
    }
    match reply {
        Reply::Send(resp) => Ok(to_hyper(resp)?),
        Reply::Close => Err("closed unanswered".into()),
        Reply::Hang => Err("hung, released unanswered".into()),
    }
}

/// Our [`Response`] as hyper's; hyper adds Content-Length, Date (unless given) and
/// Connection itself, so those of ours that are hop-by-hop are left out.
fn to_hyper(resp: Response) -> Result<hyper::Response<Full<Bytes>>, BoxError> {
    let mut out = hyper::Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        if !is_hop_header(k) {
            out = out.header(k.as_str(), v.as_str());
        }
    }
    if !resp.reason.is_empty()
        && Some(resp.reason.as_str()) != hyper::StatusCode::from_u16(resp.status)?.canonical_reason()
    {
        if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(resp.reason.clone()) {
            out = out.extension(reason);
        }
    }
    Ok(out.body(Full::new(Bytes::from(resp.body)))?)
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes into the struct we hand it.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
