//! Source-address policy: which packet sources can be a remote client, and so may be granted.
//!
//! A knock is unauthenticated, so a spoofer picks its source address freely. The kernel drops
//! packets from impossible sources before any socket sees them, but AF_PACKET captures them
//! first: the daemon must refuse them itself, or a frame "from 127.0.0.1" written onto the
//! wire becomes `SSHD: 127.0.0.1`, which opens sshd to anyone who reaches it through a local
//! proxy (sslh, stunnel, an onion service).
//!
//! Refused: what can never be a remote client. Loopback and this host's own addresses (unless
//! the packet arrived on a loopback interface, where only local processes can send), the
//! unspecified address, 0.0.0.0/8, multicast, broadcast (limited and every local subnet's
//! directed broadcast), 240.0.0.0/4, IPv4-mapped and IPv4-compatible IPv6 (`::ffff:a.b.c.d`
//! would become the IPv4 line `a.b.c.d` for a host that never knocked), IPv6 discard-only
//! (100::/64) and documentation (2001:db8::/32, 3fff::/20) prefixes. Link-local sources are
//! refused unless the door allows them. Everything else stays valid: private, CGNAT, ULA,
//! 198.18.0.0/15 and the IPv4 documentation ranges (labs and tests knock from them), NAT64.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a source address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    Unspecified,
    ThisNetwork,
    Loopback,
    OwnAddress,
    Multicast,
    Broadcast,
    DirectedBroadcast,
    Reserved,
    Ipv4Mapped,
    Ipv4Compatible,
    Discard,
    Documentation,
    LinkLocal,
    /// The source is outside the door's `knock_from`.
    KnockFrom,
}

impl Refusal {
    /// Every reason, in a fixed order (the daemon's channel sends reasons as an index here).
    pub const ALL: [Refusal; 14] = [
        Refusal::Unspecified,
        Refusal::ThisNetwork,
        Refusal::Loopback,
        Refusal::OwnAddress,
        Refusal::Multicast,
        Refusal::Broadcast,
        Refusal::DirectedBroadcast,
        Refusal::Reserved,
        Refusal::Ipv4Mapped,
        Refusal::Ipv4Compatible,
        Refusal::Discard,
        Refusal::Documentation,
        Refusal::LinkLocal,
        Refusal::KnockFrom,
    ];

