//! The walls between the crate's folders (issue 23.1): each folder of `src/` stands on a
//! floor and may import only folders on floors below its own, so a concept can be read,
//! tested and changed without the ones above it. Rust checks no such thing inside one
//! crate, so this test reads every `crate::` path in `src/` (single uses, `use crate::{…}`
//! blocks over several lines, paths written inline, `super::` chains that climb out of a
//! folder) and names the file, the line and the import that goes up or sideways.
//!
//! `src/bin` is the top floor (thin binaries over `cli`) and `src/lib.rs` the map; neither
//! is read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The floors, lowest first. A folder (or a top-level file such as `config.rs`) may import
/// only folders on a lower floor; a new folder must be given a floor here.
const FLOORS: &[&[&str]] = &[
    // The shared nouns (time, job, tag set, project name, budget spend), logging, and
    // state on disk that root can trust.
    &["model", "log", "state"],
    // The one settings file.
    &["config"],
    // The outside world: Slurm's commands, ParallelCluster's files, AWS.
    &["slurm", "parallelcluster", "aws"],
    // The submit decision, the compute node, the price cache.
    &["submit", "node", "prices"],
    // The costing engine: sacct records -> priced jobs -> sums.
    &["cost"],
    // Budgets, the head node's sweep, report output, the installer.
    &["budget", "cluster", "report", "install"],
    // Spend as OpenMetrics text: the budget cache and the engine's figures.
    &["metrics"],
    // Every command's arguments, printing and exit codes.
    &["cli"],
];

/// Imports allowed across the walls: none. (Issue 23 item 2 emptied it: the costing
/// engine has its folder, `cost/`, below budgets, metrics and the report's output.) Kept
/// so that an exception, if one is ever needed, is written here with its reason.
/// (from folder, imported path prefix)
const KNOWN_EXCEPTIONS: &[(&str, &str)] = &[];

fn floor_of(folder: &str) -> Option<usize> {
    FLOORS.iter().position(|floor| floor.contains(&folder))
}

/// One `crate::` path found in a file.
#[derive(Debug, PartialEq, Eq)]
struct Import {
    line: usize,
    /// The path below the crate root, `::`-joined (`node::tags::TagMap`).
    path: String,
}

/// The source with comments and the contents of string and char literals blanked (line
/// breaks kept, so line numbers stay right): a doc link or a message naming
/// `crate::x` is not an import.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |c: u8| if c == b'\n' { b'\n' } else { b' ' };
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        out.push(blank(b[i]));
                        i += 1;
                    }
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"') | Some(b'#')) && (i == 0 || !is_ident(b[i - 1])) => {
                // A raw string: r"…", r#"…"#.
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    out.push(b[i]);
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                out.extend(std::iter::repeat_n(b' ', 2 + hashes));
                i += 2 + hashes;
                while i < b.len() && !b[i..].starts_with(&close) {
                    out.push(blank(b[i]));
                    i += 1;
                }
                out.extend(std::iter::repeat_n(b' ', close.len().min(b.len() - i)));
                i += close.len();
            }
            b'"' => {
                out.push(b' ');
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        out.push(b' ');
                        i += 1;
                    }
                    out.push(blank(b[i]));
                    i += 1;
                }
                out.push(b' ');
                i += 1;
            }
            // A char literal ('"', '\'', '{'), not a lifetime ('a).
            b'\'' if b.get(i + 2) == Some(&b'\'') || (b.get(i + 1) == Some(&b'\\') && b.get(i + 3) == Some(&b'\'')) => {
                let len = if b[i + 1] == b'\\' { 4 } else { 3 };
                out.extend(std::iter::repeat_n(b' ', len));
                i += len;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The end of the `{…}` group that starts at `open`.
fn group_end(code: &[u8], open: usize) -> usize {
    let mut depth = 0;
    for (i, &c) in code.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// The paths a `{…}` group names, each prefixed with `prefix` (nested groups expanded).
fn expand(code: &[u8], open: usize, prefix: &str, line: usize, out: &mut Vec<Import>) {
    let end = group_end(code, open);
    let mut i = open + 1;
    while i < end {
        let c = code[i];
        if is_ident(c) {
            let start = i;
            while i < end && (is_ident(code[i]) || code[i] == b':') {
                i += 1;
            }
            let path = std::str::from_utf8(&code[start..i]).unwrap_or("").trim_end_matches(':');
            let here = line + code[open..start].iter().filter(|&&c| c == b'\n').count();
            if code.get(i) == Some(&b'{') {
                expand(code, i, &format!("{prefix}{path}::"), here, out);
                i = group_end(code, i) + 1;
            } else {
                let path = if path == "self" {
                    prefix.trim_end_matches(':').to_string()
                } else {
                    format!("{prefix}{path}")
                };
                out.push(Import { line: here, path });
            }
            // Skip an `as name` and whatever else follows up to the next item.
            while i < end && code[i] != b',' {
                i += 1;
            }
        }
        i += 1;
    }
}

/// The spans of the inline modules (`mod tests { … }`) in `code`: `super::` inside one
/// climbs to the file's own module first.
fn inline_modules(code: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while let Some(at) = code[i..].windows(4).position(|w| w == b"mod ") {
        let start = i + at;
        i = start + 4;
        if start > 0 && is_ident(code[start - 1]) {
            continue;
        }
        let mut j = i;
        while j < code.len() && (is_ident(code[j]) || code[j] == b' ') {
            j += 1;
        }
        if code.get(j) == Some(&b'{') {
            spans.push((j, group_end(code, j)));
        }
    }
    spans
}

/// Every path below the crate root that `text` names; `module` is the file's own module
/// path (`["budget", "gate"]`), for resolving `super::`.
fn imports(text: &str, module: &[String]) -> Vec<Import> {
    let code = code_only(text);
    let b = code.as_bytes();
    let inline = inline_modules(b);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let at_word = i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b'$' || b[i - 1] == b':');
        let (root, skip): (Vec<String>, usize) = if at_word && b[i..].starts_with(b"crate::") {
            (Vec::new(), "crate::".len())
        } else if at_word && b[i..].starts_with(b"super::") {
            // Climb one module per `super::`; inside the folder, nothing to check.
            let mut up = 0;
            let mut j = i;
            while b[j..].starts_with(b"super::") {
                up += 1;
                j += "super::".len();
            }
            let depth = module.len() + inline.iter().filter(|(a, z)| (*a..*z).contains(&i)).count();
            if up < depth {
                i = j;
                continue;
            }
            (Vec::new(), j - i)
        } else {
            i += 1;
            continue;
        };
        let line = 1 + b[..i].iter().filter(|&&c| c == b'\n').count();
        let start = i + skip;
        if b.get(start) == Some(&b'{') {
            expand(b, start, &root.join("::"), line, &mut out);
            i = group_end(b, start) + 1;
        } else {
            let mut j = start;
            while j < b.len() && (is_ident(b[j]) || b[j] == b':') {
                j += 1;
            }
            let path = code[start..j].trim_end_matches(':').to_string();
            if b.get(j) == Some(&b'{') {
                expand(b, j, &format!("{path}::"), line, &mut out);
                i = group_end(b, j) + 1;
            } else {
                out.push(Import { line, path });
                i = j;
            }
        }
    }
    out
}

