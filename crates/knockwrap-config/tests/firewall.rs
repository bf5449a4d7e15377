//! The firewall door's keys: `[firewall]` (`table`, `always_allow`) and per door `open_ports`,
//! `hosts_allow`, `knock_from`: typed values, defaults, an error at the offending value for
//! every mistake, and the lockout warnings.

use std::net::IpAddr;

use knockwrap_config::{
    lockout_warnings, Config, PortSpec, Prefix, SshSession, DEFAULT_FIREWALL_TABLE,
};

const ISSUE_EXAMPLE: &str = r#"
[firewall]                       # optional; knockwrap owns one nftables table, family inet
table = "knockwrap"              # default
always_allow = ["192.0.2.0/24"]  # sources never hidden from guarded ports (office, jump hosts)

[[door]]
name = "openSSH"
sequence = ["7000", "8000", "9000"]
service = "sshd"                 # the hosts.allow line, as today
open_ports = ["22/tcp"]          # also admit the knocker to these ports for the lease
hosts_allow = true               # default; false = firewall only (sshd without libwrap)
lease = "5m"
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn prefix(s: &str) -> Prefix {
    s.parse().unwrap()
}

#[test]
fn the_issues_example() {
    let c = Config::from_toml_str(ISSUE_EXAMPLE, "/etc/knockwrap/knockwrap.toml").unwrap();
    assert_eq!(c.firewall.table, "knockwrap");
    assert_eq!(c.firewall.always_allow, vec![prefix("192.0.2.0/24")]);
    assert!(c.firewall.is_declared());
    assert!(c.firewall.always_allows(ip("192.0.2.200")));
    assert!(!c.firewall.always_allows(ip("198.51.100.1")));
    let d = &c.doors[0];
    assert_eq!(d.open_ports, vec![PortSpec::tcp(22)]);
    assert!(d.hosts_allow);
    assert!(d.door.knock_from.is_empty());
    assert!(d.knock_allowed_from(ip("203.0.113.9")), "empty: anywhere");
    assert_eq!(c.guarded_ports(), vec![PortSpec::tcp(22)]);
}

#[test]
fn defaults_without_a_firewall_table() {
    let text = "[[door]]\nname = \"fw\"\nsequence = [7000, 9000]\nservice = \"sshd\"\n\
                open_ports = [\"22/tcp\", \"60001/UDP\"]\nhosts_allow = false\n\
                knock_from = [\"203.0.113.0/24\", \"2001:db8::/32\", \"198.51.100.7\"]\n";
    let c = Config::from_toml_str(text, "k.toml").unwrap();
    assert_eq!(c.firewall.table, DEFAULT_FIREWALL_TABLE);
    assert!(c.firewall.always_allow.is_empty());
    assert!(!c.firewall.is_declared());
    let d = &c.doors[0];
    assert_eq!(d.open_ports, vec![PortSpec::tcp(22), PortSpec::udp(60001)]);
    assert!(!d.hosts_allow);
    assert_eq!(
        d.door.knock_from,
        vec![
            prefix("203.0.113.0/24"),
            prefix("2001:db8::/32"),
            prefix("198.51.100.7/32")
        ]
    );
    assert!(d.knock_allowed_from(ip("203.0.113.77")));
    assert!(d.knock_allowed_from(ip("2001:db8:1::5")));
    assert!(d.knock_allowed_from(ip("::ffff:198.51.100.7")));
    assert!(!d.knock_allowed_from(ip("198.51.100.8")));
    assert!(!d.knock_allowed_from(ip("2001:db9::1")));

    // Without open_ports nothing is guarded, and the door keeps today's meaning.
    let plain = Config::from_toml_str(
        "[[door]]\nname = \"d\"\nsequence = [7000, 9000]\nservice = \"sshd\"\n",
        "k.toml",
    )
    .unwrap();
    assert!(plain.guarded_ports().is_empty());
    assert!(plain.doors[0].hosts_allow && plain.doors[0].open_ports.is_empty());
}

