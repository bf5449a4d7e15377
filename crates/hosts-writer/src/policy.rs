//! hosts.allow policy on top of the atomic update: add or remove a managed line, refuse any
//! result with a validation error its input did not have, and after an allow ask the engine
//! whether libwrap would really grant the pair (the effective-grant check).
//!
//! The deny table used by that check is, unless given, `hosts.deny` in the same directory as
//! the hosts.allow path as given (before symlinks are followed): `/etc/hosts.allow` pairs with
//! `/etc/hosts.deny`, which is what libwrap reads.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hosts_access::edit::{self, ManagedLine};
use hosts_access::eval::{self, Decision, Request, Table, Verdict};
use hosts_access::Diagnostic;
use thiserror::Error;

use crate::atomic::{self, Options, Outcome};
use crate::error::{UpdateError, WriteError};
use crate::journal::{Journal, JournalError, Lease};

/// How a policy edit runs.
#[derive(Debug, Clone, Default)]
pub struct PolicyOptions {
    pub write: Options,
    /// The deny table for the grant check; None: the sibling `hosts.deny`.
    pub hosts_deny: Option<PathBuf>,
    /// Compute and check the result, write nothing.
    pub dry_run: bool,
}

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The edit would have introduced validation errors; nothing was written.
    #[error("{}: refusing to write: the result would have new errors: {}", path.display(), list(diagnostics))]
    Introduced {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("{}: cannot read the deny table for the grant check: {source}", path.display())]
    Deny {
        path: PathBuf,
        #[source]
        source: WriteError,
    },
    /// The lease journal could not record the grant; hosts.allow was not changed.
    #[error("lease journal: {0}")]
    Journal(#[from] Box<JournalError>),
}

fn list(ds: &[Diagnostic]) -> String {
    ds.iter()
        .map(|d| format!("line {}:{}: {} [{}]", d.line, d.column, d.message, d.code))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Error diagnostics of `after` beyond those `before` had, counted per code (lines shift when a
/// line is added or removed, codes do not). Only the changed lines are validated when that is
/// provably the same answer as validating both whole files (`hosts_access::delta`), which is
/// what a managed line's add or remove is; otherwise both whole files.
pub fn introduced_errors(before: &[u8], after: &[u8]) -> Vec<Diagnostic> {
    hosts_access::introduced_errors(before, after)
}

/// The deny table paired with `hosts_allow`.
pub fn sibling_deny(hosts_allow: &Path) -> PathBuf {
    match hosts_allow.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join("hosts.deny"),
        _ => PathBuf::from("hosts.deny"),
    }
}

/// libwrap's verdict for the managed line's (service, address) after the change.
#[derive(Debug, Clone)]
pub struct GrantCheck {
    pub decision: Decision,
    pub allow_path: PathBuf,
    pub deny_path: PathBuf,
}

impl GrantCheck {
    pub fn granted(&self) -> bool {
        self.decision.verdict == Verdict::Granted
    }

    /// `path:line` of the deciding rule, when a rule decided.
    pub fn location(&self) -> Option<String> {
        let path = match self.decision.table? {
            Table::Allow => &self.allow_path,
            Table::Deny => &self.deny_path,
        };
        let line = self.decision.line?;
        Some(format!("{}:{line}", path.display()))
    }
}

impl fmt::Display for GrantCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location() {
            Some(loc) => write!(
                f,
                "{} by {loc}: {}",
                self.decision.verdict, self.decision.reason
            ),
            None => write!(f, "{}: {}", self.decision.verdict, self.decision.reason),
        }
    }
}

/// What an allow or revoke did.
#[derive(Debug, Clone)]
pub struct PolicyOutcome {
    pub file: Outcome,
    /// The line was added (allow) or removed (revoke); false: it was already so.
    pub changed: bool,
    /// libwrap's verdict for the pair over the resulting file.
    pub grant: GrantCheck,
}

