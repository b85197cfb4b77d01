//! slurm.conf as cost-tags reads and edits it.
//!
//! The installer needs three things from Slurm's configuration: where each setting it
//! cares about ([`KEYS`]) is in effect (file and line, since Slurm follows `include`
//! lines and the last occurrence wins), whether cost-tags' own file is already included,
//! and a way to extend a setting's comma list in place and to take that back later. A
//! site's slurm.conf is precious and often hand-written, so every edit touches only the
//! value on one line and keeps everything else (comments, quotes, spacing, CRLF line ends,
//! a missing final newline) byte for byte.
//!
//! Everything here is a pure function of text: files come in through a `read` callback
//! and edited text goes back to the caller, which writes it atomically, keeps the backup
//! and the manifest. That keeps the rules testable without a filesystem or a cluster, and
//! keeps the one place that writes to /etc elsewhere. The behaviour follows the former
//! bash installer (`scripts/multi-runner/cost-tags.sh`: `conf_scan_awk`, `edit_value_awk`,
//! `semantic_revert`), with the differences noted where they are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The keys the installer reads or extends, lowercase.
pub(crate) const KEYS: [&str; 9] = [
    "jobsubmitplugins",
    "prologflags",
    "accountingstoreflags",
    "accountingstoragetype",
    "prolog",
    "epilog",
    "prologslurmctld",
    "epilogslurmctld",
    "slurmuser",
];

/// Where a key is set: the line to edit when extending it, and its value there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Occurrence {
    /// The file the line is in (as resolved from the includes).
    pub file: PathBuf,
    /// 1-based line number in `file`.
    pub line: usize,
    /// The first word of the value, unquoted (the whole quoted string if it is quoted).
    pub value: String,
}

/// What [`scan`] found in slurm.conf and the files it includes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Scan {
    /// Files read, in the order Slurm reads them.
    pub files: Vec<PathBuf>,
    /// Lowercase key -> its last occurrence (the one in effect).
    pub keys: BTreeMap<String, Occurrence>,
    /// An include resolves to `our_conf` (which is not read).
    pub ours_included: bool,
    /// Included files not found; the caller warns "included file X not found (ignored)".
    /// slurm.conf itself is listed here too if `read` does not find it.
    pub missing_includes: Vec<PathBuf>,
}

impl Scan {
    /// The occurrence in effect for `key`, whatever its case (Slurm keys are
    /// case-insensitive: `prologflags` is `PrologFlags`).
    pub(crate) fn get(&self, key: &str) -> Option<&Occurrence> {
        self.keys.get(&key.to_lowercase())
    }

    /// `SlurmUser`, who runs slurmctld (and so project-check and PrologSlurmctld);
    /// `slurm`, ParallelCluster's, when slurm.conf does not say.
    pub(crate) fn slurm_user(&self) -> String {
        self.get("slurmuser")
            .map(|o| o.value.clone())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "slurm".to_string())
    }
}

/// Where includes resolve: relative ones against conf_dir; absolute ones under root first
/// when root is Some and the rooted file exists (read returns Some), else as written; any
/// path containing '%' is skipped (expanded by Slurm only).
pub(crate) struct Includes<'a> {
    /// The directory slurm.conf is in (already under the root, if any).
    pub conf_dir: &'a Path,
    /// A test or image root the absolute paths in the files are relative to.
    pub root: Option<&'a Path>,
    /// cost-tags' own file: noted when included, never read (its settings are ours).
    pub our_conf: &'a Path,
}

/// One line of a configuration file that matters to the scan.
enum Item {
    /// `include PATH`, the path as written.
    Include(String),
    /// A key of [`KEYS`] (lowercase) and its value.
    Key(String, String),
}

/// A file being read, and how far: includes are followed depth first, so the including
/// file's remaining lines wait on a stack (a stack rather than recursion, so that no chain
/// of includes can overflow the thread's stack).
struct Frame {
    file: PathBuf,
    items: std::vec::IntoIter<(usize, Item)>,
}

/// Reads slurm_conf and every file it includes (depth first, in order, each file once),
/// collecting KEYS. `read` returns Ok(None) when the file does not exist.
pub(crate) fn scan(
    slurm_conf: &Path,
    inc: &Includes,
    read: &mut dyn FnMut(&Path) -> std::io::Result<Option<String>>,
) -> std::io::Result<Scan> {
    let mut out = Scan::default();
    let mut seen = BTreeSet::new();
    let mut stack = Vec::new();
    visit(
        slurm_conf.to_path_buf(),
        None,
        inc,
        read,
        &mut seen,
        &mut out,
        &mut stack,
    )?;
    while let Some(frame) = stack.last_mut() {
        let Some((line, item)) = frame.items.next() else {
            stack.pop();
            continue;
        };
        match item {
            Item::Key(key, value) => {
                let file = frame.file.clone();
                out.keys.insert(key, Occurrence { file, line, value });
            }
            Item::Include(p) => {
                if let Some((path, content)) = resolve_include(&p, inc, read)? {
                    visit(path, content, inc, read, &mut seen, &mut out, &mut stack)?;
                }
            }
        }
    }
    Ok(out)
}

