//! The generic atomic update against a real file system: symlinks, attributes, backups,
//! foreign edits between read and rename, no-op updates, errors.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use hosts_writer::{lock_path, update, Options, UpdateError, WriteError};

fn opts() -> Options {
    Options {
        backup: true,
        lock_timeout: Duration::from_millis(300),
        ..Options::default()
    }
}

fn append(line: &'static [u8]) -> impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, String> {
    move |b: &[u8]| {
        let mut v = b.to_vec();
        v.extend_from_slice(line);
        Ok(Some(v))
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn require_root(test: &str) -> bool {
    is_root() || test_support::skip_or_fail(test, "root")
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".knockwrap.tmp") || n.contains(".knockwrap.baktmp"))
        .collect()
}

#[test]
fn symlinked_file_is_replaced_beside_its_target_and_the_link_stays() {
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("real");
    fs::create_dir(&real_dir).unwrap();
    let real = real_dir.join("hosts.allow");
    fs::write(&real, b"a: b\n").unwrap();
    let link = dir.path().join("hosts.allow");
    std::os::unix::fs::symlink("real/hosts.allow", &link).unwrap();

    let out = update(&link, &opts(), append(b"SSHD: 192.0.2.1\n")).unwrap();
    assert!(out.written);
    assert_eq!(out.path, real_dir.join("hosts.allow"));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&link).unwrap(), b"a: b\nSSHD: 192.0.2.1\n");
    assert_eq!(
        fs::read(real_dir.join("hosts.allow.bak")).unwrap(),
        b"a: b\n"
    );
    // The lock and backup live beside the target, not beside the link.
    assert!(real_dir.join(".hosts.allow.knockwrap.lock").exists());
    assert!(!dir.path().join("hosts.allow.bak").exists());
}

#[test]
fn dangling_symlink_creates_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("hosts.allow");
    std::os::unix::fs::symlink("target.allow", &link).unwrap();
    update(&link, &opts(), append(b"x: y\n")).unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read(dir.path().join("target.allow")).unwrap(),
        b"x: y\n"
    );
}

#[test]
fn missing_file_is_created_0644_and_no_backup_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    let out = update(&p, &opts(), append(b"SSHD: 192.0.2.1\n")).unwrap();
    assert!(!out.existed);
    let m = fs::metadata(&p).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o644);
    assert_eq!(m.uid(), rustix::process::geteuid().as_raw());
    assert!(!dir.path().join("hosts.allow.bak").exists());
}

#[test]
fn mode_and_owner_survive() {
    if !require_root("mode_and_owner_survive") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"a: b\n").unwrap();
    // adm's gid from the group database (Debian: 4); any non-root group will do otherwise.
    let gid = fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"adm")).then(|| f[2].parse::<u32>().unwrap())
        })
        .unwrap_or(4);
    std::os::unix::fs::chown(&p, Some(0), Some(gid)).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    let before_ino = fs::metadata(&p).unwrap().ino();

    update(&p, &opts(), append(b"SSHD: 192.0.2.1\n")).unwrap();
    let m = fs::metadata(&p).unwrap();
    assert_ne!(
        m.ino(),
        before_ino,
        "replaced by rename, not rewritten in place"
    );
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    assert_eq!((m.uid(), m.gid()), (0, gid));
    let b = fs::metadata(dir.path().join("hosts.allow.bak")).unwrap();
    assert_eq!((b.permissions().mode() & 0o7777, b.gid()), (0o640, gid));
}

#[test]
fn security_xattrs_are_carried_over() {
    if !require_root("security_xattrs_are_carried_over") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"a: b\n").unwrap();
    let st = std::process::Command::new("setfattr")
        .args(["-n", "security.knockwrap-test", "-v", "label-1"])
        .arg(&p)
        .status();
    match st {
        Ok(s) if s.success() => {}
        other => {
            // No setfattr, or a file system without security xattrs: set it through
            // setxattr(2).
            let set = rustix::fs::setxattr(
                &p,
                "security.knockwrap-test",
                b"label-1",
                rustix::fs::XattrFlags::empty(),
            );
            if let Err(e) = set {
                panic!("setxattr failed ({other:?}): {e}");
            }
        }
    }
    update(&p, &opts(), append(b"SSHD: 192.0.2.1\n")).unwrap();
    let mut buf = [0u8; 64];
    let n = match rustix::fs::getxattr(&p, "security.knockwrap-test", &mut buf[..]) {
        Ok(n) => n,
        Err(e) => panic!("attribute lost: {e}"),
    };
    assert_eq!(&buf[..n], b"label-1");
}

