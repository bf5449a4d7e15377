//! Sending the knocks, as knockd's `knock` does: a TCP step is a non-blocking `connect`
//! closed at once (one SYN on the wire, no handshake completed by us), a UDP step is one
//! datagram of one zero byte. Each address gets the whole sequence, the addresses of one host
//! in parallel, the hosts one after the other, with the delay between steps and none after the
//! last; one [`Knocked`] per address says how far it got.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use knock_match::{Proto, Step};
use rustix::io::Errno;

/// Why an address did not get its whole sequence.
#[derive(Debug)]
pub(crate) struct KnockError {
    /// 0-based index of the step that failed (the earlier ones were sent).
    pub index: usize,
    pub step: Step,
    pub error: io::Error,
}

/// One address's knock.
#[derive(Debug)]
pub(crate) struct Knocked {
    pub host: String,
    pub ip: IpAddr,
    pub result: Result<(), KnockError>,
}

impl Knocked {
    /// `bastion.example.org 198.18.0.1`, or the address alone when HOST was that address.
    pub fn label(&self) -> String {
        let bare = self
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host);
        if bare.parse::<IpAddr>().is_ok() {
            self.ip.to_string()
        } else {
            format!("{} {}", self.host, self.ip)
        }
    }

    /// The result line for this address.
    pub fn summary(&self, steps: usize) -> String {
        match &self.result {
            Ok(()) => format!("{}: knocked ({steps} of {steps} sent)", self.label()),
            Err(e) => format!(
                "{}: NOT knocked: knock {} of {steps} ({} {}) failed: {}{}",
                self.label(),
                e.index + 1,
                e.step.proto,
                e.step.port,
                e.error,
                send_hint(&self.ip, &e.error)
            ),
        }
    }
}

/// What an unsendable address usually means.
fn send_hint(ip: &IpAddr, e: &io::Error) -> &'static str {
    let unsendable = matches!(
        e.raw_os_error(),
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT)
    );
    match (unsendable, ip.is_ipv6()) {
        (true, true) => {
            " (this machine cannot send IPv6 there: no IPv6 address or route; -4 knocks only \
             the IPv4 addresses)"
        }
        (true, false) => {
            " (this machine cannot send IPv4 there: no IPv4 address or route; -6 knocks only \
             the IPv6 addresses)"
        }
        _ => "",
    }
}

/// Sends `steps` to every address: hosts one after the other (with `delay` between the last
/// knock of one and the first of the next, as between steps), the addresses of one host in
/// parallel. Results in resolution order.
pub(super) fn send(
    groups: &[(String, Vec<IpAddr>)],
    steps: &[Step],
    delay: Duration,
    log: Option<&(dyn Fn(&str) + Sync)>,
) -> Vec<Knocked> {
    let mut out = Vec::new();
    for (i, (host, addrs)) in groups.iter().enumerate() {
        if i > 0 && !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let results: Vec<Result<(), KnockError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = addrs
                .iter()
                .map(|&ip| scope.spawn(move || knock_one(ip, steps, delay, log)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(KnockError {
                            index: 0,
                            step: steps.first().copied().unwrap_or(Step::tcp(1)),
                            error: io::Error::other("the knocking thread failed"),
                        })
                    })
                })
                .collect()
        });
        for (ip, result) in addrs.iter().zip(results) {
            out.push(Knocked {
                host: host.clone(),
                ip: *ip,
                result,
            });
        }
    }
    out
}

fn knock_one(
    ip: IpAddr,
    steps: &[Step],
    delay: Duration,
    log: Option<&(dyn Fn(&str) + Sync)>,
) -> Result<(), KnockError> {
    for (index, step) in steps.iter().enumerate() {
        if index > 0 && !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if let Some(log) = log {
            log(&format!("hitting {} {}:{}", step.proto, ip, step.port));
        }
        hit(SocketAddr::new(ip, step.port), step.proto).map_err(|error| KnockError {
            index,
            step: *step,
            error,
        })?;
    }
    Ok(())
}

fn hit(dst: SocketAddr, proto: Proto) -> io::Result<()> {
    match proto {
        Proto::Udp => {
            let local: SocketAddr = if dst.is_ipv6() {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            };
            UdpSocket::bind(local)?.send_to(&[0], dst).map(|_| ())
        }
        Proto::Tcp => syn(dst),
    }
}

/// Start a TCP connection without waiting for it, then close: the kernel has sent the SYN
/// by the time `connect` returns `EINPROGRESS`, and closing a half-open socket sends nothing.
fn syn(dst: SocketAddr) -> io::Result<()> {
    use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};
    let family = if dst.is_ipv6() {
        AddressFamily::INET6
    } else {
        AddressFamily::INET
    };
    // Dropping `fd` closes the socket.
    let fd = socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    match rustix::net::connect(&fd, &dst) {
        // On loopback the refusal can come back before connect returns: the SYN still went
        // out.
        Ok(()) | Err(Errno::INPROGRESS) | Err(Errno::CONNREFUSED) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
