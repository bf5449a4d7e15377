//! The validator: one pass over the bytes, reporting with stable kebab-case codes what
//! libwrap rejects or silently skips (errors) and the traps it accepts (warnings).
//! docs/hosts_access.md lists every code.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv6Addr;
use std::ops::Range;

use crate::diagnostic::{Diagnostic, Severity};
use crate::lines::LineCounter;
use crate::options::{fields, Problem};
use crate::pattern::{
    dot_quad, host_pattern, plain_ipv4, HostPattern, NetMaskProblem, StringPattern,
};
use crate::scan::{logical, to_source, RawLine, Scanner, BUFLEN};
use crate::syntax::{is_except, is_list_sep, shape, split_token, tokens, Shape};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Every problem libwrap would have with `bytes`, sorted by position.
pub fn validate(bytes: &[u8]) -> Vec<Diagnostic> {
    let mut v = Validator {
        src: bytes,
        // Reserved, not touched: pages are only faulted in when diagnostics are written, and
        // a file full of findings does not pay for repeated growth.
        out: Vec::with_capacity(bytes.len() / 64),
        counter: LineCounter::default(),
        // About one rule per 32 bytes in real files: avoids rehashing while growing.
        seen: HashMap::with_capacity_and_hasher(bytes.len() / 32, Default::default()),
        cover: Cover::default(),
    };
    v.run();
    let mut out = v.out;
    // Mostly in order already (a line's checks run in a fixed order, not by column).
    if !out.is_sorted_by_key(|d| (d.line, d.column)) {
        out.sort_by_key(|d| (d.line, d.column));
    }
    out
}

/// Which list of a rule is being checked (for clients: where an unbracketed IPv6 address
/// starts, already reported as such).
#[derive(Copy, Clone)]
enum List {
    Daemons,
    Clients(Option<usize>),
}

/// Daemons already answered for every client by an earlier `... : ALL` rule.
#[derive(Default)]
struct Cover {
    /// Line of the earliest rule covering all daemons.
    all: Option<usize>,
    /// Lower-cased daemon name → line of the rule covering it.
    names: HashMap<Vec<u8>, usize>,
}

struct Validator<'s> {
    src: &'s [u8],
    out: Vec<Diagnostic>,
    counter: LineCounter,
    /// Hash of a rule's text (trailing blanks removed) → that text and the line where it first
    /// appeared. Keyed by a precomputed hash so a lookup touches only the table, not the text.
    seen: HashMap<u64, (Cow<'s, [u8]>, usize), BuildHasherDefault<IdHasher>>,
    cover: Cover,
}

