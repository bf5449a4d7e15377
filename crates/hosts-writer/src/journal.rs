//! The lease journal, `<state_dir>/leases.json`: which managed lines knockwrap granted, for whom,
//! until when, and whether knockwrap added the line or found it already there.
//!
//! The file is a JSON document `{"version": 2, "leases": [...]}` (the snapshot), followed by
//! zero or more records, one JSON object per line: `{"set": <lease>}` or
//! `{"drop": {"ip": ..., "service": ...}}`. The leases are the snapshot's with the records
//! applied in order. A change is appended as records (one `write` and one `fdatasync` under
//! the lock: [`atomic::update_log`]); after [`MAX_RECORDS`] records, or when the file is not in
//! this form, the change rewrites the whole file as a new snapshot (the locked atomic replace
//! every file knockwrap writes goes through). Records are absolute (a whole lease, or its
//! removal), so applying them is the same however often it is done.
//!
//! A last line without its newline is a record torn by a crash (or still being written): it is
//! ignored, since its writer never acted on it, and the next change rewrites the file without
//! it. Any other line that does not read is corruption, reported with its line and column.
//! A version-1 journal (the snapshot alone, written by earlier builds) reads as it is; the
//! daemon leaves the snapshot alone when it stops ([`Journal::compact`]), which those builds
//! read.
//!
//! Ordering the callers keep: a grant is recorded (durably) before it is reported; on expiry the
//! line is removed first and the lease dropped after, so a crash in between only repeats the
//! removal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::atomic::{self, Change, Options};
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
    /// The firewall ports this lease admits its address to (its door's `open_ports`), which
    /// its end closes; empty: none. Absent in journals of builds without the firewall door.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<knock_match::PortSpec>,
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

/// The snapshot's version; version 1 had no records after it.
const VERSION: u32 = 2;

/// Records after the snapshot before a change rewrites the file as a new snapshot.
pub const MAX_RECORDS: usize = 64;

/// One line after the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Record {
    /// This lease, replacing any of the same (ip, service).
    Set(Lease),
    /// No lease for (ip, service).
    Drop { ip: IpAddr, service: String },
}

/// The journal as read.
#[derive(Debug, Default)]
struct Parsed {
    leases: Vec<Lease>,
    /// Records after the snapshot.
    records: usize,
    /// Records may be appended: a version-2 snapshot, and the file ends in a newline.
    appendable: bool,
}

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
        let bytes = atomic::read_private(&path)?;
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
                            ports: Vec::new(),
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

    /// Drops the leases of every (ip, service) in `keys`, in one durable write.
    pub fn record_drops(&self, keys: &[(IpAddr, String)]) -> Result<(), JournalError> {
        let keys: std::collections::HashSet<(IpAddr, &str)> = keys
            .iter()
            .map(|(ip, s)| (ip.to_canonical(), s.as_str()))
            .collect();
        self.drop_where(|l| keys.contains(&(l.ip, l.service.as_str())))
            .map(|_| ())
    }

    /// Drops every lease `pick` selects, in one durable write; returns them.
    pub fn drop_where(&self, pick: impl Fn(&Lease) -> bool) -> Result<Vec<Lease>, JournalError> {
        let mut dropped = Vec::new();
        self.modify(|leases| {
            dropped.clear();
            leases.retain(|l| {
                let drop = pick(l);
                if drop {
                    dropped.push(l.clone());
                }
                !drop
            });
        })?;
        Ok(dropped)
    }

    /// Rewrites the journal as a snapshot alone when records follow it (the daemon does this
    /// when it stops): a journal left so reads as one JSON document, as earlier builds wrote
    /// it and can read it. Returns whether it wrote.
    pub fn compact(&self) -> Result<bool, JournalError> {
        let path = self.path();
        let out = atomic::update_log(&path, &self.opts, |bytes| {
            let read = parse(&path, bytes)?;
            if bytes.is_empty() || (read.records == 0 && read.appendable) {
                return Ok(Change::Keep);
            }
            Ok(Change::Replace(snapshot(read.leases)))
        })?;
        Ok(out.written)
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
        atomic::update_log(&path, &self.opts, |bytes| {
            let read = parse(&path, bytes)?;
            let mut leases = read.leases.clone();
            change(&mut leases);
            let records = records(&read.leases, &leases);
            if records.is_empty() && !bytes.is_empty() {
                return Ok(Change::Keep);
            }
            if read.appendable && read.records + records.len() <= MAX_RECORDS {
                let mut out = Vec::new();
                for r in &records {
                    out.extend(serde_json::to_vec(r).unwrap_or_default());
                    out.push(b'\n');
                }
                return Ok(Change::Append(out));
            }
            Ok(Change::Replace(snapshot(leases)))
        })?;
        Ok(())
    }
}

