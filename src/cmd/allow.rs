//! `knockwrap allow`: add the managed line, record the lease, and fail loudly when libwrap would
//! not honour the grant.

use hosts_writer::{Journal, Lease, PolicyOptions};

use crate::cli::AllowArgs;
use crate::cmd::revoke::{managed_line, policy_failure, print_dry_run, write_options};
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
    let out =
        hosts_writer::allow(&target.hosts_allow, &line, &opts).map_err(|e| policy_failure(&e))?;

    if args.target.dry_run {
        print_dry_run(&out, &line, "allow", "already present in");
    } else {
        if let Some(dir) = &target.state_dir {
            // Durable before the grant is reported.
            let journal = Journal::load(dir).map_err(|e| Failure::failed(e.to_string()))?;
            let now = hosts_writer::time::now_ms();
            let expires_at = lease_for.map(|d| hosts_writer::time::expiry_secs(now, d));
            journal
                .record_grant(Lease {
                    ip: line.addr(),
                    service: line.service().to_string(),
                    door: "manual".to_string(),
                    expires_at,
                    added_line: out.changed,
                })
                .map_err(|e| Failure::failed(e.to_string()))?;
        }
        let what = if out.changed {
            "added to"
        } else {
            "already in"
        };
        outln!("{}: {what} {}", line.text(), out.file.path.display());
    }

    if !out.grant.granted() {
        let verb = if args.target.dry_run {
            "would be added"
        } else if out.changed {
            "added"
        } else {
            "present"
        };
        eprintln!(
            "knockwrap: error: line {verb} but libwrap would NOT grant {} to {}: {}",
            line.service(),
            line.addr(),
            out.grant
        );
        return Ok(Exit::Failed);
    }
    Ok(Exit::Success)
}
