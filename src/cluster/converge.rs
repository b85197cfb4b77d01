//! `cost-tags reconcile --cluster`, on the head node: the tags of every instance of the
//! cluster converge to what Slurm says, adding as well as removing.
//!
//! One pass: the cluster's running instances with their tags (DescribeInstances, 1,000 a
//! page), then Slurm's snapshot ([`crate::cluster::slurm_view`]), then the calls of
//! [`crate::cluster::plan`], each taken from the token bucket of
//! [`crate::cluster::pacing`]. A throttled call goes back to the head of the queue and
//! is sent again when the slowed bucket allows; the pass gives up only after
//! `give_up_after`, and what it leaves is recomputed by the next pass (nothing is owed
//! anywhere: the desired state is Slurm's, the actual state EC2's).
//!
//! Pacing makes the snapshot older with every call, and in node mode prologs tag too: a
//! call computed from a stale snapshot could overwrite the tags a prolog just wrote for a
//! new job. So right before each call Slurm is asked again, with the cheap query no user
//! can forge (job ids and nodes), and an instance whose node's jobs changed since the
//! snapshot is left out of the call (deferred to the next pass). That recheck is asked
//! while the previous call is in flight, and serves only if it was asked at most
//! [`RECHECK_REUSE`] before the call (else Slurm is asked again): one call after the
//! other, a `squeue` and a CreateTags would have to fit together in a tenth of a second
//! for the pass to keep 9 calls a second. What remains is the round trip of the
//! previous call and of this one. This costs slurmctld one `squeue` per tag call, so at
//! most `calls_per_second` a second while there is something to change, and one
//! `scontrol show nodes` and two `squeue` per pass.
//!
//! At the end of a pass (not of a dry run), which instance backed which node is
//! recorded in the [`crate::cluster::timeline`], as of the DescribeInstances answer. A
//! timeline that cannot be written is logged and said in the summary, and the pass's
//! outcome stays its tagging's: tags are what finance reads today.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::aws::ec2::{CallError, ClusterInstance};
use crate::aws::imds;
use crate::cluster::pacing::{Clock, RealClock, TokenBucket};
use crate::cluster::plan::{batches, busy_nodes_without_instance, targets, Action, Batch, Skipped, Target};
use crate::cluster::slurm_view::{slurm_cluster_name, ClusterSlurm, JobIds, SlurmCommands};
use crate::cluster::status::ClusterStatus;
use crate::cluster::tag_api::{Ec2TagApi, TagApi};
use crate::cluster::timeline::{self, TimelineFile, Updated};
use crate::config::Settings;
use crate::parallelcluster::cfnconfig::Cfnconfig;

/// How old the answer of a recheck asked beside the previous call may be and still
/// serve for the next call (module doc). Longer waits (the bucket slowed by throttling)
/// ask Slurm again.
pub(crate) const RECHECK_REUSE: Duration = Duration::from_secs(1);

/// What one pass is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct ConvergeOptions<'a> {
    /// The cluster's name (tag `parallelcluster:cluster-name`).
    pub cluster: String,
    /// Say what would change; change nothing.
    pub dry_run: bool,
    /// After this long, the pass stops and leaves the rest to the next one.
    pub give_up_after: Duration,
    /// Once set (SIGTERM to `--follow`), the pass stops the same way.
    pub stop: Option<&'a AtomicBool>,
    /// Where to record the instance timeline (`None`: not at all).
    pub timeline: Option<TimelineFile>,
}

/// What happened to one call.
#[derive(Debug)]
pub(crate) enum CallOutcome {
    /// A dry run: it would be sent.
    WouldSend,
    Sent,
    /// Sent without these instances: their node's jobs changed since the snapshot.
    SentWithout(Vec<String>),
    /// Every instance of it was deferred; nothing sent.
    AllDeferred,
    /// EC2 throttled it: it goes again later.
    Throttled,
    Failed(String),
    /// The pass gave up before sending it.
    Left,
}

/// What a pass reports as it goes, for the command line to show.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    Skipped(&'a Skipped),
    Call { batch: &'a Batch, outcome: CallOutcome },
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Skipped(s) => write!(f, "{} (node {}): left as it is: {}", s.instance_id, s.node, s.why),
            Event::Call { batch, outcome } => {
                let verb = match batch.action {
                    Action::Create => "CreateTags",
                    Action::DeleteIfUnchanged => "DeleteTags (if unchanged)",
                };
                let tags: Vec<String> = batch.tags.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                let ids = &batch.instance_ids;
                let shown = if ids.len() <= 3 {
                    ids.join(", ")
                } else {
                    format!("{}, {} and {} more", ids[0], ids[1], ids.len() - 2)
                };
                write!(f, "{verb} {} on {} ({shown}): ", tags.join(", "), ids.len())?;
                match outcome {
                    CallOutcome::WouldSend => write!(f, "would send"),
                    CallOutcome::Sent => write!(f, "done"),
                    CallOutcome::SentWithout(d) => write!(f, "done without {} (jobs changed meanwhile)", d.join(", ")),
                    CallOutcome::AllDeferred => write!(f, "not sent, the jobs changed meanwhile"),
                    CallOutcome::Throttled => write!(f, "throttled, will retry"),
                    CallOutcome::Failed(e) => write!(f, "failed: {e}"),
                    CallOutcome::Left => write!(f, "left for the next pass"),
                }
            }
        }
    }
}

