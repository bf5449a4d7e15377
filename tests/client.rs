//! The on-call engineer's client (issue 13), end to end with real parts: knockwrap's daemon
//! sniffing the server end of a veth pair and editing the /etc/hosts.allow of a private root,
//! Debian's sshd (libwrap) behind it, and, on the client side, a private /etc/hosts naming the
//! dual-stack server, `knockwrap knock` / `knockwrap connect` and the real OpenSSH client with
//! `ProxyCommand knockwrap connect %h %p`. The profile tests at the end need no privilege.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use test_support::client::ClientSide;
use test_support::daemon::knockwrap_bin;
use test_support::{serial, Door, ServerRoot, Sshd};

const OPEN: [&str; 3] = ["7000", "8000", "9000"];
/// RFC 6238's test secret "12345678901234567890" in base32 (160 bits).
const TOTP_KEY: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n";

/// The harness's rig with sshd, and the client side. Fields drop in order: the rig (daemon,
/// sshd, root, net), then the client side.
struct Rig {
    rig: test_support::Rig,
    client: ClientSide,
}

impl std::ops::Deref for Rig {
    type Target = test_support::Rig;

    fn deref(&self) -> &test_support::Rig {
        &self.rig
    }
}

impl Rig {
    /// `bastion.test` is the server's IPv4 and IPv6 address, `v6only.test` its IPv6 address,
    /// `mixed.test` an IPv4 address this client has no route to plus the server's IPv6.
    fn start(tag: &str, doors: Vec<Door>, extra: &str) -> Rig {
        // The key first: sshd is started with it authorized.
        let client = ClientSide::new(&[]);
        let rig = test_support::Rig::builder(tag)
            .doors(doors)
            .config(extra)
            .prepare(unlock_root)
            .sshd_config(&client.sshd_extra())
            .start();
        let (v4, v6) = (
            IpAddr::V4(rig.net.server_v4()),
            IpAddr::V6(rig.net.server_v6()),
        );
        let unroutable: IpAddr = "198.19.0.9".parse().expect("literal");
        client.set_hosts(&[
            (v4, "bastion.test"),
            (v6, "bastion.test"),
            (v6, "v6only.test"),
            (unroutable, "mixed.test"),
            (v6, "mixed.test"),
        ]);
        Rig { rig, client }
    }

    fn sshd_log(&self) -> String {
        self.rig.sshd.as_ref().map(Sshd::log).unwrap_or_default()
    }

    /// `knockwrap ARGS` on the client side.
    fn knockwrap(&self, args: &[&str]) -> Output {
        let mut cmd = self.client.command(&self.net, knockwrap_bin());
        cmd.args(args);
        self.client.output(&mut cmd)
    }

    /// `ssh -F CONFIG ARGS` on the client side.
    fn ssh(&self, config: &Path, args: &[&str]) -> Output {
        let mut cmd = self.client.command(&self.net, "ssh");
        cmd.arg("-F").arg(config).args(args);
        self.client.output(&mut cmd)
    }

    fn client_lines(&self) -> [String; 2] {
        [
            format!("SSHD: {}", self.net.client_v4()),
            format!("SSHD: [{}]", self.net.client_v6()),
        ]
    }

    /// Panics with everything worth seeing when `out` is not a success.
    fn expect_success(&self, what: &str, out: &Output) {
        if !out.status.success() {
            panic!(
                "{what} failed ({}):\nstdout: {}\nstderr: {}\nhosts.allow: {:?}\nsshd log:\n{}\n\
                 daemon log:\n{}",
                out.status,
                text(&out.stdout),
                text(&out.stderr),
                self.root.read_hosts_allow(),
                self.sshd_log(),
                self.daemon.log()
            );
        }
    }
}

