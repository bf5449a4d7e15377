//! One module per subcommand; each turns parsed arguments into an exit code.

pub mod allow;
pub mod check;
pub mod connect;
pub mod knock;
pub mod list;
pub mod matching;
pub mod revoke;
pub mod run;

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
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::run(args),
        Command::Match(args) => matching::run(args),
        Command::Allow(args) => allow::run(args),
        Command::Revoke(args) => revoke::run(args),
        Command::List(args) => list::run(args),
        Command::Knock(args) => knock::run(args),
        Command::Connect(args) => connect::run(args),
    }
}