/// Starts reading `path` unless it was seen already or is ours. `content` is the file when
/// resolving its include already read it (to learn whether it exists under the root).
fn visit(
    path: PathBuf,
    content: Option<String>,
    inc: &Includes,
    read: &mut dyn FnMut(&Path) -> std::io::Result<Option<String>>,
    seen: &mut BTreeSet<PathBuf>,
    out: &mut Scan,
    stack: &mut Vec<Frame>,
) -> std::io::Result<()> {
    if !seen.insert(path.clone()) {
        return Ok(());
    }
    if path == inc.our_conf {
        out.ours_included = true;
        return Ok(());
    }
    let content = match content {
        Some(c) => Some(c),
        None => read(&path)?,
    };
    let Some(text) = content else {
        out.missing_includes.push(path);
        return Ok(());
    };
    out.files.push(path.clone());
    stack.push(Frame {
        file: path,
        items: parse_items(&text).into_iter(),
    });
    Ok(())
}

/// The file an `include` names, as Slurm would open it, with its text when finding it
/// needed a read; None for paths only Slurm can expand (`%c` and the like).
fn resolve_include(
    p: &str,
    inc: &Includes,
    read: &mut dyn FnMut(&Path) -> std::io::Result<Option<String>>,
) -> std::io::Result<Option<(PathBuf, Option<String>)>> {
    if p.contains('%') {
        return Ok(None);
    }
    if !p.starts_with('/') {
        return Ok(Some((inc.conf_dir.join(p), None)));
    }
    if let Some(root) = inc.root {
        let rooted = root.join(p.trim_start_matches('/'));
        // Our own file is recognised under the root even before it exists there.
        if rooted == inc.our_conf {
            return Ok(Some((rooted, None)));
        }
        if let Some(text) = read(&rooted)? {
            return Ok(Some((rooted, Some(text))));
        }
    }
    Ok(Some((PathBuf::from(p), None)))
}

/// The includes and [`KEYS`] of a file, with their 1-based line numbers, in order.
fn parse_items(text: &str) -> Vec<(usize, Item)> {
    let mut items = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw).trim_start_matches(BLANKS);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(p) = include_path(line) {
            items.push((i + 1, Item::Include(p.to_string())));
        } else if let Some(parts) = Parts::of(line) {
            let key = parts.key.to_lowercase();
            if KEYS.contains(&key.as_str()) {
                items.push((i + 1, Item::Key(key, parts.val.to_string())));
            }
        }
    }
    items
}

/// The path of an `include` line (leading blanks already gone): `include` in any case, a
/// blank, the path, and perhaps a `# comment`.
fn include_path(line: &str) -> Option<&str> {
    let b = line.as_bytes();
    let word = b.get(..7)?;
    if !word.eq_ignore_ascii_case(b"include") || !b.get(7).is_some_and(|c| BLANKS.contains(&char::from(*c))) {
        return None;
    }
    // Bytes 0..8 are ASCII, so 8 is a character boundary.
    let p = line.get(8..)?.trim_start_matches(BLANKS);
    let p = p.split('#').next().unwrap_or_default();
    Some(p.trim_end_matches(BLANKS))
}

/// The blanks slurm.conf separates words with.
const BLANKS: [char; 2] = [' ', '\t'];

fn is_blank(c: &u8) -> bool {
    *c == b' ' || *c == b'\t'
}

/// A `KEY=value` line cut where an edit needs it: `pre` + `open` + `val` + `post` is the
/// line. `pre` runs from the start through `=` and the blanks after it; `open` is the
/// opening quote if any; `post` is the rest (closing quote, spacing, comment).
struct Parts<'a> {
    key: &'a str,
    pre: &'a str,
    open: &'a str,
    val: &'a str,
    post: &'a str,
}

