//! The firewall door end to end, with the kernel's nf_tables inside the server's network
//! namespace (never the host's ruleset), Debian's sshd and the real `knock` client: a guarded
//! port is filtered (no answer at all) until a knock admits the knocker, for the lease only,
//! while an established session outlives it; the kernel ends an admission on time with the
//! daemon killed, and a restart reconciles; IPv6 knockers get a v6 element; a closing
//! sequence and `knockwrap revoke` remove it; a complete knock from outside a door's
//! `knock_from` opens nothing and is counted; an `always_allow` source reaches the port
//! without knocking; a stopped daemon leaves admitted knockers admitted and the port hidden
//! (the real OpenSSH client's login: `tests/client.rs`). The sshd here ignores hosts.allow (its
//! hosts.deny denies nothing), so only the firewall decides: `hosts_allow = false`. Needs root.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use test_support::daemon::knockwrap_bin;
use test_support::rig::Rig;
use test_support::{serial, wait_until, Daemon, Door};

const OPEN: [&str; 3] = ["7000", "8000", "9000"];
const CLOSE: [&str; 3] = ["9000", "8000", "7000"];
const FIREWALL_ONLY: &str = "open_ports = [\"22/tcp\"]\nhosts_allow = false\n";

/// What a TCP connect to sshd from the client namespace meets.
#[derive(Debug, PartialEq, Eq)]
enum Reach {
    /// sshd's banner.
    Banner,
    /// A reset: the port is visible (the guard is not there).
    Refused,
    /// No answer at all: filtered.
    Filtered,
    /// Connected but no banner.
    Silent,
}

fn reach(rig: &Rig, addr: IpAddr) -> Reach {
    rig.net.in_client(|| {
        let target = SocketAddr::new(addr, 22);
        match TcpStream::connect_timeout(&target, Duration::from_millis(1500)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Reach::Refused,
            Err(_) => Reach::Filtered,
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_millis(1500)));
                let mut buf = [0u8; 64];
                match s.read(&mut buf) {
                    Ok(n) if buf[..n].starts_with(b"SSH-2.0-") => Reach::Banner,
                    _ => Reach::Silent,
                }
            }
        }
    })
}

/// What a TCP connect to sshd from `src`, another address put on the client's interface,
/// meets: the banner (true) or nothing within 1.5 s (false). Through python3's socket
/// module, which can bind the source before connecting.
fn banner_from(rig: &Rig, src: std::net::Ipv4Addr, server: std::net::Ipv4Addr) -> bool {
    let script = "import socket,sys\n\
s=socket.socket(); s.bind((sys.argv[1], 0)); s.settimeout(1.5)\n\
try:\n    s.connect((sys.argv[2], 22)); print(s.recv(8).decode(errors='replace'))\n\
except Exception as e:\n    print('no:', type(e).__name__)\n";
    let out = rig
        .net
        .client_cmd("python3")
        .args(["-c", script, &src.to_string(), &server.to_string()])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).starts_with("SSH-2.0")
}

fn rig(tag: &str, doors: Vec<Door>, extra: &str) -> Rig {
    let rig = Rig::builder(tag).doors(doors).config(extra).sshd().start();
    // libwrap lets everyone in: only the firewall decides.
    std::fs::write(rig.root.etc.join("hosts.deny"), "").expect("hosts.deny");
    rig
}

fn wait_reach(rig: &Rig, addr: IpAddr, want: Reach, within: Duration) -> bool {
    wait_until(within, Duration::from_millis(100), || {
        reach(rig, addr) == want
    })
}

