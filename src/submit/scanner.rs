//! A byte-level scanner for the ordinary lines of projects_list.conf
//! (`name = Project1, Project2  # comment`, ASCII only). It accepts exactly what the
//! exact parser in `projects_file.rs` accepts for such lines and answers `Unusual` for
//! anything else (errors, non-ASCII, rare whitespace), which the exact parser then
//! handles, so speed never changes a decision or an error message.
//!
//! `memchr` finds the structure (the newline, `=`, `#` and `,` of each line) with its
//! vectorised searches; the runs between are checked with byte comparisons folded over
//! the whole run, without an early exit, which the compiler turns into vector code. No
//! `unsafe` and no hand-written SIMD: the speed comes from the kept crate and the compiler.

use crate::submit::project_name;

/// What a line is, as far as the scanner can tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Shape<'a> {
    /// Empty, blank or comment only.
    Blank,
    /// A well-formed grant: the principal (`name`, `*` or `@group`, ASCII) and the
    /// project list up to any comment, both checked.
    Grant { who: &'a [u8], what: &'a [u8] },
    /// Anything else: ask the exact parser.
    Unusual,
}

/// Blanks the scanner understands; other whitespace is left to the exact parser.
pub fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r')
}

fn is_blank_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

/// A byte of a user or group name: printable ASCII but the file's own syntax.
#[inline(always)]
fn is_name_byte(b: u8) -> bool {
    b.wrapping_sub(0x21) < 0x5e && !matches!(b, b'=' | b',' | b'#' | b'*' | b'@')
}

/// A byte of a project name (see `project_name`): ASCII letters, digits and `._:/@+-`.
/// Comparisons only (no table), so a fold of it over a run compiles to vector code.
#[inline(always)]
fn is_project_byte(b: u8) -> bool {
    b.wrapping_sub(b'a') < 26
        || b.wrapping_sub(b'A') < 26
        || b.wrapping_sub(b'-') < 14 // - . / 0-9 :
        || matches!(b, b'+' | b'_' | b'@')
}

/// Whether every byte of `run` passes `ok`. Folded without an early exit on purpose: the
/// runs are short and almost always good, and the fold vectorises where `all` cannot.
#[inline(always)]
fn every(run: &[u8], ok: impl Fn(u8) -> bool) -> bool {
    run.iter().fold(true, |all, &b| all & ok(b))
}

fn trim_blanks(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_blank_byte(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_blank_byte(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// The lines of `text`, each with its shape. A final newline ends the last line; it does
/// not start an empty one.
pub fn lines(text: &[u8]) -> Lines<'_> {
    Lines { text, pos: 0 }
}

/// The lines of one text; see [`lines`].
pub struct Lines<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Lines<'a> {
    /// A line (without its newline) and its shape.
    type Item = (&'a [u8], Shape<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.text.get(self.pos..).filter(|rest| !rest.is_empty())?;
        let len = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        self.pos += len + 1;
        let line = rest.get(..len).unwrap_or_default();
        Some((line, shape(line)))
    }
}

/// The shape of one line (without its newline).
#[inline]
fn shape(line: &[u8]) -> Shape<'_> {
    let content = match memchr::memchr(b'#', line) {
        Some(hash) => line.get(..hash).unwrap_or_default(),
        None => line,
    };
    let Some(eq) = memchr::memchr(b'=', content) else {
        return if every(content, is_blank_byte) {
            Shape::Blank
        } else {
            Shape::Unusual
        };
    };
    let (Some(who), Some(what)) = (content.get(..eq), content.get(eq + 1..)) else {
        return Shape::Unusual;
    };
    let who = trim_blanks(who);
    let well_formed_who = match who {
        [b'*'] => true,
        [b'@', name @ ..] | name => !name.is_empty() && every(name, is_name_byte),
    };
    if !well_formed_who || !well_formed_projects(what) {
        return Shape::Unusual;
    }
    Shape::Grant { who, what }
}

