//! `cost-tags report --by job`: the per-job statement by start time, written on stdout
//! once sacct's records are read and priced (see [`crate::report::job_rows`]); with CSV
//! the notes go to stderr.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::process::ExitCode;

use anyhow::Context;

use super::{Format, ReportArgs, OWN_JOBS};
use crate::cost::{build_with_jobs, run_sacct_with_jobs, Options, Prices};
use crate::report::job_rows::{JobFormat, JobRows};
use crate::report::output;
use crate::report::sorted_rows::SpillError;
use crate::slurm::sacct;

/// The memory the sort of the rows holds, in bytes, instead of 32 MiB (docs/report.md).
const SORT_MEMORY: &str = "COST_TAGS_SORT_MEMORY";

/// The sort's budget from the environment, if set.
fn sort_memory() -> anyhow::Result<Option<usize>> {
    match std::env::var_os(SORT_MEMORY) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .and_then(|t| t.trim().parse::<usize>().ok())
            .map(Some)
            .with_context(|| format!("{SORT_MEMORY} must be a number of bytes, not {v:?}")),
    }
}

/// Reads the records (sacct, or `--sacct-file`) and writes the statement. A write error
/// on stdout is a [`super::super::StdoutError`] (a closed pipe exits quietly); one of the
/// sort's temporary file is an error of its own ([`SpillError`] says which).
pub(super) fn run(prices: &Prices, options: &Options, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let budget = sort_memory()?;
    let format = match args.format {
        Format::Table => JobFormat::Table,
        Format::Csv => JobFormat::Csv,
        Format::Json => JobFormat::Json,
        Format::Html => JobFormat::Html,
    };
    let stdout = io::stdout();
    let out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut rows = JobRows::start(
        out,
        format,
        options,
        &prices.settings.pricing.currency,
        prices.settings.project_source.name(),
        prices.sources.clone(),
    )
    .map_err(super::super::StdoutError)?;
    if let Some(bytes) = budget {
        rows.set_sort_budget(bytes);
    }
    let built = match &args.sacct_file {
        Some(path) if path.as_os_str() == "-" => Some((
            "sacct records from stdin".to_string(),
            build_with_jobs(prices, options, io::stdin().lock(), None, Some(&mut rows)),
        )),
        Some(path) => {
            let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let input = BufReader::with_capacity(1 << 18, file);
            Some((
                path.display().to_string(),
                build_with_jobs(prices, options, input, None, Some(&mut rows)),
            ))
        }
        None => None,
    };
    let mut report = match built {
        // The sink writes nothing before the end: its only error is the sort's.
        Some((_, Err(e))) if SpillError::of(&e).is_some() => return Err(e.into()),
        Some((_, Ok(report))) => report,
        Some((name, Err(e))) if sacct::MissingField::of(&e).is_some() => {
            eprintln!("cost-tags: reading {name}: {e}");
            return Ok(ExitCode::from(1));
        }
        Some((name, Err(e))) => return Err(e).with_context(|| format!("reading {name}")),
        None => run_sacct_with_jobs(prices, options, Some(&mut rows))?,
    };
    report.diagnostics.warnings.extend(prices.notes.iter().cloned());
    if args.sacct_file.is_none() && options.users == sacct::Users::Own {
        report.diagnostics.warnings.push(OWN_JOBS.into());
    }
    let mut out = rows.finish(&report).map_err(|e| match SpillError::of(&e) {
        Some(_) => anyhow::Error::from(e),
        None => super::super::StdoutError(e).into(),
    })?;
    out.flush().map_err(super::super::StdoutError)?;
    if format == JobFormat::Csv {
        output::notes(&report, &mut io::stderr().lock())?;
    }
    Ok(ExitCode::SUCCESS)
}
