//! Firewall commands keep the port hidden: the knockd default's iptables doors become
//! `open_ports` doors with `hosts_allow = false`, and over the shared corpus of real
//! knockd.conf files (read in place, never copied) every emitted configuration loads with
//! knockwrap's own rules, with the figures of what the firewall files keep.

use std::time::Duration;

use knock_match::Action;
use knockd_import::{convert, Severity};
use knockwrap_config::{Config, PortSpec};

/// The default knockd.conf of knockd's package (and the article's starting point): the port
/// is opened and closed with iptables.
const KNOCKD_DEFAULT: &str = "[options]
\tUseSyslog

[openSSH]
\tsequence    = 7000,8000,9000
\tseq_timeout = 5
\tcommand     = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
\ttcpflags    = syn

[closeSSH]
\tsequence    = 9000,8000,7000
\tseq_timeout = 5
\tcommand     = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
\ttcpflags    = syn

[openHTTPS]
\tsequence    = 12345,54321,24680,13579
\tseq_timeout = 5
\tcommand     = /usr/local/sbin/knock_add -i -c INPUT -p tcp -d 443 -f %IP%
\ttcpflags    = syn
";

fn load(toml: &str) -> Config {
    Config::from_toml_str(toml, "/etc/knockwrap/knockwrap.toml")
        .unwrap_or_else(|e| panic!("the output does not load: {e}\n{toml}"))
}

#[test]
fn the_knockd_default_keeps_port_22_hidden() {
    let i = convert(KNOCKD_DEFAULT, "/etc/knockd.conf").unwrap();
    let c = load(&i.toml);
    let open = c.door("openSSH").unwrap();
    assert_eq!(open.open_ports, vec![PortSpec::tcp(22)]);
    assert!(
        !open.hosts_allow,
        "firewall only: knockd wrote no hosts.allow line"
    );
    assert_eq!(
        (open.door.action, open.door.service.as_str()),
        (Action::Allow, "sshd")
    );
    let close = c.door("closeSSH").unwrap();
    assert_eq!(close.open_ports, vec![PortSpec::tcp(22)]);
    assert!(!close.hosts_allow);
    assert_eq!(
        (close.door.action, close.door.service.as_str()),
        (Action::Revoke, "sshd")
    );
    assert_eq!(c.guarded_ports(), vec![PortSpec::tcp(22)]);
    assert!(c.firewall.is_declared() && c.firewall.table == "knockwrap");
    assert!(c.firewall.always_allow.is_empty(), "never guessed");
    assert!(i.toml.contains("# always_allow = ["), "{}", i.toml);
    assert!(
        !i.toml.contains("%IP%\""),
        "%IP% is never a value: {}",
        i.toml
    );
    // knock_add stays a finding at its line; the firewall note replaces "let port 22 through".
    assert!(c.door("openHTTPS").is_none());
    assert!(i.findings.iter().any(|f| f.line == 19
        && f.severity == Severity::LeftOut
        && f.message.contains("knock_add")));
    let note = i
        .findings
        .iter()
        .find(|f| f.message.contains("open_ports"))
        .expect("the firewall note");
    assert_eq!((note.line, note.severity), (4, Severity::Note));
    assert!(!i.toml.contains("let port 22"), "{}", i.toml);
}

#[test]
fn start_and_stop_on_the_same_port_become_one_door_with_a_lease() {
    let i = convert(
        "[openclose]\nsequence = 2222:tcp,3333:udp,4444\n\
         start_command = /sbin/iptables -I INPUT -s %IP% -p tcp --dport 2222 -j ACCEPT\n\
         cmd_timeout = 60\n\
         stop_command = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 2222 -j ACCEPT\n\
         [both]\nsequence = 5000,3000\n\
         start_command = echo 'sshd: %IP%' >> /etc/hosts.allow; ufw allow from %IP% to any port 22 proto tcp\n\
         stop_command = sed -i '/sshd: %IP%/d' /etc/hosts.allow; ufw delete allow from %IP% to any port 22 proto tcp\n\
         [wrongclose]\nsequence = 6000,1000\n\
         start_command = iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n\
         stop_command = iptables -D INPUT -s %IP% -p tcp --dport 2222 -j ACCEPT\n",
        "k.conf",
    )
    .unwrap();
    let c = load(&i.toml);
    let d = c.door("openclose").unwrap();
    assert_eq!(d.open_ports, vec![PortSpec::tcp(2222)]);
    assert!(!d.hosts_allow);
    assert_eq!(d.door.lease, Some(Duration::from_secs(60)));
    assert_eq!(d.door.service, "port-2222-tcp");
    let both = c.door("both").unwrap();
    assert_eq!(both.open_ports, vec![PortSpec::tcp(22)]);
    assert!(both.hosts_allow, "it also wrote the hosts.allow line");
    assert_eq!(both.door.lease, Some(Duration::from_secs(10)));
    assert!(c.door("wrongclose").is_none());
    assert!(i
        .findings
        .iter()
        .any(|f| f.line == 13 && f.message.contains("does not undo")));
}

