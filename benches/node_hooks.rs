//! Benchmark of cost-prolog and cost-epilog as whole processes, against loopback
//! endpoints (moto behind a counting proxy, the IMDSv2 emulator): median time per run,
//! AWS calls per job, IMDS calls once the identity is cached, and one `aws ec2
//! create-tags` (the public scripts' way) for comparison when the CLI is installed.
//! Then cost-prolog over HTTPS as in production: a TLS endpoint in front of the same
//! moto, whose certificate a test CA signed, trusted as a site CA is on Debian or Ubuntu
//! (the system bundle with the CA added, plus the system's certificate directory), so
//! the whole system store is loaded and a TLS handshake made on each run.
//! Prints figures; asserts nothing about time. Run: `cargo bench --bench node_hooks`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use cost_tags_test_support as support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::aws_proxy::AwsProxy;
use support::https_parts::{TestCa, TlsFront};
use support::imds::Imds;
use support::moto::{apply_env, MotoServer};

const JOBS: usize = 40;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// CPU time (user + system) of the children waited for so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage writes the struct it is given; RUSAGE_CHILDREN is always valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// One run's wall and CPU time.
#[derive(Clone, Copy)]
struct Timed {
    wall: Duration,
    cpu: Duration,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let Some(moto) = MotoServer::start() else { return };
    let instance = moto.run_instances(1).remove(0);
    let proxy = AwsProxy::start(&moto.endpoint());
    let imds = Imds::start(&instance, "us-east-1");
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cost-tags.toml");
    std::fs::write(
        &settings,
        format!(
            "state_dir = {:?}\ncache_dir = {:?}\n",
            dir.path().join("state"),
            dir.path().join("run")
        ),
    )
    .unwrap();
    let run_at = |endpoint: &str, trust: &[(&str, &std::path::Path)], bin: &str, job: usize| {
        let mut c = Command::new(support::bins!().get(bin));
        apply_env(&mut c, endpoint);
        c.envs(trust.iter().copied())
            .envs(imds.env())
            .env("COST_TAGS_CONFIG", &settings)
            .env("SLURM_JOB_ID", job.to_string())
            .env("SLURM_JOB_USER", "alice")
            .env("SLURM_JOB_COMMENT", "ProjectA")
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        let (started, cpu) = (Instant::now(), children_cpu());
        let status = c.status().unwrap();
        assert!(status.success());
        Timed {
            wall: started.elapsed(),
            cpu: children_cpu() - cpu,
        }
    };
    let run = |bin: &str, job: usize| run_at(&proxy.endpoint(), &[], bin, job);

    // Warm-up: the first run fills the identity cache (IMDS) and the page cache.
    run("cost-prolog", 1);
    run("cost-epilog", 1);
    proxy.reset_counts();
    imds.reset_counts();

    let (mut prologs, mut epilogs, mut prolog_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for job in 2..2 + JOBS {
        let prolog = run("cost-prolog", job);
        prologs.push(prolog.wall);
        prolog_cpu.push(prolog.cpu);
        epilogs.push(run("cost-epilog", job).wall);
    }
    let calls = proxy.counts();
    let per_job = |action: &str| calls.get(action).copied().unwrap_or(0) as f64 / JOBS as f64;

    println!("cost-tags node hooks, {JOBS} jobs, loopback moto + IMDSv2 emulator");
    println!("  cost-prolog median           {}", ms(median(prologs.clone())));
    println!("  cost-epilog median           {}", ms(median(epilogs)));
    println!("  cost-prolog CPU median       {}", ms(median(prolog_cpu)));
    println!(
        "  AWS calls per job            CreateTags {:.2}, DeleteTags {:.2}, total {:.2}",
        per_job("CreateTags"),
        per_job("DeleteTags"),
        calls.values().sum::<u64>() as f64 / JOBS as f64
    );
    println!("  IMDS calls once cached       {}", imds.requests());

    https(&run_at, &proxy.endpoint(), dir.path());

    if support::tool("aws").is_some() {
        let mut cli = Vec::new();
        for i in 0..5 {
            let mut c = support::tool_command("aws");
            apply_env(&mut c, &moto.endpoint());
            c.args([
                "ec2",
                "create-tags",
                "--resources",
                &instance,
                "--tags",
                &format!("Key=bench,Value={i}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            let started = Instant::now();
            assert!(c.status().unwrap().success(), "aws ec2 create-tags failed");
            cli.push(started.elapsed());
        }
        let cli = median(cli);
        println!("  aws ec2 create-tags median   {}", ms(cli));
        println!(
            "  cost-prolog is {:.0}x faster than one CLI call",
            cli.as_secs_f64() / median(prologs).as_secs_f64()
        );
    } else {
        println!("  aws CLI not installed: no comparison");
    }
}

/// Runs one hook at an endpoint with extra trust settings, and times it.
type RunAt<'a> = dyn Fn(&str, &[(&str, &std::path::Path)], &str, usize) -> Timed + 'a;

/// cost-prolog's median over HTTPS with the whole system store trusted (see the module's
/// documentation), or a note when this system has no bundle where Debian or RHEL keep it.
fn https(run_at: &RunAt, upstream: &str, dir: &std::path::Path) {
    let system_bundle = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file());
    let system_dir = ["/etc/ssl/certs", "/etc/pki/tls/certs"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_dir());
    let (Some(system_bundle), Some(system_dir)) = (system_bundle, system_dir) else {
        println!("  no system CA bundle and directory: no HTTPS figure");
        return;
    };
    let ca = TestCa::new("cost-tags bench site CA");
    let (cert, key) = ca.server_cert();
    let front = TlsFront::start(upstream, cert, key);
    let bundle = dir.join("ca-certificates.crt");
    let mut pem = std::fs::read(system_bundle).unwrap();
    pem.extend_from_slice(&std::fs::read(ca.write_pem(&dir.join("site-ca.pem"))).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let endpoint = format!("https://localhost:{}", front.port());
    let trust: [(&str, &std::path::Path); 2] = [
        ("SSL_CERT_FILE", &bundle),
        ("SSL_CERT_DIR", std::path::Path::new(system_dir)),
    ];
    let mut prologs = Vec::new();
    for job in 1000..1000 + JOBS {
        prologs.push(run_at(&endpoint, &trust, "cost-prolog", job));
        run_at(&endpoint, &trust, "cost-epilog", job);
    }
    assert!(
        front.served() >= 2 * JOBS as u64,
        "the hooks did not go through the TLS endpoint"
    );
    println!(
        "  cost-prolog median, HTTPS    {} (system store: {system_bundle} + site CA, {system_dir})",
        ms(median(prologs.iter().map(|t| t.wall).collect()))
    );
    let mut cpu: Vec<Duration> = prologs.iter().map(|t| t.cpu).collect();
    cpu.sort();
    println!(
        "  cost-prolog CPU, HTTPS       median {}, p95 {} (user + system; load-independent, unlike the wall time)",
        ms(cpu[cpu.len() / 2]),
        ms(cpu[cpu.len() * 95 / 100])
    );
}