/// Apply `op` to the hosts file at `path` (or preview it, for a dry run), refusing a result
/// with error diagnostics its input did not have.
pub fn checked_edit(
    path: &Path,
    opts: &PolicyOptions,
    op: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
) -> Result<Outcome, PolicyError> {
    checked_edit_then(path, opts, op, &mut |_| Ok(()))
}

/// [`checked_edit`], running `before_write` under the file's lock on the bytes the edit starts
/// from, before anything is written (and again if the edit is redone on a foreign change; not
/// for a dry run). An error from it leaves the file untouched. The state owner journals leases
/// there: journal first, then the line, with the presence check inside the lock.
pub fn checked_edit_then(
    path: &Path,
    opts: &PolicyOptions,
    op: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    before_write: &mut dyn FnMut(&[u8]) -> Result<(), PolicyError>,
) -> Result<Outcome, PolicyError> {
    checked_transaction(path, opts, op, before_write, |_| Ok(()))
}

/// [`checked_edit_then`] with a last step too: `after_write` runs once the new file is durable
/// (or the edit changed nothing), still under the lock (not for a dry run). The state owner
/// drops ended leases there: line first, lease after, and no other knockwrap writer in between.
pub fn checked_transaction(
    path: &Path,
    opts: &PolicyOptions,
    op: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    before_write: &mut dyn FnMut(&[u8]) -> Result<(), PolicyError>,
    after_write: impl FnOnce(&Outcome) -> Result<(), PolicyError>,
) -> Result<Outcome, PolicyError> {
    let edit = |bytes: &[u8]| -> Result<Option<Vec<u8>>, PolicyError> {
        let after = op(bytes);
        if let Some(after) = &after {
            let new = introduced_errors(bytes, after);
            if !new.is_empty() {
                return Err(PolicyError::Introduced {
                    path: path.to_path_buf(),
                    diagnostics: new,
                });
            }
        }
        if !opts.dry_run {
            before_write(bytes)?;
        }
        Ok(after)
    };
    let result = if opts.dry_run {
        atomic::preview(path, edit)
    } else {
        atomic::update_then(path, &opts.write, edit, after_write)
    };
    result.map_err(|e| match e {
        UpdateError::Write(w) => PolicyError::Write(w),
        UpdateError::Edit(p) => p,
    })
}

/// The deny table paired with `path` (the sibling hosts.deny unless given): its path and bytes.
fn deny_table(path: &Path, opts: &PolicyOptions) -> Result<(PathBuf, Vec<u8>), PolicyError> {
    let deny_path = opts
        .hosts_deny
        .clone()
        .unwrap_or_else(|| sibling_deny(path));
    let deny = atomic::read_bytes(&deny_path).map_err(|source| PolicyError::Deny {
        path: deny_path.clone(),
        source,
    })?;
    Ok((deny_path, deny))
}

/// libwrap's verdict for the managed line's pair over `allow_bytes` and the deny table.
pub fn grant_check(
    path: &Path,
    allow_bytes: &[u8],
    line: &ManagedLine,
    opts: &PolicyOptions,
) -> Result<GrantCheck, PolicyError> {
    let (deny_path, deny) = deny_table(path, opts)?;
    let request = Request::new(line.service(), line.addr());
    Ok(GrantCheck {
        decision: eval::evaluate(allow_bytes, &deny, &request),
        allow_path: path.to_path_buf(),
        deny_path,
    })
}

fn run(
    path: &Path,
    line: &ManagedLine,
    opts: &PolicyOptions,
    op: fn(&[u8], &ManagedLine) -> Option<Vec<u8>>,
) -> Result<PolicyOutcome, PolicyError> {
    let file = checked_edit(path, opts, &|bytes: &[u8]| op(bytes, line))?;
    let grant = grant_check(path, &file.after, line, opts)?;
    Ok(PolicyOutcome {
        changed: file.before != file.after,
        file,
        grant,
    })
}

