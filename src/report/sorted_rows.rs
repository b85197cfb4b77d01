//! Rows sorted by a key in bounded memory: an external merge sort, for `report --by job`
//! (rows by start time, with memory flat for millions of job runs).
//!
//! Each row arrives already rendered to its output bytes (a CSV line, a table line, a JSON
//! object, an HTML row) with its key. Rows are kept in one byte buffer plus a small index
//! until the buffer reaches its budget; the index is then sorted (a stable sort: equal keys
//! keep the order they came in) and the rows are written in that order, as one sorted
//! *run*, to an unnamed temporary file. At the end the runs and the rows still in memory
//! are merged (a k-way merge on a heap, ties going to the earlier run, so the whole sort is
//! stable) and handed out one by one. Rows that never fill the budget never touch the disk.
//!
//! Why so:
//! - Rendered bytes, not row structures: one allocation for all rows (no string per field),
//!   and the bytes go to the file and back as they are.
//! - One temporary file for every run, read with `pread` at each run's place, so the number
//!   of open files does not grow with the input; each run's read buffer shares the budget
//!   (at least 4 KiB), so the merge stays in the same memory however many runs there are.
//! - `tempfile::tempfile()`: made in `$TMPDIR` (else /tmp) with `O_TMPFILE` where the file
//!   system has it, so the file has no name at all (nothing to follow as a link, nothing
//!   left behind after a crash); elsewhere a random name made with `O_EXCL` and unlinked at
//!   once.
//! - Every error of the temporary file is a [`SpillError`], which says so and names the
//!   directory: a full or read-only `$TMPDIR` is not the output's fault.
//! - The merge takes rows from one run for as long as they come before every other run's
//!   next row: sacct's order is close to start order, so most rows need no heap operation.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// The default budget: rows of a month of a mid-size cluster (about 150,000 job runs of
/// about 200 bytes) stay in memory, and a run of millions of jobs peaks at about this
/// much more than the report itself, far under the 100 MB its benchmark allows.
pub const DEFAULT_BUDGET: usize = 32 << 20;

/// The smallest read buffer of a run during the merge.
const MIN_READ: usize = 4 << 10;
/// The largest: past this, larger reads gain nothing.
const MAX_READ: usize = 1 << 20;

/// Bytes of one index entry (key, place, length).
const ENTRY: usize = std::mem::size_of::<Entry>();
/// Bytes of a row's head in the temporary file: its key and its length.
const HEAD: usize = 12;

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: i64,
    at: u32,
    len: u32,
}

/// The temporary file of the sort could not be made, written or read. Carried inside an
/// [`io::Error`] (see [`SpillError::of`]) so that it passes where the output's errors pass
/// and can still be told from them.
#[derive(Debug)]
pub struct SpillError {
    what: &'static str,
    dir: PathBuf,
    source: io::Error,
}

impl SpillError {
    fn wrap(what: &'static str, source: io::Error) -> io::Error {
        let kind = source.kind();
        io::Error::new(
            kind,
            SpillError {
                what,
                dir: std::env::temp_dir(),
                source,
            },
        )
    }

    /// The spill error inside `e`, if it is one.
    pub fn of(e: &io::Error) -> Option<&SpillError> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<SpillError>())
    }
}

impl fmt::Display for SpillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} the temporary file that sorts the rows by start time, in {} (TMPDIR \
             chooses the directory): {}",
            self.what,
            self.dir.display(),
            self.source
        )
    }
}

impl std::error::Error for SpillError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The runs written so far: one file, each run a range of it.
struct Spill {
    out: BufWriter<File>,
    /// Bytes written (the next run's start).
    written: u64,
    runs: Vec<(u64, u64)>,
}

/// Rows with their keys, handed back by [`SortedRows::finish`] in key order, stably.
pub struct SortedRows {
    budget: usize,
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    spill: Option<Spill>,
    rows: u64,
}

impl SortedRows {
    /// Holds at most about `budget` bytes of rows and index (at least 8 KiB, and a row
    /// larger than that alone), and as much again for read buffers while merging.
    pub fn new(budget: usize) -> SortedRows {
        SortedRows {
            budget: budget.clamp(2 * MIN_READ, u32::MAX as usize / 2),
            bytes: Vec::new(),
            entries: Vec::new(),
            spill: None,
            rows: 0,
        }
    }

