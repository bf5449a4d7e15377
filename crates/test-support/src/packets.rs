//! Crafted IPv4 packets through a raw socket (IP_HDRINCL): TCP SYNs with any source address,
//! the exact same SYN twice (a retransmission), and floods. Create the socket inside the
//! client namespace (`net.in_client(RawV4::new)`); it stays there wherever it is used.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub struct RawV4 {
    fd: OwnedFd,
}

impl RawV4 {
    pub fn new() -> RawV4 {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        assert!(fd >= 0, "raw socket: {}", io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        RawV4 {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }

    /// Sends one complete IPv4 packet (header included) to its destination address.
    /// Retries while the socket buffer is full, so floods are paced by the kernel.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        let dst = u32::from_ne_bytes([packet[16], packet[17], packet[18], packet[19]]);
        // SAFETY: sockaddr_in is plain data; all-zero is a valid starting value.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = dst;
        loop {
            // SAFETY: buffer and address are valid for the lengths given.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    packet.as_ptr().cast(),
                    packet.len(),
                    0,
                    (&addr as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    std::thread::yield_now()
                }
                _ => return Err(err),
            }
        }
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
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        assert!(fd >= 0, "raw IPv6 socket: {}", io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        RawV6 {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }

    /// Sends one complete IPv6 packet (header included) to its destination address.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_in6 is plain data; all-zero is a valid starting value.
        let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        addr.sin6_addr.s6_addr.copy_from_slice(&packet[24..40]);
        // SAFETY: buffer and address are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&addr as *const libc::sockaddr_in6).cast(),
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
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
/// option) between the IPv6 header and TCP, with a correct TCP checksum.
pub fn tcp_syn_v6(
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ext: &[u8],
) -> Vec<u8> {
    let tcp_len = 20usize;
    let payload_len = ext.len() * 8 + tcp_len;
    let mut p = vec![0u8; 40 + payload_len];
    p[0] = 0x60; // version 6
    p[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    p[6] = *ext.first().unwrap_or(&(libc::IPPROTO_TCP as u8));
    p[7] = 64; // hop limit
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    let mut at = 40;
    for (i, _) in ext.iter().enumerate() {
        p[at] = *ext.get(i + 1).unwrap_or(&(libc::IPPROTO_TCP as u8)); // next header
        p[at + 1] = 0; // length: 8 bytes
        p[at + 2] = 1; // PadN
        p[at + 3] = 4; // four bytes of padding
        at += 8;
    }
    let t = at;
    p[t..t + 2].copy_from_slice(&sport.to_be_bytes());
    p[t + 2..t + 4].copy_from_slice(&dport.to_be_bytes());
    p[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
    p[t + 12] = 5 << 4;
    p[t + 13] = 0x02; // SYN
    p[t + 14..t + 16].copy_from_slice(&64240u16.to_be_bytes());
    let mut pseudo = [0u8; 40];
    pseudo[..16].copy_from_slice(&src.octets());
    pseudo[16..32].copy_from_slice(&dst.octets());
    pseudo[32..36].copy_from_slice(&(tcp_len as u32).to_be_bytes());
    pseudo[39] = libc::IPPROTO_TCP as u8;
    let sum = checksum(&[&pseudo, &p[t..]]);
    p[t + 16..t + 18].copy_from_slice(&sum.to_be_bytes());
    p
}

/// A deterministic initial sequence number, so that sending the "same SYN" twice really
/// produces two identical packets, as a TCP retransmission does.
pub fn seq_for(src: Ipv4Addr, sport: u16, dport: u16) -> u32 {
    u32::from(src).rotate_left(7) ^ (u32::from(sport) << 16) ^ u32::from(dport) ^ 0x5eed_4b57
}

/// A 40-byte IPv4+TCP SYN with correct checksums (the kernel would fill the IP one anyway).
pub fn tcp_syn_v4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, seq: u32) -> [u8; 40] {
    let mut p = [0u8; 40];
    p[0] = 0x45; // version 4, 5-word header
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[4..6].copy_from_slice(&(sport ^ dport).to_be_bytes()); // identification
    p[6] = 0x40; // don't fragment
    p[8] = 64; // TTL
    p[9] = libc::IPPROTO_TCP as u8;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let ip_sum = checksum(&[&p[..20]]);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());

    let t = 20;
    p[t..t + 2].copy_from_slice(&sport.to_be_bytes());
    p[t + 2..t + 4].copy_from_slice(&dport.to_be_bytes());
    p[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
    p[t + 12] = 5 << 4; // data offset: 5 words, no options
    p[t + 13] = 0x02; // SYN
    p[t + 14..t + 16].copy_from_slice(&64240u16.to_be_bytes());
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = libc::IPPROTO_TCP as u8;
    pseudo[10..12].copy_from_slice(&20u16.to_be_bytes());
    let tcp_sum = checksum(&[&pseudo, &p[t..]]);
    p[t + 16..t + 18].copy_from_slice(&tcp_sum.to_be_bytes());
    p
}

/// The Internet checksum (RFC 1071) over the concatenation of even-length parts.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
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

    #[test]
    fn syn_checksums_verify() {
        let p = tcp_syn_v4(
            Ipv4Addr::new(198, 18, 1, 2),
            Ipv4Addr::new(198, 18, 1, 1),
            40000,
            7000,
            1,
        );
        assert_eq!(checksum(&[&p[..20]]), 0);
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&p[12..20]);
        pseudo[9] = 6;
        pseudo[11] = 20;
        assert_eq!(checksum(&[&pseudo, &p[20..]]), 0);
    }

    #[test]
    fn v6_syn_chain_and_checksum_verify() {
        let src: std::net::Ipv6Addr = "fd00:4b57::2".parse().unwrap();
        let dst: std::net::Ipv6Addr = "fd00:4b57::1".parse().unwrap();
        let p = tcp_syn_v6(src, dst, 40000, 7000, 1, &[HOP_BY_HOP, DEST_OPTIONS]);
        assert_eq!(p.len(), 40 + 16 + 20);
        assert_eq!(u16::from_be_bytes([p[4], p[5]]), 36, "payload length");
        assert_eq!(
            (p[6], p[40], p[48]),
            (HOP_BY_HOP, DEST_OPTIONS, 6),
            "header chain"
        );
        assert_eq!(
            u16::from_be_bytes([p[58], p[59]]),
            7000,
            "TCP after the chain"
        );
        let mut pseudo = [0u8; 40];
        pseudo[..32].copy_from_slice(&p[8..40]);
        pseudo[35] = 20;
        pseudo[39] = 6;
        assert_eq!(checksum(&[&pseudo, &p[56..]]), 0);
    }

    #[test]
    fn pool_stays_in_range() {
        assert_eq!(pool_v4(0), Ipv4Addr::new(198, 18, 128, 0));
        assert_eq!(pool_v4(98_303), Ipv4Addr::new(198, 19, 255, 255));
        assert_eq!(pool_v4(98_304), Ipv4Addr::new(198, 18, 128, 0));
    }
}
