//! `knockwrap allow`.

use crate::cli::AllowArgs;
use crate::failure::{CliResult, Failure};

pub fn run(_args: AllowArgs) -> CliResult {
    Err(Failure::usage("`allow` is not built yet in this version"))
}
