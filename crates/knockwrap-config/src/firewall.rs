//! The firewall door's settings: the `[firewall]` table (the nftables table knockwrap owns and
//! the sources never hidden), a door's `open_ports`, and the lockout warnings
//! `knockwrap check --config` prints before the guard is switched on.
//!
//! A port is *guarded* when some `allow` door names it in `open_ports`
//! ([`Config::guarded_ports`]): new connections to it are dropped unless their source is in
//! `always_allow` or admitted by a knock. Guarded is the union of the doors' ports, so every
//! guarded port has a door that opens it by construction.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use knock_match::{parse_port, Prefix};
pub use knock_match::{PortSpec, PortSpecError};

use crate::Config;

/// The nftables table knockwrap owns when `[firewall]` names none, and the longest `table`
/// name accepted: the firewall crate's, so that the configuration and the table agree.
pub use knockwrap_firewall::spec::MAX_TABLE_NAME;
pub use knockwrap_firewall::DEFAULT_TABLE as DEFAULT_FIREWALL_TABLE;

/// The `[firewall]` table; its defaults when the file has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewallConfig {
    /// The nftables table (family `inet`) knockwrap owns.
    pub table: String,
    /// Sources never hidden from guarded ports.
    pub always_allow: Vec<Prefix>,
    /// Line and column of the `[firewall]` header; None when the file has no such table.
    pub(crate) header_pos: Option<(usize, usize)>,
    /// Line and column of the `always_allow` value, if given.
    pub(crate) always_allow_pos: Option<(usize, usize)>,
}

impl Default for FirewallConfig {
    fn default() -> FirewallConfig {
        FirewallConfig {
            table: DEFAULT_FIREWALL_TABLE.to_string(),
            always_allow: Vec::new(),
            header_pos: None,
            always_allow_pos: None,
        }
    }
}

impl FirewallConfig {
    /// True when `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address) is in
    /// `always_allow`.
    pub fn always_allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.always_allow.iter().any(|p| p.contains(ip))
    }

    /// True when the file has a `[firewall]` table.
    pub fn is_declared(&self) -> bool {
        self.header_pos.is_some()
    }
}

/// `table`: an nftables identifier knockwrap can own without quoting.
pub(crate) fn check_table_name(name: &str) -> Result<(), String> {
    if knockwrap_firewall::spec::check_table_name(name).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "`table` must be an ASCII letter, then letters, digits or `_`, at most \
             {MAX_TABLE_NAME} characters, not `{name}`"
        ))
    }
}

/// A prefix for `key`, refusing IPv4-mapped IPv6 prefixes: IPv4 packets never carry them, so
/// such an entry would silently match nothing.
pub(crate) fn prefix_value(text: &str, key: &str) -> Result<Prefix, String> {
    let p: Prefix = text.parse().map_err(|e| format!("`{key}`: {e}"))?;
    if let IpAddr::V6(a) = p.addr() {
        if a.to_ipv4_mapped().is_some() && p.prefix_len() >= 96 {
            return Err(format!(
                "`{key}`: `{text}` is an IPv4-mapped IPv6 prefix, which no packet carries: write \
                 the IPv4 address or network"
            ));
        }
    }
    Ok(p)
}

/// The current SSH session as the `SSH_CONNECTION` environment variable gives it
/// (`CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SshSession {
    /// The client's address (IPv4-mapped IPv6 given as IPv4).
    pub client: IpAddr,
    /// The port the session reached on this host.
    pub server_port: u16,
}

impl SshSession {
    /// Parses the value of `SSH_CONNECTION`; None when it is not four fields of that shape.
    pub fn parse(value: &str) -> Option<SshSession> {
        let f: Vec<&str> = value.split_whitespace().collect();
        let [client, _, _, port] = f.as_slice() else {
            return None;
        };
        let client: IpAddr = client.split('%').next()?.parse().ok()?;
        Some(SshSession {
            client: client.to_canonical(),
            server_port: parse_port(port)?,
        })
    }
}

/// A warning about a valid configuration, at a `path:line:column`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    /// A short stable name (`firewall-no-always-allow`, ...).
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: warning[{}]: {}",
            self.path.display(),
            self.line,
            self.column,
            self.code,
            self.message
        )
    }
}

