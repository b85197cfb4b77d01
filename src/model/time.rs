//! Time, shared by every folder: an instant ([`Timestamp`], jiff's, to the second), parsed
//! from and printed as `YYYY-MM-DDTHH:MM:SS`, and the calendar periods (day, ISO week from
//! Monday, month, quarter, year) that spend and budgets are counted over. The calendar is
//! jiff's (civil dates), not ours. Everything is UTC: sacct runs with `TZ=UTC`, and AWS
//! Budgets' periods are UTC.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::{SystemTime, UNIX_EPOCH};

use jiff::civil::{Date, DateTime};
use jiff::tz::Offset;
use jiff::ToSpan;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, UTC, to the second: jiff's timestamp, held to whole seconds because Slurm,
/// AWS Budgets and every file cost-tags writes count seconds. Written to files (and read)
/// as seconds since 1970-01-01T00:00:00 UTC, as those files always held it. Arithmetic is
/// in seconds (`t + 3600`, `end - start`) and saturates at jiff's range (years -9999 to
/// 9999) rather than wrapping or panicking on a forged value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(jiff::Timestamp);

impl Timestamp {
    /// 1970-01-01T00:00:00 UTC.
    pub const UNIX_EPOCH: Timestamp = Timestamp(jiff::Timestamp::UNIX_EPOCH);

    /// The instant `seconds` after the epoch (before it when negative), held to jiff's
    /// range.
    pub fn from_second(seconds: i64) -> Timestamp {
        let (min, max) = (jiff::Timestamp::MIN.as_second(), jiff::Timestamp::MAX.as_second());
        // In range once clamped, so `from_second` cannot fail.
        Timestamp(jiff::Timestamp::from_second(seconds.clamp(min, max)).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
    }

    /// The instant `seconds` after the epoch, for constants (a test's fixed instant);
    /// fails to compile out of jiff's range.
    pub const fn constant(seconds: i64) -> Timestamp {
        Timestamp(jiff::Timestamp::constant(seconds, 0))
    }

    /// Seconds since the epoch.
    pub fn as_second(self) -> i64 {
        self.0.as_second()
    }

    /// A clock reading, to the second (the epoch for one before it, as the files hold no
    /// earlier instant).
    pub fn from_system(t: SystemTime) -> Timestamp {
        Timestamp::from_second(
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs().min(i64::MAX as u64) as i64),
        )
    }

    /// Now, to the second.
    pub fn now() -> Timestamp {
        Timestamp::from_system(SystemTime::now())
    }

    /// jiff's own timestamp, for what this type does not offer.
    pub fn jiff(self) -> jiff::Timestamp {
        self.0
    }

    /// The civil date and time of this instant in UTC.
    fn civil(self) -> DateTime {
        Offset::UTC.to_datetime(self.0)
    }

    /// The first instant of `date` (UTC).
    fn of_date(date: Date) -> Timestamp {
        Timestamp::of_datetime(date.to_datetime(jiff::civil::Time::midnight()))
    }

    /// The instant of a UTC date-time; jiff's civil range reaches a day past its timestamp
    /// range at both ends, and those days saturate.
    fn of_datetime(dt: DateTime) -> Timestamp {
        Offset::UTC.to_timestamp(dt).map_or_else(
            |_| Timestamp::from_second(if dt.year() > 0 { i64::MAX } else { i64::MIN }),
            Timestamp,
        )
    }
}

impl Add<i64> for Timestamp {
    type Output = Timestamp;
    fn add(self, seconds: i64) -> Timestamp {
        Timestamp::from_second(self.as_second().saturating_add(seconds))
    }
}

impl Sub<i64> for Timestamp {
    type Output = Timestamp;
    fn sub(self, seconds: i64) -> Timestamp {
        Timestamp::from_second(self.as_second().saturating_sub(seconds))
    }
}

/// The seconds from `earlier` to `self` (negative when `earlier` is later).
impl Sub for Timestamp {
    type Output = i64;
    fn sub(self, earlier: Timestamp) -> i64 {
        self.as_second() - earlier.as_second()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.as_second())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let seconds = i64::deserialize(d)?;
        jiff::Timestamp::from_second(seconds)
            .map(Timestamp)
            .map_err(|e| serde::de::Error::custom(format!("{seconds} seconds since the epoch: {e}")))
    }
}

