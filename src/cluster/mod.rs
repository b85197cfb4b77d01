//! The head node's view of the whole cluster: the [`converge`]nce of every instance's
//! tags to Slurm's jobs (`reconcile --cluster`), from a [`slurm_view`] and EC2's
//! instances ([`tag_api`]) through a [`plan`] of few calls, paced by [`pacing`].

pub mod converge;
pub mod pacing;
pub mod plan;
pub mod slurm_view;
pub mod tag_api;
