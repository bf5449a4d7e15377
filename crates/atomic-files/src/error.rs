//! Errors of the writer: each names the file and says why, in words an operator recognises.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

/// A failed file update. The managed file is byte-identical to its state before the call.
#[derive(Debug, Error)]
pub enum WriteError {
    /// A system call failed; `op` says what we were doing.
    #[error("{}: cannot {op}: {}", path.display(), reason(source))]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The sidecar lock file could not be created or locked.
    #[error("{}: cannot {op} {}: {}", path.display(), lock.display(), reason(source))]
    Lock {
        path: PathBuf,
        lock: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// Another writer held the sidecar lock for the whole timeout.
    #[error("{}: lock timeout: another writer held {} for {:.1}s", path.display(), lock.display(), waited.as_secs_f64())]
    LockTimeout {
        path: PathBuf,
        lock: PathBuf,
        waited: Duration,
    },
    /// The file kept changing under us (writers that do not take the lock).
    #[error("{}: the file kept changing while we edited it ({attempts} attempts); nothing written", path.display())]
    Unstable { path: PathBuf, attempts: u32 },
    /// The symlink chain could not be resolved.
    #[error("{}: cannot resolve symlink: {why}", path.display())]
    Symlink { path: PathBuf, why: String },
    /// Another account could redirect the write (a planted symlink, an open directory).
    #[error("{}: {why}", path.display())]
    Unsafe { path: PathBuf, why: String },
    /// A state file of knockwrap's own that another account owns or may write: what it says
    /// cannot be trusted (it could be forged), so it is neither read nor written to.
    #[error("{}: owned by uid {uid} with mode {mode:04o}; only the daemon's own account may own and write its state files", path.display())]
    ForeignOwner { path: PathBuf, uid: u32, mode: u32 },
}

impl WriteError {
    /// An I/O error while doing `op` on `path`.
    pub fn io(path: &Path, op: &'static str, source: io::Error) -> Self {
        WriteError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    /// The OS error number, when this is an I/O error.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            WriteError::Io { source, .. } | WriteError::Lock { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}

/// The reason in operator words for the errors the contract (docs/contract.md) names; the OS text for anything else.
fn reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => "permission denied".to_string(),
        Some(libc::EROFS) => "read-only file system".to_string(),
        Some(libc::ENOSPC) => "no space left on device".to_string(),
        Some(libc::EDQUOT) => "disk quota exceeded".to_string(),
        _ => e.to_string(),
    }
}

/// An update failed either in the filesystem or in the caller's edit.
#[derive(Debug, Error)]
pub enum UpdateError<E> {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("{0}")]
    Edit(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_and_reason() {
        let e = WriteError::io(
            Path::new("/etc/hosts.allow"),
            "write temporary file",
            io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert_eq!(
            e.to_string(),
            "/etc/hosts.allow: cannot write temporary file: no space left on device"
        );
        let e = WriteError::io(
            Path::new("/x"),
            "create temporary file",
            io::Error::from_raw_os_error(libc::EROFS),
        );
        assert!(e.to_string().ends_with("read-only file system"));
        let e = WriteError::io(
            Path::new("/x"),
            "read",
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(e.to_string().ends_with("permission denied"));
    }
}
