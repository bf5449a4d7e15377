//! The daemon's side of the state owner (`hosts_writer::state`): opening it with the
//! configuration's settings and logging what it did. Every grant, revoke and expiry itself is
//! the state library's, shared with the CLI.

use hosts_writer::state::{SetAside, State, StateError};
use hosts_writer::{Expired, PolicyOptions};
use knockwrap_config::Config;
use tracing::{error, info, warn};

/// How long one attempt waits for the hosts.allow lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// The state of the configured hosts.allow and state_dir. A corrupt journal was moved aside
/// (logged); only a journal that cannot be read or moved is an error.
pub fn open(config: &Config) -> Result<State, StateError> {
    let mut policy = PolicyOptions::default();
    policy.write.backup = config.backup;
    // The loop never waits long for a lock someone else holds (an editor using flock, a slow
    // configuration run): a grant that finds it busy is deferred and retried, and matching
    // and expiry go on meanwhile.
    policy.write.lock_timeout = LOCK_WAIT;
    let (state, aside) = State::open(&config.hosts_allow, &config.state_dir, policy)?;
    log_set_aside(aside);
    Ok(state)
}

/// Logs a corrupt journal moved aside (once, when it happens).
pub fn log_set_aside(aside: Option<SetAside>) {
    if let Some(a) = aside {
        let moved_to = a
            .moved_to
            .as_ref()
            .map_or_else(|| "-".to_owned(), |p| p.display().to_string());
        error!(
            journal = %a.path.display(), moved_to = %moved_to, reason = %a.reason,
            leases_restored = a.restored,
            "the lease journal was lost or corrupt: moved aside and rebuilt from the leases known"
        );
    }
}

/// Logs the outcome of expiring leases, one line each.
pub fn log_expiries(results: Vec<Expired>) -> u64 {
    let ended = results.iter().filter(|e| e.result.is_ok()).count() as u64;
    for Expired { lease, result } in results {
        match result {
            Ok(true) => info!(
                door = %lease.door, addr = %lease.ip, service = %lease.service,
                "revoke: lease expired"
            ),
            Ok(false) if lease.added_line => info!(
                door = %lease.door, addr = %lease.ip, service = %lease.service,
                "lease expired; the line was already gone"
            ),
            Ok(false) => info!(
                door = %lease.door, addr = %lease.ip, service = %lease.service,
                "lease expired; line kept: it was not added by knockwrap"
            ),
            Err(e) => warn!(
                door = %lease.door, addr = %lease.ip, service = %lease.service, error = %e,
                "lease expired but the revoke failed; will retry"
            ),
        }
    }
    ended
}
