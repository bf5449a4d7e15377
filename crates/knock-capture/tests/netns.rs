//! Privileged end-to-end tests of the capture: real sockets in network namespaces joined by a
//! veth pair, and `lo` in a fresh namespace. Root and `ip` only (`test_support::skip_unless_root!`).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use knock_capture::{spawn_capture_thread, Capture, FilterSpec, FlagRule, LinkType, ReceivePath};
use knock_match::{KnockEvent, Proto};
use test_support::frames::{self, FrameWriter, L4};
use test_support::net::{self, NetPair, Netns};

const DOOR_TCP: u16 = 7000;
const DOOR_UDP: u16 = 9000;
const OTHER_TCP: u16 = 2222;
const OTHER_UDP: u16 = 5353;

fn spec() -> FilterSpec {
    let mut s = FilterSpec::new();
    s.tcp(DOOR_TCP..=DOOR_TCP, FlagRule::ANY)
        .udp(DOOR_UDP..=DOOR_UDP);
    s.pass_pure_syn_any_port = true;
    s
}

/// A connect that is refused (nothing listens): exactly one SYN on the wire.
fn tcp_knock(dst: IpAddr, port: u16) {
    let r = TcpStream::connect_timeout(&SocketAddr::new(dst, port), Duration::from_secs(2));
    assert!(r.is_err(), "nothing listens on {port}");
}

fn udp_knock(dst: IpAddr, port: u16) {
    let bind: SocketAddr = if dst.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
        .parse()
        .unwrap();
    let s = UdpSocket::bind(bind).unwrap();
    s.send_to(&[0], SocketAddr::new(dst, port)).unwrap();
}

/// Read events until `quiet` passes without one (or 10 s in all).
fn collect(cap: &mut Capture, quiet: Duration) -> Vec<KnockEvent> {
    let mut out = Vec::new();
    let start = Instant::now();
    let mut last = Instant::now();
    while last.elapsed() < quiet && start.elapsed() < Duration::from_secs(10) {
        if let Some(e) = cap.next_event().unwrap() {
            out.push(e);
            last = Instant::now();
        }
    }
    out
}

fn summary(evs: &[KnockEvent]) -> Vec<(IpAddr, IpAddr, Proto, u16, bool)> {
    let mut v: Vec<_> = evs
        .iter()
        .map(|e| (e.src, e.dst, e.proto, e.dport, e.flags.is_pure_syn()))
        .collect();
    v.sort();
    v
}

#[test]
fn veth_doors_syns_and_no_established_traffic() {
    test_support::skip_unless_root!("ip");
    let pair = NetPair::new("veth");
    let mut cap = pair
        .server
        .run(|| Capture::open(net::SERVER_IF, &spec()))
        .unwrap();
    assert_eq!(cap.link(), LinkType::Ethernet);

    // An echo server on a non-door port: its established traffic must never be captured.
    // Dual-stack ("::" without IPV6_V6ONLY) so one listener serves both families.
    let listener = pair
        .server
        .run(|| TcpListener::bind(("::", OTHER_TCP)).unwrap());
    let echo = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut c, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            while let Ok(n) = c.read(&mut buf) {
                if n == 0 || c.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });

    pair.client.run(|| {
        for v6 in [false, true] {
            let dst = pair.server_addr(v6);
            tcp_knock(dst, DOOR_TCP);
            udp_knock(dst, DOOR_UDP);
            udp_knock(dst, OTHER_UDP);
            let mut c = TcpStream::connect((dst, OTHER_TCP)).unwrap();
            for _ in 0..5 {
                c.write_all(b"established data").unwrap();
                let mut buf = [0u8; 16];
                c.read_exact(&mut buf).unwrap();
            }
            c.shutdown(std::net::Shutdown::Both).unwrap();
        }
    });
    echo.join().unwrap();

    let got = collect(&mut cap, Duration::from_millis(800));
    let mut want = Vec::new();
    for v6 in [false, true] {
        let (src, dst) = (pair.client_addr(v6), pair.server_addr(v6));
        want.push((src, dst, Proto::Tcp, DOOR_TCP, true));
        want.push((src, dst, Proto::Udp, DOOR_UDP, false));
        want.push((src, dst, Proto::Tcp, OTHER_TCP, true));
    }
    want.sort();
    assert_eq!(summary(&got), want, "events: {got:#?}");
    let st = cap.stats();
    // The filter passed the knocks, plus at most the few IPv6 packets with a hop-by-hop
    // header (MLD reports after link-up) that it passes unexamined and the decoder refuses.
    let n = want.len() as u64;
    assert!((n..=n + 4).contains(&st.received), "{st:?}");
    assert_eq!(st.dropped, 0);
}