/// A duration in whole seconds, for arithmetic on timestamps (saturating).
pub fn seconds(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u32, |n, &b| n * 10 + u32::from(b - b'0')))
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS` (a space may stand for
/// the `T`) as UTC. Returns the instant and whether a time of day was given. Only these
/// shapes: sacct prints them, and `--since`/`--until` take them (jiff's own parser would
/// take more, such as offsets, which sacct times never carry).
pub fn parse(text: &str) -> Option<(Timestamp, bool)> {
    let b = text.trim().as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    // jiff refuses a month or day that is not in the calendar (2023-02-29, 2024-13-01).
    let date = Date::new(i16::try_from(y).ok()?, i8::try_from(m).ok()?, i8::try_from(d).ok()?).ok()?;
    if b.len() == 10 {
        return Some((Timestamp::of_date(date), false));
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
    // In range: checked just above.
    let time = jiff::civil::Time::new(h as i8, min as i8, s as i8, 0).ok()?;
    Some((Timestamp::of_datetime(date.to_datetime(time)), true))
}

/// A timestamp printed as `YYYY-MM-DDTHH:MM:SS` (what sacct's `-S`/`-E` take).
pub struct Plain(pub Timestamp);
/// A timestamp printed as `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, for CSV and JSON).
pub struct Rfc3339(pub Timestamp);
/// A timestamp printed as `YYYY-MM-DD`, or `YYYY-MM-DD HH:MM` when not at midnight.
pub struct Short(pub Timestamp);

impl fmt::Display for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0.civil();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

impl Rfc3339 {
    /// Appends the timestamp to `out` as [`fmt::Display`] does, digit by digit: the
    /// per-job CSV writes two per row, and the formatting machinery was a visible part
    /// of its time.
    pub fn push_to(&self, out: &mut String) {
        let seconds = self.0.as_second();
        // 1970 to 9999 by integer arithmetic alone (Hinnant's civil_from_days): jiff's
        // civil conversion was the larger part of the row's two timestamps.
        if !(0..253_402_300_800).contains(&seconds) || self.0 .0.subsec_nanosecond() != 0 {
            return self.push_to_slow(out);
        }
        let (days, rest) = (seconds / 86_400, seconds % 86_400);
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let mut text = *b"0000-00-00T00:00:00Z";
        let mut two = |at: usize, v: i64| {
            text[at] = b'0' + (v / 10 % 10) as u8;
            text[at + 1] = b'0' + (v % 10) as u8;
        };
        two(0, year / 100);
        two(2, year % 100);
        two(5, month);
        two(8, day);
        two(11, rest / 3600);
        two(14, rest / 60 % 60);
        two(17, rest % 60);
        // ASCII digits and separators: always UTF-8.
        out.push_str(std::str::from_utf8(&text).unwrap_or_default());
    }

