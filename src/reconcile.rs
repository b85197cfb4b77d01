//! `cost-tags reconcile`: repair what lost prologs and epilogs, crashes and AWS outages
//! leave behind.
//!
//! On a compute node, squeue says which jobs really run on the node (asked twice: once for
//! the jobs' fields, once for their ids alone, which nothing a user writes can forge; see
//! [`confirm_jobs`]); the ledger drops the jobs that are gone and gains the ones missing,
//! then the instance's actual managed tags (DescribeTags) are compared with the ledger's
//! and applied through [`node_hook::apply_owed`] when they differ. The ledger is read before squeue is asked
//! and changed under its lock after: a job is dropped only if it was already in the ledger
//! before the query (so a prolog racing the query is never undone), and added only if the
//! ledger had it neither before nor now (so an epilog racing the query is never undone).
//! Bounded by `deadline`; an AWS failure is recorded as owed and exits 0, like the hooks;
//! a failed squeue changes nothing and exits 2.
//!
//! On the head node (`--cluster`), every running instance of the cluster whose Slurm node
//! runs no job (or which is no Slurm node) loses its managed cost tags. Calls are paced at
//! `--rate` per second, so the one squeue snapshot can be minutes old when an instance's
//! turn comes: squeue is asked again about that node right before its DeleteTags, and a
//! node that runs a job by then keeps its tags. Each tag is deleted only if it still has
//! the value seen, so a prolog that tagged the node for a job of another user or project
//! keeps those. What remains is the round trip of one DeleteTags: a job allocated after
//! that last squeue answer whose prolog tags the instance (same user and project) before
//! the DeleteTags lands loses those two tags until `cost-tags reconcile` runs on the node.
//! A prolog starts after slurmctld has allocated the job and told slurmd, and then needs
//! IMDS and its own CreateTags, so the race needs both within tens of milliseconds.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::aws::ec2::{ClusterInstance, Ec2Tags};
use crate::aws::imds;
use crate::config::{ProjectSource, Settings};
use crate::job::Job;
use crate::ledger::{Failure, Ledger, LedgerState};
use crate::log;
use crate::node_hook::{self, Done};
use crate::node_status::{difference, instance_tags, TagDifference};
use crate::report::hostlist;
use crate::slurm_fields::{self, ProjectField};
use crate::tags::{desired_tags, managed_keys, TagMap};

#[derive(clap::Args, Debug, Clone)]
pub struct ReconcileArgs {
    /// Print what would change; change nothing (no ledger write, no CreateTags/DeleteTags).
    #[arg(long)]
    pub dry_run: bool,
    /// This node's Slurm name; else /etc/parallelcluster/slurm_plugin/slurm_nodename, else
    /// the short host name.
    #[arg(long, value_name = "NAME", conflicts_with = "cluster")]
    pub node: Option<String>,
    /// On the head node: remove the cost tags of every cluster instance that runs no job.
    #[arg(long)]
    pub cluster: bool,
    /// With --cluster: the cluster's name (tag parallelcluster:cluster-name); else
    /// `stack_name` from /etc/parallelcluster/cfnconfig.
    #[arg(long, value_name = "NAME", requires = "cluster")]
    pub cluster_name: Option<String>,
    /// With --cluster: at most this many EC2 tag calls per second.
    #[arg(long, value_name = "N", default_value_t = 5.0, requires = "cluster")]
    pub rate: f64,
    #[arg(long, hide = true, default_value = "squeue")]
    pub squeue: PathBuf,
    #[arg(long, hide = true, default_value = "scontrol")]
    pub scontrol: PathBuf,
    #[arg(long, hide = true, default_value = "/etc/parallelcluster/cfnconfig")]
    pub cfnconfig: PathBuf,
    #[arg(
        long,
        hide = true,
        default_value = "/etc/parallelcluster/slurm_plugin/slurm_nodename"
    )]
    pub nodename_file: PathBuf,
}

