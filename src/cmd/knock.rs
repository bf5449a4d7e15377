//! `knockwrap knock`: the knock client, compatible with knockd's `knock`.
//!
//! Like `knock`, a TCP step is a non-blocking `connect` closed at once (one SYN on the wire,
//! no handshake completed by us) and a UDP step is one datagram of one zero byte. `-u` makes
//! every step UDP, `-d MS` waits between steps, `-4`/`-6` pick the address family. Unlike
//! `knock`, several comma-separated hosts each get the whole sequence, an unknown protocol
//! suffix is an error rather than TCP, and there is no wait after the last step.
//!
//! `--door NAME --config PATH` takes the sequence from the configuration: a static door's
//! steps, a one-time door's next unused sequence, a TOTP door's sequence for this moment.

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use hosts_writer::time::now_ms;
use knock_match::{totp_counter, totp_sequence, Door, DoorKind, Proto, Step, TcpFlags};
use knockwrap_config::progress::ProgressStore;
use knockwrap_config::Config;

use crate::cli::KnockArgs;
use crate::failure::{CliResult, Failure};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Any,
    V4,
    V6,
}

impl Family {
    fn accepts(self, ip: &IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }
}

pub fn run(args: KnockArgs) -> CliResult {
    let hosts = parse_hosts(&args.host)?;
    let steps = match (&args.door, &args.config) {
        (Some(_), _) if !args.ports.is_empty() => {
            return Err(Failure::usage(
                "knock: give either PORTs or --door, not both",
            ))
        }
        (Some(_), _) if args.udp => {
            return Err(Failure::usage(
                "knock: -u would change the door's protocols; leave it out with --door",
            ))
        }
        (Some(name), Some(path)) => door_steps(name, path, now_ms())?,
        (Some(_), None) => return Err(Failure::usage("knock: --door needs --config PATH")),
        (None, _) if args.ports.is_empty() => {
            return Err(Failure::usage("knock: give at least one PORT[:tcp|:udp]"))
        }
        (None, _) => parse_steps(&args.ports, args.udp)?,
    };
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Any,
    };
    // Resolve everything first: a typo in the second host must not leave half a knock.
    let targets = hosts
        .iter()
        .map(|h| resolve(h, family))
        .collect::<Result<Vec<IpAddr>, Failure>>()?;
    let delay = Duration::from_millis(args.delay_ms);
    let mut first = true;
    for ip in targets {
        for step in &steps {
            if !first && !delay.is_zero() {
                std::thread::sleep(delay);
            }
            first = false;
            if args.verbose {
                println!("hitting {} {}:{}", step.proto, ip, step.port);
            }
            hit(SocketAddr::new(ip, step.port), step.proto).map_err(|e| {
                Failure::failed(format!("knock {} {}:{}: {e}", step.proto, ip, step.port))
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_hosts(text: &str) -> Result<Vec<String>, Failure> {
    let hosts: Vec<String> = text.split(',').map(|h| h.trim().to_string()).collect();
    if hosts.iter().any(String::is_empty) {
        return Err(Failure::usage(format!(
            "knock: empty host in `{text}` (expected HOST[,HOST...])"
        )));
    }
    Ok(hosts)
}

fn parse_steps(ports: &[String], all_udp: bool) -> Result<Vec<Step>, Failure> {
    ports
        .iter()
        .map(|p| {
            let step: Step = p
                .parse()
                .map_err(|e| Failure::usage(format!("knock: step `{p}`: {e}")))?;
            Ok(if all_udp { Step::udp(step.port) } else { step })
        })
        .collect()
}

/// The sequence of door `name` in the configuration at `path`, now: a static door's steps,
/// a one-time door's next unused sequence (per the progress in `state_dir`; knocking does
/// not consume it, the daemon does when it accepts), a TOTP door's sequence for the current
/// step (TCP knocks).
fn door_steps(name: &str, path: &Path, now_ms: u64) -> Result<Vec<Step>, Failure> {
    let config = Config::load(path).map_err(|e| Failure::usage(e.to_string()))?;
    let found = config
        .door(name)
        .ok_or_else(|| Failure::usage(format!("{}: no door named `{name}`", path.display())))?;
    let mut door = found.door.clone();
    if matches!(door.kind, DoorKind::OneTime { .. }) {
        let errors = ProgressStore::new(&config.state_dir).apply(std::slice::from_mut(&mut door));
        if let Some(e) = errors.first() {
            return Err(Failure::failed(format!("knock: door `{name}`: {e}")));
        }
    }
    if !door.tcp_flags.matches(TcpFlags(TcpFlags::SYN)) {
        eprintln!(
            "knockwrap: warning: door `{name}` requires TCP flags a connect's SYN does not \
             carry; its TCP steps will not count"
        );
    }
    sequence_now(&door, now_ms).map_err(|m| Failure::failed(format!("knock: door `{name}`: {m}")))
}

/// The steps `door` expects at `now_ms` (one-time progress already applied).
fn sequence_now(door: &Door, now_ms: u64) -> Result<Vec<Step>, String> {
    match &door.kind {
        DoorKind::Static { steps } => Ok(steps.clone()),
        DoorKind::OneTime { sequences, next } => sequences
            .get(*next)
            .cloned()
            .ok_or_else(|| "every one-time sequence has been used".to_string()),
        DoorKind::Totp(p) => {
            let step_ms = u64::try_from(p.step.as_millis()).unwrap_or(u64::MAX);
            let counter = totp_counter(now_ms, step_ms);
            let ports = totp_sequence(&p.secret, counter, p.length, p.lo, p.hi);
            if ports.len() < p.length {
                return Err("the TOTP port range is too small for its length".into());
            }
            Ok(ports.into_iter().map(Step::tcp).collect())
        }
    }
}

/// A numeric address (brackets allowed around IPv6) or a name via the system resolver; the
/// first address of the wanted family, as `knock` takes the first `getaddrinfo` result.
fn resolve(host: &str, family: Family) -> Result<IpAddr, Failure> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let wanted = match family {
        Family::Any => "",
        Family::V4 => " IPv4",
        Family::V6 => " IPv6",
    };
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return if family.accepts(&ip) {
            Ok(ip)
        } else {
            Err(Failure::failed(format!(
                "knock: `{host}` is not an{wanted} address"
            )))
        };
    }
    let found = (bare, 0u16)
        .to_socket_addrs()
        .map_err(|e| Failure::failed(format!("knock: cannot resolve `{host}`: {e}")))?;
    found
        .map(|sa| sa.ip())
        .find(|ip| family.accepts(ip))
        .ok_or_else(|| Failure::failed(format!("knock: `{host}` has no{wanted} address")))
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
    let domain = if dst.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: plain socket(2) call.
    let raw = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor we own; dropping `fd` closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let rc = match dst {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sin is a valid sockaddr_in of the given size.
            unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&sin as *const libc::sockaddr_in).cast(),
                    mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sin6 is a valid sockaddr_in6 of the given size.
            unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    // On loopback the refusal can come back before connect returns: the SYN still went out.
    match err.raw_os_error() {
        Some(libc::EINPROGRESS) | Some(libc::ECONNREFUSED) => Ok(()),
        _ => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::{FAILED, USAGE};
    use knock_capture::{testns, Capture, FilterSpec};
    use std::time::Instant;

    fn args(host: &str, ports: &[&str]) -> KnockArgs {
        KnockArgs {
            host: host.into(),
            ports: ports.iter().map(|p| p.to_string()).collect(),
            udp: false,
            delay_ms: 0,
            ipv4: false,
            ipv6: false,
            verbose: false,
            door: None,
            config: None,
        }
    }

    #[test]
    fn hosts_and_steps() {
        assert_eq!(parse_hosts("a, b").unwrap(), vec!["a", "b"]);
        assert_eq!(parse_hosts("a,,b").unwrap_err().code, USAGE);
        let ports: Vec<String> = ["7000", "8000:udp", "9000:TCP"].map(String::from).to_vec();
        assert_eq!(
            parse_steps(&ports, false).unwrap(),
            vec![Step::tcp(7000), Step::udp(8000), Step::tcp(9000)]
        );
        assert_eq!(
            parse_steps(&ports, true).unwrap(),
            vec![Step::udp(7000), Step::udp(8000), Step::udp(9000)]
        );
        for bad in ["0", "70000", "7000:icmp", "x"] {
            let e = parse_steps(&[bad.to_string()], false).unwrap_err();
            assert_eq!(e.code, USAGE, "{bad}");
            assert!(e.message.contains(bad), "{}", e.message);
        }
    }

    #[test]
    fn numeric_resolution_and_families() {
        let v4: IpAddr = "198.18.0.1".parse().unwrap();
        let v6: IpAddr = "fd00:4b57::1".parse().unwrap();
        assert_eq!(resolve("198.18.0.1", Family::Any).unwrap(), v4);
        assert_eq!(resolve("[fd00:4b57::1]", Family::V6).unwrap(), v6);
        assert_eq!(
            resolve("fd00:4b57::1", Family::V4).unwrap_err().code,
            FAILED
        );
        assert_eq!(resolve("198.18.0.1", Family::V6).unwrap_err().code, FAILED);
    }

    #[test]
    fn usage_errors() {
        assert_eq!(run(args("198.18.0.1", &[])).unwrap_err().code, USAGE);
        let mut a = args("198.18.0.1", &[]);
        a.door = Some("openSSH".into());
        a.config = Some("/nonexistent/knockwrap.toml".into());
        assert_eq!(run(a).unwrap_err().code, USAGE);
        let mut a = args("198.18.0.1", &["7000"]);
        a.ipv6 = true;
        assert_eq!(run(a).unwrap_err().code, FAILED);
    }

    /// A config with a static, a one-time and a TOTP door (RFC 6238's test secret).
    fn door_config(dir: &Path) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.join("totp.key");
        std::fs::write(&key, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.join("open.otp"), "# used\n1111,2222:udp\n3333,4444\n").unwrap();
        let path = dir.join("knockwrap.toml");
        std::fs::write(
            &path,
            r#"interface = "lo"
hosts_allow = "hosts.allow"
state_dir = "state"
log = "stderr"

[[door]]
name = "static"
sequence = ["7000", "8000:udp", "9000:tcp"]
service = "SSHD"

[[door]]
name = "otp"
one_time_sequences = "open.otp"
service = "SSHD"

[[door]]
name = "totp"
totp_secret_file = "totp.key"
totp_ports = "20000-40000"
service = "SSHD"
"#,
        )
        .unwrap();
        path
    }

    #[test]
    fn door_sequences_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = door_config(dir.path());
        assert_eq!(
            door_steps("static", &path, 0).unwrap(),
            vec![Step::tcp(7000), Step::udp(8000), Step::tcp(9000)]
        );
        assert_eq!(
            door_steps("otp", &path, 0).unwrap(),
            vec![Step::tcp(1111), Step::udp(2222)]
        );
        // docs/totp.md's test vectors: counter 0 and 1 with 30 s steps.
        let tcp = |ports: [u16; 4]| ports.map(Step::tcp).to_vec();
        assert_eq!(
            door_steps("totp", &path, 29_999).unwrap(),
            tcp([39129, 36346, 25873, 21785])
        );
        assert_eq!(
            door_steps("totp", &path, 30_000).unwrap(),
            tcp([20327, 31565, 32304, 24102])
        );
        assert_eq!(door_steps("nope", &path, 0).unwrap_err().code, USAGE);
        std::fs::write(&path, "door = 3\n").unwrap();
        let e = door_steps("static", &path, 0).unwrap_err();
        assert_eq!(e.code, USAGE);
        assert!(e.message.contains("knockwrap.toml:1"), "{}", e.message);
        // PORTs and --door together, -u with --door, --door without --config.
        let mut a = args("198.18.0.1", &["7000"]);
        a.door = Some("static".into());
        a.config = Some(path.clone());
        assert_eq!(run(a).unwrap_err().code, USAGE);
        let mut a = args("198.18.0.1", &[]);
        a.door = Some("static".into());
        a.config = Some(path.clone());
        a.udp = true;
        assert_eq!(run(a).unwrap_err().code, USAGE);
        let mut a = args("198.18.0.1", &[]);
        a.door = Some("static".into());
        assert_eq!(run(a).unwrap_err().code, USAGE);
    }

    /// (proto, port, pure SYN) in arrival order, and the receipt times.
    fn capture_knocks(
        pair: &testns::VethPair,
        send: impl FnOnce() + Send,
    ) -> (Vec<(Proto, u16, bool)>, Vec<u64>) {
        let mut spec = FilterSpec::new();
        spec.udp(1..=65535);
        spec.pass_pure_syn_any_port = true;
        let mut cap = pair
            .server
            .run(|| Capture::open(testns::SERVER_IF, &spec))
            .unwrap();
        // The kernel turns receive timestamps on from a work queue shortly after the first
        // socket asks: give it that moment so the first knock is stamped too.
        std::thread::sleep(Duration::from_millis(100));
        pair.client.run(send);
        let (mut seen, mut times) = (Vec::new(), Vec::new());
        let mut last = Instant::now();
        while last.elapsed() < Duration::from_millis(500) {
            if let Some(e) = cap.next_event().unwrap() {
                seen.push((e.proto, e.dport, e.flags.is_pure_syn()));
                times.push(e.time_ms);
                last = Instant::now();
            }
        }
        (seen, times)
    }

    #[test]
    fn knocks_on_the_wire_match_the_real_knock_client() {
        if !testns::privileged("knocks_on_the_wire_match_the_real_knock_client") {
            return;
        }
        let pair = testns::VethPair::new("knock").unwrap();
        let mut a = args("198.18.0.1,fd00:4b57::1", &["7000", "8000:udp", "9000"]);
        a.delay_ms = 30;
        let (ours, times) = capture_knocks(&pair, || {
            run(a).unwrap();
        });
        let one = [
            (Proto::Tcp, 7000, true),
            (Proto::Udp, 8000, false),
            (Proto::Tcp, 9000, true),
        ];
        assert_eq!(ours, [one, one].concat());
        for w in times.windows(2) {
            assert!(w[1] >= w[0] + 25, "-d 30 between knocks: {times:?}");
        }
        let mut a = args("198.18.0.1", &["7000", "8000:tcp"]);
        a.udp = true;
        let (ours_u, _) = capture_knocks(&pair, || {
            run(a).unwrap();
        });
        assert_eq!(
            ours_u,
            [(Proto::Udp, 7000, false), (Proto::Udp, 8000, false)]
        );

        // --door: the TOTP door's current sequence, as TCP SYNs.
        let dir = tempfile::tempdir().unwrap();
        let mut a = args("198.18.0.1", &[]);
        a.door = Some("totp".into());
        a.config = Some(door_config(dir.path()));
        let before = now_ms();
        let (ours_d, _) = capture_knocks(&pair, || {
            run(a).unwrap();
        });
        let after = now_ms();
        let path = dir.path().join("knockwrap.toml");
        let expect: Vec<_> = [before, after]
            .iter()
            .map(|t| {
                door_steps("totp", &path, *t)
                    .unwrap()
                    .iter()
                    .map(|s| (s.proto, s.port, true))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(expect.contains(&ours_d), "{ours_d:?} not in {expect:?}");

        // The reference client, when installed, puts the same packets on the wire.
        if std::process::Command::new("knock")
            .arg("-V")
            .output()
            .is_err()
        {
            eprintln!("knock (knockd package) not installed: comparison skipped");
            return;
        }
        let (theirs, _) = capture_knocks(&pair, || {
            for host in ["198.18.0.1", "fd00:4b57::1"] {
                let st = std::process::Command::new("knock")
                    .args([host, "7000", "8000:udp", "9000"])
                    .status()
                    .unwrap();
                assert!(st.success());
            }
        });
        assert_eq!(theirs, ours);
    }
}
