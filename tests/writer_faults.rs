//! Failures of the file system under `knockwrap allow`: a full tmpfs (ENOSPC) and a read-only
//! bind mount (EROFS). Each must exit 1 with a message naming the file and the reason, leave the
//! original byte-identical and leave no temp file. Root only: the mounts are made inside a
//! private mount namespace (`unshare -m`) that disappears with the script, and unmounted
//! explicitly before it ends. Also an attacker's race: the directory of hosts.allow swapped for
//! a symlink while the writer is paused past its checks.

use std::fs;
use std::path::Path;
use std::process::Command;

const ORIGINAL: &[u8] = b"# production hosts.allow\r\nsshd: 10.0.0.0/8\r\nSSHD: 203.0.113.45\r\n";

/// Run `script` under `unshare -m` with $BIN, $WORK set; returns (rc of knockwrap, stderr).
fn in_mount_ns(work: &Path, script: &str) -> (i32, String) {
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("BIN", env!("CARGO_BIN_EXE_knockwrap"))
        .env("WORK", work)
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "setup script failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rc = fs::read_to_string(work.join("rc"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (rc, fs::read_to_string(work.join("stderr")).unwrap())
}

#[test]
fn full_file_system_fails_cleanly() {
    test_support::skip_unless_root!();
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("original"), ORIGINAL).unwrap();
    fs::create_dir(work.path().join("mnt")).unwrap();
    let script = r#"
        set -e
        M="$WORK/mnt"
        mount -t tmpfs -o size=64k,mode=0755 knockwrap-test "$M"
        cp "$WORK/original" "$M/hosts.allow"
        # Fill every block that is left.
        dd if=/dev/zero of="$M/filler" bs=4096 2>/dev/null || true
        dd if=/dev/zero of="$M/filler2" bs=1 2>/dev/null || true
        set +e
        "$BIN" allow 203.0.113.9 --hosts-allow "$M/hosts.allow" 2>"$WORK/stderr" >/dev/null
        echo $? > "$WORK/rc"
        cp "$M/hosts.allow" "$WORK/after"
        ls -a "$M" > "$WORK/listing"
        umount "$M"
    "#;
    let (rc, stderr) = in_mount_ns(work.path(), script);
    assert_eq!(rc, 1, "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert!(stderr.contains("mnt/hosts.allow"), "{stderr}");
    assert_eq!(fs::read(work.path().join("after")).unwrap(), ORIGINAL);
    let listing = fs::read_to_string(work.path().join("listing")).unwrap();
    assert!(!listing.contains("knockwrap.tmp"), "{listing}");
    assert!(!listing.contains("knockwrap.baktmp"), "{listing}");
    eprintln!("ENOSPC message: {}", stderr.trim());
}

#[test]
fn read_only_bind_mount_fails_cleanly() {
    test_support::skip_unless_root!();
    for lock_exists in [false, true] {
        let work = tempfile::tempdir().unwrap();
        let src = work.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("hosts.allow"), ORIGINAL).unwrap();
        if lock_exists {
            // A lock file left by earlier writes can still be flocked read-only; the failure
            // then comes from the temp file, and must name the same reason.
            fs::write(src.join(".hosts.allow.knockwrap.lock"), b"").unwrap();
        }
        fs::create_dir(work.path().join("mnt")).unwrap();
        let script = r#"
            set -e
            M="$WORK/mnt"
            mount --bind "$WORK/src" "$M"
            mount -o remount,bind,ro "$M"
            set +e
            "$BIN" allow 203.0.113.9 --hosts-allow "$M/hosts.allow" 2>"$WORK/stderr" >/dev/null
            echo $? > "$WORK/rc"
            umount "$M"
        "#;
        let (rc, stderr) = in_mount_ns(work.path(), script);
        assert_eq!(rc, 1, "{stderr}");
        assert!(stderr.contains("read-only file system"), "{stderr}");
        assert!(stderr.contains("mnt/hosts.allow"), "{stderr}");
        assert_eq!(fs::read(src.join("hosts.allow")).unwrap(), ORIGINAL);
        let names: Vec<String> = fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.contains("knockwrap.tmp")),
            "{names:?}"
        );
        eprintln!(
            "EROFS message (lock file existed: {lock_exists}): {}",
            stderr.trim()
        );
    }
}

