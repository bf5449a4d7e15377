//! End-to-end tests of `knockwrap run` with real parts only (issue 5's acceptance): the daemon
//! sniffs the server end of a veth pair in its own network namespace and edits the
//! /etc/hosts.allow of a private mount namespace; knocks come from the client namespace
//! (the real `knock`, knockwrap's own client, or crafted SYNs with spoofed sources); access
//! is judged by the real tcpdmatch and the real sshd (libwrap). Needs root.

use test_support::rig::{count_lines_with, knock_door, raw_knock, Rig};

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use test_support::daemon::knockwrap_bin;
use test_support::net::{CLIENT_IF, SERVER_IF};
use test_support::packets::{pool_v4, tcp_syn_v4};
use test_support::process::run_ok;
use test_support::{
    lines_of, serial, ssh_banner, summarize_ms, wait_for_line, wait_until, Daemon, DaemonConfig,
    Door, NetPair, RawV4, ServerRoot, Sshd, Verdict,
};

const OPEN: [&str; 3] = ["7000", "8000", "9000"];
const OPEN_PORTS: [u16; 3] = [7000, 8000, 9000];
/// Ascending sweep range through all three door ports (knockd_baseline shows it opens knockd).
const SWEEP: std::ops::RangeInclusive<u16> = 6900..=9100;

const FOREIGN: &str = "# hand-written rules stay as they are\r\nsendmail: 198.19.255.254\r\n";

#[test]
fn real_knock_opens_and_close_door_revokes() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("openclose")
        .doors(vec![
            Door::allow("openSSH", &OPEN),
            Door::revoke("closeSSH", &["9000", "8000", "7000"]),
        ])
        .hosts_allow(FOREIGN)
        .start();
    let (server, client) = (rig.server(), rig.client());
    let line = format!("SSHD: {client}");
    assert_eq!(rig.verdict("sshd", &client), Verdict::Denied);

    rig.knock(&[&server, "7000", "8000", "9000"]);
    rig.expect_line(&line);
    // Exactly one line added after the untouched bytes (ending as the file's lines do).
    let after = rig.hosts_allow();
    let added = after.strip_prefix(FOREIGN).unwrap_or_else(|| {
        panic!("the existing bytes changed: {after:?}");
    });
    assert!(
        added == format!("{line}\n") || added == format!("{line}\r\n"),
        "expected exactly the line {line:?} added, got {added:?}"
    );
    assert_eq!(rig.root.hosts_allow_inside(), rig.hosts_allow());
    assert_eq!(rig.verdict("sshd", &client), Verdict::Granted);

    // Opening again while open leaves one line.
    rig.knock(&[&server, "7000", "8000", "9000"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count_lines_with(&rig.root.hosts_allow(), &line), 1);

    rig.knock(&[&server, "9000", "8000", "7000"]);
    if rig.wait_gone(&line, Duration::from_secs(5)).is_none() {
        panic!(
            "close door did not remove {line:?}: {:?}\n{}",
            rig.hosts_allow(),
            rig.daemon.log()
        );
    }
    assert_eq!(rig.hosts_allow(), FOREIGN, "the file is back to its bytes");
    assert_eq!(rig.verdict("sshd", &client), Verdict::Denied);
}

#[test]
fn udp_and_mixed_doors_open() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let mut udp = Door::allow("udpDoor", &["7100:udp", "8100:udp", "9100:udp"]);
    udp.service = "in.udpd".to_owned();
    let mut mixed = Door::allow("mixedDoor", &["7200:tcp", "8200:udp", "9200"]);
    mixed.service = "in.mixedd".to_owned();
    let rig = Rig::builder("udpmix").doors(vec![udp, mixed]).start();
    // Deny by default for every service, so tcpdmatch's "granted" is the door's doing.
    std::fs::write(rig.root.etc.join("hosts.deny"), "sshd: ALL\nALL: ALL\n").expect("hosts.deny");
    let (server, client) = (rig.server(), rig.client());
    let udp_line = format!("in.udpd: {client}");
    let mixed_line = format!("in.mixedd: {client}");
    assert_eq!(rig.verdict("in.udpd", &client), Verdict::Denied);

    // The right ports with the wrong protocol are not the door.
    let before = rig.frames_settled();
    rig.knock(&[&server, "7100", "8100", "9100"]);
    rig.knock(&["-u", &server, "7200", "8200", "9200"]);
    rig.expect_refused(before, 6, &udp_line, "TCP knock on a UDP door");
    rig.expect_refused(before, 6, &mixed_line, "all-UDP knock on a mixed door");

    rig.knock(&["-u", &server, "7100", "8100", "9100"]);
    rig.expect_line(&udp_line);
    assert_eq!(rig.verdict("in.udpd", &client), Verdict::Granted);
    assert_eq!(rig.verdict("in.mixedd", &client), Verdict::Denied);

    rig.knock(&[&server, "7200:tcp", "8200:udp", "9200:tcp"]);
    rig.expect_line(&mixed_line);
    assert_eq!(rig.verdict("in.mixedd", &client), Verdict::Granted);
    assert_eq!(rig.hosts_allow(), format!("{udp_line}\n{mixed_line}\n"));
}