impl Validator<'_> {
    fn push(
        &mut self,
        raw: &RawLine,
        logical_off: usize,
        sev: Severity,
        code: &'static str,
        msg: String,
    ) {
        let off = to_source(raw, logical_off);
        self.push_src(off, sev, code, msg);
    }

    fn push_src(
        &mut self,
        src_off: usize,
        severity: Severity,
        code: &'static str,
        message: String,
    ) {
        let (line, column) = self.counter.locate(self.src, src_off);
        self.out.push(Diagnostic {
            line,
            column,
            severity,
            code,
            message,
        });
    }

    fn run(&mut self) {
        let src = self.src;
        if src.starts_with(BOM) {
            self.push_src(
                0,
                Severity::Warning,
                "utf8-bom",
                "the file starts with a UTF-8 byte order mark: libwrap reads it as part of the \
                 first line (the first daemon name no longer matches, a first-line comment is no \
                 comment)"
                    .into(),
            );
        }
        let mut scanner = Scanner::new(src);
        let mut raw = RawLine::default();
        let mut buf = Vec::new();
        while scanner.next_into(&mut raw) {
            let line = self.counter.line();
            let text = logical(src, &raw, &mut buf);
            self.line(&raw, line, text);
            self.counter.skip(&raw);
        }
    }

    fn line(&mut self, raw: &RawLine, line: usize, text: &[u8]) {
        if let Some(nul) = raw.nul {
            self.push_src(
                nul,
                Severity::Error,
                "nul-byte",
                "NUL byte: libwrap drops the rest of this physical line and glues the next line \
                 onto what came before the NUL"
                    .into(),
            );
        }
        if raw.overlong {
            // Point where the buffer fills: with continuations that can be a later line.
            let cut = raw.segs.last().map_or(raw.span.start, |s| s.end);
            self.push_src(
                cut,
                Severity::Error,
                "line-too-long",
                format!(
                    "logical line is longer than {} bytes (newline included, continuations \
                     joined): Debian's libwrap stops reading the file here, so this rule and every \
                     later one are ignored",
                    BUFLEN - 1
                ),
            );
            return;
        }
        if raw.stops_reading() {
            let at = raw.segs.last().map_or(raw.span.end, |s| s.end);
            let cr = if text.contains(&b'\r') {
                " (the file seems to use CR-only line endings: libwrap needs LF)"
            } else {
                ""
            };
            self.push_src(
                at.min(self.src.len()),
                Severity::Error,
                "missing-final-newline",
                format!(
                    "no newline at the end of this line{cr}: Debian's libwrap ignores it and stops \
                     reading the file"
                ),
            );
        }
        if raw.control.is_some() {
            if let Some(at) = harmful_control(text) {
                self.push(
                    raw,
                    at,
                    Severity::Error,
                    "control-byte",
                    format!(
                        "control byte 0x{:02x}: it is part of a pattern that then never matches",
                        text[at]
                    ),
                );
            }
        }
        if text.ends_with(b"\\\r\n") {
            self.push(
                raw,
                text.len() - 3,
                Severity::Warning,
                "crlf-continuation",
                "`\\` before a CR-LF line end does not continue the line: the next line is a \
                 rule of its own and the `\\` is a pattern"
                    .into(),
            );
        }
        match shape(text) {
            Shape::Blank => {}
            Shape::Comment => {
                if raw.segs.len() > 1 || self.src[raw.span.clone()].ends_with(b"\\\n") {
                    self.push(
                        raw,
                        0,
                        Severity::Warning,
                        "comment-continuation",
                        "this comment ends in `\\`: the next line is joined to it and is part of \
                         the comment"
                            .into(),
                    );
                }
            }
            Shape::MissingColon => {
                let first = text.iter().position(|&b| !is_list_sep(b)).unwrap_or(0);
                self.push(
                    raw,
                    first,
                    Severity::Error,
                    "missing-colon",
                    "no `:` between daemon list and client list (outside `[...]`): libwrap skips \
                     this line"
                        .into(),
                );
            }
            Shape::Rule {
                daemons,
                clients,
                options,
            } => self.rule(raw, line, text, daemons, clients, options),
        }
    }

    fn rule(
        &mut self,
        raw: &RawLine,
        line: usize,
        text: &[u8],
        daemons: Range<usize>,
        clients: Range<usize>,
        options: Option<Range<usize>>,
    ) {
        let first = text.iter().position(|&b| !is_list_sep(b)).unwrap_or(0);
        let mut hash_warned = false;
        if text[first] == b'#' {
            hash_warned = true;
            self.push(
                raw,
                first,
                Severity::Warning,
                "indented-comment",
                "`#` starts a comment only in column 1: this indented line is a rule, and `#...` \
                 is its first daemon pattern"
                    .into(),
            );
        }
        let v6 = options
            .as_ref()
            .and_then(|o| unbracketed_v6(text, clients.clone(), o.clone()));
        // Daemon list.
        let n = self.list(raw, text, daemons.clone(), List::Daemons, &mut hash_warned);
        if n == 0 {
            self.push(
                raw,
                daemons.end,
                Severity::Error,
                "empty-daemon-list",
                "the daemon list is empty: this rule never matches".into(),
            );
        }
        // Client list.
        let n = self.list(
            raw,
            text,
            clients.clone(),
            List::Clients(v6),
            &mut hash_warned,
        );
        if let Some(start) = v6 {
            self.push(
                raw,
                start,
                Severity::Error,
                "unbracketed-ipv6",
                "IPv6 address without brackets: its colons split the rule into fields (the rest \
                 becomes options, which deny on match); write `[2001:db8::1]` or `[2001:db8::]/32`"
                    .into(),
            );
        } else if n == 0 {
            self.push(
                raw,
                clients.start,
                Severity::Error,
                "empty-client-list",
                "the client list is empty: this rule never matches".into(),
            );
        }
        if let (Some(opts), None) = (options, v6) {
            self.options(raw, text, opts);
        }
        self.duplicates_and_shadowing(raw, line, text, daemons, clients);
    }

    /// One pass over a list: EXCEPT structure, `#` tokens, and each pattern's own checks.
    /// Returns the number of tokens.
    fn list(
        &mut self,
        raw: &RawLine,
        text: &[u8],
        field: Range<usize>,
        which: List,
        hash_warned: &mut bool,
    ) -> usize {
        let what = match which {
            List::Daemons => "daemon",
            List::Clients(_) => "client",
        };
        let mut count = 0;
        let mut patterns_in_sublist = 0;
        let mut last_except = None;
        for t in tokens(text, field) {
            count += 1;
            let tok = &text[t.clone()];
            if is_except(tok) {
                if patterns_in_sublist == 0 {
                    self.push(
                        raw,
                        t.start,
                        Severity::Error,
                        "except-without-pattern",
                        format!(
                            "EXCEPT with no {what} pattern before it: that part of the list \
                             never matches"
                        ),
                    );
                }
                patterns_in_sublist = 0;
                last_except = Some(t.start);
                continue;
            }
            patterns_in_sublist += 1;
            last_except = None;
            if tok[0] == b'#' {
                if !*hash_warned {
                    *hash_warned = true;
                    self.push(
                        raw,
                        t.start,
                        Severity::Warning,
                        "mid-line-comment",
                        "`#` starts a comment only in column 1: here it and every word after it \
                         are patterns that still match"
                            .into(),
                    );
                }
                continue;
            }
            // `name@host`: split at the first `@` after the first byte.
            let at = split_token(&tok[1..], b'@').map(|a| t.start + a + 2);
            // The part before the `@` (daemon or user name), or the whole token.
            let name = &text[t.start..at.map_or(t.end, |h| h - 1)];
            match which {
                List::Daemons => {
                    if let Some(host) = at {
                        self.host(raw, text, host..t.end);
                    }
                    self.daemon_name(raw, t.start, name);
                }
                List::Clients(v6) if v6 == Some(t.start) => {}
                List::Clients(_) => {
                    if at.is_some() {
                        self.user_name(raw, t.start, name);
                    }
                    self.host(raw, text, at.unwrap_or(t.start)..t.end);
                }
            }
        }
        if let Some(at) = last_except {
            self.push(
                raw,
                at,
                Severity::Warning,
                "dangling-except",
                format!("nothing after EXCEPT: no {what} is excepted"),
            );
        }
        count
    }

    /// The daemon part of a daemon pattern (`name` of `name@host`), as tcpdchk checks it.
    fn daemon_name(&mut self, raw: &RawLine, at: usize, d: &[u8]) {
        let why = if d[0] == b'@' || d.contains(&b'/') || d[0] == b'.' || d[d.len() - 1] == b'.' {
            "a leading `@` or `.`, a trailing `.` or a `/` never matches one as intended"
        } else if RESERVED.iter().any(|r| d.eq_ignore_ascii_case(r)) {
            "it is one of libwrap's host keywords (LOCAL, KNOWN, PARANOID; FAIL is obsolete), \
             which tcpdchk flags as a daemon name"
        } else {
            return;
        };
        self.push(
            raw,
            at,
            Severity::Warning,
            "daemon-name",
            format!("`{}` is not a daemon (process) name: {why}", Shown(d)),
        );
    }

    /// The user part of a `user@host` client pattern, as tcpdchk checks it.
    fn user_name(&mut self, raw: &RawLine, at: usize, u: &[u8]) {
        let why = if u[0] == b'@' {
            "it begins with `@` (netgroups are for hosts)"
        } else if u[0] == b'/' {
            "it begins with `/` (pattern files are for hosts)"
        } else if u[0] == b'.' {
            "it begins with a dot (domain suffixes are for hosts)"
        } else if u[u.len() - 1] == b'.' {
            "it ends in a dot (address prefixes are for hosts)"
        } else if RESERVED[..3].iter().any(|r| u.eq_ignore_ascii_case(r)) {
            "LOCAL and PARANOID are host keywords and FAIL is obsolete; as a user name it is \
             compared as plain text"
        } else {
            return;
        };
        self.push(
            raw,
            at,
            Severity::Warning,
            "user-pattern",
            format!("`{}` is not a user name pattern: {why}", Shown(u)),
        );
    }

    /// Checks one host pattern (a client, or the server after `daemon@`).
    fn host(&mut self, raw: &RawLine, text: &[u8], t: Range<usize>) {
        let tok = &text[t.clone()];
        if tok.is_empty() {
            // `sshd@` or `root@`: the `@` is the token's last byte.
            self.push(
                raw,
                t.start.saturating_sub(1),
                Severity::Error,
                "empty-host-pattern",
                "nothing after `@`: the host part is empty, so this pattern never matches".into(),
            );
            return;
        }
        // Fast path: a plain dotted-decimal address (most tokens of a managed file) is fine.
        if tok[0].is_ascii_digit() && plain_ipv4(tok).is_some() {
            return;
        }
        // Control bytes are reported once, per line (`harmful_control`); a VT or FF where
        // inet_addr or atoi stops or skips is harmless but worth a word.
        if tok.iter().any(|&b| is_control(b)) {
            if matches!(
                host_pattern(tok),
                HostPattern::NetMask4 { .. } | HostPattern::NetMask6 { .. }
            ) {
                self.push(
                    raw,
                    t.start,
                    Severity::Warning,
                    "ignored-control-byte",
                    format!(
                        "`{}`: libwrap reads the net and mask only up to the vertical tab or form \
                         feed (inet_addr and atoi stop or skip there), so the rest is ignored",
                        Shown(tok)
                    ),
                );
            }
            return;
        }
        let shown = Shown(tok);
        let (sev, code, msg) = match host_pattern(tok) {
            HostPattern::Known | HostPattern::Local | HostPattern::File => return,
            HostPattern::NetMask6 { len, .. } => {
                let slash = split_token(tok, b'/').unwrap_or(tok.len());
                let digits = &tok[(slash + 1).min(tok.len())..];
                if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
                    return;
                }
                (
                    Severity::Error,
                    "bad-net-mask",
                    format!(
                        "`{shown}`: the prefix length is not a decimal number; libwrap reads it \
                         with atoi as /{len}, which is surely not what was meant"
                    ),
                )
            }
            HostPattern::NetMask4 { .. } => {
                let net = &tok[..split_token(tok, b'/').unwrap_or(tok.len())];
                if plain_ipv4(net).is_some() {
                    return;
                }
                (
                    Severity::Warning,
                    "non-decimal-address",
                    format!(
                        "`{shown}`: libwrap reads parts with a leading 0 as octal and 0x as hex; \
                         write the network in plain decimal"
                    ),
                )
            }
            HostPattern::Netgroup => (
                Severity::Warning,
                "name-pattern",
                format!(
                    "`{shown}` is a NIS netgroup: it matches only by host name, which needs DNS \
                     and NIS (knockwrap match assumes no DNS)"
                ),
            ),
            HostPattern::BadNetMask(NetMaskProblem::HostBits) => (
                Severity::Error,
                "net-host-bits",
                format!(
                    "`{shown}`: the network has bits set outside the mask, so it never matches \
                     (libwrap compares address & mask with the network as written)"
                ),
            ),
            HostPattern::BadNetMask(_) => (
                Severity::Error,
                "bad-net-mask",
                format!(
                    "`{shown}` is not a net/mask libwrap accepts (n.n.n.n/m.m.m.m, n.n.n.n/1..32, \
                     [v6]/0..128; /0 is rejected): it never matches"
                ),
            ),
            HostPattern::String(sp) => match sp {
                StringPattern::Glob if tok[0] == b'[' => (
                    Severity::Error,
                    "bad-ipv6-address",
                    format!(
                        "`{shown}`: `*` and `?` do not work inside brackets; it never matches \
                         (use `[net]/len`)"
                    ),
                ),
                StringPattern::Glob
                    if tok.contains(&b'[') || tok.contains(&b']') || tok.ends_with(b".") =>
                {
                    (
                        Severity::Error,
                        "glob-never-matches",
                        format!(
                            "`{shown}`: no address or host name contains a bracket or ends in a \
                             dot, so this wildcard pattern never matches"
                        ),
                    )
                }
                StringPattern::Glob | StringPattern::All | StringPattern::Known => return,
                StringPattern::V6 { .. } => return,
                StringPattern::BadV6 if tok.contains(&b'/') => (
                    Severity::Error,
                    "ipv6-prefix-in-brackets",
                    format!(
                        "`{shown}`: the prefix length goes outside the brackets (`[2001:db8::]/32`); \
                         as written it never matches"
                    ),
                ),
                StringPattern::BadV6 => (
                    Severity::Error,
                    "bad-ipv6-address",
                    format!("`{shown}` is not an IPv6 address in brackets: it never matches"),
                ),
                StringPattern::Suffix => (
                    Severity::Warning,
                    "name-pattern",
                    format!(
                        "`{shown}` matches host names: it depends on reverse DNS (knockwrap match \
                         assumes no DNS); prefer addresses"
                    ),
                ),
                StringPattern::Prefix => {
                    if !tok[0].is_ascii_digit() {
                        (
                            Severity::Warning,
                            "name-pattern",
                            format!(
                                "`{shown}` matches host names: it depends on reverse DNS; prefer \
                                 addresses"
                            ),
                        )
                    } else if numeric_prefix_ok(tok) {
                        return;
                    } else {
                        (
                            Severity::Warning,
                            "malformed-address",
                            format!(
                                "`{shown}` is not a valid address prefix (1 to 3 dotted parts \
                                 0-255 and a final dot): it never matches"
                            ),
                        )
                    }
                }
                StringPattern::Exact => {
                    if plain_ipv4(tok).is_some() {
                        return;
                    }
                    if tok.eq_ignore_ascii_case(b"UNKNOWN") || tok.eq_ignore_ascii_case(b"PARANOID")
                    {
                        return;
                    }
                    if tok[0] == b'[' {
                        (
                            Severity::Error,
                            "bad-ipv6-address",
                            format!("`{shown}` has an unclosed `[`: it never matches"),
                        )
                    } else if tok[0].is_ascii_digit() || dot_quad(tok).is_some() {
                        (
                            Severity::Warning,
                            "malformed-address",
                            format!(
                                "`{shown}` is not a plain dotted-decimal address: libwrap compares \
                                 it as a string, so it never matches"
                            ),
                        )
                    } else {
                        (
                            Severity::Warning,
                            "name-pattern",
                            format!(
                                "`{shown}` is a host name: it matches only through reverse DNS \
                                 (knockwrap match assumes no DNS); prefer addresses"
                            ),
                        )
                    }
                }
            },
        };
        self.push(raw, t.start, sev, code, msg);
    }

    fn options(&mut self, raw: &RawLine, text: &[u8], part: Range<usize>) {
        for f in fields(text, part) {
            if let (Some(spec), Some(v)) = (f.spec, &f.value) {
                if EXPANDS.contains(&spec.name) {
                    if let Some((at, ch)) = unknown_expansion(&text[v.clone()]) {
                        self.push(
                            raw,
                            v.start + at,
                            Severity::Warning,
                            "unknown-expansion",
                            format!(
                                "`%{}` is not one of libwrap's expansions (%a %A %c %d %h %H %n \
                                 %N %p %r %R %s %u %%): it logs \"unrecognized\" each time the \
                                 rule runs",
                                char::from(ch).escape_default()
                            ),
                        );
                    }
                }
            }
            let Some(p) = f.problem else { continue };
            let name = String::from_utf8_lossy(&text[f.name.clone()]);
            let at = if f.name.is_empty() {
                // Point at the colon that opened the empty field.
                f.raw.start.saturating_sub(1)
            } else {
                f.name.start
            };
            let fail = "libwrap denies access whenever this rule matches";
            let (code, msg) = match p {
                Problem::MissingName => (
                    "missing-option-name",
                    format!("empty option field (`::` or a trailing `:`): {fail}"),
                ),
                Problem::Unknown if name.starts_with('/') => (
                    "unknown-option",
                    format!(
                        "`{name}`: a shell command after the second `:` is not supported by \
                         Debian's libwrap (options language); use `spawn {name}`: {fail}"
                    ),
                ),
                Problem::Unknown => ("unknown-option", format!("unknown option `{name}`: {fail}")),
                Problem::NeedsValue => (
                    "option-needs-value",
                    format!("option `{name}` needs a value: {fail}"),
                ),
                Problem::TakesNoValue => (
                    "option-takes-no-value",
                    format!("option `{name}` takes no value: {fail}"),
                ),
                Problem::NotLast => (
                    "option-not-last",
                    format!("option `{name}` must be the last field of the rule: {fail}"),
                ),
                Problem::BadValue => (
                    "bad-option-value",
                    format!("bad value for option `{name}`: {fail}"),
                ),
            };
            self.push(raw, at, Severity::Error, code, msg);
        }
    }

    fn duplicates_and_shadowing(
        &mut self,
        raw: &RawLine,
        line: usize,
        text: &[u8],
        daemons: Range<usize>,
        clients: Range<usize>,
    ) {
        let mut end = text.len();
        while end > 0 && matches!(text[end - 1], b' ' | b'\t' | b'\r' | b'\n') {
            end -= 1;
        }
        let h = hash_bytes(&text[..end]);
        match self.seen.get(&h) {
            Some((earlier, first)) if **earlier == text[..end] => {
                let first = *first;
                self.push(
                    raw,
                    0,
                    Severity::Warning,
                    "duplicate-rule",
                    with_number("duplicate of the rule on line ", first),
                );
                return;
            }
            // A 64-bit collision between different rules: keep the first, report nothing.
            Some(_) => {}
            None => {
                let key: Cow<'_, [u8]> = match raw.segs.as_slice() {
                    [one] => Cow::Borrowed(&self.src[one.start..one.start + end]),
                    _ => Cow::Owned(text[..end].to_vec()),
                };
                self.seen.insert(h, (key, line));
            }
        }
        if !self.cover.is_empty() {
            if let Some(by) = self.cover.shadowing(text, daemons.clone()) {
                self.push(
                    raw,
                    0,
                    Severity::Warning,
                    "shadowed-rule",
                    format!(
                        "never reached: the `ALL` client rule on line {by} already decides every \
                         request for these daemons"
                    ),
                );
            }
        }
        // Does this rule answer its daemons for every client (`ALL`, no EXCEPT)?
        let mut ctoks = tokens(text, clients);
        let first_all = ctoks
            .next()
            .is_some_and(|t| text[t].eq_ignore_ascii_case(b"ALL"));
        if first_all && !ctoks.any(|t| is_except(&text[t])) {
            self.cover.add(text, daemons, line);
        }
    }
}

