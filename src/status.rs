//! The running daemon's published state, the one format the daemon writes and `knockwrap
//! status` reads: `state_dir/status.json` (private, replaced atomically every few seconds and
//! after every change), and the same counters in the Prometheus text format for
//! node_exporter's textfile collector when `metrics_file` is set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the snapshot in `state_dir`.
pub const FILE_NAME: &str = "status.json";
/// A snapshot older than this (seconds) means the daemon is stuck or gone.
pub const STALE_AFTER_S: u64 = 15;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub pid: u32,
    /// The capture process (unprivileged, sandboxed), when one runs.
    #[serde(default)]
    pub capture_pid: Option<u32>,
    /// Unix seconds.
    pub started_at: u64,
    pub updated_at: u64,
    pub config: String,
    pub hosts_allow: String,
    pub interfaces: Vec<InterfaceStatus>,
    pub doors: Vec<DoorStatus>,
    pub leases: Vec<LeaseStatus>,
    pub counters: Counters,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStatus {
    pub name: String,
    /// The kernel's counters since the daemon started: frames that passed the filter, and
    /// those it dropped because the receive queue or ring was full.
    pub received: u64,
    pub dropped: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorStatus {
    pub name: String,
    /// `static`, `one-time` or `totp`.
    pub kind: String,
    /// `active` or `disabled`.
    pub state: String,
    pub why: Option<String>,
    pub one_time_left: Option<usize>,
    /// The TOTP step counter now.
    pub totp_step: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStatus {
    pub ip: String,
    pub service: String,
    pub door: String,
    pub expires_at: Option<u64>,
    pub seconds_left: Option<u64>,
    /// Firewall ports the lease admits its address to (`22/tcp`); the kernel ends each
    /// admission when `seconds_left` runs out, daemon or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Packets that reached the matcher (after the destination and source checks).
    pub packets: u64,
    pub grants: u64,
    pub revokes: u64,
    pub expiries: u64,
    /// Refused packets and decisions, by reason.
    pub refused: BTreeMap<String, u64>,
    pub evictions: u64,
    pub resets: u64,
    pub timeouts: u64,
    pub write_failures: u64,
    /// Capture processes replaced (died, or sent a message the parent refused).
    #[serde(default)]
    pub child_restarts: u64,
    /// Messages from the capture process the parent refused.
    #[serde(default)]
    pub refused_messages: u64,
    /// Log lines from the capture process not written: over the bound (`daemon::child_log`).
    #[serde(default)]
    pub child_log_dropped: u64,
    /// Knocks dropped because they were matched against a configuration reloaded since, of
    /// which the parent no longer kept the doors.
    #[serde(default)]
    pub stale_knocks: u64,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Writes the snapshot (0600, atomically), and the metrics file when given. Without fsync:
/// both are rewritten every few seconds, and a grant must not wait for them.
pub fn publish(state_dir: &Path, metrics: Option<&Path>, s: &Snapshot) -> Result<(), String> {
    let mut body = serde_json::to_vec_pretty(s).map_err(|e| e.to_string())?;
    body.push(b'\n');
    let shared = atomic_files::Options {
        durable: false,
        ..atomic_files::Options::default()
    };
    let private = atomic_files::Options {
        private: true,
        ..shared.clone()
    };
    write(&path(state_dir), &private, body)?;
    if let Some(m) = metrics {
        write(m, &shared, prometheus(s).into_bytes())?;
    }
    Ok(())
}

fn write(path: &Path, opts: &atomic_files::Options, body: Vec<u8>) -> Result<(), String> {
    atomic_files::update(path, opts, |_| {
        Ok::<_, std::convert::Infallible>(Some(body.clone()))
    })
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// The counters in the Prometheus text exposition format.
pub fn prometheus(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        out += &format!("# HELP knockwrap_{name} {help}\n# TYPE knockwrap_{name} counter\n");
        out += &format!("knockwrap_{name} {value}\n");
    };
    let c = &s.counters;
    counter("packets_total", "Packets matched.", c.packets);
    counter("grants_total", "Grants applied.", c.grants);
    counter("revokes_total", "Revokes applied.", c.revokes);
    counter("lease_expiries_total", "Leases ended.", c.expiries);
    counter(
        "evictions_total",
        "Sources evicted from a full table.",
        c.evictions,
    );
    counter(
        "resets_total",
        "Sequences reset by a wrong knock.",
        c.resets,
    );
    counter("timeouts_total", "Sequences timed out.", c.timeouts);
    counter(
        "write_failures_total",
        "Failed writes of hosts.allow or state.",
        c.write_failures,
    );
    counter(
        "capture_restarts_total",
        "Capture processes replaced (died, or sent a message the parent refused).",
        c.child_restarts,
    );
    counter(
        "capture_refused_messages_total",
        "Messages from the capture process the parent refused.",
        c.refused_messages,
    );
    counter(
        "capture_log_lines_dropped_total",
        "Log lines from the capture process over the bound, not written.",
        c.child_log_dropped,
    );
    counter(
        "capture_stale_knocks_total",
        "Knocks matched against doors reloaded since and no longer kept, dropped.",
        c.stale_knocks,
    );
    out += "# HELP knockwrap_refused_total Refused packets and decisions by reason.\n";
    out += "# TYPE knockwrap_refused_total counter\n";
    for (reason, n) in &c.refused {
        let reason = reason.replace('\\', "\\\\").replace('"', "\\\"");
        out += &format!("knockwrap_refused_total{{reason=\"{reason}\"}} {n}\n");
    }
    out += "# HELP knockwrap_kernel_dropped_total Frames the kernel dropped, by interface.\n";
    out += "# TYPE knockwrap_kernel_dropped_total counter\n";
    for i in &s.interfaces {
        out += &format!(
            "knockwrap_kernel_dropped_total{{interface=\"{}\"}} {}\n",
            i.name, i.dropped
        );
    }
    out += "# HELP knockwrap_active_leases Leases running now.\n# TYPE knockwrap_active_leases gauge\n";
    out += &format!("knockwrap_active_leases {}\n", s.leases.len());
    // The firewall door's admissions, one series per lease and port: the kernel ends each
    // when its time left runs out (the element's own timeout). Leases without expiry are
    // left out (nothing to count down).
    out += "# HELP knockwrap_admitted_seconds_left Time left of a firewall admission, by address and port.\n";
    out += "# TYPE knockwrap_admitted_seconds_left gauge\n";
    for l in &s.leases {
        let Some(left) = l.seconds_left else { continue };
        for p in &l.ports {
            out += &format!(
                "knockwrap_admitted_seconds_left{{ip=\"{}\",port=\"{p}\",door=\"{}\"}} {left}\n",
                l.ip,
                l.door.replace('\\', "\\\\").replace('"', "\\\"")
            );
        }
    }
    out += "# HELP knockwrap_start_time_seconds When the daemon started.\n";
    out += "# TYPE knockwrap_start_time_seconds gauge\n";
    out += &format!("knockwrap_start_time_seconds {}\n", s.started_at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_is_well_formed() {
        let mut s = Snapshot {
            started_at: 1_700_000_000,
            ..Snapshot::default()
        };
        s.counters.grants = 3;
        s.counters.refused.insert("multicast \"source\"".into(), 7);
        s.leases.push(LeaseStatus {
            ip: "198.18.0.5".into(),
            service: "sshd".into(),
            door: "openSSH".into(),
            expires_at: Some(1_700_000_060),
            seconds_left: Some(42),
            ports: vec!["22/tcp".into()],
        });
        let text = prometheus(&s);
        assert!(
            text.contains("knockwrap_admitted_seconds_left{ip=\"198.18.0.5\",port=\"22/tcp\",door=\"openSSH\"} 42\n"),
            "{text}"
        );
        assert!(text.contains("knockwrap_grants_total 3\n"));
        assert!(text.contains("knockwrap_refused_total{reason=\"multicast \\\"source\\\"\"} 7\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }
}
