//! `knockwrap check --config`: configuration problems are reported with file:line:column and
//! exit 2; without FILE arguments the configuration's own hosts files are checked.

use std::path::Path;
use std::process::Command;

fn check(args: &[&str], dir: &Path) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_knockwrap"))
        .arg("check")
        .args(args)
        .args(["--format", "json"])
        .current_dir(dir)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    });
    (out.status.code().unwrap(), json)
}

const DOOR: &str =
    "[[door]]\nname = \"openSSH\"\nsequence = [\"7000\", \"8000\"]\nservice = \"SSHD\"\n";

#[test]
fn unknown_key_is_exit_2_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "interface = \"lo\"\nhosts_allow = \"h.allow\"\nstate_dir = \"st\"\nlease_time = 5\n{DOOR}"
    );
    std::fs::write(dir.path().join("k.toml"), text).unwrap();
    let (code, json) = check(&["--config", "k.toml"], dir.path());
    assert_eq!(code, 2);
    let config = &json["files"][0];
    assert_eq!(config["path"], "k.toml");
    assert_eq!(config["valid"], false);
    let d = &config["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(d["code"], "invalid-config");
    assert!(d["message"].as_str().unwrap().contains("lease_time"), "{d}");
}

#[test]
fn valid_config_checks_its_own_hosts_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("interface = \"lo\"\nhosts_allow = \"h.allow\"\nstate_dir = \"st\"\n{DOOR}");
    std::fs::write(dir.path().join("k.toml"), text).unwrap();
    std::fs::write(
        dir.path().join("h.allow"),
        "SSHD: 203.0.113.7\nsshd 10.0.0.1\n",
    )
    .unwrap();
    let (code, json) = check(&["--config", "k.toml"], dir.path());
    assert_eq!(code, 1, "{json}");
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{json}");
    assert_eq!(files[0]["valid"], true);
    let allow = &files[1];
    assert!(allow["path"].as_str().unwrap().ends_with("h.allow"));
    assert_eq!(allow["diagnostics"][0]["code"], "missing-colon");
    assert_eq!(allow["diagnostics"][0]["line"], 2);
    // hosts.deny beside it is missing: empty, as libwrap reads it, and valid.
    assert!(files[2]["path"].as_str().unwrap().ends_with("hosts.deny"));
    assert_eq!(files[2]["valid"], true);
}

/// What the daemon would set aside or disable at start is a finding of `check --config` too:
/// a corrupt lease journal, untrustworthy one-time progress, an open state directory.
#[test]
fn state_problems_are_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "interface = \"lo\"\nhosts_allow = \"h.allow\"\nstate_dir = \"st\"\n{DOOR}\
         [[door]]\nname = \"otp\"\none_time_sequences = \"o.otp\"\nservice = \"SSHD\"\n"
    );
    std::fs::write(dir.path().join("k.toml"), text).unwrap();
    std::fs::write(dir.path().join("h.allow"), "").unwrap();
    std::fs::write(dir.path().join("o.otp"), "7301,7305\n7401,7405\n").unwrap();
    let st = dir.path().join("st");
    std::fs::create_dir(&st).unwrap();
    std::fs::set_permissions(&st, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (code, json) = check(&["--config", "k.toml"], dir.path());
    assert_eq!(code, 0, "a clean state: {json}");

    std::fs::write(
        st.join("leases.json"),
        "{\"version\": 1,\n\"leases\": [oops]}",
    )
    .unwrap();
    std::fs::write(
        st.join("onetime-otp.json"),
        "{\"door\":\"otp\",\"next\":1,\"used_sha256\":\"00\"}",
    )
    .unwrap();
    std::fs::set_permissions(&st, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, json) = check(&["--config", "k.toml"], dir.path());
    assert_eq!(code, 1, "{json}");
    let codes: Vec<String> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["diagnostics"].as_array().unwrap().clone())
        .map(|d| d["code"].as_str().unwrap().to_owned())
        .collect();
    for want in ["corrupt-journal", "untrusted-progress", "unsafe-state-dir"] {
        assert!(codes.iter().any(|c| c == want), "{want} missing: {json}");
    }
    let journal = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("leases.json"))
        .expect("the journal is named");
    assert_eq!(journal["diagnostics"][0]["line"].as_u64(), Some(2));
}

