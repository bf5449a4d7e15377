//! `Config::load` and `check` on real files in a temporary directory. (The progress store
//! over such a configuration is tested with it, in `hosts-writer`.)

use std::fs;

use knock_match::{DoorKind, Matcher, MatcherOptions, Step};
use knockwrap_config::{check, Config};
use test_support::doors::{setup, KEY_B32};

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
