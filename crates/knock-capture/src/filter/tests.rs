use super::*;
use crate::decode::decode;
use crate::testframes::*;
use crate::vm;
use proptest::prelude::*;

const C4: [u8; 4] = [198, 18, 0, 2];
const S4: [u8; 4] = [198, 18, 0, 1];
const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN;
const PSH: u8 = TcpFlags::PSH;
const HOST: u32 = 0;
const OUTGOING: u32 = 4;
const LINKS: [LinkType; 3] = [LinkType::Ethernet, LinkType::RawIp, LinkType::LinuxSll];

fn passes(prog: &[Insn], f: &[u8], pkttype: u32) -> bool {
    vm::run(prog, f, pkttype).expect("program runs") != 0
}

/// Doors: TCP 7000 and 8000 with SYN set and ACK clear, UDP 9000, TOTP range 20000-40000 TCP
/// with any flags; pure SYNs anywhere.
fn spec() -> FilterSpec {
    let mut s = FilterSpec::new();
    s.tcp(7000..=7000, FlagRule::new(SYN, ACK))
        .tcp(8000..=8000, FlagRule::new(SYN, ACK))
        .tcp(20000..=40000, FlagRule::ANY)
        .udp(9000..=9000);
    s.pass_pure_syn_any_port = true;
    s
}

fn v4_tcp(dport: u16, flags: u8) -> Vec<u8> {
    ipv4(C4, S4, 6, 0, 0, &tcp(40000, dport, flags))
}

fn v6_tcp(dport: u16, flags: u8) -> Vec<u8> {
    ipv6(v6(2), v6(1), &[], 6, &tcp(40000, dport, flags))
}

#[test]
fn door_ports_flags_and_sweep_syns() {
    let s = spec();
    for link in LINKS {
        let p = s.compile(link).unwrap();
        for ip in [v4_tcp as fn(u16, u8) -> Vec<u8>, v6_tcp] {
            let f = |port, flags| frame(link, &[], &ip(port, flags));
            assert!(passes(&p, &f(7000, SYN), HOST));
            assert!(
                passes(&p, &f(7000, SYN | TcpFlags::ECE), HOST),
                "extra flags allowed"
            );
            assert!(
                !passes(&p, &f(7000, SYN | ACK), HOST),
                "door flags say !ack"
            );
            assert!(!passes(&p, &f(7000, ACK), HOST));
            assert!(passes(&p, &f(8000, SYN | TcpFlags::PSH), HOST));
            assert!(passes(&p, &f(20000, ACK), HOST), "range start, any flags");
            assert!(passes(&p, &f(31234, TcpFlags::FIN), HOST));
            assert!(passes(&p, &f(40000, 0), HOST), "range end");
            assert!(!passes(&p, &f(40001, ACK), HOST));
            assert!(!passes(&p, &f(19999, ACK), HOST));
            // Sweep resistance: pure SYNs to any port; established traffic elsewhere dropped.
            assert!(passes(&p, &f(22, SYN), HOST));
            assert!(!passes(&p, &f(22, SYN | ACK), HOST));
            assert!(!passes(&p, &f(22, SYN | TcpFlags::RST), HOST));
            assert!(!passes(&p, &f(22, SYN | TcpFlags::FIN), HOST));
            assert!(!passes(&p, &f(22, ACK | TcpFlags::PSH), HOST));
            // Outgoing frames never.
            assert!(!passes(&p, &f(7000, SYN), OUTGOING));
            assert!(!passes(&p, &f(22, SYN), OUTGOING));
        }
        let u4 = frame(link, &[], &ipv4(C4, S4, 17, 0, 0, &udp(5, 9000, b"\0")));
        let u6 = frame(
            link,
            &[],
            &ipv6(v6(2), v6(1), &[], 17, &udp(5, 9000, b"\0")),
        );
        assert!(passes(&p, &u4, HOST) && passes(&p, &u6, HOST));
        assert!(!passes(&p, &u4, OUTGOING));
        let u53 = frame(link, &[], &ipv4(C4, S4, 17, 0, 0, &udp(5, 53, b"\0")));
        assert!(!passes(&p, &u53, HOST));
        let icmp = frame(link, &[], &ipv4(C4, S4, 1, 0, 0, &[8; 8]));
        assert!(!passes(&p, &icmp, HOST));
        let icmp6 = frame(link, &[], &ipv6(v6(2), v6(1), &[], 58, &[128; 8]));
        assert!(!passes(&p, &icmp6, HOST));
    }
}

