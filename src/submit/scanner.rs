//! A byte-level scanner for the ordinary lines of projects_list.conf
//! (`name = Project1, Project2  # comment`, ASCII only). It accepts exactly what the
//! exact parser in `projects_file.rs` accepts for such lines and answers `Unusual` for
//! anything else (errors, non-ASCII, rare whitespace), which the exact parser then
//! handles, so speed never changes a decision or an error message.
//!
//! A text is scanned a block of whole lines at a time, in two passes: the first marks
//! the *separators* (every byte that is not a letter, digit or one of `._:/+-`) in a
//! bitmap, in safe Rust the compiler vectorises; the second walks each line from
//! separator to separator, so the runs of name and project bytes between them cost nothing
//! per byte and only the separators are looked at. memchr finds the ends of the lines it
//! does not walk (comments, unusual lines).
//!
//! Why a bitmap and not memchr alone: a version that found each line's newline, `=`, `#`
//! and commas with memchr and checked the runs between took 1.6 ms on the bench's 724 KiB
//! file (1.12x the grep pipeline); this one takes 1.2 ms. The hand-written SSE2 it once
//! had is gone: the compiler's vector code of the plain loop is as fast here.

use crate::model::project_name;

/// What a line is, as far as the scanner can tell.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shape<'a> {
    /// Empty, blank or comment only.
    Blank,
    /// A well-formed grant: the principal (`name`, `*` or `@group`, ASCII) and the
    /// project list up to any comment, both checked.
    Grant { who: &'a [u8], what: &'a [u8] },
    /// Anything else: ask the exact parser.
    Unusual,
}

/// Blanks the scanner understands; other whitespace is left to the exact parser.
pub(crate) fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r')
}

/// Bytes of a user or group name: printable ASCII but the file's own syntax.
const NAME: [bool; 256] = name_table();
/// Bytes of a project name (see `project_name`); the scanner uses [`separator`].
#[cfg(test)]
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

#[cfg(test)]
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

/// Whether `b` is a *separator*: anything but an ASCII letter, digit or one of `._:/+-`.
/// The bytes that are not separators are the project-name bytes but `@`, and all of them
/// are name bytes too, so a run of them needs no further check in a name or a project.
/// Written with comparisons only (no table), so a block of them compiles to vector code.
#[inline(always)]
fn separator(b: u8) -> bool {
    !(b.wrapping_sub(b'a') < 26
        || b.wrapping_sub(b'A') < 26
        || b.wrapping_sub(b'-') < 14 // - . / 0-9 :
        || b == b'+'
        || b == b'_')
}

/// Bit i of the result is set if byte i of `block` is a separator. Plain safe Rust: the
/// first loop is comparisons only, which the compiler turns into vector code (SSE2 on
/// x86_64, NEON on aarch64); no intrinsics, no `unsafe`.
#[inline]
fn separator_mask(block: &[u8; 64]) -> u64 {
    // One byte per byte first (0x80 for a separator), then the high bits of each 8 bytes
    // gathered into one byte by a multiplication.
    let mut high = [0u8; 64];
    for (h, &b) in high.iter_mut().zip(block) {
        *h = if separator(b) { 0x80 } else { 0 };
    }
    let mut mask = 0;
    for (k, word) in high.chunks_exact(8).enumerate() {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        let bits = (u64::from_le_bytes(w) >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        mask |= bits << (8 * k);
    }
    mask
}

/// Where the separators of a text are, one bit per byte, so the scanner skips over the
/// runs of name and project bytes between them rather than looking at every byte; the
/// buffer is reused from text to text.
#[derive(Debug, Default)]
pub(crate) struct Separators {
    /// Bit i of word k is byte 64k + i; every position at or past the end is set.
    bits: Vec<u64>,
}

impl Separators {
    /// The lines of `text`, each with its shape. A final newline ends the last line; it
    /// does not start an empty one.
    pub(crate) fn lines<'a, 's>(&'s mut self, text: &'a [u8]) -> Lines<'a, 's> {
        self.bits.clear();
        let blocks = text.chunks_exact(64);
        let tail = blocks.remainder();
        self.bits.extend(blocks.map(|b| {
            let mut block = [0; 64];
            block.copy_from_slice(b);
            separator_mask(&block)
        }));
        let mut last = [b'\n'; 64];
        last[..tail.len()].copy_from_slice(tail);
        self.bits.push(separator_mask(&last));
        Lines {
            text,
            bits: &self.bits,
            pos: 0,
        }
    }
}

/// The lines of one text; see [`Separators::lines`].
pub(crate) struct Lines<'a, 's> {
    text: &'a [u8],
    bits: &'s [u64],
    pos: usize,
}

impl<'a> Iterator for Lines<'a, '_> {
    /// A line (without its newline) and its shape.
    type Item = (&'a [u8], Shape<'a>);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        let start = self.pos;
        if start >= self.text.len() {
            return None;
        }
        let (shape, at) = self.scan_line(start);
        // `at` is where the scanner stopped, never past the end of the line.
        let end = match self.text.get(at..) {
            Some(rest) if matches!(shape, Shape::Unusual) || rest.first() == Some(&b'#') => {
                at + memchr::memchr(b'\n', rest).unwrap_or(rest.len())
            }
            _ => at,
        };
        self.pos = end + 1;
        Some((self.text.get(start..end).unwrap_or_default(), shape))
    }
}

