//! Validating a 100,000-line hosts.allow (target: >= 100 MB/s).
//!
//! The file imitates a long-lived managed hosts.allow with the proportions of
//! tests/conformance/gen-large.py (70 % `SSHD: a.b.c.d`, IPv6 managed lines, nets in every
//! form, prefixes, EXCEPT lists, option rules, comments, blank lines), generated here with a
//! small deterministic PRNG. Set KNOCKWRAP_BENCH_FILE to validate a given file instead (e.g. the
//! exact file gen-large.py writes, which docs/benchmarks.md times tcpdchk on).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hosts_access::{parse, validate, Severity};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn v4(r: &mut Rng) -> String {
    let (b, c, d) = (r.below(256), r.below(256), 1 + r.below(254));
    match r.below(7) {
        0 => format!("10.{b}.{c}.{d}"),
        1 => format!("172.{}.{c}.{d}", 16 + b % 16),
        2 => format!("192.168.{c}.{d}"),
        3 => format!("198.{}.{c}.{d}", 18 + b % 2),
        4 => format!("192.0.2.{d}"),
        5 => format!("198.51.100.{d}"),
        _ => format!("203.0.113.{d}"),
    }
}

fn line(r: &mut Rng, n: usize) -> String {
    let x = r.unit();
    if x < 0.70 {
        format!("SSHD: {}", v4(r))
    } else if x < 0.76 {
        format!(
            "SSHD: [2001:db8:{:x}:{:x}::{:x}]",
            r.below(65536),
            r.below(65536),
            1 + r.below(65535)
        )
    } else if x < 0.80 {
        format!("sshd: 10.{}.0.0/16", r.below(256))
    } else if x < 0.83 {
        format!(
            "sshd, vsftpd: 10.{}.{}.0/255.255.255.0",
            r.below(256),
            r.below(256)
        )
    } else if x < 0.85 {
        format!("ALL: 10.{}.", r.below(256))
    } else if x < 0.87 {
        format!("sshd: [2001:db8:{:x}::]/48", r.below(65536))
    } else if x < 0.89 {
        let k = r.below(256);
        format!("sshd: 10.{k}.0.0/16 EXCEPT 10.{k}.1.{}", 1 + r.below(254))
    } else if x < 0.91 {
        format!("sshd: {} : severity auth.info : allow", v4(r))
    } else if x < 0.92 {
        format!(
            "in.telnetd: {} : spawn /bin/echo %a %d \\: refused >> /dev/null : deny",
            v4(r)
        )
    } else if x < 0.97 {
        format!("# lease {n} for {} expires later", v4(r))
    } else {
        String::new()
    }
}

fn generated(lines: usize) -> Vec<u8> {
    let mut r = Rng(20261125);
    let mut out = String::new();
    for n in 0..lines {
        out.push_str(&line(&mut r, n));
        out.push('\n');
    }
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let data = match std::env::var_os("KNOCKWRAP_BENCH_FILE") {
        Some(p) => std::fs::read(&p).expect("KNOCKWRAP_BENCH_FILE"),
        None => generated(100_000),
    };
    let diags = validate(&data);
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    eprintln!(
        "input: {} bytes, {} lines, {} errors, {} warnings",
        data.len(),
        data.iter().filter(|&&b| b == b'\n').count(),
        errors,
        diags.len() - errors
    );
    let mut g = c.benchmark_group("hosts.allow 100k lines");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    g.bench_function("validate", |b| {
        b.iter(|| validate(std::hint::black_box(&data)))
    });
    g.bench_function("parse", |b| b.iter(|| parse(std::hint::black_box(&data))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
