//! Fuzz target: `knock_capture::decode` on arbitrary frames. The first input byte picks the
//! link type (Ethernet, raw IP, Linux cooked); the rest is the frame.
//!
//! Beyond "no panic", a decoded event must be explained by the frame: the addresses sit at
//! their offsets in the IP header the link header points to, the TCP/UDP header holding the
//! port (and flags) lies inside the IP packet as its length field bounds it, the time is
//! passed through, UDP has no flags. Decoding is deterministic, unaffected by bytes after the
//! frame, and agrees across link types: the same IP packet raw, behind an Ethernet header
//! (with 0 to 2 VLAN tags) and behind a cooked header decodes to the same event.
#![no_main]

use std::net::IpAddr;

use knock_capture::{decode, LinkType};
use knock_match::{KnockEvent, Proto};
use libfuzzer_sys::fuzz_target;

const TIME: u64 = 0x0123_4567_89ab_cdef;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Independent reading of the link header: where the IP header starts.
fn l3_offset(link: LinkType, f: &[u8]) -> Option<usize> {
    match link {
        LinkType::RawIp => Some(0),
        LinkType::LinuxSll => Some(16),
        LinkType::Ethernet => {
            let mut at = 12;
            for _ in 0..2 {
                match be16(f, at)? {
                    0x8100 | 0x88a8 => at += 4,
                    _ => break,
                }
            }
            Some(at + 2)
        }
    }
}

fn link_header(link: LinkType, tags: &[u16], version: u8) -> Vec<u8> {
    let ethertype: u16 = if version == 6 { 0x86dd } else { 0x0800 };
    let mut h = Vec::new();
    match link {
        LinkType::Ethernet => {
            h.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]);
            for t in tags {
                h.extend_from_slice(&t.to_be_bytes());
                h.extend_from_slice(&[0, 7]);
            }
            h.extend_from_slice(&ethertype.to_be_bytes());
        }
        LinkType::LinuxSll => {
            h.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            h.extend_from_slice(&ethertype.to_be_bytes());
        }
        LinkType::RawIp => {}
    }
    h
}

/// Checks that `e` is read from the IP packet starting at `ip`.
fn explained_by(e: &KnockEvent, ip: &[u8]) {
    let version = ip[0] >> 4;
    // (header length, end of the packet as its length field says, capped by the capture)
    let (hdr, end) = match (version, e.src, e.dst) {
        (4, IpAddr::V4(s), IpAddr::V4(d)) => {
            assert_eq!(&ip[12..16], &s.octets(), "IPv4 source not at offset 12");
            assert_eq!(
                &ip[16..20],
                &d.octets(),
                "IPv4 destination not at offset 16"
            );
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            assert!(ihl >= 20, "IHL {ihl}");
            let total = usize::from(be16(ip, 2).unwrap());
            assert_eq!(be16(ip, 6).unwrap() & 0x1fff, 0, "non-first IPv4 fragment");
            (ihl, total.min(ip.len()))
        }
        (6, IpAddr::V6(s), IpAddr::V6(d)) => {
            assert_eq!(&ip[8..24], &s.octets(), "IPv6 source not at offset 8");
            assert_eq!(
                &ip[24..40],
                &d.octets(),
                "IPv6 destination not at offset 24"
            );
            let payload = usize::from(be16(ip, 4).unwrap());
            (40, (40 + payload).min(ip.len()))
        }
        _ => panic!("IP version {version} does not match the event's addresses {e:?}"),
    };
    let need = match e.proto {
        Proto::Tcp => 20,
        Proto::Udp => {
            assert_eq!(e.flags.0, 0, "UDP event with TCP flags");
            8
        }
    };
    // Somewhere after the IP header, a whole L4 header inside the packet carries the port
    // (and, for TCP, a data offset of at least 5 words and the flags).
    let found = (hdr..end.saturating_sub(need - 1)).any(|at| {
        let h = &ip[at..at + need];
        be16(h, 2) == Some(e.dport)
            && (e.proto == Proto::Udp || (h[12] >> 4 >= 5 && h[13] == e.flags.0))
    });
    assert!(found, "no L4 header inside the packet gives {e:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = match selector % 3 {
        0 => LinkType::Ethernet,
        1 => LinkType::RawIp,
        _ => LinkType::LinuxSll,
    };
    let got = decode(link, frame, TIME);
    assert_eq!(got, decode(link, frame, TIME), "not deterministic");

    if let Some(e) = got {
        assert_eq!(e.time_ms, TIME);
        let at = l3_offset(link, frame).expect("decoded without a link header");
        let ip = &frame[at..];
        explained_by(&e, ip);

        // Bytes after the frame (link padding, a longer capture) change nothing.
        let mut longer = frame.to_vec();
        longer.extend_from_slice(&[0xa5; 64]);
        assert_eq!(
            decode(link, &longer, TIME),
            got,
            "trailing bytes changed the event"
        );
        // A cut frame decodes to the same event or to nothing.
        for keep in [frame.len() / 2, frame.len().saturating_sub(1)] {
            let cut = decode(link, &frame[..keep], TIME);
            assert!(
                cut.is_none() || cut == got,
                "cut to {keep}: {cut:?} vs {got:?}"
            );
        }
        // The same packet raw decodes the same.
        assert_eq!(decode(LinkType::RawIp, ip, TIME), got, "raw IP disagrees");
    }

    // Treat the frame as a bare IP packet: every link framing of it must agree.
    if link == LinkType::RawIp {
        let version = frame.first().map_or(0, |b| b >> 4);
        let wraps: [(LinkType, &[u16]); 5] = [
            (LinkType::Ethernet, &[]),
            (LinkType::Ethernet, &[0x8100]),
            (LinkType::Ethernet, &[0x88a8, 0x8100]),
            (LinkType::Ethernet, &[0x8100, 0x8100]),
            (LinkType::LinuxSll, &[]),
        ];
        for (l, tags) in wraps {
            let mut f = link_header(l, tags, version);
            f.extend_from_slice(frame);
            assert_eq!(
                decode(l, &f, TIME),
                got,
                "{l:?} with tags {tags:x?} disagrees with raw IP"
            );
        }
        // A third VLAN tag is refused.
        let mut f = link_header(LinkType::Ethernet, &[0x88a8, 0x8100, 0x8100], version);
        f.extend_from_slice(frame);
        assert_eq!(
            decode(LinkType::Ethernet, &f, TIME),
            None,
            "three VLAN tags accepted"
        );
    }
});
