//! An IMDSv2 emulator on 127.0.0.1 (free port), close enough to the real instance
//! metadata service for the `aws-config` IMDS client:
//!
//! * `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds` (1..=21600,
//!   else 400; a request carrying `X-Forwarded-For` gets 403 like the real service) and
//!   answers the token as body together with the
//!   `X-aws-ec2-metadata-token-ttl-seconds` header (aws-config refuses a token
//!   response without it).
//! * every `GET` needs a valid, unexpired `X-aws-ec2-metadata-token` (else 401).
//! * serves `/latest/meta-data/instance-id`, `/latest/meta-data/placement/region`,
//!   `/latest/meta-data/placement/availability-zone`,
//!   `/latest/meta-data/instance-type` and
//!   `/latest/dynamic/instance-identity/document`; everything else is 404.
//!
//! Fault modes can be switched at run time with [`Imds::set_mode`].
//!
//! It runs on [`super::http::Server`] (hyper 1, with a raw listener for the refusal
//! modes), the server the fault proxy (`aws_proxy.rs`) runs on too.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::{Reply, Request, Response, Server};

/// Account id reported in the instance identity document.
pub const ACCOUNT_ID: &str = "123456789012";
/// Instance type reported by the emulator.
pub const INSTANCE_TYPE: &str = "c5.xlarge";

/// Fault mode of the emulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImdsMode {
    /// Behave like IMDSv2.
    Normal,
    /// Accept and read requests but never answer. A hung connection is closed
    /// (still without an answer) when the mode changes or the emulator is dropped.
    Hang,
    /// Answer every request (token PUT included) with HTTP 500.
    Error500,
    /// Accept connections and close them at once, before reading anything.
    Refuse,
}

struct State {
    instance_id: String,
    region: String,
    mode: ImdsMode,
    /// token -> expiry
    tokens: HashMap<String, Instant>,
    total: u64,
    per_path: BTreeMap<String, u64>,
    unauthorized: u64,
}

/// A running IMDSv2 emulator; stops (and closes every connection) on drop.
pub struct Imds {
    state: Arc<Mutex<State>>,
    server: Server,
}

impl Imds {
    /// Starts the emulator for `instance_id` in `region` (availability zone is
    /// `<region>a`).
    pub fn start(instance_id: &str, region: &str) -> Imds {
        let state = Arc::new(Mutex::new(State {
            instance_id: instance_id.to_string(),
            region: region.to_string(),
            mode: ImdsMode::Normal,
            tokens: HashMap::new(),
            total: 0,
            per_path: BTreeMap::new(),
            unauthorized: 0,
        }));
        let st = state.clone();
        let server =
            Server::start("imds", Arc::new(move |req: &Request| handle(&st, req))).expect("start IMDS emulator");
        Imds { state, server }
    }

    /// `http://127.0.0.1:PORT`, the value for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Environment that points aws-config's IMDS client at this emulator.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("AWS_EC2_METADATA_SERVICE_ENDPOINT".to_string(), self.endpoint())]
    }

    /// Switches the fault mode. Leaving `Hang` closes the hung connections unanswered.
    pub fn set_mode(&self, mode: ImdsMode) {
        self.state.lock().unwrap().mode = mode;
        self.server.set_closing_all(mode == ImdsMode::Refuse);
        // Wakes hung connections so they close.
        self.server.notify_change();
    }

    /// Forgets every issued token: following GETs with an old token get 401.
    pub fn expire_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    /// Total number of HTTP requests received (all modes except `Refuse`).
    pub fn requests(&self) -> u64 {
        self.state.lock().unwrap().total
    }

    /// Number of requests received for `path` (query string excluded), e.g.
    /// `"/latest/api/token"` or `"/latest/meta-data/instance-id"`.
    pub fn count(&self, path: &str) -> u64 {
        self.state.lock().unwrap().per_path.get(path).copied().unwrap_or(0)
    }

    /// Requests received, per path.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.state.lock().unwrap().per_path.clone()
    }

    /// Number of token PUTs received.
    pub fn token_requests(&self) -> u64 {
        self.count("/latest/api/token")
    }

    /// Number of GETs answered 401 (missing or invalid token).
    pub fn unauthorized(&self) -> u64 {
        self.state.lock().unwrap().unauthorized
    }

    /// Zeroes all counters.
    pub fn reset_counts(&self) {
        let mut s = self.state.lock().unwrap();
        s.total = 0;
        s.per_path.clear();
        s.unauthorized = 0;
    }
}

