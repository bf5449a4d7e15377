//! Table-driven tests of every matching rule: knockd's semantics and the fixes of its holes.

mod common;

use common::*;
use knock_match::{Action, Consume, Door, DoorKind, KnockEvent, Matcher, MatcherOptions, TcpFlags};

const SA: u8 = TcpFlags::SYN | TcpFlags::ACK;
const A: u8 = TcpFlags::ACK;
const PA: u8 = TcpFlags::PSH | TcpFlags::ACK;
const SF: u8 = TcpFlags::SYN | TcpFlags::FIN;

struct Case {
    name: &'static str,
    doors: Vec<Door>,
    events: Vec<KnockEvent>,
    /// (event index, door) of every expected decision, all for source 1 unless stated.
    want: Vec<(usize, &'static str, u32)>,
}

fn abc() -> Door {
    door("abc", "7000,8000,9000", 10, &["syn"])
}

fn cases() -> Vec<Case> {
    let targeted = {
        let mut d = abc();
        d.target = Some("198.18.0.1".parse().unwrap());
        d
    };
    vec![
        Case {
            name: "in order",
            doors: vec![abc()],
            events: vec![syn(0, 1, 7000), syn(100, 1, 8000), syn(200, 1, 9000)],
            want: vec![(2, "abc", 1)],
        },
        Case {
            name: "wrong order",
            doors: vec![abc()],
            events: vec![syn(0, 1, 8000), syn(100, 1, 7000), syn(200, 1, 9000)],
            want: vec![],
        },
        Case {
            name: "last knock just inside seq_timeout",
            doors: vec![abc()],
            events: vec![syn(0, 1, 7000), syn(5000, 1, 8000), syn(9999, 1, 9000)],
            want: vec![(2, "abc", 1)],
        },
        Case {
            name: "last knock at seq_timeout is too late",
            doors: vec![abc()],
            events: vec![syn(0, 1, 7000), syn(5000, 1, 8000), syn(10_000, 1, 9000)],
            want: vec![],
        },
        Case {
            name: "timeout counts from the first knock, not the last",
            doors: vec![abc()],
            events: vec![syn(0, 1, 7000), syn(9000, 1, 8000), syn(12_000, 1, 9000)],
            want: vec![],
        },
        Case {
            name: "after a timeout a fresh start works",
            doors: vec![abc()],
            events: vec![
                syn(0, 1, 7000),
                syn(11_000, 1, 7000),
                syn(11_100, 1, 8000),
                syn(11_200, 1, 9000),
            ],
            want: vec![(3, "abc", 1)],
        },
        Case {
            name: "flags syn: SYN+ACK knocks count",
            doors: vec![abc()],
            events: vec![
                tcp(0, 1, 7000, SA),
                tcp(1, 1, 8000, SA),
                tcp(2, 1, 9000, SA),
            ],
            want: vec![(2, "abc", 1)],
        },
        Case {
            name: "flags syn,!ack: SYN+ACK knocks do not count",
            doors: vec![door("abc", "7000,8000,9000", 10, &["syn", "!ack"])],
            events: vec![
                tcp(0, 1, 7000, SA),
                tcp(1, 1, 8000, SA),
                tcp(2, 1, 9000, SA),
            ],
            want: vec![],
        },
        Case {
            name: "flags syn,!ack: a SYN+ACK on the next port neither counts nor resets",
            doors: vec![door("abc", "7000,8000,9000", 10, &["syn", "!ack"])],
            events: vec![
                syn(0, 1, 7000),
                tcp(1, 1, 8000, SA),
                syn(2, 1, 8000),
                syn(3, 1, 9000),
            ],
            want: vec![(3, "abc", 1)],
        },
        Case {
            name: "flags: a bare ACK is not a knock",
            doors: vec![abc()],
            events: vec![tcp(0, 1, 7000, A), tcp(1, 1, 8000, A), tcp(2, 1, 9000, A)],
            want: vec![],
        },
        Case {
            name: "no flag rules: ACK, PSH+ACK and NULL packets are not knocks (knockd: any is)",
            doors: vec![door("abc", "7000,8000,9000", 10, &[])],
            events: vec![tcp(0, 1, 7000, A), tcp(1, 1, 8000, PA), tcp(2, 1, 9000, 0)],
            want: vec![],
        },
        Case {
            name: "no flag rules: a step is a pure SYN, ECN bits allowed",
            doors: vec![door("abc", "7000,8000,9000", 10, &[])],
            events: vec![
                syn(0, 1, 7000),
                tcp(1, 1, 8000, TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR),
                tcp(2, 1, 9000, TcpFlags::SYN | TcpFlags::FIN),
                syn(3, 1, 9000),
            ],
            want: vec![(3, "abc", 1)],
        },
        Case {
            name: "flags syn: a SYN+ACK to a wrong port resets",
            doors: vec![abc()],
            events: vec![
                tcp(0, 1, 7000, SA),
                tcp(1, 1, 7001, SA),
                tcp(2, 1, 8000, SA),
                tcp(3, 1, 9000, SA),
            ],
            want: vec![],
        },
        Case {
            name: "flags syn,!ack: a SYN+FIN to a wrong port resets",
            doors: vec![door("abc", "7000,8000,9000", 10, &["syn", "!ack"])],
            events: vec![
                tcp(0, 1, 7000, SF),
                tcp(1, 1, 7001, SF),
                tcp(2, 1, 8000, SF),
                tcp(3, 1, 9000, SF),
            ],
            want: vec![],
        },
        Case {
            name: "flags fin: a FIN to a wrong port resets, and so does a pure SYN",
            doors: vec![door("f", "7000,8000,9000", 10, &["fin"])],
            events: vec![
                tcp(0, 1, 7000, TcpFlags::FIN),
                tcp(1, 1, 7001, TcpFlags::FIN),
                tcp(2, 1, 8000, TcpFlags::FIN),
                tcp(3, 1, 9000, TcpFlags::FIN),
                tcp(4, 1, 7000, TcpFlags::FIN),
                syn(5, 1, 7001),
                tcp(6, 1, 8000, TcpFlags::FIN),
                tcp(7, 1, 9000, TcpFlags::FIN),
            ],
            want: vec![],
        },
        Case {
            name: "ssh ACKs between knocks do not reset",
            doors: vec![abc()],
            events: vec![
                syn(0, 1, 7000),
                tcp(10, 1, 22, A),
                tcp(11, 1, 22, PA),
                syn(20, 1, 8000),
                tcp(30, 1, 22, A),
                syn(40, 1, 9000),
            ],
            want: vec![(5, "abc", 1)],
        },
        Case {
            name: "UDP steps ignore tcp_flags",
            doors: vec![door("mix", "7000,8000:udp,9000", 10, &["syn", "!ack"])],
            events: vec![syn(0, 1, 7000), udp(1, 1, 8000), syn(2, 1, 9000)],
            want: vec![(2, "mix", 1)],
        },
        Case {
            name: "protocol matters: TCP on a UDP step resets",
            doors: vec![door("mix", "7000,8000:udp,9000", 10, &["syn"])],
            events: vec![syn(0, 1, 7000), syn(1, 1, 8000), syn(2, 1, 9000)],
            want: vec![],
        },
        Case {
            name: "all-UDP door",
            doors: vec![door("u", "1111:udp,2222:udp,3333:udp", 5, &["syn"])],
            events: vec![udp(0, 1, 1111), udp(1, 1, 2222), udp(2, 1, 3333)],
            want: vec![(2, "u", 1)],
        },
        Case {
            name: "shared prefix: second door opens",
            doors: vec![abc(), door("abf", "7000,8000,6000", 10, &["syn"])],
            events: vec![syn(0, 1, 7000), syn(1, 1, 8000), syn(2, 1, 6000)],
            want: vec![(2, "abf", 1)],
        },
        Case {
            name: "shared prefix: first door opens",
            doors: vec![abc(), door("abf", "7000,8000,6000", 10, &["syn"])],
            events: vec![syn(0, 1, 7000), syn(1, 1, 8000), syn(2, 1, 9000)],
            want: vec![(2, "abc", 1)],
        },
        Case {
            name: "one door a prefix of another: both open",
            doors: vec![door("short", "7000,8000", 10, &["syn"]), abc()],
            events: vec![syn(0, 1, 7000), syn(1, 1, 8000), syn(2, 1, 9000)],
            want: vec![(1, "short", 1), (2, "abc", 1)],
        },
        Case {
            name: "target: knocks to another address do not count",
            doors: vec![targeted.clone()],
            events: vec![
                to(syn(0, 1, 7000), "198.18.0.2"),
                to(syn(1, 1, 8000), "198.18.0.2"),
                to(syn(2, 1, 9000), "198.18.0.2"),
            ],
            want: vec![],
        },
        Case {
            name: "target: knocks to the target count, others neither count nor reset",
            doors: vec![targeted],
            events: vec![
                syn(0, 1, 7000),
                to(syn(1, 1, 1234), "198.18.0.2"),
                syn(2, 1, 8000),
                syn(3, 1, 9000),
            ],
            want: vec![(3, "abc", 1)],
        },
        Case {
            name: "target: a door without one counts only knocks sent to this host",
            doors: vec![abc()],
            events: vec![
                remote(syn(0, 1, 7000), "198.18.0.9"),
                remote(syn(1, 1, 8000), "198.18.0.9"),
                remote(syn(2, 1, 9000), "198.18.0.9"),
            ],
            want: vec![],
        },
        Case {
            name: "target: a knock sent to another door's target does not count for this door",
            doors: vec![abc(), {
                let mut d = door("b", "1000,2000,3000", 10, &[]);
                d.target = Some("198.18.0.9".parse().unwrap());
                d
            }],
            events: vec![
                syn(0, 1, 7000),
                remote(syn(1, 1, 8000), "198.18.0.9"),
                syn(2, 1, 9000),
                remote(syn(3, 1, 1000), "198.18.0.9"),
                remote(syn(4, 1, 2000), "198.18.0.9"),
                remote(syn(5, 1, 3000), "198.18.0.9"),
            ],
            want: vec![(5, "b", 1)],
        },
        Case {
            name: "sweep: a wrong port resets",
            doors: vec![abc()],
            events: vec![
                syn(0, 1, 7000),
                syn(1, 1, 7001),
                syn(2, 1, 8000),
                syn(3, 1, 9000),
            ],
            want: vec![],
        },
        Case {
            name: "sweep: a wrong UDP datagram resets",
            doors: vec![abc()],
            events: vec![
                syn(0, 1, 7000),
                udp(1, 1, 53),
                syn(2, 1, 8000),
                syn(3, 1, 9000),
            ],
            want: vec![],
        },
        Case {
            name: "sweep: the resetting packet is a first step",
            doors: vec![abc()],
            events: vec![
                syn(0, 1, 7000),
                syn(1, 1, 8000),
                syn(2, 1, 7000),
                syn(3, 1, 8000),
                syn(4, 1, 9000),
            ],
            want: vec![(4, "abc", 1)],
        },
        Case {
            name: "retransmit of the previous step within 1 s is ignored",
            doors: vec![abc()],
            events: vec![
                syn(0, 1, 7000),
                syn(1000, 1, 7000),
                syn(1100, 1, 8000),
                syn(1500, 1, 8000),
                syn(2100, 1, 8000),
                syn(2200, 1, 9000),
            ],
            want: vec![(5, "abc", 1)],
        },
        Case {
            name: "a repeat more than 3.5 s after that step's original is a wrong knock",
            doors: vec![abc()],
            events: vec![
                syn(0, 1, 7000),
                syn(100, 1, 8000),
                syn(3601, 1, 8000),
                syn(3700, 1, 9000),
            ],
            want: vec![],
        },
        Case {
            name: "an earlier step repeated long after its original is a wrong knock",
            doors: vec![door("abcd", "7000,8000,9000,10000", 20, &[])],
            events: vec![
                syn(0, 1, 7000),
                syn(3000, 1, 8000),
                syn(3501, 1, 7000),
                syn(4000, 1, 9000),
                syn(5000, 1, 10000),
            ],
            want: vec![],
        },
        Case {
            name: "Linux retransmits (+1 s, +3 s) of earlier steps, after later steps",
            doors: vec![door("abcd", "7000,8000,9000,10000", 10, &[])],
            events: vec![
                syn(0, 1, 7000),
                syn(1000, 1, 7000),
                syn(2000, 1, 8000),
                syn(3000, 1, 7000),
                syn(3000, 1, 8000),
                syn(4000, 1, 9000),
                syn(5000, 1, 8000),
                syn(5000, 1, 9000),
                syn(6000, 1, 10000),
            ],
            want: vec![(8, "abcd", 1)],
        },
        Case {
            name:
                "the same connection attempt repeated late is a retransmit (Linux 6.5+: +4 s, +6 s)",
            doors: vec![door("abcd", "7000,8000,9000,10000", 20, &[])],
            events: vec![
                attempt(syn(0, 1, 7000), 1),
                attempt(syn(1500, 1, 8000), 2),
                attempt(syn(4000, 1, 7000), 1),
                attempt(syn(4500, 1, 9000), 3),
                attempt(syn(6000, 1, 7000), 1),
                attempt(syn(7500, 1, 8000), 2),
                attempt(syn(8000, 1, 10000), 4),
            ],
            want: vec![(6, "abcd", 1)],
        },
        Case {
            name: "another connection attempt to an earlier step, late, is a wrong knock",
            doors: vec![door("abcd", "7000,8000,9000,10000", 20, &[])],
            events: vec![
                attempt(syn(0, 1, 7000), 1),
                attempt(syn(1500, 1, 8000), 2),
                attempt(syn(4000, 1, 7000), 9),
                attempt(syn(4500, 1, 9000), 3),
                attempt(syn(8000, 1, 10000), 4),
            ],
            want: vec![],
        },
        Case {
            name: "UDP duplicate is a retransmit too",
            doors: vec![door("u", "1111:udp,2222:udp,3333:udp", 5, &[])],
            events: vec![
                udp(0, 1, 1111),
                udp(1, 1, 2222),
                udp(2, 1, 2222),
                udp(3, 1, 3333),
            ],
            want: vec![(3, "u", 1)],
        },
        Case {
            name: "a repeated port in the sequence is a step, not a retransmit",
            doors: vec![door("rep", "7000,7000,8000", 10, &["syn"])],
            events: vec![syn(0, 1, 7000), syn(1, 1, 7000), syn(2, 1, 8000)],
            want: vec![(2, "rep", 1)],
        },
        Case {
            name: "sources are independent: another source's wrong knock does not reset",
            doors: vec![abc()],
            events: vec![
                syn(0, 1, 7000),
                syn(1, 2, 7000),
                syn(2, 2, 1234),
                syn(3, 1, 8000),
                syn(4, 2, 8000),
                syn(5, 1, 9000),
                syn(6, 2, 9000),
            ],
            want: vec![(5, "abc", 1)],
        },
        Case {
            name: "two sources knocking at once are both recognised",
            doors: vec![abc()],
            events: vec![
                syn(0, 1, 7000),
                syn(1, 2, 7000),
                syn(2, 1, 8000),
                syn(3, 2, 8000),
                syn(4, 1, 9000),
                syn(5, 2, 9000),
            ],
            want: vec![(4, "abc", 1), (5, "abc", 2)],
        },
        Case {
            name: "two-step UDP door",
            doors: vec![door("two", "4444:udp,4446:udp", 1, &[])],
            events: vec![udp(0, 1, 4443), udp(5, 1, 4444), udp(10, 1, 4446)],
            want: vec![(2, "two", 1)],
        },
        Case {
            name: "completion does not restart the same door",
            doors: vec![door("aba", "7000,8000,7000", 10, &["syn"])],
            events: vec![
                syn(0, 1, 7000),
                syn(1, 1, 8000),
                syn(2, 1, 7000),
                syn(3, 1, 8000),
            ],
            want: vec![(2, "aba", 1)],
        },
    ]
}

#[test]
fn rule_table() {
    for case in cases() {
        let mut m = matcher(case.doors);
        let got = run(&mut m, &case.events);
        let want: Vec<_> = case
            .want
            .iter()
            .map(|&(i, d, s)| (i, d.to_string(), src(s)))
            .collect();
        assert_eq!(got, want, "case: {}", case.name);
    }
}

#[test]
fn decision_carries_door_settings() {
    let mut d = abc();
    d.action = Action::Revoke;
    d.lease = None;
    d.service = "in.telnetd".into();
    let mut m = matcher(vec![d]);
    m.observe(&syn(0, 7, 7000));
    m.observe(&syn(1, 7, 8000));
    let out = m.observe(&syn(2, 7, 9000));
    assert_eq!(out.len(), 1);
    let d = &out[0];
    assert_eq!(
        (
            d.door,
            d.action,
            d.addr,
            d.service.as_str(),
            d.lease,
            d.time_ms,
            d.consume
        ),
        (0, Action::Revoke, src(7), "in.telnetd", None, 2, None)
    );
    assert_eq!(m.counters().grants, 1);
}

#[test]
fn full_sweep_never_opens_a_three_step_door() {
    let orders: Vec<(&str, Vec<u16>)> = vec![
        ("ascending", (1..=65535).collect()),
        ("descending", (1..=65535).rev().collect()),
        (
            "strided",
            (0..65535u32)
                .map(|i| ((i * 7919) % 65535 + 1) as u16)
                .collect(),
        ),
    ];
    // (Ports consecutive in sweep order, like 1,2,3, ARE the sequence for such a sweep: the
    // configuration docs warn against them.)
    for seq in [
        "7000,8000,9000",
        "9000,8000,7000",
        "1,65535,2",
        "65535,1,32768",
    ] {
        for (name, ports) in &orders {
            for udp_sweep in [false, true] {
                let spec = if udp_sweep {
                    seq.split(',')
                        .map(|p| format!("{p}:udp"))
                        .collect::<Vec<_>>()
                        .join(",")
                } else {
                    seq.to_string()
                };
                let mut m = matcher(vec![door("d", &spec, 10, &["syn"])]);
                for (i, &p) in ports.iter().enumerate() {
                    // 65535 packets in 6.5 s: well within seq_timeout.
                    let t = i as u64 / 10;
                    let ev = if udp_sweep {
                        udp(t, 1, p)
                    } else {
                        syn(t, 1, p)
                    };
                    assert!(m.observe(&ev).is_empty(), "{seq} {name} opened at port {p}");
                }
            }
        }
    }
}

#[test]
fn two_hundred_interleaved_sources_all_granted() {
    let mut m = matcher(vec![abc(), door("other", "7000,6000", 10, &["syn"])]);
    let mut granted = std::collections::BTreeSet::new();
    let mut t = 0;
    for port in [7000, 8000, 9000] {
        for s in 0..200 {
            t += 1;
            for d in m.observe(&syn(t, s, port)) {
                assert_eq!(d.door_name, "abc");
                assert!(granted.insert(d.addr), "granted twice");
            }
        }
    }
    assert_eq!(granted.len(), 200);
    assert_eq!(m.in_progress(), 0);
}

fn one_time_door(next: usize) -> Door {
    let mut d = door("otp", "1", 10, &["syn"]);
    d.kind = DoorKind::OneTime {
        sequences: vec![
            steps("1001,1009"),
            steps("2001,2002:udp"),
            steps("3001,3009"),
        ],
        next,
    };
    d
}

fn knock(m: &mut Matcher, t: u64, from: u32, seq: &[KnockEvent]) -> Vec<knock_match::Decision> {
    let mut out = Vec::new();
    for (i, ev) in seq.iter().enumerate() {
        let mut ev = *ev;
        ev.time_ms = t + i as u64;
        ev.src = src(from);
        out.extend(m.observe(&ev));
    }
    out
}

#[test]
fn one_time_sequences_rotate_and_survive_a_restart() {
    let first = [syn(0, 0, 1001), syn(0, 0, 1009)];
    let second = [syn(0, 0, 2001), udp(0, 0, 2002)];
    let third = [syn(0, 0, 3001), syn(0, 0, 3009)];

    let mut m = Matcher::new(vec![one_time_door(0)], MatcherOptions::default()).unwrap();
    assert!(
        knock(&mut m, 0, 1, &second).is_empty(),
        "second before first"
    );
    let d = knock(&mut m, 100, 1, &first);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].consume,
        Some(Consume::OneTime {
            index: 0,
            next: 1,
            remaining: 2
        })
    );
    assert!(
        knock(&mut m, 200, 2, &first).is_empty(),
        "replay of a used sequence"
    );

    // Restart with the persisted progress.
    let mut m = Matcher::new(vec![one_time_door(1)], MatcherOptions::default()).unwrap();
    assert!(knock(&mut m, 300, 1, &first).is_empty());
    let d = knock(&mut m, 400, 3, &second);
    assert_eq!(
        d[0].consume,
        Some(Consume::OneTime {
            index: 1,
            next: 2,
            remaining: 1
        })
    );
    assert!(m.exhausted_doors().is_empty());
    let d = knock(&mut m, 500, 3, &third);
    assert_eq!(
        d[0].consume,
        Some(Consume::OneTime {
            index: 2,
            next: 3,
            remaining: 0
        })
    );
    assert_eq!(m.exhausted_doors(), vec!["otp"]);
    assert!(knock(&mut m, 600, 3, &third).is_empty());

    let m = Matcher::new(vec![one_time_door(3)], MatcherOptions::default()).unwrap();
    assert_eq!(m.exhausted_doors(), vec!["otp"]);
}

