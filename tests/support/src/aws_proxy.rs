//! A fault-injecting HTTP/1.1 proxy between the program under test and moto.
//!
//! The program is pointed at [`AwsProxy::endpoint`] (e.g. `AWS_ENDPOINT_URL`), the
//! proxy forwards to the upstream endpoint given at start. Behaviour is switched at
//! run time with [`AwsProxy::set_mode`]:
//!
//! * `Pass`: forward method, target, headers (Host included, so SigV4 stays as
//!   signed) and body; relay status, headers and body. One upstream connection per
//!   request (hyper's client, [`http::fetch`]); the client side keeps alive.
//! * `Refuse`: real refusal: the listening socket leaves LISTEN but keeps its port,
//!   so connect() fails with ECONNREFUSED; switching back listens again on the SAME
//!   port. Open connections are shut down when Refuse starts.
//! * `Error500`: HTTP 500 with an EC2 `InternalError` XML body.
//! * `Throttle`: HTTP 503 with EC2's `RequestLimitExceeded` XML body (what EC2
//!   sends; aws-sdk-ec2 classifies the code as a throttling error and retries it).
//! * `Hang`: read the request, never answer. Hung connections are closed, unanswered,
//!   when the mode changes or the proxy is dropped.
//! * `RateLimit { per_second }`: the first `per_second` requests of each wall-clock
//!   second (UNIX time) pass, the rest get the throttle response.
//! * `Ec2TagBuckets`: EC2's own throttling of CreateTags and DeleteTags (EC2 API
//!   throttling documentation): a token bucket per action, 100 tokens, refilled 10 a
//!   second; a call finding its bucket empty gets the throttle response. Other actions
//!   pass.
//!
//! Counters count every request received (whatever the mode), per EC2 `Action`
//! (from the form body `Action=CreateTags&...`, or the query string). With
//! [`AwsProxy::keep_journal`] the proxy also keeps every request it relayed, with when it
//! came and when the upstream answered: a benchmark then tells when each tag reached
//! moto without asking moto (whose DescribeInstances of 1,000 instances takes seconds and
//! would slow the run it measures).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

use super::http::{self, Reply, Request, Response, Server};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    Pass,
    Refuse,
    Error500,
    Throttle,
    Hang,
    RateLimit { per_second: u32 },
    Ec2TagBuckets,
}

/// EC2's bucket for CreateTags, and another for DeleteTags.
pub const EC2_TAG_BUCKET: f64 = 100.0;
/// Tokens a second back in each.
pub const EC2_TAG_REFILL: f64 = 10.0;

#[derive(Default)]
struct Counters {
    total: u64,
    per_action: BTreeMap<String, u64>,
    forwarded: u64,
    forwarded_per_action: BTreeMap<String, u64>,
    throttled: u64,
    errors500: u64,
    hung: u64,
    upstream_failures: u64,
}

/// One request relayed to the upstream, kept by [`AwsProxy::keep_journal`].
#[derive(Clone, Debug)]
pub struct Relayed {
    pub action: String,
    /// The request's form body (`Action=CreateTags&ResourceId.1=...`).
    pub body: String,
    pub received: std::time::Instant,
    pub answered: std::time::Instant,
    /// The upstream's HTTP status.
    pub status: u16,
}

struct State {
    mode: ProxyMode,
    /// Relayed requests, once [`AwsProxy::keep_journal`] asked for them.
    journal: Option<Vec<Relayed>>,
    /// EC2 actions the proxy answers itself (XML body), in `Pass` mode: a stand-in for
    /// what moto serves too simply (its spot price history is one fixed price).
    answers: BTreeMap<String, String>,
    counters: Counters,
    /// (UNIX second, requests passed in it) for RateLimit.
    window: (u64, u32),
    /// Ec2TagBuckets: action -> (tokens, when last refilled).
    buckets: BTreeMap<String, (f64, std::time::Instant)>,
}

/// A running proxy; stops (closing all its connections) on drop.
pub struct AwsProxy {
    state: Arc<Mutex<State>>,
    server: Server,
}

/// Body EC2 sends with HTTP 503 when it throttles.
fn throttle_body() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        request_id()
    )
}

/// Body of EC2's HTTP 500 InternalError.
fn internal_error_body() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InternalError</Code><Message>An internal error has occurred.</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        request_id()
    )
}

fn request_id() -> String {
    let hex = |n: usize| {
        (0..n)
            .map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap())
            .collect::<String>()
    };
    format!("{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12))
}

