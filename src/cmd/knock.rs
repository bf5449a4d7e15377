//! `knockwrap knock`: the knock client, compatible with knockd's `knock`, and the knocking half
//! of `knockwrap connect`.
//!
//! Like `knock`, a TCP step is a non-blocking `connect` closed at once (one SYN on the wire,
//! no handshake completed by us) and a UDP step is one datagram of one zero byte. `-u` makes
//! every step UDP, `-d MS` waits between steps, `-4`/`-6` pick the address family. Unlike
//! `knock`, a name is resolved to every A and AAAA record and each address gets the whole
//! sequence, the addresses of one name in parallel (a dual-stack or round-robin bastion is
//! open whichever address ssh then picks), with one result line per address; several
//! comma-separated hosts get it one host after the other; an unknown protocol suffix is an
//! error rather than TCP; and there is no wait after the last step.
//!
//! Where the sequence comes from (a [`Plan`]): PORTs on the command line; `--door NAME
//! --config PATH` (a static door's steps, a one-time door's next unused sequence, a TOTP
//! door's sequence for this moment); or, with neither, the client profile's target that HOST
//! names (`knockwrap knock prod`), see `knockwrap_config::client`.

use std::io::{self, Write};
use std::mem;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hosts_writer::time::now_ms;
use knock_match::{totp_counter, totp_sequence, DoorKind, Proto, Step, TcpFlags};
use knockwrap_config::client::{ClientProfile, ClientTarget, Family, Pick};
use knockwrap_config::progress::ProgressStore;

use crate::cli::{KnockArgs, KnockOptions};
use crate::failure::{Exit, Failure, Outcome};

fn accepts(family: Family, ip: &IpAddr) -> bool {
    match family {
        Family::Any => true,
        Family::V4 => ip.is_ipv4(),
        Family::V6 => ip.is_ipv6(),
    }
}

/// Writes one line to standard output; a closed or full stdout is not worth a panic.
pub(crate) fn say(line: &str) {
    crate::output::print(format_args!("{line}\n"));
}

/// Writes one line to standard error, for `connect`, whose stdout is the connection.
pub(crate) fn say_err(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

pub fn run(args: KnockArgs) -> Outcome {
    let plan = Plan::build(&Source {
        cmd: "knock",
        host: &args.host,
        ports: &args.ports,
        opts: &args.knock,
    })?;
    let family = plan.family(&args.knock);
    let delay = plan.delay(&args.knock);
    let verbose = |line: &str| say(line);
    let log: Option<&(dyn Fn(&str) + Sync)> = if args.knock.verbose {
        Some(&verbose)
    } else {
        None
    };
    let groups = resolve_groups(&plan.hosts, family, log)?;
    let results = send(&groups, &plan.steps, delay, log);
    plan.sent(&results)?;
    let mut failed = Vec::new();
    for r in &results {
        match &r.result {
            Ok(()) => say(&r.summary(plan.steps.len())),
            Err(_) => failed.push(r.summary(plan.steps.len())),
        }
    }
    if failed.is_empty() {
        Ok(Exit::Success)
    } else {
        Err(Failure::failed(format!(
            "knock: {} of {} addresses not knocked:\n  {}",
            failed.len(),
            results.len(),
            failed.join("\n  ")
        )))
    }
}

/// What the command line says about the sequence.
pub(crate) struct Source<'a> {
    /// "knock" or "connect", for messages.
    pub cmd: &'static str,
    pub host: &'a str,
    pub ports: &'a [String],
    pub opts: &'a KnockOptions,
}

/// The hosts to knock and the sequence to send them, with the profile target's settings
/// when one was used.
pub(crate) struct Plan {
    pub hosts: Vec<String>,
    pub steps: Vec<Step>,
    /// Where the sequence came from, for messages ("door `x` of /etc/knockwrap.toml").
    pub origin: String,
    pub target: Option<ClientTarget>,
    one_time: Option<OneTimeMark>,
}

