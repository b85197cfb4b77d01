//! The report printed as an aligned table for people, or as CSV and JSON for spreadsheets
//! and dashboards. The CSV columns and JSON keys are a stable interface, documented in
//! `docs/report.md`: add to them, never rename or reorder.

use std::io::{self, Write};

use serde::ser::SerializeMap;
use serde::Serialize;

use super::json_layout::ReportLayout;
use crate::cost::aggregate::{Sums, EXAMPLES};
use crate::cost::period::Every;
use crate::cost::{Dimension, Report};
use crate::model::time::{Rfc3339, Short, Timestamp};
use crate::report::text_table::Columns;

/// Costs are kept to a millionth of the currency unit in CSV and JSON.
pub(super) fn cost(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

pub(super) fn node_seconds(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn hours(seconds: f64) -> String {
    format!("{:.2}", seconds / 3600.0)
}

/// Label of the group columns in rows that add several groups up.
const ALL: &str = "(all)";

/// The group that stands for the cluster's cost no project tag explains.
pub(crate) const UNTAGGED: &str = "(untagged)";

/// What the bill says beside one line of the report.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BillFigures {
    /// Billed, the overhead share included.
    billed: f64,
    /// The untagged cost added (`--overhead proportional`).
    overhead: f64,
    /// The estimate minus `billed`.
    diff: f64,
}

/// Which part of the bill a line of the report stands for.
#[derive(Clone, Copy)]
enum BillLine<'a> {
    /// A project's line: its tagged cost, plus its overhead share of the period whose
    /// estimates add up to the number given.
    Project(&'a str, f64),
    /// Every project of the period (a period total, the grand total).
    All,
    /// The cost without a project tag, on its own line.
    Untagged,
}

fn bill_figures(r: &Report, line: BillLine<'_>, period: (Timestamp, Timestamp), estimate: f64) -> Option<BillFigures> {
    let b = r.billed.as_ref()?;
    let (billed, overhead) = match line {
        BillLine::Project(project, all_estimates) => {
            let overhead = b.overhead_share(period, estimate, all_estimates);
            (b.project_in(project, period) + overhead, overhead)
        }
        BillLine::All => {
            let spread = b.overhead == crate::cost::billed::Overhead::Proportional;
            (b.all_in(period), if spread { b.project_in("", period) } else { 0.0 })
        }
        BillLine::Untagged => (b.project_in("", period), 0.0),
    };
    Some(BillFigures {
        billed,
        overhead,
        diff: estimate - billed,
    })
}

/// Whether the overhead column is shown.
fn spreads_overhead(r: &Report) -> bool {
    r.billed
        .as_ref()
        .is_some_and(|b| b.overhead == crate::cost::billed::Overhead::Proportional)
}

pub(super) fn window_title(r: &Report) -> String {
    let o = &r.options;
    let by: Vec<&str> = o.by.iter().map(|d| d.name()).collect();
    let every = o.every.map(|e| format!(", per {}", e.name())).unwrap_or_default();
    format!(
        "Spend from {} to {} UTC, by {}{every}, in {}",
        Short(o.since),
        Short(o.until),
        by.join(", "),
        r.currency
    )
}

/// Calls `line` with the table's header, each row, and the total row (in that order).
/// The table is produced twice (once to measure columns, once to print) rather than
/// kept, so a report of many groups and days needs no memory for its text.
fn table_lines(r: &Report, line: &mut dyn FnMut(&[String])) {
    let o = &r.options;
    let s = &r.summary;
    let mut header: Vec<String> = Vec::new();
    if o.every.is_some() {
        header.push("PERIOD".into());
    }
    header.extend(o.by.iter().map(|d| d.name().to_uppercase()));
    header.extend(["JOBS", "HOURS", "CPU-HOURS", "NODE-HOURS"].map(String::from));
    header.push(format!("COST ({})", r.currency));
    header.push("UNPRICED".into());
    // Only when some run's CPU efficiency is known (a live sacct, or a saved file with
    // TotalCPU): a column of dashes says nothing.
    let show_wasted = wasted(&s.total).is_some();
    if show_wasted {
        header.push("WASTED".into());
    }
    if let Some(b) = &r.billed {
        header.push(format!("BILLED ({})", b.currency));
        if spreads_overhead(r) {
            header.push("OF WHICH OVERHEAD".into());
        }
        header.push("DIFF".into());
    }
    line(&header);
    let figures_before_bill = 6 + usize::from(show_wasted);
    let bill = |cells: &mut Vec<String>, figures: Option<BillFigures>| {
        if let Some(f) = figures {
            cells.push(format!("{:.2}", f.billed));
            if spreads_overhead(r) {
                cells.push(format!("{:.2}", f.overhead));
            }
            cells.push(format!("{:+.2}", f.diff));
        }
    };
    let period_estimate = |period: (Timestamp, Timestamp)| {
        s.periods
            .iter()
            .find(|(p, _)| *p == period)
            .map_or(s.total.cost, |(_, sums)| sums.cost)
    };

    let numbers = |cells: &mut Vec<String>, sums: &Sums| {
        cells.extend([
            sums.jobs.to_string(),
            hours(sums.elapsed_seconds as f64),
            hours(sums.cpu_seconds as f64),
            hours(sums.charged_node_seconds),
            format!("{:.2}", sums.cost),
            if sums.unpriced_jobs > 0 {
                sums.unpriced_jobs.to_string()
            } else {
                String::new()
            },
        ]);
        if show_wasted {
            cells.push(wasted(sums).map_or("-".to_string(), |w| format!("{w:.2}")));
        }
    };
    let mut periods = s.periods.iter().peekable();
    let mut groups_in_period = 0;
    for (i, row) in s.rows.iter().enumerate() {
        let mut cells = Vec::with_capacity(header.len());
        if o.every.is_some() {
            cells.push(Short(row.period.0).to_string());
        }
        let group = &s.groups[row.group].0;
        cells.extend(group.iter().cloned());
        numbers(&mut cells, &row.sums);
        let project = BillLine::Project(&group[0], period_estimate(row.period));
        bill(&mut cells, bill_figures(r, project, row.period, row.sums.cost));
        line(&cells);
        groups_in_period += 1;
        // After the last group of a period with several groups: the period's total.
        let period_ends = s.rows.get(i + 1).is_none_or(|next| next.period != row.period);
        if o.every.is_some() && period_ends {
            let Some((period, sums)) = periods.find(|(p, _)| *p == row.period) else {
                continue;
            };
            if groups_in_period > 1 {
                let mut cells = vec![Short(period.0).to_string()];
                cells.extend(std::iter::repeat_n(ALL.to_string(), o.by.len()));
                numbers(&mut cells, sums);
                bill(&mut cells, bill_figures(r, BillLine::All, *period, sums.cost));
                line(&cells);
            }
            groups_in_period = 0;
        }
    }
    let window = (o.since, o.until);
    let labels = header.len() - figures_before_bill - bill_columns(r);
    if r.billed.is_some() && !spreads_overhead(r) {
        let mut cells = Vec::with_capacity(header.len());
        if o.every.is_some() {
            cells.push(String::new());
        }
        cells.push(UNTAGGED.into());
        cells.extend(std::iter::repeat_n(
            String::new(),
            labels - cells.len() + figures_before_bill,
        ));
        bill(&mut cells, bill_figures(r, BillLine::Untagged, window, 0.0));
        line(&cells);
    }
    let mut total = vec!["TOTAL".to_string()];
    total.extend(std::iter::repeat_n(String::new(), labels - 1));
    numbers(&mut total, &s.total);
    bill(&mut total, bill_figures(r, BillLine::All, window, s.total.cost));
    line(&total);
}

/// The wasted cost of `sums`, `None` when no priced run of it has a CPU efficiency (so
/// that "nothing known" never reads as "nothing wasted").
pub(super) fn wasted(sums: &Sums) -> Option<f64> {
    let known = sums.jobs - sums.unpriced_jobs - sums.wasted_unknown_jobs;
    (known > 0).then_some(sums.wasted_cost)
}

/// How many columns the bill adds to the table.
fn bill_columns(r: &Report) -> usize {
    match &r.billed {
        None => 0,
        Some(_) if spreads_overhead(r) => 3,
        Some(_) => 2,
    }
}

/// The aligned table, then the notes.
pub(crate) fn table(r: &Report, out: &mut impl Write) -> io::Result<()> {
    // Period and group columns on the left, figures on the right.
    let first_figure = usize::from(r.options.every.is_some()) + r.options.by.len();
    let mut columns = Columns::default().right_aligned_from(first_figure);
    let mut rows = 0usize;
    table_lines(r, &mut |cells| {
        columns.measure(cells);
        rows += 1;
    });
    writeln!(out, "{}", window_title(r))?;
    writeln!(out)?;
    let mut n = 0usize;
    let mut result = Ok(());
    let mut text = String::new();
    table_lines(r, &mut |cells| {
        n += 1;
        if n == rows {
            text.push_str(&"-".repeat(columns.line_width()));
            text.push('\n');
        }
        columns.push_line(&mut text, cells);
        if text.len() > 1 << 16 && result.is_ok() {
            result = out.write_all(text.as_bytes());
            text.clear();
        }
    });
    result?;
    out.write_all(text.as_bytes())?;
    if r.summary.other_groups > 0 {
        writeln!(out, "(other) adds up {} more groups.", r.summary.other_groups)?;
    }
    writeln!(out)?;
    notes(r, out)
}

/// What is not in the sums and why: unpriced jobs, skipped lines, records that did not
/// run, warnings. Printed under the table, or on stderr beside CSV.
pub(crate) fn notes(r: &Report, out: &mut impl Write) -> io::Result<()> {
    let d = &r.diagnostics;
    if d.unpriced > 0 {
        writeln!(
            out,
            "{} job runs could not be priced: their hours are counted above, their cost is not.",
            d.unpriced
        )?;
        for (reason, (runs, seconds, examples)) in &d.unpriced_reasons {
            let more = if *runs as usize > examples.len() { ", ..." } else { "" };
            writeln!(
                out,
                "  {runs} {}, {} hours: {reason} (job {}{more})",
                if *runs == 1 { "run" } else { "runs" },
                hours(*seconds as f64),
                examples.join(", ")
            )?;
        }
    }
    if d.skipped > 0 {
        writeln!(out, "{} lines could not be used and were skipped:", d.skipped)?;
        for (line, reason) in &d.first_skipped {
            writeln!(out, "  line {line}: {reason}")?;
        }
        if d.skipped as usize > EXAMPLES {
            writeln!(out, "  ... and {} more", d.skipped as usize - d.first_skipped.len())?;
        }
    }
    if d.not_run > 0 {
        writeln!(
            out,
            "{} job records had no run time in the window (pending, or cancelled before they started).",
            d.not_run
        )?;
    }
    let total = &r.summary.total;
    if total.wasted_unknown_jobs > 0 {
        let gpu = total.wasted_unknown_gpu_jobs;
        writeln!(
            out,
            "{} priced job runs are not in the wasted cost, their CPU efficiency unknown: {gpu} GPU jobs \
             (their CPU time says little), {} running or without recorded CPU time (TotalCPU).",
            total.wasted_unknown_jobs,
            total.wasted_unknown_jobs - gpu
        )?;
    }
    for w in &d.warnings {
        writeln!(out, "warning: {w}")?;
    }
    price_notes(r, out)
}

/// Where prices came from, when not all from the settings: the price cache's age, and
/// the spot histories used.
fn price_notes(r: &Report, out: &mut impl Write) -> io::Result<()> {
    for (name, source) in &r.price_sources {
        if let Some(age) = source.age_seconds {
            writeln!(
                out,
                "price: {name} on demand from the price cache (AWS Price List), read {} hours ago.",
                hours(age as f64)
            )?;
        }
        for (partition, spot) in &source.spot {
            writeln!(out, "price: {name} spot in partition {partition}: {spot}.")?;
        }
    }
    for note in r.billed.iter().flat_map(|b| &b.notes) {
        writeln!(out, "{note}")?;
    }
    Ok(())
}

pub(super) fn csv_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_csv_field(&mut out, s);
    out
}

