//! Reading `nft -j list ruleset` for the firewall door: which base chains of *other* tables on
//! the `input` hook drop new connections to a guarded port. A drop anywhere is final in
//! nftables, so such a chain drops the knockers knockwrap admits too, whatever knockwrap's own
//! table says; knockwrap's table (family `inet`, the configured name) is left out.
//!
//! Pure: the JSON text in, a [`RulesetReport`] out; `doctor` runs nft.
//!
//! Each guarded port is followed through a chain as a new connection (`ct state new`) from an
//! arbitrary source would be: a rule whose conditions all hold for that packet (a `dport`
//! match that includes the port, a protocol match for its protocol, `ct state` with `new`)
//! decides it with its verdict (`accept`, `drop`, `reject`, `jump`, `goto`, `return`, or a
//! `vmap` on the port); a rule that excludes it (another port, the other protocol, `ct state
//! established,related`) is skipped; a rule with any other condition (addresses, interfaces,
//! rate limits, anything not understood) decides nothing, but when it drops and names the
//! port it is reported as a drop for some packets. At the end of a base chain its policy
//! applies.

use std::collections::HashMap;

use knock_match::{PortSpec, Proto};
use serde_json::Value;

/// Why nft's listing could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RulesetError {
    #[error("nft's JSON listing does not parse: {0}")]
    Json(#[from] serde_json::Error),
    #[error("nft's JSON listing has no `nftables` array")]
    Shape,
}

/// How a base chain drops new connections to a guarded port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropBy {
    /// The base chain's `policy drop`: no rule accepts the port before it.
    Policy,
    /// A rule whose conditions all hold for the port: `chain` is where the rule is (the base
    /// chain or one it jumps to), `handle` its handle (`nft -a list chain ...`).
    Rule { chain: String, handle: u64 },
    /// Rules that drop the port for some packets only (they have other conditions too, such
    /// as a source address), the port otherwise getting through.
    Some(Vec<(String, u64)>),
}

/// One guarded port a base chain drops, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortDrop {
    pub port: PortSpec,
    pub by: DropBy,
}

/// A base chain on the `input` hook of another table that drops guarded ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReport {
    pub family: String,
    pub table: String,
    pub chain: String,
    /// The chain's policy as nft lists it (`accept` when absent).
    pub policy: String,
    pub drops: Vec<PortDrop>,
}

/// What the ruleset means for the guarded ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesetReport {
    /// knockwrap's own table is present.
    pub own_table: bool,
    /// Base chains of other tables on the `input` hook, read.
    pub input_chains: usize,
    /// Those of them that drop a guarded port.
    pub dropping: Vec<ChainReport>,
}

/// Deepest chain of jumps followed (nft itself refuses loops and allows 16 levels).
const MAX_DEPTH: usize = 16;
/// Most rules read for one port in one base chain: a listing full of jumps cannot make the
/// walk take long.
const MAX_STEPS: usize = 100_000;

type ChainKey = (String, String, String);

struct Chain {
    hook: Option<String>,
    policy: Option<String>,
    rules: Vec<(u64, Vec<Value>)>,
}

struct Ruleset {
    /// (family, table, chain) in listing order.
    order: Vec<ChainKey>,
    chains: HashMap<ChainKey, Chain>,
    /// (family, table, set) → elements.
    sets: HashMap<ChainKey, Vec<Value>>,
    tables: Vec<(String, String)>,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Ruleset {
    fn parse(json: &str) -> Result<Ruleset, RulesetError> {
        let doc: Value = serde_json::from_str(json)?;
        let items = doc
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or(RulesetError::Shape)?;
        let mut rs = Ruleset {
            order: Vec::new(),
            chains: HashMap::new(),
            sets: HashMap::new(),
            tables: Vec::new(),
        };
        for item in items {
            if let Some(t) = item.get("table") {
                rs.tables.push((text(t, "family"), text(t, "name")));
            } else if let Some(c) = item.get("chain") {
                let key = (text(c, "family"), text(c, "table"), text(c, "name"));
                rs.order.push(key.clone());
                rs.chains.insert(
                    key,
                    Chain {
                        hook: c.get("hook").and_then(Value::as_str).map(str::to_string),
                        policy: c.get("policy").and_then(Value::as_str).map(str::to_string),
                        rules: Vec::new(),
                    },
                );
            } else if let Some(r) = item.get("rule") {
                let key = (text(r, "family"), text(r, "table"), text(r, "chain"));
                let handle = r.get("handle").and_then(Value::as_u64).unwrap_or(0);
                let expr = r
                    .get("expr")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if let Some(chain) = rs.chains.get_mut(&key) {
                    chain.rules.push((handle, expr));
                }
            } else if let Some(s) = item.get("set").or_else(|| item.get("map")) {
                let key = (text(s, "family"), text(s, "table"), text(s, "name"));
                let elems = s
                    .get("elem")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                rs.sets.insert(key, elems);
            }
        }
        Ok(rs)
    }
}

/// Whether a condition holds for a new connection to the port from an arbitrary source.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Holds {
    Always,
    Never,
    Maybe,
}