/// Add the managed line (once). Check `outcome.grant.granted()`: a written line that libwrap
/// would not honour is the caller's error to report.
pub fn allow(
    path: &Path,
    line: &ManagedLine,
    opts: &PolicyOptions,
) -> Result<PolicyOutcome, PolicyError> {
    run(path, line, opts, edit::add)
}

/// What one edit adding many managed lines did.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub file: Outcome,
    /// Per line, in the order given: whether this edit added it, and libwrap's verdict for
    /// its pair over the resulting file.
    pub lines: Vec<(bool, GrantCheck)>,
}

/// Add every managed line (once each) in one locked, validated, atomic edit: the state
/// owner's way to apply a burst of grants with one write instead of one per grant.
/// `before_write` runs under the lock first (see [`checked_edit_then`]): the journal's turn.
pub fn allow_all(
    path: &Path,
    lines: &[ManagedLine],
    opts: &PolicyOptions,
    before_write: &mut dyn FnMut(&[u8]) -> Result<(), PolicyError>,
) -> Result<BatchOutcome, PolicyError> {
    allow_all_then(path, lines, opts, before_write, &mut || {})
}

/// [`allow_all`], then `after_write` once the lines are durable, still under the lock (the
/// state owner opens the leases' other sinks there, in the same transaction).
pub fn allow_all_then(
    path: &Path,
    lines: &[ManagedLine],
    opts: &PolicyOptions,
    before_write: &mut dyn FnMut(&[u8]) -> Result<(), PolicyError>,
    after_write: &mut dyn FnMut(),
) -> Result<BatchOutcome, PolicyError> {
    let file = checked_transaction(
        path,
        opts,
        &|b: &[u8]| edit::add_all(b, lines),
        before_write,
        |_| {
            after_write();
            Ok(())
        },
    )?;
    let (deny_path, deny) = deny_table(path, opts)?;
    let lines = lines
        .iter()
        .map(|line| {
            let changed = !edit::contains(&file.before, line) && edit::contains(&file.after, line);
            let request = Request::new(line.service(), line.addr());
            let grant = GrantCheck {
                decision: eval::evaluate(&file.after, &deny, &request),
                allow_path: path.to_path_buf(),
                deny_path: deny_path.clone(),
            };
            (changed, grant)
        })
        .collect();
    Ok(BatchOutcome { file, lines })
}

/// Remove the managed line, in any ASCII case (as libwrap compares it). `outcome.grant` tells
/// whether some other rule still grants.
pub fn revoke(
    path: &Path,
    line: &ManagedLine,
    opts: &PolicyOptions,
) -> Result<PolicyOutcome, PolicyError> {
    run(path, line, opts, edit::remove_any_case)
}

/// What ending one expired lease did.
#[derive(Debug)]
pub struct Expired {
    pub lease: Lease,
    /// `Ok(true)`: the managed line was removed (knockwrap had added it). `Ok(false)`: the line
    /// was left alone (an operator's line, or already gone). `Err`: the line could not be
    /// removed; the lease stays in the journal for a later retry.
    pub result: Result<bool, ExpireError>,
}

/// Ends, in one transaction under the hosts.allow lock, up to `limit` of the leases `select`
/// picks from the journal as read under that lock: one copy of each line knockwrap added is
/// removed (an identical line an operator wrote later stays; [`edit::remove_first_of_each`]),
/// the file made durable, and only then, still under the lock, the leases dropped. A grant
/// racing this waits for the lock, so it can neither re-add a line whose lease is then
/// dropped, nor merge into a lease that is then dropped; a lease a grant extended before the
/// lock was taken is read as extended and not picked. A crash between the two steps leaves a
/// lease whose line is gone; its next end removes nothing knockwrap added (at worst one more
/// identical copy an operator wrote during the lease). One [`Expired`] per lease ended.
pub fn end_leases(
    path: &Path,
    journal: &Journal,
    opts: &PolicyOptions,
    limit: usize,
    select: &dyn Fn(&Lease) -> bool,
) -> Result<Vec<Expired>, PolicyError> {
    end_leases_then(path, journal, opts, limit, select, &mut |_| {})
}

