//! `knockwrap revoke`.

use crate::cli::RevokeArgs;
use crate::failure::{CliResult, Failure};

pub fn run(_args: RevokeArgs) -> CliResult {
    Err(Failure::usage("`revoke` is not built yet in this version"))
}
