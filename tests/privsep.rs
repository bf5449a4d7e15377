//! Least privilege, checked on the running daemon (root, in network namespaces): the process
//! that holds the packet sockets runs without root, with at most CAP_NET_RAW, NoNewPrivs and
//! seccomp, and holds nothing writable; the root parent holds no packet socket; a killed
//! capture process is replaced and knocks open again; and garbage sent to the parent on the
//! capture channel (random bytes, a door out of range, an IPv4-mapped source) is refused,
//! logged, and writes nothing.

mod support;

use std::os::fd::RawFd;
use std::time::Duration;

use support::process::children_of;
use support::rig::Rig;
use support::{require_root_or_skip, serial, wait_until, Door};

const OPEN: [&str; 3] = ["7000", "8000", "9000"];
const CAP_NET_RAW: u64 = 1 << 13;

fn capture_pid(rig: &Rig) -> u32 {
    let mut found = Vec::new();
    let ok = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        found = children_of(rig.daemon.pid());
        found.len() == 1
    });
    assert!(ok, "capture processes: {found:?}\n{}", rig.daemon.log());
    found[0]
}

fn status_field(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

/// (fd, link target, open flags) of every descriptor of `pid`.
fn descriptors(pid: u32) -> Vec<(RawFd, String, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
    {
        let fd: RawFd = entry
            .file_name()
            .to_string_lossy()
            .parse()
            .expect("fd number");
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
            .unwrap_or(0);
        out.push((fd, target.to_string_lossy().into_owned(), flags));
    }
    out
}

/// Inodes of the packet sockets in `pid`'s network namespace.
fn packet_socket_inodes(pid: u32) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/packet")).expect("net/packet");
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect()
}

fn socket_inode(target: &str) -> Option<&str> {
    target.strip_prefix("socket:[")?.strip_suffix(']')
}

#[test]
fn the_capture_process_holds_no_root_no_file_and_the_parent_no_packet_socket() {
    if !require_root_or_skip(
        "the_capture_process_holds_no_root_no_file_and_the_parent_no_packet_socket",
    ) {
        return;
    }
    let _serial = serial();
    let rig = Rig::start(
        "privsep",
        vec![Door::allow("openSSH", &OPEN)],
        "",
        "",
        false,
    );
    let child = capture_pid(&rig);
    let parent = rig.daemon.pid();

    for field in ["Uid", "Gid"] {
        let ids = status_field(child, field);
        assert!(
            ids.split_whitespace().all(|id| id != "0"),
            "capture process {field}: {ids}"
        );
    }
    for field in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        let caps = u64::from_str_radix(&status_field(child, field), 16).expect("caps");
        assert_eq!(
            caps & !CAP_NET_RAW,
            0,
            "{field} = {caps:#x}: more than CAP_NET_RAW"
        );
    }
    assert_eq!(status_field(child, "NoNewPrivs"), "1");
    assert_eq!(status_field(child, "Seccomp"), "2");

    // Nothing writable: sockets, and /dev/null read-only on stdio.
    let fds = descriptors(child);
    for (fd, target, flags) in &fds {
        if target == "/dev/null" {
            assert_eq!(flags & 0o3, 0, "fd {fd} /dev/null opened for writing");
        } else {
            assert!(
                socket_inode(target).is_some(),
                "capture process fd {fd} is {target}, not a socket"
            );
        }
    }
    // The packet sockets are the child's; the parent has none.
    let packet = packet_socket_inodes(child);
    assert!(!packet.is_empty(), "no packet socket in the namespace");
    let inodes_of = |pid| -> Vec<String> {
        descriptors(pid)
            .iter()
            .filter_map(|(_, t, _)| socket_inode(t).map(str::to_owned))
            .collect()
    };
    let (mine, theirs) = (inodes_of(parent), inodes_of(child));
    for ino in &packet {
        assert!(!mine.contains(ino), "the parent holds packet socket {ino}");
    }
    assert!(
        packet.iter().any(|ino| theirs.contains(ino)),
        "the capture process holds no packet socket: {packet:?} vs {theirs:?}"
    );

    rig.knock(&[&rig.server(), "7000", "8000", "9000"]);
    rig.expect_line(&format!("SSHD: {}", rig.client()));
}

