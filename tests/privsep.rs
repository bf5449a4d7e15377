//! Least privilege, checked on the running daemon (root, in network namespaces): the process
//! that holds the packet sockets runs without root, with at most CAP_NET_RAW, NoNewPrivs and
//! seccomp, and holds nothing writable; the root parent holds no packet socket; a killed
//! capture process is replaced and knocks open again; and garbage sent to the parent on the
//! capture channel (random bytes, a door out of range, an IPv4-mapped source) is refused,
//! logged, and writes nothing.

use std::os::fd::RawFd;
use std::time::Duration;

use test_support::process::children_of;
use test_support::rig::{wait_counter, Rig};
use test_support::{serial, wait_until, Door};

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

/// Waits (10 s at most) until the daemon `daemon` has a capture process other than `child`.
fn replaced(daemon: u32, child: u32) -> bool {
    wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        children_of(daemon).first().is_some_and(|&p| p != child)
    })
}

#[test]
fn the_capture_process_holds_no_root_no_file_and_the_parent_no_packet_socket() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("privsep")
        .door(Door::allow("openSSH", &OPEN))
        .start();
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

    rig.knock_opens(&["7000", "8000", "9000"]);
}

#[test]
fn a_killed_capture_process_is_replaced_and_knocks_open() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("respawn")
        .door(Door::allow("openSSH", &OPEN))
        .start();
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

