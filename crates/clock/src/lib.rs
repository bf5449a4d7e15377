//! What time it is, in one place: the wall clock and the event clock, both in milliseconds.
//! Every knockwrap crate that reads the time reads it here (the capture stamping knocks, the
//! hosts.allow writer's leases, the daemon, the client's TOTP), so there is one definition of
//! each clock and of its edge cases.
//!
//! - [`wall_ms`]: milliseconds since the Unix epoch, as set on the machine: TOTP, lease
//!   expiries written to disk, timestamps shown to people. It can jump (settimeofday, an NTP
//!   step, a wrong RTC corrected after boot). Read through the C library on every call, never
//!   cached, so a clock moved under a test (libfaketime preloaded into the real process) is
//!   seen as it moves.
//! - [`boot_ms`]: milliseconds of CLOCK_BOOTTIME, which never jumps and keeps counting
//!   through a suspend: knock timing and lease time run on it.
//!
//! A crate of its own because its users share no other crate that would own it sensibly:
//! knock-capture (the lowest user) depends only on the pure matcher, and the matcher, the
//! wire format and the file-update crate have no business reading clocks. It depends on
//! rustix alone, which every user already has.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it; saturating far
/// in the future).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since boot (CLOCK_BOOTTIME).
pub fn boot_ms() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(1000)
        .saturating_add(ts.tv_nsec.max(0) as u64 / 1_000_000)
}

/// Does the one-time setup of [`boot_ms`] now. rustix reads the clock through the vDSO, which
/// it finds on first use from the auxiliary vector, read with prctl(PR_GET_AUXV): a process
/// about to install a seccomp filter that does not allow that prctl calls this first, so that
/// reading the clock later makes no call outside its list (without the vDSO, clock_gettime(2)
/// itself, which such a list allows).
pub fn prepare() {
    let _ = boot_ms();
}

#[cfg(test)]
mod tests {
    #[test]
    fn boot_never_goes_back() {
        let a = super::boot_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = super::boot_ms();
        assert!(a > 0 && b >= a + 4, "{a} {b}");
    }

    #[test]
    fn wall_is_after_2020() {
        // 2020-01-01T00:00:00Z: a clock before that is unset, not the epoch arithmetic.
        assert!(super::wall_ms() > 1_577_836_800_000);
    }
}
