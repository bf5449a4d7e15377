//! The capture child: the only process that reads packets from the network. It runs as an
//! unprivileged account with at most CAP_NET_RAW, NoNewPrivs and a seccomp filter that
//! allows no path-taking system call, and holds no descriptor but its packet sockets and
//! the channel to the parent (stdio is /dev/null, read-only).
//!
//! Its loop: capture threads → destination and source checks → the matcher → one
//! [`ChildMessage::Knock`] per completed sequence to the parent, which decides what to write.
//! Its configuration (doors, interfaces, matcher options) arrives as a [`Setup`] over the
//! channel, at start and on every reload: the child never reads a file. Log lines go to the
//! parent over the same channel. When the parent goes away, the child dies with it.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use knock_capture::{EventBatch, FilterSpec, SharedFilter};
use knock_match::{check_source, Consume, KnockEvent, Matcher, Refusal};
use thiserror::Error;
use tracing::{error, info, warn};

use super::clock::Clock;
use super::local::Destinations;
use super::refusals::Refusals;
use super::wire::{ChildMessage, ChildStats, Knock, Setup, SetupReader, Used, MAX_KNOCKS};
use super::{Captures, DRAIN_BATCH, QUEUE};
use crate::sys::privilege::{self, Account};
use crate::sys::process;
use crate::sys::sandbox::{self, Mode};

/// How often the child looks at the channel when no packet arrives.
const CHANNEL_POLL: Duration = Duration::from_millis(50);
/// How often counters go to the parent.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// How long counters may wait for buffer space (then the next ones will do).
const STATS_WAIT: Duration = Duration::from_millis(200);

#[derive(Debug, Error)]
pub enum ChildError {
    #[error("descriptors: {0}")]
    Fds(std::io::Error),
    #[error("dropping privileges: {0}")]
    Privilege(#[from] privilege::PrivilegeError),
    #[error("sandbox: {0}")]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("channel: {0}")]
    Channel(std::io::Error),
    #[error("setup from the parent: {0}")]
    Setup(String),
}

/// Entered right after fork(2) in the child; never returns.
pub fn main(channel: OwnedFd, account: &Account, mode: Mode) -> ! {
    let code = match run(channel, account, mode) {
        Ok(()) => 0,
        Err(e) => {
            error!(error = %e, "capture process failed");
            1
        }
    };
    std::process::exit(code)
}

fn run(channel: OwnedFd, account: &Account, mode: Mode) -> Result<(), ChildError> {
    let fd = channel.as_raw_fd();
    process::die_with_parent().map_err(ChildError::Fds)?;
    process::child_signals();
    process::sanitize_fds(&[fd]).map_err(ChildError::Fds)?;
    crate::logging::forward_to(fd);
    privilege::drop_to(account, true)?;
    sandbox::enter(mode)?;
    info!(user = %account.name, uid = account.uid, "capture process started");
    let mut reader = SetupReader::default();
    let setup = loop {
        process::wait(fd, libc::POLLIN, Duration::from_secs(1)).map_err(ChildError::Channel)?;
        if let Some(s) = read_setup(fd, &mut reader)? {
            break s;
        }
    };
    let mut child = Child::start(fd, setup)?;
    child.serve(&mut reader)
}

/// Reads what the parent sent; `Some` when a whole setup arrived. The parent closing the
/// channel ends the child.
fn read_setup(fd: RawFd, reader: &mut SetupReader) -> Result<Option<Setup>, ChildError> {
    let mut buf = vec![0u8; super::wire::FRAGMENT + 16];
    let mut done = None;
    loop {
        match process::recv(fd, &mut buf).map_err(ChildError::Channel)? {
            None => return Ok(done),
            Some(0) => std::process::exit(0),
            Some(n) if n > buf.len() => return Err(ChildError::Setup("oversized fragment".into())),
            Some(n) => {
                if let Some(s) = reader
                    .feed(&buf[..n])
                    .map_err(|e| ChildError::Setup(e.to_string()))?
                {
                    done = Some(s);
                }
            }
        }
    }
}

struct Child {
    fd: RawFd,
    matcher: Matcher,
    link_local: Vec<bool>,
    filter: SharedFilter,
    captures: Option<Captures>,
    tx: SyncSender<EventBatch>,
    rx: Receiver<EventBatch>,
    destinations: Destinations,
    clock: Clock,
    refusals: Refusals,
    packets: u64,
    stats_at: Instant,
    /// Sequences completed in this drain, sent together after it.
    knocks: Vec<Knock>,
}

fn build(setup: &Setup) -> Result<Matcher, ChildError> {
    Matcher::new(setup.doors.clone(), setup.options).map_err(|e| ChildError::Setup(e.to_string()))
}

fn spec(setup: &Setup) -> FilterSpec {
    super::spec_for_doors(&setup.doors)
}

fn targets(setup: &Setup) -> Vec<std::net::IpAddr> {
    setup.doors.iter().filter_map(|d| d.target).collect()
}

impl Child {
    fn start(fd: RawFd, setup: Setup) -> Result<Child, ChildError> {
        let clock = Clock::new();
        let mut matcher = build(&setup)?;
        matcher.set_wall_offset(clock.wall_offset());
        let filter = SharedFilter::new(spec(&setup));
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let captures = Captures::spawn(&setup.interfaces, &filter, &tx)
            .map_err(|e| ChildError::Setup(e.message))?;
        let child = Child {
            fd,
            matcher,
            link_local: setup.link_local.clone(),
            filter,
            captures: Some(captures),
            tx,
            rx,
            destinations: Destinations::new(targets(&setup)),
            clock,
            refusals: Refusals::default(),
            packets: 0,
            stats_at: Instant::now(),
            knocks: Vec::new(),
        };
        child.send(&ChildMessage::Ready);
        Ok(child)
    }

