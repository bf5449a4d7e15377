//! Predicts libwrap's run-time verdict for one request over a hosts.allow and a hosts.deny,
//! as tcpdmatch does for a numeric client with no DNS: the client's name is `unknown`.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

use crate::lines::LineCounter;
use crate::options::{fields, outcome, Outcome, Problem};
use crate::pattern::{host_match, host_pattern, string_match, string_pattern, HostInfo, UNKNOWN};
use crate::scan::{logical, RawLine, Scanner, BUFLEN};
use crate::swar;
use crate::syntax::{is_except, shape, split_token, tokens, Shape, Tokens};

/// What the server would be asked: daemon (process) name, optional server address or name
/// (`daemon@server`), optional remote user (`user@client`, from ident), and the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub daemon: String,
    pub server: Option<String>,
    pub user: Option<String>,
    pub client: IpAddr,
    /// The client text patterns compare with, when it is not [`address_text`] of `client`:
    /// tcpdmatch keeps a numeric client as typed (`::a00:1`, `010.0.0.1`), while a real
    /// connection is seen as glibc writes the address. None: the run-time text.
    pub text: Option<String>,
}

/// Why a `match` request could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("daemon name is empty")]
    EmptyDaemon,
    #[error("server after `@` is empty in {0:?}")]
    EmptyServer(String),
    #[error("user before `@` is empty in {0:?}")]
    EmptyUser(String),
    #[error("client {0:?} is not a numeric IPv4 or IPv6 address")]
    BadClient(String),
    #[error(
        "client {0:?} has a scope (`%...`) knockwrap cannot resolve: it does no I/O and knows \
         only numeric scopes and `lo`; give the address without the scope or with its number"
    )]
    Scoped(String),
}

impl Request {
    /// A request for `daemon` from `client`, no server, no user.
    pub fn new(daemon: impl Into<String>, client: IpAddr) -> Request {
        Request {
            daemon: daemon.into(),
            server: None,
            user: None,
            client,
            text: None,
        }
    }

    /// Reads tcpdmatch's argument forms: `DAEMON[@SERVER]` and `[USER@]CLIENT_ADDR`, where the
    /// address may be IPv4, IPv6, or bracketed IPv6 (`[2001:db8::1]`).
    ///
    /// Every numeric spelling tcpdmatch takes is read as tcpdmatch reads it: the patterns see
    /// the text as typed (`::a00:1`, `0:0:0:0:0:ffff:10.0.0.1`, `010.0.0.1`, `10.0.0.01`),
    /// except that a leading `::ffff:` before a dotted quad is dropped, and a shorthand
    /// `inet_aton` form with fewer than four parts (`10.1`, `167772161`) is converted to
    /// `10.0.0.1`. A real connection is seen as [`address_text`] writes it; [`Decision`]'s
    /// reason says when the two differ. A scoped address is read with its scope dropped when
    /// the scope is numeric or `lo` (`fe80::1%lo`); any other scope is refused, as knockwrap
    /// cannot tell whether the interface exists.
    pub fn parse(daemon_arg: &str, client_arg: &str) -> Result<Request, RequestError> {
        let (daemon, server) = match daemon_arg.split_once('@') {
            Some((d, s)) => {
                if s.is_empty() {
                    return Err(RequestError::EmptyServer(daemon_arg.to_owned()));
                }
                (d, Some(s.to_owned()))
            }
            None => (daemon_arg, None),
        };
        if daemon.is_empty() {
            return Err(RequestError::EmptyDaemon);
        }
        let (user, addr) = match client_arg.rsplit_once('@') {
            Some((u, a)) => {
                if u.is_empty() {
                    return Err(RequestError::EmptyUser(client_arg.to_owned()));
                }
                (Some(u.to_owned()), a)
            }
            None => (None, client_arg),
        };
        let bare = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let (client, text) = match bare.parse::<IpAddr>() {
            Ok(ip) => {
                let low = bare.to_ascii_lowercase();
                let text = match low.strip_prefix("::ffff:") {
                    Some(v4) if v4.parse::<std::net::Ipv4Addr>().is_ok() => v4.to_owned(),
                    _ => bare.to_owned(),
                };
                (ip, text)
            }
            Err(_) if bare.contains('%') => match crate::pattern::client_v6(bare.as_bytes()) {
                Some(v6) => (IpAddr::V6(v6), bare.to_owned()),
                None => return Err(RequestError::Scoped(bare.to_owned())),
            },
            Err(_) => {
                let v4 = crate::pattern::inet_aton(bare.as_bytes())
                    .filter(|_| bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'))
                    .map(std::net::Ipv4Addr::from)
                    .ok_or_else(|| RequestError::BadClient(client_arg.to_owned()))?;
                // Four parts: tcpdmatch takes it as an address and keeps the text; fewer: it
                // goes through the resolver, which hands back the address.
                let text = match crate::pattern::dot_quad(bare.as_bytes()) {
                    Some(_) => bare.to_owned(),
                    None => v4.to_string(),
                };
                (IpAddr::V4(v4), text)
            }
        };
        if bare.len() != addr.len() && client.is_ipv4() {
            return Err(RequestError::BadClient(client_arg.to_owned()));
        }
        let text = (!text.eq_ignore_ascii_case(&address_text(client))).then_some(text);
        Ok(Request {
            daemon: daemon.to_owned(),
            server,
            user,
            client,
            text,
        })
    }
}

/// libwrap's answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Granted,
    Denied,
    /// A matching `twist` rule: the connection is handed to another command instead of the
    /// service (tcpdmatch reports it as its own outcome).
    Delegated,
}

