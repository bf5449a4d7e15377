//! The firewall door against the real kernel: nft inside a fresh network namespace (never the
//! host's ruleset), a listener in the server namespace, connects from the client namespace.
//! Needs root, `ip` and `nft`; otherwise skipped (or failed under
//! KNOCKWRAP_REQUIRE_PRIVILEGED=1).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::*;
use knockwrap_firewall::{Admit, Ensured, Error, Firewall, Proto, Revoke, Runner, Spec};

const SSH: u16 = 22;

fn spec(allow: &[(IpAddr, u8)]) -> Spec {
    Spec {
        always_allow: allow.to_vec(),
        guarded: vec![(Proto::Tcp, SSH)],
        ..Spec::default()
    }
}

/// A dual-stack listener on `port` in the server namespace.
fn listen(pair: &NetPair, port: u16) -> TcpListener {
    pair.in_server(|| TcpListener::bind(("::", port)).unwrap())
}

fn v4(a: std::net::Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

fn v6(a: std::net::Ipv6Addr) -> IpAddr {
    IpAddr::V6(a)
}

#[test]
fn guarded_port_is_hidden_until_admitted_and_again_after_the_timeout() {
    test_support::skip_unless_root!("ip", "nft");
    let pair = pair("v4");
    let fw = Firewall::new(spec(&[]), runner(&pair)).unwrap();
    assert_eq!(fw.ensure().unwrap(), Ensured::Created);
    let listener = listen(&pair, SSH);
    let _open = listen(&pair, 8080);

    // Before a knock: nothing comes back from the guarded port although it listens; other
    // ports are untouched (a closed one refuses at once, an open one accepts).
    assert_filtered(
        pair.connect(pair.client_addr(false), pair.server_addr(false), SSH),
        "before admission",
    );
    let refused = pair
        .connect(pair.client_addr(false), pair.server_addr(false), 81)
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    pair.connect(pair.client_addr(false), pair.server_addr(false), 8080)
        .unwrap();

    fw.admit(
        pair.client_addr(false),
        Proto::Tcp,
        SSH,
        Duration::from_secs(3),
    )
    .unwrap();
    let admitted_at = Instant::now();
    let mut est = pair
        .connect(pair.client_addr(false), pair.server_addr(false), SSH)
        .unwrap();
    let (mut srv, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip().to_canonical(), pair.client_addr(false));
    // Another source on the client's side still sees nothing.
    assert_filtered(
        pair.connect(v4(other4(&pair)), pair.server_addr(false), SSH),
        "other source",
    );

    let els = fw.elements().unwrap();
    assert_eq!(els.len(), 1, "{els:?}");
    assert_eq!(
        (els[0].addr, els[0].proto, els[0].port),
        (pair.client_addr(false), Proto::Tcp, SSH)
    );
    let left = els[0].expires_in.unwrap();
    assert!(
        left <= Duration::from_secs(3) && left >= Duration::from_secs(1),
        "{left:?}"
    );

    // After the timeout: new connections are filtered again, the kernel did it alone.
    std::thread::sleep(
        (admitted_at + Duration::from_millis(3_300)).saturating_duration_since(Instant::now()),
    );
    assert_filtered(
        pair.connect(pair.client_addr(false), pair.server_addr(false), SSH),
        "after the timeout",
    );
    assert!(fw.elements().unwrap().is_empty());
    // The connection made while admitted keeps working, both ways.
    est.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    srv.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    srv.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    srv.write_all(b"pong").unwrap();
    est.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    est.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    fw.remove().unwrap();
}

#[test]
fn ipv6_knocker_is_admitted_by_a_v6_element_and_revoke_removes_it() {
    test_support::skip_unless_root!("ip", "nft");
    let pair = pair("v6");
    let fw = Firewall::new(spec(&[]), runner(&pair)).unwrap();
    fw.ensure().unwrap();
    let _l = listen(&pair, SSH);

    assert_filtered(
        pair.connect(v6(CLIENT_V6), v6(SERVER_V6), SSH),
        "v6 before admission",
    );
    fw.admit(v6(CLIENT_V6), Proto::Tcp, SSH, Duration::from_secs(30))
        .unwrap();
    // An admission for IPv4 port 2222 too: the revoke takes every element of the address.
    fw.admit(v6(CLIENT_V6), Proto::Udp, 2222, Duration::from_secs(30))
        .unwrap();
    pair.connect(v6(CLIENT_V6), v6(SERVER_V6), SSH).unwrap();
    assert_filtered(
        pair.connect(v6(OTHER6), v6(SERVER_V6), SSH),
        "v6 other source",
    );
    // The v6 admission does not admit the same host's IPv4 address.
    assert_filtered(
        pair.connect(pair.client_addr(false), pair.server_addr(false), SSH),
        "v4 of a v6 knocker",
    );

    let mut els = fw.elements().unwrap();
    els.sort_by_key(|e| e.port);
    assert_eq!(els.len(), 2, "{els:?}");
    assert_eq!(
        (els[0].addr, els[0].proto, els[0].port),
        (v6(CLIENT_V6), Proto::Tcp, SSH)
    );
    assert_eq!((els[1].proto, els[1].port), (Proto::Udp, 2222));
    assert!(els[0].expires_in.unwrap() >= Duration::from_secs(28));

    assert_eq!(fw.revoke(v6(CLIENT_V6)).unwrap(), 2);
    assert!(fw.elements().unwrap().is_empty());
    assert_filtered(
        pair.connect(v6(CLIENT_V6), v6(SERVER_V6), SSH),
        "v6 after revoke",
    );
    // Revoking what is not there is not an error.
    assert_eq!(fw.revoke(v6(CLIENT_V6)).unwrap(), 0);
}

#[test]
fn always_allow_sources_connect_without_admission() {
    test_support::skip_unless_root!("ip", "nft");
    let pair = pair("allow");
    let fw = Firewall::new(
        spec(&[
            (v4(other4(&pair)), 32),
            (v6(OTHER6), 128),
            ("203.0.113.0".parse().unwrap(), 24),
        ]),
        runner(&pair),
    )
    .unwrap();
    fw.ensure().unwrap();
    let _l = listen(&pair, SSH);
    pair.connect(v4(other4(&pair)), pair.server_addr(false), SSH)
        .unwrap();
    pair.connect(v6(OTHER6), v6(SERVER_V6), SSH).unwrap();
    assert_filtered(
        pair.connect(pair.client_addr(false), pair.server_addr(false), SSH),
        "v4 not allowed",
    );
    assert_filtered(
        pair.connect(v6(CLIENT_V6), v6(SERVER_V6), SSH),
        "v6 not allowed",
    );
}

#[test]
fn loopback_is_never_hidden() {
    test_support::skip_unless_root!("ip", "nft");
    let pair = pair("lo");
    let fw = Firewall::new(spec(&[]), runner(&pair)).unwrap();
    fw.ensure().unwrap();
    let _l = listen(&pair, SSH);
    // A local process, to 127.0.0.1, ::1 or the host's own address (which goes through lo).
    pair.in_server(|| {
        for dst in [
            "127.0.0.1".parse().unwrap(),
            "::1".parse().unwrap(),
            pair.server_addr(false),
            v6(SERVER_V6),
        ] {
            connect_from(None, SocketAddr::new(dst, SSH), FILTERED_AFTER)
                .unwrap_or_else(|e| panic!("local connect to {dst}: {e}"));
        }
    });
}

#[test]
fn ensure_again_keeps_admissions_and_replaces_a_foreign_shape() {
    test_support::skip_unless_root!("ip", "nft");
    let pair = pair("ensure");
    let fw = Firewall::new(spec(&[]), runner(&pair)).unwrap();
    assert!(!fw.exists().unwrap());
    assert_eq!(fw.ensure().unwrap(), Ensured::Created);
    assert!(fw.exists().unwrap());
    let _l = listen(&pair, SSH);
    let _l2 = listen(&pair, 2222);
    fw.admit(
        pair.client_addr(false),
        Proto::Tcp,
        SSH,
        Duration::from_secs(60),
    )
    .unwrap();
    fw.admit(v6(CLIENT_V6), Proto::Tcp, SSH, Duration::from_secs(60))
        .unwrap();
    let before = fw.elements().unwrap();

    // The same spec again, then a changed one (a reload): admissions untouched.
    assert_eq!(fw.ensure().unwrap(), Ensured::Updated);
    let mut changed = spec(&[(v4(other4(&pair)), 32)]);
    changed.guarded.push((Proto::Tcp, 2222));
    let fw2 = Firewall::new(changed, runner(&pair)).unwrap();
    assert_eq!(fw2.ensure().unwrap(), Ensured::Updated);
    let after = fw2.elements().unwrap();
    assert_eq!(after.len(), 2, "{after:?}");
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((b.addr, b.proto, b.port), (a.addr, a.proto, a.port));
        assert!(a.expires_in.unwrap() >= Duration::from_secs(57), "{a:?}");
    }
    pair.connect(pair.client_addr(false), pair.server_addr(false), SSH)
        .unwrap();
    // The new spec holds: 2222 is now hidden, OTHER4 always allowed.
    assert_filtered(
        pair.connect(pair.client_addr(false), pair.server_addr(false), 2222),
        "newly guarded port",
    );
    pair.connect(v4(other4(&pair)), pair.server_addr(false), 2222)
        .unwrap();

    // Something of its own in the table: replaced whole, admissions re-added.
    nft(&pair, &["add", "chain", "inet", "knockwrap", "extra"]);
    match fw2.ensure().unwrap() {
        Ensured::Replaced {
            kept: 2,
            dropped: 0,
            why,
        } => assert_eq!(why, "chain extra"),
        other => panic!("{other:?}"),
    }
    let replaced = fw2.elements().unwrap();
    assert_eq!(replaced.len(), 2, "{replaced:?}");
    assert!(replaced
        .iter()
        .all(|a| a.expires_in.unwrap() >= Duration::from_secs(57)
            && a.expires_in.unwrap() <= Duration::from_secs(60)));
    assert_eq!(
        fw2.ensure().unwrap(),
        Ensured::Updated,
        "extra chain is gone"
    );
    pair.connect(pair.client_addr(false), pair.server_addr(false), SSH)
        .unwrap();
    pair.connect(v4(other4(&pair)), pair.server_addr(false), SSH)
        .unwrap();
}