    /// Rows pushed so far.
    pub fn len(&self) -> u64 {
        self.rows
    }

    /// True before the first row.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Runs written to the temporary file so far.
    pub fn spilled_runs(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.runs.len())
    }

    /// Adds `row` with its `key`. When the budget is full, the rows held so far are
    /// written first, sorted, as one run of the temporary file.
    pub fn push(&mut self, key: i64, row: &[u8]) -> io::Result<()> {
        if self.bytes.capacity() == 0 {
            // Reserved, not touched: the pages count only once rows fill them. An eighth
            // for the index: rows are about 200 bytes, an entry 16.
            self.bytes.reserve_exact(self.budget - self.budget / 8);
            self.entries.reserve_exact(self.budget / 8 / ENTRY);
        }
        let full =
            self.bytes.len() + row.len() > self.bytes.capacity() || self.entries.len() == self.entries.capacity();
        if full && !self.entries.is_empty() {
            self.spill_run()?;
        }
        // Alone in the buffer (a row larger than the budget) or within the budget, which
        // is under u32::MAX: the place fits; a row of 4 GiB is refused, not truncated.
        let at = u32::try_from(self.bytes.len()).map_err(io::Error::other)?;
        let len = u32::try_from(row.len()).map_err(|_| io::Error::other("a row of more than 4 GiB"))?;
        self.bytes.extend_from_slice(row);
        self.entries.push(Entry { key, at, len });
        self.rows += 1;
        Ok(())
    }

    fn sort(&mut self) {
        // Stable, and fast on input that is nearly in order already (it finds the runs).
        self.entries.sort_by_key(|e| e.key);
    }

    fn spill_run(&mut self) -> io::Result<()> {
        self.sort();
        let spill = match &mut self.spill {
            Some(s) => s,
            None => {
                let file = tempfile::tempfile().map_err(|e| SpillError::wrap("create", e))?;
                self.spill.insert(Spill {
                    out: BufWriter::with_capacity(1 << 16, file),
                    written: 0,
                    runs: Vec::new(),
                })
            }
        };
        let start = spill.written;
        for e in &self.entries {
            let row = &self.bytes[e.at as usize..][..e.len as usize];
            let mut head = [0u8; HEAD];
            head[..8].copy_from_slice(&e.key.to_le_bytes());
            head[8..].copy_from_slice(&e.len.to_le_bytes());
            spill
                .out
                .write_all(&head)
                .and_then(|()| spill.out.write_all(row))
                .map_err(|e| SpillError::wrap("write", e))?;
            spill.written += (HEAD + row.len()) as u64;
        }
        spill.runs.push((start, spill.written));
        self.bytes.clear();
        self.entries.clear();
        Ok(())
    }

    /// Hands every row to `emit` in key order (equal keys in the order pushed). An error
    /// of `emit` is returned as it came; one of the temporary file is a [`SpillError`].
    pub fn finish(mut self, mut emit: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        self.sort();
        let Some(spill) = self.spill.take() else {
            for e in &self.entries {
                emit(&self.bytes[e.at as usize..][..e.len as usize])?;
            }
            return Ok(());
        };
        let file = spill
            .out
            .into_inner()
            .map_err(|e| SpillError::wrap("write", e.into_error()))?;
        // The runs' read buffers share one more budget (a few MiB for a few runs): the
        // merge holds at most about twice the budget, whatever the number of rows.
        let read = (self.budget / spill.runs.len()).clamp(MIN_READ, MAX_READ);
        let mut sources: Vec<Source<'_>> = spill
            .runs
            .iter()
            .map(|&(start, end)| Source::File(RunReader::new(&file, start, end, read)))
            .collect();
        // The rows still in memory came last: the last run.
        sources.push(Source::Memory {
            bytes: &self.bytes,
            entries: &self.entries,
            next: 0,
        });
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, source) in sources.iter_mut().enumerate() {
            if let Some(key) = source.advance()? {
                heap.push(Reverse((key, i)));
            }
        }
        while let Some(Reverse((_, i))) = heap.pop() {
            let source = &mut sources[i];
            loop {
                emit(source.row())?;
                let Some(key) = source.advance()? else {
                    break;
                };
                // Go on with this run while its next row comes before every other run's.
                if heap.peek().is_some_and(|Reverse(top)| *top < (key, i)) {
                    heap.push(Reverse((key, i)));
                    break;
                }
            }
        }
        Ok(())
    }
}

