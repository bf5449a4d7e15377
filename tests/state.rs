//! The state owner against the operator and against broken state files, with the real daemon
//! in a network namespace: leases made by the CLI end on time under a running daemon, and a
//! corrupt journal or an untrustworthy progress file never keeps the way in from starting or
//! serving. Also: the state directory swapped for a symlink under a paused journal write
//! redirects nothing. Needs root.

use std::time::{Duration, Instant};

use test_support::daemon::knockwrap_bin;
use test_support::process::run_ok;
use test_support::rig::Rig;
use test_support::{lines_of, serial, wait_until, Daemon, Door};

const OPEN: [&str; 3] = ["7000", "8000", "9000"];

fn journal(rig: &Rig) -> std::path::PathBuf {
    rig.root.dir().join("state").join("leases.json")
}

/// `knockwrap allow ADDR --for 3s` while the daemon runs: the daemon notices the journal
/// changed and ends the lease on time, without a knock.
#[test]
fn a_cli_lease_ends_on_time_under_a_running_daemon() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("clilease")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let config = rig.daemon.config.display().to_string();
    let started = Instant::now();
    run_ok(rig.root.command(knockwrap_bin()).args([
        "allow",
        "198.18.0.77",
        "--for",
        "3s",
        "--config",
        &config,
    ]));
    let line = "SSHD: 198.18.0.77";
    assert!(lines_of(&rig.root.hosts_allow()).iter().any(|l| l == line));
    let gone = wait_until(Duration::from_secs(8), Duration::from_millis(20), || {
        !lines_of(&rig.root.hosts_allow()).iter().any(|l| l == line)
    });
    let took = started.elapsed();
    assert!(
        gone,
        "the CLI's 3 s lease was still there after 8 s\n{}",
        rig.daemon.log()
    );
    assert!(took >= Duration::from_secs(3), "ended early: {took:?}");
    // The daemon logs the revoke after the file is replaced: give the line a moment.
    let logged = wait_until(Duration::from_secs(2), Duration::from_millis(10), || {
        rig.daemon.log().contains("revoke: lease expired")
    });
    assert!(logged, "{}", rig.daemon.log());
}

/// Leases the CLI adds while the daemon runs are appended to the journal as records; the
/// daemon folds them into one JSON document when it stops, so a journal left by a clean stop
/// reads as earlier builds wrote it (a downgrade keeps its leases).
#[test]
fn a_daemon_stopping_leaves_the_journal_one_document() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let mut rig = Rig::builder("compact")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let config = rig.daemon.config.display().to_string();
    for addr in ["198.18.0.78", "198.18.0.79"] {
        run_ok(
            rig.root
                .command(knockwrap_bin())
                .args(["allow", addr, "--for", "1h", "--config", &config]),
        );
    }
    let one_document = |rig: &Rig| {
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(journal(rig)).unwrap()).ok()
    };
    assert!(
        one_document(&rig).is_none(),
        "the second lease should have been appended as a record"
    );
    rig.daemon.stop(Duration::from_secs(5));
    let doc = one_document(&rig).unwrap_or_else(|| {
        panic!(
            "not one document after the stop:\n{}\n{}",
            std::fs::read_to_string(journal(&rig)).unwrap_or_default(),
            rig.daemon.log()
        )
    });
    let ips: Vec<&str> = doc["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips, ["198.18.0.78", "198.18.0.79"]);
}

/// A corrupt journal at start-up is moved aside and logged; the daemon starts and doors open.
#[test]
fn a_corrupt_journal_at_start_is_set_aside_and_doors_open() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let mut rig = Rig::builder("corrupt")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    rig.daemon.stop(Duration::from_secs(5));
    std::fs::write(journal(&rig), "{\"version\": 1, \"leases\": [ {").expect("corrupt journal");
    rig.daemon = Daemon::start(&rig.root, &rig.daemon.config.clone(), "2");
    let log = rig.daemon.log();
    assert!(log.contains("moved aside"), "{log}");
    let aside: Vec<_> = std::fs::read_dir(rig.root.dir().join("state"))
        .expect("state dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("leases.json.corrupt-")
        })
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the corrupt journal is kept for the operator"
    );
    rig.knock_opens(&["7000", "8000", "9000"]);
}

