//! The lease journal, `<state_dir>/leases.json`: which managed lines knockwrap granted, for whom,
//! until when, and whether knockwrap added the line or found it already there. Every change is a
//! locked atomic replace (the same machinery as hosts.allow), so it survives crashes and
//! concurrent CLI/daemon use.
//!
//! Ordering the callers keep: a grant is recorded (durably) before it is reported; on expiry the
//! line is removed first and the lease dropped after, so a crash in between only repeats the
//! removal.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::atomic::{self, Options};
use crate::error::{UpdateError, WriteError};

/// File name of the journal inside the state directory.
pub const FILE_NAME: &str = "leases.json";

/// One recorded grant. At most one per (ip, service): there is one managed line per pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: IpAddr,
    pub service: String,
    /// The door that granted it, or `manual` for `knockwrap allow`.
    pub door: String,
    /// Unix seconds after which the grant ends; None: until revoked.
    pub expires_at: Option<u64>,
    /// True when knockwrap wrote the line. False when the line was there already (written by an
    /// operator): then the lease's end drops the lease and leaves the line.
    pub added_line: bool,
}

impl Lease {
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    version: u32,
    leases: Vec<Lease>,
}

const VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum JournalError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("{}:{line}:{column}: corrupt lease journal: {message}", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: cannot create state directory: {source}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<UpdateError<JournalError>> for JournalError {
    fn from(e: UpdateError<JournalError>) -> Self {
        match e {
            UpdateError::Write(w) => JournalError::Write(w),
            UpdateError::Edit(j) => j,
        }
    }
}

/// Handle on the journal in one state directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    opts: Options,
}

impl Journal {
    /// Open the journal in `dir` and check that it reads (a missing journal is empty).
    pub fn load(dir: &Path) -> Result<Journal, JournalError> {
        let j = Journal::at(dir);
        j.leases()?;
        Ok(j)
    }

