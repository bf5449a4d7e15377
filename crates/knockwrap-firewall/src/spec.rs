//! What the table must say: its name, the sources never hidden and the guarded ports; and
//! the admissions that go into it ([`Admit`], [`Revoke`], [`Admitted`]). A
//! [`Spec`] is checked once ([`Spec::check`]) into a [`Checked`] form, so that every command
//! built from it is valid by construction: the name is one nft reads as a name, prefixes are
//! masked, merged where nested and IPv4-mapped IPv6 forms folded into IPv4 (that is how the
//! kernel sees such a client), ports are ports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::error::Error;

/// The table knockwrap owns when the configuration names none.
pub const DEFAULT_TABLE: &str = "knockwrap";

/// The longest table name accepted (nft allows 255; names this long are a mistake).
pub const MAX_TABLE_NAME: usize = 64;

/// A transport protocol a guarded port or an admission names: the matcher's own type, so
/// that a door's `open_ports` reach the table without a conversion.
pub use knock_match::Proto;

/// Reads the protocol of an element nft lists, by name or number.
pub(crate) fn proto_from_name(name: &str) -> Option<Proto> {
    match name {
        "tcp" | "6" => Some(Proto::Tcp),
        "udp" | "17" => Some(Proto::Udp),
        _ => None,
    }
}

/// Reads the protocol of an element nft lists as a number.
pub(crate) fn proto_from_number(n: u32) -> Option<Proto> {
    match n {
        6 => Some(Proto::Tcp),
        17 => Some(Proto::Udp),
        _ => None,
    }
}

/// Admit `addr` to `port`/`proto` for `timeout` (rounded up to whole seconds, as nft takes
/// it). Re-admitting a key sets its timeout to the new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admit {
    pub addr: IpAddr,
    pub proto: Proto,
    pub port: u16,
    pub timeout: Duration,
}

/// What to take away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoke {
    /// Every admission of this address (any port, any protocol).
    Addr(IpAddr),
    /// One admission.
    Port {
        addr: IpAddr,
        proto: Proto,
        port: u16,
    },
}

/// An admission in the kernel's set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub addr: IpAddr,
    pub proto: Proto,
    pub port: u16,
    /// Time left, in whole seconds as nft reports it (rounded down); `None` for an element
    /// without a timeout, which knockwrap never adds (someone else's, and permanent).
    pub expires_in: Option<Duration>,
}

/// The table as the configuration asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The table's name (family `inet`).
    pub table: String,
    /// Sources never hidden from the guarded ports: (network address, prefix length).
    pub always_allow: Vec<(IpAddr, u8)>,
    /// The ports hidden until a knock admits a source.
    pub guarded: Vec<(Proto, u16)>,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            table: DEFAULT_TABLE.to_string(),
            always_allow: Vec::new(),
            guarded: Vec::new(),
        }
    }
}

/// A [`Spec`] after [`Spec::check`]: sorted, deduplicated, each family on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub(crate) table: String,
    /// Disjoint prefixes (a prefix inside another is dropped), host bits cleared.
    pub(crate) allow4: Vec<(Ipv4Addr, u8)>,
    pub(crate) allow6: Vec<(Ipv6Addr, u8)>,
    pub(crate) guarded: Vec<(Proto, u16)>,
}

impl Spec {
    /// Check the spec: see the module documentation for what is checked and normalised.
    pub fn check(&self) -> Result<Checked, Error> {
        check_table_name(&self.table)?;
        let table = self.table.clone();
        let mut allow4 = Vec::new();
        let mut allow6 = Vec::new();
        for &(addr, len) in &self.always_allow {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(Error::Prefix { table, addr, len });
            }
            match addr {
                IpAddr::V4(a) => allow4.push((mask4(a, len), len)),
                IpAddr::V6(a) => match a.to_ipv4_mapped() {
                    Some(v4) if len >= 96 => allow4.push((mask4(v4, len - 96), len - 96)),
                    _ => allow6.push((mask6(a, len), len)),
                },
            }
        }
        let mut guarded = self.guarded.clone();
        if let Some(&(proto, _)) = guarded.iter().find(|&&(_, port)| port == 0) {
            return Err(Error::PortZero { table, proto });
        }
        guarded.sort_unstable();
        guarded.dedup();
        Ok(Checked {
            table,
            allow4: disjoint(allow4, mask4),
            allow6: disjoint(allow6, mask6),
            guarded,
        })
    }
}

impl Checked {
    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn guarded(&self) -> &[(Proto, u16)] {
        &self.guarded
    }

    /// The always-allowed prefixes, IPv4 first, as installed.
    pub fn always_allow(&self) -> Vec<(IpAddr, u8)> {
        let v4 = self.allow4.iter().map(|&(a, l)| (IpAddr::V4(a), l));
        let v6 = self.allow6.iter().map(|&(a, l)| (IpAddr::V6(a), l));
        v4.chain(v6).collect()
    }
}

