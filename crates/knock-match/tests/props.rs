//! Property tests: no grant without the door's sequence, in order, within seq_timeout, from
//! that address; the table never exceeds its capacity.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use knock_match::{
    Door, DoorKind, KnockEvent, Matcher, MatcherOptions, Proto, Step, TcpFlagRules, TcpFlags,
};
use proptest::prelude::*;

const FLAG_CHOICES: [u8; 6] = [
    TcpFlags::SYN,
    TcpFlags::SYN | TcpFlags::ACK,
    TcpFlags::ACK,
    TcpFlags::PSH | TcpFlags::ACK,
    TcpFlags::FIN,
    0,
];

fn step_strategy() -> impl Strategy<Value = Step> {
    (1u16..=6, any::<bool>()).prop_map(|(port, udp)| {
        if udp {
            Step::udp(port)
        } else {
            Step::tcp(port)
        }
    })
}

/// 2 to `max` steps that a port sweep would not complete (the matcher refuses those).
fn sequence_strategy(max: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step_strategy(), 2..=max).prop_filter("sweep-shaped", |s| {
        knock_match::door::sweep_shaped(s).is_none()
    })
}

fn door_strategy(name: &'static str) -> impl Strategy<Value = Door> {
    (sequence_strategy(4), 1u64..=5, 0usize..3, any::<bool>()).prop_map(
        move |(steps, timeout, flags, targeted)| {
            let flags: &[&str] = [&[][..], &["syn"][..], &["syn", "!ack"][..]][flags];
            let mut d = door(name, "1", timeout, flags);
            d.kind = DoorKind::Static { steps };
            d.tcp_flags = TcpFlagRules::parse_list(flags.iter().copied()).unwrap();
            if targeted {
                d.target = Some(DST);
            }
            d
        },
    )
}

fn events_strategy(sources: u32) -> impl Strategy<Value = Vec<KnockEvent>> {
    prop::collection::vec(
        (
            0u64..1500,
            0..sources,
            any::<bool>(),
            any::<bool>(),
            1u16..=8,
            0usize..6,
        ),
        0..250,
    )
    .prop_map(|raw| {
        let mut t = 1_000_000;
        raw.into_iter()
            .map(|(dt, from, udp_pkt, other_dst, port, flags)| {
                t += dt;
                let mut ev = if udp_pkt {
                    udp(t, from, port)
                } else {
                    tcp(t, from, port, FLAG_CHOICES[flags])
                };
                if other_dst {
                    ev.dst = "198.18.0.99".parse().unwrap();
                }
                ev
            })
            .collect()
    })
}

fn counts_as(door: &Door, ev: &KnockEvent, step: Step) -> bool {
    ev.proto == step.proto
        && ev.dport == step.port
        && door.target.is_none_or(|t| t == ev.dst)
        && (ev.proto == Proto::Udp || door.tcp_flags.matches(ev.flags))
}

