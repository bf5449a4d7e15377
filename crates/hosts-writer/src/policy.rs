//! hosts.allow policy on top of the atomic update: add or remove a managed line, refuse any
//! result with a validation error its input did not have, and after an allow ask the engine
//! whether libwrap would really grant the pair (the effective-grant check).
//!
//! The deny table used by that check is, unless given, `hosts.deny` in the same directory as
//! the hosts.allow path as given (before symlinks are followed): `/etc/hosts.allow` pairs with
//! `/etc/hosts.deny`, which is what libwrap reads.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use hosts_access::edit::{self, ManagedLine};
use hosts_access::eval::{self, Decision, Request, Table, Verdict};
use hosts_access::{Diagnostic, Severity};
use thiserror::Error;

use crate::atomic::{self, Options, Outcome};
use crate::error::{UpdateError, WriteError};

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
}

fn list(ds: &[Diagnostic]) -> String {
    ds.iter()
        .map(|d| format!("line {}:{}: {} [{}]", d.line, d.column, d.message, d.code))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Error diagnostics of `after` beyond those `before` had, counted per code (lines shift when a
/// line is added or removed, codes do not).
pub fn introduced_errors(before: &[u8], after: &[u8]) -> Vec<Diagnostic> {
    let after_errors: Vec<Diagnostic> = hosts_access::validate(after)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    // The common case, a clean result, needs no look at the input.
    if after_errors.is_empty() {
        return after_errors;
    }
    let mut budget: HashMap<&'static str, usize> = HashMap::new();
    for d in hosts_access::validate(before) {
        if d.severity == Severity::Error {
            *budget.entry(d.code).or_default() += 1;
        }
    }
    let mut new = Vec::new();
    for d in after_errors {
        match budget.get_mut(d.code) {
            Some(n) if *n > 0 => *n -= 1,
            _ => new.push(d),
        }
    }
    new
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

fn run(
    path: &Path,
    line: &ManagedLine,
    opts: &PolicyOptions,
    op: fn(&[u8], &ManagedLine) -> Option<Vec<u8>>,
) -> Result<PolicyOutcome, PolicyError> {
    let path_buf = path.to_path_buf();
    let edit = |bytes: &[u8]| -> Result<Option<Vec<u8>>, PolicyError> {
        let Some(after) = op(bytes, line) else {
            return Ok(None);
        };
        let new = introduced_errors(bytes, &after);
        if !new.is_empty() {
            return Err(PolicyError::Introduced {
                path: path_buf.clone(),
                diagnostics: new,
            });
        }
        Ok(Some(after))
    };
    let result = if opts.dry_run {
        atomic::preview(path, edit)
    } else {
        atomic::update(path, &opts.write, edit)
    };
    let file = result.map_err(|e| match e {
        UpdateError::Write(w) => PolicyError::Write(w),
        UpdateError::Edit(p) => p,
    })?;
    let changed = file.before != file.after;
    let deny_path = opts
        .hosts_deny
        .clone()
        .unwrap_or_else(|| sibling_deny(path));
    let deny = atomic::read_bytes(&deny_path).map_err(|source| PolicyError::Deny {
        path: deny_path.clone(),
        source,
    })?;
    let request = Request::new(line.service(), line.addr());
    let decision = eval::evaluate(&file.after, &deny, &request);
    Ok(PolicyOutcome {
        grant: GrantCheck {
            decision,
            allow_path: path.to_path_buf(),
            deny_path,
        },
        file,
        changed,
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

/// Remove exactly the managed line. `outcome.grant` tells whether some other rule still grants.
pub fn revoke(
    path: &Path,
    line: &ManagedLine,
    opts: &PolicyOptions,
) -> Result<PolicyOutcome, PolicyError> {
    run(path, line, opts, edit::remove)
}