#[test]
fn udp_sweep_through_a_udp_door_does_not_open() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let mut udp = Door::allow("udpDoor", &["7100:udp", "8100:udp", "9100:udp"]);
    udp.service = "in.udpd".to_owned();
    let rig = Rig::builder("udpsweep").door(udp).start();
    let (server, client) = (rig.net.server_v4(), rig.client());
    let line = format!("in.udpd: {client}");

    // An ascending UDP sweep through 7000..=9200 passes every door port in order. Only a
    // capture that also shows the matcher the datagrams to the other ports can reset it.
    let before = rig.frames_settled();
    rig.net.in_client(|| {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
        let started = Instant::now();
        for (n, port) in (7000..=9200u16).enumerate() {
            // Paced (~40 k/s) so that the kernel keeps every datagram for the sniffer.
            let due = started + Duration::from_micros(25) * n as u32;
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            let _ = socket.send_to(b"x", (server, port));
        }
    });
    rig.expect_refused(before, 2201, &line, "UDP sweep through the door ports");

    // Control: the same source, knocking honestly, opens.
    rig.knock(&["-u", &server.to_string(), "7100", "8100", "9100"]);
    rig.expect_line(&line);
}

#[test]
fn ipv6_knock_writes_bracketed_address() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("v6")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let client6 = rig.net.client_v6().to_string();
    rig.knock(&[
        "-6",
        &rig.net.server_v6().to_string(),
        "7000",
        "8000",
        "9000",
    ]);
    let line = format!("SSHD: [{client6}]");
    rig.expect_line(&line);
    assert_eq!(rig.hosts_allow(), format!("{line}\n"));
    assert_eq!(rig.verdict("sshd", &client6), Verdict::Granted);
    assert_eq!(rig.verdict("sshd", &rig.client()), Verdict::Denied);
}

#[test]
fn wrong_order_timeout_and_fast_sweep_do_not_open() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let door = Door::allow("openSSH", &OPEN).seq_timeout("2s");
    let rig = Rig::builder("negative").door(door).start();
    let server = rig.net.server_v4();
    let raw = rig.net.in_client(RawV4::new);
    let line = |a: Ipv4Addr| format!("SSHD: {a}");

    // Wrong order, with the real knock client.
    let s = server.to_string();
    let before = rig.frames_settled();
    rig.knock(&[&s, "8000", "7000", "9000"]);
    rig.knock(&[&s, "7000", "9000", "8000"]);
    rig.knock(&[&s, "9000", "8000", "7000"]);
    rig.expect_refused(before, 9, &line(rig.net.client_v4()), "wrong order");

    // The last step after the sequence timeout.
    let late = rig.net.client_subnet_v4(11);
    let before = rig.frames_settled();
    raw_knock(&raw, late, server, 41_000, &[7000, 8000]);
    std::thread::sleep(Duration::from_millis(2_500));
    raw_knock(&raw, late, server, 41_000, &[9000]);
    rig.expect_refused(
        before,
        3,
        &line(late),
        "sequence finished after seq_timeout",
    );

    // A fast ascending SYN sweep through 6900..=9100 (all three door ports, in order).
    let sweeper = rig.net.client_subnet_v4(12);
    let before = rig.frames_settled();
    // ~40 k packets/s: fast for a scanner, yet paced so that the kernel does not drop the
    // in-between SYNs before the daemon reads them (a drop would hide them from any sniffer).
    raw.sweep(sweeper, server, 50_000, SWEEP, Duration::from_micros(25));
    let swept = u64::from(SWEEP.end() - SWEEP.start()) + 1;
    rig.expect_refused(before, swept, &line(sweeper), "fast port sweep");

    // Controls: the same daemon still opens for a correct knock from each of those sources.
    for src in [late, sweeper] {
        raw_knock(&raw, src, server, 42_000, &OPEN_PORTS);
        rig.expect_line(&line(src));
    }
    rig.knock(&[&s, "7000", "8000", "9000"]);
    rig.expect_line(&line(rig.net.client_v4()));
}