#[test]
fn loopback_sees_each_knock_once() {
    test_support::skip_unless_root!("ip");
    let ns = Netns::new("lo");
    let mut cap = ns.run(|| Capture::open("lo", &spec())).unwrap();
    assert_eq!(cap.link(), LinkType::Ethernet);
    ns.run(|| {
        for dst in ["127.0.0.1", "::1"] {
            let dst: IpAddr = dst.parse().unwrap();
            tcp_knock(dst, DOOR_TCP);
            udp_knock(dst, DOOR_UDP);
        }
    });
    let got = collect(&mut cap, Duration::from_millis(600));
    let mut want = Vec::new();
    for dst in ["127.0.0.1", "::1"] {
        let a: IpAddr = dst.parse().unwrap();
        want.push((a, a, Proto::Tcp, DOOR_TCP, true));
        want.push((a, a, Proto::Udp, DOOR_UDP, false));
    }
    want.sort();
    assert_eq!(summary(&got), want, "events: {got:#?}");
}

#[test]
fn reopens_after_the_interface_vanishes_and_stops_promptly() {
    test_support::skip_unless_root!("ip");
    let pair = NetPair::new("gone");
    let (tx, rx) = mpsc::sync_channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    let t = pair
        .server
        .run(|| spawn_capture_thread(net::SERVER_IF, spec(), tx, Arc::clone(&stop)))
        .unwrap();
    assert!(t.wait_opens(1, Duration::from_secs(5)));

    let knock = |v6: bool| {
        pair.client
            .run(|| udp_knock(pair.server_addr(v6), DOOR_UDP));
        let batch: Vec<_> = rx.recv_timeout(Duration::from_secs(5)).expect("event");
        let e = batch.first().expect("a batch is never empty");
        assert_eq!(
            (e.proto, e.dport, e.src),
            (Proto::Udp, DOOR_UDP, pair.client_addr(v6))
        );
    };
    knock(false);

    pair.delete_link();
    std::thread::sleep(Duration::from_millis(300));
    pair.create_link();
    assert!(t.wait_opens(2, Duration::from_secs(10)), "reopened");
    knock(true);
    assert_eq!(t.opens(), 2);

    let asked = Instant::now();
    stop.store(true, Ordering::Relaxed);
    t.handle.join().unwrap();
    let took = asked.elapsed();
    assert!(took < Duration::from_millis(700), "stopped in {took:?}");
    // The thread is gone: the channel is closed once nothing is left in it.
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
}

#[test]
fn interface_down_and_up_keeps_the_same_capture() {
    test_support::skip_unless_root!("ip");
    let pair = NetPair::new("down");
    let (tx, rx) = mpsc::sync_channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    let t = pair
        .server
        .run(|| spawn_capture_thread(net::SERVER_IF, spec(), tx, Arc::clone(&stop)))
        .unwrap();
    assert!(t.wait_opens(1, Duration::from_secs(5)));
    // IPv4 only: IPv6 addresses are flushed when an interface goes down.
    let knock = || {
        pair.client
            .run(|| udp_knock(pair.server_addr(false), DOOR_UDP));
        let batch: Vec<_> = rx.recv_timeout(Duration::from_secs(5)).expect("event");
        let e = batch.first().expect("a batch is never empty");
        assert_eq!((e.proto, e.dport), (Proto::Udp, DOOR_UDP));
    };
    knock();
    pair.server.ip(&["link", "set", net::SERVER_IF, "down"]);
    std::thread::sleep(Duration::from_millis(500));
    pair.server.ip(&["link", "set", net::SERVER_IF, "up"]);
    std::thread::sleep(Duration::from_millis(200));
    knock();
    assert_eq!(t.opens(), 1, "the socket resumed without a reopen");
    stop.store(true, Ordering::Relaxed);
    t.handle.join().unwrap();
}

