//! Test-only builders for frames: IPv4 (options, fragments), IPv6 (extension headers), TCP,
//! UDP, and the link headers knockwrap decodes.

use std::net::IpAddr;

use crate::link::LinkType;

pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

pub fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    h[14..16].copy_from_slice(&1024u16.to_be_bytes());
    h
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 8];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// IPv4 with `options` bytes of options (a multiple of 4) and the flags/fragment word `frag`.
pub fn ipv4(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    options: usize,
    frag: u16,
    l4: &[u8],
) -> Vec<u8> {
    let ihl = 20 + options;
    let mut h = vec![0u8; ihl];
    h[0] = 0x40 | (ihl / 4) as u8;
    h[2..4].copy_from_slice(&((ihl + l4.len()) as u16).to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    for b in h.iter_mut().skip(20) {
        *b = 1; // NOP options
    }
    h.extend_from_slice(l4);
    h
}

/// IPv6 whose payload is `exts` (each: header type, body bytes after next/len) then `l4`.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], exts: &[(u8, Vec<u8>)], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (i, (_, body)) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(proto, |e| e.0);
        payload.push(next);
        if exts[i].0 == 44 {
            // Fragment header: fixed 8 bytes, reserved byte instead of a length.
            payload.push(0);
            let mut b = body.clone();
            b.resize(6, 0);
            payload.extend_from_slice(&b);
        } else if exts[i].0 == 51 {
            // AH: length in 4-octet units minus 2.
            let mut b = body.clone();
            let total = (b.len() + 2).div_ceil(4).max(3) * 4;
            b.resize(total - 2, 0);
            payload.push((total / 4 - 2) as u8);
            payload.extend_from_slice(&b);
        } else {
            let mut b = body.clone();
            let total = (b.len() + 2).div_ceil(8).max(1) * 8;
            b.resize(total - 2, 0);
            payload.push((total / 8 - 1) as u8);
            payload.extend_from_slice(&b);
        }
    }
    payload.extend_from_slice(l4);
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    h[6] = exts.first().map_or(proto, |e| e.0);
    h[7] = 64;
    h[8..24].copy_from_slice(&src);
    h[24..40].copy_from_slice(&dst);
    h.extend_from_slice(&payload);
    h
}

/// Wrap an IP packet in a link header; `tags` are VLAN TPIDs, outermost first (Ethernet only).
pub fn frame(link: LinkType, tags: &[u16], ip: &[u8]) -> Vec<u8> {
    let ethertype: u16 = if ip.first().map(|b| b >> 4) == Some(6) {
        0x86dd
    } else {
        0x0800
    };
    let mut f = Vec::new();
    match link {
        LinkType::Ethernet => {
            f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]);
            for (i, tpid) in tags.iter().enumerate() {
                f.extend_from_slice(&tpid.to_be_bytes());
                f.extend_from_slice(&(100 + i as u16).to_be_bytes());
            }
            f.extend_from_slice(&ethertype.to_be_bytes());
        }
        LinkType::LinuxSll => {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            f.extend_from_slice(&ethertype.to_be_bytes());
        }
        LinkType::RawIp => {}
    }
    f.extend_from_slice(ip);
    f
}

pub fn addr4(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

pub fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[1] = 0x00;
    a[2] = 0x4b;
    a[3] = 0x57;
    a[15] = last;
    a
}

/// An Ethernet frame holding a TCP SYN from 10.0.0.1:40000 to 10.0.0.2:`port`.
pub fn syn_frame(port: u16) -> Vec<u8> {
    frame(
        LinkType::Ethernet,
        &[],
        &ipv4(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            6,
            0,
            0,
            &tcp(40000, port, 0x02),
        ),
    )
}
