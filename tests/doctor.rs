//! `knockwrap doctor` end to end: the libwrap check on Debian's real sshd and on a binary
//! without libwrap, and the hosts_access, door, interface, permission and lockout checks on
//! crafted files in a temporary directory; the firewall door's checks (a missing libwrap
//! covered by firewall doors, the lockout warnings `check --config` also gives, and another
//! nftables table that drops the guarded port) with doctor run inside a network namespace of
//! its own, so the host's ruleset is never read or touched.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use test_support::net::Netns;

struct Report {
    code: i32,
    out: String,
}

impl Report {
    fn has(&self, line_start: &str) -> bool {
        self.out.lines().any(|l| l.starts_with(line_start))
    }
    fn assert_has(&self, line_start: &str) {
        assert!(
            self.has(line_start),
            "no line starting {line_start:?} in:\n{}",
            self.out
        );
    }
    fn assert_not(&self, fragment: &str) {
        assert!(
            !self.out.contains(fragment),
            "unexpected {fragment:?} in:\n{}",
            self.out
        );
    }
}

fn doctor(config: &Path, sshd: &Path) -> Report {
    let o = Command::new(env!("CARGO_BIN_EXE_knockwrap"))
        .arg("doctor")
        .arg("--config")
        .arg(config)
        .arg("--sshd")
        .arg(sshd)
        .output()
        .expect("run knockwrap");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    Report {
        code: o.status.code().unwrap(),
        out: String::from_utf8(o.stdout).unwrap(),
    }
}

/// A directory with a config (doors as given), hosts.allow and hosts.deny.
fn setup(doors: &str, allow: &str, deny: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("hosts.allow"), allow).unwrap();
    std::fs::write(dir.path().join("hosts.deny"), deny).unwrap();
    let config = dir.path().join("knockwrap.toml");
    std::fs::write(
        &config,
        format!(
            "interface = \"lo\"\nhosts_allow = \"hosts.allow\"\nstate_dir = \"state\"\n{doors}"
        ),
    )
    .unwrap();
    (dir, config)
}

const ONE_DOOR: &str = "[[door]]\nname = \"openSSH\"\nsequence = [\"7000\", \"9000\", \"8000\"]\n\
                        service = \"sshd\"\nlease = \"1h\"\n";

fn real_sshd() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/sbin/sshd");
    if p.exists()
        || test_support::skip_or_fail("doctor on the real sshd", "/usr/sbin/sshd (openssh-server)")
    {
        Some(p)
    } else {
        None
    }
}

#[test]
fn debians_sshd_is_linked_with_libwrap() {
    let Some(sshd) = real_sshd() else { return };
    let (_d, config) = setup(ONE_DOOR, "", "sshd: ALL\n");
    let r = doctor(&config, &sshd);
    r.assert_has("✓ sshd /usr/sbin/sshd (from --sshd) is linked with libwrap (/usr/sbin/sshd → libwrap.so.0)");
}

#[test]
fn a_binary_without_libwrap_fails_and_says_what_it_means() {
    let (_d, config) = setup(ONE_DOOR, "", "sshd: ALL\n");
    let r = doctor(&config, Path::new("/bin/ls"));
    r.assert_has("✗ sshd /bin/ls (from --sshd) is not linked with libwrap: hosts.allow does nothing for sshd on this system");
    assert!(
        r.out
            .contains("    fix: give the doors `open_ports = [\"22/tcp\"]`"),
        "{}",
        r.out
    );
    assert_eq!(r.code, 1);
    // Not an ELF file at all.
    let r = doctor(&config, &config);
    r.assert_has("✗ sshd ");
    assert!(r.out.contains("not an ELF file"), "{}", r.out);
    assert_eq!(r.code, 1);
}

