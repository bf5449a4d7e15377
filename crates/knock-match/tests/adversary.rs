//! The matcher against an attacker: sweeps of every TCP flag family (and UDP) through every
//! kind of door, spoofed first-step floods against an honest knock under way, and TOTP codes
//! burned by someone else's grant. Each test also shows that the honest knock still opens.

mod common;

use std::time::Duration;

use common::*;
use knock_match::{
    totp_sequence, Door, DoorKind, KnockEvent, Matcher, MatcherOptions, Step, TcpFlags, TotpParams,
};

const F: u8 = TcpFlags::FIN;
const S: u8 = TcpFlags::SYN;
const R: u8 = TcpFlags::RST;
const P: u8 = TcpFlags::PSH;
const A: u8 = TcpFlags::ACK;
const U: u8 = TcpFlags::URG;

/// Every flag family a scanner uses (nmap -sS, -sA, -sF, -sN, -sX, SYN+ACK, SYN+FIN, RST, ...).
const FAMILIES: [(&str, u8); 10] = [
    ("SYN", S),
    ("SYN+ACK", S | A),
    ("ACK", A),
    ("FIN", F),
    ("SYN+FIN", S | F),
    ("RST", R),
    ("NULL", 0),
    ("XMAS", F | P | U),
    ("SYN+PSH", S | P),
    ("SYN+ECE+CWR", S | TcpFlags::ECE | TcpFlags::CWR),
];

const STEP_MS: u64 = 30_000;
const T0: u64 = 1_700_000_000_000;

fn secret() -> Vec<u8> {
    b"0123456789abcdef0123".to_vec()
}

fn totp_door(flags: &[&str]) -> Door {
    let mut d = door("totp", "1", 3600, flags);
    d.kind = DoorKind::Totp(TotpParams {
        secret: secret(),
        length: 3,
        lo: 20000,
        hi: 20100,
        step: Duration::from_millis(STEP_MS),
        used: Default::default(),
    });
    d
}

fn one_time_door(flags: &[&str]) -> Door {
    let mut d = door("otp", "1", 3600, flags);
    d.kind = DoorKind::OneTime {
        sequences: vec![steps("7100,7200,7300"), steps("7400,7500,7600")],
        next: 0,
    };
    d
}

/// Every kind of door, with the flag settings operators write. Long timeouts: a slow sweep
/// must not escape by timing out between door ports.
fn doors() -> Vec<(&'static str, Door)> {
    vec![
        (
            "static, default flags",
            door("s", "7000,8000,9000", 3600, &[]),
        ),
        ("static, syn", door("s", "7000,8000,9000", 3600, &["syn"])),
        (
            "static, syn !ack",
            door("s", "7000,8000,9000", 3600, &["syn", "!ack"]),
        ),
        ("static, fin", door("s", "7000,8000,9000", 3600, &["fin"])),
        ("one-time", one_time_door(&[])),
        ("one-time, syn !ack", one_time_door(&["syn", "!ack"])),
        ("totp", totp_door(&[])),
        ("totp, syn", totp_door(&["syn"])),
        ("totp, syn !ack", totp_door(&["syn", "!ack"])),
    ]
}

/// The honest knock for the door at `t` (pure SYNs, or FINs for the FIN door).
fn honest(d: &Door, t: u64, from: u32) -> Vec<KnockEvent> {
    let seq: Vec<Step> = d.sequence_at(t).unwrap();
    let flags = if d.tcp_flags.matches(TcpFlags(F)) && !d.tcp_flags.is_none() {
        F
    } else {
        S
    };
    seq.iter()
        .enumerate()
        .map(|(i, s)| match s.proto {
            knock_match::Proto::Tcp => tcp(t + 100 * i as u64, from, s.port, flags),
            knock_match::Proto::Udp => udp(t + 100 * i as u64, from, s.port),
        })
        .collect()
}

fn sweep(t0: u64, from: u32, ports: impl Iterator<Item = u16>, flags: u8) -> Vec<KnockEvent> {
    ports
        .enumerate()
        .map(|(i, p)| tcp(t0 + i as u64 / 64, from, p, flags))
        .collect()
}

#[test]
fn no_sweep_of_any_flag_family_opens_any_door() {
    for (kind, d) in doors() {
        for (family, flags) in FAMILIES {
            for descending in [false, true] {
                let mut m = matcher(vec![d.clone()]);
                let ports: Vec<u16> = if descending {
                    (1..=u16::MAX).rev().collect()
                } else {
                    (1..=u16::MAX).collect()
                };
                // Two sweeps back to back: knockd's default-flags door opened on the second.
                let mut events = sweep(T0, 1, ports.iter().copied(), flags);
                events.extend(sweep(T0 + 1_100, 1, ports.iter().copied(), flags));
                let got = run(&mut m, &events);
                assert!(
                    got.is_empty(),
                    "{kind}: {family} sweep (descending: {descending}) opened {got:?}"
                );
                // The honest knock still opens, from the same source, right after.
                let t = T0 + 5_000;
                let got = run(&mut m, &honest(&d, t, 1));
                assert_eq!(got.len(), 1, "{kind}: honest knock after a {family} sweep");
            }
        }
    }
}

#[test]
fn no_sweep_of_random_mixed_flags_opens_any_door() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for (kind, d) in doors() {
        for round in 0..4 {
            let mut m = matcher(vec![d.clone()]);
            let events: Vec<KnockEvent> = (1..=u16::MAX)
                .map(|p| {
                    let (_, flags) = FAMILIES[(next() % FAMILIES.len() as u64) as usize];
                    tcp(T0 + u64::from(p) / 64, 1, p, flags)
                })
                .collect();
            let got = run(&mut m, &events);
            assert!(got.is_empty(), "{kind}: mixed sweep {round} opened {got:?}");
        }
    }
}

