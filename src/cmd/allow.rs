//! `knockwrap allow`: add the managed line, record the lease, and fail loudly when libwrap would
//! not honour the grant.

use hosts_writer::state::{Applied, Grant, State};
use hosts_writer::PolicyOptions;

use crate::cli::AllowArgs;
use crate::cmd::edit::{managed_line, policy_failure, print_dry_run, write_options};
use crate::failure::{Exit, Failure, Outcome};
use crate::output::outln;
use crate::target;

pub fn run(args: AllowArgs) -> Outcome {
    let line = managed_line(&args.ip, &args.service)?;
    let lease_for = match &args.duration {
        Some(text) => match knockwrap_config::parse_duration(text) {
            Some(d) if !d.is_zero() => Some(d),
            _ => {
                return Err(Failure::usage(format!(
                "--for: `{text}` is not a duration (seconds, or e.g. 90s, 15m, 1h, 2d; not zero)"
            )))
            }
        },
        None => None,
    };
    let target = target::resolve(&args.target)?;
    if lease_for.is_some() && target.state_dir.is_none() {
        return Err(Failure::usage(
            "--for needs a lease journal: give --state-dir DIR or --config PATH",
        ));
    }
    let opts = PolicyOptions {
        write: write_options(target.backup),
        hosts_deny: None,
        dry_run: args.target.dry_run,
    };
    let (changed, refused) = match (&target.state_dir, args.target.dry_run) {
        // With a journal: the state owner's transaction, lease first, under the lock.
        (Some(dir), false) => {
            let (mut state, aside) = State::open_once(&target.hosts_allow, dir, opts)
                .map_err(|e| Failure::failed(e.to_string()))?;
            if let Some(a) = aside {
                let moved = a
                    .moved_to
                    .map_or_else(String::new, |p| format!(", moved to {}", p.display()));
                eprintln!(
                    "knockwrap: warning: {}: corrupt lease journal{moved} ({}); {} leases restored",
                    a.path.display(),
                    a.reason,
                    a.restored
                );
            }
            let grant = Grant {
                door: "manual".into(),
                service: line.service().to_string(),
                addr: line.addr(),
                lease: lease_for,
                wall_ms: clock::wall_ms(),
                line: true,
                ports: Vec::new(),
            };
            let applied = state
                .grant_all(std::slice::from_ref(&grant))
                .map_err(|e| Failure::failed(e.to_string()))?;
            match applied.into_iter().next() {
                Some(Applied::Granted { changed }) => (changed, None),
                Some(Applied::NotEffective {
                    changed,
                    decided_by,
                }) => (changed, Some(format!("denied by {decided_by}"))),
                other => return Err(Failure::failed(format!("unexpected outcome {other:?}"))),
            }
        }
        _ => {
            let out = hosts_writer::allow(&target.hosts_allow, &line, &opts)
                .map_err(|e| policy_failure(&e))?;
            if args.target.dry_run {
                print_dry_run(&out, &line, "allow", "already present in");
            }
            let refused = (!out.grant.granted()).then(|| out.grant.to_string());
            (out.changed, refused)
        }
    };
    if !args.target.dry_run {
        let what = if changed { "added to" } else { "already in" };
        outln!("{}: {what} {}", line.text(), target.hosts_allow.display());
    }

    if let Some(why) = refused {
        let verb = if args.target.dry_run {
            "would be added"
        } else if changed {
            "added"
        } else {
            "present"
        };
        eprintln!(
            "knockwrap: error: line {verb} but libwrap would NOT grant {} to {}: {why}",
            line.service(),
            line.addr(),
        );
        return Ok(Exit::Failed);
    }
    Ok(Exit::Success)
}
