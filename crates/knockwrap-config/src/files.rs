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

/// Reads a base32 TOTP key, refusing one that group or others may read or write, or that
/// belongs to another account (`atomic_files::secret::read_secret`).
pub(crate) fn read_totp_key(file: &Path) -> Result<Vec<u8>, String> {
    let shown = file.display();
    let bytes = atomic_files::secret::read_secret(file, "TOTP key", true)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
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
