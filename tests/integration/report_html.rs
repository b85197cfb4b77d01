//! `cost-tags report --format html` in a real browser (issue 24, item 5): the golden sacct
//! sample (tests/data/sacct/month.txt, figures worked out in report_golden.rs) plus one
//! record whose user name and comment are markup is reported as HTML and as JSON; headless
//! Chromium loads the page from a file and dumps the DOM it built, and every figure the
//! page shows (each cell's `data-value`, and its printed text) must be the JSON's. The
//! markup must arrive as text: no element of its own in the browser's DOM.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A record whose user and comment are markup: a script, an image with a handler, a
/// quote to leave an attribute. 1 h on a c5.xlarge's 4 CPUs: 0.36.
const HOSTILE: &str = "900|COMPLETED|<img src=x onerror=alert(1)>|physics|compute|2024-03-01T13:00:00|\
                       2024-03-01T14:00:00|1|4|billing=4,cpu=4,node=1|q-dy-c5-2|\"'><script>alert(2)</script>&amp;\n";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sacct")
        .join(name)
}

fn report(sacct: &Path, format: &str) -> Vec<u8> {
    report_by(sacct, &["--by", "project,user", "--every", "day", "--format", format])
}

fn report_by(sacct: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(crate::bin("cost-tags"))
        .arg("--config")
        .arg(data("pricing.toml"))
        .args(["report", "--sacct-file"])
        .arg(sacct)
        .args([
            "--since",
            "2024-03-01",
            "--until",
            "2024-03-02",
            "--now",
            "2024-03-02T12:00:00",
        ])
        .args(args)
        .env_remove("COST_TAGS_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run cost-tags");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Chromium's DOM of `page`, as the browser built it. Run with a fresh profile and every
/// background connection off: the test machine's network refuses them, and a page that
/// needed one would not be self-contained anyway.
fn dump_dom(page: &Path, profile: &Path) -> String {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chromium");
    // Read on threads, so a chatty browser never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 90 s: {}", err.join().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let dom = out.join().unwrap_or_default();
    assert!(
        status.success() && dom.contains("</html>"),
        "chromium {status}: {}",
        err.join().unwrap_or_default()
    );
    dom
}

/// Text as the DOM serializer writes it, back to the value.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// One `<tr>` of the page: its attributes' values by name, its group cells (by
/// dimension) and its figures (JSON key, `data-value`, printed text).
#[derive(Debug, Default)]
struct Row {
    period_start: Option<String>,
    group: Vec<(String, String)>,
    figures: Vec<(String, f64, String)>,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let from = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[from..].find('"')?;
    Some(unescape(&tag[from..from + len]))
}

/// The rows of class `class` in the DOM, in order.
fn rows(dom: &str, class: &str) -> Vec<Row> {
    let opening = format!("<tr class=\"{class}\"");
    dom.match_indices(&opening)
        .map(|(at, _)| {
            let tr = &dom[at..at + dom[at..].find("</tr>").expect("</tr>")];
            let tag = &tr[..tr.find('>').expect(">")];
            let mut row = Row {
                period_start: attribute(tag, "data-period-start"),
                ..Row::default()
            };
            for cell in tr.split("<td").skip(1) {
                let (tag, rest) = cell.split_once('>').expect("cell");
                let text = unescape(rest.split("</td>").next().unwrap_or(""));
                if let Some(d) = attribute(tag, "data-dim") {
                    row.group.push((d, text));
                } else if let Some(key) = attribute(tag, "data-figure") {
                    let value = attribute(tag, "data-value")
                        .expect("data-value")
                        .parse()
                        .expect("a number");
                    row.figures.push((key, value, text));
                }
            }
            row
        })
        .collect()
}

/// Each figure of `row` is `json`'s, and so is its printed text (cost to the cent, hours
/// to the hundredth).
fn same_figures(row: &Row, json: &Value, what: &str) {
    assert_eq!(row.figures.len(), 6, "{what}: {row:?}");
    for (key, value, text) in &row.figures {
        let expected = json[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: no {key} in {json}"));
        assert!(
            (value - expected).abs() < 1e-9,
            "{what} {key}: page {value}, JSON {expected}"
        );
        let printed = match key.as_str() {
            "cost" => format!("{expected:.2}"),
            "jobs" => format!("{expected}"),
            "unpriced_jobs" if expected == 0.0 => String::new(),
            "unpriced_jobs" => format!("{expected}"),
            _ => format!("{:.2}", expected / 3600.0),
        };
        assert_eq!(text, &printed, "{what} {key}");
    }
}

fn group_of(json: &Value) -> Vec<(String, String)> {
    json["group"]
        .as_object()
        .expect("group")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect()
}

#[test]
fn the_statement_in_chromium_shows_the_json_figures() {
    if !support::require("chromium (Debian package chromium)", support::on_path("chromium")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sacct = dir.path().join("sacct.txt");
    let sample = std::fs::read_to_string(data("month.txt")).unwrap();
    std::fs::write(&sacct, sample + HOSTILE).unwrap();
    let json: Value = serde_json::from_slice(&report(&sacct, "json")).unwrap();
    let page = dir.path().join("statement.html");
    std::fs::write(&page, report(&sacct, "html")).unwrap();
    let dom = dump_dom(&page, &dir.path().join("profile"));

    // Per group over the window, in the JSON's order.
    let groups = rows(&dom, "group");
    let expected = json["groups"].as_array().unwrap();
    assert_eq!(groups.len(), expected.len(), "{dom}");
    for (row, g) in groups.iter().zip(expected) {
        assert_eq!(row.group, group_of(g), "{dom}");
        same_figures(row, g, &format!("group {:?}", row.group));
    }
    // The markup of the hostile record is text in its cells, not elements.
    let hostile = groups
        .iter()
        .find(|r| r.group[1].1.starts_with("<img"))
        .unwrap_or_else(|| panic!("the hostile user's row: {groups:?}"));
    assert_eq!(hostile.group[0].1, "\"'><script>alert(2)</script>&amp;");
    assert_eq!(hostile.figures[4].1, 0.36);
    for element in ["<img", "<script"] {
        assert!(!dom.contains(element), "{element} became an element: {dom}");
    }

    // Per day and group, then each day's total, as the JSON's rows and periods.
    let by_period = rows(&dom, "period-group");
    let expected = json["rows"].as_array().unwrap();
    assert_eq!(by_period.len(), expected.len(), "{dom}");
    for (row, r) in by_period.iter().zip(expected) {
        assert_eq!(row.period_start.as_deref(), r["period_start"].as_str());
        assert_eq!(row.group, group_of(r));
        same_figures(row, r, &format!("row {:?} {:?}", row.period_start, row.group));
    }
    let periods = rows(&dom, "period-total");
    let expected = json["periods"].as_array().unwrap();
    assert_eq!(periods.len(), expected.len(), "{dom}");
    for (row, p) in periods.iter().zip(expected) {
        assert_eq!(row.period_start.as_deref(), p["period_start"].as_str());
        same_figures(row, p, "period total");
    }
    let total = rows(&dom, "total");
    assert_eq!(total.len(), 1, "{dom}");
    same_figures(&total[0], &json["total"], "total");
    assert_eq!(json["total"]["cost"].as_f64(), Some(3.78 + 0.36));

    // The chart is drawn in the page, and the notes say what the sums leave out.
    assert!(dom.contains("<svg") && dom.contains("<polyline"), "{dom}");
    assert!(dom.contains("2 job runs could not be priced"), "{dom}");
    assert!(dom.contains("4 lines could not be used"), "{dom}");
    // Self-contained: nothing to fetch (the one URL is the SVG namespace's name).
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(
        html.matches("http").count(),
        html.matches("http://www.w3.org/2000/svg").count(),
        "{html}"
    );
    for fetch in [" src=\"", " href=\"", "@import", "url("] {
        assert!(!html.contains(fetch), "{fetch} in {html}");
    }
}

/// A job run of tests/data/sacct/jobs-memory.txt's fields whose user, group and comment
/// are markup. 1 h on a c5.xlarge's 4 CPUs: 0.36.
const HOSTILE_JOB: &str = "900|COMPLETED|<img src=x onerror=alert(1)>|<b>g</b>|physics|compute|2024-03-01T13:00:00|\
                           2024-03-01T14:00:00|1|4|billing=4,cpu=4,node=1|q-dy-c5-2|120|01:00:00|3600||4G|\
                           \"'><script>alert(2)</script>&amp;\n";

/// `--by job --format html` (the per-job statement a PI is sent): each row of the page
/// is the JSON's `jobs` entry at the same place, key by key (text as text, figures by
/// their `data-value`), the totals are the JSON's, the notes are there, and the markup of
/// a hostile record stays text.
#[test]
fn the_per_job_statement_in_chromium_shows_the_json_rows() {
    if !support::require("chromium (Debian package chromium)", support::on_path("chromium")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sacct = dir.path().join("sacct.txt");
    let sample = std::fs::read_to_string(data("jobs-memory.txt")).unwrap();
    std::fs::write(&sacct, sample + HOSTILE_JOB).unwrap();
    let json: Value = serde_json::from_slice(&report_by(&sacct, &["--by", "job", "--format", "json"])).unwrap();
    let page = dir.path().join("jobs.html");
    std::fs::write(&page, report_by(&sacct, &["--by", "job", "--format", "html"])).unwrap();
    let dom = dump_dom(&page, &dir.path().join("profile"));

    let jobs = json["jobs"].as_array().unwrap();
    let opening = "<tr class=\"job\">";
    let rows: Vec<&str> = dom
        .match_indices(opening)
        .map(|(at, _)| &dom[at..at + dom[at..].find("</tr>").expect("</tr>")])
        .collect();
    assert_eq!(rows.len(), jobs.len(), "{dom}");
    assert!(jobs.len() >= 3, "{json}");
    for (tr, job) in rows.iter().zip(jobs) {
        let object = job.as_object().unwrap();
        let mut keys = Vec::new();
        for cell in tr.split("<td").skip(1) {
            let (tag, rest) = cell.split_once('>').expect("cell");
            let text = unescape(rest.split("</td>").next().unwrap_or(""));
            let key = attribute(tag, "data-key").expect("data-key");
            let expected = &object[&key];
            match attribute(tag, "data-value") {
                Some(value) if expected.is_string() => assert_eq!(Some(value.as_str()), expected.as_str(), "{key}"),
                Some(value) => {
                    let value: Value = serde_json::from_str(&value).expect("a JSON value");
                    match (value.as_f64(), expected.as_f64()) {
                        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{key}: page {a}, JSON {b}"),
                        _ => assert_eq!(&value, expected, "{key}"),
                    }
                }
                None => assert_eq!(Some(text.as_str()), expected.as_str(), "{key}"),
            }
            keys.push(key);
        }
        keys.sort();
        let json_keys: Vec<&String> = object.keys().collect();
        assert_eq!(
            keys.iter().collect::<Vec<_>>(),
            json_keys,
            "every key of the JSON's, once"
        );
    }
    // The hostile run: its markup is its cells' text.
    let hostile = jobs.iter().position(|j| j["job_id"] == "900").expect("job 900");
    assert!(
        rows[hostile].contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        rows[hostile]
    );
    assert_eq!(jobs[hostile]["user"], "<img src=x onerror=alert(1)>");
    assert_eq!(jobs[hostile]["cost"].as_f64(), Some(0.36));
    for element in ["<img", "<script", "<b>"] {
        assert!(!dom.contains(element), "{element} became an element: {dom}");
    }

    // The totals are the JSON's, and the notes are in the page.
    let total = &dom[dom.find("<table id=\"total\">").expect("totals")..];
    let mut figures = 0;
    for cell in total.split("<td").skip(1).take(6) {
        let (tag, _) = cell.split_once('>').expect("cell");
        let key = attribute(tag, "data-figure").expect("data-figure");
        let value: f64 = attribute(tag, "data-value")
            .expect("data-value")
            .parse()
            .expect("a number");
        let expected = json["total"][&key].as_f64().unwrap_or_else(|| panic!("total {key}"));
        assert!(
            (value - expected).abs() < 1e-9,
            "total {key}: page {value}, JSON {expected}"
        );
        figures += 1;
    }
    assert_eq!(figures, 6, "{total}");
    assert!(dom.contains("id=\"notes\""), "{dom}");
    // Self-contained: no chart, nothing to fetch.
    let html = std::fs::read_to_string(&page).unwrap();
    for fetch in ["http", " src=\"", " href=\"", "@import", "url("] {
        assert!(!html.contains(fetch), "{fetch} in {html}");
    }
}