fn xml(status: u16, body: String) -> Response {
    Response::new(status, body)
        .header("Content-Type", "text/xml;charset=UTF-8")
        .header("Server", "AmazonEC2")
}

/// EC2 `Action` of a query-protocol request: from the form body, else the query string.
fn action_of(req: &Request) -> Option<String> {
    let from = |s: &str| {
        s.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == "Action").then(|| v.to_string())
        })
    };
    std::str::from_utf8(&req.body)
        .ok()
        .and_then(from)
        .or_else(|| req.query().and_then(from))
}

impl AwsProxy {
    /// Starts a proxy in `Pass` mode forwarding to `upstream_endpoint`
    /// (`http://HOST:PORT`, plain HTTP).
    pub fn start(upstream_endpoint: &str) -> AwsProxy {
        let hostport = upstream_endpoint
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("upstream must be http://HOST:PORT, got {upstream_endpoint}"))
            .trim_end_matches('/')
            .to_string();
        let addr: SocketAddr = hostport
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("resolve {hostport}: {e}"))
            .next()
            .expect("upstream address");
        let state = Arc::new(Mutex::new(State {
            mode: ProxyMode::Pass,
            journal: None,
            answers: BTreeMap::new(),
            counters: Counters::default(),
            window: (0, 0),
            buckets: BTreeMap::new(),
        }));
        let st = state.clone();
        let server =
            Server::start("aws-proxy", Arc::new(move |req: &Request| handle(&st, addr, req))).expect("start AWS proxy");
        AwsProxy { state, server }
    }

    /// Answers every `action` request with `xml` (HTTP 200) instead of forwarding it.
    pub fn answer(&self, action: &str, xml: &str) {
        self.state
            .lock()
            .unwrap()
            .answers
            .insert(action.to_string(), xml.to_string());
    }

    /// `http://127.0.0.1:PORT`; stays the same across `Refuse` and back.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub fn set_mode(&self, mode: ProxyMode) {
        {
            let mut s = self.state.lock().unwrap();
            s.mode = mode;
            s.window = (0, 0);
            s.buckets.clear();
        }
        self.server.set_refusing(mode == ProxyMode::Refuse);
        // Hung connections close (unanswered) on any mode change.
        self.server.notify_change();
    }

    /// Ec2TagBuckets: `action`'s bucket is empty and stays empty for `seconds` more, as
    /// when other tools of the account keep spending it (whatever the time the caller
    /// under test takes to start, its first calls find it empty).
    pub fn spend_bucket(&self, action: &str, seconds: f64) {
        self.state.lock().unwrap().buckets.insert(
            action.to_string(),
            (-seconds * EC2_TAG_REFILL, std::time::Instant::now()),
        );
    }

    /// All requests received (every mode; none arrive while refusing).
    pub fn requests(&self) -> u64 {
        self.state.lock().unwrap().counters.total
    }

    /// Requests received with EC2 `Action` `action` (e.g. "CreateTags"), whatever
    /// their fate.
    pub fn count(&self, action: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .counters
            .per_action
            .get(action)
            .copied()
            .unwrap_or(0)
    }

    /// Received requests per action.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.state.lock().unwrap().counters.per_action.clone()
    }

    /// Requests relayed to the upstream (it answered, whatever the status).
    pub fn forwarded(&self) -> u64 {
        self.state.lock().unwrap().counters.forwarded
    }

    /// Requests of `action` relayed to the upstream.
    pub fn forwarded_count(&self, action: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .counters
            .forwarded_per_action
            .get(action)
            .copied()
            .unwrap_or(0)
    }

    /// Requests answered with the throttle response (Throttle and RateLimit modes).
    pub fn throttled(&self) -> u64 {
        self.state.lock().unwrap().counters.throttled
    }

    /// Requests answered 500 by Error500 mode.
    pub fn errors500(&self) -> u64 {
        self.state.lock().unwrap().counters.errors500
    }

    /// Requests that were held unanswered by Hang mode.
    pub fn hung(&self) -> u64 {
        self.state.lock().unwrap().counters.hung
    }

    /// Pass-mode requests that the upstream could not answer (proxy answered 502).
    pub fn upstream_failures(&self) -> u64 {
        self.state.lock().unwrap().counters.upstream_failures
    }

    /// From now on, keeps every relayed request (see [`Relayed`]); an earlier journal is
    /// dropped. (Used by benches/tagging_scale.)
    pub fn keep_journal(&self) {
        self.state.lock().unwrap().journal = Some(Vec::new());
    }

    /// The relayed requests kept since [`AwsProxy::keep_journal`], in the order the
    /// upstream answered them.
    pub fn journal(&self) -> Vec<Relayed> {
        self.state.lock().unwrap().journal.clone().unwrap_or_default()
    }

    pub fn reset_counts(&self) {
        self.state.lock().unwrap().counters = Counters::default();
    }

    /// CPU time the proxy has spent answering requests (its server's; the upstream
    /// exchange of a forwarded request runs on the shared HTTP client thread and is not in
    /// it).
    pub fn cpu_time(&self) -> std::time::Duration {
        self.server.cpu_time()
    }

    /// Connections currently open from clients.
    pub fn open_connections(&self) -> usize {
        self.server.open_connections()
    }
}

