//! The daemon's clocks. Knock timing and lease time run on the event clock (CLOCK_BOOTTIME,
//! [`::clock::boot_ms`]), which never jumps. Wall-clock time is needed for two
//! things only: TOTP, and the lease journal's expiries (so a restart knows when a lease ends).
//! Both read it through the anchor kept here: wall = anchor_wall + (boot - anchor_boot). When
//! the real wall clock departs from that by more than [`JUMP_MS`] (settimeofday, an NTP step,
//! a wrong RTC corrected after boot), [`Clock::check_jump`] re-anchors and reports the jump so
//! the daemon can move the journal's expiries with it: a jump neither extends nor cuts a
//! lease, and TOTP follows the new wall time.

use ::clock::{boot_ms, wall_ms};

/// Departures smaller than this are drift (NTP slewing), not jumps.
pub const JUMP_MS: i64 = 1_000;

/// Wall-clock time derived from the event clock, re-anchored on jumps.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    boot: u64,
    wall: u64,
}

impl Clock {
    pub fn new() -> Clock {
        Clock::at(boot_ms(), wall_ms())
    }

    fn at(boot: u64, wall: u64) -> Clock {
        Clock { boot, wall }
    }

    /// The event clock now (ms).
    pub fn boot_ms(&self) -> u64 {
        boot_ms()
    }

    /// Wall-clock ms at event-clock time `boot`.
    pub fn wall_at(&self, boot: u64) -> u64 {
        (i128::from(self.wall) + i128::from(boot) - i128::from(self.boot)).max(0) as u64
    }

    /// Wall minus event clock, for [`knock_match::Matcher::set_wall_offset`].
    pub fn wall_offset(&self) -> i64 {
        (i128::from(self.wall) - i128::from(self.boot)) as i64
    }

    /// Compares with the real wall clock; on a jump, re-anchors and returns it (ms, positive
    /// when the wall clock moved forward).
    pub fn check_jump(&mut self) -> Option<i64> {
        self.check_jump_at(boot_ms(), wall_ms())
    }

    fn check_jump_at(&mut self, boot: u64, real_wall: u64) -> Option<i64> {
        let delta = (i128::from(real_wall) - i128::from(self.wall_at(boot))) as i64;
        if delta.abs() <= JUMP_MS {
            return None;
        }
        *self = Clock::at(boot, real_wall);
        Some(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_event_clock_and_reports_jumps() {
        let mut c = Clock::at(1_000, 1_700_000_000_000);
        assert_eq!(c.wall_at(1_500), 1_700_000_000_500);
        assert_eq!(c.check_jump_at(2_000, 1_700_000_001_400), None, "drift");
        assert_eq!(c.wall_at(2_000), 1_700_000_001_000);
        // The wall clock is set an hour ahead.
        assert_eq!(c.check_jump_at(3_000, 1_700_003_602_000), Some(3_600_000));
        assert_eq!(c.wall_at(4_000), 1_700_003_603_000);
        // And back two hours.
        assert_eq!(c.check_jump_at(4_000, 1_699_996_403_000), Some(-7_200_000));
        assert_eq!(c.wall_offset(), 1_699_996_403_000 - 4_000);
    }
}
