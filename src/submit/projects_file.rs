//! `projects_list.conf`: which users may charge which projects. The format is the one
//! users of the public ParallelCluster scripts already have (`userA=ProjectA, ProjectC`),
//! read exactly: whole, case-sensitive names, never substrings or prefixes.
//!
//! ```text
//! # comment
//! alice = ProjectA, ProjectB     # a user; several lines for one user add up
//! *=Shared                       # everyone
//! @physics=ProjectP              # members of the Unix group `physics` (NSS, so LDAP/AD work)
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::model::project_name;
use crate::submit::scanner;

/// Who a line grants projects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Principal<'a> {
    User(&'a str),
    Group(&'a str),
    Everyone,
}

/// One line of the file: a principal and the projects it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant<'a> {
    pub line: usize,
    pub principal: Principal<'a>,
    pub projects: Vec<&'a str>,
}

/// The parsed file. Borrows the file's text, so loading costs one read and no copies.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProjectsList<'a> {
    pub grants: Vec<Grant<'a>>,
}

/// A line that is not `principal = Project[, Project...]`, named by file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub path: PathBuf,
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Answers "is `user` a member of the Unix group `group`?". The real answer comes from
/// the system user database ([`SystemGroups`]); tests of the policy use a fixed table.
pub(crate) trait GroupMembership {
    fn is_member(&mut self, user: &str, group: &str) -> bool;
}

impl<'a> ProjectsList<'a> {
    /// Parses the whole file; `path` is only used to name the file in errors. One pass
    /// over the bytes, so the cost is linear in the file size, a block of whole lines at a
    /// time (see `check_lines`). A single decision needs only [`UserLines`].
    pub(crate) fn parse(text: &'a [u8], path: &Path) -> Result<ProjectsList<'a>, ParseError> {
        /// About this many bytes at a time, so the scanner's index of the block stays small.
        const BLOCK: usize = 32 * 1024;
        let mut grants = Vec::new();
        let mut separators = scanner::Separators::default();
        let mut line = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let end = match rest.get(..BLOCK) {
                Some(block) if rest.len() > BLOCK => match memchr::memrchr(b'\n', block) {
                    Some(newline) => newline + 1,
                    None => memchr::memchr(b'\n', &rest[BLOCK..]).map_or(rest.len(), |newline| BLOCK + newline + 1),
                },
                _ => rest.len(),
            };
            let (block, after) = rest.split_at(end);
            check_lines(block, &mut separators, &mut line, path, None, |_, grant| {
                grants.push(grant)
            })?;
            rest = after;
        }
        Ok(ProjectsList { grants })
    }

    /// Whether `user` may use `project`. Whole-name, case-sensitive comparison only.
    pub(crate) fn allows(&self, user: &str, project: &str, groups: &mut dyn GroupMembership) -> bool {
        self.grants
            .iter()
            .filter(|g| g.projects.contains(&project))
            .any(|g| applies_to(g.principal, user, groups))
    }

    /// Every project the file names, for anyone.
    pub(crate) fn all_projects(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.grants.iter().flat_map(|g| g.projects.iter().copied())
    }

    /// Every project `user` may use, sorted, without duplicates.
    pub(crate) fn projects_for(&self, user: &str, groups: &mut dyn GroupMembership) -> BTreeSet<&'a str> {
        self.grants
            .iter()
            .filter(|g| applies_to(g.principal, user, groups))
            .flat_map(|g| g.projects.iter().copied())
            .collect()
    }
}

/// The lines of a projects file that can concern one user (their own, `*` and `@group`
/// lines), read in one streaming pass that checks every line of the file exactly as
/// [`ProjectsList::parse`] does. The file goes through a small reused buffer
/// rather than into memory whole: for project-check, which reads the whole file on every
/// submission, faulting in a buffer the size of the file costs more than checking it.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserLines {
    /// The kept lines, one after the other.
    text: Vec<u8>,
    /// Each kept line: its number in the file and where it is in `text`.
    lines: Vec<(usize, std::ops::Range<usize>)>,
}