/// `cost-tags reconcile [--cluster]`.
pub fn run(settings: &Settings, args: &ReconcileArgs) -> Result<ExitCode> {
    log::init("cost-tags-reconcile");
    if args.cluster {
        reconcile_cluster(settings, args)
    } else {
        reconcile_node(settings, args)
    }
}

// ---------------------------------------------------------------- Slurm commands

/// Runs `program args` (no shell) and returns its stdout; killed at `deadline`. A non-zero
/// exit is an error carrying its stderr.
pub fn run_program(program: &Path, args: &[&str], deadline: Instant) -> Result<String> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {shown}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{shown} did not finish in time and was killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        anyhow::bail!("{shown} failed ({status}): {}", String::from_utf8_lossy(&err).trim());
    }
    String::from_utf8(out).with_context(|| format!("{shown} printed invalid UTF-8"))
}

/// squeue's format for one node's jobs under `source`: job id, user, partition, account,
/// then the project's own field when it is not the account. The comment is asked for
/// only when it is the project, and last (see [`crate::slurm_fields`]).
pub fn node_jobs_format(source: ProjectSource) -> String {
    let mut format = String::from("%A|%u|%P|%a");
    if let Some(field) = ProjectField::of(source) {
        format.push('|');
        format.push_str(field.squeue_code());
    }
    format
}

/// Fields of [`node_jobs_format`] before the project's own.
const NODE_JOBS_FIXED: usize = 4;

/// squeue's format that only lists job ids: nothing in it is free text, so no line of its
/// answer can be forged.
pub const JOB_IDS_FORMAT: &str = "%A";

/// Parses squeue's [`node_jobs_format`] lines into jobs. A line that is not a job line
/// continues the previous job's last field (Slurm prints a newline in free text raw).
/// A line that looks like a job line may still be such a continuation, forged: the
/// caller confirms the jobs with [`confirm_jobs`].
pub fn parse_node_jobs(text: &str, source: ProjectSource, cluster: &str) -> Result<Vec<Job>> {
    let project_field = ProjectField::of(source);
    let count = NODE_JOBS_FIXED + usize::from(project_field.is_some());
    let value = |s: &str| if s == "(null)" { String::new() } else { s.to_string() };
    // Each job with its last field, which continuation lines extend.
    let mut jobs: Vec<(Job, String)> = Vec::new();
    for line in text.lines() {
        let fields = slurm_fields::split(line, count, true)
            .filter(|f| !f[0].is_empty() && f[0].bytes().all(|b| b.is_ascii_digit()));
        let Some(fields) = fields else {
            match jobs.last_mut() {
                Some((_, last)) => {
                    last.push('\n');
                    last.push_str(line);
                    continue;
                }
                None if line.trim().is_empty() => continue,
                None => anyhow::bail!("squeue printed an unexpected line: {line:?}"),
            }
        };
        let job = Job {
            id: fields[0].to_string(),
            user: value(fields[1]),
            project: String::new(),
            partition: value(fields[2]),
            account: value(fields[3]),
            cluster: cluster.to_string(),
        };
        jobs.push((job, fields[count - 1].to_string()));
    }
    Ok(jobs
        .into_iter()
        .map(|(mut job, last)| {
            match project_field {
                None => {
                    job.account = value(&last);
                    job.project = job.account.clone();
                }
                // A default wckey is printed with a leading `*`.
                Some(ProjectField::Wckey) => job.project = value(last.trim_start_matches('*')),
                Some(ProjectField::Comment) => job.project = value(&last),
            }
            job
        })
        .collect())
}

