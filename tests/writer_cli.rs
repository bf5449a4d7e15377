//! `knockwrap allow` / `revoke` / `list` as an operator runs them: exit codes, dry-run diffs,
//! the effective-grant check (cross-checked with the real tcpdmatch), leases, the last-moment
//! `>>` salvage, and kills at each step of a write (widened with the test-only pause hook).

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn kw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_knockwrap"))
        .args(args)
        .output()
        .expect("spawn knockwrap")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn usage_errors_exit_2_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"a: b\n").unwrap();
    for args in [
        vec!["allow", "203.0.113.4.example", "--hosts-allow", s(&p)],
        vec!["allow", "[2001:db8::1]", "--hosts-allow", s(&p)],
        vec!["allow", "203.0.113.0/24", "--hosts-allow", s(&p)],
        vec![
            "allow",
            "203.0.113.4",
            "--service",
            "ss hd",
            "--hosts-allow",
            s(&p),
        ],
        vec![
            "allow",
            "203.0.113.4",
            "--service",
            "a:b",
            "--hosts-allow",
            s(&p),
        ],
        vec![
            "allow",
            "203.0.113.4",
            "--for",
            "1h",
            "--hosts-allow",
            s(&p),
        ],
        vec![
            "allow",
            "203.0.113.4",
            "--for",
            "soon",
            "--hosts-allow",
            s(&p),
            "--state-dir",
            "x",
        ],
        vec!["revoke", "not-an-ip", "--hosts-allow", s(&p)],
    ] {
        let o = kw(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", err(&o));
        assert!(!err(&o).is_empty());
    }
    assert_eq!(fs::read(&p).unwrap(), b"a: b\n");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn dry_run_prints_the_diff_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"# c\r\nsshd: 10.0.0.1\r\nSSHD: 203.0.113.45").unwrap();
    let o = kw(&["allow", "203.0.113.4", "--hosts-allow", s(&p), "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let label = s(&p);
    assert_eq!(
        out,
        format!(
            "--- {label}\n+++ {label} (after allow)\n@@ -1,3 +1,4 @@\n # c\r\n sshd: 10.0.0.1\r\n\
             -SSHD: 203.0.113.45\n\\ No newline at end of file\n+SSHD: 203.0.113.45\r\n\
             +SSHD: 203.0.113.4\r\n"
        )
    );
    assert_eq!(
        fs::read(&p).unwrap(),
        b"# c\r\nsshd: 10.0.0.1\r\nSSHD: 203.0.113.45"
    );
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no lock, temp or .bak"
    );
    // revoke --dry-run of an absent line: no diff.
    let o = kw(&["revoke", "203.0.113.4", "--hosts-allow", s(&p), "--dry-run"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("@@"));
}

/// tcpdmatch's verdict (None when it cannot be run here).
fn tcpdmatch(dir: &Path, client: &str) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/sbin/tcpdmatch").exists() {
        test_support::skip_or_fail("tcpdmatch cross-check", "root and tcpd");
        return None;
    }
    let o = Command::new("unshare")
        .args(["-n", "/usr/sbin/tcpdmatch", "-d", "sshd", client])
        .current_dir(dir)
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("access:").map(|a| a.trim().to_string()))
}

#[test]
fn allow_that_libwrap_would_not_honour_exits_1_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(dir.path().join("hosts.deny"), b"ALL: ALL\n").unwrap();
    // An earlier rule in hosts.allow denies the address.
    fs::write(&p, b"# first\nsshd: 203.0.113.0/255.255.255.0 : deny\n").unwrap();
    let o = kw(&["allow", "203.0.113.4", "--hosts-allow", s(&p)]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("would NOT grant"), "{e}");
    assert!(e.contains(&format!("{}:2", s(&p))), "{e}");
    // The line was written (removing it would change nothing) ...
    assert!(fs::read_to_string(&p)
        .unwrap()
        .ends_with("\nSSHD: 203.0.113.4\n"));
    // ... and the real libwrap agrees it does not grant.
    if let Some(v) = tcpdmatch(dir.path(), "203.0.113.4") {
        assert_eq!(v, "denied");
    }

    // The deny table decides when hosts.allow has no say: an over-long line earlier makes
    // Debian's libwrap stop reading hosts.allow.
    let mut long = b"sshd: ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 3000));
    long.push(b'\n');
    fs::write(&p, &long).unwrap();
    let o = kw(&["allow", "198.51.100.7", "--hosts-allow", s(&p)]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("would NOT grant"), "{e}");

    // And a grant libwrap does honour exits 0.
    fs::write(&p, b"# fine\n").unwrap();
    let o = kw(&["allow", "198.51.100.7", "--hosts-allow", s(&p)]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    if let Some(v) = tcpdmatch(dir.path(), "198.51.100.7") {
        assert_eq!(v, "granted");
    }
}