/// The journal as a snapshot alone, leases in (ip, service) order.
fn snapshot(mut leases: Vec<Lease>) -> Vec<u8> {
    leases.sort_by(|a, b| (a.ip, &a.service).cmp(&(b.ip, &b.service)));
    let doc = Document {
        version: VERSION,
        leases,
    };
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

use std::os::unix::fs::DirBuilderExt;

/// The records that turn `before` into `after`, in (ip, service) order.
fn records(before: &[Lease], after: &[Lease]) -> Vec<Record> {
    let key = |l: &Lease| (l.ip, l.service.clone());
    let old: HashMap<_, &Lease> = before.iter().map(|l| (key(l), l)).collect();
    let new: HashMap<_, &Lease> = after.iter().map(|l| (key(l), l)).collect();
    let mut out: Vec<((IpAddr, String), Record)> = Vec::new();
    for (k, l) in &new {
        if old.get(k) != Some(l) {
            out.push((k.clone(), Record::Set((*l).clone())));
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.push((
                k.clone(),
                Record::Drop {
                    ip: k.0,
                    service: k.1.clone(),
                },
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, r)| r).collect()
}

fn corrupt(path: &Path, line: usize, column: usize, message: String) -> JournalError {
    JournalError::Corrupt {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

fn newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// Reads the snapshot and applies the records after it (see the module doc).
fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed, JournalError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Parsed::default());
    }
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Document>();
    let doc = match stream.next() {
        Some(Ok(doc)) => doc,
        Some(Err(e)) => return Err(corrupt(path, e.line(), e.column(), e.to_string())),
        None => return Ok(Parsed::default()),
    };
    let mut read = Parsed {
        leases: doc.leases,
        records: 0,
        appendable: doc.version == VERSION && bytes.ends_with(b"\n"),
    };
    let mut at = stream.byte_offset();
    // Line number of `bytes[at]`, 1-based.
    let mut line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
    // The rest of the snapshot's last line: blanks only.
    let eol = newline(&bytes[at..]).map_or(bytes.len(), |i| at + i);
    if let Some(k) = bytes[at..eol].iter().position(|b| !b.is_ascii_whitespace()) {
        let column = at + k
            - bytes[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        return Err(corrupt(
            path,
            line,
            column,
            "trailing characters after the leases".into(),
        ));
    }
    at = eol;
    while at < bytes.len() {
        // `bytes[at]` is the newline that ends the previous line.
        at += 1;
        line += 1;
        let Some(len) = newline(&bytes[at..]) else {
            // No newline: a record torn mid-write (ignored; the file then does not end in a
            // newline, so it is not `appendable`), or trailing blanks.
            break;
        };
        let text = &bytes[at..at + len];
        at += len;
        if text.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let record: Record = serde_json::from_slice(text)
            .map_err(|e| corrupt(path, line, e.column(), e.to_string()))?;
        read.records += 1;
        let (ip, service) = match &record {
            Record::Set(l) => (l.ip, l.service.as_str()),
            Record::Drop { ip, service } => (*ip, service.as_str()),
        };
        let k = read
            .leases
            .iter()
            .position(|l| l.ip == ip && l.service == service);
        match (record, k) {
            (Record::Set(l), Some(k)) => read.leases[k] = l,
            (Record::Set(l), None) => read.leases.push(l),
            (Record::Drop { .. }, Some(k)) => {
                read.leases.remove(k);
            }
            (Record::Drop { .. }, None) => {}
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lease(ip: &str, door: &str, exp: Option<u64>, added: bool) -> Lease {
        Lease {
            ip: ip.parse().unwrap(),
            service: "SSHD".into(),
            door: door.into(),
            expires_at: exp,
            added_line: added,
            ports: Vec::new(),
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

    fn inode(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn changes_are_appended_as_records_until_the_file_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        let j = Journal::load(dir.path()).unwrap();
        j.record_grant(lease("192.0.2.1", "a", Some(50), true))
            .unwrap();
        let first = std::fs::read(&p).unwrap();
        let ino = inode(&p);
        // A new journal is a snapshot alone.
        assert!(first.starts_with(b"{\n  \"version\": 2,"), "{first:?}");
        j.record_grant(lease("192.0.2.2", "b", None, false))
            .unwrap();
        j.record_revoke("192.0.2.1".parse().unwrap(), "SSHD")
            .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(inode(&p), ino, "appended in place, not replaced");
        assert_eq!(
            std::str::from_utf8(&bytes[first.len()..]).unwrap(),
            "{\"set\":{\"ip\":\"192.0.2.2\",\"service\":\"SSHD\",\"door\":\"b\",\
             \"expires_at\":null,\"added_line\":false}}\n\
             {\"drop\":{\"ip\":\"192.0.2.1\",\"service\":\"SSHD\"}}\n"
        );
        assert_eq!(
            j.leases().unwrap(),
            vec![lease("192.0.2.2", "b", None, false)]
        );
        // No change, no record.
        j.record_revoke("192.0.2.1".parse().unwrap(), "SSHD")
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), bytes);
        // Up to MAX_RECORDS records; the change past them rewrites a snapshot.
        for k in 2..MAX_RECORDS {
            j.record_grant(lease("192.0.2.3", "c", Some(k as u64), true))
                .unwrap();
        }
        assert_eq!(inode(&p), ino);
        assert_eq!(
            parse(&p, &std::fs::read(&p).unwrap()).unwrap().records,
            MAX_RECORDS
        );
        j.record_grant(lease("192.0.2.3", "c", Some(1000), true))
            .unwrap();
        assert_ne!(inode(&p), ino, "compacted by a rename");
        let read = parse(&p, &std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(read.records, 0);
        assert_eq!(
            read.leases,
            vec![
                lease("192.0.2.2", "b", None, false),
                lease("192.0.2.3", "c", Some(1000), true)
            ]
        );
    }

    #[test]
    fn compacting_leaves_one_document_with_the_same_leases() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        let j = Journal::load(dir.path()).unwrap();
        assert!(!j.compact().unwrap(), "no journal, nothing to write");
        j.record_grant(lease("192.0.2.1", "a", Some(50), true))
            .unwrap();
        let ino = inode(&p);
        assert!(!j.compact().unwrap(), "a snapshot alone is left as it is");
        assert_eq!(inode(&p), ino);
        j.record_grant(lease("192.0.2.2", "b", None, false))
            .unwrap();
        j.record_revoke("192.0.2.1".parse().unwrap(), "SSHD")
            .unwrap();
        let leases = j.leases().unwrap();
        assert!(j.compact().unwrap());
        // One JSON document, as earlier builds wrote and read it.
        let doc: Document = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(doc.leases, leases);
        assert_eq!(j.leases().unwrap(), leases);
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_left_out_of_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        let j = Journal::load(dir.path()).unwrap();
        j.record_grant(lease("192.0.2.1", "a", Some(50), true))
            .unwrap();
        j.record_grant(lease("192.0.2.2", "a", Some(50), true))
            .unwrap();
        let whole = std::fs::read(&p).unwrap();
        // A crash in the middle of the next append.
        let torn = b"{\"set\":{\"ip\":\"192.0.2.9\",\"service\":\"SS";
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(torn).unwrap();
        let before = j.leases().unwrap();
        assert_eq!(
            before.len(),
            2,
            "the torn record is not a lease, nor an error"
        );
        j.record_grant(lease("192.0.2.3", "b", None, true)).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !bytes.windows(torn.len()).any(|w| w == torn),
            "torn bytes carried over"
        );
        assert!(bytes.ends_with(b"\n"));
        let after = j.leases().unwrap();
        assert_eq!(after.len(), 3);
        assert!(after
            .iter()
            .all(|l| l.ip != "192.0.2.9".parse::<IpAddr>().unwrap()));
        assert!(whole.len() < bytes.len());
    }

    #[test]
    fn a_corrupt_record_is_reported_with_its_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        let j = Journal::load(dir.path()).unwrap();
        j.record_grant(lease("192.0.2.1", "a", Some(50), true))
            .unwrap();
        let snapshot_lines = std::fs::read_to_string(&p).unwrap().lines().count();
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"drop\":{\"ip\":\"192.0.2.1\",\"service\":\"SSHD\"}}\n")
            .unwrap();
        f.write_all(b"{\"set\": oops}\n").unwrap();
        let err = j.leases().unwrap_err();
        let want = format!(
            "leases.json:{}:9: corrupt lease journal",
            snapshot_lines + 2
        );
        assert!(err.to_string().contains(&want), "{err} (want {want})");
        // And nothing is written over it.
        let bytes = std::fs::read(&p).unwrap();
        assert!(j.record_grant(lease("192.0.2.4", "a", None, true)).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), bytes);
        // Text after the snapshot on its own line is corruption too.
        std::fs::write(&p, b"{\"version\":2,\"leases\":[]} x\n").unwrap();
        let err = j.leases().unwrap_err().to_string();
        assert!(err.contains("leases.json:1:27:"), "{err}");
    }

    #[test]
    fn a_version_1_journal_reads_and_becomes_version_2_on_the_next_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        let v1 = Document {
            version: 1,
            leases: vec![lease("192.0.2.1", "a", Some(50), true)],
        };
        std::fs::write(&p, serde_json::to_vec_pretty(&v1).unwrap()).unwrap();
        let j = Journal::load(dir.path()).unwrap();
        assert_eq!(j.leases().unwrap(), v1.leases);
        j.record_grant(lease("192.0.2.2", "a", None, true)).unwrap();
        let read = parse(&p, &std::fs::read(&p).unwrap()).unwrap();
        assert_eq!((read.records, read.leases.len()), (0, 2));
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .contains("\"version\": 2"));
    }

    /// Records are absolute, so a compaction that crashed after its rename but before anyone
    /// forgot the old records could replay them on the new snapshot without harm.
    #[test]
    fn replaying_records_on_a_snapshot_that_has_them_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        let j = Journal::load(dir.path()).unwrap();
        j.record_grant(lease("192.0.2.1", "a", Some(50), true))
            .unwrap();
        let snapshot = std::fs::read(&p).unwrap();
        j.record_grant(lease("192.0.2.1", "b", Some(70), false))
            .unwrap();
        j.record_grant(lease("192.0.2.2", "b", None, true)).unwrap();
        j.record_revoke("192.0.2.2".parse().unwrap(), "SSHD")
            .unwrap();
        let all = std::fs::read(&p).unwrap();
        let records = &all[snapshot.len()..];
        let leases = j.leases().unwrap();
        let compacted = Document {
            version: VERSION,
            leases: leases.clone(),
        };
        let mut again = serde_json::to_vec_pretty(&compacted).unwrap();
        again.push(b'\n');
        again.extend_from_slice(records);
        assert_eq!(parse(&p, &again).unwrap().leases, leases);
    }

    #[test]
    fn a_journal_open_to_others_is_rewritten_owner_only_not_appended_to() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        let j = Journal::load(dir.path()).unwrap();
        j.record_grant(lease("192.0.2.1", "a", Some(50), true))
            .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let ino = inode(&p);
        j.record_grant(lease("192.0.2.2", "a", Some(50), true))
            .unwrap();
        assert_ne!(inode(&p), ino);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(j.leases().unwrap().len(), 2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// A crash can cut the journal at any byte of an append: what reads back is exactly
        /// the leases before that append, never an error and never part of the change.
        #[test]
        fn a_journal_cut_at_any_byte_of_an_append_reads_as_before_it(
            ops in proptest::collection::vec((0u8..4, proptest::option::of(0u64..100), proptest::bool::ANY, proptest::bool::ANY), 1..12)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join(FILE_NAME);
            let j = Journal::load(dir.path()).unwrap();
            j.record_grant(lease("192.0.2.200", "first", None, true)).unwrap();
            // (file length, leases) after each change that was an append.
            let mut states = vec![(std::fs::read(&p).unwrap().len(), j.leases().unwrap())];
            for (k, exp, added, revoke) in ops {
                let ip = format!("192.0.2.{k}");
                if revoke {
                    j.record_revoke(ip.parse().unwrap(), "SSHD").unwrap();
                } else {
                    j.record_grant(lease(&ip, "d", exp, added)).unwrap();
                }
                states.push((std::fs::read(&p).unwrap().len(), j.leases().unwrap()));
            }
            let bytes = std::fs::read(&p).unwrap();
            for w in states.windows(2) {
                let ((from, before), (to, _)) = (&w[0], &w[1]);
                for cut in *from..*to {
                    let read = parse(&p, &bytes[..cut]).unwrap();
                    proptest::prop_assert_eq!(&read.leases, before, "cut at {}", cut);
                }
            }
        }

        /// Whatever the bytes, reading the journal returns leases or a corruption error.
        #[test]
        fn any_bytes_read_as_leases_or_an_error(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            valid_prefix in proptest::bool::ANY,
        ) {
            let mut all = Vec::new();
            if valid_prefix {
                all.extend_from_slice(b"{\"version\":2,\"leases\":[]}\n{\"drop\":{\"ip\":\"192.0.2.1\",\"service\":\"SSHD\"}}\n");
            }
            all.extend_from_slice(&bytes);
            let _ = parse(Path::new("leases.json"), &all);
        }
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
