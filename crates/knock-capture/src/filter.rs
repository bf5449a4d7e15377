//! The kernel-side filter: which packets knockwrap wants, and the cBPF program that keeps only
//! those, generated per link type.
//!
//! Passed: TCP to a door port whose flags satisfy one of that port's rules, UDP to a door
//! port, and (optionally) pure SYNs to any port, which the matcher needs to notice a sweep.
//! Dropped in the kernel: frames this host sends (`lo` shows each packet twice), non-first
//! IPv4 fragments, everything that is not TCP or UDP over IPv4/IPv6. IPv6 packets whose first
//! next-header is an extension header are passed unexamined: the decoder walks them.
//!
//! The filter may pass more than needed (never less): when the port lists are too long for
//! the kernel's 4096-instruction limit, neighbouring ranges are merged.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use knock_match::door::{Door, DoorKind, FlagRule as DoorFlag, TcpFlagRules};
use knock_match::{Proto, TcpFlags};
use thiserror::Error;

use crate::bpf::{self, Asm, AsmError, Insn, Label, Target};
use crate::link::LinkType;

/// Snap length returned for a passed frame (the whole frame, as tcpdump does).
pub const PASS: u32 = 0x4_0000;

/// IPv6 next-header values that are extension headers (or AH, mobility, HIP, shim6).
const V6_EXTENSIONS: [u32; 8] = [0, 43, 44, 51, 60, 135, 139, 140];

/// More distinct flag rules than this are folded into "any flags" (conservative).
const MAX_FLAG_RULES: usize = 16;

/// A TCP flags condition: passes when `flags & mask == value`. `mask == 0` passes any flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlagRule {
    pub mask: u8,
    pub value: u8,
}

impl FlagRule {
    /// Any flags at all.
    pub const ANY: FlagRule = FlagRule { mask: 0, value: 0 };

    /// Flags in `set` must be set, flags in `clear` must be clear.
    pub fn new(set: u8, clear: u8) -> Self {
        FlagRule {
            mask: set | clear,
            value: set & !clear,
        }
    }

    pub fn matches(self, flags: u8) -> bool {
        flags & self.mask == self.value & self.mask
    }
}

/// What the filter should pass. Build it from the doors; ports may be added repeatedly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterSpec {
    tcp: BTreeMap<FlagRule, Vec<(u16, u16)>>,
    udp: Vec<(u16, u16)>,
    /// Pass every pure SYN (SYN set; ACK, RST, FIN clear) whatever its port.
    pub pass_pure_syn_any_port: bool,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("cannot assemble the filter: {0}")]
    Asm(#[from] AsmError),
}

