//! `cost-tags report --by job`: the per-job statement, written on stdout as sacct's
//! records are priced (see [`crate::report::job_rows`]); with CSV the notes go to stderr.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::process::ExitCode;

use anyhow::Context;

use super::{Format, ReportArgs, OWN_JOBS};
use crate::cost::{build_with_jobs, run_sacct_with_jobs, Options, Prices};
use crate::report::job_rows::{JobFormat, JobRows};
use crate::report::output;
use crate::slurm::sacct;

/// Reads the records (sacct, or `--sacct-file`) and writes the statement. A write error
/// on stdout is a [`super::super::StdoutError`] (a closed pipe exits quietly).
pub(super) fn run(prices: &Prices, options: &Options, args: &ReportArgs) -> anyhow::Result<ExitCode> {
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
        // The sink's error, as it came: a closed pipe stays a closed pipe.
        Some((_, Err(e))) if rows.output_failed() => return Err(super::super::StdoutError(e).into()),
        Some((_, Ok(report))) => report,
        Some((name, Err(e))) if sacct::MissingField::of(&e).is_some() => {
            eprintln!("cost-tags: reading {name}: {e}");
            return Ok(ExitCode::from(1));
        }
        Some((name, Err(e))) => return Err(e).with_context(|| format!("reading {name}")),
        None => match run_sacct_with_jobs(prices, options, Some(&mut rows)) {
            Ok(report) => report,
            Err(e) if rows.output_failed() => {
                let cause = e.chain().find_map(|c| c.downcast_ref::<io::Error>()).map_or_else(
                    || io::Error::other(e.to_string()),
                    |io| io::Error::new(io.kind(), io.to_string()),
                );
                return Err(super::super::StdoutError(cause).into());
            }
            Err(e) => return Err(e),
        },
    };
    report.diagnostics.warnings.extend(prices.notes.iter().cloned());
    if args.sacct_file.is_none() && options.users == sacct::Users::Own {
        report.diagnostics.warnings.push(OWN_JOBS.into());
    }
    let mut out = rows.finish(&report).map_err(super::super::StdoutError)?;
    out.flush().map_err(super::super::StdoutError)?;
    if format == JobFormat::Csv {
        output::notes(&report, &mut io::stderr().lock())?;
    }
    Ok(ExitCode::SUCCESS)
}
