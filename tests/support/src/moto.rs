//! A private moto server (`moto_server`, from `pip install 'moto[server]'`) on
//! 127.0.0.1, for tests that need a real EC2 API (RunInstances, CreateTags,
//! DescribeTags, DeleteTags...).
//!
//! The server is started with `-p 0`, so the kernel picks a free port and werkzeug
//! prints it ("Running on http://127.0.0.1:PORT"); the port is read back from the log,
//! which leaves no race with other tests choosing ports. Dropping [`MotoServer`] kills
//! that one process by pid and waits for it.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{Filter, InstanceType, Tag};
use aws_sdk_ec2::Client;

/// An AMI id from moto's bundled default AMI list (the one moto's own tests use).
/// moto does not validate ImageId unless MOTO_ENABLE_AMI_VALIDATION=true, but this
/// one exists in every region there.
pub const AMI_ID: &str = "ami-12c6146b";
pub const REGION: &str = "us-east-1";
/// Account id moto uses by default.
pub const ACCOUNT_ID: &str = "123456789012";

/// AWS variables a test should remove from a child's environment before applying
/// [`MotoServer::env`], so a developer's own settings cannot leak in.
pub const AWS_ENV_TO_REMOVE: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL_EC2",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_SDK_UA_APP_ID",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

pub struct MotoServer {
    child: Child,
    port: u16,
    log: PathBuf,
    /// Private to this server (holds the log); removed on drop.
    _dir: tempfile::TempDir,
}