    /// The reason named `name` ([`Refusal::as_str`]).
    pub fn from_name(name: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// A short, stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unspecified => "unspecified source",
            Refusal::ThisNetwork => "source in 0.0.0.0/8",
            Refusal::Loopback => "loopback source on a non-loopback interface",
            Refusal::OwnAddress => "this host's own address as source on a non-loopback interface",
            Refusal::Multicast => "multicast source",
            Refusal::Broadcast => "broadcast source",
            Refusal::DirectedBroadcast => "a local subnet's broadcast address as source",
            Refusal::Reserved => "source in reserved 240.0.0.0/4",
            Refusal::Ipv4Mapped => "IPv4-mapped IPv6 source",
            Refusal::Ipv4Compatible => "IPv4-compatible IPv6 source",
            Refusal::Discard => "source in discard-only 100::/64",
            Refusal::Documentation => "IPv6 documentation source",
            Refusal::LinkLocal => "link-local source (the door does not allow them)",
            Refusal::KnockFrom => "source outside the door's knock_from",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The part of admission that depends on the door: a link-local source only for a door that
/// takes them, and only a source inside the door's `knock_from`. The matcher applies it before
/// a source can start or complete the door (so a refused source uses up nothing), and
/// [`admit`] again in the parent.
pub fn admit_to_door(addr: IpAddr, door: &crate::Door) -> Result<(), Refusal> {
    if !door.link_local && is_link_local(addr) {
        return Err(Refusal::LinkLocal);
    }
    if !door.knock_allowed_from(addr) {
        return Err(Refusal::KnockFrom);
    }
    Ok(())
}

/// The one admission rule for a knock from `addr` on `door`: the source policy
/// ([`check_source`]; loopback and this host's own addresses only when `via_loopback`, as the
/// caller knows it from the interface), then [`admit_to_door`]. The capture child applies the
/// door-independent half before the matcher (so refused packets take no table space) and the
/// door's half in the matcher; the parent applies the whole of it to every knock the child
/// reports.
pub fn admit(
    addr: IpAddr,
    via_loopback: bool,
    host: &HostAddresses,
    door: &crate::Door,
) -> Result<(), Refusal> {
    match check_source(addr, via_loopback, host) {
        Ok(()) | Err(Refusal::LinkLocal) => admit_to_door(addr, door),
        Err(why) => Err(why),
    }
}

/// What the policy needs to know about this host: its own addresses and the directed
/// broadcast address of each local IPv4 subnet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostAddresses {
    pub own: HashSet<IpAddr>,
    pub broadcasts: HashSet<Ipv4Addr>,
}

impl HostAddresses {
    /// Adds an interface address with its prefix length; a subnet of /30 or wider has a
    /// directed broadcast address (/31 and /32 have none, RFC 3021).
    pub fn add(&mut self, addr: IpAddr, prefix: u8) {
        self.own.insert(addr);
        if let IpAddr::V4(a) = addr {
            if prefix < 31 {
                let host_bits = u32::MAX >> prefix;
                self.broadcasts
                    .insert(Ipv4Addr::from(u32::from(a) | host_bits));
            }
        }
    }
}

/// 169.254.0.0/16 or fe80::/10: reachable only from the same link; a door may allow them.
pub fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The verdict for a source address. `via_loopback`: the packet arrived on a loopback
/// interface. Link-local sources come back as [`Refusal::LinkLocal`]: the caller decides by
/// the door.
pub fn check_source(addr: IpAddr, via_loopback: bool, host: &HostAddresses) -> Result<(), Refusal> {
    match addr {
        IpAddr::V4(a) => check_v4(a, via_loopback, host),
        IpAddr::V6(a) => check_v6(a, via_loopback, host),
    }
}

fn check_v4(a: Ipv4Addr, via_loopback: bool, host: &HostAddresses) -> Result<(), Refusal> {
    let o = a.octets();
    if a.is_unspecified() {
        return Err(Refusal::Unspecified);
    }
    if o[0] == 0 {
        return Err(Refusal::ThisNetwork);
    }
    if a.is_broadcast() {
        return Err(Refusal::Broadcast);
    }
    if a.is_multicast() {
        return Err(Refusal::Multicast);
    }
    if o[0] >= 240 {
        return Err(Refusal::Reserved);
    }
    if host.broadcasts.contains(&a) {
        return Err(Refusal::DirectedBroadcast);
    }
    if !via_loopback {
        if a.is_loopback() {
            return Err(Refusal::Loopback);
        }
        if host.own.contains(&IpAddr::V4(a)) {
            return Err(Refusal::OwnAddress);
        }
    }
    if is_link_local(IpAddr::V4(a)) {
        return Err(Refusal::LinkLocal);
    }
    Ok(())
}

fn check_v6(a: Ipv6Addr, via_loopback: bool, host: &HostAddresses) -> Result<(), Refusal> {
    let s = a.segments();
    if a.is_unspecified() {
        return Err(Refusal::Unspecified);
    }
    if a.is_loopback() {
        return if via_loopback {
            Ok(())
        } else {
            Err(Refusal::Loopback)
        };
    }
    if a.is_multicast() {
        return Err(Refusal::Multicast);
    }
    if a.to_ipv4_mapped().is_some() {
        return Err(Refusal::Ipv4Mapped);
    }
    // ::/96 (deprecated IPv4-compatible; :: and ::1 are handled above).
    if s[..6] == [0; 6] {
        return Err(Refusal::Ipv4Compatible);
    }
    if s[..4] == [0x100, 0, 0, 0] {
        return Err(Refusal::Discard);
    }
    if (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] & 0xfff0) == 0x3ff0 {
        return Err(Refusal::Documentation);
    }
    if !via_loopback && host.own.contains(&IpAddr::V6(a)) {
        return Err(Refusal::OwnAddress);
    }
    if is_link_local(IpAddr::V6(a)) {
        return Err(Refusal::LinkLocal);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostAddresses {
        let mut h = HostAddresses::default();
        h.add("198.18.0.1".parse().unwrap(), 24);
        h.add("10.1.2.3".parse().unwrap(), 31);
        h.add("127.0.0.1".parse().unwrap(), 8);
        h.add("fd00:4b57::1".parse().unwrap(), 64);
        h
    }

    fn verdict(addr: &str, lo: bool) -> Result<(), Refusal> {
        check_source(addr.parse().unwrap(), lo, &host())
    }

    #[test]
    fn remote_clients_stay_valid() {
        for ok in [
            "198.18.0.2",
            "198.19.255.254",
            "10.0.0.7",
            "172.16.4.4",
            "192.168.1.1",
            "100.64.0.9",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.9",
            "8.8.8.8",
            "192.0.0.2",
            "10.1.2.2",
            "fd00:4b57::2",
            "fc00::1",
            "2a00:1450::1",
            "2001::1",
            "2002:c000:0204::1",
            "64:ff9b::203.0.113.9",
        ] {
            assert_eq!(verdict(ok, false), Ok(()), "{ok}");
        }
    }

    #[test]
    fn impossible_sources_are_refused() {
        use Refusal::*;
        for (addr, why) in [
            ("0.0.0.0", Unspecified),
            ("0.0.0.1", ThisNetwork),
            ("0.255.1.1", ThisNetwork),
            ("127.0.0.1", Loopback),
            ("127.8.9.10", Loopback),
            ("198.18.0.1", OwnAddress),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Broadcast),
            ("198.18.0.255", DirectedBroadcast),
            ("240.0.0.1", Reserved),
            ("254.1.1.1", Reserved),
            ("169.254.1.1", LinkLocal),
            ("::", Unspecified),
            ("::1", Loopback),
            ("::ffff:203.0.113.9", Ipv4Mapped),
            ("::ffff:127.0.0.1", Ipv4Mapped),
            ("::203.0.113.9", Ipv4Compatible),
            ("::2", Ipv4Compatible),
            ("ff02::1", Multicast),
            ("100::1", Discard),
            ("2001:db8::1", Documentation),
            ("3fff:1::1", Documentation),
            ("fd00:4b57::1", OwnAddress),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
        ] {
            assert_eq!(verdict(addr, false), Err(why), "{addr}");
        }
    }

    #[test]
    fn loopback_and_own_addresses_only_via_loopback() {
        for addr in ["127.0.0.1", "::1", "198.18.0.1", "fd00:4b57::1"] {
            assert_eq!(verdict(addr, true), Ok(()), "{addr}");
        }
        // What no host can send stays refused even on lo.
        for addr in [
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::ffff:127.0.0.1",
        ] {
            assert!(verdict(addr, true).is_err(), "{addr}");
        }
    }

    #[test]
    fn point_to_point_subnets_have_no_broadcast() {
        // 10.1.2.3/31: 10.1.2.2 is the peer, a valid client.
        assert_eq!(verdict("10.1.2.2", false), Ok(()));
        assert!(!host().broadcasts.contains(&"10.1.2.3".parse().unwrap()));
    }
}
