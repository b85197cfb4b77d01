//! Rows sorted by a key in bounded memory: an external merge sort, for `report --by job`
//! (rows by start time, with memory flat for millions of job runs).
//!
//! Each row arrives with its key as *packed* bytes (whatever its caller chose; `--by job`
//! packs a row's fields) and is rendered to its output bytes (a CSV line, a table line, a
//! JSON object, an HTML row) by the caller's [`Render`]. Packed rows are kept in one byte
//! buffer plus a small index; when the buffer is full it goes to a second thread, which
//! renders its rows, sorts them by key (a stable sort: equal keys keep the order they came
//! in) and writes them in that order, as one sorted *run*, to an unnamed temporary file,
//! while the first thread goes on reading and pricing records into another buffer. At the
//! end the runs and the last buffer (rendered and sorted, never written) are merged (a
//! k-way merge on a heap, ties going to the earlier run, so the whole sort is stable) and
//! handed out one by one. Rows that never fill a buffer never touch the disk or the thread.
//!
//! Why so:
//! - Bytes, not row structures: one allocation for all rows (no string per field), and
//!   the rendered bytes go to the file and back as they are.
//! - Rendering on the second thread: writing a row's text (its figures digit by digit, its
//!   times) is about a third of `--by job`'s work; with the sort and the writing of runs it
//!   goes to the machine's other core, which pays for the merge at the end (measured in
//!   docs/performance.md). Two packed buffers at most: the thread takes the next only when
//!   it is done with the last (a rendezvous), so a slow disk slows the report, not memory.
//! - One temporary file for every run, read with `pread` at each run's place, so the number
//!   of open files does not grow with the input; each run's read buffer shares one budget
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
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

/// The default budget: a run of millions of jobs peaks at about this much more than the
/// report itself, far under the 100 MB its benchmark allows. Buffers of a quarter of it
/// (8 MiB, about 40,000 packed `--by job` rows of about 190 bytes) keep a small report
/// off the disk and the merge to about 20 runs per million jobs.
pub(crate) const DEFAULT_BUDGET: usize = 32 << 20;

/// Renders one packed row (as pushed) to its output bytes, appended to the vector.
pub(crate) type Render = Box<dyn FnMut(&[u8], &mut Vec<u8>) -> io::Result<()> + Send>;

/// The smallest read buffer of a run during the merge.
const MIN_READ: usize = 4 << 10;
/// The largest: past this, larger reads gain little.
const MAX_READ: usize = 256 << 10;

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
pub(crate) struct SpillError {
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
    pub(crate) fn of(e: &io::Error) -> Option<&SpillError> {
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

/// Rows held in memory: their bytes, one after the other, and an index.
#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl Buffer {
    /// Reserved, not touched: the pages count only once rows fill them. An eighth for the
    /// index: rows are about 200 bytes, an entry 16.
    fn with_budget(budget: usize) -> Buffer {
        Buffer {
            bytes: Vec::with_capacity(budget - budget / 8),
            entries: Vec::with_capacity(budget / 8 / ENTRY),
        }
    }

    fn sort(&mut self) {
        // Stable: rows are placed in the order they came, so (key, place) orders equal
        // keys as they came, and the unstable sort, faster on random keys, is stable here.
        self.entries.sort_unstable_by_key(|e| (e.key, e.at));
    }

    fn row(&self, e: &Entry) -> &[u8] {
        &self.bytes[e.at as usize..][..e.len as usize]
    }
}

/// What the thread is given: a full buffer to write as a run, or the last one, to render
/// and sort and hand back.
enum Job {
    Full(Buffer),
    Last(Buffer),
}

/// What the thread hands back: the runs written, and the last buffer, rendered and sorted.
struct Spilled {
    file: File,
    runs: Vec<(u64, u64)>,
    last: Buffer,
}

/// Renders every row of `packed` into `rendered` (emptied first), keys kept, and sorts it.
fn render_sorted(render: &mut Render, packed: &Buffer, rendered: &mut Buffer) -> io::Result<()> {
    rendered.bytes.clear();
    rendered.entries.clear();
    for e in &packed.entries {
        let at = rendered.bytes.len();
        render(packed.row(e), &mut rendered.bytes)?;
        let len = rendered.bytes.len() - at;
        rendered.entries.push(Entry {
            key: e.key,
            at: u32::try_from(at).map_err(io::Error::other)?,
            len: u32::try_from(len).map_err(|_| io::Error::other("a row of more than 4 GiB"))?,
        });
    }
    rendered.sort();
    Ok(())
}

/// The thread's work: each full buffer rendered, sorted and written as a run.
fn spill(mut render: Render, jobs: Receiver<Job>, done: SyncSender<Buffer>) -> io::Result<Spilled> {
    let file = tempfile::tempfile().map_err(|e| SpillError::wrap("create", e))?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let mut at = 0u64;
    let mut runs = Vec::new();
    let mut rendered = Buffer::default();
    for job in jobs {
        let packed = match job {
            Job::Full(b) => b,
            Job::Last(b) => {
                render_sorted(&mut render, &b, &mut rendered)?;
                let file = out
                    .into_inner()
                    .map_err(|e| SpillError::wrap("write", e.into_error()))?;
                return Ok(Spilled {
                    file,
                    runs,
                    last: rendered,
                });
            }
        };
        render_sorted(&mut render, &packed, &mut rendered)?;
        // Back for reuse while this one is written (the first thread may be done: then
        // nobody needs it).
        let mut packed = packed;
        packed.bytes.clear();
        packed.entries.clear();
        let _ = done.try_send(packed);
        let start = at;
        for e in &rendered.entries {
            let row = rendered.row(e);
            let mut head = [0u8; HEAD];
            head[..8].copy_from_slice(&e.key.to_le_bytes());
            head[8..].copy_from_slice(&e.len.to_le_bytes());
            out.write_all(&head)
                .and_then(|()| out.write_all(row))
                .map_err(|e| SpillError::wrap("write", e))?;
            at += (HEAD + row.len()) as u64;
        }
        runs.push((start, at));
    }
    Err(io::Error::other("the rows' sort ended before its last rows"))
}

/// The thread that renders, sorts and writes full buffers while the rows go on coming.
struct Spiller {
    jobs: SyncSender<Job>,
    /// Buffers the thread is done with, emptied, for reuse.
    done: Receiver<Buffer>,
    thread: JoinHandle<io::Result<Spilled>>,
    runs: usize,
    /// Packed buffers made (at most two: one filling, one the thread renders).
    buffers: usize,
}

impl Spiller {
    fn start(render: Render) -> io::Result<Spiller> {
        // A rendezvous: a buffer is handed over only when the thread is done with the last.
        let (jobs, to_do) = mpsc::sync_channel::<Job>(0);
        let (done_tx, done) = mpsc::sync_channel::<Buffer>(1);
        let thread = std::thread::Builder::new()
            .name("sort-rows".into())
            .spawn(move || spill(render, to_do, done_tx))
            .map_err(|e| SpillError::wrap("start a thread to write", e))?;
        Ok(Spiller {
            jobs,
            done,
            thread,
            runs: 0,
            buffers: 1,
        })
    }

