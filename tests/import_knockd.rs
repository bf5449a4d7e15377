//! `knockwrap import-knockd` end to end: the binary on Debian's shipped /etc/knockd.conf, on
//! the article's setup, on crafted files for every key, and on every file of the shared
//! knockd.conf corpus read in place. Every written output must load with
//! `knockwrap_config::Config::load` (what `knockwrap check --config` runs); every file that
//! does not convert fully must say why at a line of the knockd file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use knock_match::{Action, DoorKind, Step};
use knockwrap_config::{Config, PortSpec};

fn import(input: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_knockwrap"))
        .arg("import-knockd")
        .arg(input)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run knockwrap")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Converts `text` in a temporary directory: (exit code, stderr, loaded config if written).
fn convert_text(text: &str) -> (i32, String, Option<Config>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("knockd.conf");
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("knockwrap.toml");
    let o = import(&input, &out);
    let config = out
        .exists()
        .then(|| Config::load(&out).unwrap_or_else(|e| panic!("output does not load: {e}")));
    (o.status.code().unwrap(), stderr(&o), config, dir)
}

fn steps(c: &Config, door: &str) -> Vec<Step> {
    match &c
        .door(door)
        .unwrap_or_else(|| panic!("no door {door}"))
        .door
        .kind
    {
        DoorKind::Static { steps } => steps.clone(),
        other => panic!("{door} is not static: {other:?}"),
    }
}

#[test]
fn the_articles_setup_converts_fully() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k.toml");
    let o = import(&root.join("tests/fixtures/knockd/article.conf"), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = Config::load(&out).unwrap();
    assert_eq!(c.hosts_allow, PathBuf::from("/etc/hosts.allow"));
    assert_eq!(c.log, knockwrap_config::LogTarget::Syslog);
    let open = &c.door("openSSH").unwrap().door;
    assert_eq!(
        (open.action, open.service.as_str()),
        (Action::Allow, "SSHD")
    );
    assert_eq!(open.lease, None);
    assert_eq!(open.seq_timeout, Duration::from_secs(10));
    assert!(
        open.tcp_flags.is_none(),
        "tcpflags = syn becomes the pure-SYN default"
    );
    assert_eq!(steps(&c, "openSSH"), [7000, 8000, 9000].map(Step::tcp));
    let close = &c.door("closeSSH").unwrap().door;
    assert_eq!(
        (close.action, close.service.as_str()),
        (Action::Revoke, "SSHD")
    );
    assert_eq!(steps(&c, "closeSSH"), [9000, 8000, 7000].map(Step::tcp));
    let text = std::fs::read_to_string(&out).unwrap();
    for said in [
        "Sweep resistance",
        "Pure-SYN",
        "Retransmits",
        "3.5 s",
        "Source addresses",
        "one_time_sequences",
    ] {
        assert!(text.contains(said), "the output should explain {said}");
    }
}

#[test]
fn debians_shipped_knockd_conf() {
    let path = Path::new("/etc/knockd.conf");
    if !path.exists()
        && !test_support::skip_or_fail(
            "debians_shipped_knockd_conf",
            "/etc/knockd.conf (apt-get install knockd)",
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k.toml");
    let o = import(path, &out);
    let err = stderr(&o);
    // openHTTPS runs knock_add, which knockwrap cannot stand in for.
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "/etc/knockd.conf:19: left out: door [openHTTPS]: start_command is not recognised"
        ),
        "{err}"
    );
    let c = Config::load(&out).unwrap();
    let open = &c.door("openSSH").unwrap().door;
    assert_eq!(
        (open.action, open.service.as_str()),
        (Action::Allow, "sshd")
    );
    assert_eq!(open.seq_timeout, Duration::from_secs(5));
    assert_eq!(
        c.door("openSSH").unwrap().open_ports,
        vec![PortSpec::tcp(22)]
    );
    assert_eq!(c.door("closeSSH").unwrap().door.action, Action::Revoke);
    assert!(c.door("openHTTPS").is_none());
    assert_eq!(c.doors.len(), 2);
}

