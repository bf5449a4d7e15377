//! Frames as an attacker on the link writes them: Ethernet + IPv4/IPv6 + TCP/UDP with any
//! source address, any TCP flags and correct checksums, sent with an AF_PACKET socket bound
//! to one interface, so that the kernel's own sanity checks (martian sources, mapped
//! addresses) never stop them before the receiving host's capture sees them. Use only inside
//! namespaces the test created.
//!
//! The bytes come from etherparse's `PacketBuilder` (lengths and checksums included), the
//! one way the workspace's tests build frames; [`tcp_header`] is shared with the other
//! builders (knock-capture's test frames, the raw-socket packets of the binary's tests). The
//! socket goes through nix's safe wrappers: the interface's index and MAC come from
//! getifaddrs, which lists the calling thread's namespace (unlike /sys, which shows the
//! namespace it was mounted in).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use etherparse::{
    EtherType, Ethernet2Header, IpHeaders, Ipv4Header, Ipv6FlowLabel, Ipv6Header, PacketBuilder,
    PacketBuilderStep, SingleVlanHeader, TcpHeader, VlanId,
};
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// Layer 4 of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
}

/// The window every builder's TCP header advertises (what Linux sends in a SYN).
pub const WINDOW: u16 = 64240;

/// The payload of the UDP packets [`ip_packet`] builds.
pub const UDP_PAYLOAD: &[u8] = b"knck";

/// A TCP header without options: ports, sequence number, `flags` (the FIN..CWR bits of the
/// header's flags byte, as on the wire) and window; acknowledgment number and urgent pointer
/// 0. The checksum is left 0: the builder that writes the packet fills it.
pub fn tcp_header(sport: u16, dport: u16, seq: u32, flags: u8, window: u16) -> TcpHeader {
    let mut h = TcpHeader::new(sport, dport, seq, window);
    h.fin = flags & FIN != 0;
    h.syn = flags & SYN != 0;
    h.rst = flags & RST != 0;
    h.psh = flags & PSH != 0;
    h.ack = flags & ACK != 0;
    h.urg = flags & URG != 0;
    h.ece = flags & ECE != 0;
    h.cwr = flags & CWR != 0;
    h
}

/// The IP header from `src` to `dst` (both of one family): IPv4 with don't-fragment and TTL
/// 64, or IPv6 with hop limit 64; lengths and protocol are the builder's to fill.
fn ip_headers(src: IpAddr, dst: IpAddr) -> IpHeaders {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let h = Ipv4Header::new(0, 64, etherparse::ip_number::TCP, s.octets(), d.octets())
                .expect("an empty payload fits");
            IpHeaders::Ipv4(h, Default::default())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => IpHeaders::Ipv6(
            Ipv6Header {
                traffic_class: 0,
                flow_label: Ipv6FlowLabel::ZERO,
                payload_length: 0,
                next_header: etherparse::ip_number::TCP,
                hop_limit: 64,
                source: s.octets(),
                destination: d.octets(),
            },
            Default::default(),
        ),
        _ => panic!("ip packet: {src} and {dst} are of different families"),
    }
}

/// Ends `builder` (bare IP, or Ethernet + IP) with `l4` and writes the whole packet.
fn finish(builder: PacketBuilderStep<IpHeaders>, l4: L4) -> Vec<u8> {
    let mut out = Vec::new();
    match l4 {
        L4::Tcp {
            sport,
            dport,
            flags,
            seq,
        } => builder
            .tcp_header(tcp_header(sport, dport, seq, flags, WINDOW))
            .write(&mut out, &[]),
        L4::Udp { sport, dport } => builder.udp(sport, dport).write(&mut out, UDP_PAYLOAD),
    }
    .expect("writing to a Vec");
    out
}

/// The IP packet (header, L4 header with its checksum; UDP carries [`UDP_PAYLOAD`]) from
/// `src` to `dst`; both must be of the same family.
pub fn ip_packet(src: IpAddr, dst: IpAddr, l4: L4) -> Vec<u8> {
    finish(PacketBuilder::ip(ip_headers(src, dst)), l4)
}