/// What a pass did, in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConvergeSummary {
    pub cluster: String,
    pub dry_run: bool,
    /// Running instances of the cluster.
    pub instances: usize,
    /// Compute instances whose tags were already right.
    pub in_sync: usize,
    /// Compute instances whose tags were wrong.
    pub out_of_sync: usize,
    /// Instances changed by at least one call (or that would be, on a dry run).
    pub changed: usize,
    /// DescribeInstances pages read.
    pub pages: usize,
    /// CreateTags and DeleteTags sent, throttled ones included.
    pub calls: usize,
    pub throttled: usize,
    /// Left out of a call because their jobs changed meanwhile.
    pub deferred: usize,
    /// Whose Slurm node's jobs could not be told.
    pub skipped: usize,
    /// In a call that failed.
    pub failed: usize,
    /// In a call not sent before the pass gave up.
    pub left: usize,
    /// Slurm nodes running jobs that no instance is yet
    /// ([`crate::cluster::plan::busy_nodes_without_instance`]).
    pub without_instance: usize,
    pub timeline: TimelineOutcome,
}

/// What became of the instance timeline after a pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum TimelineOutcome {
    /// A dry run, or no timeline in the settings.
    #[default]
    NotWritten,
    Written(Updated),
    /// Why it could not be written; the tags were not affected.
    Failed(String),
}

impl ConvergeSummary {
    /// Whether some instance could not be brought in line (failed, or given up on).
    pub(crate) fn has_failures(&self) -> bool {
        self.failed > 0 || self.left > 0
    }
}

impl fmt::Display for ConvergeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster {}: {} running instances, {} compute instances in sync, {} {} in {} calls ({} throttled)",
            self.cluster,
            self.instances,
            self.in_sync,
            self.changed,
            if self.dry_run { "would change" } else { "changed" },
            self.calls,
            self.throttled,
        )?;
        for (n, what) in [
            (self.deferred, "deferred to the next pass"),
            (self.skipped, "left as they are"),
            (self.failed, "failed"),
            (self.left, "left when the pass gave up"),
            (
                self.without_instance,
                "Slurm nodes running jobs with no instance yet (powering up?)",
            ),
        ] {
            if n > 0 {
                write!(f, ", {n} {what}")?;
            }
        }
        match &self.timeline {
            TimelineOutcome::NotWritten => Ok(()),
            TimelineOutcome::Written(u) => {
                write!(
                    f,
                    "; timeline: {} intervals ({} opened, {} extended",
                    u.intervals, u.recorded.opened, u.recorded.extended
                )?;
                if u.recorded.closed > 0 {
                    write!(f, ", {} closed", u.recorded.closed)?;
                }
                if u.dropped > 0 {
                    write!(f, ", {} dropped after the retention", u.dropped)?;
                }
                if u.bad_lines > 0 {
                    write!(f, ", {} unreadable lines skipped and kept", u.bad_lines)?;
                }
                if !u.rewritten {
                    write!(f, ", file not rewritten: only last_seen moved")?;
                }
                write!(f, ")")
            }
            TimelineOutcome::Failed(e) => write!(f, "; timeline NOT written: {e}"),
        }
    }
}

/// Reads every page of the cluster's instances, each page paced and retried when
/// throttled until `give_up`.
fn all_instances(
    api: &mut dyn TagApi,
    bucket: &mut TokenBucket,
    clock: &mut dyn Clock,
    cluster: &str,
    give_up: Instant,
    summary: &mut ConvergeSummary,
) -> Result<Vec<ClusterInstance>> {
    let mut found = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let wait = bucket.take(clock.now());
        clock.sleep(wait);
        match api.instances_page(cluster, next.as_deref()) {
            Ok((page, token)) => {
                bucket.succeeded(clock.now());
                summary.pages += 1;
                found.extend(page);
                match token {
                    Some(t) => next = Some(t),
                    None => return Ok(found),
                }
            }
            Err(CallError::Throttled) => {
                bucket.throttled(clock.now());
                anyhow::ensure!(
                    clock.now() < give_up,
                    "EC2 DescribeInstances: throttled until the pass gave up"
                );
            }
            Err(CallError::Failed(e)) => return Err(e),
        }
    }
}