/// What tcpdchk checks on the machine beyond syntax: a banners directory that does not
/// exist, a spawn/twist program that cannot run, a user or group this machine lacks.
#[test]
fn options_naming_what_this_machine_lacks_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("h.allow"),
        "sshd: 10.0.0.1 : banners /nonexistent/banners\n\
         sshd: 10.0.0.2 : spawn /usr/sbin/no-such-finger %h\n\
         sshd: 10.0.0.4 : user nosuchuser.nosuchgroup\n\
         sshd: 10.0.0.5 : user root : twist /bin/echo hi\n\
         in.x: ALL : banners /tmp\n",
    )
    .unwrap();
    let (code, json) = check(&["h.allow"], dir.path());
    assert_eq!(code, 0, "warnings only: {json}");
    let found: Vec<(u64, String)> = json["files"][0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().unwrap(),
                d["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        (1, "missing-banners-dir"),
        (2, "missing-program"),
        (3, "unknown-user"),
        (3, "unknown-group"),
    ] {
        assert!(
            found.iter().any(|(l, c)| *l == want.0 && c == want.1),
            "{want:?} missing: {json}"
        );
    }
    assert!(
        !found.iter().any(|(l, _)| *l >= 4),
        "false warnings: {json}"
    );
}

/// `check --config` with the environment of an SSH session (or none) and a format.
fn check_in_session(dir: &Path, session: Option<&str>, format: &str) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_knockwrap"));
    cmd.args(["check", "--config", "k.toml", "--format", format])
        .current_dir(dir)
        .env_remove("SSH_CONNECTION");
    if let Some(s) = session {
        cmd.env("SSH_CONNECTION", s);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The firewall door's keys are checked like the others, and a configuration that would hide
/// sshd from the operator's own session is warned about at its lines, in every format.
#[test]
fn firewall_keys_and_lockout_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let write = |text: &str| std::fs::write(dir.path().join("k.toml"), text).unwrap();
    let head = "interface = \"lo\"\nhosts_allow = \"h.allow\"\nstate_dir = \"st\"\n";
    std::fs::write(dir.path().join("h.allow"), "").unwrap();
    let st = dir.path().join("st");
    std::fs::create_dir(&st).unwrap();
    std::fs::set_permissions(
        &st,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
    )
    .unwrap();

    // A mistake in a firewall key: exit 2 at its position.
    write(&format!(
        "{head}[firewall]\nalways_allow = [\"10.0.0.1/8\"]\n{DOOR}open_ports = [\"22/tcp\"]\n"
    ));
    let (code, json) = check(&["--config", "k.toml"], dir.path());
    assert_eq!(code, 2, "{json}");
    let d = &json["files"][0]["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(5), Some(17)),
        "{d}"
    );
    assert_eq!(d["code"], "invalid-config");
    assert!(d["message"].as_str().unwrap().contains("10.0.0.0/8"), "{d}");

    // Valid, guarding 22/tcp with no always_allow, checked from an SSH session on port 22.
    write(&format!(
        "{head}{DOOR}open_ports = [\"22/tcp\"]\nhosts_allow = false\n"
    ));
    let (code, out) = check_in_session(dir.path(), Some("198.51.100.7 50122 192.0.2.1 22"), "json");
    assert_eq!(code, 0, "warnings only: {out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let found: Vec<(u64, u64, String, String)> = json["files"][0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["severity"].as_str().unwrap().to_owned(),
                d["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (8, 14, "warning".into(), "firewall-no-always-allow".into()),
            (8, 14, "warning".into(), "firewall-locks-out-session".into()),
        ],
        "{json}"
    );
    assert_eq!(json["files"][0]["valid"], true);

    let (_, human) = check_in_session(dir.path(), Some("198.51.100.7 50122 192.0.2.1 22"), "human");
    assert!(
        human.contains(
            "warning[firewall-locks-out-session]: this SSH session comes from 198.51.100.7"
        ),
        "{human}"
    );
    assert!(human.contains("--> k.toml:8:14"), "{human}");
    let (_, gh) = check_in_session(dir.path(), None, "github");
    assert!(
        gh.contains("::warning file=k.toml,line=8,col=14,title=firewall-no-always-allow::"),
        "{gh}"
    );
    assert!(
        !gh.contains("locks-out-session"),
        "no session, no such warning: {gh}"
    );

    // always_allow covering the session silences both.
    write(&format!(
        "{head}[firewall]\nalways_allow = [\"198.51.100.0/24\", \"2001:db8::/32\"]\n\
         {DOOR}open_ports = [\"22/tcp\"]\nhosts_allow = false\n"
    ));
    let (code, out) = check_in_session(dir.path(), Some("198.51.100.7 50122 192.0.2.1 22"), "json");
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        json["files"][0]["diagnostics"],
        serde_json::json!([]),
        "{json}"
    );
}
