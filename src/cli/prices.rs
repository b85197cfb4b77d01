//! `cost-tags prices refresh`: the arguments, the summary it prints, its exit codes (0
//! written, 1 AWS could not be read and the old cache is kept, 2 unusable settings).

use std::process::ExitCode;

use anyhow::Result;

use crate::config::Settings;
use crate::log;
use crate::model::time::Timestamp;
use crate::prices::refresh::{self, RefreshOptions};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct PricesArgs {
    #[command(subcommand)]
    pub command: PricesCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub(crate) enum PricesCommand {
    /// Read the shapes, on-demand prices and spot price history of the cluster's
    /// instance types from AWS into the price cache the report uses (run daily by the
    /// head node's timer, as root). On failure the old cache is kept; exit 1.
    Refresh(RefreshArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RefreshArgs {
    /// Also price this instance type (repeatable).
    #[arg(long = "instance-type", value_name = "TYPE")]
    pub instance_types: Vec<String>,
    /// Days of spot price history to read (EC2 keeps 90; older history already in the
    /// cache is kept).
    #[arg(long, value_name = "DAYS", default_value_t = 62, value_parser = clap::value_parser!(u32).range(1..=90))]
    pub spot_days: u32,
}

pub(crate) fn run(settings: &Settings, args: &PricesArgs) -> Result<ExitCode> {
    log::init("cost-tags");
    let PricesCommand::Refresh(r) = &args.command;
    let options = RefreshOptions {
        instance_types: r.instance_types.clone(),
        spot_days: r.spot_days,
    };
    match refresh::refresh(settings, &options, Timestamp::now()) {
        Ok(done) => {
            for note in &done.notes {
                log::warn(note);
            }
            let line = format!(
                "price cache {} refreshed for {}: {} instance types ({} with an on-demand price), {} spot histories",
                done.path.display(),
                done.region,
                done.instance_types,
                done.priced,
                done.spot_series
            );
            log::info(&line);
            outln!("{line}")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            log::error(&format!("price refresh failed, the old cache is kept: {e:#}"));
            Ok(ExitCode::from(1))
        }
    }
}
