//! Talking to Slurm's commands: running one ([`command`]), what to ask squeue and how to
//! read it ([`squeue`], with the free-text rules in [`fields`]), scontrol's node list
//! ([`scontrol`]), Slurm's hostlist syntax ([`hostlist`]), and the size of a job request
//! as job_submit.lua and squeue give it ([`job_request`]), sacct's records and how to
//! read them, by header or by the fields asked for ([`sacct`]; the costing engine prices
//! them), and the account tree reports roll accounts up with, from sacctmgr
//! ([`account_tree`]).

pub mod account_tree;
pub(crate) mod command;
pub(crate) mod fields;
pub(crate) mod hostlist;
pub(crate) mod job_request;
pub mod sacct;
pub(crate) mod scontrol;
pub(crate) mod squeue;
