//! The chart's axes: round amount ticks printed all in one format, and date labels kept
//! only where they fit. An SVG has no layout engine, so text widths are estimated here
//! from font metrics (DejaVu Sans, the widest common sans-serif: an estimate that fits
//! it fits Arial, Helvetica and Liberation Sans too) and the labels say their width in
//! `textLength`, so every renderer draws them exactly as wide as they were placed.

/// The width of `text` at `font_size`, from the advance widths of DejaVu Sans Book (in
/// its 2048 units to the em) of the characters axis labels are made of; any other
/// character counts as wide as a capital M would be in most faces.
pub(crate) fn text_width(text: &str, font_size: f64) -> f64 {
    let units: u32 = text
        .chars()
        .map(|c| match c {
            '0'..='9' => 1303,
            '-' => 739,
            ':' => 690,
            ' ' | '.' | ',' => 651,
            _ => 1741,
        })
        .sum();
    f64::from(units) / 2048.0 * font_size
}

/// Round ticks from 0 to at least `max`, about `wanted` of them, and the one number of
/// decimals they are all printed with (a step of 20 prints "0" to "100", a step of 0.2
/// "0.0" to "1.0": never "0.00" beside "100").
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ticks {
    pub(crate) step: f64,
    /// Ticks above 0: the axis runs from 0 to `step * intervals`.
    pub(crate) intervals: u32,
    decimals: usize,
}

impl Ticks {
    pub(crate) fn new(max: f64, wanted: f64) -> Ticks {
        let step = nice_step(max, wanted);
        // Less a hair, so that 0.6 / 0.2 = 3.0000000000000004 does not add a fourth.
        let intervals = if max > 0.0 {
            (max / step - 1e-9).ceil().max(1.0) as u32
        } else {
            1
        };
        // The fewest decimals that print the step exactly; every multiple of it then
        // prints exactly with as many.
        let decimals = (0..=9)
            .find(|&d| {
                let scaled = step * 10f64.powi(d as i32);
                (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
            })
            .unwrap_or(9);
        Ticks {
            step,
            intervals,
            decimals,
        }
    }

    /// The top of the axis.
    pub(crate) fn top(&self) -> f64 {
        self.step * f64::from(self.intervals)
    }

    /// Each tick's value and label, from 0 up. Values are `i * step`, not a running sum,
    /// so no rounding error creeps into the last one.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (f64, String)> + '_ {
        (0..=self.intervals).map(|i| {
            let v = self.step * f64::from(i);
            (v, grouped(v, self.decimals))
        })
    }
}

/// A round step (1, 2 or 5 times a power of ten) giving about `n` ticks up to `max`.
fn nice_step(max: f64, n: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / n;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// `x` with `decimals` decimals and its thousands separated by commas.
fn grouped(x: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, x.abs());
    let (whole, fraction) = text.split_at(text.find('.').unwrap_or(text.len()));
    let mut out = String::new();
    if x < 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        out.push('-');
    }
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out.push_str(fraction);
    out
}

/// A label wanted centred at `x`, `width` wide.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Placed {
    pub(crate) x: f64,
    pub(crate) width: f64,
}

/// Of labels wanted left to right, the indices of those to draw: each one kept leaves at
/// least `gap` to the last one kept, and stays within `left..right`. The first label is
/// the window's start, kept when it fits: a period cut short by the window can start
/// only days before the next, and then the next one gives way.
pub(crate) fn spaced(labels: &[Placed], gap: f64, left: f64, right: f64) -> Vec<usize> {
    let mut kept = Vec::new();
    let mut free_from = left;
    for (i, l) in labels.iter().enumerate() {
        let (start, end) = (l.x - l.width / 2.0, l.x + l.width / 2.0);
        if start >= free_from && end <= right {
            kept.push(i);
            free_from = end + gap;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_and_ticks_share_one_format() {
        assert_eq!(nice_step(97.0, 5.0), 20.0);
        assert_eq!(nice_step(0.9, 5.0), 0.2);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
        let labels = |t: Ticks| t.iter().map(|(_, l)| l).collect::<Vec<_>>();
        assert_eq!(labels(Ticks::new(97.0, 5.0)), ["0", "20", "40", "60", "80", "100"]);
        assert_eq!(labels(Ticks::new(0.9, 5.0)), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(
            labels(Ticks::new(2.16, 5.0)),
            ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5"]
        );
        assert_eq!(labels(Ticks::new(0.12, 5.0)), ["0.00", "0.05", "0.10", "0.15"]);
        assert_eq!(labels(Ticks::new(0.6, 3.0)), ["0.0", "0.2", "0.4", "0.6"]);
        assert_eq!(labels(Ticks::new(0.0, 5.0)), ["0", "1"]);
        assert_eq!(
            labels(Ticks::new(2_739_481.4, 5.0)),
            ["0", "1,000,000", "2,000,000", "3,000,000"]
        );
        // 0.1 + 0.2 is not 0.3: ticks are multiples, not a running sum.
        assert_eq!(Ticks::new(0.3, 3.0).iter().last().map(|t| t.1), Some("0.3".into()));
        assert_eq!(grouped(-1234.5, 1), "-1,234.5");
        assert_eq!(grouped(-0.001, 2), "0.00");
    }

    #[test]
    fn a_label_that_would_touch_the_last_kept_one_is_skipped() {
        let w = text_width("2024-03-01", 12.0);
        assert!((69.0..71.0).contains(&w), "{w}");
        // A month by week from a Friday: the 1st, then the 4th only 60 px on.
        let at = |x: f64| Placed { x, width: w };
        let wanted = [at(80.0), at(140.0), at(280.0), at(420.0), at(560.0), at(690.0)];
        assert_eq!(spaced(&wanted, 8.0, 0.0, 720.0), [0, 2, 3, 4]);
        assert_eq!(spaced(&wanted, 8.0, 0.0, 800.0), [0, 2, 3, 4, 5]);
        assert_eq!(spaced(&[], 8.0, 0.0, 1.0), Vec::<usize>::new());
    }
}
