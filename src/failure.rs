//! The CLI's error: a message for the operator and the exit code SPEC.md assigns.

use std::fmt;
use std::process::ExitCode;

/// Exit 1: findings, or the operation failed.
pub const FAILED: u8 = 1;
/// Exit 2: usage error, unreadable or invalid configuration.
pub const USAGE: u8 = 2;

#[derive(Debug)]
pub struct Failure {
    pub code: u8,
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
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type CliResult = Result<ExitCode, Failure>;
