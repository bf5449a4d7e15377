//! One module per subcommand; each turns parsed arguments into an [`Exit`] or a [`Failure`].

pub mod allow;
pub mod check;
pub mod connect;
pub mod doctor;
mod edit;
pub mod import_knockd;
pub mod knock;
pub mod list;
pub mod matching;
pub mod revoke;
pub mod run;
pub mod status;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::failure::{Exit, Failure, Outcome};
use crate::output;

pub fn dispatch(command: Command) -> Outcome {
    match command {
        Command::Completions(args) => {
            // Rendered into memory: the generators panic on a failed write.
            let mut cmd = Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(args.shell, &mut cmd, "knockwrap", &mut buf);
            output::bytes(&buf);
            Ok(Exit::Success)
        }
        Command::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            let mut buf = Vec::new();
            man.render(&mut buf)
                .map_err(|e| Failure::failed(format!("rendering the man page: {e}")))?;
            output::bytes(&buf);
            Ok(Exit::Success)
        }
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::run(args),
        Command::Match(args) => matching::run(args),
        Command::Allow(args) => allow::run(args),
        Command::Revoke(args) => revoke::run(args),
        Command::List(args) => list::run(args),
        Command::Knock(args) => knock::run(args),
        Command::Connect(args) => connect::run(args),
        Command::ImportKnockd(args) => import_knockd::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Status(args) => status::run(args),
    }
}