/// Whether `addr` sent the door's steps in order, ending with event `end`, within the timeout.
fn justified(door: &Door, events: &[KnockEvent], end: usize, addr: IpAddr) -> bool {
    let DoorKind::Static { steps } = &door.kind else {
        return false;
    };
    // Latest-possible matching from the end maximises the first knock's time.
    let mut k = steps.len();
    let mut first_time = None;
    for ev in events[..=end].iter().rev() {
        if k == 0 {
            break;
        }
        if ev.src == addr && counts_as(door, ev, steps[k - 1]) {
            if k == steps.len() && !std::ptr::eq(ev, &events[end]) {
                return false; // the granting packet itself must be the last step
            }
            k -= 1;
            if k == 0 {
                first_time = Some(ev.time_ms);
            }
        } else if k == steps.len() {
            return false;
        }
    }
    match first_time {
        Some(t0) => events[end].time_ms - t0 < door.seq_timeout.as_millis() as u64,
        None => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_grant_without_the_sequence(
        a in door_strategy("a"),
        b in door_strategy("b"),
        events in events_strategy(4),
    ) {
        let doors = vec![a, b];
        let mut m = Matcher::new(doors.clone(), MatcherOptions::default()).unwrap();
        for (i, ev) in events.iter().enumerate() {
            for d in m.observe(ev) {
                prop_assert_eq!(d.addr, ev.src);
                prop_assert!(
                    justified(&doors[d.door], &events, i, d.addr),
                    "door {:?} granted at event {} without its sequence", doors[d.door], i
                );
            }
        }
    }

    #[test]
    fn table_never_exceeds_its_capacity(
        a in door_strategy("a"),
        cap in 1usize..5,
        events in events_strategy(12),
        ticks in prop::collection::vec(0u64..3000, 0..20),
    ) {
        let opts = MatcherOptions { max_sources: cap, ..MatcherOptions::default() };
        let mut m = Matcher::new(vec![a], opts).unwrap();
        for (i, ev) in events.iter().enumerate() {
            m.observe(ev);
            prop_assert!(m.in_progress() <= cap);
            if let Some(&dt) = ticks.get(i % 37) {
                if i % 7 == 0 {
                    m.tick(ev.time_ms + dt);
                    prop_assert!(m.next_deadline().is_none_or(|d| d > m.now_ms()));
                }
            }
        }
    }

    #[test]
    fn honest_knock_amid_other_sources_is_granted(
        a in door_strategy("a"),
        noise in events_strategy(3),
    ) {
        // Source 7 knocks the sequence cleanly while sources 0..3 send anything.
        let DoorKind::Static { steps } = a.kind.clone() else { unreachable!() };
        let mut m = Matcher::new(vec![a.clone()], MatcherOptions::default()).unwrap();
        let gap = a.seq_timeout.as_millis() as u64 / (steps.len() as u64 + 1);
        let mut granted = false;
        let mut next = 0;
        let start = noise.first().map_or(1_000_000, |e| e.time_ms);
        let mut t_knock = start;
        for ev in &noise {
            while next < steps.len() && t_knock <= ev.time_ms {
                let s = steps[next];
                let k = if s.proto == Proto::Udp { udp(t_knock, 7, s.port) } else { syn(t_knock, 7, s.port) };
                granted |= !m.observe(&k).is_empty();
                next += 1;
                t_knock += gap;
            }
            m.observe(ev);
        }
        while next < steps.len() {
            let s = steps[next];
            let k = if s.proto == Proto::Udp { udp(t_knock, 7, s.port) } else { syn(t_knock, 7, s.port) };
            granted |= !m.observe(&k).is_empty();
            next += 1;
            t_knock += gap;
        }
        prop_assert!(granted);
    }
}

fn any_event() -> impl Strategy<Value = KnockEvent> {
    (
        any::<u64>(),
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::from(std::net::Ipv4Addr::from(a & 0xf))),
            any::<u128>().prop_map(|a| IpAddr::from(std::net::Ipv6Addr::from(a & 0x7))),
        ],
        any::<bool>(),
        prop_oneof![0u16..=8, any::<u16>()],
        any::<u8>(),
    )
        .prop_map(|(t, src, udp_pkt, port, flags)| KnockEvent {
            // Mostly a 200 s window; sometimes the very end of time.
            time_ms: if t % 16 == 0 {
                u64::MAX - (t >> 52)
            } else {
                t % 200_000
            },
            src,
            dst: DST,
            proto: if udp_pkt { Proto::Udp } else { Proto::Tcp },
            dport: port,
            flags: TcpFlags(flags),
            to_host: true,
            via_loopback: false,
            attempt: 0,
            interface: 0,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any packets, in any time order, against every kind of door: no panic, the table stays
    /// bounded, a one-time sequence is consumed at most once and in order, TOTP counters only
    /// increase.
    #[test]
    fn arbitrary_packets_keep_invariants(
        events in prop::collection::vec(any_event(), 0..300),
        cap in 1usize..6,
        seqs in prop::collection::vec(sequence_strategy(3), 1..4),
    ) {
        let mut otp = door("otp", "1", 3, &[]);
        otp.kind = DoorKind::OneTime { sequences: seqs.clone(), next: 0 };
        let mut totp = door("totp", "1", 3, &[]);
        totp.kind = DoorKind::Totp(knock_match::TotpParams {
            secret: vec![7; 16],
            length: 2,
            lo: 1,
            hi: 4,
            step: Duration::from_secs(1),
            used: Default::default(),
        });
        let doors = vec![door("s", "1,2:udp", 2, &["syn"]), otp, totp];
        let opts = MatcherOptions { max_sources: cap, ..MatcherOptions::default() };
        let mut m = Matcher::new(doors, opts).unwrap();
        let mut next_index = 0;
        let mut last_counter = None;
        for ev in &events {
            for d in m.observe(ev) {
                match d.consume {
                    Some(knock_match::Consume::OneTime { index, next, remaining }) => {
                        prop_assert_eq!(index, next_index);
                        next_index += 1;
                        prop_assert_eq!(next, next_index);
                        prop_assert_eq!(remaining, seqs.len() - next_index);
                    }
                    Some(knock_match::Consume::Totp { counter }) => {
                        prop_assert!(last_counter.is_none_or(|l| counter > l));
                        last_counter = Some(counter);
                    }
                    None => prop_assert_eq!(d.door_name.as_str(), "s"),
                }
            }
            prop_assert!(m.in_progress() <= cap);
            m.tick(ev.time_ms / 2);
        }
    }
}

proptest! {
    /// Text from files never panics the parsers, and what parses round-trips.
    #[test]
    fn file_parsers_are_total(text in "\\PC{0,120}", lines in prop::collection::vec("[0-9a-zA-Z:, #\t]{0,20}", 0..6)) {
        let _ = knock_match::decode_base32(&text);
        let _ = text.parse::<Step>();
        let joined = lines.join("\n");
        for input in [text.as_str(), joined.as_str()] {
            if let Ok(seqs) = knock_match::parse_one_time(input) {
                let rendered: Vec<String> = seqs
                    .iter()
                    .map(|s| s.iter().map(Step::to_string).collect::<Vec<_>>().join(","))
                    .collect();
                prop_assert_eq!(knock_match::parse_one_time(&rendered.join("\n")).unwrap(), seqs);
            }
        }
    }
}