/// Ways the firewall guard could cut the operator off, for `check --config` and `doctor`:
///
/// - `firewall-no-always-allow`: ports are guarded and `always_allow` is empty, so a lost knock
///   client or a stopped daemon leaves no way in;
/// - `firewall-locks-out-session`: `session` (the caller's SSH session) reached a guarded TCP
///   port from an address `always_allow` does not cover: the session itself survives
///   (established traffic is accepted first), the next connection needs a knock;
/// - `firewall-unused`: a `[firewall]` table but no allow door with `open_ports`: nothing is
///   guarded.
pub fn lockout_warnings(config: &Config, session: Option<&SshSession>) -> Vec<ConfigWarning> {
    let fw = &config.firewall;
    let guarded = config.guarded_ports();
    let mut out = Vec::new();
    let mut warn = |(line, column): (usize, usize), code: &'static str, message: String| {
        out.push(ConfigWarning {
            path: config.path.clone(),
            line,
            column,
            code,
            message,
        })
    };
    let Some(first_door) = config
        .doors
        .iter()
        .find(|d| d.door.action == knock_match::Action::Allow && !d.open_ports.is_empty())
    else {
        if let Some(at) = fw.header_pos {
            warn(
                at,
                "firewall-unused",
                "`[firewall]` is set but no allow door has `open_ports`: nothing is guarded and \
                 knockwrap leaves the firewall alone"
                    .into(),
            );
        }
        return out;
    };
    let list = PortSpec::join(&guarded, ", ");
    if fw.always_allow.is_empty() {
        warn(
            fw.header_pos.unwrap_or(first_door.open_ports_pos),
            "firewall-no-always-allow",
            format!(
                "no `always_allow` in `[firewall]`: the guarded ports ({list}) are hidden from \
                 every address that has not knocked, so a lost knock client or a stopped daemon \
                 leaves no way in; list the addresses you manage this host from (an office \
                 range, a jump host)"
            ),
        );
    }
    if let Some(s) = session {
        let port = PortSpec::tcp(s.server_port);
        if guarded.contains(&port) && !fw.always_allows(s.client) {
            let door = config
                .doors
                .iter()
                .find(|d| d.open_ports.contains(&port))
                .unwrap_or(first_door);
            warn(
                fw.always_allow_pos
                    .or(fw.header_pos)
                    .unwrap_or(door.open_ports_pos),
                "firewall-locks-out-session",
                format!(
                    "this SSH session comes from {} to port {}, which door `{}` guards, and \
                     `always_allow` does not cover {}: the session itself stays up, but every \
                     new connection from there will need a knock first (add \"{}\" or its \
                     network to `always_allow`)",
                    s.client, s.server_port, door.door.name, s.client, s.client
                ),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        assert_eq!("22/tcp".parse(), Ok(PortSpec::tcp(22)));
        assert_eq!(" 51820/UDP ".parse(), Ok(PortSpec::udp(51820)));
        assert_eq!(PortSpec::udp(53).to_string(), "53/udp");
        assert_eq!(
            "22".parse::<PortSpec>(),
            Err(PortSpecError::NoProto("22".into()))
        );
        assert_eq!(
            "0/tcp".parse::<PortSpec>(),
            Err(PortSpecError::BadPort("0".into()))
        );
        assert_eq!(
            "65536/tcp".parse::<PortSpec>(),
            Err(PortSpecError::BadPort("65536".into()))
        );
        assert_eq!(
            "22/sctp".parse::<PortSpec>(),
            Err(PortSpecError::BadProto("sctp".into()))
        );
        assert!("22:tcp".parse::<PortSpec>().is_err());
        assert!("ssh/tcp".parse::<PortSpec>().is_err());
    }

    #[test]
    fn table_names() {
        for ok in ["knockwrap", "k", "Kw_2", &"a".repeat(64)] {
            assert!(check_table_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "2kw",
            "_kw",
            "kw-x",
            "kw x",
            "kw;",
            "ké",
            &"a".repeat(65),
        ] {
            assert!(check_table_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mapped_prefixes_are_refused() {
        assert!(prefix_value("::ffff:192.0.2.1", "always_allow").is_err());
        assert!(prefix_value("::ffff:0:0/96", "always_allow").is_err());
        assert!(prefix_value("::/0", "always_allow").is_ok());
        assert!(prefix_value("2001:db8::/32", "knock_from").is_ok());
        let e = prefix_value("192.0.2.1/24", "knock_from").unwrap_err();
        assert!(
            e.starts_with("`knock_from`: ") && e.contains("192.0.2.0/24"),
            "{e}"
        );
    }

    #[test]
    fn ssh_connection() {
        assert_eq!(
            SshSession::parse("198.51.100.7 50122 192.0.2.1 22"),
            Some(SshSession {
                client: "198.51.100.7".parse().unwrap(),
                server_port: 22
            })
        );
        assert_eq!(
            SshSession::parse("::ffff:198.51.100.7 50122 ::ffff:192.0.2.1 2222")
                .map(|s| (s.client.to_string(), s.server_port)),
            Some(("198.51.100.7".into(), 2222))
        );
        assert_eq!(
            SshSession::parse("fe80::1%eth0 50122 fe80::2%eth0 22").map(|s| s.client),
            Some("fe80::1".parse().unwrap())
        );
        for bad in [
            "",
            "198.51.100.7 50122 192.0.2.1",
            "x 1 y 22",
            "1.2.3.4 1 5.6.7.8 0",
        ] {
            assert_eq!(SshSession::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn always_allows_canonicalises() {
        let fw = FirewallConfig {
            always_allow: vec!["192.0.2.0/24".parse().unwrap()],
            ..FirewallConfig::default()
        };
        assert!(fw.always_allows("192.0.2.9".parse().unwrap()));
        assert!(fw.always_allows("::ffff:192.0.2.9".parse().unwrap()));
        assert!(!fw.always_allows("192.0.3.9".parse().unwrap()));
    }
}