#[test]
fn retransmitted_step_does_not_break_a_knock() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("retrans")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let server = rig.net.server_v4();
    let raw = rig.net.in_client(RawV4::new);
    // Byte-identical SYNs, as a TCP retransmission sends them: first, middle and last step.
    let cases: [(u8, &[u16]); 3] = [
        (20, &[7000, 7000, 8000, 9000]),
        (21, &[7000, 8000, 8000, 9000]),
        (22, &[7000, 8000, 9000, 9000]),
    ];
    for (host, ports) in cases {
        let src = rig.net.client_subnet_v4(host);
        for &port in ports {
            // Same source port per step, so a repeat is the exact same packet.
            raw.send(&tcp_syn_v4(src, server, 43_000 + port % 1000, port, 7))
                .expect("send");
            std::thread::sleep(Duration::from_millis(30));
        }
        rig.expect_line(&format!("SSHD: {src}"));
    }
    assert_eq!(rig.hosts_allow().lines().count(), 3);
}

#[test]
fn eight_and_two_hundred_simultaneous_sources_all_open() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("crowd")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let server = rig.net.server_v4();
    let raw = rig.net.in_client(RawV4::new);
    let eight: Vec<Ipv4Addr> = (30..38).map(|h| rig.net.client_subnet_v4(h)).collect();
    let crowd: Vec<Ipv4Addr> = (0..200).map(pool_v4).collect();

    for (round, sources) in [("8", &eight), ("200", &crowd)] {
        let started = Instant::now();
        // Interleaved: every source's step 1, then every source's step 2, then step 3.
        for &port in &OPEN_PORTS {
            for (i, &src) in sources.iter().enumerate() {
                raw.syn(src, server, 44_000 + i as u16, port);
            }
        }
        let sent = started.elapsed();
        let path = rig.root.hosts_allow();
        let all = wait_until(Duration::from_secs(30), Duration::from_millis(5), || {
            let lines = lines_of(&path);
            sources
                .iter()
                .all(|s| lines.iter().any(|l| *l == format!("SSHD: {s}")))
        });
        let missing: Vec<String> = sources
            .iter()
            .filter(|s| !lines_of(&path).contains(&format!("SSHD: {s}")))
            .map(|s| s.to_string())
            .collect();
        assert!(
            all,
            "round of {round}: {} sources did not open: {missing:?}\ndaemon log:\n{}",
            missing.len(),
            rig.daemon.log()
        );
        eprintln!(
            "CROWD {round} sources: knocks sent in {sent:?}, all lines present after {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        rig.hosts_allow().lines().count(),
        208,
        "one line per source"
    );
    for addr in [eight[0], crowd[0], crowd[199]] {
        assert_eq!(rig.verdict("sshd", &addr.to_string()), Verdict::Granted);
    }
}

#[test]
fn sshd_banner_only_while_the_lease_lasts() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let door = Door::allow("openSSH", &OPEN).lease("3s");
    let rig = Rig::builder("sshd").door(door).sshd().start();
    let server = IpAddr::V4(rig.net.server_v4());
    let line = format!("SSHD: {}", rig.client());

    assert!(!ssh_banner(&rig.net, server), "banner before any knock");
    rig.knock_and_expect(&["7000", "8000", "9000"], &line);
    let opened = Instant::now();
    assert!(
        ssh_banner(&rig.net, server),
        "no banner after the knock; sshd log:\n{}",
        rig.sshd.as_ref().map(Sshd::log).unwrap_or_default()
    );
    let gone = rig
        .wait_gone(&line, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("lease never expired:\n{}", rig.daemon.log()));
    // Held about the lease; its exact length is lease_is_never_shorter_than_configured's job.
    let held = gone - opened;
    assert!(
        held >= Duration::from_millis(1_500),
        "line removed after {held:?} of a 3 s lease"
    );
    assert!(
        !ssh_banner(&rig.net, server),
        "banner after the lease expired"
    );
    assert_eq!(rig.hosts_allow(), "");
}

