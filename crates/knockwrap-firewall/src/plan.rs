//! The nft commands, built from typed values only: the table layout, the rules, and the
//! element changes. Pure: nothing here runs nft, so the whole layout is checked without root.
//!
//! Layout (family `inet`, the spec's table name):
//!
//! ```text
//! set guarded { type inet_proto . inet_service }                     the hidden ports
//! set allow4  { type ipv4_addr; flags interval }                     always_allow, IPv4
//! set allow6  { type ipv6_addr; flags interval }                     always_allow, IPv6
//! set admit4  { type ipv4_addr . inet_proto . inet_service; flags timeout }   admitted knockers
//! set admit6  { type ipv6_addr . inet_proto . inet_service; flags timeout }
//! chain input { type filter hook input priority filter - 10; policy accept;
//!     ct state established,related accept
//!     meta l4proto . th dport @guarded jump guard }
//! chain guard {
//!     iif "lo" accept
//!     ip saddr @allow4 accept
//!     ip6 saddr @allow6 accept
//!     ip saddr . meta l4proto . th dport @admit4 accept
//!     ip6 saddr . meta l4proto . th dport @admit6 accept
//!     drop }
//! ```
//!
//! Every command that removes something is preceded by one that adds it (an `add` of what
//! exists changes nothing), so a removal never fails because the kernel got there first (an
//! element that just timed out, a table already gone): nft's usual idiom for idempotent
//! transactions.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use nftables::expr::{
    Elem, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, CT,
};
use nftables::schema::{
    Chain, Element, FlushObject, NfCmd, NfListObject, NfObject, Rule, Set, SetFlag, SetType,
    SetTypeValue, Table,
};
use nftables::stmt::{Accept, JumpTarget, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::spec::{Admit, Checked, Proto};

pub const SET_GUARDED: &str = "guarded";
pub const SET_ALLOW4: &str = "allow4";
pub const SET_ALLOW6: &str = "allow6";
pub const SET_ADMIT4: &str = "admit4";
pub const SET_ADMIT6: &str = "admit6";
pub const CHAIN_INPUT: &str = "input";
pub const CHAIN_GUARD: &str = "guard";

/// The base chain's priority: `filter - 10`, so the guard runs before the usual filter
/// chains (iptables-nft, ufw, firewalld and most hand-written tables sit at `filter`, 0, or
/// later). See docs/firewall.md for what that does and does not mean.
pub const PRIORITY: i32 = -10;

type Obj = NfObject<'static>;

fn cmd(c: NfCmd<'static>) -> Obj {
    NfObject::CmdObject(c)
}

fn s(v: &str) -> Cow<'static, str> {
    Cow::Owned(v.to_string())
}

pub(crate) fn table(name: &str) -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: s(name),
        handle: None,
    }
}

/// The five sets with the types and flags of the layout (no elements).
pub(crate) fn sets(table: &str) -> Vec<Set<'static>> {
    use SetType::{InetProto, InetService, Ipv4Addr, Ipv6Addr};
    let set = |name: &str, ty: SetTypeValue<'static>, flag: Option<SetFlag>| Set {
        family: NfFamily::INet,
        table: s(table),
        name: s(name),
        handle: None,
        set_type: ty,
        policy: None,
        flags: flag.map(|f| HashSet::from([f])),
        elem: None,
        timeout: None,
        gc_interval: None,
        size: None,
        comment: None,
    };
    let concat = |t: &[SetType]| SetTypeValue::Concatenated(Cow::Owned(t.to_vec()));
    vec![
        set(SET_GUARDED, concat(&[InetProto, InetService]), None),
        set(
            SET_ALLOW4,
            SetTypeValue::Single(Ipv4Addr),
            Some(SetFlag::Interval),
        ),
        set(
            SET_ALLOW6,
            SetTypeValue::Single(Ipv6Addr),
            Some(SetFlag::Interval),
        ),
        set(
            SET_ADMIT4,
            concat(&[Ipv4Addr, InetProto, InetService]),
            Some(SetFlag::Timeout),
        ),
        set(
            SET_ADMIT6,
            concat(&[Ipv6Addr, InetProto, InetService]),
            Some(SetFlag::Timeout),
        ),
    ]
}