/// One pass of the convergence, through `api` and `slurm`, paced by `bucket`, ending
/// early (what is left counted as such) once `options.stop` is set. An error
/// means the pass could not start (EC2 or Slurm unreadable) and nothing changed;
/// failures of single calls are counted in the summary.
pub(crate) fn converge(
    api: &mut dyn TagApi,
    slurm: &mut (dyn ClusterSlurm + Send),
    bucket: &mut TokenBucket,
    clock: &mut dyn Clock,
    settings: &Settings,
    options: &ConvergeOptions<'_>,
    mut progress: impl FnMut(&Event<'_>),
) -> Result<ConvergeSummary> {
    let give_up = clock.now() + options.give_up_after;
    let mut summary = ConvergeSummary {
        cluster: options.cluster.clone(),
        dry_run: options.dry_run,
        ..ConvergeSummary::default()
    };
    let instances = all_instances(api, bucket, clock, &options.cluster, give_up, &mut summary)?;
    let seen_at = crate::model::time::Timestamp::now();
    // Slurm is asked after EC2, so its answer is as fresh as possible when tags go.
    let view = slurm.view().context("cannot ask Slurm; nothing changed")?;
    let (targets, skipped) = targets(&instances, &view, &settings.tags);
    summary.instances = instances.len();
    summary.skipped = skipped.len();
    summary.without_instance = busy_nodes_without_instance(&instances, &view).len();
    summary.in_sync = targets.iter().filter(|t| t.in_sync()).count();
    summary.out_of_sync = targets.len() - summary.in_sync;
    for s in &skipped {
        progress(&Event::Skipped(s));
    }
    let by_id: std::collections::HashMap<&str, &Target> = targets.iter().map(|t| (t.instance_id.as_str(), t)).collect();
    let mut queue: std::collections::VecDeque<Batch> = batches(&targets, &settings.tags).into();
    let (mut changed, mut deferred, mut failed, mut left) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    std::thread::scope(|scope| {
        // Slurm is lent to the thread that rechecks beside a call, and given back.
        let mut slurm = Some(slurm);
        let mut recheck_beside: Option<(Instant, Result<JobIds>)> = None;
        while let Some(mut batch) = queue.pop_front() {
            if options.dry_run {
                changed.extend(batch.instance_ids.iter().cloned());
                progress(&Event::Call {
                    batch: &batch,
                    outcome: CallOutcome::WouldSend,
                });
                continue;
            }
            // Asked to stop (SIGTERM to `--follow`): no call is cut short, the rest is
            // left for the next pass, like when the pass gives up.
            if clock.now() >= give_up || options.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                left.extend(batch.instance_ids.iter().cloned());
                progress(&Event::Call {
                    batch: &batch,
                    outcome: CallOutcome::Left,
                });
                continue;
            }
            let wait = bucket.take(clock.now());
            clock.sleep(wait);
            // Right before the call: leave out the instances whose jobs changed (module
            // doc). The answer asked beside the previous call serves if it is recent.
            let now = match recheck_beside.take() {
                Some((asked, answer)) if clock.now().saturating_duration_since(asked) <= RECHECK_REUSE => answer,
                _ => slurm
                    .as_mut()
                    .map_or_else(|| Err(anyhow::anyhow!("Slurm was not given back")), |s| s.job_ids()),
            };
            let now = match now {
                Ok(now) => now,
                Err(e) => {
                    failed.extend(batch.instance_ids.iter().cloned());
                    progress(&Event::Call {
                        batch: &batch,
                        outcome: CallOutcome::Failed(format!("cannot ask Slurm again: {e:#}")),
                    });
                    continue;
                }
            };
            let (keep, gone): (Vec<String>, Vec<String>) =
                batch.instance_ids.iter().cloned().partition(|id| {
                    match by_id.get(id.as_str()).and_then(|t| t.node.as_ref()) {
                        Some(node) => view.ids.get(node) == now.get(node),
                        None => true,
                    }
                });
            deferred.extend(gone.iter().cloned());
            if keep.is_empty() {
                progress(&Event::Call {
                    batch: &batch,
                    outcome: CallOutcome::AllDeferred,
                });
                continue;
            }
            batch.instance_ids = keep;
            summary.calls += 1;
            // The next call's recheck runs while this call is in flight.
            let beside = match (queue.is_empty(), slurm.take()) {
                (false, Some(s)) => {
                    let asked = clock.now();
                    Some((
                        asked,
                        scope.spawn(move || {
                            let answer = s.job_ids();
                            (s, answer)
                        }),
                    ))
                }
                (_, s) => {
                    slurm = s;
                    None
                }
            };
            let sent = api.apply(&batch);
            if let Some((asked, thread)) = beside {
                match thread.join() {
                    Ok((s, answer)) => {
                        slurm = Some(s);
                        recheck_beside = Some((asked, answer));
                    }
                    // Slurm is lost with the thread: every later call fails, and says why.
                    Err(_) => crate::log::error("the thread asking squeue beside a tag call panicked"),
                }
            }
            match sent {
                Ok(()) => {
                    bucket.succeeded(clock.now());
                    changed.extend(batch.instance_ids.iter().cloned());
                    let outcome = if gone.is_empty() {
                        CallOutcome::Sent
                    } else {
                        CallOutcome::SentWithout(gone)
                    };
                    progress(&Event::Call { batch: &batch, outcome });
                }
                Err(CallError::Throttled) => {
                    bucket.throttled(clock.now());
                    summary.throttled += 1;
                    progress(&Event::Call {
                        batch: &batch,
                        outcome: CallOutcome::Throttled,
                    });
                    queue.push_front(batch);
                }
                Err(CallError::Failed(e)) => {
                    failed.extend(batch.instance_ids.iter().cloned());
                    progress(&Event::Call {
                        batch: &batch,
                        outcome: CallOutcome::Failed(format!("{e:#}")),
                    });
                }
            }
        }
    });
    summary.changed = changed.len();
    summary.deferred = deferred.difference(&changed).count();
    summary.failed = failed.len();
    summary.left = left.len();
    if let Some(file) = options.timeline.as_ref().filter(|_| !options.dry_run) {
        let seen = timeline::sightings(&instances, &view.nodes);
        summary.timeline = match file.update(&seen, seen_at) {
            Ok(updated) => TimelineOutcome::Written(updated),
            Err(e) => {
                let why = format!("{e:#}");
                crate::log::error(&format!(
                    "the instance timeline {} was not written (tagging goes on): {why}",
                    file.path.display()
                ));
                TimelineOutcome::Failed(why)
            }
        };
    }
    Ok(summary)
}