#[test]
fn unwritable_directory_as_non_root_user_says_permission_denied() {
    test_support::skip_unless_root!();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("etc");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("hosts.allow"), ORIGINAL).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    // Run as nobody via setpriv (util-linux): the directory is root's, 0755. A copy of the
    // binary in the 0755 work dir, since the build directory may not be reachable for nobody.
    let bin = work.path().join("knockwrap");
    fs::copy(env!("CARGO_BIN_EXE_knockwrap"), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["allow", "203.0.113.9", "--hosts-allow"])
        .arg(dir.join("hosts.allow"))
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(stderr.contains("hosts.allow"), "{stderr}");
    assert_eq!(fs::read(dir.join("hosts.allow")).unwrap(), ORIGINAL);
}

/// `allow --for` with the state directory's file system full: the lease cannot be journaled,
/// so the line is not written either (the journal comes first, under the hosts.allow lock).
/// Before the state owner, the CLI wrote the line, then failed on the journal, leaving a line
/// with no lease: access for ever.
#[test]
fn allow_for_on_a_full_state_fs_leaves_no_line_without_its_lease() {
    test_support::skip_unless_root!();
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("hosts.allow"), ORIGINAL).unwrap();
    fs::create_dir(work.path().join("state")).unwrap();
    let script = r#"
        set -e
        S="$WORK/state"
        mount -t tmpfs -o size=16k,mode=0700 knockwrap-state "$S"
        dd if=/dev/zero of="$S/filler" bs=4096 2>/dev/null || true
        dd if=/dev/zero of="$S/filler2" bs=1 2>/dev/null || true
        set +e
        "$BIN" allow 203.0.113.9 --for 1h --hosts-allow "$WORK/hosts.allow" --state-dir "$S" \
            2>"$WORK/stderr" >/dev/null
        echo $? > "$WORK/rc"
        ls -a "$S" > "$WORK/listing"
        umount "$S"
    "#;
    let (rc, stderr) = in_mount_ns(work.path(), script);
    assert_eq!(rc, 1, "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert_eq!(
        fs::read(work.path().join("hosts.allow")).unwrap(),
        ORIGINAL,
        "the line was written without its lease"
    );
    let listing = fs::read_to_string(work.path().join("listing")).unwrap();
    assert!(!listing.contains("leases.json\n"), "{listing}");
}