/// A one-time sequence of a profile target about to be sent: `next` is recorded in `state`
/// once it has been (a sequence that reached the wire is spent, as the daemon has it).
struct OneTimeMark {
    state: PathBuf,
    next: usize,
}

impl Plan {
    pub fn build(src: &Source) -> Result<Plan, Failure> {
        let cmd = src.cmd;
        if src.opts.door.is_some() && !src.ports.is_empty() {
            return Err(Failure::usage(format!(
                "{cmd}: give either PORTs or --door, not both"
            )));
        }
        if !src.ports.is_empty() {
            return Ok(Plan {
                hosts: parse_hosts(src.host)?,
                steps: parse_steps(src.ports, src.opts.udp)?,
                origin: "the command line".into(),
                target: None,
                one_time: None,
            });
        }
        if src.opts.udp {
            return Err(Failure::usage(format!(
                "{cmd}: -u would change the door's protocols; leave it out with --door or a \
                 profile target"
            )));
        }
        if let Some(name) = src.opts.door.as_deref() {
            let Some(path) = src.opts.config.as_deref() else {
                return Err(Failure::usage(format!("{cmd}: --door needs --config PATH")));
            };
            return Ok(Plan {
                hosts: parse_hosts(src.host)?,
                steps: door_steps(name, path, now_ms())?,
                origin: format!("door `{name}` of {}", path.display()),
                target: None,
                one_time: None,
            });
        }
        Plan::from_profile(src)
    }