#[test]
fn apply_changes_many_admissions_in_one_transaction() {
    test_support::skip_unless_root!("ip", "nft");
    let pair = pair("apply");
    let fw = Firewall::new(spec(&[]), runner(&pair)).unwrap();
    fw.ensure().unwrap();
    let t = Duration::from_secs(60);
    let admits: Vec<Admit> = (0..200u16)
        .map(|i| {
            let addr: IpAddr = if i % 2 == 0 {
                format!("198.19.{}.{}", i / 250, i % 250 + 1)
                    .parse()
                    .unwrap()
            } else {
                format!("fd00:4b57::1:{i:x}").parse().unwrap()
            };
            Admit {
                addr,
                proto: Proto::Tcp,
                port: SSH,
                timeout: t,
            }
        })
        .collect();
    let started = Instant::now();
    fw.apply(&admits, &[]).unwrap();
    let took = started.elapsed();
    eprintln!("200 admissions in one transaction: {took:?}");
    assert_eq!(fw.elements().unwrap().len(), 200);

    // Revokes (a whole address, one element, one that is not there) and new admissions,
    // among them an IPv4-mapped IPv6 address, together.
    let mapped: IpAddr = IpAddr::V6(pair.client_v4().to_ipv6_mapped());
    fw.apply(
        &[
            Admit {
                addr: mapped,
                proto: Proto::Tcp,
                port: SSH,
                timeout: t,
            },
            Admit {
                addr: mapped,
                proto: Proto::Udp,
                port: 53,
                timeout: Duration::from_millis(1),
            },
        ],
        &[
            Revoke::Addr(admits[0].addr),
            Revoke::Port {
                addr: admits[1].addr,
                proto: Proto::Tcp,
                port: SSH,
            },
            Revoke::Port {
                addr: admits[2].addr,
                proto: Proto::Udp,
                port: SSH,
            },
            Revoke::Addr("198.18.9.9".parse().unwrap()),
        ],
    )
    .unwrap();
    let els = fw.elements().unwrap();
    assert_eq!(els.len(), 200 - 2 + 2, "{els:?}");
    assert!(els
        .iter()
        .any(|e| e.addr == pair.client_addr(false) && e.proto == Proto::Udp && e.port == 53));
    assert!(!els
        .iter()
        .any(|e| e.addr == admits[0].addr || e.addr == admits[1].addr));
    let _l = listen(&pair, SSH);
    pair.connect(pair.client_addr(false), pair.server_addr(false), SSH)
        .unwrap();

    // Nothing happens unless all of it does: with the IPv6 set gone (by hand), a batch of an
    // IPv4 and an IPv6 admission fails and leaves the IPv4 one out too.
    nft(&pair, &["flush", "chain", "inet", "knockwrap", "guard"]);
    nft(&pair, &["delete", "set", "inet", "knockwrap", "admit6"]);
    let lone: IpAddr = "198.18.7.7".parse().unwrap();
    let e = fw
        .apply(
            &[
                Admit {
                    addr: lone,
                    proto: Proto::Tcp,
                    port: SSH,
                    timeout: t,
                },
                Admit {
                    addr: v6(CLIENT_V6),
                    proto: Proto::Tcp,
                    port: SSH,
                    timeout: t,
                },
            ],
            &[],
        )
        .unwrap_err();
    assert!(matches!(e, Error::Nft { .. }), "{e:?}");
    assert!(!fw.elements().unwrap().iter().any(|a| a.addr == lone));

    fw.remove().unwrap();
    fw.remove().unwrap();
    assert!(!fw.exists().unwrap());
}

