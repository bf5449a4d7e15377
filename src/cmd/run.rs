//! `knockwrap run`: see [`crate::daemon`].

use crate::cli::RunArgs;
use crate::failure::{Exit, Outcome};

pub fn run(args: RunArgs) -> Outcome {
    // The daemon returns only success or a Failure.
    crate::daemon::run(args).map(|_| Exit::Success)
}
