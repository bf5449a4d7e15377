//! The capture child's seccomp filters: an allow list of the system calls its loop makes
//! (memory, threads, time, polling, packet and netlink sockets, the channel), and nothing that
//! takes a path: open/openat fail with EACCES, mkdir/rename/unlink/execve and everything else
//! outside the list kill the whole process (SIGSYS; the parent logs that and starts a new
//! child). So the child cannot reach the file system at all, whatever its uid: that is how "no
//! writable file system" is enforced (stronger than a chroot, which still allows opening
//! files inside it).
//!
//! The calls it does make are narrowed by their arguments where the kernel lets a filter see
//! them: clone only with the flags of a new thread (no new process, no namespace), clone3
//! (whose flags a filter cannot read) answered ENOSYS so glibc falls back to clone, tgkill only
//! to its own threads, prlimit64 only to read its own limits, socket only for AF_PACKET and
//! NETLINK_ROUTE (others fail with EAFNOSUPPORT, which glibc's interface-ioctl socket falls
//! back from). docs/security.md lists each call and why. One-time setups that would need a call
//! outside the list (the event clock's vDSO lookup) are done before the filters go in.
//!
//! Tested through [`enter`] itself, in forked processes: every call the child does not need is
//! refused or kills, and what it does (threads, its sockets, getifaddrs, if_nametoindex, the
//! channel) still works. The end-to-end suite runs every child under it in kill mode.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("building the seccomp filter: {0}")]
    Build(String),
    #[error("installing the seccomp filter: {0}")]
    Install(String),
}

/// System calls allowed without conditions.
const ALLOWED: &[libc::c_long] = &[
    // Memory.
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    // Threads (clone is in `child_filter`, with its flags), signals, exit.
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_sigaltstack,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_restart_syscall,
    libc::SYS_getrandom,
    // Time.
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    // Descriptors it already holds: the channel, packet and netlink sockets. sendto with an
    // address reaches only what those sockets reach: the kernel over NETLINK_ROUTE (getifaddrs
    // sends its request that way; unicast to another process's netlink socket needs
    // CAP_NET_ADMIN), a frame on a packet socket (as a write on it would), and the parent on
    // the channel (a connected SOCK_SEQPACKET socket ignores the address).
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_close,
    libc::SYS_fcntl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_recvmmsg,
    libc::SYS_sendto,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    // A packet socket to its interface, a netlink socket to the kernel. An AF_UNIX bind (a
    // socket file) is not possible: the child can make no AF_UNIX socket, and the channel's
    // ends are bound (abstract, unnamed) when made, so binding them again fails (EINVAL).
    libc::SYS_bind,
    libc::SYS_getsockname,
];

/// The flags glibc's pthread_create (so std::thread::spawn) gives clone(2) for a new thread:
/// the only clone the child may make. A new process or namespace needs other flags.
const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_SETTLS
    | libc::CLONE_PARENT_SETTID
    | libc::CLONE_CHILD_CLEARTID) as u64;

/// ioctl requests: the interface index (if_nametoindex), its link type, and a packet's
/// timestamp.
const IOCTLS: &[u64] = &[
    libc::SIOCGIFINDEX,
    libc::SIOCGIFHWADDR,
    0x8906, // SIOCGSTAMP
];

/// What a call outside the list does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Kill the whole process (SIGSYS), in production and in every test.
    Kill,
}

fn compare(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, len, op, value).map_err(|e| SandboxError::Build(e.to_string()))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conditions).map_err(|e| SandboxError::Build(e.to_string()))
}

/// A rule: 32-bit argument `arg` equals `value`.
fn condition(arg: u8, value: u64) -> Result<SeccompRule, SandboxError> {
    rule(vec![compare(
        arg,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        value,
    )?])
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SandboxError> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Build(e.to_string()))?;
    let filter = SeccompFilter::new(rules, mismatch, matched, arch)
        .map_err(|e| SandboxError::Build(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| SandboxError::Build(e.to_string()))
}