/// A rule's verdict for the port.
enum Verdict {
    Accept,
    Drop,
    Jump(String),
    Goto(String),
    Return,
}

/// A rule read for one port: whether its conditions hold, whether it names the port, and
/// the verdict it ends with (None: no verdict, or a vmap without the port).
struct RuleFor {
    holds: Holds,
    names_port: bool,
    verdict: Option<Verdict>,
}

/// The elements a match's right-hand side stands for: a value, an anonymous set, a list, or a
/// named set (`@name`) of the same table. None when a named set is not in the listing.
fn elements<'a>(
    rs: &'a Ruleset,
    fam: &str,
    table: &str,
    right: &'a Value,
) -> Option<Vec<&'a Value>> {
    match right {
        Value::String(s) if s.starts_with('@') => rs
            .sets
            .get(&(fam.to_string(), table.to_string(), s[1..].to_string()))
            .map(|e| e.iter().collect()),
        Value::Array(a) => Some(a.iter().collect()),
        Value::Object(o) if o.contains_key("set") => match &o["set"] {
            Value::Array(a) => Some(a.iter().collect()),
            one => Some(vec![one]),
        },
        other => Some(vec![other]),
    }
}

/// An element, unwrapped from `{"elem": {"val": ...}}` (elements with timeouts or comments).
fn element_value(e: &Value) -> &Value {
    e.get("elem").and_then(|x| x.get("val")).unwrap_or(e)
}

/// True / false when the element surely does / does not hold `port`; None when it is not a
/// port (a service name, an expression).
fn element_has_port(e: &Value, port: u16) -> Option<bool> {
    let e = element_value(e);
    if let Some(n) = e.as_u64() {
        return Some(n == u64::from(port));
    }
    if let Some(r) = e.get("range").and_then(Value::as_array) {
        if let [lo, hi] = r.as_slice() {
            if let (Some(lo), Some(hi)) = (lo.as_u64(), hi.as_u64()) {
                return Some((lo..=hi).contains(&u64::from(port)));
            }
        }
    }
    None
}

fn element_has_proto(e: &Value, p: Proto) -> Option<bool> {
    let e = element_value(e);
    if let Some(n) = e.as_u64() {
        return Some(n == u64::from(p.number()));
    }
    e.as_str().map(|s| s.eq_ignore_ascii_case(p.name()))
}

fn element_has_state(e: &Value, state: &str) -> Option<bool> {
    element_value(e).as_str().map(|s| s == state)
}

/// Whether any element holds the thing (None when one is not understood and none holds it).
fn any_holds(elems: &[&Value], f: impl Fn(&Value) -> Option<bool>) -> Option<bool> {
    let mut unknown = false;
    for e in elems {
        match f(e) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => unknown = true,
        }
    }
    if unknown {
        None
    } else {
        Some(false)
    }
}

