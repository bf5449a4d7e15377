#!/usr/bin/env python3
"""Writes the seed frames of the `decode` fuzz target into fuzz/seeds/decode/.

Each seed is one selector byte (0 Ethernet, 1 raw IP, 2 Linux cooked; see
fuzz_targets/decode.rs) followed by a valid frame that decodes to a knock event, so the
fuzzer starts from every header path the decoder knows. Run from anywhere:
    python3 fuzz/seeds/gen_decode_seeds.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "decode")
ETHERNET, RAW_IP, COOKED = 0, 1, 2
SYN, ACK = 0x02, 0x10
C4, S4 = bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1])
C6 = bytes([0xFD, 0, 0x4B, 0x57] + [0] * 11 + [2])
S6 = bytes([0xFD, 0, 0x4B, 0x57] + [0] * 11 + [1])


def tcp(dport, flags=SYN, sport=40000):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 1024, 0, 0)


def udp(dport, payload=b"k", sport=40000):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(proto, l4, options=b"", frag=0):
    ihl = 20 + len(options)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl // 4, 0, ihl + len(l4), 1, frag, 64, proto, 0, C4, S4)
    return h + options + l4


def ext(kind, nxt, body=b""):
    """One IPv6 extension header (type `kind`) whose next header is `nxt`."""
    if kind == 44:  # fragment: fixed 8 bytes
        return bytes([nxt, 0]) + body.ljust(6, b"\0")[:6]
    if kind == 51:  # AH: length in 4-octet units minus 2
        total = max(3, -(-(len(body) + 2) // 4)) * 4
        return bytes([nxt, total // 4 - 2]) + body.ljust(total - 2, b"\0")
    total = max(1, -(-(len(body) + 2) // 8)) * 8
    return bytes([nxt, total // 8 - 1]) + body.ljust(total - 2, b"\0")


def ipv6(proto, l4, exts=()):
    kinds = [k for k, _ in exts] + [proto]
    payload = b"".join(ext(k, kinds[i + 1], body) for i, (k, body) in enumerate(exts)) + l4
    h = struct.pack("!IHBB16s16s", 6 << 28, len(payload), kinds[0], 64, C6, S6)
    return h + payload


def ethernet(ip, tags=()):
    h = bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2])
    for i, tpid in enumerate(tags):
        h += struct.pack("!HH", tpid, 100 + i)
    return h + struct.pack("!H", 0x86DD if ip[0] >> 4 == 6 else 0x0800) + ip


def cooked(ip):
    h = bytes([0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0])
    return h + struct.pack("!H", 0x86DD if ip[0] >> 4 == 6 else 0x0800) + ip


CHAIN = [(0, b"\x01\x04"), (60, b""), (43, bytes(12)), (44, b"\0\0\0\0\0\1"), (51, bytes(14))]
SEEDS = {
    "eth_ipv4_tcp_syn": (ETHERNET, ethernet(ipv4(6, tcp(7000)))),
    "eth_ipv4_tcp_ack": (ETHERNET, ethernet(ipv4(6, tcp(22, ACK)))),
    "eth_ipv4_udp_padded": (ETHERNET, ethernet(ipv4(17, udp(9000))).ljust(60, b"\0")),
    "eth_vlan_ipv4_tcp": (ETHERNET, ethernet(ipv4(6, tcp(7001)), [0x8100])),
    "eth_qinq_ipv4_tcp": (ETHERNET, ethernet(ipv4(6, tcp(7002)), [0x88A8, 0x8100])),
    "eth_ipv4_options_udp": (ETHERNET, ethernet(ipv4(17, udp(9001), options=b"\x01" * 8))),
    "eth_ipv4_first_fragment": (ETHERNET, ethernet(ipv4(6, tcp(7003), frag=0x2000))),
    "eth_ipv6_tcp": (ETHERNET, ethernet(ipv6(6, tcp(7004)))),
    "eth_vlan_ipv6_ext_chain": (ETHERNET, ethernet(ipv6(6, tcp(7005), CHAIN), [0x8100])),
    "raw_ipv4_tcp": (RAW_IP, ipv4(6, tcp(7006))),
    "raw_ipv6_udp": (RAW_IP, ipv6(17, udp(9002))),
    "raw_ipv6_ext_chain_udp": (RAW_IP, ipv6(17, udp(9003), CHAIN)),
    "raw_ipv6_fragment_tcp": (RAW_IP, ipv6(6, tcp(7007), [(44, b"\0\1\0\0\0\7")])),
    "cooked_ipv4_tcp": (COOKED, cooked(ipv4(6, tcp(7008)))),
    "cooked_ipv6_ext_chain_tcp": (COOKED, cooked(ipv6(6, tcp(7009), CHAIN))),
}

os.makedirs(OUT, exist_ok=True)
for name, (link, frame) in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([link]) + frame)
print(f"{len(SEEDS)} seeds in {OUT}")