fn chain(table: &str, name: &str) -> Chain<'static> {
    Chain {
        family: NfFamily::INet,
        table: s(table),
        name: s(name),
        newname: None,
        handle: None,
        _type: None,
        hook: None,
        prio: None,
        dev: None,
        policy: None,
    }
}

fn base_chain(table: &str) -> Chain<'static> {
    Chain {
        _type: Some(NfChainType::Filter),
        hook: Some(NfHook::Input),
        prio: Some(PRIORITY),
        policy: Some(NfChainPolicy::Accept),
        ..chain(table, CHAIN_INPUT)
    }
}

fn element(table: &str, set: &str, elem: Vec<Expression<'static>>) -> NfListObject<'static> {
    NfListObject::Element(Element {
        family: NfFamily::INet,
        table: s(table),
        name: s(set),
        elem: Cow::Owned(elem),
    })
}

fn payload(protocol: &str, field: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: s(protocol),
            field: s(field),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn concat(parts: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(parts))
}

fn is(left: Expression<'static>, right: Expression<'static>, op: Operator) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn in_set(left: Expression<'static>, set: &str) -> Statement<'static> {
    is(
        left,
        Expression::String(Cow::Owned(format!("@{set}"))),
        Operator::EQ,
    )
}

fn accept() -> Statement<'static> {
    Statement::Accept(None::<Accept>)
}

fn rule(table: &str, chain: &str, expr: Vec<Statement<'static>>) -> Obj {
    cmd(NfCmd::Add(NfListObject::Rule(Rule {
        family: NfFamily::INet,
        table: s(table),
        chain: s(chain),
        expr: Cow::Owned(expr),
        handle: None,
        index: None,
        comment: None,
    })))
}

/// The two chains and their rules, in order.
fn chains_and_rules(table: &str) -> Vec<Obj> {
    let l4 = || meta(MetaKey::L4proto);
    let dport = || payload("th", "dport");
    let ct_state = Expression::Named(NamedExpression::CT(CT {
        key: s("state"),
        family: None,
        dir: None,
    }));
    let established = Expression::List(vec![
        Expression::String(s("established")),
        Expression::String(s("related")),
    ]);
    vec![
        cmd(NfCmd::Add(NfListObject::Chain(chain(table, CHAIN_GUARD)))),
        cmd(NfCmd::Add(NfListObject::Chain(base_chain(table)))),
        rule(
            table,
            CHAIN_INPUT,
            vec![is(ct_state, established, Operator::IN), accept()],
        ),
        rule(
            table,
            CHAIN_INPUT,
            vec![
                in_set(concat(vec![l4(), dport()]), SET_GUARDED),
                Statement::Jump(JumpTarget {
                    target: s(CHAIN_GUARD),
                }),
            ],
        ),
        rule(
            table,
            CHAIN_GUARD,
            vec![
                is(
                    meta(MetaKey::Iif),
                    Expression::String(s("lo")),
                    Operator::EQ,
                ),
                accept(),
            ],
        ),
        rule(
            table,
            CHAIN_GUARD,
            vec![in_set(payload("ip", "saddr"), SET_ALLOW4), accept()],
        ),
        rule(
            table,
            CHAIN_GUARD,
            vec![in_set(payload("ip6", "saddr"), SET_ALLOW6), accept()],
        ),
        rule(
            table,
            CHAIN_GUARD,
            vec![
                in_set(
                    concat(vec![payload("ip", "saddr"), l4(), dport()]),
                    SET_ADMIT4,
                ),
                accept(),
            ],
        ),
        rule(
            table,
            CHAIN_GUARD,
            vec![
                in_set(
                    concat(vec![payload("ip6", "saddr"), l4(), dport()]),
                    SET_ADMIT6,
                ),
                accept(),
            ],
        ),
        rule(table, CHAIN_GUARD, vec![Statement::Drop(None)]),
    ]
}

/// The elements of the guarded and always-allow sets (none when a list is empty: nft
/// refuses an `add element` without elements).
fn spec_elements(c: &Checked) -> Vec<Obj> {
    let prefix = |addr: String, len: u8| {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(Cow::Owned(addr))),
            len: u32::from(len),
        }))
    };
    let guarded: Vec<_> = c
        .guarded
        .iter()
        .map(|&(proto, port)| {
            concat(vec![
                Expression::String(s(proto.name())),
                Expression::Number(u32::from(port)),
            ])
        })
        .collect();
    let allow4: Vec<_> = c
        .allow4
        .iter()
        .map(|&(a, l)| prefix(a.to_string(), l))
        .collect();
    let allow6: Vec<_> = c
        .allow6
        .iter()
        .map(|&(a, l)| prefix(a.to_string(), l))
        .collect();
    [
        (SET_GUARDED, guarded),
        (SET_ALLOW4, allow4),
        (SET_ALLOW6, allow6),
    ]
    .into_iter()
    .filter(|(_, e)| !e.is_empty())
    .map(|(set, e)| cmd(NfCmd::Add(element(&c.table, set, e))))
    .collect()
}

