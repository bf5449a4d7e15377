//! Benchmark, not a test (ignored by default): the firewall door against knockd, side by side
//! in one run. knock → port admits the knocker: from the last knock packet handed to the
//! kernel to the first SYN to port 22 that gets a SYN-ACK.
//!
//! ```sh
//! cargo build --release
//! cargo test --release --test firewall_door_bench -- --ignored --nocapture 2>&1 \
//!   | grep '^FIREWALL-DOOR' | sed 's/^FIREWALL-DOOR //'
//! ```
//!
//! `KNOCKWRAP_BENCH_ROUNDS` (default 40) sets the number of single-knock rounds.
//!
//! Each daemon gets its own copy of the end-to-end topology (`crates/test-support/`): a server and a
//! client network namespace joined by a veth pair (198.18.0.0/15 and fd00:4b57::/64 only, no
//! default route), a listener on port 22 in the server namespace, and a firewall that hides
//! it:
//!
//! - knockwrap: `knockwrap run` with a firewall-only door (7000,8000,9000, SYN only, 5 s
//!   sequence timeout, `open_ports = ["22/tcp"]`, `hosts_allow = false`, `lease = "60s"`); it
//!   installs and fills its own table (`inet knockwrap`);
//! - knockd (Debian package, 0.8): the same sequence, and `start_command = nft add element inet
//!   kd admitted { %IP% . tcp . 22 timeout 60s }` into a table `inet kd` that this benchmark
//!   loads beforehand with the same layout as knockwrap's (the guarded port, a set of admitted
//!   (address, protocol, port) with timeouts, established traffic first, drop otherwise).
//!
//! nft only ever runs inside the server namespaces (`ip netns exec`, or from the daemons, which
//! run there): the host's ruleset is never read or changed. Every namespace, process and
//! temporary directory is removed when the test ends, also when it fails (Drop guards).
//!
//! Knocks are crafted SYNs from a raw socket in the client namespace, from addresses of
//! 198.18.128.0/17 that are put on the client's veth (so the client can also connect from
//! them) and, with a route and fixed neighbour entries, made reachable from the server (so no
//! ARP lookup sits inside a measurement). The probe: right after the knock, a non-blocking
//! connect to port 22 from the knocker's address every 0.25 ms (the last eight kept open);
//! the time is that of the first probe SYN that was answered. The rounds alternate which daemon
//! goes first. Then a burst of 200 knockers, each from its own address: once back to back
//! (each knocker's three SYNs, then the next knocker's) and once interleaved (every first
//! step, then every second, then every third); the time until all 200 are admitted is
//! measured by sweeps of probes over the knockers not yet admitted (one SYN each, a sweep
//! every 3–5 ms), with the CPU time each daemon and its children (knockd's shells and nft,
//! knockwrap's capture process and nft) spent on the burst. knockd is started with `-v` (the
//! harness's readiness check needs its log), so it logs every step; knockwrap logs one line
//! per grant. `tests/bench/nft_exec.sh` times one nft admission on its own.
//!
//! Asserts only what knockwrap claims (the port is hidden before a knock; every knocker of both
//! bursts is admitted); no timing is asserted. The figures go to `docs/benchmarks.md`
//! ("The firewall door"). Needs root, `ip`, `nft` and knockd.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use test_support::frames::read_mac;
use test_support::net::{CLIENT_IF, SERVER_IF};
use test_support::packets::pool_v4;
use test_support::process::run_ok;
use test_support::skip_or_fail;
use test_support::{
    serial, summarize_ms, Daemon, DaemonConfig, Door, Knockd, NetPair, RawV4, ServerRoot,
};

