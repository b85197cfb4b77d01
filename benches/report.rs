//! Benchmark of `cost-tags report` as a whole process on 1,000,000 synthetic sacct lines
//! (a month of a busy cluster: 200 users, 50 projects, shared and multi-node jobs, arrays,
//! het jobs, requeues, running and pending jobs, a few broken lines): wall time and peak
//! memory (the child's maxrss from wait4). Target: under 3 s and under 100 MB. Prints
//! figures; asserts nothing about time. Run: `cargo bench --bench report`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use cost_tags_test_support as support;

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LINES: usize = 1_000_000;
const USERS: usize = 200;
const PROJECTS: usize = 50;
const RUNS: usize = 3;

const SETTINGS: &str = r#"
[pricing]
currency = "USD"
fleet_config = ""
cache_file = ""
[pricing.instances."c5.xlarge"]
on_demand = 0.17
spot = 0.07
cpus = 4
[pricing.instances."c5.4xlarge"]
on_demand = 0.68
spot = 0.27
cpus = 16
[pricing.instances."g4dn.xlarge"]
on_demand = 0.526
cpus = 4
gpus = 1
[pricing.partitions.compute]
instance = "c5.xlarge"
[pricing.partitions.spot]
instance = "c5.xlarge"
spot = true
[pricing.partitions.gpu]
[[pricing.nodes]]
pattern = "gpu-*-g4-*"
instance = "g4dn.xlarge"
[[pricing.nodes]]
pattern = "big-*"
instance = "c5.4xlarge"
"#;

/// The same node shapes with no `[pricing.instances]`: every price from a price cache,
/// and the spot partition charged from a spot history that changes every hour of March.
const CACHE_SETTINGS: &str = r#"
[pricing]
currency = "USD"
fleet_config = ""
cache_file = "PRICES"
[pricing.partitions.compute]
instance = "c5.xlarge"
[pricing.partitions.spot]
instance = "c5.xlarge"
spot = true
[pricing.partitions.gpu]
[[pricing.nodes]]
pattern = "gpu-*-g4-*"
instance = "g4dn.xlarge"
[[pricing.nodes]]
pattern = "big-*"
instance = "c5.4xlarge"
"#;

/// The price cache for [`CACHE_SETTINGS`]: the prices of [`SETTINGS`], and 0.06 to
/// 0.08/h spot for c5.xlarge changing every hour in two zones (1,488 changes).
fn write_price_cache(path: &Path) {
    use cost_tags::prices::cache::{InstanceType, PriceCache};
    let month = cost_tags::model::time::Timestamp::from_second(1_709_251_200);
    let mut cache = PriceCache::new("us-east-1", month + 31 * 86_400);
    for (name, vcpus, gpus, on_demand) in [
        ("c5.xlarge", 4, 0, 0.17),
        ("c5.4xlarge", 16, 0, 0.68),
        ("g4dn.xlarge", 4, 1, 0.526),
    ] {
        let shape = InstanceType {
            vcpus,
            cores: vcpus / 2,
            gpus,
            on_demand: Some(on_demand),
        };
        cache.instance_types.insert(name.into(), shape);
    }
    for zone in ["us-east-1a", "us-east-1b"] {
        let series = (0..31 * 24)
            .map(|h| (month + h * 3600, 0.06 + 0.02 * ((h % 7) as f64 / 6.0)))
            .collect();
        cache
            .spot
            .entry("c5.xlarge".into())
            .or_default()
            .insert(zone.into(), series);
    }
    cache.write(path).unwrap();
}

fn time(t: i64) -> String {
    cost_tags::model::time::Plain(cost_tags::model::time::Timestamp::from_second(t)).to_string()
}

