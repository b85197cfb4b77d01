//! The line layout of `cost-tags report --format json`: each top-level key on its own
//! line, each record of a top-level array of objects (`groups`, `periods`, `rows`) on its
//! own line, everything else compact. A dashboard reads it as any JSON; a person can still
//! `grep`, `head` or `diff` a report of many groups line by line.

use std::io::{self, Write};

use serde_json::ser::Formatter;

/// The serde_json [`Formatter`] for that layout. It only looks at nesting depth, so the
/// report's derived structs say nothing about lines, and the document is written as it is
/// serialized. Arrays of strings (`by`, `warnings`) stay on one line: their elements are
/// not objects.
#[derive(Debug, Default)]
pub(crate) struct ReportLayout {
    /// Open objects and arrays; 1 inside the top-level object.
    depth: usize,
    /// The open top-level value is an array.
    in_top_array: bool,
    /// That array's elements went on their own lines, so its `]` does too.
    one_per_line: bool,
}

impl Formatter for ReportLayout {
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        match self.depth {
            2 => self.in_top_array = false,
            3 if self.in_top_array => {
                self.one_per_line = true;
                return w.write_all(b"\n    {");
            }
            _ => {}
        }
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        w.write_all(if self.depth == 0 { b"\n}" } else { b"}" })
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        w.write_all(match (self.depth, first) {
            (1, true) => b"\n  ",
            (1, false) => b",\n  ",
            (_, true) => b"",
            (_, false) => b",",
        })
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(if self.depth == 1 { b": " } else { b":" })
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        if self.depth == 2 {
            self.in_top_array = true;
            self.one_per_line = false;
        }
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        let own_line = self.depth == 2 && self.one_per_line;
        self.depth -= 1;
        w.write_all(if own_line { b"\n  ]" } else { b"]" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layout(value: &serde_json::Value) -> String {
        let mut out = Vec::new();
        let mut s = serde_json::Serializer::with_formatter(&mut out, ReportLayout::default());
        serde::Serialize::serialize(value, &mut s).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn top_keys_and_records_get_a_line_each() {
        let doc = json!({
            "by": ["project", "user"],
            "empty": [],
            "rows": [{"a": 1, "b": {"c": [1, 2]}}, {"a": 2}],
            "total": {"jobs": 3, "list": [{"x": 1}]},
        });
        assert_eq!(
            layout(&doc),
            "{\n  \"by\": [\"project\",\"user\"],\n  \"empty\": [],\n  \"rows\": [\n    \
             {\"a\":1,\"b\":{\"c\":[1,2]}},\n    {\"a\":2}\n  ],\n  \
             \"total\": {\"jobs\":3,\"list\":[{\"x\":1}]}\n}"
        );
    }
}
