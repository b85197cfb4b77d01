//! cost-tags: the administrator's tool (spend reports, budgets, prices, tag status and
//! repair, the installer). Its command line and exit codes are `cost_tags::cli::admin`.

use std::process::ExitCode;

fn main() -> ExitCode {
    cost_tags::cli::admin::main()
}
