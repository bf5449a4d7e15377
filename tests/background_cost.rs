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
//! The figures go to `docs/benchmarks.md`. Needs root.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use support::daemon::knockwrap_bin;
use support::net::{CLIENT_IF, SERVER_IF};
use support::{DaemonConfig, Door, NetPair, Proc, ServerRoot};
use test_support::frames::{read_mac, FrameWriter, ACK, L4, PSH, SYN};
use test_support::{require_root_or_skip, Rng};

const FRAMES: u32 = 1_000_000;

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
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
    flags: &'static [&'static str],
    packet: fn(&mut Rng) -> (u16, u8),
}

fn classes() -> Vec<Class> {
    vec![
        Class {
            name: "established ACKs to port 22 (default door)",
            flags: &[],
            packet: |_| (22, ACK),
        },
        Class {
            name: "PSH+ACK to the door ports (default door)",
            flags: &[],
            packet: |r| ([7000, 8000, 9000][r.below(3) as usize], PSH | ACK),
        },
        Class {
            name: "pure SYNs to port 80 (default door)",
            flags: &[],
            packet: |_| (80, SYN),
        },
        Class {
            name: "SYN+ACKs to random ports (door with tcp_flags = [\"syn\"])",
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

/// CPU seconds per million packets of `class` for the daemon binary `bin`, the send rate, and
/// the kernel's drop count.
fn measure(bin: &str, class: &Class) -> (f64, f64, u64) {
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
    let ready = support::wait_until(Duration::from_secs(15), Duration::from_millis(20), || {
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
    let before = cpu_ticks(daemon.pid());
    let started = Instant::now();
    for n in 0..FRAMES {
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
    daemon.stop(Duration::from_secs(5));
    let drops = kernel_drops(&daemon.log());
    let pps = f64::from(FRAMES) / sent_for.as_secs_f64();
    (used * 1_000_000.0 / f64::from(FRAMES), pps, drops)
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture (see the module docs)"]
fn background_cpu_per_million_packets() {
    if !require_root_or_skip("background_cpu_per_million_packets") {
        return;
    }
    let before = std::env::var("KNOCKWRAP_BEFORE_BIN").ok();
    println!("| background traffic | before: CPU s / M packets | after: CPU s / M packets | send rate (after) | kernel drops before / after |");
    println!("|---|---|---|---|---|");
    for class in classes() {
        let old = before.as_deref().map(|b| measure(b, &class));
        let (new, pps, drops) = measure(knockwrap_bin(), &class);
        println!(
            "| {} | {} | {:.3} | {:.0} k pps | {} / {} |",
            class.name,
            old.map_or("-".to_owned(), |o| format!("{:.3}", o.0)),
            new,
            pps / 1000.0,
            old.map_or("-".to_owned(), |o| o.2.to_string()),
            drops
        );
    }
}
