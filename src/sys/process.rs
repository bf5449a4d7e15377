//! Process plumbing for the two-process daemon: the SOCK_SEQPACKET socketpair, fork(2),
//! descriptor hygiene in the child, sending and receiving datagrams, and reaping.
//!
//! fork(2) is only called by the parent, which runs no threads of its own (the capture
//! threads live in the child), so the child starts from a consistent copy.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A connected pair of SOCK_SEQPACKET sockets (close-on-exec): message boundaries are kept,
/// and a datagram is delivered whole or not at all.
///
/// Both ends are bound at once to an address the kernel picks in the abstract namespace
/// (autobind: no file, and nobody can connect to a socket that does not listen). A socket is
/// bound once: the capture child, whose seccomp list must allow bind(2) for its packet and
/// netlink sockets, cannot bind its end of the channel to a path and so make a socket file.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is valid for two ints.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for end in [&pair.0, &pair.1] {
        autobind(end.as_raw_fd())?;
    }
    Ok(pair)
}

/// bind(2) with only the family: the kernel gives the socket an abstract address of its own.
fn autobind(fd: RawFd) -> io::Result<()> {
    // SAFETY: a zeroed sockaddr_un is a valid value; only its family is passed.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let len = std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t;
    // SAFETY: addr is valid for `len` bytes.
    let rc = unsafe { libc::bind(fd, (&addr as *const libc::sockaddr_un).cast(), len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
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

fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range(2) only closes descriptors; the ones kept are outside the range.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(e);
    }
    // Kernels before 5.9: close one by one up to the descriptor limit.
    // SAFETY: sysconf has no preconditions.
    let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(1024, 65536) as u32;
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

static TERM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Signals the child handles itself: SIGTERM asks it to stop ([`term_requested`]); SIGINT
/// and SIGHUP are the parent's. The parent's handlers, inherited across fork, are replaced:
/// they would only set flags nobody reads in the child.
pub fn child_signals() {
    // SAFETY: the handler only stores to an atomic (async-signal-safe); the others install
    // the ignore disposition.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Whether SIGTERM arrived since [`child_signals`].
pub fn term_requested() -> bool {
    TERM.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sends one datagram; a full buffer waits at most `timeout` (None: until there is room or
/// the peer is gone).
pub fn send(fd: RawFd, bytes: &[u8], timeout: Option<Duration>) -> io::Result<()> {
    loop {
        // SAFETY: bytes is valid for its length.
        let n = unsafe {
            libc::send(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {
                let slice = timeout.unwrap_or(Duration::from_secs(1));
                if !wait(fd, libc::POLLOUT, slice)? && timeout.is_some() {
                    return Err(io::Error::from_raw_os_error(libc::EAGAIN));
                }
            }
            _ => return Err(e),
        }
    }
}

/// Receives one datagram without blocking. `Ok(None)`: nothing queued; `Ok(Some(0))` with an
/// empty buffer: the peer closed. A datagram longer than `buf` is reported by its full
/// length (MSG_TRUNC), so the caller can refuse it.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// Waits up to `timeout` for `events` on `fd`; true when ready (or hung up).
pub fn wait(fd: RawFd, events: libc::c_short, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    match unsafe { libc::poll(&mut p, 1, ms) } {
        -1 => {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ => Ok(true),
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
    let mut status = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: status is a valid int.
    let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
    if rc != pid {
        return None;
    }
    if libc::WIFEXITED(status) {
        Some(Exit::Code(libc::WEXITSTATUS(status)))
    } else if libc::WIFSIGNALED(status) {
        Some(Exit::Signal(libc::WTERMSIG(status)))
    } else {
        None
    }
}
