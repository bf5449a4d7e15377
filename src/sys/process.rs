//! Process plumbing for the two-process daemon: the SOCK_SEQPACKET socketpair, fork(2),
//! descriptor hygiene in the child, sending and receiving datagrams, and reaping.
//!
//! fork(2) is only called by the parent, which runs no threads of its own (the capture
//! threads live in the child), so the child starts from a consistent copy.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

/// A connected pair of SOCK_SEQPACKET sockets (close-on-exec): message boundaries are kept,
/// and a datagram is delivered whole or not at all.
///
/// Both ends are bound at once to an address the kernel picks in the abstract namespace
/// (autobind: no file, and nobody can connect to a socket that does not listen). A socket is
/// bound once: the capture child, whose seccomp list must allow bind(2) for its packet and
/// netlink sockets, cannot bind its end of the channel to a path and so make a socket file.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let pair = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    // bind(2) with only the family (an unnamed address): the kernel gives each end an
    // abstract address of its own.
    for end in [&pair.0, &pair.1] {
        rustix::net::bind(end, &SocketAddrUnix::new_unnamed())?;
    }
    Ok(pair)
}

pub enum Forked {
    Child,
    Parent(libc::pid_t),
}

/// fork(2).
///
/// # Safety
/// The calling process must be single-threaded: the child must not inherit a lock another
/// thread holds (the allocator's, the logger's).
pub unsafe fn fork() -> io::Result<Forked> {
    match libc::fork() {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// How many threads this process runs (from /proc; None when /proc cannot tell).
pub fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// In the child: stdin, stdout and stderr become /dev/null opened read-only (a stray write
/// fails instead of reaching a file), and every other descriptor but `keep` is closed.
pub fn sanitize_fds(keep: &[RawFd]) -> io::Result<()> {
    let null = std::fs::File::open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(&null)?;
    rustix::stdio::dup2_stderr(&null)?;
    drop(null);
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    let mut from: RawFd = 3;
    for &k in keep.iter().chain(std::iter::once(&RawFd::MAX)) {
        if k > from {
            let last = if k == RawFd::MAX {
                u32::MAX
            } else {
                (k - 1) as u32
            };
            close_range(from as u32, last)?;
        }
        from = k.saturating_add(1);
    }
    Ok(())
}

/// close_range(2), which neither rustix nor nix wraps (closing descriptors by number is
/// unsafe by nature: something else may own them; here nothing does any more).
fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range(2) only closes descriptors; the ones kept are outside the range,
    // and nothing in this freshly forked, single-threaded process owns the others.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(e);
    }
    // Kernels before 5.9: close one by one up to the descriptor limit (sysconf(_SC_OPEN_MAX)
    // is the soft RLIMIT_NOFILE; -1 when unknown, clamped like any other value).
    let max = nix::unistd::sysconf(nix::unistd::SysconfVar::OPEN_MAX)
        .ok()
        .flatten()
        .unwrap_or(-1)
        .clamp(1024, 65536) as u32;
    for fd in first..=last.min(max) {
        // SAFETY: closing a descriptor number nobody in this process uses any more.
        unsafe { libc::close(fd as RawFd) };
    }
    Ok(())
}

/// This process's parent, as a raw pid (0 when it has none in this PID namespace).
pub fn parent() -> libc::pid_t {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())
}

/// The child dies with its parent `parent` (a parent that is killed must not leave a capture
/// process running without anyone to act on its decisions, and a child that stopped reading
/// its channel does not see the channel close): the kernel sends it SIGKILL when the parent's
/// thread that forked it ends, whatever the child's uid and however it handles signals.
///
/// To be called after the last change of credentials: a change of uid, gid or capabilities
/// clears the parent-death signal. A parent that died before this call is not signalled for:
/// `parent` is the pid read right after fork, and a different parent now is an error.
pub fn die_with_parent(parent: libc::pid_t) -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    let now = self::parent();
    if now != parent {
        return Err(io::Error::other(format!(
            "the parent process {parent} is gone (the parent is now {now})"
        )));
    }
    Ok(())
}

