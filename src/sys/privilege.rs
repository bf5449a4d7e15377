//! Dropping root in the capture child: look up the unprivileged account, then give up
//! supplementary groups, gid, uid and every capability but (optionally) CAP_NET_RAW, and set
//! NoNewPrivs. Ordered as setuid(2) requires: the bounding set while still root, then groups
//! and gid, then uid with PR_SET_KEEPCAPS so that CAP_NET_RAW survives, then capset.

use std::ffi::CString;
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
    let c = CString::new(name).map_err(|_| PrivilegeError::NoSuchUser(name.into()))?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives the use of pwd's strings
    // (only the numeric fields are read).
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(PrivilegeError::NoSuchUser(name.into()));
    }
    let account = Account {
        name: name.into(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
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

fn check(step: &'static str, rc: libc::c_int) -> Result<(), PrivilegeError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(os(step)(io::Error::last_os_error()))
    }
}

/// Become `account` for good, keeping only CAP_NET_RAW when `keep_net_raw` (to reopen a
/// capture whose interface went away and came back), and set NoNewPrivs. Must be called in
/// a single-threaded process: setuid(2) through libc changes every thread, but capabilities
/// are per thread.
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
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        check("setgroups", libc::setgroups(0, std::ptr::null()))?;
        check("setgid", libc::setgid(account.gid))?;
        check(
            "keep capabilities across setuid",
            libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0),
        )?;
        check("setuid", libc::setuid(account.uid))?;
        check(
            "clear keep-capabilities",
            libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0),
        )?;
    }
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
    // SAFETY: plain syscall.
    unsafe {
        check(
            "no new privileges",
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
        )
    }?;
    // Setting the uid back must now be impossible.
    // SAFETY: plain syscall; a success here would be a failed drop.
    if unsafe { libc::setuid(0) } == 0 {
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
