//! `knockwrap run`: see [`crate::daemon`].

use crate::cli::RunArgs;
use crate::failure::CliResult;

pub fn run(args: RunArgs) -> CliResult {
    crate::daemon::run(args)
}
