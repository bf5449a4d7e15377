//! The host's own addresses. As in knockd (whose capture filter keeps only packets to the
//! interface's address), a knock counts only when it is sent to this host, or to a door's
//! explicit `target`: packets the host merely forwards never open a door.

use std::collections::HashSet;

use knock_match::HostAddresses;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use tracing::warn;

/// How often the address list is read again (addresses come and go with DHCP, SLAAC, VPNs).
const REFRESH: Duration = Duration::from_secs(5);

/// Every address configured on an interface of this network namespace, with its prefix
/// length (from the netmask), as the source policy wants them.
pub fn addresses() -> io::Result<HostAddresses> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = HostAddresses::default();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
            match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
                libc::AF_INET => {
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    let addr = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                    // SAFETY: for AF_INET, a non-null ifa_netmask is a sockaddr_in.
                    let prefix = if ifa.ifa_netmask.is_null() {
                        32
                    } else {
                        let m = unsafe { &*(ifa.ifa_netmask as *const libc::sockaddr_in) };
                        u32::from_be(m.sin_addr.s_addr).count_ones() as u8
                    };
                    out.add(IpAddr::V4(addr), prefix);
                }
                libc::AF_INET6 => {
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    out.add(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)), 128);
                }
                _ => {}
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// Which destinations a knock may be sent to: this host's addresses (refreshed now and then)
/// and the doors' targets.
pub struct Destinations {
    local: Option<HostAddresses>,
    targets: HashSet<IpAddr>,
    read_at: Option<Instant>,
}

impl Destinations {
    pub fn new(targets: impl IntoIterator<Item = IpAddr>) -> Destinations {
        let mut d = Destinations {
            local: None,
            targets: targets.into_iter().collect(),
            read_at: None,
        };
        d.refresh();
        d
    }

    /// Re-reads the host's addresses when the last read is older than [`REFRESH`].
    pub fn refresh(&mut self) {
        if self.read_at.is_some_and(|t| t.elapsed() < REFRESH) {
            return;
        }
        self.read_at = Some(Instant::now());
        match addresses() {
            Ok(set) => self.local = Some(set),
            // Keep the last good list; with none yet, accept every destination (knockd's
            // behaviour without an address) rather than ignore every knock.
            Err(e) => warn!(error = %e, "cannot list this host's addresses"),
        }
    }

    /// True when the packet may matter to some door: sent to this host or to a door's target.
    pub fn accepts(&self, dst: IpAddr) -> bool {
        self.targets.contains(&dst) || self.is_local(dst)
    }

    /// True when `dst` is one of this host's own addresses (with no list read yet, every
    /// address is taken as local rather than ignore every knock).
    pub fn is_local(&self, dst: IpAddr) -> bool {
        self.local.as_ref().is_none_or(|l| l.own.contains(&dst))
    }

    /// This host's addresses and subnet broadcasts, for the source policy (empty until read).
    pub fn host(&self) -> &HostAddresses {
        static NONE: std::sync::OnceLock<HostAddresses> = std::sync::OnceLock::new();
        self.local
            .as_ref()
            .unwrap_or_else(|| NONE.get_or_init(HostAddresses::default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_local_and_documentation_addresses_are_not() {
        let d = Destinations::new(["192.0.2.77".parse().unwrap()]);
        assert!(d.accepts("127.0.0.1".parse().unwrap()));
        assert!(d.is_local("127.0.0.1".parse().unwrap()));
        // An IPv4-mapped destination is not an address of this host: the kernel never
        // delivers IPv6 packets to it as IPv4.
        assert!(!d.accepts("::ffff:127.0.0.1".parse().unwrap()));
        // A door's explicit target counts even though no interface has it.
        assert!(d.accepts("192.0.2.77".parse().unwrap()));
        assert!(!d.is_local("192.0.2.77".parse().unwrap()));
        assert!(!d.accepts("192.0.2.78".parse().unwrap()));
        assert!(!d.accepts("2001:db8::1".parse().unwrap()));
    }
}
