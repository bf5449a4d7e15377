//! Reading a file that must be private to root or to this account: a TOTP key (the operator's,
//! which may be a symlink) and one-time/TOTP progress (knockwrap's own, which never is). The
//! checks (a regular file, no access for group or others, owned by root or by this account) are
//! made on the opened descriptor, and the bytes are read from that same descriptor, so a file
//! swapped between the check and the read changes nothing. Errors are operator words naming the
//! file and the fix.

use std::path::{Path, PathBuf};

/// Why a private file was refused or could not be read; each names the file (`what` and its
/// path) and, where one exists, the fix.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{what} `{}` is a symlink: refusing to follow it", path.display())]
    Symlink { what: String, path: PathBuf },
    #[error("cannot read {what} `{}`: {source}", path.display())]
    Io {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} `{}` is not a regular file", path.display())]
    NotRegular { what: String, path: PathBuf },
    #[error("{what} `{}` is accessible by group or others (mode {mode:04o}): chmod 600 it", path.display())]
    OpenToOthers {
        what: String,
        path: PathBuf,
        mode: u32,
    },
    #[error("{what} `{}` belongs to uid {uid}, not to root or to this user (uid {me}): chown it", path.display())]
    ForeignOwner {
        what: String,
        path: PathBuf,
        uid: u32,
        me: u32,
    },
}

/// Reads a file that must be private to root (or to this user): a TOTP key, a progress file.
/// The checks are made on the opened descriptor (`fstat`) and the bytes are read from that same
/// descriptor, so swapping the file between check and read changes nothing. `follow`: whether a
/// symlink may lead to it (an operator's key may be a link; a state file never is). `Ok(None)`:
/// the file does not exist. `what` names the file in messages ("TOTP key").
pub fn read_secret(path: &Path, what: &str, follow: bool) -> Result<Option<Vec<u8>>, SecretError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let io = |source| SecretError::Io {
        what: what.into(),
        path: path.into(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    if !follow {
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let mut f = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(SecretError::Symlink {
                what: what.into(),
                path: path.into(),
            })
        }
        Err(e) => return Err(io(e)),
    };
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(SecretError::NotRegular {
            what: what.into(),
            path: path.into(),
        });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::OpenToOthers {
            what: what.into(),
            path: path.into(),
            mode,
        });
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(SecretError::ForeignOwner {
            what: what.into(),
            path: path.into(),
            uid: meta.uid(),
            me,
        });
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(io)?;
    Ok(Some(bytes))
}
