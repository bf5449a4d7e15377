//! Test-only builders for frames: IPv4 (options, fragments), IPv6 (extension headers), TCP,
//! UDP, and the link headers knockwrap decodes.
//!
//! The pieces compose (an L4 header, an IP packet around it, a link header around that) so
//! that decoder and filter tests can reach in between and corrupt one layer. Every piece is
//! written by etherparse: IPv4 by its `PacketBuilder` (lengths, header checksum), the other
//! headers by its header types, and [`ipv4`]/[`ipv6`] fill in the TCP or UDP checksum of a
//! whole L4 header they wrap; the TCP header and the VLAN tags are test-support's, shared with
//! every other builder. What etherparse's builder will not write (an IPv6 extension chain in
//! any order and of any length) is put together here from its header types.

use std::net::IpAddr;

use etherparse::{
    ArpHardwareId, EtherType, Ethernet2Header, IpAuthHeader, IpFragOffset, IpHeaders, IpNumber,
    Ipv4Header, Ipv4Options, Ipv6FlowLabel, Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader,
    LinuxSllHeader, LinuxSllPacketType, LinuxSllProtocolType, PacketBuilder, TcpHeader, UdpHeader,
};
use test_support::frames::vlan_tagged;

use crate::link::LinkType;

pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

/// The window of the TCP headers built here.
const WINDOW: u16 = 1024;

/// A 20-byte TCP header with sequence number 0 and the flags byte `flags`; its checksum is
/// filled when [`ipv4`] or [`ipv6`] wraps it.
pub fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    test_support::frames::tcp_header(sport, dport, 0, flags, WINDOW)
        .to_bytes()
        .to_vec()
}

/// A UDP header and `payload`; its checksum is filled when [`ipv4`] or [`ipv6`] wraps it.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let h = UdpHeader {
        source_port: sport,
        destination_port: dport,
        length: (UdpHeader::LEN + payload.len()) as u16,
        checksum: 0,
    };
    [&h.to_bytes()[..], payload].concat()
}

