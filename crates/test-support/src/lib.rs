//! The harness every privileged test shares, so that its rules live in one place:
//!
//! - [`require_root_or_skip`]: the skip-or-fail rule. Without root a privileged test prints
//!   `SKIPPED (needs root): <test>` straight to file descriptor 2 (libtest's capture swallows
//!   `eprintln!` of passing tests, which made skips invisible and uncountable) and returns
//!   false; with `KNOCKWRAP_REQUIRE_PRIVILEGED=1` (set by CI) it fails instead.
//! - [`Rng`]: a small seeded generator (xorshift64*), for reproducible random tests.
//! - [`frames`]: Ethernet/IPv4/IPv6/TCP/UDP frames with any source address and any flags,
//!   written onto an interface with an AF_PACKET socket: what an attacker on the link sends.
//! - [`swap`]: a directory swapped for a symlink under a paused writer, and the contents of a
//!   directory to compare before and after: what an attacker racing root's write does.

pub mod frames;
pub mod swap;

use std::io::Write;

/// The line `tests/run-all.sh` counts.
pub const SKIP_MARK: &str = "SKIPPED (needs ";

/// True when the test may go on: the process is root. Otherwise prints a SKIPPED line to fd 2
/// and returns false, or panics when `KNOCKWRAP_REQUIRE_PRIVILEGED=1`.
pub fn require_root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip_or_fail(test, "root")
}

/// The skip-or-fail rule for any missing prerequisite `what` (root, a tool, a kernel feature).
pub fn skip_or_fail(test: &str, what: &str) -> bool {
    if std::env::var("KNOCKWRAP_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test} needs {what} and KNOCKWRAP_REQUIRE_PRIVILEGED=1 forbids skipping it");
    }
    // Straight to fd 2: libtest captures only the print macros.
    let _ = writeln!(std::io::stderr().lock(), "{SKIP_MARK}{what}): {test}");
    false
}

/// For a fixture that lives outside the repository (the shared knockd.conf corpus beside a
/// checkout): a clean clone may not have it, so its absence is reported loudly and skipped,
/// never failed, whatever `KNOCKWRAP_REQUIRE_PRIVILEGED` says. Returns false (skip).
pub fn skip_missing_fixture(test: &str, what: &str) -> bool {
    let _ = writeln!(std::io::stderr().lock(), "{SKIP_MARK}{what}): {test}");
    false
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
}