/// The same with a journal already there, whose record of the grant is appended in place:
/// the journal leaves 40 bytes of its last page free, so the append writes part of its record
/// there and then finds no room (ENOSPC). The grant fails, the line is not written, and the
/// journal is byte-identical (the torn part is cut off again), so the lease before it reads.
#[test]
fn allow_for_appending_to_a_journal_on_a_full_state_fs_writes_nothing() {
    test_support::skip_unless_root!();
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("hosts.allow"), ORIGINAL).unwrap();
    fs::create_dir(work.path().join("state")).unwrap();
    let script = r#"
        set -e
        S="$WORK/state"
        mount -t tmpfs -o size=16k,mode=0700 knockwrap-state "$S"
        "$BIN" allow 203.0.113.8 --for 1h --hosts-allow "$WORK/hosts.allow" --state-dir "$S" \
            >/dev/null
        cp "$WORK/hosts.allow" "$WORK/allow.before"
        J="$S/leases.json"
        # Blank lines (they read as nothing) to 40 bytes short of the end of its page.
        head -c $((4056 - $(stat -c %s "$J"))) /dev/zero | tr '\0' '\n' >> "$J"
        cp "$J" "$WORK/journal.before"
        dd if=/dev/zero of="$S/filler" bs=4096 2>/dev/null || true
        dd if=/dev/zero of="$S/filler2" bs=1 2>/dev/null || true
        set +e
        "$BIN" allow 203.0.113.9 --for 1h --hosts-allow "$WORK/hosts.allow" --state-dir "$S" \
            2>"$WORK/stderr" >/dev/null
        echo $? > "$WORK/rc"
        cp "$J" "$WORK/journal.after"
        "$BIN" list --state-dir "$S" > "$WORK/list" 2>&1
        umount "$S"
    "#;
    let (rc, stderr) = in_mount_ns(work.path(), script);
    assert_eq!(rc, 1, "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert!(stderr.contains("leases.json"), "{stderr}");
    let read = |n: &str| fs::read(work.path().join(n)).unwrap();
    assert_eq!(read("journal.before").len(), 4056);
    assert_eq!(
        read("journal.after"),
        read("journal.before"),
        "journal changed"
    );
    assert_eq!(
        read("hosts.allow"),
        read("allow.before"),
        "the line was written without its lease"
    );
    let list = String::from_utf8(read("list")).unwrap();
    assert!(
        list.contains("203.0.113.8") && !list.contains("203.0.113.9"),
        "{list}"
    );
}

/// hosts.allow's directory D is renamed away and replaced by a symlink to another directory E
/// while the writer is paused after a step (its checks done, its lock held). The writer works
/// relative to the directory it opened and checked: the write lands in D's inode (now under
/// its new name) or fails cleanly, and nothing in E is created, changed or removed, not even
/// a file E holds under the name of the writer's temp file.
#[test]
fn a_directory_swapped_for_a_symlink_mid_write_redirects_nothing() {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;
    use test_support::swap;
    test_support::skip_unless_root!();
    let mut redirected = Vec::new();
    for step in ["locked", "backup-kept", "checked"] {
        let p = tempfile::tempdir().unwrap();
        let d = p.path().join("etc");
        let e = p.path().join("elsewhere");
        for dir in [&d, &e] {
            fs::create_dir(dir).unwrap();
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::write(d.join("hosts.allow"), ORIGINAL).unwrap();
        fs::write(
            e.join("hosts.allow"),
            b"# the victim: root's, not to be touched\n",
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_knockwrap"))
            .args(["allow", "192.0.2.7", "--hosts-allow"])
            .arg(d.join("hosts.allow"))
            .env("KNOCKWRAP_TEST_PAUSE", format!("{step}:1500"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        swap::wait_for(
            &d.join(".hosts.allow.knockwrap.lock"),
            Duration::from_secs(10),
        );
        std::thread::sleep(Duration::from_millis(300));
        // What a writer that goes by path would rename into place next.
        fs::write(e.join(".hosts.allow.knockwrap.tmp"), b"ALL: ALL\n").unwrap();
        let before = swap::contents(&e);
        let moved = p.path().join("etc.moved");
        swap::swap_for_symlink(&d, &moved, &e);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let after = swap::contents(&e);
        if after != before {
            redirected.push(format!("{step}: {before:?} became {after:?} ({stderr})"));
            continue;
        }
        let now = fs::read(moved.join("hosts.allow")).unwrap();
        if out.status.success() {
            let mut want = ORIGINAL.to_vec();
            want.extend_from_slice(b"SSHD: 192.0.2.7\r\n");
            assert_eq!(
                String::from_utf8_lossy(&now),
                String::from_utf8_lossy(&want),
                "{step}"
            );
        } else {
            assert_eq!(
                now, ORIGINAL,
                "{step}: failed but changed the file; {stderr}"
            );
            assert!(stderr.contains("hosts.allow"), "{step}: {stderr}");
        }
    }
    assert!(
        redirected.is_empty(),
        "the write went through the link:\n{}",
        redirected.join("\n")
    );
}
