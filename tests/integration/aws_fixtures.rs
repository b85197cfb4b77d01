//! Self-tests of the AWS stand-ins in support/: moto, the IMDSv2 emulator and
//! the fault-injecting proxy. They exercise the fixtures through the real SDK clients
//! the product uses (aws-sdk-ec2, aws-config's IMDS client).

use crate::support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::Tag;

use support::aws_proxy::{AwsProxy, ProxyMode};
use support::http::{self, Request};
use support::imds::{Imds, ImdsMode};
use support::moto::{self, block_on, ec2_client_with, MotoServer};

// ---------------------------------------------------------------- helpers

fn raw_request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> http::Response {
    let mut conn = http::Connection::open(&format!("127.0.0.1:{port}")).expect("connect");
    send(&mut conn, method, path, headers, b"")
}

fn send(
    conn: &mut http::Connection,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> http::Response {
    let req = Request {
        method: method.to_string(),
        target: path.to_string(),
        version: "HTTP/1.1".to_string(),
        headers: std::iter::once(("Host".to_string(), "127.0.0.1".to_string()))
            .chain(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .collect(),
        body: body.to_vec(),
    };
    conn.send(&req).expect("response")
}

/// One keep-alive request on an open connection.
fn keepalive_request(
    conn: &mut http::Connection,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Response {
    send(conn, method, path, headers, b"")
}

fn body_str(r: &http::Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn port_of(endpoint: &str) -> u16 {
    endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

/// Sleeps until just after the next wall-clock second starts.
fn align_to_second() {
    let now = unix_now();
    let into = now.subsec_millis() as u64;
    std::thread::sleep(Duration::from_millis(1000 - into + 20));
}

// ---------------------------------------------------------------- moto

#[test]
fn moto_run_instances_and_tag_round_trip() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let ids = moto.run_instances(2);
    assert_eq!(ids.len(), 2, "{ids:?}");
    for id in &ids {
        assert!(id.starts_with("i-"), "instance id {id}");
    }
    assert_ne!(ids[0], ids[1]);
    assert!(moto.tags(&ids[0]).is_empty(), "fresh instance has no tags");

    moto.create_tags(&ids[0], &[("Project", "climate-42"), ("User", "alice"), ("Empty", "")]);
    let tags = moto.tags(&ids[0]);
    assert_eq!(tags.get("Project").map(String::as_str), Some("climate-42"));
    assert_eq!(tags.get("User").map(String::as_str), Some("alice"));
    assert_eq!(tags.get("Empty").map(String::as_str), Some(""));
    assert_eq!(tags.len(), 3, "{tags:?}");
    assert!(
        moto.tags(&ids[1]).is_empty(),
        "tags must not leak to the other instance"
    );

    // Overwrite, then delete by key.
    moto.create_tags(&ids[0], &[("User", "bob")]);
    assert_eq!(moto.tags(&ids[0]).get("User").map(String::as_str), Some("bob"));
    moto.delete_tags(&ids[0], &["User", "Empty"]);
    let tags = moto.tags(&ids[0]);
    assert_eq!(
        tags.into_iter().collect::<Vec<_>>(),
        vec![("Project".to_string(), "climate-42".to_string())]
    );

    let env = moto.env();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("AWS_ENDPOINT_URL"), Some(moto.endpoint()));
    assert_eq!(get("AWS_REGION").as_deref(), Some("us-east-1"));
    assert!(!std::path::Path::new(&get("AWS_CONFIG_FILE").unwrap()).exists());
}

#[test]
fn moto_servers_are_independent_and_killed_on_drop() {
    let Some(a) = MotoServer::start() else { return };
    let Some(b) = MotoServer::start() else { return };
    assert_ne!(a.port(), b.port());
    let ia = a.run_instances(1);
    let ib = b.run_instances(1);
    a.create_tags(&ia[0], &[("K", "a")]);
    assert!(b.tags(&ia[0]).is_empty(), "servers must not share state");
    assert!(b.tags(&ib[0]).is_empty());
    let pid = a.pid() as i32;
    let port = a.port();
    drop(a);
    // The process is gone (reaped) and its port closed.
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(),
        "moto pid {pid} still alive"
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

// ---------------------------------------------------------------- IMDS

#[test]
fn imds_enforces_tokens_like_imdsv2() {
    let imds = Imds::start("i-0123456789abcdef0", "eu-west-1");
    let port = imds.port();

    let r = raw_request(port, "GET", "/latest/meta-data/instance-id", &[]);
    assert_eq!(r.status, 401, "GET without token");
    let r = raw_request(
        port,
        "GET",
        "/latest/meta-data/instance-id",
        &[("X-aws-ec2-metadata-token", "bogus")],
    );
    assert_eq!(r.status, 401, "GET with unknown token");

    let r = raw_request(port, "PUT", "/latest/api/token", &[]);
    assert_eq!(r.status, 400, "token PUT without TTL header");
    let r = raw_request(
        port,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "0")],
    );
    assert_eq!(r.status, 400, "TTL 0 is invalid");
    let r = raw_request(
        port,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "21601")],
    );
    assert_eq!(r.status, 400, "TTL above 6 h is invalid");
    let r = raw_request(
        port,
        "GET",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(r.status, 405);

    // Keep-alive: token and several GETs on one connection.
    let mut conn = http::Connection::open(&format!("127.0.0.1:{port}")).unwrap();
    let r = keepalive_request(
        &mut conn,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "300")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.get_header("x-aws-ec2-metadata-token-ttl-seconds"), Some("300"));
    let token = body_str(&r);
    assert!(token.len() > 20, "token {token:?}");
    let auth = [("X-aws-ec2-metadata-token", token.as_str())];
    let r = keepalive_request(&mut conn, "GET", "/latest/meta-data/instance-id", &auth);
    assert_eq!((r.status, body_str(&r)), (200, "i-0123456789abcdef0".to_string()));
    let r = keepalive_request(&mut conn, "GET", "/latest/meta-data/placement/region", &auth);
    assert_eq!((r.status, body_str(&r)), (200, "eu-west-1".to_string()));
    let r = keepalive_request(&mut conn, "GET", "/latest/dynamic/instance-identity/document", &auth);
    assert_eq!(r.status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["instanceId"], "i-0123456789abcdef0");
    assert_eq!(doc["region"], "eu-west-1");
    assert_eq!(doc["accountId"], "123456789012");
    assert_eq!(doc["availabilityZone"], "eu-west-1a");
    assert!(doc["instanceType"].is_string());
    let r = keepalive_request(&mut conn, "GET", "/latest/meta-data/nope", &auth);
    assert_eq!(r.status, 404);

    assert_eq!(imds.count("/latest/meta-data/instance-id"), 3);
    assert_eq!(imds.token_requests(), 5);
    assert_eq!(imds.requests(), 11);
    assert_eq!(imds.unauthorized(), 2);

    imds.expire_tokens();
    let r = keepalive_request(&mut conn, "GET", "/latest/meta-data/instance-id", &auth);
    assert_eq!(r.status, 401, "expired token");
    imds.reset_counts();
    assert_eq!(imds.requests(), 0);
    assert_eq!(
        imds.env(),
        vec![("AWS_EC2_METADATA_SERVICE_ENDPOINT".to_string(), imds.endpoint())]
    );
}

