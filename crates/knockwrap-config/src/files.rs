//! Reading the files doors name: one-time sequence lists and TOTP keys (with the key's
//! permission check). The only I/O of the configuration besides reading the file itself.

use std::path::Path;

use knock_match::{decode_base32, parse_one_time, DoorKind, MIN_TOTP_SECRET};

use crate::{ConfigError, DoorConfig};

impl DoorConfig {
    /// Reads this door's one-time sequences or TOTP key. Problems inside the named file are
    /// reported at that file's line and column; problems with the file as a whole at the
    /// configuration key that names it (`config_path`).
    pub fn load_files(&mut self, config_path: &Path) -> Vec<ConfigError> {
        load_sequence_files(
            &mut self.door.kind,
            self.one_time_file.as_deref(),
            self.totp_secret_file.as_deref(),
            config_path,
            self.file_pos,
        )
    }
}

/// Fills `kind`'s one-time sequences from `one_time_file` or its TOTP secret from
/// `totp_secret_file`. `key_pos` is the line:column in `config_path` of the key naming the
/// file, where problems with the file as a whole are reported.
pub(crate) fn load_sequence_files(
    kind: &mut DoorKind,
    one_time_file: Option<&Path>,
    totp_secret_file: Option<&Path>,
    config_path: &Path,
    key_pos: (usize, usize),
) -> Vec<ConfigError> {
    let at_key = |message: String| ConfigError {
        path: config_path.to_path_buf(),
        line: key_pos.0,
        column: key_pos.1,
        message,
    };
    match (kind, one_time_file, totp_secret_file) {
        (DoorKind::OneTime { sequences, .. }, Some(file), _) => {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    return vec![at_key(format!(
                        "cannot read one-time sequences `{}`: {e}",
                        file.display()
                    ))]
                }
            };
            match parse_one_time(&text) {
                Err(e) => vec![ConfigError {
                    path: file.to_path_buf(),
                    line: e.line,
                    column: e.column,
                    message: e.message,
                }],
                Ok(list) if list.is_empty() => vec![at_key(format!(
                    "one-time sequences file `{}` holds no sequence",
                    file.display()
                ))],
                Ok(list) => {
                    *sequences = list;
                    Vec::new()
                }
            }
        }
        (DoorKind::Totp(params), _, Some(file)) => match read_totp_key(file) {
            Ok(secret) => {
                params.secret = secret;
                Vec::new()
            }
            Err(m) => vec![at_key(m)],
        },
        _ => Vec::new(),
    }
}

/// Reads a file that must be private to root (or to this user): a TOTP key, a progress file.
/// The checks are made on the opened descriptor (`fstat`) and the bytes are read from that same
/// descriptor, so swapping the file between check and read changes nothing. `follow`: whether a
/// symlink may lead to it (an operator's key may be a link; a state file never is). `Ok(None)`:
/// the file does not exist. `what` names the file in messages ("TOTP key").
pub(crate) fn read_private(
    path: &Path,
    what: &str,
    follow: bool,
) -> Result<Option<Vec<u8>>, String> {
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

/// Reads a base32 TOTP key, refusing one that group or others may read or write, or that
/// belongs to another account ([`read_private`]).
pub(crate) fn read_totp_key(file: &Path) -> Result<Vec<u8>, String> {
    let shown = file.display();
    let bytes = read_private(file, "TOTP key", true)?.ok_or_else(|| {
        format!("cannot read TOTP key `{shown}`: No such file or directory (os error 2)")
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("TOTP key `{shown}` is not base32: not UTF-8"))?;
    let secret =
        decode_base32(&text).map_err(|e| format!("TOTP key `{shown}` is not base32: {e}"))?;
    if secret.len() < MIN_TOTP_SECRET {
        return Err(format!(
            "TOTP key `{shown}` has {} bits, at least {} required",
            secret.len() * 8,
            MIN_TOTP_SECRET * 8
        ));
    }
    Ok(secret)
}