impl Cover {
    fn is_empty(&self) -> bool {
        self.all.is_none() && self.names.is_empty()
    }

    /// A plain daemon name (no EXCEPT, no `@host`, no glob), lower-cased.
    fn plain(tok: &[u8]) -> Option<Vec<u8>> {
        let ok = !is_except(tok)
            && !tok[1..].contains(&b'@')
            && !tok.iter().any(|&b| b == b'*' || b == b'?');
        ok.then(|| tok.to_ascii_lowercase())
    }

    /// The line of the latest earlier rule needed to cover every daemon of this list, if
    /// all of them are covered.
    fn shadowing(&self, text: &[u8], daemons: Range<usize>) -> Option<usize> {
        let mut by: Option<usize> = None;
        for t in tokens(text, daemons) {
            let name = Self::plain(&text[t])?;
            let l = self.all.or_else(|| self.names.get(&name).copied())?;
            by = Some(by.map_or(l, |b| b.max(l)));
        }
        by
    }

    fn add(&mut self, text: &[u8], daemons: Range<usize>, line: usize) {
        if tokens(text, daemons.clone()).any(|t| is_except(&text[t])) {
            return;
        }
        for t in tokens(text, daemons) {
            let tok = &text[t];
            if tok.eq_ignore_ascii_case(b"ALL") {
                self.all.get_or_insert(line);
            } else if let Some(name) = Self::plain(tok) {
                self.names.entry(name).or_insert(line);
            }
        }
    }
}

