//! Benchmark, not a test (ignored by default): the daemon's CPU cost per million background
//! packets, for the capture filter that sweep detection needs. One million frames of each
//! class are written onto the veth with AF_PACKET from the client namespace while the daemon
//! runs in the server namespace; the daemon's CPU time (utime + stime from /proc) is read
//! before and after. Optionally the same for an earlier build, side by side, in the same run:
//!
//! ```sh
//! KNOCKWRAP_BEFORE_BIN=/path/to/old/knockwrap \
//!   cargo test --release --test background_cost -- --ignored --nocapture
//! ```
//!
//! During the pure-SYN flood, five honest knocks (three SYNs each, from their own addresses)
//! are slipped into the stream at evenly spaced points; the time from each knock's last SYN to
//! its `SSHD: <addr>` line in hosts.allow is reported (median and worst, and how many opened).
//!
//! The figures go to `docs/benchmarks.md`. Needs root.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use test_support::daemon::knockwrap_bin;
use test_support::frames::{read_mac, FrameWriter, ACK, L4, PSH, SYN};
use test_support::net::{CLIENT_IF, SERVER_IF};
use test_support::Rng;
use test_support::{wait_until, DaemonConfig, Door, NetPair, Proc, ServerRoot};

const FRAMES: u32 = 1_000_000;

/// CPU ticks (utime + stime) of the daemon and of its live children: the capture process,
/// which does the packet work, runs as the daemon's child.
fn cpu_ticks(pid: u32) -> u64 {
    own_ticks(pid)
        + test_support::process::children_of(pid)
            .into_iter()
            .map(own_ticks)
            .sum::<u64>()
}

fn own_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may contain blanks) start after the last ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

struct Class {
    name: &'static str,
    /// Slip honest knocks into this flood and time them.
    knocks: bool,
    flags: &'static [&'static str],
    packet: fn(&mut Rng) -> (u16, u8),
}

fn classes() -> Vec<Class> {
    vec![
        Class {
            name: "established ACKs to port 22 (default door)",
            knocks: false,
            flags: &[],
            packet: |_| (22, ACK),
        },
        Class {
            name: "PSH+ACK to the door ports (default door)",
            knocks: false,
            flags: &[],
            packet: |r| ([7000, 8000, 9000][r.below(3) as usize], PSH | ACK),
        },
        Class {
            name: "pure SYNs to port 80 (default door)",
            knocks: true,
            flags: &[],
            packet: |_| (80, SYN),
        },
        Class {
            name: "SYN+ACKs to random ports (door with tcp_flags = [\"syn\"])",
            knocks: false,
            flags: &["syn"],
            packet: |r| (1 + r.below(65535) as u16, SYN | ACK),
        },
    ]
}