    /// The journal in `dir`, not read yet.
    pub fn at(dir: &Path) -> Journal {
        Journal {
            dir: dir.to_path_buf(),
            opts: Options {
                private: true,
                ..Options::default()
            },
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// All recorded leases, expired ones included.
    pub fn leases(&self) -> Result<Vec<Lease>, JournalError> {
        let path = self.path();
        let bytes = atomic::read_bytes(&path)?;
        Ok(parse(&path, &bytes)?.leases)
    }

    /// Leases still running at `now` (or without expiry).
    pub fn active(&self, now: u64) -> Result<Vec<Lease>, JournalError> {
        Ok(self
            .leases()?
            .into_iter()
            .filter(|l| !l.is_expired(now))
            .collect())
    }

    /// Leases whose time is up at `now`: the caller removes the line (if `added_line`), then
    /// calls `record_revoke`.
    pub fn expired(&self, now: u64) -> Result<Vec<Lease>, JournalError> {
        Ok(self
            .leases()?
            .into_iter()
            .filter(|l| l.is_expired(now))
            .collect())
    }

    /// Record a grant durably; returns the lease as stored. A grant for a pair that already has a
    /// lease merges into it: the line counts as ours if either grant added it, and the later of
    /// the two expiries wins (no expiry beats any expiry).
    pub fn record_grant(&self, lease: Lease) -> Result<Lease, JournalError> {
        let lease_copy = lease.clone();
        let mut stored = self.record_grants(vec![lease])?;
        Ok(stored.pop().unwrap_or(lease_copy))
    }

    /// Records many grants in one durable write (merged as [`Journal::record_grant`] does, in
    /// order); returns the leases as stored, one per grant.
    pub fn record_grants(&self, grants: Vec<Lease>) -> Result<Vec<Lease>, JournalError> {
        // The address as the managed line writes it (an IPv4-mapped address is IPv4 there):
        // the journal and the line always agree.
        let grants: Vec<Lease> = grants
            .into_iter()
            .map(|l| Lease {
                ip: l.ip.to_canonical(),
                ..l
            })
            .collect();
        let mut stored = Vec::with_capacity(grants.len());
        self.modify(|leases| {
            stored.clear();
            let mut index: std::collections::HashMap<(IpAddr, String), usize> = leases
                .iter()
                .enumerate()
                .map(|(i, l)| ((l.ip, l.service.clone()), i))
                .collect();
            for lease in &grants {
                let key = (lease.ip, lease.service.clone());
                let merged = match index.get(&key) {
                    Some(&k) => {
                        let old = &leases[k];
                        let merged = Lease {
                            added_line: old.added_line || lease.added_line,
                            expires_at: match (old.expires_at, lease.expires_at) {
                                (Some(a), Some(b)) => Some(a.max(b)),
                                _ => None,
                            },
                            ..lease.clone()
                        };
                        leases[k] = merged.clone();
                        merged
                    }
                    None => {
                        index.insert(key, leases.len());
                        leases.push(lease.clone());
                        lease.clone()
                    }
                };
                stored.push(merged);
            }
        })?;
        Ok(stored)
    }

    /// Moves every lease's expiry by `delta_secs`, in one durable write. The daemon measures
    /// lease time on a clock that never jumps; when the wall clock jumps by `delta_secs`, it
    /// moves the journal's wall-clock expiries with it, so that every lease keeps its remaining
    /// time now and after a restart. Returns how many leases moved.
    pub fn shift_expiries(&self, delta_secs: i64) -> Result<usize, JournalError> {
        let mut moved = 0;
        self.modify(|leases| {
            moved = 0;
            for l in leases.iter_mut() {
                if let Some(t) = l.expires_at {
                    l.expires_at = Some(t.saturating_add_signed(delta_secs));
                    moved += 1;
                }
            }
        })?;
        Ok(moved)
    }

    /// Drop the lease of (ip, service); returns it, or None when there was none.
    pub fn record_revoke(&self, ip: IpAddr, service: &str) -> Result<Option<Lease>, JournalError> {
        let ip = ip.to_canonical();
        let mut removed = None;
        self.modify(|leases| {
            if let Some(k) = leases
                .iter()
                .position(|l| l.ip == ip && l.service == service)
            {
                removed = Some(leases.remove(k));
            }
        })?;
        Ok(removed)
    }

    fn modify(&self, mut change: impl FnMut(&mut Vec<Lease>)) -> Result<(), JournalError> {
        if let Err(source) = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
        {
            return Err(JournalError::StateDir {
                path: self.dir.clone(),
                source,
            });
        }
        let path = self.path();
        atomic::update(&path, &self.opts, |bytes| {
            let mut doc = parse(&path, bytes)?;
            let before = doc.leases.clone();
            change(&mut doc.leases);
            if doc.leases == before && !bytes.is_empty() {
                return Ok(None);
            }
            doc.version = VERSION;
            doc.leases
                .sort_by(|a, b| (a.ip, &a.service).cmp(&(b.ip, &b.service)));
            let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
            out.push(b'\n');
            Ok(Some(out))
        })?;
        Ok(())
    }
}

use std::os::unix::fs::DirBuilderExt;

fn parse(path: &Path, bytes: &[u8]) -> Result<Document, JournalError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Document {
            version: VERSION,
            leases: Vec::new(),
        });
    }
    serde_json::from_slice::<Document>(bytes).map_err(|e| JournalError::Corrupt {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ip: &str, door: &str, exp: Option<u64>, added: bool) -> Lease {
        Lease {
            ip: ip.parse().unwrap(),
            service: "SSHD".into(),
            door: door.into(),
            expires_at: exp,
            added_line: added,
        }
    }

    #[test]
    fn grants_persist_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let j = Journal::load(&state).unwrap();
        assert!(j.leases().unwrap().is_empty());
        j.record_grant(lease("203.0.113.4", "openSSH", Some(100), true))
            .unwrap();
        j.record_grant(lease("2001:db8::7", "manual", None, false))
            .unwrap();
        let again = Journal::load(&state).unwrap();
        assert_eq!(again.leases().unwrap().len(), 2);
        let exp = again.expired(100).unwrap();
        assert_eq!(exp, vec![lease("203.0.113.4", "openSSH", Some(100), true)]);
        assert_eq!(again.active(99).unwrap().len(), 2);
        assert_eq!(again.active(100).unwrap().len(), 1);
        let gone = again
            .record_revoke("203.0.113.4".parse().unwrap(), "SSHD")
            .unwrap();
        assert!(gone.unwrap().added_line);
        assert!(again
            .record_revoke("203.0.113.4".parse().unwrap(), "SSHD")
            .unwrap()
            .is_none());
        assert_eq!(again.leases().unwrap().len(), 1);
    }

    #[test]
    fn mapped_addresses_are_stored_as_the_line_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::load(dir.path()).unwrap();
        let stored = j
            .record_grant(lease("::ffff:203.0.113.9", "d", Some(100), true))
            .unwrap();
        assert_eq!(stored.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        let line =
            hosts_access::edit::ManagedLine::new("SSHD", "::ffff:203.0.113.9".parse().unwrap())
                .unwrap();
        assert_eq!(line.addr(), stored.ip);
        assert!(j
            .record_revoke("::ffff:203.0.113.9".parse().unwrap(), "SSHD")
            .unwrap()
            .is_some());
        assert!(j.leases().unwrap().is_empty());
    }

    #[test]
    fn regrant_merges_ownership_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::load(dir.path()).unwrap();
        // An operator's line (not added by us) granted by a knock: stays not-ours.
        j.record_grant(lease("192.0.2.1", "a", Some(50), false))
            .unwrap();
        let m = j
            .record_grant(lease("192.0.2.1", "b", Some(40), false))
            .unwrap();
        assert_eq!(
            (m.door.as_str(), m.expires_at, m.added_line),
            ("b", Some(50), false)
        );
        let m = j
            .record_grant(lease("192.0.2.1", "c", Some(60), true))
            .unwrap();
        assert_eq!((m.expires_at, m.added_line), (Some(60), true));
        let m = j
            .record_grant(lease("192.0.2.1", "manual", None, false))
            .unwrap();
        assert_eq!((m.expires_at, m.added_line), (None, true));
        assert_eq!(j.leases().unwrap().len(), 1);
    }

    #[test]
    fn corrupt_journal_is_reported_with_position_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        std::fs::write(&p, b"{\"version\":1,\n\"leases\": [oops]}").unwrap();
        let err = Journal::load(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("leases.json:2:"), "{msg}");
        let j = Journal {
            dir: dir.path().to_path_buf(),
            opts: Options::default(),
        };
        assert!(j.record_grant(lease("192.0.2.1", "a", None, true)).is_err());
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"{\"version\":1,\n\"leases\": [oops]}"
        );
    }
}
