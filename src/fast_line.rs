//! A byte-level scanner for the ordinary lines of projects_list.conf
//! (`name = Project1, Project2  # comment`, ASCII only). It accepts exactly what the
//! exact parser in `projects.rs` accepts for such lines and answers `Unusual` for
//! anything else (errors, non-ASCII, rare whitespace), which the exact parser then
//! handles, so speed never changes a decision or an error message.

use crate::project_name;

/// What a line is, as far as the scanner can tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Shape<'a> {
    /// Empty, blank or comment only.
    Blank,
    /// A well-formed grant: the principal (`name`, `*` or `@group`) and the project list
    /// up to any comment, both checked.
    Grant { who: &'a str, what: &'a [u8] },
    /// Anything else: ask the exact parser.
    Unusual,
}

/// Blanks the scanner understands; other whitespace is left to the exact parser.
pub fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r')
}

/// Bytes of a user or group name: printable ASCII but the file's own syntax.
const NAME: [bool; 256] = name_table();
/// Bytes of a project name (see `project_name`).
const PROJECT: [bool; 256] = project_table();

const fn name_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_graphic() && !matches!(c, b'=' | b',' | b'#' | b'*' | b'@');
        b += 1;
    }
    t
}

const fn project_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'/' | b'@' | b'+' | b'-');
        b += 1;
    }
    t
}

/// Scans one line (without its newline).
pub fn scan(line: &[u8]) -> Shape<'_> {
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
        while i < n && NAME[line[i] as usize] {
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
        while i < n && PROJECT[line[i] as usize] {
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
    // Every byte taken is ASCII, so this cannot fail; if it did, the exact parser decides.
    match (std::str::from_utf8(&line[who_start..who_end]), line.get(what_start..i)) {
        (Ok(who), Some(what)) => Shape::Grant { who, what },
        _ => Shape::Unusual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projects::ProjectsList;
    use std::path::Path;

    #[test]
    fn ordinary_lines() {
        assert_eq!(scan(b""), Shape::Blank);
        assert_eq!(scan(b"  \t# x"), Shape::Blank);
        assert_eq!(
            scan(b" alice = A, B # c\r"),
            Shape::Grant {
                who: "alice",
                what: b" A, B "
            }
        );
        assert_eq!(scan(b"*=S"), Shape::Grant { who: "*", what: b"S" });
        assert_eq!(scan(b"@g=P"), Shape::Grant { who: "@g", what: b"P" });
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
        ] {
            assert_eq!(scan(line), Shape::Unusual, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn project_table_is_the_project_name_rule() {
        for b in 0..=255u8 {
            assert_eq!(
                PROJECT[b as usize],
                b.is_ascii() && project_name::is_allowed_char(b as char),
                "{b}"
            );
        }
    }

    /// The scanner must never accept a line differently from the exact parser.
    fn agrees(line: &[u8]) {
        if let Shape::Grant { .. } = scan(line) {
            let fast = ProjectsList::parse(line, Path::new("f")).expect("accepted by the scanner");
            let exact = crate::projects::tests_support::parse_exact(line).expect("exact parser accepts too");
            assert_eq!(fast.grants, exact.grants, "{:?}", String::from_utf8_lossy(line));
        }
    }

    proptest::proptest! {
        #[test]
        fn scanner_agrees_with_exact_parser(line in "[ \t\r]{0,2}[a-z*@=,#. \t]{0,12}[=]?[ A-Za-z0-9,._:/@+#é=\t-]{0,30}") {
            agrees(line.as_bytes());
        }

        #[test]
        fn scanner_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = scan(&bytes);
        }
    }
}
