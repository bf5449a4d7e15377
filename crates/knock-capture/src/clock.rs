//! Frame times on the event clock: milliseconds of CLOCK_BOOTTIME ([`clock::boot_ms`]), which
//! never jumps (settimeofday, NTP steps and a wrong RTC at boot move the wall clock, not this
//! one) and keeps counting through a suspend. Every knock event is stamped with it, so sequence
//! timeouts and retransmit windows are immune to wall-clock jumps; the daemon measures lease
//! time with it too. The kernel stamps frames on the wall clock: this module turns such a
//! stamp into event-clock time. Reading either clock is the `clock` crate's.

/// Longest a frame is believed to have waited in the socket queue. A larger apparent age
/// means the wall clock jumped between the kernel's stamp and the read.
pub const MAX_QUEUE_AGE_MS: u64 = 10_000;

/// The event-clock time of a frame the kernel stamped at wall time `stamp` (its receive
/// timestamp, which is wall-clock), read at `wall_now` / `boot_now`: the frame's age in the
/// queue is kept (a reader busy under load must not make honest knocks look late), its
/// absolute wall time is not. An age below 0 or above [`MAX_QUEUE_AGE_MS`] means the wall
/// clock moved between stamp and read (or the stamp is from another clock): the read time
/// is used.
pub fn from_wall_stamp(stamp: u64, wall_now: u64, boot_now: u64) -> u64 {
    match wall_now.checked_sub(stamp) {
        Some(age) if age <= MAX_QUEUE_AGE_MS => boot_now.saturating_sub(age),
        _ => boot_now,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_age_survives_and_jumps_do_not() {
        use super::from_wall_stamp;
        assert_eq!(from_wall_stamp(1_000_000, 1_000_250, 50_000), 49_750);
        // Stamp "in the future" (the wall clock went back after the stamp): age 0.
        assert_eq!(from_wall_stamp(2_000_000, 1_000_000, 50_000), 50_000);
        // The wall clock jumped an hour ahead after the stamp: the read time.
        assert_eq!(from_wall_stamp(1_000_000, 4_600_000, 50_000), 50_000);
        assert_eq!(from_wall_stamp(1_000_000, 1_010_000, 50_000), 40_000);
    }
}
