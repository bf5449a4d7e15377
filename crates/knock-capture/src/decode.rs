//! Frame decoding: link header → IPv4/IPv6 (extension headers walked here, not in the
//! kernel) → TCP/UDP destination port and flags, as a [`KnockEvent`].
//!
//! Pure and total: every index is checked, so no byte sequence can make it panic; anything it
//! does not fully understand yields `None`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use knock_match::{KnockEvent, Proto, TcpFlags};

use crate::link::LinkType;

/// VLAN tags accepted in the data (the kernel usually moves the outer one to metadata).
const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers walked before giving up.
const MAX_V6_EXTENSIONS: usize = 8;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Decode one captured frame. `time_ms` is stamped on the event unchanged.
pub fn decode(link: LinkType, frame: &[u8], time_ms: u64) -> Option<KnockEvent> {
    let (ethertype, l3) = match link {
        LinkType::Ethernet => {
            let mut at = 12;
            let mut tags = 0;
            loop {
                let t = be16(frame, at)?;
                if (t == 0x8100 || t == 0x88a8) && tags < MAX_VLAN_TAGS {
                    tags += 1;
                    at += 4;
                } else {
                    break (t, frame.get(at + 2..)?);
                }
            }
        }
        LinkType::LinuxSll => (be16(frame, 14)?, frame.get(16..)?),
        LinkType::RawIp => match frame.first()? >> 4 {
            4 => (0x0800, frame),
            6 => (0x86dd, frame),
            _ => return None,
        },
    };
    let (src, dst, proto, l4) = match ethertype {
        0x0800 => parse_ipv4(l3)?,
        0x86dd => parse_ipv6(l3)?,
        _ => return None,
    };
    let (proto, dport, flags, attempt) = match proto {
        6 => {
            let h = l4.get(..20)?;
            // A data offset below 5 words is not a TCP header.
            if h[12] >> 4 < 5 {
                return None;
            }
            let seq = u32::from_be_bytes(array::<4>(h, 4)?);
            let attempt = KnockEvent::attempt_of(be16(h, 0)?, seq);
            (Proto::Tcp, be16(h, 2)?, TcpFlags(h[13]), attempt)
        }
        17 => {
            let h = l4.get(..8)?;
            (Proto::Udp, be16(h, 2)?, TcpFlags(0), 0)
        }
        _ => return None,
    };
    Some(KnockEvent {
        time_ms,
        src,
        dst,
        proto,
        dport,
        flags,
        // Whether the destination is this host is the daemon's to say (it knows the addresses).
        to_host: false,
        via_loopback: false,
        attempt,
        // Which of the daemon's interfaces: the capture thread's owner says.
        interface: 0,
    })
}

/// IPv4 header → (src, dst, protocol, L4 bytes). Only unfragmented packets and first
/// fragments; trailing link padding is cut off by the total length.
fn parse_ipv4(p: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    let vihl = *p.first()?;
    if vihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    let total = usize::from(be16(p, 2)?);
    if ihl < 20 || total < ihl {
        return None;
    }
    if be16(p, 6)? & 0x1fff != 0 {
        return None;
    }
    let src = Ipv4Addr::from(array::<4>(p, 12)?);
    let dst = Ipv4Addr::from(array::<4>(p, 16)?);
    let end = total.min(p.len());
    let l4 = p.get(ihl..end)?;
    Some((src.into(), dst.into(), p[9], l4))
}

/// IPv6 header → (src, dst, upper protocol, L4 bytes), walking extension headers.
fn parse_ipv6(p: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    if *p.first()? >> 4 != 6 {
        return None;
    }
    let payload_len = usize::from(be16(p, 4)?);
    let src = Ipv6Addr::from(array::<16>(p, 8)?);
    let dst = Ipv6Addr::from(array::<16>(p, 24)?);
    // Jumbograms (payload length 0) are not knocks; the rest is bounded by the length field.
    let end = 40usize.checked_add(payload_len)?.min(p.len());
    let body = p.get(40..end)?;
    let mut next = p[6];
    let mut at = 0usize;
    for _ in 0..=MAX_V6_EXTENSIONS {
        match next {
            6 | 17 => return Some((src.into(), dst.into(), next, body.get(at..)?)),
            // Hop-by-hop, routing, destination options: length in 8-octet units after the first 8.
            0 | 43 | 60 => {
                let len = (usize::from(*body.get(at + 1)?) + 1) * 8;
                next = *body.get(at)?;
                at = at.checked_add(len)?;
            }
            44 => {
                let frag = be16(body, at + 2)?;
                if frag & 0xfff8 != 0 {
                    return None; // not the first fragment
                }
                next = *body.get(at)?;
                at += 8;
            }
            // AH: length in 4-octet units, minus 2.
            51 => {
                let len = (usize::from(*body.get(at + 1)?) + 2) * 4;
                next = *body.get(at)?;
                at = at.checked_add(len)?;
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests;
