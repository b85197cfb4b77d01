//! Benchmark of cost-prolog and cost-epilog as whole processes, against loopback
//! endpoints (moto behind a counting proxy, the IMDSv2 emulator): median time per run,
//! AWS calls per job, IMDS calls once the identity is cached, and one `aws ec2
//! create-tags` (the public scripts' way) for comparison when the CLI is installed.
//! Prints figures; asserts nothing about time. Run: `cargo bench --bench node_hooks`.

#[path = "../tests/integration/support/mod.rs"]
#[allow(dead_code)] // the benches use a few of the test fixtures
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::aws_proxy::AwsProxy;
use support::imds::Imds;
use support::moto::{apply_env, MotoServer};

const JOBS: usize = 40;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
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
    let run = |bin: &str, job: usize| {
        let mut c = Command::new(support::bin(bin));
        apply_env(&mut c, &proxy.endpoint());
        c.envs(imds.env())
            .env("COST_TAGS_CONFIG", &settings)
            .env("SLURM_JOB_ID", job.to_string())
            .env("SLURM_JOB_USER", "alice")
            .env("SLURM_JOB_COMMENT", "ProjectA")
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        let status = c.status().unwrap();
        assert!(status.success());
        started.elapsed()
    };

    // Warm-up: the first run fills the identity cache (IMDS) and the page cache.
    run("cost-prolog", 1);
    run("cost-epilog", 1);
    proxy.reset_counts();
    imds.reset_counts();

    let (mut prologs, mut epilogs) = (Vec::new(), Vec::new());
    for job in 2..2 + JOBS {
        prologs.push(run("cost-prolog", job));
        epilogs.push(run("cost-epilog", job));
    }
    let calls = proxy.counts();
    let per_job = |action: &str| calls.get(action).copied().unwrap_or(0) as f64 / JOBS as f64;

    println!("cost-tags node hooks, {JOBS} jobs, loopback moto + IMDSv2 emulator");
    println!("  cost-prolog median           {}", ms(median(prologs.clone())));
    println!("  cost-epilog median           {}", ms(median(epilogs)));
    println!(
        "  AWS calls per job            CreateTags {:.2}, DeleteTags {:.2}, total {:.2}",
        per_job("CreateTags"),
        per_job("DeleteTags"),
        calls.values().sum::<u64>() as f64 / JOBS as f64
    );
    println!("  IMDS calls once cached       {}", imds.requests());

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
