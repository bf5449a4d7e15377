//! `Config::from_toml_str`: the SPEC example, defaults, and a diagnostic at the right
//! line:column for every kind of mistake.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use knock_match::{Action, DoorKind, Step, TcpFlagRules, TotpParams};
use knockwrap_config::{Config, LogTarget};

const SPEC_EXAMPLE: &str = r#"
interface   = "eth0"                 # or a list: ["eth0", "eth1"]
hosts_allow = "/etc/hosts.allow"     # the file the writer manages
state_dir   = "/var/lib/knockwrap"   # leases, one-time-sequence progress
log         = "syslog"               # "syslog" | "stderr" | a file path
backup      = true                   # keep <hosts_allow>.bak (previous version)

[[door]]
name        = "openSSH"
sequence    = ["7000", "8000:tcp", "9000:udp"]
seq_timeout = "10s"
tcp_flags   = ["syn"]
action      = "allow"
service     = "SSHD"
lease       = "1h"
target      = "203.0.113.5"

[[door]]
name        = "totpSSH"
totp_secret_file = "/etc/knockwrap/totp.key"
totp_length = 4
totp_ports  = "20000-40000"
totp_step   = "30s"
action      = "allow"
service     = "SSHD"
lease       = "15m"

[[door]]
name     = "closeSSH"
sequence = ["9000", "8000", "7000"]
action   = "revoke"
service  = "SSHD"

[[door]]
name = "otp"
one_time_sequences = "open.otp"
service = "SSHD"
"#;

