//! The node hooks' environment file, `/opt/slurm/etc/cost-tags.env`: `NAME=value` lines
//! that cost-prolog and cost-epilog put into their own environment before the AWS SDK
//! reads it, because slurmd gives a prolog only the job's `SLURM_*` variables.
//!
//! The hook scripts used to source this file with /bin/sh. Under dash one stray quote
//! made the hook exit 2, which drains the node, and the file is shared over NFS by every
//! node. Here the binary reads it: a line it does not accept is logged (file and line
//! number, never the content, which may hold a proxy password) and skipped, and the
//! other lines still apply.
//!
//! Accepted, one per line (a line's leading and trailing spaces and tabs are ignored):
//!
//! - a blank line, or a comment: `#` as the first non-blank character;
//! - `NAME=value` or `export NAME=value`: NAME matches `[A-Za-z_][A-Za-z0-9_]*` and is
//!   followed directly by `=`, with no blank between;
//! - the value is empty; or a run of ASCII letters, digits and `_ - . / : , @ % + = #`;
//!   or single-quoted, holding anything but a single quote; or double-quoted, holding
//!   anything but a double quote, `$`, a backquote or a backslash. After it, only blanks
//!   and an optional comment (`#` after a blank);
//! - the line is UTF-8, and has no NUL byte and no carriage return (outside a comment).
//!
//! Nothing is expanded, and no installed job sources the file with a shell any more
//! (`cost-tags` reads it as the hooks do). Every accepted line still means the same to
//! /bin/sh, for an administrator who sources it by hand; what sh would expand or read
//! differently (`$`, a backquote, a backslash, several words) is refused, not
//! guessed at. Both forms export the variable (a plain `NAME=value` did not reach the
//! binary when the scripts sourced the file, although that is clearly what it meant).
//!
//! A variable the file sets replaces one of the same name in the environment, as sourcing
//! did: slurmd passes a prolog none of its own environment, so on a node the file is the
//! only source, and an administrator who writes a value means it. Names starting with
//! `SLURM_` are refused: the job comes from slurmd, and a value from a shared file would
//! give every job the same identity.
//!
//! The file is root's configuration (through `AWS_CONFIG_FILE` it can make the SDK run a
//! `credential_process` as root), so it is ignored, with an error logged, unless it is a
//! regular file owned by root (or by the user running the binary) and not writable by
//! group or others.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::log;

/// Names another file than [`DEFAULT_PATH`] (tests; a layout other than ParallelCluster's).
pub const PATH_ENV: &str = "COST_TAGS_ENV_FILE";

/// Where ParallelCluster's shared Slurm configuration lives.
pub const DEFAULT_PATH: &str = "/opt/slurm/etc/cost-tags.env";

/// A larger file is not an environment file; reading stops there.
const MAX_BYTES: u64 = 64 * 1024;

/// One accepted `NAME=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub name: String,
    pub value: String,
}

/// A line that was skipped, and why (1-based line number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub reason: &'static str,
}

/// The file named by [`PATH_ENV`], else [`DEFAULT_PATH`].
pub fn path() -> PathBuf {
    std::env::var_os(PATH_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

/// Reads the environment file (see [`path`]) and sets its variables in this process,
/// logging every line it skips. A missing file is normal (it is optional) and silent;
/// an unreadable or unsafe one is logged and ignored. Never fails.
///
/// Call it while the process has a single thread (before any runtime starts):
/// changing the environment races with threads that read it.
pub fn apply() {
    let path = path();
    let text = match read(&path) {
        Ok(Some(text)) => text,
        Ok(None) => return,
        Err(reason) => {
            log::error(&format!("{}: {reason}; file ignored", path.display()));
            return;
        }
    };
    let (assignments, bad) = parse(&text);
    for b in bad {
        log::warn(&format!("{}:{}: {}; line ignored", path.display(), b.line, b.reason));
    }
    for a in assignments {
        std::env::set_var(&a.name, &a.value);
    }
}

/// The file's bytes; `None` when it does not exist.
fn read(path: &Path) -> Result<Option<Vec<u8>>, String> {
    // O_NONBLOCK: a FIFO put there by mistake must not hang the prolog in open().
    let file = match File::options().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // A user's own `cost-tags report` or `job`: a file kept 0600 (it may hold a proxy
        // password) is root's, not theirs, and not a fault worth a line on every run.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && !nix::unistd::geteuid().is_root() => {
            return Ok(None)
        }
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    crate::state::trusted_dir::only_root_can_write(&meta)
        .map_err(|why| format!("{why}: whoever can write it can run code as root"))?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("larger than {MAX_BYTES} bytes"));
    }
    Ok(Some(bytes))
}