/// `l4` with its checksum (over the pseudo-header of `src` → `dst`, computed by etherparse)
/// filled in when it is a whole TCP header or a UDP header whose length covers it exactly;
/// anything else (a cut header, ICMP, bytes a test made up) is left as it is.
fn with_checksum(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> Vec<u8> {
    use IpAddr::{V4, V6};
    let sum = match IpNumber(proto) {
        etherparse::ip_number::TCP => TcpHeader::from_slice(l4).ok().map(|(h, data)| {
            let sum = match (src, dst) {
                (V4(s), V4(d)) => h.calc_checksum_ipv4_raw(s.octets(), d.octets(), data),
                (V6(s), V6(d)) => h.calc_checksum_ipv6_raw(s.octets(), d.octets(), data),
                _ => unreachable!("one family"),
            };
            (16, sum.expect("a test segment fits"))
        }),
        etherparse::ip_number::UDP => UdpHeader::from_slice(l4)
            .ok()
            .filter(|(h, _)| usize::from(h.length) == l4.len())
            .map(|(h, data)| {
                let sum = match (src, dst) {
                    (V4(s), V4(d)) => h.calc_checksum_ipv4_raw(s.octets(), d.octets(), data),
                    (V6(s), V6(d)) => h.calc_checksum_ipv6_raw(s.octets(), d.octets(), data),
                    _ => unreachable!("one family"),
                };
                (6, sum.expect("a test datagram fits"))
            }),
        _ => None,
    };
    let mut out = l4.to_vec();
    if let Some((at, sum)) = sum {
        out[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }
    out
}

/// IPv4 with `options` bytes of NOP options (a multiple of 4, at most 40), TTL 64 and the
/// flags/fragment word `frag` (0x4000 DF, 0x2000 MF, low 13 bits the offset in 8-byte units).
pub fn ipv4(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    options: usize,
    frag: u16,
    l4: &[u8],
) -> Vec<u8> {
    let mut h = Ipv4Header::new(0, 64, IpNumber(proto), src, dst).expect("empty payload");
    h.dont_fragment = frag & 0x4000 != 0;
    h.more_fragments = frag & 0x2000 != 0;
    h.fragment_offset = IpFragOffset::try_new(frag & 0x1fff).expect("13 bits");
    h.options = Ipv4Options::try_from(&vec![1u8; options][..])
        .expect("IPv4 options: a multiple of 4 bytes, at most 40");
    let l4 = with_checksum(src.into(), dst.into(), proto, l4);
    let mut out = Vec::new();
    PacketBuilder::ip(IpHeaders::Ipv4(h, Default::default()))
        .write(&mut out, IpNumber(proto), &l4)
        .expect("writing to a Vec");
    out
}

/// The extension header of type `kind` followed by `next`, from `body` (its bytes after the
/// next-header and length fields; shorter bodies are padded with zeros to the header's size):
/// a fragment header (44) is 8 bytes, AH (51) a multiple of 4 and at least 12, any other
/// type a multiple of 8.
fn ext_header(kind: u8, next: u8, body: &[u8]) -> Vec<u8> {
    let pad = |b: &[u8], len: usize| {
        let mut b = b.to_vec();
        b.resize(len.max(b.len()), 0);
        b
    };
    match kind {
        44 => {
            let b = pad(body, 6);
            let word = u16::from_be_bytes([b[0], b[1]]);
            let id = u32::from_be_bytes([b[2], b[3], b[4], b[5]]);
            let offset = IpFragOffset::try_new(word >> 3).expect("13 bits");
            Ipv6FragmentHeader::new(IpNumber(next), offset, word & 1 != 0, id)
                .to_bytes()
                .to_vec()
        }
        51 => {
            // Reserved (2), SPI (4), sequence number (4), then the ICV.
            let b = pad(body, 10);
            let b = pad(&b, 10 + (b.len() - 10).div_ceil(4) * 4);
            let spi = u32::from_be_bytes([b[2], b[3], b[4], b[5]]);
            let seq = u32::from_be_bytes([b[6], b[7], b[8], b[9]]);
            IpAuthHeader::new(IpNumber(next), spi, seq, &b[10..])
                .expect("ICV a multiple of 4")
                .to_bytes()
                .to_vec()
        }
        _ => {
            let total = (body.len() + 2).div_ceil(8).max(1) * 8;
            Ipv6RawExtHeader::new_raw(IpNumber(next), &pad(body, total - 2))
                .expect("a multiple of 8")
                .to_bytes()
                .to_vec()
        }
    }
}

/// IPv6 (hop limit 64) whose payload is `exts` (each: header type, body bytes after
/// next/len, see [`ext_header`]) then `l4`. etherparse writes each extension header; the
/// chain is put together here, as etherparse's own builder takes each type at most once and
/// in its order only, and the decoder tests need any order and too many.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], exts: &[(u8, Vec<u8>)], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (i, (kind, body)) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(proto, |e| e.0);
        payload.extend(ext_header(*kind, next, body));
    }
    payload.extend(with_checksum(src.into(), dst.into(), proto, l4));
    // Written without the builder: IPv6 has no header checksum, and etherparse 0.21's builder
    // panics on a payload starting with a hop-by-hop header that is not in its own
    // extensions.
    let h = Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: u16::try_from(payload.len()).expect("a test packet fits"),
        next_header: IpNumber(exts.first().map_or(proto, |e| e.0)),
        hop_limit: 64,
        source: src,
        destination: dst,
    };
    [&h.to_bytes()[..], &payload].concat()
}

