//! Grants and their leases: what the daemon does with a matcher decision, and how leases end.
//!
//! Order on a grant: the lease is journaled (durable) first, then the line is written, so a
//! crash in between leaves a lease whose expiry removes nothing. Order on expiry: the line is
//! removed first, then the lease dropped, so a crash in between only repeats the removal.
//! A line knockwrap did not add (an operator's own) is never removed by a lease or a door.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hosts_access::edit::{self, ManagedLine};
use hosts_writer::{Expired, Journal, Lease, PolicyOptions};
use tracing::{info, warn};

/// The outcome of one grant, revoke or expiry, for the log line and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The line is present and libwrap grants the pair.
    Granted { changed: bool },
    /// The line is present but libwrap would not grant: `decided_by` is file:line.
    NotEffective { decided_by: String },
    /// The line was removed (or was already absent).
    Revoked { changed: bool },
    /// A revoke left the line in place because knockwrap did not add it.
    Kept,
}

/// One grant of a burst: the door's service for `addr`, with the door's lease counted from
/// `wall_ms` (wall-clock milliseconds: the journal keeps wall-clock expiries for restarts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub door: String,
    pub service: String,
    pub addr: IpAddr,
    pub lease: Option<Duration>,
    pub wall_ms: u64,
}

pub struct Grants {
    hosts_allow: PathBuf,
    journal: Journal,
    policy: PolicyOptions,
    /// Earliest lease expiry (Unix seconds), cached so the loop need not read the journal.
    next_expiry: Option<u64>,
    /// After a failed revoke, expiry is not retried before this (Unix seconds).
    retry_at: Option<u64>,
}

/// Seconds between attempts to revoke an expired lease whose removal failed.
pub const RETRY_SECS: u64 = 5;

impl Grants {
    pub fn open(hosts_allow: &Path, state_dir: &Path, backup: bool) -> Result<Grants, String> {
        let journal = Journal::load(state_dir).map_err(|e| e.to_string())?;
        let mut policy = PolicyOptions::default();
        policy.write.backup = backup;
        let mut grants = Grants {
            hosts_allow: hosts_allow.to_path_buf(),
            journal,
            policy,
            next_expiry: None,
            retry_at: None,
        };
        grants.refresh_next_expiry()?;
        Ok(grants)
    }

    fn refresh_next_expiry(&mut self) -> Result<(), String> {
        let leases = self.journal.leases().map_err(|e| e.to_string())?;
        self.next_expiry = leases.iter().filter_map(|l| l.expires_at).min();
        Ok(())
    }

    /// Adds the managed lines of a burst of grants: every lease journaled first (one durable
    /// write), then every line (one edit of hosts.allow). One [`Applied`] per grant, in order;
    /// an error fails the whole burst (nothing was written past the failing step).
    pub fn grant_all(&mut self, grants: &[Grant]) -> Result<Vec<Applied>, String> {
        if grants.is_empty() {
            return Ok(Vec::new());
        }
        let mut lines = Vec::with_capacity(grants.len());
        for g in grants {
            lines.push(ManagedLine::new(&g.service, g.addr).map_err(|e| e.to_string())?);
        }
        // The journal ORs this into an existing lease's flag, so a line knockwrap added earlier
        // stays knockwrap's, and an operator's line present now stays the operator's.
        let before =
            hosts_writer::atomic::read_bytes(&self.hosts_allow).map_err(|e| e.to_string())?;
        let leases = grants
            .iter()
            .zip(&lines)
            .map(|(g, line)| Lease {
                ip: g.addr,
                service: g.service.clone(),
                door: g.door.clone(),
                expires_at: g
                    .lease
                    .map(|l| hosts_writer::time::expiry_secs(g.wall_ms, l)),
                added_line: !edit::contains(&before, line),
            })
            .collect();
        self.journal
            .record_grants(leases)
            .map_err(|e| e.to_string())?;
        self.refresh_next_expiry()?;
        let out = hosts_writer::allow_all(&self.hosts_allow, &lines, &self.policy)
            .map_err(|e| e.to_string())?;
        Ok(out
            .lines
            .into_iter()
            .map(|(changed, grant)| {
                if grant.granted() {
                    Applied::Granted { changed }
                } else {
                    Applied::NotEffective {
                        decided_by: grant.location().unwrap_or_else(|| "unknown rule".into()),
                    }
                }
            })
            .collect())
    }

    /// A revoke door: removes the line if knockwrap added it, and drops the lease.
    pub fn revoke(&mut self, service: &str, addr: IpAddr) -> Result<Applied, String> {
        let Some(lease) = self.lease_of(addr, service)? else {
            let line = ManagedLine::new(service, addr).map_err(|e| e.to_string())?;
            return Ok(if self.line_present(&line)? {
                Applied::Kept
            } else {
                Applied::Revoked { changed: false }
            });
        };
        let result =
            hosts_writer::end_lease(&self.hosts_allow, &self.journal, &lease, &self.policy);
        self.refresh_next_expiry()?;
        match result.map_err(|e| e.to_string())? {
            true => Ok(Applied::Revoked { changed: true }),
            false if lease.added_line => Ok(Applied::Revoked { changed: false }),
            false => Ok(Applied::Kept),
        }
    }

    /// Ends every lease that has expired at `now`. A lease whose revoke failed stays in the
    /// journal and is retried after [`RETRY_SECS`].
    pub fn expire(&mut self, now: u64) -> Result<Vec<Expired>, String> {
        if self.wake_at().is_none_or(|t| t > now) {
            return Ok(Vec::new());
        }
        let done = hosts_writer::expire_leases(&self.hosts_allow, &self.journal, now, &self.policy)
            .map_err(|e| e.to_string())?;
        self.retry_at = done
            .iter()
            .any(|e| e.result.is_err())
            .then_some(now + RETRY_SECS);
        self.refresh_next_expiry()?;
        Ok(done)
    }

    /// Moves every lease's expiry by `delta_secs` (the wall clock jumped by that much).
    pub fn shift_expiries(&mut self, delta_secs: i64) -> Result<usize, String> {
        let moved = self
            .journal
            .shift_expiries(delta_secs)
            .map_err(|e| e.to_string())?;
        self.retry_at = None;
        self.refresh_next_expiry()?;
        Ok(moved)
    }

    /// When the loop should next call [`Grants::expire`] (Unix seconds).
    pub fn wake_at(&self) -> Option<u64> {
        match (self.next_expiry, self.retry_at) {
            (Some(t), Some(r)) => Some(t.max(r)),
            (t, _) => t,
        }
    }

    fn lease_of(&self, addr: IpAddr, service: &str) -> Result<Option<Lease>, String> {
        let leases = self.journal.leases().map_err(|e| e.to_string())?;
        Ok(leases
            .into_iter()
            .find(|l| l.ip == addr && l.service == service))
    }

    fn line_present(&self, line: &ManagedLine) -> Result<bool, String> {
        let bytes =
            hosts_writer::atomic::read_bytes(&self.hosts_allow).map_err(|e| e.to_string())?;
        Ok(edit::contains(&bytes, line))
    }
}

/// Logs the outcome of expiring leases, one line each.
pub fn log_expiries(results: Vec<Expired>) {
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
}
