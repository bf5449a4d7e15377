//! Crafted IPv4 packets through a raw socket (IP_HDRINCL): TCP SYNs with any source address,
//! the exact same SYN twice (a retransmission), and floods. Create the socket inside the
//! client namespace (`net.in_client(RawV4::new)`); it stays there wherever it is used.
//!
//! The packets are etherparse's (`PacketBuilder`, lengths and checksums included), with the
//! TCP header of test-support's `frames::tcp_header`: one way to build test frames. The
//! sockets go through nix's safe wrappers.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};

use crate::frames::{tcp_header, SYN, WINDOW};
use etherparse::{
    IpHeaders, Ipv4Header, Ipv6Extensions, Ipv6FlowLabel, Ipv6Header, Ipv6RawExtHeader,
    PacketBuilder,
};
use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, SockaddrIn6,
    SockaddrLike,
};

/// A raw socket of `family` that takes whole IP packets (IPPROTO_RAW implies HDRINCL).
fn raw_socket(family: AddressFamily) -> OwnedFd {
    socket::socket(
        family,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Raw,
    )
    .unwrap_or_else(|e| panic!("raw {family:?} socket: {e}"))
}

/// Sends `packet` to `to`; retries while the socket buffer is full, so floods are paced by
/// the kernel.
fn send_to(fd: &OwnedFd, packet: &[u8], to: &dyn SockaddrLike) -> io::Result<()> {
    loop {
        match socket::sendto(fd.as_raw_fd(), packet, to, MsgFlags::empty()) {
            Ok(_) => return Ok(()),
            Err(Errno::ENOBUFS | Errno::EAGAIN | Errno::EINTR) => std::thread::yield_now(),
            Err(e) => return Err(e.into()),
        }
    }
}

pub struct RawV4 {
    fd: OwnedFd,
}

impl RawV4 {
    pub fn new() -> RawV4 {
        RawV4 {
            fd: raw_socket(AddressFamily::Inet),
        }
    }

    /// Sends one complete IPv4 packet (header included) to its destination address.
    /// Retries while the socket buffer is full, so floods are paced by the kernel.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        send_to(
            &self.fd,
            packet,
            &SockaddrIn::from(SocketAddrV4::new(dst, 0)),
        )
    }

    pub fn syn(&self, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) {
        let packet = tcp_syn_v4(src, dst, sport, dport, seq_for(src, sport, dport));
        self.send(&packet)
            .unwrap_or_else(|e| panic!("sending SYN {src}:{sport} -> {dst}:{dport}: {e}"));
    }
    /// An ascending SYN sweep over `ports` from one source port, one packet every `gap`
    /// (busy-waited: sleeps are far coarser than the microsecond gaps of a fast scanner).
    pub fn sweep(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        ports: std::ops::RangeInclusive<u16>,
        gap: std::time::Duration,
    ) {
        let started = std::time::Instant::now();
        for (n, port) in ports.enumerate() {
            let due = started + gap * n as u32;
            while std::time::Instant::now() < due {
                std::hint::spin_loop();
            }
            self.syn(src, dst, sport, port);
        }
    }
}

impl Default for RawV4 {
    fn default() -> Self {
        Self::new()
    }
}

/// Crafted IPv6 packets through a raw socket (IPPROTO_RAW implies IPV6_HDRINCL): lets tests
/// put extension headers between the IPv6 header and TCP. Create it in the client namespace.
pub struct RawV6 {
    fd: OwnedFd,
}

impl RawV6 {
    pub fn new() -> RawV6 {
        RawV6 {
            fd: raw_socket(AddressFamily::Inet6),
        }
    }

    /// Sends one complete IPv6 packet (header included) to its destination address.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        let dst: [u8; 16] = packet[24..40].try_into().expect("16 bytes");
        let to = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::from(dst), 0, 0, 0));
        send_to(&self.fd, packet, &to)
    }
}

impl Default for RawV6 {
    fn default() -> Self {
        Self::new()
    }
}

