//! project-check: may this user charge this project? The submit filter's policy, called
//! by job_submit.lua inside slurmctld for every sbatch, srun and salloc, and by hand.
//!
//! Exit codes: 0 allowed, 1 refused (the message says why, in words users already know),
//! 2 the settings or the projects file cannot be used (the message names file and line).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;
use cost_tags::cli::project_check::{run, Args};

fn main() -> ExitCode {
    let outcome = run(Args::parse()).map(|allowed| if allowed { ExitCode::SUCCESS } else { ExitCode::from(1) });
    cost_tags::cli::exit_code("project-check", outcome)
}
