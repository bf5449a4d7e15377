//! The hosts_access checks, on the files' bytes: evaluated with the same engine as
//! `knockwrap match` (`hosts_access::eval`), never by grepping, so a rule counts exactly when
//! libwrap would apply it.
//!
//! The probes are documentation addresses (192.0.2.1, 2001:db8::1): the daemon never grants
//! them, so no managed line can name them and they stand for "a client that never knocked".

use std::net::IpAddr;

use hosts_access::edit::{self, ManagedLine};
use hosts_access::eval::{evaluate, Request, Table, Verdict};

pub fn probes() -> [IpAddr; 2] {
    [
        "192.0.2.1".parse().expect("v4"),
        "2001:db8::1".parse().expect("v6"),
    ]
}

/// Why hosts.deny does not keep a client that never knocked away from `service`, judged with
/// an empty hosts.allow (what hosts.deny does on its own); `None` when it does.
pub fn deny_default(deny: &[u8], service: &str) -> Option<String> {
    for probe in probes() {
        let d = evaluate(b"", deny, &Request::new(service, probe));
        if d.verdict == Verdict::Granted {
            return Some(format!(
                "hosts.deny does not deny `{service}` to {probe}, a client that never knocked: {}",
                d.reason
            ));
        }
    }
    None
}

/// Rules of hosts.allow that decide before knockwrap's lines: one that grants `service` to
/// every client (the managed lines change nothing), or one that refuses or hands off a client
/// that has a managed line (it is never let in).
pub fn shadowing(allow: &[u8], deny: &[u8], service: &str) -> Vec<String> {
    let mut out = Vec::new();
    for probe in probes() {
        let d = evaluate(allow, deny, &Request::new(service, probe));
        if d.verdict == Verdict::Granted && d.table == Some(Table::Allow) {
            out.push(format!(
                "hosts.allow line {} grants `{service}` to {probe}, a client that never \
                 knocked: knocking changes nothing ({})",
                d.line.unwrap_or(0),
                d.reason
            ));
            break;
        }
        let Ok(line) = ManagedLine::new(service, probe) else {
            continue;
        };
        let with = edit::add(allow, &line).unwrap_or_else(|| allow.to_vec());
        let d = evaluate(&with, deny, &Request::new(service, probe));
        if d.verdict != Verdict::Granted {
            out.push(format!(
                "a knocker with the line `{}` is {} by {}: {}",
                line.text(),
                d.verdict,
                match (d.table, d.line) {
                    (Some(t), Some(n)) =>
                        format!("{} line {n}, before the managed lines", t.file_name()),
                    _ => "the files as a whole".into(),
                },
                d.reason
            ));
            break;
        }
    }
    out
}

/// True when hosts.allow has a rule for `service` (or ALL) other than single-address lines of
/// the managed form: a standing way in (a console or management network, LOCAL, ...).
pub fn has_standing_rule(allow: &[u8], service: &str) -> bool {
    let text = String::from_utf8_lossy(allow);
    text.lines().any(|l| {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            return false;
        }
        let Some((daemons, rest)) = l.split_once(':') else {
            return false;
        };
        let for_service = daemons
            .split([',', ' ', '\t'])
            .any(|d| d.eq_ignore_ascii_case(service) || d.eq_ignore_ascii_case("ALL"));
        let client = rest.trim();
        let managed_form = client
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok();
        for_service && !managed_form
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_default_uses_the_engine() {
        assert!(deny_default(b"sshd: ALL\n", "sshd").is_none());
        assert!(deny_default(b"ALL: ALL\n", "SSHD").is_none());
        assert!(
            deny_default(b"SSHD : ALL\n", "sshd").is_none(),
            "daemon names are case-insensitive"
        );
        assert!(deny_default(b"", "sshd").is_some());
        assert!(deny_default(b"ftpd: ALL\n", "sshd").is_some());
        assert!(deny_default(b"sshd: ALL EXCEPT 192.0.2.1\n", "sshd").is_some());
        // A comment that looks like a rule is no rule.
        assert!(deny_default(b"# sshd: ALL\n", "sshd").is_some());
    }

    #[test]
    fn shadowing_rules() {
        let deny = b"ALL: ALL\n";
        assert!(shadowing(b"", deny, "sshd").is_empty());
        assert!(shadowing(b"sshd: 10.0.0.0/8\n", deny, "sshd").is_empty());
        let s = shadowing(b"sshd: ALL\n", deny, "sshd");
        assert!(s[0].contains("line 1 grants"), "{s:?}");
        let s = shadowing(b"sshd: ALL: deny\n", deny, "sshd");
        assert!(s[0].contains("denied by hosts.allow line 1"), "{s:?}");
        let s = shadowing(b"ALL: ALL: twist /bin/false\n", deny, "sshd");
        assert!(s[0].contains("delegated"), "{s:?}");
    }

    #[test]
    fn standing_rules() {
        assert!(!has_standing_rule(
            b"sshd: 192.0.2.7\nSSHD: [2001:db8::7]\n# sshd: ALL\n",
            "sshd"
        ));
        assert!(has_standing_rule(b"sshd: 192.168.1.0/24\n", "sshd"));
        assert!(has_standing_rule(b"ALL: LOCAL\n", "sshd"));
        assert!(!has_standing_rule(b"ftpd: 10.0.0.0/8\n", "sshd"));
    }
}