/// Opening a file by path fails with EACCES instead of killing: a library that looks for a
/// file of its own (libfaketime's control file under test, glibc's lazily loaded data) gets
/// an error it handles, and still no file.
const OPENS: &[libc::c_long] = &[
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_creat,
    libc::SYS_openat,
    libc::SYS_openat2,
];

/// The filters that answer a call with an error instead of running it, stacked on the allow
/// list (the kernel applies the strictest answer of all filters, so the allow list lets these
/// calls through to them). One errno per filter:
/// - path opens: EACCES;
/// - socket of any family but AF_PACKET (capture) and AF_NETLINK with NETLINK_ROUTE
///   (getifaddrs; glibc's socket for interface ioctls, which tries AF_UNIX first and takes
///   the next family on an error): EAFNOSUPPORT;
/// - clone3, whose flags sit in memory a filter cannot read: ENOSYS, on which glibc makes the
///   thread with clone(2), whose flags the allow list checks.
pub fn refusal_filters() -> Result<Vec<BpfProgram>, SandboxError> {
    use SeccompCmpArgLen::Dword;
    use SeccompCmpOp::{Eq, Ne};
    let opens = OPENS.iter().map(|&nr| (nr, Vec::new())).collect();
    let sockets = BTreeMap::from([(
        libc::SYS_socket,
        vec![
            rule(vec![
                compare(0, Dword, Ne, libc::AF_PACKET as u64)?,
                compare(0, Dword, Ne, libc::AF_NETLINK as u64)?,
            ])?,
            rule(vec![
                compare(0, Dword, Eq, libc::AF_NETLINK as u64)?,
                compare(2, Dword, Ne, libc::NETLINK_ROUTE as u64)?,
            ])?,
        ],
    )]);
    let clone3 = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    let errno = |e: i32| SeccompAction::Errno(e as u32);
    [
        (opens, libc::EACCES),
        (sockets, libc::EAFNOSUPPORT),
        (clone3, libc::ENOSYS),
    ]
    .into_iter()
    .map(|(rules, e)| compile(rules, SeccompAction::Allow, errno(e)))
    .collect()
}

/// The compiled allow list for the process `pid` (the one that installs it).
pub fn child_filter(mode: Mode, pid: u32) -> Result<BpfProgram, SandboxError> {
    use SeccompCmpArgLen::Qword;
    use SeccompCmpOp::Eq;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // The calls a refusal filter answers (see `refusal_filters`) pass this one.
    for &nr in ALLOWED
        .iter()
        .chain(OPENS)
        .chain(&[libc::SYS_socket, libc::SYS_clone3])
    {
        rules.insert(nr, Vec::new());
    }
    rules.insert(
        libc::SYS_clone,
        vec![rule(vec![compare(0, Qword, Eq, THREAD_FLAGS)?])?],
    );
    // Signals to its own threads only (abort(3) raises SIGABRT this way).
    rules.insert(libc::SYS_tgkill, vec![condition(0, u64::from(pid))?]);
    // Reading its own limits (pid 0, no new limit): the runtime's stack size.
    rules.insert(
        libc::SYS_prlimit64,
        vec![rule(vec![
            compare(0, Qword, Eq, 0)?,
            compare(2, Qword, Eq, 0)?,
        ])?],
    );
    rules.insert(
        libc::SYS_ioctl,
        IOCTLS
            .iter()
            .map(|&r| condition(1, r))
            .collect::<Result<_, _>>()?,
    );
    // Naming threads ("capture-eth0").
    rules.insert(
        libc::SYS_prctl,
        vec![condition(0, libc::PR_SET_NAME as u64)?],
    );
    let mismatch = match mode {
        Mode::Kill => SeccompAction::KillProcess,
    };
    compile(rules, mismatch, SeccompAction::Allow)
}

