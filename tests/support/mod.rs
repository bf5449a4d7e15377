//! Real-parts end-to-end harness shared by the privileged integration tests: network
//! namespaces joined by a veth pair, a server side with a private `/etc` (so sshd's libwrap
//! reads our hosts files), real sshd / knockd / knock / tcpdmatch, crafted packets, and the
//! knockwrap daemon with sd_notify readiness. No mocks; every resource has a Drop guard.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod container;
pub mod daemon;
pub mod knockd;
pub mod net;
pub mod packets;
pub mod probe;
pub mod process;
pub mod rig;
pub mod server;

use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use daemon::{Daemon, DaemonConfig, Door};
pub use knockd::Knockd;
pub use net::NetPair;
pub use packets::RawV4;
pub use probe::{ssh_banner, tcpdmatch_verdict, Verdict};
pub use process::Proc;
pub use server::{ServerRoot, Sshd};

/// The one skip-or-fail rule (crate `test-support`).
pub use test_support::require_root_or_skip;

/// Serializes the tests of one binary: they time knocks, leases and latencies on a small
/// shared machine, and parallel runs would make those figures and deadlines noisy.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `cond` every `every` until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// The file's lines, or none when it does not exist yet.
pub fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits for `line` to be a whole line of `path`, polling in a tight loop (about 0.2 ms) so
/// that the instant returned is a fair "line visible" time for latency figures.
pub fn wait_for_line(path: &Path, line: &str, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.lines().any(|l| l == line) {
                return Some(Instant::now());
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Median, 90th percentile and maximum of a sample, in milliseconds.
pub fn summarize_ms(samples: &[Duration]) -> (f64, f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (pick(0.5), pick(0.9), *ms.last().unwrap_or(&f64::NAN))
}