#[test]
fn one_time_sequence_in_progress_elsewhere_dies_when_used() {
    let mut m = Matcher::new(vec![one_time_door(0)], MatcherOptions::default()).unwrap();
    assert!(m.observe(&syn(0, 1, 1001)).is_empty());
    assert!(m.observe(&syn(1, 2, 1001)).is_empty());
    assert_eq!(m.observe(&syn(2, 2, 1009)).len(), 1);
    assert!(m.observe(&syn(3, 1, 1009)).is_empty(), "sequence 0 is used");
}

#[test]
fn expiry_is_driven_by_time() {
    let mut m = matcher(vec![abc(), door("long", "7000,5000", 60, &["syn"])]);
    assert_eq!(m.next_deadline(), None);
    m.observe(&syn(1_000, 1, 7000));
    assert_eq!(m.in_progress(), 1);
    assert_eq!(m.next_deadline(), Some(61_000));
    m.observe(&syn(2_000, 2, 9000)); // not a first step: nothing tracked
    m.observe(&syn(3_000, 3, 8000));
    assert_eq!(m.in_progress(), 1);
    assert_eq!(m.tick(60_999), 0);
    assert_eq!(m.tick(61_000), 1);
    assert_eq!(m.in_progress(), 0);
    assert_eq!(m.counters().timeouts, 2);
    assert_eq!(m.next_deadline(), None);

    let mut m = matcher(vec![abc()]);
    m.observe(&syn(0, 1, 7000));
    m.observe(&syn(5_000, 2, 7000));
    assert_eq!(m.next_deadline(), Some(10_000));
    assert_eq!(m.tick(12_000), 1);
    assert_eq!(m.next_deadline(), Some(15_000));
    // Time never goes back: an older tick changes nothing.
    assert_eq!(m.tick(1), 0);
    assert_eq!(m.now_ms(), 12_000);
}