fn imds_client(imds: &Imds, attempts: u32) -> aws_config::imds::client::Client {
    aws_config::imds::client::Client::builder()
        .endpoint(imds.endpoint())
        .expect("endpoint")
        .max_attempts(attempts)
        .connect_timeout(Duration::from_millis(500))
        .read_timeout(Duration::from_millis(500))
        .operation_timeout(Duration::from_secs(3))
        .build()
}

#[test]
fn imds_serves_the_aws_config_client_and_its_faults() {
    let imds = Imds::start("i-0aaaabbbbccccdddd", "us-west-2");
    let client = imds_client(&imds, 1);
    block_on(async {
        let id = client
            .get("/latest/meta-data/instance-id")
            .await
            .expect("instance-id via aws-config");
        assert_eq!(id.as_ref(), "i-0aaaabbbbccccdddd");
        let region = client
            .get("/latest/meta-data/placement/region")
            .await
            .expect("region via aws-config");
        assert_eq!(region.as_ref(), "us-west-2");
        let doc = client
            .get("/latest/dynamic/instance-identity/document")
            .await
            .expect("document");
        let doc: serde_json::Value = serde_json::from_str(doc.as_ref()).unwrap();
        assert_eq!(doc["instanceId"], "i-0aaaabbbbccccdddd");
    });
    // The token is cached by the client: one PUT for three GETs.
    assert_eq!(imds.token_requests(), 1, "{:?}", imds.counts());
    assert_eq!(imds.count("/latest/meta-data/instance-id"), 1);

    for mode in [ImdsMode::Error500, ImdsMode::Hang, ImdsMode::Refuse] {
        imds.set_mode(mode);
        let fresh = imds_client(&imds, 1);
        let started = Instant::now();
        let r = block_on(async { fresh.get("/latest/meta-data/instance-id").await });
        assert!(r.is_err(), "{mode:?} must fail, got {r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{mode:?} took {:?}",
            started.elapsed()
        );
    }
    imds.set_mode(ImdsMode::Normal);
    let fresh = imds_client(&imds, 1);
    let id = block_on(async { fresh.get("/latest/meta-data/instance-id").await }).expect("back to normal");
    assert_eq!(id.as_ref(), "i-0aaaabbbbccccdddd");
}

