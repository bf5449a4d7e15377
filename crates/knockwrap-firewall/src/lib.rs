//! The firewall door: one nftables table (family `inet`) that hides guarded ports from every
//! source until a knock admits it, with the kernel ending each admission on time.
//!
//! - [`spec`]: what the table must say (name, always-allow sources, guarded ports), checked
//!   and normalised once.
//! - [`plan`]: the table layout and every change as nft JSON commands, built from typed
//!   values only (never from nft script text); pure, so the layout is tested without root.
//! - [`elements`]: admissions as the API speaks of them, and nft's listing read back.
//! - [`runner`]: which nft to run, and how (a wrapper such as `ip netns exec` for tests).
//! - [`firewall`]: [`Firewall`], the operations: `ensure`, `admit`, `revoke`, `apply`,
//!   `elements`, `remove`, each one nft transaction.
//! - [`error`]: [`Error`], naming the table and what nft said.
//!
//! The table layout, the chain priority and how it meets other tables: docs/firewall.md.

pub mod elements;
pub mod error;
pub mod firewall;
pub mod plan;
pub mod runner;
pub mod spec;

pub use error::Error;
pub use firewall::{Ensured, Firewall};
pub use runner::Runner;
pub use spec::{Admit, Admitted, Checked, Proto, Revoke, Spec, DEFAULT_TABLE};