#[test]
fn table_is_bounded_and_counts_evictions() {
    let opts = MatcherOptions {
        max_sources: 10,
        ..MatcherOptions::default()
    };
    let mut m = Matcher::new(vec![abc()], opts).unwrap();
    for s in 0..25 {
        m.observe(&syn(s as u64, s, 7000));
        assert!(m.in_progress() <= 10);
    }
    assert_eq!(m.counters().evictions, 15);
    // The newest ten survive and can finish.
    let mut granted = 0;
    for s in 0..25 {
        m.observe(&syn(100, s, 8000));
        granted += m.observe(&syn(101, s, 9000)).len();
    }
    assert_eq!(granted, 10);
}

#[test]
fn counters_count_resets() {
    let mut m = matcher(vec![abc(), door("abf", "7000,8000,6000", 10, &["syn"])]);
    m.observe(&syn(0, 1, 7000));
    m.observe(&syn(1, 1, 1));
    assert_eq!(m.counters().resets, 2);
    assert_eq!(m.in_progress(), 0);
}

#[test]
fn ipv6_sources() {
    let mut m = matcher(vec![abc()]);
    let v6: std::net::IpAddr = "fd00:4b57::7".parse().unwrap();
    let mut out = Vec::new();
    for (i, p) in [7000, 8000, 9000].into_iter().enumerate() {
        let mut ev = syn(i as u64, 0, p);
        ev.src = v6;
        ev.dst = "fd00:4b57::1".parse().unwrap();
        out.extend(m.observe(&ev));
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].addr, v6);
}

#[test]
fn invalid_doors_are_refused() {
    let mut bad = abc();
    bad.kind = DoorKind::Static { steps: vec![] };
    assert!(Matcher::new(vec![bad], MatcherOptions::default()).is_err());
    let mut bad = abc();
    bad.kind = DoorKind::Static {
        steps: steps(&vec!["1"; 33].join(",")),
    };
    assert!(Matcher::new(vec![bad], MatcherOptions::default()).is_err());
    let mut bad = abc();
    bad.lease = Some(std::time::Duration::ZERO);
    assert!(Matcher::new(vec![bad], MatcherOptions::default()).is_err());
}
