//! The operating-system glue of the daemon, in one place: interface addresses (getifaddrs),
//! the capture privilege probe, the parent–child plumbing (socketpair, fork, descriptors),
//! dropping root and the seccomp sandbox. Everything above this module is ordinary Rust.

pub mod ifaddrs;
pub mod privilege;
pub mod process;
pub mod sandbox;

use std::io;

/// Whether this process may open packet sockets (root or CAP_NET_RAW): probed by opening
/// and closing one.
pub fn can_capture() -> io::Result<()> {
    // SAFETY: plain socket(2) call; the descriptor is closed right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a descriptor this function owns.
    unsafe { libc::close(fd) };
    Ok(())
}