/// With UsePAM no, sshd refuses an account whose password field starts with `!` even for a
/// key; the server side's /etc is a private copy, so unlock root there.
fn unlock_root(root: &ServerRoot) {
    let shadow = root.etc.join("shadow");
    let Ok(text) = std::fs::read_to_string(&shadow) else {
        return;
    };
    let fixed: String = text
        .lines()
        .map(|l| match l.strip_prefix("root:!") {
            Some(rest) => {
                let tail = rest.split_once(':').map_or("", |(_, t)| t);
                format!("root:*:{tail}\n")
            }
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&shadow, fixed).expect("writing the private shadow");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ssh_options_note() -> &'static str {
    "# written by tests/client.rs"
}

#[test]
fn dual_stack_name_is_knocked_at_both_addresses_and_ssh_over_ipv6_gets_in() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::start("dual", vec![Door::allow("openSSH", &OPEN)], "");
    assert_eq!(
        rig.root.read_hosts_allow(),
        "",
        "nothing open before the knock"
    );

    let out = rig.knockwrap(&["knock", "bastion.test", "7000", "8000", "9000"]);
    rig.expect_success("knockwrap knock bastion.test", &out);
    let stdout = text(&out.stdout);
    let (s4, s6) = (rig.net.server_v4(), rig.net.server_v6());
    assert_eq!(
        stdout.lines().collect::<Vec<_>>().len(),
        2,
        "one result line per address:\n{stdout}"
    );
    for ip in [s4.to_string(), s6.to_string()] {
        assert!(
            stdout.contains(&format!("bastion.test {ip}: knocked (3 of 3 sent)")),
            "no result line for {ip}:\n{stdout}"
        );
    }
    for line in rig.client_lines() {
        rig.expect_line(&line);
    }

    // An ssh client that uses IPv6 (the family happy eyeballs prefers) gets in.
    let config = rig.client.ssh_config("ssh_config", ssh_options_note());
    let out = rig.ssh(&config, &["-6", "bastion.test", "echo in-over-ipv6"]);
    rig.expect_success("ssh -6 bastion.test", &out);
    assert_eq!(text(&out.stdout), "in-over-ipv6\n");
    let client6 = rig.net.client_v6().to_string();
    assert!(
        rig.sshd_log()
            .lines()
            .any(|l| l.contains("Accepted publickey for root from") && l.contains(&client6)),
        "sshd did not log an IPv6 login from {client6}:\n{}",
        rig.sshd_log()
    );
    // And over IPv4 too.
    let out = rig.ssh(&config, &["-4", "bastion.test", "echo in-over-ipv4"]);
    rig.expect_success("ssh -4 bastion.test", &out);
    assert_eq!(text(&out.stdout), "in-over-ipv4\n");

    // -v shows each address and each knock.
    let out = rig.knockwrap(&["knock", "-v", "bastion.test", "7000", "8000:udp"]);
    rig.expect_success("knockwrap knock -v", &out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("bastion.test: {s4}, {s6}"))
            || stdout.contains(&format!("bastion.test: {s6}, {s4}")),
        "no resolution line:\n{stdout}"
    );
    for want in [
        format!("hitting tcp {s4}:7000"),
        format!("hitting udp {s6}:8000"),
    ] {
        assert!(stdout.contains(&want), "{want:?} not in:\n{stdout}");
    }

    // Clear errors: a name that resolves to nothing, a family the name lacks, an address
    // this machine cannot send to.
    let out = rig.knockwrap(&["knock", "nowhere.test", "7000"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("cannot resolve `nowhere.test`"),
        "{}",
        text(&out.stderr)
    );
    let out = rig.knockwrap(&["knock", "-4", "v6only.test", "7000"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains(&format!(
            "`v6only.test` has no IPv4 address (it resolves to {s6})"
        )),
        "{}",
        text(&out.stderr)
    );
    let out = rig.knockwrap(&["knock", "mixed.test", "7000"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stdout).contains(&format!("mixed.test {s6}: knocked (1 of 1 sent)")),
        "the reachable address is still knocked:\n{}",
        text(&out.stdout)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("mixed.test 198.19.0.9: NOT knocked")
            && stderr.contains("cannot send IPv4 there"),
        "{stderr}"
    );
}

#[test]
fn ssh_proxycommand_with_a_static_door_runs_a_command() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::start("pxs", vec![Door::allow("openSSH", &OPEN)], "");
    assert_eq!(rig.root.read_hosts_allow(), "");
    let config = rig.client.ssh_config(
        "ssh_config",
        &format!(
            "Match host bastion.test\n    ProxyCommand {} connect %h %p 7000 8000 9000\n",
            knockwrap_bin()
        ),
    );
    let t0 = Instant::now();
    let out = rig.ssh(&config, &["bastion.test", "echo proxied-static; exit 0"]);
    let took = t0.elapsed();
    rig.expect_success(
        "ssh with ProxyCommand knockwrap connect (static door)",
        &out,
    );
    assert_eq!(text(&out.stdout), "proxied-static\n");
    for line in rig.client_lines() {
        rig.expect_line(&line);
    }
    eprintln!(
        "ssh via knockwrap connect, static door: {} ms",
        took.as_millis()
    );

    // An exit status comes back through the relay too.
    let out = rig.ssh(&config, &["bastion.test", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    // connect only connects where it knocked: mixed.test's IPv4 address cannot be sent to,
    // so only its IPv6 address is tried. With stdin empty, the relay half-closes at once and
    // sshd's banner comes through before it closes.
    let out = rig.knockwrap(&["connect", "-v", "mixed.test", "22", "7000", "8000", "9000"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(text(&out.stdout).starts_with("SSH-2.0-"), "{out:?}");
    let s6 = rig.net.server_v6();
    assert!(
        stderr.contains("mixed.test 198.19.0.9: NOT knocked"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("connecting to [{s6}]:22")),
        "{stderr}"
    );
    assert!(!stderr.contains("connecting to 198.19.0.9"), "{stderr}");
    for line in stderr.lines().filter(|l| l.contains("answered")) {
        eprintln!("{line}");
    }
}

#[test]
fn ssh_proxycommand_with_a_totp_door_from_a_profile_runs_a_command() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let files = tempfile::tempdir().expect("tempdir");
    let server_key = files.path().join("server-totp.key");
    std::fs::write(&server_key, TOTP_KEY).expect("key");
    std::fs::set_permissions(&server_key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let extra = format!(
        "\n[[door]]\nname = \"totpSSH\"\ntotp_secret_file = {:?}\ntotp_length = 3\n\
         totp_ports = \"20000-40000\"\ntotp_step = \"30s\"\nseq_timeout = \"5s\"\n\
         tcp_flags = [\"syn\"]\nservice = \"SSHD\"\n",
        server_key.display().to_string()
    );
    let rig = Rig::start("pxt", vec![], &extra);

    // The client's own copy of the key and its profile.
    let key = rig.client.dir().join("prod.key");
    std::fs::write(&key, TOTP_KEY).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let profile = rig.client.dir().join("client.toml");
    std::fs::write(
        &profile,
        "[[target]]\nname = \"prod\"\nhosts = [\"bastion.test\"]\ntotp_secret_file = \"prod.key\"\n\
         totp_length = 3\ntotp_ports = \"20000-40000\"\ntotp_step = \"30s\"\nport = 22\n\
         connect_timeout = \"8s\"\n",
    )
    .expect("profile");
    let config = rig.client.ssh_config(
        "ssh_config",
        &format!(
            "Host prod\n    HostName bastion.test\n\nMatch host bastion.test\n    \
             ProxyCommand {} connect --profile {} %h %p\n",
            knockwrap_bin(),
            profile.display()
        ),
    );
    let out = rig.ssh(&config, &["prod", "echo proxied-totp"]);
    rig.expect_success(
        "ssh prod with ProxyCommand knockwrap connect (TOTP profile)",
        &out,
    );
    assert_eq!(text(&out.stdout), "proxied-totp\n");
    // Both addresses were knocked with the same TOTP sequence, but the daemon accepts each
    // (door, step) once: the family whose knock completed first is the one let in, and
    // `connect` got in through it.
    let granted = rig.root.read_hosts_allow();
    let lines: Vec<&str> = granted.lines().collect();
    assert_eq!(lines.len(), 1, "one grant per TOTP step: {granted:?}");
    assert!(
        rig.client_lines().iter().any(|l| l == lines[0]),
        "{granted:?}"
    );
}

#[test]
fn a_door_that_never_opens_fails_within_the_bound_and_says_why() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::start("shut", vec![Door::allow("openSSH", &OPEN)], "");
    let (s4, s6) = (rig.net.server_v4(), rig.net.server_v6());

    // The wrong sequence: sshd accepts TCP, libwrap refuses without a banner.
    let t0 = Instant::now();
    let out = rig.knockwrap(&[
        "connect",
        "bastion.test",
        "22",
        "7100",
        "7200",
        "--timeout",
        "2s",
    ]);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        took < Duration::from_millis(3_500),
        "2 s bound, took {took:?}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing relayed: {:?}",
        text(&out.stdout)
    );
    let stderr = text(&out.stderr);
    eprintln!("{stderr}");
    for want in [
        "connect bastion.test port 22: the door did not open within 2000 ms".to_string(),
        "knocked with the sequence from the command line (2 knocks)".to_string(),
        format!("bastion.test {s4}: knocked (2 of 2 sent)"),
        format!("bastion.test {s6}: knocked (2 of 2 sent)"),
        format!("{s4}:22: accepted"),
        format!("[{s6}]:22: accepted"),
        "TCP Wrappers".to_string(),
        "knockwrap doctor".to_string(),
        "NAT".to_string(),
        "IPv4 vs IPv6".to_string(),
    ] {
        assert!(stderr.contains(&want), "{want:?} not in:\n{stderr}");
    }
    assert_eq!(rig.root.read_hosts_allow(), "", "no door opened");

    // Nothing listening: refused, retried until the bound.
    let t0 = Instant::now();
    let out = rig.knockwrap(&[
        "connect",
        "bastion.test",
        "2222",
        "7100",
        "--timeout",
        "1500ms",
    ]);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(took < Duration::from_millis(3_000), "took {took:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{s4}:2222: refused (RST to the SYN)")),
        "{stderr}"
    );
    assert!(stderr.contains("nothing listens on that port"), "{stderr}");

    // And ssh itself fails (does not hang) when its ProxyCommand does.
    let config = rig.client.ssh_config(
        "ssh_config",
        &format!(
            "Match host bastion.test\n    ProxyCommand {} connect --timeout 1s %h %p 7100\n",
            knockwrap_bin()
        ),
    );
    let out = rig.ssh(&config, &["bastion.test", "true"]);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(
        text(&out.stderr).contains("the door did not open"),
        "ssh shows the ProxyCommand's message: {}",
        text(&out.stderr)
    );
}

