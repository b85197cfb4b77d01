//! `cost-tags report --chart` read as a person reads it (issue 23, item 11): no two dates
//! on the time axis overlap, and the amounts up the side are all printed alike. Before,
//! a month by week from a Friday put "2024-03-04" on top of "2024-03-01", and a chart
//! reaching 100 printed "0.00" under "100". The geometry is the SVG's own: each date
//! says where it is centred (`x`) and how wide it is drawn (`textLength`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sacct")
        .join(name)
}

/// A month of sacct records: the golden sample's first two days, and one job of 10
/// exclusive c5.xlarge nodes for 26 h from Tuesday 03-05 (10 x 26 x 0.36 = 93.60), so the
/// amounts axis runs from 0 to 100.
fn month(dir: &Path) -> PathBuf {
    let mut text = std::fs::read_to_string(data("month.txt")).expect("golden sample");
    text.push_str(
        "201|COMPLETED|ctalice|physics|compute|2024-03-05T00:00:00|2024-03-06T02:00:00|10|40|\
         billing=40,cpu=40,node=10|q-dy-c5-[1-10]|ProjectA\n",
    );
    let path = dir.join("month.txt");
    std::fs::write(&path, text).unwrap();
    path
}

/// The chart of `sacct` from `since` to `until` (inclusive days), one point per `every`.
fn chart(dir: &Path, sacct: &Path, since: &str, until: &str, every: &str) -> String {
    let svg = dir.join(format!("{since}-{until}-{every}.svg"));
    let out = Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(data("pricing.toml"))
        .args(["report", "--sacct-file"])
        .arg(sacct)
        .args(["--since", since, "--until", until, "--now", "2024-04-01T00:00:00"])
        .args(["--by", "project", "--every", every, "--chart"])
        .arg(&svg)
        .env_remove("COST_TAGS_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run cost-tags");
    assert!(
        out.status.success(),
        "--every {every}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&svg).expect("the chart is written")
}

/// One `<text>` of the SVG: its attributes and its text.
struct Text {
    attributes: String,
    text: String,
}

impl Text {
    fn number(&self, name: &str) -> f64 {
        let from = self
            .attributes
            .find(&format!(" {name}=\""))
            .unwrap_or_else(|| panic!("no {name} in <text{}>", self.attributes))
            + name.len()
            + 3;
        let len = self.attributes[from..].find('"').expect("a closing quote");
        self.attributes[from..from + len]
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not a number in <text{}>", self.attributes))
    }
}

/// The `<text class="{class}" ...>` elements of `svg`, in order.
fn texts(svg: &str, class: &str) -> Vec<Text> {
    let opening = format!("<text class=\"{class}\"");
    svg.match_indices(&opening)
        .map(|(at, _)| {
            let rest = &svg[at + "<text".len()..];
            let close = rest.find('>').expect("a complete tag");
            let end = rest.find("</text>").expect("a closed text");
            Text {
                attributes: rest[..close].to_string(),
                text: rest[close + 1..end].to_string(),
            }
        })
        .collect()
}

/// Dates on the time axis: centred (`text-anchor="middle"`), `textLength` wide, each
/// ending before the next begins.
#[track_caller]
fn assert_dates_apart(svg: &str, every: &str) -> Vec<String> {
    let dates = texts(svg, "x-label");
    assert!(dates.len() >= 2, "--every {every}: fewer than two dates\n{svg}");
    let mut spans = Vec::new();
    for d in &dates {
        assert!(
            d.attributes.contains(r#"text-anchor="middle""#),
            "<text{}>",
            d.attributes
        );
        let (x, width) = (d.number("x"), d.number("textLength"));
        // The width covers the text in any common sans-serif (about 7 px a digit at 12 px).
        assert!(
            width >= 6.0 * d.text.chars().count() as f64,
            "{} drawn {width} px wide",
            d.text
        );
        spans.push((x - width / 2.0, x + width / 2.0, d.text.clone()));
    }
    for pair in spans.windows(2) {
        let ((_, end, a), (start, _, b)) = (&pair[0], &pair[1]);
        assert!(
            end < start,
            "--every {every}: \"{a}\" ends at {end:.1}, \"{b}\" starts at {start:.1}"
        );
    }
    spans.into_iter().map(|s| s.2).collect()
}

/// Amounts up the side: numbers from 0 in equal steps, all with the same decimals.
#[track_caller]
fn assert_amounts_alike(svg: &str) -> Vec<String> {
    let labels: Vec<String> = texts(svg, "y-tick").into_iter().map(|t| t.text).collect();
    assert!(labels.len() >= 2, "fewer than two amounts\n{svg}");
    let decimals = |l: &str| l.find('.').map_or(0, |dot| l.len() - dot - 1);
    assert!(
        labels.iter().all(|l| decimals(l) == decimals(&labels[0])),
        "amounts in more than one format: {labels:?}"
    );
    let values: Vec<f64> = labels
        .iter()
        .map(|l| {
            l.replace(',', "")
                .parse()
                .unwrap_or_else(|_| panic!("{l:?} is not an amount"))
        })
        .collect();
    assert_eq!(values[0], 0.0, "{labels:?}");
    let step = values[1] - values[0];
    for pair in values.windows(2) {
        assert!((pair[1] - pair[0] - step).abs() < 1e-9, "uneven steps: {labels:?}");
    }
    labels
}

#[test]
fn no_two_dates_overlap_and_amounts_share_one_format() {
    let dir = tempfile::tempdir().unwrap();
    let sacct = month(dir.path());

    // The issue's chart: a month by week from Friday 03-01; the first week is 3 days.
    let weekly = chart(dir.path(), &sacct, "2024-03-01", "2024-03-31", "week");
    let dates = assert_dates_apart(&weekly, "week");
    assert_eq!(dates[0], "2024-03-01", "the window's start is labelled");
    assert!(!dates.contains(&"2024-03-04".to_string()), "{dates:?}");
    assert_eq!(dates[1], "2024-03-11", "{dates:?}");
    assert_eq!(
        assert_amounts_alike(&weekly),
        ["0", "20", "40", "60", "80", "100"],
        "93.60 at most: round steps of 20, no decimals"
    );

    // Days over the month, and months over a year: only as many dates as fit, evenly.
    let daily = chart(dir.path(), &sacct, "2024-03-01", "2024-03-31", "day");
    let days = assert_dates_apart(&daily, "day");
    assert!(days.len() >= 5, "{days:?}");
    // (The window ends at --now, 2024-04-01.)
    let monthly = chart(dir.path(), &sacct, "2024-01-01", "2024-12-31", "month");
    assert_eq!(
        assert_dates_apart(&monthly, "month"),
        ["2024-01-01", "2024-02-01", "2024-03-01"]
    );
    // Under 100 at most (the golden sample's two days: 2.16 at most): tenths alike.
    let two_days = chart(dir.path(), &sacct, "2024-03-01", "2024-03-02", "day");
    assert_eq!(
        assert_amounts_alike(&two_days),
        ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5"]
    );
}
