//! Intake: what the capture child sends, read in bounded drains and checked before anything
//! is believed. Every message is decoded against the wire's limits; a completed knock is
//! judged again here against the parent's own doors of the knock's setup generation
//! ([`super::judge`]); a message the parent refuses drops the whole drain and replaces the
//! child. What passes waits in `pending` for [`super::apply`].

use std::os::fd::AsFd;
use std::time::Duration;

use knockwrap_wire as wire;
use rustix::event::PollFlags;
use tracing::{error, warn};
use wire::{ChildMessage, Knock};

use super::error::Refused;
use super::judge::{Verdict, When};
use super::{Daemon, POLL};
use crate::logging;
use crate::sys::process;

/// Most messages read from the child between two looks at timers and signals.
pub(super) const DRAIN_MESSAGES: usize = 4096;

impl Daemon {
    /// Waits up to `wait` for the child, then reads what it sent (bounded).
    pub(super) fn read_child(&mut self, wait: Duration) {
        let Some(child) = self.sup.child.as_ref() else {
            std::thread::sleep(wait);
            return;
        };
        if let Err(e) = process::wait(child.channel.as_fd(), PollFlags::IN, wait) {
            error!(error = %e, "poll on the capture channel failed");
            std::thread::sleep(wait.min(POLL));
        }
        let mut buf = [0u8; wire::MAX_CHILD_MESSAGE + 1];
        for _ in 0..DRAIN_MESSAGES {
            // The child is still there: only ending it (which ends this loop) takes it away.
            let Some(child) = self.sup.child.as_ref() else {
                break;
            };
            match process::recv(child.channel.as_fd(), &mut buf) {
                Ok(None) => break,
                Ok(Some(0)) => {
                    self.end_child("closed its channel");
                    break;
                }
                Ok(Some(n)) => {
                    let message = if n > wire::MAX_CHILD_MESSAGE {
                        Err(wire::WireError::TooLong(n))
                    } else {
                        ChildMessage::decode(&buf[..n])
                    };
                    let handled = message
                        .map_err(Refused::from)
                        .and_then(|m| self.on_message(m));
                    if let Err(why) = handled {
                        // Nothing the child sent since the last drain the parent accepted
                        // stands: its decisions go, and what their checks used is unused.
                        self.pending.clear();
                        self.judge.rollback();
                        self.refused_message(&why);
                        break;
                    }
                }
                Err(e) => {
                    self.end_child(&format!("channel error: {e}"));
                    break;
                }
            }
        }
    }

    /// A message the parent does not accept: the child is treated as taken over. Logged (at
    /// most one line per 10 s), the child replaced, nothing written.
    pub(super) fn refused_message(&mut self, why: &Refused) {
        let now = self.clock.boot_ms();
        if self.attack_log.due(now) {
            error!(
                why = %why,
                "refused a message from the capture process; treating it as compromised and replacing it"
            );
        }
        self.status.stats.refused_messages += 1;
        self.end_child("sent a message the parent refused");
    }

    pub(super) fn on_message(&mut self, m: ChildMessage) -> Result<(), Refused> {
        match m {
            ChildMessage::Log { level, text } => {
                if self.child_logs.admit(self.clock.boot_ms()) {
                    logging::write_child_line(&logging::level_of(level), &text);
                } else {
                    self.status.stats.child_log_dropped += 1;
                }
            }
            ChildMessage::Stats(s) => {
                let configured = self.judge.max_interfaces();
                if s.interfaces.len() > configured {
                    return Err(Refused::Interfaces {
                        got: s.interfaces.len(),
                        configured,
                    });
                }
                // Published at once when it changed (kernel counters arrive once a second):
                // `knockwrap status` shows packets that arrived, not those of 5 s ago.
                self.status.dirty |= s != self.child_stats;
                self.child_stats = s;
            }
            ChildMessage::Ready { generation } => {
                self.judge.acknowledge(generation)?;
                self.ready = true;
            }
            ChildMessage::Knocks { generation, knocks } => {
                for k in knocks {
                    match self.check_knock(generation, k)? {
                        Verdict::Take(judged) => self.pending.push(judged),
                        Verdict::Stale => self.stale_knock(generation, &k),
                    }
                }
            }
        }
        Ok(())
    }

    /// A knock matched against a setup generation the parent no longer keeps (more reloads
    /// than it keeps while the child had not caught up): dropped, logged at most once per 10 s.
    pub(super) fn stale_knock(&mut self, generation: u32, k: &Knock) {
        self.status.stats.stale_knocks += 1;
        self.status.dirty = true;
        let now = self.clock.boot_ms();
        if self.stale_log.due(now) {
            warn!(
                generation, current = self.judge.current().id, addr = %k.addr,
                "dropped a knock matched against a configuration reloaded since; knock again"
            );
        }
    }

    /// Checks a completed knock the child reports against the parent's own doors of the
    /// knock's setup generation, its interface list and the source policy; the decision is
    /// built from the parent's door (service, lease, action). A one-time index or TOTP counter
    /// is consumed here, before anything is written ([`judge`]).
    pub(super) fn check_knock(
        &mut self,
        generation: u32,
        knock: Knock,
    ) -> Result<Verdict, Refused> {
        let now = self.clock.boot_ms();
        // The knock's time as the child tells it, within reason.
        let time_ms = if knock.time_ms > now || now - knock.time_ms > 60_000 {
            now
        } else {
            knock.time_ms
        };
        let when = When {
            time_ms,
            wall_ms: self.clock.wall_at(time_ms),
        };
        let loopback = &mut self.loopback;
        self.judge.check(
            generation,
            &knock,
            self.destinations.host(),
            &mut |name| loopback.is_loopback(name),
            when,
        )
    }
}