impl<'a> Lines<'a, '_> {
    /// The first separator at or after `i` (the end of the text if there is none).
    #[inline(always)]
    fn next_separator(&self, i: usize) -> usize {
        let mut k = i / 64;
        let Some(&word) = self.bits.get(k) else {
            return self.text.len();
        };
        let word = word >> (i % 64);
        if word != 0 {
            return i + word.trailing_zeros() as usize;
        }
        loop {
            k += 1;
            match self.bits.get(k) {
                Some(&0) => {}
                Some(&word) => return k * 64 + word.trailing_zeros() as usize,
                None => return self.text.len(),
            }
        }
    }

    /// Scans the line that starts at `start`: its shape, and where the scan stopped: at
    /// the line's newline (or the end of the text), at the `#` of its comment, or
    /// anywhere in the line for `Unusual`.
    #[inline(always)]
    fn scan_line(&self, start: usize) -> (Shape<'a>, usize) {
        let t = self.text;
        let at = |i: usize| t.get(i).copied();
        let blank = |i: &mut usize| {
            while let Some(b' ' | b'\t' | b'\r') = at(*i) {
                *i += 1;
            }
        };
        let mut i = start;
        blank(&mut i);
        let who_start = i;
        match at(i) {
            None | Some(b'\n' | b'#') => return (Shape::Blank, i),
            Some(b'*') => i += 1,
            Some(first) => {
                let name_start = i + usize::from(first == b'@');
                i = self.next_separator(name_start);
                // Name bytes that are separators: rare.
                while let Some(b) = at(i) {
                    if !NAME[usize::from(b)] {
                        break;
                    }
                    i = self.next_separator(i + 1);
                }
                if i == name_start {
                    return (Shape::Unusual, i);
                }
            }
        }
        let who_end = i;
        if at(i) != Some(b'=') {
            blank(&mut i);
            if at(i) != Some(b'=') {
                return (Shape::Unusual, i);
            }
        }
        i += 1;
        let what_start = i;
        loop {
            blank(&mut i);
            let project_start = i;
            i = self.next_separator(i);
            let mut after = at(i);
            while after == Some(b'@') {
                i = self.next_separator(i + 1);
                after = at(i);
            }
            // Between 1 and MAX_LEN bytes.
            if (i - project_start).wrapping_sub(1) >= project_name::MAX_LEN {
                return (Shape::Unusual, i);
            }
            if let Some(b' ' | b'\t' | b'\r') = after {
                blank(&mut i);
                after = at(i);
            }
            match after {
                Some(b',') => i += 1,
                None | Some(b'\n' | b'#') => break,
                Some(_) => return (Shape::Unusual, i),
            }
        }
        match (t.get(who_start..who_end), t.get(what_start..i)) {
            (Some(who), Some(what)) => (Shape::Grant { who, what }, i),
            _ => (Shape::Unusual, i),
        }
    }
}

/// Scans one line (without its newline; a newline in `line` makes it `Unusual`): the
/// single-line view the tests compare with the exact parser.
#[cfg(test)]
pub(crate) fn scan(line: &[u8]) -> Shape<'_> {
    match Separators::default().lines(line).next() {
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

    #[test]
    fn separators_are_the_project_bytes_but_at() {
        for b in 0..=255u8 {
            assert_eq!(separator(b), !PROJECT[b as usize] || b == b'@', "{b}");
            assert!(separator(b) || NAME[b as usize], "{b}");
        }
    }

    #[test]
    fn separator_mask_has_one_bit_per_byte() {
        for b in 0..=255u8 {
            for at in 0..64 {
                let mut block = [b'x'; 64];
                block[at] = b;
                let want = if separator(b) { 1 << at } else { 0 };
                assert_eq!(separator_mask(&block), want, "{b} at {at}");
            }
        }
    }

    #[test]
    fn long_names_and_projects_cross_blocks() {
        let name = "n".repeat(150);
        let longest = "p".repeat(project_name::MAX_LEN);
        let text = format!("{name}={longest}, {longest}\n{name}@x=A\n*=B\n");
        let mut seps = Separators::default();
        let lines: Vec<_> = seps.lines(text.as_bytes()).map(|(_, shape)| shape).collect();
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
        let mut seps = Separators::default();
        let got: Vec<_> = seps.lines(text).collect();
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
        fn separator_masks_agree(bytes in proptest::collection::vec(proptest::num::u8::ANY, 64)) {
            let mut block = [0; 64];
            block.copy_from_slice(&bytes);
            let want = (0..64).filter(|&i| separator(block[i])).fold(0u64, |m, i| m | 1 << i);
            proptest::prop_assert_eq!(separator_mask(&block), want);
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