#[test]
fn start_stop_and_cmd_timeout_become_a_lease() {
    let (code, err, c, _d) = convert_text(
        "[options]\n logfile = /var/log/knockd.log\n interface = eth1\n\
         [opencloseSSH]\n sequence = 2222:tcp,3333:udp,4444\n\
         start_command = /sbin/iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n\
         cmd_timeout = 3600\n\
         stop_command = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n\
         [defaults]\n sequence = 5000,3000\n\
         Start_Command = echo 'sshd: %IP%' >> /etc/hosts.allow\n\
         STOP_COMMAND = sed -i '/^sshd: %IP%$/d' /etc/hosts.allow\n",
    );
    assert_eq!(code, 0, "{err}");
    let c = c.unwrap();
    assert_eq!(c.interfaces, ["eth1"]);
    assert_eq!(
        c.log,
        knockwrap_config::LogTarget::File("/var/log/knockd.log".into())
    );
    let dc = c.door("opencloseSSH").unwrap();
    assert_eq!(
        dc.open_ports,
        vec![PortSpec::tcp(22)],
        "the port stays hidden"
    );
    assert!(!dc.hosts_allow);
    let d = &dc.door;
    assert_eq!((d.action, d.service.as_str()), (Action::Allow, "sshd"));
    assert_eq!(d.lease, Some(Duration::from_secs(3600)));
    assert_eq!(
        d.seq_timeout,
        Duration::from_secs(25),
        "knockd's default seq_timeout"
    );
    assert_eq!(
        steps(&c, "opencloseSSH"),
        [Step::tcp(2222), Step::udp(3333), Step::tcp(4444)]
    );
    let d = &c.door("defaults").unwrap().door;
    assert_eq!(
        d.lease,
        Some(Duration::from_secs(10)),
        "knockd's default cmd_timeout"
    );
    assert!(
        err.contains(":4: note: firewall commands are mapped to `open_ports`"),
        "{err}"
    );
    assert!(c.door("defaults").unwrap().hosts_allow);
    assert!(c.door("defaults").unwrap().open_ports.is_empty());
}

#[test]
fn aliases_targets_flags_and_ipv6_commands() {
    let (code, err, c, _d) = convert_text(
        "[options]\nUseSyslog\n[a]\nSEQUENCE = 1234, 4321\nTimeout = 7\n\
         COMMAND = ufw allow from %IP% to any port 22\n\
         COMMAND_6 = ufw allow from %IP% to any port 22 proto tcp\n\
         target = 192.0.2.10\ntcpflags = syn,!ack,psh\n\
         [b]\nsequence = 9999,1111\ncommand = nft add element inet filter ssh_ok '{ %IP% timeout 15m }'\n\
         start_command_6 = /usr/local/bin/open6 %IP%\n",
    );
    assert_eq!(code, 1, "{err}");
    let c = c.unwrap();
    assert_eq!(
        c.door("a").unwrap().open_ports,
        vec![PortSpec::tcp(22), PortSpec::udp(22)],
        "ufw without proto allows both"
    );
    assert_eq!(c.door("b").unwrap().open_ports, vec![PortSpec::tcp(22)]);
    let a = &c.door("a").unwrap().door;
    assert_eq!(a.seq_timeout, Duration::from_secs(7));
    assert_eq!(a.target, Some("192.0.2.10".parse().unwrap()));
    assert!(!a.tcp_flags.is_none(), "flags beyond a pure SYN are kept");
    let b = &c.door("b").unwrap().door;
    assert_eq!(
        b.lease,
        Some(Duration::from_secs(900)),
        "nft element timeout"
    );
    assert!(
        err.contains(":13: left out: door [b]: start_command_6 left out"),
        "{err}"
    );
}

/// The default knockd.conf knockd's package ships (the article's starting point) opens and
/// closes port 22 with iptables: the port stays hidden, opened by knockwrap's own firewall.
#[test]
fn the_knockd_default_becomes_a_firewall_door() {
    let (code, err, c, _d) = convert_text(
        "[options]\n\tUseSyslog\n\n[openSSH]\n\tsequence    = 7000,8000,9000\n\
         \tseq_timeout = 5\n\
         \tcommand     = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n\
         \ttcpflags    = syn\n\n[closeSSH]\n\tsequence    = 9000,8000,7000\n\
         \tseq_timeout = 5\n\
         \tcommand     = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n\
         \ttcpflags    = syn\n",
    );
    assert_eq!(code, 0, "{err}");
    let c = c.unwrap();
    for (door, action) in [("openSSH", Action::Allow), ("closeSSH", Action::Revoke)] {
        let d = c.door(door).unwrap();
        assert_eq!(d.open_ports, vec![PortSpec::tcp(22)], "{door}");
        assert!(!d.hosts_allow, "{door}");
        assert_eq!(d.door.action, action, "{door}");
    }
    assert_eq!(c.guarded_ports(), vec![PortSpec::tcp(22)]);
    assert_eq!(c.firewall.table, "knockwrap");
    assert!(
        err.contains(":4: note: firewall commands are mapped"),
        "{err}"
    );
}

