//! The reading of nft's JSON listing of the table back into admissions
//! ([`crate::spec::Admitted`]): which admissions exist with how long they have left, and whether the table has the layout of [`crate::plan`] (or something of
//! its own that an `ensure` must replace).

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use nftables::expr::{Expression, NamedExpression};
use nftables::schema::{NfListObject, NfObject, Nftables, SetFlag};

use crate::plan::{sets, CHAIN_GUARD, CHAIN_INPUT, SET_ADMIT4, SET_ADMIT6};
use crate::spec::Admitted;

/// One element of an admitted set as listed: its address (when readable), the admission
/// (when fully readable) and its value as nft printed it, to delete it by.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub set: &'static str,
    pub addr: Option<IpAddr>,
    pub admitted: Option<Admitted>,
    pub val: Expression<'static>,
}

/// The table as listed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Listing {
    /// Why the table is not of knockwrap's layout (then `ensure` replaces it whole); `None`
    /// when it is, possibly with objects missing (which `ensure` adds).
    pub foreign: Option<String>,
    pub found: Vec<Found>,
}

impl Listing {
    pub fn admitted(&self) -> Vec<Admitted> {
        self.found.iter().filter_map(|f| f.admitted).collect()
    }
}

/// Read `nft -j list table` output. `Err` carries why it could not be read.
pub(crate) fn parse_listing(table: &str, json: &str) -> Result<Listing, String> {
    let raw: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let doc: Nftables<'static> = serde_json::from_value(raw.clone()).map_err(|e| e.to_string())?;
    let ours = sets(table);
    let mut listing = Listing::default();
    let mut foreign = Vec::new();
    // The crate's table type has no flags: read them from the raw document (a dormant table
    // would switch the guard off while looking installed).
    let flagged = raw["nftables"].as_array().is_some_and(|objs| {
        objs.iter().any(|o| {
            o["table"]["name"] == table
                && match &o["table"]["flags"] {
                    serde_json::Value::Array(f) => !f.is_empty(),
                    serde_json::Value::String(_) => true,
                    _ => false,
                }
        })
    });
    if flagged {
        foreign.push("table flags".to_string());
    }
    for obj in doc.objects.iter() {
        let NfObject::ListObject(obj) = obj else {
            continue;
        };
        match obj {
            NfListObject::Table(_) | NfListObject::MetainfoObject(_) | NfListObject::Rule(_) => {}
            NfListObject::Chain(c) if c.name == CHAIN_INPUT || c.name == CHAIN_GUARD => {}
            NfListObject::Chain(c) => foreign.push(format!("chain {}", c.name)),
            NfListObject::Set(set) => {
                let Some(want) = ours.iter().find(|o| o.name == set.name) else {
                    foreign.push(format!("set {}", set.name));
                    continue;
                };
                let flags = |f: &Option<HashSet<SetFlag>>| f.clone().unwrap_or_default();
                if want.set_type != set.set_type || flags(&want.flags) != flags(&set.flags) {
                    foreign.push(format!("set {} of another type or flags", set.name));
                    continue;
                }
                let admit_set = match &*set.name {
                    SET_ADMIT4 => SET_ADMIT4,
                    SET_ADMIT6 => SET_ADMIT6,
                    _ => continue,
                };
                for e in set.elem.iter().flat_map(|e| e.iter()) {
                    listing.found.push(found(admit_set, e));
                }
            }
            other => foreign.push(kind(other).to_string()),
        }
    }
    if !foreign.is_empty() {
        listing.foreign = Some(foreign.join(", "));
    }
    Ok(listing)
}

