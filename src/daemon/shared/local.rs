//! The host's own addresses. As in knockd (whose capture filter keeps only packets to the
//! interface's address), a knock counts only when it is sent to this host, or to a door's
//! explicit `target`: packets the host merely forwards never open a door. And, for the
//! parent, which interfaces are loopback ones ([`LoopbackInterfaces`]).

use std::collections::HashSet;

use knock_match::HostAddresses;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::warn;

/// How often the address list is read again (addresses come and go with DHCP, SLAAC, VPNs).
const REFRESH: Duration = Duration::from_secs(5);

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
        match crate::sys::ifaddrs::addresses() {
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

/// How often the parent reads again which interfaces are loopback ones (also whenever it is
/// asked about a name it did not see last time).
const LOOPBACK_REFRESH: Duration = Duration::from_secs(1);

/// Which interfaces are loopback ones, as the parent reads them itself (getifaddrs,
/// IFF_LOOPBACK): only a knock that came in on one may have a loopback or own source. Asked
/// only for such knocks, so it is read seldom. An interface it cannot read is not loopback.
#[derive(Default)]
pub struct LoopbackInterfaces {
    names: std::collections::HashSet<String>,
    read_at: Option<Instant>,
}

impl LoopbackInterfaces {
    pub fn is_loopback(&mut self, name: &str) -> bool {
        let fresh = self.read_at.is_some_and(|t| t.elapsed() < LOOPBACK_REFRESH);
        if !fresh || !self.names.contains(name) {
            self.read_at = Some(Instant::now());
            match crate::sys::ifaddrs::loopback_interfaces() {
                Ok(names) => self.names = names,
                Err(e) => warn!(error = %e, "cannot list this host's loopback interfaces"),
            }
        }
        self.names.contains(name)
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

    #[test]
    fn lo_is_a_loopback_interface_and_a_missing_one_is_not() {
        let mut l = LoopbackInterfaces::default();
        assert!(l.is_loopback("lo"));
        assert!(!l.is_loopback("knockwrap-no-such-if0"));
    }
}