#[test]
fn one_time_sequences_point_at_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let otp = dir.path().join("open.otp");
    std::fs::write(&otp, "# used\n1000,5000,3000\n2000,7000:udp,4000\n").unwrap();
    let (code, err, c, _d) = convert_text(&format!(
        "[options]\nUseSyslog\n[otp]\none_time_sequences = {}\ntcpflags = syn\n\
         command = echo \"SSHD: %IP%\" >> /etc/hosts.allow\n",
        otp.display()
    ));
    assert_eq!(code, 0, "{err}");
    let c = c.unwrap();
    let d = c.door("otp").unwrap();
    assert_eq!(d.one_time_file.as_deref(), Some(otp.as_path()));
    match &d.door.kind {
        DoorKind::OneTime { sequences, .. } => assert_eq!(sequences.len(), 2),
        k => panic!("{k:?}"),
    }
    // A one-time file knockwrap cannot load is reported, and the exit is 1.
    std::fs::write(&otp, "7000,7001,7002\n").unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let input = dir2.path().join("knockd.conf");
    std::fs::write(
        &input,
        format!(
            "[options]\nUseSyslog\n[otp]\none_time_sequences = {}\n\
             command = echo \"SSHD: %IP%\" >> /etc/hosts.allow\n",
            otp.display()
        ),
    )
    .unwrap();
    let out = dir2.path().join("k.toml");
    let o = import(&input, &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("will not load"), "{}", stderr(&o));
}

#[test]
fn what_cannot_be_mapped_is_reported_at_its_line() {
    let (code, err, c, _d) = convert_text(
        "[options]\n  PidFile = /run/knockd.pid\n\
         [sweep]\n  sequence = 7000,7001,7002\n  command = echo 'sshd: %IP%' >> /etc/hosts.allow\n\
         [one]\n  sequence = 7000\n  command = echo 'sshd: %IP%' >> /etc/hosts.allow\n\
         [web]\n  sequence = 1000,3000\n  command = iptables -A INPUT -s %IP% -p tcp --dport 6000:6010 -j ACCEPT\n\
         [script]\n  sequence = 1000,4000\n  command = /usr/local/bin/open %IP%\n\
         [halfopen]\n  sequence = 2000,4000\n  start_command = ufw allow from %IP% to any port 22\n\
           stop_command = /usr/local/bin/close %IP%\n\
         [fork]\n  sequence = 3000,1000\n  acl = 10.0.0.0/8\n\
         [nothing]\n  sequence = 3000,5000\n\
         [good one]\n  sequence = 6000,2000\n  command = echo 'sshd: %IP%' >> /etc/hosts.allow\n\
         [twice wrong]\n  sequence = 4000,4001\n  protocol = tcp\n  cmd_timeout = 5\n\
           command = ufw allow from %IP% to any port 22\n",
    );
    assert_eq!(code, 1, "{err}");
    for (line, what) in [
        (2, "note: PidFile"),
        (
            4,
            "left out: door [sweep]: sequence `7000,7001,7002`: steps on adjacent ports",
        ),
        (
            7,
            "left out: door [one]: sequence `7000`: a single-step sequence",
        ),
        (
            11,
            "left out: door [web]: start_command is not recognised: it opens the port range 6000:6010",
        ),
        (
            14,
            "left out: door [script]: start_command is not recognised",
        ),
        (
            18,
            "left out: door [halfopen]: stop_command is not recognised",
        ),
        (21, "left out: door [fork]: `acl` is not a knockd 0.8 key"),
        (22, "left out: door [nothing]: it has no start_command"),
        // Every reason a door has, each at its line.
        (
            28,
            "left out: door [twice wrong]: sequence `4000,4001`: steps on adjacent ports",
        ),
        (
            29,
            "left out: door [twice wrong]: `protocol` is not a knockd 0.8 key",
        ),
    ] {
        assert!(
            err.contains(&format!(":{line}: {what}")),
            "line {line}: {what}\n{err}"
        );
    }
    assert!(err.contains("would leave access open"), "{err}");
    // Notes about a door that is left out are not printed.
    assert!(!err.contains("cmd_timeout has no effect"), "{err}");
    assert!(!err.contains("note: firewall commands"), "{err}");
    let c = c.unwrap();
    assert_eq!(c.doors.len(), 1);
    assert_eq!(c.doors[0].door.name, "good_one");
}

