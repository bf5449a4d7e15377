//! `knockwrap check`.

use crate::cli::CheckArgs;
use crate::failure::{CliResult, Failure};

pub fn run(_args: CheckArgs) -> CliResult {
    Err(Failure::usage("`check` is not built yet in this version"))
}
