//! Link-layer types a capture socket can deliver, and how an interface's ARPHRD maps to them.

/// How a frame read from an `AF_PACKET`/`SOCK_RAW` socket begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// A 14-byte Ethernet header (ethertype at 12), possibly with 802.1Q/802.1ad tags left in
    /// the data. Also `lo`, whose frames carry an Ethernet header with zero MACs.
    Ethernet,
    /// No link header: the frame starts with the IP header (tun, WireGuard, ipip, sit).
    RawIp,
    /// Linux "cooked" capture (SLL, 16 bytes, protocol at 14), as `SOCK_DGRAM` captures and
    /// pcap files of type `LINUX_SLL` present frames.
    LinuxSll,
}

impl LinkType {
    /// The link type of an interface with hardware type `hatype` (`ARPHRD_*`), or `None` when
    /// knockwrap cannot decode it.
    pub fn from_arphrd(hatype: u16) -> Option<LinkType> {
        match hatype {
            // ARPHRD_ETHER, ARPHRD_LOOPBACK (Ethernet header with zero addresses).
            1 | 772 => Some(LinkType::Ethernet),
            // ARPHRD_NONE (tun, wireguard), ARPHRD_RAWIP, ARPHRD_TUNNEL (ipip),
            // ARPHRD_TUNNEL6 (ip6tnl), ARPHRD_SIT: SOCK_RAW hands out the bare IP packet.
            0xfffe | 519 | 768 | 769 | 776 => Some(LinkType::RawIp),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_hardware_types() {
        assert_eq!(LinkType::from_arphrd(1), Some(LinkType::Ethernet));
        assert_eq!(LinkType::from_arphrd(772), Some(LinkType::Ethernet));
        assert_eq!(LinkType::from_arphrd(0xfffe), Some(LinkType::RawIp));
        assert_eq!(LinkType::from_arphrd(801), None); // ARPHRD_IEEE80211 (monitor)
    }
}