/// A run being merged: in the file, or the rows left in memory.
enum Source<'a> {
    File(RunReader<'a>),
    Memory {
        bytes: &'a [u8],
        entries: &'a [Entry],
        /// The entry after the current one.
        next: usize,
    },
}

impl Source<'_> {
    /// Moves to the next row; its key, or `None` at the run's end.
    fn advance(&mut self) -> io::Result<Option<i64>> {
        match self {
            Source::File(r) => r.advance(),
            Source::Memory { entries, next, .. } => {
                let key = entries.get(*next).map(|e| e.key);
                *next += 1;
                Ok(key)
            }
        }
    }

    /// The current row.
    fn row(&self) -> &[u8] {
        match self {
            Source::File(r) => &r.buf[r.row.0..r.row.1],
            Source::Memory { bytes, entries, next } => {
                let e = entries[*next - 1];
                &bytes[e.at as usize..][..e.len as usize]
            }
        }
    }
}

/// Reads one run of the temporary file through its own buffer, at its own place.
struct RunReader<'a> {
    file: &'a File,
    /// The file's next byte to read, and the run's end.
    at: u64,
    end: u64,
    buf: Vec<u8>,
    /// Read and not yet used: `buf[start..filled]`.
    start: usize,
    filled: usize,
    /// The current row in `buf`.
    row: (usize, usize),
}