#[test]
fn errors_name_the_table_and_what_nft_said() {
    test_support::skip_unless_root!("ip", "nft");
    let pair = pair("err");
    let fw = Firewall::new(
        Spec {
            table: "kw_missing".into(),
            ..spec(&[])
        },
        runner(&pair),
    )
    .unwrap();
    match fw.elements() {
        Err(Error::Missing { table, .. }) => assert_eq!(table, "kw_missing"),
        other => panic!("{other:?}"),
    }
    let e = fw
        .admit(
            pair.client_addr(false),
            Proto::Tcp,
            SSH,
            Duration::from_secs(5),
        )
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Nft { .. }), "{e:?}");
    assert!(
        msg.contains("table inet kw_missing") && msg.contains("No such file or directory"),
        "{msg}"
    );
    assert!(!msg.contains("internal:0:0-0"), "{msg}");
    // Removing what is not there is not an error.
    fw.remove().unwrap();
}

#[test]
fn a_missing_nft_and_bad_admissions_are_typed_errors() {
    // No root needed: nothing reaches the kernel.
    let fw = Firewall::new(spec(&[]), Runner::new("/nonexistent/nft")).unwrap();
    let client: IpAddr = "198.18.0.2".parse().unwrap();
    let e = fw.ensure().unwrap_err();
    assert!(matches!(e, Error::Spawn { .. }), "{e:?}");
    assert!(
        e.to_string().contains("table inet knockwrap")
            && e.to_string().contains("/nonexistent/nft"),
        "{e}"
    );
    assert!(matches!(
        fw.admit(client, Proto::Tcp, SSH, Duration::ZERO),
        Err(Error::ZeroTimeout { .. })
    ));
    assert!(matches!(
        fw.admit(client, Proto::Udp, 0, Duration::from_secs(1)),
        Err(Error::PortZero { .. })
    ));
    assert!(matches!(
        Firewall::new(
            Spec {
                table: "a b".into(),
                ..Spec::default()
            },
            Runner::default()
        ),
        Err(Error::TableName { .. })
    ));
}
