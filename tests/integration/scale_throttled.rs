//! Scale: several hundred compute nodes start a job at the same moment, all tagging
//! through one EC2 account whose CreateTags budget is a fixed number of requests per
//! second (the AWS proxy in `RateLimit` mode in front of moto answers
//! `RequestLimitExceeded` beyond it).
//!
//! Each simulated node has its own state_dir, cache_dir and moto instance; its identity
//! cache is pre-seeded (the steady state of a real node, which asks IMDS once per boot),
//! so no IMDS emulator is needed. All prologs are spawned held (a shell waiting on
//! stdin) and then let go together, so the burst really starts within milliseconds.
//!
//! One machine stands in for 300 nodes, so every process's CPU comes out of the same
//! few cores: the children get a one-certificate trust store (see
//! [`one_root_certificate`]) so that an unoptimized build spends its deadline on EC2's
//! throttle rather than on parsing root certificates, and run at nice 19 so that moto
//! and the proxy (standing for AWS, which has its own CPUs) answer promptly. The report
//! prints the CPU used.
//!
//! Asserted (bound and correctness properties, not speed): every prolog exits 0, each
//! within deadline + margin, and no tag is silently lost: every instance is either
//! tagged with its job or its ledger says `owed`. Then, with the throttle lifted, one
//! epilog for an unknown job on each owing node pays every debt.
//!
//! Reported, not asserted: how many were tagged within the deadline, the wall time of
//! the burst, proxy counts, why the others gave up. Run with `--nocapture` to see it.

use crate::support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::aws_proxy::{AwsProxy, ProxyMode};
use support::moto::{apply_env, MotoServer, REGION};

const NODES: usize = 300;
const PER_SECOND: u32 = 50;
const DEADLINE: Duration = Duration::from_secs(10);
/// Above the deadline: process start-up with hundreds of siblings on a small machine,
/// and the slice kept for writing the outcome down.
const MARGIN: Duration = Duration::from_secs(5);
/// moto answers RunInstances for this many instances at a time without trouble.
const LAUNCH_BATCH: usize = 50;
/// Epilogs run at once in the paying phase.
const PAY_BATCH: usize = 25;
const UNKNOWN_JOB: &str = "999999";

const PROJECT: &str = "aws-parallelcluster-project";
const USER: &str = "aws-parallelcluster-username";
const JOBID: &str = "aws-parallelcluster-jobid";

struct SimNode {
    index: usize,
    instance: String,
    dir: PathBuf,
}

impl SimNode {
    fn job(&self) -> String {
        (10_000 + self.index).to_string()
    }
    fn user(&self) -> String {
        format!("user{}", self.index % 7)
    }
    fn project(&self) -> String {
        format!("Project{}", self.index % 5)
    }
    fn expected_tags(&self) -> BTreeMap<String, String> {
        [(PROJECT, self.project()), (USER, self.user()), (JOBID, self.job())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }
    fn config(&self) -> PathBuf {
        self.dir.join("cost-tags.toml")
    }
    fn ledger(&self) -> serde_json::Value {
        let path = self.dir.join("state/ledger.json");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
    fn stderr_path(&self, phase: &str) -> PathBuf {
        self.dir.join(format!("{phase}.stderr"))
    }
    fn stderr(&self, phase: &str) -> String {
        std::fs::read_to_string(self.stderr_path(phase)).unwrap_or_default()
    }

    /// Writes settings and the identity cache IMDS would have left on this boot.
    fn prepare(&self, boot_id: &str) {
        std::fs::create_dir_all(self.dir.join("run")).unwrap();
        std::fs::write(
            self.config(),
            format!(
                "state_dir = {:?}\ncache_dir = {:?}\ndeadline = {}\n",
                self.dir.join("state"),
                self.dir.join("run"),
                DEADLINE.as_secs()
            ),
        )
        .unwrap();
        let cache = serde_json::json!({
            "boot_id": boot_id,
            "instance_id": self.instance,
            "region": REGION,
        });
        std::fs::write(
            self.dir.join("run/instance-identity.json"),
            serde_json::to_vec(&cache).unwrap(),
        )
        .unwrap();
    }

    /// Starts `binary` for `job`. With `held`, the binary is not exec'd yet: a shell
    /// waits for a line on stdin (see [`release`]), so that a whole burst can start
    /// within milliseconds instead of at the pace of fork+exec on a busy machine.
    fn spawn(&self, binary: &str, job: &str, env: &Env, phase: &str, held: bool) -> Child {
        let mut c = if held {
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg("read -r go && exec \"$0\"")
                .arg(crate::bin(binary))
                .stdin(Stdio::piped());
            c
        } else {
            let mut c = Command::new(crate::bin(binary));
            c.stdin(Stdio::null());
            c
        };
        apply_env(&mut c, &env.aws);
        if let Some(roots) = &env.roots {
            c.env_remove("SSL_CERT_DIR").env("SSL_CERT_FILE", roots);
        }
        c.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &env.imds)
            .env("COST_TAGS_CONFIG", self.config())
            .env("SLURM_JOB_ID", job)
            .env("SLURM_JOB_USER", self.user())
            .env("SLURM_JOB_COMMENT", self.project())
            .env("SLURM_JOB_PARTITION", "compute")
            .env("SLURM_CLUSTER_NAME", "scale")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(self.stderr_path(phase)).unwrap()));
        // The nodes' processes yield the CPU to moto and the proxy, which stand for AWS and
        // do not share a real node's cores: with 300 runnable children on 2 cores, moto
        // would otherwise answer seconds late and the burst would measure moto's starvation.
        // SAFETY: setpriority is async-signal-safe and touches only the child.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                libc::setpriority(libc::PRIO_PROCESS, 0, 19);
                Ok(())
            });
        }
        c.spawn()
            .unwrap_or_else(|e| panic!("spawn {binary} for node {}: {e}", self.index))
    }
}

