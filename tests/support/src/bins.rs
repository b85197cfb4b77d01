//! Where cost-tags' binaries are. Cargo tells an integration test or a bench of the
//! package that defines them (`CARGO_BIN_EXE_<name>`, set when that test is compiled, and
//! the binaries are built first); this crate is another package, so the caller passes
//! them in: [`bins!`](macro@crate::bins) reads the four variables in the caller's crate, and
//! the fixtures that run a binary take a [`Bins`].
//!
//! Examples get no `CARGO_BIN_EXE_*`: `examples/demo.rs` uses
//! [`Bins::beside_current_exe`], the binaries of the same `cargo build` beside
//! `target/<profile>/examples` (`cargo build --bins --example demo`, as scripts/demo.sh does).

use std::path::{Path, PathBuf};

/// The four binaries of cost-tags.
#[derive(Clone, Debug)]
pub struct Bins {
    pub cost_tags: PathBuf,
    pub cost_prolog: PathBuf,
    pub cost_epilog: PathBuf,
    pub project_check: PathBuf,
}

/// The [`Bins`] cargo built for the calling integration test or bench, from its
/// `CARGO_BIN_EXE_<name>` (a compile error anywhere else, e.g. in an example).
#[macro_export]
macro_rules! bins {
    () => {
        $crate::Bins {
            cost_tags: ::std::path::PathBuf::from(env!("CARGO_BIN_EXE_cost-tags")),
            cost_prolog: ::std::path::PathBuf::from(env!("CARGO_BIN_EXE_cost-prolog")),
            cost_epilog: ::std::path::PathBuf::from(env!("CARGO_BIN_EXE_cost-epilog")),
            project_check: ::std::path::PathBuf::from(env!("CARGO_BIN_EXE_project-check")),
        }
    };
}

impl Bins {
    /// For a program cargo puts in `target/<profile>/examples` (the demo), which has no
    /// `CARGO_BIN_EXE_*`: the binaries in `target/<profile>`, built by the same `cargo
    /// build --bins --example demo`. Panics, naming that command, when one is missing.
    pub fn beside_current_exe() -> Bins {
        let exe = std::env::current_exe().expect("current exe");
        let mut dir = exe.parent().expect("exe dir").to_path_buf();
        if dir.ends_with("examples") {
            dir.pop();
        }
        let at = |name: &str| {
            let path = dir.join(name);
            assert!(
                path.is_file(),
                "{} is not built (cargo build --bins --example demo)",
                path.display()
            );
            path
        };
        Bins {
            cost_tags: at("cost-tags"),
            cost_prolog: at("cost-prolog"),
            cost_epilog: at("cost-epilog"),
            project_check: at("project-check"),
        }
    }

    /// The binary called `name` (`cost-tags`, `cost-prolog`, `cost-epilog`,
    /// `project-check`).
    pub fn get(&self, name: &str) -> &Path {
        match name {
            "cost-tags" => &self.cost_tags,
            "cost-prolog" => &self.cost_prolog,
            "cost-epilog" => &self.cost_epilog,
            "project-check" => &self.project_check,
            _ => panic!("cost-tags has no binary {name:?}"),
        }
    }
}