/// `Project1, Project2`: one or more project names, each 1 to `MAX_LEN` project bytes,
/// separated by commas, with blanks around them only.
#[inline]
fn well_formed_projects(what: &[u8]) -> bool {
    let mut good = every(what, |b| is_project_byte(b) || b == b',' || is_blank_byte(b));
    for project in what.split(|&b| b == b',') {
        let name = trim_blanks(project);
        good &= (1..=project_name::MAX_LEN).contains(&name.len()) && every(name, is_project_byte);
    }
    good
}

/// Scans one line (without its newline; a newline in `line` makes it `Unusual`): the
/// single-line view the tests compare with the exact parser.
#[cfg(test)]
pub fn scan(line: &[u8]) -> Shape<'_> {
    match lines(line).next() {
        None => Shape::Blank,
        Some((raw, shape)) if raw.len() == line.len() => shape,
        Some(_) => Shape::Unusual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submit::projects_file::ProjectsList;
    use std::path::Path;

    #[test]
    fn ordinary_lines() {
        assert_eq!(scan(b""), Shape::Blank);
        assert_eq!(scan(b"  \t# x"), Shape::Blank);
        assert_eq!(
            scan(b" alice = A, B # c\r"),
            Shape::Grant {
                who: b"alice",
                what: b" A, B "
            }
        );
        assert_eq!(scan(b"*=S"), Shape::Grant { who: b"*", what: b"S" });
        assert_eq!(scan(b"@g=P"), Shape::Grant { who: b"@g", what: b"P" });
        assert_eq!(
            scan(b"a$b=P@x"),
            Shape::Grant {
                who: b"a$b",
                what: b"P@x"
            }
        );
    }

    #[test]
    fn anything_else_is_unusual() {
        for line in [
            &b"alice"[..],
            b"=A",
            b"alice=",
            b"alice=A,",
            b"alice=A,,B",
            b"alice=Project A",
            b"al ice=A",
            b"@=A",
            b"*x=A",
            b"a*=A",
            b"alice=A;B",
            "jos\u{e9}=A".as_bytes(),
            b"alice=A\x0b",
            b"alice=A\nbob=B",
        ] {
            assert_eq!(scan(line), Shape::Unusual, "{:?}", String::from_utf8_lossy(line));
        }
    }

    /// The byte classes as tables, written independently of the comparisons: the
    /// reference scanner below uses them.
    fn name_byte(b: u8) -> bool {
        b.is_ascii_graphic() && !b"=,#*@".contains(&b)
    }

    fn project_byte(b: u8) -> bool {
        b.is_ascii() && project_name::is_allowed_char(b as char)
    }

    #[test]
    fn byte_classes_are_the_file_rules() {
        for b in 0..=255u8 {
            assert_eq!(is_project_byte(b), project_byte(b), "{b}");
            assert_eq!(is_name_byte(b), name_byte(b), "{b}");
            assert!(!is_project_byte(b) || b == b'@' || is_name_byte(b), "{b}");
        }
    }

    #[test]
    fn long_names_and_projects_cross_blocks() {
        let name = "n".repeat(150);
        let longest = "p".repeat(project_name::MAX_LEN);
        let text = format!("{name}={longest}, {longest}\n{name}@x=A\n*=B\n");
        let lines: Vec<_> = lines(text.as_bytes()).map(|(_, shape)| shape).collect();
        assert_eq!(lines.len(), 3);
        assert!(matches!(lines[0], Shape::Grant { who, .. } if who == name.as_bytes()));
        assert_eq!(lines[1], Shape::Unusual);
        assert_eq!(lines[2], Shape::Grant { who: b"*", what: b"B" });
        let too_long = format!("a=B, {longest}p\n");
        assert_eq!(scan(too_long.trim_end().as_bytes()), Shape::Unusual);
    }

    /// The scanner as it was, one line at a time, byte by byte: the new one must give
    /// the same shape for every line.
    fn reference_scan(line: &[u8]) -> Shape<'_> {
        let n = line.len();
        let blank = |i: &mut usize| {
            while *i < n && matches!(line[*i], b' ' | b'\t' | b'\r') {
                *i += 1;
            }
        };
        let mut i = 0;
        blank(&mut i);
        if i == n || line[i] == b'#' {
            return Shape::Blank;
        }
        let who_start = i;
        if line[i] == b'*' {
            i += 1;
        } else {
            if line[i] == b'@' {
                i += 1;
            }
            let name_start = i;
            while i < n && name_byte(line[i]) {
                i += 1;
            }
            if i == name_start {
                return Shape::Unusual;
            }
        }
        let who_end = i;
        blank(&mut i);
        if i == n || line[i] != b'=' {
            return Shape::Unusual;
        }
        i += 1;
        let what_start = i;
        loop {
            blank(&mut i);
            let start = i;
            while i < n && project_byte(line[i]) {
                i += 1;
            }
            if i == start || i - start > project_name::MAX_LEN {
                return Shape::Unusual;
            }
            blank(&mut i);
            if i == n || line[i] == b'#' {
                break;
            }
            if line[i] != b',' {
                return Shape::Unusual;
            }
            i += 1;
        }
        Shape::Grant {
            who: &line[who_start..who_end],
            what: &line[what_start..i],
        }
    }

    /// The scanner must never accept a line differently from the exact parser.
    fn agrees(line: &[u8]) {
        if let Shape::Grant { .. } = scan(line) {
            let fast = ProjectsList::parse(line, Path::new("f")).expect("accepted by the scanner");
            let exact =
                crate::submit::projects_file::tests_support::parse_exact(line).expect("exact parser accepts too");
            assert_eq!(fast.grants, exact.grants, "{:?}", String::from_utf8_lossy(line));
        }
    }

    /// A whole text: every line has the shape the reference gives it alone, and the
    /// lines are the text's lines.
    fn same_lines_as_reference(text: &[u8]) {
        let got: Vec<_> = lines(text).collect();
        let mut want: Vec<_> = text.split(|&b| b == b'\n').map(|l| (l, reference_scan(l))).collect();
        if text.last().is_none_or(|&b| b == b'\n') {
            want.pop(); // a final newline does not start an empty line
        }
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(text));
    }

    proptest::proptest! {
        #[test]
        fn scanner_agrees_with_exact_parser(line in "[ \t\r]{0,2}[a-z*@=,#. \t]{0,12}[=]?[ A-Za-z0-9,._:/@+#é=\t-]{0,30}") {
            agrees(line.as_bytes());
        }

        #[test]
        fn scanner_agrees_with_exact_parser_on_long_lines(
            line in "[ \t]{0,2}(\\*|@?[a-z$]{1,70}|[a-z$@*]{0,3})[ ]?=([ \t]{0,2}([A-Za-z0-9._:/@+-]{1,20}|[A-Za-z0-9._:/@+-]{126,130})[ \t]{0,2},){0,3}[ \t]?[A-Za-z0-9._:/@+-]{0,140}[ \t]{0,2}(#.{0,5})?"
        ) {
            agrees(line.as_bytes());
            proptest::prop_assert_eq!(scan(line.as_bytes()), reference_scan(line.as_bytes()));
        }

        #[test]
        fn scanner_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = scan(&bytes);
        }

        #[test]
        fn scanner_gives_the_reference_shape(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let line: Vec<u8> = bytes.into_iter().filter(|&b| b != b'\n').collect();
            proptest::prop_assert_eq!(scan(&line), reference_scan(&line));
        }

        #[test]
        fn texts_scan_line_by_line_like_the_reference(
            text in "([ \t\r]{0,2}[a-z*@=,#. \t]{0,12}[=]?[ A-Za-z0-9,._:/@+#é=\t-]{0,90}\n){0,12}[a-z=A-Z, #]{0,20}"
        ) {
            same_lines_as_reference(text.as_bytes());
        }

        #[test]
        fn texts_of_any_bytes_scan_like_the_reference(
            bytes in proptest::collection::vec(proptest::sample::select(&b"aZ9@*=,# \t\r\n\xe9;._"[..]), 0..400)
        ) {
            same_lines_as_reference(&bytes);
        }
    }
}