/// A `match` expression for the port: whether it holds and whether it names the port.
fn match_holds(rs: &Ruleset, fam: &str, table: &str, m: &Value, p: PortSpec) -> (Holds, bool) {
    let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
    let positive = match op {
        "==" | "in" => true,
        "!=" => false,
        _ => return (Holds::Maybe, false),
    };
    let (Some(left), Some(right)) = (m.get("left"), m.get("right")) else {
        return (Holds::Maybe, false);
    };
    let Some(elems) = elements(rs, fam, table, right) else {
        return (Holds::Maybe, false);
    };
    let contained = if let Some(pl) = left.get("payload") {
        let proto = pl.get("protocol").and_then(Value::as_str).unwrap_or("");
        let field = pl.get("field").and_then(Value::as_str).unwrap_or("");
        let other_proto = matches!(proto, "tcp" | "udp") && proto != p.proto.name();
        if other_proto {
            // A tcp header match never holds for a udp packet, whatever the operator.
            return (Holds::Never, false);
        }
        match (proto, field) {
            ("tcp" | "udp" | "th", "dport") => {
                let has = any_holds(&elems, |e| element_has_port(e, p.port));
                return match (has, positive) {
                    (Some(true), true) => (Holds::Always, true),
                    (Some(false), false) => (Holds::Always, false),
                    (Some(_), _) => (Holds::Never, false),
                    (None, _) => (Holds::Maybe, false),
                };
            }
            ("ip", "protocol") | ("ip6", "nexthdr") => {
                any_holds(&elems, |e| element_has_proto(e, p.proto))
            }
            _ => None,
        }
    } else if let Some(meta) = left.get("meta") {
        match meta.get("key").and_then(Value::as_str) {
            Some("l4proto") => any_holds(&elems, |e| element_has_proto(e, p.proto)),
            _ => None,
        }
    } else if let Some(ct) = left.get("ct") {
        match ct.get("key").and_then(Value::as_str) {
            Some("state") => any_holds(&elems, |e| element_has_state(e, "new")),
            _ => None,
        }
    } else {
        None
    };
    match (contained, positive) {
        (Some(true), true) | (Some(false), false) => (Holds::Always, false),
        (Some(_), _) => (Holds::Never, false),
        (None, _) => (Holds::Maybe, false),
    }
}

