//! Sums of charged jobs per group and period. Memory grows with groups × periods (and the
//! bounded lists of unpriced reasons and skipped lines), never with the number of jobs:
//! each record is folded in as it is read and then forgotten.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::time::Timestamp;

use super::efficiency::Efficiency;
use super::fast_map::FastMap;
use super::pricing::Rate;
use crate::cost::period::Every;

/// What a run brings to the sums beside its time: its CPUs, its price (`None`:
/// unpriced) and its efficiency.
pub(crate) struct Charged<'r> {
    pub cpus: u32,
    pub rate: Option<&'r Rate>,
    pub efficiency: Efficiency,
}

/// What a group spent in a period (or in the whole window).
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Sums {
    /// Job runs with run time in the period (a requeued job's runs count one each).
    pub jobs: u64,
    /// Wall-clock seconds of those runs inside the period.
    pub elapsed_seconds: i64,
    /// Allocated CPUs × seconds.
    pub cpu_seconds: i64,
    /// Seconds × the job's share of each node, added over nodes (priced runs only).
    pub charged_node_seconds: f64,
    /// Currency spent (priced runs only).
    pub cost: f64,
    /// Runs whose nodes could not be priced: their seconds are in, their cost is not.
    pub unpriced_jobs: u64,
    /// Cost × (1 − CPU efficiency) of the priced runs whose CPU efficiency is known.
    pub wasted_cost: f64,
    /// Priced runs left out of `wasted_cost`, their CPU efficiency unknown: GPU jobs,
    /// running jobs, jobs whose TotalCPU was not recorded (or not read).
    pub wasted_unknown_jobs: u64,
    /// Of `wasted_unknown_jobs`, the GPU jobs.
    pub wasted_unknown_gpu_jobs: u64,
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.jobs += o.jobs;
        self.elapsed_seconds += o.elapsed_seconds;
        self.cpu_seconds += o.cpu_seconds;
        self.charged_node_seconds += o.charged_node_seconds;
        self.cost += o.cost;
        self.unpriced_jobs += o.unpriced_jobs;
        self.wasted_cost += o.wasted_cost;
        self.wasted_unknown_jobs += o.wasted_unknown_jobs;
        self.wasted_unknown_gpu_jobs += o.wasted_unknown_gpu_jobs;
    }

    /// One run of `[start, end)`, priced at `rate` (the cost of a spot run depends on
    /// when it ran, not only on how long).
    fn charge(&mut self, start: Timestamp, end: Timestamp, run: &Charged<'_>) {
        let seconds = end - start;
        self.jobs += 1;
        self.elapsed_seconds += seconds;
        self.cpu_seconds += seconds * i64::from(run.cpus);
        match run.rate {
            Some(r) => {
                self.charged_node_seconds += r.nodes * seconds as f64;
                let cost = r.cost(start, end);
                self.cost += cost;
                match run.efficiency.wasted(Some(cost)) {
                    Some(wasted) => self.wasted_cost += wasted,
                    None => {
                        self.wasted_unknown_jobs += 1;
                        self.wasted_unknown_gpu_jobs += u64::from(run.efficiency.gpu);
                    }
                }
            }
            None => self.unpriced_jobs += 1,
        }
    }
}

/// Spend per group and period for one way of splitting time.
pub(crate) struct SpendTable {
    every: Option<Every>,
    since: Timestamp,
    until: Timestamp,
    index: FastMap<String, u32>,
    /// Group id -> its key values and its sums over the whole window.
    groups: Vec<(Vec<String>, Sums)>,
    /// (group id, calendar period start) -> sums.
    cells: FastMap<(u32, Timestamp), Sums>,
}

/// Joins the values of a group key (the separator cannot occur in sacct's output).
pub(crate) const KEY_SEPARATOR: char = '\u{1f}';

impl SpendTable {
    pub(crate) fn new(every: Option<Every>, since: Timestamp, until: Timestamp) -> SpendTable {
        SpendTable {
            every,
            since,
            until,
            index: FastMap::default(),
            groups: Vec::new(),
            cells: FastMap::default(),
        }
    }

    /// The id of the group whose values, joined by [`KEY_SEPARATOR`], are `key`.
    pub(crate) fn group(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.index.get(key) {
            return id;
        }
        let id = self.groups.len() as u32;
        let values = key.split(KEY_SEPARATOR).map(str::to_string).collect();
        self.groups.push((values, Sums::default()));
        self.index.insert(key.to_string(), id);
        id
    }

