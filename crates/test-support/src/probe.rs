//! Access probes with the real programs: an SSH banner read from the client namespace, and
//! tcpdmatch's verdict over the hosts files of a directory.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::net::NetPair;
use crate::process::run_ok;

/// Connects from the client namespace to `addr`:22 and reads. libwrap's refusal closes the
/// connection without a word (after a 5 s pause in tcpd's clean_exit), while a granted
/// client gets the `SSH-2.0-` banner within milliseconds; 1.5 s without a banner is "no".
pub fn ssh_banner(net: &NetPair, addr: IpAddr) -> bool {
    net.in_client(|| {
        let target = SocketAddr::new(addr, 22);
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("TCP connect to sshd at {target}: {e}"));
        let deadline = Instant::now() + Duration::from_millis(1500);
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.contains(&b'\n') {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stream
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got.starts_with(b"SSH-2.0-")
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Granted,
    Denied,
}

/// `tcpdmatch -d DAEMON ADDR` run in `dir` (which holds hosts.allow and hosts.deny), in a
/// fresh network namespace so that no name lookup can leave the machine or stall.
pub fn tcpdmatch_verdict(dir: &Path, daemon: &str, addr: &str) -> Verdict {
    let out = run_ok(
        Command::new("unshare")
            .args(["-n", "tcpdmatch", "-d", daemon, addr])
            .current_dir(dir),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let access = text
        .lines()
        .find_map(|l| l.strip_prefix("access:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("tcpdmatch printed no verdict:\n{text}"));
    match access {
        "granted" => Verdict::Granted,
        "denied" => Verdict::Denied,
        other => panic!("unexpected tcpdmatch verdict {other:?}:\n{text}"),
    }
}