/// IPv6 extension header types usable in [`tcp_syn_v6`].
pub const HOP_BY_HOP: u8 = 0;
pub const DEST_OPTIONS: u8 = 60;

/// An IPv6 TCP SYN with the given chain of 8-byte extension headers (each holding one PadN
/// option) between the IPv6 header and TCP, with a correct TCP checksum. The chain is one
/// etherparse writes: each type at most once, hop-by-hop first.
pub fn tcp_syn_v6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ext: &[u8],
) -> Vec<u8> {
    // PadN: option type 1, four bytes of padding; with next header and length, 8 bytes. (The
    // builder sets each header's next header.)
    let pad_n = || {
        let pad = [1, 4, 0, 0, 0, 0];
        Some(Ipv6RawExtHeader::new_raw(etherparse::ip_number::TCP, &pad).expect("8 bytes"))
    };
    let mut exts = Ipv6Extensions::default();
    for (i, &kind) in ext.iter().enumerate() {
        match kind {
            HOP_BY_HOP if i == 0 => exts.hop_by_hop_options = pad_n(),
            DEST_OPTIONS if exts.destination_options.is_none() => {
                exts.destination_options = pad_n()
            }
            _ => panic!("tcp_syn_v6: extension chain {ext:?} is not hop-by-hop first, each once"),
        }
    }
    let ip = Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: 0,
        next_header: etherparse::ip_number::TCP,
        hop_limit: 64,
        source: src.octets(),
        destination: dst.octets(),
    };
    let mut p = Vec::new();
    PacketBuilder::ip(IpHeaders::Ipv6(ip, exts))
        .tcp_header(tcp_header(sport, dport, seq, SYN, WINDOW))
        .write(&mut p, &[])
        .expect("writing to a Vec");
    p
}

/// A deterministic initial sequence number, so that sending the "same SYN" twice really
/// produces two identical packets, as a TCP retransmission does.
pub fn seq_for(src: Ipv4Addr, sport: u16, dport: u16) -> u32 {
    u32::from(src).rotate_left(7) ^ (u32::from(sport) << 16) ^ u32::from(dport) ^ 0x5eed_4b57
}

/// A 40-byte IPv4+TCP SYN with correct checksums (the kernel would fill the IP one anyway):
/// don't-fragment, TTL 64, identification `sport ^ dport`.
pub fn tcp_syn_v4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, seq: u32) -> [u8; 40] {
    let mut ip = Ipv4Header::new(
        0,
        64,
        etherparse::ip_number::TCP,
        src.octets(),
        dst.octets(),
    )
    .expect("an empty payload fits");
    ip.identification = sport ^ dport;
    let mut p = [0u8; 40];
    let n = PacketBuilder::ip(IpHeaders::Ipv4(ip, Default::default()))
        .tcp_header(tcp_header(sport, dport, seq, SYN, WINDOW))
        .write_to_slice(&mut p, &[])
        .expect("a SYN is 40 bytes");
    assert_eq!(n, p.len());
    p
}

