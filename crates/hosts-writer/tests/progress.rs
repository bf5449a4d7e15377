//! The durable one-time and TOTP progress store (`hosts_writer::progress`) over a real
//! configuration in a temporary directory: what the daemon does at start and per knock.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hosts_writer::progress::ProgressStore;
use knock_match::{Consume, KnockEvent, Matcher, MatcherOptions, Proto, TcpFlags};
use knockwrap_config::Config;
use test_support::doors::{setup, KEY_B32};

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
