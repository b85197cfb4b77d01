//! A compute node: the [`job`] as slurmd describes it, the [`ledger`] of jobs on the node
//! (the single source of truth), the instance [`tags`] computed from it, the prolog and
//! epilog ([`hook`]) that apply them through the run's [`instance`] session, the
//! [`env_file`] those read, and the administrator's view and repair of the node
//! ([`status`], [`repair`]).

pub mod env_file;
pub mod hook;
pub mod instance;
pub mod job;
pub mod ledger;
pub mod repair;
pub mod status;
pub mod tags;
