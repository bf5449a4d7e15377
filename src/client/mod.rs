//! The knock client, shared by `knockwrap knock` and `knockwrap connect`: the subcommands parse
//! arguments and print; the work is here.
//!
//! A knock goes [`plan`] (hosts and sequence, from the command line, a door of the daemon's
//! configuration or the client [`profile`]) → [`resolve`] (every address of every host, before
//! anything is sent) → [`send`] (the knocks on the wire) → [`onetime`] (a profile target's
//! one-time sequence recorded as used). [`connect`] then opens a connection through the door
//! and relays standard input and output over it.

pub mod connect;
pub mod onetime;
pub mod plan;
pub mod profile;
pub mod resolve;
pub mod send;

use crate::cli::KnockOptions;
use crate::failure::Failure;

pub(crate) use plan::{Plan, Source};
pub(crate) use send::Knocked;

/// The hosts and the sequence to knock: from the command line's PORTs, a `--door` of the
/// daemon's configuration, or else the client profile.
pub(crate) fn plan(src: &Source) -> Result<Plan, Failure> {
    match Plan::from_command_line(src)? {
        Some(plan) => Ok(plan),
        None => profile::plan(src),
    }
}

/// Knocks as `plan` says: resolves every host first (`-4`/`-6` over the profile target's
/// family), sends the sequence to every address (`--delay` over the target's delay), and
/// records a one-time sequence as used once any of it went out. One result per address, in
/// resolution order.
pub(crate) fn knock(
    plan: &Plan,
    opts: &KnockOptions,
    log: Option<&(dyn Fn(&str) + Sync)>,
) -> Result<Vec<Knocked>, Failure> {
    let family = plan.family(opts);
    let delay = plan.delay(opts);
    let groups = resolve::resolve_groups(&plan.hosts, family, log)?;
    let results = send::send(&groups, &plan.steps, delay, log);
    plan.sent(&results)?;
    Ok(results)
}