/// Runs the built binary with a clean environment for profile lookups.
fn knockwrap(args: &[&str], xdg: &Path) -> Output {
    Command::new(knockwrap_bin())
        .args(args)
        .env("XDG_CONFIG_HOME", xdg.join("config"))
        .env("XDG_STATE_HOME", xdg.join("state"))
        .output()
        .expect("running knockwrap")
}

#[test]
fn malformed_profiles_get_file_line_column_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("client.toml");
    let shown = p.display().to_string();
    let cases: &[(&str, &str)] = &[
        (
            "[[target]]\nname = \"prod\"\nhosts = \"bastion.test\"\nsequence = [\"7000\", \"99999\"]\n",
            ":4:21: sequence step `99999`",
        ),
        (
            "[[target]]\nname = \"prod\"\nhosts = \"bastion.test\"\nsequence = [\"7000\"]\nport = \"ssh\"\n",
            ":5:8: ",
        ),
        (
            "[[target]]\nname = \"prod\"\nhosts = \"bastion.test\"\nsequence = [\"7000\"]\ndelay = 5\n",
            ":5:1: unknown field `delay`",
        ),
        (
            "[[target]]\nname = \"prod\"\nhosts = \"bastion.test\"\n",
            ":2:8: target `prod` needs one of `sequence`, `one_time_sequences`, `totp_secret_file`",
        ),
        ("[[target]\nname = \"prod\"\n", ":1:"),
    ];
    for (body, want) in cases {
        std::fs::write(&p, body).expect("profile");
        for cmd in [
            vec!["knock", "prod", "--profile", &shown],
            vec!["connect", "prod", "--profile", &shown],
        ] {
            let out = knockwrap(&cmd, dir.path());
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd:?} on {body:?}: {stderr}");
            assert!(
                stderr.contains(&format!("{shown}{want}")),
                "{cmd:?} on {body:?}: wanted {shown}{want}, got {stderr}"
            );
        }
    }

    // A TOTP key others may read is refused at the key that names it.
    let key = dir.path().join("prod.key");
    std::fs::write(&key, TOTP_KEY).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(
        &p,
        "[[target]]\nname = \"prod\"\nhosts = \"127.0.0.1\"\n\ntotp_secret_file = \"prod.key\"\n\
         totp_ports = \"20000-40000\"\n",
    )
    .expect("profile");
    let out = knockwrap(&["knock", "prod", "--profile", &shown], dir.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{shown}:5:20: TOTP key"))
            && stderr.contains("accessible by group or others (mode 0644)"),
        "{stderr}"
    );
    // One owned by someone else too (needs root to give it away).
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&key, Some(65534), None).expect("chown");
        let out = knockwrap(&["knock", "prod", "--profile", &shown], dir.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{shown}:5:20: TOTP key"))
                && stderr.contains("belongs to uid 65534"),
            "{stderr}"
        );
    }

    // No profile where one is needed: a usage error naming where it was looked for.
    let out = knockwrap(&["knock", "prod"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains(&format!(
            "{}/config/knockwrap/client.toml (there is none)",
            dir.path().display()
        )),
        "{}",
        text(&out.stderr)
    );
    let out = knockwrap(
        &["knock", "prod", "--profile", "/nonexistent/client.toml"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("/nonexistent/client.toml:1:1: cannot read client profile"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_profile_one_time_list_is_used_in_order_and_remembered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config").join("knockwrap");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(
        config.join("otp.list"),
        "# knockd format\n7301,7305\n7401:udp,7405:udp\n",
    )
    .expect("list");
    std::fs::write(
        config.join("client.toml"),
        "[[target]]\nname = \"lab\"\nhosts = [\"127.0.0.1\"]\none_time_sequences = \"otp.list\"\n",
    )
    .expect("profile");
    // The default profile location ($XDG_CONFIG_HOME/knockwrap/client.toml), knocked by name.
    let state = dir
        .path()
        .join("state")
        .join("knockwrap")
        .join("onetime-lab.json");
    let out = knockwrap(&["knock", "-v", "lab"], dir.path());
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("hitting tcp 127.0.0.1:7301")
            && stdout.contains("hitting tcp 127.0.0.1:7305"),
        "{stdout}"
    );
    assert!(
        stdout.contains("127.0.0.1: knocked (2 of 2 sent)"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&state).expect("state"),
        "{\"next\":1}\n"
    );
    let out = knockwrap(&["knock", "-v", "lab"], dir.path());
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).contains("hitting udp 127.0.0.1:7401"),
        "{out:?}"
    );
    let out = knockwrap(&["knock", "lab"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("every one-time sequence has been used (2 of 2"),
        "{}",
        text(&out.stderr)
    );
}

