//! `Config::load`, `check` and the progress store, on real files in a temporary directory.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use knock_match::{Consume, DoorKind, KnockEvent, Matcher, MatcherOptions, Proto, Step, TcpFlags};
use knockwrap_config::progress::ProgressStore;
use knockwrap_config::{check, Config};

const KEY_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n";

fn write(dir: &Path, name: &str, text: &str, mode: u32) {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

fn config_text() -> String {
    r#"
state_dir = "state"

[[door]]
name = "otp"
one_time_sequences = "open.otp"
service = "SSHD"
seq_timeout = 10

[[door]]
name = "totp"
totp_secret_file = "keys/totp.key"
totp_ports = "20000-40000"
service = "SSHD"
"#
    .to_string()
}

fn setup(otp: &str, key: &str, key_mode: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("keys")).unwrap();
    write(dir.path(), "knockwrap.toml", &config_text(), 0o644);
    write(dir.path(), "open.otp", otp, 0o644);
    write(&dir.path().join("keys"), "totp.key", key, key_mode);
    dir
}

#[test]
fn loads_files_relative_to_the_config() {
    let dir = setup("# used ones\n1001,1009\n2001,2002:udp\n", KEY_B32, 0o600);
    let c = Config::load(dir.path().join("knockwrap.toml")).unwrap();
    assert_eq!(c.state_dir, dir.path().join("state"));
    match &c.doors[0].door.kind {
        DoorKind::OneTime { sequences, next } => {
            assert_eq!(
                sequences,
                &vec![
                    vec![Step::tcp(1001), Step::tcp(1009)],
                    vec![Step::tcp(2001), Step::udp(2002)]
                ]
            );
            assert_eq!(*next, 0);
        }
        k => panic!("{k:?}"),
    }
    match &c.doors[1].door.kind {
        DoorKind::Totp(p) => assert_eq!(p.secret, b"12345678901234567890"),
        k => panic!("{k:?}"),
    }
    assert!(c.doors.iter().all(|d| !d.needs_files()));
    assert!(check(dir.path().join("knockwrap.toml")).is_empty());
    Matcher::new(c.doors(), MatcherOptions::default()).unwrap();
}

#[test]
fn file_problems_are_reported_where_they_are() {
    let cfg = |d: &tempfile::TempDir| d.path().join("knockwrap.toml");
    // A bad line in the one-time file: that file's line and column.
    let d = setup("1001,1009\n2001,20x2\n", KEY_B32, 0o600);
    let errs = check(cfg(&d));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, d.path().join("open.otp"));
    assert_eq!((errs[0].line, errs[0].column), (2, 6));

    let cases: [(&str, &str, u32, usize, usize, &str); 6] = [
        ("", KEY_B32, 0o600, 6, 22, "holds no sequence"),
        (
            "1,3\n",
            KEY_B32,
            0o640,
            12,
            20,
            "accessible by group or others",
        ),
        ("1,3\n", KEY_B32, 0o604, 12, 20, "mode 0604"),
        ("1,3\n", "GEZDGNBVGY3TQOJQ\n", 0o600, 12, 20, "80 bits"),
        ("1,3\n", "not base32!\n", 0o600, 12, 20, "not base32"),
        ("1,3\n", "\n", 0o600, 12, 20, "not base32"),
    ];
    for (otp, key, mode, line, col, msg) in cases {
        let d = setup(otp, key, mode);
        let errs = check(cfg(&d));
        assert_eq!(errs.len(), 1, "{msg}: {errs:?}");
        let e = &errs[0];
        assert_eq!(e.path, cfg(&d));
        assert_eq!((e.line, e.column), (line, col), "{msg}: {e}");
        assert!(e.message.contains(msg), "{e}");
    }

    // A key owned by another account is refused (checked on the opened descriptor).
    if rustix::process::geteuid().is_root() {
        let d = setup("1,3\n", KEY_B32, 0o600);
        std::os::unix::fs::chown(d.path().join("keys/totp.key"), Some(65534), Some(65534)).unwrap();
        let errs = check(cfg(&d));
        assert!(
            errs.iter()
                .any(|e| e.message.contains("belongs to uid 65534")),
            "{errs:?}"
        );
    }

    let d = setup("1,3\n", KEY_B32, 0o600);
    fs::remove_file(d.path().join("open.otp")).unwrap();
    let errs = check(cfg(&d));
    assert!(
        errs[0].message.contains("cannot read one-time sequences"),
        "{errs:?}"
    );
    assert_eq!(errs[0].line, 6);

    let missing = check(d.path().join("nope.toml"));
    assert_eq!((missing[0].line, missing[0].column), (1, 1));
    assert!(missing[0].message.contains("cannot read configuration"));

    fs::write(cfg(&d), b"x = \"\xff\"\n").unwrap();
    let bad = check(cfg(&d));
    assert!(bad[0].message.contains("UTF-8"), "{bad:?}");
}