/// Keeps the jobs of `jobs` (from [`parse_node_jobs`]) that `ids` (squeue's
/// [`JOB_IDS_FORMAT`] answer, asked after) confirms, and fails when they disagree in a way
/// only a forged line explains: a job printed twice, or a job that the id list does not
/// have. The latter also happens when a job ended between the two queries; the next run
/// then agrees. A job listed only in `ids` started meanwhile; its prolog records it.
pub fn confirm_jobs(jobs: Vec<Job>, ids: &str) -> Result<Vec<Job>> {
    let listed = parse_job_ids(ids)?;
    let mut seen = BTreeSet::new();
    for job in &jobs {
        anyhow::ensure!(
            seen.insert(job.id.as_str()),
            "squeue printed job {} twice: a newline in a job's free text (its comment) forged a line",
            job.id
        );
        anyhow::ensure!(
            listed.contains(&job.id),
            "squeue printed job {} (user {:?}), which `squeue -o {JOB_IDS_FORMAT}` does not list: a newline \
             in another job's free text (its comment) forged that line, or the job ended meanwhile",
            job.id,
            job.user
        );
    }
    Ok(jobs)
}

/// Parses squeue's [`JOB_IDS_FORMAT`] answer: one job id a line.
pub fn parse_job_ids(text: &str) -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        anyhow::ensure!(
            line.bytes().all(|b| b.is_ascii_digit()),
            "squeue printed {line:?} where a job id belongs"
        );
        ids.insert(line.to_string());
    }
    Ok(ids)
}

/// The job states in which a job holds its node (and, on the node, is in the ledger).
const NODE_STATES: &str = "CONFIGURING,RUNNING,SUSPENDED";

/// What reconciling changed in the ledger.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LedgerChange {
    pub dropped: Vec<Job>,
    pub added: Vec<Job>,
}

/// Brings `state` in line with `running` (squeue's answer): drops jobs that were in
/// `before` (the ledger as read before squeue was asked) but do not run, adds running jobs
/// that were in neither `before` nor `state`, keeps the rest as they are.
pub fn reconcile_jobs(state: &mut LedgerState, before: &[Job], running: &[Job]) -> LedgerChange {
    let running_ids: BTreeSet<&str> = running.iter().map(|j| j.id.as_str()).collect();
    let before_ids: BTreeSet<&str> = before.iter().map(|j| j.id.as_str()).collect();
    let mut change = LedgerChange::default();
    state.jobs.retain(|j| {
        let stale = before_ids.contains(j.id.as_str()) && !running_ids.contains(j.id.as_str());
        if stale {
            change.dropped.push(j.clone());
        }
        !stale
    });
    for job in running {
        if !before_ids.contains(job.id.as_str()) && !state.jobs.iter().any(|j| j.id == job.id) {
            state.jobs.push(job.clone());
            change.added.push(job.clone());
        }
    }
    change
}

// ---------------------------------------------------------------- one node

