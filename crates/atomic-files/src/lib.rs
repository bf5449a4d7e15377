//! The one routine every file knockwrap writes goes through: hosts.allow, the lease journal,
//! one-time and TOTP progress, the status snapshot and metrics, the daemon's lock, and the
//! client's one-time state. Each owner of one of those files calls it; none writes a file
//! another way.
//!
//! - [`atomic`]: the locked atomic update (lock, read, edit, temp, backup, re-check, rename,
//!   fsync; appends for a log-like file), every step relative to one checked directory
//!   descriptor; reading a state file only when its owner and mode are ours.
//! - [`dirfd`]: the directory a write happens in, opened without following symlinks and
//!   checked on its descriptor (owner, mode, ancestors).
//! - [`lock`]: the sidecar lock beside a file, and who holds it.
//! - [`error`]: what went wrong, naming the file and the reason in operator words.
//! - [`secret`]: reading a key or progress file only when it is private to root or to us.
//!
//! It knows nothing of hosts_access or leases: the hosts.allow writer and the state owner
//! (`hosts-writer`), the configuration's key files (`knockwrap-config`) and the binary's
//! status and client state build on it.

pub mod atomic;
pub mod dirfd;
pub mod error;
mod fsmeta;
pub mod lock;
pub mod secret;

pub use atomic::{preview, resolve_target, update, Options, Outcome};
pub use error::{UpdateError, WriteError};
pub use lock::{holder_pid, lock_path};
