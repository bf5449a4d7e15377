//! The firewall door as a grant sink: the configuration's guarded ports and `always_allow`
//! become knockwrap's nftables table ([`knockwrap_firewall`]), and leases with ports (a door's
//! `open_ports`) become admitted elements whose kernel timeout is the lease's time left, so
//! the kernel ends access on time even when the daemon is killed. The lease journal stays the
//! record: [`FirewallSink::reconcile`] makes the table agree with it both ways (at start and
//! reload), and the state owner opens and closes elements in the same transactions as lines
//! ([`hosts_writer::state::Sink`]). Used by the daemon (root parent) and by `knockwrap revoke`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use hosts_writer::state::Sink;
use hosts_writer::Lease;
use knock_match::{PortSpec, Proto};
use knockwrap_config::Config;
use knockwrap_firewall::{Admit, Ensured, Error, Firewall, Revoke, Runner, Spec};

/// The kernel timeout of an admission whose lease has no end. It is renewed at every start and
/// reload ([`FirewallSink::reconcile`]); a lease without end is meant to be revoked by hand.
pub const NO_END_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// knockwrap's table, for the configuration's doors.
pub struct FirewallSink {
    fw: Firewall,
}

/// How long `lease` has left at wall-clock `now_ms` (whole seconds, rounded up); None when it
/// has ended.
fn time_left(lease: &Lease, now_ms: u64) -> Option<Duration> {
    match lease.expires_at {
        None => Some(NO_END_TIMEOUT),
        Some(end) => {
            let left_ms = end.saturating_mul(1000).checked_sub(now_ms)?;
            (left_ms > 0).then(|| Duration::from_secs(left_ms.div_ceil(1000)))
        }
    }
}

fn admits(leases: &[Lease], now_ms: u64) -> Vec<Admit> {
    leases
        .iter()
        .filter_map(|l| time_left(l, now_ms).map(|t| (l, t)))
        .flat_map(|(l, timeout)| {
            l.ports.iter().map(move |p: &PortSpec| Admit {
                addr: l.ip,
                proto: p.proto,
                port: p.port,
                timeout,
            })
        })
        .collect()
}

impl FirewallSink {
    /// The sink for `config`, or None when no door names `open_ports` (knockwrap then leaves
    /// the firewall alone). Runs nothing yet.
    pub fn for_config(config: &Config) -> Result<Option<FirewallSink>, Error> {
        let guarded = config.guarded_ports();
        if guarded.is_empty() {
            return Ok(None);
        }
        let spec = Spec {
            table: config.firewall.table.clone(),
            always_allow: config
                .firewall
                .always_allow
                .iter()
                .map(|p| (p.addr(), p.prefix_len()))
                .collect(),
            guarded: guarded.iter().map(|p| (p.proto, p.port)).collect(),
        };
        Ok(Some(FirewallSink {
            fw: Firewall::new(spec, Runner::default())?,
        }))
    }

    pub fn table(&self) -> &str {
        self.fw.table()
    }

    /// Installs or updates the table (admissions kept).
    pub fn ensure(&self) -> Result<Ensured, Error> {
        self.fw.ensure()
    }

    /// Makes the admitted elements agree with `leases` at wall-clock `now_ms`: elements no
    /// running lease accounts for are removed, and every running lease's ports are (re)admitted
    /// with its time left, in one nft transaction. Returns (removed, admitted).
    pub fn reconcile(&self, leases: &[Lease], now_ms: u64) -> Result<(usize, usize), Error> {
        let wanted = admits(leases, now_ms);
        let keys: HashSet<(IpAddr, Proto, u16)> = wanted
            .iter()
            .map(|a| (a.addr.to_canonical(), a.proto, a.port))
            .collect();
        let stray: Vec<Revoke> = self
            .fw
            .elements()?
            .into_iter()
            .filter(|e| !keys.contains(&(e.addr.to_canonical(), e.proto, e.port)))
            .map(|e| Revoke::Port {
                addr: e.addr,
                proto: e.proto,
                port: e.port,
            })
            .collect();
        if !stray.is_empty() || !wanted.is_empty() {
            self.fw.apply(&wanted, &stray)?;
        }
        Ok((stray.len(), wanted.len()))
    }
}

impl Sink for FirewallSink {
    fn name(&self) -> &str {
        "firewall"
    }

    fn open(&mut self, leases: &[Lease], now_ms: u64) -> Result<(), String> {
        let admits = admits(leases, now_ms);
        if admits.is_empty() {
            return Ok(());
        }
        self.fw.apply(&admits, &[]).map_err(|e| e.to_string())
    }

    fn close(&mut self, leases: &[Lease]) -> Result<(), String> {
        let revokes: Vec<Revoke> = leases
            .iter()
            .flat_map(|l| {
                l.ports.iter().map(move |p| Revoke::Port {
                    addr: l.ip,
                    proto: p.proto,
                    port: p.port,
                })
            })
            .collect();
        if revokes.is_empty() {
            return Ok(());
        }
        self.fw.apply(&[], &revokes).map_err(|e| e.to_string())
    }

    fn close_addr(&mut self, addr: IpAddr) -> Result<usize, String> {
        self.fw.revoke(addr).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ip: &str, expires_at: Option<u64>, ports: &[PortSpec]) -> Lease {
        Lease {
            ip: ip.parse().unwrap(),
            service: "sshd".into(),
            door: "d".into(),
            expires_at,
            added_line: false,
            ports: ports.to_vec(),
        }
    }

    #[test]
    fn a_lease_admits_its_ports_for_its_time_left_and_an_ended_one_nothing() {
        let now = 1_000_000_500; // ms
        let leases = [
            lease(
                "198.18.0.5",
                Some(1_000_060),
                &[PortSpec::tcp(22), PortSpec::udp(60001)],
            ),
            lease("198.18.0.6", Some(1_000_000), &[PortSpec::tcp(22)]),
            lease("198.18.0.7", None, &[PortSpec::tcp(22)]),
            lease("198.18.0.8", Some(1_000_060), &[]),
        ];
        let a = admits(&leases, now);
        assert_eq!(a.len(), 3, "{a:?}");
        assert_eq!(
            a[0].timeout,
            Duration::from_secs(60),
            "59.5 s left, rounded up"
        );
        assert_eq!((a[1].proto, a[1].port), (Proto::Udp, 60001));
        assert_eq!(a[2].timeout, NO_END_TIMEOUT);
    }
}