#[test]
fn a_guarded_port_is_filtered_until_the_knock_and_for_the_lease_only() {
    test_support::skip_unless_root!("nft");
    let _serial = serial();
    let open = Door::allow("openSSH", &OPEN)
        .lease("6s")
        .with(FIREWALL_ONLY);
    let rig = rig("fwdoor", vec![open], "");
    let server = IpAddr::V4(rig.net.server_v4());
    assert_eq!(
        reach(&rig, server),
        Reach::Filtered,
        "before any knock sshd must not answer at all\n{}",
        rig.daemon.log()
    );

    rig.knock(&[&rig.server(), "7000", "8000", "9000"]);
    let opened = Instant::now();
    assert!(
        wait_reach(&rig, server, Reach::Banner, Duration::from_secs(3)),
        "no banner after the knock\n{}",
        rig.daemon.log()
    );
    // No hosts.allow line: a firewall-only door.
    assert_eq!(rig.hosts_allow(), "");
    let s = rig.status();
    assert_eq!(s["leases"][0]["ports"][0], "22/tcp", "{s}");
    // A session made during the lease.
    let session = rig.net.in_client(|| {
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::new(server, 22), Duration::from_secs(2))
                .expect("session");
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).expect("banner");
        assert!(buf[..n].starts_with(b"SSH-2.0-"));
        s
    });

    // Another source on the client's link still finds the port hidden: the admission is the
    // knocker's address only.
    let other = rig.net.client_subnet_v4(70);
    rig.net.add_client_addr(IpAddr::V4(other));
    assert!(
        !banner_from(&rig, other, rig.net.server_v4()),
        "another source reached the guarded port after someone else's knock"
    );
    assert!(
        banner_from(&rig, rig.net.client_v4(), rig.net.server_v4()),
        "the knocker's own address, bound the same way, must get in (the probe works)"
    );

    // After the lease: new connections filtered again, by the kernel's timeout or the expiry.
    assert!(
        wait_reach(&rig, server, Reach::Filtered, Duration::from_secs(10)),
        "still reachable after the lease\n{}",
        rig.daemon.log()
    );
    assert!(
        opened.elapsed() >= Duration::from_secs(3),
        "closed early: {:?}",
        opened.elapsed()
    );
    // The established session still works: sshd answers our identification with its KEXINIT.
    rig.net.in_client(|| {
        let mut s = session;
        s.write_all(b"SSH-2.0-knockwrap_test\r\n").expect("write");
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).expect("the established session was cut");
        assert!(n > 0, "the established session was cut");
    });
}

#[test]
fn the_kernel_ends_an_admission_with_the_daemon_killed_and_a_restart_reconciles() {
    test_support::skip_unless_root!("nft");
    let _serial = serial();
    let open = Door::allow("openSSH", &OPEN)
        .lease("4s")
        .with(FIREWALL_ONLY);
    let long = Door::allow("longSSH", &["7300", "8300", "9300"])
        .lease("1h")
        .with(FIREWALL_ONLY);
    let mut rig = rig("fwkill", vec![open, long], "");
    let server = IpAddr::V4(rig.net.server_v4());
    rig.knock(&[&rig.server(), "7000", "8000", "9000"]);
    assert!(wait_reach(
        &rig,
        server,
        Reach::Banner,
        Duration::from_secs(3)
    ));
    rig.daemon.kill9();
    let killed = Instant::now();
    assert!(
        wait_reach(&rig, server, Reach::Filtered, Duration::from_secs(10)),
        "the kernel did not end the admission with the daemon dead"
    );
    assert!(killed.elapsed() < Duration::from_secs(8));

    // An admission without a lease (planted while the daemon is down) is removed at start,
    // and a running lease without its element is admitted again.
    let journal = rig.root.dir().join("state").join("leases.json");
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let client = rig.client();
    std::fs::write(
        &journal,
        format!(
            "{{\"version\": 2, \"leases\": [{{\"ip\": \"{client}\", \"service\": \"SSHD\", \"door\": \"longSSH\", \"expires_at\": {end}, \"added_line\": false, \"ports\": [\"22/tcp\"]}}]}}\n"
        ),
    )
    .unwrap();
    let mut restarted = Daemon::spawn(&rig.root, &rig.daemon.config, "2");
    restarted
        .wait_notice("READY=1", Duration::from_secs(15))
        .unwrap_or_else(|why| panic!("not ready: {why}\n{}", restarted.log()));
    rig.daemon = restarted;
    assert!(
        wait_reach(&rig, server, Reach::Banner, Duration::from_secs(3)),
        "a running lease was not admitted again at start\n{}",
        rig.daemon.log()
    );
    // `knockwrap revoke` removes the admission with the lease.
    let out = rig
        .root
        .command(knockwrap_bin())
        .args(["revoke", &client, "--config"])
        .arg(&rig.daemon.config)
        .output()
        .expect("revoke");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_reach(&rig, server, Reach::Filtered, Duration::from_secs(3)),
        "revoke left the admission\n{}",
        rig.daemon.log()
    );
}