#[test]
fn garbage_on_the_capture_channel_is_refused_logged_and_writes_nothing() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("garbage")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let mut rng = test_support::Rng::new(0x6a7b);
    let random: Vec<u8> = (0..64).map(|_| rng.next_u64() as u8).collect();
    let good_addr: std::net::IpAddr = "198.18.0.66".parse().unwrap();
    let attempts: [(&str, Vec<u8>); 4] = [
        ("random bytes", random),
        ("door out of range", Claim::new(99, good_addr).message()),
        (
            "IPv4-mapped source",
            Claim::new(0, "::ffff:198.18.0.5".parse().unwrap()).message(),
        ),
        // The strongest loopback claim the wire allows a child capturing only the veth: that
        // the knock came in on its one interface (the parent knows it is not loopback).
        (
            "loopback source",
            Claim::new(0, "127.0.0.1".parse().unwrap()).on(0).message(),
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
        let replaced = replaced(rig.daemon.pid(), child);
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
    let bytes = Claim::new(0, good_addr).message();
    // SAFETY: as above.
    unsafe {
        libc::send(fd, bytes.as_ptr().cast(), bytes.len(), 0);
        libc::close(fd);
    }
    rig.expect_line("SSHD: 198.18.0.66");
    // `knockwrap status` counts what happened (published every 5 s and after changes).
    let counted = wait_until(Duration::from_secs(8), Duration::from_millis(100), || {
        let v = rig.status();
        v["counters"]["refused_messages"] == 4
            && v["counters"]["child_restarts"] == 4
            && v["capture_pid"].as_u64().is_some()
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
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("privuser")
        .door(Door::allow("openSSH", &OPEN))
        .config("user = \"daemon\"\n")
        .start();
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
    test_support::skip_unless_root!();
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
        .arg(test_support::daemon::knockwrap_bin())
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

// ---------------------------------------------------------------------------------------------
// A taken-over capture process, spoken through a stolen duplicate of its channel.

/// One knock as a child would report it.
#[derive(Clone, Copy)]
struct Claim {
    /// The setup generation it was matched in (1 until the first reload).
    generation: u32,
    door: u16,
    addr: std::net::IpAddr,
    /// Index of its capture interface in the setup's list.
    interface: u16,
    time_ms: u64,
    /// (tag, value): 0 nothing, 1 one-time index, 2 TOTP counter.
    used: (u8, u64),
}

impl Claim {
    fn new(door: u16, addr: std::net::IpAddr) -> Claim {
        Claim {
            generation: 1,
            door,
            addr,
            interface: 0,
            time_ms: 0,
            used: (0, 0),
        }
    }
    /// Claims the knock came in on interface `index` of the setup.
    fn on(mut self, index: u16) -> Claim {
        self.interface = index;
        self
    }
    fn one_time(mut self, index: u64) -> Claim {
        self.used = (1, index);
        self
    }
    fn totp(mut self, counter: u64) -> Claim {
        self.used = (2, counter);
        self
    }
    fn at(mut self, time_ms: u64) -> Claim {
        self.time_ms = time_ms;
        self
    }
    fn message(self) -> Vec<u8> {
        knocks_message(&[self])
    }
}

/// A knocks message as the wire format lays it out (version 2, kind 1, count, generation of
/// the first claim, then each knock).
fn knocks_message(claims: &[Claim]) -> Vec<u8> {
    let mut m = vec![2u8, 1];
    m.extend_from_slice(&(claims.len() as u16).to_le_bytes());
    m.extend_from_slice(&claims.first().map_or(1, |c| c.generation).to_le_bytes());
    for c in claims {
        m.extend_from_slice(&c.door.to_le_bytes());
        m.extend_from_slice(&c.interface.to_le_bytes());
        m.push(u8::from(c.addr.is_ipv6()));
        m.extend_from_slice(&c.time_ms.to_le_bytes());
        m.push(c.used.0);
        m.extend_from_slice(&c.used.1.to_le_bytes());
        match c.addr {
            std::net::IpAddr::V4(a) => m.extend_from_slice(&a.octets()),
            std::net::IpAddr::V6(a) => m.extend_from_slice(&a.octets()),
        }
    }
    m
}

/// A log message as the wire format lays it out (level 3 = info).
fn log_message(text: &str) -> Vec<u8> {
    let mut m = vec![2u8, 2, 3];
    m.extend_from_slice(text.as_bytes());
    m
}

fn send_all(fd: RawFd, messages: &[Vec<u8>]) {
    for bytes in messages {
        // SAFETY: fd is ours; bytes valid for their length.
        let sent = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), 0) };
        assert_eq!(
            sent as usize,
            bytes.len(),
            "send: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Sends `messages` as the current capture process of `daemon` (its pid); returns that pid.
fn speak_as_child(daemon: u32, messages: &[Vec<u8>]) -> u32 {
    let child = child_of(daemon);
    let fd = steal_channel(child);
    send_all(fd, messages);
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    child
}

/// The one capture process of `daemon`, once there is exactly one.
fn child_of(daemon: u32) -> u32 {
    let mut found = Vec::new();
    let ok = wait_until(Duration::from_secs(15), Duration::from_millis(20), || {
        found = children_of(daemon);
        found.len() == 1
    });
    assert!(ok, "capture processes of {daemon}: {found:?}");
    found[0]
}

/// A capture process that captures only the veth cannot get a loopback source or one of the
/// host's own addresses written by claiming the knock came in over `lo`; with `lo` among its
/// interfaces, a knock from 127.0.0.1 on `lo` still opens (any local process can knock there).
#[test]
fn a_capture_process_cannot_claim_loopback_for_the_wire() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("claimlo")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let own: std::net::IpAddr = rig.net.server_v4().into();
    let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    // On its one interface (the veth), or on one the setup does not have.
    let claims = [(lo, 0), (own, 0), (lo, 1)];
    for (n, (addr, interface)) in claims.into_iter().enumerate() {
        let child = speak_as_child(
            rig.daemon.pid(),
            &[Claim::new(0, addr).on(interface).message()],
        );
        let refused = rig.wait_counter("refused_messages", n as u64 + 1, Duration::from_secs(5));
        assert_eq!(
            refused,
            n as u64 + 1,
            "{addr} claimed on interface {interface} by a child capturing only the veth was not refused; hosts.allow: {:?}\n{}",
            rig.hosts_allow(),
            rig.daemon.log()
        );
        assert!(replaced(rig.daemon.pid(), child));
        assert_eq!(rig.hosts_allow(), "", "{addr}: something was written");
    }
}

/// With `lo` and the veth both captured, the parent decides by the interface: 127.0.0.1 said
/// to come in on the veth is refused, the same knock said to come in on `lo` opens.
#[test]
fn the_parent_judges_a_loopback_source_by_its_own_interface_list() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let net = test_support::NetPair::new("ifjudge");
    let root = test_support::ServerRoot::new(&net);
    root.write_hosts_allow("");
    let config = test_support::DaemonConfig::new(&root, vec![Door::allow("openSSH", &OPEN)]);
    let one = format!("interface = {:?}\n", config.interface);
    let text = config.render().replace(
        &one,
        &format!("interface = [{:?}, \"lo\"]\n", config.interface),
    );
    let path = root.dir().join("knockwrap.toml");
    std::fs::write(&path, text).expect("config");
    let daemon = test_support::Daemon::start(&root, &path, "1");
    let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    // Claimed on the veth (interface 0).
    let child = speak_as_child(daemon.pid(), &[Claim::new(0, lo).on(0).message()]);
    let refused = wait_counter(&root, &path, "refused_messages", 1, Duration::from_secs(5));
    assert_eq!(
        refused,
        1,
        "127.0.0.1 claimed on the veth was accepted\n{}",
        daemon.log()
    );
    assert_eq!(root.read_hosts_allow(), "", "written for a veth claim");
    assert!(replaced(daemon.pid(), child));
    // Claimed on lo (interface 1): what a local process knocking on lo gets.
    speak_as_child(daemon.pid(), &[Claim::new(0, lo).on(1).message()]);
    assert!(
        test_support::wait_for_line(
            &root.hosts_allow(),
            "SSHD: 127.0.0.1",
            Duration::from_secs(5)
        )
        .is_some(),
        "a knock on lo did not open\n{}",
        daemon.log()
    );
}

/// A refused message drops everything the child sent since the last drain the parent
/// accepted: the good knocks before the bad one in the same message, and those of earlier
/// messages read in the same drain (the parent is stopped while both are queued).
#[test]
fn a_refused_message_drops_the_whole_drain() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("dropdrain")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let a: std::net::IpAddr = "198.18.200.70".parse().unwrap();
    let b: std::net::IpAddr = "198.18.200.71".parse().unwrap();
    let bad = Claim::new(99, "198.18.200.79".parse().unwrap());
    let rounds: [(&str, Vec<Vec<u8>>); 2] = [
        (
            "same message",
            vec![knocks_message(&[Claim::new(0, a), bad])],
        ),
        (
            "earlier message of the drain",
            vec![Claim::new(0, b).message(), bad.message()],
        ),
    ];
    let parent = rig.daemon.pid() as libc::pid_t;
    for (n, (what, messages)) in rounds.into_iter().enumerate() {
        let child = child_of(rig.daemon.pid());
        let fd = steal_channel(child);
        // SAFETY: plain kill(2) of the daemon we started.
        unsafe { libc::kill(parent, libc::SIGSTOP) };
        send_all(fd, &messages);
        unsafe {
            libc::kill(parent, libc::SIGCONT);
            libc::close(fd);
        }
        let refused = rig.wait_counter("refused_messages", n as u64 + 1, Duration::from_secs(5));
        assert_eq!(
            refused,
            n as u64 + 1,
            "{what}: not refused\n{}",
            rig.daemon.log()
        );
        assert!(replaced(rig.daemon.pid(), child));
    }
    // A good message through the same route now writes; by then anything from the refused
    // drains would have been written too.
    speak_as_child(
        rig.daemon.pid(),
        &[Claim::new(0, "198.18.200.72".parse().unwrap()).message()],
    );
    rig.expect_line("SSHD: 198.18.200.72");
    assert_eq!(
        rig.hosts_allow(),
        "SSHD: 198.18.200.72\n",
        "a refused drain wrote\n{}",
        rig.daemon.log()
    );
}

/// The text of two one-time doors and a static one, in `order` (indices into that list).
fn reload_doors(files: &std::path::Path, order: &[usize]) -> String {
    let a = files.join("a.otp");
    let b = files.join("b.otp");
    std::fs::write(&a, "7301, 7305, 7303\n7401, 7405, 7403\n").expect("a.otp");
    std::fs::write(&b, "7501, 7505, 7503\n7601, 7605, 7603\n").expect("b.otp");
    let doors = [
        format!(
            "\n[[door]]\nname = \"otA\"\none_time_sequences = {:?}\nseq_timeout = \"5s\"\n\
             tcp_flags = [\"syn\"]\nservice = \"in.a\"\n",
            a.display().to_string()
        ),
        format!(
            "\n[[door]]\nname = \"otB\"\none_time_sequences = {:?}\nseq_timeout = \"5s\"\n\
             tcp_flags = [\"syn\"]\nservice = \"in.b\"\n",
            b.display().to_string()
        ),
        "\n[[door]]\nname = \"plainC\"\nsequence = [\"7700\", \"7800\", \"7900\"]\n\
         seq_timeout = \"5s\"\ntcp_flags = [\"syn\"]\nservice = \"in.c\"\n"
            .to_owned(),
    ];
    order.iter().map(|&i| doors[i].clone()).collect()
}

/// A reload while the capture process still matches against the old doors (it is stopped, so
/// it cannot take the new setup): a knock it completed on door 0 is judged by the old door 0,
/// its progress goes to that door's file, and a knock on a door the reload removed is granted
/// by that door instead of getting the child killed.
#[test]
fn a_knock_matched_before_a_reload_is_judged_by_its_own_doors() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let files = tempfile::tempdir().expect("tempdir");
    let rig = Rig::builder("reloadrace")
        .doors(vec![])
        .config(&reload_doors(files.path(), &[0, 1, 2]))
        .start();
    let child = child_of(rig.daemon.pid());
    // SAFETY: plain kill(2) of the daemon's child.
    unsafe { libc::kill(child as libc::pid_t, libc::SIGSTOP) };
    let fd = steal_channel(child);
    let mut config = test_support::DaemonConfig::new(&rig.root, vec![]);
    config.extra = reload_doors(files.path(), &[1, 0]);
    std::fs::write(&rig.daemon.config, config.render()).expect("new config");
    rig.daemon.sighup();
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(20), || rig
            .daemon
            .log()
            .contains("reloaded doors=2")),
        "no reload\n{}",
        rig.daemon.log()
    );
    // Old door 0 is otA (new door 0 is otB); old door 2 was removed.
    send_all(
        fd,
        &[Claim::new(0, "198.18.200.80".parse().unwrap())
            .one_time(0)
            .message()],
    );
    let line = rig.wait_line("in.a: 198.18.200.80", Duration::from_secs(5));
    let state = rig.root.dir().join("state");
    let (a, b) = (
        state.join("onetime-otA.json"),
        state.join("onetime-otB.json"),
    );
    assert!(
        line.is_some() && a.exists() && !b.exists(),
        "the knock on old door 0 was judged by another door: hosts.allow {:?}, otA progress {}, otB progress {}\n{}",
        rig.hosts_allow(),
        a.exists(),
        b.exists(),
        rig.daemon.log()
    );
    send_all(
        fd,
        &[Claim::new(2, "198.18.200.81".parse().unwrap()).message()],
    );
    rig.expect_line("in.c: 198.18.200.81");
    // SAFETY: as above; fd is ours.
    unsafe {
        libc::kill(child as libc::pid_t, libc::SIGCONT);
        libc::close(fd);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rig.counter("refused_messages"), 0, "{}", rig.daemon.log());
    assert_eq!(
        children_of(rig.daemon.pid()),
        [child],
        "the honest child was replaced"
    );
}