    /// Charges a run of `[start, end)` (already inside the window) to `group`, split over
    /// the periods it touches.
    pub(crate) fn charge(&mut self, group: u32, start: Timestamp, end: Timestamp, run: &Charged<'_>) {
        self.groups[group as usize].1.charge(start, end, run);
        let Some(every) = self.every else {
            self.cells
                .entry((group, self.since))
                .or_default()
                .charge(start, end, run);
            return;
        };
        let mut t = start;
        while t < end {
            let (period, next) = every.period(t);
            let piece_end = end.min(next);
            self.cells.entry((group, period)).or_default().charge(t, piece_end, run);
            t = piece_end;
        }
    }

    /// The period starting at calendar instant `p`, clipped to the window.
    fn clipped(&self, p: Timestamp) -> (Timestamp, Timestamp) {
        match self.every {
            None => (self.since, self.until),
            Some(e) => {
                let (a, b) = e.period(p);
                (a.max(self.since), b.min(self.until))
            }
        }
    }

    /// The final figures, with only the `top` most expensive groups kept by name and the
    /// others added up under [`OTHER`].
    pub(crate) fn summarize(&self, top: Option<usize>) -> Summary {
        let mut order: Vec<u32> = (0..self.groups.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (ka, sa) = &self.groups[a as usize];
            let (kb, sb) = &self.groups[b as usize];
            sb.cost
                .total_cmp(&sa.cost)
                .then(sb.elapsed_seconds.cmp(&sa.elapsed_seconds))
                .then_with(|| ka.cmp(kb))
        });
        let width = self.groups.first().map_or(0, |(k, _)| k.len());
        let keep = top.unwrap_or(usize::MAX);
        // Old group id -> index in `groups` of the summary.
        let mut target = vec![0usize; self.groups.len()];
        let mut groups: Vec<(Vec<String>, Sums)> = Vec::new();
        let mut other: Option<(usize, usize)> = None; // (index, how many groups)
        for (rank, &id) in order.iter().enumerate() {
            let (key, sums) = &self.groups[id as usize];
            if rank < keep {
                target[id as usize] = groups.len();
                groups.push((key.clone(), *sums));
            } else {
                let (index, n) = other.get_or_insert_with(|| {
                    groups.push((vec![OTHER.to_string(); width], Sums::default()));
                    (groups.len() - 1, 0)
                });
                *n += 1;
                groups[*index].1.add(sums);
                target[id as usize] = *index;
            }
        }
        let other_groups = other.map_or(0, |(_, n)| n);

        // (period, summary group): BTreeMap order is the output order, since summary
        // groups are numbered most expensive first.
        let mut cells: BTreeMap<(Timestamp, usize), Sums> = BTreeMap::new();
        for (&(id, period), sums) in &self.cells {
            cells.entry((period, target[id as usize])).or_default().add(sums);
        }
        let mut periods: BTreeMap<Timestamp, Sums> = BTreeMap::new();
        for (&(period, _), sums) in &cells {
            periods.entry(period).or_default().add(sums);
        }
        let rows: Vec<Row> = cells
            .into_iter()
            .map(|((period, group), sums)| Row {
                period: self.clipped(period),
                group,
                sums,
            })
            .collect();
        let mut total = Sums::default();
        for (_, s) in &groups {
            total.add(s);
        }
        Summary {
            rows,
            periods: periods.into_iter().map(|(p, s)| (self.clipped(p), s)).collect(),
            groups,
            other_groups,
            total,
        }
    }
}

/// The key value standing for the groups beyond `--top`.
pub(crate) const OTHER: &str = "(other)";

/// One group in one period.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// Start and end (exclusive) of the period, clipped to the window.
    pub period: (Timestamp, Timestamp),
    /// Index in [`Summary::groups`].
    pub group: usize,
    pub sums: Sums,
}

/// Everything the outputs print.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    /// Per period (ascending), then per group (most expensive first).
    pub rows: Vec<Row>,
    /// Every period's total.
    pub periods: Vec<((Timestamp, Timestamp), Sums)>,
    /// Every group's total over the window, most expensive first; `(other)` last.
    pub groups: Vec<(Vec<String>, Sums)>,
    /// How many groups `(other)` stands for.
    pub other_groups: usize,
    pub total: Sums,
}

