//! Address selection: every address of each host, of the wanted family, in the resolver's
//! order, all resolved before anything is sent (a typo in the second host must not leave half
//! a knock). A name goes to the system resolver (getaddrinfo: /etc/hosts, DNS); a numeric
//! address is itself.

use std::net::{IpAddr, ToSocketAddrs};

use knockwrap_config::client::Family;

use crate::failure::Failure;

fn accepts(family: Family, ip: &IpAddr) -> bool {
    match family {
        Family::Any => true,
        Family::V4 => ip.is_ipv4(),
        Family::V6 => ip.is_ipv6(),
    }
}

fn family_word(family: Family) -> &'static str {
    match family {
        Family::Any => "",
        Family::V4 => " IPv4",
        Family::V6 => " IPv6",
    }
}

/// Every address of `host` of the wanted family, in the resolver's order (RFC 6724, the
/// order ssh tries them in), without repeats: a numeric address (brackets allowed around
/// IPv6) is itself, a name goes through the system resolver (getaddrinfo: /etc/hosts, DNS).
fn resolve(host: &str, family: Family) -> Result<Vec<IpAddr>, Failure> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let wanted = family_word(family);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return if accepts(family, &ip) {
            Ok(vec![ip])
        } else {
            Err(Failure::failed(format!(
                "knock: `{host}` is not an{wanted} address"
            )))
        };
    }
    let found = (bare, 0u16)
        .to_socket_addrs()
        .map_err(|e| Failure::failed(format!("knock: cannot resolve `{host}`: {e}")))?;
    let mut all: Vec<IpAddr> = Vec::new();
    for ip in found.map(|sa| sa.ip()) {
        if !all.contains(&ip) {
            all.push(ip);
        }
    }
    let kept: Vec<IpAddr> = all
        .iter()
        .copied()
        .filter(|ip| accepts(family, ip))
        .collect();
    if kept.is_empty() {
        let has = if all.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = all.iter().map(ToString::to_string).collect();
            format!(" (it resolves to {})", list.join(", "))
        };
        return Err(Failure::failed(format!(
            "knock: `{host}` has no{wanted} address{has}"
        )));
    }
    Ok(kept)
}

/// Each host with its addresses. Everything is resolved before anything is sent: a typo in
/// the second host must not leave half a knock.
pub(super) fn resolve_groups(
    hosts: &[String],
    family: Family,
    log: Option<&(dyn Fn(&str) + Sync)>,
) -> Result<Vec<(String, Vec<IpAddr>)>, Failure> {
    hosts
        .iter()
        .map(|h| {
            let addrs = resolve(h, family)?;
            if let Some(log) = log {
                let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                log(&format!("{h}: {}", list.join(", ")));
            }
            Ok((h.clone(), addrs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::FAILED;

    #[test]
    fn numeric_resolution_and_families() {
        let v4: IpAddr = "198.18.0.1".parse().unwrap();
        let v6: IpAddr = "fd00:4b57::1".parse().unwrap();
        assert_eq!(resolve("198.18.0.1", Family::Any).unwrap(), vec![v4]);
        assert_eq!(resolve("[fd00:4b57::1]", Family::V6).unwrap(), vec![v6]);
        assert_eq!(
            resolve("fd00:4b57::1", Family::V4).unwrap_err().code,
            FAILED
        );
        assert_eq!(resolve("198.18.0.1", Family::V6).unwrap_err().code, FAILED);
    }
}