#[test]
fn a_sound_setup_passes_with_a_lockout_warning() {
    let Some(sshd) = real_sshd() else { return };
    let (d, config) = setup(ONE_DOOR, "# managed by knockwrap\n", "sshd: ALL\n");
    let r = doctor(&config, &sshd);
    let deny = d.path().join("hosts.deny");
    r.assert_has(&format!(
        "✓ {} denies `sshd` to clients that did not knock",
        deny.display()
    ));
    r.assert_has("✓ no rule in ");
    r.assert_has("✓ door `openSSH` manages `sshd` lines");
    r.assert_has("✓ interface lo exists (127.0.0.1");
    r.assert_has("! knocking is the only way in over ssh");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        r.assert_has("✓ configuration, hosts files, state_dir and key files belong to root");
        assert_eq!(r.code, 0, "{}", r.out);
    }
    // A standing rule for a trusted network, or a second door, lifts the warning.
    let (_d, config) = setup(ONE_DOOR, "sshd: 10.0.0.0/8\n", "sshd: ALL\n");
    doctor(&config, &sshd).assert_not("only way in");
    let two = format!("{ONE_DOOR}[[door]]\nname = \"second\"\nsequence = [\"5000\", \"2000\"]\nservice = \"SSHD\"\n");
    let (_d, config) = setup(&two, "", "ALL: ALL\n");
    doctor(&config, &sshd).assert_not("only way in");
}

#[test]
fn a_hosts_deny_that_denies_nothing_fails() {
    for deny in [
        "",
        "# sshd: ALL\n",
        "in.telnetd: ALL\n",
        "sshd: ALL EXCEPT 192.0.2.0/24\n",
    ] {
        let (_d, config) = setup(ONE_DOOR, "", deny);
        let r = doctor(&config, Path::new("/bin/ls"));
        r.assert_has("✗ hosts.deny does not deny `sshd` to ");
        assert!(
            r.out.contains("    fix: add `sshd: ALL` (or `ALL: ALL`)"),
            "{deny:?}: {}",
            r.out
        );
        assert_eq!(r.code, 1);
    }
}

#[test]
fn rules_that_shadow_the_managed_lines_fail() {
    for (allow, says) in [
        (
            "sshd: ALL\n",
            "line 1 grants `sshd` to 192.0.2.1, a client that never knocked",
        ),
        (
            "# x\nALL: ALL: deny\n",
            "is denied by hosts.allow line 2, before the managed lines",
        ),
        (
            "sshd: ALL: twist /bin/echo no\n",
            "is delegated by hosts.allow line 1",
        ),
    ] {
        let (_d, config) = setup(ONE_DOOR, allow, "ALL: ALL\n");
        let r = doctor(&config, Path::new("/bin/ls"));
        assert!(
            r.out
                .lines()
                .any(|l| l.starts_with("✗ ") && l.contains(says)),
            "{allow:?}: {says}\n{}",
            r.out
        );
    }
}