const DOOR_PORTS: [u16; 3] = [7000, 8000, 9000];
const GUARDED: u16 = 22;
const FIREWALL_ONLY: &str = "open_ports = [\"22/tcp\"]\nhosts_allow = false\n";
/// knockd's table: knockwrap's layout (docs/firewall.md, "The table") for one port, IPv4.
const KD_TABLE: &str = "table inet kd {
    set guarded { type inet_proto . inet_service; elements = { tcp . 22 } }
    set admitted { type ipv4_addr . inet_proto . inet_service; flags timeout; }
    chain input {
        type filter hook input priority filter - 10; policy accept;
        ct state established,related accept
        meta l4proto . th dport @guarded jump guard
    }
    chain guard {
        iif \"lo\" accept
        ip saddr . meta l4proto . th dport @admitted accept
        drop
    }
}
";
const BURST: u32 = 200;
/// Pool indices (198.18.128.0/17): the back-to-back burst, the interleaved burst, the rounds.
const BACK_TO_BACK_BASE: u32 = 0;
const INTERLEAVED_BASE: u32 = 256;
const ROUNDS_BASE: u32 = 512;
const MAX_ROUNDS: u32 = 2000;
/// How long a burst is watched: back to back, and interleaved (every knock has then long
/// passed its 5 s sequence timeout).
const BACK_TO_BACK_WINDOW: Duration = Duration::from_secs(30);
const INTERLEAVED_WINDOW: Duration = Duration::from_secs(10);
const PROBE_EVERY: Duration = Duration::from_micros(250);
const PROBES_KEPT: usize = 8;

fn nft_path() -> Option<&'static str> {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

fn knockd_door(nft: &str) -> String {
    format!(
        "[openSSH]\n  sequence = 7000,8000,9000\n  seq_timeout = 5\n  tcpflags = syn\n  \
         start_command = {nft} add element inet kd admitted {{ %IP% . tcp . {GUARDED} timeout 60s }}\n"
    )
}

enum Runner {
    Knockd(Knockd),
    Knockwrap(Daemon),
}

/// One daemon with its own namespaces. Fields drop in order: daemon, socket, root, net.
struct Side {
    name: &'static str,
    runner: Runner,
    raw: RawV4,
    root: ServerRoot,
    net: NetPair,
}

impl Side {
    fn knockd(nft: &str) -> Side {
        let net = NetPair::new("fwbkd");
        let root = ServerRoot::new(&net);
        let table = root.dir().join("kd.nft");
        std::fs::write(&table, KD_TABLE).expect("writing kd.nft");
        run_ok(net.server_cmd(nft).arg("-f").arg(&table));
        let runner = Runner::Knockd(Knockd::start(&root, &knockd_door(nft)));
        Side::finish("knockd", runner, root, net)
    }

    fn knockwrap() -> Side {
        let net = NetPair::new("fwbkw");
        let root = ServerRoot::new(&net);
        let door = Door::allow("openSSH", &["7000", "8000", "9000"])
            .seq_timeout("5s")
            .lease("60s")
            .with(FIREWALL_ONLY);
        let config = DaemonConfig::new(&root, vec![door]).write(&root);
        let runner = Runner::Knockwrap(Daemon::start(&root, &config, "fwb"));
        Side::finish("knockwrap", runner, root, net)
    }