/// Wrap an IP packet in a link header; `tags` are VLAN TPIDs, outermost first (Ethernet only),
/// with VLAN ids 100, 101, ...
pub fn frame(link: LinkType, tags: &[u16], ip: &[u8]) -> Vec<u8> {
    let ether_type = if ip.first().map(|b| b >> 4) == Some(6) {
        EtherType::IPV6
    } else {
        EtherType::IPV4
    };
    let mut f = match link {
        LinkType::Ethernet => {
            let eth = Ethernet2Header {
                destination: [0x02, 0, 0, 0, 0, 1],
                source: [0x02, 0, 0, 0, 0, 2],
                ether_type,
            };
            let tags: Vec<(u16, u16)> = tags.iter().copied().zip(100..).collect();
            vlan_tagged(&eth.to_bytes(), &tags)
        }
        LinkType::LinuxSll => {
            let sll = LinuxSllHeader {
                packet_type: LinuxSllPacketType::HOST,
                arp_hrd_type: ArpHardwareId::ETHERNET,
                sender_address_valid_length: 6,
                sender_address: [0x02, 0, 0, 0, 0, 1, 0, 0],
                protocol_type: LinuxSllProtocolType::EtherType(ether_type),
            };
            sll.to_bytes().to_vec()
        }
        LinkType::RawIp => Vec::new(),
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{LinkExtHeader, LinkHeader, NetHeaders, PacketHeaders, TransportHeader};

    const C4: [u8; 4] = [198, 18, 0, 2];
    const S4: [u8; 4] = [198, 18, 0, 1];

    /// The TCP or UDP checksum of the parsed packet `p` verifies against its IP header.
    fn l4_checksum_verifies(p: &PacketHeaders) -> bool {
        let payload = p.payload.slice();
        match (p.net.as_ref().unwrap(), p.transport.as_ref().unwrap()) {
            (NetHeaders::Ipv4(ip, _), TransportHeader::Tcp(t)) => {
                t.checksum == t.calc_checksum_ipv4(ip, payload).unwrap()
            }
            (NetHeaders::Ipv4(ip, _), TransportHeader::Udp(u)) => {
                u.checksum == u.calc_checksum_ipv4(ip, payload).unwrap()
            }
            (NetHeaders::Ipv6(ip, _), TransportHeader::Tcp(t)) => {
                t.checksum == t.calc_checksum_ipv6(ip, payload).unwrap()
            }
            (NetHeaders::Ipv6(ip, _), TransportHeader::Udp(u)) => {
                u.checksum == u.calc_checksum_ipv6(ip, payload).unwrap()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ipv4_tcp_parses_back() {
        for opts in [0, 4, 40] {
            let p = ipv4(C4, S4, 6, opts, 0, &tcp(40000, 7000, 0x12));
            let h = PacketHeaders::from_ip_slice(&p).unwrap();
            let Some(NetHeaders::Ipv4(ip, _)) = &h.net else {
                panic!("{h:?}")
            };
            assert_eq!((ip.source, ip.destination), (C4, S4));
            assert_eq!(ip.options.as_slice(), &vec![1u8; opts][..], "NOP options");
            assert_eq!(usize::from(ip.total_len), p.len());
            assert!(!ip.dont_fragment && !ip.more_fragments);
            assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            let Some(TransportHeader::Tcp(t)) = &h.transport else {
                panic!("{h:?}")
            };
            assert_eq!((t.source_port, t.destination_port), (40000, 7000));
            assert_eq!(
                (t.sequence_number, t.to_bytes()[13]),
                (0, 0x12),
                "seq, flags"
            );
            assert!(l4_checksum_verifies(&h), "TCP checksum");
        }
    }

    #[test]
    fn ipv4_fragment_word_lands_in_the_header() {
        for (frag, df, mf, offset) in [
            (0x4000, true, false, 0),
            (0x2000, false, true, 0),
            (0x2000 | 3, false, true, 3),
            (1, false, false, 1),
        ] {
            let p = ipv4(C4, S4, 6, 0, frag, &tcp(1, 7000, 0x02));
            assert_eq!(u16::from_be_bytes([p[6], p[7]]), frag);
            let (ip, _) = Ipv4Header::from_slice(&p).unwrap();
            assert_eq!(
                (
                    ip.dont_fragment,
                    ip.more_fragments,
                    ip.fragment_offset.value()
                ),
                (df, mf, offset)
            );
            assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        }
        // A cut TCP header is carried as it is.
        let cut = &tcp(1, 7000, 0x02)[..12];
        assert_eq!(&ipv4(C4, S4, 6, 0, 0x2000, cut)[20..], cut);
    }

    #[test]
    fn udp_and_other_protocols() {
        let p = ipv4(C4, S4, 17, 0, 0, &udp(5, 9000, b"xyz"));
        let h = PacketHeaders::from_ip_slice(&p).unwrap();
        let Some(TransportHeader::Udp(u)) = &h.transport else {
            panic!("{h:?}")
        };
        assert_eq!((u.source_port, u.destination_port, u.length), (5, 9000, 11));
        assert_eq!(h.payload.slice(), b"xyz");
        assert!(l4_checksum_verifies(&h), "UDP checksum");
        assert_ne!(u.checksum, 0);
        let icmp = [8, 0, 0, 0, 0, 0, 0, 0];
        let p = ipv4(C4, S4, 1, 0, 0, &icmp);
        assert_eq!((p[9], &p[20..]), (1, &icmp[..]));
    }

    #[test]
    fn ipv6_with_and_without_extension_headers_parses_back() {
        let p = ipv6(v6(2), v6(1), &[], 17, &udp(5, 9000, b"\0"));
        let h = PacketHeaders::from_ip_slice(&p).unwrap();
        let Some(NetHeaders::Ipv6(ip, _)) = &h.net else {
            panic!("{h:?}")
        };
        assert_eq!(
            (ip.source, ip.destination, ip.hop_limit),
            (v6(2), v6(1), 64)
        );
        assert_eq!(usize::from(ip.payload_length), p.len() - 40);
        assert!(l4_checksum_verifies(&h), "UDP checksum");

        // The chain etherparse itself reads, in its order: every header in place.
        let exts = vec![
            (0u8, vec![1, 4, 0, 0, 0, 0]),
            (60, vec![]),
            (43, vec![0; 12]),
            (44, vec![0, 0, 0, 0, 0, 1]),
            (51, vec![0; 14]),
        ];
        let p = ipv6(v6(2), v6(1), &exts, 6, &tcp(1, 7000, 0x02));
        assert_eq!(p.len(), 40 + 8 + 8 + 16 + 8 + 16 + 20);
        let h = PacketHeaders::from_ip_slice(&p).unwrap();
        let Some(NetHeaders::Ipv6(ip, x)) = &h.net else {
            panic!("{h:?}")
        };
        assert_eq!(usize::from(ip.payload_length), p.len() - 40);
        assert!(x.hop_by_hop_options.is_some() && x.destination_options.is_some());
        assert!(x.routing.is_some() && x.auth.is_some());
        let frag = x.fragment.as_ref().unwrap();
        assert_eq!(
            (
                frag.fragment_offset.value(),
                frag.more_fragments,
                frag.identification
            ),
            (0, false, 1)
        );
        let Some(TransportHeader::Tcp(t)) = &h.transport else {
            panic!("{h:?}")
        };
        assert_eq!((t.destination_port, t.to_bytes()[13]), (7000, 0x02));
        assert!(l4_checksum_verifies(&h), "TCP checksum behind the chain");

        // Any order and count: the raw next-header chain.
        let many: Vec<(u8, Vec<u8>)> = (0..9).map(|_| (60u8, vec![])).collect();
        let p = ipv6(v6(2), v6(1), &many, 6, &tcp(1, 7000, 0x02));
        assert_eq!((p.len(), p[6]), (40 + 9 * 8 + 20, 60));
        for i in 0..9 {
            let next = if i < 8 { 60 } else { 6 };
            assert_eq!((p[40 + 8 * i], p[41 + 8 * i]), (next, 0), "header {i}");
        }
        assert_eq!(&p[40 + 72 + 2..40 + 72 + 4], &7000u16.to_be_bytes());
    }

    #[test]
    fn link_headers_parse_back() {
        let ip = ipv4(C4, S4, 6, 0, 0, &tcp(1, 7000, 0x02));
        for tags in [&[][..], &[TPID_8021Q], &[TPID_8021AD, TPID_8021Q]] {
            let f = frame(LinkType::Ethernet, tags, &ip);
            assert_eq!(f[14 + 4 * tags.len()..], ip[..]);
            let h = PacketHeaders::from_ethernet_slice(&f).unwrap();
            let Some(LinkHeader::Ethernet2(eth)) = &h.link else {
                panic!("{h:?}")
            };
            assert_eq!(eth.destination, [0x02, 0, 0, 0, 0, 1]);
            assert_eq!(eth.source, [0x02, 0, 0, 0, 0, 2]);
            let first = tags.first().map_or(EtherType::IPV4, |&t| EtherType(t));
            assert_eq!(eth.ether_type, first);
            let ids: Vec<u16> = h
                .link_exts
                .iter()
                .map(|x| match x {
                    LinkExtHeader::Vlan(v) => v.vlan_id.value(),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(ids, (100..100 + tags.len() as u16).collect::<Vec<_>>());
            let Some(NetHeaders::Ipv4(v4, _)) = &h.net else {
                panic!("{h:?}")
            };
            assert_eq!(v4.source, C4);
        }
        // Tags etherparse's builder would not write: the TPIDs as given, outermost first.
        let f = frame(LinkType::Ethernet, &[TPID_8021Q; 3], &ip);
        assert_eq!(&f[12..14], &[0x81, 0x00]);
        assert_eq!(
            (&f[16..18], &f[20..22], &f[24..26]),
            (&[0x81, 0][..], &[0x81, 0][..], &[0x08, 0][..])
        );
        let v6p = ipv6(v6(2), v6(1), &[], 17, &udp(5, 9000, b"\0"));
        let f = frame(LinkType::LinuxSll, &[], &v6p);
        let (sll, rest) = LinuxSllHeader::from_slice(&f).unwrap();
        assert_eq!(
            sll.protocol_type,
            LinuxSllProtocolType::EtherType(EtherType::IPV6)
        );
        assert_eq!(
            (sll.packet_type, rest),
            (LinuxSllPacketType::HOST, &v6p[..])
        );
        assert_eq!(frame(LinkType::RawIp, &[], &v6p), v6p);
    }

    #[test]
    fn syn_frame_is_a_syn() {
        let f = syn_frame(7000);
        let h = PacketHeaders::from_ethernet_slice(&f).unwrap();
        let Some(NetHeaders::Ipv4(ip, _)) = &h.net else {
            panic!("{h:?}")
        };
        assert_eq!((ip.source, ip.destination), ([10, 0, 0, 1], [10, 0, 0, 2]));
        let Some(TransportHeader::Tcp(t)) = &h.transport else {
            panic!("{h:?}")
        };
        assert_eq!(
            (t.source_port, t.destination_port, t.to_bytes()[13]),
            (40000, 7000, 0x02)
        );
        assert!(l4_checksum_verifies(&h));
    }
}