#[test]
fn without_sweep_syns_only_doors() {
    let mut s = spec();
    s.pass_pure_syn_any_port = false;
    let p = s.compile(LinkType::Ethernet).unwrap();
    let f = |port, flags| frame(LinkType::Ethernet, &[], &v4_tcp(port, flags));
    assert!(!passes(&p, &f(22, SYN), HOST));
    assert!(passes(&p, &f(7000, SYN), HOST));
}

#[test]
fn vlan_tags_in_the_data() {
    let p = spec().compile(LinkType::Ethernet).unwrap();
    for tags in [
        &[TPID_8021Q][..],
        &[TPID_8021AD],
        &[TPID_8021AD, TPID_8021Q],
    ] {
        for ip in [v4_tcp(7000, SYN), v6_tcp(7000, SYN)] {
            assert!(
                passes(&p, &frame(LinkType::Ethernet, tags, &ip), HOST),
                "{tags:x?}"
            );
        }
        let f = frame(LinkType::Ethernet, tags, &v4_tcp(7000, ACK));
        assert!(!passes(&p, &f, HOST));
    }
    let f = frame(LinkType::Ethernet, &[TPID_8021Q; 3], &v4_tcp(7000, SYN));
    assert!(
        !passes(&p, &f, HOST),
        "three tags are not decoded, so not passed"
    );
}

#[test]
fn ipv4_options_and_fragments() {
    let p = spec().compile(LinkType::Ethernet).unwrap();
    for opts in [0, 4, 12, 40] {
        let ok = frame(
            LinkType::Ethernet,
            &[],
            &ipv4(C4, S4, 6, opts, 0, &tcp(1, 7000, SYN)),
        );
        assert!(passes(&p, &ok, HOST), "options {opts}");
        // With options, the ACK-only packet must still be read at the right offset.
        let no = frame(
            LinkType::Ethernet,
            &[],
            &ipv4(C4, S4, 6, opts, 0, &tcp(1, 7000, ACK)),
        );
        assert!(!passes(&p, &no, HOST), "options {opts}");
    }
    let first = frame(
        LinkType::Ethernet,
        &[],
        &ipv4(C4, S4, 6, 0, 0x2000, &tcp(1, 7000, SYN)),
    );
    assert!(passes(&p, &first, HOST));
    let later = frame(
        LinkType::Ethernet,
        &[],
        &ipv4(C4, S4, 6, 0, 0x2000 | 7, &tcp(1, 7000, SYN)),
    );
    assert!(!passes(&p, &later, HOST));
}

#[test]
fn ipv6_extension_headers_pass_conservatively() {
    let p = spec().compile(LinkType::Ethernet).unwrap();
    let ip = ipv6(v6(2), v6(1), &[(0, vec![])], 6, &tcp(1, 22, ACK));
    assert!(passes(&p, &frame(LinkType::Ethernet, &[], &ip), HOST));
    assert!(!passes(&p, &frame(LinkType::Ethernet, &[], &ip), OUTGOING));
}