impl<'a> Parts<'a> {
    /// None unless the line is `[blanks]KEY[blanks]=...` with a key of ASCII letters.
    fn of(line: &'a str) -> Option<Self> {
        let b = line.as_bytes();
        let lead = b.iter().take_while(|c| is_blank(c)).count();
        let klen = b.get(lead..)?.iter().take_while(|c| c.is_ascii_alphabetic()).count();
        if klen == 0 {
            return None;
        }
        let mut i = lead + klen;
        i += b.get(i..)?.iter().take_while(|c| is_blank(c)).count();
        if b.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        i += b.get(i..)?.iter().take_while(|c| is_blank(c)).count();
        // Every index so far follows an ASCII byte, so the slices below cannot split a character.
        let key = line.get(lead..lead + klen)?;
        let (pre, rest) = line.split_at_checked(i)?;
        let parts = if let Some(quoted) = rest.strip_prefix('"') {
            // An unclosed quote is left unclosed (the awk closed it): nothing but the value changes.
            let end = quoted.find('"').unwrap_or(quoted.len());
            let (val, post) = quoted.split_at_checked(end)?;
            Parts {
                key,
                pre,
                open: "\"",
                val,
                post,
            }
        } else {
            let end = rest.find([' ', '\t', '#', '\r']).unwrap_or(rest.len());
            let (val, post) = rest.split_at_checked(end)?;
            Parts {
                key,
                pre,
                open: "",
                val,
                post,
            }
        };
        Some(parts)
    }

    /// The line with `val` in place of the value.
    fn with_value(&self, val: &str) -> String {
        [self.pre, self.open, val, self.post].concat()
    }
}

/// Whether the comma list holds item: case-insensitive, `job_submit/lua` counts as `lua`.
/// Empty entries hold nothing.
pub(crate) fn has_item(list: &str, item: &str) -> bool {
    let item = item.to_lowercase();
    if item.is_empty() {
        return false;
    }
    list.to_lowercase()
        .split(',')
        .any(|t| t.strip_prefix("job_submit/").unwrap_or(t) == item)
}

/// `text` with ITEM appended to the comma list of the KEY=value on line `line` (1-based).
/// Quotes, spacing, a trailing `# comment`, other lines and a missing final newline are
/// all kept byte for byte.
pub(crate) fn add_item(text: &str, line: usize, item: &str) -> String {
    edit_line(text, line, |content| {
        let parts = Parts::of(content)?;
        let val = if parts.val.is_empty() {
            item.to_string()
        } else {
            format!("{},{item}", parts.val)
        };
        Some(parts.with_value(&val))
    })
}

/// `text` with the LAST occurrence of ITEM (case-insensitive) removed from the list on
/// `line`; unchanged if absent. The entry must equal ITEM (`job_submit/lua` is not `lua`
/// here): only what the installer appended is taken back. Other entries, empty ones
/// included, keep their order and commas.
pub(crate) fn remove_item(text: &str, line: usize, item: &str) -> String {
    let item = item.to_lowercase();
    edit_line(text, line, |content| {
        let parts = Parts::of(content)?;
        let mut list: Vec<&str> = parts.val.split(',').collect();
        let drop = list.iter().rposition(|t| t.to_lowercase() == item)?;
        list.remove(drop);
        Some(parts.with_value(&list.join(",")))
    })
}

/// The 1-based line number of the last `KEY=` line (key case-insensitive, leading blanks
/// allowed), if any.
pub(crate) fn last_key_line(text: &str, key: &str) -> Option<usize> {
    let key = key.to_lowercase();
    lines(text)
        .enumerate()
        .filter(|(_, l)| Parts::of(split_end(l).0).is_some_and(|p| p.key.to_lowercase() == key))
        .last()
        .map(|(i, _)| i + 1)
}

/// The value (first word unquoted) of line `line`, as scan reads it.
pub(crate) fn value_at(text: &str, line: usize) -> Option<String> {
    let l = lines(text).nth(line.checked_sub(1)?)?;
    Parts::of(split_end(l).0).map(|p| p.val.to_string())
}

/// `text` with `line` appended as its last line (a newline added first if text is
/// non-empty and lacks one), then "\n".
pub(crate) fn append_line(text: &str, line: &str) -> String {
    let mut out = String::with_capacity(text.len() + line.len() + 2);
    out.push_str(text);
    if !text.is_empty() && !text.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    out
}

/// A change the installer made to a configuration file, as its manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// ITEM appended to KEY's comma list (where KEY is in effect).
    Merge { key: String, item: String },
    /// A whole line appended (e.g. `include cost-tags_slurm.conf`).
    Line(String),
}

/// What [`revert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reverted {
    /// The text without the changes.
    pub text: String,
    /// One sentence per change undone, newest first, e.g. "removed lua from
    /// JobSubmitPlugins", "removed the line 'include cost-tags_slurm.conf'".
    pub done: Vec<String>,
    /// Indexes into `changes` (ascending) whose change is no longer in the text.
    pub gone: Vec<usize>,
}

