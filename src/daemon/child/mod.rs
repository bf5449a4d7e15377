//! The capture child: the only process that reads packets from the network. It runs as an
//! unprivileged account with at most CAP_NET_RAW, NoNewPrivs and a seccomp filter that
//! allows no path-taking system call, and holds no descriptor but its packet sockets and
//! the channel to the parent (stdio is /dev/null, read-only).
//!
//! Its loop: capture threads → destination and source checks → the matcher → one
//! [`ChildMessage::Knocks`] per drain (the sequences it completed, with the setup generation
//! they were matched in and each one's capture interface) to the parent, which decides what
//! to write. Each taken setup is acknowledged with [`ChildMessage::Ready`]. Its configuration (doors, interfaces, matcher options) arrives as a [`Setup`]
//! over the channel, at start and on every reload, read by a channel thread that wakes the
//! loop: the child never reads a file. Log lines go to the parent over the same channel. When
//! the parent goes away (or sends Stop), the child ends.
//!
//! Confinement ([`confine`]) is kept apart from the loop ([`Child`]), and the captures are
//! opened through an [`Opener`] (the packet socket in the daemon), so the loop is tested
//! without root on recorded frames.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;

use knock_capture::{
    spawn_capture_thread_with, Capture, CaptureError, CaptureThread, EventBatch, FilterSpec,
    FrameSource, LinkType, ReceivePath, SharedFilter, Stats,
};
use knock_match::{check_source, Consume, KnockEvent, Matcher, Refusal};
use thiserror::Error;
use tracing::{error, info, warn};

use super::shared::clock::Clock;
use super::shared::local::Destinations;
use super::shared::refusals::Refusals;
use super::shared::OPEN_WAIT;
use knockwrap_wire::{
    ChildMessage, ChildStats, Knock, ParentMessage, Setup, SetupReader, Used, MAX_KNOCKS,
};

/// Queue between capture threads and the loop, in batches (one per capture wake-up, at most
/// `knock_capture::MAX_BATCH` events each). When it is full a capture thread waits, so
/// overload shows up as the kernel's drop counter (logged by the capture thread).
const QUEUE: usize = 256;
/// Most events handled between two looks at timers and signals.
const DRAIN_BATCH: usize = 4096;
use crate::sys::privilege::{self, Account};
use crate::sys::process;
use crate::sys::sandbox::{self, Mode};

/// Longest the loop sleeps with nothing to do (SIGTERM, the address list and the wall clock
/// are looked at this often; the channel has its own thread and wakes the loop at once).
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// Counters go to the parent at most this often, and only when they changed.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// How long counters may wait for buffer space (then the next ones will do).
const STATS_WAIT: Duration = Duration::from_millis(200);