const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";

fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
    Response::new(status, body)
        .header("Content-Type", "text/plain")
        .header("Server", "EC2ws")
}

fn handle(state: &Mutex<State>, req: &Request) -> Reply {
    let mut s = state.lock().unwrap();
    if s.mode == ImdsMode::Refuse {
        return Reply::Close;
    }
    let path = req.path().to_string();
    s.total += 1;
    *s.per_path.entry(path.clone()).or_insert(0) += 1;
    match s.mode {
        ImdsMode::Refuse => return Reply::Close,
        ImdsMode::Hang => return Reply::Hang,
        ImdsMode::Error500 => return Reply::Send(text(500, "Internal Server Error")),
        ImdsMode::Normal => {}
    }
    let now = Instant::now();
    s.tokens.retain(|_, exp| *exp > now);

    if path == "/latest/api/token" {
        if req.method != "PUT" {
            return Reply::Send(text(405, "Method Not Allowed").header("Allow", "PUT"));
        }
        if req.header("x-forwarded-for").is_some() {
            return Reply::Send(text(403, "Forbidden"));
        }
        let ttl = match req.header(TTL_HEADER).map(|v| v.trim().parse::<u64>()) {
            Some(Ok(t)) if (1..=21600).contains(&t) => t,
            _ => return Reply::Send(text(400, "Bad Request")),
        };
        let token = random_token();
        s.tokens.insert(token.clone(), now + Duration::from_secs(ttl));
        return Reply::Send(text(200, token).header(TTL_HEADER, &ttl.to_string()));
    }

    if req.method != "GET" && req.method != "HEAD" {
        return Reply::Send(text(405, "Method Not Allowed"));
    }
    let valid = req
        .header(TOKEN_HEADER)
        .map(|t| s.tokens.contains_key(t.trim()))
        .unwrap_or(false);
    if !valid {
        s.unauthorized += 1;
        return Reply::Send(text(401, "Unauthorized"));
    }
    let az = format!("{}a", s.region);
    let body = match path.as_str() {
        "/latest/meta-data/instance-id" => s.instance_id.clone(),
        "/latest/meta-data/placement/region" => s.region.clone(),
        "/latest/meta-data/placement/availability-zone" => az,
        "/latest/meta-data/instance-type" => INSTANCE_TYPE.to_string(),
        "/latest/dynamic/instance-identity/document" => {
            let doc = serde_json::json!({
                "accountId": ACCOUNT_ID,
                "architecture": "x86_64",
                "availabilityZone": az,
                "billingProducts": null,
                "devpayProductCodes": null,
                "marketplaceProductCodes": null,
                "imageId": "ami-12c6146b",
                "instanceId": s.instance_id,
                "instanceType": INSTANCE_TYPE,
                "kernelId": null,
                "pendingTime": "2024-01-01T00:00:00Z",
                "privateIp": "10.0.0.10",
                "ramdiskId": null,
                "region": s.region,
                "version": "2017-09-30",
            });
            let body = serde_json::to_string_pretty(&doc).unwrap();
            return Reply::Send(Response::new(200, body).header("Content-Type", "application/json"));
        }
        _ => return Reply::Send(text(404, "Not Found")),
    };
    Reply::Send(text(200, body))
}

fn random_token() -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut t = String::from("AQAEA");
    for _ in 0..51 {
        t.push(alphabet[fastrand::usize(..alphabet.len())] as char);
    }
    t.push_str("==");
    t
}