/// Undoes `changes` (listed in the order they were made), newest first: a Merge removes
/// its item from the last KEY= line when that line's list holds it; a Line removes the
/// last line equal to it. Everything else stays byte for byte.
///
/// Newest first, so that a line appended after an earlier one is found as it was left.
/// A change someone already undid is reported in `gone` rather than guessed at: the
/// caller drops its record. Two departures from the bash installer: a Merge whose line
/// only holds a different spelling of the item (`job_submit/lua` for `lua`) is gone, not
/// "removed" (that entry is the site's, not ours); and a Line also matches the same line
/// ending in CRLF. A Line that was appended to a text without a final newline leaves that
/// newline behind (nothing records that it was missing).
pub(crate) fn revert(text: &str, changes: &[Change]) -> Reverted {
    let mut out = Reverted {
        text: text.to_string(),
        done: Vec::new(),
        gone: Vec::new(),
    };
    for (i, change) in changes.iter().enumerate().rev() {
        let undone = match change {
            Change::Merge { key, item } => {
                revert_merge(&out.text, key, item).map(|t| (t, format!("removed {item} from {key}")))
            }
            Change::Line(line) => last_line_equal(&out.text, line)
                .map(|n| (delete_line(&out.text, n), format!("removed the line '{line}'"))),
        };
        match undone {
            Some((t, what)) => {
                out.text = t;
                out.done.push(what);
            }
            None => out.gone.push(i),
        }
    }
    out.gone.sort_unstable();
    out
}

/// The text without ITEM in KEY's list, if the list in effect (the last KEY= line) holds it.
fn revert_merge(text: &str, key: &str, item: &str) -> Option<String> {
    let n = last_key_line(text, key)?;
    if !has_item(&value_at(text, n)?, item) {
        return None;
    }
    let edited = remove_item(text, n, item);
    (edited != text).then_some(edited)
}

/// The 1-based number of the last line equal to `want` (its line end, LF or CRLF, aside).
fn last_line_equal(text: &str, want: &str) -> Option<usize> {
    lines(text)
        .enumerate()
        .filter(|(_, l)| split_end(l).0 == want)
        .last()
        .map(|(i, _)| i + 1)
}

/// `text` without line `n` (1-based) and its line end; unchanged if there is no such line.
fn delete_line(text: &str, n: usize) -> String {
    lines(text)
        .enumerate()
        .filter(|(i, _)| i + 1 != n)
        .map(|(_, l)| l)
        .collect()
}

/// The lines of `text`, each with its line end ("\n" or "\r\n"; none for a last line
/// without one). Numbering matches awk's NR and the scan's.
fn lines(text: &str) -> std::str::SplitInclusive<'_, char> {
    text.split_inclusive('\n')
}

/// A line cut into its content and its line end ("\r\n", "\n", a lone final "\r", or "").
fn split_end(line: &str) -> (&str, &str) {
    let content = line.strip_suffix('\n').unwrap_or(line);
    let content = content.strip_suffix('\r').unwrap_or(content);
    line.split_at_checked(content.len()).unwrap_or((line, ""))
}