/// The Ethernet frame from `src_mac` to `dst_mac` holding [`ip_packet`]`(src, dst, l4)`.
pub fn frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: IpAddr, dst: IpAddr, l4: L4) -> Vec<u8> {
    finish(
        PacketBuilder::ethernet2(src_mac, dst_mac).ip(ip_headers(src, dst)),
        l4,
    )
}

/// An Ethernet frame around an already built IP packet (its version picks the EtherType).
pub fn ethernet(dst_mac: [u8; 6], src_mac: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let ether_type = if ip.first().is_some_and(|b| b >> 4 == 6) {
        EtherType::IPV6
    } else {
        EtherType::IPV4
    };
    let header = Ethernet2Header {
        source: src_mac,
        destination: dst_mac,
        ether_type,
    };
    [&header.to_bytes()[..], ip].concat()
}

/// The Ethernet frame `frame` with VLAN tags inserted after its MAC addresses: `tags` are
/// (TPID, VLAN id) pairs, outermost first, each written by etherparse. Any TPIDs in any number
/// (etherparse's builder writes one 802.1Q tag, or 802.1ad over 802.1Q, only): what a decoder
/// must take (802.1Q in 802.1Q) or refuse (three tags).
pub fn vlan_tagged(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    assert!(frame.len() >= 14, "an Ethernet frame");
    // Each tag carries the type of what follows it: the next tag's TPID, then the frame's own.
    let mut out = frame[..12].to_vec();
    let inner = EtherType(u16::from_be_bytes([frame[12], frame[13]]));
    let nexts = tags.iter().skip(1).map(|&(tpid, _)| EtherType(tpid));
    out.extend_from_slice(
        &tags
            .first()
            .map_or(inner, |&(tpid, _)| EtherType(tpid))
            .0
            .to_be_bytes(),
    );
    for (&(_, vid), next) in tags.iter().zip(nexts.chain([inner])) {
        let tag = SingleVlanHeader {
            vlan_id: VlanId::try_new(vid).expect("a 12-bit VLAN id"),
            ether_type: next,
            ..Default::default()
        };
        out.extend_from_slice(&tag.to_bytes());
    }
    out.extend_from_slice(&frame[14..]);
    out
}

/// An AF_PACKET socket that writes onto one interface of the calling thread's namespace.
pub struct FrameWriter {
    fd: OwnedFd,
    /// The interface's link-layer address: its index is where frames go.
    link: LinkAddr,
    /// MAC of the interface written from (the frames' source MAC).
    pub mac: [u8; 6],
}

impl FrameWriter {
    /// Opens the writer on `interface` (create it inside the namespace the interface is in).
    pub fn open(interface: &str) -> io::Result<FrameWriter> {
        let link = link_addr(interface)?;
        let fd = socket::socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let mac = link.addr().unwrap_or([0x02, 0, 0, 0, 0, 1]);
        Ok(FrameWriter { fd, link, mac })
    }

    /// Sends one whole frame (its own Ethernet header included); retries while the queue is
    /// full.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            match socket::sendto(self.fd.as_raw_fd(), frame, &self.link, MsgFlags::empty()) {
                Ok(n) if n == frame.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::other(format!(
                        "sent {n} of the frame's {} bytes",
                        frame.len()
                    )))
                }
                Err(Errno::ENOBUFS | Errno::EAGAIN | Errno::EINTR) => std::thread::yield_now(),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends the packet `src` → `dst` to the station `dst_mac`.
    pub fn send_packet(
        &self,
        dst_mac: [u8; 6],
        src: IpAddr,
        dst: IpAddr,
        l4: L4,
    ) -> io::Result<()> {
        self.send(&frame(dst_mac, self.mac, src, dst, l4))
    }
}

/// The link-layer address (index, MAC) of `interface` in the calling thread's namespace.
fn link_addr(interface: &str) -> io::Result<LinkAddr> {
    nix::ifaddrs::getifaddrs()?
        .filter(|a| a.interface_name == interface)
        .find_map(|a| a.address.as_ref()?.as_link_addr().copied())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface {interface} in this namespace"),
            )
        })
}

