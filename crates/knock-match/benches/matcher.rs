//! Matcher throughput: background pure SYNs from 1 M spoofed sources, a spoofed flood of
//! first-step knocks that keeps the table full, and honest interleaved knocks.
//!
//! Time is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time: the
//! figure is events per second of one core, unaffected by other processes competing for the
//! CPU (cache effects from them remain). Set `KNOCKWRAP_BENCH_WALL=1` to measure wall time.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use knock_match::{
    Action, Door, DoorKind, KnockEvent, Matcher, MatcherOptions, Proto, Step, TcpFlagRules,
    TcpFlags,
};

/// CPU time consumed by the calling thread, in nanoseconds (or wall time, see above).
struct CpuTime {
    wall: bool,
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for CpuTime {
    type Intermediate = (u64, std::time::Instant);
    type Value = u64;

    fn start(&self) -> Self::Intermediate {
        (thread_cpu_ns(), std::time::Instant::now())
    }

    fn end(&self, i: Self::Intermediate) -> u64 {
        if self.wall {
            i.1.elapsed().as_nanos() as u64
        } else {
            thread_cpu_ns() - i.0
        }
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // Same unit (nanoseconds) as wall time: reuse its formatting.
        WallTime.formatter()
    }
}

/// xorshift64*: a dependency-free, reproducible source of spoofed addresses and ports.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn doors() -> Vec<Door> {
    let mk = |name: &str, steps: &[Step]| Door {
        name: name.into(),
        kind: DoorKind::Static {
            steps: steps.to_vec(),
        },
        seq_timeout: Duration::from_secs(10),
        tcp_flags: TcpFlagRules::parse_list(["syn", "!ack"]).unwrap(),
        action: Action::Allow,
        service: "SSHD".into(),
        lease: Some(Duration::from_secs(3600)),
        target: None,
        knock_from: Vec::new(),
        link_local: false,
    };
    vec![
        mk("open", &[Step::tcp(7000), Step::tcp(8000), Step::udp(9000)]),
        mk(
            "other",
            &[Step::tcp(7000), Step::tcp(8000), Step::tcp(6000)],
        ),
        mk(
            "close",
            &[Step::tcp(9000), Step::tcp(8000), Step::tcp(7000)],
        ),
    ]
}

fn ev(t: u64, src: u32, proto: Proto, port: u16) -> KnockEvent {
    KnockEvent {
        time_ms: t,
        src: IpAddr::V4(Ipv4Addr::from(src)),
        dst: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
        proto,
        dport: port,
        flags: TcpFlags(if proto == Proto::Tcp {
            TcpFlags::SYN
        } else {
            0
        }),
        to_host: true,
        via_loopback: false,
        attempt: 0,
        interface: 0,
    }
}

const N: usize = 1 << 20;

fn spoofed_background() -> Vec<KnockEvent> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..N)
        .map(|i| {
            let r = rng.next();
            // 1 M distinct sources, uniformly random destination ports.
            let src = 0x0a00_0000 | (i as u32 & 0xf_ffff);
            ev(i as u64 / 1000, src, Proto::Tcp, (r >> 32) as u16 | 1)
        })
        .collect()
}

fn spoofed_first_steps() -> Vec<KnockEvent> {
    let mut rng = Rng(42);
    (0..N)
        .map(|i| {
            let src = (rng.next() >> 32) as u32;
            ev(i as u64 / 1000, src, Proto::Tcp, 7000)
        })
        .collect()
}

fn honest() -> Vec<KnockEvent> {
    // 10 000 sources knock `open` with their stages interleaved, then `close`.
    let mut out = Vec::new();
    let seqs = [
        [(Proto::Tcp, 7000), (Proto::Tcp, 8000), (Proto::Udp, 9000)],
        [(Proto::Tcp, 9000), (Proto::Tcp, 8000), (Proto::Tcp, 7000)],
    ];
    for seq in seqs {
        for (proto, port) in seq {
            for s in 0..10_000u32 {
                out.push(ev(out.len() as u64 / 1000, 0xc612_0000 | s, proto, port));
            }
        }
    }
    out
}

fn bench(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("matcher");
    group.sample_size(10);
    let cases: [(&str, Vec<KnockEvent>, bool); 4] = [
        (
            "background_syn_1M_spoofed_sources",
            spoofed_background(),
            false,
        ),
        ("background_syn_table_full", spoofed_background(), true),
        (
            "spoofed_first_step_flood_table_full",
            spoofed_first_steps(),
            false,
        ),
        ("honest_knocks_10k_sources", honest(), false),
    ];
    for (name, events, prefill) in cases {
        group.throughput(Throughput::Elements(events.len() as u64));
        let mut m = Matcher::new(
            doors(),
            MatcherOptions {
                hash_seed: [0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321],
                ..MatcherOptions::default()
            },
        )
        .unwrap();
        if prefill {
            // Fill the table (default capacity 65 536) with spoofed sources, then the background.
            for e in spoofed_first_steps().iter().take(70_000) {
                m.observe(e);
            }
            assert_eq!(m.in_progress(), 1 << 16);
        }
        let mut grants = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                for e in &events {
                    grants += black_box(m.observe(e)).len();
                }
            })
        });
        black_box(grants);
    }
    group.finish();
}

fn config() -> Criterion<CpuTime> {
    Criterion::default().with_measurement(CpuTime {
        wall: std::env::var_os("KNOCKWRAP_BENCH_WALL").is_some_and(|v| v == "1"),
    })
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
