//! `cost-tags report --by job`: one row per job run, the statement an auditor or a PI
//! reconciles with, in start order: a statement reads as what happened, in turn. Each row
//! is packed ([`packed`]) as it is priced and handed to [`SortedRows`], which renders it
//! (on its own thread once rows are many), with the run's start as its key (its real
//! start, also when the run began before the window, so that the rows are in the order of
//! their `start` column too, which is the part in the window); rows that started in the
//! same second keep sacct's order (job id, each run of a requeued job in turn). The sort
//! holds a fixed budget of rows in memory and spills sorted runs to a temporary file, so
//! memory stays flat for millions of jobs, and nothing is written before the last record
//! is read. Runs that never started (pending, cancelled before starting) have no row: they
//! cost nothing, and the notes count them. With `--top N` only the N most expensive runs
//! are kept (a bounded heap) and written at the end, most expensive first. The table has
//! fixed-width columns: measuring widths would take a second pass over the rows.
//!
//! The CSV columns and JSON keys are a stable interface (docs/report.md).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::{Serialize, Serializer};

use super::html::{escape, STYLE};
use super::output::{notes, push_csv_field};
use super::sorted_rows::{Render, SortedRows, DEFAULT_BUDGET};
use crate::cost::efficiency::Efficiency;
use crate::cost::fast_map::FastMap;
use crate::cost::priced_run::{JobSink, PricedRun};
use crate::cost::pricing::Pricer;
use crate::cost::{Options, Report};
use crate::model::time::{Rfc3339, Short, Timestamp};
use crate::prices::merge::PriceSource;
use crate::slurm::sacct::Record;

mod packed;

/// How the rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobFormat {
    Table,
    Csv,
    Json,
    /// One self-contained page: the rows as a table, the totals and the notes.
    Html,
}

fn rfc3339<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&Rfc3339(*t))
}

/// Costs to a millionth, efficiencies to a thousandth, as in the grouped report.
fn round(x: Option<f64>, decimals: u32) -> Option<f64> {
    let scale = f64::from(10u32.pow(decimals));
    x.map(|v| (v * scale).round() / scale)
}

/// The decimals of a cost and of a ratio (efficiencies, walltime accuracy).
const COST_DECIMALS: u32 = 6;
const RATIO_DECIMALS: u32 = 3;

/// Appends `n` in decimal, as `{}` does.
fn push_i64(line: &mut String, n: i64) {
    if n < 0 {
        line.push('-');
    }
    let mut n = n.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits: always UTF-8.
    line.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
}

/// Appends `v`, a value [`round`]ed to `decimals`, exactly as `{}` prints it (the CSV is
/// a stable interface): `k / 10^decimals` written as the integer `k` with a decimal point
/// and no trailing zeros. That is `{}`'s text: `{}` prints the shortest decimal that
/// reads back as `v`, and no other decimal of 15 significant digits or fewer reads back
/// as the same f64 (below 10^9, `k` has at most 15 digits). Anything else (not so
/// rounded, negative, -0, huge, not finite) goes through `{}` itself.
fn push_decimal(line: &mut String, v: f64, decimals: u32) {
    let scale = 10u64.pow(decimals);
    let scaled = (v * scale as f64).round();
    let exact = v.is_finite() && v.is_sign_positive() && v < 1e9 && scaled / scale as f64 == v;
    if !exact {
        let _ = write!(line, "{v}");
        return;
    }
    // Below 10^15 and not negative: the conversion is exact.
    let k = scaled as u64;
    push_i64(line, (k / scale) as i64);
    let mut fraction = k % scale;
    if fraction == 0 {
        return;
    }
    let mut width = decimals;
    while fraction.is_multiple_of(10) {
        fraction /= 10;
        width -= 1;
    }
    line.push('.');
    let mut digits = [b'0'; 19];
    let digits = &mut digits[..width as usize];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    line.push_str(std::str::from_utf8(digits).unwrap_or_default());
}

