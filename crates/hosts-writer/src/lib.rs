//! Locked, atomic, validated replacement of hosts.allow, and the durable lease journal, on the
//! one file routine of `atomic-files` (re-exported here as [`atomic`] and [`error`]).
//!
//! - [`policy`]: add/remove a managed line with validation and the effective-grant check.
//! - [`journal`]: leases in `state_dir`.
//! - [`owner`]: one daemon per `state_dir` (a lock it holds for its life).
//! - [`progress`]: durable one-time and TOTP progress in `state_dir`.
//! - [`state`]: the state owner: grants, revokes and lease expiry as transactions, for the
//!   daemon and the CLI alike.
//! - [`diff`]: unified diffs for `--dry-run`.
//! - [`time`]: RFC 3339 output.

pub use atomic_files::{atomic, error};
use atomic_files::{dirfd, lock};
pub mod diff;
pub mod journal;
pub mod owner;
pub mod policy;
pub mod progress;
pub mod state;
pub mod time;

pub use atomic::{preview, resolve_target, update, Options, Outcome};
pub use error::{UpdateError, WriteError};
pub use journal::{Journal, JournalError, Lease};
pub use lock::{holder_pid, lock_path};
pub use policy::{
    allow, allow_all, end_leases, revoke, revoke_leased, BatchOutcome, ExpireError, Expired,
    GrantCheck, PolicyError, PolicyOptions, PolicyOutcome,
};
