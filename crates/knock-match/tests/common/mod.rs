//! Shared builders for the matcher's integration tests.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use knock_match::{
    Action, Door, DoorKind, KnockEvent, Matcher, MatcherOptions, Proto, Step, TcpFlagRules,
    TcpFlags,
};

pub const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

pub fn src(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xc612_0000 | (n & 0xffff) | 0x1_0000))
}

pub fn steps(spec: &str) -> Vec<Step> {
    spec.split(',').map(|s| s.parse().unwrap()).collect()
}

pub fn door(name: &str, seq: &str, timeout_s: u64, flags: &[&str]) -> Door {
    Door {
        name: name.into(),
        kind: DoorKind::Static { steps: steps(seq) },
        seq_timeout: Duration::from_secs(timeout_s),
        tcp_flags: TcpFlagRules::parse_list(flags.iter().copied()).unwrap(),
        action: Action::Allow,
        service: "SSHD".into(),
        lease: Some(Duration::from_secs(3600)),
        target: None,
        knock_from: Vec::new(),
        link_local: false,
    }
}

pub fn matcher(doors: Vec<Door>) -> Matcher {
    Matcher::new(doors, MatcherOptions::default()).unwrap()
}

pub fn tcp(t: u64, from: u32, port: u16, flags: u8) -> KnockEvent {
    KnockEvent {
        time_ms: t,
        src: src(from),
        dst: DST,
        proto: Proto::Tcp,
        dport: port,
        flags: TcpFlags(flags),
        to_host: true,
        via_loopback: false,
        attempt: 0,
        interface: 0,
    }
}

pub fn syn(t: u64, from: u32, port: u16) -> KnockEvent {
    tcp(t, from, port, TcpFlags::SYN)
}

pub fn udp(t: u64, from: u32, port: u16) -> KnockEvent {
    KnockEvent {
        time_ms: t,
        src: src(from),
        dst: DST,
        proto: Proto::Udp,
        dport: port,
        flags: TcpFlags(0),
        to_host: true,
        via_loopback: false,
        attempt: 0,
        interface: 0,
    }
}

/// The packet sent to `dst`, an address that is not this host's (a door's target, or traffic
/// the host only forwards).
pub fn remote(mut ev: KnockEvent, dst: &str) -> KnockEvent {
    ev.dst = dst.parse().unwrap();
    ev.to_host = false;
    ev
}

/// The packet as part of connection attempt `n` (its source port and sequence number).
pub fn attempt(mut ev: KnockEvent, n: u32) -> KnockEvent {
    ev.attempt = KnockEvent::attempt_of(40_000 + n as u16, n.wrapping_mul(7919));
    ev
}

pub fn to(mut ev: KnockEvent, dst: &str) -> KnockEvent {
    ev.dst = dst.parse().unwrap();
    ev
}

/// Runs the events; returns (event index, door name, source) for every decision.
pub fn run(m: &mut Matcher, events: &[KnockEvent]) -> Vec<(usize, String, IpAddr)> {
    let mut out = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        for d in m.observe(ev) {
            out.push((i, d.door_name, d.addr));
        }
    }
    out
}
