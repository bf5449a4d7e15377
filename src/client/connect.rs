//! Connecting through a door just knocked: connect to PORT at one of the knocked addresses as
//! soon as the door opens, and relay standard input and output to the connection (the second
//! half of `knockwrap connect`).
//!
//! When is the door open? sshd under TCP Wrappers accepts every TCP connection and then, for
//! a client hosts.allow does not admit, closes it without a word (after libwrap's 5 s pause).
//! So a connection counts only once the server has sent its first bytes and kept the
//! connection open (an `SSH-` line counts at once; other words count once the server has not
//! closed for [`GREETING_SETTLE`], since sshd says `Exceeded MaxStartups` and closes), or, with
//! `--no-banner`, as soon as TCP connects. Attempts start one after the other, round robin
//! over the knocked addresses, a new one after [`PACE`] (doubling to at most a second) while
//! earlier ones still wait, and a refused one is retried after [`RETRY`]; the first to get a
//! banner wins, the others are closed. Each refused-but-held attempt occupies one of sshd's
//! MaxStartups slots (10 by default) for libwrap's 5 s, hence the pacing and [`MAX_LIVE`].
//! Nothing is tried after the deadline (`--timeout`, the profile's `connect_timeout`, 5 s by
//! default). On failure the message says what was knocked, what each address's connections
//! got, and what to check.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::failure::{Exit, Failure, Outcome};

/// Pause between the knock and the first attempt: the daemon's grant takes a few
/// milliseconds, and an attempt that arrives before it costs a [`PACE`].
const SETTLE: Duration = Duration::from_millis(40);
/// A new attempt starts this long after the first one while no banner has arrived; the
/// pause doubles after each attempt, up to [`MAX_PACE`].
const PACE: Duration = Duration::from_millis(250);
const MAX_PACE: Duration = Duration::from_secs(1);
/// How long an attempt waits for a banner: longer than libwrap's 5 s pause before it closes
/// a refused connection, so that a long `--timeout` reports that closing.
const BANNER_WAIT: Duration = Duration::from_secs(6);
/// After first bytes that are not an `SSH-` line, the connection must stay open this long.
const GREETING_SETTLE: Duration = Duration::from_millis(200);
/// A refused (or reset) attempt is followed by the next this soon.
const RETRY: Duration = Duration::from_millis(150);
/// Most attempts waiting at once.
const MAX_LIVE: usize = 6;

/// Opens a connection to one of `addrs` (see [`open`]) and relays standard input and output
/// over it until the server closes it; if none opens before `timeout`, a failure that says
/// what was knocked (`knocked`), what each address's connections got, and what to check.
pub(crate) fn open_and_relay(
    host: &str,
    addrs: &[IpAddr],
    port: u16,
    timeout: Duration,
    no_banner: bool,
    knocked: &str,
    log: Option<&(dyn Fn(&str) + Sync)>,
) -> Outcome {
    match open(addrs, port, timeout, no_banner, log) {
        Ok(open) => relay(open),
        Err(tries) => Err(Failure::failed(failure_message(
            host, port, timeout, knocked, addrs, &tries,
        ))),
    }
}

/// What one connection attempt got.
#[derive(Debug)]
enum Got {
    Refused,
    TimedOut,
    Unreachable(io::Error),
    ClosedBeforeBanner,
    ResetBeforeBanner,
    /// The server said something (its first line) and closed.
    ClosedAfterGreeting(String),
    Silent,
    Other(io::Error),
}

impl Got {
    fn kind(&self) -> &'static str {
        match self {
            Got::Refused => "refused (RST to the SYN)",
            Got::TimedOut => "timed out (no answer to the SYN)",
            Got::Unreachable(_) => "unreachable",
            Got::ClosedBeforeBanner => "accepted, then closed before any banner",
            Got::ResetBeforeBanner => "accepted, then reset before any banner",
            Got::ClosedAfterGreeting(_) => "accepted, said something, then closed",
            Got::Silent => "accepted, but no banner before the deadline",
            Got::Other(_) => "failed",
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Got::Unreachable(e) | Got::Other(e) => Some(e.to_string()),
            Got::ClosedAfterGreeting(line) => Some(format!("`{line}`")),
            _ => None,
        }
    }
}

enum Event {
    Connected(u64, TcpStream),
    Open(u64, IpAddr, TcpStream, Vec<u8>),
    Failed(u64, IpAddr, Got),
}

struct Open {
    stream: TcpStream,
    first: Vec<u8>,
}