/// The folder (or top-level file) and module path of a file under `src/`.
fn place(src: &Path, file: &Path) -> (String, Vec<String>) {
    let rel: Vec<String> = file
        .strip_prefix(src)
        .unwrap_or(file)
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    let mut module = rel.clone();
    if module.last().map(String::as_str) == Some("mod") {
        module.pop();
    }
    (rel[0].clone(), module)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Every wall the crate breaks, one line each: `file:line: from (floor) imports path (floor)`.
fn breaches(src: &Path) -> (Vec<String>, BTreeSet<(String, String)>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut found = Vec::new();
    let mut edges = BTreeSet::new();
    for file in files {
        let (folder, module) = place(src, &file);
        if folder == "bin" || folder == "lib" {
            continue;
        }
        let shown = file
            .strip_prefix(src.parent().unwrap_or(src))
            .unwrap_or(&file)
            .display()
            .to_string();
        let Some(floor) = floor_of(&folder) else {
            found.push(format!("{shown}: folder `{folder}` has no floor in FLOORS"));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{shown}: {e}"));
        for import in imports(&text, &module) {
            let target = import.path.split("::").next().unwrap_or("").to_string();
            if target == folder || target.is_empty() {
                continue;
            }
            edges.insert((folder.clone(), target.clone()));
            let Some(target_floor) = floor_of(&target) else {
                found.push(format!(
                    "{shown}:{}: `crate::{}` names no folder with a floor",
                    import.line, import.path
                ));
                continue;
            };
            if target_floor < floor {
                continue;
            }
            let excepted = KNOWN_EXCEPTIONS.iter().any(|(from, prefix)| {
                *from == folder && (import.path == *prefix || import.path.starts_with(&format!("{prefix}::")))
            });
            if !excepted {
                found.push(format!(
                    "{shown}:{}: {folder} (floor {floor}) imports `crate::{}` ({target}, floor {target_floor}){}",
                    import.line,
                    import.path,
                    if target_floor == floor {
                        ": a folder on the same floor"
                    } else {
                        ": a folder above it"
                    }
                ));
            }
        }
    }
    (found, edges)
}

#[test]
fn no_folder_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (found, edges) = breaches(&src);
    assert!(
        found.is_empty(),
        "imports that go up or sideways between folders (move the noun down, or give it a floor):\n{}",
        found.join("\n")
    );
    // The walls hold something: the reader did find the imports that are allowed.
    assert!(
        edges.contains(&("report".to_string(), "model".to_string())),
        "{edges:?}"
    );
    assert!(edges.contains(&("cli".to_string(), "report".to_string())), "{edges:?}");
}

#[test]
fn every_exception_is_still_needed() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut used = BTreeSet::new();
    for file in files {
        let (folder, module) = place(&src, &file);
        let text = std::fs::read_to_string(&file).unwrap();
        for import in imports(&text, &module) {
            for (from, prefix) in KNOWN_EXCEPTIONS {
                if *from == folder && (import.path == *prefix || import.path.starts_with(&format!("{prefix}::"))) {
                    used.insert((*from, *prefix));
                }
            }
        }
    }
    let stale: Vec<_> = KNOWN_EXCEPTIONS.iter().filter(|e| !used.contains(e)).collect();
    assert!(
        stale.is_empty(),
        "exceptions no import needs any more (remove them): {stale:?}"
    );
}