fn node_name(args: &ReconcileArgs) -> Result<String> {
    if let Some(n) = &args.node {
        return Ok(n.clone());
    }
    if let Ok(text) = std::fs::read_to_string(&args.nodename_file) {
        let name = text.trim();
        if !name.is_empty() {
            return Ok(name.to_string());
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").context("cannot read the host name")?;
    let short = host.trim().split('.').next().unwrap_or("").to_string();
    anyhow::ensure!(!short.is_empty(), "empty host name; pass --node");
    Ok(short)
}

fn describe_job(j: &Job) -> String {
    format!("{} (user {}, project {:?})", j.id, j.user, j.project)
}

fn describe_diff(d: &[TagDifference]) -> Vec<String> {
    d.iter()
        .map(|d| match (&d.want, &d.have) {
            (Some(w), Some(h)) => format!("{}: {h:?} -> {w:?}", d.key),
            (Some(w), None) => format!("{}: (none) -> {w:?}", d.key),
            (None, Some(h)) => format!("{}: {h:?} -> (none)", d.key),
            (None, None) => unreachable!("a difference has a side"),
        })
        .collect()
}

fn reconcile_node(settings: &Settings, args: &ReconcileArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let deadline = started + settings.deadline;
    let network_deadline = deadline - (settings.deadline / 10).min(Duration::from_millis(300));
    let ledger = Ledger::open(&settings.state_dir)?;
    // The ledger before squeue is asked (see the module doc for why).
    let before = ledger.read().unwrap_or_default();
    let node = node_name(args)?;
    let ask = |format: &str| {
        run_program(
            &args.squeue,
            &["-h", "-a", "-w", &node, "-t", NODE_STATES, "-o", format],
            network_deadline,
        )
        .context("cannot ask Slurm which jobs run here; nothing changed")
    };
    let output = ask(&node_jobs_format(settings.project_source))?;
    let ids = ask(JOB_IDS_FORMAT)?;
    let cluster = std::env::var("SLURM_CLUSTER_NAME")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| before.jobs.iter().map(|j| j.cluster.clone()).find(|c| !c.is_empty()))
        .unwrap_or_default();
    let running = parse_node_jobs(&output, settings.project_source, &cluster)
        .and_then(|jobs| confirm_jobs(jobs, &ids))
        .map_err(|e| {
            log::error(&format!("node {node}: {e:#}; nothing changed"));
            e
        })
        .context("cannot read squeue's answer; nothing changed")?;

    if args.dry_run {
        let mut after = before.clone();
        let change = reconcile_jobs(&mut after, &before.jobs, &running);
        print_ledger_change(&node, &change, true);
        let desired = desired_tags(&after.jobs, &settings.tags);
        let (_, actual) = instance_tags(settings, network_deadline).context("cannot read the instance's tags")?;
        let diff = difference(&desired, &actual);
        if diff.is_empty() {
            println!("tags: in sync, nothing to change");
        } else {
            for line in describe_diff(&diff) {
                println!("tags: would change {line}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }

    let (change, state) = ledger.update(network_deadline, |s| reconcile_jobs(s, &before.jobs, &running))?;
    print_ledger_change(&node, &change, false);
    for j in &change.dropped {
        log::info(&format!(
            "node {node}: dropped job {} (no longer runs)",
            describe_job(j)
        ));
    }
    for j in &change.added {
        log::info(&format!(
            "node {node}: added job {} (runs, was missing)",
            describe_job(j)
        ));
    }

    let owe = |reason: String| -> Result<ExitCode> {
        log::error(&format!(
            "node {node}: tags owed, will be applied by the next run: {reason}"
        ));
        ledger
            .update(deadline, |s| {
                s.owed = true;
                s.last_failure = Some(Failure::now("", reason));
            })
            .context("cannot record that tags are owed")?;
        Ok(ExitCode::SUCCESS)
    };
    let desired = desired_tags(&state.jobs, &settings.tags);
    let actual = match instance_tags(settings, network_deadline) {
        Ok((_, actual)) => actual,
        Err(e) => return owe(format!("{e:#}")),
    };
    let diff = difference(&desired, &actual);
    if diff.is_empty() {
        // The instance is right: say so in the ledger, if the jobs did not change meanwhile.
        ledger.update(deadline, |s| {
            if desired_tags(&s.jobs, &settings.tags) == actual {
                s.applied = actual.clone();
                s.owed = false;
                s.last_failure = None;
            }
        })?;
        println!("tags: in sync");
        return Ok(ExitCode::SUCCESS);
    }
    for line in describe_diff(&diff) {
        println!("tags: repairing {line}");
        log::info(&format!("node {node}: repairing tag {line}"));
    }
    ledger.update(deadline, |s| s.owed = true)?;
    match node_hook::apply_owed(settings, &ledger, network_deadline) {
        Ok(Done::Applied(tags)) => {
            log::info(&format!("node {node}: instance tags now {tags:?}"));
            Ok(ExitCode::SUCCESS)
        }
        Ok(Done::UpToDate) => Ok(ExitCode::SUCCESS),
        Err(e) => owe(format!("{e:#}")),
    }
}

fn print_ledger_change(node: &str, change: &LedgerChange, dry_run: bool) {
    let (drop, add) = if dry_run {
        ("would drop", "would add")
    } else {
        ("dropped", "added")
    };
    for j in &change.dropped {
        println!("ledger: {drop} job {} (no longer runs on {node})", describe_job(j));
    }
    for j in &change.added {
        println!("ledger: {add} job {} (runs on {node})", describe_job(j));
    }
    if change.dropped.is_empty() && change.added.is_empty() {
        println!("ledger: in line with Slurm on {node}");
    }
}

// ---------------------------------------------------------------- whole cluster

/// How long a Slurm query on the head node may take.
const HEAD_SLURM_TIMEOUT: Duration = Duration::from_secs(60);

/// The job states in which a node is not idle, for the head node's sweep: a completing
/// job's epilog still owns the node's tags.
const HEAD_BUSY_STATES: &str = "CONFIGURING,RUNNING,SUSPENDED,COMPLETING";

/// `stack_name` from ParallelCluster's cfnconfig (`key=value` lines, maybe quoted).
pub fn cfnconfig_stack_name(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim().trim_start_matches("export ");
        let value = line.strip_prefix("stack_name=")?;
        let value = value.trim().trim_matches('"').trim_matches('\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// A Slurm node's name and the addresses it is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmNode {
    pub name: String,
    pub addr: String,
    pub hostname: String,
}

/// Parses `scontrol show nodes -o` (one node per line, `Key=Value` tokens).
pub fn parse_scontrol_nodes(text: &str) -> Vec<SlurmNode> {
    text.lines()
        .filter_map(|line| {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|t| t.strip_prefix(key))
                    .map(str::to_string)
                    .unwrap_or_default()
            };
            let name = field("NodeName=");
            (!name.is_empty()).then(|| SlurmNode {
                addr: field("NodeAddr="),
                hostname: field("NodeHostName="),
                name,
            })
        })
        .collect()
}

/// The Slurm node an instance is: NodeAddr or NodeHostName equal to its private IP, or
/// to the first label of its private DNS name.
pub fn node_of<'a>(instance: &ClusterInstance, nodes: &'a [SlurmNode]) -> Option<&'a SlurmNode> {
    let mut names: Vec<&str> = Vec::new();
    if let Some(ip) = instance.private_ip.as_deref().filter(|s| !s.is_empty()) {
        names.push(ip);
    }
    if let Some(host) = instance
        .private_dns
        .as_deref()
        .and_then(|d| d.split('.').next())
        .filter(|s| !s.is_empty())
    {
        names.push(host);
    }
    nodes
        .iter()
        .find(|n| names.iter().any(|a| *a == n.addr || *a == n.hostname))
}

/// Node names that run a job, from `squeue -o %N` (one hostlist per line).
pub fn parse_busy_nodes(text: &str) -> Result<BTreeSet<String>> {
    let mut busy = BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        hostlist::expand(line, |n| {
            busy.insert(n.to_string());
        })
        .map_err(|e| anyhow::anyhow!("squeue: {e}"))?;
    }
    Ok(busy)
}

/// The jobs holding `node` now, from one squeue query (job ids only: nothing a job's
/// submitter writes can forge them).
fn jobs_on_node(squeue: &Path, node: &str) -> Result<BTreeSet<String>> {
    let text = run_program(
        squeue,
        &["-h", "-a", "-w", node, "-t", HEAD_BUSY_STATES, "-o", JOB_IDS_FORMAT],
        Instant::now() + HEAD_SLURM_TIMEOUT,
    )?;
    parse_job_ids(&text)
}

/// Spaces calls at most `rate` per second.
struct Pacer {
    gap: Duration,
    next: Instant,
}

impl Pacer {
    fn new(rate: f64) -> Pacer {
        let gap = if rate.is_finite() && rate > 0.0 {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::ZERO
        };
        Pacer {
            gap,
            next: Instant::now(),
        }
    }

    fn wait(&mut self) {
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
        self.next = Instant::now().max(self.next) + self.gap;
    }
}

fn reconcile_cluster(settings: &Settings, args: &ReconcileArgs) -> Result<ExitCode> {
    anyhow::ensure!(args.rate > 0.0 && args.rate.is_finite(), "--rate must be more than 0");
    let name = match &args.cluster_name {
        Some(n) => n.clone(),
        None => {
            let text = std::fs::read_to_string(&args.cfnconfig)
                .with_context(|| format!("cannot read {} (or pass --cluster-name)", args.cfnconfig.display()))?;
            cfnconfig_stack_name(&text)
                .with_context(|| format!("no stack_name in {} (pass --cluster-name)", args.cfnconfig.display()))?
        }
    };
    let keys = managed_keys(&settings.tags);
    let runtime = crate::aws::sdk::Runtime::new()?;
    let budget = settings.deadline;
    let ec2 = runtime.block_on(async {
        let region_set = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|r| !r.is_empty()));
        let fallback = if region_set {
            String::new()
        } else {
            imds::identity(&settings.cache_dir, budget)
                .await
                .context("no AWS_REGION and no region from IMDS")?
                .region
        };
        anyhow::Ok(Ec2Tags::new(&fallback, budget).await)
    })?;
    let mut pacer = Pacer::new(args.rate);
    pacer.wait();
    let mut instances = runtime.block_on(ec2.cluster_instances(&name))?;
    instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    // Slurm is asked after EC2, so its answer is as fresh as possible when tags go.
    let nodes = parse_scontrol_nodes(&run_program(
        &args.scontrol,
        &["show", "nodes", "-o"],
        Instant::now() + HEAD_SLURM_TIMEOUT,
    )?);
    let busy = parse_busy_nodes(&run_program(
        &args.squeue,
        &["-h", "-a", "-t", HEAD_BUSY_STATES, "-o", "%N"],
        Instant::now() + HEAD_SLURM_TIMEOUT,
    )?)?;

    let (mut changed, mut failed) = (0usize, 0usize);
    for instance in &instances {
        // The head node and login nodes are tagged by their administrators, not by jobs.
        if instance
            .tags
            .get("parallelcluster:node-type")
            .is_some_and(|t| t != "Compute")
        {
            continue;
        }
        let cost: TagMap = keys
            .iter()
            .filter_map(|k| instance.tags.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        if cost.is_empty() {
            continue;
        }
        let node = node_of(instance, &nodes);
        if node.is_some_and(|n| busy.contains(&n.name)) {
            continue;
        }
        let who = match node {
            Some(n) => format!("{} (node {}, no job)", instance.instance_id, n.name),
            None => format!("{} (no Slurm node)", instance.instance_id),
        };
        let listed: Vec<String> = cost.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        if args.dry_run {
            println!("{who}: would remove {}", listed.join(", "));
            changed += 1;
            continue;
        }
        pacer.wait();
        // The snapshot may be minutes old by now (the pacing): a job that started on the
        // node since then may already carry the same user and project tags, which the
        // value-conditional delete would take from it. So Slurm is asked again about this
        // node right before the call (see the module doc for the window that remains).
        if let Some(n) = node {
            match jobs_on_node(&args.squeue, &n.name) {
                Ok(ids) if ids.is_empty() => {}
                Ok(ids) => {
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    let line = format!("{who}: kept, job {} started meanwhile", ids.join(", "));
                    println!("{line}");
                    log::info(&line);
                    continue;
                }
                Err(e) => {
                    failed += 1;
                    let line = format!("{who}: kept, cannot ask Slurm again: {e:#}");
                    println!("{line}");
                    log::error(&line);
                    continue;
                }
            }
        }
        match runtime.block_on(ec2.delete_if_unchanged(&instance.instance_id, &cost)) {
            Ok(()) => {
                changed += 1;
                let line = format!("{who}: removed {}", listed.join(", "));
                println!("{line}");
                log::info(&line);
            }
            Err(e) => {
                failed += 1;
                let line = format!("{who}: could not remove cost tags: {e:#}");
                println!("{line}");
                log::error(&line);
            }
        }
    }
    let busy_count = instances
        .iter()
        .filter(|i| node_of(i, &nodes).is_some_and(|n| busy.contains(&n.name)))
        .count();
    println!(
        "cluster {name}: {} running instances, {busy_count} with jobs, {changed} {}{}",
        instances.len(),
        if args.dry_run { "would be untagged" } else { "untagged" },
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> Job {
        Job {
            id: id.into(),
            user: "u".into(),
            project: "P".into(),
            ..Job::default()
        }
    }

    #[test]
    fn squeue_is_asked_for_the_comment_only_when_it_is_the_project() {
        assert_eq!(node_jobs_format(ProjectSource::Comment), "%A|%u|%P|%a|%k");
        assert_eq!(node_jobs_format(ProjectSource::Wckey), "%A|%u|%P|%a|%w");
        assert_eq!(node_jobs_format(ProjectSource::Account), "%A|%u|%P|%a");
    }

    #[test]
    fn squeue_lines_keep_pipes_and_newlines_in_the_last_field() {
        let text = "12|alice|compute|acct|ProjectA\n13|bob|gpu|(null)|a|b\n14|carol|compute|(null)|line1\nline2\n";
        let jobs = parse_node_jobs(text, ProjectSource::Comment, "c1").unwrap();
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs[0].project, "ProjectA");
        assert_eq!((jobs[0].account.as_str(), jobs[0].cluster.as_str()), ("acct", "c1"));
        assert_eq!(jobs[1].project, "a|b");
        assert_eq!(jobs[1].account, "");
        assert_eq!(jobs[2].project, "line1\nline2");
        let by_wckey = parse_node_jobs(
            "12|alice|compute|acct|*wk\n13|bob|gpu|a|(null)\n",
            ProjectSource::Wckey,
            "",
        )
        .unwrap();
        assert_eq!((by_wckey[0].project.as_str(), by_wckey[1].project.as_str()), ("wk", ""));
        let by_account =
            parse_node_jobs("12|alice|compute|acct\n13|bob|gpu|(null)\n", ProjectSource::Account, "").unwrap();
        assert_eq!(
            (by_account[0].project.as_str(), by_account[0].account.as_str()),
            ("acct", "acct")
        );
        assert_eq!(by_account[1].project, "");
        assert!(parse_node_jobs("", ProjectSource::Comment, "").unwrap().is_empty());
        assert!(parse_node_jobs("garbage\n", ProjectSource::Comment, "").is_err());
    }

    #[test]
    fn a_forged_job_line_is_refused_by_the_id_list() {
        // Job 12's comment is "x\n9999999|victim|compute|physics|VictimProject".
        let text = "12|mallory|compute|physics|x\n9999999|victim|compute|physics|VictimProject\n";
        let jobs = parse_node_jobs(text, ProjectSource::Comment, "").unwrap();
        assert_eq!(jobs.len(), 2, "it looks like a job line");
        let e = confirm_jobs(jobs, "12\n").unwrap_err().to_string();
        assert!(e.contains("job 9999999") && e.contains("forged"), "{e}");
        // Naming a job that really runs here: printed twice.
        let text = "12|mallory|compute|physics|x\n13|victim|compute|physics|MalloryProject\n13|victim|compute|physics|VictimProject\n";
        let jobs = parse_node_jobs(text, ProjectSource::Comment, "").unwrap();
        let e = confirm_jobs(jobs, "12\n13\n").unwrap_err().to_string();
        assert!(e.contains("job 13 twice"), "{e}");
        // Agreeing answers, and a job that started between the two queries.
        let jobs = parse_node_jobs("12|alice|compute|physics|P\n", ProjectSource::Comment, "").unwrap();
        assert_eq!(confirm_jobs(jobs, "12\n14\n").unwrap().len(), 1);
        assert!(parse_job_ids("12\nx|y\n").is_err());
    }

    #[test]
    fn reconcile_drops_stale_adds_missing_and_respects_races() {
        let before = vec![job("1"), job("2")];
        let mut state = LedgerState {
            jobs: before.clone(),
            ..LedgerState::default()
        };
        let change = reconcile_jobs(&mut state, &before, &[job("2"), job("3")]);
        assert_eq!(change.dropped, vec![job("1")]);
        assert_eq!(change.added, vec![job("3")]);
        assert_eq!(state.jobs, vec![job("2"), job("3")]);

        // A prolog added 4 after squeue answered: kept. An epilog removed 5 (which squeue
        // still saw) meanwhile: not re-added.
        let before = vec![job("5")];
        let mut state = LedgerState {
            jobs: vec![job("4")],
            ..LedgerState::default()
        };
        let change = reconcile_jobs(&mut state, &before, &[job("5")]);
        assert_eq!(change, LedgerChange::default());
        assert_eq!(state.jobs, vec![job("4")]);
    }

    #[test]
    fn cluster_helpers() {
        assert_eq!(
            cfnconfig_stack_name("cfn_region=us-east-1\nstack_name=my-cluster\n").as_deref(),
            Some("my-cluster")
        );
        assert_eq!(cfnconfig_stack_name("stack_name=\"q\"").as_deref(), Some("q"));
        assert_eq!(cfnconfig_stack_name("x=1"), None);
        let nodes = parse_scontrol_nodes(
            "NodeName=q-dy-c5-1 Arch=x86_64 CoresPerSocket=1 NodeAddr=10.0.0.5 NodeHostName=ip-10-0-0-5 Version=23.02\n\
             NodeName=q-dy-c5-2 NodeAddr=q-dy-c5-2 NodeHostName=q-dy-c5-2 OS=Linux 5.15 Reason=x NodeAddr=1.2.3.4\n",
        );
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].addr, "10.0.0.5");
        assert_eq!(nodes[1].addr, "q-dy-c5-2");
        let inst = |ip: &str, dns: &str| ClusterInstance {
            instance_id: "i-1".into(),
            private_ip: Some(ip.into()),
            private_dns: Some(dns.into()),
            tags: TagMap::new(),
        };
        assert_eq!(node_of(&inst("10.0.0.5", ""), &nodes).unwrap().name, "q-dy-c5-1");
        assert_eq!(
            node_of(&inst("10.9.9.9", "ip-10-0-0-5.ec2.internal"), &nodes)
                .unwrap()
                .name,
            "q-dy-c5-1"
        );
        assert!(node_of(&inst("1.2.3.4", ""), &nodes).is_none());
        let busy = parse_busy_nodes("q-dy-c5-[1-3,7]\n\nn1,n2\n").unwrap();
        assert_eq!(busy.len(), 6);
        assert!(busy.contains("q-dy-c5-7") && busy.contains("n2"));
        assert!(parse_busy_nodes("q-[1-\n").is_err());
    }

    #[test]
    fn program_is_killed_at_the_deadline_and_failures_carry_stderr() {
        let started = Instant::now();
        let e = run_program(
            Path::new("/bin/sleep"),
            &["10"],
            Instant::now() + Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(e.to_string().contains("killed"), "{e}");
        let e = run_program(
            Path::new("/bin/sh"),
            &["-c", "echo boom >&2; exit 3"],
            started + Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
        let ok = run_program(
            Path::new("/bin/echo"),
            &["a|b"],
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(ok, "a|b\n");
    }
}