/// Lines and jobs that are not in the sums, or not fully, and why.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Diagnostics {
    /// Lines read (blank lines and a header included).
    pub lines: u64,
    /// Job runs charged (priced or not).
    pub runs: u64,
    /// Records with no run time in the window (pending, cancelled before starting).
    pub not_run: u64,
    pub skipped: u64,
    /// The first few skipped lines: (line number, reason).
    pub first_skipped: Vec<(u64, String)>,
    pub unpriced: u64,
    /// Reason -> (runs, seconds, a few job ids).
    pub unpriced_reasons: BTreeMap<String, (u64, i64, Vec<String>)>,
    /// Records with a non-empty Comment.
    pub comments: u64,
    pub warnings: Vec<String>,
}

/// How many skipped lines and unpriced job ids are shown by example.
pub(crate) const EXAMPLES: usize = 5;

impl Diagnostics {
    pub(crate) fn skip(&mut self, line: u64, reason: String) {
        self.skipped += 1;
        if self.first_skipped.len() < EXAMPLES {
            self.first_skipped.push((line, reason));
        }
    }

    pub(crate) fn unpriced(&mut self, reason: String, job_id: &str, seconds: i64) {
        self.unpriced += 1;
        let entry = self.unpriced_reasons.entry(reason).or_default();
        entry.0 += 1;
        entry.1 += seconds;
        if entry.2.len() < EXAMPLES {
            entry.2.push(job_id.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::parse;

    fn t(s: &str) -> Timestamp {
        parse(s).unwrap().0
    }

    #[test]
    fn splits_runs_over_periods_and_keeps_top_groups() {
        let mut table = SpendTable::new(Some(Every::Day), t("2024-03-01"), t("2024-03-03"));
        let rate = Rate {
            per_second: 1.0 / 3600.0,
            nodes: 1.0,
            spot: Vec::new(),
        };
        let rate = &rate;
        let a = table.group("A");
        let b = table.group("B");
        let c = table.group("C");
        assert_eq!(table.group("A"), a);
        let run = |cpus, rate, cpu, gpu| Charged {
            cpus,
            rate,
            efficiency: Efficiency {
                cpu,
                gpu,
                ..Efficiency::default()
            },
        };
        // A: 22:00 on the 1st to 02:00 on the 2nd: 2 h in each day, a quarter of its CPU
        // used, so 3 of its 4 (cost 1/h) wasted, split over the days like the cost.
        table.charge(
            a,
            t("2024-03-01T22:00"),
            t("2024-03-02T02:00"),
            &run(2, Some(rate), Some(0.25), false),
        );
        table.charge(
            b,
            t("2024-03-02T10:00"),
            t("2024-03-02T11:00"),
            &run(1, Some(rate), None, true),
        );
        table.charge(
            c,
            t("2024-03-02T10:00"),
            t("2024-03-02T10:30"),
            &run(1, None, None, false),
        );
        let s = table.summarize(Some(1));
        assert_eq!(s.groups.len(), 2);
        assert_eq!(s.groups[0].0, ["A"]);
        assert_eq!(s.groups[0].1.jobs, 1);
        assert_eq!(s.groups[0].1.elapsed_seconds, 4 * 3600);
        assert_eq!(s.groups[0].1.cpu_seconds, 8 * 3600);
        assert_eq!(s.groups[1].0, [OTHER]);
        assert_eq!(s.other_groups, 2);
        assert_eq!((s.groups[1].1.jobs, s.groups[1].1.unpriced_jobs), (2, 1));
        assert!((s.total.cost - 5.0).abs() < 1e-9);
        assert_eq!(s.total.jobs, 3);
        let days: Vec<_> = s
            .rows
            .iter()
            .map(|r| (r.period.0, s.groups[r.group].0[0].as_str(), r.sums.elapsed_seconds))
            .collect();
        assert_eq!(
            days,
            [
                (t("2024-03-01"), "A", 7200),
                (t("2024-03-02"), "A", 7200),
                (t("2024-03-02"), OTHER, 5400)
            ]
        );
        assert_eq!(s.periods[1].1.jobs, 3);
        assert!((s.groups[0].1.wasted_cost - 3.0).abs() < 1e-9);
        assert!((s.periods[0].1.wasted_cost - 1.5).abs() < 1e-9, "the first day's half");
        // B (a GPU job) is priced but not in the wasted cost; C is unpriced, in neither.
        let other = &s.groups[1].1;
        assert_eq!(
            (
                other.wasted_cost,
                other.wasted_unknown_jobs,
                other.wasted_unknown_gpu_jobs
            ),
            (0.0, 1, 1)
        );
    }
}