#[derive(Debug, Error)]
pub enum ChildError {
    #[error("signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("descriptors: {0}")]
    Fds(std::io::Error),
    #[error("dying with the parent: {0}")]
    ParentDeath(std::io::Error),
    #[error("dropping privileges: {0}")]
    Privilege(#[from] privilege::PrivilegeError),
    #[error("sandbox: {0}")]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("channel: {0}")]
    Channel(std::io::Error),
    #[error("setup from the parent: {0}")]
    Setup(String),
    #[error("{interface}: cannot start capture: {source}")]
    Capture {
        interface: String,
        #[source]
        source: std::io::Error,
    },
}

/// How a capture thread opens its interface (called again on every reopen): the packet
/// socket ([`sockets`]) in the daemon, recorded frames in tests.
pub type Opener =
    Arc<dyn Fn(&str, &FilterSpec) -> Result<Box<dyn FrameSource>, CaptureError> + Send + Sync>;

/// The daemon's opener: a filtered AF_PACKET capture ([`Capture::open`]).
fn sockets() -> Opener {
    Arc::new(|name: &str, spec: &FilterSpec| {
        Ok(Box::new(Capture::open(name, spec)?) as Box<dyn FrameSource>)
    })
}

/// Entered right after fork(2) in the child; never returns.
pub fn main(channel: OwnedFd, account: &Account, mode: Mode) -> ! {
    let parent = process::parent();
    let code = match run(channel, parent, account, mode, sockets()) {
        Ok(()) => 0,
        Err(e) => {
            error!(error = %e, "capture process failed");
            1
        }
    };
    std::process::exit(code)
}

fn run(
    channel: OwnedFd,
    parent: libc::pid_t,
    account: &Account,
    mode: Mode,
    open: Opener,
) -> Result<(), ChildError> {
    confine(&channel, parent, account, mode)?;
    let mut reader = SetupReader::default();
    let setup = wait_setup(channel.as_fd(), &mut reader)?;
    let mut child = Child::start(channel, setup, open, reader)?;
    child.serve(process::term_requested)
}

/// The process steps before the loop: keep only the channel, forward logs over it, drop to
/// the capture account, die with the parent `parent` (set after the drop, which would clear
/// it), enter the sandbox.
fn confine(
    channel: &OwnedFd,
    parent: libc::pid_t,
    account: &Account,
    mode: Mode,
) -> Result<(), ChildError> {
    process::child_signals().map_err(ChildError::Signals)?;
    process::sanitize_fds(&[channel.as_raw_fd()]).map_err(ChildError::Fds)?;
    crate::logging::forward_to(channel.as_fd()).map_err(ChildError::Fds)?;
    privilege::drop_to(account, true)?;
    process::die_with_parent(parent).map_err(ChildError::ParentDeath)?;
    sandbox::enter(mode)?;
    info!(user = %account.name, uid = account.uid, "capture process started");
    Ok(())
}

/// Waits for the first whole setup from the parent.
fn wait_setup(fd: BorrowedFd<'_>, reader: &mut SetupReader) -> Result<Setup, ChildError> {
    loop {
        process::wait(fd, PollFlags::IN, Duration::from_secs(1)).map_err(ChildError::Channel)?;
        match read_parent(fd, reader)? {
            Read::Message(ParentMessage::Setup(s)) => return Ok(*s),
            Read::Message(ParentMessage::Stop) | Read::Closed => std::process::exit(0),
            Read::Nothing => {}
        }
    }
}

/// What one read of the channel found.
enum Read {
    Nothing,
    Message(ParentMessage),
    /// The parent closed the channel (it is gone, or replacing this child): time to exit.
    Closed,
}

/// Reads one message from the parent, if a whole one is queued.
fn read_parent(fd: BorrowedFd<'_>, reader: &mut SetupReader) -> Result<Read, ChildError> {
    let mut buf = vec![0u8; knockwrap_wire::FRAGMENT + 16];
    loop {
        match process::recv(fd, &mut buf).map_err(ChildError::Channel)? {
            None => return Ok(Read::Nothing),
            Some(0) => return Ok(Read::Closed),
            Some(n) if n > buf.len() => return Err(ChildError::Setup("oversized fragment".into())),
            Some(n) => {
                if let Some(m) = reader
                    .feed(&buf[..n])
                    .map_err(|e| ChildError::Setup(e.to_string()))?
                {
                    return Ok(Read::Message(m));
                }
            }
        }
    }
}

/// What the channel thread hands the loop.
#[derive(Default)]
struct Inbox {
    setup: Option<Setup>,
    stop: bool,
}

/// The channel thread: blocks on the channel, so the loop need not poll it. A setup or a
/// stop is left in the inbox and the loop woken with an empty batch on its own queue. The
/// parent closing the channel ends the process; once the loop has returned (`quit`, in tests)
/// the thread just ends. It reads through its own duplicate of the channel descriptor.
fn spawn_channel_thread(
    fd: BorrowedFd<'_>,
    mut reader: SetupReader,
    inbox: Arc<Mutex<Inbox>>,
    wake: SyncSender<EventBatch>,
    quit: Arc<AtomicBool>,
) -> Result<(), ChildError> {
    // A close-on-exec duplicate (fcntl F_DUPFD_CLOEXEC).
    let own = fd.try_clone_to_owned().map_err(ChildError::Channel)?;
    let body = move || {
        let fd = own.as_fd();
        let end = |code: i32, why: &dyn std::fmt::Display| {
            if !quit.load(Ordering::Relaxed) {
                if code != 0 {
                    error!(error = %why, "capture process: channel to the parent failed");
                }
                std::process::exit(code);
            }
        };
        while !quit.load(Ordering::Relaxed) {
            match process::wait(fd, PollFlags::IN, Duration::from_millis(500)) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(e) => return end(1, &e),
            }
            loop {
                match read_parent(fd, &mut reader) {
                    Ok(Read::Nothing) => break,
                    Ok(Read::Closed) => return end(0, &"closed"),
                    Ok(Read::Message(m)) => {
                        {
                            let mut b = inbox.lock().unwrap_or_else(|p| p.into_inner());
                            match m {
                                ParentMessage::Setup(s) => b.setup = Some(*s),
                                ParentMessage::Stop => b.stop = true,
                            }
                        }
                        let _ = wake.try_send(EventBatch::new());
                    }
                    Err(e) => return end(1, &e),
                }
            }
        }
    };
    std::thread::Builder::new()
        .name("channel".into())
        .spawn(body)
        .map(|_| ())
        .map_err(ChildError::Channel)
}