    /// The knockers' addresses on the client veth, their route and neighbour entries on the
    /// server, the listener on port 22, warm neighbours, the raw socket.
    fn finish(name: &'static str, runner: Runner, root: ServerRoot, net: NetPair) -> Side {
        let mac = net
            .in_client(|| read_mac(CLIENT_IF))
            .expect("the client veth's MAC");
        let mac = mac.map(|b| format!("{b:02x}")).join(":");
        let (mut client, mut server) = (String::new(), String::new());
        server.push_str(&format!("route add 198.18.128.0/17 dev {SERVER_IF}\n"));
        for i in knocker_indices() {
            let a = pool_v4(i);
            client.push_str(&format!("addr add {a}/32 dev {CLIENT_IF}\n"));
            server.push_str(&format!(
                "neigh replace {a} lladdr {mac} dev {SERVER_IF} nud permanent\n"
            ));
        }
        for (ns, batch, file) in [
            (net.client.name(), client, "client.batch"),
            (net.server.name(), server, "server.batch"),
        ] {
            let path = root.dir().join(file);
            std::fs::write(&path, batch).expect("writing an ip batch");
            run_ok(
                std::process::Command::new("ip")
                    .args(["-n", ns, "-batch"])
                    .arg(&path),
            );
        }
        let listener = net
            .in_server(|| TcpListener::bind(("0.0.0.0", GUARDED)))
            .expect("listening on port 22 in the server namespace");
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                drop(conn);
            }
        });
        net.warm_neighbours();
        let raw = net.in_client(RawV4::new);
        Side {
            name,
            runner,
            raw,
            root,
            net,
        }
    }

    fn server(&self) -> Ipv4Addr {
        self.net.server_v4()
    }

    /// The daemon's process id. knockd writes no pid file in the foreground: it is the
    /// process whose command line names this side's knockd.conf and whose parent is not one
    /// (a child forked for start_command has the same command line until it execs).
    fn pid(&self) -> u32 {
        match &self.runner {
            Runner::Knockwrap(daemon) => daemon.pid(),
            Runner::Knockd(_) => {
                let conf = self.root.dir().join("knockd.conf");
                let conf = conf.to_string_lossy().into_owned();
                let is_knockd = |pid: u32| {
                    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| {
                        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
                        args.first().is_some_and(|a0| a0.ends_with(b"knockd"))
                            && args.contains(&conf.as_bytes())
                    })
                };
                std::fs::read_dir("/proc")
                    .expect("/proc")
                    .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                    .find(|&pid| is_knockd(pid) && !stat(pid).is_some_and(|f| is_knockd(f.ppid)))
                    .expect("knockd is running")
            }
        }
    }

    /// CPU time of the daemon (user + system), its reaped children (knockd's shells and their
    /// nft, knockwrap's nft) and its live children (knockwrap's capture process), in ticks.
    fn cpu_ticks(&self) -> u64 {
        let pid = self.pid();
        let own = stat(pid).map_or(0, |f| f.ticks + f.children_ticks);
        own + test_support::process::children_of(pid)
            .into_iter()
            .filter_map(stat)
            .map(|f| f.ticks)
            .sum::<u64>()
    }

    fn log(&self) -> String {
        match &self.runner {
            Runner::Knockwrap(daemon) => daemon.log(),
            Runner::Knockd(knockd) => knockd.log(),
        }
    }
}

struct Stat {
    ppid: u32,
    /// utime + stime.
    ticks: u64,
    /// cutime + cstime: children waited for.
    children_ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold blanks) start after the last ')'.
    let f: Vec<u64> = text[text.rfind(')')? + 2..]
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // After the state: ppid is field 4 of stat(5), utime..cstime fields 14-17.
    Some(Stat {
        ppid: *f.first()? as u32,
        ticks: f.get(10)? + f.get(11)?,
        children_ticks: f.get(12)? + f.get(13)?,
    })
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn rounds() -> u32 {
    std::env::var("KNOCKWRAP_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(40)
        .clamp(1, MAX_ROUNDS)
}

fn knocker_indices() -> impl Iterator<Item = u32> {
    (BACK_TO_BACK_BASE..BACK_TO_BACK_BASE + BURST)
        .chain(INTERLEAVED_BASE..INTERLEAVED_BASE + BURST)
        .chain(ROUNDS_BASE..ROUNDS_BASE + rounds())
}

/// A non-blocking connect to `dst`:22 from `src`, and when its SYN was handed to the kernel.
struct Probe {
    fd: OwnedFd,
    syn_at: Instant,
}

fn sockaddr(addr: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid starting value.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = port.to_be();
    sa.sin_addr.s_addr = u32::from(addr).to_be();
    sa
}

const SA_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// Opens a probe. Must run on a thread in the client namespace.
fn probe(src: Ipv4Addr, dst: Ipv4Addr) -> Probe {
    // SAFETY: socket(2) with constant arguments; checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    assert!(raw >= 0, "probe socket: {}", io::Error::last_os_error());
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let from = sockaddr(src, 0);
    // SAFETY: a valid sockaddr_in of the length given.
    let rc = unsafe { libc::bind(raw, (&from as *const libc::sockaddr_in).cast(), SA_LEN) };
    assert_eq!(rc, 0, "bind {src}: {}", io::Error::last_os_error());
    let to = sockaddr(dst, GUARDED);
    let syn_at = Instant::now();
    // SAFETY: as above.
    let rc = unsafe { libc::connect(raw, (&to as *const libc::sockaddr_in).cast(), SA_LEN) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EINPROGRESS),
            "connect {src} -> {dst}:{GUARDED}: {err}"
        );
    }
    Probe { fd, syn_at }
}

