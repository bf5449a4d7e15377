//! One capture thread per interface: opens the capture, forwards each wake-up's events to the
//! daemon's bounded channel as one batch, installs filter updates, logs the kernel drop counter
//! (rate-limited), and reopens with exponential backoff when the interface goes down or away.
//! Stops within a read timeout (plus one backoff slice) of the stop flag being set. It reads
//! through [`FrameSource`]: the packet socket in the daemon ([`spawn_capture_thread`]), any
//! source a test opens ([`spawn_capture_thread_with`]).
//!
//! Under load it coalesces wake-ups: after a wake-up that found several frames queued, it waits
//! [`COALESCE_WAIT`] before polling again, so a flood is read in batches of hundreds (at most
//! one `poll` and one channel send per batch) instead of one wake-up per frame. A lone frame
//! (an honest knock on a quiet host) is never held back.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use knock_match::KnockEvent;
use tracing::{debug, info, warn};

use crate::filter::FilterSpec;
use crate::socket::{Capture, CaptureError, Stats, MAX_BATCH};
use crate::source::FrameSource;

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How often the kernel counters are read (one `getsockopt`).
const STATS_READ_EVERY: Duration = Duration::from_secs(1);
/// At most one drop warning per interface this often (drops in between are summed).
const DROP_WARN_EVERY: Duration = Duration::from_secs(10);
/// How often the counters are logged (at debug level) when nothing was dropped.
const STATS_EVERY: Duration = Duration::from_secs(60);
/// A wake-up that read at least this many frames means frames arrive faster than the thread
/// wakes up: wait [`COALESCE_WAIT`] before the next poll so the next batch is bigger.
const COALESCE_AT: usize = 4;
/// The wait after a busy wake-up: the most a frame arriving during a flood is held back.
pub const COALESCE_WAIT: Duration = Duration::from_millis(1);

/// The events of one wake-up, in arrival order.
pub type EventBatch = Vec<KnockEvent>;
/// How often an idle capture checks that its interface still exists.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Granularity of waits that must notice the stop flag.
const SLICE: Duration = Duration::from_millis(50);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A filter the daemon can replace at run time (on reload); capture threads pick up the new
/// one within a read timeout.
#[derive(Clone, Debug, Default)]
pub struct SharedFilter(Arc<Mutex<(u64, FilterSpec)>>);

impl SharedFilter {
    pub fn new(spec: FilterSpec) -> Self {
        SharedFilter(Arc::new(Mutex::new((0, spec))))
    }

    pub fn set(&self, spec: FilterSpec) {
        let mut g = lock(&self.0);
        g.0 += 1;
        g.1 = spec;
    }

    fn snapshot(&self) -> (u64, FilterSpec) {
        lock(&self.0).clone()
    }

    fn generation(&self) -> u64 {
        lock(&self.0).0
    }
}

impl From<FilterSpec> for SharedFilter {
    fn from(spec: FilterSpec) -> Self {
        SharedFilter::new(spec)
    }
}

/// A running capture thread.
#[derive(Debug)]
pub struct CaptureThread {
    pub handle: JoinHandle<()>,
    opens: Arc<(Mutex<u64>, Condvar)>,
    counters: Counters,
}

/// The kernel counters of one interface since the thread started, across reopens: the
/// sessions closed so far, and the current one.
type Counters = Arc<Mutex<(Stats, Stats)>>;

impl CaptureThread {
    /// The kernel's counters for this interface since the thread started (all sessions).
    pub fn stats(&self) -> Stats {
        let (base, current) = *lock(&self.counters);
        Stats {
            received: base.received + current.received,
            dropped: base.dropped + current.dropped,
        }
    }

    /// How many times the capture has been (re)opened successfully.
    pub fn opens(&self) -> u64 {
        *lock(&self.opens.0)
    }

    /// Wait until the capture has been opened at least `n` times, up to `timeout`. The
    /// daemon waits for the first open before it reports ready.
    pub fn wait_opens(&self, n: u64, timeout: Duration) -> bool {
        let (m, cv) = &*self.opens;
        let deadline = Instant::now() + timeout;
        let mut g = lock(m);
        while *g < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = cv
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// Sleep `d` in slices; false if `stop` was set meanwhile.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        thread::sleep(left.min(SLICE));
    }
    false
}

enum Delivery {
    Sent,
    Closed,
    Stopped,
}