/// Tries `addrs` round robin until one connection gets the server's first bytes (or, with
/// `no_banner`, connects), or `timeout` passes; then the outcome of every attempt.
fn open(
    addrs: &[IpAddr],
    port: u16,
    timeout: Duration,
    no_banner: bool,
    log: Option<&(dyn Fn(&str) + Sync)>,
) -> Result<Open, Vec<(IpAddr, Got)>> {
    let start = Instant::now();
    let deadline = start + timeout;
    let done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Event>();
    let mut waiting: HashMap<u64, TcpStream> = HashMap::new();
    let mut tries: Vec<(IpAddr, Got)> = Vec::new();
    let mut live = 0usize;
    let mut id = 0u64;
    let mut next_start = start + SETTLE.min(timeout / 4);
    let finish = |waiting: &mut HashMap<u64, TcpStream>, done: &AtomicBool| {
        done.store(true, Ordering::SeqCst);
        for (_, s) in waiting.drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    };
    loop {
        let now = Instant::now();
        if now >= deadline && live == 0 {
            break;
        }
        if now < deadline && now >= next_start && live < MAX_LIVE {
            let ip = addrs[(id as usize) % addrs.len()];
            if let Some(log) = log {
                log(&format!(
                    "connecting to {} (attempt {}, {} ms after the knock)",
                    SocketAddr::new(ip, port),
                    id + 1,
                    now.duration_since(start).as_millis()
                ));
            }
            let (tx, done) = (tx.clone(), Arc::clone(&done));
            std::thread::spawn(move || attempt(id, ip, port, deadline, no_banner, &done, &tx));
            let pace = PACE.saturating_mul(1 << id.min(8)).min(MAX_PACE);
            id += 1;
            live += 1;
            next_start = now + pace;
        }
        let until = if now < deadline && live < MAX_LIVE {
            next_start.min(deadline)
        } else if now < deadline {
            // Every slot taken: the next event (an attempt ending) or the deadline.
            deadline
        } else {
            // Past the deadline: attempts in flight end by themselves within moments.
            now + Duration::from_millis(500)
        };
        let event = match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(e) => e,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline + PACE => break,
            Err(_) => continue,
        };
        match event {
            Event::Connected(n, s) => {
                waiting.insert(n, s);
            }
            Event::Open(n, ip, stream, first) => {
                waiting.remove(&n);
                finish(&mut waiting, &done);
                if let Some(log) = log {
                    log(&format!(
                        "{} answered {} ms after the knock",
                        SocketAddr::new(ip, port),
                        start.elapsed().as_millis()
                    ));
                }
                return Ok(Open { stream, first });
            }
            Event::Failed(n, ip, got) => {
                waiting.remove(&n);
                live -= 1;
                if let Some(log) = log {
                    let detail = got.detail().map(|d| format!(": {d}")).unwrap_or_default();
                    log(&format!(
                        "{}: {}{detail}",
                        SocketAddr::new(ip, port),
                        got.kind()
                    ));
                }
                if !matches!(got, Got::Silent | Got::TimedOut) {
                    next_start = next_start.min(Instant::now() + RETRY);
                }
                tries.push((ip, got));
            }
        }
    }
    finish(&mut waiting, &done);
    Err(tries)
}