/// `prefix` followed by `n` in decimal (cheaper than `format!` on a hot path).
fn with_number(prefix: &str, mut n: usize) -> String {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut s = String::with_capacity(prefix.len() + digits.len() - i);
    s.push_str(prefix);
    s.extend(digits[i..].iter().map(|&d| char::from(d)));
    s
}

/// Shows a token in a message, decoding it only when a message is actually written.
struct Shown<'a>(&'a [u8]);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.0))
    }
}

/// FxHash-style word hash with a final mix: fast, and good enough to key the duplicate table
/// (equal hashes are confirmed by comparing the bytes).
fn hash_bytes(b: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = b.len() as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 32)
}

/// Hasher for keys that already are hashes.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Words tcpdchk flags as daemon names (case-insensitive): host keywords, and the obsolete
/// FAIL. The first three are also flagged as user names (KNOWN is a user keyword).
const RESERVED: &[&[u8]] = &[b"LOCAL", b"PARANOID", b"FAIL", b"KNOWN"];

/// Options whose value goes through `percent_x` (`%` expansions).
const EXPANDS: &[&str] = &["spawn", "twist", "setenv", "aclexec"];

/// The first `%x` that `percent_x` does not know, as (offset of the `%`, x). `\:` is the
/// colon it stands for; a `%` at the very end is left alone.
fn unknown_expansion(v: &[u8]) -> Option<(usize, u8)> {
    let mut i = 0;
    while i + 1 < v.len() {
        if v[i] != b'%' {
            i += 1;
            continue;
        }
        let (ch, width) = if v[i + 1] == b'\\' && v.get(i + 2) == Some(&b':') {
            (b':', 3)
        } else {
            (v[i + 1], 2)
        };
        if !b"aAcdhHnNprRsu%".contains(&ch) {
            return Some((i, ch));
        }
        i += width;
    }
    None
}

