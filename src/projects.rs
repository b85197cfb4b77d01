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
use std::path::{Path, PathBuf};

use crate::{fast_line, project_name};

/// Who a line grants projects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    User(&'a str),
    Group(&'a str),
    Everyone,
}

/// One line of the file: a principal and the projects it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant<'a> {
    pub line: usize,
    pub principal: Principal<'a>,
    pub projects: Vec<&'a str>,
}

/// The parsed file. Borrows the file's text, so loading costs one read and no copies.
#[derive(Debug, Clone, Default)]
pub struct ProjectsList<'a> {
    pub grants: Vec<Grant<'a>>,
}

/// A line that is not `principal = Project[, Project...]`, named by file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
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
pub trait GroupMembership {
    fn is_member(&mut self, user: &str, group: &str) -> bool;
}

impl<'a> ProjectsList<'a> {
    /// Parses the whole file; `path` is only used to name the file in errors.
    pub fn parse(text: &'a [u8], path: &Path) -> Result<ProjectsList<'a>, ParseError> {
        Self::parse_keeping(text, path, |_| true)
    }

    /// Checks the whole file like [`parse`](Self::parse) but keeps only the lines that can
    /// concern `user` (their own, `*` and `@group` lines): what a single decision needs.
    pub fn parse_for_user(text: &'a [u8], path: &Path, user: &str) -> Result<ProjectsList<'a>, ParseError> {
        Self::parse_keeping(text, path, |p| !matches!(p, Principal::User(name) if name != user))
    }

    /// One pass over the bytes, so the cost is linear in the file size. Ordinary ASCII
    /// lines go through a byte-level scanner (a project-check on every submission reads
    /// the whole file, and this keeps that within a grep's time); any other line goes
    /// through the exact line parser, which also writes the error messages.
    fn parse_keeping(
        text: &'a [u8],
        path: &Path,
        keep: impl Fn(Principal<'a>) -> bool,
    ) -> Result<ProjectsList<'a>, ParseError> {
        let mut grants = Vec::new();
        let mut rest = text;
        let mut line = 0;
        while !rest.is_empty() {
            line += 1;
            let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            let raw = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or(&[]);
            match fast_line::scan(raw) {
                fast_line::Shape::Blank => {}
                fast_line::Shape::Grant { who, what } => {
                    let principal = principal_of_checked(who);
                    if keep(principal) {
                        let projects = std::str::from_utf8(what)
                            .unwrap_or_default()
                            .split(',')
                            .map(|p| p.trim_matches(fast_line::is_blank))
                            .collect();
                        grants.push(Grant {
                            line,
                            principal,
                            projects,
                        });
                    }
                }
                fast_line::Shape::Unusual => grants.extend(parse_line(raw, line, path)?.filter(|g| keep(g.principal))),
            }
        }
        Ok(ProjectsList { grants })
    }

    /// Whether `user` may use `project`. Whole-name, case-sensitive comparison only.
    pub fn allows(&self, user: &str, project: &str, groups: &mut dyn GroupMembership) -> bool {
        self.grants
            .iter()
            .filter(|g| g.projects.contains(&project))
            .any(|g| applies_to(g.principal, user, groups))
    }

    /// Every project the file names, for anyone.
    pub fn all_projects(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.grants.iter().flat_map(|g| g.projects.iter().copied())
    }

    /// Every project `user` may use, sorted, without duplicates.
    pub fn projects_for(&self, user: &str, groups: &mut dyn GroupMembership) -> BTreeSet<&'a str> {
        self.grants
            .iter()
            .filter(|g| applies_to(g.principal, user, groups))
            .flat_map(|g| g.projects.iter().copied())
            .collect()
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
        .find(|&c| c.is_whitespace() || c.is_control() || c == ',' || c == '*' || c == '@')
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
pub struct SystemGroups {
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

    pub fn parse_exact(text: &[u8]) -> Result<ProjectsList<'_>, ParseError> {
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
            ("al ice=A\n", 1, "user name"),
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

    proptest::proptest! {
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