/// One attempt, on its own thread: connect, then wait for the first bytes until `deadline`.
fn attempt(
    id: u64,
    ip: IpAddr,
    port: u16,
    deadline: Instant,
    no_banner: bool,
    done: &AtomicBool,
    tx: &mpsc::Sender<Event>,
) {
    let fail = |got: Got| {
        let _ = tx.send(Event::Failed(id, ip, got));
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return fail(Got::TimedOut);
    }
    let stream = match TcpStream::connect_timeout(&SocketAddr::new(ip, port), left) {
        Ok(s) => s,
        Err(e) => {
            return fail(match e.raw_os_error() {
                Some(libc::ECONNREFUSED) => Got::Refused,
                Some(libc::ETIMEDOUT) => Got::TimedOut,
                Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL) => {
                    Got::Unreachable(e)
                }
                _ if e.kind() == io::ErrorKind::TimedOut => Got::TimedOut,
                _ => Got::Other(e),
            })
        }
    };
    if done.load(Ordering::SeqCst) {
        return; // another attempt won; dropping closes this one
    }
    if no_banner {
        let _ = tx.send(Event::Open(id, ip, stream, Vec::new()));
        return;
    }
    if let Ok(clone) = stream.try_clone() {
        let _ = tx.send(Event::Connected(id, clone));
    }
    let wait_until = deadline.min(Instant::now() + BANNER_WAIT);
    let mut got: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut reader = &stream;
    loop {
        let left = wait_until.saturating_duration_since(Instant::now());
        let left = if got.is_empty() {
            left
        } else {
            left.min(GREETING_SETTLE)
        };
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return fail(Got::Silent);
        }
        match reader.read(&mut buf) {
            Ok(0) if got.is_empty() => return fail(Got::ClosedBeforeBanner),
            Ok(0) => return fail(Got::ClosedAfterGreeting(first_line(&got))),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if is_ssh_banner(&got) || got.len() >= 16 * 1024 {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if got.is_empty() {
                    return fail(Got::Silent);
                }
                break; // a greeting, and the server keeps the connection open
            }
            Err(_) if !got.is_empty() => return fail(Got::ClosedAfterGreeting(first_line(&got))),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return fail(Got::ResetBeforeBanner)
            }
            Err(e) => return fail(Got::Other(e)),
        }
    }
    let _ = tx.send(Event::Open(id, ip, stream, got));
}

/// An SSH identification line (RFC 4253 4.2: other lines may precede it).
fn is_ssh_banner(got: &[u8]) -> bool {
    got.starts_with(b"SSH-") || got.windows(5).any(|w| w == b"\nSSH-")
}

/// The first line of what the server said, printable and short.
fn first_line(got: &[u8]) -> String {
    let line = got.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line)
        .chars()
        .filter(|c| !c.is_control())
        .take(80)
        .collect()
}

/// Copies the connection to standard output and standard input to the connection until the
/// server closes it. End of input half-closes the connection (the server may still answer);
/// a closed standard output (ssh went away) ends the relay quietly.
fn relay(open: Open) -> Outcome {
    let Open { stream, first } = open;
    let _ = stream.set_read_timeout(None);
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "the server".to_string(), |a| a.to_string());
    let mut out = io::stdout().lock();
    if out.write_all(&first).and_then(|()| out.flush()).is_err() {
        return Ok(Exit::Success);
    }
    if let Ok(mut up) = stream.try_clone() {
        std::thread::spawn(move || {
            let mut input = io::stdin().lock();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if up.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = up.shutdown(Shutdown::Write);
        });
    }
    let mut down = &stream;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match down.read(&mut buf) {
            Ok(0) => return Ok(Exit::Success),
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                    return Ok(Exit::Success);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Failure::failed(format!(
                    "connect: the connection to {peer} failed: {e}"
                )))
            }
        }
    }
}

