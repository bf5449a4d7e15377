//! What the daemon publishes for `knockwrap status` and metrics: its doors, leases and
//! counters, gathered from the matcher, the state owner and its own counts, written every few
//! seconds and after every change (`crate::status` owns the format).

use knock_match::DoorKind;
use tracing::warn;

use super::Daemon;
use crate::status::{DoorStatus, InterfaceStatus, LeaseStatus, Snapshot};

/// What `knockwrap status` and the metrics show that only the parent counts, and when it was
/// last published.
pub(super) struct Published {
    /// Wall-clock seconds at start.
    pub(super) started_at: u64,
    pub(super) stats: crate::status::Counters,
    pub(super) last_error: Option<String>,
    pub(super) published_at: Option<u64>,
    /// Something changed since the last publication.
    pub(super) dirty: bool,
}

impl Daemon {
    /// Writes the snapshot (and the metrics file); a failure is logged, never fatal.
    pub(super) fn publish(&mut self, now: u64) {
        let first = self.status.published_at.is_none();
        self.status.published_at = Some(now);
        self.status.dirty = false;
        let s = self.snapshot(now);
        let metrics = self.config.metrics_file.clone();
        if let Err(e) = crate::status::publish(&self.config.state_dir, metrics.as_deref(), &s) {
            // At most every 5 s (the publishing interval); the first time for sure.
            if first || self.status.last_error.as_deref() != Some(&e) {
                warn!(error = %e, "cannot publish the status snapshot");
            }
            self.status.last_error = Some(e);
        }
    }

    fn snapshot(&self, now: u64) -> Snapshot {
        let wall_ms = self.clock.wall_at(now);
        let wall = wall_ms / 1000;
        let current = self.judge.current();
        let exhausted: Vec<&str> = current
            .doors
            .iter()
            .filter(|d| matches!(&d.kind, DoorKind::OneTime { sequences, next } if *next >= sequences.len()))
            .map(|d| d.name.as_str())
            .collect();
        let doors = current
            .doors
            .iter()
            .map(|d| {
                let disabled = current
                    .disabled
                    .iter()
                    .find(|(name, _)| *name == d.name)
                    .map(|(_, why)| why.clone())
                    .or_else(|| {
                        exhausted
                            .contains(&d.name.as_str())
                            .then(|| "one-time sequences exhausted".to_owned())
                    });
                let (kind, one_time_left, totp_step) = match &d.kind {
                    DoorKind::Static { .. } => ("static", None, None),
                    DoorKind::OneTime { sequences, next } => (
                        "one-time",
                        Some(sequences.len().saturating_sub(*next)),
                        None,
                    ),
                    DoorKind::Totp(p) => {
                        let step = p.step.as_millis().max(1) as u64;
                        ("totp", None, Some(knock_match::totp_counter(wall_ms, step)))
                    }
                };
                DoorStatus {
                    name: d.name.clone(),
                    kind: kind.into(),
                    state: if disabled.is_some() {
                        "disabled"
                    } else {
                        "active"
                    }
                    .into(),
                    why: disabled,
                    one_time_left,
                    totp_step,
                }
            })
            .collect();
        let leases = self
            .grants
            .leases()
            .iter()
            .filter(|l| l.expires_at.is_none_or(|t| t > wall))
            .map(|l| LeaseStatus {
                ip: l.ip.to_string(),
                service: l.service.clone(),
                door: l.door.clone(),
                expires_at: l.expires_at,
                seconds_left: l.expires_at.map(|t| t.saturating_sub(wall)),
                ports: l.ports.iter().map(|p| p.to_string()).collect(),
            })
            .collect();
        let m = &self.child_stats;
        let mut counters = self.status.stats.clone();
        counters.packets = m.packets;
        counters.evictions = m.evictions;
        counters.resets = m.resets;
        counters.timeouts = m.timeouts;
        counters.refused = self
            .refusals
            .totals
            .iter()
            .map(|(r, n)| ((*r).to_owned(), *n))
            .collect();
        for (r, n) in &m.refused {
            *counters.refused.entry(r.as_str().to_owned()).or_default() += n;
        }
        Snapshot {
            pid: std::process::id(),
            capture_pid: self.sup.child.as_ref().map(|c| c.pid as u32),
            started_at: self.status.started_at,
            updated_at: wall,
            config: self.config_path.display().to_string(),
            hosts_allow: self.config.hosts_allow.display().to_string(),
            interfaces: current
                .interfaces
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let (received, dropped) = m.interfaces.get(i).copied().unwrap_or_default();
                    InterfaceStatus {
                        name: name.clone(),
                        received,
                        dropped,
                    }
                })
                .collect(),
            doors,
            leases,
            counters,
            last_error: self.status.last_error.clone(),
        }
    }
}
