//! Decoder and filter-compiler throughput.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use knock_capture::{decode, FilterSpec, FlagRule, LinkType};

/// Ethernet + IPv4 + TCP SYN to 7000.
fn v4_syn() -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&40u16.to_be_bytes());
    f[23] = 6;
    f[26..30].copy_from_slice(&[198, 18, 0, 2]);
    f[30..34].copy_from_slice(&[198, 18, 0, 1]);
    f[36..38].copy_from_slice(&7000u16.to_be_bytes());
    f[46] = 0x50;
    f[47] = 0x02;
    f
}

/// Ethernet + IPv6 + hop-by-hop + destination options + UDP to 9000.
fn v6_ext_udp() -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 8 + 8 + 8];
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&24u16.to_be_bytes());
    f[20] = 0; // hop-by-hop
    f[54] = 60; // next: destination options
    f[62] = 17; // next: UDP
    f[72..74].copy_from_slice(&9000u16.to_be_bytes());
    f
}

fn bench(c: &mut Criterion) {
    let a = v4_syn();
    let b = v6_ext_udp();
    assert!(decode(LinkType::Ethernet, &a, 0).is_some());
    assert!(decode(LinkType::Ethernet, &b, 0).is_some());
    c.bench_function("decode ipv4 tcp", |x| {
        x.iter(|| decode(LinkType::Ethernet, black_box(&a), 0))
    });
    c.bench_function("decode ipv6 ext udp", |x| {
        x.iter(|| decode(LinkType::Ethernet, black_box(&b), 0))
    });
    let mut spec = FilterSpec::new();
    for i in 0..5000u32 {
        let p = ((i * 7919) % 65000 + 100) as u16;
        spec.tcp(p..=p, FlagRule::new(0x02, 0x10)).udp(p..=p);
    }
    c.bench_function("compile 5000+5000 ports", |x| {
        x.iter(|| black_box(&spec).compile(LinkType::Ethernet).unwrap().len())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
