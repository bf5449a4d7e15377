//! Host, daemon and user patterns: what each token means to libwrap (`host_match`,
//! `string_match`, `masked_match`, Debian's `cidr_mask_addr` and glob), and how it matches a
//! request's strings. Shared by the validator and the evaluator so they cannot disagree.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::syntax::split_token;

/// libwrap's `unknown`: the name of a client whose name could not be looked up.
pub(crate) const UNKNOWN: &[u8] = b"unknown";

/// Why a `net/mask` pattern never matches.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum NetMaskProblem {
    /// libwrap logs "bad net/mask pattern" (unparsable net or mask, `/0`, `/33`, ...).
    Bad,
    /// Valid, but the net has bits outside the mask: `addr & mask == net` never holds.
    HostBits,
    /// `[v6]/len` with a length `atoi` reads as outside 0..=128, or a net that is not IPv6.
    BadV6,
}

/// What a host pattern (client list entry after `user@`, or server after `daemon@`) is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// `@netgroup` (needs a known host name).
    Netgroup,
    /// `/path`: patterns read from a file at match time.
    File,
    /// `KNOWN` in a host position: name and address both known.
    Known,
    /// `LOCAL`: name without a dot.
    Local,
    /// `n.n.n.n/m.m.m.m` or `n.n.n.n/len`.
    NetMask4 { net: u32, mask: u32 },
    /// `[v6]/len`. The length is read with `atoi` (`/abc` is `/0`); both the client and the
    /// net are masked before comparing, so host bits in the net do not matter.
    NetMask6 { net: u128, len: u32 },
    /// A `/` pattern libwrap rejects or that can never match.
    BadNetMask(NetMaskProblem),
    /// Anything else: goes to `string_match` against the address, then (unless it is a
    /// dotted quad) against the name.
    String(StringPattern),
}

/// What `string_match` does with a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StringPattern {
    /// Contains `*` or `?`.
    Glob,
    /// `.domain`: suffix match.
    Suffix,
    All,
    /// `KNOWN` (string is not `unknown`).
    Known,
    /// Ends in `.`: prefix match (`10.`, `192.168.`).
    Prefix,
    /// `[v6]`, optionally with a `%scope`. libwrap parses it with the resolver, which
    /// accepts a numeric scope or an existing interface name and then compares the address
    /// alone; `scoped` marks a scope it cannot resolve (see [`parse_v6`]), which never matches.
    V6 {
        addr: Ipv6Addr,
        scoped: bool,
    },
    /// `[...]` that is not an IPv6 address (`[2001:db8::/32]`, `[10.0.0.1]`).
    BadV6,
    /// Exact, case-insensitive.
    Exact,
}

/// libwrap's `dot_quad_addr`: the string must hold exactly four runs of non-dot bytes (counted
/// over the whole string), then it goes to `inet_addr`. `inet_addr`'s error value is
/// INADDR_NONE, so libwrap cannot tell 255.255.255.255 from junk.
pub(crate) fn dot_quad(s: &[u8]) -> Option<u32> {
    let mut runs = 0;
    let mut in_run = false;
    for &b in s {
        if b == b'.' {
            in_run = false;
        } else if !in_run {
            in_run = true;
            runs += 1;
        }
    }
    if runs != 4 {
        return None;
    }
    inet_aton(s).filter(|&a| a != u32::MAX)
}