/// 100 000 datagrams to a non-door port with a door knock every 100th: only the knocks leave
/// the kernel (the counter of frames that passed the filter says so), and none is lost.
#[test]
fn non_door_flood_stays_in_the_kernel() {
    test_support::skip_unless_root!("ip");
    let pair = NetPair::new("flood");
    pair.without_ipv6();
    let mut cap = pair
        .server
        .run(|| Capture::open(net::SERVER_IF, &spec()))
        .unwrap();
    let (total, knocks) = (100_000u32, 1_000u32);
    let reader = std::thread::spawn(move || {
        let mut n = 0u32;
        let mut last = Instant::now();
        while last.elapsed() < Duration::from_secs(1) {
            if let Some(e) = cap.next_event().unwrap() {
                assert_eq!((e.proto, e.dport), (Proto::Udp, DOOR_UDP));
                n += 1;
                last = Instant::now();
            }
        }
        (n, cap.stats())
    });
    let started = Instant::now();
    pair.client.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let dst = pair.server_addr(false);
        for i in 0..total {
            let port = if i % (total / knocks) == 0 {
                DOOR_UDP
            } else {
                OTHER_UDP
            };
            s.send_to(&[0], SocketAddr::new(dst, port)).unwrap();
        }
    });
    let sent_in = started.elapsed();
    let (n, st) = reader.join().unwrap();
    eprintln!("flood: {total} datagrams sent in {sent_in:?}; {n} events; kernel {st:?}");
    assert_eq!(st.received, u64::from(knocks), "{st:?}");
    assert_eq!(st.dropped, 0);
    assert_eq!(n, knocks);
}

/// A tun device (ARPHRD_NONE): frames are bare IP packets. Packets written to the tun file
/// descriptor arrive on the interface as received traffic.
#[test]
fn tun_device_raw_ip() {
    test_support::skip_unless_root!("ip");
    let ns = Netns::new("tun");
    let tun = ns.run(|| {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .unwrap();
        // SAFETY: ifreq is plain data; TUNSETIFF reads the name and flags from it.
        unsafe {
            let mut req: libc::ifreq = std::mem::zeroed();
            for (d, s) in req.ifr_name.iter_mut().zip(b"kwtun0") {
                *d = *s as libc::c_char;
            }
            req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
            let rc = libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&f),
                libc::TUNSETIFF as _,
                &mut req,
            );
            assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        }
        f
    });
    ns.ip(&["addr", "add", "198.18.3.1/24", "dev", "kwtun0"]);
    ns.ip(&["link", "set", "kwtun0", "up"]);
    let mut cap = ns.run(|| Capture::open("kwtun0", &spec())).unwrap();
    assert_eq!(cap.link(), LinkType::RawIp);
    let v4 = |dport: u16| {
        frames::ip_packet(
            "198.18.3.2".parse().unwrap(),
            "198.18.3.1".parse().unwrap(),
            L4::Udp {
                sport: 40000,
                dport,
            },
        )
    };
    let v6 = |dport: u16| {
        let l4 = L4::Tcp {
            sport: 40000,
            dport,
            flags: frames::SYN,
            seq: 0,
        };
        frames::ip_packet(net::CLIENT_V6.into(), net::SERVER_V6.into(), l4)
    };
    let mut w = &tun;
    for pkt in [v4(DOOR_UDP), v4(OTHER_UDP), v6(OTHER_TCP)] {
        w.write_all(&pkt).unwrap();
    }
    let got = collect(&mut cap, Duration::from_millis(500));
    let s4: IpAddr = "198.18.3.2".parse().unwrap();
    let d4: IpAddr = "198.18.3.1".parse().unwrap();
    let mut want = vec![
        (s4, d4, Proto::Udp, DOOR_UDP, false),
        (
            IpAddr::from(net::CLIENT_V6),
            IpAddr::from(net::SERVER_V6),
            Proto::Tcp,
            OTHER_TCP,
            true,
        ),
    ];
    want.sort();
    assert_eq!(summary(&got), want, "events: {got:#?}");
}

