//! `knockwrap match`.

use crate::cli::MatchArgs;
use crate::failure::{CliResult, Failure};

pub fn run(_args: MatchArgs) -> CliResult {
    Err(Failure::usage("`match` is not built yet in this version"))
}
