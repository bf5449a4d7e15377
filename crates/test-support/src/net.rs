//! Network namespaces for the privileged tests, the one implementation every crate's tests use:
//! a lone [`Netns`], or a [`NetPair`] of two (server and client) joined by a veth pair.
//!
//! One naming scheme: namespaces are `kw-<pid>-<n>-<tag>` (a pair's two end in `-s` and `-c`),
//! so the leftovers of a killed run say which process and test made them; the veth ends are
//! [`SERVER_IF`] and [`CLIENT_IF`] (each namespace has its own name space for links).
//!
//! Addresses only from the test ranges: 198.18.X.1/24 and fd00:4b57::1/64 on the server end,
//! .2 and ::2 on the client end (X counts the pairs of a process, 1..=120, so that 198.18.128.0/17
//! and 198.19.0.0/16 stay free for spoofed sources), `lo` up, no default route.
//!
//! Drop guards delete what they create: a namespace is deleted when its [`Netns`] drops (also
//! when a test panics), and the veth pair goes with its namespaces. Commands and closures run
//! inside either side.

use std::fs::File;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::Command;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use crate::process::run_ok;

/// The veth end in the server namespace.
pub const SERVER_IF: &str = "kws";
/// The veth end in the client namespace.
pub const CLIENT_IF: &str = "kwc";
/// The server end's IPv6 address (the same in every pair: each lives in its own namespaces).
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x4b57, 0, 0, 0, 0, 0, 1);
/// The client end's IPv6 address.
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x4b57, 0, 0, 0, 0, 0, 2);

static NEXT_SUBNET: AtomicU8 = AtomicU8::new(0);
static SEQ: AtomicUsize = AtomicUsize::new(0);

/// The subnet number the next [`NetPair::new`] of this process will use (tests that must
/// know an address before the pair exists; the test binary's pairs are created serially).
pub fn peek_subnet() -> u8 {
    NEXT_SUBNET.load(Ordering::SeqCst) % 120 + 1
}