#[test]
fn leases_record_who_added_the_line_and_list_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    let state = dir.path().join("state");
    fs::write(&p, b"SSHD: 192.0.2.1\n").unwrap(); // written by hand
                                                  // Denied by default, as on a real host: otherwise libwrap grants every address anyway
                                                  // and a revoke rightly fails.
    fs::write(dir.path().join("hosts.deny"), b"ALL: ALL\n").unwrap();
    let st = s(&state);
    for (ip, dur) in [
        ("192.0.2.1", "1h"),
        ("192.0.2.2", "90s"),
        ("2001:db8::7", "2d"),
    ] {
        let o = kw(&[
            "allow",
            ip,
            "--for",
            dur,
            "--hosts-allow",
            s(&p),
            "--state-dir",
            st,
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    }
    let o = kw(&[
        "allow",
        "192.0.2.9",
        "--hosts-allow",
        s(&p),
        "--state-dir",
        st,
    ]);
    assert_eq!(o.status.code(), Some(0));
    // Who added each line is the journal's own record (not in `list`'s output).
    let journal = hosts_writer::Journal::load(&state)
        .unwrap()
        .leases()
        .unwrap();
    let by_ip = |ip: &str| {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        journal.iter().find(|l| l.ip == ip).cloned().unwrap()
    };
    assert!(
        !by_ip("192.0.2.1").added_line,
        "the operator's line is not ours"
    );
    assert!(by_ip("192.0.2.2").added_line);
    assert_eq!(by_ip("192.0.2.9").expires_at, None);

    let o = kw(&["list", "--state-dir", st, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 4);
    for item in items {
        let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{item}");
        assert_eq!(item["door"], "manual");
        assert_eq!(item["service"], "SSHD");
        match &item["expires_at"] {
            serde_json::Value::Null => assert_eq!(item["ip"], "192.0.2.9"),
            serde_json::Value::String(t) => {
                // YYYY-MM-DDTHH:MM:SSZ
                let b = t.as_bytes();
                assert_eq!(b.len(), 20, "{t}");
                assert!(
                    b[4] == b'-' && b[10] == b'T' && b[13] == b':' && b[19] == b'Z',
                    "{t}"
                );
            }
            other => panic!("expires_at {other}"),
        }
    }
    let o = kw(&["list", "--state-dir", st]);
    let human = String::from_utf8(o.stdout).unwrap();
    assert!(
        human.contains("2001:db8::7") && human.contains("never"),
        "{human}"
    );

    // An explicit revoke removes the line, even the operator's, and the lease.
    let o = kw(&[
        "revoke",
        "192.0.2.1",
        "--hosts-allow",
        s(&p),
        "--state-dir",
        st,
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!fs::read_to_string(&p)
        .unwrap()
        .contains("SSHD: 192.0.2.1\n"));
    let o = kw(&["list", "--state-dir", st, "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
}

#[test]
fn an_append_in_the_last_moment_before_the_rename_is_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"a: b\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_knockwrap"))
        .args(["allow", "192.0.2.1", "--hosts-allow", s(&p)])
        .env("KNOCKWRAP_TEST_PAUSE", "checked:600")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The writer has checked the file and is about to rename: a plain `>>` now hits the inode
    // that is about to be replaced.
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .unwrap()
        .write_all(b"foreign: 198.51.100.1\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        fs::read(&p).unwrap(),
        b"a: b\nSSHD: 192.0.2.1\nforeign: 198.51.100.1\n"
    );
}

/// A foreign write to the lease journal between the writer's read and its append (here a
/// torn record, no newline) is seen before anything is appended: the writer reads again and,
/// the file no longer ending in a newline, rewrites it whole without the torn bytes. Appending
/// blindly would glue its record onto them and leave a journal that no longer reads.
#[test]
fn a_journal_changed_between_read_and_append_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    let state = dir.path().join("state");
    fs::write(&p, b"").unwrap();
    let allow = |ip: &str, pause: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_knockwrap"));
        cmd.args(["allow", ip, "--for", "1h", "--hosts-allow", s(&p)])
            .args(["--state-dir", s(&state)]);
        if let Some(pause) = pause {
            cmd.env("KNOCKWRAP_TEST_PAUSE", pause);
        }
        cmd.spawn().unwrap()
    };
    assert!(allow("192.0.2.1", None).wait().unwrap().success());
    let mut child = allow("192.0.2.2", Some("state-read:800"));
    std::thread::sleep(Duration::from_millis(300));
    let torn = b"{\"set\":{\"ip\":\"192.0.2.9\"";
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .open(state.join("leases.json"))
        .unwrap()
        .write_all(torn)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let leases = hosts_writer::Journal::at(&state).leases();
    let ips: Vec<String> = leases
        .unwrap_or_else(|e| panic!("journal no longer reads: {e}"))
        .iter()
        .map(|l| l.ip.to_string())
        .collect();
    assert_eq!(ips, ["192.0.2.1", "192.0.2.2"]);
    let bytes = fs::read(state.join("leases.json")).unwrap();
    assert!(!bytes.windows(torn.len()).any(|w| w == torn));
}

