//! Dropping root in the capture child: look up the unprivileged account, then give up
//! supplementary groups, gid, uid and every capability but (optionally) CAP_NET_RAW, and set
//! NoNewPrivs. Ordered as setuid(2) requires: the bounding set while still root, then groups
//! and gid, then uid with PR_SET_KEEPCAPS so that CAP_NET_RAW survives, then capset.

use std::io;

use caps::{CapSet, Capability, CapsHashSet};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PrivilegeError {
    #[error("user `{0}` not found")]
    NoSuchUser(String),
    #[error("user `{name}` is uid 0: the capture process must not run as root")]
    Root { name: String },
    #[error("{step}: {source}")]
    Os {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{step}: {source}")]
    Caps {
        step: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
}

/// An account to run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The account named `name`, from the password database.
pub fn lookup(name: &str) -> Result<Account, PrivilegeError> {
    // getpwnam_r(3); a lookup that fails (or a name with a NUL) is no such user.
    let Ok(Some(user)) = nix::unistd::User::from_name(name) else {
        return Err(PrivilegeError::NoSuchUser(name.into()));
    };
    let account = Account {
        name: name.into(),
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    };
    if account.uid == 0 {
        return Err(PrivilegeError::Root { name: name.into() });
    }
    Ok(account)
}

/// The account for the capture process: `configured` when set; otherwise `knockwrap` when it
/// exists (the package creates it), else `nobody`.
pub fn choose(configured: Option<&str>) -> Result<Account, PrivilegeError> {
    match configured {
        Some(name) => lookup(name),
        None => lookup("knockwrap").or_else(|_| lookup("nobody")),
    }
}

fn os(step: &'static str) -> impl Fn(io::Error) -> PrivilegeError {
    move |source| PrivilegeError::Os { step, source }
}

/// A failed step, from nix's or rustix's errno.
fn check<E: Into<io::Error>>(step: &'static str, r: Result<(), E>) -> Result<(), PrivilegeError> {
    r.map_err(|e| os(step)(e.into()))
}

/// Become `account` for good, keeping only CAP_NET_RAW when `keep_net_raw` (to reopen a
/// capture whose interface went away and came back), and set NoNewPrivs. Must be called in
/// a single-threaded process: setuid(2) through libc (nix's wrapper) changes every thread, but
/// capabilities (and rustix's per-thread prctl settings) are per thread.
pub fn drop_to(account: &Account, keep_net_raw: bool) -> Result<(), PrivilegeError> {
    let keep: CapsHashSet = if keep_net_raw {
        [Capability::CAP_NET_RAW].into_iter().collect()
    } else {
        CapsHashSet::new()
    };
    // The bounding set limits what any later execve could regain. Dropping from it needs
    // CAP_SETPCAP; without it (a unit that withholds it) the set is already the unit's.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        for cap in caps::all() {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|source| PrivilegeError::Caps {
                    step: "drop from the bounding set",
                    source,
                })?;
            }
        }
    }
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    use rustix::thread::set_keep_capabilities;
    check("setgroups", setgroups(&[]))?;
    check("setgid", setgid(Gid::from_raw(account.gid)))?;
    check(
        "keep capabilities across setuid",
        set_keep_capabilities(true),
    )?;
    check("setuid", setuid(Uid::from_raw(account.uid)))?;
    check("clear keep-capabilities", set_keep_capabilities(false))?;
    let set = |cset, step| {
        caps::set(None, cset, &keep).map_err(|source| PrivilegeError::Caps { step, source })
    };
    set(CapSet::Inheritable, "clear inheritable capabilities")?;
    set(CapSet::Effective, "set effective capabilities")?;
    set(CapSet::Permitted, "set permitted capabilities")?;
    caps::clear(None, CapSet::Ambient).map_err(|source| PrivilegeError::Caps {
        step: "clear ambient capabilities",
        source,
    })?;
    check("no new privileges", rustix::thread::set_no_new_privs(true))?;
    // Setting the uid back must now be impossible: a success here would be a failed drop.
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err(os("verify the drop")(io::Error::other(
            "setuid(0) succeeded",
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_is_found_and_root_is_refused() {
        if let Ok(a) = lookup("nobody") {
            assert_ne!(a.uid, 0);
        }
        assert!(matches!(lookup("root"), Err(PrivilegeError::Root { .. })));
        assert!(matches!(
            lookup("no-such-user-knockwrap-test"),
            Err(PrivilegeError::NoSuchUser(_))
        ));
    }
}