/// One row, the JSON object of `jobs` (keys in this order).
#[derive(Debug, Clone, Serialize)]
struct JobRow<'a> {
    job_id: Cow<'a, str>,
    state: Cow<'a, str>,
    user: Cow<'a, str>,
    group: Cow<'a, str>,
    account: Cow<'a, str>,
    project: Cow<'a, str>,
    partition: Cow<'a, str>,
    #[serde(serialize_with = "rfc3339")]
    start: Timestamp,
    #[serde(serialize_with = "rfc3339")]
    end: Timestamp,
    elapsed_seconds: i64,
    nodes: u32,
    cpus: u32,
    gpus: u32,
    instance_types: Cow<'a, str>,
    price_source: Cow<'a, str>,
    cost: Option<f64>,
    cpu_efficiency: Option<f64>,
    /// A GPU job: `cpu_efficiency` is null on purpose.
    gpu: bool,
    walltime_accuracy: Option<f64>,
    wasted_cost: Option<f64>,
    /// Peak RSS of its steps ÷ requested memory (last: added after the others).
    mem_efficiency: Option<f64>,
}

impl JobRow<'_> {
    fn into_owned(self) -> JobRow<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        JobRow {
            job_id: own(self.job_id),
            state: own(self.state),
            user: own(self.user),
            group: own(self.group),
            account: own(self.account),
            project: own(self.project),
            partition: own(self.partition),
            instance_types: own(self.instance_types),
            price_source: own(self.price_source),
            ..self
        }
    }
}

/// The CSV header: one name per field of a job row, in order.
pub(crate) const CSV_COLUMNS: [&str; 21] = [
    "job_id",
    "state",
    "user",
    "group",
    "account",
    "project",
    "partition",
    "start",
    "end",
    "elapsed_seconds",
    "nodes",
    "cpus",
    "gpus",
    "instance_types",
    "price_source",
    "cost",
    "cpu_efficiency",
    "gpu",
    "walltime_accuracy",
    "wasted_cost",
    "mem_efficiency",
];

/// How a table column holds a value longer than its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Left-aligned text, cut to the width with a `+` as its last character, as sacct's
    /// fixed-width columns are (`CANCELLED+`): the columns stay aligned, and CSV and JSON
    /// have the whole value.
    Cut,
    /// Left-aligned and never cut (the job id, which the statement is reconciled by): a
    /// longer one pushes the rest of its line right.
    Whole,
    /// A right-aligned number, never cut: a cut figure would be a wrong one.
    Number,
}

/// The table's columns: title, width, fit. START and END fit `Short`'s longest form
/// (`2024-03-01 09:30:15`).
const TABLE: [(&str, usize, Fit); 21] = [
    ("JOB", 12, Fit::Whole),
    ("STATE", 10, Fit::Cut),
    ("USER", 10, Fit::Cut),
    ("GROUP", 10, Fit::Cut),
    ("ACCOUNT", 10, Fit::Cut),
    ("PROJECT", 12, Fit::Cut),
    ("PARTITION", 10, Fit::Cut),
    ("START", 19, Fit::Cut),
    ("END", 19, Fit::Cut),
    ("HOURS", 7, Fit::Number),
    ("NODES", 5, Fit::Number),
    ("CPUS", 5, Fit::Number),
    ("GPUS", 4, Fit::Number),
    ("INSTANCE", 12, Fit::Cut),
    ("PRICE SOURCE", 23, Fit::Cut),
    ("COST", 10, Fit::Number),
    ("CPU-EFF", 7, Fit::Number),
    ("MEM-EFF", 7, Fit::Number),
    ("GPU", 3, Fit::Cut),
    ("WALLTIME", 8, Fit::Number),
    ("WASTED", 10, Fit::Number),
];