    /// Waits for the thread: what it wrote, or its error.
    fn join(self) -> io::Result<Spilled> {
        drop(self.jobs);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the thread sorting the rows panicked")))
    }
}

/// Rows with their keys, handed back by [`SortedRows::finish`] in key order, stably.
pub(crate) struct SortedRows {
    /// The budget of one packed buffer: a quarter of the whole (two are held while the
    /// thread works, and the rendered rows of one).
    quarter: usize,
    current: Buffer,
    /// Until the thread starts (then it has it).
    render: Option<Render>,
    spiller: Option<Spiller>,
    rows: u64,
}

impl SortedRows {
    /// Holds about `budget` bytes of rows and index (at least 16 KiB, and a row larger than
    /// a quarter of it alone), and as much again for read buffers while merging; `render`
    /// makes each row's output bytes from what was pushed.
    pub(crate) fn new(budget: usize, render: Render) -> SortedRows {
        SortedRows {
            quarter: budget.clamp(4 * MIN_READ, u32::MAX as usize / 2) / 4,
            current: Buffer::default(),
            render: Some(render),
            spiller: None,
            rows: 0,
        }
    }

    /// Rows pushed so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.rows
    }

    /// Runs handed to the temporary file so far.
    #[cfg(test)]
    pub(crate) fn spilled_runs(&self) -> usize {
        self.spiller.as_ref().map_or(0, |s| s.runs)
    }

    /// Adds `row` (packed) with its `key`. When the buffer is full, it is handed to the
    /// thread that renders it, sorts it and writes it as one run of the temporary file.
    #[cfg(test)]
    pub(crate) fn push(&mut self, key: i64, row: &[u8]) -> io::Result<()> {
        self.push_with(key, row.len(), |b| b.extend_from_slice(row))
    }

    /// Adds a row of `len` bytes, which `pack` appends to the buffer (no copy of it on the
    /// way), with its `key`. When the buffer is full, it is handed to the thread that
    /// renders it, sorts it and writes it as one run of the temporary file.
    pub(crate) fn push_with(&mut self, key: i64, len: usize, pack: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let b = &self.current;
        if b.bytes.capacity() == 0 {
            self.current = Buffer::with_budget(self.quarter);
        } else if !b.entries.is_empty()
            && (b.bytes.len() + len > b.bytes.capacity() || b.entries.len() == b.entries.capacity())
        {
            self.spill_run()?;
        }
        // Alone in the buffer (a row larger than the budget) or within the budget, which
        // is under u32::MAX: the place fits; a row of 4 GiB is refused, not truncated.
        let b = &mut self.current;
        let at = u32::try_from(b.bytes.len()).map_err(io::Error::other)?;
        pack(&mut b.bytes);
        let len =
            u32::try_from(b.bytes.len() - at as usize).map_err(|_| io::Error::other("a row of more than 4 GiB"))?;
        b.entries.push(Entry { key, at, len });
        self.rows += 1;
        Ok(())
    }

