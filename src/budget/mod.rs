//! Budgets: refuse new jobs of a project whose AWS Budget is spent.
//!
//! AWS is never called on the submit path: `cost-tags budget refresh` (root, head node,
//! from a timer) reads every budget of the account and writes a small cache file;
//! project-check only reads that file. slurmctld's user cannot reach the instance's
//! credentials on a ParallelCluster head node, and a submission must not wait on the
//! network.

pub(crate) mod admin;
pub mod cache;
pub(crate) mod gate;
pub(crate) mod reservations;
pub(crate) mod spend;
pub(crate) mod worst_case;
