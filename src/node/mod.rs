//! A compute node: the [`ledger`] of the jobs on the node (as slurmd describes them,
//! [`crate::model::job`])
//! (the single source of truth), the instance [`tags`] computed from it, the prolog and
//! epilog ([`hook`]) that apply them through the run's [`instance`] session, the
//! [`env_file`] those read, and the administrator's view and repair of the node
//! ([`status`], [`repair`]).

pub mod env_file;
pub mod hook;
pub(crate) mod instance;
pub(crate) mod ledger;
pub(crate) mod repair;
pub(crate) mod status;
pub(crate) mod tags;