    fn spill_run(&mut self) -> io::Result<()> {
        if self.spiller.is_none() {
            let render = self.render.take().ok_or_else(|| io::Error::other("no renderer"))?;
            self.spiller = Some(Spiller::start(render)?);
        }
        let Some(spiller) = self.spiller.as_mut() else {
            return Ok(());
        };
        // The buffer the thread was given last (once it has rendered it), else the second.
        let next = match spiller.done.try_recv() {
            Ok(b) => Some(b),
            Err(_) if spiller.buffers < 2 => {
                spiller.buffers += 1;
                Some(Buffer::with_budget(self.quarter))
            }
            Err(_) => spiller.done.recv().ok(),
        };
        let sent = next.is_some_and(|next| {
            let full = std::mem::replace(&mut self.current, next);
            spiller.runs += 1;
            spiller.jobs.send(Job::Full(full)).is_ok()
        });
        if !sent {
            return Err(self.stopped());
        }
        Ok(())
    }

    /// The thread stopped: its error.
    fn stopped(&mut self) -> io::Error {
        match self.spiller.take().map(Spiller::join) {
            Some(Err(e)) => e,
            _ => io::Error::other("the thread sorting the rows stopped"),
        }
    }

    /// Hands every row, rendered, to `emit` in key order (equal keys in the order pushed).
    /// An error of `emit` is returned as it came; one of the temporary file is a
    /// [`SpillError`].
    pub(crate) fn finish(mut self, mut emit: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let last = std::mem::take(&mut self.current);
        let Some(spiller) = self.spiller.take() else {
            let mut rendered = Buffer::default();
            if let Some(render) = self.render.as_mut() {
                render_sorted(render, &last, &mut rendered)?;
            }
            for e in &rendered.entries {
                emit(rendered.row(e))?;
            }
            return Ok(());
        };
        let sent = spiller.jobs.send(Job::Last(last)).is_ok();
        let spill = spiller.join()?;
        if !sent {
            return Err(io::Error::other("the thread sorting the rows stopped"));
        }
        let file = spill.file;
        let budget = self.quarter * 4;
        // The runs' read buffers share one more budget (a few MiB for a few runs): the
        // merge holds at most about twice the budget, whatever the number of rows.
        let read = (budget / spill.runs.len()).clamp(MIN_READ, MAX_READ);
        let mut sources: Vec<Source<'_>> = spill
            .runs
            .iter()
            .map(|&(start, end)| Source::File(RunReader::new(&file, start, end, read)))
            .collect();
        // The rows still in memory came last: the last run.
        sources.push(Source::Memory {
            bytes: &spill.last.bytes,
            entries: &spill.last.entries,
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

    /// Renders a row as itself.
    fn copy() -> Render {
        Box::new(|row, out| {
            out.extend_from_slice(row);
            Ok(())
        })
    }

    fn sorted(rows: &[(i64, Vec<u8>)], budget: usize) -> (Vec<Vec<u8>>, usize) {
        let mut sorter = SortedRows::new(budget, copy());
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
        let mut sorter = SortedRows::new(0, copy());
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

    /// Each row is rendered once, in memory or spilled, and a render error comes back.
    #[test]
    fn rows_are_rendered_once() {
        for budget in [0, DEFAULT_BUDGET] {
            let mut sorter = SortedRows::new(
                budget,
                Box::new(|row, out| {
                    out.push(b'<');
                    out.extend_from_slice(row);
                    out.push(b'>');
                    Ok(())
                }),
            );
            for k in (0..3000).rev() {
                sorter.push(k, format!("{k}").as_bytes()).unwrap();
            }
            let mut out = Vec::new();
            sorter
                .finish(|row| {
                    out.push(String::from_utf8(row.to_vec()).unwrap());
                    Ok(())
                })
                .unwrap();
            let expected: Vec<String> = (0..3000).map(|k| format!("<{k}>")).collect();
            assert_eq!(out, expected, "budget {budget}");
        }
        for budget in [0, DEFAULT_BUDGET] {
            let mut sorter = SortedRows::new(budget, Box::new(|_, _| Err(io::Error::other("cannot render"))));
            let pushed = (0..3000).try_for_each(|k| sorter.push(k, &[b'x'; 40]));
            let e = pushed.and_then(|()| sorter.finish(|_| Ok(()))).unwrap_err();
            assert_eq!(e.to_string(), "cannot render", "budget {budget}");
        }
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