fn failure_message(
    host: &str,
    port: u16,
    timeout: Duration,
    what: &str,
    addrs: &[IpAddr],
    tries: &[(IpAddr, Got)],
) -> String {
    let mut m = format!(
        "connect {host} port {port}: the door did not open within {} ms.\n  {what}\n  \
         what the connections got:",
        timeout.as_millis()
    );
    let mut seen_kinds: Vec<&'static str> = Vec::new();
    for ip in addrs {
        let mut counts: Vec<(&'static str, usize, Option<String>)> = Vec::new();
        for (_, got) in tries.iter().filter(|(a, _)| a == ip) {
            let kind = got.kind();
            if !seen_kinds.contains(&kind) {
                seen_kinds.push(kind);
            }
            match counts.iter_mut().find(|c| c.0 == kind) {
                Some(c) => c.1 += 1,
                None => counts.push((kind, 1, got.detail())),
            }
        }
        let text = if counts.is_empty() {
            "not tried before the deadline".to_string()
        } else {
            counts
                .iter()
                .map(|(k, n, d)| {
                    let d = d.as_ref().map(|d| format!(": {d}")).unwrap_or_default();
                    format!("{k}{d} ({n}x)")
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        m += &format!("\n    {}: {text}", SocketAddr::new(*ip, port));
    }
    m += "\n  what it means:";
    for kind in &seen_kinds {
        let meaning = match *kind {
            k if k == Got::ClosedBeforeBanner.kind() || k == Got::ResetBeforeBanner.kind() => {
                "accepted then closed without a banner: the service runs, and TCP Wrappers \
                 (hosts.allow) refused this client, so the door did not open for the address \
                 the bastion sees"
            }
            k if k == Got::ClosedAfterGreeting(String::new()).kind() => {
                "said something and closed: read its words; sshd's `Exceeded MaxStartups` means \
                 too many connections are waiting to authenticate (refused ones that TCP \
                 Wrappers holds for 5 s count)"
            }
            k if k == Got::Silent.kind() => {
                "accepted but silent: TCP Wrappers holds a refused client for 5 s before \
                 closing, or the service is slow or speaks only after the client (then use \
                 --no-banner)"
            }
            k if k == Got::Refused.kind() => {
                "refused: nothing listens on that port, or a firewall rejects the connection"
            }
            k if k == Got::TimedOut.kind() => {
                "timed out: a firewall drops the connection, or the address does not reach \
                 the bastion"
            }
            k if k == Got::Unreachable(io::Error::other("")).kind() => {
                "unreachable: this machine has no route to that address"
            }
            _ => "failed: see the error",
        };
        m += &format!("\n    {meaning}");
    }
    m += "\n  what to check:\
          \n    - on the bastion, `knockwrap doctor` (daemon running, capturing on the interface \
          the knocks arrive on, the door's service is the daemon name sshd checks) and the \
          daemon's log: did the knock arrive, from which address, for which door?\
          \n    - NAT: the door opens for the source address the bastion sees (your NAT's public \
          address); a NAT that changes it between the knock and the connection, or a proxy, \
          defeats it\
          \n    - IPv4 vs IPv6: the knock and the connection each went to the addresses above; \
          if one family's door does not open (daemon not capturing IPv6, no AAAA on the \
          bastion's side), use -4 or -6, or `family` in the client profile";
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners_and_greetings() {
        assert!(is_ssh_banner(b"SSH-2.0-OpenSSH_9.2p1\r\n"));
        assert!(is_ssh_banner(b"hello\r\nSSH-2.0-x\r\n"));
        assert!(!is_ssh_banner(b"Exceeded MaxStartups\r\n"));
        assert_eq!(
            first_line(b"Exceeded MaxStartups\r\n"),
            "Exceeded MaxStartups"
        );
    }

    #[test]
    fn a_server_that_greets_then_closes_is_not_open() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        // sshd over its MaxStartups: a line, then close; every time, for a second.
        let server = std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < until {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(b"Exceeded MaxStartups\r\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let tries = open(&[ip], port, Duration::from_millis(900), false, None)
            .err()
            .expect("a greeting then a close is not an open door");
        assert!(!tries.is_empty());
        assert!(
            tries.iter().all(
                |(_, g)| matches!(g, Got::ClosedAfterGreeting(l) if l == "Exceeded MaxStartups")
            ),
            "{tries:?}"
        );
        server.join().unwrap();
    }

    #[test]
    fn a_port_with_no_listener_is_refused_until_the_deadline_and_said_so() {
        // 127.0.0.1, port 9 of a fresh listener's neighbourhood: bind then drop a listener so
        // the port is known free.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        let tries = open(&[ip], port, Duration::from_millis(700), false, None)
            .err()
            .expect("nothing listens");
        let took = t0.elapsed();
        assert!(
            took < Duration::from_millis(700) + PACE + Duration::from_millis(200),
            "{took:?}"
        );
        assert!(tries.len() >= 2, "refused attempts are retried: {tries:?}");
        assert!(
            tries.iter().all(|(_, g)| matches!(g, Got::Refused)),
            "{tries:?}"
        );
        let m = failure_message(
            "h",
            port,
            Duration::from_millis(700),
            "knocked: x",
            &[ip],
            &tries,
        );
        assert!(m.contains("refused (RST to the SYN)"), "{m}");
        assert!(m.contains("knockwrap doctor"), "{m}");
        assert!(m.contains("NAT"), "{m}");
        assert!(m.contains("IPv4 vs IPv6"), "{m}");
    }

    #[test]
    fn a_server_that_closes_without_banner_is_retried_and_one_that_speaks_wins() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // The first two connections are closed at once (TCP Wrappers refusing), the third
        // gets a banner.
        let server = std::thread::spawn(move || {
            for i in 0..3 {
                let (mut s, _) = listener.accept().unwrap();
                if i == 2 {
                    s.write_all(b"SSH-2.0-test\r\n").unwrap();
                    return s;
                }
            }
            unreachable!()
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let open =
            open(&[ip], port, Duration::from_secs(5), false, None).expect("third attempt answers");
        assert_eq!(open.first, b"SSH-2.0-test\r\n");
        drop(server.join().unwrap());
    }
}