#[test]
fn missing_interface_is_a_clear_error() {
    test_support::skip_unless_root!("ip");
    let ns = Netns::new("none");
    let err = ns.run(|| Capture::open("kw-nope", &spec())).unwrap_err();
    assert!(err.to_string().contains("kw-nope"), "{err}");
}

/// Send a raw Ethernet frame out of `ifname` (in the calling thread's namespace).
fn send_raw(ifname: &str, frame: &[u8]) {
    let w = FrameWriter::open(ifname).unwrap_or_else(|e| panic!("{ifname}: {e}"));
    w.send(frame)
        .unwrap_or_else(|e| panic!("sending on {ifname}: {e}"));
}

/// Ethernet (with `tags`, outermost first, VLAN ids 5, 6, ...) + IPv4 198.18.1.2 → 198.18.1.1
/// + TCP SYN or UDP, from 40000 to `dport`.
fn tagged_frame(tags: &[u16], tcp: bool, dport: u16) -> Vec<u8> {
    let l4 = if tcp {
        L4::Tcp {
            sport: 40000,
            dport,
            flags: frames::SYN,
            seq: 0,
        }
    } else {
        L4::Udp {
            sport: 40000,
            dport,
        }
    };
    let f = frames::frame(
        [0x02, 0, 0, 0, 0, 0x01],
        [0x02, 0, 0, 0, 0, 0x02],
        "198.18.1.2".parse().unwrap(),
        "198.18.1.1".parse().unwrap(),
        l4,
    );
    let tags: Vec<(u16, u16)> = tags.iter().copied().zip(5..).collect();
    frames::vlan_tagged(&f, &tags)
}

/// 802.1Q and QinQ (802.1ad outer, 802.1Q inner) frames injected on the client end: the
/// receiving kernel moves the outer tag to metadata, the inner QinQ tag stays in the frame
/// data, so both filter paths (untagged and tag-in-data) run in the real kernel. (Injected
/// because test kernels often lack the 8021q module.)
#[test]
fn vlan_and_qinq_frames() {
    test_support::skip_unless_root!("ip");
    let pair = NetPair::new("vlan");
    // No IPv6 here: this test counts exactly what the kernel let through.
    pair.without_ipv6();
    pair.server.ip(&[
        "link",
        "set",
        net::SERVER_IF,
        "address",
        "02:00:00:00:00:01",
    ]);
    let mut cap = pair
        .server
        .run(|| Capture::open(net::SERVER_IF, &spec()))
        .unwrap();
    let tag_sets: [&[u16]; 3] = [&[0x8100], &[0x88a8, 0x8100], &[0x8100, 0x8100]];
    pair.client.run(|| {
        for tags in tag_sets {
            send_raw(net::CLIENT_IF, &tagged_frame(tags, true, DOOR_TCP));
            send_raw(net::CLIENT_IF, &tagged_frame(tags, false, DOOR_UDP));
            // Not a door, not a SYN: dropped by the filter.
            send_raw(net::CLIENT_IF, &tagged_frame(tags, false, OTHER_UDP));
        }
    });
    let got = collect(&mut cap, Duration::from_millis(600));
    let (src, dst): (IpAddr, IpAddr) =
        ("198.18.1.2".parse().unwrap(), "198.18.1.1".parse().unwrap());
    let mut want = Vec::new();
    for _ in tag_sets {
        want.push((src, dst, Proto::Tcp, DOOR_TCP, true));
        want.push((src, dst, Proto::Udp, DOOR_UDP, false));
    }
    want.sort();
    assert_eq!(summary(&got), want, "events: {got:#?}");
    assert_eq!(cap.stats().received, want.len() as u64);
}

/// The zero-copy path is the one in use, and a lone knock on a quiet socket is delivered at
/// once (no block timeout to wait for): well within 50 ms even on a loaded machine, and the
/// event's age from the kernel stamp is within that too.
#[test]
fn ring_delivers_a_lone_knock_at_once() {
    test_support::skip_unless_root!("ip");
    lone_knock(ReceivePath::Ring);
}

/// The same on the fallback path.
#[test]
fn recvmmsg_delivers_a_lone_knock_at_once() {
    test_support::skip_unless_root!("ip");
    lone_knock(ReceivePath::Recvmmsg);
}