/// A capture source whose events say which interface they came from: its index in the
/// setup's list, what a knock reports to the parent.
struct Tagged {
    inner: Box<dyn FrameSource>,
    interface: u16,
}

impl FrameSource for Tagged {
    fn next_batch(&mut self, out: &mut Vec<KnockEvent>) -> Result<usize, CaptureError> {
        let from = out.len();
        let n = self.inner.next_batch(out)?;
        for e in &mut out[from..] {
            e.interface = self.interface;
        }
        Ok(n)
    }
    fn set_filter(&mut self, spec: &FilterSpec) -> Result<(), CaptureError> {
        self.inner.set_filter(spec)
    }
    fn stats(&mut self) -> Stats {
        self.inner.stats()
    }
    fn check_interface(&self) -> Result<(), CaptureError> {
        self.inner.check_interface()
    }
    fn link(&self) -> LinkType {
        self.inner.link()
    }
    fn receive_path(&self) -> Option<ReceivePath> {
        self.inner.receive_path()
    }
}

/// The capture threads, one per interface.
struct Captures {
    interfaces: Vec<String>,
    threads: Vec<CaptureThread>,
    stop: Arc<AtomicBool>,
}

impl Captures {
    /// One capture thread per interface, each opening its source with `open`.
    fn spawn(
        interfaces: &[String],
        filter: &SharedFilter,
        tx: &SyncSender<EventBatch>,
        open: &Opener,
    ) -> Result<Captures, ChildError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (i, name) in interfaces.iter().enumerate() {
            let open = Arc::clone(open);
            let interface = u16::try_from(i).unwrap_or(u16::MAX);
            let t = spawn_capture_thread_with(
                name,
                filter.clone(),
                tx.clone(),
                Arc::clone(&stop),
                move |name: &str, spec: &FilterSpec| {
                    open(name, spec).map(|inner| Tagged { inner, interface })
                },
            )
            .map_err(|e| ChildError::Capture {
                interface: name.clone(),
                source: e,
            })?;
            threads.push(t);
        }
        for (name, t) in interfaces.iter().zip(&threads) {
            if !t.wait_opens(1, OPEN_WAIT) {
                warn!(interface = %name, "capture not open yet; retrying in the background");
            }
        }
        Ok(Captures {
            interfaces: interfaces.to_vec(),
            threads,
            stop,
        })
    }

    fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.handle.join();
        }
    }
}

struct Child {
    /// The channel to the parent.
    fd: OwnedFd,
    /// The setup generation the matcher's doors come from.
    generation: u32,
    matcher: Matcher,
    filter: SharedFilter,
    open: Opener,
    captures: Option<Captures>,
    tx: SyncSender<EventBatch>,
    rx: Receiver<EventBatch>,
    destinations: Destinations,
    clock: Clock,
    refusals: Refusals,
    packets: u64,
    stats_at: Instant,
    /// The counters last sent (they are sent again only when they changed).
    stats_sent: ChildStats,
    /// Sequences completed in this drain, sent together after it.
    knocks: Vec<Knock>,
    inbox: Arc<Mutex<Inbox>>,
    /// Ends the channel thread when the loop returns (tests run several loops in one process).
    quit: Arc<AtomicBool>,
}

fn build(setup: &Setup) -> Result<Matcher, ChildError> {
    let m = Matcher::new(setup.doors.clone(), setup.options)
        .map_err(|e| ChildError::Setup(e.to_string()))?;
    Ok(m)
}

fn spec(setup: &Setup) -> FilterSpec {
    spec_for_doors(&setup.doors)
}

