//! A port a door opens in the firewall: `"22/tcp"`, `"51820/udp"`. Shared by the
//! configuration (a door's `open_ports`), the lease journal (what a lease admitted, so its end
//! closes exactly that) and the firewall door; written and read as that text everywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{parse_port, Proto};

/// One `open_ports` entry: `"22/tcp"`, `"51820/udp"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct PortSpec {
    pub proto: Proto,
    pub port: u16,
}

impl PortSpec {
    /// `ports` in their text form (`22/tcp`), joined by `sep`: how logs, listings and messages
    /// name a set of ports.
    pub fn join(ports: &[PortSpec], sep: &str) -> String {
        ports
            .iter()
            .map(PortSpec::to_string)
            .collect::<Vec<_>>()
            .join(sep)
    }

    pub fn tcp(port: u16) -> PortSpec {
        PortSpec {
            proto: Proto::Tcp,
            port,
        }
    }

    pub fn udp(port: u16) -> PortSpec {
        PortSpec {
            proto: Proto::Udp,
            port,
        }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

/// Why an `open_ports` entry did not parse.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PortSpecError {
    #[error("`{0}` needs its protocol: write \"{0}/tcp\" or \"{0}/udp\"")]
    NoProto(String),
    #[error("port `{0}` is not a number from 1 to 65535")]
    BadPort(String),
    #[error("unknown protocol `{0}` (expected tcp or udp)")]
    BadProto(String),
}

impl FromStr for PortSpec {
    type Err = PortSpecError;

    /// `PORT/tcp` or `PORT/udp` (protocol case-insensitive, blanks around the whole ignored).
    fn from_str(s: &str) -> Result<PortSpec, PortSpecError> {
        let s = s.trim();
        let Some((port_text, proto_text)) = s.split_once('/') else {
            return Err(PortSpecError::NoProto(s.to_string()));
        };
        let port = parse_port(port_text).ok_or_else(|| PortSpecError::BadPort(port_text.into()))?;
        let proto = if proto_text.eq_ignore_ascii_case("tcp") {
            Proto::Tcp
        } else if proto_text.eq_ignore_ascii_case("udp") {
            Proto::Udp
        } else {
            return Err(PortSpecError::BadProto(proto_text.into()));
        };
        Ok(PortSpec { proto, port })
    }
}

impl From<PortSpec> for String {
    fn from(p: PortSpec) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for PortSpec {
    type Error = PortSpecError;

    fn try_from(s: String) -> Result<PortSpec, PortSpecError> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_as_text() {
        let p: PortSpec = " 22/TCP ".parse().unwrap();
        assert_eq!(p, PortSpec::tcp(22));
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"22/tcp\"");
        assert_eq!(
            serde_json::from_str::<PortSpec>("\"51820/udp\"").unwrap(),
            PortSpec::udp(51820)
        );
        assert!(serde_json::from_str::<PortSpec>("\"22\"").is_err());
        assert!("0/tcp".parse::<PortSpec>().is_err());
        assert!("22/sctp".parse::<PortSpec>().is_err());
    }
}
