//! The state owner: every grant, revoke and lease expiry goes through here, for the daemon
//! and the CLI alike, so that the two can never disagree on order.
//!
//! - A grant is one transaction under the hosts.allow lock: the presence check on the locked
//!   bytes, the leases journaled (durable), then the lines written. A crash in between leaves a
//!   lease whose expiry removes nothing; never a line without its lease. Grants that arrive
//!   together are one transaction (one journal write, one edit of hosts.allow).
//! - A lease's end and a revoke door remove only the line knockwrap added (one copy: an
//!   identical line an operator wrote meanwhile stays); `revoke_any` (the CLI) removes the
//!   managed line in any case, whoever wrote it. Line first, lease after, both under the
//!   hosts.allow lock, so a grant racing a revoke or an expiry can never leave a line whose
//!   lease was dropped. Leases that end together end in one transaction.
//! - Leases end on time whoever wrote them: [`State::notice_changes`] re-reads the journal's
//!   next expiry when the file changed under us (a CLI `allow --for` while the daemon runs).
//! - A corrupt journal never stops the daemon: it is moved aside (`<name>.corrupt-<time>`),
//!   rebuilt from the leases last read, and the move is reported once.

use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hosts_access::edit::{self, EditError, ManagedLine};
use thiserror::Error;

use crate::journal::{Journal, JournalError, Lease};
use crate::policy::{self, ExpireError, Expired, GrantCheck, PolicyError, PolicyOptions};

/// One grant: the door's service for `addr`, with the door's lease counted from `wall_ms`
/// (wall-clock milliseconds: the journal keeps wall-clock expiries for restarts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub door: String,
    pub service: String,
    pub addr: IpAddr,
    pub lease: Option<Duration>,
    pub wall_ms: u64,
    /// Write the hosts.allow line (a door's `hosts_allow`, true unless firewall only).
    pub line: bool,
    /// The firewall ports the grant admits `addr` to (a door's `open_ports`).
    pub ports: Vec<knock_match::PortSpec>,
}

impl Grant {
    /// A grant of the hosts.allow line alone (the CLI, and doors without `open_ports`).
    pub fn line(
        door: &str,
        service: &str,
        addr: IpAddr,
        lease: Option<Duration>,
        wall_ms: u64,
    ) -> Grant {
        Grant {
            door: door.to_owned(),
            service: service.to_owned(),
            addr,
            lease,
            wall_ms,
            line: true,
            ports: Vec::new(),
        }
    }
}

/// The grant sink seam: a place besides hosts.allow where a lease takes effect (the firewall
/// door's admission set). The state owner drives every sink inside its own transactions,
/// under the hosts.allow lock, so that a lease's line and its other effects change together
/// whoever races: [`Sink::open`] once the leases are durable in the journal and their lines
/// written; [`Sink::close`] once their lines are removed, before the leases are dropped. A
/// sink's failure undoes nothing (the journal stays the record); it is reported through
/// [`State::take_sink_errors`], and a sink is expected to bound its effects by itself (the
/// firewall's elements carry the lease as a kernel timeout).
pub trait Sink {
    /// A short name for messages (`firewall`).
    fn name(&self) -> &str;
    /// Gives effect to `leases` (those with something for this sink), `now_ms` being the wall
    /// clock: a lease's time left is its expiry minus that.
    fn open(&mut self, leases: &[Lease], now_ms: u64) -> Result<(), String>;
    /// Ends the effect of `leases`.
    fn close(&mut self, leases: &[Lease]) -> Result<(), String>;
    /// Ends every effect for `addr` (the operator's revoke), lease or not; returns how many.
    fn close_addr(&mut self, addr: IpAddr) -> Result<usize, String>;
}

/// The outcome of one grant or revoke, for the log line and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The line is present and libwrap grants the pair.
    Granted { changed: bool },
    /// The line is present (`changed`: added now) but libwrap would not grant the pair:
    /// `decided_by` is file:line.
    NotEffective { changed: bool, decided_by: String },
    /// The line was removed (or was already absent).
    Revoked { changed: bool },
    /// A revoke left the line in place because knockwrap did not add it.
    Kept,
    /// A firewall-only grant: no line; the lease is recorded and its ports opened.
    Admitted,
}

