//! `knockwrap run`.

use crate::cli::RunArgs;
use crate::failure::{CliResult, Failure};

pub fn run(_args: RunArgs) -> CliResult {
    Err(Failure::usage("`run` is not built yet in this version"))
}
