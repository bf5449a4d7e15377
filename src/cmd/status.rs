//! `knockwrap status`: the running daemon's doors, leases and counters, read from the snapshot
//! it publishes in its `state_dir` (`crate::status`). Exit 1 when the daemon is not running
//! (its PID is gone) or its snapshot is stale; what is known is still shown.

use hosts_writer::time::rfc3339_utc;

use crate::cli::{SimpleFormat, StatusArgs};
use crate::failure::{Exit, Failure, Outcome};
use crate::output::outln;
use crate::status::{self, Snapshot, STALE_AFTER_S};

fn alive(pid: u32) -> bool {
    use rustix::process::{test_kill_process, Pid};
    // kill(pid, 0) only checks that the process exists (EPERM: it does, as another user's).
    // Pid 0 (and a number past i32::MAX) names no single process: not one that is alive.
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    matches!(
        test_kill_process(pid),
        Ok(()) | Err(rustix::io::Errno::PERM)
    )
}

pub fn run(args: StatusArgs) -> Outcome {
    let config = crate::configfile::load(&args.config)?;
    let path = status::path(&config.state_dir);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::failed(format!(
            "{}: no status snapshot ({e}): is `knockwrap run --config {}` running?",
            path.display(),
            args.config.display()
        ))
    })?;
    let s: Snapshot = serde_json::from_str(&text)
        .map_err(|e| Failure::failed(format!("{}: unreadable snapshot: {e}", path.display())))?;
    let now = clock::wall_ms() / 1000;
    let age = now.saturating_sub(s.updated_at);
    let running = alive(s.pid);
    let fresh = age <= STALE_AFTER_S;
    match args.format {
        SimpleFormat::Json => {
            let mut v = serde_json::to_value(&s).map_err(|e| Failure::failed(e.to_string()))?;
            v["running"] = serde_json::Value::Bool(running && fresh);
            v["age_s"] = serde_json::Value::from(age);
            outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        SimpleFormat::Human => human(&s, running, age),
    }
    Ok(if running && fresh {
        Exit::Success
    } else {
        Exit::Failed
    })
}

fn human(s: &Snapshot, running: bool, age: u64) {
    let state = match (running, age <= STALE_AFTER_S) {
        (true, true) => "running".to_owned(),
        (true, false) => format!("STALE: snapshot {age} s old (the daemon is stuck?)"),
        (false, _) => format!("NOT RUNNING (pid {} is gone; snapshot {age} s old)", s.pid),
    };
    outln!(
        "knockwrap daemon: {state} (pid {}, since {})",
        s.pid,
        rfc3339_utc(s.started_at)
    );
    match s.capture_pid {
        Some(pid) => outln!("capture process: pid {pid}"),
        // Restarting after it died or was refused (see the daemon's log).
        None => outln!("capture process: NONE (being restarted; see the log)"),
    }
    outln!("config: {}   hosts.allow: {}", s.config, s.hosts_allow);
    for i in &s.interfaces {
        outln!(
            "interface {}: {} frames passed the filter, {} dropped by the kernel",
            i.name,
            i.received,
            i.dropped
        );
    }
    outln!("doors:");
    for d in &s.doors {
        let mut extra = String::new();
        if let Some(n) = d.one_time_left {
            extra += &format!(", {n} sequences left");
        }
        if let Some(c) = d.totp_step {
            extra += &format!(", TOTP step {c}");
        }
        if let Some(why) = &d.why {
            extra += &format!(" ({why})");
        }
        outln!("  {:<20} {:<9} {}{extra}", d.name, d.kind, d.state);
    }
    outln!("leases: {}", s.leases.len());
    for l in &s.leases {
        let left = l
            .seconds_left
            .map_or_else(|| "no expiry".to_owned(), |n| format!("{n} s left"));
        let ports = if l.ports.is_empty() {
            String::new()
        } else {
            format!("   firewall {}", l.ports.join(","))
        };
        outln!(
            "  {}: {:<39} door {:<16} {left}{ports}",
            l.service,
            l.ip,
            l.door
        );
    }
    let c = &s.counters;
    let refused: u64 = c.refused.values().sum();
    outln!(
        "counters: packets {}, grants {}, revokes {}, lease expiries {}, refused {}, evictions {}, resets {}, timeouts {}, write failures {}",
        c.packets, c.grants, c.revokes, c.expiries, refused, c.evictions, c.resets, c.timeouts, c.write_failures
    );
    for (reason, n) in &c.refused {
        outln!("  refused {n}: {reason}");
    }
    if let Some(e) = &s.last_error {
        outln!("last error: {e}");
    }
}
