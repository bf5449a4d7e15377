//! Bounded refusal logging. A flood of spoofed or impossible knocks must not fill the disk or
//! stall the loop on a slow syslog: refusals (impossible source, link-local source on a door
//! that does not take them, progress that cannot be persisted) are counted per (reason, door)
//! and written as one summary line per pair per [`INTERVAL_MS`], with the first and the last
//! address seen. Grants and revokes are still logged one by one elsewhere.

use std::collections::BTreeMap;
use std::net::IpAddr;

use tracing::warn;

/// Length of one summary interval (event-clock ms).
pub const INTERVAL_MS: u64 = 10_000;

/// One warning line per [`INTERVAL_MS`] at most, for a condition that may repeat at line rate
/// (a held lock, a refused child message, a stale knock).
#[derive(Clone, Copy, Debug, Default)]
pub struct Throttle {
    last: Option<u64>,
}

impl Throttle {
    /// True (and the interval restarts) when the line may be written at event-clock `now`.
    pub fn due(&mut self, now: u64) -> bool {
        let due = self
            .last
            .is_none_or(|t| now.saturating_sub(t) >= INTERVAL_MS);
        if due {
            self.last = Some(now);
        }
        due
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub reason: &'static str,
    pub door: String,
    pub count: u64,
    pub first: IpAddr,
    pub last: IpAddr,
}

#[derive(Default)]
pub struct Refusals {
    since: Option<u64>,
    pending: BTreeMap<(&'static str, String), Summary>,
    /// Every refusal since start, by reason (for `knockwrap status` and metrics).
    pub totals: BTreeMap<&'static str, u64>,
}

impl Refusals {
    /// Counts one refusal at event-clock time `now`.
    pub fn note(&mut self, now: u64, reason: &'static str, door: &str, addr: IpAddr) {
        *self.totals.entry(reason).or_default() += 1;
        self.since.get_or_insert(now);
        self.pending
            .entry((reason, door.to_string()))
            .and_modify(|s| {
                s.count += 1;
                s.last = addr;
            })
            .or_insert_with(|| Summary {
                reason,
                door: door.to_string(),
                count: 1,
                first: addr,
                last: addr,
            });
    }

    /// The summaries due at `now` (the interval since the first pending refusal is over), or
    /// all of them with `force` (at shutdown).
    pub fn due(&mut self, now: u64, force: bool) -> Vec<Summary> {
        match self.since {
            Some(t) if force || now.saturating_sub(t) >= INTERVAL_MS => {
                self.since = None;
                std::mem::take(&mut self.pending).into_values().collect()
            }
            _ => Vec::new(),
        }
    }

    /// Writes the due summaries, one line each.
    pub fn flush(&mut self, now: u64, force: bool) {
        for s in self.due(now, force) {
            warn!(
                reason = s.reason, door = %s.door, count = s.count, first = %s.first,
                last = %s.last, interval_s = INTERVAL_MS / 1000, "refused knocks"
            );
        }
    }

    /// When the next summary is due, if any is pending.
    pub fn deadline(&self) -> Option<u64> {
        self.since.map(|t| t + INTERVAL_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_line_through_per_interval() {
        let mut t = Throttle::default();
        assert!(t.due(5));
        assert!(!t.due(5));
        assert!(!t.due(5 + INTERVAL_MS - 1));
        assert!(t.due(5 + INTERVAL_MS));
        assert!(!t.due(6 + INTERVAL_MS));
    }

    #[test]
    fn one_line_per_reason_and_door_per_interval() {
        let mut r = Refusals::default();
        let a: IpAddr = "224.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        for i in 0..5_000u64 {
            r.note(1_000 + i, "multicast source", "ssh", a);
            r.note(1_000 + i, "loopback source", "ssh", b);
        }
        r.note(2_000, "multicast source", "other", a);
        assert!(r.due(10_999, false).is_empty());
        assert_eq!(r.deadline(), Some(11_000));
        let out = r.due(11_000, false);
        assert_eq!(out.len(), 3);
        assert_eq!(out.iter().map(|s| s.count).sum::<u64>(), 10_001);
        assert!(r.due(30_000, false).is_empty() && r.deadline().is_none());
        r.note(40_000, "x", "d", a);
        assert_eq!(r.due(40_001, true).len(), 1);
    }
}