/// The journal truncated under the running daemon: one log line, no spin, the lease the
/// daemon knew still ends on time, and new knocks still open.
#[test]
fn a_journal_broken_under_the_daemon_is_rebuilt_and_leases_still_end() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let door = Door::allow("openSSH", &OPEN).lease("6s");
    let rig = Rig::builder("truncate").door(door).start();
    rig.knock(&[&rig.server(), "7000", "8000", "9000"]);
    let line = format!("SSHD: {}", rig.client());
    rig.expect_line(&line);
    let granted = Instant::now();
    // Let the grant's transaction finish (the line is visible before the journal is re-read).
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(journal(&rig), "{\"leases\": [").expect("truncate journal");
    std::thread::sleep(Duration::from_millis(1500));
    let gone = wait_until(Duration::from_secs(8), Duration::from_millis(20), || {
        !lines_of(&rig.root.hosts_allow()).contains(&line)
    });
    assert!(gone, "the lease never ended\n{}", rig.daemon.log());
    assert!(granted.elapsed() >= Duration::from_secs(5), "ended early");
    let log = rig.daemon.log();
    assert_eq!(log.matches("moved aside").count(), 1, "{log}");
    assert!(
        log.lines().count() < 40,
        "{} log lines\n{log}",
        log.lines().count()
    );
    // New knocks still open.
    let other = rig.net.client_subnet_v4(50);
    let raw = rig.net.in_client(test_support::RawV4::new);
    test_support::rig::raw_knock(
        &raw,
        other,
        rig.net.server_v4(),
        45_500,
        &[7000, 8000, 9000],
    );
    rig.expect_line(&format!("SSHD: {other}"));
}

/// A one-time list edited after use disables that door only: the daemon starts and the other
/// door opens; the log says what to do.
#[test]
fn an_edited_one_time_list_disables_only_its_door() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let files = tempfile::tempdir().expect("tempdir");
    let otp = files.path().join("open.otp");
    std::fs::write(&otp, "7301,7305,7303\n7401,7405,7403\n").expect("otp file");
    let extra = format!(
        "\n[[door]]\nname = \"otpSSH\"\none_time_sequences = {:?}\nseq_timeout = \"5s\"\n\
         service = \"in.otpd\"\n",
        otp.display().to_string()
    );
    let mut rig = Rig::builder("otpedit")
        .door(Door::allow("openSSH", &OPEN))
        .config(&extra)
        .start();
    test_support::rig::knock_door(&rig, "otpSSH");
    rig.expect_line(&format!("in.otpd: {}", rig.client()));
    rig.daemon.stop(Duration::from_secs(5));
    // The used first line is changed: which sequences were used can no longer be trusted.
    std::fs::write(&otp, "7311,7315,7313\n7401,7405,7403\n").expect("otp file");
    rig.daemon = Daemon::start(&rig.root, &rig.daemon.config.clone(), "2");
    let log = rig.daemon.log();
    assert!(
        log.contains("door disabled until an operator acts"),
        "{log}"
    );
    assert!(log.contains("onetime-otpSSH.json"), "{log}");
    let other = rig.net.client_subnet_v4(51);
    let raw = rig.net.in_client(test_support::RawV4::new);
    let before = rig.frames_settled();
    test_support::rig::raw_knock(
        &raw,
        other,
        rig.net.server_v4(),
        45_600,
        &[7311, 7315, 7313],
    );
    rig.expect_refused(
        before,
        3,
        &format!("in.otpd: {other}"),
        "a disabled door opened",
    );
    test_support::rig::raw_knock(
        &raw,
        other,
        rig.net.server_v4(),
        45_601,
        &[7000, 8000, 9000],
    );
    rig.expect_line(&format!("SSHD: {other}"));
}