/// Runs `ip` with `args`; an error carries its stderr.
pub fn try_ip(args: &[&str]) -> io::Result<()> {
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

/// Runs `ip` with `args`; panics with its output when it fails.
pub fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

/// A named network namespace with `lo` up, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A fresh namespace `kw-<pid>-<n>-<tag>`.
    pub fn new(tag: &str) -> Netns {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        Netns::named(format!("kw-{}-{n}-{tag}", std::process::id()))
    }

    fn named(name: String) -> Netns {
        // A leftover from a killed run with the same pid would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        // The guard exists from here on: a failure below still deletes the namespace.
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <this> args...`, panicking with its output when it fails.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `ip -n <this> args...`; an error carries its stderr.
    pub fn try_ip(&self, args: &[&str]) -> io::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        try_ip(&all)
    }

    /// `sysctl -w key=value` inside this namespace.
    pub fn sysctl(&self, key: &str, value: &str) {
        run_ok(self.cmd("sysctl").arg("-qw").arg(format!("{key}={value}")));
    }

    /// `program` run in this namespace (host mount namespace).
    pub fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `f` on a thread that has joined this namespace (the caller's thread is not
    /// moved). Threads `f` spawns stay in the namespace; sockets it creates belong to it for
    /// their whole life, wherever they are used later.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
                    // SAFETY: setns on a namespace fd we hold open; it affects this thread only.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(rc, 0, "setns({path}): {}", io::Error::last_os_error());
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = try_ip(&["netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Two namespaces, server and client, joined by a veth pair ([`SERVER_IF`], [`CLIENT_IF`]).
/// Fields drop in order; the pair goes with the namespaces.
#[derive(Debug)]
pub struct NetPair {
    pub server: Netns,
    pub client: Netns,
    /// X in 198.18.X.0/24. Each pair lives in its own namespaces, so X only keeps the
    /// addresses of concurrent tests distinct in logs; it stays below 128 so that
    /// 198.18.128.0/17 and 198.19.0.0/16 are free for spoofed sources.
    pub subnet: u8,
}

impl NetPair {
    pub fn new(tag: &str) -> NetPair {
        let subnet = NEXT_SUBNET.fetch_add(1, Ordering::SeqCst) % 120 + 1;
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("kw-{}-{n}-{tag}", std::process::id());
        let pair = NetPair {
            server: Netns::named(format!("{base}-s")),
            client: Netns::named(format!("{base}-c")),
            subnet,
        };
        pair.create_link();
        pair
    }

    /// Deletes the veth pair (both ends vanish, as an unplugged or renamed NIC would).
    pub fn delete_link(&self) {
        self.server.ip(&["link", "del", SERVER_IF]);
    }

    /// Creates the veth pair with its addresses and brings it up (again, after
    /// [`NetPair::delete_link`]).
    pub fn create_link(&self) {
        self.server.ip(&[
            "link",
            "add",
            SERVER_IF,
            "type",
            "veth",
            "peer",
            "name",
            CLIENT_IF,
            "netns",
            self.client.name(),
        ]);
        for (ns, dev, v4, v6) in [
            (&self.server, SERVER_IF, self.server_v4(), SERVER_V6),
            (&self.client, CLIENT_IF, self.client_v4(), CLIENT_V6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"]);
            ns.ip(&["link", "set", dev, "up"]);
        }
    }

    /// Adds a further address to the client's end (another source on the same side).
    pub fn add_client_addr(&self, addr: IpAddr) {
        let (cidr, nodad) = match addr {
            IpAddr::V4(a) => (format!("{a}/24"), None),
            IpAddr::V6(a) => (format!("{a}/64"), Some("nodad")),
        };
        let mut args = vec!["addr", "add", cidr.as_str(), "dev", CLIENT_IF];
        args.extend(nodad);
        self.client.ip(&args);
    }

    /// Turns IPv6 off on both sides: no MLD reports (hop-by-hop header, passed unexamined by
    /// a capture filter) when a test counts exactly what the kernel let through.
    pub fn without_ipv6(&self) {
        for ns in [&self.server, &self.client] {
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1");
        }
    }

    pub fn server_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet, 1)
    }

    pub fn client_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet, 2)
    }

    /// A further address of the client's subnet, for spoofed sources (n in 3..=254).
    pub fn client_subnet_v4(&self, n: u8) -> Ipv4Addr {
        assert!((3..=254).contains(&n), "host number {n} outside 3..=254");
        Ipv4Addr::new(198, 18, self.subnet, n)
    }

    pub fn server_v6(&self) -> Ipv6Addr {
        SERVER_V6
    }

    pub fn client_v6(&self) -> Ipv6Addr {
        CLIENT_V6
    }

    /// The server end's address of one family.
    pub fn server_addr(&self, v6: bool) -> IpAddr {
        if v6 {
            SERVER_V6.into()
        } else {
            self.server_v4().into()
        }
    }

    /// The client end's address of one family.
    pub fn client_addr(&self, v6: bool) -> IpAddr {
        if v6 {
            CLIENT_V6.into()
        } else {
            self.client_v4().into()
        }
    }

    /// `program` run in the client namespace.
    pub fn client_cmd(&self, program: &str) -> Command {
        self.client.cmd(program)
    }

    /// `program` run in the server namespace (host mount namespace).
    pub fn server_cmd(&self, program: &str) -> Command {
        self.server.cmd(program)
    }

    /// Runs `f` on a thread that has joined the client's network namespace: sockets it
    /// creates belong to that namespace for their whole life, wherever they are used later.
    pub fn in_client<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.client.run(f)
    }

    pub fn in_server<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.server.run(f)
    }

    /// Resolves the neighbours both ways (ARP and NDP) so that the first crafted packet is
    /// not parked in a neighbour queue while resolution happens.
    pub fn warm_neighbours(&self) {
        let (s4, s6) = (self.server_v4(), self.server_v6());
        self.in_client(|| {
            for addr in [IpAddr::V4(s4), IpAddr::V6(s6)] {
                // Port 9 has no listener: the RST answer proves both directions resolved.
                let _ = TcpStream::connect_timeout(&(addr, 9).into(), Duration::from_secs(2));
            }
        });
    }

    /// Connect from `src` in the client namespace to `dst` on the server; gives up after
    /// [`FILTERED_AFTER`] (see [`connect_from`]).
    pub fn connect(&self, src: IpAddr, dst: IpAddr, port: u16) -> io::Result<TcpStream> {
        self.in_client(|| connect_from(Some(src), SocketAddr::new(dst, port), FILTERED_AFTER))
    }
}

/// How long a connect waits before the port counts as filtered: a refusal (RST) comes back
/// at once on a veth, and the kernel's first SYN retransmit is 1 s away.
pub const FILTERED_AFTER: Duration = Duration::from_millis(400);

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

/// Asserts that a connect is filtered: it neither succeeds nor is refused.
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
