//! The daemon's typed errors: what stops start-up or a reload ([`DaemonError`]), and why the
//! parent refused a message from the capture process ([`Refused`]). The CLI turns the first
//! into an exit code with [`crate::failure::Failure`]; the second is logged and ends the child.

use std::net::IpAddr;
use std::path::PathBuf;

use hosts_writer::state::StateError;
use knock_match::{DoorError, Refusal};
use knockwrap_config::ConfigErrors;
use thiserror::Error;

use knockwrap_wire::WireError;

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error("{}: no interface: set `interface` or pass --interface", .0.display())]
    NoInterface(PathBuf),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Door(#[from] DoorError),
    #[error("the capture process's setup: {0}")]
    Setup(#[from] WireError),
    #[error("sending the setup to the capture process: {0}")]
    Channel(#[source] std::io::Error),
}

/// Why a message from the capture process was refused (each means the child is not to be
/// trusted any more).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Refused {
    #[error("malformed message: {0}")]
    Malformed(#[from] WireError),
    #[error("door index {0} out of range")]
    DoorOutOfRange(u16),
    #[error("door `{0}` is disabled")]
    DoorDisabled(String),
    #[error("source {addr}: {why}")]
    Source { addr: IpAddr, why: Refusal },
    #[error("door `{door}`: one-time sequence {index} is used or does not exist")]
    OneTimeUsed { door: String, index: u32 },
    #[error("door `{door}`: TOTP step {counter} is used or outside the window")]
    TotpStep { door: String, counter: u64 },
    #[error("door `{0}`: the knock does not fit its kind")]
    WrongKind(String),
    #[error("statistics for {got} interfaces, {configured} configured")]
    Interfaces { got: usize, configured: usize },
    #[error("capture interface index {index}, {configured} configured")]
    Interface { index: u16, configured: usize },
    #[error("setup generation {got}: not one the capture process may use now (current {current})")]
    Generation { got: u32, current: u32 },
}
