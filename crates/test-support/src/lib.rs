//! The harness every privileged test shares, so that its rules and its parts live in one
//! place (the root package's integration tests, and the crates' own):
//!
//! - [`require_root_or_skip`] and [`skip_unless_root!`]: the skip-or-fail rule. Without root
//!   (or a tool it needs) a privileged test prints `SKIPPED (needs root): <test>` straight to
//!   file descriptor 2 (libtest's capture swallows `eprintln!` of passing tests, which made
//!   skips invisible and uncountable) and returns; with `KNOCKWRAP_REQUIRE_PRIVILEGED=1` (set
//!   by CI) it fails instead. The macro takes the test's name from the function it expands
//!   in, so no hand-typed name can drift from the test's.
//! - [`Rng`]: a small seeded generator (xorshift64*), for reproducible random tests.
//! - [`frames`]: Ethernet/IPv4/IPv6/TCP/UDP frames with any source address and any flags,
//!   written onto an interface with an AF_PACKET socket: what an attacker on the link sends.
//! - [`swap`]: a directory swapped for a symlink under a paused writer, and the contents of a
//!   directory to compare before and after: what an attacker racing root's write does.
//! - [`net`]: network namespaces and the veth pair between a server and a client side, with
//!   the test addresses only (198.18.0.0/15, fd00:4b57::/64), deleted on drop.
//! - [`process`]: background processes owned by a test, stopped and reaped on drop.
//! - [`server`], [`client`], [`probe`], [`knockd`]: the real parts around the daemon: a private
//!   `/etc` and sshd on the server side, a private `/etc/hosts` and ssh on the client side, SSH
//!   banner and tcpdmatch probes, and the real knockd as the baseline.
//! - [`daemon`] and [`rig`]: knockwrap's daemon under test (config, sd_notify readiness, log)
//!   and the [`rig::Rig`] most end-to-end tests start from ([`rig::Rig::builder`]).
//! - [`packets`]: crafted IPv4/IPv6 packets through raw sockets.
//! - [`doors`]: a one-time and a TOTP door on real files, for the configuration's and the
//!   progress store's tests.
//! - [`container`]: a real systemd as PID 1 in systemd-nspawn, in the server namespace, for
//!   the tests of the shipped units.
//!
//! The binary under test: `env!("CARGO_BIN_EXE_knockwrap")` exists only while cargo compiles
//! the root package's integration tests, not this crate, so [`daemon::knockwrap_bin`] finds it
//! at run time beside the test executable: cargo puts integration tests in
//! `target/<profile>/deps/` and the binary in `target/<profile>/` (and builds it before it runs
//! them). `KNOCKWRAP_BIN` overrides it (to run a suite against an earlier build).

pub mod client;
pub mod container;
pub mod daemon;
pub mod doors;
pub mod frames;
pub mod knockd;
pub mod net;
pub mod packets;
pub mod probe;
pub mod process;
pub mod rig;
pub mod server;
pub mod swap;

use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use daemon::{knockwrap_bin, Daemon, DaemonConfig, Door};
pub use knockd::Knockd;
pub use net::{NetPair, Netns};
pub use packets::RawV4;
pub use probe::{ssh_banner, tcpdmatch_verdict, Verdict};
pub use process::{run_ok, Proc};
pub use rig::Rig;
pub use server::{ServerRoot, Sshd};

/// The line `tests/run-all.sh` counts.
pub const SKIP_MARK: &str = "SKIPPED (needs ";

/// True when the test may go on: the process is root. Otherwise prints a SKIPPED line to fd 2
/// and returns false, or panics when `KNOCKWRAP_REQUIRE_PRIVILEGED=1`.
#[track_caller]
pub fn require_root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip_or_fail(test, "root")
}

/// The skip-or-fail rule for any missing prerequisite `what` (root, a tool, a kernel feature).
#[track_caller]
pub fn skip_or_fail(test: &str, what: &str) -> bool {
    if std::env::var("KNOCKWRAP_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test} needs {what} and KNOCKWRAP_REQUIRE_PRIVILEGED=1 forbids skipping it");
    }
    // Straight to fd 2: libtest captures only the print macros.
    let _ = writeln!(std::io::stderr().lock(), "{SKIP_MARK}{what}): {test}");
    false
}