#[test]
fn a_killed_capture_process_is_replaced_and_knocks_open() {
    if !require_root_or_skip("a_killed_capture_process_is_replaced_and_knocks_open") {
        return;
    }
    let _serial = serial();
    let rig = Rig::start(
        "respawn",
        vec![Door::allow("openSSH", &OPEN)],
        "",
        "",
        false,
    );
    let first = capture_pid(&rig);
    // SAFETY: plain kill(2) of the daemon's child.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    let mut second = first;
    let replaced = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        second = children_of(rig.daemon.pid())
            .first()
            .copied()
            .unwrap_or(first);
        second != first
    });
    assert!(replaced, "no new capture process\n{}", rig.daemon.log());
    assert!(rig.daemon.log().contains("capture process ended"));
    // The new child needs a moment to open its capture.
    let line = format!("SSHD: {}", rig.client());
    let opened = (0..10).any(|_| {
        rig.knock(&[&rig.server(), "7000", "8000", "9000"]);
        rig.wait_line(&line, Duration::from_millis(500)).is_some()
    });
    assert!(
        opened,
        "no knock opened after the restart\n{}",
        rig.daemon.log()
    );
}

/// A duplicate of the capture process's end of the channel (pidfd_getfd), so the test can
/// speak as a taken-over child would.
fn steal_channel(child: u32) -> RawFd {
    let parent_sockets: Vec<String> = std::fs::read_to_string(format!("/proc/{child}/net/unix"))
        .expect("net/unix")
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(6).map(str::to_owned))
        .collect();
    let fd = descriptors(child)
        .into_iter()
        .find(|(_, t, _)| socket_inode(t).is_some_and(|i| parent_sockets.iter().any(|p| p == i)))
        .map(|(fd, _, _)| fd)
        .expect("the channel among the capture process's descriptors");
    // SAFETY: raw syscalls with valid arguments; the descriptors are ours.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, child as i32, 0) as RawFd;
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        let mine = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as RawFd;
        assert!(
            mine >= 0,
            "pidfd_getfd: {}",
            std::io::Error::last_os_error()
        );
        libc::close(pidfd);
        mine
    }
}

/// One knock message as the wire format lays it out (version 1, kind 1, one knock).
fn knock_message(door: u16, addr: std::net::IpAddr) -> Vec<u8> {
    let mut m = vec![1u8, 1];
    m.extend_from_slice(&1u16.to_le_bytes());
    m.extend_from_slice(&door.to_le_bytes());
    let v6 = addr.is_ipv6();
    m.push(u8::from(v6) << 1);
    m.extend_from_slice(&0u64.to_le_bytes());
    m.push(0);
    m.extend_from_slice(&0u64.to_le_bytes());
    match addr {
        std::net::IpAddr::V4(a) => m.extend_from_slice(&a.octets()),
        std::net::IpAddr::V6(a) => m.extend_from_slice(&a.octets()),
    }
    m
}

#[test]
fn garbage_on_the_capture_channel_is_refused_logged_and_writes_nothing() {
    if !require_root_or_skip("garbage_on_the_capture_channel_is_refused_logged_and_writes_nothing")
    {
        return;
    }
    let _serial = serial();
    let rig = Rig::start(
        "garbage",
        vec![Door::allow("openSSH", &OPEN)],
        "",
        "",
        false,
    );
    let mut rng = test_support::Rng::new(0x6a7b);
    let random: Vec<u8> = (0..64).map(|_| rng.next_u64() as u8).collect();
    let good_addr: std::net::IpAddr = "198.18.0.66".parse().unwrap();
    let attempts: [(&str, Vec<u8>); 4] = [
        ("random bytes", random),
        ("door out of range", knock_message(99, good_addr)),
        (
            "IPv4-mapped source",
            knock_message(0, "::ffff:198.18.0.5".parse().unwrap()),
        ),
        (
            "loopback source",
            knock_message(0, "127.0.0.1".parse().unwrap()),
        ),
    ];
    for (n, (what, bytes)) in attempts.into_iter().enumerate() {
        let child = capture_pid(&rig);
        let fd = steal_channel(child);
        // SAFETY: fd is ours; bytes valid for their length.
        let sent = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), 0) };
        assert_eq!(sent as usize, bytes.len(), "{what}: send");
        unsafe { libc::close(fd) };
        let logged = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            rig.daemon
                .log()
                .matches("refused a message from the capture process")
                .count()
                > n
        });
        assert!(logged, "{what}: not refused\n{}", rig.daemon.log());
        let replaced = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            children_of(rig.daemon.pid())
                .first()
                .is_some_and(|&p| p != child)
        });
        assert!(
            replaced,
            "{what}: capture process not replaced\n{}",
            rig.daemon.log()
        );
        // The refusal log is rate-limited to one line per 10 s: wait it out for the next.
        std::thread::sleep(Duration::from_millis(10_100));
        assert_eq!(rig.hosts_allow(), "", "{what}: something was written");
    }
    // A valid message through the same route is accepted: the refusals were about content.
    let child = capture_pid(&rig);
    let fd = steal_channel(child);
    let bytes = knock_message(0, good_addr);
    // SAFETY: as above.
    unsafe {
        libc::send(fd, bytes.as_ptr().cast(), bytes.len(), 0);
        libc::close(fd);
    }
    rig.expect_line("SSHD: 198.18.0.66");
    // `knockwrap status` counts what happened (published every 5 s and after changes).
    let config = rig.daemon.config.display().to_string();
    let counted = wait_until(Duration::from_secs(8), Duration::from_millis(100), || {
        let out = rig
            .root
            .command(support::daemon::knockwrap_bin())
            .args(["status", "--config", &config, "--format", "json"])
            .output()
            .expect("status");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok_and(|v| {
            v["counters"]["refused_messages"] == 4
                && v["counters"]["child_restarts"] == 4
                && v["capture_pid"].as_u64().is_some()
        })
    });
    assert!(
        counted,
        "status does not count the refusals\n{}",
        rig.daemon.log()
    );
}