/// The MAC address of an interface of the calling thread's network namespace.
pub fn read_mac(interface: &str) -> io::Result<[u8; 6]> {
    link_addr(interface)?
        .addr()
        .ok_or_else(|| io::Error::other(format!("{interface} has no MAC address")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{LinkHeader, NetHeaders, PacketHeaders, TransportHeader};

    const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
    const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];

    /// Parses `f` back with etherparse and checks everything the builder promised: MACs,
    /// addresses, TTL, lengths, ports, sequence number, flags and both checksums.
    fn check(f: &[u8], src: IpAddr, dst: IpAddr, l4: L4) {
        let p = PacketHeaders::from_ethernet_slice(f).expect("parses");
        let Some(LinkHeader::Ethernet2(eth)) = p.link else {
            panic!("no Ethernet header: {p:?}");
        };
        assert_eq!((eth.source, eth.destination), (SRC_MAC, DST_MAC));
        assert!(p.link_exts.is_empty(), "no VLAN tags");
        let payload = p.payload.slice();
        let t = p.transport.expect("transport header");
        let transport_sum = match (p.net.expect("IP header"), &t) {
            (NetHeaders::Ipv4(ip, _), _) => {
                assert_eq!(eth.ether_type, EtherType::IPV4);
                assert_eq!(
                    (IpAddr::from(ip.source), IpAddr::from(ip.destination)),
                    (src, dst)
                );
                assert_eq!(ip.time_to_live, 64);
                assert!(ip.dont_fragment && !ip.more_fragments);
                assert_eq!(usize::from(ip.total_len), f.len() - 14);
                assert_eq!(ip.header_checksum, ip.calc_header_checksum(), "IPv4 header");
                match &t {
                    TransportHeader::Tcp(h) => h.calc_checksum_ipv4(&ip, payload).unwrap(),
                    TransportHeader::Udp(h) => h.calc_checksum_ipv4(&ip, payload).unwrap(),
                    other => panic!("{other:?}"),
                }
            }
            (NetHeaders::Ipv6(ip, _), _) => {
                assert_eq!(eth.ether_type, EtherType::IPV6);
                assert_eq!(
                    (IpAddr::from(ip.source), IpAddr::from(ip.destination)),
                    (src, dst)
                );
                assert_eq!(ip.hop_limit, 64);
                assert_eq!(usize::from(ip.payload_length), f.len() - 14 - 40);
                match &t {
                    TransportHeader::Tcp(h) => h.calc_checksum_ipv6(&ip, payload).unwrap(),
                    TransportHeader::Udp(h) => h.calc_checksum_ipv6(&ip, payload).unwrap(),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        };
        match (l4, t) {
            (
                L4::Tcp {
                    sport,
                    dport,
                    flags,
                    seq,
                },
                TransportHeader::Tcp(h),
            ) => {
                assert_eq!((h.source_port, h.destination_port), (sport, dport));
                assert_eq!(h.sequence_number, seq);
                assert_eq!(h.window_size, WINDOW);
                // The flags byte on the wire is exactly the one asked for.
                assert_eq!(h.to_bytes()[13], flags, "flags");
                assert_eq!(h.checksum, transport_sum, "TCP checksum");
                assert!(payload.is_empty());
            }
            (L4::Udp { sport, dport }, TransportHeader::Udp(h)) => {
                assert_eq!((h.source_port, h.destination_port), (sport, dport));
                assert_eq!(usize::from(h.length), 8 + UDP_PAYLOAD.len());
                assert_eq!(h.checksum, transport_sum, "UDP checksum");
                assert_ne!(h.checksum, 0, "UDP checksum filled in");
                assert_eq!(payload, UDP_PAYLOAD);
            }
            (l4, t) => panic!("asked for {l4:?}, built {t:?}"),
        }
        // The bare packet is the frame without its Ethernet header.
        assert_eq!(ip_packet(src, dst, l4), f[14..]);
    }

    #[test]
    fn frames_parse_back_with_their_fields_and_checksums() {
        let v4 = ("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap());
        let v6 = (
            "fd00:4b57::2".parse().unwrap(),
            "fd00:4b57::1".parse().unwrap(),
        );
        for (src, dst) in [v4, v6] {
            for flags in [
                SYN,
                ACK | PSH,
                FIN | SYN | RST | PSH | ACK | URG | ECE | CWR,
                0,
            ] {
                let l4 = L4::Tcp {
                    sport: 40000,
                    dport: 7000,
                    flags,
                    seq: 0x1234_5678,
                };
                check(&frame(DST_MAC, SRC_MAC, src, dst, l4), src, dst, l4);
            }
            let l4 = L4::Udp {
                sport: 1,
                dport: 9000,
            };
            check(&frame(DST_MAC, SRC_MAC, src, dst, l4), src, dst, l4);
        }
    }

    #[test]
    fn ethernet_wraps_either_family() {
        let l4 = L4::Udp { sport: 1, dport: 2 };
        for (src, dst) in [
            ("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap()),
            (
                "fd00:4b57::2".parse().unwrap(),
                "fd00:4b57::1".parse().unwrap(),
            ),
        ] {
            let ip = ip_packet(src, dst, l4);
            assert_eq!(
                ethernet(DST_MAC, SRC_MAC, &ip),
                frame(DST_MAC, SRC_MAC, src, dst, l4)
            );
        }
    }

    #[test]
    fn vlan_tags_parse_back_in_order() {
        let (src, dst) = ("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap());
        let l4 = L4::Tcp {
            sport: 1,
            dport: 7000,
            flags: SYN,
            seq: 9,
        };
        let plain = frame(DST_MAC, SRC_MAC, src, dst, l4);
        assert_eq!(vlan_tagged(&plain, &[]), plain);
        // What etherparse's own builder writes for one 802.1Q tag and for 802.1ad + 802.1Q.
        let mut one = Vec::new();
        PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
            .single_vlan(VlanId::try_new(5).unwrap())
            .ip(ip_headers(src, dst))
            .tcp_header(tcp_header(1, 7000, 9, SYN, WINDOW))
            .write(&mut one, &[])
            .unwrap();
        assert_eq!(vlan_tagged(&plain, &[(0x8100, 5)]), one);
        let mut two = Vec::new();
        PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
            .double_vlan(VlanId::try_new(5).unwrap(), VlanId::try_new(6).unwrap())
            .ip(ip_headers(src, dst))
            .tcp_header(tcp_header(1, 7000, 9, SYN, WINDOW))
            .write(&mut two, &[])
            .unwrap();
        assert_eq!(vlan_tagged(&plain, &[(0x88a8, 5), (0x8100, 6)]), two);
        // Tags the builder does not write, read back by etherparse: 802.1Q twice.
        let f = vlan_tagged(&plain, &[(0x8100, 7), (0x8100, 8)]);
        let p = etherparse::PacketHeaders::from_ethernet_slice(&f).unwrap();
        let tags: Vec<_> = p
            .link_exts
            .iter()
            .map(|x| match x {
                etherparse::LinkExtHeader::Vlan(v) => v.vlan_id.value(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tags, [7, 8]);
        assert_eq!(
            (&f[12..14], &f[16..18], &f[20..22]),
            (&[0x81, 0][..], &[0x81, 0][..], &[0x08, 0][..])
        );
        assert_eq!(f[22..], plain[14..]);
    }

    #[test]
    fn mac_of_loopback_and_of_a_missing_interface() {
        assert_eq!(read_mac("lo").unwrap(), [0; 6]);
        let link = link_addr("lo").unwrap();
        assert_eq!(
            link.ifindex(),
            1,
            "lo is the first interface of a namespace"
        );
        let err = read_mac("kw-nope").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[test]
    #[should_panic(expected = "different families")]
    fn mixed_families_are_refused() {
        ip_packet(
            "198.18.0.2".parse().unwrap(),
            "fd00:4b57::1".parse().unwrap(),
            L4::Udp { sport: 1, dport: 2 },
        );
    }
}