/// A fresh table: everything in the layout, with the spec's elements.
pub(crate) fn create(c: &Checked) -> Vec<Obj> {
    let mut out = vec![cmd(NfCmd::Add(NfListObject::Table(table(&c.table))))];
    out.extend(
        sets(&c.table)
            .into_iter()
            .map(|set| cmd(NfCmd::Add(NfListObject::Set(Box::new(set))))),
    );
    out.extend(spec_elements(c));
    out.extend(chains_and_rules(&c.table));
    out
}

/// An existing table of the right shape brought to the spec while the admitted sets, and so
/// every admission with its exact kernel timeout, stay untouched: the chains are deleted
/// and re-created (a new priority takes effect), the guarded and always-allow sets flushed
/// and refilled.
pub(crate) fn update(c: &Checked) -> Vec<Obj> {
    let t = c.table.as_str();
    let mut out = vec![cmd(NfCmd::Add(NfListObject::Table(table(t))))];
    for set in sets(t) {
        out.push(cmd(NfCmd::Add(NfListObject::Set(Box::new(set)))));
    }
    // The base chain goes first: its jump is the guard chain's only reference.
    out.push(cmd(NfCmd::Add(NfListObject::Chain(chain(t, CHAIN_INPUT)))));
    out.push(cmd(NfCmd::Delete(NfListObject::Chain(chain(
        t,
        CHAIN_INPUT,
    )))));
    out.push(cmd(NfCmd::Add(NfListObject::Chain(chain(t, CHAIN_GUARD)))));
    out.push(cmd(NfCmd::Flush(FlushObject::Chain(chain(t, CHAIN_GUARD)))));
    out.push(cmd(NfCmd::Delete(NfListObject::Chain(chain(
        t,
        CHAIN_GUARD,
    )))));
    for set in sets(t) {
        if [SET_GUARDED, SET_ALLOW4, SET_ALLOW6].contains(&&*set.name) {
            out.push(cmd(NfCmd::Flush(FlushObject::Set(Box::new(set)))));
        }
    }
    out.extend(spec_elements(c));
    out.extend(chains_and_rules(t));
    out
}

/// The table replaced whole (it had a shape of its own: other objects, sets of other
/// types, flags), with `keep` re-admitted.
pub(crate) fn replace(c: &Checked, keep: &[Admit]) -> Vec<Obj> {
    let mut out = remove(&c.table);
    out.extend(create(c));
    out.extend(keep.iter().flat_map(|a| admit(&c.table, a)));
    out
}

/// Delete the table; nothing to do when it is not there.
pub(crate) fn remove(table_name: &str) -> Vec<Obj> {
    vec![
        cmd(NfCmd::Add(NfListObject::Table(table(table_name)))),
        cmd(NfCmd::Delete(NfListObject::Table(table(table_name)))),
    ]
}

/// Ask for the table's listing.
pub(crate) fn list(table_name: &str) -> Vec<Obj> {
    vec![cmd(NfCmd::List(NfListObject::Table(table(table_name))))]
}

/// The set an address's admissions live in.
pub(crate) fn admit_set(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        SET_ADMIT4
    } else {
        SET_ADMIT6
    }
}

/// The element key: address . protocol . port.
pub(crate) fn key(addr: IpAddr, proto: Proto, port: u16) -> Expression<'static> {
    concat(vec![
        Expression::String(Cow::Owned(addr.to_string())),
        Expression::String(s(proto.name())),
        Expression::Number(u32::from(port)),
    ])
}