#[test]
fn unchanged_content_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"a: b\n").unwrap();
    let m0 = fs::metadata(&p).unwrap();
    let out = update(&p, &opts(), |_b: &[u8]| Ok::<_, String>(None)).unwrap();
    assert!(!out.written);
    let out2 = update(&p, &opts(), |b: &[u8]| Ok::<_, String>(Some(b.to_vec()))).unwrap();
    assert!(!out2.written);
    let m1 = fs::metadata(&p).unwrap();
    assert_eq!(
        (m0.ino(), m0.mtime(), m0.mtime_nsec()),
        (m1.ino(), m1.mtime(), m1.mtime_nsec())
    );
    assert!(!dir.path().join("hosts.allow.bak").exists());
}

#[test]
fn backup_holds_the_previous_version_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"v0\n").unwrap();
    let mut prev = b"v0\n".to_vec();
    for k in 1..=5 {
        let line: &'static [u8] = Box::leak(format!("v{k}\n").into_bytes().into_boxed_slice());
        update(&p, &opts(), append(line)).unwrap();
        assert_eq!(fs::read(dir.path().join("hosts.allow.bak")).unwrap(), prev);
        prev = fs::read(&p).unwrap();
    }
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn foreign_edit_between_read_and_rename_is_kept_and_the_edit_redone() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"a: b\n").unwrap();
    let mut calls = 0;
    let p2 = p.clone();
    let out = update(&p, &opts(), |b: &[u8]| {
        calls += 1;
        if calls == 1 {
            // Someone who does not take our lock appends while we are editing.
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(&p2).unwrap();
            f.write_all(b"foreign: 198.51.100.1\n").unwrap();
        }
        let mut v = b.to_vec();
        v.extend_from_slice(b"SSHD: 192.0.2.1\n");
        Ok::<_, String>(Some(v))
    })
    .unwrap();
    assert_eq!(calls, 2);
    assert_eq!(out.attempts, 2);
    assert_eq!(
        fs::read(&p).unwrap(),
        b"a: b\nforeign: 198.51.100.1\nSSHD: 192.0.2.1\n"
    );
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn same_size_in_place_rewrite_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"aaaa\n").unwrap();
    let mut calls = 0;
    let p2 = p.clone();
    update(&p, &opts(), |b: &[u8]| {
        calls += 1;
        if calls == 1 {
            // Same size, same inode; the mtime may not even move within one clock tick.
            use std::io::{Seek, Write};
            let mut f = fs::OpenOptions::new().write(true).open(&p2).unwrap();
            f.seek(std::io::SeekFrom::Start(0)).unwrap();
            f.write_all(b"bbbb\n").unwrap();
        }
        let mut v = b.to_vec();
        v.extend_from_slice(b"x\n");
        Ok::<_, String>(Some(v))
    })
    .unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"bbbb\nx\n");
}

#[test]
fn edit_error_leaves_file_and_directory_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"a: b\n").unwrap();
    let err = update(&p, &opts(), |_b: &[u8]| Err::<Option<Vec<u8>>, _>("no")).unwrap_err();
    assert!(matches!(err, UpdateError::Edit("no")));
    assert_eq!(fs::read(&p).unwrap(), b"a: b\n");
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn lock_timeout_names_the_lock_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"a: b\n").unwrap();
    let lp = lock_path(dir.path(), std::ffi::OsStr::new("hosts.allow"));
    let holder = fs::File::create(&lp).unwrap();
    holder.lock().unwrap();
    let err = update(&p, &opts(), append(b"x\n")).unwrap_err();
    let UpdateError::Write(w) = err else {
        panic!("expected a write error")
    };
    assert!(matches!(w, WriteError::LockTimeout { .. }));
    assert!(w.to_string().contains("lock timeout"), "{w}");
    assert!(w.to_string().contains(".hosts.allow.knockwrap.lock"), "{w}");
    assert_eq!(fs::read(&p).unwrap(), b"a: b\n");
    drop(holder);
    update(&p, &opts(), append(b"x\n")).unwrap();
}

