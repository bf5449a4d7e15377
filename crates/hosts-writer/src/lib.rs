//! Locked, atomic, validated replacement of hosts.allow, and the durable lease journal.
//!
//! - [`atomic`]: the generic locked atomic update of any file (lock, read, edit, temp, backup,
//!   re-check, rename, fsync), every step relative to one checked directory descriptor.
//! - `dirfd`: the directory a write happens in, opened without following symlinks and checked
//!   on its descriptor (owner, mode, ancestors).
//! - [`policy`]: add/remove a managed line with validation and the effective-grant check.
//! - [`journal`]: leases in `state_dir`.
//! - [`owner`]: one daemon per `state_dir` (a lock it holds for its life).
//! - [`state`]: the state owner: grants, revokes and lease expiry as transactions, for the
//!   daemon and the CLI alike.
//! - [`diff`]: unified diffs for `--dry-run`.
//! - [`time`]: RFC 3339 output.

pub mod atomic;
pub mod diff;
mod dirfd;
pub mod error;
mod fsmeta;
pub mod journal;
mod lock;
pub mod owner;
pub mod policy;
pub mod state;
pub mod time;

pub use atomic::{preview, resolve_target, update, Options, Outcome};
pub use error::{UpdateError, WriteError};
pub use journal::{Journal, JournalError, Lease};
pub use lock::{holder_pid, lock_path};
pub use policy::{
    allow, allow_all, end_leases, expire_leases, revoke, revoke_leased, BatchOutcome, ExpireError,
    Expired, GrantCheck, PolicyError, PolicyOptions, PolicyOutcome,
};
