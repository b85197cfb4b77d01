//! cost-prolog and cost-epilog: arguments, the environment file, settings, the job from
//! the environment, and the mapping of outcomes to exit codes (0 unless `strict`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::config::{Settings, TaggingMode};
use crate::log;
use crate::model::job::Job;
use crate::node::env_file;
use crate::node::hook::{self, Done, Hook};

#[derive(Parser)]
#[command(
    version,
    about = "Tag this node's EC2 instance with the Slurm jobs running on it (run by slurmd)."
)]
pub struct HookArgs {
    /// Settings file (TOML); else $COST_TAGS_CONFIG, else /opt/slurm/etc/cost-tags.toml.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

/// The prolog or epilog; the exit code is 0 unless `strict` and the job could not be
/// recorded or its tags applied.
pub fn run(hook: Hook, args: HookArgs) -> ExitCode {
    log::init(hook.name());
    // Before anything reads the environment (COST_TAGS_CONFIG, the AWS SDK), and while
    // this process has one thread.
    env_file::apply();
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            // Without settings we cannot know `strict`: the safe side is not to drain.
            log::error(&format!("settings unusable, job not tagged: {e}"));
            return ExitCode::SUCCESS;
        }
    };
    // The environment is final: the TLS stack's random generator can start seeding,
    // unless this node makes no AWS call at all (controller mode).
    if settings.tagging.mode == TaggingMode::Node {
        crate::aws::http_client::start_rng();
    }
    let failed = |message: String| {
        log::error(&message);
        if settings.strict {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    };
    let job = match Job::from_process_env(settings.project_source) {
        Ok(job) => job,
        Err(e) => return failed(format!("no job to record: {e}")),
    };
    match hook::run(hook, &settings, &job) {
        Ok(Done::Applied(tags)) => {
            log::info(&format!("job {}: instance tags now {tags:?}", job.id));
            ExitCode::SUCCESS
        }
        Ok(Done::UpToDate) => ExitCode::SUCCESS,
        Ok(Done::LedgerOnly) => {
            log::info(&format!(
                "job {}: recorded; the head node tags this instance (controller mode)",
                job.id
            ));
            ExitCode::SUCCESS
        }
        Err(e) => failed(format!(
            "job {}: tags owed, will be applied by the next run: {e:#}",
            job.id
        )),
    }
}