/// [`end_leases`], calling `on_end` with the leases being ended once their lines are gone,
/// before they are dropped, under the lock (the state owner closes their other sinks there).
pub fn end_leases_then(
    path: &Path,
    journal: &Journal,
    opts: &PolicyOptions,
    limit: usize,
    select: &dyn Fn(&Lease) -> bool,
    on_end: &mut dyn FnMut(&[Lease]),
) -> Result<Vec<Expired>, PolicyError> {
    use std::cell::RefCell;
    let picked: RefCell<Vec<Lease>> = RefCell::new(Vec::new());
    let journal_error: RefCell<Option<JournalError>> = RefCell::new(None);
    let op = |bytes: &[u8]| -> Option<Vec<u8>> {
        let leases = match journal.leases() {
            Ok(l) => l,
            Err(e) => {
                *journal_error.borrow_mut() = Some(e);
                return None;
            }
        };
        let chosen: Vec<Lease> = leases
            .into_iter()
            .filter(|l| select(l))
            .take(limit)
            .collect();
        let lines: Vec<ManagedLine> = chosen
            .iter()
            .filter(|l| l.added_line)
            .filter_map(|l| ManagedLine::new(&l.service, l.ip).ok())
            .collect();
        *picked.borrow_mut() = chosen;
        edit::remove_first_of_each(bytes, &lines)
    };
    let mut check = |_: &[u8]| -> Result<(), PolicyError> {
        match journal_error.borrow_mut().take() {
            Some(e) => Err(PolicyError::Journal(Box::new(e))),
            None => Ok(()),
        }
    };
    let out = checked_transaction(path, opts, &op, &mut check, |_| {
        if !picked.borrow().is_empty() {
            on_end(&picked.borrow());
        }
        let keys: Vec<(IpAddr, String)> = picked
            .borrow()
            .iter()
            .map(|l| (l.ip, l.service.clone()))
            .collect();
        if !keys.is_empty() {
            journal
                .record_drops(&keys)
                .map_err(|e| PolicyError::Journal(Box::new(e)))?;
        }
        Ok(())
    })?;
    let picked = picked.into_inner();
    Ok(picked
        .into_iter()
        .map(|lease| {
            let result = match ManagedLine::new(&lease.service, lease.ip) {
                Ok(line) => Ok(lease.added_line
                    && edit::count(&out.before, &line) > edit::count(&out.after, &line)),
                // A journal entry no CLI or door could have made: dropped with the rest.
                Err(e) => Err(ExpireError::BadLease(e.to_string())),
            };
            Expired { lease, result }
        })
        .collect())
}

/// Most leases one expiry transaction ends: bounded work per call, so that a daemon with
/// thousands of leases ending together still serves knocks and signals between calls.
pub const EXPIRE_BATCH: usize = 8192;

/// The operator's revoke, in one transaction: every line that is the managed line in any ASCII
/// case (libwrap compares daemon names and addresses so) is removed, whoever added it, and
/// every lease of the address for that service (in any case) dropped under the same lock.
pub fn revoke_leased(
    path: &Path,
    journal: &Journal,
    line: &ManagedLine,
    opts: &PolicyOptions,
    on_end: &mut dyn FnMut(&[Lease]),
) -> Result<PolicyOutcome, PolicyError> {
    let file = checked_transaction(
        path,
        opts,
        &|b: &[u8]| edit::remove_any_case(b, line),
        &mut |_| Ok(()),
        |_| {
            let dropped = journal
                .drop_where(|l| {
                    l.ip == line.addr() && l.service.eq_ignore_ascii_case(line.service())
                })
                .map_err(|e| PolicyError::Journal(Box::new(e)))?;
            if !dropped.is_empty() {
                on_end(&dropped);
            }
            Ok(())
        },
    )?;
    let grant = grant_check(path, &file.after, line, opts)?;
    Ok(PolicyOutcome {
        changed: file.before != file.after,
        file,
        grant,
    })
}

