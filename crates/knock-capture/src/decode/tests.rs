use super::*;
use crate::testframes::*;
use proptest::prelude::*;

const C4: [u8; 4] = [198, 18, 0, 2];
const S4: [u8; 4] = [198, 18, 0, 1];
const SYN: u8 = TcpFlags::SYN;

fn ev(link: LinkType, f: &[u8]) -> Option<KnockEvent> {
    decode(link, f, 42)
}

#[test]
fn ethernet_ipv4_tcp_syn() {
    let f = frame(
        LinkType::Ethernet,
        &[],
        &ipv4(C4, S4, 6, 0, 0, &tcp(40000, 7000, SYN)),
    );
    let e = ev(LinkType::Ethernet, &f).unwrap();
    assert_eq!(
        e,
        KnockEvent {
            time_ms: 42,
            src: addr4(C4),
            dst: addr4(S4),
            proto: Proto::Tcp,
            dport: 7000,
            flags: TcpFlags(SYN),
            to_host: false,
            via_loopback: false,
            // The test frames carry sequence number 0.
            attempt: KnockEvent::attempt_of(40000, 0),
            interface: 0,
        }
    );
}

#[test]
fn ipv4_options_move_the_l4_header() {
    for opts in [4usize, 20, 40] {
        let f = frame(
            LinkType::Ethernet,
            &[],
            &ipv4(C4, S4, 17, opts, 0, &udp(5, 9000, b"\0")),
        );
        let e = ev(LinkType::Ethernet, &f).unwrap();
        assert_eq!((e.proto, e.dport, e.flags), (Proto::Udp, 9000, TcpFlags(0)));
    }
}

#[test]
fn ipv4_bad_headers_are_refused() {
    let mut p = ipv4(C4, S4, 6, 0, 0, &tcp(1, 2, SYN));
    p[0] = 0x44; // IHL 16 bytes < 20
    assert_eq!(ev(LinkType::RawIp, &p), None);
    let mut p = ipv4(C4, S4, 6, 0, 0, &tcp(1, 2, SYN));
    p[2..4].copy_from_slice(&30u16.to_be_bytes()); // total length cuts the TCP header
    assert_eq!(ev(LinkType::RawIp, &p), None);
    let mut p = ipv4(C4, S4, 6, 0, 0, &tcp(1, 2, SYN));
    p[20 + 12] = 4 << 4; // TCP data offset 4
    assert_eq!(ev(LinkType::RawIp, &p), None);
    let p = ipv4(C4, S4, 1, 0, 0, &[8, 0, 0, 0, 0, 0, 0, 0]); // ICMP
    assert_eq!(ev(LinkType::RawIp, &p), None);
}

#[test]
fn ethernet_padding_is_ignored() {
    let mut f = frame(
        LinkType::Ethernet,
        &[],
        &ipv4(C4, S4, 17, 0, 0, &udp(5, 9000, b"\0")),
    );
    f.resize(60, 0xee);
    assert_eq!(ev(LinkType::Ethernet, &f).unwrap().dport, 9000);
}

#[test]
fn fragments_only_the_first_with_its_header() {
    let mf = 0x2000;
    let p = ipv4(C4, S4, 6, 0, mf, &tcp(1, 7000, SYN));
    assert_eq!(ev(LinkType::RawIp, &p).unwrap().dport, 7000);
    let p = ipv4(C4, S4, 6, 0, mf | 3, &tcp(1, 7000, SYN));
    assert_eq!(ev(LinkType::RawIp, &p), None);
    let p = ipv4(C4, S4, 6, 0, 1, &tcp(1, 7000, SYN)); // last fragment, offset 8
    assert_eq!(ev(LinkType::RawIp, &p), None);
    let p = ipv4(C4, S4, 6, 0, mf, &tcp(1, 7000, SYN)[..12]); // first, header cut
    assert_eq!(ev(LinkType::RawIp, &p), None);
}

#[test]
fn vlan_tags_one_and_two() {
    let ip = ipv4(C4, S4, 6, 0, 0, &tcp(1, 7000, SYN));
    for tags in [
        &[TPID_8021Q][..],
        &[TPID_8021AD, TPID_8021Q],
        &[TPID_8021Q, TPID_8021Q],
    ] {
        let f = frame(LinkType::Ethernet, tags, &ip);
        assert_eq!(ev(LinkType::Ethernet, &f).unwrap().dport, 7000, "{tags:x?}");
    }
    let f = frame(LinkType::Ethernet, &[TPID_8021Q; 3], &ip);
    assert_eq!(ev(LinkType::Ethernet, &f), None);
}