/// The names knockwrap accepts, the one rule for the configuration and the table alike: nft's
/// identifier rules, narrowed to an ASCII letter, then letters, digits or `_`.
pub fn check_table_name(table: &str) -> Result<(), Error> {
    let mut bytes = table.bytes();
    let ok = table.len() <= MAX_TABLE_NAME
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::TableName {
            table: table.to_string(),
        })
    }
}

/// An address as the kernel sees the client's packets: an IPv4-mapped IPv6 address is the
/// IPv4 client (a dual-stack socket shows it that way; the packets are IPv4).
pub(crate) fn canonical(addr: IpAddr) -> IpAddr {
    addr.to_canonical()
}

fn mask4(a: Ipv4Addr, len: u8) -> Ipv4Addr {
    let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Ipv4Addr::from(u32::from(a) & m)
}

fn mask6(a: Ipv6Addr, len: u8) -> Ipv6Addr {
    let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    Ipv6Addr::from(u128::from(a) & m)
}

/// Sort, deduplicate and drop every prefix that lies inside a shorter one: an interval set
/// refuses overlapping elements, and prefixes either nest or are disjoint.
fn disjoint<A: Copy + Ord>(mut v: Vec<(A, u8)>, mask: impl Fn(A, u8) -> A) -> Vec<(A, u8)> {
    v.sort_unstable_by_key(|&(a, len)| (len, a));
    let mut kept: Vec<(A, u8)> = Vec::with_capacity(v.len());
    for (a, len) in v {
        if !kept
            .iter()
            .any(|&(k, klen)| klen <= len && mask(a, klen) == k)
        {
            kept.push((a, len));
        }
    }
    kept.sort_unstable();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(allow: &[(&str, u8)], guarded: &[(Proto, u16)]) -> Spec {
        Spec {
            always_allow: allow
                .iter()
                .map(|&(a, l)| (a.parse().unwrap(), l))
                .collect(),
            guarded: guarded.to_vec(),
            ..Spec::default()
        }
    }

    #[test]
    fn table_names() {
        for ok in ["knockwrap", "k", "kw_2_test", &"a".repeat(64)] {
            assert!(check_table_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "kw-x",
            "_x",
            "a b",
            "a;flush ruleset",
            "a.b",
            "a/b",
            "ä",
            "x\n",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(check_table_name(bad), Err(Error::TableName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn prefixes_are_masked_merged_and_split_by_family() {
        let c = spec(
            &[
                ("192.0.2.77", 24),
                ("192.0.2.5", 32),
                ("192.0.2.0", 24),
                ("198.51.100.1", 32),
                ("::ffff:203.0.113.9", 120),
                ("2001:db8::1", 32),
                ("2001:db8:1::", 48),
                ("fd00::", 8),
            ],
            &[],
        )
        .check()
        .unwrap();
        let v4: Vec<String> = c.allow4.iter().map(|(a, l)| format!("{a}/{l}")).collect();
        let v6: Vec<String> = c.allow6.iter().map(|(a, l)| format!("{a}/{l}")).collect();
        assert_eq!(v4, ["192.0.2.0/24", "198.51.100.1/32", "203.0.113.0/24"]);
        assert_eq!(v6, ["2001:db8::/32", "fd00::/8"]);
    }

    #[test]
    fn everything_and_nothing() {
        let c = spec(&[("10.1.2.3", 0), ("10.0.0.0", 8), ("::", 0)], &[])
            .check()
            .unwrap();
        assert_eq!(c.allow4, [(Ipv4Addr::UNSPECIFIED, 0)]);
        assert_eq!(c.allow6, [(Ipv6Addr::UNSPECIFIED, 0)]);
        let c = spec(&[], &[]).check().unwrap();
        assert!(c.allow4.is_empty() && c.allow6.is_empty() && c.guarded.is_empty());
    }

    #[test]
    fn prefix_too_long_and_port_zero_are_refused() {
        assert!(matches!(
            spec(&[("192.0.2.1", 33)], &[]).check(),
            Err(Error::Prefix { len: 33, .. })
        ));
        assert!(matches!(
            spec(&[("2001:db8::", 129)], &[]).check(),
            Err(Error::Prefix { len: 129, .. })
        ));
        assert!(matches!(
            spec(&[], &[(Proto::Udp, 0)]).check(),
            Err(Error::PortZero {
                proto: Proto::Udp,
                ..
            })
        ));
    }

    #[test]
    fn guarded_ports_are_sorted_and_deduplicated() {
        let c = spec(
            &[],
            &[
                (Proto::Udp, 53),
                (Proto::Tcp, 22),
                (Proto::Tcp, 22),
                (Proto::Tcp, 2222),
            ],
        )
        .check()
        .unwrap();
        assert_eq!(
            c.guarded,
            [(Proto::Tcp, 22), (Proto::Tcp, 2222), (Proto::Udp, 53)]
        );
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let a: IpAddr = "::ffff:198.18.0.2".parse().unwrap();
        assert_eq!(canonical(a), "198.18.0.2".parse::<IpAddr>().unwrap());
        let b: IpAddr = "fd00:4b57::2".parse().unwrap();
        assert_eq!(canonical(b), b);
    }
}
