//! The CLI's exit codes and error, as the interface contract (docs/contract.md) assigns them: one [`Exit`] type for every
//! command (0 success / no findings, 1 findings or the operation failed, 2 usage error or an
//! unreadable or invalid configuration), and [`Failure`], a message for the operator with its
//! exit code.

use std::fmt;
use std::process::ExitCode;

/// What a command ends with.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// 0: success, no findings.
    Success = 0,
    /// 1: findings, or the operation failed.
    Failed = 1,
    /// 2: usage error, unreadable or invalid configuration.
    Usage = 2,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Exit 1: findings, or the operation failed.
pub const FAILED: Exit = Exit::Failed;
/// Exit 2: usage error, unreadable or invalid configuration.
pub const USAGE: Exit = Exit::Usage;

#[derive(Debug)]
pub struct Failure {
    pub code: Exit,
    pub message: String,
}

impl Failure {
    pub fn failed(message: impl Into<String>) -> Self {
        Failure {
            code: FAILED,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: USAGE,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What every command returns.
pub type Outcome = Result<Exit, Failure>;

/// The daemon's signature (`crate::daemon::run`), kept until it returns [`Outcome`] too;
/// `cmd::dispatch` turns its success into [`Exit::Success`].
pub type CliResult = Result<ExitCode, Failure>;