#[test]
fn a_kill_at_each_step_leaves_old_content_and_a_whole_backup() {
    for step in ["locked", "temp-written", "backup-kept", "checked"] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts.allow");
        let bak = dir.path().join("hosts.allow.bak");
        fs::write(&p, b"v1\n").unwrap();
        let o = kw(&["allow", "192.0.2.1", "--hosts-allow", s(&p)]);
        assert!(o.status.success());
        let v2 = fs::read(&p).unwrap();
        assert_eq!(fs::read(&bak).unwrap(), b"v1\n");
        let mut child = Command::new(env!("CARGO_BIN_EXE_knockwrap"))
            .args(["allow", "192.0.2.2", "--hosts-allow", s(&p)])
            .env("KNOCKWRAP_TEST_PAUSE", format!("{step}:5000"))
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(fs::read(&p).unwrap(), v2, "killed at {step}");
        let b = fs::read(&bak).unwrap();
        assert!(b == b"v1\n" || b == v2, "killed at {step}: .bak {b:?}");
        // The next writer sweeps the dead one's temp files and completes.
        let o = kw(&["allow", "192.0.2.2", "--hosts-allow", s(&p)]);
        assert!(o.status.success(), "{}", err(&o));
        assert_eq!(fs::read(&bak).unwrap(), v2);
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.contains("tmp.")),
            "{step}: {names:?}"
        );
    }
}

#[test]
fn symlinked_hosts_allow_stays_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("real")).unwrap();
    fs::write(dir.path().join("real/hosts.allow"), b"# real\n").unwrap();
    let link = dir.path().join("hosts.allow");
    std::os::unix::fs::symlink("real/hosts.allow", &link).unwrap();
    let o = kw(&["allow", "192.0.2.1", "--hosts-allow", s(&link)]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read(dir.path().join("real/hosts.allow")).unwrap(),
        b"# real\nSSHD: 192.0.2.1\n"
    );
}

/// Issue point 7: `revoke` matches the service as libwrap does (a managed `sshd: X` is
/// SSHD's line), and when libwrap still grants the address afterwards (an operator's own
/// line, a wider rule) it exits 1 naming the deciding file:line instead of reading as success.
#[test]
fn revoke_matches_the_service_in_any_case_and_fails_while_libwrap_still_grants() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    let state = dir.path().join("state");
    fs::write(dir.path().join("hosts.deny"), b"ALL: ALL\n").unwrap();
    fs::write(&p, b"# ops\n").unwrap();
    let o = kw(&[
        "allow",
        "198.51.100.8",
        "--service",
        "sshd",
        "--for",
        "1h",
        "--hosts-allow",
        s(&p),
        "--state-dir",
        s(&state),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // The default service is SSHD: the same daemon for libwrap.
    let o = kw(&[
        "revoke",
        "198.51.100.8",
        "--hosts-allow",
        s(&p),
        "--state-dir",
        s(&state),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(fs::read_to_string(&p).unwrap(), "# ops\n");
    if let Some(v) = tcpdmatch(dir.path(), "198.51.100.8") {
        assert_eq!(v, "denied");
    }
    let list = kw(&["list", "--state-dir", s(&state), "--format", "json"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");

    // A wider rule of the operator's still lets the address in: exit 1, naming file:line.
    fs::write(&p, b"# ops\nsshd: 198.51.100.0/255.255.255.0\n").unwrap();
    kw(&[
        "allow",
        "198.51.100.8",
        "--hosts-allow",
        s(&p),
        "--state-dir",
        s(&state),
    ]);
    let o = kw(&[
        "revoke",
        "198.51.100.8",
        "--hosts-allow",
        s(&p),
        "--state-dir",
        s(&state),
    ]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("still grants") && e.contains(&format!("{}:2", s(&p))),
        "{e}"
    );
    assert_eq!(
        fs::read_to_string(&p).unwrap(),
        "# ops\nsshd: 198.51.100.0/255.255.255.0\n",
        "the managed line is gone, the operator's rule stays"
    );
    if let Some(v) = tcpdmatch(dir.path(), "198.51.100.8") {
        assert_eq!(v, "granted");
    }

    // `list --hosts-allow` names a managed-form line no lease accounts for.
    fs::write(&p, b"# ops\nSSHD: 198.51.100.9\n").unwrap();
    let o = kw(&["list", "--state-dir", s(&state), "--hosts-allow", s(&p)]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        out.contains(&format!("{}:2: SSHD: 198.51.100.9", s(&p))),
        "{out}"
    );
}
