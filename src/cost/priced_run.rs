//! A job run as the engine priced it, handed to whoever lists runs one by one (`report
//! --by job`): the engine defines what it hands over, the output decides how to show it.

use std::io;

use super::pricing::Pricer;
use crate::model::time::Timestamp;
use crate::slurm::sacct::Record;

/// One job run as [`super::build_with_jobs`] priced it, handed over at once.
pub(crate) struct PricedRun<'r, 'a> {
    pub record: &'r Record<'a>,
    pub project: &'a str,
    /// The part of the run inside the window, charged.
    pub from: Timestamp,
    pub to: Timestamp,
    /// `None`: unpriced.
    pub cost: Option<f64>,
    /// The pricer that priced it (its last rate's instance types); `None` when unpriced.
    pub pricer: Option<&'r Pricer>,
}

/// What takes the job runs as they are priced.
pub(crate) trait JobSink {
    fn run(&mut self, run: &PricedRun<'_, '_>) -> io::Result<()>;
}