/// Hand the batch over, waiting while the channel is full (the kernel queue and its drop
/// counter then absorb the overload) but never past `stop`.
fn deliver(sender: &SyncSender<EventBatch>, mut ev: EventBatch, stop: &AtomicBool) -> Delivery {
    loop {
        match sender.try_send(ev) {
            Ok(()) => return Delivery::Sent,
            Err(TrySendError::Disconnected(_)) => return Delivery::Closed,
            Err(TrySendError::Full(back)) => {
                if stop.load(Ordering::Relaxed) {
                    return Delivery::Stopped;
                }
                ev = back;
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// The kernel counters of one capture, and when they were last logged.
struct StatsLog {
    /// Counters at the last log line.
    logged: Stats,
    /// Shared with the daemon (`CaptureThread::stats`).
    shared: Counters,
    last_read: Instant,
    last_log: Instant,
}

impl StatsLog {
    /// A new session: what the previous one counted joins the closed sessions' total.
    fn new(shared: Counters) -> StatsLog {
        {
            let mut c = lock(&shared);
            let (base, current) = *c;
            *c = (
                Stats {
                    received: base.received + current.received,
                    dropped: base.dropped + current.dropped,
                },
                Stats::default(),
            );
        }
        let now = Instant::now();
        StatsLog {
            shared,
            logged: Stats::default(),
            last_read: now,
            last_log: now,
        }
    }

    /// Read the counters now and then: drops are warned about at most every
    /// [`DROP_WARN_EVERY`], the rest goes to debug every [`STATS_EVERY`].
    fn tick(&mut self, interface: &str, cap: &mut impl FrameSource) {
        if self.last_read.elapsed() < STATS_READ_EVERY {
            return;
        }
        self.last_read = Instant::now();
        let now = cap.stats();
        lock(&self.shared).1 = now;
        let since = self.last_log.elapsed();
        let dropped = now.dropped > self.logged.dropped;
        if (dropped && since >= DROP_WARN_EVERY) || since >= STATS_EVERY {
            self.log(interface, now);
        }
    }

    /// Log the counters now (on close), whatever the time.
    fn log(&mut self, interface: &str, now: Stats) {
        lock(&self.shared).1 = now;
        log_stats(interface, now, &mut self.logged);
        self.last_log = Instant::now();
    }
}

fn log_stats(interface: &str, now: Stats, before: &mut Stats) {
    let dropped = now.dropped.saturating_sub(before.dropped);
    let received = now.received.saturating_sub(before.received);
    if dropped > 0 {
        warn!(
            interface,
            dropped,
            received,
            dropped_total = now.dropped,
            received_total = now.received,
            "kernel dropped packets: the capture queue was full"
        );
    } else {
        debug!(
            interface,
            received_total = now.received,
            dropped_total = now.dropped,
            "capture statistics"
        );
    }
    *before = now;
}

/// Spawn the capture thread for `interface` (in the calling thread's network namespace).
/// Events go to `sender`; the thread ends when `stop` is set or the receiver is dropped.
pub fn spawn_capture_thread(
    interface: &str,
    filter: impl Into<SharedFilter>,
    sender: SyncSender<EventBatch>,
    stop: Arc<AtomicBool>,
) -> io::Result<CaptureThread> {
    spawn_capture_thread_with(interface, filter, sender, stop, Capture::open)
}

/// [`spawn_capture_thread`] over any [`FrameSource`]: `open` is called (in the capture
/// thread) for the first open and every reopen, with the current filter.
pub fn spawn_capture_thread_with<S, F>(
    interface: &str,
    filter: impl Into<SharedFilter>,
    sender: SyncSender<EventBatch>,
    stop: Arc<AtomicBool>,
    open: F,
) -> io::Result<CaptureThread>
where
    S: FrameSource,
    F: Fn(&str, &FilterSpec) -> Result<S, CaptureError> + Send + 'static,
{
    let filter = filter.into();
    let name = interface.to_string();
    let opens = Arc::new((Mutex::new(0u64), Condvar::new()));
    let opens_t = Arc::clone(&opens);
    let counters: Counters = Arc::default();
    let counters_t = Arc::clone(&counters);
    let handle = thread::Builder::new()
        .name(format!("capture-{interface}"))
        .spawn(move || run(&name, &filter, &sender, &stop, &opens_t, &counters_t, &open))?;
    Ok(CaptureThread {
        handle,
        opens,
        counters,
    })
}

fn run<S: FrameSource>(
    name: &str,
    filter: &SharedFilter,
    sender: &SyncSender<EventBatch>,
    stop: &AtomicBool,
    opens: &(Mutex<u64>, Condvar),
    counters: &Counters,
    open: &impl Fn(&str, &FilterSpec) -> Result<S, CaptureError>,
) {
    let mut backoff = BACKOFF_FIRST;
    while !stop.load(Ordering::Relaxed) {
        let (mut generation, spec) = filter.snapshot();
        match open(name, &spec) {
            Err(e) => {
                warn!(interface = name, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot open capture")
            }
            Ok(mut cap) => {
                match cap.receive_path() {
                    Some(receive) => {
                        info!(interface = name, link = ?cap.link(), ?receive, "capturing")
                    }
                    None => info!(interface = name, link = ?cap.link(), "capturing (no socket)"),
                }
                {
                    let (m, cv) = opens;
                    *lock(m) += 1;
                    cv.notify_all();
                }
                // Reset the backoff only once a session has read at least once.
                let mut healthy = false;
                let mut stats = StatsLog::new(Arc::clone(counters));
                let mut last_check = Instant::now();
                let mut down = false;
                loop {
                    if stop.load(Ordering::Relaxed) {
                        stats.log(name, cap.stats());
                        return;
                    }
                    if filter.generation() != generation {
                        let (g, spec) = filter.snapshot();
                        generation = g;
                        match cap.set_filter(&spec) {
                            Ok(()) => info!(interface = name, "capture filter updated"),
                            Err(e) => {
                                warn!(interface = name, error = %e, "cannot update the capture filter; keeping the previous one")
                            }
                        }
                    }
                    let mut events = EventBatch::new();
                    match cap.next_batch(&mut events) {
                        Ok(frames) => {
                            healthy = true;
                            if frames > 0 && down {
                                info!(interface = name, "interface is back");
                                down = false;
                            }
                            if !events.is_empty() {
                                match deliver(sender, events, stop) {
                                    Delivery::Sent => {}
                                    Delivery::Closed | Delivery::Stopped => return,
                                }
                            }
                            // Busy, but not so busy that the queue is still full: let the
                            // next batch build up (a full read goes straight back).
                            if (COALESCE_AT..MAX_BATCH).contains(&frames) {
                                thread::sleep(COALESCE_WAIT);
                            }
                        }
                        Err(CaptureError::InterfaceDown(_)) => {
                            if !down {
                                warn!(
                                    interface = name,
                                    "interface is down; waiting for it to come back"
                                );
                                down = true;
                            }
                        }
                        Err(e) => {
                            if healthy {
                                backoff = BACKOFF_FIRST;
                            }
                            warn!(interface = name, error = %e, retry_in_ms = backoff.as_millis() as u64, "capture failed; reopening");
                            stats.log(name, cap.stats());
                            break;
                        }
                    }
                    if last_check.elapsed() >= CHECK_EVERY {
                        last_check = Instant::now();
                        if let Err(e) = cap.check_interface() {
                            if healthy {
                                backoff = BACKOFF_FIRST;
                            }
                            warn!(interface = name, error = %e, retry_in_ms = backoff.as_millis() as u64, "capture lost its interface; reopening");
                            stats.log(name, cap.stats());
                            break;
                        }
                    }
                    stats.tick(name, &mut cap);
                }
            }
        }
        if !sleep_unless_stopped(backoff, stop) {
            return;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc::{sync_channel, Receiver};

    use super::*;
    use crate::batch::{SLOTS, SLOT_BYTES};
    use crate::link::LinkType;
    use crate::source::{AfterFrames, Recorded};
    use crate::testframes::syn_frame;

    /// SYNs to `ports`, in order, 1 ms apart from `t0`.
    fn syns(ports: impl IntoIterator<Item = u16>, t0: u64) -> Vec<(Vec<u8>, u64)> {
        ports
            .into_iter()
            .enumerate()
            .map(|(i, p)| (syn_frame(p), t0 + i as u64))
            .collect()
    }

    /// A capture thread over what `open` returns, and its channel.
    fn spawn<S: FrameSource>(
        open: impl Fn(&str, &FilterSpec) -> Result<S, CaptureError> + Send + 'static,
    ) -> (CaptureThread, Receiver<EventBatch>, Arc<AtomicBool>) {
        let (tx, rx) = sync_channel(8);
        let stop = Arc::new(AtomicBool::new(false));
        let t =
            spawn_capture_thread_with("rec0", FilterSpec::default(), tx, Arc::clone(&stop), open)
                .unwrap();
        (t, rx, stop)
    }

    /// Batches until `n` events arrived (or 10 s passed).
    fn collect(rx: &Receiver<EventBatch>, n: usize) -> Vec<EventBatch> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.iter().map(Vec::len).sum::<usize>() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(b) => got.push(b),
                Err(_) => break,
            }
        }
        got
    }

    fn ports(batches: &[EventBatch]) -> Vec<u16> {
        batches.iter().flatten().map(|e| e.dport).collect()
    }

    fn finish(t: CaptureThread, stop: &AtomicBool) {
        stop.store(true, Ordering::Relaxed);
        t.handle.join().unwrap();
    }

    #[test]
    fn recorded_frames_arrive_in_order_with_their_times() {
        let frames = syns([7000, 8000, 9000], 5_000);
        let (t, rx, stop) =
            spawn(move |name, _| Ok(Recorded::new(name, LinkType::Ethernet, frames.clone())));
        let got = collect(&rx, 3);
        let events: Vec<_> = got.iter().flatten().collect();
        assert_eq!(ports(&got), [7000, 8000, 9000]);
        assert_eq!(
            events.iter().map(|e| e.time_ms).collect::<Vec<_>>(),
            [5_000, 5_001, 5_002]
        );
        assert!(events
            .iter()
            .all(|e| e.src.to_string() == "10.0.0.1" && e.dst.to_string() == "10.0.0.2"));
        assert_eq!(t.opens(), 1);
        // Nothing more comes; the counters saw the three frames.
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        assert!(wait_for(|| t.stats().received == 3), "{:?}", t.stats());
        finish(t, &stop);
    }

    /// Waits up to 5 s for `f`, which the capture thread updates about once a second.
    fn wait_for(f: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
        true
    }

    #[test]
    fn a_burst_larger_than_a_batch_arrives_whole_and_in_order() {
        let n = 10 * SLOTS + 7;
        let frames = syns((0..n).map(|i| 1000 + i as u16), 1);
        let (t, rx, stop) =
            spawn(move |name, _| Ok(Recorded::new(name, LinkType::Ethernet, frames.clone())));
        let got = collect(&rx, n);
        assert_eq!(
            ports(&got),
            (0..n).map(|i| 1000 + i as u16).collect::<Vec<_>>()
        );
        // One channel message per read, each at most a read's worth.
        assert!(got.len() >= n.div_ceil(SLOTS), "{}", got.len());
        assert!(got.iter().all(|b| !b.is_empty() && b.len() <= SLOTS));
        finish(t, &stop);
    }

    #[test]
    fn truncated_and_oversized_frames_are_skipped() {
        let syn = syn_frame(7000);
        let mut padded = syn_frame(8000);
        padded.resize(SLOT_BYTES + 4096, 0xff);
        let frames = vec![
            (Vec::new(), 1),
            (syn[..12].to_vec(), 2),            // Ethernet header cut short
            (syn[..14 + 19].to_vec(), 3),       // IPv4 header cut short
            (syn[..syn.len() - 1].to_vec(), 4), // TCP header cut short
            (vec![0xff; SLOT_BYTES * 2], 5),    // garbage, larger than a slot
            (padded, 6), // a SYN with trailing bytes past a slot: its headers are kept
            (syn_frame(9000), 7),
        ];
        let (t, rx, stop) = spawn(move |name, _| {
            Ok(Recorded::new(name, LinkType::Ethernet, frames.clone()).batch(3))
        });
        let got = collect(&rx, 2);
        assert_eq!(ports(&got), [8000, 9000]);
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        assert!(wait_for(|| t.stats().received == 7), "{:?}", t.stats());
        finish(t, &stop);
    }

    #[test]
    fn a_failed_open_is_retried() {
        let calls = Arc::new(AtomicUsize::new(0));
        let calls_t = Arc::clone(&calls);
        let (t, rx, stop) = spawn(move |name, _| {
            if calls_t.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(CaptureError::NoSuchInterface(name.into()));
            }
            Ok(Recorded::new(name, LinkType::Ethernet, syns([7000], 1)))
        });
        assert_eq!(ports(&collect(&rx, 1)), [7000]);
        assert!(t.wait_opens(1, Duration::from_secs(5)));
        assert_eq!(t.opens(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        finish(t, &stop);
    }

    #[test]
    fn a_vanished_interface_is_reopened_and_reading_goes_on() {
        let calls = Arc::new(AtomicUsize::new(0));
        let calls_t = Arc::clone(&calls);
        let (t, rx, stop) = spawn(move |name, _| {
            let source = match calls_t.fetch_add(1, Ordering::SeqCst) {
                0 => Recorded::new(name, LinkType::Ethernet, syns([7000, 8000], 1))
                    .then(AfterFrames::Gone),
                _ => Recorded::new(name, LinkType::Ethernet, syns([9000], 10)),
            };
            Ok(source)
        });
        assert_eq!(ports(&collect(&rx, 3)), [7000, 8000, 9000]);
        assert!(t.wait_opens(2, Duration::from_secs(5)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Counters add up across the two sessions.
        assert!(wait_for(|| t.stats().received == 3), "{:?}", t.stats());
        finish(t, &stop);
    }
}
