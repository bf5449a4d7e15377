//! The bound on log lines from the capture child. A taken-over child can send a `Log` message
//! as fast as the parent reads them; each would be a line in the journal or the log file. At
//! most [`PER_SECOND`] lines are written per second of the event clock; the rest are counted
//! (`knockwrap status`: `child_log_dropped`, metrics: `knockwrap_capture_log_lines_dropped_total`)
//! and summarised in one line per [`SUMMARY_MS`].

use tracing::warn;

/// Most lines from the child written per second. An honest child writes a few lines at
/// start-up and on reloads, refusal summaries every 10 s and the odd capture warning.
pub const PER_SECOND: u32 = 100;
/// Length of one summary interval (event-clock ms).
pub const SUMMARY_MS: u64 = 10_000;

#[derive(Debug, Default)]
pub struct ChildLogs {
    /// Start of the current one-second window, and the lines written in it.
    window: Option<(u64, u32)>,
    /// Lines dropped since the last summary, and when the first of them was.
    pending: Option<(u64, u64)>,
    /// Lines dropped since start.
    pub dropped: u64,
}

impl ChildLogs {
    /// Whether a line arriving at `now` may be written; counts it when not.
    pub fn admit(&mut self, now: u64) -> bool {
        let (start, n) = match self.window {
            Some((start, n)) if now.saturating_sub(start) < 1_000 => (start, n),
            _ => (now, 0),
        };
        if n < PER_SECOND {
            self.window = Some((start, n + 1));
            return true;
        }
        self.window = Some((start, n));
        self.dropped += 1;
        self.pending.get_or_insert((now, 0)).1 += 1;
        false
    }

    /// The summary due at `now` (the interval since the first drop is over), or any pending
    /// one with `force` (at shutdown): how many lines were dropped.
    pub fn due(&mut self, now: u64, force: bool) -> Option<u64> {
        match self.pending {
            Some((since, count)) if force || now.saturating_sub(since) >= SUMMARY_MS => {
                self.pending = None;
                Some(count)
            }
            _ => None,
        }
    }

    /// Writes the due summary, one line.
    pub fn flush(&mut self, now: u64, force: bool) {
        if let Some(count) = self.due(now, force) {
            warn!(
                dropped = count,
                per_second = PER_SECOND,
                interval_s = SUMMARY_MS / 1000,
                "log lines from the capture process dropped: it sent more than it may"
            );
        }
    }

    /// When the next summary is due, if lines were dropped.
    pub fn deadline(&self) -> Option<u64> {
        self.pending.map(|(since, _)| since + SUMMARY_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_bound_and_summarised_once_per_interval() {
        let mut l = ChildLogs::default();
        let written = (0..5_000).filter(|_| l.admit(1_000)).count();
        assert_eq!(written, PER_SECOND as usize);
        assert_eq!(l.dropped, 5_000 - u64::from(PER_SECOND));
        // The next second has room again.
        assert!(l.admit(2_000));
        assert_eq!(l.deadline(), Some(11_000));
        assert_eq!(l.due(10_999, false), None);
        assert_eq!(l.due(11_000, false), Some(5_000 - u64::from(PER_SECOND)));
        assert_eq!(l.due(30_000, false), None);
        assert_eq!(l.deadline(), None);
        // A quiet child is never summarised; a forced flush gives what is pending.
        let mut quiet = ChildLogs::default();
        assert!((0..50).all(|i| quiet.admit(i * 100)));
        assert_eq!(quiet.due(1_000_000, true), None);
        let admitted = (0..=PER_SECOND).filter(|_| l.admit(40_000)).count();
        assert_eq!(admitted, PER_SECOND as usize);
        assert_eq!(l.due(40_001, true), Some(1));
    }
}
