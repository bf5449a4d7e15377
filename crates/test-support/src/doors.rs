//! A configuration with one one-time door (`otp`, sequences in `open.otp`) and one TOTP door
//! (`totp`, key in `keys/totp.key`), written as real files into a temporary directory: what the
//! configuration's load tests and the progress store's tests both start from, so that they
//! test the same doors.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A TOTP key (base32 of "12345678901234567890", RFC 6238's test key) with its newline.
pub const KEY_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n";

/// Writes `text` to `dir/name` with permission bits `mode`.
pub fn write(dir: &Path, name: &str, text: &str, mode: u32) {
    let p = dir.join(name);
    fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
    fs::set_permissions(&p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// `knockwrap.toml` for the two doors, state in `state/`.
pub fn config_text() -> String {
    r#"
state_dir = "state"

[[door]]
name = "otp"
one_time_sequences = "open.otp"
service = "SSHD"
seq_timeout = 10

[[door]]
name = "totp"
totp_secret_file = "keys/totp.key"
totp_ports = "20000-40000"
service = "SSHD"
"#
    .to_string()
}

/// A directory holding `knockwrap.toml`, `open.otp` (`otp`, mode 0644) and `keys/totp.key`
/// (`key`, mode `key_mode`).
pub fn setup(otp: &str, key: &str, key_mode: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    fs::create_dir(dir.path().join("keys")).expect("creating keys/");
    write(dir.path(), "knockwrap.toml", &config_text(), 0o644);
    write(dir.path(), "open.otp", otp, 0o644);
    write(&dir.path().join("keys"), "totp.key", key, key_mode);
    dir
}