/// A lease ends no earlier than `lease` after the grant, whatever the sub-second phase of the
/// grant: three knocks 350 ms apart, each line must stay at least 2 s (minus 100 ms of
/// measurement slack: the clock starts when the line is seen, after the grant).
#[test]
fn lease_is_never_shorter_than_configured() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let door = Door::allow("openSSH", &OPEN).lease("2s");
    let rig = Rig::builder("leaselen").door(door).start();
    let server = rig.net.server_v4();
    let raw = rig.net.in_client(RawV4::new);
    let sources: Vec<Ipv4Addr> = (60..63).map(|h| rig.net.client_subnet_v4(h)).collect();
    let mut seen = Vec::new();
    for (i, &src) in sources.iter().enumerate() {
        raw_knock(&raw, src, server, 47_000 + i as u16, &OPEN_PORTS);
        let line = format!("SSHD: {src}");
        let at = rig
            .wait_line(&line, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{line:?} never appeared\n{}", rig.daemon.log()));
        seen.push((line, at));
        std::thread::sleep(Duration::from_millis(350));
    }
    let path = rig.root.hosts_allow();
    let mut short = Vec::new();
    for (line, at) in &seen {
        let gone = wait_until(Duration::from_secs(6), Duration::from_millis(2), || {
            !lines_of(&path).contains(line)
        });
        assert!(gone, "{line:?} never expired\n{}", rig.daemon.log());
        let held = at.elapsed();
        if held < Duration::from_millis(1_900) {
            short.push(format!("{line:?} held {held:?}"));
        }
    }
    assert!(
        short.is_empty(),
        "2 s leases cut short: {short:?}\ndaemon log:\n{}",
        rig.daemon.log()
    );
}

#[test]
fn crash_then_restart_revokes_expired_lease_before_ready() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let short = Door::allow("shortSSH", &OPEN).lease("2s");
    let long = Door::allow("longSSH", &["7300", "8300", "9300"]).lease("1h");
    let mut rig = Rig::builder("crash").doors(vec![short, long]).start();
    let server = rig.net.server_v4();
    let raw = rig.net.in_client(RawV4::new);
    let short_line = format!("SSHD: {}", rig.client());
    let keeper = rig.net.client_subnet_v4(40);
    let long_line = format!("SSHD: {keeper}");

    rig.knock(&[&rig.server(), "7000", "8000", "9000"]);
    raw_knock(&raw, keeper, server, 45_000, &[7300, 8300, 9300]);
    rig.expect_line(&short_line);
    rig.expect_line(&long_line);

    rig.daemon.kill9();
    std::thread::sleep(Duration::from_millis(3_000));
    assert!(
        lines_of(&rig.root.hosts_allow()).contains(&short_line),
        "nothing but the daemon may remove the line while it is down"
    );

    let mut restarted = Daemon::spawn(&rig.root, &rig.daemon.config, "2");
    if let Err(why) = restarted.wait_notice("READY=1", Duration::from_secs(15)) {
        panic!("restart not ready: {why}\n{}", restarted.log());
    }
    let at_ready = lines_of(&rig.root.hosts_allow());
    assert!(
        !at_ready.contains(&short_line),
        "expired lease still in hosts.allow at READY=1: {at_ready:?}\n{}",
        restarted.log()
    );
    assert!(
        at_ready.contains(&long_line),
        "the unexpired lease was lost across the restart: {at_ready:?}"
    );
    rig.daemon = restarted;
}