/// glibc's `inet_aton`: one to four parts, each read with `strtoul(.., 0)` (a `0x` prefix is
/// hex, a leading `0` octal) after a check that it starts with a digit; the text may end at a
/// NUL or at any `isspace` byte (blank, tab, CR, LF, VT, FF), after which anything goes. The
/// last part fills the remaining bytes (`10.1` is 10.0.0.1).
pub(crate) fn inet_aton(s: &[u8]) -> Option<u32> {
    let mut parts = [0u32; 3];
    let mut n = 0;
    let mut i = 0;
    let last = loop {
        if !s.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let (val, used) = strtoul0(&s[i..])?;
        i += used;
        if s.get(i) == Some(&b'.') {
            if n == 3 || val > 0xff {
                return None;
            }
            parts[n] = val as u32;
            n += 1;
            i += 1;
        } else {
            break val;
        }
    };
    if let Some(&c) = s.get(i) {
        if !crate::syntax::is_space(c) {
            return None;
        }
    }
    let max: u64 = [0xffff_ffff, 0x00ff_ffff, 0xffff, 0xff][n];
    if last > max {
        return None;
    }
    let mut addr = last as u32;
    for (k, &p) in parts[..n].iter().enumerate() {
        addr |= p << (24 - 8 * k);
    }
    Some(addr)
}

/// `strtoul(s, &end, 0)` on text that starts with a digit: the value and the bytes used;
/// None when it does not fit in 32 bits (inet_aton rejects those).
fn strtoul0(s: &[u8]) -> Option<(u64, usize)> {
    let (radix, mut i) = if s.len() > 2
        && s[0] == b'0'
        && (s[1] == b'x' || s[1] == b'X')
        && s[2].is_ascii_hexdigit()
    {
        (16, 2)
    } else if s[0] == b'0' {
        (8, 1)
    } else {
        (10, 0)
    };
    let mut v: u64 = 0;
    while let Some(d) = s.get(i).and_then(|&b| (b as char).to_digit(radix)) {
        v = (v * u64::from(radix) + u64::from(d)).min(1 << 40);
        i += 1;
    }
    (v <= 0xffff_ffff).then_some((v, i))
}

/// Plain dotted-decimal IPv4 (four parts 0-255, no leading zeros, no octal or hex): what an
/// operator means, and the form libwrap's string comparison needs.
pub(crate) fn plain_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut out = [0u8; 4];
    let mut part = 0;
    let mut i = 0;
    loop {
        let start = i;
        let mut v: u32 = 0;
        while i < s.len() && s[i].is_ascii_digit() && i - start < 3 {
            v = v * 10 + u32::from(s[i] - b'0');
            i += 1;
        }
        let len = i - start;
        if len == 0 || v > 255 || (len > 1 && s[start] == b'0') {
            return None;
        }
        out[part] = v as u8;
        part += 1;
        if part == 4 {
            return (i == s.len()).then(|| Ipv4Addr::from(out));
        }
        if s.get(i) != Some(&b'.') {
            return None;
        }
        i += 1;
    }
}

/// `atoi`: optional blanks, optional sign, leading digits; 0 when there are none.
pub(crate) fn atoi(s: &[u8]) -> i64 {
    let mut i = 0;
    while i < s.len() && crate::syntax::is_space(s[i]) {
        i += 1;
    }
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = (v * 10 + i64::from(s[i] - b'0')).min(1 << 40);
        i += 1;
    }
    if neg {
        -v
    } else {
        v
    }
}

/// An IPv6 address with an optional `%scope`; the flag is true when the scope is one the
/// resolver would not take. knockwrap does no I/O, so it knows only the interface every Linux
/// host has: a numeric scope and `lo` resolve (as tcpdmatch shows: `[fe80::1%lo]` and
/// `[fe80::1%1]` match client fe80::1), any other name is taken as absent.
fn parse_v6(s: &[u8]) -> Option<(Ipv6Addr, bool)> {
    let s = std::str::from_utf8(s).ok()?;
    let (addr, scoped) = match s.split_once('%') {
        Some((a, scope)) if !scope.is_empty() => (
            a,
            !(scope == "lo" || scope.bytes().all(|b| b.is_ascii_digit())),
        ),
        Some(_) => return None,
        None => (s, false),
    };
    Some((addr.parse().ok()?, scoped))
}

/// The IPv6 address in a client's text, as libwrap's resolver reads it: a scope it takes
/// (`fe80::1%lo`, as tcpdmatch is given it) is dropped.
pub(crate) fn client_v6(s: &[u8]) -> Option<Ipv6Addr> {
    match parse_v6(s) {
        Some((addr, false)) => Some(addr),
        _ => None,
    }
}

