//! AF_PACKET capture with a kernel cBPF filter built from the doors, and frame decoding into
//! knock events.
//!
//! - [`filter`]: what to pass ([`FilterSpec`]) and the cBPF program per [`LinkType`] (pure).
//! - [`clock`]: the event clock (CLOCK_BOOTTIME ms).
//! - [`decode`]: frame bytes → [`knock_match::KnockEvent`] (pure, total).
//! - [`batch`]: one `recvmmsg` batch's buffers and their bounds-checked parsing (pure).
//! - [`ring`]: the `PACKET_RX_RING` layout and the walk over it (tested on heap memory).
//! - [`socket`]: the Linux socket: [`Capture`] (open, filter, batched reads, kernel drop
//!   counter).
//! - [`source`]: what the supervisor reads from ([`FrameSource`]): the socket, or
//!   [`Recorded`] frames (tests without root).
//! - [`supervisor`]: one thread per interface, reopened with backoff when it vanishes.

pub mod batch;
pub mod bpf;
pub mod clock;
pub mod decode;
pub mod filter;
pub mod link;
pub mod ring;
pub mod socket;
pub mod source;
pub mod supervisor;

#[cfg(test)]
mod testframes;
#[cfg(test)]
mod vm;

pub use decode::decode;
pub use filter::{FilterError, FilterSpec, FlagRule};
pub use link::LinkType;
pub use socket::{Capture, CaptureError, ReceivePath, Stats, MAX_BATCH, READ_TIMEOUT};
pub use source::{AfterFrames, FrameSource, Recorded};
pub use supervisor::{
    spawn_capture_thread, spawn_capture_thread_with, CaptureThread, EventBatch, SharedFilter,
};