/// The accepted assignments in file order (a later one for the same name wins when they
/// are applied in order), and the skipped lines.
pub fn parse(text: &[u8]) -> (Vec<Assignment>, Vec<BadLine>) {
    let mut assignments = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let parsed = std::str::from_utf8(raw).map_err(|_| "not UTF-8").and_then(parse_line);
        match parsed {
            Ok(Some(a)) => assignments.push(a),
            Ok(None) => {}
            Err(reason) => bad.push(BadLine { line: i + 1, reason }),
        }
    }
    (assignments, bad)
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t')
}

/// One line: `Ok(None)` for a blank line or a comment.
fn parse_line(line: &str) -> Result<Option<Assignment>, &'static str> {
    let line = line.trim_matches(is_blank);
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if line.contains('\0') {
        return Err("a NUL byte, which no environment variable can hold");
    }
    // sh keeps a CR in the value, where it breaks an endpoint URL without a word.
    if line.contains('\r') {
        return Err("a carriage return (saved with Windows line endings?)");
    }
    let line = match line.strip_prefix("export") {
        Some(rest) if rest.starts_with(is_blank) => rest.trim_start_matches(is_blank),
        _ => line,
    };
    let (name, rest) = line.split_once('=').ok_or("not NAME=value (no '=')")?;
    if !valid_name(name) {
        return Err("the name is not [A-Za-z_][A-Za-z0-9_]* directly followed by '='");
    }
    if name.starts_with("SLURM_") {
        return Err("SLURM_ variables come from slurmd, not from this file");
    }
    let (value, after) = split_value(rest)?;
    // As in sh, a comment starts at a `#` that begins a word, so only after a blank.
    let comment = after.trim_start_matches(is_blank);
    if !(after.is_empty() || (after.starts_with(is_blank) && (comment.is_empty() || comment.starts_with('#')))) {
        return Err("more than one word after '=' (quote the value)");
    }
    Ok(Some(Assignment {
        name: name.to_string(),
        value: value.to_string(),
    }))
}

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The value at the start of `rest` and what follows it.
fn split_value(rest: &str) -> Result<(&str, &str), &'static str> {
    if let Some(quoted) = rest.strip_prefix('\'') {
        let end = quoted.find('\'').ok_or("unterminated single quote")?;
        return Ok((&quoted[..end], &quoted[end + 1..]));
    }
    if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted.find('"').ok_or("unterminated double quote")?;
        let value = &quoted[..end];
        if value.contains(['$', '`', '\\']) {
            return Err("$, ` or \\ inside double quotes (sh would expand them): use single quotes");
        }
        return Ok((value, &quoted[end + 1..]));
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || "_-./:,@%+=#".contains(c)))
        .unwrap_or(rest.len());
    match rest[end..].chars().next() {
        None => Ok((&rest[..end], "")),
        Some(c) if is_blank(c) => Ok((&rest[..end], &rest[end..])),
        Some(_) => Err("a character sh would interpret in an unquoted value: quote the value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<(String, String)> {
        let (a, bad) = parse(text.as_bytes());
        assert_eq!(bad, vec![], "{text:?}");
        a.into_iter().map(|a| (a.name, a.value)).collect()
    }

    fn bad(text: &str) -> &'static str {
        let (a, bad) = parse(text.as_bytes());
        assert_eq!(a, vec![], "{text:?} must be refused");
        assert_eq!(bad.len(), 1, "{text:?}");
        assert_eq!(bad[0].line, 1);
        bad[0].reason
    }

    fn pair(n: &str, v: &str) -> (String, String) {
        (n.to_string(), v.to_string())
    }

    #[test]
    fn plain_exported_quoted_and_empty() {
        let text = "# VPC endpoint\n\
                    AWS_ENDPOINT_URL=https://vpce-1.ec2.us-east-1.vpce.amazonaws.com\n\
                    export HTTPS_PROXY=http://user:p%40ss@proxy:3128\n\
                    \texport\tNO_PROXY='169.254.169.254, localhost' # IMDS direct\n\
                    AWS_CA_BUNDLE=\"/etc/pki/my bundle.pem\"\n\
                    \n   \n\
                    EMPTY=\n\
                    LITERAL='$HOME `id` \\n \"q\"'\n\
                    X=a#b\n\
                    Y='y' # a comment\n";
        assert_eq!(
            ok(text),
            vec![
                pair("AWS_ENDPOINT_URL", "https://vpce-1.ec2.us-east-1.vpce.amazonaws.com"),
                pair("HTTPS_PROXY", "http://user:p%40ss@proxy:3128"),
                pair("NO_PROXY", "169.254.169.254, localhost"),
                pair("AWS_CA_BUNDLE", "/etc/pki/my bundle.pem"),
                pair("EMPTY", ""),
                pair("LITERAL", "$HOME `id` \\n \"q\""),
                pair("X", "a#b"),
                pair("Y", "y"),
            ]
        );
    }

    #[test]
    fn a_name_called_export_is_a_name() {
        assert_eq!(
            ok("export=1\nexportX=2"),
            vec![pair("export", "1"), pair("exportX", "2")]
        );
    }

    #[test]
    fn refused_lines() {
        assert_eq!(bad("AWS_REGION='us-east-1"), "unterminated single quote");
        assert_eq!(bad("AWS_REGION=\"us-east-1"), "unterminated double quote");
        assert!(bad("AWS_REGION").contains("no '='"));
        assert!(bad("AWS_REGION = us-east-1").contains("name"));
        assert!(bad("1X=a").contains("name"));
        assert!(bad("A-B=a").contains("name"));
        assert!(bad("=a").contains("name"));
        assert!(bad("export =a").contains("name"));
        assert!(bad("SLURM_JOB_USER=victim").contains("slurmd"));
        assert!(bad("A=$(reboot)").contains("quote"));
        assert!(bad("A=${HOME}").contains("quote"));
        assert!(bad("A=`id`").contains("quote"));
        assert!(bad("A=x;reboot").contains("quote"));
        assert!(bad("A=two words").contains("more than one word"));
        assert!(bad("A='x'y").contains("more than one word"));
        assert!(bad("A='x'#y").contains("more than one word"), "sh reads x#y");
        assert!(bad("A=\"$HOME\"").contains("single quotes"));
        assert!(bad("A=\"a\\\"b\"").contains("single quotes"));
        let (a, b) = parse(b"A=\xff\n");
        assert!(a.is_empty());
        assert_eq!(
            b,
            vec![BadLine {
                line: 1,
                reason: "not UTF-8"
            }]
        );
    }

    #[test]
    fn a_bad_line_does_not_stop_the_others() {
        let (a, b) = parse(b"A=1\nB='oops\nC=3\n");
        assert_eq!(
            a.into_iter().map(|a| (a.name, a.value)).collect::<Vec<_>>(),
            vec![pair("A", "1"), pair("C", "3")]
        );
        assert_eq!(
            b,
            vec![BadLine {
                line: 2,
                reason: "unterminated single quote"
            }]
        );
    }

    #[test]
    fn quoted_nul_is_refused_so_set_var_cannot_panic() {
        assert!(bad("A=\u{0}").contains("NUL"));
        assert!(bad("A=x\r").contains("carriage return"));
        assert!(bad("A='x\r'").contains("carriage return"));
        assert!(bad("A='\u{0}'").contains("NUL"));
        assert!(bad("A=\"\u{0}\"").contains("NUL"));
    }

    #[test]
    fn unsafe_files_are_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cost-tags.env");
        assert_eq!(read(&file), Ok(None));
        std::fs::write(&file, "A=1\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read(&file), Ok(Some(b"A=1\n".to_vec())));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert!(read(&file).unwrap_err().contains("writable by group or others"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&file, vec![b'#'; MAX_BYTES as usize + 1]).unwrap();
        assert!(read(&file).unwrap_err().contains("larger than"));
        assert_eq!(read(dir.path()).unwrap_err(), "not a regular file");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(read(&fifo).unwrap_err(), "not a regular file");
    }
}