#[test]
fn broken_config_on_sighup_is_refused_and_doors_keep_opening() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("reload")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let config = rig.daemon.config.clone();
    let good = std::fs::read_to_string(&config).expect("reading config");
    let server = rig.net.server_v4();
    let raw = rig.net.in_client(RawV4::new);

    // An unknown key on line 3, then a TOML syntax error on line 9.
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    lines.insert(2, "no_such_key = 1".to_owned());
    let unknown_key = lines.join("\n") + "\n";
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    while lines.len() < 8 {
        lines.push(String::new());
    }
    lines.insert(8, "[[door]".to_owned());
    let syntax = lines.join("\n") + "\n";

    for (n, (broken, line_no)) in [(unknown_key, 3), (syntax, 9)].into_iter().enumerate() {
        std::fs::write(&config, broken).expect("writing broken config");
        rig.daemon.sighup();
        let at = format!("{}:{line_no}", config.display());
        let logged = wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            rig.daemon.log().contains(&at)
        });
        assert!(
            logged,
            "no error naming {at} after SIGHUP\ndaemon log:\n{}",
            rig.daemon.log()
        );
        let src = rig.net.client_subnet_v4(50 + n as u8);
        raw_knock(&raw, src, server, 46_000, &OPEN_PORTS);
        rig.expect_line(&format!("SSHD: {src}"));
    }
    rig.knock_opens(&["7000", "8000", "9000"]);
}

#[test]
fn knockwrap_client_opens_tcp_and_udp_doors() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let mut udp = Door::allow("udpDoor", &["7100:udp", "8100:udp", "9100:udp"]);
    udp.service = "in.udpd".to_owned();
    let rig = Rig::builder("ourclient")
        .doors(vec![Door::allow("openSSH", &OPEN), udp])
        .start();
    let server = rig.server();
    run_ok(
        rig.net
            .client_cmd(knockwrap_bin())
            .args(["knock", &server, "7000", "8000", "9000"]),
    );
    rig.expect_line(&format!("SSHD: {}", rig.client()));
    run_ok(
        rig.net
            .client_cmd(knockwrap_bin())
            .args(["knock", "-u", &server, "7100", "8100", "9100"]),
    );
    rig.expect_line(&format!("in.udpd: {}", rig.client()));
    run_ok(rig.net.client_cmd(knockwrap_bin()).args([
        "knock",
        "-6",
        &rig.net.server_v6().to_string(),
        "7000",
        "8000",
        "9000",
    ]));
    rig.expect_line(&format!("SSHD: [{}]", rig.net.client_v6()));
}

#[test]
fn knock_to_open_latency() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("latency")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let server = rig.net.server_v4();
    let raw = rig.net.in_client(RawV4::new);
    let mut samples = Vec::new();
    for i in 0..20u8 {
        // Same method as the knockd baseline: a distinct source per knock, crafted SYNs,
        // the clock starts when the last one is sent and stops when its line is visible.
        let src = rig.net.client_subnet_v4(100 + i);
        raw_knock(&raw, src, server, 40_000 + u16::from(i), &OPEN_PORTS);
        let sent = Instant::now();
        let seen = rig
            .wait_line(&format!("SSHD: {src}"), Duration::from_secs(5))
            .unwrap_or_else(|| panic!("knock {i} from {src} did not open\n{}", rig.daemon.log()));
        samples.push(seen - sent);
        std::thread::sleep(Duration::from_millis(30));
    }
    let (median, p90, max) = summarize_ms(&samples);
    eprintln!(
        "LATENCY knockwrap knock-to-open over {} knocks: median {median:.2} ms, p90 {p90:.2} ms, max {max:.2} ms",
        samples.len()
    );
    assert_eq!(rig.hosts_allow().lines().count(), 20);
}