#[test]
fn imds_hang_is_released_by_mode_change_and_drop() {
    let imds = Imds::start("i-1", "us-east-1");
    imds.set_mode(ImdsMode::Hang);
    let mut s = TcpStream::connect(("127.0.0.1", imds.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    imds.set_mode(ImdsMode::Normal);
    let mut buf = Vec::new();
    let started = Instant::now();
    let n = s
        .read_to_end(&mut buf)
        .expect("hung connection is closed, not timed out");
    assert_eq!(n, 0, "a hung request is never answered");
    assert!(started.elapsed() < Duration::from_secs(5));

    imds.set_mode(ImdsMode::Hang);
    let mut s = TcpStream::connect(("127.0.0.1", imds.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    drop(imds);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drop must not block on hung connections"
    );
    let mut buf = Vec::new();
    assert_eq!(s.read_to_end(&mut buf).unwrap_or(0), 0);
}

// ---------------------------------------------------------------- proxy

#[test]
fn proxy_passes_and_counts_by_action() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let proxy = AwsProxy::start(&moto.endpoint());
    let client = ec2_client_with(&proxy.endpoint(), 1);
    let ids = block_on(async {
        let out = client
            .run_instances()
            .image_id(moto::AMI_ID)
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}", moto::error_text(&e)));
        let id = out.instances()[0].instance_id().unwrap().to_string();
        for i in 0..3 {
            client
                .create_tags()
                .resources(&id)
                .tags(Tag::builder().key(format!("k{i}")).value("v").build())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{}", moto::error_text(&e)));
        }
        vec![id]
    });
    assert_eq!(proxy.count("RunInstances"), 1);
    assert_eq!(proxy.count("CreateTags"), 3);
    assert_eq!(proxy.forwarded_count("CreateTags"), 3);
    assert_eq!(proxy.count("DeleteTags"), 0);
    assert_eq!(proxy.requests(), 4);
    assert_eq!(proxy.throttled(), 0);
    // Through the proxy and directly, moto holds the same tags.
    let via_proxy = moto::tags_via(&proxy.endpoint(), &ids[0]);
    assert_eq!(via_proxy.len(), 3);
    assert_eq!(via_proxy, moto.tags(&ids[0]));
    assert_eq!(proxy.count("DescribeTags"), 1);
    proxy.reset_counts();
    assert_eq!((proxy.requests(), proxy.count("CreateTags")), (0, 0));
}

#[test]
fn proxy_throttle_is_request_limit_exceeded_and_retried() {
    // No upstream needed: throttled requests never reach it.
    let proxy = AwsProxy::start("http://127.0.0.1:9");
    proxy.set_mode(ProxyMode::Throttle);
    let client = ec2_client_with(&proxy.endpoint(), 2);
    let err = block_on(async {
        client
            .create_tags()
            .resources("i-0123")
            .tags(Tag::builder().key("k").value("v").build())
            .send()
            .await
            .expect_err("throttled")
    });
    assert_eq!(err.code(), Some("RequestLimitExceeded"), "{}", moto::error_text(&err));
    assert_eq!(err.message(), Some("Request limit exceeded."));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert!(matches!(err, SdkError::ServiceError(_)));
    // The SDK classified it as retryable (throttling): 2 attempts were made.
    assert_eq!(proxy.count("CreateTags"), 2);
    assert_eq!(proxy.throttled(), 2);

    proxy.set_mode(ProxyMode::Error500);
    let client = ec2_client_with(&proxy.endpoint(), 1);
    let err = block_on(async { client.describe_tags().send().await.expect_err("500") });
    assert_eq!(err.code(), Some("InternalError"), "{}", moto::error_text(&err));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert_eq!(proxy.errors500(), 1);

    // Pass to a dead upstream: the proxy answers 502, counted.
    proxy.set_mode(ProxyMode::Pass);
    let err = block_on(async { client.describe_tags().send().await.expect_err("502") });
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(502));
    assert_eq!(proxy.upstream_failures(), 1);
}

