//! Frames as an attacker on the link writes them: Ethernet + IPv4/IPv6 + TCP/UDP with any
//! source address, any TCP flags and correct checksums, sent with an AF_PACKET socket bound
//! to one interface, so that the kernel's own sanity checks (martian sources, mapped
//! addresses) never stop them before the receiving host's capture sees them. Use only inside
//! namespaces the test created.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

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

fn sum16(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn l4_bytes(l4: L4) -> (u8, Vec<u8>) {
    match l4 {
        L4::Tcp {
            sport,
            dport,
            flags,
            seq,
        } => {
            let mut h = vec![0u8; 20];
            h[0..2].copy_from_slice(&sport.to_be_bytes());
            h[2..4].copy_from_slice(&dport.to_be_bytes());
            h[4..8].copy_from_slice(&seq.to_be_bytes());
            h[12] = 5 << 4;
            h[13] = flags;
            h[14..16].copy_from_slice(&64240u16.to_be_bytes());
            (6, h)
        }
        L4::Udp { sport, dport } => {
            let mut h = vec![0u8; 8 + 4];
            h[0..2].copy_from_slice(&sport.to_be_bytes());
            h[2..4].copy_from_slice(&dport.to_be_bytes());
            h[4..6].copy_from_slice(&12u16.to_be_bytes());
            h[8..].copy_from_slice(b"knck");
            (17, h)
        }
    }
}

/// The IP packet (header, L4 header with its checksum) from `src` to `dst`; both must be of
/// the same family.
pub fn ip_packet(src: IpAddr, dst: IpAddr, l4: L4) -> Vec<u8> {
    let (proto, mut seg) = l4_bytes(l4);
    let csum_at = if proto == 6 { 16 } else { 6 };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut pseudo = Vec::with_capacity(12);
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, proto]);
            pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
            let c = fold(sum16(sum16(0, &pseudo), &seg));
            seg[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
            let mut ip = vec![0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + seg.len()) as u16).to_be_bytes());
            ip[6] = 0x40; // DF
            ip[8] = 64;
            ip[9] = proto;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = fold(sum16(0, &ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            ip.extend_from_slice(&seg);
            ip
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut pseudo = Vec::with_capacity(40);
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(seg.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, proto]);
            let c = fold(sum16(sum16(0, &pseudo), &seg));
            seg[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
            let mut ip = vec![0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(seg.len() as u16).to_be_bytes());
            ip[6] = proto;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            ip.extend_from_slice(&seg);
            ip
        }
        _ => panic!("ip_packet: {src} and {dst} are of different families"),
    }
}

/// An Ethernet frame around an IP packet.
pub fn ethernet(dst_mac: [u8; 6], src_mac: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let ethertype: u16 = if ip.first().is_some_and(|b| b >> 4 == 6) {
        0x86dd
    } else {
        0x0800
    };
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// An AF_PACKET socket bound to one interface of the calling thread's namespace.
pub struct FrameWriter {
    fd: OwnedFd,
    ifindex: i32,
    /// MAC of the interface written from (the frames' source MAC).
    pub mac: [u8; 6],
}

impl FrameWriter {
    /// Opens the writer on `interface` (create it inside the namespace the interface is in).
    pub fn open(interface: &str) -> io::Result<FrameWriter> {
        let name = std::ffi::CString::new(interface).map_err(io::Error::other)?;
        // SAFETY: name is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socket(2) with constant arguments; checked below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mac = read_mac(interface).unwrap_or([0x02, 0, 0, 0, 0, 1]);
        Ok(FrameWriter { fd, ifindex, mac })
    }

    /// Sends one whole frame; retries while the queue is full.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid start.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        loop {
            // SAFETY: buffer and address are valid for the lengths given.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    std::thread::yield_now()
                }
                _ => return Err(e),
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
        self.send(&ethernet(dst_mac, self.mac, &ip_packet(src, dst, l4)))
    }
}

/// The MAC address of an interface of the calling thread's network namespace (SIOCGIFHWADDR).
pub fn read_mac(interface: &str) -> io::Result<[u8; 6]> {
    // SAFETY: a datagram socket only for the ioctl; closed on drop.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(interface.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: req is a valid ifreq naming the interface.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, d) in mac.iter_mut().zip(data.iter()) {
        *m = *d as u8;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify() {
        let p = ip_packet(
            "198.18.0.2".parse().unwrap(),
            "198.18.0.1".parse().unwrap(),
            L4::Tcp {
                sport: 40000,
                dport: 7000,
                flags: SYN,
                seq: 1,
            },
        );
        assert_eq!(fold(sum16(0, &p[..20])), 0, "IPv4 header checksum");
        let mut pseudo = p[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        assert_eq!(fold(sum16(sum16(0, &pseudo), &p[20..])), 0, "TCP checksum");
        let p6 = ip_packet(
            "fd00:4b57::2".parse().unwrap(),
            "fd00:4b57::1".parse().unwrap(),
            L4::Udp { sport: 1, dport: 2 },
        );
        let mut pseudo = p6[8..40].to_vec();
        pseudo.extend_from_slice(&[0, 0, 0, 12, 0, 0, 0, 17]);
        assert_eq!(fold(sum16(sum16(0, &pseudo), &p6[40..])), 0, "UDP checksum");
    }
}
