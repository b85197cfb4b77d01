//! The Slurm account tree, for `cost-tags report --by parent-account`: which account each
//! account hangs under, as slurmdbd's associations say. Read from sacctmgr (an
//! administrator's configuration, nothing a job's user writes), or from a file saved with
//! the same command, so a saved sacct file can be reported offline with its cluster's tree.
//!
//! Only one step up the tree is ever taken, so a tree that is not a tree (a cycle in a
//! hand-edited file, an account under an account nobody defined) cannot make a lookup
//! loop: each lookup is one map access.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::command::run_program;

/// The arguments the tree is read with (no shell). Account-level associations name their
/// parent; user-level ones (User set) have no parent name and are ignored.
pub const SACCTMGR_ARGS: [&str; 5] = [
    "-n",
    "-P",
    "list",
    "associations",
    "format=Cluster,Account,ParentName,User",
];

/// How long sacctmgr may take: slurmdbd answers in well under a second; a hung one must
/// not hang the report.
pub const SACCTMGR_TIMEOUT: Duration = Duration::from_secs(60);

/// The account every tree starts from. Its children are the top-level accounts.
pub const ROOT: &str = "root";

/// What one account's parent is, once the clusters of the database are put together.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parent {
    Known(String),
    /// The clusters disagree on it: only `--clusters` (records with their cluster) can say.
    Disputed,
}

/// Each account's parent, per cluster and for all clusters together.
#[derive(Debug, Clone, Default)]
pub struct AccountTree {
    /// (cluster, account) to parent.
    per_cluster: HashMap<(String, String), String>,
    /// account to parent, when every cluster that has the account agrees.
    merged: HashMap<String, Parent>,
}

/// Where a job's account rolls up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roll<'a> {
    /// The group the job goes in: the account's parent, or the account itself when it
    /// is `root` or a child of `root`.
    Group(&'a str),
    /// The tree does not hold the account (deleted since, or another database's).
    Unknown,
    /// The clusters disagree on the account's parent and the record names no cluster.
    Disputed,
}