#[test]
fn guarded_ports_are_the_allow_doors_ports_each_once() {
    let text = "[[door]]\nname = \"a\"\nsequence = [7000, 9000]\nservice = \"sshd\"\n\
                open_ports = [\"2222/tcp\", \"22/tcp\"]\n\
                [[door]]\nname = \"b\"\nsequence = [6000, 8000]\nservice = \"sshd\"\n\
                open_ports = [\"22/tcp\", \"51820/udp\"]\n\
                [[door]]\nname = \"close\"\nsequence = [9000, 7000]\nservice = \"sshd\"\n\
                action = \"revoke\"\nopen_ports = [\"22/tcp\"]\nhosts_allow = false\n";
    let c = Config::from_toml_str(text, "k.toml").unwrap();
    assert_eq!(
        c.guarded_ports(),
        vec![PortSpec::tcp(22), PortSpec::tcp(2222), PortSpec::udp(51820)]
    );
    assert_eq!(c.door("close").unwrap().open_ports, vec![PortSpec::tcp(22)]);
}

fn errors(text: &str) -> Vec<(usize, usize, String)> {
    Config::from_toml_str(text, "k.toml")
        .expect_err(text)
        .0
        .into_iter()
        .map(|e| (e.line, e.column, e.message))
        .collect()
}