#[test]
fn spec_example() {
    let c = Config::from_toml_str(SPEC_EXAMPLE, "/etc/knockwrap/knockwrap.toml").unwrap();
    assert_eq!(c.interfaces, vec!["eth0"]);
    assert_eq!(c.hosts_allow, PathBuf::from("/etc/hosts.allow"));
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/knockwrap"));
    assert_eq!(c.log, LogTarget::Syslog);
    assert!(c.backup);
    assert_eq!(c.max_sources, 65_536);
    assert_eq!(c.doors.len(), 4);

    let open = &c.doors[0];
    assert_eq!(open.line, 8);
    let d = &open.door;
    assert_eq!(d.name, "openSSH");
    assert_eq!(
        d.kind,
        DoorKind::Static {
            steps: vec![Step::tcp(7000), Step::tcp(8000), Step::udp(9000)]
        }
    );
    assert_eq!(d.seq_timeout, Duration::from_secs(10));
    assert_eq!(d.tcp_flags, TcpFlagRules::parse_list(["syn"]).unwrap());
    assert_eq!(d.action, Action::Allow);
    assert_eq!(d.service, "SSHD");
    assert_eq!(d.lease, Some(Duration::from_secs(3600)));
    assert_eq!(d.target, Some("203.0.113.5".parse::<IpAddr>().unwrap()));
    assert!(!open.needs_files());

    let totp = &c.doors[1];
    assert!(totp.needs_files());
    assert_eq!(
        totp.totp_secret_file,
        Some(PathBuf::from("/etc/knockwrap/totp.key"))
    );
    match &totp.door.kind {
        DoorKind::Totp(TotpParams {
            length,
            lo,
            hi,
            step,
            ..
        }) => {
            assert_eq!(
                (*length, *lo, *hi, *step),
                (4, 20000, 40000, Duration::from_secs(30))
            );
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(totp.door.lease, Some(Duration::from_secs(900)));

    let close = &c.doors[2].door;
    assert_eq!(close.action, Action::Revoke);
    assert_eq!(close.lease, None);
    assert_eq!(
        close.seq_timeout,
        Duration::from_secs(25),
        "knockd's default"
    );
    assert!(close.tcp_flags.is_none());

    // Relative paths are relative to the configuration's directory.
    assert_eq!(
        c.doors[3].one_time_file,
        Some(PathBuf::from("/etc/knockwrap/open.otp"))
    );
    assert_eq!(c.doors[3].door.action, Action::Allow);
}

#[test]
fn defaults_and_alternative_forms() {
    let text = r#"
interface = ["eth0", "eth1"]
hosts_allow = "hosts.allow"
state_dir = "state"
log = "logs/knockwrap.log"
backup = false
max_sources = 1000

[[door]]
name = "d"
sequence = [7000, "8000:UDP", " 9000 : tcp "]
seq_timeout = 15
tcp_flags = "syn,!ack"
service = "sshd"
lease = "1h30m"
target = "fd00:4b57::1"
"#;
    let c = Config::from_toml_str(text, "/srv/kw/knockwrap.toml").unwrap();
    assert_eq!(c.interfaces, vec!["eth0", "eth1"]);
    assert_eq!(c.hosts_allow, PathBuf::from("/srv/kw/hosts.allow"));
    assert_eq!(c.state_dir, PathBuf::from("/srv/kw/state"));
    assert_eq!(c.log, LogTarget::File("/srv/kw/logs/knockwrap.log".into()));
    assert!(!c.backup);
    assert_eq!(c.max_sources, 1000);
    let d = &c.doors[0].door;
    assert_eq!(
        d.kind,
        DoorKind::Static {
            steps: vec![Step::tcp(7000), Step::udp(8000), Step::tcp(9000)]
        }
    );
    assert_eq!(d.seq_timeout, Duration::from_secs(15));
    assert_eq!(
        d.tcp_flags,
        TcpFlagRules::parse_list(["syn", "!ack"]).unwrap()
    );
    assert_eq!(d.lease, Some(Duration::from_secs(5400)));

    let empty = Config::from_toml_str("", "k.toml").unwrap();
    assert!(empty.interfaces.is_empty());
    assert_eq!(empty.hosts_allow, PathBuf::from("/etc/hosts.allow"));
    assert_eq!(empty.log, LogTarget::Syslog);
    assert!(empty.doors.is_empty());
    let stderr = Config::from_toml_str("log = \"stderr\"", "k.toml").unwrap();
    assert_eq!(stderr.log, LogTarget::Stderr);
    assert_eq!(empty.user, None);
    let user = Config::from_toml_str("user = \"_knock-1\"", "k.toml").unwrap();
    assert_eq!(user.user.as_deref(), Some("_knock-1"));
}

fn door(body: &str) -> String {
    format!("[[door]]\nname = \"d\"\nservice = \"SSHD\"\n{body}\n")
}

/// (line, column, part of the message) of one expected error.
type Want = (usize, usize, &'static str);

/// (text, every error expected, in order).
fn error_cases() -> Vec<(String, Vec<Want>)> {
    let s = |t: &str| t.to_string();
    vec![
        (s("interface = \"eth0\"\nbogus = 1\n"), vec![(2, 1, "unknown field `bogus`")]),
        (door("colour = \"red\"\nsequence = [\"1\", \"3\"]"), vec![(4, 1, "unknown field `colour`")]),
        (door("sequence = \"7000\""), vec![(4, 12, "invalid type")]),
        (s("backup = \"yes\"\n"), vec![(1, 10, "expected a boolean")]),
        (s("max_sources = \"many\"\n"), vec![(1, 15, "invalid type")]),
        (s("max_sources = 0\n"), vec![(1, 15, "max_sources")]),
        (s("interface = []\n"), vec![(1, 13, "empty")]),
        (s("interface = \"eth0/x\"\n"), vec![(1, 13, "not a valid interface")]),
        (s("interface = \"averyveryverylongname\"\n"), vec![(1, 13, "1 to 15")]),
        (s("hosts_allow = \"\"\n"), vec![(1, 15, "must not be empty")]),
        (s("user = \"root\"\n"), vec![(1, 8, "unprivileged account")]),
        (s("user = \"a b\"\n"), vec![(1, 8, "unprivileged account")]),
        (s("user = \"\"\n"), vec![(1, 8, "unprivileged account")]),
        (s("[[door]]\nname = \"d\"\nsequence = [\"1\", \"3\"]\n"), vec![(1, 1, "missing field `service`")]),
        (door("sequence = [0]"), vec![(4, 13, "port 0")]),
        (door("sequence = [65536]"), vec![(4, 13, "port 65536")]),
        (door("sequence = [\"1\", \"70000\"]"), vec![(4, 18, "70000")]),
        (door("sequence = [\"1\", \"0:udp\"]"), vec![(4, 18, "port `0`")]),
        (door("sequence = [\"7000:icmp\"]"), vec![(4, 13, "unknown protocol `icmp`")]),
        (door("sequence = [true]"), vec![(4, 13, "invalid type")]),
        (door("sequence = []"), vec![(4, 12, "empty")]),
        (door("sequence = [7000]"), vec![(4, 12, "single-step")]),
        (door("sequence = [7000, 7001, 7002]"), vec![(4, 12, "adjacent ports")]),
        (door("sequence = [\"9002\", \"9001\", \"9000\"]"), vec![(4, 12, "adjacent ports")]),
        (
            door(&format!("sequence = [{}]", (1..=33).map(|p| p.to_string()).collect::<Vec<_>>().join(","))),
            vec![(4, 12, "33 steps")],
        ),
        (door("sequence = [\"1\", \"3\"]\ntcp_flags = [\"syn\", \"sin\"]"), vec![(5, 13, "unknown TCP flag `sin`")]),
        (door("sequence = [\"1\", \"3\"]\ntcp_flags = \"syn,!syn\""), vec![(5, 13, "both required and forbidden")]),
        (door("sequence = [\"1\", \"3\"]\nlease = 0"), vec![(5, 9, "`lease` must be positive")]),
        (door("sequence = [\"1\", \"3\"]\nlease = \"0s\""), vec![(5, 9, "`lease` must be positive")]),
        (door("sequence = [\"1\", \"3\"]\nlease = -5"), vec![(5, 9, "negative")]),
        (door("sequence = [\"1\", \"3\"]\nlease = \"1 hour\""), vec![(5, 9, "not a duration")]),
        (door("sequence = [\"1\", \"3\"]\nseq_timeout = 0"), vec![(5, 15, "`seq_timeout` must be positive")]),
        (door("sequence = [\"1\", \"3\"]\naction = \"open\""), vec![(5, 10, "\"allow\" or \"revoke\"")]),
        (door("sequence = [\"1\", \"3\"]\naction = \"revoke\"\nlease = \"1h\""), vec![(6, 9, "only to doors with action = \"allow\"")]),
        (door("sequence = [\"1\", \"3\"]\ntarget = \"gateway\""), vec![(5, 10, "IP address")]),
        (door("sequence = [\"1\", \"3\"]\none_time_sequences = \"x.otp\""), vec![(5, 22, "cannot be combined with `sequence`")]),
        (
            door("totp_secret_file = \"k\"\ntotp_ports = \"1-9\"\nsequence = [\"1\", \"3\"]"),
            vec![(6, 12, "cannot be combined with `totp_secret_file`")],
        ),
        (door(""), vec![(2, 8, "needs one of `sequence`")]),
        (door("sequence = [\"1\", \"3\"]\ntotp_length = 4"), vec![(5, 15, "only to doors with `totp_secret_file`")]),
        (door("totp_secret_file = \"k\""), vec![(2, 8, "needs `totp_ports")]),
        (door("totp_secret_file = \"k\"\ntotp_ports = \"40000-20000\""), vec![(5, 14, "lo <= hi")]),
        (door("totp_secret_file = \"k\"\ntotp_ports = \"0-20\""), vec![(5, 14, "lo <= hi")]),
        (door("totp_secret_file = \"k\"\ntotp_ports = \"20000\""), vec![(5, 14, "\"lo-hi\"")]),
        (door("totp_secret_file = \"k\"\ntotp_ports = \"1-9\"\ntotp_length = 1"), vec![(6, 15, "2 to 32")]),
        (door("totp_secret_file = \"k\"\ntotp_ports = \"1-99\"\ntotp_length = 33"), vec![(6, 15, "2 to 32")]),
        (door("totp_secret_file = \"k\"\ntotp_ports = \"1-3\"\ntotp_length = 4"), vec![(5, 14, "fewer than totp_length")]),
        (door("totp_secret_file = \"k\"\ntotp_ports = \"1-9\"\ntotp_step = \"0s\""), vec![(6, 13, "`totp_step` must be positive")]),
        (
            s("[[door]]\nname = \"a\"\nservice = \"S\"\nsequence = [1, 3]\n[[door]]\nname = \"a\"\nservice = \"S\"\nsequence = [2, 4]\n"),
            vec![(6, 8, "duplicate door name `a` (first defined at line 1)")],
        ),
        (
            door("totp_secret_file = \"k\"\ntotp_ports = \"1-9\"\ntcp_flags = [\"syn\", \"ack\"]"),
            vec![(6, 13, "only pure SYNs")],
        ),
        (door("one_time_sequences = \"x.otp\"\ntcp_flags = \"fin\""), vec![(5, 13, "only pure SYNs")]),
        (door("sequence = [\"1\", \"3\"]\nlink_local_sources = \"yes\""), vec![(5, 22, "expected a boolean")]),
        (s("[[door]]\nname = \"../x\"\nservice = \"S\"\nsequence = [1, 3]\n"), vec![(2, 8, "door name")]),
        (s("[[door]]\nname = \"\"\nservice = \"S\"\nsequence = [1, 3]\n"), vec![(2, 8, "door name")]),
    ]
}

#[test]
fn every_error_has_its_position() {
    for (text, want) in error_cases() {
        let errs = Config::from_toml_str(&text, "/etc/kw.toml")
            .expect_err(&text)
            .0;
        let got: Vec<_> = errs
            .iter()
            .map(|e| (e.line, e.column, e.message.clone()))
            .collect();
        assert_eq!(got.len(), want.len(), "{text}\n{got:?}");
        for ((line, col, msg), (wl, wc, wm)) in got.iter().zip(&want) {
            assert_eq!((line, col), (wl, wc), "{text}\n{msg}");
            assert!(msg.contains(wm), "{text}\nmessage {msg:?} lacks {wm:?}");
        }
        for e in &errs {
            assert!(e
                .to_string()
                .starts_with(&format!("/etc/kw.toml:{}:{}: ", e.line, e.column)));
        }
    }
}

#[test]
fn bad_services() {
    for (service, col) in [
        ("SSH D", 11),
        ("SSHD,x", 11),
        ("a:b", 11),
        ("a#b", 11),
        ("a\\u0007", 11),
        ("", 11),
        ("EXCEPT", 11),
        ("a\\\\b", 11),
    ] {
        let text = format!("[[door]]\nname = \"d\"\nservice = \"{service}\"\nsequence = [1, 3]\n");
        let errs = Config::from_toml_str(&text, "k.toml").expect_err(service).0;
        assert_eq!(errs.len(), 1, "{service}");
        assert_eq!((errs[0].line, errs[0].column), (3, col), "{service}");
        assert!(errs[0].message.contains("service"), "{}", errs[0].message);
    }
    for ok in ["SSHD", "sshd", "in.telnetd", "ALL", "vsftpd@192.0.2.1"] {
        let text = format!("[[door]]\nname = \"d\"\nservice = \"{ok}\"\nsequence = [1, 3]\n");
        assert!(Config::from_toml_str(&text, "k.toml").is_ok(), "{ok}");
    }
}

#[test]
fn several_semantic_errors_are_all_reported() {
    let text = door("sequence = [0, \"1:x\"]\nlease = 0\naction = \"nope\"");
    let errs = Config::from_toml_str(&text, "k.toml").unwrap_err();
    let lines: Vec<_> = errs.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(lines, vec![(4, 13), (4, 16), (5, 9), (6, 10)], "{errs}");
}

/// Found by the `config` fuzz target: toml gives some syntax errors without a message (a
/// control character in a comment, a lone carriage return, a key with no value at the end),
/// which left a bare `path:line:column: `.
#[test]
fn syntax_errors_always_say_something() {
    for (text, line, column, want) in [
        ("# comment\u{4}\n", 1, 10, "unexpected character '\\u{4}'"),
        (
            "backup = true\n# \u{7f}",
            2,
            3,
            "unexpected character '\\u{7f}'",
        ),
        ("backup = true\n\r", 2, 1, "unexpected character '\\r'"),
        ("backup =", 1, 9, "unexpected end of file"),
    ] {
        let errs = Config::from_toml_str(text, "k.toml").expect_err(text).0;
        assert_eq!(errs.len(), 1, "{text:?}");
        assert_eq!((errs[0].line, errs[0].column), (line, column), "{text:?}");
        assert!(
            errs[0].message.contains(want),
            "{text:?}: {:?}",
            errs[0].message
        );
    }
}