fn lone_knock(path: ReceivePath) {
    let pair = NetPair::new("lone");
    pair.without_ipv6();
    let mut cap = pair
        .server
        .run(|| Capture::open_with(net::SERVER_IF, &spec(), path))
        .unwrap();
    assert_eq!(cap.receive_path(), path);
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        // Quiet first: an empty wait times out with nothing.
        let mut out = Vec::new();
        assert_eq!(cap.next_batch(&mut out).unwrap(), 0);
        let sent = Instant::now();
        pair.client
            .run(|| udp_knock(pair.server_addr(false), DOOR_UDP));
        assert!(cap.next_batch(&mut out).unwrap() >= 1);
        worst = worst.max(sent.elapsed());
        assert_eq!(out.len(), 1, "{out:?}");
        let age = clock::boot_ms().saturating_sub(out[0].time_ms);
        assert!(age < 50, "event stamped {age} ms ago");
    }
    assert!(worst < Duration::from_millis(50), "slowest: {worst:?}");
}

/// A burst much larger than one ring block (32 slots) but within the ring, sent while nobody
/// reads, arrives whole, in order, with no kernel drop.
#[test]
fn ring_burst_arrives_whole_and_in_order() {
    test_support::skip_unless_root!("ip");
    burst(ReceivePath::Ring);
}

/// The same on the fallback path (1500 frames: many `recvmmsg` calls and several wake-ups).
#[test]
fn recvmmsg_burst_arrives_whole_and_in_order() {
    test_support::skip_unless_root!("ip");
    burst(ReceivePath::Recvmmsg);
}

fn burst(path: ReceivePath) {
    let pair = NetPair::new("burst");
    pair.without_ipv6();
    let mut s = FilterSpec::new();
    s.udp(10_000..=11_999);
    let mut cap = pair
        .server
        .run(|| Capture::open_with(net::SERVER_IF, &s, path))
        .unwrap();
    assert_eq!(cap.receive_path(), path);
    let n = 1500u16;
    pair.client.run(|| {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        let dst = pair.server_addr(false);
        for i in 0..n {
            sock.send_to(&[0], SocketAddr::new(dst, 10_000 + i))
                .unwrap();
        }
    });
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < usize::from(n) && start.elapsed() < Duration::from_secs(5) {
        let got = cap.next_batch(&mut out).unwrap();
        assert!(got <= knock_capture::MAX_BATCH);
    }
    let ports: Vec<u16> = out.iter().map(|e| e.dport).collect();
    assert_eq!(ports, (10_000..10_000 + n).collect::<Vec<_>>());
    let st = cap.stats();
    assert_eq!((st.received, st.dropped), (u64::from(n), 0), "{st:?}");
}

/// A datagram far larger than a ring slot (jumbo MTU on the veth): the frame is truncated in
/// the ring, the headers survive, the knock is decoded; a truncated IP header is not.
#[test]
fn ring_oversized_and_truncated_frames() {
    test_support::skip_unless_root!("ip");
    let pair = NetPair::new("jumbo");
    pair.without_ipv6();
    pair.server
        .ip(&["link", "set", net::SERVER_IF, "mtu", "9000"]);
    pair.client
        .ip(&["link", "set", net::CLIENT_IF, "mtu", "9000"]);
    let mut cap = pair
        .server
        .run(|| Capture::open(net::SERVER_IF, &spec()))
        .unwrap();
    pair.client.run(|| {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        let big = vec![0x5a; 8000];
        sock.send_to(&big, SocketAddr::new(pair.server_addr(false), DOOR_UDP))
            .unwrap();
        // An Ethernet frame whose IPv4 header is cut short: dropped by the filter (a load
        // past the end) or refused by the decoder, never an event.
        let mut short = tagged_frame(&[], false, DOOR_UDP);
        short.truncate(14 + 12);
        send_raw(net::CLIENT_IF, &short);
        sock.send_to(&[1], SocketAddr::new(pair.server_addr(false), DOOR_UDP))
            .unwrap();
    });
    let got = collect(&mut cap, Duration::from_millis(500));
    let summary: Vec<_> = got.iter().map(|e| (e.proto, e.dport)).collect();
    assert_eq!(
        summary,
        vec![(Proto::Udp, DOOR_UDP), (Proto::Udp, DOOR_UDP)],
        "{got:?}"
    );
}