#[test]
fn raw_ip_and_cooked() {
    let v6p = ipv6(v6(2), v6(1), &[], 17, &udp(5, 9000, b"\0"));
    let e = ev(LinkType::RawIp, &v6p).unwrap();
    assert_eq!((e.src, e.dport), (IpAddr::from(v6(2)), 9000));
    let f = frame(LinkType::LinuxSll, &[], &v6p);
    assert_eq!(ev(LinkType::LinuxSll, &f), Some(e));
    let f = frame(
        LinkType::LinuxSll,
        &[],
        &ipv4(C4, S4, 6, 0, 0, &tcp(1, 80, SYN)),
    );
    assert_eq!(ev(LinkType::LinuxSll, &f).unwrap().dport, 80);
    assert_eq!(ev(LinkType::RawIp, &[0x50; 60]), None);
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let exts = vec![
        (0u8, vec![1, 4, 0, 0, 0, 0]),
        (60, vec![]),
        (43, vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        (44, vec![0, 0, 0, 0, 0, 1]), // offset 0, id 1: first fragment
        (51, vec![0; 14]),
    ];
    let p = ipv6(v6(2), v6(1), &exts, 6, &tcp(1, 7000, SYN));
    let e = ev(LinkType::RawIp, &p).unwrap();
    assert_eq!(
        (e.proto, e.dport, e.flags),
        (Proto::Tcp, 7000, TcpFlags(SYN))
    );
}

#[test]
fn ipv6_refusals() {
    // Non-first fragment.
    let p = ipv6(
        v6(2),
        v6(1),
        &[(44, vec![0, 8, 0, 0, 0, 1])],
        6,
        &tcp(1, 7000, SYN),
    );
    assert_eq!(ev(LinkType::RawIp, &p), None);
    // Too many extension headers.
    let many: Vec<(u8, Vec<u8>)> = (0..9).map(|_| (60u8, vec![])).collect();
    let p = ipv6(v6(2), v6(1), &many, 6, &tcp(1, 7000, SYN));
    assert_eq!(ev(LinkType::RawIp, &p), None);
    // Eight is still fine.
    let p = ipv6(v6(2), v6(1), &many[..8], 6, &tcp(1, 7000, SYN));
    assert_eq!(ev(LinkType::RawIp, &p).unwrap().dport, 7000);
    // ICMPv6, and "no next header".
    assert_eq!(
        ev(
            LinkType::RawIp,
            &ipv6(v6(2), v6(1), &[], 58, &[128, 0, 0, 0])
        ),
        None
    );
    assert_eq!(ev(LinkType::RawIp, &ipv6(v6(2), v6(1), &[], 59, &[])), None);
    // Payload length shorter than the TCP header.
    let mut p = ipv6(v6(2), v6(1), &[], 6, &tcp(1, 7000, SYN));
    p[4..6].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(ev(LinkType::RawIp, &p), None);
    // An extension header claiming more bytes than there are.
    let mut p = ipv6(v6(2), v6(1), &[(60, vec![])], 6, &tcp(1, 7000, SYN));
    p[41] = 200;
    assert_eq!(ev(LinkType::RawIp, &p), None);
}

fn any_link() -> impl Strategy<Value = LinkType> {
    prop_oneof![
        Just(LinkType::Ethernet),
        Just(LinkType::RawIp),
        Just(LinkType::LinuxSll)
    ]
}

/// A valid frame and the event it must decode to.
fn valid_frame() -> impl Strategy<Value = (LinkType, Vec<u8>, KnockEvent)> {
    (
        any_link(),
        0usize..3,
        any::<bool>(),
        any::<bool>(),
        any::<u16>(),
        any::<u8>(),
        0usize..11,
        any::<[u8; 4]>(),
        any::<[u8; 16]>(),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(
            |(link, ntags, v6p, is_tcp, dport, flags, opts, a4, a6, pay)| {
                let l4 = if is_tcp {
                    tcp(999, dport, flags)
                } else {
                    udp(999, dport, &pay)
                };
                let proto_n = if is_tcp { 6 } else { 17 };
                let (ip, src, dst) = if v6p {
                    (
                        ipv6(a6, v6(1), &[], proto_n, &l4),
                        IpAddr::from(a6),
                        IpAddr::from(v6(1)),
                    )
                } else {
                    (
                        ipv4(a4, S4, proto_n, opts * 4, 0, &l4),
                        IpAddr::from(a4),
                        addr4(S4),
                    )
                };
                let tags = if link == LinkType::Ethernet {
                    &[TPID_8021AD, TPID_8021Q][..ntags]
                } else {
                    &[]
                };
                let e = KnockEvent {
                    time_ms: 7,
                    src,
                    dst,
                    proto: if is_tcp { Proto::Tcp } else { Proto::Udp },
                    dport,
                    flags: TcpFlags(if is_tcp { flags } else { 0 }),
                    to_host: false,
                    via_loopback: false,
                    attempt: if is_tcp {
                        KnockEvent::attempt_of(999, 0)
                    } else {
                        0
                    },
                    interface: 0,
                };
                (link, frame(link, tags, &ip), e)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(link in any_link(), bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(link, &bytes, 0);
    }

    #[test]
    fn valid_frames_decode_exactly((link, f, e) in valid_frame()) {
        prop_assert_eq!(decode(link, &f, 7), Some(e));
    }

    #[test]
    fn mutated_frames_never_panic(
        (link, f, _) in valid_frame(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut f = f;
        for (at, byte) in edits {
            let i = at.index(f.len());
            f[i] = byte;
        }
        let keep = cut.index(f.len() + 1);
        let _ = decode(link, &f[..keep], 0);
        let _ = decode(link, &f, 0);
    }
}
