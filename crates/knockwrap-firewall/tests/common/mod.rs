//! Network namespaces for the privileged tests: a server and a client joined by a veth pair,
//! with the project's test addresses only (198.18.0.0/15, fd00:4b57::/64; no default route),
//! deleted on drop (also when a test panics), and nft run inside the server's namespace.

#![allow(dead_code)]

use std::fs::File;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use knockwrap_firewall::Runner;

pub const SERVER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The client's second address: another source on the same side.
pub const OTHER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
pub const SERVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x4b57, 0, 0, 0, 0, 0, 1);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x4b57, 0, 0, 0, 0, 0, 2);
pub const OTHER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x4b57, 0, 0, 0, 0, 0, 3);

/// How long a connect waits before the port counts as filtered: a refusal (RST) comes back
/// at once on a veth, and the kernel's first SYN retransmit is 1 s away.
pub const FILTERED_AFTER: Duration = Duration::from_millis(400);

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// True when the test may run: root, `ip` and `nft`. Otherwise the project's skip-or-fail.
pub fn privileged(test: &str) -> bool {
    if !test_support::require_root_or_skip(test) {
        return false;
    }
    for (tool, arg) in [("ip", "-V"), ("nft", "--version")] {
        let ok = Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return test_support::skip_or_fail(test, tool);
        }
    }
    true
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Two namespaces and a veth pair; both namespaces (and so the pair) deleted on drop.
pub struct Pair {
    pub server: String,
    pub client: String,
}

impl Pair {
    pub fn new(tag: &str) -> Pair {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("kwfw-{}-{n}-{tag}", std::process::id());
        // The guard exists before anything is created: a failure half-way still cleans up.
        let pair = Pair {
            server: format!("{base}-s"),
            client: format!("{base}-c"),
        };
        pair.setup()
            .unwrap_or_else(|e| panic!("namespaces for {tag}: {e}"));
        pair
    }

    fn setup(&self) -> io::Result<()> {
        ip(&["netns", "add", &self.server])?;
        ip(&["netns", "add", &self.client])?;
        for ns in [&self.server, &self.client] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "-n",
            &self.server,
            "link",
            "add",
            "s0",
            "type",
            "veth",
            "peer",
            "name",
            "c0",
            "netns",
            &self.client,
        ])?;
        let addrs = [
            (
                &self.server,
                "s0",
                vec![format!("{SERVER4}/24"), format!("{SERVER6}/64")],
            ),
            (
                &self.client,
                "c0",
                vec![
                    format!("{CLIENT4}/24"),
                    format!("{OTHER4}/24"),
                    format!("{CLIENT6}/64"),
                    format!("{OTHER6}/64"),
                ],
            ),
        ];
        for (ns, dev, list) in addrs {
            for a in list {
                let mut args = vec!["-n", ns.as_str(), "addr", "add", a.as_str(), "dev", dev];
                if a.contains(':') {
                    args.push("nodad");
                }
                ip(&args)?;
            }
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    /// nft inside the server's namespace.
    pub fn runner(&self) -> Runner {
        Runner::with_args("ip", ["netns", "exec", self.server.as_str(), "nft"])
    }

    /// Run nft with fixed arguments in the server's namespace (test set-up only).
    pub fn nft(&self, args: &[&str]) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.server, "nft"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn in_server<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_ns(&self.server, f)
    }

    pub fn in_client<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_ns(&self.client, f)
    }

    /// Connect from `src` in the client namespace to `dst` on the server.
    pub fn connect(&self, src: IpAddr, dst: IpAddr, port: u16) -> io::Result<TcpStream> {
        self.in_client(|| connect_from(Some(src), SocketAddr::new(dst, port), FILTERED_AFTER))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.client, &self.server] {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Run `f` on a thread that entered namespace `ns`; sockets it makes belong there.
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: a valid namespace descriptor; setns affects only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                panic!("setns {path}: {}", io::Error::last_os_error());
            }
            f()
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { (&mut ss as *mut _ as *mut libc::sockaddr_in).write(sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { (&mut ss as *mut _ as *mut libc::sockaddr_in6).write(sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// A TCP connect from `src` (bound first) that gives up after `wait` with `TimedOut`: what
/// a filtered port looks like, as opposed to `ConnectionRefused` (an RST).
pub fn connect_from(src: Option<IpAddr>, dst: SocketAddr, wait: Duration) -> io::Result<TcpStream> {
    let family = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket call; the descriptor is owned by the TcpStream below or closed.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is ours; from here on it is closed when `stream` drops.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_usec: wait.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: a valid timeval for SO_SNDTIMEO, which bounds a blocking connect on Linux.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &tv as *const _ as *const libc::c_void,
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some(src) = src {
        let (ss, len) = sockaddr(SocketAddr::new(src, 0));
        // SAFETY: ss holds a sockaddr of length len.
        if unsafe { libc::bind(fd, &ss as *const _ as *const libc::sockaddr, len) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let (ss, len) = sockaddr(dst);
    // SAFETY: as above.
    if unsafe { libc::connect(fd, &ss as *const _ as *const libc::sockaddr, len) } != 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EINPROGRESS) | Some(libc::EAGAIN) => {
                io::Error::from(io::ErrorKind::TimedOut)
            }
            _ => e,
        });
    }
    stream.set_write_timeout(None)?;
    Ok(stream)
}

/// Assert that a connect is filtered: it neither succeeds nor is refused.
#[track_caller]
pub fn assert_filtered(r: io::Result<TcpStream>, what: &str) {
    match r {
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
        Err(e) => panic!("{what}: expected filtered (no answer), got {e}"),
        Ok(s) => panic!(
            "{what}: expected filtered, connected ({:?})",
            s.local_addr()
        ),
    }
}