/// The configured `user` is the capture process's account.
#[test]
fn the_configured_user_runs_the_capture_process() {
    if !require_root_or_skip("the_configured_user_runs_the_capture_process") {
        return;
    }
    let _serial = serial();
    let rig = Rig::start(
        "privuser",
        vec![Door::allow("openSSH", &OPEN)],
        "user = \"daemon\"\n",
        "",
        false,
    );
    let child = capture_pid(&rig);
    // Debian's `daemon` account is uid 1, gid 1.
    assert_eq!(status_field(child, "Uid"), "1\t1\t1\t1");
    assert_eq!(status_field(child, "Gid"), "1\t1\t1\t1");
    assert!(
        rig.daemon.log().contains("capture_user=daemon"),
        "{}",
        rig.daemon.log()
    );
}

/// Started as another user, `run` refuses at once and says why (it could not drop the capture
/// process to `user`, nor write hosts.allow), instead of a capture process failing later.
#[test]
fn run_refuses_to_start_without_root() {
    if !require_root_or_skip("run_refuses_to_start_without_root") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("knockwrap.toml");
    std::fs::write(
        &config,
        "log = \"stderr\"\ninterface = \"lo\"\nhosts_allow = \"hosts.allow\"\nstate_dir = \"state\"\n\
         [[door]]\nname = \"d\"\nsequence = [7000, 8000, 9000]\nservice = \"SSHD\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(support::daemon::knockwrap_bin())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("setpriv (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("knockwrap run must start as root (running as uid 65534)"),
        "{err}"
    );
}

/// The capture process dies with its parent even when it has stopped listening: a child that
/// is stopped (SIGSTOP here; a taken-over child could ignore its channel as well) does not see
/// its channel close, so only the kernel's parent-death signal ends it. That signal is cleared
/// by a uid change, so it must be set after the drop to the capture account.
#[test]
fn a_stopped_capture_process_dies_with_its_killed_parent() {
    if !require_root_or_skip("a_stopped_capture_process_dies_with_its_killed_parent") {
        return;
    }
    let _serial = serial();
    let mut rig = Rig::start("pdeath", vec![Door::allow("openSSH", &OPEN)], "", "", false);
    let child = capture_pid(&rig);
    // SAFETY: plain kill(2) of the daemon's child, then of the daemon.
    unsafe { libc::kill(child as i32, libc::SIGSTOP) };
    rig.daemon.kill9();
    let dead = || {
        std::fs::read_to_string(format!("/proc/{child}/stat")).map_or(true, |s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    };
    let gone = wait_until(Duration::from_secs(3), Duration::from_millis(20), dead);
    let state = status_field_or_gone(child);
    if !gone {
        // SAFETY: as above; the test must not leave it behind.
        unsafe { libc::kill(child as i32, libc::SIGKILL) };
    }
    assert!(
        gone,
        "the capture process {child} outlived its parent by 3 s ({state})\n{}",
        rig.daemon.log()
    );
}

fn status_field_or_gone(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("State:"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "gone".into())
}