/// What `cost-tags reconcile --cluster` is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct ClusterArgs {
    pub dry_run: bool,
    /// The cluster's name (tag `parallelcluster:cluster-name`); else `stack_name` from
    /// `cfnconfig`.
    pub cluster_name: Option<String>,
    pub cfnconfig: PathBuf,
    /// Calls a second, instead of `[tagging] calls_per_second`.
    pub rate: Option<f64>,
    pub give_up_after: Duration,
    pub squeue: PathBuf,
    pub scontrol: PathBuf,
}

/// The real EC2 and Slurm of the cluster, and the bucket that paces the calls: set up
/// once and used by every pass, so that `--follow` keeps the bucket's state (and its
/// slowing after throttling) from one pass to the next instead of bursting anew.
pub(crate) struct Cluster {
    pub name: String,
    api: Ec2TagApi,
    slurm: SlurmCommands,
    bucket: TokenBucket,
    clock: RealClock,
}

impl Cluster {
    /// Finds the cluster's name, region and Slurm cluster name, and sets up the EC2 client.
    pub(crate) fn connect(settings: &Settings, args: &ClusterArgs) -> Result<Cluster> {
        let rate = args.rate.unwrap_or(settings.tagging.calls_per_second);
        anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be more than 0");
        let name = Cfnconfig::cluster_name(args.cluster_name.as_deref(), &args.cfnconfig)?;
        let region_set = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|r| !r.is_empty()));
        let fallback = if region_set {
            String::new()
        } else {
            let runtime = crate::aws::sdk::Runtime::new()?;
            runtime
                .block_on(imds::identity(&settings.cache_dir, settings.deadline))
                .context("no AWS_REGION and no region from IMDS")?
                .region
        };
        let api = Ec2TagApi::new(&fallback, settings.deadline)?;
        let slurm_cluster = if settings.tags.cluster.is_empty() {
            String::new()
        } else {
            std::env::var("SLURM_CLUSTER_NAME")
                .ok()
                .filter(|c| !c.is_empty())
                .map_or_else(|| slurm_cluster_name(&args.scontrol), Ok)?
        };
        let slurm = SlurmCommands {
            squeue: args.squeue.clone(),
            scontrol: args.scontrol.clone(),
            project_source: settings.project_source,
            cluster: slurm_cluster,
        };
        let clock = RealClock;
        let bucket = TokenBucket::new(rate, settings.tagging.burst, clock.now());
        Ok(Cluster {
            name,
            api,
            slurm,
            bucket,
            clock,
        })
    }

    /// One pass of the convergence (a dry run when `args.dry_run`).
    pub(crate) fn converge(
        &mut self,
        settings: &Settings,
        args: &ClusterArgs,
        stop: Option<&AtomicBool>,
        progress: impl FnMut(&Event<'_>),
    ) -> Result<ConvergeSummary> {
        // A dry run changes nothing: it may run beside a pass.
        let _lock = if args.dry_run {
            None
        } else {
            Some(pass_lock(&settings.cache_dir)?)
        };
        let options = ConvergeOptions {
            cluster: self.name.clone(),
            dry_run: args.dry_run,
            give_up_after: args.give_up_after,
            stop,
            timeline: TimelineFile::from_settings(settings),
        };
        converge(
            &mut self.api,
            &mut self.slurm,
            &mut self.bucket,
            &mut self.clock,
            settings,
            &options,
            progress,
        )
    }

    /// Desired against actual tags, changing nothing ([`crate::cluster::status`]).
    pub(crate) fn status(&mut self, settings: &Settings, args: &ClusterArgs) -> Result<ClusterStatus> {
        let give_up = self.clock.now() + args.give_up_after;
        let mut summary = ConvergeSummary::default();
        let instances = all_instances(
            &mut self.api,
            &mut self.bucket,
            &mut self.clock,
            &self.name,
            give_up,
            &mut summary,
        )?;
        let view = self.slurm.view().context("cannot ask Slurm")?;
        Ok(ClusterStatus::new(&self.name, &instances, &view, &settings.tags))
    }
}

