//! One module per subcommand; each turns parsed arguments into an exit code.

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::failure::{CliResult, Failure};

pub fn dispatch(command: Command) -> CliResult {
    match command {
        Command::Completions(args) => {
            let mut cmd = Cli::command();
            clap_complete::generate(args.shell, &mut cmd, "knockwrap", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            man.render(&mut std::io::stdout())
                .map_err(|e| Failure::failed(format!("writing the man page: {e}")))?;
            Ok(ExitCode::SUCCESS)
        }
        other => Err(Failure::usage(format!(
            "`{}` is not built yet in this version",
            subcommand_name(&other)
        ))),
    }
}

fn subcommand_name(command: &Command) -> &'static str {
    match command {
        Command::Run(_) => "run",
        Command::Check(_) => "check",
        Command::Match(_) => "match",
        Command::Allow(_) => "allow",
        Command::Revoke(_) => "revoke",
        Command::List(_) => "list",
        Command::Knock(_) => "knock",
        Command::Completions(_) => "completions",
        Command::Man => "man",
    }
}