#[test]
fn unparseable_and_unreadable_files_exit_2_without_output() {
    let (code, err, c, _d) = convert_text("# pypk style\ninterface=eth0\n[a]\nsequence=1,5\n");
    assert_eq!(code, 2);
    assert!(err.contains("knockd.conf:2: cannot convert"), "{err}");
    assert!(c.is_none(), "nothing written on exit 2");
    let (code, err, _, _d) = convert_text("[a]\nsequence = 1000,3000\nUseSyslog\nbare words\n");
    assert_eq!(code, 2);
    assert!(err.contains(":4: cannot convert: syntax error"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let o = import(&dir.path().join("missing.conf"), &dir.path().join("o.toml"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.conf"), "{}", stderr(&o));
    let bad = dir.path().join("latin1.conf");
    std::fs::write(&bad, b"[a]\nsequence = 1000,3000\ncommand = echo \xe9\n").unwrap();
    let o = import(&bad, &dir.path().join("o.toml"));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("latin1.conf:3: not valid UTF-8"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn writes_to_standard_output_without_o() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(env!("CARGO_BIN_EXE_knockwrap"))
        .args(["import-knockd"])
        .arg(root.join("tests/fixtures/knockd/article.conf"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8(o.stdout).unwrap();
    Config::from_toml_str(&text, "/etc/knockwrap/knockwrap.toml").unwrap();
}

/// Every file of ../shared/corpus/knockd-conf, read in place: each converts (exit 0), converts
/// partly with every omission at a line (exit 1), or is refused at a line (exit 2); every
/// output written loads.
#[test]
fn the_shared_corpus_in_place() {
    let Some(files) = test_support::knockd_corpus(test_support::test_name!()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut full, mut partial, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let out = dir.path().join(format!("{name}.toml"));
        let o = import(f, &out);
        let err = stderr(&o);
        let shown = f.display().to_string();
        match o.status.code() {
            Some(0) => {
                assert!(!err.contains("left out"), "{name}: exit 0 but {err}");
                Config::load(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
                full.push(name);
            }
            Some(1) => {
                let c = Config::load(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
                let omissions: Vec<&str> = err.lines().filter(|l| l.contains("left out")).collect();
                assert!(
                    !omissions.is_empty(),
                    "{name}: exit 1 without a reason: {err}"
                );
                for l in &omissions {
                    let rest = l
                        .strip_prefix(&format!("{shown}:"))
                        .unwrap_or_else(|| panic!("{name}: {l}"));
                    let line: usize = rest
                        .split(':')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap_or_else(|_| panic!("{name}: no line in {l}"));
                    assert!(line >= 1, "{name}: {l}");
                }
                partial.push(format!(
                    "{name} ({} doors kept, {} omissions)",
                    c.doors.len(),
                    omissions.len()
                ));
            }
            Some(2) => {
                assert!(!out.exists(), "{name}: output written on exit 2");
                assert!(
                    err.contains(&format!("{shown}:")) && err.contains("cannot convert"),
                    "{name}: refused without a line: {err}"
                );
                refused.push(name);
            }
            other => panic!("{name}: exit {other:?}: {err}"),
        }
    }
    // Spot checks of what the corpus is known to hold (see its SOURCES.md).
    assert!(
        full.contains(&"2kw92__firewalld.conf".to_string()),
        "{full:?}"
    );
    assert!(
        refused.contains(&"MlleParkerBazaar__pypk.conf".to_string()),
        "{refused:?}"
    );
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "corpus: {} files: {} fully, {} partly, {} refused\n  fully: {}\n  partly: {}\n  refused: {}\n",
            files.len(),
            full.len(),
            partial.len(),
            refused.len(),
            full.join(", "),
            partial.join(", "),
            refused.join(", ")
        )
        .as_bytes(),
    );
}