fn timed(val: Expression<'static>, secs: u32) -> Expression<'static> {
    Expression::Named(NamedExpression::Elem(Elem {
        val: Box::new(val),
        timeout: Some(secs),
        expires: None,
        comment: None,
        counter: None,
    }))
}

/// A timeout in whole seconds as nft's JSON takes it, rounded up (an admission never ends
/// before its time), at least 1 (0 would mean "no timeout").
pub(crate) fn timeout_secs(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

/// Admit (or re-admit) one key: add, delete, add. The element's timeout becomes exactly the
/// new one whether or not it existed, on every kernel (older ones ignore a second `add`'s
/// timeout; newer ones take it).
pub(crate) fn admit(table: &str, a: &Admit) -> [Obj; 3] {
    let set = admit_set(a.addr);
    let k = key(a.addr, a.proto, a.port);
    let secs = timeout_secs(a.timeout);
    [
        cmd(NfCmd::Add(element(
            table,
            set,
            vec![timed(k.clone(), secs)],
        ))),
        cmd(NfCmd::Delete(element(table, set, vec![k.clone()]))),
        cmd(NfCmd::Add(element(table, set, vec![timed(k, secs)]))),
    ]
}

/// Remove one element of `set` by its value, whether or not it is still there.
pub(crate) fn delete(table: &str, set: &str, val: Expression<'static>) -> [Obj; 2] {
    [
        cmd(NfCmd::Add(element(table, set, vec![timed(val.clone(), 1)]))),
        cmd(NfCmd::Delete(element(table, set, vec![val]))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Spec;
    use nftables::schema::Nftables;
    use serde_json::{json, Value};

    fn doc(objects: Vec<Obj>) -> Value {
        serde_json::to_value(Nftables {
            objects: Cow::Owned(objects),
        })
        .unwrap()
    }

    fn checked() -> Checked {
        Spec {
            table: "kw".into(),
            always_allow: vec![
                ("192.0.2.0".parse().unwrap(), 24),
                ("2001:db8::".parse().unwrap(), 32),
            ],
            guarded: vec![(Proto::Tcp, 22), (Proto::Udp, 53)],
        }
        .check()
        .unwrap()
    }

    fn set_json(name: &str, ty: Value, flags: Option<&str>) -> Value {
        let mut v = json!({"set": {"family": "inet", "table": "kw", "name": name, "type": ty}});
        if let Some(f) = flags {
            v["set"]["flags"] = json!([f]);
        }
        json!({ "add": v })
    }

    fn rule_json(chain: &str, expr: Value) -> Value {
        json!({"add": {"rule": {"family": "inet", "table": "kw", "chain": chain, "expr": expr}}})
    }

    fn lookup(left: Value, set: &str) -> Value {
        json!({"match": {"left": left, "right": format!("@{set}"), "op": "=="}})
    }

    fn admit_key(proto: &str) -> Value {
        json!({"concat": [{"payload": {"protocol": proto, "field": "saddr"}},
            {"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]})
    }

    /// The whole fresh table, as nft receives it.
    #[test]
    fn golden_fresh_table() {
        let elem = |set: &str, e: Value| json!({"add": {"element": {"family": "inet", "table": "kw", "name": set, "elem": e}}});
        let expected = json!({"nftables": [
            {"add": {"table": {"family": "inet", "name": "kw"}}},
            set_json("guarded", json!(["inet_proto", "inet_service"]), None),
            set_json("allow4", json!("ipv4_addr"), Some("interval")),
            set_json("allow6", json!("ipv6_addr"), Some("interval")),
            set_json("admit4", json!(["ipv4_addr", "inet_proto", "inet_service"]), Some("timeout")),
            set_json("admit6", json!(["ipv6_addr", "inet_proto", "inet_service"]), Some("timeout")),
            elem("guarded", json!([{"concat": ["tcp", 22]}, {"concat": ["udp", 53]}])),
            elem("allow4", json!([{"prefix": {"addr": "192.0.2.0", "len": 24}}])),
            elem("allow6", json!([{"prefix": {"addr": "2001:db8::", "len": 32}}])),
            {"add": {"chain": {"family": "inet", "table": "kw", "name": "guard"}}},
            {"add": {"chain": {"family": "inet", "table": "kw", "name": "input", "type": "filter",
                "hook": "input", "prio": -10, "policy": "accept"}}},
            rule_json("input", json!([
                {"match": {"left": {"ct": {"key": "state"}}, "right": ["established", "related"], "op": "in"}},
                {"accept": null}])),
            rule_json("input", json!([
                lookup(json!({"concat": [{"meta": {"key": "l4proto"}},
                    {"payload": {"protocol": "th", "field": "dport"}}]}), "guarded"),
                {"jump": {"target": "guard"}}])),
            rule_json("guard", json!([
                {"match": {"left": {"meta": {"key": "iif"}}, "right": "lo", "op": "=="}},
                {"accept": null}])),
            rule_json("guard", json!([
                lookup(json!({"payload": {"protocol": "ip", "field": "saddr"}}), "allow4"),
                {"accept": null}])),
            rule_json("guard", json!([
                lookup(json!({"payload": {"protocol": "ip6", "field": "saddr"}}), "allow6"),
                {"accept": null}])),
            rule_json("guard", json!([lookup(admit_key("ip"), "admit4"), {"accept": null}])),
            rule_json("guard", json!([lookup(admit_key("ip6"), "admit6"), {"accept": null}])),
            rule_json("guard", json!([{"drop": null}])),
        ]});
        assert_eq!(doc(create(&checked())), expected);
    }

    #[test]
    fn empty_lists_add_no_elements() {
        let c = Spec {
            table: "kw".into(),
            ..Spec::default()
        }
        .check()
        .unwrap();
        let v = doc(create(&c));
        assert!(v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["add"].get("element").is_none()));
    }

    /// An update keeps the admitted sets: it neither deletes nor flushes them.
    #[test]
    fn update_rebuilds_rules_and_keeps_admitted_sets() {
        let v = doc(update(&checked()));
        let ops: Vec<String> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let (op, obj) = o.as_object().unwrap().iter().next().unwrap();
                let (kind, body) = obj.as_object().unwrap().iter().next().unwrap();
                format!("{op} {kind} {}", body["name"].as_str().unwrap_or(""))
            })
            .collect();
        for kept in ["admit4", "admit6"] {
            assert!(
                !ops.iter()
                    .any(|o| (o.starts_with("delete") || o.starts_with("flush"))
                        && o.ends_with(kept)),
                "{ops:?}"
            );
        }
        let pos = |s: &str| ops.iter().position(|o| o == s).unwrap();
        assert!(pos("delete chain input") < pos("delete chain guard"));
        assert!(pos("flush set allow4") < pos("add element allow4"));
        assert_eq!(ops.last().unwrap(), "add rule ");
    }

    #[test]
    fn admission_is_add_delete_add_with_whole_seconds() {
        let a = Admit {
            addr: "fd00:4b57::2".parse().unwrap(),
            proto: Proto::Tcp,
            port: 22,
            timeout: Duration::from_millis(2_001),
        };
        let key = json!({"concat": ["fd00:4b57::2", "tcp", 22]});
        let timed = json!([{"elem": {"val": key, "timeout": 3, "expires": null,
            "comment": null, "counter": null}}]);
        let el = |e: &Value| json!({"family": "inet", "table": "kw", "name": "admit6", "elem": e});
        assert_eq!(
            doc(admit("kw", &a).to_vec()),
            json!({"nftables": [{"add": {"element": el(&timed)}},
                {"delete": {"element": el(&json!([key]))}},
                {"add": {"element": el(&timed)}}]})
        );
    }

    #[test]
    fn timeouts_round_up_and_never_reach_zero() {
        assert_eq!(timeout_secs(Duration::ZERO), 1);
        assert_eq!(timeout_secs(Duration::from_millis(1)), 1);
        assert_eq!(timeout_secs(Duration::from_secs(3)), 3);
        assert_eq!(timeout_secs(Duration::from_millis(3_001)), 4);
        assert_eq!(timeout_secs(Duration::from_secs(u64::MAX)), u32::MAX);
    }

    #[test]
    fn remove_is_add_then_delete() {
        assert_eq!(
            doc(remove("kw")),
            json!({"nftables": [{"add": {"table": {"family": "inet", "name": "kw"}}},
                {"delete": {"table": {"family": "inet", "name": "kw"}}}]})
        );
    }
}