#[test]
fn stale_temp_files_of_a_killed_writer_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"a: b\n").unwrap();
    // A killed writer's temp names (fixed per file: temps are only made under the lock).
    fs::write(dir.path().join(".hosts.allow.knockwrap.tmp"), b"partial").unwrap();
    fs::write(dir.path().join(".hosts.allow.knockwrap.baktmp"), b"partial").unwrap();
    fs::write(dir.path().join(".other.knockwrap.tmp"), b"not ours").unwrap();
    let out = update(&p, &opts(), append(b"x\n")).unwrap();
    assert!(out.written);
    assert_eq!(fs::read(&p).unwrap(), b"a: b\nx\n");
    assert!(leftovers(dir.path()) == vec![".other.knockwrap.tmp".to_string()]);
}

#[test]
fn a_directory_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = update(dir.path(), &opts(), append(b"x\n")).unwrap_err();
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn a_symlink_loop_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    std::os::unix::fs::symlink("b", &a).unwrap();
    std::os::unix::fs::symlink("a", dir.path().join("b")).unwrap();
    let err = update(&a, &opts(), append(b"x\n")).unwrap_err();
    assert!(err.to_string().contains("too many levels"), "{err}");
}

#[test]
fn a_file_that_never_stops_changing_gives_up_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"a: b\n").unwrap();
    let p2 = p.clone();
    let o = Options {
        max_attempts: 3,
        ..opts()
    };
    let mut calls = 0;
    let err = update(&p, &o, |b: &[u8]| {
        calls += 1;
        use std::io::Write;
        let mut f = fs::OpenOptions::new().append(true).open(&p2).unwrap();
        f.write_all(b"foreign\n").unwrap();
        let mut v = b.to_vec();
        v.extend_from_slice(b"ours\n");
        Ok::<_, String>(Some(v))
    })
    .unwrap_err();
    assert_eq!(calls, 3);
    assert!(
        matches!(
            err,
            UpdateError::Write(WriteError::Unstable { attempts: 3, .. })
        ),
        "{err}"
    );
    assert_eq!(fs::read(&p).unwrap(), b"a: b\nforeign\nforeign\nforeign\n");
    assert!(leftovers(dir.path()).is_empty());
}

/// hosts.allow in a directory another account owns (or can write): that account could swap
/// the file for a symlink between knockwrap's checks and its rename, making root write
/// elsewhere. Refused, naming the directory; nothing is written or created there or elsewhere.
#[test]
fn a_directory_another_account_controls_is_refused() {
    if !require_root("a_directory_another_account_controls_is_refused") {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("etc");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("hosts.allow");
    std::fs::write(&file, "ALL: LOCAL\n").unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let opts = Options {
        backup: true,
        ..Options::default()
    };
    let append = |b: &[u8]| -> Result<Option<Vec<u8>>, std::convert::Infallible> {
        let mut v = b.to_vec();
        v.extend_from_slice(b"SSHD: 198.18.0.5\n");
        Ok(Some(v))
    };
    let err = update(&file, &opts, append).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("owned by uid 65534"), "{msg}");
    assert_eq!(std::fs::read(&file).unwrap(), b"ALL: LOCAL\n");
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(names.len(), 1, "nothing created beside it");
    // Root's again, but writable by others: refused too; sticky (like /tmp) is fine.
    std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let msg = update(&file, &opts, append).unwrap_err().to_string();
    assert!(msg.contains("writable by group or others"), "{msg}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    update(&file, &opts, append).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    update(&file, &opts, append).unwrap();
}