#[test]
fn proxy_rate_limit_lets_n_per_second_through() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let proxy = AwsProxy::start(&moto.endpoint());
    proxy.set_mode(ProxyMode::RateLimit { per_second: 5 });
    let client = ec2_client_with(&proxy.endpoint(), 1);

    // A burst of 20 concurrent requests right after a second starts.
    align_to_second();
    let start = unix_now().as_secs();
    let results = block_on(async {
        let mut out = Vec::new();
        for _ in 0..20 {
            let c = client.clone();
            out.push(tokio::spawn(async move { c.describe_tags().send().await }));
        }
        let mut res = Vec::new();
        for h in out {
            res.push(h.await.unwrap());
        }
        res
    });
    let end = unix_now().as_secs();
    let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
    let throttled: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    for e in &throttled {
        assert_eq!(e.code(), Some("RequestLimitExceeded"), "{}", moto::error_text(e));
    }
    let seconds = end - start + 1;
    assert!(ok >= 5, "at least one full second of quota passes: {ok}");
    assert!(ok <= 5 * seconds, "{ok} passed in {seconds} s");
    assert_eq!(ok + throttled.len() as u64, 20);
    assert_eq!(proxy.throttled(), throttled.len() as u64);
    assert_eq!(proxy.forwarded(), ok);
    assert_eq!(proxy.count("DescribeTags"), 20);

    // Sequential requests over ~2.5 s: never more than 5 in any wall-clock second.
    proxy.reset_counts();
    let mut per_second = std::collections::BTreeMap::<u64, u32>::new();
    let until = Instant::now() + Duration::from_millis(2500);
    block_on(async {
        while Instant::now() < until {
            let sec = unix_now().as_secs();
            if client.describe_tags().send().await.is_ok() {
                // A request sent in second `sec` may be counted in `sec + 1`.
                *per_second.entry(sec).or_default() += 1;
            }
        }
    });
    let total: u32 = per_second.values().sum();
    assert!(total >= 5, "one full second at least: {per_second:?}");
    let seconds = per_second.keys().last().unwrap() - per_second.keys().next().unwrap() + 2;
    assert!(total as u64 <= 5 * seconds, "{per_second:?}");
    assert!(proxy.throttled() > 0);
}

