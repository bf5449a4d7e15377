//! getifaddrs(3), the one place the program reads this host's interfaces (through nix's safe
//! wrapper, which frees the list): every entry with its name, loopback flag and address
//! ([`entries`]); from them the addresses with their prefix lengths for the source policy
//! and the destination check ([`addresses`]), the loopback interfaces for the parent's
//! judgement of a knock's capture interface ([`loopback_interfaces`]), and what `doctor`
//! reports about the configured interfaces.

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;

use knock_match::HostAddresses;
use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use nix::sys::socket::SockaddrStorage;

/// One entry of getifaddrs: an interface with one of its addresses (None: a link-layer entry,
/// or a family other than IPv4 and IPv6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub loopback: bool,
    pub addr: Option<IpAddr>,
    /// Prefix length from the netmask (32 or 128 when there is none).
    pub prefix: u8,
}

fn ip_of(s: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// Every entry getifaddrs lists for this network namespace.
pub fn entries() -> io::Result<Vec<Entry>> {
    let list = getifaddrs().map_err(io::Error::from)?;
    Ok(list
        .map(|ifa| {
            let addr = ifa.address.as_ref().and_then(ip_of);
            let prefix = match (addr, ifa.netmask.as_ref().and_then(ip_of)) {
                (Some(IpAddr::V4(_)), Some(IpAddr::V4(m))) => u32::from(m).count_ones() as u8,
                (Some(IpAddr::V4(_)), _) => 32,
                // The source policy keeps IPv6 addresses as hosts.
                _ => 128,
            };
            Entry {
                name: ifa.interface_name,
                loopback: ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK),
                addr,
                prefix,
            }
        })
        .collect())
}

/// Every address configured on an interface of this network namespace, with its prefix
/// length (from the netmask), as the source policy wants them.
pub fn addresses() -> io::Result<HostAddresses> {
    let mut out = HostAddresses::default();
    for e in entries()? {
        if let Some(addr) = e.addr {
            out.add(addr, e.prefix);
        }
    }
    Ok(out)
}

/// Names of the loopback interfaces (IFF_LOOPBACK) of this network namespace. getifaddrs
/// lists every interface that is up or has an address, with its flags, even without one.
pub fn loopback_interfaces() -> io::Result<HashSet<String>> {
    Ok(entries()?
        .into_iter()
        .filter(|e| e.loopback)
        .map(|e| e.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_with_its_address_and_prefix() {
        let all = entries().unwrap();
        let lo: Vec<&Entry> = all.iter().filter(|e| e.loopback).collect();
        assert!(!lo.is_empty(), "{all:?}");
        if let Some(e) = lo
            .iter()
            .find(|e| e.addr == Some("127.0.0.1".parse().unwrap()))
        {
            assert_eq!(e.prefix, 8);
        }
        assert!(
            addresses()
                .unwrap()
                .own
                .contains(&"127.0.0.1".parse().unwrap())
                || lo.iter().all(|e| e.addr.is_none())
        );
        assert!(loopback_interfaces().unwrap().contains(&lo[0].name));
    }
}