/// Writes `LINES` lines of `sacct --parsable2` output for March 2024.
fn generate(path: &Path) {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let month = 1_709_251_200i64; // 2024-03-01T00:00:00Z
    let mut job = 100_000u64;
    let mut written = 0;
    while written < LINES {
        job += 1;
        let user = rng.usize(..USERS);
        let project = (user * 7 + rng.usize(..3)) % PROJECTS;
        let start = month + rng.i64(0..31 * 86_400);
        let end = start + rng.i64(60..12 * 3600);
        let (partition, nodes, cpus, gpus, list) = match rng.u8(..100) {
            0..=54 => {
                let n = rng.u32(1..=2);
                let first = rng.u32(1..=500);
                let list = if n == 1 {
                    format!("q-dy-c5-{first}")
                } else {
                    format!("q-dy-c5-[{first}-{}]", first + 1)
                };
                ("compute", n, n * rng.u32(1..=4), 0, list)
            }
            55..=74 => ("spot", 1, rng.u32(1..=4), 0, format!("s-dy-c5-{}", rng.u32(1..=300))),
            75..=89 => ("gpu", 1, rng.u32(1..=4), 1, format!("gpu-dy-g4-{}", rng.u32(1..=64))),
            90..=96 => ("compute", 4, 64, 0, {
                let f = rng.u32(1..=100);
                format!("big-[{f}-{}]", f + 3)
            }),
            _ => ("debug", 1, 1, 0, format!("dbg-{}", rng.u32(1..=8))),
        };
        let state_end = match rng.u16(..1000) {
            0..=4 => ("RUNNING", "Unknown".to_string()),
            _ => ("COMPLETED", time(end)),
        };
        let tres = format!(
            "billing={cpus},cpu={cpus},mem={}G,node={nodes}{}",
            cpus * 2,
            if gpus > 0 { ",gres/gpu=1" } else { "" }
        );
        let kind = rng.u16(..1000);
        let ids: Vec<String> = match kind {
            0..=49 => (1..=rng.u32(2..=8)).map(|k| format!("{job}_{k}")).collect(), // array tasks
            50..=69 => vec![format!("{job}+0"), format!("{job}+1")],                // het job
            70..=79 => vec![job.to_string(), job.to_string()],                      // requeued
            _ => vec![job.to_string()],
        };
        for id in ids {
            let line = match rng.u16(..10_000) {
                0..=9 => "this line is broken\n".to_string(),
                10..=19 => format!("{id}|PENDING|user{user:03}|acct{}|{partition}|Unknown|Unknown|{nodes}|{cpus}||None assigned|Project{project:02}\n", user % 20),
                20..=24 => format!("{id}.batch|COMPLETED|user{user:03}|acct{}|{partition}|{}|{}|1|1|cpu=1|{list}|\n", user % 20, time(start), time(end)),
                _ => format!(
                    "{id}|{}|user{user:03}|acct{}|{partition}|{}|{}|{nodes}|{cpus}|{tres}|{list}|Project{project:02}\n",
                    state_end.0,
                    user % 20,
                    time(start),
                    state_end.1
                ),
            };
            out.write_all(line.as_bytes()).unwrap();
            written += 1;
            if written == LINES {
                break;
            }
        }
    }
    out.flush().unwrap();
}

/// Runs the command; returns its wall time and peak resident memory in KiB. The child is
/// reaped by wait4 (which also gives its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command) -> (Duration, i64) {
    let started = Instant::now();
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "report failed: {status}"
    );
    (wall, usage.ru_maxrss)
}

