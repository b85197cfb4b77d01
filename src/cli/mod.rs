//! The command line: each command's arguments (clap), what it prints, and its exit code.
//! The modules outside `cli` compute and return values (and log to syslog); only this
//! layer and the binaries in `src/bin` write to stdout, set the syslog identity, or turn
//! results into exit codes. A binary parses its arguments, calls in here and exits.
//!
//! Everything printed on stdout goes through [`print()`] (or `outln!`), never `println!`,
//! which panics when the reader has gone away (`cost-tags report | head -1`): the write
//! error comes back as a [`StdoutError`], and [`exit_code`] turns a broken pipe into a
//! quiet exit 0, as ripgrep does.

// The one layer of the library that prints (see Cargo.toml [lints]).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

/// `println!` that returns the write's error (a [`StdoutError`]) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::print(&format!("{}\n", format_args!($($arg)*)))
    };
}

pub mod admin;
pub(crate) mod budget;
pub mod hook;
pub(crate) mod install;
pub(crate) mod job;
pub(crate) mod job_size;
pub(crate) mod metrics;
pub(crate) mod prices;
pub mod project_check;
pub(crate) mod reconcile;
pub mod report;
pub(crate) mod status;

/// Writing on stdout failed. Its own type, so that only stdout's broken pipe means "the
/// reader went away": a connection to AWS closed under a request fails with the same
/// `io::ErrorKind::BrokenPipe` and must stay an error.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write on stdout: {}", self.0)
    }
}

impl std::error::Error for StdoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Writes `text` on stdout, all of it or an error.
pub fn print(text: &str) -> Result<(), StdoutError> {
    io::stdout().lock().write_all(text.as_bytes()).map_err(StdoutError)
}

/// The exit status of a command: its own, or for an error 2 with `prefix: error` on
/// stderr. A reader that went away (`| head -1`) took all it wanted: exit 0, saying
/// nothing.
pub fn exit_code(prefix: &str, outcome: anyhow::Result<ExitCode>) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(e) if reader_went_away(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{prefix}: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// True when the error is stdout's broken pipe, however it was wrapped.
fn reader_went_away(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<StdoutError>()
            .is_some_and(|StdoutError(e)| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn only_stdout_s_broken_pipe_is_a_quiet_exit() {
        let closed = || io::Error::from(io::ErrorKind::BrokenPipe);
        let stdout: anyhow::Result<ExitCode> = Err(StdoutError(closed())).context("printing the report");
        assert_eq!(exit_code("t", stdout), ExitCode::SUCCESS);
        // The same error from a socket to AWS is a failure.
        let socket: anyhow::Result<ExitCode> = Err(closed()).context("calling AWS");
        assert_eq!(exit_code("t", socket), ExitCode::from(2));
        let full: anyhow::Result<ExitCode> = Err(StdoutError(io::Error::other("disk full")).into());
        assert_eq!(exit_code("t", full), ExitCode::from(2));
    }
}
