//! `knockwrap knock`.

use crate::cli::KnockArgs;
use crate::failure::{CliResult, Failure};

pub fn run(_args: KnockArgs) -> CliResult {
    Err(Failure::usage("`knock` is not built yet in this version"))
}