fn unix_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

enum Decision {
    Answer(String),
    Forward,
    Throttle,
    Error500,
    Hang,
    Close,
}

fn handle(state: &Mutex<State>, upstream: SocketAddr, req: &Request) -> Reply {
    let received = std::time::Instant::now();
    let action = action_of(req).unwrap_or_else(|| "(none)".to_string());
    let decision = {
        let mut s = state.lock().unwrap();
        if s.mode == ProxyMode::Refuse {
            // A request that raced the switch on an already open connection.
            Decision::Close
        } else {
            s.counters.total += 1;
            *s.counters.per_action.entry(action.clone()).or_insert(0) += 1;
            match s.mode {
                ProxyMode::Refuse => Decision::Close,
                ProxyMode::Pass => match s.answers.get(&action) {
                    Some(body) => Decision::Answer(body.clone()),
                    None => Decision::Forward,
                },
                ProxyMode::Error500 => {
                    s.counters.errors500 += 1;
                    Decision::Error500
                }
                ProxyMode::Throttle => {
                    s.counters.throttled += 1;
                    Decision::Throttle
                }
                ProxyMode::Hang => {
                    s.counters.hung += 1;
                    Decision::Hang
                }
                ProxyMode::Ec2TagBuckets if action == "CreateTags" || action == "DeleteTags" => {
                    let now = std::time::Instant::now();
                    let (tokens, last) = s.buckets.entry(action.clone()).or_insert((EC2_TAG_BUCKET, now));
                    *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * EC2_TAG_REFILL).min(EC2_TAG_BUCKET);
                    *last = now;
                    if *tokens >= 1.0 {
                        *tokens -= 1.0;
                        Decision::Forward
                    } else {
                        s.counters.throttled += 1;
                        Decision::Throttle
                    }
                }
                ProxyMode::Ec2TagBuckets => Decision::Forward,
                ProxyMode::RateLimit { per_second } => {
                    let now = unix_second();
                    if s.window.0 != now {
                        s.window = (now, 0);
                    }
                    if s.window.1 < per_second {
                        s.window.1 += 1;
                        Decision::Forward
                    } else {
                        s.counters.throttled += 1;
                        Decision::Throttle
                    }
                }
            }
        }
    };
    match decision {
        Decision::Close => Reply::Close,
        Decision::Answer(body) => Reply::Send(xml(200, body)),
        Decision::Hang => Reply::Hang,
        Decision::Error500 => Reply::Send(xml(500, internal_error_body())),
        Decision::Throttle => Reply::Send(xml(503, throttle_body())),
        Decision::Forward => match forward(upstream, req) {
            Ok(resp) => {
                let answered = std::time::Instant::now();
                let mut s = state.lock().unwrap();
                s.counters.forwarded += 1;
                *s.counters.forwarded_per_action.entry(action.clone()).or_insert(0) += 1;
                if let Some(journal) = s.journal.as_mut() {
                    journal.push(Relayed {
                        action,
                        body: String::from_utf8_lossy(&req.body).into_owned(),
                        received,
                        answered,
                        status: resp.status,
                    });
                }
                Reply::Send(resp)
            }
            Err(e) => {
                state.lock().unwrap().counters.upstream_failures += 1;
                Reply::Send(
                    Response::new(502, format!("aws_proxy: upstream {upstream}: {e}\n"))
                        .header("Content-Type", "text/plain"),
                )
            }
        },
    }
}

fn forward(upstream: SocketAddr, req: &Request) -> std::io::Result<Response> {
    let mut resp = http::fetch(&upstream.to_string(), req)?;
    resp.headers.retain(|(k, _)| !http::is_hop_header(k));
    Ok(resp)
}