    /// [`Rfc3339::push_to`] for any instant, through jiff's civil time.
    fn push_to_slow(&self, out: &mut String) {
        let t = self.0.civil();
        let year = i64::from(t.year());
        if !(0..=9999).contains(&year) {
            use fmt::Write as _;
            let _ = write!(out, "{self}");
            return;
        }
        let two = |out: &mut String, v: i64| {
            out.push(char::from(b'0' + (v / 10) as u8));
            out.push(char::from(b'0' + (v % 10) as u8));
        };
        two(out, year / 100);
        two(out, year % 100);
        out.push('-');
        two(out, i64::from(t.month()));
        out.push('-');
        two(out, i64::from(t.day()));
        out.push('T');
        two(out, i64::from(t.hour()));
        out.push(':');
        two(out, i64::from(t.minute()));
        out.push(':');
        two(out, i64::from(t.second()));
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
        let t = self.0.civil();
        write!(f, "{:04}-{:02}-{:02}", t.year(), t.month(), t.day())?;
        match (t.hour(), t.minute(), t.second()) {
            (0, 0, 0) => Ok(()),
            (h, mi, 0) => write!(f, " {h:02}:{mi:02}"),
            (h, mi, s) => write!(f, " {h:02}:{mi:02}:{s:02}"),
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
    self::months(t, months).0
}

/// The calendar period of `months` months (1: month, 3: quarter, 12: year) holding `t`:
/// its first instant and the first instant of the next period.
pub fn months(t: Timestamp, months: u32) -> (Timestamp, Timestamp) {
    let date = t.civil().date();
    let months = i8::try_from(months.clamp(1, 12)).unwrap_or(1);
    let first_month = (date.month() - 1) / months * months + 1;
    let first = date
        .with()
        .month(first_month)
        .day(1)
        .build()
        .unwrap_or(date.first_of_month());
    (
        Timestamp::of_date(first),
        after(first.checked_add(i64::from(months).months())),
    )
}

/// The UTC day holding `t`: its first instant and the first instant of the next day.
pub fn day(t: Timestamp) -> (Timestamp, Timestamp) {
    let date = t.civil().date();
    (Timestamp::of_date(date), after(date.tomorrow()))
}

/// The ISO week (Monday to Sunday) holding `t`.
pub fn iso_week(t: Timestamp) -> (Timestamp, Timestamp) {
    let date = t.civil().date();
    let back = i64::from(date.weekday().to_monday_zero_offset());
    match date.checked_sub(back.days()) {
        Ok(monday) => (Timestamp::of_date(monday), after(monday.checked_add(7.days()))),
        Err(_) => (Timestamp::from_second(i64::MIN), Timestamp::of_date(date)),
    }
}

/// The calendar month holding `t`.
pub fn month(t: Timestamp) -> (Timestamp, Timestamp) {
    months(t, 1)
}

/// The first instant of a period's next date, or the end of time past jiff's last date.
fn after(next: Result<Date, jiff::Error>) -> Timestamp {
    next.map_or(Timestamp::from_second(i64::MAX), Timestamp::of_date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_pushed_is_rfc3339_displayed() {
        let mut rng = fastrand::Rng::with_seed(3);
        let leap_days = [951_782_400, 951_868_799, 4_107_456_000, 1_709_164_800, 1_709_251_199];
        let random = (0..100_000).map(|_| rng.i64(0..253_402_300_800));
        let fixed = [0, 1_709_287_200, 1_709_251_199, 253_402_300_799, -1, 253_402_300_800];
        for t in fixed.into_iter().chain(leap_days).chain(random) {
            let mut pushed = String::new();
            Rfc3339(Timestamp::from_second(t)).push_to(&mut pushed);
            assert_eq!(pushed, Rfc3339(Timestamp::from_second(t)).to_string(), "{t}");
        }
    }

    const DAY: i64 = 86_400;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds)
    }

    #[test]
    fn parses_and_prints_round_trip() {
        assert_eq!(parse("1970-01-01"), Some((at(0), false)));
        assert_eq!(parse("2024-02-29T23:59:59"), Some((at(1_709_251_199), true)));
        assert_eq!(parse("2024-03-01 10:30"), Some((at(1_709_289_000), true)));
        assert_eq!(parse(" 2024-03-01T10:30:05\n"), Some((at(1_709_289_005), true)));
        assert_eq!(Plain(at(1_709_251_199)).to_string(), "2024-02-29T23:59:59");
        assert_eq!(Rfc3339(at(0)).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Short(at(1_709_289_000)).to_string(), "2024-03-01 10:30");
        assert_eq!(Short(at(1_709_289_005)).to_string(), "2024-03-01 10:30:05");
        assert_eq!(Short(at(1_709_251_200)).to_string(), "2024-03-01");
        assert_eq!(Plain(at(-1)).to_string(), "1969-12-31T23:59:59");
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2024-1-01",
            "2024-01-01T25:00",
            "2024-01-01T12:60",
            "2024-01-01T12:00:60",
            "2024-01-01T12",
            "2024-01-01T12:00:00Z",
            "2024-01-01T12:00:00.5",
            "2024-01-01X12:00",
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
        let p = |(a, b): (Timestamp, Timestamp)| (Plain(a).to_string(), Plain(b).to_string());
        assert_eq!(p(day(t)), ("2024-03-06T00:00:00".into(), "2024-03-07T00:00:00".into()));
        assert_eq!(
            p(iso_week(t)),
            ("2024-03-04T00:00:00".into(), "2024-03-11T00:00:00".into())
        );
        // A Monday is its own week's start; a Sunday ends the week.
        assert_eq!(
            iso_week(parse("2024-03-04").unwrap().0),
            iso_week(parse("2024-03-10T23:59:59").unwrap().0)
        );
        assert_eq!(
            p(month(t)),
            ("2024-03-01T00:00:00".into(), "2024-04-01T00:00:00".into())
        );
        let (feb, _) = parse("2024-02-10").unwrap();
        assert_eq!(month(feb).1 - month(feb).0, 29 * DAY);
        assert_eq!(p(month(parse("2024-12-31T23:00").unwrap().0)).1, "2025-01-01T00:00:00");
        assert_eq!(month_start(t), parse("2024-03-01").unwrap().0);
        assert_eq!(months_start(t, 3), parse("2024-01-01").unwrap().0);
        assert_eq!(
            months_start(parse("2024-11-30").unwrap().0, 3),
            parse("2024-10-01").unwrap().0
        );
        assert_eq!(months_start(t, 12), parse("2024-01-01").unwrap().0);
    }

    #[test]
    fn seconds_on_disk_and_saturating_arithmetic() {
        let t = at(1_709_289_000);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1709289000");
        assert_eq!(serde_json::from_str::<Timestamp>("1709289000").unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("99999999999999").is_err());
        assert_eq!((t + 60) - t, 60);
        assert_eq!(t - 60, at(1_709_288_940));
        assert_eq!(at(i64::MAX) + 1, at(i64::MAX));
        assert_eq!(
            Timestamp::from_system(UNIX_EPOCH - std::time::Duration::from_secs(5)),
            Timestamp::UNIX_EPOCH
        );
        assert_eq!(day(at(i64::MAX)).1, at(i64::MAX));
    }
}
