//! `deadline` bounds the whole process, name lookups included: cost-prolog, cost-epilog
//! and `cost-tags status` end within `deadline` + 1 s while the resolver swallows every
//! query.
//!
//! The dead resolver is real: each binary runs in a private mount namespace whose
//! /etc/resolv.conf names a UDP socket of this test, bound on port 53 of a loopback
//! address of its own, that reads queries and never answers. glibc then waits its default
//! 5 s per attempt, twice (the first release ran 11 s with `deadline = 2`). The endpoints
//! are host names under `.test` (RFC 2606: never in DNS, and not in /etc/hosts), so the
//! SDK must ask the resolver; the test checks that the queries arrived.

use crate::support;

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{moto, namespace};

const DEADLINE: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(1);

/// A name server that reads every query and never answers.
struct SilentNameServer {
    address: Ipv4Addr,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl SilentNameServer {
    /// Binds port 53 (resolv.conf takes no port) on a loopback address picked from this
    /// process id, so that concurrent test runs do not collide.
    fn start() -> SilentNameServer {
        let pid = std::process::id();
        let socket = (0..64u32)
            .find_map(|i| {
                let n = pid.wrapping_add(i * 7919);
                let address = Ipv4Addr::new(127, 53, (n >> 8) as u8, (n as u8).max(2));
                UdpSocket::bind((address, 53)).ok()
            })
            .expect("no free 127.53.x.y:53 for the silent name server");
        let address = match socket.local_addr().unwrap().ip() {
            std::net::IpAddr::V4(a) => a,
            std::net::IpAddr::V6(_) => unreachable!("bound on IPv4"),
        };
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (queries, stop) = (queries.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    if socket.recv_from(&mut buf).is_ok() {
                        queries.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        SilentNameServer {
            address,
            queries,
            stop,
            reader: Some(reader),
        }
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for SilentNameServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// A node whose every AWS endpoint needs the dead resolver.
struct DeadDnsNode {
    dns: SilentNameServer,
    dir: tempfile::TempDir,
    resolv_conf: PathBuf,
}

impl DeadDnsNode {
    fn start() -> Option<DeadDnsNode> {
        if !namespace::available() {
            return None;
        }
        let dns = SilentNameServer::start();
        let dir = tempfile::tempdir().unwrap();
        let resolv_conf = dir.path().join("resolv.conf");
        // glibc's defaults (timeout:5 attempts:2), as on a node.
        std::fs::write(&resolv_conf, format!("nameserver {}\n", dns.address)).unwrap();
        std::fs::write(
            dir.path().join("cost-tags.toml"),
            format!(
                "state_dir = {:?}\ncache_dir = {:?}\ndeadline = {}\n",
                dir.path().join("state"),
                dir.path().join("run"),
                DEADLINE.as_secs()
            ),
        )
        .unwrap();
        Some(DeadDnsNode { dns, dir, resolv_conf })
    }

    /// The identity IMDS would give, cached for this boot, so the first lookup is EC2's.
    fn cache_identity(&self) {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        let run = self.dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            run.join("instance-identity.json"),
            serde_json::json!({
                "boot_id": boot_id.trim(),
                "instance_id": "i-0123456789abcdef0",
                "region": "us-east-1",
            })
            .to_string(),
        )
        .unwrap();
    }

    fn command(&self, binary: &str) -> Command {
        let mut c = namespace::command(
            &[(self.resolv_conf.as_path(), Path::new("/etc/resolv.conf"))],
            &crate::bin(binary),
        );
        moto::apply_env(&mut c, "http://ec2.cost-tags-dead-dns.test:4566");
        c.env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            "http://imds.cost-tags-dead-dns.test:1338",
        )
        .env("COST_TAGS_CONFIG", self.dir.path().join("cost-tags.toml"))
        .env("COST_TAGS_ENV_FILE", self.dir.path().join("no-cost-tags.env"))
        .env("SLURM_JOB_ID", "42")
        .env("SLURM_JOB_USER", "ctalice")
        .env("SLURM_JOB_COMMENT", "ProjectA")
        .env("SLURM_JOB_PARTITION", "compute")
        .env("SLURM_CLUSTER_NAME", "test")
        .stdin(Stdio::null());
        c
    }

    fn run(&self, mut command: Command) -> (Output, Duration) {
        let queries_before = self.dns.queries();
        let started = Instant::now();
        let out = command.output().unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(125), "mount namespace: {stderr}");
        assert!(
            self.dns.queries() > queries_before,
            "the silent name server got no query: the test did not exercise DNS; stderr: {stderr}"
        );
        eprintln!("{:?} -> {:?} in {took:.2?}", command.get_args().last(), out.status);
        (out, took)
    }

    fn ledger(&self) -> serde_json::Value {
        let path = self.dir.path().join("state/ledger.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }
}

fn assert_hook_bounded(node: &DeadDnsNode, binary: &str) {
    let (out, took) = node.run(node.command(binary));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{binary}: {stderr}");
    assert!(
        took < DEADLINE + SLACK,
        "{binary} took {took:.2?} with deadline = {DEADLINE:?}; stderr: {stderr}"
    );
    assert!(stderr.contains("tags owed"), "{binary}: {stderr}");
    assert_eq!(node.ledger()["owed"], true);
}

#[test]
fn imds_lookup_never_answered() {
    let Some(node) = DeadDnsNode::start() else { return };
    assert_hook_bounded(&node, "cost-prolog");
}

#[test]
fn ec2_lookup_never_answered() {
    let Some(node) = DeadDnsNode::start() else { return };
    node.cache_identity();
    assert_hook_bounded(&node, "cost-prolog");
    assert_hook_bounded(&node, "cost-epilog");
}

#[test]
fn status_lookup_never_answered() {
    let Some(node) = DeadDnsNode::start() else { return };
    node.cache_identity();
    let mut c = node.command("cost-tags");
    c.arg("status");
    let (out, took) = node.run(c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "cannot tell: {stderr}");
    assert!(took < DEADLINE + SLACK, "status took {took:.2?}; stderr: {stderr}");
    assert!(stderr.contains("did not answer"), "{stderr}");
}