/// Why [`UserLines::read`] failed: reading the file, or a line of it.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(std::io::Error),
    Parse(ParseError),
}

impl UserLines {
    /// Reads and checks the whole of `file`; `path` only names the file in errors. As
    /// when the file is read whole before it is parsed, a read error anywhere in the file
    /// wins over a malformed line.
    pub(crate) fn read(file: impl Read, path: &Path, user: &str) -> Result<UserLines, ReadError> {
        // The buffer starts at a page (a small file touches no more memory than that) and
        // doubles while the file fills it, up to 32 KiB: few reads, and it stays in cache.
        Self::read_with_buffer(file, path, user, 4096, 32 * 1024)
    }

    fn read_with_buffer(
        mut file: impl Read,
        path: &Path,
        user: &str,
        first: usize,
        most: usize,
    ) -> Result<UserLines, ReadError> {
        let mut kept = UserLines::default();
        let mut buf = vec![0; first.max(1)];
        let mut filled = 0;
        let mut separators = scanner::Separators::default();
        let mut line = 0;
        let mut malformed = None;
        loop {
            if filled == buf.len() {
                buf.resize(2 * buf.len(), 0); // the file fills the buffer, or a line is longer
            }
            let n = match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::Io(e)),
            };
            if malformed.is_some() {
                continue; // only read errors matter now
            }
            let before = filled;
            filled += n;
            // What came before has no newline: the last complete line ends in the new bytes.
            let Some(last) = memchr::memrchr(b'\n', &buf[before..filled]) else {
                continue;
            };
            let complete = before + last + 1;
            if let Err(e) = kept.check(&buf[..complete], &mut separators, &mut line, path, user) {
                malformed = Some(e);
                filled = 0;
                continue;
            }
            buf.copy_within(complete..filled, 0);
            let full = filled == buf.len();
            filled -= complete;
            if full && buf.len() < most {
                buf.resize(2 * buf.len(), 0);
            }
        }
        if malformed.is_none() {
            if let Err(e) = kept.check(&buf[..filled], &mut separators, &mut line, path, user) {
                malformed = Some(e);
            }
        }
        match malformed {
            Some(e) => Err(ReadError::Parse(e)),
            None => Ok(kept),
        }
    }

    /// Checks complete lines, keeping those that concern `user`.
    fn check(
        &mut self,
        text: &[u8],
        separators: &mut scanner::Separators,
        line: &mut usize,
        path: &Path,
        user: &str,
    ) -> Result<(), ParseError> {
        check_lines(text, separators, line, path, Some(user), |raw, grant| {
            let start = self.text.len();
            self.text.extend_from_slice(raw);
            self.lines.push((grant.line, start..self.text.len()));
        })
    }

    /// The kept lines as a projects list: the grants [`ProjectsList::parse`] gives for the
    /// whole file that can concern the user.
    pub(crate) fn list(&self) -> ProjectsList<'_> {
        let mut grants = Vec::with_capacity(self.lines.len());
        let mut separators = scanner::Separators::default();
        for (line, range) in &self.lines {
            let raw = self.text.get(range.clone()).unwrap_or_default();
            // Checked once already, and checking is deterministic: never an error here.
            let mut before = line.saturating_sub(1);
            let _ = check_lines(raw, &mut separators, &mut before, Path::new(""), None, |_, grant| {
                grants.push(grant)
            });
        }
        ProjectsList { grants }
    }
}

