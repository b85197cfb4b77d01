//! Slurm hostlists (`q-dy-c5-[1-3,7],gpu-st-g4-1`, `n[01-02]-ib[1-2]`) expanded to node
//! names, so each node of a job can be priced by its own name. Zero-padding follows the
//! lower bound of a range (`[08-10]` gives `08 09 10`), as Slurm prints it.

use std::fmt;

/// A hostlist that could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostlistError(String);

impl fmt::Display for HostlistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// More nodes than this in one job's list is treated as a malformed list rather than
/// expanded (a typo such as `[1-99999999]` must not exhaust memory or time).
pub(crate) const MAX_NODES: usize = 100_000;

enum Segment<'a> {
    Text(&'a str),
    /// (low, high, zero-padded width)
    Ranges(Vec<(u64, u64, usize)>),
}

fn bad(list: &str, why: &str) -> HostlistError {
    HostlistError(format!("hostlist {list:?}: {why}"))
}

fn parse_ranges<'a>(list: &str, inner: &'a str) -> Result<Segment<'a>, HostlistError> {
    let mut ranges = Vec::new();
    for part in inner.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let num = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(list, &format!("{part:?} is not a number or range")));
            }
            s.parse::<u64>().map_err(|_| bad(list, "number too large"))
        };
        let (l, h) = (num(lo)?, num(hi)?);
        if h < l {
            return Err(bad(list, &format!("range {part:?} runs backwards")));
        }
        ranges.push((l, h, lo.len()));
    }
    Ok(Segment::Ranges(ranges))
}

fn parse_expression<'a>(list: &str, expr: &'a str) -> Result<Vec<Segment<'a>>, HostlistError> {
    let mut segments = Vec::new();
    let mut rest = expr;
    while !rest.is_empty() {
        match rest.find('[') {
            Some(open) => {
                if open > 0 {
                    segments.push(Segment::Text(&rest[..open]));
                }
                let close = rest[open..]
                    .find(']')
                    .map(|c| open + c)
                    .ok_or_else(|| bad(list, "'[' without ']'"))?;
                segments.push(parse_ranges(list, &rest[open + 1..close])?);
                rest = &rest[close + 1..];
            }
            None => {
                if rest.contains(']') {
                    return Err(bad(list, "']' without '['"));
                }
                segments.push(Segment::Text(rest));
                rest = "";
            }
        }
    }
    Ok(segments)
}

/// Appends each name `segments` stands for to `name` in turn and hands it to `each`.
fn emit(segments: &[Segment<'_>], name: &mut String, each: &mut impl FnMut(&str)) {
    let Some((first, rest)) = segments.split_first() else {
        each(name);
        return;
    };
    let len = name.len();
    match first {
        Segment::Text(t) => {
            name.push_str(t);
            emit(rest, name, each);
            name.truncate(len);
        }
        Segment::Ranges(ranges) => {
            for &(low, high, width) in ranges {
                for v in low..=high {
                    use std::fmt::Write;
                    let _ = write!(name, "{v:0width$}");
                    emit(rest, name, each);
                    name.truncate(len);
                }
            }
        }
    }
}

/// Calls `each` with every node name of `list`, in order; returns how many there were.
/// Nothing is called when the list is malformed.
pub(crate) fn expand(list: &str, mut each: impl FnMut(&str)) -> Result<usize, HostlistError> {
    // Most jobs run on one plainly named node: no need to parse.
    if !list.is_empty() && !list.contains(['[', ']', ',']) {
        each(list);
        return Ok(1);
    }
    let mut expressions = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1).ok_or_else(|| bad(list, "']' without '['"))?,
            ',' if depth == 0 => {
                expressions.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    expressions.push(&list[start..]);

    let mut parsed = Vec::with_capacity(expressions.len());
    let mut total = 0usize;
    for expr in expressions {
        if expr.is_empty() {
            return Err(bad(list, "empty node name"));
        }
        let segments = parse_expression(list, expr)?;
        let mut count = 1usize;
        for s in &segments {
            if let Segment::Ranges(r) = s {
                let n = r
                    .iter()
                    .map(|(l, h, _)| (h - l + 1) as usize)
                    .fold(0usize, usize::saturating_add);
                count = count.saturating_mul(n);
            }
        }
        total = total.saturating_add(count);
        if total > MAX_NODES {
            return Err(bad(list, &format!("more than {MAX_NODES} nodes")));
        }
        parsed.push(segments);
    }

    let mut name = String::new();
    for segments in &parsed {
        emit(segments, &mut name, &mut each);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Result<Vec<String>, HostlistError> {
        let mut v = Vec::new();
        let n = expand(list, |s| v.push(s.to_string()))?;
        assert_eq!(n, v.len());
        Ok(v)
    }

    #[test]
    fn expands_slurm_hostlists() {
        assert_eq!(names("node1").unwrap(), ["node1"]);
        assert_eq!(
            names("q-dy-c5-[1-3,7]").unwrap(),
            ["q-dy-c5-1", "q-dy-c5-2", "q-dy-c5-3", "q-dy-c5-7"]
        );
        assert_eq!(names("a[08-10],b").unwrap(), ["a08", "a09", "a10", "b"]);
        assert_eq!(
            names("n[1-2]-ib[0-1]").unwrap(),
            ["n1-ib0", "n1-ib1", "n2-ib0", "n2-ib1"]
        );
        assert_eq!(
            names("gpu-st-g4-[1-2],cpu-dy-c5-[10,12]").unwrap(),
            ["gpu-st-g4-1", "gpu-st-g4-2", "cpu-dy-c5-10", "cpu-dy-c5-12"]
        );
    }

    #[test]
    fn refuses_malformed_lists() {
        for bad in [
            "",
            "a,",
            "a[1-",
            "a]",
            "a[x]",
            "a[3-1]",
            "a[]",
            "a[1-100001]",
            "a[1--2]",
        ] {
            assert!(names(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
