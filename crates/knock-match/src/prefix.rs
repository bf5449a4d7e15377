//! Address prefixes: `192.0.2.0/24`, `2001:db8::/32`, or a bare address standing for its host
//! prefix (`/32`, `/128`). The configuration uses them for the sources a door's knocks must
//! come from (`knock_from`) and for the firewall's `always_allow`; the capture child and the
//! root parent both test knock sources against them with [`Prefix::contains`].
//!
//! A prefix is strict: bits set after the prefix length (`192.0.2.7/24`) are refused rather
//! than cleared, since the writer meant either the host or the network and only they know
//! which. Families never mix: an IPv4 prefix contains no IPv6 address, IPv4-mapped ones
//! included (callers canonicalise first if they want that).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An address and a prefix length, with every bit after the length clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// Why a prefix did not parse or could not be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PrefixError {
    #[error("`{0}` is not an IPv4 or IPv6 address")]
    BadAddress(String),
    #[error("prefix length `{text}` is not a number from 0 to {max}")]
    BadLength { text: String, max: u8 },
    #[error(
        "`{text}` has bits set after the prefix length: write the network `{network}` or the \
         host `{host}`"
    )]
    HostBits {
        text: String,
        network: Prefix,
        host: Prefix,
    },
}

fn max_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The address as a 128-bit number (IPv4 in the low 32 bits) and its width.
fn bits(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

/// The mask of the first `len` bits of a `width`-bit number.
fn mask(len: u8, width: u8) -> u128 {
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if len == 0 {
        0
    } else {
        all & !((1u128 << (width - len)) - 1)
    }
}

fn from_bits(v: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4((v as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(v.into()),
    }
}

impl Prefix {
    /// The prefix `addr/len`; refused when `len` exceeds the family's width or `addr` has bits
    /// set after `len`.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, PrefixError> {
        let max = max_len(addr);
        if len > max {
            return Err(PrefixError::BadLength {
                text: len.to_string(),
                max,
            });
        }
        let (v, width) = bits(addr);
        let net = v & mask(len, width);
        if net != v {
            return Err(PrefixError::HostBits {
                text: format!("{addr}/{len}"),
                network: Prefix {
                    addr: from_bits(net, addr),
                    len,
                },
                host: Prefix::host(addr),
            });
        }
        Ok(Prefix { addr, len })
    }

    /// The prefix holding `addr` alone (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix {
            addr,
            len: max_len(addr),
        }
    }

    /// The network address (every bit after the length clear).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length: 0 to 32 for IPv4, 0 to 128 for IPv6.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// True when `ip` is of the same family and its first `prefix_len` bits are the prefix's.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let (v, width) = bits(ip);
        v & mask(self.len, width) == bits(self.addr).0
    }
}

impl fmt::Display for Prefix {
    /// Always `addr/len`, a host prefix too (`192.0.2.7/32`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    /// `addr/len` or a bare `addr`; blanks around the whole are ignored, none inside.
    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let s = s.trim();
        let (addr_text, len_text) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| PrefixError::BadAddress(addr_text.to_string()))?;
        let Some(len_text) = len_text else {
            return Ok(Prefix::host(addr));
        };
        let max = max_len(addr);
        let len = Some(len_text)
            .filter(|t| !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<u8>().ok())
            .filter(|&l| l <= max)
            .ok_or_else(|| PrefixError::BadLength {
                text: len_text.to_string(),
                max,
            })?;
        Prefix::new(addr, len)
    }
}

impl From<Prefix> for String {
    fn from(p: Prefix) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for Prefix {
    type Error = PrefixError;

    fn try_from(s: String) -> Result<Prefix, PrefixError> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(p("192.0.2.0/24").to_string(), "192.0.2.0/24");
        assert_eq!(p(" 192.0.2.7 ").to_string(), "192.0.2.7/32");
        assert_eq!(p("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(p("2001:db8::1").prefix_len(), 128);
        assert_eq!(p("0.0.0.0/0").prefix_len(), 0);
        assert_eq!(p("::/0").addr(), ip("::"));
        assert!(p("10.0.0.0/8").is_ipv4() && !p("::1").is_ipv4());
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "10.0.0",
            "host.example",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
        ] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad}");
        }
        for bad in [
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/0008",
            "10.0.0.0/8/8",
        ] {
            assert!(
                matches!(
                    bad.parse::<Prefix>(),
                    Err(PrefixError::BadLength { .. } | PrefixError::BadAddress(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            "fe80::1%eth0".parse::<Prefix>(),
            Err(PrefixError::BadAddress("fe80::1%eth0".into()))
        );
    }

    #[test]
    fn host_bits_are_refused_with_both_readings() {
        let e = "192.0.2.7/24".parse::<Prefix>().unwrap_err();
        assert_eq!(
            e,
            PrefixError::HostBits {
                text: "192.0.2.7/24".into(),
                network: p("192.0.2.0/24"),
                host: p("192.0.2.7"),
            }
        );
        assert!(e.to_string().contains("`192.0.2.0/24`"), "{e}");
        assert!("2001:db8::1/64".parse::<Prefix>().is_err());
        assert!("10.0.0.1/0".parse::<Prefix>().is_err());
        assert!(Prefix::new(ip("10.0.0.0"), 33).is_err());
    }

    #[test]
    fn contains() {
        let net = p("192.0.2.0/24");
        assert!(net.contains(ip("192.0.2.0")) && net.contains(ip("192.0.2.255")));
        assert!(!net.contains(ip("192.0.3.0")) && !net.contains(ip("192.0.1.255")));
        assert!(!net.contains(ip("::ffff:192.0.2.1")), "families never mix");
        assert!(p("0.0.0.0/0").contains(ip("255.255.255.255")));
        assert!(!p("0.0.0.0/0").contains(ip("::1")));
        assert!(p("::/0").contains(ip("2001:db8::1")));
        assert!(p("203.0.113.9").contains(ip("203.0.113.9")));
        assert!(!p("203.0.113.9").contains(ip("203.0.113.8")));
        let v6 = p("2001:db8:ab00::/40");
        assert!(v6.contains(ip("2001:db8:abff:ffff::1")));
        assert!(!v6.contains(ip("2001:db8:ac00::")));
        let odd = p("10.128.0.0/9");
        assert!(odd.contains(ip("10.255.0.1")) && !odd.contains(ip("10.127.255.255")));
    }
}
