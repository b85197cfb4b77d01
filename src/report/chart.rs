//! The `--chart` SVG: cumulative spend over the window, one line per group, each line
//! labelled at its end with the group and its total (no legend to hunt through). Labels
//! are ordered like the lines' ends and pushed apart so none overlap. Plain SVG 1.1, no
//! scripts or external fonts, so it opens in any browser and pastes into documents.

use std::collections::HashMap;
use std::fmt::Write;

use super::chart_axis::{spaced, text_width, Placed, Ticks};
use crate::cost::aggregate::{Summary, OTHER};
use crate::cost::period::Every;
use crate::cost::Report;
use crate::model::time::{Short, Timestamp};

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 560.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 300.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 60.0;
const LABEL_GAP: f64 = 15.0;
const FONT_SIZE: f64 = 12.0;
/// The least room between two dates on the time axis.
const DATE_GAP: f64 = 10.0;

/// Tableau 10: distinguishable, and still distinct for the common colour blindnesses.
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An amount for people: whole units with thousands separated above 100, else cents.
fn amount(x: f64) -> String {
    if x.abs() < 100.0 {
        return format!("{x:.2}");
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// The period ends of the window: where each line gets a point.
fn period_ends(every: Every, since: Timestamp, until: Timestamp) -> Vec<(Timestamp, Timestamp)> {
    let mut v = Vec::new();
    let mut t = since;
    while t < until {
        let (start, end) = every.period(t);
        v.push((start, end.min(until)));
        t = end;
    }
    v
}

/// The chart for `report`, drawn from `chart` (spend per group and period).
pub(crate) fn svg(report: &Report, chart: &Summary) -> String {
    let o = &report.options;
    let every = o.chart.unwrap_or(Every::Day);
    let (since, until) = (o.since, o.until);
    let periods = period_ends(every, since, until);

    // Cost per (calendar period start, group): rows carry periods clipped to the window,
    // so the start of the first one is `since` rather than the calendar start.
    let mut cost: HashMap<(Timestamp, usize), f64> = HashMap::new();
    for row in &chart.rows {
        let calendar_start = every.period(row.period.0).0;
        *cost.entry((calendar_start, row.group)).or_default() += row.sums.cost;
    }
    let series: Vec<Vec<(Timestamp, f64)>> = (0..chart.groups.len())
        .map(|g| {
            let mut total = 0.0;
            let mut points = vec![(since, 0.0)];
            for &(start, end) in &periods {
                total += cost.get(&(start, g)).copied().unwrap_or(0.0);
                points.push((end, total));
            }
            points
        })
        .collect();

    // (other) is not drawn: many small groups added up would dwarf the lines that matter.
    let is_other = |g: usize| chart.groups[g].0.iter().all(|v| v == OTHER);
    let drawn: Vec<usize> = (0..chart.groups.len()).filter(|&g| !is_other(g)).collect();
    let max = drawn
        .iter()
        .filter_map(|&g| series[g].last())
        .map(|p| p.1)
        .fold(0.0, f64::max);
    let ticks = Ticks::new(max, 5.0);
    let top_value = ticks.top();
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |t: Timestamp| LEFT + plot_w * (t - since) as f64 / (until - since) as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - v / top_value);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="{FONT_SIZE}">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let by: Vec<&str> = o.by.iter().map(|d| d.name()).collect();
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="28" font-size="16" font-weight="bold">{}</text>"#,
        escape(&format!(
            "Cumulative spend ({}) by {}, {} to {} UTC",
            report.currency,
            by.join(", "),
            Short(since),
            Short(until)
        ))
    );
    if let Some(other) = (0..chart.groups.len()).find(|&g| is_other(g)) {
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="46" fill="#555">{}</text>"##,
            escape(&format!(
                "Not drawn: {} smaller group{}, {} {} together",
                chart.other_groups,
                if chart.other_groups == 1 { "" } else { "s" },
                amount(chart.groups[other].1.cost),
                report.currency
            ))
        );
    }

    // Horizontal grid and amounts, all printed with the same decimals.
    for (v, label) in ticks.iter() {
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e0e0e0"/><text class="y-tick" x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{label}</text>"##,
            LEFT + plot_w,
            LEFT - 8.0,
            yy + 4.0,
        );
    }
    // Dates along the time axis: a tick at each period's start, a date under those that
    // leave room for it (the window's start first; see `spaced`).
    let dates: Vec<(f64, String)> = periods
        .iter()
        .map(|&(start, _)| (x(start.max(since)), Short(start.max(since)).to_string()))
        .collect();
    let wanted: Vec<Placed> = dates
        .iter()
        .map(|(at, text)| Placed {
            x: *at,
            width: text_width(text, FONT_SIZE),
        })
        .collect();
    // Not under the lines' end labels, which start 14 px right of the plot.
    let labelled = spaced(&wanted, DATE_GAP, 0.0, LEFT + plot_w + 12.0);
    // Unlabelled ticks only while they stay apart (not one per hour over a month).
    let minor_ticks = plot_w / dates.len().max(1) as f64 >= 4.0;
    for (i, ((at, text), placed)) in dates.iter().zip(&wanted).enumerate() {
        let labelled = labelled.contains(&i);
        if !labelled && !minor_ticks {
            continue;
        }
        let _ = write!(
            s,
            r##"<line x1="{at:.1}" y1="{:.1}" x2="{at:.1}" y2="{:.1}" stroke="#999"/>"##,
            TOP + plot_h,
            TOP + plot_h + if labelled { 5.0 } else { 3.0 },
        );
        if labelled {
            let _ = write!(
                s,
                r##"<text class="x-label" x="{at:.1}" y="{:.1}" text-anchor="middle" textLength="{:.1}" fill="#555">{text}</text>"##,
                TOP + plot_h + 20.0,
                placed.width,
            );
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#333"/>"##,
        TOP + plot_h,
        LEFT + plot_w
    );

    if drawn.is_empty() {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">no job ran in this window</text>"##,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }

    // Lines, then their labels: wanted at the line's end height, pushed apart downwards,
    // then back up if the last one fell off the chart.
    let mut labels: Vec<(f64, usize)> = Vec::new();
    for &g in &drawn {
        let points = &series[g];
        let colour = PALETTE[g % PALETTE.len()];
        let path: Vec<String> = points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        labels.push((y(points.last().map_or(0.0, |p| p.1)), g));
    }
    labels.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let wanted: Vec<f64> = labels.iter().map(|l| l.0).collect();
    for i in 1..labels.len() {
        if labels[i].0 < labels[i - 1].0 + LABEL_GAP {
            labels[i].0 = labels[i - 1].0 + LABEL_GAP;
        }
    }
    let floor = HEIGHT - 10.0;
    if let Some(last) = labels.last().map(|l| l.0) {
        if last > floor {
            let shift = last - floor;
            for l in labels.iter_mut() {
                l.0 = (l.0 - shift).max(TOP);
            }
        }
    }
    for ((label_y, g), line_y) in labels.iter().zip(wanted) {
        let (group, sums) = &chart.groups[*g];
        let colour = PALETTE[*g % PALETTE.len()];
        let mut name: String = group.join(" / ");
        if name.chars().count() > 32 {
            name = name.chars().take(31).collect::<String>() + "…";
        }
        let end_x = LEFT + plot_w;
        let _ = writeln!(
            s,
            r#"<line x1="{end_x:.1}" y1="{line_y:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="1"/><text x="{:.1}" y="{:.1}" fill="{colour}">{} {} {}</text>"#,
            end_x + 10.0,
            label_y - 4.0,
            end_x + 14.0,
            label_y,
            escape(&name),
            amount(sums.cost),
            escape(&report.currency)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_amounts_readable() {
        assert_eq!(escape("a<b&\"c\""), "a&lt;b&amp;&quot;c&quot;");
        assert_eq!(amount(0.0), "0.00");
        assert_eq!(amount(99.5), "99.50");
        assert_eq!(amount(2_739_481.4), "2,739,481");
        assert_eq!(amount(100.0), "100");
    }
}