/// The exact parser for one line: `None` for a blank or comment line.
fn parse_line<'a>(raw: &'a [u8], line: usize, path: &Path) -> Result<Option<Grant<'a>>, ParseError> {
    let error = |reason: String| ParseError {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let raw = std::str::from_utf8(raw).map_err(|_| error("the line is not valid UTF-8".into()))?;
    let content = raw.split('#').next().unwrap_or("").trim();
    if content.is_empty() {
        return Ok(None);
    }
    let Some((who, what)) = content.split_once('=') else {
        return Err(error(format!(
            "expected `user=Project1, Project2`, found {:?} (no `=`)",
            shorten(content)
        )));
    };
    Ok(Some(Grant {
        line,
        principal: parse_principal(who.trim()).map_err(error)?,
        projects: parse_projects(what).map_err(error)?,
    }))
}

/// Checks every line of `text`, numbering them on from `*line` (a final newline ends the
/// last line; it does not start an empty one), and hands each grant that can concern
/// `user` (every grant if `None`) to `keep`, with its line. Ordinary ASCII lines go
/// through a byte-level scanner (a project-check on every submission reads the whole
/// file, and this keeps that within a grep's time), which looks only at the principal
/// of a line that is not kept; any other line goes through the exact line parser, which
/// also writes the error messages.
fn check_lines<'a>(
    text: &'a [u8],
    separators: &mut scanner::Separators,
    line: &mut usize,
    path: &Path,
    user: Option<&str>,
    mut keep: impl FnMut(&'a [u8], Grant<'a>),
) -> Result<(), ParseError> {
    for (raw, shape) in separators.lines(text) {
        *line += 1;
        let grant = match shape {
            scanner::Shape::Blank => None,
            scanner::Shape::Grant { who, what } => {
                if user.is_some_and(|user| !concerns(who, user)) {
                    continue;
                }
                match std::str::from_utf8(who) {
                    Ok(who) => Some(Grant {
                        line: *line,
                        principal: principal_of_checked(who),
                        projects: std::str::from_utf8(what)
                            .unwrap_or_default()
                            .split(',')
                            .map(|p| p.trim_matches(scanner::is_blank))
                            .collect(),
                    }),
                    // The scanner takes ASCII only, so this cannot happen; if it did,
                    // the exact parser decides.
                    Err(_) => parse_line(raw, *line, path)?,
                }
            }
            scanner::Shape::Unusual => parse_line(raw, *line, path)?,
        };
        if let Some(grant) = grant {
            if user.is_none_or(|user| !matches!(grant.principal, Principal::User(name) if name != user)) {
                keep(raw, grant);
            }
        }
    }
    Ok(())
}

/// Whether a line the scanner has checked can concern `user`: theirs, `*` or `@group`.
fn concerns(who: &[u8], user: &str) -> bool {
    who == b"*" || who.first() == Some(&b'@') || who == user.as_bytes()
}

/// A principal the scanner has already checked.
fn principal_of_checked(who: &str) -> Principal<'_> {
    match who.strip_prefix('@') {
        _ if who == "*" => Principal::Everyone,
        Some(group) => Principal::Group(group),
        None => Principal::User(who),
    }
}

fn applies_to(principal: Principal<'_>, user: &str, groups: &mut dyn GroupMembership) -> bool {
    match principal {
        Principal::Everyone => true,
        Principal::User(name) => name == user,
        Principal::Group(group) => groups.is_member(user, group),
    }
}

/// User and group names are taken as NSS gives them (`id -un`, `getent group`): sssd's
/// `use_fully_qualified_names` gives `alice@corp.example`, winbind gives `CORP\alice`,
/// and Active Directory groups such as `Domain Users` hold spaces. Only the file's own
/// syntax is refused: a leading `@` marks a group, `*` is everyone, `,` separates.
fn parse_principal(who: &str) -> Result<Principal<'_>, String> {
    if who.is_empty() {
        return Err("no user name before `=`".into());
    }
    if who == "*" {
        return Ok(Principal::Everyone);
    }
    let (name, what) = match who.strip_prefix('@') {
        Some(group) => (group, "group"),
        None => (who, "user"),
    };
    if name.is_empty() {
        return Err("no group name after `@`".into());
    }
    if let Some(c) = name
        .chars()
        .find(|&c| (c.is_whitespace() && c != ' ') || c.is_control() || c == ',' || c == '*')
    {
        return Err(format!("{what} name {:?} contains {c:?}", shorten(name)));
    }
    Ok(if what == "group" {
        Principal::Group(name)
    } else {
        Principal::User(name)
    })
}