#[derive(Debug, Error)]
pub enum StateError {
    #[error(transparent)]
    Line(#[from] EditError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Expire(#[from] ExpireError),
    /// The state directory could be used by another account to redirect root's writes.
    #[error("{}: unsafe state directory: {why}", path.display())]
    UnsafeStateDir { path: PathBuf, why: String },
}

impl StateError {
    /// The lock file another process holds, when that is all that went wrong (the caller may
    /// retry later without blocking).
    pub fn lock_busy(&self) -> Option<&Path> {
        match self {
            StateError::Policy(PolicyError::Write(crate::error::WriteError::LockTimeout {
                lock,
                ..
            })) => Some(lock),
            _ => None,
        }
    }
}

/// Refuses a state directory another account could plant files in, as sshd's StrictModes
/// does: it must not be a symlink, must be owned by root or by us, and must not be writable
/// by group or others. A missing directory is fine (it is created 0700). Checked on a
/// descriptor of the directory (`fstat`), for the message at start-up; every state file
/// write then checks again on the descriptor it writes through (`atomic::update`).
pub fn check_state_dir(dir: &Path) -> Result<(), StateError> {
    let unsafe_dir = |why: String| StateError::UnsafeStateDir {
        path: dir.to_path_buf(),
        why,
    };
    let Some((uid, mode)) = crate::dirfd::inspect_state_dir(dir).map_err(unsafe_dir)? else {
        return Ok(());
    };
    if uid != 0 && uid != crate::dirfd::euid() {
        return Err(unsafe_dir(format!(
            "owned by uid {uid}, not root (mode {mode:04o}): chown root {}",
            dir.display()
        )));
    }
    if mode & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "writable by group or others (owner uid {uid}, mode {mode:04o}): chmod go-w {}",
            dir.display()
        )));
    }
    Ok(())
}

/// A journal that was corrupt (moved aside: `moved_to`), or emptied or deleted under us
/// while we knew leases (`moved_to` is `None`), and rebuilt from the leases known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    pub path: PathBuf,
    pub moved_to: Option<PathBuf>,
    pub reason: String,
    /// Leases written back from memory.
    pub restored: usize,
}

/// Seconds between attempts to revoke an expired lease whose removal failed.
pub const RETRY_SECS: u64 = 1;

/// (inode, size, mtime ns, ctime ns) of the journal file, to notice writes by others (the
/// ctime: a chown or chmod, which makes the journal foreign, changes nothing else).
type Stamp = (u64, u64, i128, i128);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::symlink_metadata(path).ok()?;
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    Some((
        m.ino(),
        m.size(),
        ns(m.mtime(), m.mtime_nsec()),
        ns(m.ctime(), m.ctime_nsec()),
    ))
}

pub struct State {
    hosts_allow: PathBuf,
    journal: Journal,
    policy: PolicyOptions,
    /// Earliest lease expiry (Unix seconds), from the journal as last read.
    next_expiry: Option<u64>,
    /// After a failed revoke, expiry is not retried before this (Unix seconds).
    retry_at: Option<u64>,
    /// The journal file as last read or written by us.
    seen: Option<Stamp>,
    /// The leases as last read (and written): what a corrupt journal is rebuilt from.
    known: Vec<Lease>,
    /// A rebuild that happened during one of our own operations, for the next report.
    report: Option<SetAside>,
    /// Opened for one operation (the CLI, see [`State::open_once`]): the journal is not read
    /// back after our own write.
    once: bool,
    /// Where leases take effect besides hosts.allow ([`Sink`]).
    sinks: Vec<Box<dyn Sink>>,
    /// Sink failures since the last [`State::take_sink_errors`].
    sink_errors: Vec<String>,
}