/// [`csv_field`] appended to `out`, without a String of its own (once per field of each
/// per-job row).
pub(super) fn push_csv_field(out: &mut String, s: &str) {
    // Byte by byte (all four are ASCII): a pattern of chars decodes each char, and the
    // per-job CSV passes nine fields of a million rows through here.
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push('"');
        for part in s.split_inclusive('"') {
            out.push_str(part);
            if part.ends_with('"') {
                out.push('"');
            }
        }
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// CSV, one row per line:
/// `kind,period_start,period_end,<by...>,jobs,elapsed_seconds,cpu_seconds,charged_node_seconds,cost,unpriced_jobs,currency`
/// where kind is `group`, `group_total` and `period_total` (with --every) or `total`.
/// With `--billed`, `billed_cost,diff` (and `overhead_cost` between them with
/// `--overhead proportional`) follow, and an `untagged` row comes before `total`
/// unless the overhead is spread. `wasted_cost,wasted_unknown_jobs` end each row (last,
/// so that the columns before keep their places).
pub(crate) fn csv(r: &Report, out: &mut impl Write) -> io::Result<()> {
    let o = &r.options;
    let s = &r.summary;
    let mut header = vec!["kind", "period_start", "period_end"];
    header.extend(o.by.iter().map(|d| d.name()));
    header.extend([
        "jobs",
        "elapsed_seconds",
        "cpu_seconds",
        "charged_node_seconds",
        "cost",
        "unpriced_jobs",
        "currency",
    ]);
    if r.billed.is_some() {
        header.push("billed_cost");
        if spreads_overhead(r) {
            header.push("overhead_cost");
        }
        header.push("diff");
    }
    header.extend(["wasted_cost", "wasted_unknown_jobs"]);
    writeln!(out, "{}", header.join(","))?;
    let period_estimate = |period: (Timestamp, Timestamp)| {
        s.periods
            .iter()
            .find(|(p, _)| *p == period)
            .map_or(s.total.cost, |(_, sums)| sums.cost)
    };
    let mut line = |kind: &str, period: (Timestamp, Timestamp), group: &[String], sums: &Sums| {
        let mut cells = vec![
            kind.to_string(),
            Rfc3339(period.0).to_string(),
            Rfc3339(period.1).to_string(),
        ];
        if group.is_empty() {
            cells.extend(std::iter::repeat_n(String::new(), o.by.len()));
        } else {
            cells.extend(group.iter().map(|g| csv_field(g)));
        }
        cells.extend([
            sums.jobs.to_string(),
            sums.elapsed_seconds.to_string(),
            sums.cpu_seconds.to_string(),
            format!("{:.3}", node_seconds(sums.charged_node_seconds)),
            format!("{:.6}", cost(sums.cost)),
            sums.unpriced_jobs.to_string(),
            csv_field(&r.currency),
        ]);
        let bill_line = match (kind, group.first()) {
            ("untagged", _) => BillLine::Untagged,
            ("group", Some(project)) => BillLine::Project(project, period_estimate(period)),
            ("group_total", Some(project)) => BillLine::Project(project, s.total.cost),
            _ => BillLine::All,
        };
        if let Some(f) = bill_figures(r, bill_line, period, sums.cost) {
            cells.push(format!("{:.6}", cost(f.billed)));
            if spreads_overhead(r) {
                cells.push(format!("{:.6}", cost(f.overhead)));
            }
            cells.push(format!("{:.6}", cost(f.diff)));
        }
        cells.push(wasted(sums).map_or(String::new(), |w| format!("{:.6}", cost(w))));
        cells.push(sums.wasted_unknown_jobs.to_string());
        writeln!(out, "{}", cells.join(","))
    };
    let window = (o.since, o.until);
    for row in &s.rows {
        line("group", row.period, &s.groups[row.group].0, &row.sums)?;
    }
    if o.every.is_some() {
        for (group, sums) in &s.groups {
            line("group_total", window, group, sums)?;
        }
        for (period, sums) in &s.periods {
            line("period_total", *period, &[], sums)?;
        }
    }
    if r.billed.is_some() && !spreads_overhead(r) {
        line("untagged", window, &[UNTAGGED.to_string()], &Sums::default())?;
    }
    line("total", window, &[], &s.total)
}

#[derive(Serialize)]
struct JsonSums {
    jobs: u64,
    elapsed_seconds: i64,
    cpu_seconds: i64,
    charged_node_seconds: f64,
    cost: f64,
    unpriced_jobs: u64,
    /// Null when no priced run has a CPU efficiency.
    wasted_cost: Option<f64>,
    wasted_unknown_jobs: u64,
    wasted_unknown_gpu_jobs: u64,
}

impl From<&Sums> for JsonSums {
    fn from(s: &Sums) -> JsonSums {
        JsonSums {
            jobs: s.jobs,
            elapsed_seconds: s.elapsed_seconds,
            cpu_seconds: s.cpu_seconds,
            charged_node_seconds: node_seconds(s.charged_node_seconds),
            cost: cost(s.cost),
            unpriced_jobs: s.unpriced_jobs,
            wasted_cost: wasted(s).map(cost),
            wasted_unknown_jobs: s.wasted_unknown_jobs,
            wasted_unknown_gpu_jobs: s.wasted_unknown_gpu_jobs,
        }
    }
}

/// A group's key values as `{"project": "A", "user": "alice"}`, in `--by` order.
struct JsonGroup<'a>(&'a [Dimension], &'a [String]);

impl Serialize for JsonGroup<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (d, v) in self.0.iter().zip(self.1) {
            map.serialize_entry(d.name(), v)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct JsonRow<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    period_start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    period_end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<JsonGroup<'a>>,
    #[serde(flatten)]
    sums: JsonSums,
    /// With `--billed`, in each row that has a project.
    #[serde(skip_serializing_if = "Option::is_none")]
    billed_cost: Option<f64>,
    /// With `--overhead proportional`: the untagged cost included in `billed_cost`.
    #[serde(skip_serializing_if = "Option::is_none")]
    overhead_cost: Option<f64>,
}

/// The top-level `billed` object.
#[derive(Serialize)]
struct JsonBilled<'a> {
    metric: &'static str,
    currency: &'a str,
    cluster: &'a str,
    window_start: String,
    window_end: String,
    total: f64,
    untagged: f64,
    by_project: std::collections::BTreeMap<String, f64>,
    overhead: crate::cost::billed::Overhead,
    requests: u32,
    notes: &'a [String],
}