#[test]
fn no_udp_sweep_opens_a_udp_door() {
    for seq in ["1111:udp,2222:udp,3333:udp", "7000,8000:udp,9000"] {
        let d = door("u", seq, 3600, &[]);
        let mut m = matcher(vec![d.clone()]);
        let mut events: Vec<KnockEvent> = (1..=u16::MAX)
            .map(|p| udp(T0 + u64::from(p) / 64, 1, p))
            .collect();
        // And a TCP SYN sweep interleaved with the UDP one.
        events.extend((1..=u16::MAX).flat_map(|p| {
            let t = T0 + 2_000 + u64::from(p) / 64;
            [syn(t, 1, p), udp(t, 1, p)]
        }));
        assert!(run(&mut m, &events).is_empty(), "{seq}");
        assert_eq!(run(&mut m, &honest(&d, T0 + 9_000, 1)).len(), 1, "{seq}");
    }
}

#[test]
fn a_first_step_flood_does_not_evict_an_honest_knock_under_way() {
    let d = door("s", "7000,8000,9000", 30, &[]);
    let mut m = Matcher::new(
        vec![d],
        MatcherOptions {
            max_sources: 1024,
            ..MatcherOptions::default()
        },
    )
    .unwrap();
    // The honest source matches two steps...
    assert!(run(&mut m, &[syn(T0, 1, 7000), syn(T0 + 500, 1, 8000)]).is_empty());
    // ...then 70,000 spoofed sources send the first step, within the door's timeout.
    for n in 0..70_000u32 {
        let ev = KnockEvent {
            src: std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n)),
            ..syn(T0 + 600 + u64::from(n) / 10, 0, 7000)
        };
        m.observe(&ev);
    }
    assert!(m.counters().evictions >= 68_000);
    assert!(m.in_progress() <= 1024);
    let got = run(&mut m, &[syn(T0 + 8_000, 1, 9000)]);
    assert_eq!(got.len(), 1, "the honest knock was evicted");
}

#[test]
fn a_grant_for_one_totp_step_never_burns_its_neighbours() {
    let d = totp_door(&[]);
    let c = T0 / STEP_MS;
    let knock = |m: &mut Matcher, t: u64, from: u32, k: u64| {
        let ports = totp_sequence(&secret(), k, 3, 20000, 20100);
        let evs: Vec<KnockEvent> = ports
            .iter()
            .enumerate()
            .map(|(i, &p)| syn(t + 10 * i as u64, from, p))
            .collect();
        run(m, &evs).len()
    };
    let mut m = matcher(vec![d]);
    // An observer who saw the code for step c+1 uses it from its own address.
    assert_eq!(knock(&mut m, T0, 2, c + 1), 1);
    // The honest client, whose clock is a step behind, still gets in with step c, and with
    // c-1 later in the same step; every used step stays refused.
    assert_eq!(knock(&mut m, T0 + 1_000, 1, c), 1);
    assert_eq!(knock(&mut m, T0 + 2_000, 1, c - 1), 1);
    for k in [c - 1, c, c + 1] {
        assert_eq!(knock(&mut m, T0 + 3_000, 3, k), 0, "step {k} replayed");
    }
}

#[test]
fn totp_follows_the_wall_clock_and_sequences_the_event_clock() {
    // Event time is a monotonic clock starting at 0; the wall clock is T0 at event time 0.
    let d = totp_door(&[]);
    let mut m = matcher(vec![d.clone()]);
    m.set_wall_offset(T0 as i64);
    let c = T0 / STEP_MS;
    let ports = totp_sequence(&secret(), c, 3, 20000, 20100);
    assert!(m.observe(&syn(0, 1, ports[0])).is_empty());
    // The wall clock jumps an hour ahead mid-knock: TOTP's window moves (step c is no longer
    // acceptable), but the sequence in progress neither times out nor survives wrongly.
    m.set_wall_offset(T0 as i64 + 3_600_000);
    assert!(m.observe(&syn(100, 1, ports[1])).is_empty());
    assert!(
        m.observe(&syn(200, 1, ports[2])).is_empty(),
        "stale step accepted"
    );
    // Back to the right time: the same knock opens.
    m.set_wall_offset(T0 as i64);
    let evs: Vec<KnockEvent> = ports
        .iter()
        .enumerate()
        .map(|(i, &p)| syn(300 + 10 * i as u64, 1, p))
        .collect();
    assert_eq!(run(&mut m, &evs).len(), 1);
    // A static door's timeout runs on the event clock whatever the wall clock does.
    let mut m = matcher(vec![door("s", "7000,8000", 10, &[])]);
    m.set_wall_offset(T0 as i64);
    assert!(m.observe(&syn(0, 1, 7000)).is_empty());
    m.set_wall_offset(T0 as i64 + 86_400_000);
    assert_eq!(m.observe(&syn(9_000, 1, 8000)).len(), 1);
}

#[test]
fn one_time_and_totp_doors_refuse_flag_rules_beyond_pure_syn() {
    for flags in [&["ack"][..], &["fin"], &["!syn"], &["rst"]] {
        for d in [one_time_door(flags), totp_door(flags)] {
            assert!(
                Matcher::new(vec![d], MatcherOptions::default()).is_err(),
                "{flags:?}"
            );
        }
    }
    for flags in [&["syn"][..], &["syn", "!ack"], &["!ece"], &[]] {
        assert!(Matcher::new(vec![one_time_door(flags)], MatcherOptions::default()).is_ok());
    }
}