fn ev(t: u64, port: u16, proto: Proto) -> KnockEvent {
    KnockEvent {
        time_ms: t,
        src: "198.18.0.7".parse::<IpAddr>().unwrap(),
        dst: "198.18.0.1".parse::<IpAddr>().unwrap(),
        proto,
        dport: port,
        flags: TcpFlags(if proto == Proto::Tcp {
            TcpFlags::SYN
        } else {
            0
        }),
        to_host: true,
        via_loopback: false,
        attempt: 0,
        interface: 0,
    }
}

/// Builds the daemon's matcher: load, apply progress, construct.
fn start(dir: &Path) -> (Matcher, ProgressStore) {
    let c = Config::load(dir.join("knockwrap.toml")).unwrap();
    let store = ProgressStore::new(&c.state_dir);
    let mut doors = c.doors();
    let errors = store.apply(&mut doors);
    assert!(errors.is_empty(), "{errors:?}");
    (
        Matcher::new(doors, MatcherOptions::default()).unwrap(),
        store,
    )
}

/// Knocks, and for each decision persists progress first, as the daemon must.
fn knock(m: &mut Matcher, store: &ProgressStore, t: u64, seq: &[(u16, Proto)]) -> usize {
    let mut granted = 0;
    for (i, &(port, proto)) in seq.iter().enumerate() {
        for d in m.observe(&ev(t + i as u64, port, proto)) {
            let door = m.doors().nth(d.door).unwrap().clone();
            store.record(&door, &d.consume.unwrap()).unwrap();
            granted += 1;
        }
    }
    granted
}

#[test]
fn one_time_rotation_survives_restarts() {
    let d = setup("1001,1009\n2001,2002:udp\n3001,3009\n", KEY_B32, 0o600);
    let first = [(1001, Proto::Tcp), (1009, Proto::Tcp)];
    let second = [(2001, Proto::Tcp), (2002, Proto::Udp)];
    let third = [(3001, Proto::Tcp), (3009, Proto::Tcp)];

    let (mut m, store) = start(d.path());
    assert_eq!(knock(&mut m, &store, 1_000, &first), 1);
    assert!(d.path().join("state/onetime-otp.json").exists());
    assert_eq!(
        fs::read_to_string(d.path().join("open.otp")).unwrap(),
        "1001,1009\n2001,2002:udp\n3001,3009\n",
        "the operator's file is never rewritten"
    );
    // No temp file left behind (the writer's sidecar lock stays, by design), and the
    // progress file is private.
    let names: Vec<_> = fs::read_dir(d.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".knockwrap.lock"))
        .collect();
    assert_eq!(names, ["onetime-otp.json"], "{names:?}");
    let mode = fs::metadata(d.path().join("state/onetime-otp.json"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    // Restart: the first sequence stays used, the second works.
    let (mut m, store) = start(d.path());
    assert_eq!(knock(&mut m, &store, 2_000, &first), 0);
    assert_eq!(knock(&mut m, &store, 3_000, &second), 1);

    // Appending sequences keeps progress.
    fs::write(
        d.path().join("open.otp"),
        "1001,1009\n2001,2002:udp\n3001,3009\n4001,4009\n",
    )
    .unwrap();
    let (mut m, store) = start(d.path());
    assert_eq!(knock(&mut m, &store, 4_000, &second), 0);
    assert_eq!(knock(&mut m, &store, 5_000, &third), 1);
    assert_eq!(
        knock(
            &mut m,
            &store,
            6_000,
            &[(4001, Proto::Tcp), (4009, Proto::Tcp)]
        ),
        1
    );
    assert_eq!(m.exhausted_doors(), vec!["otp"]);

    // Exhausted after a restart too.
    let (m, _) = start(d.path());
    assert_eq!(m.exhausted_doors(), vec!["otp"]);

    // Editing used lines disables the door with an error instead of guessing.
    fs::write(
        d.path().join("open.otp"),
        "1111,1119\n2001,2002:udp\n3001,3009\n4001,4009\n5001,5009\n",
    )
    .unwrap();
    let c = Config::load(d.path().join("knockwrap.toml")).unwrap();
    let store = ProgressStore::new(&c.state_dir);
    let mut doors = c.doors();
    let errors = store.apply(&mut doors);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().contains("edited"), "{}", errors[0]);
    let m = Matcher::new(doors, MatcherOptions::default()).unwrap();
    assert_eq!(m.exhausted_doors(), vec!["otp"]);
}