/// Serializes as a JSON array of what the closure yields, one element at a time, so that
/// the rows of a report of many groups and days are never all in memory.
struct Records<F>(F);

impl<F, I> Serialize for Records<F>
where
    F: Fn() -> I,
    I: IntoIterator,
    I::Item: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

/// The JSON document; fields in the order of its keys (docs/report.md). The record
/// arrays are [`Records`].
#[derive(Serialize)]
struct JsonReport<'a, G, P, R> {
    format: &'static str,
    since: String,
    until: String,
    now: String,
    currency: &'a str,
    project_source: &'static str,
    by: &'a [Dimension],
    every: Option<Every>,
    total: JsonSums,
    groups: G,
    other_groups: usize,
    periods: P,
    rows: R,
    unpriced: JsonUnpriced<'a>,
    skipped: JsonSkipped<'a>,
    not_run: u64,
    lines: u64,
    warnings: &'a [String],
    /// Where each instance type's price came from (added after format 1's first release;
    /// readers of format 1 ignore keys they do not know).
    price_sources: &'a std::collections::BTreeMap<String, crate::prices::merge::PriceSource>,
    /// What AWS billed, with `--billed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    billed: Option<JsonBilled<'a>>,
}

// The objects below were first written with `json!`, whose maps sort their keys: their
// fields are in alphabetical order so that the output stays byte for byte the same.