/// A byte the scanner counts as a control byte (not tab, CR or LF).
fn is_control(b: u8) -> bool {
    (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n')) || b == 0x7f
}

/// The first control byte in a logical line that changes what libwrap does with it. Harmless
/// ones: anything in the options part (the option checks report values it spoils), and a VT
/// or FF in the host part of a net/mask pattern that still parses (inet_addr stops and atoi
/// skips at them, as tcpdmatch shows).
fn harmful_control(text: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(p) = text[at..]
        .iter()
        .position(|&b| is_control(b))
        .map(|p| p + at)
    {
        if !harmless_control(text, p) {
            return Some(p);
        }
        at = p + 1;
    }
    None
}

fn harmless_control(text: &[u8], p: usize) -> bool {
    let Shape::Rule {
        daemons,
        clients,
        options,
    } = shape(text)
    else {
        return false;
    };
    if let Some(o) = options.filter(|o| o.contains(&p)) {
        // Except in a banners directory, which libwrap looks up on the machine.
        return !fields(text, o)
            .iter()
            .any(|f| f.raw.contains(&p) && f.spec.is_some_and(|s| s.name == "banners"));
    }
    if !matches!(text[p], 0x0b | 0x0c) {
        return false;
    }
    for (field, clients) in [(daemons, false), (clients, true)] {
        if let Some(t) = tokens(text, field).find(|t| t.contains(&p)) {
            let host = match split_token(&text[t.start + 1..t.end], b'@') {
                Some(a) => t.start + a + 2,
                None if clients => t.start,
                None => return false,
            };
            return p >= host
                && matches!(
                    host_pattern(&text[host..t.end]),
                    HostPattern::NetMask4 { .. } | HostPattern::NetMask6 { .. }
                );
        }
    }
    false
}

/// `10.`, `192.168.`, `10.1.2.`: one to three decimal parts 0-255, each followed by a dot.
fn numeric_prefix_ok(tok: &[u8]) -> bool {
    let body = &tok[..tok.len() - 1];
    let parts: Vec<&[u8]> = body.split(|&b| b == b'.').collect();
    (1..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(p)
                    .ok()
                    .and_then(|s| s.parse::<u16>().ok())
                    <= Some(255)
        })
}

