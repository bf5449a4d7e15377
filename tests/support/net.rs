//! Two network namespaces, server and client, joined by a veth pair: 198.18.X.1/24 and
//! fd00:4b57::1/64 on the server end, .2 and ::2 on the client end, `lo` up, no default
//! route. Commands and closures run inside either side; both namespaces go away on drop.

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};

use super::process::run_ok;

/// Interface names inside the namespaces (each namespace has its own name space for links).
pub const SERVER_IF: &str = "kws";
pub const CLIENT_IF: &str = "kwc";

static NEXT_SUBNET: AtomicU8 = AtomicU8::new(0);

/// The subnet number the next [`NetPair::new`] of this process will use (tests that must
/// know an address before the pair exists; the test binary's pairs are created serially).
pub fn peek_subnet() -> u8 {
    NEXT_SUBNET.load(Ordering::SeqCst) % 120 + 1
}

pub struct NetPair {
    pub server_ns: String,
    pub client_ns: String,
    /// X in 198.18.X.0/24. Each pair lives in its own namespaces, so X only keeps the
    /// addresses of concurrent tests distinct in logs; it stays below 128 so that
    /// 198.18.128.0/17 and 198.19.0.0/16 are free for spoofed sources.
    pub subnet: u8,
}

impl NetPair {
    pub fn new(tag: &str) -> NetPair {
        let pid = std::process::id();
        let subnet = NEXT_SUBNET.fetch_add(1, Ordering::SeqCst) % 120 + 1;
        // Built before any command runs, so Drop cleans up whatever part got created.
        let pair = NetPair {
            server_ns: format!("kw-{tag}-{pid}-s"),
            client_ns: format!("kw-{tag}-{pid}-c"),
            subnet,
        };
        pair.create();
        pair
    }

    fn create(&self) {
        let (s, c) = (self.server_ns.as_str(), self.client_ns.as_str());
        for ns in [s, c] {
            // A leftover from a killed run with the same pid would make `add` fail.
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            ip(&["netns", "add", ns]);
        }
        self.create_link();
    }

    /// Deletes the veth pair (both ends vanish, as an unplugged or renamed NIC would).
    pub fn delete_link(&self) {
        ip(&["-n", &self.server_ns, "link", "del", SERVER_IF]);
    }

    /// Creates the veth pair with its addresses and brings it up.
    pub fn create_link(&self) {
        let (s, c) = (self.server_ns.as_str(), self.client_ns.as_str());
        ip(&[
            "link", "add", SERVER_IF, "netns", s, "type", "veth", "peer", "name", CLIENT_IF,
            "netns", c,
        ]);
        let x = self.subnet;
        ip(&[
            "-n",
            s,
            "addr",
            "add",
            &format!("198.18.{x}.1/24"),
            "dev",
            SERVER_IF,
        ]);
        ip(&[
            "-n",
            c,
            "addr",
            "add",
            &format!("198.18.{x}.2/24"),
            "dev",
            CLIENT_IF,
        ]);
        ip(&[
            "-n",
            s,
            "addr",
            "add",
            "fd00:4b57::1/64",
            "dev",
            SERVER_IF,
            "nodad",
        ]);
        ip(&[
            "-n",
            c,
            "addr",
            "add",
            "fd00:4b57::2/64",
            "dev",
            CLIENT_IF,
            "nodad",
        ]);
        for (ns, dev) in [(s, SERVER_IF), (c, CLIENT_IF)] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
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
        "fd00:4b57::1".parse().expect("literal")
    }

    pub fn client_v6(&self) -> Ipv6Addr {
        "fd00:4b57::2".parse().expect("literal")
    }

    /// `program` run in the client namespace.
    pub fn client_cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.client_ns, program]);
        cmd
    }

    /// `program` run in the server namespace (host mount namespace).
    pub fn server_cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.server_ns, program]);
        cmd
    }

    /// Runs `f` on a thread that has joined the client's network namespace: sockets it
    /// creates belong to that namespace for their whole life, wherever they are used later.
    pub fn in_client<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.client_ns, f)
    }

    pub fn in_server<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.server_ns, f)
    }

    /// Resolves the neighbours both ways (ARP and NDP) so that the first crafted packet is
    /// not parked in a neighbour queue while resolution happens.
    pub fn warm_neighbours(&self) {
        let (s4, s6) = (self.server_v4(), self.server_v6());
        self.in_client(|| {
            for addr in [std::net::IpAddr::V4(s4), std::net::IpAddr::V6(s6)] {
                // Port 9 has no listener: the RST answer proves both directions resolved.
                let _ = std::net::TcpStream::connect_timeout(
                    &(addr, 9).into(),
                    std::time::Duration::from_secs(2),
                );
            }
        });
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
                // SAFETY: setns on a namespace fd we hold open; it affects this thread only.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