impl MotoServer {
    /// Starts a fresh moto server, or returns None (after [`super::require`], which
    /// panics under CI=true) when `moto_server` is not installed.
    pub fn start() -> Option<MotoServer> {
        let Some(moto_server) = super::tool("moto_server") else {
            super::require("moto server (pip install 'moto[server]')", false);
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("moto-")
            .tempdir()
            .expect("tempdir for moto");
        let log = dir.path().join("moto_server.log");
        let out = std::fs::File::create(&log).expect("create moto log");
        let err = out.try_clone().expect("dup moto log");
        let mut cmd = Command::new(moto_server);
        cmd.args(["-H", "127.0.0.1", "-p", "0"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .env("PYTHONUNBUFFERED", "1");
        for v in AWS_ENV_TO_REMOVE {
            cmd.env_remove(v);
        }
        let child = cmd.spawn().expect("spawn moto_server");
        let mut server = MotoServer {
            child,
            port: 0,
            log,
            _dir: dir,
        };
        server.wait_ready(Duration::from_secs(30));
        server.warm_up();
        Some(server)
    }

    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("moto_server exited early ({status}); log:\n{}", self.log_tail(40));
            }
            if self.port == 0 {
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                if let Some(rest) = text.split("Running on http://127.0.0.1:").nth(1) {
                    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                    self.port = digits.parse().unwrap_or(0);
                }
            }
            if self.port != 0 && probe(self.port) {
                return;
            }
            if Instant::now() > deadline {
                let tail = self.log_tail(40);
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "moto_server did not answer within {limit:?} (port {}); log:\n{tail}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// moto builds its EC2 backend for a region on the first EC2 request (~1 s, more
    /// on a loaded machine). Do it now, with a read-only DescribeTags, so that tests
    /// with tight SDK timeouts are not surprised by it.
    fn warm_up(&self) {
        let req = super::http::Request {
            method: "POST".into(),
            target: "/".into(),
            version: "HTTP/1.1".into(),
            headers: vec![
                ("Host".into(), format!("127.0.0.1:{}", self.port)),
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded; charset=utf-8".into(),
                ),
                (
                    "Authorization".into(),
                    format!(
                        "AWS4-HMAC-SHA256 Credential=testing/20240101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=0"
                    ),
                ),
            ],
            body: b"Action=DescribeTags&Version=2016-11-15".to_vec(),
        };
        let answer = super::http::fetch(&format!("127.0.0.1:{}", self.port), &req);
        match answer {
            Ok(a) if a.status == 200 => {}
            other => panic!(
                "moto warm-up DescribeTags failed: {other:?}; log:\n{}",
                self.log_tail(40)
            ),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Environment for a program under test that talks to this moto server.
    pub fn env(&self) -> Vec<(String, String)> {
        env_for(&self.endpoint())
    }

    /// Last `lines` lines of the server's log (stdout + stderr).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A client talking to this server directly (3 attempts).
    pub fn client(&self) -> Client {
        ec2_client_with(&self.endpoint(), 3)
    }

    /// Launches `n` instances of [`AMI_ID`] and returns their ids.
    pub fn run_instances(&self, n: i32) -> Vec<String> {
        let client = self.client();
        block_on(async move {
            let out = client
                .run_instances()
                .image_id(AMI_ID)
                .instance_type(InstanceType::T3Micro)
                .min_count(n)
                .max_count(n)
                .send()
                .await
                .unwrap_or_else(|e| panic!("moto RunInstances: {}", error_text(&e)));
            out.instances()
                .iter()
                .map(|i| i.instance_id().expect("instance id").to_string())
                .collect()
        })
    }

    /// Tags of `resource_id` (DescribeTags filtered on resource-id).
    pub fn tags(&self, resource_id: &str) -> BTreeMap<String, String> {
        tags_via(&self.endpoint(), resource_id)
    }

    pub fn create_tags(&self, resource_id: &str, tags: &[(&str, &str)]) {
        let client = self.client();
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect();
        block_on(async move {
            client
                .create_tags()
                .resources(resource_id)
                .set_tags(Some(tags))
                .send()
                .await
                .unwrap_or_else(|e| panic!("moto CreateTags: {}", error_text(&e)));
        })
    }

    /// Deletes the given tag keys (whatever their value).
    pub fn delete_tags(&self, resource_id: &str, keys: &[&str]) {
        let client = self.client();
        let tags: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(*k).build()).collect();
        block_on(async move {
            client
                .delete_tags()
                .resources(resource_id)
                .set_tags(Some(tags))
                .send()
                .await
                .unwrap_or_else(|e| panic!("moto DeleteTags: {}", error_text(&e)));
        })
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Our own child only, by pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MotoServer {
    /// Queues Cost Explorer answers: each GetCostAndUsage with new parameters (a next
    /// page token included) takes the next one (moto's `/moto-api/static/ce/...`).
    pub fn queue_cost_and_usage(&self, results: &[serde_json::Value]) {
        let body = serde_json::json!({ "results": results }).to_string();
        let req = super::http::Request {
            method: "POST".into(),
            target: "/moto-api/static/ce/cost-and-usage-results".into(),
            version: "HTTP/1.1".into(),
            headers: vec![
                ("Host".into(), format!("127.0.0.1:{}", self.port)),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: body.into_bytes(),
        };
        let resp = super::http::fetch(&format!("127.0.0.1:{}", self.port), &req).expect("moto's answer");
        assert_eq!(resp.status, 201, "moto-api ce: {}", String::from_utf8_lossy(&resp.body));
    }
}

/// One compute node's AWS side: a fresh moto server with one instance, the IMDSv2
/// emulator answering as that instance, and a private directory for its files.
pub struct MotoInstance {
    pub moto: MotoServer,
    pub imds: super::imds::Imds,
    pub instance: String,
    pub dir: tempfile::TempDir,
}

impl MotoInstance {
    /// None (after [`super::require`]) without moto.
    pub fn start() -> Option<MotoInstance> {
        let moto = MotoServer::start()?;
        let instance = moto.run_instances(1).remove(0);
        let imds = super::imds::Imds::start(&instance, REGION);
        let dir = tempfile::tempdir().unwrap();
        Some(MotoInstance {
            moto,
            imds,
            instance,
            dir,
        })
    }
}

/// True when something answers HTTP on 127.0.0.1:port.
fn probe(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n >= 5 && buf.starts_with(b"HTTP/"))
}

/// Environment for a program under test whose AWS endpoint is `endpoint` (moto, or
/// an [`super::aws_proxy::AwsProxy`] in front of it): endpoint, region, static
/// credentials, and config/credentials files that do not exist so the SDK never
/// reads a developer's profile. Remove [`AWS_ENV_TO_REMOVE`] too.
/// IMDS is NOT disabled here (tests may pair this with the IMDS emulator); with region
/// and credentials set in the environment, aws-config never asks IMDS for them.
pub fn env_for(endpoint: &str) -> Vec<(String, String)> {
    let none = std::env::temp_dir().join("cost-tags-test-no-such-aws-dir");
    [
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_REGION", REGION.to_string()),
        ("AWS_DEFAULT_REGION", REGION.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_CONFIG_FILE", none.join("config").display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            none.join("credentials").display().to_string(),
        ),
        ("NO_PROXY", "127.0.0.1,localhost".to_string()),
        ("no_proxy", "127.0.0.1,localhost".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Applies [`env_for`] to a command, after removing [`AWS_ENV_TO_REMOVE`].
pub fn apply_env(cmd: &mut Command, endpoint: &str) {
    for v in AWS_ENV_TO_REMOVE {
        cmd.env_remove(v);
    }
    cmd.envs(env_for(endpoint));
}

/// An EC2 client for `endpoint` (moto or a proxy), built without reading any
/// environment, profile or IMDS: region us-east-1, static "testing" credentials,
/// standard retries with `max_attempts` attempts (1 = no retry), a 30 s operation
/// timeout.
pub fn ec2_client_with(endpoint: &str, max_attempts: u32) -> Client {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "cost-tags-tests"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// Tags of `resource_id` read through `endpoint`.
pub fn tags_via(endpoint: &str, resource_id: &str) -> BTreeMap<String, String> {
    let client = ec2_client_with(endpoint, 3);
    block_on(async move {
        let mut tags = BTreeMap::new();
        let mut next: Option<String> = None;
        loop {
            let out = client
                .describe_tags()
                .filters(Filter::builder().name("resource-id").values(resource_id).build())
                .set_next_token(next.take())
                .send()
                .await
                .unwrap_or_else(|e| panic!("DescribeTags: {}", error_text(&e)));
            for t in out.tags() {
                tags.insert(
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                );
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return tags,
            }
        }
    })
}

/// Runs a future to completion on a fresh current-thread tokio runtime, in a scoped
/// thread so it also works when called from inside another runtime (#[tokio::test]).
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(fut)
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Code and message of an SDK error, for assertions and panic messages.
pub fn error_text<E, R>(e: &aws_sdk_ec2::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
    match e.code() {
        Some(code) => format!("{code}: {} ({})", e.message().unwrap_or(""), DisplayErrorContext(e)),
        None => format!("{}", DisplayErrorContext(e)),
    }
}

/// A Budgets client for `endpoint`, built without reading any environment.
pub fn budgets_client(endpoint: &str) -> aws_sdk_budgets::Client {
    use aws_sdk_budgets::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_budgets::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_budgets::Client::from_conf(config)
}

/// Creates a monthly COST budget with the spend AWS would have calculated (moto keeps
/// the CalculatedSpend it is given, so tests can say how much is spent).
pub async fn add_budget(client: &aws_sdk_budgets::Client, name: &str, limit: &str, actual: &str) {
    use aws_sdk_budgets::types::{Budget, BudgetType, CalculatedSpend, Spend, TimeUnit};
    let usd = |amount: &str| Spend::builder().amount(amount).unit("USD").build().unwrap();
    let budget = Budget::builder()
        .budget_name(name)
        .budget_type(BudgetType::Cost)
        .time_unit(TimeUnit::Monthly)
        .budget_limit(usd(limit))
        .calculated_spend(CalculatedSpend::builder().actual_spend(usd(actual)).build())
        .build()
        .unwrap();
    client
        .create_budget()
        .account_id(ACCOUNT_ID)
        .budget(budget)
        .send()
        .await
        .expect("CreateBudget on moto");
}