fn verdict_of(v: &Value) -> Option<Verdict> {
    let o = v.as_object()?;
    let target = |k: &str| {
        o.get(k)
            .and_then(|t| t.get("target"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if o.contains_key("accept") {
        Some(Verdict::Accept)
    } else if o.contains_key("drop") || o.contains_key("reject") {
        Some(Verdict::Drop)
    } else if o.contains_key("jump") {
        target("jump").map(Verdict::Jump)
    } else if o.contains_key("goto") {
        target("goto").map(Verdict::Goto)
    } else if o.contains_key("return") {
        Some(Verdict::Return)
    } else {
        None
    }
}

/// Statements that neither test the packet nor end the rule (`set`: adding to or updating a
/// set from the packet, as rate-limiting rulesets do).
const NEUTRAL: [&str; 5] = ["counter", "log", "mangle", "notrack", "set"];

fn rule_for(rs: &Ruleset, fam: &str, table: &str, expr: &[Value], p: PortSpec) -> RuleFor {
    let mut holds = Holds::Always;
    let mut names_port = false;
    for e in expr {
        let Some((key, body)) = e.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        if let Some(v) = verdict_of(e) {
            return RuleFor {
                holds,
                names_port,
                verdict: Some(v),
            };
        }
        match key.as_str() {
            "match" => {
                let (h, named) = match_holds(rs, fam, table, body, p);
                names_port |= named;
                holds = match (holds, h) {
                    (Holds::Never, _) | (_, Holds::Never) => Holds::Never,
                    (Holds::Maybe, _) | (_, Holds::Maybe) => Holds::Maybe,
                    _ => Holds::Always,
                };
            }
            "vmap" => {
                let key = body.get("key").and_then(|k| k.get("payload"));
                let proto = key
                    .and_then(|k| k.get("protocol"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let field = key
                    .and_then(|k| k.get("field"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let on_port = field == "dport" && matches!(proto, "tcp" | "udp" | "th");
                if !on_port || (proto != "th" && proto != p.proto.name()) {
                    // A map on something else (or the other protocol's ports): no verdict for
                    // the port from here on that can be told.
                    return RuleFor {
                        holds: Holds::Maybe,
                        names_port,
                        verdict: None,
                    };
                }
                let Some(data) = body.get("data") else {
                    return RuleFor {
                        holds: Holds::Maybe,
                        names_port,
                        verdict: None,
                    };
                };
                let pairs = elements(rs, fam, table, data).unwrap_or_default();
                for pair in pairs {
                    let pair = element_value(pair);
                    if let Some([k, v]) = pair.as_array().map(Vec::as_slice) {
                        if element_has_port(k, p.port) == Some(true) {
                            return RuleFor {
                                holds,
                                names_port: true,
                                verdict: verdict_of(v),
                            };
                        }
                    }
                }
                // The port is not in the map: the rule ends without a verdict.
                return RuleFor {
                    holds,
                    names_port,
                    verdict: None,
                };
            }
            k if NEUTRAL.contains(&k) => {}
            // limit, quota, xt, ... : a condition that cannot be told here.
            _ => {
                if holds == Holds::Always {
                    holds = Holds::Maybe;
                }
            }
        }
    }
    RuleFor {
        holds,
        names_port,
        verdict: None,
    }
}

/// Where a drop was decided; `names_port` says whether the rule named the port.
#[derive(Clone, Debug)]
struct Via {
    chain: String,
    handle: u64,
    names_port: bool,
}

enum Outcome {
    Accept,
    Drop(Via),
    /// The chain ended (or returned) without a verdict.
    Return,
}

struct Walk<'a> {
    rs: &'a Ruleset,
    fam: &'a str,
    table: &'a str,
    port: PortSpec,
    /// Drops for some packets only.
    some: Vec<Via>,
    /// Rules read so far.
    steps: usize,
}

impl Walk<'_> {
    fn chain(&mut self, name: &str, depth: usize) -> Outcome {
        let key = (
            self.fam.to_string(),
            self.table.to_string(),
            name.to_string(),
        );
        let Some(chain) = self.rs.chains.get(&key) else {
            return Outcome::Return;
        };
        for (handle, expr) in &chain.rules {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Outcome::Return;
            }
            let r = rule_for(self.rs, self.fam, self.table, expr, self.port);
            if r.holds == Holds::Never {
                continue;
            }
            let always = r.holds == Holds::Always;
            let via = Via {
                chain: name.to_string(),
                handle: *handle,
                names_port: r.names_port,
            };
            match r.verdict {
                None => {}
                Some(Verdict::Accept) if always => return Outcome::Accept,
                Some(Verdict::Accept) => {}
                Some(Verdict::Drop) if always => return Outcome::Drop(via),
                Some(Verdict::Drop) if r.names_port => self.some.push(via),
                Some(Verdict::Drop) => {}
                Some(Verdict::Return) if always => return Outcome::Return,
                Some(Verdict::Return) => {}
                // Too deep (nft refuses loops; a listing could still have one): not followed.
                Some(Verdict::Jump(_) | Verdict::Goto(_)) if depth >= MAX_DEPTH => {}
                Some(Verdict::Jump(target)) => {
                    let out = self.chain(&target, depth + 1);
                    match out {
                        Outcome::Return => {}
                        decided if always => return decided,
                        Outcome::Drop(inner) => {
                            if inner.names_port || r.names_port {
                                self.some.push(inner);
                            }
                        }
                        Outcome::Accept => {}
                    }
                }
                Some(Verdict::Goto(target)) => {
                    let out = self.chain(&target, depth + 1);
                    if always {
                        return out;
                    }
                    if let Outcome::Drop(inner) = out {
                        if inner.names_port || r.names_port {
                            self.some.push(inner);
                        }
                    }
                }
            }
        }
        Outcome::Return
    }
}

/// Reads `nft -j list ruleset` for the guarded ports: every base chain on the `input` hook of
/// a table other than knockwrap's (`inet own_table`) that drops one of them.
pub fn analyze(
    json: &str,
    own_table: &str,
    guarded: &[PortSpec],
) -> Result<RulesetReport, RulesetError> {
    let rs = Ruleset::parse(json)?;
    let mut report = RulesetReport {
        own_table: rs.tables.iter().any(|(f, n)| f == "inet" && n == own_table),
        ..RulesetReport::default()
    };
    for key in &rs.order {
        let (fam, table, name) = key;
        let chain = &rs.chains[key];
        let ours = fam == "inet" && table == own_table;
        let on_input =
            chain.hook.as_deref() == Some("input") && matches!(fam.as_str(), "inet" | "ip" | "ip6");
        if ours || !on_input {
            continue;
        }
        report.input_chains += 1;
        let policy = chain.policy.clone().unwrap_or_else(|| "accept".into());
        let mut drops = Vec::new();
        for &port in guarded {
            let mut walk = Walk {
                rs: &rs,
                fam,
                table,
                port,
                some: Vec::new(),
                steps: 0,
            };
            let by = match walk.chain(name, 0) {
                Outcome::Drop(via) => Some(DropBy::Rule {
                    chain: via.chain,
                    handle: via.handle,
                }),
                Outcome::Return if policy == "drop" => Some(DropBy::Policy),
                _ if !walk.some.is_empty() => Some(DropBy::Some(
                    walk.some.into_iter().map(|v| (v.chain, v.handle)).collect(),
                )),
                _ => None,
            };
            if let Some(by) = by {
                drops.push(PortDrop { port, by });
            }
        }
        if !drops.is_empty() {
            report.dropping.push(ChainReport {
                family: fam.clone(),
                table: table.clone(),
                chain: name.clone(),
                policy,
                drops,
            });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing of the given tables: each (family, name, chains), a chain being (name, hook
    /// and policy if a base chain, rules as JSON expression arrays).
    type ChainFixture<'a> = (&'a str, Option<(&'a str, &'a str)>, Vec<&'a str>);

    fn listing(tables: &[(&str, &str, Vec<ChainFixture>)], extra: &[&str]) -> String {
        let mut items =
            vec![r#"{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}"#.to_string()];
        let mut handle = 1;
        for (fam, table, chains) in tables {
            items.push(format!(
                r#"{{"table": {{"family": "{fam}", "name": "{table}", "handle": 1}}}}"#
            ));
            for (name, base, _) in chains {
                let base = match base {
                    Some((hook, policy)) => format!(
                        r#", "type": "filter", "hook": "{hook}", "prio": 0, "policy": "{policy}""#
                    ),
                    None => String::new(),
                };
                items.push(format!(
                    r#"{{"chain": {{"family": "{fam}", "table": "{table}", "name": "{name}", "handle": 1{base}}}}}"#
                ));
            }
            for (name, _, rules) in chains {
                for expr in rules {
                    handle += 1;
                    items.push(format!(
                        r#"{{"rule": {{"family": "{fam}", "table": "{table}", "chain": "{name}", "handle": {handle}, "expr": {expr}}}}}"#
                    ));
                }
            }
        }
        items.extend(extra.iter().map(|s| s.to_string()));
        format!(r#"{{"nftables": [{}]}}"#, items.join(", "))
    }

    const TCP22_DROP: &str = r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"drop": null}]"#;
    const TCP22_ACCEPT: &str = r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]"#;
    const ESTABLISHED: &str = r#"[{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]"#;
    const INVALID_DROP: &str = r#"[{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}, {"drop": null}]"#;
    const LO_ACCEPT: &str = r#"[{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}]"#;

    fn ssh() -> Vec<PortSpec> {
        vec![PortSpec::tcp(22)]
    }

    fn only(report: &RulesetReport) -> &ChainReport {
        assert_eq!(report.dropping.len(), 1, "{report:#?}");
        &report.dropping[0]
    }

    #[test]
    fn a_policy_drop_input_chain_drops_the_guarded_port() {
        let json = listing(
            &[(
                "inet",
                "filter",
                vec![(
                    "input",
                    Some(("input", "drop")),
                    vec![ESTABLISHED, INVALID_DROP, LO_ACCEPT],
                )],
            )],
            &[],
        );
        let r = analyze(&json, "knockwrap", &ssh()).unwrap();
        assert_eq!(r.input_chains, 1);
        let c = only(&r);
        assert_eq!(
            (c.family.as_str(), c.table.as_str(), c.chain.as_str()),
            ("inet", "filter", "input")
        );
        assert_eq!(c.policy, "drop");
        assert_eq!(
            c.drops,
            vec![PortDrop {
                port: PortSpec::tcp(22),
                by: DropBy::Policy
            }]
        );
    }

    #[test]
    fn a_policy_drop_chain_that_accepts_the_port_first_is_fine() {
        let json = listing(
            &[(
                "inet",
                "filter",
                vec![(
                    "input",
                    Some(("input", "drop")),
                    vec![ESTABLISHED, INVALID_DROP, LO_ACCEPT, TCP22_ACCEPT],
                )],
            )],
            &[],
        );
        let r = analyze(&json, "knockwrap", &ssh()).unwrap();
        assert!(r.dropping.is_empty(), "{r:#?}");
        // ... but not a udp port it does not accept.
        let r = analyze(&json, "knockwrap", &[PortSpec::udp(22)]).unwrap();
        assert_eq!(only(&r).drops[0].by, DropBy::Policy);
    }

    #[test]
    fn a_tcp_dport_22_drop_rule_is_found_in_an_accepting_chain() {
        let json = listing(
            &[(
                "ip",
                "t4",
                vec![(
                    "INPUT",
                    Some(("input", "accept")),
                    vec![ESTABLISHED, TCP22_DROP],
                )],
            )],
            &[],
        );
        let r = analyze(&json, "knockwrap", &ssh()).unwrap();
        let c = only(&r);
        assert_eq!((c.family.as_str(), c.chain.as_str()), ("ip", "INPUT"));
        assert_eq!(
            c.drops[0].by,
            DropBy::Rule {
                chain: "INPUT".into(),
                handle: 3
            }
        );
        // Another guarded port is not touched by it.
        let r = analyze(
            &json,
            "knockwrap",
            &[PortSpec::tcp(2222), PortSpec::udp(22)],
        )
        .unwrap();
        assert!(r.dropping.is_empty(), "{r:#?}");
    }

    #[test]
    fn knockwraps_own_table_is_ignored() {
        // The shape of knockwrap's table: an accept-policy base chain that jumps to a chain
        // ending in drop.
        let guard_jump = r#"[{"match": {"op": "==", "left": {"concat": [{"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]}, "right": "@guarded"}}, {"jump": {"target": "guard"}}]"#;
        let chains = || {
            vec![
                (
                    "input",
                    Some(("input", "accept")),
                    vec![ESTABLISHED, guard_jump],
                ),
                ("guard", None, vec![LO_ACCEPT, r#"[{"drop": null}]"#]),
            ]
        };
        let json = listing(&[("inet", "knockwrap", chains())], &[]);
        let r = analyze(&json, "knockwrap", &ssh()).unwrap();
        assert!(r.own_table);
        assert_eq!(r.input_chains, 0);
        assert!(r.dropping.is_empty(), "{r:#?}");
        // The same table under another name is someone else's, and its drop is found (the
        // jump's condition cannot be told, the drop it leads to names no port: not reported),
        // while an unconditional jump into a drop is.
        let json = listing(&[("inet", "other", chains())], &[]);
        let r = analyze(&json, "knockwrap", &ssh()).unwrap();
        assert!(!r.own_table);
        assert_eq!(r.input_chains, 1);
        assert!(r.dropping.is_empty(), "{r:#?}");
        let json = listing(
            &[(
                "inet",
                "other",
                vec![
                    (
                        "input",
                        Some(("input", "accept")),
                        vec![r#"[{"jump": {"target": "guard"}}]"#],
                    ),
                    ("guard", None, vec![LO_ACCEPT, r#"[{"drop": null}]"#]),
                ],
            )],
            &[],
        );
        let r = analyze(&json, "knockwrap", &ssh()).unwrap();
        assert_eq!(
            only(&r).drops[0].by,
            DropBy::Rule {
                chain: "guard".into(),
                handle: 4
            }
        );
        // knockwrap's table name only counts in family inet.
        let json = listing(
            &[(
                "ip",
                "knockwrap",
                vec![("input", Some(("input", "drop")), vec![])],
            )],
            &[],
        );
        assert_eq!(
            analyze(&json, "knockwrap", &ssh()).unwrap().dropping.len(),
            1
        );
    }

    #[test]
    fn an_accept_only_table_is_fine() {
        let json = listing(
            &[(
                "inet",
                "filter",
                vec![
                    (
                        "input",
                        Some(("input", "accept")),
                        vec![ESTABLISHED, LO_ACCEPT, TCP22_ACCEPT],
                    ),
                    // Drops on other hooks do not concern the guarded ports' input.
                    ("forward", Some(("forward", "drop")), vec![TCP22_DROP]),
                    ("output", Some(("output", "accept")), vec![TCP22_DROP]),
                ],
            )],
            &[],
        );
        let r = analyze(&json, "knockwrap", &ssh()).unwrap();
        assert_eq!(r.input_chains, 1);
        assert!(r.dropping.is_empty(), "{r:#?}");
        // An empty ruleset.
        let r = analyze(&listing(&[], &[]), "knockwrap", &ssh()).unwrap();
        assert_eq!(r, RulesetReport::default());
    }

    #[test]
    fn sets_ranges_vmaps_and_negations() {
        let set = r#"{"set": {"family": "inet", "name": "ssh_ports", "table": "filter", "type": "inet_service", "handle": 4, "elem": [22, 2222]}}"#;
        let named = r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ssh_ports"}}, {"drop": null}]"#;
        let range = r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": {"range": [20, 30]}}}, {"counter": {"packets": 0, "bytes": 0}}, {"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]"#;
        let vmap = r#"[{"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}}, "data": {"set": [[22, {"drop": null}], [25, {"accept": null}]]}}}]"#;
        let not22 = r#"[{"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"drop": null}]"#;
        let anon = r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [80, 443]}}}, {"drop": null}]"#;
        let tracked = r#"[{"set": {"op": "add", "elem": {"payload": {"protocol": "ip", "field": "saddr"}}, "set": "@seen"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"log": {"prefix": "ssh "}}, {"drop": null}]"#;
        let limited = r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"limit": {"rate": 3, "per": "minute"}}, {"drop": null}]"#;
        let udp = r#"[{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}, {"drop": null}]"#;
        let by = |rule: &str, port: PortSpec| {
            let json = listing(
                &[(
                    "inet",
                    "filter",
                    vec![("input", Some(("input", "accept")), vec![rule])],
                )],
                &[set],
            );
            analyze(&json, "knockwrap", &[port])
                .unwrap()
                .dropping
                .first()
                .map(|c| c.drops[0].by.clone())
        };
        let rule2 = Some(DropBy::Rule {
            chain: "input".into(),
            handle: 2,
        });
        assert_eq!(by(named, PortSpec::tcp(22)), rule2);
        assert_eq!(by(named, PortSpec::tcp(2222)), rule2);
        assert_eq!(by(named, PortSpec::tcp(23)), None);
        assert_eq!(by(range, PortSpec::tcp(22)), rule2);
        assert_eq!(by(range, PortSpec::udp(25)), rule2);
        assert_eq!(by(range, PortSpec::tcp(31)), None);
        assert_eq!(by(vmap, PortSpec::tcp(22)), rule2);
        assert_eq!(by(vmap, PortSpec::tcp(25)), None);
        assert_eq!(by(vmap, PortSpec::udp(22)), None);
        assert_eq!(by(not22, PortSpec::tcp(22)), None);
        assert_eq!(by(not22, PortSpec::tcp(2222)), rule2);
        assert_eq!(by(anon, PortSpec::tcp(443)), rule2);
        assert_eq!(by(anon, PortSpec::tcp(22)), None);
        assert_eq!(by(tracked, PortSpec::tcp(22)), rule2);
        // A drop under a rate limit drops some packets: reported as such.
        assert_eq!(
            by(limited, PortSpec::tcp(22)),
            Some(DropBy::Some(vec![("input".into(), 2)]))
        );
        assert_eq!(by(udp, PortSpec::udp(51820)), rule2);
        assert_eq!(by(udp, PortSpec::tcp(22)), None);
    }

    #[test]
    fn a_drop_for_some_sources_that_names_the_port_is_reported() {
        let from = r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "203.0.113.0", "len": 24}}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"drop": null}]"#;
        let blocklist = r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "198.51.100.9"}}, {"drop": null}]"#;
        let json = listing(
            &[(
                "inet",
                "filter",
                vec![(
                    "input",
                    Some(("input", "accept")),
                    vec![blocklist, from, TCP22_ACCEPT],
                )],
            )],
            &[],
        );
        let r = analyze(&json, "knockwrap", &ssh()).unwrap();
        assert_eq!(
            only(&r).drops[0].by,
            DropBy::Some(vec![("input".into(), 3)])
        );
    }

    #[test]
    fn jumps_gotos_and_returns() {
        let jump = |t: &str| format!(r#"[{{"jump": {{"target": "{t}"}}}}]"#);
        let goto22 = r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"goto": {"target": "sub"}}]"#;
        let ret = r#"[{"return": null}]"#;
        let j = jump("sub");
        // The sub-chain returns before its drop: the base chain's accept decides.
        let json = listing(
            &[(
                "inet",
                "f",
                vec![
                    ("input", Some(("input", "drop")), vec![&j, TCP22_ACCEPT]),
                    ("sub", None, vec![ret, TCP22_DROP]),
                ],
            )],
            &[],
        );
        assert!(analyze(&json, "knockwrap", &ssh())
            .unwrap()
            .dropping
            .is_empty());
        // A goto for port 22 into a chain that ends without a verdict: the base policy.
        let json = listing(
            &[(
                "inet",
                "f",
                vec![
                    ("input", Some(("input", "drop")), vec![goto22, TCP22_ACCEPT]),
                    ("sub", None, vec![]),
                ],
            )],
            &[],
        );
        let r = analyze(&json, "knockwrap", &ssh()).unwrap();
        assert_eq!(only(&r).drops[0].by, DropBy::Policy);
        // A loop of jumps ends.
        let json = listing(
            &[(
                "inet",
                "f",
                vec![
                    ("input", Some(("input", "accept")), vec![&j]),
                    ("sub", None, vec![&jump("input")]),
                ],
            )],
            &[],
        );
        assert!(analyze(&json, "knockwrap", &ssh())
            .unwrap()
            .dropping
            .is_empty());
    }

    /// `nft -j list ruleset` (nft 1.0.6) of a namespace loaded with this ruleset:
    ///
    /// ```text
    /// table inet filter {
    ///   set ssh_ports { type inet_service; elements = { 22, 2222 }; }
    ///   chain input {
    ///     type filter hook input priority 0; policy drop;
    ///     ct state established,related accept                       # 5
    ///     ct state invalid drop                                     # 6
    ///     iif "lo" accept                                           # 7
    ///     meta l4proto { tcp, udp } th dport 53 accept              # 9
    ///     tcp dport { 80, 443 } accept                              # 11
    ///     tcp dport 1000-2000 counter drop                          # 12
    ///     ip saddr 203.0.113.0/24 tcp dport @ssh_ports drop         # 13
    ///     tcp dport vmap { 22 : drop, 25 : accept }                 # 15
    ///     jump sub                                                  # 16
    ///     tcp dport != 22 drop                                      # 17
    ///     ct state new tcp dport 22 accept                          # 18
    ///     reject with icmpx type admin-prohibited                   # 19
    ///   }
    ///   chain sub { udp dport 51820 goto sub2; return; }            # 20, 21
    ///   chain sub2 { drop; }                                        # 22
    /// }
    /// table ip t4 {
    ///   chain INPUT { type filter hook input priority 0; policy accept;
    ///     meta l4proto tcp tcp dport 22 drop; }                     # 2
    /// }
    /// ```
    const MIXED: &str = include_str!("../../tests/fixtures/nft/ruleset-mixed.json");

    #[test]
    fn a_real_listing_is_followed_rule_by_rule() {
        let ports: Vec<PortSpec> = [
            "22/tcp",
            "25/tcp",
            "53/udp",
            "80/tcp",
            "1500/tcp",
            "2222/tcp",
            "51820/udp",
            "5000/udp",
        ]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
        let r = analyze(MIXED, "knockwrap", &ports).unwrap();
        assert_eq!(r.input_chains, 2);
        assert!(!r.own_table);
        let rule = |chain: &str, handle| DropBy::Rule {
            chain: chain.into(),
            handle,
        };
        let drops = |c: &ChainReport| -> Vec<(String, DropBy)> {
            c.drops
                .iter()
                .map(|d| (d.port.to_string(), d.by.clone()))
                .collect()
        };
        assert_eq!(r.dropping.len(), 2, "{r:#?}");
        assert_eq!(
            (r.dropping[0].table.as_str(), r.dropping[0].policy.as_str()),
            ("filter", "drop")
        );
        assert_eq!(
            drops(&r.dropping[0]),
            vec![
                // The vmap's drop, before the later accept.
                ("22/tcp".into(), rule("input", 15)),
                ("1500/tcp".into(), rule("input", 12)),
                // The source-limited drop names it, but `!= 22` drops it outright after.
                ("2222/tcp".into(), rule("input", 17)),
                ("51820/udp".into(), rule("sub2", 22)),
                ("5000/udp".into(), rule("input", 19)),
            ]
        );
        assert_eq!(
            (r.dropping[1].family.as_str(), r.dropping[1].table.as_str()),
            ("ip", "t4")
        );
        assert_eq!(
            drops(&r.dropping[1]),
            vec![("22/tcp".into(), rule("INPUT", 2))]
        );
    }

    #[test]
    fn nfts_real_listing_parses() {
        // The shape `nft -j list ruleset` prints (nft 1.0.6): metainfo, tables, sets, chains,
        // rules; unknown statements are conditions that cannot be told.
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "filter", "handle": 1}}, {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 9, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["tcp", "udp"]}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": 53}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 10, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"limit": {"rate": 10, "per": "minute"}}, {"accept": null}]}}]}"#;
        let r = analyze(json, "knockwrap", &[PortSpec::udp(53), PortSpec::tcp(22)]).unwrap();
        // 53/udp is accepted; 22/tcp only under a rate limit, so the policy drops the rest.
        assert_eq!(
            only(&r).drops,
            vec![PortDrop {
                port: PortSpec::tcp(22),
                by: DropBy::Policy
            }]
        );
        assert!(matches!(
            analyze("not json", "knockwrap", &ssh()),
            Err(RulesetError::Json(_))
        ));
        assert!(matches!(
            analyze("{}", "knockwrap", &ssh()),
            Err(RulesetError::Shape)
        ));
    }
}