impl FilterSpec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pass TCP to `ports` when the flags satisfy `rule`.
    pub fn tcp(&mut self, ports: RangeInclusive<u16>, rule: FlagRule) -> &mut Self {
        let rule = FlagRule {
            mask: rule.mask,
            value: rule.value & rule.mask,
        };
        if ports.start() <= ports.end() {
            self.tcp
                .entry(rule)
                .or_default()
                .push((*ports.start(), *ports.end()));
        }
        self
    }

    /// Pass UDP to `ports`.
    pub fn udp(&mut self, ports: RangeInclusive<u16>) -> &mut Self {
        if ports.start() <= ports.end() {
            self.udp.push((*ports.start(), *ports.end()));
        }
        self
    }

    /// What the doors need. Each door's step rule ([`Door::step_rule`]: pure SYNs unless a
    /// static door asks for other flags) with UDP when the door has a UDP step.
    ///
    /// With `sweep_detection` (the daemon's setting) these pass to **every** port: the matcher
    /// resets a source whose packet could have been a step but went to the wrong port, so it
    /// must see every such packet, not only those to door ports (knockd's filter sees only the
    /// door ports, in sweep order, and opens). Pure SYNs to any port pass as well. Established
    /// traffic (ACKs) to non-door ports is still dropped in the kernel unless a door's own
    /// rule accepts ACKs. Without it, only the doors' own ports (still to come for one-time
    /// doors, a TOTP door's whole range) pass.
    /// A door's `target` is not filtered in the kernel; the matcher checks it.
    pub fn from_doors<'a>(
        doors: impl IntoIterator<Item = &'a Door>,
        sweep_detection: bool,
    ) -> FilterSpec {
        let mut spec = FilterSpec::new();
        spec.pass_pure_syn_any_port = sweep_detection;
        for door in doors {
            let rule = flag_rule(&door.step_rule());
            if sweep_detection {
                spec.tcp(1..=u16::MAX, rule);
                if door.has_udp_step() {
                    spec.udp(1..=u16::MAX);
                }
                continue;
            }
            let mut add = |steps: &[knock_match::Step]| {
                for s in steps {
                    match s.proto {
                        Proto::Tcp => spec.tcp(s.port..=s.port, rule),
                        Proto::Udp => spec.udp(s.port..=s.port),
                    };
                }
            };
            match &door.kind {
                DoorKind::Static { steps } => add(steps),
                DoorKind::OneTime { sequences, next } => {
                    for seq in sequences.iter().skip(*next) {
                        add(seq);
                    }
                }
                DoorKind::Totp(t) => {
                    spec.tcp(t.lo..=t.hi, rule);
                }
            }
        }
        spec
    }

    /// The reference semantics of the filter for a decoded packet: the kernel program passes
    /// at least every packet for which this is true.
    pub fn wants(&self, proto: Proto, dport: u16, flags: TcpFlags) -> bool {
        let within =
            |ranges: &[(u16, u16)]| ranges.iter().any(|&(lo, hi)| lo <= dport && dport <= hi);
        match proto {
            Proto::Udp => within(&self.udp),
            Proto::Tcp => {
                (self.pass_pure_syn_any_port && flags.is_pure_syn())
                    || self
                        .tcp
                        .iter()
                        .any(|(rule, ranges)| rule.matches(flags.0) && within(ranges))
            }
        }
    }

    /// The cBPF program for frames of `link`. Always within the kernel's instruction limit:
    /// port lists are coarsened (a superset is passed) until it fits.
    pub fn compile(&self, link: LinkType) -> Result<Vec<Insn>, FilterError> {
        let mut tcp: Vec<(FlagRule, Vec<(u16, u16)>)> =
            self.tcp.iter().map(|(r, v)| (*r, normalize(v))).collect();
        if tcp.len() > MAX_FLAG_RULES {
            let all: Vec<(u16, u16)> = tcp.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            tcp = vec![(FlagRule::ANY, normalize(&all))];
        }
        let udp = normalize(&self.udp);
        let mut cap = usize::MAX;
        loop {
            let tcp_c: Vec<(FlagRule, Vec<(u16, u16)>)> =
                tcp.iter().map(|(r, v)| (*r, coalesce(v, cap))).collect();
            let udp_c = coalesce(&udp, cap);
            match generate(link, &tcp_c, &udp_c, self.pass_pure_syn_any_port) {
                Err(AsmError::TooLong(n)) if cap > 1 => {
                    let longest = tcp_c
                        .iter()
                        .map(|(_, v)| v.len())
                        .chain([udp_c.len()])
                        .max()
                        .unwrap_or(1);
                    // Shrink in proportion to the overshoot, at least by half.
                    cap = (longest * bpf::BPF_MAXINSNS / n).min(longest / 2).max(1);
                }
                other => return other.map_err(FilterError::from),
            }
        }
    }
}

/// A door's tri-state flag rules as a mask/value test.
fn flag_rule(rules: &TcpFlagRules) -> FlagRule {
    let (mut set, mut clear) = (0u8, 0u8);
    for bit in (0..8).map(|i| 1u8 << i) {
        match rules.rule(bit) {
            DoorFlag::Set => set |= bit,
            DoorFlag::Unset => clear |= bit,
            DoorFlag::DontCare => {}
        }
    }
    FlagRule::new(set, clear)
}