#[derive(Serialize)]
struct JsonUnpriced<'a> {
    jobs: u64,
    reasons: Vec<JsonUnpricedReason<'a>>,
}

#[derive(Serialize)]
struct JsonUnpricedReason<'a> {
    elapsed_seconds: i64,
    examples: &'a [String],
    jobs: u64,
    reason: &'a str,
}

#[derive(Serialize)]
struct JsonSkipped<'a> {
    first: Vec<JsonSkippedLine<'a>>,
    lines: u64,
}

#[derive(Serialize)]
struct JsonSkippedLine<'a> {
    line: u64,
    reason: &'a str,
}

/// The whole report as one JSON document (schema in docs/report.md), laid out by
/// `ReportLayout`: top-level keys in a fixed order, each record on its own line.
pub(crate) fn json(r: &Report, out: &mut impl Write) -> io::Result<()> {
    let o = &r.options;
    let s = &r.summary;
    let d = &r.diagnostics;
    let period = |p: (Timestamp, Timestamp)| (Some(Rfc3339(p.0).to_string()), Some(Rfc3339(p.1).to_string()));
    let window = (o.since, o.until);
    let period_estimate = |p: (Timestamp, Timestamp)| {
        s.periods
            .iter()
            .find(|(q, _)| *q == p)
            .map_or(s.total.cost, |(_, sums)| sums.cost)
    };
    // (billed_cost, overhead_cost) of a project's row.
    let bill = |group: &[String], p: (Timestamp, Timestamp), estimate: f64, all: f64| {
        let f = bill_figures(r, BillLine::Project(group.first()?, all), p, estimate)?;
        Some((cost(f.billed), spreads_overhead(r).then(|| cost(f.overhead))))
    };
    let doc = JsonReport {
        format: "cost-tags-report/1",
        since: Rfc3339(o.since).to_string(),
        until: Rfc3339(o.until).to_string(),
        now: Rfc3339(o.now).to_string(),
        currency: &r.currency,
        project_source: r.project_source.name(),
        by: &o.by,
        every: o.every,
        total: JsonSums::from(&s.total),
        groups: Records(|| {
            s.groups.iter().map(|(g, sums)| {
                let billed = bill(g, window, sums.cost, s.total.cost);
                JsonRow {
                    period_start: None,
                    period_end: None,
                    group: Some(JsonGroup(&o.by, g)),
                    sums: sums.into(),
                    billed_cost: billed.map(|b| b.0),
                    overhead_cost: billed.and_then(|b| b.1),
                }
            })
        }),
        other_groups: s.other_groups,
        periods: Records(|| {
            s.periods.iter().map(|(p, sums)| {
                let (period_start, period_end) = period(*p);
                JsonRow {
                    period_start,
                    period_end,
                    group: None,
                    sums: sums.into(),
                    billed_cost: None,
                    overhead_cost: None,
                }
            })
        }),
        rows: Records(|| {
            s.rows.iter().map(|row| {
                let (period_start, period_end) = period(row.period);
                let group = &s.groups[row.group].0;
                let billed = bill(group, row.period, row.sums.cost, period_estimate(row.period));
                JsonRow {
                    period_start,
                    period_end,
                    group: Some(JsonGroup(&o.by, group)),
                    sums: (&row.sums).into(),
                    billed_cost: billed.map(|b| b.0),
                    overhead_cost: billed.and_then(|b| b.1),
                }
            })
        }),
        unpriced: JsonUnpriced {
            jobs: d.unpriced,
            reasons: d
                .unpriced_reasons
                .iter()
                .map(|(reason, (runs, seconds, examples))| JsonUnpricedReason {
                    elapsed_seconds: *seconds,
                    examples,
                    jobs: *runs,
                    reason,
                })
                .collect(),
        },
        skipped: JsonSkipped {
            first: d
                .first_skipped
                .iter()
                .map(|(line, reason)| JsonSkippedLine { line: *line, reason })
                .collect(),
            lines: d.skipped,
        },
        not_run: d.not_run,
        lines: d.lines,
        warnings: &d.warnings,
        price_sources: &r.price_sources,
        billed: r.billed.as_ref().map(|b| JsonBilled {
            metric: b.metric.name(),
            currency: &b.currency,
            cluster: &b.cluster,
            window_start: Rfc3339(b.window.0).to_string(),
            window_end: Rfc3339(b.window.1).to_string(),
            total: cost(b.total()),
            untagged: cost(b.untagged()),
            by_project: b
                .by_project()
                .into_iter()
                .filter(|(p, _)| !p.is_empty())
                .map(|(p, v)| (p, cost(v)))
                .collect(),
            overhead: b.overhead,
            requests: b.requests,
            notes: &b.notes,
        }),
    };
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, ReportLayout::default());
    doc.serialize(&mut serializer)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(csv_field("ProjectA"), "ProjectA");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("\""), "\"\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        let mut line = String::from("x,");
        push_csv_field(&mut line, "on demand (settings); spot (a,b)");
        assert_eq!(line, "x,\"on demand (settings); spot (a,b)\"");
    }
}