/// An IPv6 address written without brackets, split by libwrap at its first colon: the last
/// word of the client list, `:`, and the first word of the options part parse as IPv6
/// (optionally with `/len`). Returns the logical offset where the address starts.
fn unbracketed_v6(text: &[u8], clients: Range<usize>, options: Range<usize>) -> Option<usize> {
    let mut start = clients.end;
    while start > clients.start && !is_list_sep(text[start - 1]) {
        start -= 1;
    }
    let mut end = options.start;
    while end < options.end && !is_list_sep(text[end]) {
        end += 1;
    }
    let mut cand = Vec::with_capacity(end - start + 1);
    cand.extend_from_slice(&text[start..clients.end]);
    cand.push(b':');
    cand.extend_from_slice(&text[options.start..end]);
    let addr = match cand.iter().position(|&b| b == b'/') {
        Some(slash) => &cand[..slash],
        None => &cand[..],
    };
    std::str::from_utf8(addr)
        .ok()?
        .parse::<Ipv6Addr>()
        .ok()
        .map(|_| start)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, column, code) of every diagnostic.
    fn codes(src: &[u8]) -> Vec<(usize, usize, &'static str)> {
        validate(src)
            .into_iter()
            .map(|d| (d.line, d.column, d.code))
            .collect()
    }

    fn sev(src: &[u8], code: &str) -> Severity {
        validate(src)
            .into_iter()
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("no {code} in {:?}", validate(src)))
            .severity
    }

    #[test]
    fn clean_files_have_no_findings() {
        let f = b"# knockwrap\nsshd: 10.0.0.1, 192.168.1.0/24 [2001:db8::]/32 [::1]\n\
ALL EXCEPT sshd: 10. EXCEPT 10.0.0.1\nsshd: 10.0.0.0/255.0.0.0 : spawn echo %a\\: hi : allow\n\
in.ftpd: LOCAL, KNOWN, UNKNOWN, PARANOID, 10.*, 192.168.1.?\n\n  \t\nsshd: alice@10.0.0.2\n\
SSHD@192.0.2.1: 10.0.0.3 : severity auth.info : twist /bin/echo no\n";
        assert_eq!(codes(f), vec![]);
    }

    #[test]
    fn missing_colon() {
        assert_eq!(
            codes(b"a: ALL\n  sshd 10.0.0.1\n"),
            vec![(2, 3, "missing-colon")]
        );
        assert_eq!(codes(b"sshd[: x]\n"), vec![(1, 1, "missing-colon")]);
        assert_eq!(sev(b"x\n", "missing-colon"), Severity::Error);
    }

    #[test]
    fn empty_lists() {
        assert_eq!(codes(b": 10.0.0.1\n"), vec![(1, 1, "empty-daemon-list")]);
        assert_eq!(codes(b"sshd:\n"), vec![(1, 6, "empty-client-list")]);
        assert_eq!(codes(b"sshd: , \n"), vec![(1, 6, "empty-client-list")]);
        assert_eq!(codes(b"sshd: : allow\n"), vec![(1, 6, "empty-client-list")]);
    }

    #[test]
    fn except_structure() {
        assert_eq!(
            codes(b"sshd: EXCEPT 10.0.0.1\n"),
            vec![(1, 7, "except-without-pattern")]
        );
        assert_eq!(
            codes(b"sshd: ALL EXCEPT EXCEPT 10.0.0.1\n"),
            vec![(1, 18, "except-without-pattern")]
        );
        assert_eq!(
            codes(b"sshd: ALL except\n"),
            vec![(1, 11, "dangling-except")]
        );
        assert_eq!(
            sev(b"sshd: ALL except\n", "dangling-except"),
            Severity::Warning
        );
    }

    #[test]
    fn net_masks() {
        assert_eq!(codes(b"sshd: 10.1.2.3/8\n"), vec![(1, 7, "net-host-bits")]);
        // IPv6 nets are masked before comparing: host bits are harmless there.
        assert_eq!(codes(b"sshd: [2001:db8::1]/32\n"), vec![]);
        assert_eq!(
            codes(b"sshd: [2001:db8::]/abc\n"),
            vec![(1, 7, "bad-net-mask")]
        );
        assert_eq!(
            codes(b"sshd: [2001:db8::]/\n"),
            vec![(1, 7, "bad-net-mask")]
        );
        assert_eq!(
            codes(b"sshd: 10.0.0.1/255.255.255.255\n"),
            vec![(1, 7, "bad-net-mask")]
        );
        for bad in [
            &b"sshd: 0.0.0.0/0\n"[..],
            b"sshd: 10.0.0.0/0\n",
            b"sshd: 10.0.0.0/33\n",
            b"sshd: 10.0.0/8\n",
            b"sshd: 10.0.0.0/255.0.0.256\n",
            b"sshd: [2001:db8::]/129\n",
            b"sshd: [nope]/64\n",
            b"sshd: [2001:db8::]/129\n",
        ] {
            assert_eq!(
                codes(bad),
                vec![(1, 7, "bad-net-mask")],
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            codes(b"sshd: 010.0.0.0/8\n"),
            vec![(1, 7, "non-decimal-address")]
        );
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(
            codes(b"sshd: [2001:db8::/32]\n"),
            vec![(1, 7, "ipv6-prefix-in-brackets")]
        );
        assert_eq!(
            codes(b"sshd: [10.0.0.1]\n"),
            vec![(1, 7, "bad-ipv6-address")]
        );
        assert_eq!(
            codes(b"sshd: 2001:db8::1\n"),
            vec![(1, 7, "unbracketed-ipv6")]
        );
        assert_eq!(
            codes(b"sshd: 10.0.0.1, 2001:db8::/32, 10.0.0.2\n"),
            vec![(1, 17, "unbracketed-ipv6")]
        );
        assert_eq!(codes(b"sshd: ::1\n"), vec![(1, 7, "unbracketed-ipv6")]);
    }

    #[test]
    fn options() {
        let c = |s: &[u8]| codes(s).into_iter().map(|x| x.2).collect::<Vec<_>>();
        assert_eq!(c(b"sshd: ALL: bogus\n"), vec!["unknown-option"]);
        assert_eq!(c(b"sshd: ALL: /bin/echo hi\n"), vec!["unknown-option"]);
        assert_eq!(c(b"sshd: ALL: spawn\n"), vec!["option-needs-value"]);
        assert_eq!(c(b"sshd: ALL: allow now\n"), vec!["option-takes-no-value"]);
        assert_eq!(c(b"sshd: ALL: twist x : allow\n"), vec!["option-not-last"]);
        assert_eq!(c(b"sshd: ALL: umask 999\n"), vec!["bad-option-value"]);
        assert_eq!(
            c(b"sshd: ALL: spawn x :: allow\n"),
            vec!["missing-option-name"]
        );
        assert_eq!(codes(b"sshd: ALL:\n"), vec![(1, 10, "missing-option-name")]);
        assert_eq!(codes(b"sshd: ALL: DENY\n"), vec![]);
        assert_eq!(codes(b"sshd: ALL: bogus\n")[0].1, 12);
    }

    #[test]
    fn physical_problems() {
        let mut long = b"sshd: ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 2100));
        long.extend_from_slice(b"\nsshd: 10.0.0.1\n");
        assert_eq!(codes(&long), vec![(1, 2048, "line-too-long")]);
        assert_eq!(
            codes(b"a: ALL\nsshd: 10.0.0.1"),
            vec![(2, 15, "missing-final-newline")]
        );
        assert!(codes(b"a: ALL\rc: ALL\r").contains(&(1, 15, "missing-final-newline")));
        assert_eq!(
            codes(b"sshd: 10.0.0.1\0x\n"),
            vec![(1, 15, "nul-byte"), (1, 15, "missing-final-newline")]
        );
        assert_eq!(
            codes(b"sshd: 10.0.0.1\x07\n"),
            vec![(1, 15, "control-byte")]
        );
        assert_eq!(sev(b"x: y\x1b\n", "control-byte"), Severity::Error);
    }

    #[test]
    fn comment_traps() {
        assert_eq!(
            codes(b"  # sshd: 10.0.0.1\n"),
            vec![(1, 3, "indented-comment")]
        );
        assert_eq!(
            codes(b"sshd: 10.0.0.1 # office\n"),
            vec![(1, 16, "mid-line-comment"), (1, 18, "name-pattern")]
        );
        assert_eq!(
            codes(b"# x \\\nsshd: 10.0.0.1\n"),
            vec![(1, 1, "comment-continuation")]
        );
        assert_eq!(
            codes(b"sshd: 10.0.0.1 \\\n# 10.0.0.2\n"),
            vec![(2, 1, "mid-line-comment")]
        );
    }

    #[test]
    fn duplicates_and_shadowing() {
        assert_eq!(
            codes(b"sshd: 10.0.0.1\nsshd: 10.0.0.1\r\n"),
            vec![(2, 1, "duplicate-rule")]
        );
        assert_eq!(
            codes(b"ALL: ALL\nsshd: 10.0.0.1\n"),
            vec![(2, 1, "shadowed-rule")]
        );
        assert_eq!(
            codes(b"sshd, ftpd: ALL\nSSHD: 10.0.0.1\nin.telnetd: 10.0.0.1\n"),
            vec![(2, 1, "shadowed-rule")]
        );
        assert_eq!(codes(b"ALL: ALL EXCEPT 10.0.0.1\nsshd: 10.0.0.1\n"), vec![]);
        assert_eq!(codes(b"ALL EXCEPT ftpd: ALL\nsshd: 10.0.0.1\n"), vec![]);
    }

    #[test]
    fn names_and_malformed_addresses() {
        let c = |s: &[u8]| codes(s).into_iter().map(|x| x.2).collect::<Vec<_>>();
        assert_eq!(c(b"sshd: host.example.com\n"), vec!["name-pattern"]);
        assert_eq!(c(b"sshd: .example.com\n"), vec!["name-pattern"]);
        assert_eq!(c(b"sshd: @admins\n"), vec!["name-pattern"]);
        assert_eq!(c(b"sshd: 10.0.0.1;\n"), vec!["malformed-address"]);
        assert_eq!(c(b"sshd: 10.0.0.256\n"), vec!["malformed-address"]);
        assert_eq!(c(b"sshd: 1.2.3.4.\n"), vec!["malformed-address"]);
        assert_eq!(c(b"sshd: 010.0.0.1\n"), vec!["malformed-address"]);
        assert_eq!(sev(b"sshd: x.example\n", "name-pattern"), Severity::Warning);
    }

    #[test]
    fn numbers_in_messages() {
        assert_eq!(with_number("line ", 0), "line 0");
        assert_eq!(with_number("line ", 1234567), "line 1234567");
        assert_eq!(with_number("", usize::MAX), usize::MAX.to_string());
    }

    #[test]
    fn daemon_names() {
        assert_eq!(codes(b"@sshd: ALL\n"), vec![(1, 1, "daemon-name")]);
        assert_eq!(codes(b"/usr/sbin/sshd: ALL\n"), vec![(1, 1, "daemon-name")]);
        assert_eq!(codes(b"sshd.: ALL\n"), vec![(1, 1, "daemon-name")]);
        assert_eq!(codes(b".sshd: ALL\n"), vec![(1, 1, "daemon-name")]);
        assert_eq!(codes(b"ALL 10.0.0.1.: ALL\n"), vec![(1, 5, "daemon-name")]);
    }

    #[test]
    fn daemon_at_host_checks_each_part() {
        // Server-endpoint patterns are fine: only the daemon part is a daemon name.
        assert_eq!(codes(b"sshd@198.18.0.0/24: ALL\n"), vec![]);
        assert_eq!(codes(b"sshd@198.18.0.: ALL\n"), vec![]);
        assert_eq!(codes(b"sshd@[2001:db8::]/64: ALL\n"), vec![]);
        assert_eq!(codes(b"ALL@ALL: ALL\n"), vec![]);
        // The host part is checked as a host pattern.
        assert_eq!(
            codes(b"sshd@10.1.2.3/8: ALL\n"),
            vec![(1, 6, "net-host-bits")]
        );
        assert_eq!(codes(b"sshd@x.: ALL\n"), vec![(1, 6, "name-pattern")]);
        assert_eq!(codes(b"@x@10.0.0.1: ALL\n"), vec![(1, 1, "daemon-name")]);
        assert_eq!(codes(b"sshd.@10.0.0.1: ALL\n"), vec![(1, 1, "daemon-name")]);
    }

    #[test]
    fn reserved_words_as_daemon_names() {
        for d in ["LOCAL", "known", "Paranoid", "FAIL"] {
            let src = format!("{d}: ALL\n");
            assert_eq!(codes(src.as_bytes()), vec![(1, 1, "daemon-name")], "{d}");
        }
        assert_eq!(codes(b"UNKNOWN: ALL\nALL: ALL\n"), vec![]);
    }

    #[test]
    fn empty_host_part() {
        assert_eq!(codes(b"sshd@: ALL\n"), vec![(1, 5, "empty-host-pattern")]);
        assert_eq!(codes(b"sshd: root@\n"), vec![(1, 11, "empty-host-pattern")]);
        assert_eq!(sev(b"sshd: root@\n", "empty-host-pattern"), Severity::Error);
    }

    #[test]
    fn user_parts() {
        for u in ["@root", "/x", ".root", "root.", "local", "PARANOID", "fail"] {
            let src = format!("sshd: {u}@10.0.0.1\n");
            assert_eq!(codes(src.as_bytes()), vec![(1, 7, "user-pattern")], "{u}");
        }
        for u in ["root", "KNOWN", "UNKNOWN", "ALL", "r*"] {
            let src = format!("sshd: {u}@10.0.0.1\n");
            assert_eq!(codes(src.as_bytes()), vec![], "{u}");
        }
    }

    #[test]
    fn globs_that_never_match() {
        assert_eq!(
            codes(b"sshd: 192.168.1.?[10.0.0.1]\n"),
            vec![(1, 7, "glob-never-matches")]
        );
        assert_eq!(
            codes(b"sshd: *192.168.1.\n"),
            vec![(1, 7, "glob-never-matches")]
        );
        assert_eq!(codes(b"sshd: 192.168.1.* 10.*\n"), vec![]);
    }

    #[test]
    fn unknown_percent_expansions() {
        assert_eq!(
            codes(b"sshd: ALL: spawn echo %o\n"),
            vec![(1, 23, "unknown-expansion")]
        );
        assert_eq!(
            codes(b"sshd: ALL: twist echo %a %A %c %d %h %H %n %N %p %r %R %s %u %% %\n"),
            vec![]
        );
        assert_eq!(
            codes(b"sshd: ALL: setenv X %x\n"),
            vec![(1, 21, "unknown-expansion")]
        );
        assert_eq!(
            codes(b"sshd: ALL: aclexec echo %o\n"),
            vec![(1, 25, "unknown-expansion")]
        );
        assert_eq!(
            codes(b"sshd: ALL: spawn echo %\\:x\n"),
            vec![(1, 23, "unknown-expansion")]
        );
        assert_eq!(codes(b"sshd: ALL: banners /x%o\n"), vec![]);
        assert_eq!(codes(b"sshd: ALL: spawn echo 100%% %u\n"), vec![]);
    }

    #[test]
    fn vertical_tab_and_form_feed_where_libc_ignores_them() {
        let c = |s: &[u8]| codes(s).into_iter().map(|x| x.2).collect::<Vec<_>>();
        assert_eq!(c(b"sshd: 10.0.0.0\x0b/8\n"), vec!["ignored-control-byte"]);
        assert_eq!(
            c(b"sshd: 10.0.0.0/255.0.0.0\x0cjunk\n"),
            vec!["ignored-control-byte"]
        );
        assert_eq!(c(b"sshd: 10.0.0.0/\x0b8\n"), vec!["ignored-control-byte"]);
        assert_eq!(c(b"sshd: 10.0.0.1: linger \x0b0\n"), Vec::<&str>::new());
        assert_eq!(
            c(b"sshd: 10.0.0.1: nice \x0c-5 : keepalive\x0b\n"),
            Vec::<&str>::new()
        );
        assert_eq!(c(b"sshd: 10.0.0.1: spawn echo \x01\n"), Vec::<&str>::new());
        assert_eq!(
            c(b"sshd: 10.0.0.1: banners /etc\x01\n"),
            vec!["control-byte"]
        );
        assert_eq!(
            c(b"sshd: 10.0.0.1: user ro\x01ot\n"),
            vec!["bad-option-value"]
        );
        // Elsewhere they still spoil the pattern.
        assert_eq!(c(b"sshd: 10.0.0.1\x0b\n"), vec!["control-byte"]);
        assert_eq!(c(b"sshd\x0c: 10.0.0.1\n"), vec!["control-byte"]);
        assert_eq!(c(b"sshd: 10.0.0.0/\x0b255.0.0.0\n"), vec!["control-byte"]);
        assert_eq!(c(b"sshd: 10.0.0.1: linger\x0b0\n"), vec!["unknown-option"]);
    }

    #[test]
    fn bom_and_crlf() {
        assert_eq!(
            codes(b"\xEF\xBB\xBFsshd: 10.0.0.1\n"),
            vec![(1, 1, "utf8-bom")]
        );
        assert_eq!(
            codes(b"sshd: 10.0.0.1 \\\r\n10.0.0.2\r\n"),
            vec![
                (1, 16, "crlf-continuation"),
                (1, 16, "name-pattern"),
                (2, 1, "missing-colon")
            ]
        );
        assert_eq!(codes(b"sshd: 10.0.0.1\r\n"), vec![]);
    }

    #[test]
    fn positions_survive_continuations() {
        assert_eq!(
            codes(b"sshd: 10.0.0.1, \\\n  10.1.2.3/8\n"),
            vec![(2, 3, "net-host-bits")]
        );
    }
}