fn parse_projects(what: &str) -> Result<Vec<&str>, String> {
    if what.trim().is_empty() {
        return Err("no projects after `=`".into());
    }
    what.split(',')
        .map(str::trim)
        .map(|name| {
            if name.is_empty() {
                return Err("empty project name (two commas in a row, or a comma at the end)".to_string());
            }
            project_name::validate(name)?;
            Ok(name)
        })
        .collect()
}

/// Keeps error messages readable when a line is very long.
fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

/// Group membership from the system user database (files, LDAP, AD via sssd): the
/// groups `getgrouplist(3)` gives for the user, as `id` shows them. Looked up once per
/// user and only if the file has `@group` lines that matter.
#[derive(Debug, Default)]
pub(crate) struct SystemGroups {
    cached: Option<(String, Vec<nix::unistd::Gid>)>,
}

impl SystemGroups {
    fn gids_of(&mut self, user: &str) -> &[nix::unistd::Gid] {
        if self.cached.as_ref().map(|(u, _)| u.as_str()) != Some(user) {
            let gids = user_gids(user).unwrap_or_default();
            self.cached = Some((user.to_string(), gids));
        }
        self.cached.as_ref().map(|(_, g)| g.as_slice()).unwrap_or(&[])
    }
}

fn user_gids(user: &str) -> Option<Vec<nix::unistd::Gid>> {
    let entry = nix::unistd::User::from_name(user).ok()??;
    let cname = std::ffi::CString::new(user).ok()?;
    nix::unistd::getgrouplist(&cname, entry.gid).ok()
}

impl GroupMembership for SystemGroups {
    fn is_member(&mut self, user: &str, group: &str) -> bool {
        let Ok(Some(group)) = nix::unistd::Group::from_name(group) else {
            return false;
        };
        self.gids_of(user).contains(&group.gid)
    }
}

