//! cost-tags makes HPC spend on AWS ParallelCluster traceable to the users and projects
//! that caused it. Nothing on the job path may harm the cluster: every network call is
//! bounded, and a failure is logged and owed, not fatal.
//!
//! How data flows, and where each part lives:
//!
//! ```text
//! sbatch/srun/salloc -> slurmctld -> job_submit.lua -> project-check      submit/, budget/gate
//! job starts/ends on a node -> slurmd -> prolog.d/epilog.d hook
//!     -> cost-prolog/cost-epilog -> node ledger -> one CreateTags    node/, aws/
//! head node timers and administrators -> cost-tags
//!     reconcile (one node)                                           node/repair
//!     reconcile --cluster                                            cluster/
//!     budget refresh|create|list                                     budget/
//!     report (sacct -> priced jobs -> groups                       cost/
//!         -> table/CSV/JSON/SVG/HTML)                                report/
//!     job JOBID (one job, priced like the report; any user)          cost/job
//!         and the instances its nodes were (the timeline)            cost/job_instances
//!     metrics (budget cache + sacct -> OpenMetrics text)             metrics
//! ParallelCluster custom action cost-tags.sh (fetch, check, unpack)
//!     -> cost-tags install|uninstall                                install/
//! ```
//!
//! - [`model`]: the ground floor, the nouns the other folders share: time and the
//!   calendar (jiff), a job, the tag set, a project name, a budget's spend.
//! - [`submit`]: the submit decision (all policy), the projects file.
//! - [`node`]: the node ledger, the tags of its jobs, the hooks, status and repair.
//! - [`cluster`]: the head node's convergence of every instance's tags to Slurm's jobs,
//!   and the timeline of which instance backed which node ([`cluster::timeline`]).
//! - [`cost`]: the costing engine: sacct records, priced, summed per group and period;
//!   one job's cost ([`cost::job`]). Budgets, metrics and `cost-tags job` use it.
//! - [`budget`], [`report`]: budgets and their cache; the report's output (table, CSV,
//!   JSON, chart, HTML).
//! - [`install`]: `cost-tags install`: the release, Slurm's settings, the periodic jobs
//!   of each node role, and the manifest the uninstall reads.
//! - [`metrics`]: spend per project and user as OpenMetrics text for Prometheus.
//! - [`slurm`], [`parallelcluster`], [`aws`]: the outside world. `aws` is the only code
//!   that talks to AWS, `slurm` runs and reads Slurm's commands, `parallelcluster` reads
//!   the files ParallelCluster writes on its nodes.
//! - [`config`] (the one settings file), [`state`] (state on disk that root can trust:
//!   atomic replacement, trusted directories), [`log`] (syslog and stderr);
//!   [`report::text_table`] draws every table printed for people.
//! - [`cli`]: every command's arguments, printing and exit codes. The other modules do the
//!   work and return values; the binaries in `src/bin` parse arguments, call `cli` and
//!   exit.
//!
//! A folder imports only folders below it: `model`, `log`, `state`; then `config`; then
//! `slurm`, `parallelcluster`, `aws`; then `submit`, `node`, `prices`; then `cost`; then
//! `budget`, `cluster`, `report`, `install`; then `metrics`; then `cli`. tests/integration/layering.rs
//! reads the imports and holds the line.

// Unit tests may say SKIPPING on stderr; the library itself never prints (Cargo.toml).
#![cfg_attr(test, allow(clippy::print_stdout, clippy::print_stderr))]
// `pub` means the crate's API (the binaries, tests and benches use it: `cli`, `model`, and
// a few modules of `node`, `slurm`, `budget` and `prices`);
// every other folder is `pub(crate)`, so the lint reaches its items, and
// tests/integration/layering.rs holds that list. Set here rather than in Cargo.toml's
// [lints] because that table also covers the integration test binary, the benches and
// the demo, whose helper modules are private and say `pub` to each other.
#![warn(unreachable_pub)]
// This is an application's library: its documentation is for the people who work on it,
// built with `--document-private-items` (scripts/lint.sh), so links to crate-private items
// are the point, not a leak.
#![allow(rustdoc::private_intra_doc_links)]

pub(crate) mod aws;
pub mod budget;
pub mod cli;
pub(crate) mod cluster;
pub(crate) mod config;
pub(crate) mod cost;
pub(crate) mod install;
pub(crate) mod log;
pub(crate) mod metrics;
pub mod model;
pub mod node;
pub(crate) mod parallelcluster;
pub mod prices;
pub(crate) mod report;
pub mod slurm;
pub(crate) mod state;
pub(crate) mod submit;
