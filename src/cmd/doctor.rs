//! `knockwrap doctor`: placeholder, filled in below.

use crate::cli::DoctorArgs;
use crate::failure::{Exit, Outcome};

pub fn run(_args: DoctorArgs) -> Outcome {
    Ok(Exit::Success)
}