#[test]
fn ipv6_knockers_get_a_v6_element_and_the_closing_sequence_removes_it() {
    test_support::skip_unless_root!("nft");
    let _serial = serial();
    let open = Door::allow("openSSH", &OPEN)
        .lease("1h")
        .with(FIREWALL_ONLY);
    let close = Door::revoke("closeSSH", &CLOSE).with(FIREWALL_ONLY);
    let rig = rig("fwv6", vec![open, close], "");
    let server6 = IpAddr::V6(rig.net.server_v6());
    let server4 = IpAddr::V4(rig.net.server_v4());
    assert_eq!(reach(&rig, server6), Reach::Filtered);
    let s6 = rig.net.server_v6().to_string();
    rig.knock(&["-6", &s6, "7000", "8000", "9000"]);
    assert!(
        wait_reach(&rig, server6, Reach::Banner, Duration::from_secs(3)),
        "no banner over IPv6 after a v6 knock\n{}",
        rig.daemon.log()
    );
    assert_eq!(
        reach(&rig, server4),
        Reach::Filtered,
        "a v6 knock admitted the v4 address"
    );
    rig.knock(&["-6", &s6, "9000", "8000", "7000"]);
    assert!(
        wait_reach(&rig, server6, Reach::Filtered, Duration::from_secs(3)),
        "the closing sequence left the admission\n{}",
        rig.daemon.log()
    );
}

#[test]
fn a_complete_knock_from_outside_knock_from_opens_nothing_and_is_counted() {
    test_support::skip_unless_root!("nft");
    let _serial = serial();
    let open = Door::allow("openSSH", &OPEN)
        .lease("1h")
        .with(FIREWALL_ONLY)
        .with("knock_from = [\"203.0.113.0/24\"]\n");
    let rig = rig("fwfrom", vec![open], "");
    let server = IpAddr::V4(rig.net.server_v4());
    let before = rig.frames_settled();
    rig.knock(&[&rig.server(), "7000", "8000", "9000"]);
    let counted = wait_until(Duration::from_secs(6), Duration::from_millis(100), || {
        rig.refused("source outside the door's knock_from") >= 1
    });
    assert!(counted, "{}\n{}", rig.status(), rig.daemon.log());
    rig.expect_refused(
        before,
        3,
        &format!("SSHD: {}", rig.client()),
        "a knock from outside knock_from",
    );
    assert_eq!(reach(&rig, server), Reach::Filtered, "{}", rig.daemon.log());
    assert!(rig.status()["leases"]
        .as_array()
        .is_none_or(|l| l.is_empty()));
}

#[test]
fn an_always_allow_source_reaches_the_guarded_port_without_knocking() {
    test_support::skip_unless_root!("nft");
    let _serial = serial();
    let net_probe = test_support::net::peek_subnet();
    // The client's address (the pair's .2) as the office network.
    let extra = format!("[firewall]\nalways_allow = [\"198.18.{net_probe}.2/32\"]\n");
    let open = Door::allow("openSSH", &OPEN)
        .lease("1h")
        .with(FIREWALL_ONLY);
    let rig = rig("fwallow", vec![open], &extra);
    assert_eq!(rig.client(), format!("198.18.{net_probe}.2"));
    let server = IpAddr::V4(rig.net.server_v4());
    assert!(
        wait_reach(&rig, server, Reach::Banner, Duration::from_secs(3)),
        "an always_allow source was hidden from the guarded port\n{}",
        rig.daemon.log()
    );
    // No knock, so no lease and nothing admitted: always_allow alone let it in.
    assert!(rig.status()["leases"]
        .as_array()
        .is_none_or(|l| l.is_empty()));
    // Over IPv6 the client is not in always_allow: still hidden.
    assert_eq!(
        reach(&rig, IpAddr::V6(rig.net.server_v6())),
        Reach::Filtered
    );
}

#[test]
fn a_stopped_daemon_leaves_admitted_knockers_admitted_and_guarded_ports_hidden() {
    test_support::skip_unless_root!("nft");
    let _serial = serial();
    let open = Door::allow("openSSH", &OPEN)
        .lease("1h")
        .with(FIREWALL_ONLY);
    let mut rig = rig("fwstop", vec![open], "");
    let server4 = IpAddr::V4(rig.net.server_v4());
    let server6 = IpAddr::V6(rig.net.server_v6());
    rig.knock(&[&rig.server(), "7000", "8000", "9000"]);
    assert!(wait_reach(
        &rig,
        server4,
        Reach::Banner,
        Duration::from_secs(3)
    ));
    rig.daemon.stop(Duration::from_secs(5));
    // The knocker keeps its lease's access; everyone else (here: the client over IPv6, never
    // admitted) still finds the port hidden.
    assert_eq!(
        reach(&rig, server4),
        Reach::Banner,
        "a stop cut an admitted knocker"
    );
    assert_eq!(
        reach(&rig, server6),
        Reach::Filtered,
        "a stop uncovered the guarded port"
    );
}