impl AccountTree {
    /// Parses `Cluster|Account|ParentName|User` lines (sacctmgr `-n -P`, [`SACCTMGR_ARGS`]).
    /// A line of another shape is an error naming it: the file or the command is not
    /// what the report asked for, and a wrong tree would put costs under wrong departments.
    pub fn parse(text: &str) -> anyhow::Result<AccountTree> {
        let mut tree = AccountTree::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('|').collect();
            let [cluster, account, parent, user] = fields[..] else {
                bail!(
                    "line {}: expected Cluster|Account|ParentName|User (sacctmgr {}), got {line:?}",
                    i + 1,
                    SACCTMGR_ARGS.join(" ")
                );
            };
            if cluster == "Cluster" && account == "Account" {
                continue; // a header, if saved without -n
            }
            // User associations repeat their account with no parent name; root has none.
            if !user.is_empty() || parent.is_empty() || account.is_empty() {
                continue;
            }
            tree.per_cluster
                .insert((cluster.to_string(), account.to_string()), parent.to_string());
            match tree.merged.get(account) {
                Some(Parent::Known(p)) if p != parent => {
                    tree.merged.insert(account.to_string(), Parent::Disputed);
                }
                Some(_) => {}
                None => {
                    tree.merged
                        .insert(account.to_string(), Parent::Known(parent.to_string()));
                }
            }
        }
        Ok(tree)
    }

    /// Reads a file saved with `sacctmgr` and [`SACCTMGR_ARGS`].
    pub fn read(path: &Path) -> anyhow::Result<AccountTree> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        AccountTree::parse(&text).with_context(|| format!("reading the account tree {}", path.display()))
    }

    /// Asks sacctmgr (no shell, killed after [`SACCTMGR_TIMEOUT`]).
    pub fn from_sacctmgr() -> anyhow::Result<AccountTree> {
        let text = run_program(Path::new("sacctmgr"), &SACCTMGR_ARGS, Instant::now() + SACCTMGR_TIMEOUT)
            .context("cannot read the account tree from sacctmgr (or give a saved one with --account-tree)")?;
        AccountTree::parse(&text).context("reading sacctmgr's account tree")
    }

    /// Whether the tree holds no account at all (sacctmgr answered nothing).
    pub fn is_empty(&self) -> bool {
        self.merged.is_empty()
    }

    /// Where `account` rolls up to, on `cluster` ("" when the records carry no cluster:
    /// then the parent every cluster agrees on).
    pub fn roll_up<'a>(&'a self, cluster: &str, account: &'a str) -> Roll<'a> {
        if account == ROOT {
            return Roll::Group(account);
        }
        let parent = if cluster.is_empty() {
            match self.merged.get(account) {
                Some(Parent::Known(p)) => p,
                Some(Parent::Disputed) => return Roll::Disputed,
                None => return Roll::Unknown,
            }
        } else {
            match self.per_cluster.get(&(cluster.to_string(), account.to_string())) {
                Some(p) => p,
                None => return Roll::Unknown,
            }
        };
        if parent == ROOT {
            Roll::Group(account)
        } else {
            Roll::Group(parent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Slurm 22.05's sacctmgr prints for root, a department with two labs (one user
    /// each) and a top-level account.
    const SAMPLE: &str = "\
c1|root||
c1|root||root
c1|dept|root|
c1|lab1|dept|
c1|lab1||ctalice
c1|lab2|dept|
c1|lab2||ctbob
c1|solo|root|
";

    #[test]
    fn labs_roll_up_to_their_department_and_top_accounts_stay() {
        let tree = AccountTree::parse(SAMPLE).unwrap();
        assert_eq!(tree.roll_up("", "lab1"), Roll::Group("dept"));
        assert_eq!(tree.roll_up("c1", "lab2"), Roll::Group("dept"));
        assert_eq!(tree.roll_up("", "dept"), Roll::Group("dept"));
        assert_eq!(tree.roll_up("", "solo"), Roll::Group("solo"));
        assert_eq!(tree.roll_up("", "root"), Roll::Group("root"));
        assert_eq!(tree.roll_up("", "gone"), Roll::Unknown);
        assert_eq!(tree.roll_up("c2", "lab1"), Roll::Unknown);
    }

    #[test]
    fn clusters_that_disagree_need_the_records_cluster() {
        let tree = AccountTree::parse("c1|lab|deptA|\nc2|lab|deptB|\nc1|x|d|\nc2|x|d|\n").unwrap();
        assert_eq!(tree.roll_up("", "lab"), Roll::Disputed);
        assert_eq!(tree.roll_up("c1", "lab"), Roll::Group("deptA"));
        assert_eq!(tree.roll_up("c2", "lab"), Roll::Group("deptB"));
        assert_eq!(tree.roll_up("", "x"), Roll::Group("d"));
    }

    #[test]
    fn a_cycle_or_a_dangling_parent_answers_at_once() {
        let tree = AccountTree::parse("c|a|b|\nc|b|a|\nc|self|self|\nc|orphan|nobody|\n").unwrap();
        assert_eq!(tree.roll_up("", "a"), Roll::Group("b"));
        assert_eq!(tree.roll_up("", "b"), Roll::Group("a"));
        assert_eq!(tree.roll_up("", "self"), Roll::Group("self"));
        assert_eq!(tree.roll_up("", "orphan"), Roll::Group("nobody"));
    }

    #[test]
    fn another_shape_is_refused_with_its_line() {
        let e = AccountTree::parse("c1|root||\nlab1|dept\n").unwrap_err().to_string();
        assert!(
            e.starts_with("line 2:") && e.contains("Cluster|Account|ParentName|User"),
            "{e}"
        );
        // Saved without -n: sacctmgr's own header ("Par Name") is passed over.
        let tree = AccountTree::parse("Cluster|Account|Par Name|User\nc|l|d|\n").unwrap();
        assert_eq!(tree.roll_up("", "l"), Roll::Group("d"));
    }
}