/// The i-th address of the spoofing pool 198.18.128.0/17 + 198.19.0.0/16 (98 304 addresses,
/// all inside 198.18.0.0/15 and outside every test's 198.18.X.0/24 with X < 128). The
/// server has no route back to them, so its answers die locally instead of flooding ARP.
pub fn pool_v4(i: u32) -> Ipv4Addr {
    let i = i % (32_768 + 65_536);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 128, 0)) + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetHeaders, PacketHeaders, TransportHeader};

    /// Parses `p` back with etherparse: the IP header, then a SYN from `sport` to `dport`
    /// with sequence number `seq` and a TCP checksum that verifies. Returns the IP header.
    fn check_syn(p: &[u8], sport: u16, dport: u16, seq: u32) -> NetHeaders {
        let h = PacketHeaders::from_ip_slice(p).expect("parses");
        let Some(TransportHeader::Tcp(t)) = h.transport else {
            panic!("no TCP header: {h:?}");
        };
        assert_eq!((t.source_port, t.destination_port), (sport, dport));
        assert_eq!(t.sequence_number, seq);
        assert_eq!(t.to_bytes()[13], SYN, "exactly SYN");
        assert!(h.payload.slice().is_empty());
        let net = h.net.expect("IP header");
        let sum = match &net {
            NetHeaders::Ipv4(ip, _) => t.calc_checksum_ipv4(ip, &[]).unwrap(),
            NetHeaders::Ipv6(ip, _) => t.calc_checksum_ipv6(ip, &[]).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(t.checksum, sum, "TCP checksum");
        net
    }

    #[test]
    fn syn_parses_back_and_checksums_verify() {
        let (src, dst) = (Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 18, 1, 1));
        let p = tcp_syn_v4(src, dst, 40000, 7000, 1);
        let NetHeaders::Ipv4(ip, _) = check_syn(&p, 40000, 7000, 1) else {
            panic!("not IPv4");
        };
        assert_eq!((ip.source, ip.destination), (src.octets(), dst.octets()));
        assert_eq!(ip.total_len, 40);
        assert_eq!(ip.identification, 40000 ^ 7000);
        assert!(ip.dont_fragment && !ip.more_fragments);
        assert_eq!(ip.time_to_live, 64);
        assert_eq!(ip.header_checksum, ip.calc_header_checksum(), "IPv4 header");
        // The same SYN twice is the same packet: what a retransmission looks like.
        let seq = seq_for(src, 40000, 7000);
        assert_eq!(
            tcp_syn_v4(src, dst, 40000, 7000, seq),
            tcp_syn_v4(src, dst, 40000, 7000, seq)
        );
    }

    #[test]
    fn v6_syn_chain_and_checksum_verify() {
        let src: Ipv6Addr = "fd00:4b57::2".parse().unwrap();
        let dst: Ipv6Addr = "fd00:4b57::1".parse().unwrap();
        for (chain, len) in [
            (&[][..], 0),
            (&[DEST_OPTIONS][..], 8),
            (&[HOP_BY_HOP][..], 8),
            (&[HOP_BY_HOP, DEST_OPTIONS][..], 16),
        ] {
            let p = tcp_syn_v6(src, dst, 40000, 7000, 1, chain);
            assert_eq!(p.len(), 40 + len + 20, "{chain:?}");
            assert_eq!(
                usize::from(u16::from_be_bytes([p[4], p[5]])),
                len + 20,
                "payload length"
            );
            let NetHeaders::Ipv6(ip, exts) = check_syn(&p, 40000, 7000, 1) else {
                panic!("not IPv6");
            };
            assert_eq!((ip.source, ip.destination), (src.octets(), dst.octets()));
            assert_eq!(ip.hop_limit, 64);
            assert_eq!(
                exts.hop_by_hop_options.is_some(),
                chain.contains(&HOP_BY_HOP),
                "{chain:?}"
            );
            assert_eq!(
                exts.destination_options.is_some(),
                chain.contains(&DEST_OPTIONS),
                "{chain:?}"
            );
            // The header chain, read off the wire: first header, each one's next, then TCP.
            let mut next = p[6];
            for (i, &kind) in chain.iter().enumerate() {
                assert_eq!(next, kind, "{chain:?}");
                next = p[40 + 8 * i];
            }
            assert_eq!(next, 6, "TCP after the chain");
        }
    }

    #[test]
    #[should_panic(expected = "hop-by-hop first")]
    fn v6_chain_etherparse_cannot_write_is_refused() {
        let a: Ipv6Addr = "fd00:4b57::2".parse().unwrap();
        tcp_syn_v6(a, a, 1, 2, 3, &[DEST_OPTIONS, HOP_BY_HOP]);
    }

    #[test]
    fn pool_stays_in_range() {
        assert_eq!(pool_v4(0), Ipv4Addr::new(198, 18, 128, 0));
        assert_eq!(pool_v4(98_303), Ipv4Addr::new(198, 19, 255, 255));
        assert_eq!(pool_v4(98_304), Ipv4Addr::new(198, 18, 128, 0));
    }
}