/// Waits up to `timeout` for any of `probes` to become ready; true per probe that connected.
/// A refused probe (an RST) means the port is not hidden at all: that is a broken rig.
fn connected(probes: &[&Probe], timeout: Duration) -> Vec<bool> {
    let mut fds: Vec<libc::pollfd> = probes
        .iter()
        .map(|p| libc::pollfd {
            fd: p.fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        })
        .collect();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: fds is a valid array of its length; no signal mask change.
    let n = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
    assert!(n >= 0, "ppoll: {}", io::Error::last_os_error());
    fds.iter()
        .map(|f| {
            if f.revents == 0 {
                return false;
            }
            let mut err: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: SO_ERROR into an int of the length given.
            let rc = unsafe {
                libc::getsockopt(
                    f.fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&mut err as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0, "SO_ERROR: {}", io::Error::last_os_error());
            assert_ne!(
                err,
                libc::ECONNREFUSED,
                "port {GUARDED} answered with a reset: it is not hidden"
            );
            err == 0
        })
        .collect()
}

/// Probes from `src` every PROBE_EVERY until a probe connects; the instant its SYN was sent.
/// Must run in the client namespace.
fn first_answered_syn(src: Ipv4Addr, dst: Ipv4Addr, until: Instant) -> Option<Instant> {
    let mut open: VecDeque<Probe> = VecDeque::new();
    loop {
        if Instant::now() >= until {
            return None;
        }
        open.push_back(probe(src, dst));
        if open.len() > PROBES_KEPT {
            open.pop_front();
        }
        let refs: Vec<&Probe> = open.iter().collect();
        let ok = connected(&refs, PROBE_EVERY);
        if let Some(i) = ok.iter().position(|&c| c) {
            return Some(open[i].syn_at);
        }
    }
}

/// One round: the knock from `src`, then probes until port 22 answers it.
fn one_round(side: &Side, src: Ipv4Addr, sport: u16) -> Duration {
    let dst = side.server();
    let raw = &side.raw;
    let answered = side.net.in_client(|| {
        for port in DOOR_PORTS {
            raw.syn(src, dst, sport, port);
        }
        let sent = Instant::now();
        first_answered_syn(src, dst, sent + Duration::from_secs(5)).map(|at| at - sent)
    });
    answered.unwrap_or_else(|| {
        panic!(
            "{}: a knock from {src} did not admit it within 5 s\n{}",
            side.name,
            side.log()
        )
    })
}

struct Burst {
    admitted: usize,
    /// CPU seconds of the daemon and its children from just before the first knock packet
    /// until the window closed or all were admitted (counted in ticks of 10 ms).
    cpu: f64,
    first: Option<Duration>,
    last: Option<Duration>,
}

/// BURST knockers from pool indices `base..base + BURST`; `interleaved`: every first step,
/// then every second, then every third; else each knocker's three steps in turn. Watched by
/// sweeps of one probe per knocker not yet admitted, for `window`.
fn burst(side: &Side, base: u32, interleaved: bool, window: Duration) -> Burst {
    let dst = side.server();
    let raw = &side.raw;
    let knockers: Vec<Ipv4Addr> = (base..base + BURST).map(pool_v4).collect();
    let cpu_before = side.cpu_ticks();
    let mut burst = side.net.in_client(|| {
        let sport = |i: usize| 41_000 + i as u16;
        if interleaved {
            for port in DOOR_PORTS {
                for (i, &src) in knockers.iter().enumerate() {
                    raw.syn(src, dst, sport(i), port);
                }
            }
        } else {
            for (i, &src) in knockers.iter().enumerate() {
                for port in DOOR_PORTS {
                    raw.syn(src, dst, sport(i), port);
                }
            }
        }
        let sent = Instant::now();
        let mut pending = knockers.clone();
        let (mut first, mut last) = (None, None);
        while !pending.is_empty() && sent.elapsed() < window {
            let probes: Vec<Probe> = pending.iter().map(|&src| probe(src, dst)).collect();
            std::thread::sleep(Duration::from_millis(1));
            let refs: Vec<&Probe> = probes.iter().collect();
            let ok = connected(&refs, Duration::ZERO);
            let mut still = Vec::with_capacity(pending.len());
            for ((&src, p), c) in pending.iter().zip(&probes).zip(ok) {
                if c {
                    let at = p.syn_at - sent;
                    first = Some(first.map_or(at, |f: Duration| f.min(at)));
                    last = Some(last.map_or(at, |l: Duration| l.max(at)));
                } else {
                    still.push(src);
                }
            }
            pending = still;
            drop(probes);
            std::thread::sleep(Duration::from_millis(2));
        }
        Burst {
            admitted: knockers.len() - pending.len(),
            cpu: 0.0,
            first,
            last,
        }
    });
    burst.cpu = (side.cpu_ticks() - cpu_before) as f64 / ticks_per_second();
    burst
}

/// True when nothing from the client's own address (never a knocker) gets through in 300 ms.
fn hidden(side: &Side) -> bool {
    let (src, dst) = (side.net.client_v4(), side.server());
    side.net
        .in_client(|| first_answered_syn(src, dst, Instant::now() + Duration::from_millis(300)))
        .is_none()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "none".to_owned(), ms)
}