/// What every simulated node's processes are pointed at.
struct Env {
    /// The AWS endpoint (the proxy).
    aws: String,
    /// An IMDS endpoint that refuses connections: the identity must come from the cache.
    imds: String,
    /// A trust store of one root certificate, see [`one_root_certificate`].
    roots: Option<PathBuf>,
}

/// Writes the first certificate of the system's CA bundle to `dir` and returns its path.
///
/// The SDK builds its HTTPS connector (and so parses every root certificate named by
/// SSL_CERT_FILE / SSL_CERT_DIR) in each process, even though these tests talk plain
/// HTTP. In an unoptimized build that parsing costs ~25 ms of CPU per process (more
/// where SSL_CERT_DIR and SSL_CERT_FILE are both set); 300 processes on a 2-core machine
/// then spend their whole deadline parsing certificates and the burst measures base64
/// decoding, not the throttle. One real certificate keeps the store valid (the SDK
/// debug-asserts that it is not empty) and makes that cost negligible.
fn one_root_certificate(dir: &std::path::Path) -> Option<PathBuf> {
    let bundles = [
        std::env::var("SSL_CERT_FILE").unwrap_or_default(),
        "/etc/ssl/certs/ca-certificates.crt".to_string(),
        "/etc/pki/tls/certs/ca-bundle.crt".to_string(),
        "/etc/ssl/cert.pem".to_string(),
    ];
    const END: &str = "-----END CERTIFICATE-----";
    let pem = bundles.iter().find_map(|b| {
        let text = std::fs::read_to_string(b).ok()?;
        let start = text.find("-----BEGIN CERTIFICATE-----")?;
        let end = start + text[start..].find(END)? + END.len();
        Some(format!("{}\n", &text[start..end]))
    })?;
    let path = dir.join("one-root.pem");
    std::fs::write(&path, pem).ok()?;
    Some(path)
}

/// Lets every held child exec its binary (one line each on stdin, then EOF); returns
/// the moment they were let go.
fn release(children: &mut [Child]) -> Instant {
    use std::io::Write;
    let mut pipes: Vec<_> = children
        .iter_mut()
        .map(|c| c.stdin.take().expect("held child"))
        .collect();
    let at = Instant::now();
    for p in &mut pipes {
        p.write_all(b"go\n").expect("release a held child");
    }
    drop(pipes);
    at
}

/// CPU time (user + system) of process `pid` from /proc (moto runs as our child but is
/// reaped only at the end, so getrusage does not see it yet).
fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 1000 / hz)
}

