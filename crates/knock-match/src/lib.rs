//! Port-knock matching: knockd's door semantics without its holes, one-time and TOTP
//! sequences, and a fixed-capacity table of sources in progress.
//!
//! Pure: events and the current time come in as values, decisions go out as values.
//! Nothing here reads a clock, a file or a socket.

pub mod event;

pub use event::{KnockEvent, Proto, TcpFlags};