fn kind(o: &NfListObject<'_>) -> &'static str {
    match o {
        NfListObject::Map(_) => "a map",
        NfListObject::Element(_) => "an element",
        NfListObject::FlowTable(_) => "a flowtable",
        NfListObject::Counter(_) => "a counter",
        NfListObject::Quota(_) => "a quota",
        NfListObject::CTHelper(_) => "a ct helper",
        NfListObject::Limit(_) => "a limit",
        NfListObject::CTTimeout(_) => "a ct timeout",
        NfListObject::CTExpectation(_) => "a ct expectation",
        NfListObject::SynProxy(_) => "a synproxy",
        _ => "an object",
    }
}

/// One listed element: `{"elem": {"val": {"concat": [addr, proto, port]}, "expires": s}}`,
/// or the bare concatenation for an element without a timeout.
fn found(set: &'static str, e: &Expression<'static>) -> Found {
    let (val, expires) = match e {
        Expression::Named(NamedExpression::Elem(el)) => {
            ((*el.val).clone(), Some(el.expires.unwrap_or(0)))
        }
        other => (other.clone(), None),
    };
    let parts = match &val {
        Expression::Named(NamedExpression::Concat(p)) if p.len() == 3 => Some(p),
        _ => None,
    };
    let addr = parts.and_then(|p| match &p[0] {
        Expression::String(a) => a.parse::<IpAddr>().ok(),
        _ => None,
    });
    let proto = parts.and_then(|p| match &p[1] {
        Expression::String(n) => crate::spec::proto_from_name(n),
        Expression::Number(n) => crate::spec::proto_from_number(*n),
        _ => None,
    });
    let port = parts.and_then(|p| match &p[2] {
        Expression::Number(n) => u16::try_from(*n).ok(),
        Expression::String(n) => n.parse::<u16>().ok(),
        _ => None,
    });
    let admitted = match (addr, proto, port) {
        (Some(addr), Some(proto), Some(port)) => Some(Admitted {
            addr,
            proto,
            port,
            expires_in: expires.map(|s| Duration::from_secs(u64::from(s))),
        }),
        _ => None,
    };
    Found {
        set,
        addr,
        admitted,
        val,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Proto;

    /// What nft 1.0.6 prints for a table of knockwrap's layout with two admissions.
    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "kw", "handle": 1}}, {"set": {"family": "inet", "name": "guarded", "table": "kw", "type": ["inet_proto", "inet_service"], "handle": 1, "elem": [{"concat": ["tcp", 22]}]}}, {"set": {"family": "inet", "name": "allow4", "table": "kw", "type": "ipv4_addr", "handle": 2, "flags": ["interval"], "elem": [{"prefix": {"addr": "192.0.2.0", "len": 24}}, "198.51.100.7"]}}, {"set": {"family": "inet", "name": "allow6", "table": "kw", "type": "ipv6_addr", "handle": 3, "flags": ["interval"]}}, {"set": {"family": "inet", "name": "admit4", "table": "kw", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 4, "flags": ["timeout"], "elem": [{"elem": {"val": {"concat": ["198.18.0.2", "tcp", 22]}, "timeout": 30, "expires": 29}}, {"concat": ["198.18.0.9", "udp", 53]}, {"elem": {"val": {"concat": ["198.18.0.8", "sctp", 9]}, "timeout": 5, "expires": 4}}]}}, {"set": {"family": "inet", "name": "admit6", "table": "kw", "type": ["ipv6_addr", "inet_proto", "inet_service"], "handle": 5, "flags": ["timeout"], "elem": [{"elem": {"val": {"concat": ["fd00:4b57::2", "tcp", 22]}, "timeout": 3, "expires": 2}}]}}, {"chain": {"family": "inet", "table": "kw", "name": "guard", "handle": 6}}, {"chain": {"family": "inet", "table": "kw", "name": "input", "handle": 7, "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}}, {"rule": {"family": "inet", "table": "kw", "chain": "input", "handle": 8, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "kw", "chain": "guard", "handle": 9, "expr": [{"drop": null}]}}]}"#;

    #[test]
    fn admissions_are_read_with_time_left() {
        let l = parse_listing("kw", LISTING).unwrap();
        assert_eq!(l.foreign, None);
        assert_eq!(
            l.admitted(),
            [
                Admitted {
                    addr: "198.18.0.2".parse().unwrap(),
                    proto: Proto::Tcp,
                    port: 22,
                    expires_in: Some(Duration::from_secs(29)),
                },
                Admitted {
                    addr: "198.18.0.9".parse().unwrap(),
                    proto: Proto::Udp,
                    port: 53,
                    expires_in: None,
                },
                Admitted {
                    addr: "fd00:4b57::2".parse().unwrap(),
                    proto: Proto::Tcp,
                    port: 22,
                    expires_in: Some(Duration::from_secs(2)),
                },
            ]
        );
        // The sctp element is not an admission knockwrap makes, but its address is known,
        // so a revoke of that address still removes it.
        let odd = &l.found[2];
        assert_eq!(odd.addr, Some("198.18.0.8".parse().unwrap()));
        assert!(odd.admitted.is_none());
    }

    #[test]
    fn objects_of_its_own_make_the_table_foreign() {
        let with_chain = LISTING.replace(
            r#"{"chain": {"family": "inet", "table": "kw", "name": "guard""#,
            r#"{"chain": {"family": "inet", "table": "kw", "name": "extra", "handle": 99}}, {"chain": {"family": "inet", "table": "kw", "name": "guard""#,
        );
        let l = parse_listing("kw", &with_chain).unwrap();
        assert_eq!(l.foreign.as_deref(), Some("chain extra"));
        assert_eq!(l.admitted().len(), 3);

        let retyped = LISTING.replace(
            r#""flags": ["timeout"], "elem": [{"elem": {"val": {"concat": ["fd00"#,
            r#""elem": [{"elem": {"val": {"concat": ["fd00"#,
        );
        let l = parse_listing("kw", &retyped).unwrap();
        assert_eq!(
            l.foreign.as_deref(),
            Some("set admit6 of another type or flags")
        );
        assert_eq!(
            l.admitted().len(),
            2,
            "the other type's elements are not read"
        );

        let dormant = LISTING.replace(r#""handle": 1}}"#, r#""handle": 1, "flags": ["dormant"]}}"#);
        let l = parse_listing("kw", &dormant).unwrap();
        assert_eq!(l.foreign.as_deref(), Some("table flags"));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_listing("kw", "not json").is_err());
        assert!(parse_listing("kw", r#"{"x": 1}"#).is_err());
    }
}
