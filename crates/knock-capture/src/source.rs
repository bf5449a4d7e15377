//! The frame-source seam: what a capture thread needs of a capture ([`FrameSource`]), so the
//! supervisor's loop (and the daemon's capture process above it) runs over the packet socket
//! ([`Capture`]) in the daemon and over [`Recorded`] frames in tests, without root or a
//! network. `Recorded` decodes with the same [`decode`] as the socket's receive paths and
//! bounds frames like the `recvmmsg` slots do; it applies no filter (the kernel's job, tested
//! in [`crate::filter`] and [`crate::bpf`]).

use std::collections::VecDeque;
use std::time::Duration;

use knock_match::KnockEvent;

use crate::batch::{SLOTS, SLOT_BYTES};
use crate::decode::decode;
use crate::filter::FilterSpec;
use crate::link::LinkType;
use crate::socket::{Capture, CaptureError, ReceivePath, Stats, MAX_BATCH};

/// What the supervisor uses of a capture. See [`Capture`] for the contract of each method.
pub trait FrameSource {
    /// Wait a little for frames, append the decodable ones to `out` in arrival order, and
    /// return how many frames were read (0: nothing came). An error other than
    /// [`CaptureError::InterfaceDown`] makes the supervisor reopen the source.
    fn next_batch(&mut self, out: &mut Vec<KnockEvent>) -> Result<usize, CaptureError>;
    /// Replace the filter (on reload).
    fn set_filter(&mut self, spec: &FilterSpec) -> Result<(), CaptureError>;
    /// Counters since the source was opened.
    fn stats(&mut self) -> Stats;
    /// `InterfaceGone` when the interface vanished (checked now and then by the supervisor).
    fn check_interface(&self) -> Result<(), CaptureError>;
    fn link(&self) -> LinkType;
    /// How frames reach the decoder; `None` for a source that is not a socket.
    fn receive_path(&self) -> Option<ReceivePath>;
}

impl FrameSource for Capture {
    fn next_batch(&mut self, out: &mut Vec<KnockEvent>) -> Result<usize, CaptureError> {
        Capture::next_batch(self, out)
    }

    fn set_filter(&mut self, spec: &FilterSpec) -> Result<(), CaptureError> {
        Capture::set_filter(self, spec)
    }

    fn stats(&mut self) -> Stats {
        Capture::stats(self)
    }

    fn check_interface(&self) -> Result<(), CaptureError> {
        Capture::check_interface(self)
    }

    fn link(&self) -> LinkType {
        Capture::link(self)
    }

    fn receive_path(&self) -> Option<ReceivePath> {
        Some(Capture::receive_path(self))
    }
}

impl<S: FrameSource + ?Sized> FrameSource for Box<S> {
    fn next_batch(&mut self, out: &mut Vec<KnockEvent>) -> Result<usize, CaptureError> {
        (**self).next_batch(out)
    }

    fn set_filter(&mut self, spec: &FilterSpec) -> Result<(), CaptureError> {
        (**self).set_filter(spec)
    }

    fn stats(&mut self) -> Stats {
        (**self).stats()
    }

    fn check_interface(&self) -> Result<(), CaptureError> {
        (**self).check_interface()
    }

    fn link(&self) -> LinkType {
        (**self).link()
    }

    fn receive_path(&self) -> Option<ReceivePath> {
        (**self).receive_path()
    }
}

/// What a [`Recorded`] source does once every frame has been read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AfterFrames {
    /// Reads find nothing, after a short wait (as a socket's read timeout).
    #[default]
    Idle,
    /// The interface went away: reads fail with [`CaptureError::InterfaceGone`], so the
    /// supervisor reopens.
    Gone,
}

/// How long an idle [`Recorded`] read waits before reporting no frames.
const IDLE_WAIT: Duration = Duration::from_millis(10);

/// Recorded frames, each with its event-clock time (ms), handed out [`SLOTS`] per read by
/// default.
#[derive(Debug)]
pub struct Recorded {
    interface: String,
    link: LinkType,
    frames: VecDeque<(Vec<u8>, u64)>,
    batch: usize,
    after: AfterFrames,
    stats: Stats,
}

impl Recorded {
    pub fn new(interface: &str, link: LinkType, frames: Vec<(Vec<u8>, u64)>) -> Recorded {
        Recorded {
            interface: interface.to_string(),
            link,
            frames: frames.into(),
            batch: SLOTS,
            after: AfterFrames::Idle,
            stats: Stats::default(),
        }
    }

    /// Frames per read: 1 to [`MAX_BATCH`], as a socket's.
    pub fn batch(mut self, frames: usize) -> Recorded {
        self.batch = frames.clamp(1, MAX_BATCH);
        self
    }

    /// What reads do once the frames are used up (default [`AfterFrames::Idle`]).
    pub fn then(mut self, after: AfterFrames) -> Recorded {
        self.after = after;
        self
    }
}

impl FrameSource for Recorded {
    fn next_batch(&mut self, out: &mut Vec<KnockEvent>) -> Result<usize, CaptureError> {
        if self.frames.is_empty() {
            return match self.after {
                AfterFrames::Idle => {
                    std::thread::sleep(IDLE_WAIT);
                    Ok(0)
                }
                AfterFrames::Gone => Err(CaptureError::InterfaceGone(self.interface.clone())),
            };
        }
        let n = self.batch.min(self.frames.len());
        for (frame, time_ms) in self.frames.drain(..n) {
            // A socket keeps at most a slot's worth of a frame.
            let kept = &frame[..frame.len().min(SLOT_BYTES)];
            out.extend(decode(self.link, kept, time_ms));
        }
        self.stats.received += n as u64;
        Ok(n)
    }

    fn set_filter(&mut self, _spec: &FilterSpec) -> Result<(), CaptureError> {
        Ok(())
    }

    fn stats(&mut self) -> Stats {
        self.stats
    }

    fn check_interface(&self) -> Result<(), CaptureError> {
        Ok(())
    }

    fn link(&self) -> LinkType {
        self.link
    }

    fn receive_path(&self) -> Option<ReceivePath> {
        None
    }
}
