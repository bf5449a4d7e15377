//! Reading a file that must be private to root or to this account: a TOTP key (the operator's,
//! which may be a symlink) and one-time/TOTP progress (knockwrap's own, which never is). The
//! checks (a regular file, no access for group or others, owned by root or by this account) are
//! made on the opened descriptor, and the bytes are read from that same descriptor, so a file
//! swapped between the check and the read changes nothing. Errors are operator words naming the
//! file and the fix.

use std::path::Path;

/// Reads a file that must be private to root (or to this user): a TOTP key, a progress file.
/// The checks are made on the opened descriptor (`fstat`) and the bytes are read from that same
/// descriptor, so swapping the file between check and read changes nothing. `follow`: whether a
/// symlink may lead to it (an operator's key may be a link; a state file never is). `Ok(None)`:
/// the file does not exist. `what` names the file in messages ("TOTP key").
pub fn read_secret(path: &Path, what: &str, follow: bool) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let shown = path.display();
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    if !follow {
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let mut f = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(format!(
                "{what} `{shown}` is a symlink: refusing to follow it"
            ))
        }
        Err(e) => return Err(format!("cannot read {what} `{shown}`: {e}")),
    };
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot read {what} `{shown}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{what} `{shown}` is not a regular file"));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{what} `{shown}` is accessible by group or others (mode {mode:04o}): chmod 600 it"
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!(
            "{what} `{shown}` belongs to uid {}, not to root or to this user (uid {me}): chown it",
            meta.uid()
        ));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {what} `{shown}`: {e}"))?;
    Ok(Some(bytes))
}