    /// Sends to the parent. Knocks wait for room as long as it takes: the parent applying a
    /// large batch holds the child back (the capture queue and the kernel's ring absorb it,
    /// with the drop counter as the visible sign), a knock is never dropped here.
    fn send(&self, m: &ChildMessage) {
        let wait = match m {
            ChildMessage::Stats(_) => Some(STATS_WAIT),
            _ => None,
        };
        if let Err(e) = process::send(self.fd, &m.encode(), wait) {
            // The parent is gone or not reading: nothing else to tell it with.
            if e.raw_os_error() == Some(libc::EPIPE) || e.raw_os_error() == Some(libc::ECONNRESET) {
                std::process::exit(0);
            }
        }
    }

    fn serve(&mut self, reader: &mut SetupReader) -> Result<(), ChildError> {
        loop {
            if process::term_requested() {
                // Asked to stop by the parent: the last summaries and counters first.
                self.refusals.flush(self.clock.boot_ms(), true);
                self.send(&ChildMessage::Stats(self.stats()));
                return Ok(());
            }
            if let Some(setup) = read_setup(self.fd, reader)? {
                self.reload(setup)?;
            }
            if self.clock.check_jump().is_some() {
                self.matcher.set_wall_offset(self.clock.wall_offset());
            }
            let now = self.clock.boot_ms();
            self.destinations.refresh();
            self.matcher.tick(now);
            self.refusals.flush(now, false);
            if self.stats_at.elapsed() >= STATS_EVERY {
                self.stats_at = Instant::now();
                self.send(&ChildMessage::Stats(self.stats()));
            }
            let wake = [
                self.matcher.next_deadline().map(|t| t.saturating_sub(now)),
                self.refusals.deadline().map(|t| t.saturating_sub(now)),
            ]
            .into_iter()
            .flatten()
            .min()
            .map_or(CHANNEL_POLL, |ms| {
                Duration::from_millis(ms).min(CHANNEL_POLL)
            });
            match self.rx.recv_timeout(wake) {
                Ok(batch) => {
                    let mut seen = batch.len();
                    batch.into_iter().for_each(|e| self.observe(e));
                    while seen < DRAIN_BATCH {
                        match self.rx.try_recv() {
                            Ok(batch) => {
                                seen += batch.len();
                                batch.into_iter().for_each(|e| self.observe(e));
                            }
                            Err(_) => break,
                        }
                    }
                    self.send_knocks();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ChildError::Setup("all capture threads ended".into()))
                }
            }
        }
    }

    fn stats(&self) -> ChildStats {
        let m = self.matcher.counters();
        ChildStats {
            packets: self.packets,
            evictions: m.evictions,
            resets: m.resets,
            timeouts: m.timeouts,
            refused: self
                .refusals
                .totals
                .iter()
                .filter_map(|(name, n)| Refusal::from_name(name).map(|r| (r, *n)))
                .collect(),
            interfaces: self
                .captures
                .as_ref()
                .map(|c| {
                    c.threads
                        .iter()
                        .map(|t| {
                            let s = t.stats();
                            (s.received, s.dropped)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// One captured packet: checked for destination and source, then matched; each
    /// completed sequence goes to the parent.
    fn observe(&mut self, mut event: KnockEvent) {
        if !self.destinations.accepts(event.dst) {
            return;
        }
        event.to_host = self.destinations.is_local(event.dst);
        match check_source(event.src, event.via_loopback, self.destinations.host()) {
            Ok(()) => {}
            Err(Refusal::LinkLocal) if self.link_local.iter().any(|&l| l) => {}
            Err(why) => {
                self.refusals
                    .note(event.time_ms, why.as_str(), "any", event.src);
                return;
            }
        }
        self.packets += 1;
        for d in self.matcher.observe(&event) {
            if self.knocks.len() >= MAX_KNOCKS {
                self.send_knocks();
            }
            let used = match d.consume {
                None => Used::None,
                Some(Consume::OneTime { index, .. }) => Used::OneTime {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                },
                Some(Consume::Totp { counter }) => Used::Totp { counter },
            };
            self.knocks.push(Knock {
                door: u16::try_from(d.door).unwrap_or(u16::MAX),
                addr: d.addr,
                via_loopback: event.via_loopback,
                time_ms: d.time_ms,
                used,
            });
        }
    }

    fn send_knocks(&mut self) {
        if !self.knocks.is_empty() {
            let knocks = std::mem::take(&mut self.knocks);
            self.send(&ChildMessage::Knocks(knocks));
        }
    }

    /// A new configuration from the parent: new doors (progress of sources half-way through
    /// an unchanged door is kept), filter and, when they changed, interfaces.
    fn reload(&mut self, setup: Setup) -> Result<(), ChildError> {
        let mut matcher = match build(&setup) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "reload refused by the capture process");
                return Ok(());
            }
        };
        matcher.set_wall_offset(self.clock.wall_offset());
        let carried = matcher.adopt_progress(&self.matcher);
        self.matcher = matcher;
        self.link_local = setup.link_local.clone();
        self.destinations = Destinations::new(targets(&setup));
        self.filter.set(spec(&setup));
        let same = self
            .captures
            .as_ref()
            .is_some_and(|c| c.interfaces == setup.interfaces);
        if !same {
            if let Some(c) = self.captures.take() {
                c.shutdown();
            }
            self.captures = Some(
                Captures::spawn(&setup.interfaces, &self.filter, &self.tx)
                    .map_err(|e| ChildError::Setup(e.message))?,
            );
        }
        info!(sequences_kept = carried, "capture process reloaded");
        Ok(())
    }
}
