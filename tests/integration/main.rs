//! The integration tests: one test binary (the support library, tests/support, holds the
//! local Slurm, moto, IMDSv2 and proxy fixtures). Each module is one area; run one with
//! `cargo test --test integration <module>::` (e.g. `dns_deadline::`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

// The fixtures, named `support` here as they are in the benches and the demo.
use cost_tags_test_support as support;

/// The package's binaries, as cargo built them for this test binary
/// (`CARGO_BIN_EXE_<name>`).
fn bins() -> support::Bins {
    support::bins!()
}

/// One of [`bins`] by name (`cost-tags`, `cost-prolog`, `cost-epilog`, `project-check`).
fn bin(name: &str) -> std::path::PathBuf {
    bins().get(name).to_path_buf()
}

mod aws_fixtures;
mod budgets;
mod closed_pipe;
mod cluster_converge;
mod controller_slurm;
mod demo;
mod dns_deadline;
mod env_file_sh;
mod hook_scripts;
mod https_stack;
mod iam_policies;
mod instance_timeline;
mod layering;
mod managed_script;
mod managed_script_slurm;
mod metrics;
mod node_tagging;
mod prices;
mod project_check_cli;
mod reconcile_slurm;
mod report_account_tree;
mod report_chart;
mod report_golden;
mod report_html;
mod report_jobs;
mod report_jobs_order;
mod report_slurmdbd;
mod scale_throttled;
mod slurm_fixture;
mod slurm_tagging;
mod state_files;
mod status_reconcile;
mod submit_filter;