#[test]
fn totp_neighbours_of_a_used_step_stay_usable_across_restarts() {
    let d = setup("1,3\n", KEY_B32, 0o600);
    let secret = b"12345678901234567890";
    let t0 = 1_700_000_000_000u64;
    let c = t0 / 30_000;
    let seq = |k: u64| -> Vec<(u16, Proto)> {
        knock_match::totp_sequence(secret, k, 4, 20000, 40000)
            .into_iter()
            .map(|p| (p, Proto::Tcp))
            .collect()
    };
    // Someone (an attacker who saw a code, or the client itself) uses step c+1 first.
    let (mut m, store) = start(d.path());
    assert_eq!(knock(&mut m, &store, t0, &seq(c + 1)), 1);
    // After a restart the honest client's code for step c still opens; c+1 stays burned.
    let (mut m, store) = start(d.path());
    assert_eq!(
        knock(&mut m, &store, t0 + 500, &seq(c + 1)),
        0,
        "replay of c+1"
    );
    assert_eq!(
        knock(&mut m, &store, t0 + 1_000, &seq(c)),
        1,
        "step c refused"
    );
    let (mut m, store) = start(d.path());
    assert_eq!(knock(&mut m, &store, t0 + 1_500, &seq(c)), 0, "replay of c");
    assert_eq!(
        knock(&mut m, &store, t0 + 2_000, &seq(c - 1)),
        1,
        "step c-1 refused"
    );
}

#[test]
fn totp_progress_of_the_old_format_is_a_floor() {
    let d = setup("1,3\n", KEY_B32, 0o600);
    fs::create_dir_all(d.path().join("state")).unwrap();
    let file = d.path().join("state/totp-totp.json");
    fs::write(&file, r#"{"door":"totp","last_used_counter":56666666}"#).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let store = ProgressStore::new(d.path().join("state"));
    let used = store.load_totp("totp").unwrap();
    assert!(used.contains(56_666_666) && used.contains(1) && !used.contains(56_666_667));
}

/// A progress file group or others could write (or read), or a symlink where it should be,
/// cannot be trusted: loading it fails (the daemon then disables the door), naming the file,
/// its mode and the fix; nothing is followed.
#[test]
fn progress_files_open_to_others_or_symlinked_are_refused() {
    let d = setup("1,3\n", KEY_B32, 0o600);
    fs::create_dir_all(d.path().join("state")).unwrap();
    let file = d.path().join("state/totp-totp.json");
    fs::write(&file, r#"{"door":"totp","last_used_counter":56666666}"#).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let store = ProgressStore::new(d.path().join("state"));
    let err = store.load_totp("totp").unwrap_err().to_string();
    assert!(
        err.contains("mode 0644") && err.contains("chmod 600"),
        "{err}"
    );

    fs::remove_file(&file).unwrap();
    let elsewhere = d.path().join("planted.json");
    fs::write(&elsewhere, r#"{"door":"totp","last_used_counter":1}"#).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
    let err = store.load_totp("totp").unwrap_err().to_string();
    assert!(err.contains("symlink"), "{err}");
}

#[test]
fn totp_progress_survives_restarts() {
    let d = setup("1,3\n", KEY_B32, 0o600);
    let secret = b"12345678901234567890";
    let t0 = 1_700_000_000_000u64;
    let c = t0 / 30_000;
    let seq: Vec<(u16, Proto)> = knock_match::totp_sequence(secret, c, 4, 20000, 40000)
        .into_iter()
        .map(|p| (p, Proto::Tcp))
        .collect();
    let (mut m, store) = start(d.path());
    assert_eq!(knock(&mut m, &store, t0, &seq), 1);
    let used = store.load_totp("totp").unwrap();
    assert!(used.contains(c) && !used.contains(c - 1) && !used.contains(c + 1));
    let (mut m, store) = start(d.path());
    assert_eq!(
        knock(&mut m, &store, t0 + 1_000, &seq),
        0,
        "replay after restart"
    );

    // A corrupt progress file disables the door rather than forgetting used steps.
    fs::write(d.path().join("state/totp-totp.json"), "{").unwrap();
    let c2 = Config::load(d.path().join("knockwrap.toml")).unwrap();
    let mut doors = c2.doors();
    assert_eq!(ProgressStore::new(&c2.state_dir).apply(&mut doors).len(), 1);
    let mut m = Matcher::new(doors, MatcherOptions::default()).unwrap();
    let next: Vec<(u16, Proto)> = knock_match::totp_sequence(secret, c + 1, 4, 20000, 40000)
        .into_iter()
        .map(|p| (p, Proto::Tcp))
        .collect();
    let mut granted = 0;
    for (i, &(p, proto)) in next.iter().enumerate() {
        granted += m.observe(&ev(t0 + 2_000 + i as u64, p, proto)).len();
    }
    assert_eq!(granted, 0);
}

#[test]
fn record_rejects_mismatched_progress() {
    let d = setup("1,3\n", KEY_B32, 0o600);
    let c = Config::load(d.path().join("knockwrap.toml")).unwrap();
    let store = ProgressStore::new(&c.state_dir);
    let otp = &c.doors[0].door;
    assert!(store
        .record(
            otp,
            &Consume::OneTime {
                index: 0,
                next: 1,
                remaining: 0
            }
        )
        .is_ok());
    let totp = &c.doors[1].door;
    assert!(store
        .record(
            totp,
            &Consume::OneTime {
                index: 0,
                next: 1,
                remaining: 0
            }
        )
        .is_err());
}