/// The exact parser alone, so tests can compare the scanner with it.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub(crate) fn parse_exact(text: &[u8]) -> Result<ProjectsList<'_>, ParseError> {
        let mut grants = Vec::new();
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            grants.extend(parse_line(raw, i + 1, Path::new("f"))?);
        }
        Ok(ProjectsList { grants })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A fixed membership table: the policy, not the user database, is under test here.
    struct Table(HashMap<&'static str, Vec<&'static str>>);

    impl GroupMembership for Table {
        fn is_member(&mut self, user: &str, group: &str) -> bool {
            self.0.get(group).is_some_and(|m| m.contains(&user))
        }
    }

    fn no_groups() -> Table {
        Table(HashMap::new())
    }

    fn parse(text: &str) -> Result<ProjectsList<'_>, ParseError> {
        ProjectsList::parse(text.as_bytes(), Path::new("/etc/projects_list.conf"))
    }

    #[test]
    fn simple_lines_and_whitespace() {
        let list = parse("userA=ProjectA, ProjectC\n  userB  =  ProjectB ,ProjectC  \n\tuserC\t=\tX\n").unwrap();
        let g = &mut no_groups();
        assert!(list.allows("userA", "ProjectA", g));
        assert!(list.allows("userA", "ProjectC", g));
        assert!(!list.allows("userA", "ProjectB", g));
        assert!(list.allows("userB", "ProjectB", g));
        assert!(list.allows("userC", "X", g));
    }

    #[test]
    fn no_substring_no_prefix_no_case_folding() {
        let list = parse("alice=bob, ProjectZ\nuserA=ProjectA\n").unwrap();
        let g = &mut no_groups();
        // The grep trap: `bob` appears on alice's line but is not a user there.
        assert!(!list.allows("bob", "ProjectZ", g));
        assert!(!list.allows("bob", "bob", g));
        assert!(!list.allows("userA", "Proj", g));
        assert!(!list.allows("userA", "ProjectA2", g));
        assert!(!list.allows("userA", "projecta", g));
        assert!(!list.allows("user", "ProjectA", g));
        assert!(!list.allows("userAA", "ProjectA", g));
        assert!(!list.allows("UserA", "ProjectA", g));
    }

    #[test]
    fn comments_and_blank_lines() {
        let list = parse("# header\n\n   \nalice=A # trailing comment\n#bob=B\n").unwrap();
        let g = &mut no_groups();
        assert!(list.allows("alice", "A", g));
        assert!(!list.allows("bob", "B", g));
        assert_eq!(list.grants.len(), 1);
        assert_eq!(list.grants[0].line, 4);
    }

    #[test]
    fn several_lines_for_one_user_are_a_union() {
        let list = parse("alice=A\nbob=B\nalice=C, A\n").unwrap();
        let got: Vec<_> = list.projects_for("alice", &mut no_groups()).into_iter().collect();
        assert_eq!(got, vec!["A", "C"]);
    }

    #[test]
    fn everyone_and_groups() {
        let list = parse("*=Shared\n@physics=ProjectP\nalice=A\n").unwrap();
        let mut g = Table(HashMap::from([("physics", vec!["bob"])]));
        assert!(list.allows("anyone", "Shared", &mut g));
        assert!(list.allows("bob", "ProjectP", &mut g));
        assert!(!list.allows("alice", "ProjectP", &mut g));
        let got: Vec<_> = list.projects_for("bob", &mut g).into_iter().collect();
        assert_eq!(got, vec!["ProjectP", "Shared"]);
        // `@physics` is a group, never a user called "@physics" or "physics".
        assert!(!list.allows("physics", "ProjectP", &mut g));
    }

    /// sssd (`use_fully_qualified_names`) and winbind give such names; refusing them
    /// would refuse every job on the cluster (the filter fails closed).
    #[test]
    fn directory_service_names_are_taken_as_nss_gives_them() {
        let text =
            "alice@corp.example = ProjectA\nCORP\\bob=ProjectB\n@domain users@corp.example = Shared\nsvc$ = Svc\n";
        let list = parse(text).unwrap();
        let mut g = Table(HashMap::from([(
            "domain users@corp.example",
            vec!["carol@corp.example"],
        )]));
        assert!(list.allows("alice@corp.example", "ProjectA", &mut g));
        assert!(
            !list.allows("alice", "ProjectA", &mut g),
            "the domain is part of the name"
        );
        assert!(list.allows("CORP\\bob", "ProjectB", &mut g));
        assert!(list.allows("carol@corp.example", "Shared", &mut g));
        assert!(!list.allows("alice@corp.example", "Shared", &mut g));
        assert!(list.allows("svc$", "Svc", &mut g));
        // The streaming reader keeps the same lines for such a user.
        let kept = UserLines::read(text.as_bytes(), Path::new("p"), "alice@corp.example").unwrap();
        assert!(kept.list().allows("alice@corp.example", "ProjectA", &mut g));
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let cases = [
            ("alice=A\njust-a-name\n", 2, "no `=`"),
            ("=A\n", 1, "no user name"),
            ("alice=\n", 1, "no projects"),
            ("alice=A,,B\n", 1, "empty project"),
            ("alice=A,\n", 1, "empty project"),
            ("alice=Project A\n", 1, "' '"),
            ("alice=A;rm\n", 1, "';'"),
            ("al\tice=A\n", 1, "user name"),
            ("ali*ce=A\n", 1, "user name"),
            ("@phys,ics=A\n", 1, "group name"),
            ("@=A\n", 1, "no group name"),
            ("alice=A\n\n\nbob=$(id)\n", 4, "'$'"),
        ];
        for (text, line, what) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("/etc/projects_list.conf:{line}: ")),
                "{shown}"
            );
            assert!(shown.contains(what), "{text:?} -> {shown}");
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let e = ProjectsList::parse(b"alice=A\nbob=\xff\n", Path::new("f")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("UTF-8"));
    }

    #[test]
    fn crlf_files_work() {
        let list = parse("alice=A, B\r\nbob=C\r\n").unwrap();
        assert!(list.allows("alice", "B", &mut no_groups()));
        assert!(list.allows("bob", "C", &mut no_groups()));
    }

    #[test]
    fn system_groups_find_root_in_group_root() {
        let mut g = SystemGroups::default();
        assert!(g.is_member("root", "root"));
        assert!(!g.is_member("root", "no-such-group-cost-tags"));
        assert!(!g.is_member("no-such-user-cost-tags", "root"));
    }

    /// A reader that hands out the text in pieces of the given sizes, then fails if told.
    struct Pieces<'t> {
        text: &'t [u8],
        sizes: Vec<usize>,
        next: usize,
        fail_at_end: bool,
        interrupted: bool,
    }

    impl Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.text.is_empty() {
                return if std::mem::take(&mut self.fail_at_end) {
                    Err(std::io::Error::other("disk on fire"))
                } else {
                    Ok(0)
                };
            }
            let size = self
                .sizes
                .get(self.next % self.sizes.len().max(1))
                .copied()
                .unwrap_or(7);
            self.next += 1;
            // A size of 0 is an interrupted read, then a read of one byte.
            self.interrupted = size == 0 && !self.interrupted;
            if self.interrupted {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let size = size.max(1);
            let n = size.min(buf.len()).min(self.text.len());
            buf[..n].copy_from_slice(&self.text[..n]);
            self.text = &self.text[n..];
            Ok(n)
        }
    }

    fn pieces(text: &[u8], sizes: Vec<usize>) -> Pieces<'_> {
        Pieces {
            text,
            sizes,
            next: 0,
            fail_at_end: false,
            interrupted: false,
        }
    }

    /// What `UserLines` must give: the exact parser alone, its grants for `user`.
    fn exact_for_user<'a>(text: &'a [u8], user: &str) -> Result<Vec<Grant<'a>>, ParseError> {
        let all = tests_support::parse_exact(text)?;
        Ok(all
            .grants
            .into_iter()
            .filter(|g| !matches!(g.principal, Principal::User(name) if name != user))
            .collect())
    }

    #[test]
    fn user_lines_keep_the_lines_that_concern_the_user() {
        let text = "# c\nalice=A, B\nbob=C\n*=S # all\n@g=G\n\nalice = D\r\njos\u{e9}=E\n";
        let want = exact_for_user(text.as_bytes(), "alice").unwrap();
        let kept = UserLines::read(text.as_bytes(), Path::new("f"), "alice").unwrap();
        assert_eq!(kept.list().grants, want);
        assert_eq!(want.iter().map(|g| g.line).collect::<Vec<_>>(), vec![2, 4, 5, 7]);
        assert!(UserLines::read(&b""[..], Path::new("f"), "alice")
            .unwrap()
            .list()
            .grants
            .is_empty());
    }

    #[test]
    fn a_read_error_wins_over_a_malformed_line() {
        let text = b"alice=A\nbob ProjectB\n*=S\n";
        let failing = Pieces {
            fail_at_end: true,
            ..pieces(text, vec![5, 0, 3])
        };
        assert!(matches!(
            UserLines::read(failing, Path::new("f"), "alice"),
            Err(ReadError::Io(e)) if e.to_string() == "disk on fire"
        ));
        match UserLines::read(pieces(text, vec![5, 0, 3]), Path::new("f"), "alice") {
            Err(ReadError::Parse(e)) => assert_eq!(e, ProjectsList::parse(text, Path::new("f")).unwrap_err()),
            other => panic!("{other:?}"),
        }
    }

    /// Files larger than a block and than the read buffer, with lines across the
    /// boundaries and a malformed line far in.
    #[test]
    fn large_files_parse_like_the_exact_parser() {
        let mut text = String::new();
        for u in 0..6000 {
            let long = if u % 97 == 0 { "x".repeat(128) } else { "P".into() };
            let name = if u % 89 == 0 {
                "n".repeat(300)
            } else {
                format!("user{u}")
            };
            text.push_str(&format!("{name} = Project{u}, {long},Other{}\n", u % 7));
            if u % 1000 == 0 {
                text.push_str("# a comment, = x\n\n*=Shared\n");
            }
        }
        let exact = tests_support::parse_exact(text.as_bytes()).unwrap();
        assert_eq!(
            ProjectsList::parse(text.as_bytes(), Path::new("f")).unwrap().grants,
            exact.grants
        );
        let user = "user5998";
        let want = exact_for_user(text.as_bytes(), user).unwrap();
        assert_eq!(want.len(), 7);
        let kept = UserLines::read(text.as_bytes(), Path::new("f"), user).unwrap();
        assert_eq!(kept.list().grants, want);

        text.push_str("user6000=Bad Project\nuser6001=A\n");
        let e = ProjectsList::parse(text.as_bytes(), Path::new("f")).unwrap_err();
        assert_eq!(e, tests_support::parse_exact(text.as_bytes()).unwrap_err());
        assert_eq!(e.line, text.lines().count() - 1);
        match UserLines::read(text.as_bytes(), Path::new("f"), user) {
            Err(ReadError::Parse(got)) => assert_eq!(got, e),
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        /// The scanner and the exact parser together decide every line as the exact
        /// parser alone does: the whole file read whole, or the lines for one user read
        /// in pieces through a buffer of any size.
        #[test]
        fn parsing_agrees_with_the_exact_parser(
            text in "(([ \t]{0,2}(a|b|ab|\\*|@g|@|a b|)[ \t]{0,2}=?[ \t]{0,2}[A-Za-z0-9._:/@+, \t=;é-]{0,40}(#[^\n]{0,5})?\r?)?\n){0,12}[a-z=A, ]{0,8}",
            user in "(a|b|ab|g|@g)",
            sizes in proptest::collection::vec(0usize..40, 1..6),
            first in 1usize..9,
            most in 1usize..70,
        ) {
            let text = text.as_bytes();
            let want = exact_for_user(text, &user);
            let all = ProjectsList::parse(text, Path::new("f")).map(|l| l.grants);
            proptest::prop_assert_eq!(all, tests_support::parse_exact(text).map(|l| l.grants));
            let read = UserLines::read_with_buffer(pieces(text, sizes), Path::new("f"), &user, first, most);
            match (read, want) {
                (Ok(kept), Ok(want)) => proptest::prop_assert_eq!(kept.list().grants, want),
                (Err(ReadError::Parse(e)), Err(want)) => proptest::prop_assert_eq!(e, want),
                (read, want) => proptest::prop_assert!(false, "{:?} vs {:?}", read, want),
            }
        }

        #[test]
        fn reading_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            sizes in proptest::collection::vec(0usize..40, 1..6),
        ) {
            let _ = UserLines::read_with_buffer(pieces(&bytes, sizes), Path::new("fuzz"), "a", 1, 8);
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = ProjectsList::parse(&bytes, Path::new("fuzz"));
        }

        #[test]
        fn parser_never_panics_on_near_valid_text(text in "[a-zA-Z@*#=, \t\n.:_/+-]{0,200}") {
            if let Ok(list) = ProjectsList::parse(text.as_bytes(), Path::new("fuzz")) {
                let mut g = no_groups();
                let _ = list.projects_for("a", &mut g);
            }
        }
    }
}
