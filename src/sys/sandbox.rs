//! The capture child's seccomp filters: an allow list of the system calls its loop makes
//! (memory, threads, time, polling, packet and netlink sockets, the channel), and nothing that
//! takes a path: open/openat fail with EACCES, mkdir/rename/unlink/execve and everything else
//! outside the list kill the whole process (SIGSYS; the parent logs that and starts a new
//! child). So the child cannot reach the file system at all, whatever its uid: that is how "no
//! writable file system" is enforced (stronger than a chroot, which still allows opening
//! files inside it).
//!
//! The list is proved by the end-to-end suite, which runs every child under it in kill mode.

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
    // Threads, signals, exit.
    libc::SYS_clone,
    libc::SYS_clone3,
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
    libc::SYS_tgkill,
    libc::SYS_getrandom,
    libc::SYS_prlimit64,
    // Time.
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    // Descriptors it already holds: the channel, packet and netlink sockets.
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
    libc::SYS_sendmsg,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_bind,
    libc::SYS_getsockname,
];

/// ioctl requests: the interface index (if_nametoindex), its link type, and a packet's
/// timestamp.
const IOCTLS: &[u64] = &[
    libc::SIOCGIFINDEX,
    libc::SIOCGIFHWADDR,
    0x8906, // SIOCGSTAMP
];

/// Socket families: packet capture (reopening an interface), netlink (getifaddrs), and the
/// datagram sockets glibc opens for interface ioctls.
const FAMILIES: &[i32] = &[
    libc::AF_PACKET,
    libc::AF_NETLINK,
    libc::AF_UNIX,
    libc::AF_INET,
    libc::AF_INET6,
];

/// What a call outside the list does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Kill the whole process (SIGSYS), in production and in every test.
    Kill,
}

fn condition(arg: u8, value: u64) -> Result<SeccompRule, SandboxError> {
    let c = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
        .map_err(|e| SandboxError::Build(e.to_string()))?;
    SeccompRule::new(vec![c]).map_err(|e| SandboxError::Build(e.to_string()))
}

/// Opening a file by path fails with EACCES instead of killing: a library that looks for a
/// file of its own (libfaketime's control file under test, glibc's lazily loaded data) gets
/// an error it handles, and still no file. A second filter, stacked on the allow list (the
/// kernel applies the strictest answer of all filters).
const OPENS: &[libc::c_long] = &[
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_creat,
    libc::SYS_openat,
    libc::SYS_openat2,
];

/// The second filter: path opens fail with EACCES, everything else is left to the first.
pub fn open_filter() -> Result<BpfProgram, SandboxError> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = OPENS.iter().map(|&nr| (nr, Vec::new())).collect();
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Build(e.to_string()))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )
    .map_err(|e| SandboxError::Build(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| SandboxError::Build(e.to_string()))
}

/// The compiled allow list.
pub fn child_filter(mode: Mode) -> Result<BpfProgram, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in ALLOWED.iter().chain(OPENS) {
        rules.insert(nr, Vec::new());
    }
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
    rules.insert(
        libc::SYS_socket,
        FAMILIES
            .iter()
            .map(|&f| condition(0, f as u64))
            .collect::<Result<_, _>>()?,
    );
    let mismatch = match mode {
        Mode::Kill => SeccompAction::KillProcess,
    };
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Build(e.to_string()))?;
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, arch)
        .map_err(|e| SandboxError::Build(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| SandboxError::Build(e.to_string()))
}

/// Installs the filter on the calling thread (threads started later inherit it). Sets
/// NoNewPrivs, which seccomp requires of an unprivileged process.
pub fn enter(mode: Mode) -> Result<(), SandboxError> {
    let program = child_filter(mode)?;
    // The open filter first: once the allow list is in, seccomp(2) itself is refused.
    seccompiler::apply_filter(&open_filter()?).map_err(|e| SandboxError::Install(e.to_string()))?;
    seccompiler::apply_filter(&program).map_err(|e| SandboxError::Install(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a forked process (the filter cannot be removed again): allowed calls work, open
    /// fails with EACCES, any other path call kills the process with SIGSYS.
    #[test]
    fn open_fails_mkdir_kills_and_allowed_calls_work() {
        let program = child_filter(Mode::Kill).expect("filter");
        let opens = open_filter().expect("filter");
        assert!(!program.is_empty());
        // SAFETY: the test process may run other threads; the child only makes raw syscalls
        // and _exit, no allocation.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            unsafe {
                if seccompiler::apply_filter(&opens).is_err()
                    || seccompiler::apply_filter(&program).is_err()
                {
                    libc::_exit(3);
                }
                if libc::getpid() <= 0 {
                    libc::_exit(4);
                }
                let fd =
                    libc::syscall(libc::SYS_openat, libc::AT_FDCWD, c"/etc/passwd".as_ptr(), 0);
                if fd != -1 || *libc::__errno_location() != libc::EACCES {
                    libc::_exit(6);
                }
                libc::syscall(
                    libc::SYS_mkdirat,
                    libc::AT_FDCWD,
                    c"/tmp/kw-x".as_ptr(),
                    0o700,
                );
                libc::_exit(5);
            }
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
            "status {status:#x}: exit {}",
            libc::WEXITSTATUS(status)
        );
    }
}