/// Reaps `child` once it has exited (at once with `block`): its exit code (None when a
/// signal ended it) and the CPU time (user + system) it used, from wait4's rusage of that
/// one child. (getrusage(RUSAGE_CHILDREN) would count every child the test process
/// reaps, those of the tests running alongside included.) None while it runs.
fn reap(child: &Child, block: bool) -> Option<(Option<i32>, Duration)> {
    let mut status = 0;
    // SAFETY: wait4 only writes into the two values we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, flags, &mut ru) };
    assert!(pid >= 0, "wait4({}): {}", child.id(), std::io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (pid != 0).then(|| (code, tv(ru.ru_utime) + tv(ru.ru_stime)))
}

/// Waits for every child, polling, and returns (exit code, time from the instant paired
/// with it to its observed exit) in order, and the CPU time they used together. A child
/// still running at `hard_limit` is killed (it is ours, by pid) and reported with code None.
fn wait_all(mut children: Vec<(Child, Instant)>, hard_limit: Duration) -> (Vec<(Option<i32>, Duration)>, Duration) {
    let mut done: Vec<Option<(Option<i32>, Duration)>> = vec![None; children.len()];
    let mut cpu = Duration::ZERO;
    let mut left = children.len();
    while left > 0 {
        for (i, (child, spawned)) in children.iter_mut().enumerate() {
            if done[i].is_some() {
                continue;
            }
            let ended = match reap(child, false) {
                Some((code, used)) => Some((code, used)),
                None if spawned.elapsed() > hard_limit => {
                    let _ = child.kill();
                    reap(child, true).map(|(_, used)| (None, used))
                }
                None => None,
            };
            if let Some((code, used)) = ended {
                done[i] = Some((code, spawned.elapsed()));
                cpu += used;
                left -= 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (done.into_iter().map(Option::unwrap).collect(), cpu)
}

/// The instance's cost tags as moto has them (not through the proxy).
fn cost_tags(moto: &MotoServer, instance: &str) -> BTreeMap<String, String> {
    moto.tags(instance)
        .into_iter()
        .filter(|(k, _)| k.starts_with("aws-parallelcluster-"))
        .collect()
}

/// A short class for a failure reason, so the report can count them.
fn reason_class(reason: &str) -> String {
    let r = reason.to_ascii_lowercase();
    let class = if r.contains("within the deadline") {
        "deadline reached (tokio timeout around IMDS+EC2)"
    } else if r.contains("requestlimitexceeded") {
        // max_attempts (10) used up: the retry quota (500 tokens, at most 14 per retry)
        // cannot run out within one operation.
        "RequestLimitExceeded on the SDK's last attempt"
    } else if r.contains("retry") && (r.contains("quota") || r.contains("token")) {
        "SDK retry quota/token bucket exhausted"
    } else if r.contains("timeout") || r.contains("timed out") {
        "SDK timeout"
    } else if r.contains("imds") {
        "IMDS"
    } else if r.contains("dispatch") || r.contains("connect") {
        "connection"
    } else {
        return format!("other: {}", reason.chars().take(160).collect::<String>());
    };
    class.to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[test]
fn hundreds_of_prologs_against_a_throttled_account_lose_no_tags() {
    let Some(moto) = MotoServer::start() else { return };
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("boot id")
        .trim()
        .to_string();

    // Instances, in batches.
    let launch = Instant::now();
    let mut instances = Vec::with_capacity(NODES);
    while instances.len() < NODES {
        let n = LAUNCH_BATCH.min(NODES - instances.len());
        let batch = moto.run_instances(n as i32);
        assert_eq!(batch.len(), n);
        instances.extend(batch);
    }
    let launch_time = launch.elapsed();

    let root = tempfile::Builder::new().prefix("cost-tags-scale-").tempdir().unwrap();
    let nodes: Vec<SimNode> = instances
        .into_iter()
        .enumerate()
        .map(|(index, instance)| SimNode {
            index,
            instance,
            dir: root.path().join(format!("node-{index:03}")),
        })
        .collect();
    for node in &nodes {
        std::fs::create_dir_all(&node.dir).unwrap();
        node.prepare(&boot_id);
    }

    let proxy = AwsProxy::start(&moto.endpoint());
    let env = Env {
        aws: proxy.endpoint(),
        // Nothing may ask IMDS (the cache answers); were one to, it fails fast and shows.
        imds: {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
        },
        roots: one_root_certificate(root.path()),
    };
    proxy.set_mode(ProxyMode::RateLimit { per_second: PER_SECOND });
    proxy.reset_counts();

    // Phase 1: every node starts a job at once.
    let hard_limit = DEADLINE + MARGIN + Duration::from_secs(30);
    let spawning = Instant::now();
    let mut held: Vec<Child> = nodes
        .iter()
        .map(|n| n.spawn("cost-prolog", &n.job(), &env, "prolog", true))
        .collect();
    let spawn_time = spawning.elapsed();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let proxy_cpu_before = proxy.cpu_time();
    let moto_cpu_before = proc_cpu(moto.pid());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let ((results, prologs_cpu), burst_time, timeline, released_at) = std::thread::scope(|scope| {
        // Once a second: requests received, forwarded to moto, throttled, so far.
        let sampler = scope.spawn(|| {
            let mut rows = Vec::new();
            let t0 = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(1));
                rows.push((t0.elapsed(), proxy.requests(), proxy.forwarded(), proxy.throttled()));
            }
            rows
        });
        let released_at = std::time::SystemTime::now();
        let burst = release(&mut held);
        let results = wait_all(held.into_iter().map(|c| (c, burst)).collect(), hard_limit);
        let burst_time = burst.elapsed();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (results, burst_time, sampler.join().unwrap(), released_at)
    });
    let proxy_cpu = proxy.cpu_time() - proxy_cpu_before;
    let moto_cpu = proc_cpu(moto.pid()) - moto_cpu_before;
    let counts = proxy.counts();
    let throttled = proxy.throttled();
    let forwarded_create = proxy.forwarded_count("CreateTags");

    // Outcome per node.
    let mut tagged = Vec::new();
    let mut owed = Vec::new();
    let mut lost = Vec::new();
    let mut confirmed = 0;
    let mut tagged_and_owed = 0;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut stderr_says_owed = 0;
    let mut durations: Vec<Duration> = results.iter().map(|(_, d)| *d).collect();
    durations.sort();
    // When each owing node wrote its failure down (ledger mtime, since release), and how
    // long it took from there to its exit: shows whether lateness is before or after the
    // deadline fired.
    let mut failure_written = Vec::new();
    let mut write_to_exit = Vec::new();
    for (node, (_, took)) in nodes.iter().zip(&results) {
        let ledger = node.ledger();
        let jobs: Vec<&str> = ledger["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap())
            .collect();
        assert_eq!(jobs, [node.job().as_str()], "node {} ledger: {ledger}", node.index);
        let is_owed = ledger["owed"] == true;
        let is_tagged = cost_tags(&moto, &node.instance) == node.expected_tags();
        if is_owed {
            owed.push(node.index);
            let mtime = std::fs::metadata(node.dir.join("state/ledger.json"))
                .and_then(|m| m.modified())
                .unwrap();
            let written = mtime.duration_since(released_at).unwrap_or_default();
            failure_written.push(written);
            write_to_exit.push(took.saturating_sub(written));
            let reason = ledger["last_failure"]["reason"].as_str().unwrap_or("(none)");
            *reasons.entry(reason_class(reason)).or_insert(0) += 1;
        }
        if is_tagged {
            tagged.push(node.index);
        }
        if is_owed && is_tagged {
            tagged_and_owed += 1;
        }
        if is_tagged && !is_owed {
            confirmed += 1;
        }
        if !is_owed && !is_tagged {
            lost.push(node.index);
        }
        if node.stderr("prolog").contains("tags owed") {
            stderr_says_owed += 1;
        }
    }

    failure_written.sort();
    write_to_exit.sort();
    let report = format!(
        "\n==== scale_throttled: {NODES} concurrent cost-prolog, proxy RateLimit {PER_SECOND}/s, deadline {DEADLINE:?} ====\n\
         binaries: {} build; trust store: {}; load average before the burst: {}\n\
         moto RunInstances for {NODES} instances ({LAUNCH_BATCH} per call): {}\n\
         spawning {NODES} held processes took {}; whole burst (release to last exit): {}\n\
         CPU during the burst: prologs {}, moto {}, proxy {} (machine: {} cores x burst = {})\n\
         per-process time: min {}  p50 {}  p90 {}  p99 {}  max {}\n\
         owing nodes wrote their failure at (since release): {}\n\
         exit codes: {:?}\n\
         TAGGED WITHIN THE DEADLINE (tagged on moto and the prolog saw it succeed): {confirmed} / {NODES}\n\
         tagged on moto once all had exited: {} / {NODES}\n\
         ledgers owed=true: {} (of which tagged on moto anyway, the reply came too late: {tagged_and_owed}); stderr 'tags owed': {stderr_says_owed}\n\
         neither tagged nor owed (silent loss): {}\n\
         proxy requests received: {counts:?}; throttled (503 RequestLimitExceeded): {throttled}; CreateTags forwarded to moto: {forwarded_create}\n\
         CreateTags attempts per node: {:.1}\n\
         why the owed nodes gave up: {reasons:#?}",
        if cfg!(debug_assertions) { "debug (unoptimized)" } else { "optimized" },
        env.roots.as_ref().map_or("the system's (no CA bundle found)".to_string(), |p| p.display().to_string()),
        load_before.trim(),
        fmt_secs(launch_time),
        fmt_secs(spawn_time),
        fmt_secs(burst_time),
        fmt_secs(prologs_cpu),
        fmt_secs(moto_cpu),
        fmt_secs(proxy_cpu),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        fmt_secs(burst_time * std::thread::available_parallelism().map_or(1, |n| n.get()) as u32),
        fmt_secs(durations[0]),
        fmt_secs(percentile(&durations, 0.5)),
        fmt_secs(percentile(&durations, 0.9)),
        fmt_secs(percentile(&durations, 0.99)),
        fmt_secs(durations[durations.len() - 1]),
        if failure_written.is_empty() {
            "(none owed)".to_string()
        } else {
            format!(
                "min {}  p50 {}  max {}; from that write to exit: max {}",
                fmt_secs(failure_written[0]),
                fmt_secs(percentile(&failure_written, 0.5)),
                fmt_secs(failure_written[failure_written.len() - 1]),
                fmt_secs(write_to_exit[write_to_exit.len() - 1]),
            )
        },
        {
            let mut codes: BTreeMap<String, usize> = BTreeMap::new();
            for (c, _) in &results {
                *codes.entry(format!("{c:?}")).or_insert(0) += 1;
            }
            codes
        },
        tagged.len(),
        owed.len(),
        lost.len(),
        counts.get("CreateTags").copied().unwrap_or(0) as f64 / NODES as f64,
    );
    eprintln!("{report}");
    eprintln!("proxy, cumulative per second since release: t, received, forwarded to moto, throttled");
    for (t, received, forwarded, throttled) in &timeline {
        eprintln!(
            "  {:>5.1} s  {received:>5}  {forwarded:>5}  {throttled:>5}",
            t.as_secs_f64()
        );
    }
    if let Some(&i) = owed.first() {
        eprintln!(
            "stderr of the first owed node ({}):\n{}",
            i,
            nodes[i]
                .stderr("prolog")
                .trim_end()
                .chars()
                .take(400)
                .collect::<String>()
        );
    }

    // Correctness: nobody fails the job, everybody ends in bounded time, nothing is lost.
    for (node, (code, took)) in nodes.iter().zip(&results) {
        assert_eq!(
            *code,
            Some(0),
            "node {} prolog exit {code:?} after {took:?}: {}",
            node.index,
            node.stderr("prolog")
        );
        assert!(
            *took < DEADLINE + MARGIN,
            "node {} prolog took {took:?} (deadline {DEADLINE:?}): {}",
            node.index,
            node.stderr("prolog")
        );
    }
    assert!(
        lost.is_empty(),
        "nodes neither tagged nor owed: {lost:?}; e.g. ledger {} and stderr {}",
        nodes[lost[0]].ledger(),
        nodes[lost[0]].stderr("prolog")
    );
    assert_eq!(
        reasons.get("IMDS"),
        None,
        "the identity must come from the pre-seeded cache"
    );

    // Phase 2: the throttle lifts; the next hook run on each owing node pays its debt.
    proxy.set_mode(ProxyMode::Pass);
    proxy.reset_counts();
    let pay = Instant::now();
    for batch in owed.chunks(PAY_BATCH) {
        let children: Vec<(Child, Instant)> = batch
            .iter()
            .map(|&i| {
                let c = nodes[i].spawn("cost-epilog", UNKNOWN_JOB, &env, "epilog", false);
                (c, Instant::now())
            })
            .collect();
        for (&i, (code, took)) in batch.iter().zip(wait_all(children, hard_limit).0) {
            assert_eq!(
                code,
                Some(0),
                "node {i} epilog exit {code:?} after {took:?}: {}",
                nodes[i].stderr("epilog")
            );
        }
    }
    let pay_time = pay.elapsed();
    let pay_counts = proxy.counts();
    for node in &nodes {
        let ledger = node.ledger();
        assert_eq!(
            ledger["owed"],
            false,
            "node {}: {ledger}; {}",
            node.index,
            node.stderr("epilog")
        );
        assert_eq!(
            cost_tags(&moto, &node.instance),
            node.expected_tags(),
            "node {} after paying: {}",
            node.index,
            node.stderr("epilog")
        );
    }
    if owed.is_empty() {
        eprintln!("phase 2 (Pass): no node owed tags, nothing to pay; all {NODES} instances carry their tags\n");
    } else {
        eprintln!(
            "phase 2 (Pass): {} cost-epilog {UNKNOWN_JOB} on the owing nodes, {PAY_BATCH} at a time: {}; \
             proxy requests {pay_counts:?}; all {NODES} instances now carry their tags\n",
            owed.len(),
            fmt_secs(pay_time)
        );
    }
}
