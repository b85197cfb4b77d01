//! How much of what a job paid for it used, from what sacct records and no user writes:
//! CPU efficiency (TotalCPU over elapsed × allocated CPUs), walltime accuracy (elapsed
//! over the time limit), and the cost of the unused CPU share (cost × (1 − CPU
//! efficiency)). Where a figure would be a guess it is `None`, never 0: a GPU job (its
//! work is on the GPU, so its CPU time says little), a job still running (its steps'
//! CPU time is recorded when they end), a job whose TotalCPU was not recorded.
//!
//! TotalCPU is the job line's, which sacct adds up from the job's steps when it lists
//! them: `--by job` runs sacct without `--allocations` (with it, sacct reads no steps and
//! prints 0 for every job). Memory efficiency is the largest MaxRSS of the job's steps
//! (read from the step lines, since the job line's MaxRSS is empty) over the memory the
//! job asked for, all nodes together. MaxRSS is the peak of a step's largest task, so a
//! step of several tasks (or nodes) under-counts: a lower bound, said in docs/report.md.

use crate::slurm::sacct::Record;

/// A job run's efficiency figures, each `None` when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Efficiency {
    /// TotalCPU ÷ (elapsed × allocated CPUs), 0 to 1.
    pub cpu: Option<f64>,
    /// The job holds GPUs: its CPU efficiency is not given.
    pub gpu: bool,
    /// Elapsed ÷ time limit (1 is a job that ran to its limit).
    pub walltime: Option<f64>,
    /// Peak RSS of its steps ÷ requested memory; above 1 when the job used more than it
    /// asked for (possible where memory is not a consumable resource).
    pub memory: Option<f64>,
}

impl Efficiency {
    /// The figures of `record`. Elapsed is the whole run (`ElapsedRaw`), not the part in
    /// the report's window, since TotalCPU is the whole run's; without ElapsedRaw, End −
    /// Start.
    pub(crate) fn of(record: &Record<'_>) -> Efficiency {
        let elapsed = record
            .elapsed_raw
            .or_else(|| Some(record.end? - record.start?).and_then(|s| u64::try_from(s).ok()))
            .filter(|&s| s > 0);
        let gpu = record.gpus > 0;
        // A running job's TotalCPU grows only as its steps end: not a figure yet.
        let finished = record.end.is_some();
        // Exactly 0 is what sacct prints when no step's usage was recorded (and for every
        // job of `sacct --allocations`, which reads no steps): unknown, not idle.
        let cpu = match (gpu, finished, record.total_cpu, elapsed) {
            (false, true, Some(used), Some(elapsed)) if record.cpus > 0 && used > 0.0 => {
                // Clock ticks and rounding can put a busy job a hair over 1.
                Some((used / (elapsed as f64 * f64::from(record.cpus))).clamp(0.0, 1.0))
            }
            _ => None,
        };
        let walltime = match (record.time_limit, elapsed) {
            (Some(minutes), Some(elapsed)) if minutes > 0 => Some(elapsed as f64 / (minutes as f64 * 60.0)),
            _ => None,
        };
        // Like TotalCPU, a step's MaxRSS is recorded when it ends.
        let memory = match (finished, record.max_rss, record.req_mem) {
            (true, Some(rss), Some(asked)) if asked > 0 => Some(rss as f64 / asked as f64),
            _ => None,
        };
        Efficiency {
            cpu,
            gpu,
            walltime,
            memory,
        }
    }

    /// What the unused CPU share of `cost` came to, when both are known.
    pub(crate) fn wasted(&self, cost: Option<f64>) -> Option<f64> {
        Some(cost? * (1.0 - self.cpu?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::Timestamp;

    fn job(cpus: u32, gpus: u32, total_cpu: Option<f64>, end: Option<i64>) -> Record<'static> {
        Record {
            start: Some(Timestamp::UNIX_EPOCH),
            end: end.map(Timestamp::from_second),
            cpus,
            gpus,
            time_limit: Some(120),
            total_cpu,
            elapsed_raw: end.map(|e| e as u64),
            req_mem: Some(4 * 1024 * 1024),
            max_rss: Some(1024 * 1024),
            ..Record::example()
        }
    }

    #[test]
    fn cpu_efficiency_and_what_it_leaves_unknown() {
        // 4 CPUs for 1 h = 14400 CPU-s; 3600 used: a quarter.
        let e = Efficiency::of(&job(4, 0, Some(3600.0), Some(3600)));
        assert_eq!((e.cpu, e.gpu, e.walltime), (Some(0.25), false, Some(0.5)));
        // 1 GiB peak of 4 GiB asked.
        assert_eq!(e.memory, Some(0.25));
        // Cost 2.0, three quarters unused: 1.5 wasted.
        assert_eq!(e.wasted(Some(2.0)), Some(1.5));
        assert_eq!(e.wasted(None), None, "unpriced");
        // A hair over (ticks): 1.
        assert_eq!(Efficiency::of(&job(1, 0, Some(3600.5), Some(3600))).cpu, Some(1.0));
        // Unknown, not 0: a GPU job, TotalCPU not recorded, still running.
        let gpu = Efficiency::of(&job(4, 1, Some(3600.0), Some(3600)));
        assert_eq!((gpu.cpu, gpu.gpu), (None, true));
        assert_eq!(gpu.wasted(Some(2.0)), None);
        assert_eq!(Efficiency::of(&job(4, 0, None, Some(3600))).cpu, None);
        let running = Efficiency::of(&job(4, 0, Some(10.0), None));
        assert_eq!((running.cpu, running.walltime, running.memory), (None, None, None));
        assert_eq!(gpu.memory, Some(0.25), "memory says as much of a GPU job");
        let unrecorded = Record {
            max_rss: None,
            ..job(4, 0, Some(3600.0), Some(3600))
        };
        assert_eq!(Efficiency::of(&unrecorded).memory, None);
        assert_eq!(
            Efficiency::of(&job(4, 0, Some(0.0), Some(3600))).cpu,
            None,
            "no step recorded"
        );
    }
}
