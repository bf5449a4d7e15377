//! Apply: the decisions of one drain handed to the state owner. One-time/TOTP progress is
//! made durable first; consecutive grants go as one batch (one journal write, one hosts.allow
//! edit, the firewall door's elements) within the lease bounds, revokes in their place; a
//! grant that finds hosts.allow locked waits (bounded) and is retried each loop turn. Sink
//! failures are reported, never half-silent.

use knock_match::{Action, Consume, Decision};
use tracing::{error, info, warn};

use super::bounds;
use super::judge::Judged;
use super::Daemon;
use hosts_writer::state::{Applied, Grant};

impl Daemon {
    /// Applies the decisions of one drain: progress first (each one-time/TOTP decision), then
    /// consecutive grants as one transaction (one journal write, one hosts.allow edit), revokes
    /// in their place. Per-grant work is bounded: a burst of thousands of grants costs two
    /// writes, not thousands.
    pub(super) fn apply_pending(&mut self) {
        self.judge.commit();
        let decisions = std::mem::take(&mut self.pending);
        self.status.dirty |= !decisions.is_empty();
        let mut batch: Vec<Grant> = Vec::new();
        for judged in decisions {
            if !self.record_progress(&judged) {
                continue;
            }
            let d = judged.decision;
            // What the grant opens is the door's configuration: the hosts.allow line unless
            // `hosts_allow = false`, and its `open_ports` in the firewall.
            let door = self.config.door(&d.door_name);
            match d.action {
                Action::Allow => batch.push(Grant {
                    line: door.is_none_or(|c| c.hosts_allow),
                    ports: door.map(|c| c.open_ports.clone()).unwrap_or_default(),
                    door: d.door_name,
                    service: d.service,
                    addr: d.addr,
                    lease: d.lease,
                    wall_ms: self.clock.wall_at(d.time_ms),
                }),
                Action::Revoke => {
                    self.grant_batch(std::mem::take(&mut batch));
                    self.revoke(&d);
                }
            }
        }
        self.grant_batch(batch);
        // Decisions no longer need the generations the child has left behind.
        self.judge.prune();
    }

    /// Durable before acting: a used one-time or TOTP sequence must never work twice, even
    /// after a crash. False when the decision must be dropped. The progress written is that of
    /// the door that judged the knock, in that door's own file.
    pub(super) fn record_progress(&mut self, judged: &Judged) -> bool {
        let d = &judged.decision;
        let Some(consume) = d.consume else {
            return true;
        };
        let recorded = match self.judge.door(judged.generation, d.door) {
            Some(door) if door.name == d.door_name => self
                .progress
                .record(door, &consume)
                .map_err(|e| e.to_string()),
            _ => Err(format!(
                "door `{}` of setup generation {} not found",
                d.door_name, judged.generation
            )),
        };
        if let Err(e) = recorded {
            error!(door = %d.door_name, addr = %d.addr, error = %e,
                "refused: cannot persist one-time/TOTP progress");
            return false;
        }
        if let Consume::OneTime { remaining: 0, .. } = consume {
            error!(door = %d.door_name, "one-time sequences exhausted: door disabled");
        }
        true
    }

    pub(super) fn grant_batch(&mut self, batch: Vec<Grant>) {
        if batch.is_empty() {
            return;
        }
        let leases = self.grants.leases();
        let (batch, refused) = bounds::within_leases(
            batch,
            || leases.iter().map(|l| (l.ip, l.service.as_str())).collect(),
            leases.len(),
            self.config.max_leases,
        );
        let now = self.clock.boot_ms();
        for g in &refused {
            self.refusals
                .note(now, bounds::LEASES_FULL, &g.door, g.addr);
        }
        if batch.is_empty() {
            return;
        }
        match self.grants.grant_all(&batch) {
            Err(e) if e.lock_busy().is_some() => {
                let now = self.clock.boot_ms();
                if self.lock_log.due(now) {
                    let lock = e.lock_busy().map(|p| p.to_path_buf()).unwrap_or_default();
                    let holder = hosts_writer::holder_pid(&lock)
                        .map_or_else(|| "unknown".to_owned(), |p| p.to_string());
                    warn!(
                        lock = %lock.display(), holder_pid = %holder,
                        waiting = batch.len() + self.deferred.len(),
                        "hosts.allow is locked by another process; grants wait and are retried, knocks and expiry go on"
                    );
                }
                for g in bounds::wait(&mut self.deferred, batch, self.config.max_waiting_grants) {
                    self.refusals
                        .note(now, bounds::WAITING_FULL, &g.door, g.addr);
                }
            }
            Ok(results) => {
                for (g, applied) in batch.iter().zip(results) {
                    self.status.stats.grants += 1;
                    match applied {
                        Applied::Granted { changed } => info!(
                            door = %g.door, addr = %g.addr, service = %g.service,
                            lease_s = g.lease.map(|l| l.as_secs()), already_present = !changed,
                            "grant"
                        ),
                        Applied::NotEffective { decided_by, .. } => error!(
                            door = %g.door, addr = %g.addr, service = %g.service,
                            decided_by = %decided_by,
                            "grant written but libwrap would NOT honour it"
                        ),
                        Applied::Admitted => info!(
                            door = %g.door, addr = %g.addr, service = %g.service,
                            lease_s = g.lease.map(|l| l.as_secs()),
                            ports = %knock_match::PortSpec::join(&g.ports, ","),
                            "grant: admitted through the firewall"
                        ),
                        other => {
                            warn!(door = %g.door, addr = %g.addr, outcome = ?other, "grant")
                        }
                    }
                }
            }
            Err(e) => {
                self.status.stats.write_failures += 1;
                self.status.last_error = Some(format!("grant: {e}"));
                for g in &batch {
                    error!(
                        door = %g.door, addr = %g.addr, service = %g.service, error = %e,
                        "grant failed"
                    );
                }
            }
        }
    }

    /// A sink (the firewall door) that failed inside a grant, revoke or expiry: never
    /// half-silent. The journal and hosts.allow are as reported; the kernel's timeout still
    /// ends an admission on time.
    pub(super) fn report_sink_errors(&mut self) {
        for e in self.grants.take_sink_errors() {
            self.status.stats.write_failures += 1;
            error!(error = %e, "the firewall door could not follow a grant, revoke or expiry");
            self.status.last_error = Some(e);
            self.status.dirty = true;
        }
    }

    pub(super) fn revoke(&mut self, d: &Decision) {
        match self.grants.revoke(&d.service, d.addr) {
            Ok(Applied::Kept) => warn!(
                door = %d.door_name, addr = %d.addr, service = %d.service,
                "revoke refused: the line was not added by knockwrap"
            ),
            Ok(Applied::Revoked { changed }) => {
                self.status.stats.revokes += 1;
                info!(
                    door = %d.door_name, addr = %d.addr, service = %d.service,
                    was_present = changed, "revoke"
                )
            }
            Ok(other) => warn!(door = %d.door_name, addr = %d.addr, outcome = ?other, "revoke"),
            Err(e) => {
                self.status.stats.write_failures += 1;
                self.status.last_error = Some(format!("revoke: {e}"));
                error!(
                    door = %d.door_name, addr = %d.addr, service = %d.service, error = %e,
                    "revoke failed"
                )
            }
        }
    }
}
