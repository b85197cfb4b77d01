//! `--format html`: the report as one page a person reads and can be sent (a PI, an
//! approver): the spend per group over the window (and per period with `--every`), the
//! chart drawn inline, and the notes on what the sums leave out. One self-contained file:
//! styles inline, no script, no font, image or stylesheet fetched, so it opens the same
//! offline, in a mail client's viewer, or years later in an audit.
//!
//! Every value from the records (users, accounts, projects, groups, partitions) is
//! user-influenced text, and every one is escaped. Each figure cell carries its exact
//! value in `data-value`, under the JSON report's key in `data-figure`, so a reader (or a
//! test) checks the page against `--format json` without parsing rounded text.

use std::io::{self, Write};

use super::chart;
use super::output::{cost, node_seconds, notes, window_title};
use crate::cost::aggregate::Sums;
use crate::cost::Report;
use crate::model::time::{Rfc3339, Short, Timestamp};

/// Escapes text for an HTML element or a quoted attribute value.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Readable on screen and on paper; no web font, so nothing is fetched.
pub(super) const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0}
th,td{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
thead th{border-bottom:2px solid #888}
tfoot td,tr.period-total td{font-weight:bold;border-top:2px solid #888}
pre{white-space:pre-wrap;background:#f6f6f6;padding:1em}
figure{margin:1em 0}svg{max-width:100%;height:auto}
p.meta{color:#555}
";

/// The figure columns: their heading, the JSON key of the value in `data-value`, and the
/// value and text of a [`Sums`].
fn figures(sums: &Sums) -> [(&'static str, String, String); 6] {
    let hours = |seconds: f64| format!("{:.2}", seconds / 3600.0);
    [
        ("jobs", sums.jobs.to_string(), sums.jobs.to_string()),
        (
            "elapsed_seconds",
            sums.elapsed_seconds.to_string(),
            hours(sums.elapsed_seconds as f64),
        ),
        (
            "cpu_seconds",
            sums.cpu_seconds.to_string(),
            hours(sums.cpu_seconds as f64),
        ),
        (
            "charged_node_seconds",
            node_seconds(sums.charged_node_seconds).to_string(),
            hours(sums.charged_node_seconds),
        ),
        ("cost", cost(sums.cost).to_string(), format!("{:.2}", sums.cost)),
        (
            "unpriced_jobs",
            sums.unpriced_jobs.to_string(),
            if sums.unpriced_jobs > 0 {
                sums.unpriced_jobs.to_string()
            } else {
                String::new()
            },
        ),
    ]
}

const FIGURE_HEADINGS: [&str; 5] = ["Jobs", "Hours", "CPU-hours", "Node-hours", "Unpriced"];

fn head(out: &mut impl Write, r: &Report, period: bool) -> io::Result<()> {
    write!(out, "<thead><tr>")?;
    if period {
        write!(out, "<th>Period</th>")?;
    }
    for d in &r.options.by {
        write!(out, "<th>{}</th>", escape(d.name()))?;
    }
    let [jobs, h, cpu, node, unpriced] = FIGURE_HEADINGS;
    for name in [jobs, h, cpu, node] {
        write!(out, "<th class=\"num\">{name}</th>")?;
    }
    write!(out, "<th class=\"num\">Cost ({})</th>", escape(&r.currency))?;
    writeln!(out, "<th class=\"num\">{unpriced}</th></tr></thead>")
}

/// One row: `class`, the period cell (when the table has one), the group's values (or
/// `labels` spanning the group columns), then the figures.
fn row(
    out: &mut impl Write,
    r: &Report,
    class: &str,
    period: Option<(Timestamp, Timestamp)>,
    group: Option<&[String]>,
    label: &str,
    sums: &Sums,
) -> io::Result<()> {
    write!(out, "<tr class=\"{class}\"")?;
    if let Some(p) = period {
        write!(
            out,
            " data-period-start=\"{}\" data-period-end=\"{}\"",
            Rfc3339(p.0),
            Rfc3339(p.1)
        )?;
    }
    write!(out, ">")?;
    if let Some(p) = period {
        write!(out, "<td>{}</td>", Short(p.0))?;
    }
    match group {
        Some(values) => {
            for (d, v) in r.options.by.iter().zip(values) {
                write!(out, "<td data-dim=\"{}\">{}</td>", d.name(), escape(v))?;
            }
        }
        None => write!(out, "<td colspan=\"{}\">{label}</td>", r.options.by.len().max(1))?,
    }
    for (key, value, text) in figures(sums) {
        write!(
            out,
            "<td class=\"num\" data-figure=\"{key}\" data-value=\"{value}\">{text}</td>"
        )?;
    }
    writeln!(out, "</tr>")
}

/// The whole page.
pub(crate) fn html(r: &Report, out: &mut impl Write) -> io::Result<()> {
    let o = &r.options;
    let s = &r.summary;
    let title = escape(&window_title(r));
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
    )?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    writeln!(out, "<title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>")?;
    writeln!(out, "<h1 id=\"title\">{title}</h1>")?;
    writeln!(
        out,
        "<p class=\"meta\">Estimated from Slurm's accounting records and the node prices in \
         the settings; projects read from the job's {}. Running jobs are charged up to {} UTC. \
         All times are UTC.</p>",
        escape(r.project_source.name()),
        Short(o.now)
    )?;

    writeln!(out, "<table id=\"groups\">")?;
    head(out, r, false)?;
    writeln!(out, "<tbody>")?;
    for (group, sums) in &s.groups {
        row(out, r, "group", None, Some(group), "", sums)?;
    }
    writeln!(out, "</tbody>\n<tfoot>")?;
    row(out, r, "total", None, None, "Total", &s.total)?;
    writeln!(out, "</tfoot>\n</table>")?;
    if s.other_groups > 0 {
        writeln!(out, "<p>(other) adds up {} more groups.</p>", s.other_groups)?;
    }

    if o.every.is_some() {
        writeln!(out, "<h2>Per {}</h2>", o.every.map(|e| e.name()).unwrap_or_default())?;
        writeln!(out, "<table id=\"periods\">")?;
        head(out, r, true)?;
        writeln!(out, "<tbody>")?;
        let mut period_totals = s.periods.iter();
        for (i, r_) in s.rows.iter().enumerate() {
            row(
                out,
                r,
                "period-group",
                Some(r_.period),
                Some(&s.groups[r_.group].0),
                "",
                &r_.sums,
            )?;
            let period_ends = s.rows.get(i + 1).is_none_or(|next| next.period != r_.period);
            if period_ends {
                if let Some((p, sums)) = period_totals.find(|(p, _)| *p == r_.period) {
                    row(out, r, "period-total", Some(*p), None, "Period total", sums)?;
                }
            }
        }
        writeln!(out, "</tbody>\n</table>")?;
    }

    if let Some(summary) = &r.chart {
        // chart.rs escapes the group names it draws.
        writeln!(out, "<h2>Cumulative spend</h2>\n<figure id=\"chart\">")?;
        out.write_all(chart::svg(r, summary).as_bytes())?;
        writeln!(out, "</figure>")?;
    }

    let mut text = Vec::new();
    notes(r, &mut text)?;
    writeln!(out, "<h2>Notes</h2>")?;
    if text.is_empty() {
        writeln!(
            out,
            "<p id=\"notes\">None: every job run in the window was read and priced.</p>"
        )?;
    } else {
        writeln!(
            out,
            "<pre id=\"notes\">{}</pre>",
            escape(&String::from_utf8_lossy(&text))
        )?;
    }
    writeln!(out, "</body>\n</html>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::cost::filter::Filters;
    use crate::cost::period::Every;
    use crate::cost::{build, Dimension, Options};
    use crate::model::time;
    use crate::slurm::sacct;

    fn report(sacct_text: &str, every: Option<Every>) -> Report {
        let settings = Settings::parse(
            "project_source = \"comment\"\n[pricing]\nfleet_config = \"\"\ncache_file = \"\"\n\
             [pricing.instances.c]\non_demand = 3.6\ncpus = 2\n\
             [pricing.partitions.compute]\ninstance = \"c\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let t = |s: &str| time::parse(s).unwrap().0;
        let options = Options {
            since: t("2024-03-01"),
            until: t("2024-03-03"),
            now: t("2024-03-03"),
            by: vec![Dimension::Project, Dimension::User],
            every,
            top: None,
            chart: Some(Every::Day),
            clusters: None,
            users: sacct::Users::All,
            filters: Filters::default(),
            account_tree: None,
        };
        build(&settings, &options, sacct_text.as_bytes()).unwrap()
    }

    /// A user name and a comment (the project) that are markup: the page shows them as
    /// text, and no element, attribute or entity of theirs gets through.
    #[test]
    fn values_from_the_records_are_text() {
        let sacct = "\
1|COMPLETED|<script>alert(1)</script>|a|compute|2024-03-01T10:00:00|2024-03-01T11:00:00|1|2|cpu=2,node=1|n1|P\"><img src=x onerror=alert(2)>&amp;'
2|COMPLETED|bob|a|debug|2024-03-01T10:00:00|2024-03-01T11:00:00|1|2|cpu=2,node=1|n1|<b>Q</b>
";
        let r = report(sacct, Some(Every::Day));
        let mut out = Vec::new();
        html(&r, &mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        for raw in ["<script", "<img", "<b>", "&amp;'"] {
            assert!(!page.contains(raw), "{raw} in {page}");
        }
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
        assert!(
            page.contains("P&quot;&gt;&lt;img src=x onerror=alert(2)&gt;&amp;amp;&#39;"),
            "{page}"
        );
        assert!(!page.contains(" src=\"http") && !page.contains("href=\"http") && !page.contains("@import"));
        assert!(page.contains("<svg"), "the chart is inline");
        assert!(
            page.contains("<pre id=\"notes\">") && page.contains("could not be priced"),
            "{page}"
        );
        assert!(page.contains("id=\"periods\"") && page.contains("class=\"period-total\""));
        // 1 h, one full 2-CPU node at 3.6/h.
        assert!(
            page.contains("data-figure=\"cost\" data-value=\"3.6\">3.60</td>"),
            "{page}"
        );
    }

    #[test]
    fn escape_covers_text_and_both_quotes() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }
}