#[derive(Debug, Error)]
pub enum ExpireError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("invalid lease in the journal: {0}")]
    BadLease(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(ds: &[Diagnostic]) -> Vec<&'static str> {
        ds.iter().map(|d| d.code).collect()
    }

    #[test]
    fn introduced_errors_compare_codes_not_lines() {
        assert!(introduced_errors(b"a: b\n", b"a: b\nSSHD: 192.0.2.1\n").is_empty());
        // A new missing colon is new.
        assert_eq!(
            codes(&introduced_errors(b"a: b\n", b"a: b\nx\n")),
            ["missing-colon"]
        );
        // The same error on another line (lines shifted) is not.
        assert!(introduced_errors(b"x\na: b\n", b"SSHD: 192.0.2.1\nx\na: b\n").is_empty());
        // One of two is.
        assert_eq!(
            codes(&introduced_errors(b"x\n", b"x\ny\n")),
            ["missing-colon"]
        );
    }

    #[test]
    fn a_result_with_a_new_error_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts.allow");
        std::fs::write(&p, b"a: b\n").unwrap();
        let opts = PolicyOptions::default();
        let err = checked_edit(&p, &opts, &|b: &[u8]| {
            let mut v = b.to_vec();
            v.extend_from_slice(b"broken line\n");
            Some(v)
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, PolicyError::Introduced { .. }));
        assert!(
            msg.contains("missing-colon") && msg.contains("line 2:"),
            "{msg}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"a: b\n");
        // A pre-existing error does not block an unrelated edit.
        std::fs::write(&p, b"broken\n").unwrap();
        let line = ManagedLine::new("SSHD", "192.0.2.1".parse().unwrap()).unwrap();
        let out = allow(&p, &line, &opts).unwrap();
        assert!(out.changed);
    }
}

#[cfg(test)]
mod expiry_tests {
    use super::*;

    #[test]
    fn expiry_removes_our_lines_and_leaves_the_operators() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts.allow");
        // The operator wrote 192.0.2.1 by hand.
        std::fs::write(&p, b"# ops\nSSHD: 192.0.2.1\n").unwrap();
        let journal = Journal::load(&dir.path().join("state")).unwrap();
        let opts = PolicyOptions::default();
        for (ip, exp) in [("192.0.2.1", 100), ("192.0.2.2", 100), ("192.0.2.3", 500)] {
            let line = ManagedLine::new("SSHD", ip.parse().unwrap()).unwrap();
            let out = allow(&p, &line, &opts).unwrap();
            journal
                .record_grant(Lease {
                    ip: line.addr(),
                    service: "SSHD".into(),
                    door: "openSSH".into(),
                    expires_at: Some(exp),
                    added_line: out.changed,
                    ports: Vec::new(),
                })
                .unwrap();
        }
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"# ops\nSSHD: 192.0.2.1\nSSHD: 192.0.2.2\nSSHD: 192.0.2.3\n"
        );
        let due = |now: u64| move |l: &Lease| l.is_expired(now);
        assert!(end_leases(&p, &journal, &opts, EXPIRE_BATCH, &due(99))
            .unwrap()
            .is_empty());
        let ended = end_leases(&p, &journal, &opts, EXPIRE_BATCH, &due(100)).unwrap();
        let mut summary: Vec<(String, bool)> = ended
            .iter()
            .map(|e| (e.lease.ip.to_string(), *e.result.as_ref().unwrap()))
            .collect();
        summary.sort();
        assert_eq!(
            summary,
            [
                ("192.0.2.1".to_string(), false),
                ("192.0.2.2".to_string(), true)
            ]
        );
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"# ops\nSSHD: 192.0.2.1\nSSHD: 192.0.2.3\n"
        );
        let left: Vec<String> = journal
            .leases()
            .unwrap()
            .iter()
            .map(|l| l.ip.to_string())
            .collect();
        assert_eq!(left, ["192.0.2.3"]);
    }
}