/// A knock from a link-local source on a door that does not take them burns nothing: the
/// one-time sequence it names stays unused, and the honest client's knock with it opens.
#[test]
fn a_link_local_knock_burns_no_one_time_sequence() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let files = tempfile::tempdir().expect("tempdir");
    let rig = Rig::builder("llburn")
        .doors(vec![])
        .config(&reload_doors(files.path(), &[0]))
        .start();
    let progress = rig.root.dir().join("state").join("onetime-otA.json");
    speak_as_child(
        rig.daemon.pid(),
        &[Claim::new(0, "fe80::5".parse().unwrap())
            .one_time(0)
            .message()],
    );
    // The claim arrived and was refused (the parent refuses a link-local source on a door
    // that does not take them, as a lie), and only then is the absence of progress a proof.
    let refused = rig.wait_counter("refused_messages", 1, Duration::from_secs(5));
    assert_eq!(
        refused,
        1,
        "the link-local claim was not refused\n{}",
        rig.daemon.log()
    );
    assert!(
        !progress.exists(),
        "a link-local knock burnt one-time sequence 0: {}\n{}",
        std::fs::read_to_string(&progress).unwrap_or_default(),
        rig.daemon.log()
    );
    assert_eq!(rig.hosts_allow(), "");
    speak_as_child(
        rig.daemon.pid(),
        &[Claim::new(0, "198.18.200.90".parse().unwrap())
            .one_time(0)
            .message()],
    );
    rig.expect_line("in.a: 198.18.200.90");
}