/// Memory under a spoofed-source flood of first steps: ≥ 1 M SYNs to the first door port
/// from ~98 k distinct addresses, with the table capped at 1024 sources. RSS is sampled
/// after half the flood and after all of it: it must plateau (the table is full and stays
/// full) and stay within a few MiB of the idle figure. The door must still open afterwards.
#[test]
fn spoofed_first_step_flood_keeps_memory_at_the_table_cap() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let mut rig = Rig::builder("flood")
        .door(Door::allow("openSSH", &OPEN))
        .config("max_sources = 1024\n")
        .start();
    let server = rig.net.server_v4();
    let raw = rig.net.in_client(RawV4::new);
    let rss_idle = rig.daemon.rss_kib();

    const HALF: u32 = 600_000;
    let mut rss = Vec::new();
    let started = Instant::now();
    for half in 0..2u32 {
        for i in half * HALF..(half + 1) * HALF {
            let packet = tcp_syn_v4(pool_v4(i), server, 1024 + (i % 60_000) as u16, 7000, i);
            raw.send(&packet).expect("flood send");
        }
        // Let the daemon drain what the kernel queued before sampling.
        std::thread::sleep(Duration::from_millis(500));
        rss.push(rig.daemon.rss_kib());
    }
    let elapsed = started.elapsed();
    eprintln!(
        "FLOOD {} SYNs from {} sources in {elapsed:?} ({:.0} pkt/s); daemon VmRSS idle {rss_idle} KiB, \
         after half {} KiB, after all {} KiB",
        2 * HALF,
        98_304,
        f64::from(2 * HALF) / elapsed.as_secs_f64(),
        rss[0],
        rss[1]
    );
    assert!(
        rig.daemon.exited().is_none(),
        "daemon died under the flood:\n{}",
        rig.daemon.log()
    );
    assert!(
        rss[1] <= rss_idle + 8 * 1024,
        "RSS grew from {rss_idle} KiB to {} KiB under the flood",
        rss[1]
    );
    assert!(
        rss[1] <= rss[0] + 2 * 1024,
        "RSS still growing in the second half: {} -> {} KiB",
        rss[0],
        rss[1]
    );
    // Still serving: a real knock opens.
    rig.knock_opens(&["7000", "8000", "9000"]);
}

#[test]
fn sigterm_stops_cleanly_with_stopping_notice() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let mut rig = Rig::builder("sigterm")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let started = Instant::now();
    let (status, on_its_own) = rig.daemon.stop(Duration::from_secs(5));
    assert!(
        on_its_own,
        "daemon ignored SIGTERM for 5 s\n{}",
        rig.daemon.log()
    );
    assert!(
        status.success(),
        "exit status {status} after SIGTERM\n{}",
        rig.daemon.log()
    );
    if let Err(why) = rig
        .daemon
        .wait_notice("STOPPING=1", Duration::from_millis(100))
    {
        panic!("no STOPPING=1 sd_notify: {why}");
    }
    eprintln!("SIGTERM to exit: {:?}", started.elapsed());
}

/// A valid SIGHUP installs the new config (a new door opens) and keeps the progress of a
/// source half-way through an unchanged door.
#[test]
fn valid_reload_applies_and_keeps_progress_on_unchanged_doors() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let door = Door::allow("openSSH", &OPEN).seq_timeout("20s");
    let rig = Rig::builder("reloadok").door(door.clone()).start();
    let server = rig.net.server_v4();
    let raw = rig.net.in_client(RawV4::new);
    let halfway = rig.net.client_subnet_v4(70);
    raw_knock(&raw, halfway, server, 48_000, &[7000, 8000]);
    std::thread::sleep(Duration::from_millis(200));

    let mut new_door = Door::allow("newDoor", &["7400", "8400", "9400"]);
    new_door.service = "in.newd".to_owned();
    let mut config = DaemonConfig::new(&rig.root, vec![door, new_door]);
    config.state_dir = rig.root.dir().join("state");
    std::fs::write(&rig.daemon.config, config.render()).expect("writing new config");
    rig.daemon.sighup();

    // The new door works once the reload is in; retry until then.
    let newcomer = rig.net.client_subnet_v4(71);
    let new_line = format!("in.newd: {newcomer}");
    let mut opened = false;
    for attempt in 0..10u16 {
        raw_knock(
            &raw,
            newcomer,
            server,
            48_100 + attempt,
            &[7400, 8400, 9400],
        );
        if rig
            .wait_line(&new_line, Duration::from_millis(500))
            .is_some()
        {
            opened = true;
            break;
        }
    }
    assert!(
        opened,
        "the reloaded door never opened\n{}",
        rig.daemon.log()
    );

    raw_knock(&raw, halfway, server, 48_000, &[9000]);
    rig.expect_line(&format!("SSHD: {halfway}"));
}