fn main() {
    // COST_TAGS_BENCH_KEEP=1 keeps the generated file (its path is printed) for
    // reproducing a figure by hand with /usr/bin/time -v.
    let mut dir = tempfile::tempdir().unwrap();
    if std::env::var_os("COST_TAGS_BENCH_KEEP").is_some() {
        dir.disable_cleanup(true);
        println!("  keeping {}", dir.path().display());
    }
    let data = dir.path().join("sacct.txt");
    let settings = dir.path().join("cost-tags.toml");
    std::fs::write(&settings, SETTINGS).unwrap();
    let prices = dir.path().join("prices.json");
    write_price_cache(&prices);
    let cache_settings = dir.path().join("cost-tags-cache.toml");
    std::fs::write(
        &cache_settings,
        CACHE_SETTINGS.replace("PRICES", &prices.display().to_string()),
    )
    .unwrap();
    let generated = Instant::now();
    generate(&data);
    let size = std::fs::metadata(&data).unwrap().len();
    println!(
        "cost-tags report: {LINES} synthetic sacct lines ({:.0} MB, generated in {:.1} s), {USERS} users, {PROJECTS} projects, March 2024",
        size as f64 / 1e6,
        generated.elapsed().as_secs_f64()
    );

    // The same lines with what --by job adds before the comment (TimelimitRaw, Group,
    // TotalCPU, ElapsedRaw, MaxRSS, ReqMem: the job line's MaxRSS is empty), so every
    // row's CPU efficiency is worked out.
    let job_data = dir.path().join("sacct-jobs.txt");
    {
        // Streamed: a 138 MB string here would be in every child's peak RSS (a forked
        // child counts its parent's pages until it execs).
        use std::io::BufRead;
        let input = std::io::BufReader::new(std::fs::File::open(&data).unwrap());
        let mut out = BufWriter::new(std::fs::File::create(&job_data).unwrap());
        for line in input.lines().map(Result::unwrap) {
            let line = line.as_str();
            match line.rsplit_once('|') {
                Some((head, project)) => writeln!(out, "{head}|720|grp|01:23:45.678|3600||4000M|{project}").unwrap(),
                None => writeln!(out, "{line}").unwrap(),
            }
        }
        out.flush().unwrap();
    }
    let bin = support::bins!().cost_tags;
    let cases: [&[&str]; 5] = [
        &["--by", "project"],
        // Issue 24: a row per job run, sorted by start time in bounded memory (the
        // starts here are random, so the sort spills and merges); target at most twice
        // `--by project`.
        &["--by", "job", "--format", "csv"],
        &["--by", "project", "(prices from the price cache, spot by the hour)"],
        &["--by", "project,user", "--every", "day", "--format", "csv"],
        &[
            "--by",
            "project,user,partition,account",
            "--every",
            "day",
            "--format",
            "json",
            "--chart",
        ],
    ];
    for case in cases {
        let mut walls = Vec::new();
        let mut peak = 0;
        for _ in 0..RUNS {
            let from_cache = case.last().is_some_and(|a| a.starts_with('('));
            let case = if from_cache { &case[..case.len() - 1] } else { case };
            let mut cmd = Command::new(&bin);
            cmd.arg("--config")
                .arg(if from_cache { &cache_settings } else { &settings })
                .args(["report", "--sacct-file"])
                .arg(if case.contains(&"job") { &job_data } else { &data })
                .args([
                    "--since",
                    "2024-03-01",
                    "--until",
                    "2024-03-31",
                    "--now",
                    "2024-04-01T00:00:00",
                ])
                .args(case);
            if case.last() == Some(&"--chart") {
                cmd.arg(dir.path().join("spend.svg"));
            }
            let (wall, rss) = measure(&mut cmd);
            walls.push(wall);
            peak = peak.max(rss);
        }
        walls.sort();
        let median = walls[walls.len() / 2].as_secs_f64();
        println!(
            "  {:<80} median {:.2} s ({:.2} M lines/s), peak RSS {:.1} MB",
            case.join(" "),
            median,
            LINES as f64 / median / 1e6,
            peak as f64 / 1024.0
        );
    }
    println!("  target: under 3 s and under 100 MB per run");
    budget_refresh(dir.path(), &data, &bin);
}

/// `cost-tags budget refresh` with `[budget.limits]` for the 50 projects over the same
/// 1,000,000 lines, from stand-ins on PATH: `sacct` prints the file (with a time limit
/// column, and the bare job ids when asked), `squeue` and `scontrol` print nothing. Every
/// line is parsed, confirmed and priced as in a real refresh; the month is this one, so
/// these March 2024 jobs accrue nothing (the work per line is the same).
fn budget_refresh(dir: &Path, data: &Path, bin: &Path) {
    let text = std::fs::read_to_string(data).unwrap();
    let limited = dir.join("sacct-limits.txt");
    let mut out = BufWriter::new(std::fs::File::create(&limited).unwrap());
    for line in text.lines() {
        match line.rsplit_once('|') {
            Some((head, project)) => writeln!(out, "{head}|60|{project}").unwrap(),
            None => writeln!(out, "{line}").unwrap(),
        }
    }
    out.flush().unwrap();
    drop(out);
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let script = |name: &str, body: String| {
        let path = bin_dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    script(
        "sacct",
        format!(
            "#!/bin/sh\nfor a; do [ \"$a\" = --format=JobID ] && exec cut -d'|' -f1 {f}; done\nexec cat {f}\n",
            f = limited.display()
        ),
    );
    script("squeue", "#!/bin/sh\nexit 0\n".into());
    script("scontrol", "#!/bin/sh\nexit 0\n".into());
    let limits: String = (0..PROJECTS).map(|p| format!("Project{p:02} = 1000\n")).collect();
    let settings = dir.join("cost-tags-budget.toml");
    std::fs::write(
        &settings,
        format!(
            "{SETTINGS}[budget]\nenabled = true\ncache_file = {:?}\n[budget.limits]\n{limits}",
            dir.join("budgets.jsonl")
        ),
    )
    .unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut walls = Vec::new();
    let mut peak = 0;
    for _ in 0..RUNS {
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&settings)
            .args(["budget", "refresh"])
            .env("PATH", &path);
        let (wall, rss) = measure(&mut cmd);
        walls.push(wall);
        peak = peak.max(rss);
    }
    walls.sort();
    println!(
        "cost-tags budget refresh ([budget.limits], 50 projects) over the same {LINES} lines: median {:.2} s, \
         peak RSS {:.1} MB (target under 3 s)",
        walls[walls.len() / 2].as_secs_f64(),
        peak as f64 / 1024.0
    );
}