/// (line, column, part of the message) of one expected error.
type Want = (usize, usize, &'static str);

const DOOR: &str = "[[door]]\nname = \"d\"\nsequence = [7000, 9000]\nservice = \"sshd\"\n";

#[test]
fn every_mistake_is_reported_at_its_value() {
    let cases: Vec<(String, Vec<Want>)> = vec![
        (
            "[firewall]\ntable = \"2kw\"\n".into(),
            vec![(2, 9, "ASCII letter")],
        ),
        (
            "[firewall]\ntable = \"kw-table\"\n".into(),
            vec![(2, 9, "not `kw-table`")],
        ),
        (
            format!("[firewall]\ntable = \"{}\"\n", "k".repeat(65)),
            vec![(2, 9, "at most 64")],
        ),
        (
            "[firewall]\ntable = \"\"\n".into(),
            vec![(2, 9, "ASCII letter")],
        ),
        (
            "[firewall]\nchain = \"input\"\n".into(),
            vec![(2, 1, "unknown field `chain`")],
        ),
        (
            "[firewall]\nalways_allow = \"192.0.2.0/24\"\n".into(),
            vec![(2, 16, "invalid type")],
        ),
        (
            "[firewall]\nalways_allow = [\"192.0.2.0/24\", \"office\", \"10.0.0.1/8\", \"10.0.0.0/33\"]\n".into(),
            vec![
                (2, 33, "`always_allow`: `office` is not an IPv4 or IPv6 address"),
                (2, 43, "write the network `10.0.0.0/8` or the host `10.0.0.1/32`"),
                (2, 57, "prefix length `33`"),
            ],
        ),
        (
            "[firewall]\nalways_allow = [\"::ffff:192.0.2.1\"]\n".into(),
            vec![(2, 17, "IPv4-mapped")],
        ),
        (
            format!("{DOOR}open_ports = [22]\n"),
            vec![(5, 15, "entry 22 needs its protocol: write \"22/tcp\" or \"22/udp\"")],
        ),
        (
            format!("{DOOR}open_ports = [\"22\", \"0/tcp\", \"22/icmp\", \"ssh/tcp\"]\n"),
            vec![
                (5, 15, "`22` needs its protocol"),
                (5, 21, "port `0`"),
                (5, 30, "unknown protocol `icmp`"),
                (5, 41, "port `ssh`"),
            ],
        ),
        (
            format!("{DOOR}open_ports = [\"22/tcp\", \"53/udp\",\n  \"22/TCP\"]\n"),
            vec![(6, 3, "names 22/tcp twice (first at line 5)")],
        ),
        (
            format!("{DOOR}open_ports = \"22/tcp\"\n"),
            vec![(5, 14, "invalid type")],
        ),
        (
            format!("{DOOR}hosts_allow = false\n"),
            vec![(5, 15, "`hosts_allow = false` leaves this door nothing to do")],
        ),
        (
            format!("{DOOR}hosts_allow = false\nopen_ports = []\n"),
            vec![(5, 15, "give it `open_ports`")],
        ),
        (
            format!("{DOOR}hosts_allow = \"no\"\n"),
            vec![(5, 15, "expected a boolean")],
        ),
        (
            format!("{DOOR}knock_from = [\"203.0.113.0/24\", \"203.0.113.1/24\", \"2001:db8::/129\", \"*\"]\n"),
            vec![
                (5, 33, "`knock_from`: `203.0.113.1/24` has bits set"),
                (5, 51, "prefix length `129`"),
                (5, 69, "`*` is not an IPv4 or IPv6 address"),
            ],
        ),
        (
            format!(
                "{DOOR}open_ports = [\"22/tcp\"]\n[[door]]\nname = \"c\"\nsequence = [9000, 7000]\n\
                 service = \"sshd\"\naction = \"revoke\"\nopen_ports = [\"22/tcp\", \"443/tcp\"]\n"
            ),
            vec![(11, 25, "no allow door opens 443/tcp")],
        ),
    ];
    for (text, want) in cases {
        let got = errors(&text);
        assert_eq!(got.len(), want.len(), "{text}\n{got:?}");
        for ((line, col, msg), (wl, wc, wm)) in got.iter().zip(&want) {
            assert_eq!((line, col), (wl, wc), "{text}\n{msg}");
            assert!(msg.contains(wm), "{text}\nmessage {msg:?} lacks {wm:?}");
        }
    }
}

fn warnings(text: &str, session: Option<&str>) -> Vec<(usize, usize, &'static str, String)> {
    let c = Config::from_toml_str(text, "/etc/kw.toml").unwrap();
    let s = session.map(|v| SshSession::parse(v).expect(v));
    lockout_warnings(&c, s.as_ref())
        .into_iter()
        .map(|w| (w.line, w.column, w.code, w.message))
        .collect()
}

#[test]
fn lockout_warnings_name_the_risk_at_a_line() {
    let guarded = format!("{DOOR}open_ports = [\"22/tcp\"]\n");
    // No [firewall]: no always_allow, pointed at the door's open_ports.
    let w = warnings(&guarded, None);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        (w[0].0, w[0].1, w[0].2),
        (5, 14, "firewall-no-always-allow")
    );
    assert!(w[0].3.contains("22/tcp"), "{}", w[0].3);

    // The session's client is not covered: a second warning, at the [firewall] table.
    let text = format!("[firewall]\ntable = \"kw\"\n{guarded}");
    let w = warnings(&text, Some("198.51.100.7 50122 192.0.2.1 22"));
    let codes: Vec<_> = w.iter().map(|w| (w.0, w.1, w.2)).collect();
    assert_eq!(
        codes,
        vec![
            (1, 1, "firewall-no-always-allow"),
            (1, 1, "firewall-locks-out-session")
        ],
        "{w:?}"
    );
    assert!(
        w[1].3.contains("198.51.100.7") && w[1].3.contains("door `d`"),
        "{}",
        w[1].3
    );

    // always_allow covers the session: nothing to say.
    let text = format!("[firewall]\nalways_allow = [\"198.51.100.0/24\"]\n{guarded}");
    assert!(warnings(&text, Some("198.51.100.7 50122 192.0.2.1 22")).is_empty());
    // ... also when sshd reports the client IPv4-mapped.
    assert!(warnings(&text, Some("::ffff:198.51.100.7 50122 ::ffff:192.0.2.1 22")).is_empty());
    // Not covered: at the always_allow value.
    let w = warnings(&text, Some("203.0.113.5 50122 192.0.2.1 22"));
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        (w[0].0, w[0].1, w[0].2),
        (2, 16, "firewall-locks-out-session")
    );
    // A session on a port nobody guards is not at risk.
    assert!(warnings(&text, Some("203.0.113.5 50122 192.0.2.1 2222")).is_empty());
    // A session on the guarded port sshd also listens on.
    let text =
        format!("[firewall]\nalways_allow = [\"10.0.0.0/8\"]\n{DOOR}open_ports = [\"2222/tcp\"]\n");
    let w = warnings(&text, Some("203.0.113.5 50122 192.0.2.1 2222"));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].3.contains("port 2222"), "{}", w[0].3);
    // A UDP port of the same number is not the session's.
    let text =
        format!("[firewall]\nalways_allow = [\"10.0.0.0/8\"]\n{DOOR}open_ports = [\"22/udp\"]\n");
    assert!(warnings(&text, Some("203.0.113.5 50122 192.0.2.1 22")).is_empty());
}

#[test]
fn a_firewall_table_without_guarded_ports_is_pointed_out() {
    let w = warnings(
        &format!("[firewall]\nalways_allow = [\"10.0.0.0/8\"]\n{DOOR}"),
        None,
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!((w[0].0, w[0].1, w[0].2), (1, 1, "firewall-unused"));
    // A revoke door's ports guard nothing by themselves (and must match an allow door's).
    assert!(warnings(DOOR, Some("203.0.113.5 1 192.0.2.1 22")).is_empty());
}