/// A cost in the heap's order; NaN never occurs (costs are sums of finite prices).
struct ByCost(JobRow<'static>);

impl ByCost {
    fn key(&self) -> f64 {
        self.0.cost.unwrap_or(f64::NEG_INFINITY)
    }
}

impl PartialEq for ByCost {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for ByCost {}
impl PartialOrd for ByCost {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByCost {
    /// Reversed, so the heap's top is the cheapest kept row, the one to drop.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().total_cmp(&self.key())
    }
}

/// Takes the runs as they arrive and writes the per-job statement to `out` at the end.
pub(crate) struct JobRows<W: Write> {
    out: W,
    /// The title or header, not yet written.
    head: String,
    format: JobFormat,
    top: Option<usize>,
    kept: BinaryHeap<ByCost>,
    sources: BTreeMap<String, PriceSource>,
    /// (cluster, partition, instance types) -> price source text: few distinct ones.
    source_text: FastMap<String, String>,
    key: String,
    instances: String,
    /// The current row's price source text (a buffer lent to each row).
    source: String,
    line: String,
    /// Rows written.
    rows: u64,
    wasted: f64,
    /// The rows by start time (without `--top`), packed until the sort renders them.
    sorted: SortedRows,
}

impl<W: Write> JobRows<W> {
    /// Starts the statement (title or header) for `options`; `sources` says where each
    /// instance type's on-demand price comes from.
    pub(crate) fn start(
        out: W,
        format: JobFormat,
        options: &Options,
        currency: &str,
        project_source: &str,
        sources: BTreeMap<String, PriceSource>,
    ) -> io::Result<JobRows<W>> {
        // Written at the end, with the rows: an input refused at its header leaves stdout
        // empty.
        let mut head = String::new();
        let out_text = &mut head;
        match format {
            JobFormat::Table => {
                let top = options
                    .top
                    .map(|n| format!(", the {n} most expensive"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out_text,
                    "Job runs from {} to {} UTC{top}, in {currency}\n",
                    Short(options.since),
                    Short(options.until)
                );
                let titles: Vec<&str> = TABLE.iter().map(|c| c.0).collect();
                table_line(out_text, &titles);
            }
            JobFormat::Csv => {
                let _ = writeln!(out_text, "{}", CSV_COLUMNS.join(","));
            }
            JobFormat::Html => {
                let title = escape(&format!(
                    "Job runs from {} to {} UTC, in {currency}",
                    Short(options.since),
                    Short(options.until)
                ));
                let order = match options.top {
                    Some(n) => format!("the {n} most expensive runs, most expensive first"),
                    None => "one row per job run, by start time (runs that started in the same second in \
                             sacct's order: by job id, each run of a requeued job in turn)"
                        .to_string(),
                };
                let _ = write!(
                    out_text,
                    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
                     <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
                     <title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
                     <h1 id=\"title\">{title}</h1>\n\
                     <p class=\"meta\">Estimated from Slurm's accounting records and the node prices in the \
                     settings; projects read from the job's {}. Running jobs are charged up to {} UTC. All \
                     times are UTC. The table holds {order}.</p>\n<table id=\"jobs\">\n<thead><tr>",
                    escape(project_source),
                    Short(options.now),
                );
                for (key, heading) in CSV_COLUMNS.iter().zip(HTML_HEADINGS) {
                    let class = if HTML_FIGURES.contains(key) {
                        " class=\"num\""
                    } else {
                        ""
                    };
                    let heading = heading.replace("CUR", &escape(currency));
                    let _ = write!(out_text, "<th{class}>{heading}</th>");
                }
                let _ = writeln!(out_text, "</tr></thead>\n<tbody>");
            }
            JobFormat::Json => {
                let text = |s: &str| serde_json::to_string(s).map_err(io::Error::other);
                let _ = write!(
                    out_text,
                    "{{\n  \"format\": \"cost-tags-report/1\",\n  \"since\": \"{}\",\n  \"until\": \"{}\",\n  \
                     \"now\": \"{}\",\n  \"currency\": {},\n  \"project_source\": {},\n  \"by\": [\"job\"],\n  \
                     \"top\": {},\n  \"jobs\": [",
                    Rfc3339(options.since),
                    Rfc3339(options.until),
                    Rfc3339(options.now),
                    text(currency)?,
                    text(project_source)?,
                    options.top.map_or("null".to_string(), |n| n.to_string()),
                );
            }
        }
        Ok(JobRows {
            out,
            head,
            format,
            top: options.top,
            kept: BinaryHeap::new(),
            sources,
            source_text: FastMap::default(),
            key: String::new(),
            instances: String::new(),
            source: String::new(),
            line: String::new(),
            rows: 0,
            wasted: 0.0,
            sorted: SortedRows::new(DEFAULT_BUDGET, renderer(format)),
        })
    }

    /// Sorts the rows in about `bytes` of memory instead of
    /// [`DEFAULT_BUDGET`]; before the first run.
    pub(crate) fn set_sort_budget(&mut self, bytes: usize) {
        self.sorted = SortedRows::new(bytes, renderer(self.format));
    }

    /// Where the price of `instances` (joined by `+`) came from for a run of `record`.
    fn price_source(&mut self, record: &Record<'_>, pricer: &Pricer) -> &str {
        self.key.clear();
        for part in [record.cluster, "|", record.partition, "|", self.instances.as_str()] {
            self.key.push_str(part);
        }
        if !self.source_text.contains_key(self.key.as_str()) {
            let spot = pricer.is_spot(record.partition);
            let mut text = String::new();
            for name in pricer.last_instance_types() {
                let one = if !spot {
                    let from = self.sources.get(name).map_or("settings", |s| s.on_demand);
                    format!("on demand ({from})")
                } else if pricer.has_settings_spot(name) {
                    "spot (settings)".to_string()
                } else {
                    let from = pricer
                        .spot_sources()
                        .get(&(name.to_string(), record.partition.to_string()))
                        .map_or("spot price history", String::as_str);
                    format!("spot ({from})")
                };
                if !text.split("; ").any(|t| t == one) {
                    if !text.is_empty() {
                        text.push_str("; ");
                    }
                    text.push_str(&one);
                }
            }
            self.source_text.insert(self.key.clone(), text);
        }
        self.source_text.get(self.key.as_str()).map_or("", String::as_str)
    }

    /// Writes the title or header if not yet done.
    fn head(&mut self) -> io::Result<()> {
        if !self.head.is_empty() {
            self.out.write_all(self.head.as_bytes())?;
            self.head.clear();
        }
        Ok(())
    }

    /// Writes one rendered row, after the JSON separator.
    fn emit(out: &mut W, format: JobFormat, rows: &mut u64, row: &[u8]) -> io::Result<()> {
        if format == JobFormat::Json {
            out.write_all(if *rows == 0 { b"\n    " } else { b",\n    " })?;
        }
        *rows += 1;
        out.write_all(row)
    }

    /// Writes the rows (by start time, or the ones kept for `--top`), then the total and
    /// the notes from `report` (the same records summed), and hands the output back. An
    /// error of the sort's temporary file is a
    /// [`SpillError`](super::sorted_rows::SpillError), any other the output's.
    pub(crate) fn finish(mut self, report: &Report) -> io::Result<W> {
        self.head()?;
        let kept = std::mem::take(&mut self.kept).into_sorted_vec();
        // Sorted by the reversed order: most expensive first.
        for row in kept {
            render(self.format, &mut self.line, &row.0)?;
            Self::emit(&mut self.out, self.format, &mut self.rows, self.line.as_bytes())?;
        }
        let sorted = std::mem::replace(&mut self.sorted, SortedRows::new(0, renderer(self.format)));
        let (out, format, rows) = (&mut self.out, self.format, &mut self.rows);
        sorted.finish(|row| Self::emit(out, format, rows, row))?;
        let total = &report.summary.total;
        let wasted = (self.wasted * 1e6).round() / 1e6;
        let d = &report.diagnostics;
        match self.format {
            JobFormat::Table => {
                let width: usize = TABLE.iter().map(|c| c.1 + 1).sum();
                writeln!(self.out, "{}", "-".repeat(width - 1))?;
                writeln!(
                    self.out,
                    "TOTAL {} job runs, {:.2} hours, cost {:.2} {}, wasted {:.2} (unused CPU of jobs with a CPU efficiency){}\n",
                    total.jobs,
                    total.elapsed_seconds as f64 / 3600.0,
                    total.cost,
                    report.currency,
                    wasted,
                    if total.unpriced_jobs > 0 {
                        format!(", {} unpriced", total.unpriced_jobs)
                    } else {
                        String::new()
                    }
                )?;
                notes(report, &mut self.out)?;
            }
            JobFormat::Csv => {}
            JobFormat::Html => {
                writeln!(self.out, "</tbody>\n</table>")?;
                let hours = |seconds: f64| format!("{:.2}", seconds / 3600.0);
                let cost = (total.cost * 1e6).round() / 1e6;
                let figures = [
                    ("Job runs", "jobs", total.jobs.to_string(), total.jobs.to_string()),
                    (
                        "Hours",
                        "elapsed_seconds",
                        total.elapsed_seconds.to_string(),
                        hours(total.elapsed_seconds as f64),
                    ),
                    (
                        "CPU-hours",
                        "cpu_seconds",
                        total.cpu_seconds.to_string(),
                        hours(total.cpu_seconds as f64),
                    ),
                    (
                        "Cost",
                        "cost",
                        json_text(&cost)?,
                        format!("{cost:.2} {}", escape(&report.currency)),
                    ),
                    (
                        "Wasted (unused CPU of jobs with a CPU efficiency)",
                        "wasted_cost",
                        json_text(&wasted)?,
                        format!("{wasted:.2} {}", escape(&report.currency)),
                    ),
                    (
                        "Unpriced job runs",
                        "unpriced_jobs",
                        total.unpriced_jobs.to_string(),
                        total.unpriced_jobs.to_string(),
                    ),
                ];
                writeln!(self.out, "<h2>Total</h2>\n<table id=\"total\">\n<tbody>")?;
                for (heading, key, value, text) in figures {
                    writeln!(
                        self.out,
                        "<tr><th>{heading}</th><td class=\"num\" data-figure=\"{key}\" data-value=\"{value}\">{text}</td></tr>"
                    )?;
                }
                writeln!(self.out, "</tbody>\n</table>")?;
                let mut text = Vec::new();
                notes(report, &mut text)?;
                writeln!(self.out, "<h2>Notes</h2>")?;
                if text.is_empty() {
                    writeln!(
                        self.out,
                        "<p id=\"notes\">None: every job run in the window was read and priced.</p>"
                    )?;
                } else {
                    writeln!(
                        self.out,
                        "<pre id=\"notes\">{}</pre>",
                        escape(&String::from_utf8_lossy(&text))
                    )?;
                }
                writeln!(self.out, "</body>\n</html>")?;
            }
            JobFormat::Json => {
                let tail = serde_json::json!({
                    "jobs": total.jobs,
                    "elapsed_seconds": total.elapsed_seconds,
                    "cpu_seconds": total.cpu_seconds,
                    "cost": (total.cost * 1e6).round() / 1e6,
                    "wasted_cost": wasted,
                    "unpriced_jobs": total.unpriced_jobs,
                });
                let reasons: Vec<_> = d
                    .unpriced_reasons
                    .iter()
                    .map(|(reason, (jobs, seconds, examples))| {
                        serde_json::json!({"reason": reason, "jobs": jobs, "elapsed_seconds": seconds, "examples": examples})
                    })
                    .collect();
                let skipped: Vec<_> = d
                    .first_skipped
                    .iter()
                    .map(|(line, reason)| serde_json::json!({"line": line, "reason": reason}))
                    .collect();
                let end = if self.rows > 0 { "\n  ]" } else { "]" };
                let json = |v: &dyn erased::Json| v.text();
                write!(
                    self.out,
                    "{end},\n  \"total\": {},\n  \"unpriced\": {},\n  \"skipped\": {},\n  \"not_run\": {},\n  \
                     \"lines\": {},\n  \"warnings\": {},\n  \"price_sources\": {}\n}}\n",
                    json(&tail)?,
                    json(&serde_json::json!({"jobs": d.unpriced, "reasons": reasons}))?,
                    json(&serde_json::json!({"lines": d.skipped, "first": skipped}))?,
                    d.not_run,
                    d.lines,
                    json(&d.warnings)?,
                    json(&report.price_sources)?,
                )?;
            }
        }
        Ok(self.out)
    }
}

/// Renders `row` in `line`: a CSV or table line, an HTML row, or a JSON object without the
/// separator before it (the output writes separators).
fn render(format: JobFormat, line: &mut String, row: &JobRow<'_>) -> io::Result<()> {
    line.clear();
    match format {
        JobFormat::Csv => {
            let text = [
                &row.job_id,
                &row.state,
                &row.user,
                &row.group,
                &row.account,
                &row.project,
                &row.partition,
            ];
            for t in text {
                push_csv_field(line, t);
                line.push(',');
            }
            // Written in place, digit by digit, with no formatting machinery: a
            // million rows, and `{}` of an f64 was the largest part of their time.
            let opt = |line: &mut String, x: Option<f64>, decimals: u32| {
                if let Some(v) = x {
                    push_decimal(line, v, decimals);
                }
                line.push(',');
            };
            Rfc3339(row.start).push_to(line);
            line.push(',');
            Rfc3339(row.end).push_to(line);
            line.push(',');
            push_i64(line, row.elapsed_seconds);
            for n in [row.nodes, row.cpus, row.gpus] {
                line.push(',');
                push_i64(line, i64::from(n));
            }
            line.push(',');
            push_csv_field(line, &row.instance_types);
            line.push(',');
            push_csv_field(line, &row.price_source);
            line.push(',');
            opt(line, row.cost, COST_DECIMALS);
            opt(line, row.cpu_efficiency, RATIO_DECIMALS);
            line.push_str(if row.gpu { "true," } else { "false," });
            opt(line, row.walltime_accuracy, RATIO_DECIMALS);
            opt(line, row.wasted_cost, COST_DECIMALS);
            opt(line, row.mem_efficiency, RATIO_DECIMALS);
            // The last comma is the line's end.
            line.pop();
            line.push('\n');
        }
        JobFormat::Html => html_row(line, row)?,
        JobFormat::Json => {
            let text = serde_json::to_string(row).map_err(io::Error::other)?;
            line.push_str(&text);
        }
        JobFormat::Table => {
            let percent = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
            let money = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
            let cells = [
                row.job_id.to_string(),
                row.state.to_string(),
                row.user.to_string(),
                row.group.to_string(),
                row.account.to_string(),
                row.project.to_string(),
                row.partition.to_string(),
                Short(row.start).to_string(),
                Short(row.end).to_string(),
                format!("{:.2}", row.elapsed_seconds as f64 / 3600.0),
                row.nodes.to_string(),
                row.cpus.to_string(),
                row.gpus.to_string(),
                row.instance_types.to_string(),
                row.price_source.to_string(),
                money(row.cost),
                if row.gpu {
                    "-".to_string()
                } else {
                    percent(row.cpu_efficiency)
                },
                percent(row.mem_efficiency),
                if row.gpu { "yes" } else { "" }.to_string(),
                percent(row.walltime_accuracy),
                money(row.wasted_cost),
            ];
            let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
            table_line(line, &cells);
        }
    }
    Ok(())
}

/// The sort's renderer: unpacks each row and renders it for `format`.
fn renderer(format: JobFormat) -> Render {
    let mut line = String::new();
    Box::new(move |bytes, out| {
        let row = packed::unpack(bytes)?;
        render(format, &mut line, &row)?;
        out.extend_from_slice(line.as_bytes());
        Ok(())
    })
}

/// One line of compact JSON for any serializable value.
mod erased {
    pub(super) trait Json {
        fn text(&self) -> std::io::Result<String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn text(&self) -> std::io::Result<String> {
            serde_json::to_string(self).map_err(std::io::Error::other)
        }
    }
}

/// The HTML headings of [`CSV_COLUMNS`], in order (`CUR` is the currency).
const HTML_HEADINGS: [&str; 21] = [
    "Job",
    "State",
    "User",
    "Group",
    "Account",
    "Project",
    "Partition",
    "Start",
    "End",
    "Hours",
    "Nodes",
    "CPUs",
    "GPUs",
    "Instance types",
    "Price source",
    "Cost (CUR)",
    "CPU efficiency",
    "GPU",
    "Walltime used",
    "Wasted (CUR)",
    "Memory efficiency",
];

/// The columns of [`CSV_COLUMNS`] that are figures: right-aligned, and their exact JSON
/// value in `data-value`.
const HTML_FIGURES: [&str; 10] = [
    "elapsed_seconds",
    "nodes",
    "cpus",
    "gpus",
    "cost",
    "cpu_efficiency",
    "gpu",
    "walltime_accuracy",
    "wasted_cost",
    "mem_efficiency",
];

/// A value as the JSON statement writes it.
fn json_text<T: Serialize + ?Sized>(value: &T) -> io::Result<String> {
    serde_json::to_string(value).map_err(io::Error::other)
}

/// One `<tr>` of the HTML statement. Every cell names its JSON key in `data-key`; a
/// figure also holds the JSON's value in `data-value` (a time its RFC 3339 text), so the
/// page is checked against `--format json` without reading rounded text. Every text from
/// the records is escaped.
fn html_row(line: &mut String, row: &JobRow<'_>) -> io::Result<()> {
    let percent = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
    let money = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    line.push_str("<tr class=\"job\">");
    let text = |line: &mut String, key: &str, value: &str| {
        let _ = write!(line, "<td data-key=\"{key}\">{}</td>", escape(value));
    };
    for (key, value) in [
        ("job_id", &row.job_id),
        ("state", &row.state),
        ("user", &row.user),
        ("group", &row.group),
        ("account", &row.account),
        ("project", &row.project),
        ("partition", &row.partition),
    ] {
        text(line, key, value);
    }
    for (key, t) in [("start", row.start), ("end", row.end)] {
        let _ = write!(
            line,
            "<td data-key=\"{key}\" data-value=\"{}\">{}</td>",
            Rfc3339(t),
            Short(t)
        );
    }
    let figure = |line: &mut String, key: &str, value: String, shown: String| {
        let _ = write!(
            line,
            "<td class=\"num\" data-key=\"{key}\" data-value=\"{value}\">{shown}</td>"
        );
    };
    figure(
        line,
        "elapsed_seconds",
        row.elapsed_seconds.to_string(),
        format!("{:.2}", row.elapsed_seconds as f64 / 3600.0),
    );
    for (key, n) in [("nodes", row.nodes), ("cpus", row.cpus), ("gpus", row.gpus)] {
        figure(line, key, n.to_string(), n.to_string());
    }
    text(line, "instance_types", &row.instance_types);
    text(line, "price_source", &row.price_source);
    figure(line, "cost", json_text(&row.cost)?, money(row.cost));
    let cpu = if row.gpu {
        "-".to_string()
    } else {
        percent(row.cpu_efficiency)
    };
    figure(line, "cpu_efficiency", json_text(&row.cpu_efficiency)?, cpu);
    figure(
        line,
        "gpu",
        json_text(&row.gpu)?,
        if row.gpu { "yes" } else { "" }.to_string(),
    );
    figure(
        line,
        "walltime_accuracy",
        json_text(&row.walltime_accuracy)?,
        percent(row.walltime_accuracy),
    );
    figure(
        line,
        "wasted_cost",
        json_text(&row.wasted_cost)?,
        money(row.wasted_cost),
    );
    figure(
        line,
        "mem_efficiency",
        json_text(&row.mem_efficiency)?,
        percent(row.mem_efficiency),
    );
    line.push_str("</tr>\n");
    Ok(())
}

/// One table line of fixed-width cells (see [`Fit`] for a value longer than its column).
fn table_line(line: &mut String, cells: &[&str]) {
    for (i, (cell, (_, width, fit))) in cells.iter().zip(TABLE).enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let last = i + 1 == cells.len();
        let _ = match fit {
            Fit::Number => write!(line, "{cell:>width$}"),
            Fit::Cut if cell.chars().nth(width).is_some() => {
                line.extend(cell.chars().take(width - 1));
                line.push('+');
                Ok(())
            }
            _ if last => write!(line, "{cell}"),
            Fit::Cut | Fit::Whole => write!(line, "{cell:<width$}"),
        };
    }
    line.push('\n');
}

impl<W: Write> JobSink for JobRows<W> {
    fn run(&mut self, run: &PricedRun<'_, '_>) -> io::Result<()> {
        let r = run.record;
        let efficiency = Efficiency::of(r);
        let wasted = efficiency.wasted(run.cost);
        self.wasted += wasted.unwrap_or(0.0);
        self.instances.clear();
        // Both buffers are lent to the row and taken back after it is written: no
        // allocation per row.
        let mut source = std::mem::take(&mut self.source);
        source.clear();
        match run.pricer {
            Some(pricer) => {
                for (i, name) in pricer.last_instance_types().enumerate() {
                    if i > 0 {
                        self.instances.push('+');
                    }
                    self.instances.push_str(name);
                }
                source.push_str(self.price_source(r, pricer));
            }
            None => source.push_str("unpriced"),
        }
        let row = JobRow {
            job_id: Cow::Borrowed(r.job_id),
            state: Cow::Borrowed(r.state),
            user: Cow::Borrowed(r.user),
            group: Cow::Borrowed(r.group),
            account: Cow::Borrowed(r.account),
            project: Cow::Borrowed(run.project),
            partition: Cow::Borrowed(r.partition),
            start: run.from,
            end: run.to,
            elapsed_seconds: run.to - run.from,
            nodes: r.nodes,
            cpus: r.cpus,
            gpus: r.gpus,
            instance_types: Cow::Owned(std::mem::take(&mut self.instances)),
            price_source: Cow::Owned(source),
            cost: round(run.cost, COST_DECIMALS),
            cpu_efficiency: round(efficiency.cpu, RATIO_DECIMALS),
            gpu: efficiency.gpu,
            walltime_accuracy: round(efficiency.walltime, RATIO_DECIMALS),
            wasted_cost: round(wasted, COST_DECIMALS),
            mem_efficiency: round(efficiency.memory, RATIO_DECIMALS),
        };
        let result = match self.top {
            Some(n) => {
                let cheapest_kept = self.kept.peek().map(ByCost::key);
                let key = row.cost.unwrap_or(f64::NEG_INFINITY);
                if self.kept.len() < n {
                    self.kept.push(ByCost(row.clone().into_owned()));
                } else if cheapest_kept.is_some_and(|c| key > c) {
                    self.kept.pop();
                    self.kept.push(ByCost(row.clone().into_owned()));
                }
                Ok(())
            }
            None => {
                // Every row has a start (runs that never started are not handed over).
                let key = r.start.unwrap_or(run.from).as_second();
                self.sorted
                    .push_with(key, packed::size(&row), |buffer| packed::pack(&row, buffer))
            }
        };
        if let Cow::Owned(s) = row.instance_types {
            self.instances = s;
        }
        if let Cow::Owned(s) = row.price_source {
            self.source = s;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where each column starts in a table line: after the previous cell and its space.
    fn column_starts(line: &str) -> Vec<usize> {
        let mut starts = vec![0];
        let mut at = 0;
        for (_, width, _) in &TABLE[..TABLE.len() - 1] {
            at += width + 1;
            starts.push(at);
        }
        assert!(line.chars().count() >= at, "{line:?}");
        starts
    }

    /// Long text is cut as sacct cuts it (`CANCELLED+`), so every column of every line
    /// starts under its title; times with seconds fit; numbers and job ids are never cut.
    #[test]
    fn table_columns_stay_under_their_titles() {
        let titles: Vec<&str> = TABLE.iter().map(|c| c.0).collect();
        // A title is as wide as its column at most.
        assert!(TABLE.iter().all(|(t, w, _)| t.len() <= *w));
        let mut head = String::new();
        table_line(&mut head, &titles);
        let row = [
            "4_1",
            "CANCELLED by 0",
            "a_user_with_a_long_name",
            "users",
            "physics",
            "ProjectA",
            "compute",
            "2026-12-07 01:40:09",
            "2026-12-07 01:40:12",
            "0.00",
            "1",
            "1",
            "0",
            "c5.xlarge+c5.4xlarge",
            "spot (spot price history, us-east-1a)",
            "0.0150",
            "0%",
            "-",
            "",
            "5%",
            "0.0150",
        ];
        let mut line = String::new();
        table_line(&mut line, &row);
        let chars: Vec<char> = line.trim_end_matches('\n').chars().collect();
        for ((title, width, _), at) in TABLE.iter().zip(column_starts(&line)) {
            let under = head.chars().skip(at).take(*width).collect::<String>();
            assert_eq!(under.trim(), *title, "{head}");
            assert!(
                at == 0 || chars[at - 1] == ' ',
                "column {title} does not start at {at}:\n{head}{line}"
            );
        }
        assert!(line.contains(" CANCELLED+ a_user_wi+ users "), "{line}");
        assert!(line.contains(" 2026-12-07 01:40:09 2026-12-07 01:40:12 "), "{line}");
        assert!(line.contains(" c5.xlarge+c+ spot (spot price histo+ "), "{line}");
        // A job id longer than its column is whole, and pushes the line right.
        let mut long_id = String::new();
        let mut cells = row;
        cells[0] = "123456789_1000+2";
        table_line(&mut long_id, &cells);
        assert!(long_id.starts_with("123456789_1000+2 CANCELLED+"), "{long_id}");
    }

    /// The CSV's numbers are byte for byte what `{}` printed before they were written by
    /// hand: rounded costs and ratios, and whatever else reaches the writer.
    #[test]
    fn numbers_read_as_display_prints_them() {
        let mut rng = fastrand::Rng::with_seed(24);
        let mut values: Vec<f64> = vec![
            0.0,
            -0.0,
            1.0,
            0.5,
            0.000001,
            0.000_010,
            0.1,
            0.2,
            0.3,
            1e-7,
            999_999_999.999_999,
            1e9,
            1e21,
            -1.5,
            f64::NAN,
            f64::INFINITY,
            0.1 + 0.2,
            123.456_789_1,
        ];
        for _ in 0..200_000 {
            let magnitude = 10f64.powi(rng.i32(-7..10));
            values.push(rng.f64() * magnitude);
        }
        for decimals in [COST_DECIMALS, RATIO_DECIMALS] {
            for &raw in &values {
                for v in [raw, round(Some(raw), decimals).unwrap_or(raw)] {
                    let mut line = String::new();
                    push_decimal(&mut line, v, decimals);
                    assert_eq!(line, format!("{v}"), "{v:e} to {decimals} decimals");
                }
            }
        }
        for n in [0, 1, 9, 10, 99, 100, 3600, -1, -3600, i64::MAX, i64::MIN] {
            let mut line = String::new();
            push_i64(&mut line, n);
            assert_eq!(line, n.to_string());
        }
    }
}
