//! cost-epilog: run by slurmd (epilog.d) as root when a job ends on this node. Removes the
//! job from the node ledger and leaves the instance tagged with the jobs still running
//! (or removes the cost tags when none is left).
//!
//! Exit code: 0, also when AWS or IMDS fail (the tags are owed and the next run pays
//! them), because a non-zero epilog drains the node. Only with `strict = true` does a
//! failure exit 1.
#![allow(clippy::print_stdout, clippy::print_stderr)]

fn main() -> std::process::ExitCode {
    use clap::Parser;
    cost_tags::cli::hook::run(
        cost_tags::node::hook::Hook::Epilog,
        cost_tags::cli::hook::HookArgs::parse(),
    )
}