/// Another process holds the hosts.allow lock for 4 s (an editor using flock, a slow
/// configuration run): the daemon keeps matching and answering (a reload completes during the
/// hold), logs the holder's PID, and applies the waiting grant and the due expiry right after.
#[test]
fn a_lock_held_elsewhere_stalls_neither_matching_nor_expiry() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let door = Door::allow("openSSH", &OPEN).lease("2s");
    let mut rig = Rig::builder("lockheld").door(door).start();
    rig.knock(&[&rig.server(), "7000", "8000", "9000"]);
    let first = format!("SSHD: {}", rig.client());
    rig.expect_line(&first);
    let mut holder = std::process::Command::new("nsenter");
    holder
        .args(["-t", &rig.root.holder_pid().to_string(), "-m", "--"])
        .args(["flock", "/etc/.hosts.allow.knockwrap.lock", "sleep", "4"]);
    let mut holder = holder.spawn().expect("flock");
    std::thread::sleep(Duration::from_millis(300));
    let held_at = Instant::now();
    // A knock during the hold: matched now, written when the lock is free.
    let other = rig.net.client_subnet_v4(52);
    let raw = rig.net.in_client(test_support::RawV4::new);
    test_support::rig::raw_knock(
        &raw,
        other,
        rig.net.server_v4(),
        45_700,
        &[7000, 8000, 9000],
    );
    // The loop still answers: a reload completes while the lock is held.
    rig.daemon.sighup();
    let reloaded = rig
        .daemon
        .wait_notice("RELOADING=1", Duration::from_secs(2))
        .and_then(|_| rig.daemon.wait_notice("READY=1", Duration::from_secs(2)));
    assert!(
        reloaded.is_ok(),
        "the loop stalled: {reloaded:?}\n{}",
        rig.daemon.log()
    );
    assert!(
        held_at.elapsed() < Duration::from_secs(3),
        "reload waited for the lock"
    );
    let line = format!("SSHD: {other}");
    assert!(
        !lines_of(&rig.root.hosts_allow()).contains(&line),
        "written under a held lock?"
    );
    let _ = holder.wait();
    let released = Instant::now();
    rig.expect_line(&line);
    assert!(
        released.elapsed() < Duration::from_secs(2),
        "grant waited {:?}",
        released.elapsed()
    );
    // Its 2 s lease counts from the write, not from the knock 3.7 s before: it is not written
    // and removed in the same instant.
    std::thread::sleep(Duration::from_millis(1_000));
    assert!(
        lines_of(&rig.root.hosts_allow()).contains(&line),
        "a grant that waited for the lock lost its lease while it waited\n{}",
        rig.daemon.log()
    );
    // The first lease (2 s) fell due during the hold: it ends right after.
    let gone = wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
        !lines_of(&rig.root.hosts_allow()).contains(&first)
    });
    assert!(
        gone,
        "the due lease did not end after the release\n{}",
        rig.daemon.log()
    );
    let log = rig.daemon.log();
    let said = log
        .lines()
        .find(|l| l.contains("locked by another process"))
        .unwrap_or_else(|| panic!("no log line about the held lock\n{log}"));
    assert!(!said.contains("holder_pid=unknown"), "{said}");
}

/// The doctor's checks run at start-up: a hosts.deny that denies nothing is logged with its
/// fix, and the daemon starts and serves anyway (a wrong hosts.deny must not also take the
/// way in away).
#[test]
fn a_failed_startup_check_is_logged_and_the_daemon_serves() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let mut rig = Rig::builder("startup")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    assert!(
        !rig.daemon.log().contains("start-up check failed"),
        "{}",
        rig.daemon.log()
    );
    rig.daemon.stop(Duration::from_secs(5));
    std::fs::write(rig.root.etc.join("hosts.deny"), "# nothing denied\n").expect("hosts.deny");
    rig.daemon = Daemon::start(&rig.root, &rig.daemon.config.clone(), "2");
    let log = rig.daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("start-up check failed") && l.contains("hosts.deny"))
        .unwrap_or_else(|| panic!("no start-up warning about hosts.deny\n{log}"));
    assert!(line.contains("ALL"), "the fix is named: {line}");
    rig.knock_opens(&["7000", "8000", "9000"]);
}