/// Passes never overlap, whoever starts them (the `--follow` service, the cron fallback,
/// an administrator): each holds an exclusive lock on `converge.lock` in the cache
/// directory, and one that finds it held does nothing and says so.
fn pass_lock(dir: &std::path::Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("converge.lock");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        anyhow::anyhow!(
            "another pass is running (it holds {}: {e}); nothing done",
            path.display()
        )
    })
}

/// `cost-tags reconcile --cluster`: one pass against the real EC2 and Slurm.
pub(crate) fn reconcile_cluster(
    settings: &Settings,
    args: &ClusterArgs,
    progress: impl FnMut(&Event<'_>),
) -> Result<ConvergeSummary> {
    Cluster::connect(settings, args)?.converge(settings, args, None, progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::slurm_view::SlurmView;
    use crate::cluster::tag_api::InstancesPage;
    use crate::model::job::Job;
    use crate::model::tag_set::TagMap;
    use crate::slurm::scontrol::SlurmNode;

    const P: &str = "aws-parallelcluster-project";
    const U: &str = "aws-parallelcluster-username";
    const J: &str = "aws-parallelcluster-jobid";

    /// EC2 in memory: pages of `page_size`, CreateTags and conditional DeleteTags, and
    /// the next `throttle` tag calls answered `RequestLimitExceeded`.
    struct FakeEc2 {
        instances: Vec<ClusterInstance>,
        page_size: usize,
        throttle: usize,
        calls: Vec<Batch>,
        pages: usize,
    }

    impl TagApi for FakeEc2 {
        fn instances_page(
            &mut self,
            _: &str,
            next: Option<&str>,
        ) -> Result<(Vec<ClusterInstance>, Option<String>), CallError> {
            self.pages += 1;
            let from: usize = next.map_or(0, |t| t.parse().unwrap());
            let to = (from + self.page_size).min(self.instances.len());
            let token = (to < self.instances.len()).then(|| to.to_string());
            Ok((self.instances[from..to].to_vec(), token))
        }

        fn apply(&mut self, batch: &Batch) -> Result<(), CallError> {
            assert!(batch.instance_ids.len() <= 1000 && !batch.tags.is_empty());
            self.calls.push(batch.clone());
            if self.throttle > 0 {
                self.throttle -= 1;
                return Err(CallError::Throttled);
            }
            for i in self
                .instances
                .iter_mut()
                .filter(|i| batch.instance_ids.contains(&i.instance_id))
            {
                for (k, v) in &batch.tags {
                    match batch.action {
                        Action::Create => {
                            i.tags.insert(k.clone(), v.clone());
                        }
                        Action::DeleteIfUnchanged => {
                            if i.tags.get(k) == Some(v) {
                                i.tags.remove(k);
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }

    struct FakeSlurm {
        view: SlurmView,
        /// What the recheck answers, when not the snapshot's.
        later: Option<JobIds>,
        rechecks: usize,
    }

    impl ClusterSlurm for FakeSlurm {
        fn view(&mut self) -> Result<SlurmView> {
            Ok(self.view.clone())
        }
        fn job_ids(&mut self) -> Result<JobIds> {
            self.rechecks += 1;
            Ok(self.later.clone().unwrap_or_else(|| self.view.ids.clone()))
        }
    }

    struct FakeClock(Instant);

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.0
        }
        fn sleep(&mut self, d: Duration) {
            self.0 += d;
        }
    }

    fn map(pairs: &[(&str, &str)]) -> TagMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// `n` nodes `n0..`, instance `i-K` at 10.0.0.K; node K runs job 100+K of user
    /// `u{K%20}` and project `P{K%10}` when `busy(K)`.
    fn cluster(n: usize, busy: impl Fn(usize) -> bool) -> (FakeEc2, FakeSlurm) {
        let mut view = SlurmView::default();
        let mut instances = Vec::new();
        for k in 0..n {
            let (name, ip) = (format!("n{k}"), format!("10.0.{}.{}", k / 250, k % 250));
            view.nodes.push(SlurmNode {
                name: name.clone(),
                addr: ip.clone(),
                hostname: name.clone(),
            });
            instances.push(ClusterInstance {
                instance_id: format!("i-{k}"),
                private_ip: Some(ip),
                private_dns: None,
                tags: map(&[("parallelcluster:node-type", "Compute"), ("team", "hpc")]),
                ..ClusterInstance::default()
            });
            if busy(k) {
                let job = Job {
                    id: (100 + k).to_string(),
                    user: format!("u{}", k % 20),
                    project: format!("P{}", k % 10),
                    ..Job::default()
                };
                view.ids.entry(name.clone()).or_default().insert(job.id.clone());
                view.jobs.entry(name).or_default().push(job);
            }
        }
        let ec2 = FakeEc2 {
            instances,
            page_size: 1000,
            throttle: 0,
            calls: Vec::new(),
            pages: 0,
        };
        let slurm = FakeSlurm {
            view,
            later: None,
            rechecks: 0,
        };
        (ec2, slurm)
    }

    fn options() -> ConvergeOptions<'static> {
        ConvergeOptions {
            cluster: "c1".into(),
            dry_run: false,
            give_up_after: Duration::from_secs(600),
            stop: None,
            timeline: None,
        }
    }

    fn pass(ec2: &mut FakeEc2, slurm: &mut FakeSlurm, options: &ConvergeOptions<'_>) -> (ConvergeSummary, Duration) {
        let t0 = Instant::now();
        let mut clock = FakeClock(t0);
        let mut bucket = TokenBucket::new(5.0, 20, t0);
        let summary = converge(
            ec2,
            slurm,
            &mut bucket,
            &mut clock,
            &Settings::default(),
            options,
            |_| {},
        )
        .unwrap();
        (summary, clock.0 - t0)
    }

    fn cost_tags(i: &ClusterInstance) -> TagMap {
        i.tags
            .iter()
            .filter(|(k, _)| k.starts_with("aws-parallelcluster-"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn from_any_start_to_slurms_tags_then_no_call() {
        let (mut ec2, mut slurm) = cluster(6, |k| k != 3);
        // n0 untagged; n1 wrong values; n2 right; n3 idle with an ended job's tags;
        // n4 and n5 share: n5 also runs job 99 of another user.
        ec2.instances[1].tags.extend(map(&[(P, "Wrong"), (U, "eve"), (J, "1")]));
        ec2.instances[2].tags.extend(map(&[(P, "P2"), (U, "u2"), (J, "102")]));
        ec2.instances[3].tags.extend(map(&[(P, "P3"), (U, "u3"), (J, "7")]));
        let shared = Job {
            id: "99".into(),
            user: "zed".into(),
            project: "P4".into(),
            ..Job::default()
        };
        slurm.view.jobs.get_mut("n5").unwrap().push(shared);
        slurm.view.ids.get_mut("n5").unwrap().insert("99".into());
        let (summary, _) = pass(&mut ec2, &mut slurm, &options());
        assert_eq!((summary.instances, summary.in_sync, summary.out_of_sync), (6, 1, 5));
        assert_eq!(summary.changed, 5);
        assert!(!summary.has_failures());
        let want = |p: &str, u: &str, j: &str| map(&[(P, p), (U, u), (J, j)]);
        assert_eq!(cost_tags(&ec2.instances[0]), want("P0", "u0", "100"));
        assert_eq!(cost_tags(&ec2.instances[1]), want("P1", "u1", "101"));
        assert_eq!(cost_tags(&ec2.instances[3]), TagMap::new());
        assert_eq!(cost_tags(&ec2.instances[5]), want("P4 P5", "u5 zed", "99 105"));
        assert!(ec2.instances.iter().all(|i| i.tags["team"] == "hpc"), "other tags stay");

        ec2.calls.clear();
        let (again, _) = pass(&mut ec2, &mut slurm, &options());
        assert!(ec2.calls.is_empty(), "{:?}", ec2.calls);
        assert_eq!((again.in_sync, again.calls, again.pages), (6, 0, 1));
    }

    #[test]
    fn a_thousand_instances_ten_projects_twenty_users() {
        let (mut ec2, mut slurm) = cluster(2500, |_| true);
        let (summary, took) = pass(&mut ec2, &mut slurm, &options());
        assert_eq!(summary.pages, 3, "1,000 instances a page");
        // User u{k%20} works for project P{k%10}: one call per (project, user) pair
        // (125 instances each), fewer than one per project and per user (30); then a
        // job id each.
        assert_eq!(summary.calls, 20 + 2500);
        // The project and user tags go first, within the burst of 20; then 5 a second.
        let first = &ec2.calls[..20];
        assert!(first.iter().all(|b| b.tags.contains_key(P) && b.tags.contains_key(U)));
        assert!(
            took >= Duration::from_secs_f64((2520.0 + 1.0 - 20.0) / 5.0),
            "{took:?}: paced"
        );
        assert_eq!(slurm.rechecks, summary.calls);
    }

    /// How many rechecks Slurm has answered, for a call to wait on.
    #[derive(Default)]
    struct Rechecks {
        answered: std::sync::Mutex<usize>,
        changed: std::sync::Condvar,
    }

    /// Slurm that counts its rechecks in [`Rechecks`].
    struct CountingSlurm(FakeSlurm, std::sync::Arc<Rechecks>);

    impl ClusterSlurm for CountingSlurm {
        fn view(&mut self) -> Result<SlurmView> {
            self.0.view()
        }
        fn job_ids(&mut self) -> Result<JobIds> {
            let answer = self.0.job_ids();
            *self.1.answered.lock().unwrap() += 1;
            self.1.changed.notify_all();
            answer
        }
    }

    /// EC2 whose first `watch` calls stay in flight until the next call's recheck is
    /// answered (at most 10 s), and record whether it was.
    struct WaitingEc2 {
        ec2: FakeEc2,
        rechecks: std::sync::Arc<Rechecks>,
        watch: usize,
        beside: Vec<bool>,
    }

    impl TagApi for WaitingEc2 {
        fn instances_page(&mut self, cluster: &str, next: Option<&str>) -> Result<InstancesPage, CallError> {
            self.ec2.instances_page(cluster, next)
        }
        fn apply(&mut self, batch: &Batch) -> Result<(), CallError> {
            let k = self.ec2.calls.len();
            if k < self.watch {
                // Call k (from 0) was preceded by recheck k+1; recheck k+2 is the next call's.
                let answered = self.rechecks.answered.lock().unwrap();
                let (_answered, waited) = self
                    .rechecks
                    .changed
                    .wait_timeout_while(answered, Duration::from_secs(10), |n| *n < k + 2)
                    .unwrap();
                self.beside.push(!waited.timed_out());
            }
            self.ec2.apply(batch)
        }
    }

    #[test]
    fn the_next_calls_recheck_is_asked_while_a_call_is_in_flight() {
        let (ec2, slurm) = cluster(3, |_| true);
        let rechecks = std::sync::Arc::new(Rechecks::default());
        let mut slurm = CountingSlurm(slurm, rechecks.clone());
        let mut ec2 = WaitingEc2 {
            ec2,
            rechecks,
            watch: 2,
            beside: Vec::new(),
        };
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(5.0, 20, t0);
        let summary = converge(
            &mut ec2,
            &mut slurm,
            &mut bucket,
            &mut FakeClock(t0),
            &Settings::default(),
            &options(),
            |_| {},
        )
        .unwrap();
        // Three calls (one a node): the first two each had the next one's recheck
        // answered while in flight; the last has no next call, so no recheck beside it.
        assert_eq!((summary.calls, summary.changed), (3, 3));
        assert_eq!(ec2.beside, [true, true]);
        assert_eq!(slurm.0.rechecks, 3);
        for (k, i) in ec2.ec2.instances.iter().enumerate() {
            assert_eq!(cost_tags(i)[J], (100 + k).to_string());
        }
    }

    #[test]
    fn a_throttled_call_goes_again_later_and_nothing_is_lost() {
        let (mut ec2, mut slurm) = cluster(3, |_| true);
        ec2.throttle = 4;
        let (summary, took) = pass(&mut ec2, &mut slurm, &options());
        assert_eq!(summary.throttled, 4);
        assert!(!summary.has_failures());
        for (k, i) in ec2.instances.iter().enumerate() {
            assert_eq!(cost_tags(i)[J], (100 + k).to_string());
        }
        // The same call was sent again: 4 throttled + one call per node (its project,
        // user and job id together).
        assert_eq!(ec2.calls.len(), 4 + 3);
        assert!(took >= Duration::from_secs(2), "slowed after throttling: {took:?}");
    }

    #[test]
    fn an_instance_whose_jobs_changed_since_the_snapshot_is_left_for_the_next_pass() {
        let (mut ec2, mut slurm) = cluster(2, |_| true);
        let mut later = slurm.view.ids.clone();
        later.insert("n1".into(), ["555".to_string()].into());
        slurm.later = Some(later);
        let (summary, _) = pass(&mut ec2, &mut slurm, &options());
        assert_eq!((summary.changed, summary.deferred), (1, 1));
        assert_eq!(cost_tags(&ec2.instances[1]), TagMap::new());
        assert!(ec2.calls.iter().all(|b| b.instance_ids == ["i-0"]));
    }

    #[test]
    fn a_dry_run_makes_no_tag_call_and_a_pass_that_gives_up_says_so() {
        let (mut ec2, mut slurm) = cluster(4, |_| true);
        let dry = ConvergeOptions {
            dry_run: true,
            ..options()
        };
        let (summary, _) = pass(&mut ec2, &mut slurm, &dry);
        assert_eq!((summary.changed, summary.calls, ec2.calls.len()), (4, 0, 0));
        let hurried = ConvergeOptions {
            give_up_after: Duration::from_secs(1),
            ..options()
        };
        ec2.throttle = 1000;
        let (summary, _) = pass(&mut ec2, &mut slurm, &hurried);
        assert!(summary.has_failures());
        assert_eq!(summary.left, 4);
    }

    #[test]
    fn a_pass_asked_to_stop_sends_nothing_more_and_says_what_it_left() {
        let (mut ec2, mut slurm) = cluster(3, |_| true);
        let stop = AtomicBool::new(true);
        let stopping = ConvergeOptions {
            stop: Some(&stop),
            ..options()
        };
        let (summary, _) = pass(&mut ec2, &mut slurm, &stopping);
        assert_eq!((summary.calls, summary.left), (0, 3));
        assert!(ec2.calls.is_empty());
    }

    #[test]
    fn a_pass_records_the_timeline_and_one_that_cannot_still_tags() {
        let (mut ec2, mut slurm) = cluster(2, |_| true);
        for i in &mut ec2.instances {
            i.instance_type = "c5.large".into();
            i.lifecycle = "spot".into();
            i.zone = "us-east-1b".into();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.jsonl");
        let recording = ConvergeOptions {
            timeline: Some(TimelineFile {
                path: path.clone(),
                retention_days: 400,
                rewrite_seconds: 0,
            }),
            ..options()
        };
        let (summary, _) = pass(&mut ec2, &mut slurm, &recording);
        let TimelineOutcome::Written(u) = &summary.timeline else {
            panic!("{summary:?}")
        };
        assert_eq!((u.intervals, u.recorded.opened), (2, 2));
        assert!(summary
            .to_string()
            .contains("; timeline: 2 intervals (2 opened, 0 extended)"));
        let t = crate::model::instance_timeline::Timeline::read(&path).unwrap().unwrap();
        let got: Vec<(&str, &str, &str, &str, &str)> = t
            .intervals
            .iter()
            .map(|i| {
                (
                    i.instance_id.as_str(),
                    i.node.as_str(),
                    i.instance_type.as_str(),
                    i.lifecycle.as_str(),
                    i.zone.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("i-0", "n0", "c5.large", "spot", "us-east-1b"),
                ("i-1", "n1", "c5.large", "spot", "us-east-1b")
            ]
        );
        let (dry, _) = pass(
            &mut ec2,
            &mut slurm,
            &ConvergeOptions {
                dry_run: true,
                ..recording.clone()
            },
        );
        assert_eq!(dry.timeline, TimelineOutcome::NotWritten);

        // Its directory is a file: the timeline fails, the tags do not.
        let (mut ec2, mut slurm) = cluster(2, |_| true);
        std::fs::write(dir.path().join("file"), "").unwrap();
        let broken = ConvergeOptions {
            timeline: Some(TimelineFile {
                path: dir.path().join("file/timeline.jsonl"),
                retention_days: 400,
                rewrite_seconds: 0,
            }),
            ..options()
        };
        let (summary, _) = pass(&mut ec2, &mut slurm, &broken);
        assert!(matches!(summary.timeline, TimelineOutcome::Failed(_)), "{summary:?}");
        assert!(!summary.has_failures());
        assert_eq!(summary.changed, 2);
        assert!(summary.to_string().contains("; timeline NOT written: "), "{summary}");
    }
}
