//! How a report splits spend over time: by UTC day, ISO week or month (`--every`). The
//! calendar itself is [`crate::model::time`]'s.

use crate::model::time::{self, Timestamp};

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
        match self {
            Every::Day => time::day(t),
            Every::Week => time::iso_week(t),
            Every::Month => time::month(t),
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
    use crate::model::time::{parse, Plain};

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
    }
}