/// The name of the function this expands in, as libtest names a test: the path without the
/// crate's name (`e2e::some_test` gives `some_test`, a test in `mod v6` gives `v6::some_test`).
#[macro_export]
macro_rules! test_name {
    () => {{
        fn here() {}
        $crate::fn_path_to_test_name(::std::any::type_name_of_val(&here))
    }};
}

/// Returns from the calling test unless it runs as root (and finds each of the programs given
/// on `PATH`), under the skip-or-fail rule ([`require_root_or_skip`], [`require_tool_or_skip`]),
/// with the test's own name ([`test_name!`]):
///
/// ```ignore
/// test_support::skip_unless_root!();
/// test_support::skip_unless_root!("ip", "nft");
/// ```
#[macro_export]
macro_rules! skip_unless_root {
    ($($tool:expr),* $(,)?) => {
        if !$crate::require_root_or_skip($crate::test_name!()) {
            return;
        }
        $(
            if !$crate::require_tool_or_skip($crate::test_name!(), $tool) {
                return;
            }
        )*
    };
}

/// Turns `type_name` of a function item nested in a test (`crate::path::test::here`, with
/// `{{closure}}` segments when used in a closure) into the test's name as libtest prints it.
#[doc(hidden)]
pub fn fn_path_to_test_name(path: &'static str) -> &'static str {
    let mut path = path.strip_suffix("::here").unwrap_or(path);
    while let Some(outer) = path.strip_suffix("::{{closure}}") {
        path = outer;
    }
    path.split_once("::").map_or(path, |(_crate, rest)| rest)
}

/// True when `program` is an executable file in a directory of `PATH` (or a path to one).
pub fn have_program(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runs = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return runs(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| runs(&dir.join(program))))
}

/// True when `program` is on `PATH`; otherwise the skip-or-fail rule with the program as
/// what is missing.
#[track_caller]
pub fn require_tool_or_skip(test: &str, program: &str) -> bool {
    have_program(program) || skip_or_fail(test, program)
}

/// For a fixture that lives outside the repository (the shared knockd.conf corpus beside a
/// checkout): a clean clone may not have it, so its absence is reported loudly and skipped,
/// never failed, whatever `KNOCKWRAP_REQUIRE_PRIVILEGED` says. Returns false (skip).
pub fn skip_missing_fixture(test: &str, what: &str) -> bool {
    let _ = writeln!(std::io::stderr().lock(), "{SKIP_MARK}{what}): {test}");
    false
}

/// The `.conf` files of the shared knockd.conf corpus beside the checkout
/// (`../shared/corpus/knockd-conf`), sorted, read in place; `None` (reported as a skip by
/// [`skip_missing_fixture`]) when a clean clone lacks it.
pub fn knockd_corpus(test: &str) -> Option<Vec<std::path::PathBuf>> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/knockd-conf");
    if !corpus.is_dir() {
        skip_missing_fixture(test, "the corpus ../shared/corpus/knockd-conf");
        return None;
    }
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()))
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .conf file in {}", corpus.display());
    Some(files)
}

/// xorshift64* with a fixed seed: the same sequence on every run, for tests and benches.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    pub fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_seeded_and_spread() {
        let a: Vec<u64> = (0..4)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        let mut r = Rng::new(1);
        let mut hist = [0u32; 8];
        for _ in 0..8000 {
            hist[r.below(8) as usize] += 1;
        }
        assert!(hist.iter().all(|&h| (800..1200).contains(&h)), "{hist:?}");
    }

    #[test]
    fn test_name_is_the_function_as_libtest_names_it() {
        assert_eq!(
            crate::test_name!(),
            "tests::test_name_is_the_function_as_libtest_names_it"
        );
        let in_closure = || crate::test_name!();
        assert_eq!(
            in_closure(),
            "tests::test_name_is_the_function_as_libtest_names_it"
        );
        assert_eq!(fn_path_to_test_name("e2e::some_test::here"), "some_test");
    }

    #[test]
    fn programs_are_found_on_the_path() {
        assert!(have_program("sh"));
        assert!(!have_program("no-such-program-for-knockwrap-tests"));
    }
}
