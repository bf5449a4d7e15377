//! Test support (feature `testns`): network namespaces for privileged tests, joined by a veth
//! pair, with the project's test addresses, deleted on drop, and a way to run code inside one.
//!
//! Also the rule for privileged tests: without root they print "SKIPPED (needs root)" and
//! return, unless `KNOCKWRAP_REQUIRE_PRIVILEGED=1`, in which case the lack is a failure.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x4b57, 0, 0, 0, 0, 0, 1);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x4b57, 0, 0, 0, 0, 0, 2);
/// The veth end in the server namespace (the peer in the client namespace is `kw-c`).
pub const SERVER_IF: &str = "kw-s";
pub const CLIENT_IF: &str = "kw-c";

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// True when the test may run. Prints the skip line, or panics when privilege is required.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let has_ip = Command::new("ip").arg("-V").output().is_ok();
    if root && has_ip {
        return true;
    }
    test_support::skip_or_fail(test, if root { "iproute2" } else { "root" })
}

/// Run `ip` with `args`; an error carries its stderr.
pub fn ip(args: &[&str]) -> io::Result<()> {
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

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A fresh namespace `kwcap-<pid>-<n>-<tag>` with `lo` up.
    pub fn new(tag: &str) -> io::Result<Netns> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("kwcap-{}-{n}-{tag}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <this> args...`
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `sysctl -w key=value` inside this namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sysctl", "-qw"])
            .arg(format!("{key}={value}"))
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "sysctl {key}={value} in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Run `f` on a thread that has entered this namespace (the caller's thread is not
    /// moved). Threads `f` spawns stay in the namespace; sockets it creates belong to it.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                // SAFETY: a valid namespace descriptor; affects only this thread.
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
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Two namespaces joined by a veth pair: `server` (198.18.0.1, fd00:4b57::1 on `kw-s`) and
/// `client` (198.18.0.2, fd00:4b57::2 on `kw-c`).
#[derive(Debug)]
pub struct VethPair {
    pub server: Netns,
    pub client: Netns,
}

impl VethPair {
    pub fn new(tag: &str) -> io::Result<VethPair> {
        let pair = VethPair {
            server: Netns::new(&format!("{tag}-s"))?,
            client: Netns::new(&format!("{tag}-c"))?,
        };
        pair.link()?;
        Ok(pair)
    }

    /// (Re)create the veth pair with its addresses (after [`VethPair::unlink`]).
    pub fn link(&self) -> io::Result<()> {
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
        ])?;
        for (ns, dev, v4, v6) in [
            (&self.server, SERVER_IF, SERVER_V4, SERVER_V6),
            (&self.client, CLIENT_IF, CLIENT_V4, CLIENT_V6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev])?;
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"])?;
            ns.ip(&["link", "set", dev, "up"])?;
        }
        Ok(())
    }

    /// Turn IPv6 off on both sides: no MLD reports (hop-by-hop header, passed unexamined by
    /// the filter) when a test counts exactly what the kernel let through.
    pub fn without_ipv6(&self) -> io::Result<()> {
        for ns in [&self.server, &self.client] {
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
        }
        Ok(())
    }

    /// Delete the veth pair (both ends vanish).
    pub fn unlink(&self) -> io::Result<()> {
        self.server.ip(&["link", "del", SERVER_IF])
    }

    pub fn server_addr(v6: bool) -> IpAddr {
        if v6 {
            SERVER_V6.into()
        } else {
            SERVER_V4.into()
        }
    }

    pub fn client_addr(v6: bool) -> IpAddr {
        if v6 {
            CLIENT_V6.into()
        } else {
            CLIENT_V4.into()
        }
    }
}