/// `text` with line `n` (1-based) replaced by `f` of its content, its line end kept;
/// unchanged when there is no such line or `f` returns None.
fn edit_line(text: &str, n: usize, f: impl FnOnce(&str) -> Option<String>) -> String {
    let Some(index) = n.checked_sub(1) else {
        return text.to_string();
    };
    let mut f = Some(f);
    let mut out = String::with_capacity(text.len() + 32);
    for (i, l) in lines(text).enumerate() {
        let (content, end) = split_end(l);
        match f.take_if(|_| i == index).and_then(|f| f(content)) {
            Some(new) => {
                out.push_str(&new);
                out.push_str(end);
            }
            None => out.push_str(l),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
        list.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())).collect()
    }

    /// Scans /etc/slurm/slurm.conf over in-memory files; also returns the paths read.
    fn scan_in(fs: &BTreeMap<PathBuf, String>, root: Option<&str>) -> (Scan, Vec<PathBuf>) {
        let conf_dir = match root {
            Some(r) => Path::new(r).join("etc/slurm"),
            None => PathBuf::from("/etc/slurm"),
        };
        let our_conf = conf_dir.join("cost-tags_slurm.conf");
        let inc = Includes {
            conf_dir: &conf_dir,
            root: root.map(Path::new),
            our_conf: &our_conf,
        };
        let mut reads = Vec::new();
        let mut read = |p: &Path| {
            reads.push(p.to_path_buf());
            Ok(fs.get(p).cloned())
        };
        let s = scan(&conf_dir.join("slurm.conf"), &inc, &mut read).unwrap();
        (s, reads)
    }

    fn occ(file: &str, line: usize, value: &str) -> Occurrence {
        Occurrence {
            file: PathBuf::from(file),
            line,
            value: value.to_string(),
        }
    }

    #[test]
    fn includes_relative_absolute_percent_missing_cycle_ours() {
        let fs = files(&[
            (
                "/etc/slurm/slurm.conf",
                "ClusterName=c\n\
                 include pcluster/slurm_parallelcluster.conf   # ParallelCluster's\n\
                 Include\t/etc/slurm/abs.conf\n\
                 include /etc/slurm/nodes_%c.conf\n\
                 include missing.conf\n\
                 include cost-tags_slurm.conf\n\
                 INCLUDE slurm.conf\n",
            ),
            (
                "/etc/slurm/pcluster/slurm_parallelcluster.conf",
                "PrologFlags=Contain\ninclude slurm.conf\n",
            ),
            ("/etc/slurm/abs.conf", "JobSubmitPlugins=require_timelimit\n"),
            ("/etc/slurm/cost-tags_slurm.conf", "JobSubmitPlugins=lua\n"),
        ]);
        let (s, reads) = scan_in(&fs, None);
        assert_eq!(
            s.files,
            vec![
                PathBuf::from("/etc/slurm/slurm.conf"),
                PathBuf::from("/etc/slurm/pcluster/slurm_parallelcluster.conf"),
                PathBuf::from("/etc/slurm/abs.conf"),
            ]
        );
        assert!(s.ours_included);
        assert_eq!(s.missing_includes, vec![PathBuf::from("/etc/slurm/missing.conf")]);
        assert_eq!(
            s.get("prologflags"),
            Some(&occ("/etc/slurm/pcluster/slurm_parallelcluster.conf", 1, "Contain"))
        );
        assert_eq!(
            s.get("JobSubmitPlugins"),
            Some(&occ("/etc/slurm/abs.conf", 1, "require_timelimit"))
        );
        // Ours is never read, the '%' path is not even tried, and the includes of
        // slurm.conf (relative ones resolve against conf_dir) do not read it again.
        assert!(!reads.contains(&PathBuf::from("/etc/slurm/cost-tags_slurm.conf")));
        assert!(!reads.iter().any(|p| p.to_string_lossy().contains('%')));
        let mut sorted = reads.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), reads.len(), "a file was read twice: {reads:?}");
    }

    #[test]
    fn a_cycle_is_read_once() {
        let fs = files(&[
            ("/etc/slurm/slurm.conf", "include a.conf\nPrologFlags=x\n"),
            ("/etc/slurm/a.conf", "include /etc/slurm/b.conf\n"),
            (
                "/etc/slurm/b.conf",
                "include a.conf\ninclude /etc/slurm/slurm.conf\nEpilog=/e\n",
            ),
        ]);
        let (s, reads) = scan_in(&fs, None);
        assert_eq!(reads.len(), 3);
        assert_eq!(s.files.len(), 3);
        assert_eq!(s.get("epilog"), Some(&occ("/etc/slurm/b.conf", 3, "/e")));
        assert_eq!(s.get("prologflags"), Some(&occ("/etc/slurm/slurm.conf", 2, "x")));
        assert!(s.missing_includes.is_empty());
        assert!(!s.ours_included);
    }

    #[test]
    fn absolute_includes_under_a_root() {
        let fs = files(&[
            (
                "/r/etc/slurm/slurm.conf",
                "include /etc/slurm/in_root.conf\ninclude /opt/outside.conf\n",
            ),
            ("/r/etc/slurm/in_root.conf", "Prolog=/in/root\n"),
            ("/opt/outside.conf", "Epilog=/outside\n"),
        ]);
        let (s, _) = scan_in(&fs, Some("/r"));
        assert_eq!(s.get("prolog"), Some(&occ("/r/etc/slurm/in_root.conf", 1, "/in/root")));
        // Not under the root: taken as written.
        assert_eq!(s.get("epilog"), Some(&occ("/opt/outside.conf", 1, "/outside")));
        assert!(s.missing_includes.is_empty());
    }

    #[test]
    fn our_conf_under_a_root_is_detected_even_before_it_exists() {
        let fs = files(&[("/r/etc/slurm/slurm.conf", "include /etc/slurm/cost-tags_slurm.conf\n")]);
        let (s, reads) = scan_in(&fs, Some("/r"));
        assert!(s.ours_included);
        assert!(s.missing_includes.is_empty());
        assert_eq!(reads, vec![PathBuf::from("/r/etc/slurm/slurm.conf")]);
    }

    #[test]
    fn a_missing_slurm_conf_is_reported() {
        let (s, _) = scan_in(&BTreeMap::new(), None);
        assert!(s.files.is_empty());
        assert_eq!(s.missing_includes, vec![PathBuf::from("/etc/slurm/slurm.conf")]);
    }

    #[test]
    fn read_errors_are_returned() {
        let conf_dir = Path::new("/etc/slurm");
        let inc = Includes {
            conf_dir,
            root: None,
            our_conf: Path::new("/etc/slurm/cost-tags_slurm.conf"),
        };
        let mut read = |_: &Path| Err(std::io::Error::other("boom"));
        assert!(scan(Path::new("/etc/slurm/slurm.conf"), &inc, &mut read).is_err());
    }

    #[test]
    fn keys_are_case_insensitive_and_the_last_wins() {
        let fs = files(&[
            (
                "/etc/slurm/slurm.conf",
                "prologflags=contain\n\
                 # PrologFlags=Commented\n\
                 include more.conf\n\
                 \t  ACCOUNTINGSTORAGETYPE = accounting_storage/slurmdbd\r\n\
                 JobSubmitPlugins = \"lua, require_timelimit\" # quoted\n\
                 NotOurs=1\n\
                 Prolog=/a/b#c\n\
                 Includes=x\n",
            ),
            (
                "/etc/slurm/more.conf",
                "PrologFlags=X11\nAccountingStoreFlags=job_comment\n",
            ),
        ]);
        let (s, _) = scan_in(&fs, None);
        assert_eq!(s.get("PrologFlags"), Some(&occ("/etc/slurm/more.conf", 1, "X11")));
        assert_eq!(
            s.get("accountingstoreflags"),
            Some(&occ("/etc/slurm/more.conf", 2, "job_comment"))
        );
        assert_eq!(
            s.get("AccountingStorageType"),
            Some(&occ("/etc/slurm/slurm.conf", 4, "accounting_storage/slurmdbd"))
        );
        assert_eq!(
            s.get("jobsubmitplugins").map(|o| o.value.as_str()),
            Some("lua, require_timelimit")
        );
        assert_eq!(s.get("prolog").map(|o| o.value.as_str()), Some("/a/b"));
        assert_eq!(s.get("notours"), None);
        assert_eq!(s.keys.len(), 5);
    }

    #[test]
    fn the_last_occurrence_in_the_including_file_wins_over_the_include() {
        let fs = files(&[
            (
                "/etc/slurm/slurm.conf",
                "PrologFlags=a\ninclude x.conf\nPrologFlags=c\n",
            ),
            ("/etc/slurm/x.conf", "PrologFlags=b\n"),
        ]);
        let (s, _) = scan_in(&fs, None);
        assert_eq!(s.get("prologflags"), Some(&occ("/etc/slurm/slurm.conf", 3, "c")));
    }

    #[test]
    fn include_needs_a_blank_and_a_path() {
        assert_eq!(include_path("include\tfoo.conf  # c"), Some("foo.conf"));
        assert_eq!(include_path("InClUdE   a b.conf#x"), Some("a b.conf"));
        assert_eq!(include_path("includefoo"), None);
        assert_eq!(include_path("include"), None);
        assert_eq!(include_path("include "), Some(""));
        assert_eq!(include_path("inclu"), None);
    }

    #[test]
    fn has_item_rules() {
        assert!(has_item("require_timelimit,job_submit/lua", "lua"));
        assert!(has_item("Job_Submit/LUA", "Lua"));
        assert!(has_item("Contain,Alloc", "alloc"));
        assert!(!has_item("Contain", "Alloc"));
        assert!(!has_item("", "lua"));
        assert!(!has_item("a,,b", ""));
        assert!(!has_item("lua2", "lua"));
    }

    #[test]
    fn prolog_flags_contain_becomes_contain_alloc() {
        let text = "ClusterName=c\nPrologFlags=Contain\nSlurmUser=slurm\n";
        assert_eq!(
            add_item(text, 2, "Alloc"),
            "ClusterName=c\nPrologFlags=Contain,Alloc\nSlurmUser=slurm\n"
        );
    }

    #[test]
    fn comments_and_spacing_are_kept_on_edited_lines() {
        let text = "  JobSubmitPlugins =  require_timelimit   # added by the site\n";
        let added = add_item(text, 1, "lua");
        assert_eq!(
            added,
            "  JobSubmitPlugins =  require_timelimit,lua   # added by the site\n"
        );
        assert_eq!(remove_item(&added, 1, "lua"), text);
    }

    #[test]
    fn job_submit_lua_already_present_counts() {
        let fs = files(&[(
            "/etc/slurm/slurm.conf",
            "JobSubmitPlugins=job_submit/lua,require_timelimit\n",
        )]);
        let (s, _) = scan_in(&fs, None);
        assert!(has_item(&s.get("jobsubmitplugins").unwrap().value, "lua"));
    }

    #[test]
    fn quoted_values() {
        let text = "PrologFlags=\"Contain,X11\"  # q\n";
        assert_eq!(value_at(text, 1).as_deref(), Some("Contain,X11"));
        let added = add_item(text, 1, "Alloc");
        assert_eq!(added, "PrologFlags=\"Contain,X11,Alloc\"  # q\n");
        assert_eq!(remove_item(&added, 1, "alloc"), text);
        // An unclosed quote stays unclosed.
        assert_eq!(
            add_item("PrologFlags=\"Contain", 1, "Alloc"),
            "PrologFlags=\"Contain,Alloc"
        );
    }

    #[test]
    fn empty_values() {
        assert_eq!(add_item("PrologFlags=\n", 1, "Alloc"), "PrologFlags=Alloc\n");
        assert_eq!(
            add_item("PrologFlags= # none\n", 1, "Alloc"),
            "PrologFlags= Alloc# none\n"
        );
        assert_eq!(remove_item("PrologFlags=Alloc\n", 1, "Alloc"), "PrologFlags=\n");
        assert_eq!(value_at("PrologFlags=\n", 1).as_deref(), Some(""));
    }

    #[test]
    fn a_file_without_final_newline() {
        let text = "A=1\nPrologFlags=Contain";
        let added = add_item(text, 2, "Alloc");
        assert_eq!(added, "A=1\nPrologFlags=Contain,Alloc");
        assert_eq!(remove_item(&added, 2, "Alloc"), text);
        assert_eq!(append_line(text, "include x"), "A=1\nPrologFlags=Contain\ninclude x\n");
        assert_eq!(append_line("", "include x"), "include x\n");
        assert_eq!(append_line("a\n", "b"), "a\nb\n");
    }

    #[test]
    fn crlf_lines_are_kept() {
        let text = "A=1\r\nPrologFlags=Contain\r\nB=2\r\n";
        let added = add_item(text, 2, "Alloc");
        assert_eq!(added, "A=1\r\nPrologFlags=Contain,Alloc\r\nB=2\r\n");
        assert_eq!(value_at(&added, 2).as_deref(), Some("Contain,Alloc"));
        assert_eq!(remove_item(&added, 2, "Alloc"), text);
        let quoted = "P=\"a\"\r\n";
        assert_eq!(add_item(quoted, 1, "b"), "P=\"a,b\"\r\n");
        // A CRLF file scans like any other.
        let fs = files(&[("/etc/slurm/slurm.conf", "include x.conf\r\nPrologFlags=Contain\r\n")]);
        let (s, _) = scan_in(&fs, None);
        assert_eq!(s.get("prologflags"), Some(&occ("/etc/slurm/slurm.conf", 2, "Contain")));
        assert_eq!(s.missing_includes, vec![PathBuf::from("/etc/slurm/x.conf")]);
    }

    #[test]
    fn remove_item_removes_only_the_last_duplicate() {
        assert_eq!(remove_item("P=lua,a,LUA,b\n", 1, "lua"), "P=lua,a,b\n");
        assert_eq!(remove_item("P=a,,lua\n", 1, "lua"), "P=a,\n");
        assert_eq!(remove_item("P=a,b\n", 1, "lua"), "P=a,b\n");
        // job_submit/lua is the site's spelling, not what we appended.
        assert_eq!(remove_item("P=job_submit/lua\n", 1, "lua"), "P=job_submit/lua\n");
    }

    #[test]
    fn lines_out_of_range_or_not_key_lines_change_nothing() {
        let text = "# c\nPrologFlags=a\n";
        for n in [0, 1, 3, usize::MAX] {
            assert_eq!(add_item(text, n, "x"), text);
            assert_eq!(remove_item(text, n, "a"), text);
        }
        assert_eq!(value_at(text, 0), None);
        assert_eq!(value_at(text, 1), None);
        assert_eq!(value_at(text, 3), None);
        assert_eq!(add_item("", 1, "x"), "");
        assert_eq!(add_item("=x\n", 1, "y"), "=x\n");
        assert_eq!(add_item("é=x\n", 1, "y"), "é=x\n");
        assert_eq!(add_item("P=é#\u{00e9}\n", 1, "y"), "P=é,y#é\n");
    }

    #[test]
    fn last_key_line_finds_the_last_key_whatever_its_case() {
        let text = "PrologFlags=a\n#PrologFlags=b\n \tprologflags = c\r\nPrologFlagsX=d\ninclude PrologFlags=e\n";
        assert_eq!(last_key_line(text, "PROLOGFLAGS"), Some(3));
        assert_eq!(last_key_line(text, "epilog"), None);
        assert_eq!(last_key_line("", "x"), None);
    }

    /// Every short text over the characters that matter: nothing panics, and an added item
    /// is removed again exactly.
    #[test]
    fn no_panics_and_add_remove_round_trips_on_short_texts() {
        const ALPHABET: [char; 10] = ['P', '=', '"', ' ', '#', '\r', '\n', ',', 'é', 'x'];
        let mut texts = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| ALPHABET.iter().map(move |c| format!("{t}{c}")))
                .collect();
            texts.extend(longer);
        }
        texts.sort();
        texts.dedup();
        for t in &texts {
            for n in 0..4 {
                let added = add_item(t, n, "x");
                assert_eq!(remove_item(&added, n, "x"), *t, "{t:?} line {n}");
                let _ = value_at(t, n);
                let _ = revert(
                    t,
                    &[
                        Change::Merge {
                            key: "P".into(),
                            item: "x".into(),
                        },
                        Change::Line(t.clone()),
                    ],
                );
            }
            let _ = last_key_line(t, "p");
            let _ = has_item(t, "x");
            let _ = include_path(t);
            let _ = parse_items(t);
        }
    }

    fn installed(original: &str) -> (String, Vec<Change>) {
        let n = last_key_line(original, "JobSubmitPlugins").unwrap();
        let text = add_item(original, n, "lua");
        let n = last_key_line(&text, "PrologFlags").unwrap();
        let text = add_item(&text, n, "Alloc");
        let text = append_line(&text, "include cost-tags_slurm.conf");
        let changes = vec![
            Change::Merge {
                key: "JobSubmitPlugins".into(),
                item: "lua".into(),
            },
            Change::Merge {
                key: "PrologFlags".into(),
                item: "Alloc".into(),
            },
            Change::Line("include cost-tags_slurm.conf".into()),
        ];
        (text, changes)
    }

    #[test]
    fn revert_restores_the_exact_original() {
        let original = "# site\nJobSubmitPlugins=require_timelimit   # added by the site\r\n\
                        prologflags=\"contain\"\nSlurmUser=slurm\n";
        let (text, changes) = installed(original);
        assert_ne!(text, original);
        let r = revert(&text, &changes);
        assert_eq!(r.text, original);
        assert_eq!(
            r.done,
            vec![
                "removed the line 'include cost-tags_slurm.conf'".to_string(),
                "removed Alloc from PrologFlags".to_string(),
                "removed lua from JobSubmitPlugins".to_string(),
            ]
        );
        assert!(r.gone.is_empty());
    }

    #[test]
    fn revert_reports_changes_an_admin_already_removed() {
        let original = "JobSubmitPlugins=require_timelimit\nPrologFlags=Contain\n";
        let (text, changes) = installed(original);
        // The admin took Alloc out again and edited the include line away.
        let edited = text
            .replace("Contain,Alloc", "Contain")
            .replace("include cost-tags_slurm.conf\n", "");
        let r = revert(&edited, &changes);
        assert_eq!(r.text, original);
        assert_eq!(r.gone, vec![1, 2]);
        assert_eq!(r.done, vec!["removed lua from JobSubmitPlugins".to_string()]);
    }

    #[test]
    fn revert_edits_only_the_key_in_effect() {
        // The earlier PrologFlags line is not in effect: an Alloc there is the site's.
        let text = "PrologFlags=Alloc\nPrologFlags=Contain\ninclude x\n";
        let changes = [Change::Merge {
            key: "PrologFlags".into(),
            item: "Alloc".into(),
        }];
        let r = revert(text, &changes);
        assert_eq!(r.text, text);
        assert_eq!(r.gone, vec![0]);
        // A site's job_submit/lua is not what we appended.
        let r = revert(
            "JobSubmitPlugins=job_submit/lua\n",
            &[Change::Merge {
                key: "jobsubmitplugins".into(),
                item: "lua".into(),
            }],
        );
        assert_eq!(r.text, "JobSubmitPlugins=job_submit/lua\n");
        assert_eq!(r.gone, vec![0]);
    }

    #[test]
    fn revert_removes_the_last_equal_line_even_with_crlf() {
        let text = "include x\r\nA=1\r\ninclude x\r\n";
        let r = revert(text, &[Change::Line("include x".into())]);
        assert_eq!(r.text, "include x\r\nA=1\r\n");
        let r = revert("a\ninclude x", &[Change::Line("include x".into())]);
        assert_eq!(r.text, "a\n");
        assert_eq!(revert("", &[Change::Line(String::new())]).gone, vec![0]);
    }
}
