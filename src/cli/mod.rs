//! The command line: each command's arguments (clap), what it prints, and its exit code.
//! The modules outside `cli` compute and return values (and log to syslog); only this
//! layer and the binaries in `src/bin` write to stdout, set the syslog identity, or turn
//! results into exit codes. A binary parses its arguments, calls in here and exits.

pub mod budget;
pub mod hook;
pub mod install;
pub mod job;
pub mod job_size;
pub mod metrics;
pub mod prices;
pub mod project_check;
pub mod reconcile;
pub mod report;
pub mod status;