/// Sorted, with overlapping and adjacent ranges merged.
fn normalize(ranges: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut v = ranges.to_vec();
    v.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// At most `cap` ranges covering `ranges`, by closing the smallest gaps first.
fn coalesce(ranges: &[(u16, u16)], cap: usize) -> Vec<(u16, u16)> {
    if ranges.len() <= cap {
        return ranges.to_vec();
    }
    let mut gaps: Vec<(u16, usize)> = ranges
        .windows(2)
        .enumerate()
        .map(|(i, w)| (w[1].0 - w[0].1, i))
        .collect();
    gaps.sort_unstable();
    let mut close = vec![false; ranges.len()];
    for &(_, i) in gaps.iter().take(ranges.len() - cap.max(1)) {
        close[i] = true;
    }
    let mut out: Vec<(u16, u16)> = Vec::new();
    let mut join_next = false;
    for (i, &(lo, hi)) in ranges.iter().enumerate() {
        match out.last_mut() {
            Some(last) if join_next => last.1 = hi,
            _ => out.push((lo, hi)),
        }
        join_next = close[i];
    }
    out
}

struct Gen {
    asm: Asm,
    pass: Label,
    drop: Label,
    tcp: Label,
    udp: Label,
}

impl Gen {
    fn to(l: Label) -> Target {
        Target::Label(l)
    }

    /// IPv4 header at absolute offset `base`: drop non-first fragments, leave X = L4 offset.
    fn ipv4(&mut self, base: u32) {
        let a = &mut self.asm;
        a.stmt(bpf::LD | bpf::H | bpf::ABS, base + 6);
        a.jump(bpf::JSET, 0x1fff, Gen::to(self.drop), Target::Next);
        a.stmt(bpf::LDX | bpf::B | bpf::MSH, base);
        if base != 0 {
            a.stmt(bpf::MISC | bpf::TXA, 0);
            a.stmt(bpf::ALU | bpf::ADD | bpf::K, base);
            a.stmt(bpf::MISC | bpf::TAX, 0);
        }
        a.stmt(bpf::LD | bpf::B | bpf::ABS, base + 9);
        a.jump(bpf::JEQ, 6, Gen::to(self.tcp), Target::Next);
        a.jump(bpf::JEQ, 17, Gen::to(self.udp), Gen::to(self.drop));
    }

    /// IPv6 header at `base`: TCP/UDP directly after the fixed header, or pass conservatively
    /// when an extension header comes first.
    fn ipv6(&mut self, base: u32) {
        let a = &mut self.asm;
        a.stmt(bpf::LDX | bpf::W | bpf::IMM, base + 40);
        a.stmt(bpf::LD | bpf::B | bpf::ABS, base + 6);
        a.jump(bpf::JEQ, 6, Gen::to(self.tcp), Target::Next);
        a.jump(bpf::JEQ, 17, Gen::to(self.udp), Target::Next);
        for (i, nh) in V6_EXTENSIONS.iter().enumerate() {
            let miss = if i + 1 == V6_EXTENSIONS.len() {
                Gen::to(self.drop)
            } else {
                Target::Next
            };
            a.jump(bpf::JEQ, *nh, Gen::to(self.pass), miss);
        }
    }

    /// A = port: jump to pass when it lies in one of the sorted `ranges`, else fall through.
    fn ports(&mut self, ranges: &[(u16, u16)]) {
        let out = self.asm.label();
        for &(lo, hi) in ranges {
            let (lo, hi) = (u32::from(lo), u32::from(hi));
            if lo == hi {
                self.asm
                    .jump(bpf::JEQ, lo, Gen::to(self.pass), Target::Next);
            } else {
                // Sorted ascending: below this range means below every later one too.
                self.asm.jump(bpf::JGE, lo, Target::Next, Gen::to(out));
                self.asm
                    .jump(bpf::JGT, hi, Target::Next, Gen::to(self.pass));
            }
        }
        self.asm.place(out);
    }
}

fn generate(
    link: LinkType,
    tcp: &[(FlagRule, Vec<(u16, u16)>)],
    udp: &[(u16, u16)],
    pure_syn: bool,
) -> Result<Vec<Insn>, AsmError> {
    let mut asm = Asm::new();
    let (pass, drop, tcp_l, udp_l) = (asm.label(), asm.label(), asm.label(), asm.label());
    let mut g = Gen {
        asm,
        pass,
        drop,
        tcp: tcp_l,
        udp: udp_l,
    };

    // Frames this host sends are never knocks (and `lo` would show every packet twice).
    g.asm.stmt(
        bpf::LD | bpf::W | bpf::ABS,
        bpf::SKF_AD_OFF + bpf::SKF_AD_PKTTYPE,
    );
    g.asm
        .jump(bpf::JEQ, bpf::PACKET_OUTGOING, Gen::to(drop), Target::Next);

    // Dispatch on the link header to one IPv4/IPv6 block per network-header offset.
    let mut blocks: Vec<(bool, u32, Label)> = Vec::new();
    let mut block = |g: &mut Gen, v6: bool, base: u32| {
        let l = g.asm.label();
        blocks.push((v6, base, l));
        Gen::to(l)
    };
    match link {
        LinkType::Ethernet => {
            // Untagged (or tag already moved to metadata by the kernel), one tag, two tags.
            let mut ethertype_at = 12;
            for depth in 0..3 {
                let base = ethertype_at + 2;
                g.asm.stmt(bpf::LD | bpf::H | bpf::ABS, ethertype_at);
                let v4 = block(&mut g, false, base);
                g.asm.jump(bpf::JEQ, 0x0800, v4, Target::Next);
                let v6 = block(&mut g, true, base);
                if depth == 2 {
                    g.asm.jump(bpf::JEQ, 0x86dd, v6, Gen::to(drop));
                } else {
                    g.asm.jump(bpf::JEQ, 0x86dd, v6, Target::Next);
                    let tagged = g.asm.label();
                    g.asm.jump(bpf::JEQ, 0x8100, Gen::to(tagged), Target::Next);
                    g.asm.jump(bpf::JEQ, 0x88a8, Gen::to(tagged), Gen::to(drop));
                    g.asm.place(tagged);
                }
                ethertype_at += 4;
            }
        }
        LinkType::LinuxSll => {
            g.asm.stmt(bpf::LD | bpf::H | bpf::ABS, 14);
            let v4 = block(&mut g, false, 16);
            g.asm.jump(bpf::JEQ, 0x0800, v4, Target::Next);
            let v6 = block(&mut g, true, 16);
            g.asm.jump(bpf::JEQ, 0x86dd, v6, Gen::to(drop));
        }
        LinkType::RawIp => {
            g.asm.stmt(bpf::LD | bpf::B | bpf::ABS, 0);
            g.asm.stmt(bpf::ALU | bpf::AND | bpf::K, 0xf0);
            let v4 = block(&mut g, false, 0);
            g.asm.jump(bpf::JEQ, 0x40, v4, Target::Next);
            let v6 = block(&mut g, true, 0);
            g.asm.jump(bpf::JEQ, 0x60, v6, Gen::to(drop));
        }
    }
    for (v6, base, label) in blocks {
        g.asm.place(label);
        if v6 {
            g.ipv6(base);
        } else {
            g.ipv4(base);
        }
    }

    // TCP, X = offset of the TCP header.
    g.asm.place(tcp_l);
    for (rule, ranges) in tcp {
        if ranges.is_empty() {
            continue;
        }
        let next_rule = g.asm.label();
        if rule.mask != 0 {
            g.asm.stmt(bpf::LD | bpf::B | bpf::IND, 13);
            g.asm
                .stmt(bpf::ALU | bpf::AND | bpf::K, u32::from(rule.mask));
            g.asm.jump(
                bpf::JEQ,
                u32::from(rule.value),
                Target::Next,
                Gen::to(next_rule),
            );
        }
        g.asm.stmt(bpf::LD | bpf::H | bpf::IND, 2);
        g.ports(ranges);
        g.asm.place(next_rule);
    }
    if pure_syn {
        g.asm.stmt(bpf::LD | bpf::B | bpf::IND, 13);
        let m = TcpFlags::SYN | TcpFlags::ACK | TcpFlags::RST | TcpFlags::FIN;
        g.asm.stmt(bpf::ALU | bpf::AND | bpf::K, u32::from(m));
        g.asm.jump(
            bpf::JEQ,
            u32::from(TcpFlags::SYN),
            Gen::to(pass),
            Gen::to(drop),
        );
    } else {
        g.asm.ja(Gen::to(drop));
    }

    // UDP, X = offset of the UDP header.
    g.asm.place(udp_l);
    if !udp.is_empty() {
        g.asm.stmt(bpf::LD | bpf::H | bpf::IND, 2);
        g.ports(udp);
    }
    g.asm.place(drop);
    g.asm.ret(0);
    g.asm.place(pass);
    g.asm.ret(PASS);
    g.asm.finish()
}

#[cfg(test)]
mod tests;