    fn from_profile(src: &Source) -> Result<Plan, Failure> {
        let cmd = src.cmd;
        let explicit = src.opts.profile.is_some();
        let Some(path) = src
            .opts
            .profile
            .as_deref()
            .map(Path::to_path_buf)
            .or_else(default_profile_path)
        else {
            return Err(Failure::usage(format!(
                "{cmd}: no knock sequence for `{}`: give PORT[:tcp|:udp]..., --door NAME \
                 --config PATH, or --profile PATH (neither XDG_CONFIG_HOME nor HOME is set)",
                src.host
            )));
        };
        if !explicit && !path.exists() {
            return Err(Failure::usage(format!(
                "{cmd}: no knock sequence for `{}`: give PORT[:tcp|:udp]..., --door NAME \
                 --config PATH, or a target in the client profile {} (there is none)",
                src.host,
                path.display()
            )));
        }
        let profile = ClientProfile::load(&path).map_err(|e| Failure::usage(e.to_string()))?;
        let Some((found, pick)) = profile.find(src.host) else {
            let names: Vec<&str> = profile.targets.iter().map(|t| t.name.as_str()).collect();
            return Err(Failure::usage(format!(
                "{cmd}: `{}` is neither the name nor a host of a target in {} (targets: {}); \
                 give PORT[:tcp|:udp]... or --door NAME --config PATH",
                src.host,
                path.display(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        };
        let mut target = found.clone();
        target
            .load_files(&path)
            .map_err(|e| Failure::usage(e.to_string()))?;
        let hosts = match pick {
            Pick::ByName => target.hosts.clone(),
            Pick::ByHost => vec![src.host.to_string()],
        };
        let origin = format!("target `{}` of {}", target.name, path.display());
        let mut one_time = None;
        let steps = match &target.kind {
            DoorKind::OneTime { sequences, .. } => {
                let state = one_time_state_path(&target.name).ok_or_else(|| {
                    Failure::failed(format!(
                        "{cmd}: target `{}`: nowhere to keep one-time progress (neither \
                         XDG_STATE_HOME nor HOME is set)",
                        target.name
                    ))
                })?;
                let next = read_one_time_next(&state)?;
                let Some(seq) = sequences.get(next) else {
                    return Err(Failure::failed(format!(
                        "{cmd}: target `{}`: every one-time sequence has been used ({} of {}, \
                         progress in {})",
                        target.name,
                        next,
                        sequences.len(),
                        state.display()
                    )));
                };
                one_time = Some(OneTimeMark {
                    state,
                    next: next + 1,
                });
                seq.clone()
            }
            kind => kind_steps(kind, now_ms())
                .map_err(|m| Failure::failed(format!("{cmd}: target `{}`: {m}", target.name)))?,
        };
        Ok(Plan {
            hosts,
            steps,
            origin,
            target: Some(target),
            one_time,
        })
    }

    /// `-4` / `-6` win over the profile target's `family`.
    pub fn family(&self, opts: &KnockOptions) -> Family {
        match (opts.ipv4, opts.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => self.target.as_ref().map_or(Family::Any, |t| t.family),
        }
    }

    /// `--delay` wins over the profile target's `delay_ms`.
    pub fn delay(&self, opts: &KnockOptions) -> Duration {
        opts.delay_ms
            .map(Duration::from_millis)
            .unwrap_or_else(|| self.target.as_ref().map_or(Duration::ZERO, |t| t.delay))
    }

    /// Records a profile target's one-time sequence as used once any of it went out.
    pub fn sent(&self, results: &[Knocked]) -> Result<(), Failure> {
        let Some(mark) = &self.one_time else {
            return Ok(());
        };
        let on_the_wire = results
            .iter()
            .any(|r| r.result.as_ref().map_or_else(|e| e.index > 0, |()| true));
        if !on_the_wire {
            return Ok(());
        }
        write_one_time_next(&mark.state, mark.next)
    }
}

/// `$XDG_CONFIG_HOME/knockwrap/client.toml`, else `$HOME/.config/knockwrap/client.toml`.
pub(crate) fn default_profile_path() -> Option<PathBuf> {
    xdg_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("knockwrap").join("client.toml"))
}

fn one_time_state_path(target: &str) -> Option<PathBuf> {
    xdg_dir("XDG_STATE_HOME", ".local/state")
        .map(|d| d.join("knockwrap").join(format!("onetime-{target}.json")))
}

/// An XDG base directory: the variable when it holds an absolute path (the specification
/// says to ignore a relative one), else `$HOME/<fallback>`.
fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    if let Some(v) = std::env::var_os(var) {
        let p = PathBuf::from(v);
        if p.is_absolute() {
            return Some(p);
        }
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(fallback))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct OneTimeState {
    next: usize,
}

fn read_one_time_next(state: &Path) -> Result<usize, Failure> {
    match std::fs::read_to_string(state) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Failure::failed(format!(
            "cannot read one-time progress {}: {e}",
            state.display()
        ))),
        Ok(text) => serde_json::from_str::<OneTimeState>(&text)
            .map(|s| s.next)
            .map_err(|e| {
                Failure::failed(format!(
                    "{}:{}:{}: one-time progress is not {{\"next\": N}}: {e}",
                    state.display(),
                    e.line(),
                    e.column()
                ))
            }),
    }
}

/// Through the writer's one atomic routine (`hosts_writer::update`: lock, temp, fsync, rename,
/// directory fsync, all relative to the checked directory), as a private state file: never
/// through a symlink, always 0600. A crash leaves the old or the new count, never half a file.
fn write_one_time_next(state: &Path, next: usize) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    let fail = |e: &dyn std::fmt::Display| {
        Failure::failed(format!(
            "cannot record one-time progress in {}: {e} (the sequence was sent; next time, \
             set \"next\" to {next} by hand)",
            state.display()
        ))
    };
    let dir = state.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail(&e))?;
    let body = serde_json::to_string(&OneTimeState { next }).unwrap_or_default() + "\n";
    let opts = hosts_writer::Options {
        private: true,
        ..hosts_writer::Options::default()
    };
    hosts_writer::update(state, &opts, |_| {
        Ok::<_, std::convert::Infallible>(Some(body.clone().into_bytes()))
    })
    .map(drop)
    .map_err(|e| fail(&e))
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
    let config = crate::configfile::load(path)?;
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
    kind_steps(&door.kind, now_ms)
        .map_err(|m| Failure::failed(format!("knock: door `{name}`: {m}")))
}

