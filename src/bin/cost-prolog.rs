//! cost-prolog: run by slurmd (prolog.d) as root when a job starts on this node. Adds the
//! job to the node ledger and tags the instance with the tag set of all its jobs.
//!
//! Exit code: 0, also when AWS or IMDS fail (the tags are owed and the next run pays
//! them), because a non-zero prolog drains the node and requeues the job. Only with
//! `strict = true` does a failure exit 1.
#![allow(clippy::print_stdout, clippy::print_stderr)]

fn main() -> std::process::ExitCode {
    use clap::Parser;
    cost_tags::cli::hook::run(
        cost_tags::node::hook::Hook::Prolog,
        cost_tags::cli::hook::HookArgs::parse(),
    )
}