/// Classifies what `string_match` will do with `tok`.
pub(crate) fn string_pattern(tok: &[u8]) -> StringPattern {
    if tok.iter().any(|&b| b == b'*' || b == b'?') {
        StringPattern::Glob
    } else if tok.first() == Some(&b'.') {
        StringPattern::Suffix
    } else if tok.eq_ignore_ascii_case(b"ALL") {
        StringPattern::All
    } else if tok.eq_ignore_ascii_case(b"KNOWN") {
        StringPattern::Known
    } else if tok.last() == Some(&b'.') {
        StringPattern::Prefix
    } else if tok.len() >= 2 && tok[0] == b'[' && tok[tok.len() - 1] == b']' {
        match parse_v6(&tok[1..tok.len() - 1]) {
            Some((addr, scoped)) => StringPattern::V6 { addr, scoped },
            None => StringPattern::BadV6,
        }
    } else {
        StringPattern::Exact
    }
}

/// Classifies a host pattern the way `host_match` tries it.
pub(crate) fn host_pattern(tok: &[u8]) -> HostPattern {
    match tok.first() {
        Some(b'@') => return HostPattern::Netgroup,
        Some(b'/') => return HostPattern::File,
        _ => {}
    }
    if tok.eq_ignore_ascii_case(b"KNOWN") {
        return HostPattern::Known;
    }
    if tok.eq_ignore_ascii_case(b"LOCAL") {
        return HostPattern::Local;
    }
    if let Some(slash) = split_token(tok, b'/') {
        return net_mask(&tok[..slash], &tok[slash + 1..]);
    }
    HostPattern::String(string_pattern(tok))
}

fn net_mask(net: &[u8], mask: &[u8]) -> HostPattern {
    if net.first() == Some(&b'[') {
        if net.len() < 2 || net[net.len() - 1] != b']' {
            return HostPattern::BadNetMask(NetMaskProblem::BadV6);
        }
        let Some((addr, false)) = parse_v6(&net[1..net.len() - 1]) else {
            return HostPattern::BadNetMask(NetMaskProblem::BadV6);
        };
        let len = atoi(mask);
        if !(0..=128).contains(&len) {
            return HostPattern::BadNetMask(NetMaskProblem::BadV6);
        }
        let len = len as u32;
        let net = u128::from(addr) & v6_mask(len);
        return HostPattern::NetMask6 { net, len };
    }
    let Some(net) = dot_quad(net) else {
        return HostPattern::BadNetMask(NetMaskProblem::Bad);
    };
    let mask = match dot_quad(mask) {
        Some(m) => m,
        None => {
            // Debian's cidr_mask_addr: atoi, 1..=32.
            let bits = atoi(mask);
            if !(1..=32).contains(&bits) {
                return HostPattern::BadNetMask(NetMaskProblem::Bad);
            }
            u32::MAX << (32 - bits)
        }
    };
    if net & !mask != 0 {
        return HostPattern::BadNetMask(NetMaskProblem::HostBits);
    }
    HostPattern::NetMask4 { net, mask }
}

pub(crate) fn v6_mask(len: u32) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len.min(128))
    }
}

/// The glob Debian uses: `*` any run, `?` one byte, everything else compared without case
/// (checked against tcpdmatch). Iterative with one backtrack point, so it cannot recurse deep.
pub(crate) fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len()
            && (pat[p] == b'?' || (pat[p] != b'*' && pat[p].eq_ignore_ascii_case(&s[i])))
        {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&b| b == b'*')
}