#[test]
fn a_close_door_for_a_port_nobody_opens_is_left_out() {
    let i = convert(
        "[open]\nsequence = 7000,9000\ncommand = /usr/local/bin/open %IP%\n\
         [close]\nsequence = 9000,7000\n\
         command = iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n",
        "k.conf",
    )
    .unwrap();
    let c = load(&i.toml);
    assert!(c.doors.is_empty());
    assert!(
        i.findings
            .iter()
            .any(|f| f.line == 4 && f.message.contains("no converted door opens")),
        "{:?}",
        i.findings
    );
    assert!(!i.toml.contains("[firewall]"));
}

/// A door of the knockd file whose start command runs a firewall tool.
fn firewall_doors(text: &str) -> Vec<String> {
    let mut doors = Vec::new();
    let mut section = String::new();
    for l in text.lines().map(str::trim) {
        if let Some(name) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((k, v)) = l.split_once('=') {
            let k = k.trim().to_ascii_lowercase();
            let firewall = v.split_whitespace().any(|w| {
                let prog = w.rsplit('/').next().unwrap_or(w);
                matches!(prog, "iptables" | "ip6tables" | "ufw" | "nft")
            });
            if (k == "command" || k == "start_command") && firewall {
                doors.push(section.clone());
            }
        }
    }
    doors
}

/// Every corpus file read in place: each output loads; the firewall files' doors keep their
/// ports (`open_ports`, `hosts_allow = false`), and what is left out says why at a line.
#[test]
fn the_corpus_keeps_the_ports() {
    let Some(files) = test_support::knockd_corpus(test_support::test_name!()) else {
        return;
    };
    let (mut fw_files, mut kept_all, mut kept_some, mut fw_doors, mut fw_kept) = (0, 0, 0, 0, 0);
    let mut report = String::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = String::from_utf8(std::fs::read(f).unwrap()).unwrap();
        let doors = firewall_doors(&text);
        let Ok(i) = convert(&text, &f.display().to_string()) else {
            if !doors.is_empty() {
                fw_files += 1;
                fw_doors += doors.len();
                report.push_str(&format!("  {name}: refused (not knockd syntax)\n"));
            }
            continue;
        };
        let c = Config::from_toml_str(&i.toml, "/etc/knockwrap/knockwrap.toml")
            .unwrap_or_else(|e| panic!("{name}: the output does not load: {e}\n{}", i.toml));
        for d in &c.doors {
            if !d.hosts_allow {
                assert!(!d.open_ports.is_empty(), "{name}: {}", d.door.name);
            }
        }
        for f in &i.findings {
            assert!(f.line >= 1 && !f.message.is_empty(), "{name}: {f:?}");
        }
        if doors.is_empty() {
            assert!(
                c.guarded_ports().is_empty(),
                "{name}: ports from no firewall command"
            );
            continue;
        }
        fw_files += 1;
        fw_doors += doors.len();
        // A section's block of output, from its comment to the next door's, holds open_ports.
        let kept: Vec<&str> = doors
            .iter()
            .filter(|n| {
                let Some(at) = i.toml.find(&format!("# knockd [{n}] at line")) else {
                    return false;
                };
                let rest = &i.toml[at..];
                let end = rest[1..].find("\n# knockd [").map_or(rest.len(), |e| e + 1);
                rest[..end].contains("\nopen_ports")
            })
            .map(String::as_str)
            .collect();
        fw_kept += kept.len();
        if kept.len() == doors.len() {
            kept_all += 1;
        } else if !kept.is_empty() {
            kept_some += 1;
        }
        let left: Vec<String> = i
            .findings
            .iter()
            .filter(|f| f.severity == Severity::LeftOut)
            .map(|f| format!("line {}: {}", f.line, f.message))
            .collect();
        report.push_str(&format!(
            "  {name}: {}/{} firewall doors kept, ports {}{}\n",
            kept.len(),
            doors.len(),
            c.guarded_ports()
                .iter()
                .map(PortSpec::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            if left.is_empty() {
                String::new()
            } else {
                format!("; left out: {}", left.join(" | "))
            }
        ));
    }
    eprintln!(
        "firewall files: {fw_files}; every firewall door kept with its ports: {kept_all}; \
         some: {kept_some}; firewall doors: {fw_kept} of {fw_doors} kept\n{report}"
    );
    assert_eq!(fw_files, 22, "the corpus's firewall files (SOURCES.md)");
    // The figures docs/migrate-from-knockd.md gives; a change either way must update it.
    assert_eq!(
        (kept_all, kept_some, fw_kept, fw_doors),
        (13, 2, 26, 43),
        "files keeping every / some firewall door, firewall doors kept / in all"
    );
}