/// The steps a door of this kind expects at `now_ms` (one-time progress already applied).
/// The TOTP sequence is the daemon's own derivation (`knock_match::totp_sequence`).
fn kind_steps(kind: &DoorKind, now_ms: u64) -> Result<Vec<Step>, String> {
    match kind {
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

fn family_word(family: Family) -> &'static str {
    match family {
        Family::Any => "",
        Family::V4 => " IPv4",
        Family::V6 => " IPv6",
    }
}

/// Every address of `host` of the wanted family, in the resolver's order (RFC 6724, the
/// order ssh tries them in), without repeats: a numeric address (brackets allowed around
/// IPv6) is itself, a name goes through the system resolver (getaddrinfo: /etc/hosts, DNS).
fn resolve(host: &str, family: Family) -> Result<Vec<IpAddr>, Failure> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let wanted = family_word(family);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return if accepts(family, &ip) {
            Ok(vec![ip])
        } else {
            Err(Failure::failed(format!(
                "knock: `{host}` is not an{wanted} address"
            )))
        };
    }
    let found = (bare, 0u16)
        .to_socket_addrs()
        .map_err(|e| Failure::failed(format!("knock: cannot resolve `{host}`: {e}")))?;
    let mut all: Vec<IpAddr> = Vec::new();
    for ip in found.map(|sa| sa.ip()) {
        if !all.contains(&ip) {
            all.push(ip);
        }
    }
    let kept: Vec<IpAddr> = all
        .iter()
        .copied()
        .filter(|ip| accepts(family, ip))
        .collect();
    if kept.is_empty() {
        let has = if all.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = all.iter().map(ToString::to_string).collect();
            format!(" (it resolves to {})", list.join(", "))
        };
        return Err(Failure::failed(format!(
            "knock: `{host}` has no{wanted} address{has}"
        )));
    }
    Ok(kept)
}

/// Each host with its addresses. Everything is resolved before anything is sent: a typo in
/// the second host must not leave half a knock.
pub(crate) fn resolve_groups(
    hosts: &[String],
    family: Family,
    log: Option<&(dyn Fn(&str) + Sync)>,
) -> Result<Vec<(String, Vec<IpAddr>)>, Failure> {
    hosts
        .iter()
        .map(|h| {
            let addrs = resolve(h, family)?;
            if let Some(log) = log {
                let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                log(&format!("{h}: {}", list.join(", ")));
            }
            Ok((h.clone(), addrs))
        })
        .collect()
}

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
pub(crate) fn send(
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
            knock: crate::cli::KnockOptions {
                udp: false,
                delay_ms: None,
                ipv4: false,
                ipv6: false,
                verbose: false,
                door: None,
                config: None,
                profile: None,
            },
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
        assert_eq!(resolve("198.18.0.1", Family::Any).unwrap(), vec![v4]);
        assert_eq!(resolve("[fd00:4b57::1]", Family::V6).unwrap(), vec![v6]);
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
        a.knock.door = Some("openSSH".into());
        a.knock.config = Some("/nonexistent/knockwrap.toml".into());
        assert_eq!(run(a).unwrap_err().code, USAGE);
        let mut a = args("198.18.0.1", &["7000"]);
        a.knock.ipv6 = true;
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
        a.knock.door = Some("static".into());
        a.knock.config = Some(path.clone());
        assert_eq!(run(a).unwrap_err().code, USAGE);
        let mut a = args("198.18.0.1", &[]);
        a.knock.door = Some("static".into());
        a.knock.config = Some(path.clone());
        a.knock.udp = true;
        assert_eq!(run(a).unwrap_err().code, USAGE);
        let mut a = args("198.18.0.1", &[]);
        a.knock.door = Some("static".into());
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
        a.knock.delay_ms = Some(30);
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
        a.knock.udp = true;
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
        a.knock.door = Some("totp".into());
        a.knock.config = Some(door_config(dir.path()));
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

        // The reference client puts the same packets on the wire. Without it the comparison says
        // SKIPPED (and fails where skips are forbidden).
        if std::process::Command::new("knock")
            .arg("-V")
            .output()
            .is_err()
        {
            test_support::skip_or_fail(
                "knocks_on_the_wire_match_the_real_knock_client",
                "knock (Debian: knockd)",
            );
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
