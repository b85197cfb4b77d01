//! cost-tags makes HPC spend on AWS ParallelCluster traceable to the users and projects
//! that caused it. `project-check` refuses Slurm jobs that name no allowed project (run
//! from job_submit.lua inside slurmctld); `cost-prolog` and `cost-epilog` tag the node's
//! EC2 instance with the project, user and job id of exactly the jobs running on it, so
//! Cost Explorer can split spend by tag. Nothing on the job path may harm the cluster:
//! every network call is bounded, and a failure is logged and owed, not fatal.
//!
//! The library does the work; the binaries in `src/bin` only parse arguments, call it,
//! and map outcomes to exit codes.

pub mod atomic_file;
pub mod aws;
pub mod budget;
pub mod config;
pub mod env_file;
pub mod fast_line;
pub mod job;
pub mod ledger;
pub mod log;
pub mod node_hook;
pub mod node_hook_main;
pub mod node_status;
pub mod project_name;
pub mod projects;
pub mod reconcile;
pub mod report;
pub mod slurm_fields;
pub mod submission;
pub mod tags;
pub mod text_table;
pub mod trusted_dir;
