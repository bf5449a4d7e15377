//! One capture thread per interface: opens the capture, forwards each wake-up's events to the
//! daemon's bounded channel as one batch, installs filter updates, logs the kernel drop counter
//! (rate-limited), and reopens with exponential backoff when the interface goes down or away.
//! Stops within a read timeout (plus one backoff slice) of the stop flag being set.
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
    fn tick(&mut self, interface: &str, cap: &mut Capture) {
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
    let filter = filter.into();
    let name = interface.to_string();
    let opens = Arc::new((Mutex::new(0u64), Condvar::new()));
    let opens_t = Arc::clone(&opens);
    let counters: Counters = Arc::default();
    let counters_t = Arc::clone(&counters);
    let handle = thread::Builder::new()
        .name(format!("capture-{interface}"))
        .spawn(move || run(&name, &filter, &sender, &stop, &opens_t, &counters_t))?;
    Ok(CaptureThread {
        handle,
        opens,
        counters,
    })
}

fn run(
    name: &str,
    filter: &SharedFilter,
    sender: &SyncSender<EventBatch>,
    stop: &AtomicBool,
    opens: &(Mutex<u64>, Condvar),
    counters: &Counters,
) {
    let mut backoff = BACKOFF_FIRST;
    while !stop.load(Ordering::Relaxed) {
        let (mut generation, spec) = filter.snapshot();
        match Capture::open(name, &spec) {
            Err(e) => {
                warn!(interface = name, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot open capture")
            }
            Ok(mut cap) => {
                info!(interface = name, link = ?cap.link(), receive = ?cap.receive_path(), "capturing");
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