/// A TOTP knock is judged in the step it was matched in: a client one step slow whose knock
/// completed just before a step boundary opens although the parent reads it just after.
#[test]
fn a_totp_knock_is_judged_at_its_own_time() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let files = tempfile::tempdir().expect("tempdir");
    let key = files.path().join("totp.key");
    std::fs::write(&key, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n").expect("key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod key");
    let step_ms = 10_000u64;
    let extra = format!(
        "\n[[door]]\nname = \"totpSSH\"\ntotp_secret_file = {:?}\ntotp_length = 3\n\
         totp_ports = \"20000-40000\"\ntotp_step = \"10s\"\nseq_timeout = \"5s\"\n\
         tcp_flags = [\"syn\"]\nservice = \"SSHD\"\n",
        key.display().to_string()
    );
    let rig = Rig::builder("totpedge")
        .doors(vec![])
        .config(&extra)
        .start();
    let wall = || clock::wall_ms();
    // Into the first second of a step (c + 1).
    while !(300..900).contains(&(wall() % step_ms)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (boot, now) = (clock::boot_ms(), wall());
    let boundary = now - now % step_ms;
    let c = boundary / step_ms - 1;
    // Matched 300 ms before the boundary, in step c, with the code of step c - 1.
    let knock_time = boot - (now - boundary) - 300;
    let slow = Claim::new(0, "198.18.200.95".parse().unwrap())
        .totp(c - 1)
        .at(knock_time);
    speak_as_child(rig.daemon.pid(), &[slow.message()]);
    let opened = rig.wait_line("SSHD: 198.18.200.95", Duration::from_secs(3));
    assert!(
        opened.is_some() && rig.counter("refused_messages") == 0,
        "a one-step-slow code matched before the boundary was refused\n{}",
        rig.daemon.log()
    );
    // Two steps away from the knock's own step is an attack, whatever the boundary.
    let child = speak_as_child(
        rig.daemon.pid(),
        &[Claim::new(0, "198.18.200.96".parse().unwrap())
            .totp(c - 2)
            .at(knock_time)
            .message()],
    );
    let refused = rig.wait_counter("refused_messages", 1, Duration::from_secs(5));
    assert_eq!(refused, 1, "{}", rig.daemon.log());
    assert!(replaced(rig.daemon.pid(), child));
    assert_eq!(rig.hosts_allow(), "SSHD: 198.18.200.95\n");
}

/// A child flooding the parent with log lines gets a bounded number of them written, one
/// summary of what was dropped, and the count in `knockwrap status`.
#[test]
fn a_log_flood_from_the_capture_process_is_bounded() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let rig = Rig::builder("logflood")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let flood: Vec<Vec<u8>> = (0..3_000)
        .map(|i| log_message(&format!("flood line {i}")))
        .collect();
    let child = speak_as_child(rig.daemon.pid(), &flood);
    // Every line is either written or counted as dropped (the status is published every
    // few seconds).
    let (mut written, mut dropped) = (0, 0);
    let settled = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        written = rig
            .daemon
            .log()
            .lines()
            .filter(|l| l.contains("flood line"))
            .count() as u64;
        dropped = rig.counter("child_log_dropped");
        written + dropped == 3_000
    });
    assert!(
        written <= 200,
        "{written} lines of a 3,000-line flood were written"
    );
    assert!(settled, "written {written}, dropped {dropped}");
    assert!(
        wait_until(Duration::from_secs(12), Duration::from_millis(100), || rig
            .daemon
            .log()
            .lines()
            .filter(|l| l.contains("log lines from the capture process dropped"))
            .count()
            == 1),
        "no single summary of the dropped lines\n{}",
        rig.daemon.log()
    );
    // Log lines are no attack: the child stays.
    assert_eq!(children_of(rig.daemon.pid()), [child]);
    assert_eq!(rig.counter("refused_messages"), 0);
}

/// The capture process dies with its parent even when it has stopped listening: a child that
/// is stopped (SIGSTOP here; a taken-over child could ignore its channel as well) does not see
/// its channel close, so only the kernel's parent-death signal ends it. That signal is cleared
/// by a uid change, so it must be set after the drop to the capture account.
#[test]
fn a_stopped_capture_process_dies_with_its_killed_parent() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let mut rig = Rig::builder("pdeath")
        .door(Door::allow("openSSH", &OPEN))
        .start();
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
