//! Talking to Slurm's commands: running one ([`command`]), what to ask squeue and how to
//! read it ([`squeue`], with the free-text rules in [`fields`]), scontrol's node list
//! ([`scontrol`]), Slurm's hostlist syntax ([`hostlist`]), and the size of a job request
//! as job_submit.lua and squeue give it ([`job_request`]). The report's sacct reading
//! lives with the report, which is its only user; the account tree it rolls accounts up
//! with is sacctmgr's ([`account_tree`]).

pub mod account_tree;
pub mod command;
pub mod fields;
pub mod hostlist;
pub mod job_request;
pub mod scontrol;
pub mod squeue;
