//! UTC calendar arithmetic for the report: timestamps as seconds since the Unix epoch,
//! parsed from and printed as `YYYY-MM-DDTHH:MM:SS`, and the day, ISO week (Monday) and
//! month periods that spend is summed over. Everything is UTC: sacct runs with `TZ=UTC`.

use std::fmt;

/// Seconds since 1970-01-01T00:00:00 UTC.
pub type Timestamp = i64;

const DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number: (year, month 1-12, day 1-31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u32, |n, &b| n * 10 + u32::from(b - b'0')))
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS` (a space may stand for
/// the `T`) as UTC. Returns the instant and whether a time of day was given.
pub fn parse(text: &str) -> Option<(Timestamp, bool)> {
    let b = text.trim().as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y as i64, m) {
        return None;
    }
    let day = days_from_civil(y as i64, m, d) * DAY;
    if b.len() == 10 {
        return Some((day, false));
    }
    if !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let rest = &b[11..];
    let (h, min, s) = match rest.len() {
        5 if rest[2] == b':' => (digits(&rest[0..2])?, digits(&rest[3..5])?, 0),
        8 if rest[2] == b':' && rest[5] == b':' => (digits(&rest[0..2])?, digits(&rest[3..5])?, digits(&rest[6..8])?),
        _ => return None,
    };
    if h > 23 || min > 59 || s > 59 {
        return None;
    }
    Some((day + i64::from(h * 3600 + min * 60 + s), true))
}

/// A timestamp printed as `YYYY-MM-DDTHH:MM:SS` (what sacct's `-S`/`-E` take).
pub struct Plain(pub Timestamp);
/// A timestamp printed as `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, for CSV and JSON).
pub struct Rfc3339(pub Timestamp);
/// A timestamp printed as `YYYY-MM-DD`, or `YYYY-MM-DD HH:MM` when not at midnight.
pub struct Short(pub Timestamp);

fn split(t: Timestamp) -> ((i64, u32, u32), (i64, i64, i64)) {
    let secs = t.rem_euclid(DAY);
    (
        civil_from_days(t.div_euclid(DAY)),
        (secs / 3600, secs / 60 % 60, secs % 60),
    )
}

impl fmt::Display for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ((y, m, d), (h, mi, s)) = split(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
    }
}

impl Rfc3339 {
    /// Appends the timestamp to `out` as [`fmt::Display`] does, digit by digit: the
    /// per-job CSV writes two per row, and the formatting machinery was a visible part
    /// of its time.
    pub fn push_to(&self, out: &mut String) {
        let ((y, m, d), (h, mi, s)) = split(self.0);
        if !(0..=9999).contains(&y) {
            use fmt::Write as _;
            let _ = write!(out, "{self}");
            return;
        }
        let two = |out: &mut String, v: i64| {
            out.push(char::from(b'0' + (v / 10) as u8));
            out.push(char::from(b'0' + (v % 10) as u8));
        };
        two(out, y / 100);
        two(out, y % 100);
        out.push('-');
        two(out, i64::from(m));
        out.push('-');
        two(out, i64::from(d));
        out.push('T');
        two(out, h);
        out.push(':');
        two(out, mi);
        out.push(':');
        two(out, s);
        out.push('Z');
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}Z", Plain(self.0))
    }
}

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ((y, m, d), (h, mi, s)) = split(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")?;
        match (h, mi, s) {
            (0, 0, 0) => Ok(()),
            (_, _, 0) => write!(f, " {h:02}:{mi:02}"),
            _ => write!(f, " {h:02}:{mi:02}:{s:02}"),
        }
    }
}

/// The first instant of the month holding `t`.
pub fn month_start(t: Timestamp) -> Timestamp {
    months_start(t, 1)
}

/// The first instant of the calendar period of `months` months (1: month, 3: quarter,
/// 12: year) holding `t`.
pub fn months_start(t: Timestamp, months: u32) -> Timestamp {
    let (y, m, _) = civil_from_days(t.div_euclid(DAY));
    let first = (m - 1) / months.max(1) * months.max(1) + 1;
    days_from_civil(y, first, 1) * DAY
}

/// How spend is split over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Every {
    Day,
    /// ISO weeks, Monday to Sunday.
    Week,
    Month,
}

impl Every {
    /// The calendar period holding `t`: its first instant and the first instant after it.
    pub fn period(self, t: Timestamp) -> (Timestamp, Timestamp) {
        let day = t.div_euclid(DAY);
        match self {
            Every::Day => (day * DAY, (day + 1) * DAY),
            Every::Week => {
                // 1970-01-01 was a Thursday: Monday is 3 days before it.
                let monday = day - (day + 3).rem_euclid(7);
                (monday * DAY, (monday + 7) * DAY)
            }
            Every::Month => {
                let (y, m, _) = civil_from_days(day);
                let start = days_from_civil(y, m, 1) * DAY;
                (start, start + i64::from(days_in_month(y, m)) * DAY)
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Every::Day => "day",
            Every::Week => "week",
            Every::Month => "month",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_pushed_is_rfc3339_displayed() {
        for t in [0, 1_709_287_200, 1_709_251_199, 253_402_300_799, -1, 253_402_300_800] {
            let mut pushed = String::new();
            Rfc3339(t).push_to(&mut pushed);
            assert_eq!(pushed, Rfc3339(t).to_string(), "{t}");
        }
    }

    #[test]
    fn parses_and_prints_round_trip() {
        assert_eq!(parse("1970-01-01"), Some((0, false)));
        assert_eq!(parse("2024-02-29T23:59:59"), Some((1_709_251_199, true)));
        assert_eq!(parse("2024-03-01 10:30"), Some((1_709_289_000, true)));
        assert_eq!(Plain(1_709_251_199).to_string(), "2024-02-29T23:59:59");
        assert_eq!(Rfc3339(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Short(1_709_289_000).to_string(), "2024-03-01 10:30");
        assert_eq!(Short(1_709_251_200).to_string(), "2024-03-01");
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "2024-01-01T25:00",
            "Unknown",
            "None",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn periods() {
        let (t, _) = parse("2024-03-06T12:00:00").unwrap(); // a Wednesday
        let p = |e: Every| {
            let (a, b) = e.period(t);
            (Plain(a).to_string(), Plain(b).to_string())
        };
        assert_eq!(
            p(Every::Day),
            ("2024-03-06T00:00:00".into(), "2024-03-07T00:00:00".into())
        );
        assert_eq!(
            p(Every::Week),
            ("2024-03-04T00:00:00".into(), "2024-03-11T00:00:00".into())
        );
        assert_eq!(
            p(Every::Month),
            ("2024-03-01T00:00:00".into(), "2024-04-01T00:00:00".into())
        );
        let (feb, _) = parse("2024-02-10").unwrap();
        assert_eq!(Every::Month.period(feb).1 - Every::Month.period(feb).0, 29 * DAY);
        assert_eq!(month_start(t), parse("2024-03-01").unwrap().0);
        assert_eq!(months_start(t, 3), parse("2024-01-01").unwrap().0);
        assert_eq!(
            months_start(parse("2024-11-30").unwrap().0, 3),
            parse("2024-10-01").unwrap().0
        );
        assert_eq!(months_start(t, 12), parse("2024-01-01").unwrap().0);
    }
}