/// Ends `pid`, a child of this process not yet reaped (so its pid cannot have been reused),
/// that runs as `uid`, with SIGKILL.
///
/// Without CAP_KILL (the systemd unit withholds it) root may not signal another account's
/// process, so the signal is then sent as that account: this thread's effective uid becomes
/// `uid` for the one kill(2) and is set back at once. The first change uses CAP_SETUID (kept
/// for the child's drop); the real and saved uids stay root's, so the change back needs no
/// capability, the effective capabilities come back from the permitted set, and nobody can
/// signal or trace this process meanwhile (that goes by its real and saved uids). Only this thread's credentials change (the raw per-thread call).
pub fn kill_child(pid: libc::pid_t, uid: u32) -> io::Result<()> {
    use rustix::io::Errno;
    use rustix::process::{kill_process, Pid, Signal};
    use rustix::thread::set_thread_res_uid;
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::other("not a child's pid"))?;
    match kill_process(pid, Signal::KILL) {
        Err(Errno::PERM) => {}
        other => return Ok(other?),
    }
    let me = rustix::process::geteuid();
    set_thread_res_uid(None, rustix::process::Uid::from_raw(uid), None)?;
    let killed = kill_process(pid, Signal::KILL);
    set_thread_res_uid(None, me, None)?;
    Ok(killed?)
}

/// Set by SIGTERM in the child (the handler only stores to this flag).
static TERM: std::sync::LazyLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
    std::sync::LazyLock::new(Default::default);

/// Signals the child handles itself: SIGTERM asks it to stop ([`term_requested`]), through
/// signal-hook (whose registry the child inherits from the parent, single-threaded at fork);
/// SIGINT and SIGHUP are the parent's and are ignored, as is SIGPIPE (a closed channel is an
/// error from send, not a signal). The parent's SIGINT and SIGHUP handlers, inherited across
/// fork, are replaced: they would only set flags nobody reads in the child.
pub fn child_signals() -> io::Result<()> {
    signal_hook::flag::register(signal_hook::consts::SIGTERM, std::sync::Arc::clone(&TERM))?;
    for sig in [libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
        // SAFETY: installs the ignore disposition, which runs no code in this process (no
        // safe wrapper sets SIG_IGN: signal-hook only installs handlers).
        if unsafe { libc::signal(sig, libc::SIG_IGN) } == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether SIGTERM arrived since [`child_signals`].
pub fn term_requested() -> bool {
    TERM.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sends one datagram; a full buffer waits at most `timeout` (None: until there is room or
/// the peer is gone).
pub fn send(fd: BorrowedFd<'_>, bytes: &[u8], timeout: Option<Duration>) -> io::Result<()> {
    loop {
        match rustix::net::send(fd, bytes, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => {
                let slice = timeout.unwrap_or(Duration::from_secs(1));
                if !wait(fd, PollFlags::OUT, slice)? && timeout.is_some() {
                    return Err(io::Error::from_raw_os_error(libc::EAGAIN));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one datagram without blocking. `Ok(None)`: nothing queued; `Ok(Some(0))` with an
/// empty buffer: the peer closed. A datagram longer than `buf` is reported by its full
/// length (MSG_TRUNC), so the caller can refuse it.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // The second length is the datagram's whole length (MSG_TRUNC), not what was copied.
        match rustix::net::recv(fd, &mut *buf, RecvFlags::DONTWAIT | RecvFlags::TRUNC) {
            Ok((_, n)) => return Ok(Some(n)),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits up to `timeout` (in whole milliseconds, as poll(2) takes it) for `events` on `fd`;
/// true when ready (or hung up).
pub fn wait(fd: BorrowedFd<'_>, events: PollFlags, timeout: Duration) -> io::Result<bool> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i64;
    let timeout = Timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    let mut p = [PollFd::from_borrowed_fd(fd, events)];
    match rustix::event::poll(&mut p, Some(&timeout)) {
        Err(Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) if *s == libc::SIGSYS => {
                write!(
                    f,
                    "signal {s} (SIGSYS: a system call outside its seccomp list)"
                )
            }
            Exit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// Reaps `pid` if it has ended (`block`: wait for it).
pub fn reap(pid: libc::pid_t, block: bool) -> Option<Exit> {
    use rustix::process::{Pid, WaitOptions};
    let flags = if block {
        WaitOptions::empty()
    } else {
        WaitOptions::NOHANG
    };
    let (_, status) = rustix::process::waitpid(Some(Pid::from_raw(pid)?), flags).ok()??;
    if let Some(code) = status.exit_status() {
        Some(Exit::Code(code))
    } else {
        status.terminating_signal().map(Exit::Signal)
    }
}
