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
