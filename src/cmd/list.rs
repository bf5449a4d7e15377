//! `knockwrap list`.

use crate::cli::ListArgs;
use crate::failure::{CliResult, Failure};

pub fn run(_args: ListArgs) -> CliResult {
    Err(Failure::usage("`list` is not built yet in this version"))
}
