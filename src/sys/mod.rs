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
    use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};
    let probe = socket_with(
        AddressFamily::PACKET,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None,
    )?;
    drop(probe);
    Ok(())
}