#[test]
fn wrong_service_names_interfaces_and_modes_fail() {
    let doors = "[[door]]\nname = \"a\"\nsequence = [\"7000\", \"9000\"]\nservice = \"ssh\"\n";
    let (d, config) = setup(doors, "", "ALL: ALL\n");
    let r = doctor(&config, Path::new("/bin/ls"));
    r.assert_has("✗ door `a` manages `ssh` lines, but sshd asks libwrap about `sshd`");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("interface = \"lo\"", "interface = \"nosuch0\"");
    std::fs::write(&config, text).unwrap();
    std::fs::set_permissions(
        d.path().join("hosts.allow"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let r = doctor(&config, Path::new("/bin/ls"));
    r.assert_has("✗ interface nosuch0 does not exist");
    r.assert_has(&format!(
        "✗ hosts.allow {} is writable by group or others (mode 0666)",
        d.path().join("hosts.allow").display()
    ));
    assert!(r.out.contains("fix: chmod go-w"), "{}", r.out);
}

#[test]
fn a_missing_config_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let r = doctor(&missing, Path::new("/bin/ls"));
    r.assert_has(&format!("✗ configuration {}:", missing.display()));
    assert!(r.out.contains("knockwrap import-knockd"), "{}", r.out);
    assert_eq!(r.code, 1);
}

#[test]
fn without_sshd_the_unit_files_execstart_is_used() {
    let unit = [
        "/etc/systemd/system/ssh.service",
        "/lib/systemd/system/ssh.service",
        "/usr/lib/systemd/system/ssh.service",
    ]
    .into_iter()
    .any(|p| Path::new(p).exists());
    if !unit
        && !test_support::skip_or_fail(
            "doctor reads ssh.service",
            "an ssh.service unit file (openssh-server)",
        )
    {
        return;
    }
    let (_d, config) = setup(ONE_DOOR, "", "sshd: ALL\n");
    let o = Command::new(env!("CARGO_BIN_EXE_knockwrap"))
        .args(["doctor", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.lines()
            .any(|l| l.contains("(from ExecStart of ") && l.contains("ssh.service)")),
        "{out}"
    );
}

#[test]
fn the_capture_account_is_checked() {
    let Some(sshd) = real_sshd() else { return };
    let with_user = |user: &str| format!("user = \"{user}\"\n{ONE_DOOR}");
    let (_d, config) = setup(&with_user("no-such-user-kw"), "", "sshd: ALL\n");
    let r = doctor(&config, &sshd);
    r.assert_has("✗ the capture process's account: user `no-such-user-kw` not found");
    assert_eq!(r.code, 1, "{}", r.out);
    let (_d, config) = setup(&with_user("daemon"), "", "sshd: ALL\n");
    doctor(&config, &sshd).assert_has("✓ the capture process will run as `daemon` (uid 1)");
}

const FIREWALL_DOOR: &str = "[[door]]\nname = \"fw\"\nsequence = [\"7000\", \"9000\", \"8000\"]\n\
                             service = \"sshd\"\nopen_ports = [\"22/tcp\"]\nhosts_allow = false\n\
                             lease = \"1h\"\n";

#[test]
fn without_libwrap_a_firewall_door_covers_sshd() {
    // No firewall door: the failure recommends one.
    let (_d, config) = setup(ONE_DOOR, "", "sshd: ALL\n");
    let r = doctor(&config, Path::new("/bin/ls"));
    assert!(
        r.out.contains(
            "    fix: give the doors `open_ports = [\"22/tcp\"]` and `hosts_allow = false`"
        ),
        "{}",
        r.out
    );
    // A firewall-only door: no failure about libwrap or hosts.deny (it writes no lines).
    let (_d, config) = setup(FIREWALL_DOOR, "", "");
    let r = doctor(&config, Path::new("/bin/ls"));
    r.assert_has(
        "✓ sshd /bin/ls (from --sshd) is not linked with libwrap: hosts.allow does nothing for \
         sshd here, and the firewall door covers it (door `fw` admits knockers to 22/tcp)",
    );
    r.assert_has("✓ no door writes hosts.allow lines (firewall doors only)");
    r.assert_not("✗ hosts.deny does not deny");
    r.assert_not("knocking is the only way in over ssh");
    // Beside it, a door that only writes lines lets no one in on this system.
    let both = format!("{FIREWALL_DOOR}{}", ONE_DOOR.replace("openSSH", "lines"));
    let (_d, config) = setup(&both, "", "sshd: ALL\n");
    let r = doctor(&config, Path::new("/bin/ls"));
    r.assert_has(
        "✓ sshd /bin/ls (from --sshd) is not linked with libwrap: hosts.allow does nothing",
    );
    r.assert_has("✗ door `lines` only writes hosts.allow lines for sshd, which let no one in");
    assert_eq!(r.code, 1, "{}", r.out);
}

#[test]
fn doctor_and_check_give_the_same_lockout_warnings() {
    let (_d, config) = setup(FIREWALL_DOOR, "", "");
    let session = "198.51.100.7 50122 192.0.2.1 22";
    let o = Command::new(env!("CARGO_BIN_EXE_knockwrap"))
        .args(["doctor", "--sshd", "/bin/ls", "--config"])
        .arg(&config)
        .env("SSH_CONNECTION", session)
        .output()
        .unwrap();
    let doctor_out = String::from_utf8(o.stdout).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_knockwrap"))
        .args(["check", "--config"])
        .arg(&config)
        .env("SSH_CONNECTION", session)
        .output()
        .unwrap();
    let check_out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for code in ["firewall-no-always-allow", "firewall-locks-out-session"] {
        let line = doctor_out
            .lines()
            .find(|l| l.starts_with("! ") && l.contains(&format!("warning[{code}]")))
            .unwrap_or_else(|| panic!("no {code} warning in:\n{doctor_out}"));
        // The message itself, as check prints it.
        let message = line[2..].split(" (line ").next().unwrap();
        assert!(
            check_out.contains(message),
            "check does not say {message:?}:\n{check_out}"
        );
    }
    assert!(
        doctor_out.contains("this SSH session comes from 198.51.100.7 to port 22"),
        "{doctor_out}"
    );
}

/// nft and `knockwrap doctor` in a network namespace of the test's own (`test_support::net`,
/// deleted on drop, also on a panic).
trait InNetns {
    fn nft(&self, ruleset: &str);
    fn doctor(&self, config: &Path) -> Report;
}

impl InNetns for Netns {
    fn nft(&self, ruleset: &str) {
        use std::io::Write;
        let mut child = self
            .cmd("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ruleset.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    fn doctor(&self, config: &Path) -> Report {
        let o = self
            .cmd(env!("CARGO_BIN_EXE_knockwrap"))
            .args(["doctor", "--sshd", "/bin/ls", "--config"])
            .arg(config)
            .env_remove("SSH_CONNECTION")
            .output()
            .unwrap();
        Report {
            code: o.status.code().unwrap(),
            out: String::from_utf8(o.stdout).unwrap(),
        }
    }
}

#[test]
fn another_table_that_drops_the_guarded_port_is_named() {
    test_support::skip_unless_root!("ip", "nft");
    let ns = Netns::new("drop");
    let (_d, config) = setup(FIREWALL_DOOR, "", "");
    // knockwrap's own table, with its drop: never reported.
    ns.nft(
        "table inet knockwrap {\n chain input { type filter hook input priority -10; policy accept; \
         tcp dport 22 jump guard; }\n chain guard { iif \"lo\" accept; drop; }\n}\n",
    );
    let r = ns.doctor(&config);
    r.assert_has("✓ nft is installed (");
    r.assert_has("✓ the kernel has nf_tables");
    r.assert_has(
        "✓ no other nftables table drops 22/tcp on the input hook (0 base chains read; table \
         inet knockwrap is installed)",
    );
    r.assert_has("! no `always_allow` in `[firewall]`");

    // Another table drops port 22, a third drops everything by policy.
    ns.nft(
        "table inet filter {\n chain input { type filter hook input priority 0; policy accept; \
         ct state established,related accept; tcp dport 22 drop; }\n}\n\
         table ip strict {\n chain INPUT { type filter hook input priority 10; policy drop; \
         iif \"lo\" accept; tcp dport 80 accept; }\n}\n",
    );
    let r = ns.doctor(&config);
    let line = r
        .out
        .lines()
        .find(|l| l.starts_with("! table inet filter, chain input"))
        .unwrap_or_else(|| panic!("no warning for inet filter in:\n{}", r.out));
    assert!(
        line.contains(
            "(hook input, policy accept) drops new connections to 22/tcp: by rule handle"
        ) && line
            .contains("a drop anywhere is final, so it also drops the knockers knockwrap admits"),
        "{line}"
    );
    r.assert_has(
        "! table ip strict, chain INPUT (hook input, policy drop) drops new connections to \
         22/tcp: by its policy drop (no rule accepts it first)",
    );
    assert!(
        r.out
            .contains("nft insert rule inet filter input tcp dport 22 accept"),
        "{}",
        r.out
    );
    r.assert_not("✓ no other nftables table drops");

    // Let the port through in both: the warnings go.
    ns.nft(
        "flush table inet filter\nadd rule inet filter input tcp dport 22 accept\n\
         insert rule ip strict INPUT tcp dport 22 accept\n",
    );
    let r = ns.doctor(&config);
    r.assert_has(
        "✓ no other nftables table drops 22/tcp on the input hook (2 base chains read; table \
         inet knockwrap is installed)",
    );
    r.assert_not("! table ");
}