/// CPU seconds, counted in ticks of 10 ms: below one tick is shown as such.
fn cpu(seconds: f64) -> String {
    if seconds > 0.0 {
        format!("{seconds:.2} s")
    } else {
        "< 0.01 s".to_owned()
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "n/a".to_owned()
    }
}

fn opt_ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => ratio(a.as_secs_f64(), b.as_secs_f64()),
        _ => String::new(),
    }
}

fn first_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture (see the module docs)"]
fn firewall_door_against_knockd_with_nft() {
    let name = test_support::test_name!();
    test_support::skip_unless_root!();
    let Some(nft) = nft_path() else {
        skip_or_fail(name, "nft (Debian package nftables)");
        return;
    };
    let _serial = serial();
    let load_before = loadavg();
    let run_started = Instant::now();
    let kd = Side::knockd(nft);
    let kw = Side::knockwrap();
    assert!(
        hidden(&kw),
        "knockwrap's guard does not hide port 22\n{}",
        kw.log()
    );
    assert!(
        hidden(&kd),
        "the kd table does not hide port 22\n{}",
        kd.log()
    );

    // 1. Single knocks, one knocker each; the order flips every round.
    let n = rounds();
    let (mut lat_kd, mut lat_kw) = (Vec::new(), Vec::new());
    for i in 0..n {
        let src = pool_v4(ROUNDS_BASE + i);
        let sport = 40_000 + (i % 1000) as u16;
        if i % 2 == 0 {
            lat_kd.push(one_round(&kd, src, sport));
            lat_kw.push(one_round(&kw, src, sport));
        } else {
            lat_kw.push(one_round(&kw, src, sport));
            lat_kd.push(one_round(&kd, src, sport));
        }
        std::thread::sleep(Duration::from_millis(30));
    }

    // 2. 200 knockers back to back: knockd first; then interleaved: knockwrap first.
    std::thread::sleep(Duration::from_secs(1));
    let b2b_kd = burst(&kd, BACK_TO_BACK_BASE, false, BACK_TO_BACK_WINDOW);
    std::thread::sleep(Duration::from_secs(1));
    let b2b_kw = burst(&kw, BACK_TO_BACK_BASE, false, BACK_TO_BACK_WINDOW);
    std::thread::sleep(Duration::from_secs(1));
    let il_kw = burst(&kw, INTERLEAVED_BASE, true, INTERLEAVED_WINDOW);
    std::thread::sleep(Duration::from_secs(1));
    let il_kd = burst(&kd, INTERLEAVED_BASE, true, INTERLEAVED_WINDOW);

    let (kd_med, kd_p90, kd_max) = summarize_ms(&lat_kd);
    let (kw_med, kw_p90, kw_max) = summarize_ms(&lat_kw);
    let count = |b: &Burst| format!("{} of {BURST}", b.admitted);
    let rows: Vec<[String; 4]> = vec![
        [
            format!("knock → port 22 admits, median ({n} rounds)"),
            format!("{kd_med:.2} ms"),
            format!("{kw_med:.2} ms"),
            ratio(kd_med, kw_med),
        ],
        [
            "knock → port 22 admits, p90".to_owned(),
            format!("{kd_p90:.2} ms"),
            format!("{kw_p90:.2} ms"),
            ratio(kd_p90, kw_p90),
        ],
        [
            "knock → port 22 admits, max".to_owned(),
            format!("{kd_max:.2} ms"),
            format!("{kw_max:.2} ms"),
            String::new(),
        ],
        [
            format!(
                "{BURST} knockers back to back: admitted within {} s",
                BACK_TO_BACK_WINDOW.as_secs()
            ),
            count(&b2b_kd),
            count(&b2b_kw),
            String::new(),
        ],
        [
            "… last knock packet → first admitted".to_owned(),
            opt_ms(b2b_kd.first),
            opt_ms(b2b_kw.first),
            // Back to back, the first knockers are done long before the burst's last packet
            // and may be admitted before it: no ratio.
            String::new(),
        ],
        [
            "… last knock packet → last admitted".to_owned(),
            opt_ms(b2b_kd.last),
            opt_ms(b2b_kw.last),
            opt_ratio(b2b_kd.last, b2b_kw.last),
        ],
        [
            "… CPU of the daemon and its children (nft, shells)".to_owned(),
            cpu(b2b_kd.cpu),
            cpu(b2b_kw.cpu),
            ratio(b2b_kd.cpu, b2b_kw.cpu),
        ],
        [
            format!(
                "{BURST} knockers interleaved: admitted within {} s",
                INTERLEAVED_WINDOW.as_secs()
            ),
            count(&il_kd),
            count(&il_kw),
            String::new(),
        ],
        [
            "… last knock packet → first admitted".to_owned(),
            opt_ms(il_kd.first),
            opt_ms(il_kw.first),
            String::new(),
        ],
        [
            "… last knock packet → last admitted".to_owned(),
            opt_ms(il_kd.last),
            opt_ms(il_kw.last),
            String::new(),
        ],
        [
            "… CPU of the daemon and its children".to_owned(),
            cpu(il_kd.cpu),
            cpu(il_kw.cpu),
            String::new(),
        ],
    ];
    let mut table = vec![
        "| workload | knockd + nft | knockwrap | knockd/knockwrap |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    table.extend(
        rows.iter()
            .map(|r| format!("| {} | {} | {} | {} |", r[0], r[1], r[2], r[3])),
    );
    let target = |r: f64| if r >= 3.0 { "met" } else { "NOT met" };
    table.push(format!(
        "3× target: median {} ({:.2}×), p90 {} ({:.2}×)",
        target(kd_med / kw_med),
        kd_med / kw_med,
        target(kd_p90 / kw_p90),
        kd_p90 / kw_p90
    ));
    table.push(format!(
        "(whole run {:.1} s; load average {load_before} before, {} after; {}; {}; {})",
        run_started.elapsed().as_secs_f64(),
        loadavg(),
        first_line("uname", &["-sr"]),
        first_line(nft, &["--version"]),
        first_line("nproc", &[]) + " cores",
    ));
    for row in &table {
        eprintln!("FIREWALL-DOOR {row}");
    }

    assert_eq!(
        b2b_kw.admitted,
        BURST as usize,
        "knockwrap did not admit all {BURST} back-to-back knockers\n{}",
        kw.log()
    );
    assert_eq!(
        il_kw.admitted,
        BURST as usize,
        "knockwrap did not admit all {BURST} interleaved knockers\n{}",
        kw.log()
    );
}
