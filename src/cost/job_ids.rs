//! The job ids sacct lists for the report's window when asked for nothing else. That list
//! holds no free text, so no line of it can be forged; when the comment names the project
//! (and so must be asked for), every record the report charges must be on it, as many
//! times as it is listed. A newline in a comment can then still print a well-formed line,
//! but one naming a job that does not exist is skipped, and one repeating a real job's id
//! uses up that job's listing, so one of the two lines is skipped and said so.

use std::collections::HashMap;
use std::io::{self, BufRead};

/// How many times sacct listed each job id (a requeued job once per run).
#[derive(Debug, Default)]
pub(crate) struct JobIds {
    left: HashMap<String, u32>,
}

impl JobIds {
    /// Reads `sacct --format=JobID` output, one id a line.
    pub(crate) fn read(input: impl BufRead) -> io::Result<JobIds> {
        let mut ids = JobIds::default();
        for line in input.lines() {
            let line = line?;
            let id = line.trim();
            if !id.is_empty() {
                *ids.left.entry(id.to_string()).or_default() += 1;
            }
        }
        Ok(ids)
    }

    /// Uses up one listing of `id`; false when none is left.
    pub(crate) fn take(&mut self, id: &str) -> bool {
        match self.left.get_mut(id) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listing_is_used_once() {
        let mut ids = JobIds::read("12\n13\n13\n\n104_1\n".as_bytes()).unwrap();
        assert!(ids.take("12"));
        assert!(!ids.take("12"), "listed once");
        assert!(ids.take("13") && ids.take("13"), "a requeued job, twice");
        assert!(!ids.take("13"));
        assert!(ids.take("104_1"));
        assert!(!ids.take("9999999"));
    }
}
