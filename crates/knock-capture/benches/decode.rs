//! Decoder and filter-compiler throughput. The frames are etherparse's, as every test frame.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use etherparse::{
    ip_number, IpHeaders, Ipv6Extensions, Ipv6Header, Ipv6RawExtHeader, PacketBuilder,
};
use knock_capture::{decode, FilterSpec, FlagRule, LinkType};

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

/// Ethernet + IPv4 + TCP SYN to 7000.
fn v4_syn() -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .tcp(40000, 7000, 0, 64240)
        .syn()
        .write(&mut f, &[])
        .expect("writing to a Vec");
    f
}

/// Ethernet + IPv6 + hop-by-hop + destination options + UDP to 9000.
fn v6_ext_udp() -> Vec<u8> {
    // Six bytes of padding: PadN (type 1) with four bytes.
    let pad = || Some(Ipv6RawExtHeader::new_raw(ip_number::UDP, &[1, 4, 0, 0, 0, 0]).unwrap());
    let exts = Ipv6Extensions {
        hop_by_hop_options: pad(),
        destination_options: pad(),
        ..Default::default()
    };
    let ip = Ipv6Header {
        source: [0xfd, 0, 0x4b, 0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        destination: [0xfd, 0, 0x4b, 0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        hop_limit: 64,
        ..Default::default()
    };
    let mut f = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ip(IpHeaders::Ipv6(ip, exts))
        .udp(40000, 9000)
        .write(&mut f, &[])
        .expect("writing to a Vec");
    assert_eq!(f.len(), 14 + 40 + 8 + 8 + 8);
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