#[test]
fn the_reader_finds_every_form_of_path() {
    let text = "//! see [`crate::cost::x`]\n\
                use crate::model::time::Timestamp;\n\
                use crate::{\n    config::Settings,\n    node::{tags::{self, desired_tags}, ledger},\n};\n\
                fn f() { let s = \"crate::aws::not_code\"; crate::slurm::run(); c = '\"'; crate::prices::x(); }\n\
                use super::super::budget::cache;\n\
                use super::sibling;\n\
                mod tests { use super::super::within; }\n\
                macro_rules! m { () => { $crate::log::warn() } }\n";
    let module = vec!["cli".to_string(), "report".to_string()];
    let found: Vec<(usize, String)> = imports(text, &module).into_iter().map(|i| (i.line, i.path)).collect();
    assert_eq!(
        found,
        vec![
            (2, "model::time::Timestamp".to_string()),
            (4, "config::Settings".to_string()),
            (5, "node::tags".to_string()),
            (5, "node::tags::desired_tags".to_string()),
            (5, "node::ledger".to_string()),
            (7, "slurm::run".to_string()),
            (7, "prices::x".to_string()),
            (8, "budget::cache".to_string()),
        ]
    );
}

/// The modules that are the library's API: what `src/bin`, the integration tests, the
/// benches and the demo import. Everything else is `pub(crate)`, which is what lets
/// `unreachable_pub` (on in `src/lib.rs`) flag a `pub` item that nothing outside uses: the
/// lint cannot see into a `pub mod`, so a folder made `pub` again would silently widen
/// every item in it. A module added to this list is a decision about the API.
const PUBLIC_MODULES: &[&str] = &[
    "budget",
    "budget::cache",
    "cli",
    "cli::admin",
    "cli::hook",
    "cli::project_check",
    "cli::report",
    "model",
    "model::budget_spend",
    "model::instance_timeline",
    "model::job",
    "model::project_name",
    "model::tag_set",
    "model::time",
    "node",
    "node::env_file",
    "node::hook",
    "prices",
    "prices::cache",
    "slurm",
    "slurm::account_tree",
    "slurm::sacct",
];

/// The `pub mod` declarations reachable from `src/lib.rs`, as paths (`node::hook`).
fn public_modules(src: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, file: &Path, prefix: &str, out: &mut BTreeSet<String>) {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for line in text.lines() {
            let Some(name) = line.trim().strip_prefix("pub mod ").and_then(|r| r.strip_suffix(';')) else {
                continue;
            };
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}::{name}")
            };
            let folder = dir.join(name);
            if folder.join("mod.rs").is_file() {
                walk(&folder, &folder.join("mod.rs"), &path, out);
            } else if folder.is_dir() {
                // `name.rs` beside a `name/` folder of its submodules.
                walk(&folder, &dir.join(format!("{name}.rs")), &path, out);
            }
            out.insert(path);
        }
    }
    let mut out = BTreeSet::new();
    walk(src, &src.join("lib.rs"), "", &mut out);
    out
}

#[test]
fn only_the_api_modules_are_public() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = public_modules(&src);
    let expected: BTreeSet<String> = PUBLIC_MODULES.iter().map(|m| m.to_string()).collect();
    let widened: Vec<_> = found.difference(&expected).collect();
    let gone: Vec<_> = expected.difference(&found).collect();
    assert!(
        widened.is_empty() && gone.is_empty(),
        "the library's public modules changed: made pub {widened:?}, no longer pub {gone:?}. A module \
         only the crate uses is `pub(crate)` (so `unreachable_pub` reaches its items); update \
         PUBLIC_MODULES only for a module the binaries, tests or benches import"
    );
    // The reader does find what it must: a nested public module and a private folder.
    assert!(found.contains("node::hook") && !found.contains("cost"), "{found:?}");
}