#[test]
fn other_frames_and_truncations_drop() {
    let p = spec().compile(LinkType::Ethernet).unwrap();
    let mut arp = vec![0xffu8; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    assert!(!passes(&p, &arp, HOST));
    let full = frame(LinkType::Ethernet, &[], &v4_tcp(7000, SYN));
    for cut in 0..full.len() {
        // Up to the flags byte (14 + 20 + 13) the kernel aborts the load: drop.
        let v = passes(&p, &full[..cut], HOST);
        assert_eq!(v, cut > 14 + 20 + 13, "cut at {cut}");
    }
}

#[test]
fn ranges_and_many_ports_fit_the_kernel_limit() {
    // 5000 scattered TCP ports over 3 flag rules and 5000 UDP ports.
    let mut s = FilterSpec::new();
    let rules = [
        FlagRule::new(SYN, ACK),
        FlagRule::ANY,
        FlagRule::new(TcpFlags::FIN, 0),
    ];
    for i in 0..5000u32 {
        let port = ((i * 7919) % 65000 + 100) as u16;
        s.tcp(port..=port, rules[(i % 3) as usize]);
        s.udp(port..=port);
    }
    for link in LINKS {
        let p = s.compile(link).unwrap();
        assert!(p.len() <= bpf::BPF_MAXINSNS, "{}", p.len());
        vm::check(&p).unwrap();
        // A superset: every listed port with flags its rule accepts still passes.
        for i in 0..5000u32 {
            let port = ((i * 7919) % 65000 + 100) as u16;
            let flags = match i % 3 {
                0 => SYN,
                1 => ACK,
                _ => TcpFlags::FIN | ACK,
            };
            let f = frame(link, &[], &v4_tcp(port, flags));
            assert!(passes(&p, &f, HOST), "tcp {port}");
            let u = frame(link, &[], &ipv4(C4, S4, 17, 0, 0, &udp(1, port, b"")));
            assert!(passes(&p, &u, HOST), "udp {port}");
        }
    }
    // 300 ports: the assembler needs trampolines but nothing is coarsened: exact.
    let mut s = FilterSpec::new();
    for port in (1000..1600u16).step_by(2) {
        s.tcp(port..=port, FlagRule::new(SYN, ACK));
    }
    let p = s.compile(LinkType::Ethernet).unwrap();
    for port in 990..1610u16 {
        let f = frame(LinkType::Ethernet, &[], &v4_tcp(port, SYN));
        let want = (1000..1600).contains(&port) && port % 2 == 0;
        assert_eq!(passes(&p, &f, HOST), want, "port {port}");
    }
}

#[test]
fn coalesce_closes_smallest_gaps() {
    let r = [(1, 1), (3, 3), (10, 10), (100, 100)];
    assert_eq!(coalesce(&r, 4), r.to_vec());
    assert_eq!(coalesce(&r, 3), vec![(1, 3), (10, 10), (100, 100)]);
    assert_eq!(coalesce(&r, 2), vec![(1, 10), (100, 100)]);
    assert_eq!(coalesce(&r, 1), vec![(1, 100)]);
    assert_eq!(
        normalize(&[(5, 9), (1, 4), (7, 12), (20, 20)]),
        vec![(1, 12), (20, 20)]
    );
}

#[test]
fn flag_rule_semantics() {
    let r = FlagRule::new(SYN, ACK);
    assert!(r.matches(SYN) && r.matches(SYN | TcpFlags::PSH));
    assert!(!r.matches(SYN | ACK) && !r.matches(0));
    assert!(FlagRule::ANY.matches(0xff));
}

fn any_spec() -> impl Strategy<Value = FilterSpec> {
    let range = (any::<u16>(), 0u16..50).prop_map(|(lo, w)| lo..=lo.saturating_add(w));
    let rule = (any::<u8>(), any::<u8>()).prop_map(|(a, b)| FlagRule::new(a & !b, b));
    (
        proptest::collection::vec((range.clone(), rule), 0..12),
        proptest::collection::vec(range, 0..12),
        any::<bool>(),
    )
        .prop_map(|(tcp, udp, syn)| {
            let mut s = FilterSpec::new();
            for (r, rule) in tcp {
                s.tcp(r, rule);
            }
            for r in udp {
                s.udp(r);
            }
            s.pass_pure_syn_any_port = syn;
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// On every decodable frame without IPv6 extension headers the kernel program agrees
    /// exactly with the reference semantics `FilterSpec::wants`.
    #[test]
    fn program_agrees_with_reference(
        s in any_spec(),
        link_i in 0usize..3,
        ntags in 0usize..3,
        v6p in any::<bool>(),
        is_tcp in any::<bool>(),
        near in any::<bool>(),
        port in any::<u16>(),
        flags in any::<u8>(),
        opts in 0usize..11,
        outgoing in any::<bool>(),
    ) {
        let link = LINKS[link_i];
        // Half the time aim at a port the spec mentions, so both verdicts are exercised.
        let port = if near {
            s.tcp.values().flatten().chain(&s.udp).next().map_or(port, |r| r.0.wrapping_add(port % 3))
        } else {
            port
        };
        let l4 = if is_tcp { tcp(1, port, flags) } else { udp(1, port, b"x") };
        let n = if is_tcp { 6 } else { 17 };
        let ip = if v6p { ipv6(v6(2), v6(1), &[], n, &l4) } else { ipv4(C4, S4, n, opts * 4, 0, &l4) };
        let tags = if link == LinkType::Ethernet { &[TPID_8021AD, TPID_8021Q][..ntags] } else { &[] };
        let f = frame(link, tags, &ip);
        let e = decode(link, &f, 0).unwrap();
        let p = s.compile(link).unwrap();
        let want = !outgoing && s.wants(e.proto, e.dport, e.flags);
        prop_assert_eq!(passes(&p, &f, if outgoing { OUTGOING } else { HOST }), want);
    }

    #[test]
    fn random_bytes_run_cleanly(s in any_spec(), link_i in 0usize..3, bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let p = s.compile(LINKS[link_i]).unwrap();
        prop_assert!(vm::run(&p, &bytes, HOST).is_ok());
    }
}

fn door(name: &str, kind: DoorKind, flags: &[&str]) -> Door {
    Door {
        name: name.into(),
        kind,
        seq_timeout: std::time::Duration::from_secs(10),
        tcp_flags: TcpFlagRules::parse_list(flags.iter().copied()).unwrap(),
        action: knock_match::Action::Allow,
        service: "SSHD".into(),
        lease: None,
        target: None,
        knock_from: Vec::new(),
        link_local: false,
    }
}

#[test]
fn spec_from_doors() {
    use knock_match::door::TotpParams;
    use knock_match::Step;
    let doors = [
        door(
            "static",
            DoorKind::Static {
                steps: vec![Step::tcp(7000), Step::udp(8000), Step::tcp(9000)],
            },
            &["syn", "!ack"],
        ),
        door(
            "otp",
            DoorKind::OneTime {
                sequences: vec![vec![Step::tcp(1111)], vec![Step::udp(2222)]],
                next: 1,
            },
            &[],
        ),
        door(
            "totp",
            DoorKind::Totp(TotpParams {
                secret: vec![7; 20],
                length: 4,
                lo: 20000,
                hi: 40000,
                step: std::time::Duration::from_secs(30),
                used: Default::default(),
            }),
            &[],
        ),
    ];
    let s = FilterSpec::from_doors(&doors, false);
    assert!(s.wants(Proto::Tcp, 7000, TcpFlags(SYN)));
    assert!(!s.wants(Proto::Tcp, 7000, TcpFlags(SYN | ACK)));
    assert!(!s.wants(Proto::Udp, 7000, TcpFlags(0)));
    assert!(s.wants(Proto::Udp, 8000, TcpFlags(0)));
    assert!(s.wants(Proto::Tcp, 9000, TcpFlags(SYN)));
    assert!(
        !s.wants(Proto::Tcp, 1111, TcpFlags(SYN)),
        "used one-time sequence"
    );
    assert!(s.wants(Proto::Udp, 2222, TcpFlags(0)));
    // TOTP and one-time doors take pure SYNs only.
    assert!(s.wants(Proto::Tcp, 20000, TcpFlags(SYN)) && s.wants(Proto::Tcp, 40000, TcpFlags(SYN)));
    assert!(!s.wants(Proto::Tcp, 20000, TcpFlags(ACK)) && !s.wants(Proto::Tcp, 40000, TcpFlags(0)));
    assert!(!s.wants(Proto::Tcp, 40001, TcpFlags(SYN)));
    assert!(!s.wants(Proto::Udp, 30000, TcpFlags(0)));
    let p = s.compile(LinkType::Ethernet).unwrap();
    let f = frame(LinkType::Ethernet, &[], &v4_tcp(7000, SYN | ACK));
    assert!(!passes(&p, &f, HOST));

    // The daemon's filter: whatever a door's rule accepts reaches the matcher on every port,
    // so a sweep of that flag family resets; established traffic stays in the kernel.
    let s = FilterSpec::from_doors(&doors, true);
    for port in [1, 22, 7001, 65535] {
        assert!(s.wants(Proto::Tcp, port, TcpFlags(SYN)), "{port}");
        assert!(
            s.wants(Proto::Tcp, port, TcpFlags(SYN | FIN)),
            "syn,!ack: {port}"
        );
        assert!(s.wants(Proto::Udp, port, TcpFlags(0)), "UDP steps: {port}");
        assert!(!s.wants(Proto::Tcp, port, TcpFlags(ACK)), "{port}");
        assert!(!s.wants(Proto::Tcp, port, TcpFlags(PSH | ACK)), "{port}");
        assert!(!s.wants(Proto::Tcp, port, TcpFlags(SYN | ACK)), "{port}");
    }
    let p = s.compile(LinkType::Ethernet).unwrap();
    for (port, flags, want) in [
        (7001, SYN | FIN, true),
        (22, SYN, true),
        (22, ACK, false),
        (22, PSH | ACK, false),
        (9000, ACK, false),
    ] {
        let f = frame(LinkType::Ethernet, &[], &v4_tcp(port, flags));
        assert_eq!(passes(&p, &f, HOST), want, "{port} {flags:#x}");
    }
    // A door that asks for SYN (any other flag) makes SYN+ACKs to every port visible.
    let syn_door = [door(
        "syn",
        DoorKind::Static {
            steps: vec![Step::tcp(7000)],
        },
        &["syn"],
    )];
    let s = FilterSpec::from_doors(&syn_door, true);
    assert!(s.wants(Proto::Tcp, 4242, TcpFlags(SYN | ACK)));
    assert!(!s.wants(Proto::Tcp, 4242, TcpFlags(ACK)));
    assert!(!s.wants(Proto::Udp, 4242, TcpFlags(0)));
}