impl<'a> RunReader<'a> {
    fn new(file: &'a File, at: u64, end: u64, read: usize) -> RunReader<'a> {
        RunReader {
            file,
            at,
            end,
            buf: vec![0; read],
            start: 0,
            filled: 0,
            row: (0, 0),
        }
    }

    /// Makes the next `n` bytes of the run readable at `buf[start..]`; false at the run's
    /// end, an error if the run ends inside them.
    fn fill(&mut self, n: usize) -> io::Result<bool> {
        if self.filled - self.start >= n {
            return Ok(true);
        }
        if self.at == self.end && self.filled == self.start {
            return Ok(false);
        }
        self.buf.copy_within(self.start..self.filled, 0);
        self.filled -= self.start;
        self.start = 0;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        while self.filled < n {
            let want = (self.buf.len() - self.filled).min(usize::try_from(self.end - self.at).unwrap_or(usize::MAX));
            if want == 0 {
                return Err(SpillError::wrap(
                    "read",
                    io::Error::new(io::ErrorKind::UnexpectedEof, "a run ends inside a row"),
                ));
            }
            let got = self
                .file
                .read_at(&mut self.buf[self.filled..self.filled + want], self.at)
                .map_err(|e| SpillError::wrap("read", e))?;
            if got == 0 {
                return Err(SpillError::wrap(
                    "read",
                    io::Error::new(io::ErrorKind::UnexpectedEof, "the file is shorter than written"),
                ));
            }
            self.filled += got;
            self.at += got as u64;
        }
        Ok(true)
    }

    fn advance(&mut self) -> io::Result<Option<i64>> {
        if !self.fill(HEAD)? {
            return Ok(None);
        }
        let head = &self.buf[self.start..self.start + HEAD];
        let mut key = [0u8; 8];
        key.copy_from_slice(&head[..8]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[8..]);
        let key = i64::from_le_bytes(key);
        let len = u32::from_le_bytes(len) as usize;
        self.start += HEAD;
        if !self.fill(len)? && len > 0 {
            return Err(SpillError::wrap(
                "read",
                io::Error::new(io::ErrorKind::UnexpectedEof, "a run ends inside a row"),
            ));
        }
        self.row = (self.start, self.start + len);
        self.start += len;
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What a plain stable sort gives.
    fn expected(rows: &[(i64, Vec<u8>)]) -> Vec<Vec<u8>> {
        let mut sorted = rows.to_vec();
        sorted.sort_by_key(|r| r.0);
        sorted.into_iter().map(|r| r.1).collect()
    }

    fn sorted(rows: &[(i64, Vec<u8>)], budget: usize) -> (Vec<Vec<u8>>, usize) {
        let mut sorter = SortedRows::new(budget);
        for (key, row) in rows {
            sorter.push(*key, row).unwrap();
        }
        assert_eq!(sorter.len(), rows.len() as u64);
        let runs = sorter.spilled_runs();
        let mut out = Vec::new();
        sorter
            .finish(|row| {
                out.push(row.to_vec());
                Ok(())
            })
            .unwrap();
        (out, runs)
    }

    /// Rows that name their place in the input, so a tie out of order shows.
    fn rows(keys: &[i64], pad: usize) -> Vec<(i64, Vec<u8>)> {
        keys.iter()
            .enumerate()
            .map(|(i, &k)| (k, format!("{k}:{i}:{}\n", "x".repeat(pad + i % 7)).into_bytes()))
            .collect()
    }

    #[test]
    fn many_spills_give_a_stable_sort() {
        let mut rng = fastrand::Rng::with_seed(24);
        // Few distinct keys (many ties), nearly sorted, reversed, random.
        let cases: Vec<Vec<i64>> = vec![
            (0..20_000).map(|_| rng.i64(0..50)).collect(),
            (0..20_000).map(|i| i / 3 + rng.i64(-20..20)).collect(),
            (0..5_000).rev().collect(),
            (0..20_000).map(|_| rng.i64(i64::MIN..=i64::MAX)).collect(),
        ];
        for keys in cases {
            let input = rows(&keys, 30);
            // The smallest budget: a run every few rows, hundreds of runs.
            let (out, runs) = sorted(&input, 0);
            assert!(runs > 10, "{runs} runs");
            assert_eq!(out, expected(&input));
            // Rows larger than the read buffers of the merge, and than the budget.
            let input = rows(&keys[..300], 9000);
            let (out, runs) = sorted(&input, 0);
            assert!(runs > 100, "{runs} runs");
            assert_eq!(out, expected(&input));
        }
    }

    #[test]
    fn nothing_spilled_within_the_budget() {
        let input = rows(&[5, 3, 5, 1, 3, 5], 10);
        let (out, runs) = sorted(&input, DEFAULT_BUDGET);
        assert_eq!(runs, 0);
        assert_eq!(out, expected(&input));
        let (out, _) = sorted(&[], 0);
        assert!(out.is_empty());
        // Empty rows are rows too.
        let input: Vec<(i64, Vec<u8>)> = (0..5000).map(|i| ((i * 7919) % 13, Vec::new())).collect();
        let (out, runs) = sorted(&input, 0);
        assert!(runs > 0);
        assert_eq!(out.len(), 5000);
    }

    #[test]
    fn an_error_of_the_output_comes_back_as_it_came() {
        let mut sorter = SortedRows::new(0);
        for (k, row) in rows(&(0..2000).rev().collect::<Vec<_>>(), 20) {
            sorter.push(k, &row).unwrap();
        }
        assert!(sorter.spilled_runs() > 0);
        let e = sorter
            .finish(|_| Err(io::Error::from(io::ErrorKind::BrokenPipe)))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert!(SpillError::of(&e).is_none());
    }

    #[test]
    fn a_spill_error_says_what_and_where() {
        let e = SpillError::wrap("create", io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let spill = SpillError::of(&e).expect("a spill error");
        let text = spill.to_string();
        assert!(text.starts_with("cannot create the temporary file"), "{text}");
        assert!(text.contains(&std::env::temp_dir().display().to_string()), "{text}");
    }

    proptest! {
        #[test]
        fn any_rows_any_budget(
            keys in proptest::collection::vec(-5i64..5, 0..400),
            pad in 0usize..300,
            budget in 0usize..40_000,
        ) {
            let input = rows(&keys, pad);
            let (out, _) = sorted(&input, budget);
            prop_assert_eq!(out, expected(&input));
        }
    }
}