impl State {
    /// Opens the state of `hosts_allow` kept in `state_dir`. A corrupt journal is moved aside
    /// and reported (the second value); only a journal that cannot be read or moved is an error.
    pub fn open(
        hosts_allow: &Path,
        state_dir: &Path,
        policy: PolicyOptions,
    ) -> Result<(State, Option<SetAside>), StateError> {
        check_state_dir(state_dir)?;
        // Created now (0700, with any missing parents), not at the first grant: the quick
        // start keeps hosts.allow beside the state directory, in a directory that exists only
        // once this has run.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|source| JournalError::StateDir {
                path: state_dir.to_path_buf(),
                source,
            })?;
        let journal = Journal::at(state_dir);
        let mut state = State {
            hosts_allow: hosts_allow.to_path_buf(),
            journal,
            policy,
            next_expiry: None,
            retry_at: None,
            seen: None,
            known: Vec::new(),
            report: None,
            once: false,
            sinks: Vec::new(),
            sink_errors: Vec::new(),
        };
        let aside = state.reread()?;
        Ok((state, aside))
    }

    /// [`State::open`] for a caller that makes one grant or revoke and then drops the state
    /// (the CLI): the transaction is the same (lock, journal first, checks, fsyncs), but the
    /// journal is not read back after our own write, since nobody asks this state for its
    /// leases or next expiry afterwards. Should anyone call [`State::notice_changes`] after
    /// all, it reads the journal then.
    pub fn open_once(
        hosts_allow: &Path,
        state_dir: &Path,
        policy: PolicyOptions,
    ) -> Result<(State, Option<SetAside>), StateError> {
        let (mut state, aside) = State::open(hosts_allow, state_dir, policy)?;
        state.once = true;
        Ok((state, aside))
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Adds a place where leases take effect besides hosts.allow (see [`Sink`]).
    pub fn add_sink(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    /// Removes every sink (a reload that configures none).
    pub fn clear_sinks(&mut self) {
        self.sinks.clear();
    }

    /// The sinks' failures since the last call, each naming its sink.
    pub fn take_sink_errors(&mut self) -> Vec<String> {
        std::mem::take(&mut self.sink_errors)
    }

    /// Runs `f` on every sink, keeping their errors.
    fn each_sink(
        sinks: &mut [Box<dyn Sink>],
        errors: &mut Vec<String>,
        mut f: impl FnMut(&mut dyn Sink) -> Result<(), String>,
    ) {
        for s in sinks.iter_mut() {
            if let Err(e) = f(s.as_mut()) {
                errors.push(format!("{}: {e}", s.name()));
            }
        }
    }

    /// Reads the journal again (next expiry, known leases). A corrupt journal is moved aside
    /// and rebuilt from the leases known before; the move is returned for the caller to log.
    fn reread(&mut self) -> Result<Option<SetAside>, StateError> {
        let path = self.journal.path();
        match self.journal.leases() {
            // Emptied (`> leases.json`) or deleted under us while leases run: those leases
            // must still end, so the journal is rebuilt from what we knew. (A revoke leaves a
            // journal document with no leases, not an empty or missing file.)
            Ok(leases)
                if leases.is_empty()
                    && !self.known.is_empty()
                    && stamp(&path).is_none_or(|s| s.1 == 0) =>
            {
                let restored = self.known.len();
                self.journal.record_grants(self.known.clone())?;
                let leases = self.journal.leases()?;
                self.note(leases);
                Ok(Some(SetAside {
                    path,
                    moved_to: None,
                    reason: "emptied or deleted while leases were running".into(),
                    restored,
                }))
            }
            Ok(leases) => {
                self.note(leases);
                Ok(None)
            }
            Err(e @ JournalError::Corrupt { .. })
            | Err(e @ JournalError::Write(crate::error::WriteError::ForeignOwner { .. })) => {
                // A journal another account owns or may write could say anything (leases that
                // never end, or that end an operator's line): kept aside as evidence, never
                // read, and rebuilt from what we knew, like a corrupt one.
                let (kind, message) = match e {
                    JournalError::Corrupt { message, .. } => ("corrupt", message),
                    other => ("foreign", other.to_string()),
                };
                let secs = clock::wall_ms() / 1000;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let moved_to = crate::atomic::rename_aside(
                    &path,
                    std::ffi::OsStr::new(&format!("{name}.{kind}-{secs}")),
                )
                .map_err(JournalError::Write)?;
                let restored = self.known.len();
                if !self.known.is_empty() {
                    // On failure (broken again meanwhile) `known` stays for the next try.
                    self.journal.record_grants(self.known.clone())?;
                }
                let leases = self.journal.leases()?;
                self.note(leases);
                Ok(Some(SetAside {
                    path,
                    moved_to: Some(moved_to),
                    reason: message,
                    restored,
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the journal after a change of our own. Our writes always leave a journal
    /// document (never an empty or missing file), so what it holds is the truth; if someone
    /// broke it in the instant since, the rebuild is reported by the next
    /// [`State::notice_changes`].
    /// A read that fails here does not fail the operation that already succeeded: the file
    /// then differs from what we last saw, and the next [`State::notice_changes`] meets (and
    /// reports) the problem.
    fn reread_own(&mut self) -> Result<(), StateError> {
        if self.once {
            // Unknown since our write: the next `notice_changes` (if any) reads it.
            self.seen = None;
            return Ok(());
        }
        match self.reread() {
            Ok(Some(aside)) => self.report = Some(aside),
            Ok(None) => {}
            Err(_) => self.seen = None,
        }
        Ok(())
    }

    fn note(&mut self, leases: Vec<Lease>) {
        self.next_expiry = leases.iter().filter_map(|l| l.expires_at).min();
        self.known = leases;
        self.seen = stamp(&self.journal.path());
    }

    /// Re-reads the journal when someone else changed it since we last looked (cheap: one
    /// stat). Returns a set-aside report when the changed journal was corrupt.
    pub fn notice_changes(&mut self) -> Result<Option<SetAside>, StateError> {
        if let Some(report) = self.report.take() {
            return Ok(Some(report));
        }
        if stamp(&self.journal.path()) == self.seen {
            return Ok(None);
        }
        self.reread()
    }

    /// The leases as last read.
    pub fn leases(&self) -> &[Lease] {
        &self.known
    }

    /// Grants every `grants` entry in one transaction (see the module doc). One [`Applied`]
    /// per grant, in order; an error fails the whole burst with nothing written past it.
    pub fn grant_all(&mut self, grants: &[Grant]) -> Result<Vec<Applied>, StateError> {
        if grants.is_empty() {
            return Ok(Vec::new());
        }
        // Every grant's line is checked (the journal's key is the pair); only those of grants
        // that write one go into hosts.allow.
        let each = grants
            .iter()
            .map(|g| ManagedLine::new(&g.service, g.addr))
            .collect::<Result<Vec<_>, _>>()?;
        let lines: Vec<ManagedLine> = grants
            .iter()
            .zip(&each)
            .filter(|(g, _)| g.line)
            .map(|(_, l)| l.clone())
            .collect();
        let journal = self.journal.clone();
        let recorded: std::cell::RefCell<Vec<Lease>> = Default::default();
        let mut record = |bytes: &[u8]| -> Result<(), PolicyError> {
            // Inside the lock: whether each line is there now decides whose it is. The journal
            // ORs this into an existing lease's flag, so a line knockwrap added earlier stays
            // knockwrap's, and an operator's line present now stays the operator's.
            let leases = grants
                .iter()
                .zip(&each)
                .map(|(g, line)| Lease {
                    ip: g.addr,
                    service: g.service.clone(),
                    door: g.door.clone(),
                    expires_at: g.lease.map(|l| crate::time::expiry_secs(g.wall_ms, l)),
                    added_line: g.line && !edit::contains(bytes, line),
                    ports: g.ports.clone(),
                })
                .collect();
            *recorded.borrow_mut() = journal.record_grants(leases).map_err(Box::new)?;
            Ok(())
        };
        let (sinks, sink_errors) = (&mut self.sinks, &mut self.sink_errors);
        let wall_ms = grants.iter().map(|g| g.wall_ms).max().unwrap_or(0);
        let mut open = || {
            let with_ports: Vec<Lease> = recorded
                .borrow()
                .iter()
                .filter(|l| !l.ports.is_empty())
                .cloned()
                .collect();
            if !with_ports.is_empty() {
                State::each_sink(sinks, sink_errors, |s| s.open(&with_ports, wall_ms));
            }
        };
        let out = policy::allow_all_then(
            &self.hosts_allow,
            &lines,
            &self.policy,
            &mut record,
            &mut open,
        );
        // What we just made durable is known, even if the journal breaks before we read it.
        for lease in recorded.into_inner() {
            match self
                .known
                .iter_mut()
                .find(|l| l.ip == lease.ip && l.service == lease.service)
            {
                Some(k) => *k = lease,
                None => self.known.push(lease),
            }
        }
        // Whatever happened, the journal may have changed.
        self.reread_own()?;
        let mut checks = out?.lines.into_iter();
        Ok(grants
            .iter()
            .map(|g| match g.line {
                true => checks.next().map_or(Applied::Admitted, applied),
                false => Applied::Admitted,
            })
            .collect())
    }

    /// A revoke door: removes the line if knockwrap added it, and drops the lease, in one
    /// transaction under the hosts.allow lock ([`policy::end_leases`]).
    pub fn revoke(&mut self, service: &str, addr: IpAddr) -> Result<Applied, StateError> {
        let line = ManagedLine::new(service, addr)?;
        let addr = line.addr();
        let ended = self.end_leases(1, &|l| l.ip == addr && l.service == service);
        self.reread_own()?;
        let Some(ended) = ended?.into_iter().next() else {
            let bytes = crate::atomic::read_bytes(&self.hosts_allow)
                .map_err(|e| StateError::Policy(e.into()))?;
            return Ok(if edit::contains(&bytes, &line) {
                Applied::Kept
            } else {
                Applied::Revoked { changed: false }
            });
        };
        Ok(match ended.result? {
            true => Applied::Revoked { changed: true },
            false if ended.lease.added_line => Applied::Revoked { changed: false },
            false => Applied::Kept,
        })
    }

    /// The operator's revoke: removes the managed line (in any ASCII case, as libwrap matches
    /// it) whoever added it, and its leases, in one transaction under the hosts.allow lock.
    /// Returns the edit's outcome (for `--dry-run` diffs and the grant check).
    pub fn revoke_any(&mut self, line: &ManagedLine) -> Result<policy::PolicyOutcome, StateError> {
        if self.policy.dry_run {
            return Ok(policy::revoke(&self.hosts_allow, line, &self.policy)?);
        }
        let (sinks, errors) = (&mut self.sinks, &mut self.sink_errors);
        let out = policy::revoke_leased(
            &self.hosts_allow,
            &self.journal,
            line,
            &self.policy,
            &mut |_| {},
        );
        // Every effect for the address goes, lease or not: the operator revokes the address.
        if out.is_ok() {
            let addr = line.addr();
            State::each_sink(sinks, errors, |s| s.close_addr(addr).map(|_| ()));
        }
        self.reread_own()?;
        Ok(out?)
    }

    /// [`policy::end_leases_then`], closing the ended leases' sinks inside the transaction.
    fn end_leases(
        &mut self,
        limit: usize,
        select: &dyn Fn(&Lease) -> bool,
    ) -> Result<Vec<Expired>, PolicyError> {
        let (sinks, errors) = (&mut self.sinks, &mut self.sink_errors);
        policy::end_leases_then(
            &self.hosts_allow,
            &self.journal,
            &self.policy,
            limit,
            select,
            &mut |ended| {
                let with_ports: Vec<Lease> = ended
                    .iter()
                    .filter(|l| !l.ports.is_empty())
                    .cloned()
                    .collect();
                if !with_ports.is_empty() {
                    State::each_sink(sinks, errors, |s| s.close(&with_ports));
                }
            },
        )
    }

    /// Ends the leases that have expired at `now` (Unix seconds): all of them in one
    /// transaction, up to [`policy::EXPIRE_BATCH`] per call ([`State::wake_at`] is then still
    /// due, so the caller's next turn goes on). When the transaction fails, the leases stay in
    /// the journal and are retried after [`RETRY_SECS`].
    pub fn expire(&mut self, now: u64) -> Result<Vec<Expired>, StateError> {
        if self.wake_at().is_none_or(|t| t > now) {
            return Ok(Vec::new());
        }
        let done = self.end_leases(policy::EXPIRE_BATCH, &|l| l.is_expired(now));
        self.retry_at = match &done {
            Err(_) => Some(now + RETRY_SECS),
            Ok(done) => done
                .iter()
                .any(|e| e.result.is_err())
                .then_some(now + RETRY_SECS),
        };
        self.reread_own()?;
        Ok(done?)
    }

    /// Ends every lease that has an expiry, whatever the expiry says, in one transaction. For
    /// a start whose wall clock is behind the journal's last write ([`State::written_ms`]):
    /// expiries written on a truer clock cannot be judged by this one (a 15 s lease from
    /// before the reboot looks years away on a clock that booted in 2001, and a later step to
    /// the truth cannot tell it from a lease of this boot). Leases without an expiry stay.
    pub fn end_timed_leases(&mut self) -> Result<Vec<Expired>, StateError> {
        let out = self.end_leases(usize::MAX, &|l: &Lease| l.expires_at.is_some());
        self.reread_own()?;
        Ok(out?)
    }

    /// When the journal was last written (its mtime, wall-clock ms), if it exists.
    pub fn written_ms(&self) -> Option<u64> {
        let m = std::fs::symlink_metadata(self.journal.path()).ok()?;
        let ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
        u64::try_from(ns / 1_000_000).ok()
    }

    /// Moves every lease's expiry by `delta_secs` (the wall clock jumped by that much).
    pub fn shift_expiries(&mut self, delta_secs: i64) -> Result<usize, StateError> {
        let moved = self.journal.shift_expiries(delta_secs)?;
        self.retry_at = None;
        self.reread_own()?;
        Ok(moved)
    }

    /// Rewrites the journal as a snapshot alone (see [`Journal::compact`]); the daemon calls
    /// this when it stops.
    pub fn compact_journal(&mut self) -> Result<bool, StateError> {
        let wrote = self.journal.compact()?;
        self.seen = stamp(&self.journal.path());
        Ok(wrote)
    }

    /// When the caller should next call [`State::expire`] (Unix seconds).
    pub fn wake_at(&self) -> Option<u64> {
        match (self.next_expiry, self.retry_at) {
            (Some(t), Some(r)) => Some(t.max(r)),
            (t, _) => t,
        }
    }
}

fn applied((changed, grant): (bool, GrantCheck)) -> Applied {
    if grant.granted() {
        Applied::Granted { changed }
    } else {
        Applied::NotEffective {
            changed,
            decided_by: grant.location().unwrap_or_else(|| "unknown rule".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts.allow"), "").unwrap();
        std::fs::write(dir.path().join("hosts.deny"), "ALL: ALL\n").unwrap();
        let (state, aside) = State::open(
            &dir.path().join("hosts.allow"),
            &dir.path().join("state"),
            PolicyOptions::default(),
        )
        .unwrap();
        assert!(aside.is_none());
        (dir, state)
    }

    fn grant(addr: &str, secs: u64) -> Grant {
        Grant {
            door: "d".into(),
            service: "sshd".into(),
            addr: addr.parse().unwrap(),
            lease: Some(Duration::from_secs(secs)),
            wall_ms: 1_000_000,
            line: true,
            ports: Vec::new(),
        }
    }

    #[test]
    fn a_broken_journal_is_rebuilt_from_the_leases_known() {
        let (dir, mut s) = setup();
        let applied = s.grant_all(&[grant("198.18.0.5", 60)]).unwrap();
        assert_eq!(applied, vec![Applied::Granted { changed: true }]);
        assert_eq!(s.leases().len(), 1);
        let journal = dir.path().join("state/leases.json");
        for broken in ["{\"leases\": [", ""] {
            std::fs::write(&journal, broken).unwrap();
            let aside = s.notice_changes().unwrap().expect("noticed");
            assert_eq!(aside.restored, 1, "{broken:?}");
            assert_eq!(aside.moved_to.is_some(), !broken.is_empty());
            assert_eq!(s.journal().leases().unwrap().len(), 1);
            assert_eq!(s.wake_at(), Some(1_000 + 60));
            assert!(s.notice_changes().unwrap().is_none(), "reported once");
        }
        std::fs::remove_file(&journal).unwrap();
        assert_eq!(s.notice_changes().unwrap().unwrap().restored, 1);
        // A revoke leaves a journal without leases: that is no loss.
        assert_eq!(
            s.revoke("sshd", "198.18.0.5".parse().unwrap()).unwrap(),
            Applied::Revoked { changed: true }
        );
        assert!(s.notice_changes().unwrap().is_none());
        assert!(s.leases().is_empty());
    }

    #[test]
    fn planted_links_and_open_state_dirs_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, mut s) = setup();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let outside = dir.path().join("nologin");
        // A journal planted as a symlink: refused, nothing created where it points.
        std::os::unix::fs::symlink(&outside, state.join("leases.json")).unwrap();
        let err = s.grant_all(&[grant("198.18.0.5", 60)]).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(!outside.exists());
        std::fs::remove_file(state.join("leases.json")).unwrap();
        // A lock file planted as a symlink: refused too.
        std::os::unix::fs::symlink(&outside, state.join(".leases.json.knockwrap.lock")).unwrap();
        assert!(s.grant_all(&[grant("198.18.0.5", 60)]).is_err());
        assert!(!outside.exists());
        std::fs::remove_file(state.join(".leases.json.knockwrap.lock")).unwrap();
        // The journal is owner-only.
        s.grant_all(&[grant("198.18.0.5", 60)]).unwrap();
        let mode = std::fs::metadata(state.join("leases.json")).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A world-writable state directory, or a symlinked one, is refused at open.
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let open = |d: &Path| {
            State::open(&dir.path().join("hosts.allow"), d, PolicyOptions::default()).err()
        };
        let err = open(&state).expect("refused");
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(open(&state).is_none());
        let link = dir.path().join("state-link");
        std::os::unix::fs::symlink(&state, &link).unwrap();
        assert!(open(&link)
            .expect("refused")
            .to_string()
            .contains("symlink"));
    }

    /// Issue point 8: a journal another account owns (or may write) is neither read nor
    /// written through: set aside, rebuilt from the leases known, and the new one is ours
    /// and 0600. Needs root (a chown to another account).
    #[test]
    fn a_journal_another_account_owns_is_set_aside_not_trusted() {
        if !test_support::require_root_or_skip(
            "state::tests::a_journal_another_account_owns_is_set_aside_not_trusted",
        ) {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let (dir, mut s) = setup();
        s.grant_all(&[grant("198.18.0.5", 60)]).unwrap();
        let journal = dir.path().join("state/leases.json");
        // `nobody` forges a lease that never ends, for an address nobody knocked.
        let forged = r#"{"version": 2, "leases": [{"ip": "198.18.0.66", "service": "sshd", "door": "d", "expires_at": null, "added_line": true}]}
"#;
        std::fs::write(&journal, forged).unwrap();
        std::os::unix::fs::chown(&journal, Some(65534), Some(65534)).unwrap();
        let err = s.journal().leases().unwrap_err();
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
        let aside = s.notice_changes().unwrap().expect("set aside");
        assert!(aside
            .moved_to
            .as_ref()
            .unwrap()
            .to_string_lossy()
            .contains(".foreign-"));
        assert_eq!(aside.restored, 1);
        let leases = s.journal().leases().unwrap();
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0].ip.to_string(), "198.18.0.5");
        let meta = std::fs::metadata(&journal).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
        // Root's own journal made writable by others: the same.
        std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(s.notice_changes().unwrap().is_some());
        assert_eq!(std::fs::metadata(&journal).unwrap().mode() & 0o777, 0o600);
        // A writer never appends to, nor keeps the owner of, a foreign journal.
        std::os::unix::fs::chown(&journal, Some(65534), Some(65534)).unwrap();
        let err = s.journal().record_grant(Lease {
            ip: "198.18.0.7".parse().unwrap(),
            service: "sshd".into(),
            door: "d".into(),
            expires_at: Some(5),
            added_line: true,
            ports: Vec::new(),
        });
        assert!(err.is_err());
        assert_eq!(std::fs::metadata(&journal).unwrap().uid(), 65534);
    }

    #[test]
    fn a_lease_written_by_someone_else_is_noticed() {
        let (dir, mut s) = setup();
        assert_eq!(s.wake_at(), None);
        let other = Journal::at(&dir.path().join("state"));
        other
            .record_grant(Lease {
                ip: "198.18.0.9".parse().unwrap(),
                service: "sshd".into(),
                door: "manual".into(),
                expires_at: Some(1234),
                added_line: true,
                ports: Vec::new(),
            })
            .unwrap();
        assert!(s.notice_changes().unwrap().is_none());
        assert_eq!(s.wake_at(), Some(1234));
    }
}
