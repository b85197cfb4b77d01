//! Real local stand-ins for the parts cost-tags talks to: a throwaway Slurm cluster
//! (munged + slurmctld + slurmd on private ports and directories), a moto server for
//! AWS, an IMDSv2 emulator, and a fault-injecting proxy. Each fixture listens on
//! loopback only and stops exactly the processes it started, by pid.
//!
//! This is the dev-only crate `cost-tags-test-support` (tests/support), arranged like
//! cargo's `cargo-test-support`: the integration tests, the benches and examples/demo.rs
//! import it (`use cost_tags_test_support as support;`) and it is compiled once. It does
//! not depend on the cost-tags library; the fixtures drive the binaries as processes.

pub mod aws_proxy;
mod bins;
pub mod daemons;
pub mod head_node;
pub mod http;
pub mod https_parts;
pub mod imds;
pub mod local_cluster;
pub mod moto;
pub mod namespace;
pub mod price_list;
pub mod process;
pub mod sim_cluster;
pub mod slurm;
pub mod slurm_standin;
pub mod slurmdbd;

use std::path::{Path, PathBuf};

pub use bins::Bins;

/// Decides what a test does when a real part (Slurm, moto) is missing: on a developer
/// machine it skips loudly; under `CI=true` a missing part is a failure, because a
/// suite that silently skips its real tests proves nothing.
///
/// libtest captures what a passing test prints with `print!`/`eprint!` and shows it only
/// for failures, and it has no "skipped" outcome: a skipped test is reported `ok`. So the
/// skip is written straight to the process's stderr (a `Write` on `std::io::stderr()` is
/// not captured), as `SKIPPED <test>: <what> is not available`, and once the test binary
/// ends (an `atexit` handler, after libtest's `test result:` line) every skipped test is
/// listed again under the summary.
pub fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{what} is required under CI=true but is not available; run .ci/run to install it");
    }
    report_skip(what);
    false
}

/// The tests skipped so far in this process, for the summary printed at exit.
static SKIPPED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn report_skip(what: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().filter(|n| *n != "main").unwrap_or("this program");
    let line = format!("SKIPPED {test}: {what} is not available on this machine");
    let _ = writeln!(std::io::stderr(), "{line}");
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if skipped.is_empty() {
        // SAFETY: registers a plain function with no arguments; it only reads SKIPPED.
        unsafe { libc::atexit(print_skipped) };
    }
    skipped.push(line);
}

extern "C" fn print_skipped() {
    use std::io::Write;
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "SKIPPED: {} test(s) above were reported ok but tested nothing (CI=true makes this a failure):",
        skipped.len()
    );
    for line in skipped.iter() {
        let _ = writeln!(err, "  {line}");
    }
}

/// The top of the repository (this crate lives in its tests/support), where scripts/ and
/// .venv/ are.
pub fn repo() -> &'static Path {
    let support = Path::new(env!("CARGO_MANIFEST_DIR"));
    support
        .parent()
        .and_then(Path::parent)
        .expect("tests/support sits two levels below the repository")
}

/// The project's Python virtual environment (`.venv/bin` at the top of the repository,
/// made by scripts/install-deps.sh), when it exists.
pub fn venv_bin() -> Option<PathBuf> {
    let dir = repo().join(".venv/bin");
    dir.is_dir().then_some(dir)
}

/// Where a tool installed by scripts/install-deps.sh (`moto_server`, `aws`, `parliament`,
/// `python3`) is: the project's virtual environment first, then PATH.
pub fn tool(program: &str) -> Option<PathBuf> {
    if let Some(p) = venv_bin().map(|d| d.join(program)).filter(|p| p.is_file()) {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(program)).find(|p| p.is_file()))
}

/// A command for a tool from [`tool`] (the bare name if it is nowhere, so spawning fails
/// as before), with the virtual environment first on the child's PATH: what it runs in
/// turn (`aws` run by a script) is found there too.
pub fn tool_command(program: &str) -> std::process::Command {
    let mut c = std::process::Command::new(tool(program).unwrap_or_else(|| PathBuf::from(program)));
    if let Some(path) = path_with_venv() {
        c.env("PATH", path);
    }
    c
}

/// PATH with the virtual environment's bin directory first, if there is one.
fn path_with_venv() -> Option<std::ffi::OsString> {
    let venv = venv_bin()?;
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(venv).chain(std::env::split_paths(&rest))).ok()
}

/// True when `program` is found on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}