/// The kernel's drop count for the capture, from the daemon's log (the largest
/// `dropped_total=` it logged; the capture logs it on drops and when it stops).
fn kernel_drops(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.split("dropped_total=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

/// Honest knocks slipped into a flood.
const KNOCKS: u32 = 5;

/// What one daemon did with one class.
struct Measured {
    cpu_per_m: f64,
    pps: f64,
    drops: u64,
    /// Knock-to-open latencies (ms) of the knocks that opened.
    knock_ms: Vec<f64>,
}

fn knock_summary(m: &Measured, class: &Class) -> String {
    if !class.knocks {
        return "-".to_owned();
    }
    let mut v = m.knock_ms.clone();
    v.sort_by(f64::total_cmp);
    match (v.get(v.len() / 2), v.last()) {
        (Some(med), Some(max)) => format!(
            "{}/{KNOCKS} opened, median {med:.1} ms, max {max:.1} ms",
            v.len()
        ),
        _ => format!("0/{KNOCKS} opened"),
    }
}

/// CPU seconds per million packets of `class` for the daemon binary `bin`, the send rate, the
/// kernel's drop count and, for a knocking class, the knock-to-open latencies.
fn measure(bin: &str, class: &Class) -> Measured {
    let net = NetPair::new("bgcost");
    let root = ServerRoot::new(&net);
    root.write_hosts_allow("");
    let mut door = Door::allow("openSSH", &["7000", "8000", "9000"]);
    door.tcp_flags =
        (!class.flags.is_empty()).then(|| class.flags.iter().map(|s| (*s).to_owned()).collect());
    let config = DaemonConfig::new(&root, vec![door]).write(&root);
    let mut cmd = root.command(bin);
    cmd.args(["run", "--config"]).arg(&config);
    let log = root.dir().join("daemon.log");
    let mut daemon = Proc::spawn("knockwrap (background cost)", &mut cmd, &log);
    let ready =
        test_support::wait_until(Duration::from_secs(15), Duration::from_millis(20), || {
            daemon.log().contains("ready")
        });
    assert!(ready, "daemon not ready\n{}", daemon.log());
    net.warm_neighbours();
    let mac = net.in_server(|| read_mac(SERVER_IF)).expect("server MAC");
    let w = net
        .in_client(|| FrameWriter::open(CLIENT_IF))
        .expect("frame writer");
    let src = IpAddr::V4(Ipv4Addr::new(198, 19, 7, 7));
    let dst = IpAddr::V4(net.server_v4());
    let mut rng = Rng::new(7);
    std::thread::sleep(Duration::from_millis(300));
    let knockers: Vec<Ipv4Addr> = (0..KNOCKS as u8)
        .map(|i| Ipv4Addr::new(198, 19, 9, 10 + i))
        .collect();
    let mut knocked: Vec<Instant> = Vec::new();
    // Watches hosts.allow (every 0.5 ms) for each knocker's line; the instant it first shows.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = class.knocks.then(|| {
        let path = root.hosts_allow();
        let lines: Vec<String> = knockers.iter().map(|a| format!("SSHD: {a}")).collect();
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut seen: Vec<Option<Instant>> = vec![None; lines.len()];
            while !done.load(std::sync::atomic::Ordering::Relaxed)
                && seen.iter().any(Option::is_none)
            {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let now = Instant::now();
                for (i, line) in lines.iter().enumerate() {
                    if seen[i].is_none() && text.lines().any(|l| l == line) {
                        seen[i] = Some(now);
                    }
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            seen
        })
    });
    let before = cpu_ticks(daemon.pid());
    let started = Instant::now();
    for n in 0..FRAMES {
        if class.knocks && n % (FRAMES / KNOCKS) == FRAMES / KNOCKS / 2 {
            let who = knockers[knocked.len()];
            for (step, port) in [7000u16, 8000, 9000].into_iter().enumerate() {
                let l4 = L4::Tcp {
                    sport: 40_000 + step as u16,
                    dport: port,
                    flags: SYN,
                    seq: 77 + step as u32,
                };
                w.send_packet(mac, IpAddr::V4(who), dst, l4).expect("send");
            }
            knocked.push(Instant::now());
        }
        let (dport, flags) = (class.packet)(&mut rng);
        let l4 = L4::Tcp {
            sport: 1024 + (n % 60_000) as u16,
            dport,
            flags,
            seq: n,
        };
        w.send_packet(mac, src, dst, l4).expect("send");
    }
    let sent_for = started.elapsed();
    // Let the daemon drain its queue.
    std::thread::sleep(Duration::from_millis(1500));
    let used = (cpu_ticks(daemon.pid()) - before) as f64 / ticks_per_second();
    let knock_ms = match watcher {
        Some(w) => {
            // Give late grants a few seconds (outside the CPU measurement).
            wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
                w.is_finished()
            });
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            let seen = w.join().expect("watcher");
            seen.iter()
                .zip(&knocked)
                .filter_map(|(s, k)| Some(s.as_ref()?.duration_since(*k).as_secs_f64() * 1000.0))
                .collect()
        }
        None => Vec::new(),
    };
    daemon.stop(Duration::from_secs(5));
    let drops = kernel_drops(&daemon.log());
    let pps = f64::from(FRAMES) / sent_for.as_secs_f64();
    Measured {
        cpu_per_m: used * 1_000_000.0 / f64::from(FRAMES),
        pps,
        drops,
        knock_ms,
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture (see the module docs)"]
fn background_cpu_per_million_packets() {
    test_support::skip_unless_root!();
    let before = std::env::var("KNOCKWRAP_BEFORE_BIN").ok();
    println!("| background traffic | before: CPU s / M packets | after: CPU s / M packets | send rate (after) | kernel drops before / after | knocks during the flood before | after |");
    println!("|---|---|---|---|---|---|---|");
    for class in classes() {
        let old = before.as_deref().map(|b| measure(b, &class));
        let new = measure(knockwrap_bin(), &class);
        println!(
            "| {} | {} | {:.3} | {:.0} k pps | {} / {} | {} | {} |",
            class.name,
            old.as_ref()
                .map_or("-".to_owned(), |o| format!("{:.3}", o.cpu_per_m)),
            new.cpu_per_m,
            new.pps / 1000.0,
            old.as_ref().map_or("-".to_owned(), |o| o.drops.to_string()),
            new.drops,
            old.as_ref()
                .map_or("-".to_owned(), |o| knock_summary(o, &class)),
            knock_summary(&new, &class),
        );
    }
}