impl Verdict {
    /// `"granted"`, `"denied"` or `"delegated"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Granted => "granted",
            Verdict::Denied => "denied",
            Verdict::Delegated => "delegated",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which file decided.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    Allow,
    Deny,
}

/// The verdict, where it came from and a one-line explanation.
///
/// `table`/`line` name the deciding rule. Both are `None` when no rule decided: access is then
/// granted by default, except when hosts.deny holds a newline-less chunk (last line without
/// newline, over-long line, CR-only file) before any match: Debian's libwrap then stops
/// reading it and denies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub table: Option<Table>,
    pub line: Option<usize>,
    pub reason: String,
}

/// libwrap's verdict for `request` given the two files' bytes (a missing file is empty).
///
/// hosts.allow is read first: a matching rule grants; else hosts.deny: a matching rule denies;
/// else access is granted. A matching rule's options can override that (`allow`, `deny`), hand
/// the connection elsewhere (`twist` → delegated), or fail, which denies (fail closed). A
/// newline-less chunk (last line without newline, over-long line, ...) makes Debian's libwrap
/// stop reading that file.
pub fn evaluate(allow: &[u8], deny: &[u8], request: &Request) -> Decision {
    let seen = address_text(request.client);
    let client_addr = request.text.clone().unwrap_or_else(|| seen.clone());
    let server_addr;
    let server = match &request.server {
        Some(s) => match s.parse::<IpAddr>() {
            Ok(ip) => {
                server_addr = address_text(ip);
                HostInfo {
                    addr: server_addr.as_bytes(),
                    name: UNKNOWN,
                }
            }
            Err(_) => HostInfo {
                addr: UNKNOWN,
                name: s.as_bytes(),
            },
        },
        None => HostInfo {
            addr: UNKNOWN,
            name: UNKNOWN,
        },
    };
    let ctx = Ctx {
        daemon: request.daemon.as_bytes(),
        user: request.user.as_deref().map_or(UNKNOWN, str::as_bytes),
        client: HostInfo {
            addr: client_addr.as_bytes(),
            name: UNKNOWN,
        },
        server,
    };
    let mut notes = String::new();
    if request.text.is_some() {
        notes.push_str(&format!(
            "; note: the client is compared as typed (`{client_addr}`), as tcpdmatch does, but a \
             real connection from this address is seen as `{seen}`, which some patterns match \
             differently"
        ));
    }
    for (table, bytes) in [(Table::Allow, allow), (Table::Deny, deny)] {
        match table_match(bytes, &ctx) {
            Scan::Matched {
                line,
                text,
                outcome,
            } => return decide(table, line, &text, outcome, notes),
            Scan::Stopped(line) => {
                let file = table.file_name();
                if table == Table::Deny {
                    // Debian's table_match returns an error, which hosts_access treats as a
                    // deny-table match: fail closed, with no rule to point at.
                    return Decision {
                        verdict: Verdict::Denied,
                        table: None,
                        line: None,
                        reason: format!(
                            "{file} line {line} has no newline (or is too long): Debian's libwrap \
                             stops reading {file} there and denies{notes}"
                        ),
                    };
                }
                notes.push_str(&format!(
                    "; {file} stopped being read at line {line} (missing newline or line too \
                     long), so none of its later rules count"
                ));
            }
            Scan::NoMatch => {}
        }
    }
    Decision {
        verdict: Verdict::Granted,
        table: None,
        line: None,
        reason: format!("no rule matched: granted by default{notes}"),
    }
}

impl Table {
    /// `hosts.allow` or `hosts.deny`.
    pub fn file_name(self) -> &'static str {
        match self {
            Table::Allow => "hosts.allow",
            Table::Deny => "hosts.deny",
        }
    }
}

fn decide(table: Table, line: usize, text: &str, outcome: Outcome, notes: String) -> Decision {
    let file = table.file_name();
    let (verdict, why) = match outcome {
        Outcome::TableVerdict => match table {
            Table::Allow => (Verdict::Granted, String::new()),
            Table::Deny => (Verdict::Denied, String::new()),
        },
        Outcome::Allow => (Verdict::Granted, " (option `allow`)".to_owned()),
        Outcome::Deny => (Verdict::Denied, " (option `deny`)".to_owned()),
        Outcome::Twist => (
            Verdict::Delegated,
            " (option `twist` hands the connection to a command)".to_owned(),
        ),
        Outcome::Failed(i, p) => (
            Verdict::Denied,
            format!(
                " (option field {} is invalid: {}; libwrap denies)",
                i + 1,
                problem_text(p)
            ),
        ),
    };
    Decision {
        verdict,
        table: Some(table),
        line: Some(line),
        reason: format!("{file} line {line} matched `{text}`: {verdict}{why}{notes}"),
    }
}

pub(crate) fn problem_text(p: Problem) -> &'static str {
    match p {
        Problem::MissingName => "missing option name",
        Problem::Unknown => "unknown option",
        Problem::NeedsValue => "option requires a value",
        Problem::TakesNoValue => "option takes no value",
        Problem::NotLast => "option must be the last one",
        Problem::BadValue => "bad option value",
    }
}