/// The capture interface vanishes and comes back (a new veth pair with the same names): the
/// daemon reopens it by itself and opens doors again.
#[test]
fn vanished_interface_is_reopened() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("vanish")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let server = rig.net.server_v4();
    rig.net.delete_link();
    std::thread::sleep(Duration::from_millis(1_500));
    let log = rig.daemon.log();
    assert!(
        log.lines()
            .any(|l| l.contains(SERVER_IF) && (l.contains("WARN") || l.contains("ERROR"))),
        "no warning naming the vanished interface:\n{log}"
    );
    rig.net.create_link();
    rig.net.warm_neighbours();
    let raw = rig.net.in_client(RawV4::new);
    let src = rig.net.client_subnet_v4(80);
    let line = format!("SSHD: {src}");
    let started = Instant::now();
    let mut opened = false;
    for attempt in 0..30u16 {
        raw_knock(&raw, src, server, 49_000 + attempt, &OPEN_PORTS);
        if rig.wait_line(&line, Duration::from_millis(500)).is_some() {
            opened = true;
            break;
        }
    }
    assert!(
        opened,
        "no door opened within 15 s of the interface coming back\n{}",
        rig.daemon.log()
    );
    eprintln!(
        "REOPEN interface back → door opened after {:?}",
        started.elapsed()
    );
}

/// IPv6 knocks whose TCP header sits behind extension headers (destination options; hop-by-hop
/// then destination options) open like plain ones: the decoder walks the chain.
#[test]
fn ipv6_knock_behind_extension_headers_opens() {
    test_support::skip_unless_root!();
    use test_support::packets::{tcp_syn_v6, RawV6, DEST_OPTIONS, HOP_BY_HOP};
    let _serial = serial();
    let rig = Rig::builder("v6ext")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let raw = rig.net.in_client(RawV6::new);
    let server = rig.net.server_v6();
    let chains: [(&str, &[u8]); 2] = [
        ("fd00:4b57::2", &[DEST_OPTIONS]),
        ("fd00:4b57::3", &[HOP_BY_HOP, DEST_OPTIONS]),
    ];
    for (src, chain) in chains {
        let src: std::net::Ipv6Addr = src.parse().expect("literal");
        for port in OPEN_PORTS {
            raw.send(&tcp_syn_v6(src, server, 45_500, port, 9, chain))
                .expect("sending IPv6 SYN");
        }
        rig.expect_line(&format!("SSHD: [{src}]"));
    }
}

#[test]
fn one_time_and_totp_doors_open_once_each_and_remember_it_across_a_restart() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let files = tempfile::tempdir().expect("tempdir");
    // RFC 6238's test secret "12345678901234567890" in base32 (160 bits).
    let secret = b"12345678901234567890";
    let key = files.path().join("totp.key");
    std::fs::write(&key, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n").expect("key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod key");
    let otp = files.path().join("open.otp");
    std::fs::write(&otp, "7301, 7305, 7303\n7401, 7405, 7403\n").expect("otp file");
    let extra = format!(
        "\n[[door]]\nname = \"totpSSH\"\ntotp_secret_file = {:?}\ntotp_length = 3\n\
         totp_ports = \"20000-40000\"\ntotp_step = \"30s\"\nseq_timeout = \"5s\"\n\
         tcp_flags = [\"syn\"]\nservice = \"SSHD\"\n\
         \n[[door]]\nname = \"otpSSH\"\none_time_sequences = {:?}\nseq_timeout = \"5s\"\n\
         tcp_flags = [\"syn\"]\nservice = \"in.otpd\"\n",
        key.display().to_string(),
        otp.display().to_string()
    );
    let mut rig = Rig::builder("otp").doors(vec![]).config(&extra).start();
    let server = rig.net.server_v4();
    let raw = rig.net.in_client(RawV4::new);
    let client = rig.client();

    // TOTP: stay clear of a step boundary so the replay below uses the same counter.
    let step_ms = 30_000u64;
    let now = || clock::wall_ms();
    if now() % step_ms > step_ms - 4_000 {
        std::thread::sleep(Duration::from_millis(step_ms - now() % step_ms + 200));
    }
    let counter = now() / step_ms;
    let ports = knock_match::totp_sequence(secret, counter, 3, 20_000, 40_000);
    knock_door(&rig, "totpSSH");
    rig.expect_line(&format!("SSHD: {client}"));
    // The same (door, step) from another source is a replay.
    let replayer = rig.net.client_subnet_v4(21);
    let before = rig.frames_settled();
    raw_knock(&raw, replayer, server, 43_000, &ports);
    rig.expect_refused(
        before,
        ports.len() as u64,
        &format!("SSHD: {replayer}"),
        "TOTP sequence replayed",
    );

    // One-time: the first sequence opens, once.
    knock_door(&rig, "otpSSH");
    rig.expect_line(&format!("in.otpd: {client}"));
    let second = rig.net.client_subnet_v4(22);
    let before = rig.frames_settled();
    raw_knock(&raw, second, server, 43_001, &[7301, 7305, 7303]);
    rig.expect_refused(
        before,
        3,
        &format!("in.otpd: {second}"),
        "used one-time sequence replayed",
    );

    // Across a restart the daemon resumes at the next unused sequence.
    rig.daemon.stop(Duration::from_secs(5));
    rig.daemon = Daemon::start(&rig.root, &rig.daemon.config.clone(), "2");
    let before = rig.frames_settled();
    raw_knock(&raw, second, server, 43_002, &[7301, 7305, 7303]);
    rig.expect_refused(
        before,
        3,
        &format!("in.otpd: {second}"),
        "used sequence after a restart",
    );
    raw_knock(&raw, second, server, 43_003, &[7401, 7405, 7403]);
    rig.expect_line(&format!("in.otpd: {second}"));
    // That was the last one: the door is now disabled, and says so.
    assert!(
        wait_until(Duration::from_secs(2), Duration::from_millis(20), || rig
            .daemon
            .log()
            .contains("exhausted")),
        "no exhaustion error in the log:\n{}",
        rig.daemon.log()
    );
}

