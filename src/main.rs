//! knockwrap: the thin binary. Parses the command line, hands each subcommand to its module,
//! and turns the outcome into the exit code (a closed stdout never panics: see `output`).

mod cli;
mod client;
mod cmd;
mod configfile;
mod daemon;
mod doctor;
mod failure;
mod firewall;
mod logging;
mod output;
mod status;
mod sys;
mod target;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use failure::Exit;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let outcome = cmd::dispatch(cli.command);
    let write_error = output::finish();
    let code = match outcome {
        Ok(code) => code,
        Err(failure) => {
            // A closed or broken stderr must not turn a clean failure into a panic.
            let _ = writeln!(std::io::stderr(), "knockwrap: {failure}");
            failure.code
        }
    };
    match write_error {
        Some(e) if code == Exit::Success => {
            let _ = writeln!(std::io::stderr(), "knockwrap: writing standard output: {e}");
            Exit::Failed.into()
        }
        _ => code.into(),
    }
}
