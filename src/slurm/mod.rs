//! Talking to Slurm's commands: running one ([`command`]), what to ask squeue and how to
//! read it ([`squeue`], with the free-text rules in [`fields`]), scontrol's node list
//! ([`scontrol`]), and Slurm's hostlist syntax ([`hostlist`]). The report's sacct reading
//! lives with the report, which is its only user.

pub mod command;
pub mod fields;
pub mod hostlist;
pub mod scontrol;
pub mod squeue;
