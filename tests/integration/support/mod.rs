//! Real local stand-ins for the parts cost-tags talks to: a throwaway Slurm cluster
//! (munged + slurmctld + slurmd on private ports and directories), a moto server for
//! AWS, an IMDSv2 emulator, and a fault-injecting proxy. Each fixture listens on
//! loopback only and stops exactly the processes it started, by pid.

pub mod aws_proxy;
pub mod daemons;
pub mod http;
pub mod https_parts;
pub mod imds;
pub mod local_cluster;
pub mod moto;
pub mod namespace;
pub mod price_list;
pub mod process;
pub mod slurm;
pub mod slurm_standin;
pub mod slurmdbd;

use std::path::PathBuf;

/// Decides what a test does when a real part (Slurm, moto) is missing: on a developer
/// machine it skips loudly; under `CI=true` a missing part is a failure, because a
/// suite that silently skips its real tests proves nothing.
pub fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{what} is required under CI=true but is not available; run .ci/run to install it");
    }
    eprintln!("\n!!!!!! SKIPPING: {what} is not available on this machine (install it: see README) !!!!!!\n");
    false
}

/// Path of a binary built from this package. Tests run from `target/<profile>/deps`,
/// examples and the demo from `target/<profile>/examples`; the binaries sit one level up.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(path.is_file(), "{} is not built (cargo build --bins)", path.display());
    path
}

/// True when `program` is found on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}