/// The firewall door with the real OpenSSH client, where sshd ignores hosts.allow (an sshd
/// without libwrap, as upstream OpenSSH builds it; here libwrap's hosts.deny says nothing):
/// before the knock ssh cannot reach the port at all; after `knockwrap knock`, ssh logs in
/// from the knocker; no hosts.allow line is written. Needs root and nft.
#[test]
fn ssh_logs_in_through_a_firewall_door_only_after_the_knock() {
    let name = test_support::test_name!();
    test_support::skip_unless_root!();
    if !["/usr/sbin/nft", "/sbin/nft"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        test_support::skip_or_fail(name, "nft (Debian package nftables)");
        return;
    }
    let _serial = serial();
    let door = Door::allow("openSSH", &OPEN)
        .lease("1h")
        .with("open_ports = [\"22/tcp\"]\nhosts_allow = false\n");
    let rig = Rig::start("fwssh", vec![door], "");
    std::fs::write(rig.root.etc.join("hosts.deny"), "").expect("hosts.deny");
    let config = rig
        .client
        .ssh_config("ssh_config", "Host *\n    ConnectTimeout 3\n");
    let out = rig.ssh(&config, &["-4", "bastion.test", "echo in; exit 0"]);
    assert!(
        !out.status.success(),
        "ssh got in before any knock: {out:?}"
    );
    let out = rig.knockwrap(&["knock", "-4", "bastion.test", "7000", "8000", "9000"]);
    rig.expect_success("knockwrap knock", &out);
    let got_in =
        test_support::wait_until(Duration::from_secs(5), Duration::from_millis(200), || {
            let out = rig.ssh(&config, &["-4", "bastion.test", "echo in; exit 0"]);
            out.status.success() && text(&out.stdout) == "in\n"
        });
    assert!(
        got_in,
        "ssh did not get in after the knock:\n{:?}\nsshd log:\n{}\ndaemon log:\n{}",
        rig.ssh(&config, &["-4", "bastion.test", "true"]),
        rig.sshd_log(),
        rig.daemon.log()
    );
    assert_eq!(
        rig.root.read_hosts_allow(),
        "",
        "a firewall-only door writes no line"
    );
}
