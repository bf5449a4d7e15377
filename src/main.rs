//! knockwrap: the thin binary. Parses the command line and hands each subcommand to its module.

mod cli;
mod cmd;
mod daemon;
mod failure;
mod logging;
mod target;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::dispatch(cli.command) {
        Ok(code) => code,
        Err(failure) => {
            // A closed or broken stderr must not turn a clean failure into a panic.
            let _ = writeln!(std::io::stderr(), "knockwrap: {failure}");
            failure.exit_code()
        }
    }
}
