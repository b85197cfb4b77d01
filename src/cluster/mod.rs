//! The head node's view of the whole cluster: the [`converge`]nce of every instance's
//! tags to Slurm's jobs (`reconcile --cluster`), from a [`slurm_view`] and EC2's
//! instances ([`tag_api`]) through a [`plan`] of few calls, paced by [`pacing`]; the same
//! plan compared and not applied ([`status`], `status --cluster`); and the convergence as
//! a service woken by slurmctld's hooks ([`follow`], `reconcile --cluster --follow`);
//! and what each pass saw, which instance backed which node and when ([`timeline`]).

pub(crate) mod converge;
pub(crate) mod follow;
pub(crate) mod pacing;
pub(crate) mod plan;
pub(crate) mod slurm_view;
pub(crate) mod status;
pub(crate) mod tag_api;
pub(crate) mod timeline;
