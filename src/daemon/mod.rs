//! `knockwrap run`: the daemon, as two processes that do not share code paths (see
//! `docs/security.md` and `docs/design.md`):
//!
//! - [`parent`]: the privileged root parent. It loads the configuration, starts and supervises
//!   the capture child, judges every knock the child reports, owns all state through the
//!   state owner (hosts.allow, the lease journal, the firewall door), ends leases on time,
//!   reloads and stops. It never reads a packet.
//! - [`child`]: the unprivileged, sandboxed capture child. It reads packets (AF_PACKET, the
//!   kernel filter, the ring), matches them against its copy of the doors and reports completed
//!   knocks over the channel. It writes no file.
//! - [`shared`]: what both processes use: the clock anchor, the host's own addresses, the
//!   bounded refusal log.
//!
//! The channel between them is `knockwrap_wire`, imported by both directly.

mod child;
pub mod parent;
mod shared;

pub use parent::run;