/// Each door's step rule and UDP, to every port: what sweep detection needs (see
/// [`FilterSpec::from_doors`]).
fn spec_for_doors(doors: &[knock_match::Door]) -> FilterSpec {
    FilterSpec::from_doors(doors.iter(), true)
}

fn targets(setup: &Setup) -> Vec<std::net::IpAddr> {
    setup.doors.iter().filter_map(|d| d.target).collect()
}

impl Child {
    fn start(
        fd: OwnedFd,
        setup: Setup,
        open: Opener,
        reader: SetupReader,
    ) -> Result<Child, ChildError> {
        let clock = Clock::new();
        let mut matcher = build(&setup)?;
        matcher.set_wall_offset(clock.wall_offset());
        let filter = SharedFilter::new(spec(&setup));
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let captures = Captures::spawn(&setup.interfaces, &filter, &tx, &open)?;
        let child = Child {
            fd,
            generation: setup.generation,
            matcher,
            filter,
            open,
            captures: Some(captures),
            tx,
            rx,
            destinations: Destinations::new(targets(&setup)),
            clock,
            refusals: Refusals::default(),
            packets: 0,
            stats_at: Instant::now(),
            stats_sent: ChildStats::default(),
            knocks: Vec::new(),
            inbox: Arc::default(),
            quit: Arc::default(),
        };
        spawn_channel_thread(
            child.fd.as_fd(),
            reader,
            Arc::clone(&child.inbox),
            child.tx.clone(),
            Arc::clone(&child.quit),
        )?;
        child.send(&ChildMessage::Ready {
            generation: child.generation,
        });
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
        if let Err(e) = process::send(self.fd.as_fd(), &m.encode(), wait) {
            // The parent is gone or not reading: nothing else to tell it with.
            if e.raw_os_error() == Some(libc::EPIPE) || e.raw_os_error() == Some(libc::ECONNRESET) {
                std::process::exit(0);
            }
        }
    }

    /// The loop, until the parent sends Stop or `stop` says so (in the daemon: SIGTERM).
    fn serve(&mut self, stop: impl Fn() -> bool) -> Result<(), ChildError> {
        let result = self.serve_inner(stop);
        self.quit.store(true, Ordering::Relaxed);
        result
    }