#[test]
fn proxy_refuse_is_a_real_connection_refusal_on_the_same_port() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let proxy = AwsProxy::start(&moto.endpoint());
    let endpoint = proxy.endpoint();
    let client = ec2_client_with(&endpoint, 1);
    block_on(async { client.describe_tags().send().await }).expect("pass");

    proxy.set_mode(ProxyMode::Refuse);
    let e = TcpStream::connect(("127.0.0.1", proxy.port())).expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    let fresh = ec2_client_with(&endpoint, 1);
    let err = block_on(async { fresh.describe_tags().send().await }).expect_err("refused");
    match &err {
        SdkError::DispatchFailure(d) => assert!(d.is_io(), "{}", moto::error_text(&err)),
        other => panic!("expected a dispatch (connect) failure, got {}", moto::error_text(other)),
    }
    assert_eq!(proxy.requests(), 1, "no request arrives while refusing");

    proxy.set_mode(ProxyMode::Pass);
    assert_eq!(proxy.endpoint(), endpoint, "same port after Refuse");
    let fresh = ec2_client_with(&endpoint, 1);
    block_on(async { fresh.describe_tags().send().await }).expect("pass again on the same port");
    // The old client's pooled connection was closed by Refuse; with retries it recovers.
    let retrying = ec2_client_with(&endpoint, 3);
    block_on(async { retrying.describe_tags().send().await }).expect("pass with a new client");

    // Refuse/Pass cycles keep working.
    for _ in 0..3 {
        proxy.set_mode(ProxyMode::Refuse);
        assert!(TcpStream::connect(("127.0.0.1", proxy.port())).is_err());
        proxy.set_mode(ProxyMode::Pass);
        assert!(TcpStream::connect(("127.0.0.1", proxy.port())).is_ok());
    }
}

#[test]
fn proxy_hang_times_out_the_sdk_then_recovers() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let proxy = AwsProxy::start(&moto.endpoint());
    proxy.set_mode(ProxyMode::Hang);
    let base = ec2_client_with(&proxy.endpoint(), 1);
    let conf = base
        .config()
        .to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_millis(800))
                .build(),
        )
        .build();
    let client = aws_sdk_ec2::Client::from_conf(conf);
    let started = Instant::now();
    let err = block_on(async { client.describe_tags().send().await }).expect_err("hang");
    assert!(matches!(err, SdkError::TimeoutError(_)), "{}", moto::error_text(&err));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(proxy.hung(), 1);
    proxy.set_mode(ProxyMode::Pass);
    block_on(async { base.describe_tags().send().await }).expect("pass after hang");
    assert_eq!(proxy.forwarded(), 1);
}

#[test]
fn proxy_handles_hundreds_of_concurrent_connections() {
    let proxy = AwsProxy::start("http://127.0.0.1:9");
    proxy.set_mode(ProxyMode::Throttle);
    let port = proxy.port();
    const N: usize = 300;
    // Open all connections first, so they are concurrent.
    let mut conns: Vec<http::Connection> = (0..N)
        .map(|_| http::Connection::open(&format!("127.0.0.1:{port}")).expect("connect"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.open_connections() < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(proxy.open_connections(), N);
    let body = b"Action=CreateTags&Version=2016-11-15&ResourceId.1=i-1&Tag.1.Key=k&Tag.1.Value=v";
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    // All requests in flight at once, one per connection.
    let answers: Vec<http::Response> = std::thread::scope(|scope| {
        let sending: Vec<_> = conns
            .iter_mut()
            .map(|c| scope.spawn(|| send(c, "POST", "/", &form, body)))
            .collect();
        sending.into_iter().map(|s| s.join().unwrap()).collect()
    });
    for resp in &answers {
        assert_eq!(resp.status, 503);
        assert!(body_str(resp).contains("<Code>RequestLimitExceeded</Code>"));
    }
    assert_eq!(proxy.count("CreateTags"), N as u64);
    assert_eq!(proxy.throttled(), N as u64);
    // Chunked request bodies are understood too (Action parsed after de-chunking).
    let mut c = conns.pop().unwrap();
    let resp = send(
        &mut c,
        "POST",
        "/",
        &[("Transfer-Encoding", "chunked")],
        b"Action=DeleteTags",
    );
    assert_eq!(resp.status, 503);
    assert_eq!(proxy.count("DeleteTags"), 1);
    conns.push(c);
    // Dropping the proxy closes every client connection promptly.
    let started = Instant::now();
    drop(proxy);
    assert!(started.elapsed() < Duration::from_secs(5));
    for c in &conns {
        assert!(
            c.closed_within(Duration::from_secs(5)),
            "a client connection outlived the proxy"
        );
    }
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port closed after drop"
    );
}

#[test]
fn proxy_port_helper_matches_endpoint() {
    let proxy = AwsProxy::start("http://127.0.0.1:9");
    assert_eq!(port_of(&proxy.endpoint()), proxy.port());
    let _ = support::moto::env_for(&proxy.endpoint());
}