#[test]
fn one_daemon_listens_on_several_interfaces() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let net = NetPair::new("multi");
    let root = ServerRoot::new(&net);
    root.write_hosts_allow("");
    let config = DaemonConfig::new(&root, vec![Door::allow("openSSH", &OPEN)]);
    let one = format!("interface = {:?}\n", config.interface);
    let text = config.render();
    assert!(text.contains(&one), "{text}");
    let text = text.replace(
        &one,
        &format!("interface = [{:?}, \"lo\"]\n", config.interface),
    );
    let path = root.dir().join("knockwrap.toml");
    std::fs::write(&path, text).expect("config");
    let daemon = Daemon::start(&root, &path, "1");
    net.warm_neighbours();

    // Over the veth, from the client namespace...
    let server = net.server_v4().to_string();
    run_ok(
        net.client_cmd("knock")
            .args([server.as_str(), "7000", "8000", "9000"]),
    );
    // ...and over the server's own loopback.
    run_ok(
        net.server_cmd("knock")
            .args(["127.0.0.1", "7000", "8000", "9000"]),
    );
    for line in [
        format!("SSHD: {}", net.client_v4()),
        "SSHD: 127.0.0.1".to_owned(),
    ] {
        assert!(
            wait_for_line(&root.hosts_allow(), &line, Duration::from_secs(5)).is_some(),
            "{line:?} missing; daemon log:\n{}",
            daemon.log()
        );
    }
}

#[test]
fn knocks_addressed_to_another_host_do_not_open() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("notme")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    // Frames to the server's MAC but for an IP address it does not have, as a router sees
    // traffic it forwards: the sniffer sees them, and they must not count as knocks.
    let other = Ipv4Addr::new(198, 18, rig.net.subnet, 99);
    let show = run_ok(std::process::Command::new("ip").args([
        "-n",
        rig.net.server.name(),
        "-o",
        "link",
        "show",
        SERVER_IF,
    ]));
    let show = String::from_utf8_lossy(&show.stdout).into_owned();
    let mac = show
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("server MAC")
        .to_owned();
    rig.net.client.ip(&[
        "neigh",
        "replace",
        &other.to_string(),
        "lladdr",
        &mac,
        "dev",
        CLIENT_IF,
        "nud",
        "permanent",
    ]);
    let raw = rig.net.in_client(RawV4::new);
    let src = rig.net.client_subnet_v4(31);
    let before = rig.frames_settled();
    raw_knock(&raw, src, other, 44_000, &OPEN_PORTS);
    rig.expect_refused(
        before,
        3,
        &format!("SSHD: {src}"),
        "knock addressed to another host",
    );

    // Control: the same source knocking at the server's own address opens.
    raw_knock(&raw, src, rig.net.server_v4(), 44_001, &OPEN_PORTS);
    rig.expect_line(&format!("SSHD: {src}"));
}