    fn serve_inner(&mut self, stop: impl Fn() -> bool) -> Result<(), ChildError> {
        loop {
            let (setup, stop_asked) = {
                let mut b = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
                (b.setup.take(), b.stop)
            };
            if stop_asked || stop() {
                // The last summaries and counters first.
                self.refusals.flush(self.clock.boot_ms(), true);
                self.send(&ChildMessage::Stats(self.stats()));
                return Ok(());
            }
            if let Some(setup) = setup {
                self.reload(setup)?;
            }
            if self.clock.check_jump().is_some() {
                self.matcher.set_wall_offset(self.clock.wall_offset());
            }
            let now = self.clock.boot_ms();
            self.destinations.refresh();
            self.matcher.tick(now);
            self.refusals.flush(now, false);
            let mut stats_due = None;
            let since = self.stats_at.elapsed();
            if since >= STATS_EVERY {
                let stats = self.stats();
                if stats != self.stats_sent {
                    self.stats_at = Instant::now();
                    self.send(&ChildMessage::Stats(stats.clone()));
                    self.stats_sent = stats;
                }
            } else if self.packets != self.stats_sent.packets {
                stats_due = Some((STATS_EVERY - since).as_millis() as u64);
            }
            let wake = [
                self.matcher.next_deadline().map(|t| t.saturating_sub(now)),
                self.refusals.deadline().map(|t| t.saturating_sub(now)),
                stats_due,
            ]
            .into_iter()
            .flatten()
            .min()
            .map_or(IDLE_WAKE, |ms| Duration::from_millis(ms).min(IDLE_WAKE));
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
                .chain(
                    (m.outside_knock_from > 0)
                        .then_some((Refusal::KnockFrom, m.outside_knock_from)),
                )
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
            // A link-local source goes on to the matcher when some door takes them; the
            // matcher lets it complete only those (`source::admit_to_door`).
            Err(Refusal::LinkLocal) if self.matcher.doors().any(|d| d.link_local) => {}
            Err(why) => {
                self.refusals
                    .note(event.time_ms, why.as_str(), "any", event.src);
                return;
            }
        }
        self.packets += 1;
        let decisions = self.matcher.observe(&event);
        for (door, addr) in self.matcher.take_link_local_refusals() {
            let name = self
                .matcher
                .doors()
                .nth(door)
                .map_or("?", |d| d.name.as_str());
            self.refusals
                .note(event.time_ms, Refusal::LinkLocal.as_str(), name, addr);
        }
        for d in decisions {
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
                interface: event.interface,
                time_ms: d.time_ms,
                used,
            });
        }
    }

    fn send_knocks(&mut self) {
        if !self.knocks.is_empty() {
            let knocks = std::mem::take(&mut self.knocks);
            self.send(&ChildMessage::Knocks {
                generation: self.generation,
                knocks,
            });
        }
    }

    /// A new configuration from the parent: new doors (progress of sources half-way through
    /// an unchanged door is kept, and what the old doors used up stays used), filter and,
    /// when they changed, interfaces. Knocks matched with the old doors go first, under the
    /// old generation; the new one is acknowledged once in use.
    fn reload(&mut self, setup: Setup) -> Result<(), ChildError> {
        self.send_knocks();
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
            self.captures = Some(Captures::spawn(
                &setup.interfaces,
                &self.filter,
                &self.tx,
                &self.open,
            )?);
        }
        self.generation = setup.generation;
        info!(sequences_kept = carried, "capture process reloaded");
        self.send(&ChildMessage::Ready {
            generation: self.generation,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::thread;

    use knock_capture::{LinkType, Recorded};
    use knock_match::{Action, Door, DoorKind, MatcherOptions, Step};
    use test_support::frames::{ip_packet, L4, SYN};

    use super::*;
    use knockwrap_wire as wire;

    const KNOCKER: [u8; 4] = [198, 18, 0, 2];
    /// The door's target: accepted as a destination although no interface has it.
    const TARGET: [u8; 4] = [198, 18, 0, 1];

    fn setup() -> Setup {
        Setup {
            generation: 1,
            doors: vec![Door {
                name: "ssh".into(),
                kind: DoorKind::Static {
                    steps: vec![Step::tcp(7000), Step::tcp(8000), Step::tcp(9000)],
                },
                seq_timeout: Duration::from_secs(10),
                tcp_flags: Default::default(),
                action: Action::Allow,
                service: "sshd".into(),
                lease: None,
                target: Some(IpAddr::from(TARGET)),
                knock_from: Vec::new(),
                link_local: false,
            }],
            interfaces: vec!["rec0".into()],
            options: MatcherOptions::default(),
        }
    }

    /// A bare IPv4 TCP SYN (a frame on a tun-like, RawIp interface) from KNOCKER:`sport` to
    /// TARGET:`dport`.
    fn syn(sport: u16, dport: u16) -> Vec<u8> {
        let l4 = L4::Tcp {
            sport,
            dport,
            flags: SYN,
            seq: u32::from(sport) * 7919,
        };
        ip_packet(KNOCKER.into(), TARGET.into(), l4)
    }

    /// Runs the child's loop (no privilege drop, no sandbox) over recorded SYNs to `ports`,
    /// one per connection attempt, 1 ms apart. They are stamped 5 s ahead of the event clock:
    /// the matcher never goes back in time, so each knock keeps its frame's time rather than
    /// that of a tick in between, which lets a test tell knocks apart. The setup goes over a
    /// socketpair as the parent sends it; what the child sends back is collected until
    /// `enough` says so (or 10 s pass), then the loop is stopped. Returns the time of the
    /// first frame and the messages.
    fn run_recorded(
        ports: &[u16],
        enough: impl Fn(&[ChildMessage]) -> bool,
    ) -> (u64, Vec<ChildMessage>) {
        let (parent, theirs) = process::seqpacket_pair().unwrap();
        for f in wire::setup_fragments(&setup()).unwrap() {
            process::send(parent.as_fd(), &f, Some(Duration::from_secs(2))).unwrap();
        }
        let t0 = ::clock::boot_ms() + 5_000;
        let frames: Vec<(Vec<u8>, u64)> = ports
            .iter()
            .enumerate()
            .map(|(i, &port)| (syn(40000 + i as u16, port), t0 + i as u64))
            .collect();
        let open: Opener = Arc::new(move |name: &str, _: &FilterSpec| {
            let source = Recorded::new(name, LinkType::RawIp, frames.clone());
            Ok(Box::new(source) as Box<dyn FrameSource>)
        });
        let child = thread::spawn(move || {
            let mut reader = SetupReader::default();
            let setup = wait_setup(theirs.as_fd(), &mut reader)?;
            let mut child = Child::start(theirs, setup, open, reader)?;
            let served = child.serve(|| false);
            if let Some(c) = child.captures.take() {
                c.shutdown();
            }
            served
        });
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let deadline = Instant::now() + Duration::from_secs(10);
        while !enough(&got) && Instant::now() < deadline {
            if !process::wait(parent.as_fd(), PollFlags::IN, Duration::from_millis(50)).unwrap() {
                continue;
            }
            while let Some(n) = process::recv(parent.as_fd(), &mut buf).unwrap() {
                assert!(
                    n > 0 && n <= buf.len(),
                    "the child closed the channel ({n})"
                );
                got.push(ChildMessage::decode(&buf[..n]).unwrap());
            }
        }
        process::send(parent.as_fd(), &wire::stop_message(), None).unwrap();
        child.join().unwrap().unwrap();
        (t0, got)
    }

    fn knocks(got: &[ChildMessage]) -> Vec<Knock> {
        got.iter()
            .filter_map(|m| match m {
                ChildMessage::Knocks { knocks, .. } => Some(knocks.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn a_recorded_knock_reaches_the_parent() {
        let (t0, got) = run_recorded(&[7000, 8000, 9000], |got| !knocks(got).is_empty());
        assert_eq!(
            got.first(),
            Some(&ChildMessage::Ready { generation: 1 }),
            "{got:?}"
        );
        assert!(got
            .iter()
            .all(|m| !matches!(m, ChildMessage::Knocks { generation, .. } if *generation != 1)));
        assert_eq!(
            knocks(&got),
            [Knock {
                door: 0,
                addr: IpAddr::from(KNOCKER),
                interface: 0,
                time_ms: t0 + 2,
                used: Used::None,
            }]
        );
    }

    #[test]
    fn a_sweep_is_not_a_knock() {
        // The sweep, then an honest knock: the one knock reported is the honest one (its
        // time is the last frame's), so every frame of the sweep went through the loop and
        // none completed the door.
        let ports: Vec<u16> = (7000..=9000).chain([7000, 8000, 9000]).collect();
        let last = ports.len() as u64 - 1;
        let (t0, got) = run_recorded(&ports, |got| !knocks(got).is_empty());
        let knocks = knocks(&got);
        assert_eq!(knocks.len(), 1, "{knocks:?}");
        assert_eq!(knocks[0].time_ms, t0 + last);
        assert_eq!(knocks[0].addr, IpAddr::from(KNOCKER));
    }

    #[test]
    fn a_wrong_order_is_not_a_knock() {
        let ports = [9000, 8000, 7000, 9000, 8000];
        // Wait for counters that show every packet was matched.
        let (_, got) = run_recorded(&ports, |got| {
            got.iter()
                .any(|m| matches!(m, ChildMessage::Stats(s) if s.packets == ports.len() as u64))
        });
        assert!(
            got.iter()
                .any(|m| matches!(m, ChildMessage::Stats(s) if s.packets == 5)),
            "{got:?}"
        );
        assert_eq!(knocks(&got), []);
    }

    #[test]
    fn udp_passes_everywhere_only_when_a_door_uses_udp() {
        use knock_match::{Proto, TcpFlags};
        let none = TcpFlags(0);
        let with = |steps: Vec<Step>| {
            let mut d = setup().doors[0].clone();
            d.kind = DoorKind::Static { steps };
            spec_for_doors(&[d])
        };
        let tcp_only = with(vec![Step::tcp(7000), Step::tcp(8000)]);
        assert!(!tcp_only.wants(Proto::Udp, 53, none));
        assert!(tcp_only.wants(Proto::Tcp, 22, TcpFlags(TcpFlags::SYN)));
        assert!(!tcp_only.wants(Proto::Tcp, 22, TcpFlags(TcpFlags::ACK)));
        let mixed = with(vec![Step::tcp(7000), Step::udp(8000)]);
        assert!(mixed.wants(Proto::Udp, 8000, none));
        assert!(mixed.wants(Proto::Udp, 53, none));
    }
}