/// Installs the filters on the calling thread (threads started later inherit them), in a
/// process that runs no other thread. Sets NoNewPrivs, which seccomp requires of an
/// unprivileged process.
pub fn enter(mode: Mode) -> Result<(), SandboxError> {
    // The event clock's one-time setup (a prctl the list does not allow) happens now.
    ::clock::prepare();
    let program = child_filter(mode, std::process::id())?;
    let install = |p: &BpfProgram| {
        seccompiler::apply_filter(p).map_err(|e| SandboxError::Install(e.to_string()))
    };
    // The refusals first: once the allow list is in, seccomp(2) itself is refused.
    for refusal in refusal_filters()? {
        install(&refusal)?;
    }
    install(&program)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{Mode as FileMode, OFlags, CWD};
    use rustix::io::Errno;
    use rustix::net::{
        netlink, AddressFamily, SendAncillaryBuffer, SendFlags, SocketAddrUnix, SocketFlags,
        SocketType,
    };
    use rustix::process::{Pid, WaitOptions};
    use std::os::fd::AsFd;

    /// How a sandboxed test process ended.
    #[derive(Debug, PartialEq, Eq)]
    enum Ended {
        Code(i32),
        Signal(i32),
    }

    /// Runs `body` in a forked process that has entered the sandbox through [`enter`], as the
    /// capture child does; `body`'s return value is the exit code.
    fn sandboxed(body: impl FnOnce() -> i32) -> Ended {
        // SAFETY: the test process may run other threads; glibc's fork leaves the allocator
        // usable in the child, and the child only builds the filter, runs `body` and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = if enter(Mode::Kill).is_ok() {
                body()
            } else {
                99
            };
            // SAFETY: ends the forked test process without running the harness's exit path.
            unsafe { libc::_exit(code) };
        }
        let pid = Pid::from_raw(pid).expect("a child's pid");
        let (_, status) = rustix::process::waitpid(Some(pid), WaitOptions::empty())
            .expect("waitpid")
            .expect("the child ended");
        match status.terminating_signal() {
            Some(sig) => Ended::Signal(sig),
            None => Ended::Code(status.exit_status().unwrap_or(-1)),
        }
    }

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// 0 when `rc` is a failure with `want`; 1 when the call succeeded, 2 for another errno.
    fn failed_with(rc: libc::c_long, want: i32) -> i32 {
        match (rc, errno()) {
            (-1, e) if e == want => 0,
            (-1, _) => 2,
            _ => 1,
        }
    }

    /// [`failed_with`] for a call made through a safe wrapper.
    fn refused_with<T>(r: rustix::io::Result<T>, want: i32) -> i32 {
        match r {
            Err(e) if e == Errno::from_raw_os_error(want) => 0,
            Err(_) => 2,
            Ok(_) => 1,
        }
    }

    /// A process made by a call that should not have made one ends at once.
    fn end_if_new_process(rc: libc::c_long) {
        if rc == 0 {
            // SAFETY: we are the new process; nothing to clean up.
            unsafe { libc::_exit(0) };
        }
    }

    /// Every call the review found too wide, made through the installed filter: each one is
    /// refused with its errno or kills the process (SIGSYS).
    #[test]
    fn what_the_child_does_not_need_is_refused_by_the_installed_filter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock_path = SocketAddrUnix::new(dir.path().join("planted.sock")).unwrap();
        let (_parent_end, child_end) = crate::sys::process::seqpacket_pair().expect("socketpair");
        let channel = std::rc::Rc::new(child_end);
        // Another process of the same uid: the test process itself (getppid is not in the list).
        let other = std::process::id() as libc::pid_t;
        type Call = Box<dyn Fn() -> i32>;
        // SAFETY (every unsafe call below): raw system calls with valid arguments (no safe
        // wrapper makes them as the test needs), in a forked process that ends right after.
        let cases: Vec<(&str, Call, Ended)> = vec![
            (
                "clone(CLONE_NEWUSER) (a new user namespace)",
                // SAFETY: raw clone(2) without a new stack; a new process _exits at once.
                Box::new(|| unsafe {
                    let rc = libc::syscall(
                        libc::SYS_clone,
                        (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
                        0,
                        0,
                        0,
                        0,
                    );
                    end_if_new_process(rc);
                    0
                }),
                Ended::Signal(libc::SIGSYS),
            ),
            (
                "clone(SIGCHLD) (a new process)",
                // SAFETY: raw clone(2) without a new stack; a new process _exits at once.
                Box::new(|| unsafe {
                    let rc =
                        libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0);
                    end_if_new_process(rc);
                    0
                }),
                Ended::Signal(libc::SIGSYS),
            ),
            (
                "clone3 (flags out of the filter's reach)",
                // SAFETY: clone3(2) with a clone_args of the size passed; a new process _exits.
                Box::new(|| unsafe {
                    let mut args = [0u64; 11];
                    args[0] = libc::CLONE_NEWUSER as u64;
                    args[4] = libc::SIGCHLD as u64;
                    let rc = libc::syscall(
                        libc::SYS_clone3,
                        args.as_mut_ptr(),
                        std::mem::size_of_val(&args),
                    );
                    end_if_new_process(rc);
                    failed_with(rc, libc::ENOSYS)
                }),
                Ended::Code(0),
            ),
            (
                "unshare(CLONE_NEWNET)",
                // SAFETY: unshare(2) takes no pointer (rustix only offers it as unsafe too).
                Box::new(|| unsafe {
                    libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNET);
                    0
                }),
                Ended::Signal(libc::SIGSYS),
            ),
            (
                "tgkill to another process",
                // SAFETY: tgkill(2) with signal 0 takes no pointer and delivers nothing.
                Box::new(move || unsafe {
                    libc::syscall(libc::SYS_tgkill, other, other, 0);
                    0
                }),
                Ended::Signal(libc::SIGSYS),
            ),
            (
                "kill to another process",
                Box::new(move || {
                    let _ = rustix::process::test_kill_process(Pid::from_raw(other).unwrap());
                    0
                }),
                Ended::Signal(libc::SIGSYS),
            ),
            (
                "prlimit64 on another process",
                // SAFETY: prlimit64(2) reads into `old`, a valid rlimit64; no new limit.
                Box::new(move || unsafe {
                    let mut old: libc::rlimit64 = std::mem::zeroed();
                    libc::syscall(
                        libc::SYS_prlimit64,
                        other,
                        libc::RLIMIT_NOFILE,
                        std::ptr::null::<libc::rlimit64>(),
                        &mut old,
                    );
                    0
                }),
                Ended::Signal(libc::SIGSYS),
            ),
            (
                "socket(AF_UNIX) (syslog, other local sockets)",
                Box::new(|| {
                    let r = rustix::net::socket(AddressFamily::UNIX, SocketType::DGRAM, None);
                    refused_with(r, libc::EAFNOSUPPORT)
                }),
                Ended::Code(0),
            ),
            (
                "socket(AF_INET)",
                Box::new(|| {
                    let r = rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None);
                    refused_with(r, libc::EAFNOSUPPORT)
                }),
                Ended::Code(0),
            ),
            (
                "socket(AF_NETLINK, NETLINK_NETFILTER)",
                Box::new(|| {
                    let r = rustix::net::socket(
                        AddressFamily::NETLINK,
                        SocketType::RAW,
                        Some(netlink::NETFILTER),
                    );
                    refused_with(r, libc::EAFNOSUPPORT)
                }),
                Ended::Code(0),
            ),
            (
                "bind of the channel to a path (a socket file)",
                Box::new({
                    let channel = std::rc::Rc::clone(&channel);
                    move || {
                        let r = rustix::net::bind(channel.as_fd(), &sock_path);
                        refused_with(r, libc::EINVAL)
                    }
                }),
                Ended::Code(0),
            ),
            (
                "sendmsg",
                Box::new(move || {
                    let mut control = SendAncillaryBuffer::default();
                    let _ = rustix::net::sendmsg(
                        channel.as_fd(),
                        &[],
                        &mut control,
                        SendFlags::DONTWAIT,
                    );
                    0
                }),
                Ended::Signal(libc::SIGSYS),
            ),
            (
                "openat (a path)",
                Box::new(|| {
                    let r =
                        rustix::fs::openat(CWD, "/etc/passwd", OFlags::RDONLY, FileMode::empty());
                    refused_with(r, libc::EACCES)
                }),
                Ended::Code(0),
            ),
            (
                "mkdirat (a path)",
                Box::new(|| {
                    let _ = rustix::fs::mkdirat(CWD, "/tmp/kw-x", FileMode::from_raw_mode(0o700));
                    0
                }),
                Ended::Signal(libc::SIGSYS),
            ),
        ];
        let mut wrong = Vec::new();
        for (what, call, want) in cases {
            let got = sandboxed(call);
            if got != want {
                wrong.push(format!("{what}: {got:?}, want {want:?}"));
            }
        }
        if dir.path().join("planted.sock").exists() {
            wrong.push("the channel was bound to a path: a socket file was made".into());
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// What the capture child does, through the installed filter: threads, its socket
    /// families, getifaddrs, opening a capture, the channel, signals to itself, and reading
    /// its own limits.
    #[test]
    fn what_the_child_does_still_works_in_the_sandbox() {
        let (parent_end, child_end) = crate::sys::process::seqpacket_pair().expect("socketpair");
        let got = sandboxed(move || {
            if std::thread::spawn(|| 7).join().ok() != Some(7) {
                return 10;
            }
            let cloexec = SocketFlags::CLOEXEC;
            // NETLINK_ROUTE is the default protocol (None).
            if rustix::net::socket_with(AddressFamily::NETLINK, SocketType::RAW, cloexec, None)
                .is_err()
            {
                return 11;
            }
            match rustix::net::socket_with(AddressFamily::PACKET, SocketType::RAW, cloexec, None) {
                Ok(_) | Err(Errno::PERM) => {}
                Err(_) => return 12,
            }
            let (pid, tid) = (rustix::process::getpid(), rustix::thread::gettid());
            // SAFETY: tgkill(2) with signal 0 to this very thread (no wrapper sends it).
            let rc =
                unsafe { libc::syscall(libc::SYS_tgkill, pid.as_raw_pid(), tid.as_raw_pid(), 0) };
            if rc != 0 {
                return 14;
            }
            let mut old: libc::rlimit64 = libc::rlimit64 {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: prlimit64(2) reading this process's own limit into `old` (rustix's
            // getrlimit makes the same call but cannot report a failure, which this checks).
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_prlimit64,
                    0,
                    libc::RLIMIT_STACK,
                    std::ptr::null::<libc::rlimit64>(),
                    &mut old,
                )
            };
            if rc != 0 {
                return 15;
            }
            if crate::sys::ifaddrs::addresses().is_err() {
                return 16;
            }
            // The event clock, as the loop reads it.
            if ::clock::boot_ms() == 0 {
                return 18;
            }
            // The capture as the child opens it: interface index, link type, filter, ring,
            // bind (needs CAP_NET_RAW: the test runs as root in CI).
            let spec = knock_capture::FilterSpec::from_doors(std::iter::empty(), true);
            match knock_capture::Capture::open("lo", &spec) {
                Ok(_) => {}
                Err(knock_capture::CaptureError::Io { source, .. })
                    if source.raw_os_error() == Some(libc::EPERM) => {}
                Err(_) => return 13,
            }
            if crate::sys::process::send(child_end.as_fd(), b"alive", None).is_err() {
                return 17;
            }
            0
        });
        assert_eq!(got, Ended::Code(0));
        let mut buf = [0u8; 16];
        let n = crate::sys::process::recv(parent_end.as_fd(), &mut buf).expect("recv");
        assert_eq!(n.map(|n| &buf[..n]), Some(&b"alive"[..]));
    }
}
