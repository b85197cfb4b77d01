//! Budgets: refuse new jobs of a project whose AWS Budget is spent.
//!
//! AWS is never called on the submit path: `cost-tags budget refresh` (root, head node,
//! from a timer) reads every budget of the account and writes a small cache file;
//! project-check only reads that file. slurmctld's user cannot reach the instance's
//! credentials on a ParallelCluster head node, and a submission must not wait on the
//! network.

pub mod admin;
pub mod cache;
pub mod gate;
pub mod reservations;
pub mod spend;
pub mod worst_case;