/// `string_match(tok, string)`. `string` is an address (already un-mapped from
/// `::ffff:a.b.c.d` by the caller), a name, a daemon or a user.
pub(crate) fn string_match(tok: &[u8], kind: &StringPattern, string: &[u8]) -> bool {
    match kind {
        StringPattern::Glob => glob(tok, string),
        StringPattern::Suffix => {
            string.len() > tok.len() && string[string.len() - tok.len()..].eq_ignore_ascii_case(tok)
        }
        StringPattern::All => true,
        StringPattern::Known => !string.eq_ignore_ascii_case(UNKNOWN),
        StringPattern::Prefix => {
            string.len() >= tok.len() && string[..tok.len()].eq_ignore_ascii_case(tok)
        }
        StringPattern::V6 { addr, scoped } => !scoped && client_v6(string) == Some(*addr),
        StringPattern::BadV6 => false,
        StringPattern::Exact => tok.eq_ignore_ascii_case(string),
    }
}

/// A host as libwrap sees it: its address string and its name (`unknown` without DNS).
pub(crate) struct HostInfo<'a> {
    pub addr: &'a [u8],
    pub name: &'a [u8],
}

/// `host_match(tok, host)`.
pub(crate) fn host_match(tok: &[u8], pat: &HostPattern, host: &HostInfo<'_>) -> bool {
    match pat {
        HostPattern::Netgroup | HostPattern::File => false,
        HostPattern::Known => {
            !host.addr.eq_ignore_ascii_case(UNKNOWN) && !host.name.eq_ignore_ascii_case(UNKNOWN)
        }
        HostPattern::Local => {
            !host.name.contains(&b'.') && !host.name.eq_ignore_ascii_case(UNKNOWN)
        }
        // `masked_match` reads the client text with dot_quad_addr too (tcpdmatch keeps a
        // typed `010.0.0.1` as text, and 8.0.0.0/8 matches it).
        HostPattern::NetMask4 { net, mask } => {
            dot_quad(host.addr).is_some_and(|a| a & mask == *net)
        }
        HostPattern::NetMask6 { net, len } => {
            client_v6(host.addr).is_some_and(|a| u128::from(a) & v6_mask(*len) == *net)
        }
        HostPattern::BadNetMask(_) => false,
        HostPattern::String(sp) => {
            string_match(tok, sp, host.addr)
                || (dot_quad(tok).is_none() && string_match(tok, sp, host.name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(tok: &str, addr: &str) -> bool {
        let h = HostInfo {
            addr: addr.as_bytes(),
            name: UNKNOWN,
        };
        host_match(tok.as_bytes(), &host_pattern(tok.as_bytes()), &h)
    }

    #[test]
    fn dot_quad_forms() {
        assert_eq!(dot_quad(b"10.0.0.1"), Some(0x0a00_0001));
        assert_eq!(dot_quad(b"010.0.0.1"), Some(0x0800_0001));
        assert_eq!(dot_quad(b"0x0a.0.0.1"), Some(0x0a00_0001));
        assert_eq!(dot_quad(b"10.0.0"), None);
        assert_eq!(dot_quad(b"10.0.0.256"), None);
        assert_eq!(dot_quad(b"10.0.0.1."), None);
        assert_eq!(dot_quad(b"1..2.3"), None);
        assert_eq!(dot_quad(b"08.0.0.1"), None);
        assert_eq!(dot_quad(b"255.255.255.255"), None);
    }

    #[test]
    fn inet_addr_stops_at_any_isspace() {
        // glibc's inet_aton ends the address at a blank, and VT and FF are blanks to isspace:
        // libwrap then matches `10.0.0.0<VT>/8` as 10.0.0.0/8 (checked with tcpdmatch).
        assert_eq!(dot_quad(b"10.0.0.0\x0b"), Some(0x0a00_0000));
        assert_eq!(dot_quad(b"10.0.0.0\x0cjunk"), Some(0x0a00_0000));
        assert_eq!(dot_quad(b"10.0.0.0\x0bx"), Some(0x0a00_0000));
        // Four runs, but inet_aton stops after `25`: one part, the whole 32 bits.
        assert_eq!(dot_quad(b"25\x0b5.0.0.0"), Some(25));
        assert_eq!(dot_quad(b"\x0b10.0.0.0"), None);
        assert_eq!(inet_aton(b"10.1"), Some(0x0a00_0001));
        assert_eq!(inet_aton(b"167772161"), Some(0x0a00_0001));
        assert_eq!(inet_aton(b"0x0a.0.0.1"), Some(0x0a00_0001));
        assert_eq!(inet_aton(b"10.0.0.01"), Some(0x0a00_0001));
        assert_eq!(inet_aton(b"10.0.256"), Some(0x0a00_0100));
        assert_eq!(inet_aton(b"10.0.65536"), None);
        assert_eq!(inet_aton(b"0x"), None);
        assert!(hm("10.0.0.0\x0b/8", "10.0.0.1"));
        assert!(hm("10.0.0.0\x0bx/255.0.0.0", "10.0.0.1"));
        assert!(hm("10.0.0.0/255.0.0.0\x0b", "10.0.0.1"));
        assert!(hm("10.0.0.0/255.0.0.0\x0cjunk", "10.0.0.1"));
        assert!(hm("10.0.0.0/\x0b8", "10.0.0.1"));
        assert!(hm("10.0.0.0/8\x0b", "10.0.0.1"));
        assert!(hm("[::]/0\x0b", "2001:db8::1"));
        assert_eq!(
            host_pattern(b"10.0.0.0/\x0b255.0.0.0"),
            HostPattern::BadNetMask(NetMaskProblem::Bad)
        );
        assert_eq!(
            host_pattern(b"10.0.0.0/25\x0b5.0.0.0"),
            HostPattern::BadNetMask(NetMaskProblem::HostBits)
        );
    }

    #[test]
    fn net_masks() {
        assert!(hm("10.0.0.0/8", "10.1.2.3"));
        assert!(hm("10.0.0.0/255.0.0.0", "10.1.2.3"));
        assert!(!hm("10.0.0.0/8", "11.1.2.3"));
        assert_eq!(
            host_pattern(b"10.1.2.3/8"),
            HostPattern::BadNetMask(NetMaskProblem::HostBits)
        );
        assert!(!hm("10.1.2.3/8", "10.1.2.3"));
        for bad in [
            "10.0.0.0/0",
            "0.0.0.0/0",
            "10.0.0.0/33",
            "10.0.0/8",
            "10.0.0.0/x",
        ] {
            assert_eq!(
                host_pattern(bad.as_bytes()),
                HostPattern::BadNetMask(NetMaskProblem::Bad),
                "{bad}"
            );
        }
        assert!(hm("10.0.0.1/32", "10.0.0.1"));
        assert_eq!(
            host_pattern(b"10.0.0.1/255.255.255.255"),
            HostPattern::BadNetMask(NetMaskProblem::Bad)
        );
        assert!(hm("0.0.0.0/0.0.0.0", "192.0.2.1"));
        assert!(hm("010.0.0.0/8", "8.1.2.3"));
        assert!(hm("192.0.2.0/024", "192.0.2.9"));
        // Non-contiguous masks are accepted.
        assert!(hm("10.0.0.1/255.0.0.255", "10.9.9.1"));
        assert!(!hm("10.0.0.0/8", "2001:db8::1"));
    }

    #[test]
    fn v6_patterns() {
        assert!(hm("[2001:db8::1]", "2001:db8::1"));
        assert!(hm("[2001:DB8:0::1]", "2001:db8::1"));
        assert!(!hm("[2001:db8::1]", "10.0.0.1"));
        assert!(hm("[2001:db8::]/32", "2001:db8:1::5"));
        assert!(!hm("[2001:db8::]/32", "2001:db9::5"));
        assert!(!hm("[2001:db8::/32]", "2001:db8::"));
        assert!(!hm("[fe80::1%eth0]", "fe80::1"));
        // A scope the resolver takes is dropped before comparing (tcpdmatch grants these).
        assert!(hm("[fe80::1%lo]", "fe80::1"));
        assert!(hm("[fe80::1%1]", "fe80::1"));
        assert!(hm("[fe80::1%lo]/64", "fe80::2"));
        assert!(!hm("[fe80::1%]", "fe80::1"));
        assert!(!hm("[fe80::1%eth0]/64", "fe80::2"));
        // No host-bits check for IPv6; the length is read with atoi.
        assert!(hm("[2001:db8:0:1::5]/64", "2001:db8:0:1::6"));
        assert!(hm("[2001:db8:5::1]/0", "2001:db9::1"));
        assert!(hm("[2001:db8::]/abc", "2001:db9::1"));
        assert!(hm("[2001:db8::]/48abc", "2001:db8:0:ffff::1"));
        assert!(!hm("[2001:db8::]/48abc", "2001:db8:1::1"));
        assert!(hm("[2001:db8::]/064", "2001:db8::ffff"));
        assert!(!hm("[::]/0", "10.0.0.1"));
        for bad in ["[2001:db8::]/129", "[2001:db8::]/-1"] {
            assert_eq!(
                host_pattern(bad.as_bytes()),
                HostPattern::BadNetMask(NetMaskProblem::BadV6)
            );
        }
    }

    #[test]
    fn string_patterns() {
        assert!(hm("ALL", "10.0.0.1"));
        assert!(hm("all", "10.0.0.1"));
        assert!(hm("10.", "10.0.0.1"));
        assert!(hm("10.0.", "10.0.0.1"));
        assert!(!hm("10.0.0.1.", "10.0.0.1"));
        assert!(!hm("10.0.0.", "10.0.1.1"));
        assert!(hm("10.*", "10.0.0.1"));
        assert!(hm("192.168.1.?", "192.168.1.7"));
        assert!(!hm("192.168.1.?", "192.168.1.17"));
        assert!(hm("UNKNOWN", "10.0.0.1"));
        assert!(hm("unknown", "10.0.0.1"));
        assert!(!hm("KNOWN", "10.0.0.1"));
        assert!(!hm("LOCAL", "10.0.0.1"));
        assert!(!hm("PARANOID", "10.0.0.1"));
        assert!(!hm(".example.com", "10.0.0.1"));
        assert!(!hm("@admins", "10.0.0.1"));
        assert!(!hm("/etc/hosts.ok", "10.0.0.1"));
        assert!(hm("10.0.0.1", "10.0.0.1"));
        assert!(!hm("10.0.0.1;", "10.0.0.1"));
        assert!(!hm("10.0.0.10", "10.0.0.1"));
    }

    #[test]
    fn globs() {
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"aXbYbZc"));
        assert!(!glob(b"a*b", b"aXc"));
        assert!(glob(b"??", b"ab"));
        assert!(!glob(b"?", b""));
        assert!(glob(b"A*", b"abc"));
        assert!(glob(b"SSH?", b"sshd"));
    }

    #[test]
    fn plain_ipv4_is_strict() {
        assert_eq!(plain_ipv4(b"10.0.0.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(plain_ipv4(b"255.255.255.255"), Some(Ipv4Addr::BROADCAST));
        assert_eq!(plain_ipv4(b"0.0.0.0"), Some(Ipv4Addr::UNSPECIFIED));
        for bad in [
            &b"010.0.0.1"[..],
            b"10.0.0",
            b"10.0.0.1.",
            b"10.0.0.256",
            b"10.0.0.1000",
            b"1..2.3",
            b"a.b.c.d",
            b"10.0.0.1;",
            b"",
            b"+1.2.3.4",
        ] {
            assert_eq!(plain_ipv4(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi(b"8"), 8);
        assert_eq!(atoi(b"8abc"), 8);
        assert_eq!(atoi(b"abc"), 0);
        assert_eq!(atoi(b"-3"), -3);
        assert_eq!(atoi(b"99999999999999999999"), 1 << 40);
    }
}