/// `knockwrap status` shows the running daemon (doors, the lease just granted, counters) and
/// the metrics file holds the same counters; once the daemon is gone, status says so (exit 1).
#[test]
fn status_and_metrics_show_the_running_daemon() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let metrics_dir = tempfile::tempdir().expect("tempdir");
    let metrics = metrics_dir.path().join("knockwrap.prom");
    let extra = format!("metrics_file = {:?}\n", metrics.display().to_string());
    let door = Door::allow("openSSH", &OPEN).lease("1h");
    let mut rig = Rig::builder("status").door(door).config(&extra).start();
    rig.knock_opens(&["7000", "8000", "9000"]);
    let config = rig.daemon.config.display().to_string();
    let status = |rig: &Rig| {
        rig.root
            .command(knockwrap_bin())
            .args(["status", "--config", &config, "--format", "json"])
            .output()
            .expect("status")
    };
    // Published after every change and every 5 s.
    let published = wait_until(Duration::from_secs(8), Duration::from_millis(100), || {
        let out = status(&rig);
        // The kernel's counters are read once a second.
        serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok_and(|v| {
            v["counters"]["grants"] == 1
                && v["interfaces"][0]["received"]
                    .as_u64()
                    .is_some_and(|n| n >= 3)
        })
    });
    assert!(
        published,
        "no snapshot with the grant\n{}",
        rig.daemon.log()
    );
    let out = status(&rig);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["running"], true);
    assert_eq!(v["doors"][0]["name"], "openSSH");
    assert_eq!(v["doors"][0]["state"], "active");
    assert_eq!(v["leases"][0]["ip"], rig.client());
    assert_eq!(v["interfaces"][0]["name"], test_support::net::SERVER_IF);
    assert!(v["interfaces"][0]["received"].as_u64().unwrap() >= 3, "{v}");
    assert_eq!(v["interfaces"][0]["dropped"], 0);
    assert!(v["leases"][0]["seconds_left"].as_u64().unwrap() > 3500);
    let text = std::fs::read_to_string(&metrics).expect("metrics file");
    assert!(text.contains("knockwrap_grants_total 1\n"), "{text}");
    assert!(text.contains("knockwrap_active_leases 1\n"), "{text}");
    let human = rig
        .root
        .command(knockwrap_bin())
        .args(["status", "--config", &config])
        .output()
        .expect("status");
    let human = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(
        human.contains("running") && human.contains("openSSH"),
        "{human}"
    );

    rig.daemon.stop(Duration::from_secs(5));
    let out = status(&rig);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a stopped daemon is not running: {out:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["running"], false);
}