/// The address text libwrap's patterns see at run time: IPv4-mapped IPv6 as plain IPv4,
/// IPv6 as glibc's `inet_ntop` writes it (which differs from Rust's `Display`: an
/// IPv4-compatible address `::a00:1` is `::10.0.0.1`).
pub fn address_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => ntop6(v6),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// glibc's `inet_ntop(AF_INET6)`: lower-case hex without leading zeros, the first longest
/// run of two or more zero words written `::`, and the last 32 bits dotted when the first
/// six words are zero (IPv4-compatible) or five zeros and `ffff` (IPv4-mapped).
fn ntop6(a: std::net::Ipv6Addr) -> String {
    use std::fmt::Write as _;
    let w = a.segments();
    let mut best: Option<(usize, usize)> = None;
    let mut cur: Option<(usize, usize)> = None;
    for (i, &word) in w.iter().enumerate() {
        if word == 0 {
            let (base, len) = cur.map_or((i, 1), |(b, l)| (b, l + 1));
            cur = Some((base, len));
            if best.is_none_or(|(_, bl)| len > bl) {
                best = cur;
            }
        } else {
            cur = None;
        }
    }
    let best = best.filter(|&(_, len)| len >= 2);
    let mut out = String::with_capacity(40);
    for i in 0..8 {
        if let Some((base, len)) = best {
            if (base..base + len).contains(&i) {
                if i == base {
                    out.push(':');
                }
                continue;
            }
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6
            && best
                .is_some_and(|(base, len)| base == 0 && (len == 6 || (len == 5 && w[5] == 0xffff)))
        {
            let o = a.octets();
            let _ = write!(out, "{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
            return out;
        }
        let _ = write!(out, "{:x}", w[i]);
    }
    if best.is_some_and(|(base, len)| base + len == 8) {
        out.push(':');
    }
    out
}

struct Ctx<'a> {
    daemon: &'a [u8],
    user: &'a [u8],
    client: HostInfo<'a>,
    server: HostInfo<'a>,
}

#[derive(Debug, PartialEq, Eq)]
enum Scan {
    Matched {
        line: usize,
        text: String,
        outcome: Outcome,
    },
    /// Debian's libwrap stopped reading at this line.
    Stopped(usize),
    NoMatch,
}

fn table_match(src: &[u8], ctx: &Ctx<'_>) -> Scan {
    table_scan(src, ctx, true)
}

/// [`table_match`]; `fast`: lines of the common shape that do not match are passed over
/// without the scanner (off only to test that it changes nothing).
fn table_scan(src: &[u8], ctx: &Ctx<'_>, fast: bool) -> Scan {
    let mut scanner = Scanner::new(src);
    let mut raw = RawLine::default();
    let mut buf = Vec::new();
    let mut lines = LineCounter::default();
    loop {
        if fast {
            // A line `simple_rule_match` takes holds only printable bytes, blanks, tab and
            // CR, no backslash, and ends at its newline: the scanner would read it as one
            // plain line (`Scanner::consume` says why), so it can be passed over here.
            let mut pos = scanner.pos();
            let mut passed = 0;
            while let Some((false, end)) = simple_line_at(src, pos, ctx) {
                pos = end;
                passed += 1;
            }
            if passed > 0 {
                scanner.consume(pos - scanner.pos());
                lines.skip_newlines(passed, pos - 1);
            }
        }
        if !scanner.next_into(&mut raw) {
            break;
        }
        let line = lines.line();
        lines.skip(&raw);
        if raw.stops_reading() {
            return Scan::Stopped(line);
        }
        if !raw.terminated {
            // Nothing but NUL-truncated bytes before the end: a clean end of file.
            break;
        }
        let text = logical(src, &raw, &mut buf);
        if simple_rule_match(text, ctx) == Some(false) {
            continue;
        }
        if let Some(options) = rule_match(text, ctx) {
            let outcome = match options {
                Some(part) => outcome(&fields(text, part)),
                None => Outcome::TableVerdict,
            };
            let shown = String::from_utf8_lossy(text).trim_end().to_owned();
            return Scan::Matched {
                line,
                text: shown,
                outcome,
            };
        }
    }
    Scan::NoMatch
}

/// Does the rule on this logical line match? `Some(options part)` when it does; None when it
/// does not or the line is no rule.
fn rule_match(text: &[u8], ctx: &Ctx<'_>) -> Option<Option<Range<usize>>> {
    let Shape::Rule {
        daemons,
        clients,
        options,
    } = shape(text)
    else {
        return None;
    };
    let hit = list_match(&mut tokens(text, daemons), &|t| server_match(t, ctx))
        && list_match(&mut tokens(text, clients), &|t| client_match(t, ctx));
    hit.then_some(options)
}

/// The common line of a long hosts.allow, `daemon: a.b.c.d` (one plain daemon name, one
/// numeric client, no options), decided without tokenising: the same answer as
/// [`rule_match`] (tests below), found in one pass over the line. None: not such a line.
///
/// Why it is the same: the line's shape is `daemon : client` with one token in each list. A
/// daemon made of letters, digits, `_`, `-` and inner dots, that is not `ALL`, `KNOWN` or
/// `EXCEPT`, is an exact pattern (no `@`, glob, leading or trailing dot): it matches the
/// daemon name without case. A client of digits and inner dots is an exact pattern too (no
/// `/`, glob, keyword or trailing dot), and can equal the name `unknown` never: it matches
/// exactly the address text.
fn simple_rule_match(text: &[u8], ctx: &Ctx<'_>) -> Option<bool> {
    match simple_line_at(text, 0, ctx)? {
        (hit, end) if end == text.len() => Some(hit),
        _ => None,
    }
}

/// [`simple_rule_match`] on the physical line that starts at `src[start]`, without first
/// finding its end: `(matches, end)`, `end` just past its newline, which lies within libwrap's
/// buffer (`BUFLEN - 1` bytes from `start`, as [`Scanner::consume`] requires). One pass over
/// the bytes, so that a long run of such lines costs a few instructions a byte.
#[inline(always)]
fn simple_line_at(src: &[u8], start: usize, ctx: &Ctx<'_>) -> Option<(bool, usize)> {
    let limit = src.len().min(start + BUFLEN - 1);
    let line = &src[start..limit];
    // The length of the run of bytes of class `c` in `line` from `i`.
    let run = |mut i: usize, c: u8| {
        while i < line.len() && SIMPLE[usize::from(line[i])] & c != 0 {
            i += 1;
        }
        i
    };
    let d = run(0, DAEMON);
    let daemon = &line[..d];
    if line.get(d) != Some(&b':') || daemon.is_empty() || daemon[0] == b'.' || daemon[d - 1] == b'.'
    {
        return None;
    }
    let c0 = run(d + 1, INNER_BLANK);
    let c1 = client_end(line, c0);
    let client = &line[c0..c1];
    if client.is_empty() || client[0] == b'.' || client[client.len() - 1] == b'.' {
        return None;
    }
    // Then only blanks and CR to the newline that ends every terminated logical line.
    let nl = run(c1, INNER_BLANK | CR);
    if line.get(nl) != Some(&b'\n') {
        return None;
    }
    if matches!(d, 3 | 5 | 6)
        && (daemon.eq_ignore_ascii_case(b"ALL")
            || daemon.eq_ignore_ascii_case(b"KNOWN")
            || is_except(daemon))
    {
        return None;
    }
    let hit = client == ctx.client.addr && daemon.eq_ignore_ascii_case(ctx.daemon);
    Some((hit, start + nl + 1))
}

/// The end of the run of digits and dots in `line` from `i`, eight bytes at a time.
#[inline]
fn client_end(line: &[u8], mut i: usize) -> usize {
    while i + 8 <= line.len() {
        let other = swar::not_digit_or_dot(swar::word(line, i));
        if other != 0 {
            return i + (other.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < line.len() && SIMPLE[usize::from(line[i])] & CLIENT != 0 {
        i += 1;
    }
    i
}

/// Byte classes of [`simple_rule_match`].
const DAEMON: u8 = 1;
const CLIENT: u8 = 2;
const INNER_BLANK: u8 = 4;
const CR: u8 = 8;

static SIMPLE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' {
            t[b] |= DAEMON;
        }
        if c.is_ascii_digit() || c == b'.' {
            t[b] |= CLIENT;
        }
        if c == b' ' || c == b'\t' {
            t[b] |= INNER_BLANK;
        }
        if c == b'\r' {
            t[b] |= CR;
        }
        b += 1;
    }
    t
};

/// `list_match`: first matching pattern wins unless a (right-nested) EXCEPT list matches.
fn list_match(toks: &mut Tokens<'_>, f: &dyn Fn(&[u8]) -> bool) -> bool {
    let text = toks.text();
    while let Some(t) = toks.next() {
        let tok = &text[t];
        if is_except(tok) {
            return false;
        }
        if f(tok) {
            loop {
                match toks.next() {
                    None => return true,
                    Some(t) if is_except(&text[t.clone()]) => return !list_match(toks, f),
                    Some(_) => {}
                }
            }
        }
    }
    false
}

/// `server_match`: `daemon` or `daemon@host`, split at the first `@` after position 0.
fn server_match(tok: &[u8], ctx: &Ctx<'_>) -> bool {
    match split_token(&tok[1..], b'@') {
        None => string_match(tok, &string_pattern(tok), ctx.daemon),
        Some(at) => {
            let (d, host) = (&tok[..at + 1], &tok[at + 2..]);
            string_match(d, &string_pattern(d), ctx.daemon)
                && host_match(host, &host_pattern(host), &ctx.server)
        }
    }
}

/// `client_match`: `host` or `user@host`.
fn client_match(tok: &[u8], ctx: &Ctx<'_>) -> bool {
    match split_token(&tok[1..], b'@') {
        None => host_match(tok, &host_pattern(tok), &ctx.client),
        Some(at) => {
            let (u, host) = (&tok[..at + 1], &tok[at + 2..]);
            host_match(host, &host_pattern(host), &ctx.client)
                && string_match(u, &string_pattern(u), ctx.user)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// The matching context of a request for `daemon` from the client address text `addr`
    /// (user and server unknown), as the table scans see it.
    fn client_ctx<'a>(daemon: &'a str, addr: &'a str) -> Ctx<'a> {
        Ctx {
            daemon: daemon.as_bytes(),
            user: UNKNOWN,
            client: HostInfo {
                addr: addr.as_bytes(),
                name: UNKNOWN,
            },
            server: HostInfo {
                addr: UNKNOWN,
                name: UNKNOWN,
            },
        }
    }

    /// Lines near the simple shape: every way a daemon or client token could stop being an
    /// exact pattern, and every separator.
    fn near_simple_line() -> impl Strategy<Value = Vec<u8>> {
        let daemon = prop_oneof![
            Just("sshd"),
            Just("SSHD"),
            Just("sshD"),
            Just("in.telnetd"),
            Just("a-b_c"),
            Just("ALL"),
            Just("all"),
            Just("KNOWN"),
            Just("known"),
            Just("EXCEPT"),
            Just("except"),
            Just("LOCAL"),
            Just("PARANOID"),
            Just("UNKNOWN"),
            Just(".sshd"),
            Just("sshd."),
            Just("ss*d"),
            Just("ss?d"),
            Just("sshd@10.0.0.1"),
            Just("@sshd"),
            Just("#sshd"),
            Just("[sshd]"),
            Just("ftpd"),
            Just(""),
            Just("sshd,ftpd"),
            Just("sshd ftpd"),
            Just("ssh\\d"),
            Just("10.0.0.1"),
        ];
        let client = prop_oneof![
            Just("10.0.0.1"),
            Just("10.0.0.2"),
            Just("203.0.113.7"),
            Just("10."),
            Just(".1"),
            Just("10.0.0.0/8"),
            Just("010.0.0.1"),
            Just("10.0.0.01"),
            Just("10.1"),
            Just("167772161"),
            Just("255.255.255.255"),
            Just("1.2.3.4.5"),
            Just("10..0.1"),
            Just("10.0.0.1."),
            Just("ALL"),
            Just("UNKNOWN"),
            Just("unknown"),
            Just("KNOWN"),
            Just("10.*"),
            Just("[::1]"),
            Just("2001:db8::1"),
            Just("alice@10.0.0.1"),
            Just("10.0.0.1 EXCEPT 10.0.0.1"),
            Just("10.0.0.1,10.0.0.2"),
            Just(""),
            Just("0"),
            Just("::ffff:10.0.0.1"),
            Just("10.0.0.1: deny"),
            Just("10.0.0.1 : allow"),
        ];
        let sep = prop_oneof![
            Just(":"),
            Just(": "),
            Just(":\t"),
            Just(" : "),
            Just(":  "),
            Just("::"),
            Just(", :")
        ];
        let end = prop_oneof![
            Just("\n"),
            Just(" \n"),
            Just("\r\n"),
            Just("\t\r\n"),
            Just(" x\n"),
            Just(",\n"),
            Just("\x0b\n")
        ];
        (daemon, sep, client, end).prop_map(|(d, s, c, e)| format!("{d}{s}{c}{e}").into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn simple_rule_fast_path_agrees(
            line in near_simple_line(),
            daemon in prop_oneof![Just("sshd"), Just("SSHD"), Just("ftpd"), Just("in.telnetd"), Just("all")],
            client in prop_oneof![Just("10.0.0.1"), Just("203.0.113.7"), Just("::ffff:10.0.0.1"), Just("010.0.0.1"), Just("10.1"), Just("2001:db8::1"), Just("255.255.255.255")],
        ) {
            let r = Request::parse(daemon, client).unwrap();
            let seen = address_text(r.client);
            let addr = r.text.clone().unwrap_or(seen);
            let ctx = client_ctx(&r.daemon, &addr);
            if let Some(fast) = simple_rule_match(&line, &ctx) {
                prop_assert_eq!(fast, rule_match(&line, &ctx).is_some(), "{:?}", String::from_utf8_lossy(&line));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn passing_over_common_lines_changes_nothing(
            pieces in prop::collection::vec(prop_oneof![
                near_simple_line(),
                Just(b"\\\n".to_vec()), Just(b"\0".to_vec()), Just(b"x\0\n".to_vec()),
                Just(b"\r".to_vec()), Just(vec![b'x'; 1500]), Just(b"# c\n".to_vec()),
                prop::collection::vec(any::<u8>(), 0..6),
            ], 0..20),
            client in prop_oneof![Just("10.0.0.1"), Just("203.0.113.7"), Just("2001:db8::1")],
        ) {
            let src = pieces.concat();
            let r = Request::parse("sshd", client).unwrap();
            let addr = address_text(r.client);
            let ctx = client_ctx(&r.daemon, &addr);
            prop_assert_eq!(table_scan(&src, &ctx, true), table_scan(&src, &ctx, false));
        }
    }

    #[test]
    fn simple_rule_fast_path_takes_the_common_lines() {
        let r = Request::new("SSHD", "203.0.113.7".parse().unwrap());
        let addr = address_text(r.client);
        let ctx = client_ctx(&r.daemon, &addr);
        assert_eq!(simple_rule_match(b"sshd: 10.0.0.1\n", &ctx), Some(false));
        assert_eq!(
            simple_rule_match(b"SSHD: 203.0.113.7\r\n", &ctx),
            Some(true)
        );
        assert_eq!(
            simple_rule_match(b"in.sshd:\t203.0.113.7 \n", &ctx),
            Some(false)
        );
        for slow in [
            &b"ALL: 203.0.113.7\n"[..],
            b"sshd: 203.0.113.\n",
            b"sshd: 10.0.0.1: deny\n",
            b"sshd, ftpd: 10.0.0.1\n",
        ] {
            assert_eq!(
                simple_rule_match(slow, &ctx),
                None,
                "{:?}",
                String::from_utf8_lossy(slow)
            );
        }
    }

    /// A common line is passed over only when libwrap's buffer holds it whole: a newline
    /// one byte past `BUFLEN - 1` splits it there, and the scanner must read it.
    #[test]
    fn a_common_line_at_the_buffer_edge_is_read_as_the_scanner_reads_it() {
        let r = Request::new("sshd", "10.0.0.1".parse().unwrap());
        let addr = address_text(r.client);
        let ctx = client_ctx(&r.daemon, &addr);
        for len in BUFLEN - 3..=BUFLEN + 1 {
            // `ddd…d: 10.0.0.2\n`, `len` bytes with its newline, then a line that matches.
            let tail = b": 10.0.0.2\n";
            let mut src = vec![b'd'; len - tail.len()];
            src.extend_from_slice(tail);
            let whole = len < BUFLEN;
            assert_eq!(simple_line_at(&src, 0, &ctx).is_some(), whole, "{len}");
            src.extend_from_slice(b"sshd: 10.0.0.1\n");
            assert_eq!(
                table_scan(&src, &ctx, true),
                table_scan(&src, &ctx, false),
                "{len}"
            );
        }
    }

    #[test]
    fn request_parse_forms() {
        let r = Request::parse("sshd", "192.0.2.1").unwrap();
        assert_eq!(r, Request::new("sshd", "192.0.2.1".parse().unwrap()));
        let r = Request::parse("sshd@10.0.0.1", "alice@[2001:db8::1]").unwrap();
        assert_eq!(r.server.as_deref(), Some("10.0.0.1"));
        assert_eq!(r.user.as_deref(), Some("alice"));
        assert_eq!(r.client, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert!(Request::parse("sshd", "2001:db8::1").is_ok());
        assert_eq!(
            Request::parse("sshd", "host.example"),
            Err(RequestError::BadClient("host.example".into()))
        );
        assert_eq!(
            Request::parse("sshd", "[192.0.2.1]"),
            Err(RequestError::BadClient("[192.0.2.1]".into()))
        );
        assert_eq!(
            Request::parse("", "192.0.2.1"),
            Err(RequestError::EmptyDaemon)
        );
        assert!(Request::parse("sshd@", "192.0.2.1").is_err());
        assert!(Request::parse("sshd", "@192.0.2.1").is_err());
    }

    #[test]
    fn addresses_as_glibc_writes_them() {
        let t = |s: &str| address_text(s.parse().unwrap());
        assert_eq!(t("::a00:1"), "::10.0.0.1");
        assert_eq!(t("::a00:0"), "::10.0.0.0");
        assert_eq!(t("::1:0"), "::0.1.0.0");
        assert_eq!(t("::102"), "::102");
        assert_eq!(t("::1"), "::1");
        assert_eq!(t("::"), "::");
        assert_eq!(t("::ffff:a00:1"), "10.0.0.1");
        assert_eq!(t("::ffff:0:a00:1"), "::ffff:0:a00:1");
        assert_eq!(t("2001:db8::1"), "2001:db8::1");
        assert_eq!(t("2001:DB8:0:0:1::"), "2001:db8:0:0:1::");
        assert_eq!(t("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
        assert_eq!(t("1:0:0:2:0:0:3:4"), "1::2:0:0:3:4");
        assert_eq!(t("1:2:3:4:5:6:0:8"), "1:2:3:4:5:6:0:8");
        assert_eq!(t("10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn ipv4_compatible_client_is_seen_dotted() {
        // libwrap sees `::10.0.0.1` (glibc), so a glob on the dotted text matches.
        let deny = "ALL: ALL\n";
        assert_eq!(
            ev("sshd: *10.0.0.1\n", deny, "sshd", "::10.0.0.1").0,
            Granted
        );
        assert_eq!(ev("sshd: *.0.1\n", deny, "sshd", "::10.0.0.1").0, Granted);
        assert_eq!(
            ev("sshd: [::a00:1]\n", deny, "sshd", "::10.0.0.1").0,
            Granted
        );
        assert_eq!(
            ev("sshd: 10.0.0.0/8\n", deny, "sshd", "::10.0.0.1").0,
            Denied
        );
    }

    #[test]
    fn client_spellings_as_tcpdmatch_reads_them() {
        // Each row: typed client, then the patterns tcpdmatch matched it with (out of the
        // rules below), measured with tcpd 7.6.q-32.
        let rules = [
            "*10.0.0.1",
            "*a00:1",
            "[::a00:1]",
            "10.0.0.0/8",
            "10.",
            "[::]/96",
            "*ffff*",
            "10.0.0.1",
            "8.0.0.1",
            "[::ffff:10.0.0.1]",
            "010.0.0.1",
            "8.0.0.0/8",
            "[::ffff:0:0]/96",
        ];
        let rows: [(&str, &[&str]); 12] = [
            ("::10.0.0.1", &["*10.0.0.1", "[::a00:1]", "[::]/96"]),
            ("::a00:1", &["[::a00:1]", "[::]/96"]),
            (
                "::ffff:10.0.0.1",
                &["*10.0.0.1", "10.0.0.0/8", "10.", "10.0.0.1"],
            ),
            (
                "::FFFF:10.0.0.1",
                &["*10.0.0.1", "10.0.0.0/8", "10.", "10.0.0.1"],
            ),
            (
                "::ffff:a00:1",
                &["*ffff*", "[::ffff:10.0.0.1]", "[::ffff:0:0]/96"],
            ),
            (
                "0:0:0:0:0:ffff:10.0.0.1",
                &[
                    "*10.0.0.1",
                    "*ffff*",
                    "[::ffff:10.0.0.1]",
                    "[::ffff:0:0]/96",
                ],
            ),
            ("010.0.0.1", &["*10.0.0.1", "010.0.0.1", "8.0.0.0/8"]),
            ("10.0.0.01", &["10.0.0.0/8", "10."]),
            ("0x0a.0.0.1", &["10.0.0.0/8"]),
            ("10.1", &["*10.0.0.1", "10.0.0.0/8", "10.", "10.0.0.1"]),
            ("167772161", &["*10.0.0.1", "10.0.0.0/8", "10.", "10.0.0.1"]),
            ("10.0.0.1", &["*10.0.0.1", "10.0.0.0/8", "10.", "10.0.0.1"]),
        ];
        for (client, want) in rows {
            for rule in rules {
                let allow = format!("sshd: {rule}\n");
                let got = ev(&allow, "ALL: ALL\n", "sshd", client).0 == Granted;
                assert_eq!(got, want.contains(&rule), "{client} against {rule}");
            }
        }
        let r = Request::parse("sshd", "::a00:1").unwrap();
        assert_eq!(r.text.as_deref(), Some("::a00:1"));
        let d = evaluate(b"", b"", &r);
        assert!(d.reason.contains("seen as `::10.0.0.1`"), "{}", d.reason);
        assert_eq!(Request::parse("sshd", "::10.0.0.1").unwrap().text, None);
        assert_eq!(Request::parse("sshd", "2001:DB8::1").unwrap().text, None);
        assert_eq!(
            Request::parse("sshd", "::ffff:10.0.0.1").unwrap().text,
            None
        );
        // Scoped: the scope is dropped for IPv6 patterns, kept for text (tcpdmatch grants
        // both `[fe80::1]` and `*%*`).
        let deny = "ALL: ALL\n";
        assert_eq!(
            ev("sshd: [fe80::1]\n", deny, "sshd", "fe80::1%lo").0,
            Granted
        );
        assert_eq!(
            ev("sshd: [fe80::]/16\n", deny, "sshd", "fe80::1%1").0,
            Granted
        );
        assert_eq!(ev("sshd: *%*\n", deny, "sshd", "fe80::1%lo").0, Granted);
        assert_eq!(
            ev("sshd: [fe80::2]\n", deny, "sshd", "fe80::1%lo").0,
            Denied
        );
        assert_eq!(
            Request::parse("sshd", "fe80::1%eth7"),
            Err(RequestError::Scoped("fe80::1%eth7".into()))
        );
        assert_eq!(
            Request::parse("sshd", "10.0.0.1.2"),
            Err(RequestError::BadClient("10.0.0.1.2".into()))
        );
    }

    fn ev(
        allow: &str,
        deny: &str,
        daemon: &str,
        client: &str,
    ) -> (Verdict, Option<Table>, Option<usize>) {
        let d = evaluate(
            allow.as_bytes(),
            deny.as_bytes(),
            &Request::parse(daemon, client).unwrap(),
        );
        (d.verdict, d.table, d.line)
    }

    use Table::{Allow, Deny};
    use Verdict::{Delegated, Denied, Granted};

    #[test]
    fn tables_in_order() {
        assert_eq!(ev("", "", "sshd", "10.0.0.1"), (Granted, None, None));
        assert_eq!(
            ev("", "ALL: ALL\n", "sshd", "10.0.0.1"),
            (Denied, Some(Deny), Some(1))
        );
        assert_eq!(
            ev("# c\nsshd: 10.0.0.1\n", "ALL: ALL\n", "sshd", "10.0.0.1"),
            (Granted, Some(Allow), Some(2))
        );
        assert_eq!(
            ev("sshd: 10.0.0.1\n", "ALL: ALL\n", "sshd", "10.0.0.2"),
            (Denied, Some(Deny), Some(1))
        );
        assert_eq!(
            ev("SSHD: 10.0.0.1\n", "ALL: ALL\n", "sshd", "10.0.0.1").0,
            Granted,
            "daemon names are case-insensitive"
        );
    }

    #[test]
    fn except_is_right_nested() {
        let a = "ALL: 10. EXCEPT 10.0.0. EXCEPT 10.0.0.1\n";
        assert_eq!(ev(a, "ALL: ALL\n", "sshd", "10.1.1.1").0, Granted);
        assert_eq!(ev(a, "ALL: ALL\n", "sshd", "10.0.0.2").0, Denied);
        assert_eq!(ev(a, "ALL: ALL\n", "sshd", "10.0.0.1").0, Granted);
        let a = "ALL except sshd: ALL\n";
        assert_eq!(ev(a, "ALL: ALL\n", "sshd", "10.0.0.1").0, Denied);
        assert_eq!(ev(a, "ALL: ALL\n", "ftpd", "10.0.0.1").0, Granted);
        assert_eq!(
            ev("sshd: EXCEPT 10.0.0.1\n", "ALL: ALL\n", "sshd", "10.0.0.2").0,
            Denied
        );
        assert_eq!(ev("sshd:\n", "ALL: ALL\n", "sshd", "10.0.0.2").0, Denied);
    }

    #[test]
    fn numeric_client_without_dns() {
        let deny = "ALL: ALL\n";
        assert_eq!(ev("sshd: UNKNOWN\n", deny, "sshd", "10.0.0.1").0, Granted);
        assert_eq!(ev("sshd: KNOWN\n", deny, "sshd", "10.0.0.1").0, Denied);
        assert_eq!(ev("sshd: PARANOID\n", deny, "sshd", "10.0.0.1").0, Denied);
        assert_eq!(ev("sshd: LOCAL\n", deny, "sshd", "10.0.0.1").0, Denied);
        assert_eq!(
            ev("sshd: .example.com\n", deny, "sshd", "10.0.0.1").0,
            Denied
        );
        assert_eq!(
            ev("sshd: [2001:db8::]/32\n", deny, "sshd", "2001:db8::7").0,
            Granted
        );
        assert_eq!(
            ev("sshd: [2001:db8::7]\n", deny, "sshd", "2001:DB8::7").0,
            Granted
        );
        assert_eq!(
            ev("sshd: 10.0.0.0/8\n", deny, "sshd", "::ffff:10.1.2.3").0,
            Granted
        );
        assert_eq!(
            ev("sshd: 10.1.\n", deny, "sshd", "::ffff:10.1.2.3").0,
            Granted
        );
    }

    #[test]
    fn user_and_server_parts() {
        let deny = "ALL: ALL\n";
        assert_eq!(
            ev("sshd: alice@10.0.0.1\n", deny, "sshd", "alice@10.0.0.1").0,
            Granted
        );
        assert_eq!(
            ev("sshd: alice@10.0.0.1\n", deny, "sshd", "bob@10.0.0.1").0,
            Denied
        );
        assert_eq!(
            ev("sshd: alice@10.0.0.1\n", deny, "sshd", "10.0.0.1").0,
            Denied
        );
        assert_eq!(
            ev("sshd: KNOWN@10.0.0.1\n", deny, "sshd", "bob@10.0.0.1").0,
            Granted
        );
        assert_eq!(
            ev("sshd@192.0.2.1: ALL\n", deny, "sshd@192.0.2.1", "10.0.0.1").0,
            Granted
        );
        assert_eq!(
            ev("sshd@192.0.2.1: ALL\n", deny, "sshd@192.0.2.2", "10.0.0.1").0,
            Denied
        );
        assert_eq!(
            ev("sshd@192.0.2.1: ALL\n", deny, "sshd", "10.0.0.1").0,
            Denied
        );
    }

    #[test]
    fn options_decide() {
        let n = "";
        assert_eq!(
            ev(n, "ALL: 10.0.0.1: allow\n", "sshd", "10.0.0.1").0,
            Granted
        );
        assert_eq!(ev("ALL: 10.0.0.1: deny\n", n, "sshd", "10.0.0.1").0, Denied);
        assert_eq!(
            ev("ALL: 10.0.0.1: twist /bin/echo no\n", n, "sshd", "10.0.0.1"),
            (Delegated, Some(Allow), Some(1))
        );
        // Option errors deny even in hosts.allow.
        assert_eq!(
            ev("ALL: 10.0.0.1: bogus\n", n, "sshd", "10.0.0.1").0,
            Denied
        );
        assert_eq!(
            ev("ALL: 10.0.0.1: twist x : allow\n", n, "sshd", "10.0.0.1").0,
            Denied
        );
        assert_eq!(ev("ALL: 10.0.0.1:\n", n, "sshd", "10.0.0.1").0, Denied);
        assert_eq!(
            ev("ALL: 10.0.0.1: spawn echo a\\:b\n", n, "sshd", "10.0.0.1").0,
            Granted
        );
    }

    #[test]
    fn syntax_problems_fail_open_to_next_rule() {
        let deny = "ALL: ALL\n";
        assert_eq!(
            ev("sshd 10.0.0.1\nsshd: 10.0.0.1\n", deny, "sshd", "10.0.0.1"),
            (Granted, Some(Allow), Some(2))
        );
        assert_eq!(ev("sshd: 10.1.2.3/8\n", deny, "sshd", "10.1.2.3").0, Denied);
        assert_eq!(ev("sshd: 0.0.0.0/0\n", deny, "sshd", "10.1.2.3").0, Denied);
    }

    #[test]
    fn comments_and_continuations() {
        let deny = "ALL: ALL\n";
        // An indented `#` is no comment: the daemon list is `# sshd`, which names sshd.
        assert_eq!(
            ev("  # sshd: 10.0.0.1\n", deny, "sshd", "10.0.0.1").0,
            Granted
        );
        assert_eq!(
            ev(
                "sshd: 10.0.0.9 # office 10.0.0.1\n",
                deny,
                "sshd",
                "10.0.0.1"
            )
            .0,
            Granted
        );
        assert_eq!(
            ev("# x \\\nsshd: 10.0.0.1\n", deny, "sshd", "10.0.0.1").0,
            Denied
        );
        assert_eq!(
            ev("sshd: 10.0.0.9 \\\n# 10.0.0.1\n", deny, "sshd", "10.0.0.1"),
            (Granted, Some(Allow), Some(1))
        );
        assert_eq!(
            ev("sshd: 10.0.0.1\r\n", deny, "sshd", "10.0.0.1").0,
            Granted
        );
    }

    #[test]
    fn newline_less_chunk_stops_the_file() {
        let deny = "ALL: ALL\n";
        assert_eq!(ev("sshd: 10.0.0.1", deny, "sshd", "10.0.0.1").0, Denied);
        let long = format!("sshd: {}\nsshd: 10.0.0.1\n", "x".repeat(2100));
        assert_eq!(ev(&long, deny, "sshd", "10.0.0.1").0, Denied);
        assert_eq!(
            ev("sshd: 10.0.0.1\rsshd: 10.0.0.2\r", deny, "sshd", "10.0.0.1").0,
            Denied
        );
        // Rules before the chunk still work.
        assert_eq!(
            ev("sshd: 10.0.0.1\nfoo", deny, "sshd", "10.0.0.1").0,
            Granted
        );
        // In hosts.deny, stopping is an error libwrap treats as a match: denied, no rule.
        assert_eq!(
            ev("", "sshd: 10.0.0.2\nALL: ALL", "sshd", "10.0.0.1"),
            (Denied, None, None)
        );
        // A match before the chunk still names its rule.
        assert_eq!(
            ev("", "sshd: 10.0.0.1\nALL: ALL", "sshd", "10.0.0.1"),
            (Denied, Some(Deny), Some(1))
        );
        // A last line that is only NUL and newline (or a lone NUL) is a clean end of file.
        assert_eq!(
            ev("", "sshd: 10.0.0.2\n\0\n", "sshd", "10.0.0.1"),
            (Granted, None, None)
        );
        assert_eq!(ev("", "\0", "sshd", "10.0.0.1"), (Granted, None, None));
        // Granted by hosts.allow before hosts.deny is read.
        assert_eq!(ev("sshd: 10.0.0.1\n", "x", "sshd", "10.0.0.1").0, Granted);
    }
}
