//! The submit path: whether a job may go in. job_submit.lua hands project-check the job's
//! fields; [`decision`] holds all the policy, reading the projects file through
//! [`projects_file`] (whose ordinary lines a byte [`scanner`] reads fast) and checking
//! names with [`crate::model::project_name`]. Nothing here talks to the network: slurmctld waits.

pub(crate) mod decision;
pub(crate) mod projects_file;
pub(crate) mod scanner;