/// The state directory S is renamed away and replaced by a symlink to a directory E holding
/// root's own journal, while `allow --for` is paused in the middle of its journal write (the
/// lock held; then past the last check). The journal goes into S's inode (under its new name)
/// or the grant fails cleanly; nothing in E is created, changed or removed, not even a file E
/// holds under the name of the writer's temp file.
#[test]
fn a_state_dir_swapped_for_a_symlink_mid_write_redirects_nothing() {
    use std::os::unix::fs::PermissionsExt;
    use test_support::swap;
    test_support::skip_unless_root!();
    let victim = "{\"version\": 1, \"leases\": [{\"ip\": \"203.0.113.66\", \"service\": \"sshd\", \
                  \"door\": \"manual\", \"expires_at\": null, \"added_line\": true}]}\n";
    let mut redirected = Vec::new();
    for step in ["locked", "checked"] {
        let p = tempfile::tempdir().expect("tempdir");
        let hosts = p.path().join("hosts.allow");
        std::fs::write(&hosts, "ALL: LOCAL\n").expect("hosts.allow");
        std::fs::write(p.path().join("hosts.deny"), "ALL: ALL\n").expect("hosts.deny");
        let s = p.path().join("state");
        let e = p.path().join("elsewhere");
        for dir in [&s, &e] {
            std::fs::create_dir(dir).expect("mkdir");
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        std::fs::write(e.join("leases.json"), victim).expect("victim journal");
        let child = std::process::Command::new(knockwrap_bin())
            .args(["allow", "198.18.0.9", "--for", "1h", "--hosts-allow"])
            .arg(&hosts)
            .arg("--state-dir")
            .arg(&s)
            .env("KNOCKWRAP_TEST_PAUSE", format!("{step}:1500"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn knockwrap");
        // The journal's lock is taken inside the hosts.allow transaction, after its pause.
        swap::wait_for(
            &s.join(".leases.json.knockwrap.lock"),
            Duration::from_secs(10),
        );
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(
            e.join(".leases.json.knockwrap.tmp"),
            "{\"version\": 1, \"leases\": []}\n",
        )
        .expect("planted temp");
        let before = swap::contents(&e);
        let moved = p.path().join("state.moved");
        swap::swap_for_symlink(&s, &moved, &e);
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let after = swap::contents(&e);
        if after != before {
            redirected.push(format!("{step}: {before:?} became {after:?} ({stderr})"));
            continue;
        }
        let journal = std::fs::read_to_string(moved.join("leases.json")).unwrap_or_default();
        let lines = lines_of(&hosts);
        if out.status.success() {
            assert!(journal.contains("198.18.0.9"), "{step}: {journal}");
            assert!(
                lines.contains(&"SSHD: 198.18.0.9".to_string()),
                "{step}: {lines:?}"
            );
        } else {
            assert_eq!(
                lines,
                ["ALL: LOCAL"],
                "{step}: a line without its lease; {stderr}"
            );
            assert!(!journal.contains("198.18.0.9"), "{step}: {journal}");
        }
    }
    assert!(
        redirected.is_empty(),
        "the journal write went through the link:\n{}",
        redirected.join("\n")
    );
}

/// hosts.allow and the journal as a spoofed storm leaves them: `n` managed lines after the
/// operator's, each with a lease of door openSSH ending at `expires_at` (Unix seconds).
fn storm_state(rig: &Rig, n: u32, expires_at: u64) -> Vec<String> {
    let mut allow = String::from("# operator\nsshd: 198.18.0.0/255.255.255.0\n");
    let mut leases = Vec::new();
    let mut lines = Vec::new();
    for i in 0..n {
        let ip = format!("10.{}.{}.{}", 20 + (i >> 16), (i >> 8) & 255, i & 255);
        let line = format!("SSHD: {ip}");
        allow.push_str(&line);
        allow.push('\n');
        lines.push(line);
        leases.push(serde_json::json!({
            "ip": ip, "service": "SSHD", "door": "openSSH",
            "expires_at": expires_at, "added_line": true,
        }));
    }
    let doc = serde_json::json!({ "version": 2, "leases": leases });
    std::fs::write(journal(rig), format!("{doc}\n")).unwrap();
    rig.root.write_hosts_allow(&allow);
    lines
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Issue point 3: 4,000 leases ending together (a spoofed storm replaying a seen sequence)
/// end together: one hosts.allow rewrite (the backup still holds every line), soon after
/// their end; and 4,000 leases that ended while the daemon was down are all gone at READY=1.
/// The figures (time after the end, SIGTERM time) are printed for docs/benchmarks.md.
#[test]
fn four_thousand_leases_ending_together_end_in_one_rewrite_and_before_ready() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let mut rig = Rig::builder("mass")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    rig.daemon.stop(Duration::from_secs(5));
    let config = rig.daemon.config.clone();

    // Ending while the daemon runs.
    let end = unix_now() + 3;
    let lines = storm_state(&rig, 4000, end);
    let mut daemon = Daemon::spawn(&rig.root, &config, "running");
    daemon
        .wait_notice("READY=1", Duration::from_secs(15))
        .unwrap_or_else(|why| panic!("not ready: {why}\n{}", daemon.log()));
    let managed = |rig: &Rig| {
        lines_of(&rig.root.hosts_allow())
            .iter()
            .filter(|l| l.starts_with("SSHD: 10."))
            .count()
    };
    assert_eq!(managed(&rig), 4000, "ended early\n{}", daemon.log());
    let gone = wait_until(Duration::from_secs(20), Duration::from_millis(5), || {
        managed(&rig) == 0
    });
    let after_end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH + Duration::from_secs(end))
        .unwrap_or_default();
    assert!(
        gone,
        "{} lines still there\n{}",
        managed(&rig),
        daemon.log()
    );
    let bak = std::fs::read_to_string(rig.root.etc.join("hosts.allow.bak")).unwrap();
    let in_bak = lines
        .iter()
        .filter(|l| bak.contains(&format!("{l}\n")))
        .count();
    assert_eq!(
        in_bak, 4000,
        "one rewrite ends them all: the version before it (the backup) holds every line"
    );
    assert!(
        lines_of(&rig.root.hosts_allow()).contains(&"sshd: 198.18.0.0/255.255.255.0".to_owned()),
        "the operator's rule stays"
    );
    let t0 = Instant::now();
    daemon.stop(Duration::from_secs(5));
    let sigterm = t0.elapsed();
    eprintln!(
        "mass expiry: 4000 leases gone {after_end:?} after their end; SIGTERM took {sigterm:?}"
    );
    assert!(
        after_end < Duration::from_secs(2),
        "4000 leases took {after_end:?} after their end"
    );

    // Ended while the daemon was down: gone at READY=1.
    storm_state(&rig, 4000, unix_now() - 1);
    let t0 = Instant::now();
    let mut daemon = Daemon::spawn(&rig.root, &config, "restart");
    daemon
        .wait_notice("READY=1", Duration::from_secs(15))
        .unwrap_or_else(|why| panic!("not ready: {why}\n{}", daemon.log()));
    let ready = t0.elapsed();
    assert_eq!(
        managed(&rig),
        0,
        "expired lines at READY=1\n{}",
        daemon.log()
    );
    eprintln!(
        "mass expiry at start: 4000 expired leases gone at READY=1, {ready:?} after the start"
    );
    rig.daemon = daemon;
}
