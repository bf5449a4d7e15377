//! `knockwrap revoke`: remove the managed line (in any case, as libwrap matches it) and its
//! lease, and fail (exit 1, naming the deciding file:line) when libwrap still grants the
//! address afterwards.

use hosts_writer::state::State;
use hosts_writer::PolicyOptions;

use crate::cli::RevokeArgs;
use crate::cmd::edit::{managed_line, policy_failure, print_dry_run, write_options};
use crate::failure::{Exit, Failure, Outcome};
use crate::output::outln;
use crate::target;

pub fn run(args: RevokeArgs) -> Outcome {
    let line = managed_line(&args.ip, &args.service)?;
    let target = target::resolve(&args.target)?;
    let opts = PolicyOptions {
        write: write_options(target.backup),
        hosts_deny: None,
        dry_run: args.target.dry_run,
    };
    let out = match (&target.state_dir, args.target.dry_run) {
        // The state owner: line first, lease after (a crash in between leaves a lease whose
        // removal repeats).
        (Some(dir), false) => {
            let (mut state, _) = State::open_once(&target.hosts_allow, dir, opts)
                .map_err(|e| Failure::failed(e.to_string()))?;
            // The firewall door's admissions of the address go too, in the same transaction.
            if let Some(config) = &target.config {
                let sink = crate::firewall::FirewallSink::for_config(config)
                    .map_err(|e| Failure::failed(format!("firewall: {e}")))?;
                if let Some(sink) = sink {
                    state.add_sink(Box::new(sink));
                }
            }
            let out = state
                .revoke_any(&line)
                .map_err(|e| Failure::failed(e.to_string()))?;
            let sink_errors = state.take_sink_errors();
            if !sink_errors.is_empty() {
                for e in &sink_errors {
                    eprintln!("knockwrap: error: {e}");
                }
                return Err(Failure::failed(format!(
                    "{}: removed from hosts.allow, but the firewall could not drop its admissions \
                     (they end with their leases' kernel timeouts)",
                    line.text()
                )));
            }
            out
        }
        _ => hosts_writer::revoke(&target.hosts_allow, &line, &opts)
            .map_err(|e| policy_failure(&e))?,
    };
    if args.target.dry_run {
        print_dry_run(&out, &line, "revoke", "not in");
    } else {
        let what = if out.changed {
            "removed from"
        } else {
            "not in"
        };
        outln!("{}: {what} {}", line.text(), out.file.path.display());
    }
    // With the firewall door, libwrap's verdict is not the last word: a guarded port of the
    // service hides it from an address that is neither admitted (the revoke just removed
    // that) nor in `always_allow`.
    let hidden: Vec<String> = target
        .config
        .as_ref()
        .filter(|c| !c.firewall.always_allows(line.addr()))
        .map(|c| {
            c.doors
                .iter()
                .filter(|d| d.door.service.eq_ignore_ascii_case(line.service()))
                .flat_map(|d| d.open_ports.iter().map(|p| p.to_string()))
                .collect()
        })
        .unwrap_or_default();
    if out.grant.granted() && !hidden.is_empty() && !args.target.dry_run {
        eprintln!(
            "knockwrap: note: libwrap would grant {} to {} ({}), but the firewall hides {} from it",
            line.service(),
            line.addr(),
            out.grant,
            hidden.join(", ")
        );
        return Ok(Exit::Success);
    }
    // An on-call engineer revoking a stolen laptop's address must not read success while
    // libwrap still lets it in (an operator's own line, a wider rule): exit 1 with the rule.
    if out.grant.granted() && !args.target.dry_run {
        eprintln!(
            "knockwrap: error: libwrap still grants {} to {}: {}; remove or narrow that rule",
            line.service(),
            line.addr(),
            out.grant
        );
        return Ok(Exit::Failed);
    }
    if out.grant.granted() {
        eprintln!(
            "knockwrap: warning: after this revoke libwrap would still grant {} to {}: {}",
            line.service(),
            line.addr(),
            out.grant
        );
    }
    Ok(Exit::Success)
}
