//! Managed lines: the one kind of line knockwrap writes (`SERVICE: ADDRESS`), and byte-exact
//! add / remove / contains on a file's bytes that leave every other byte as it was.
//!
//! A managed line is built from a parsed `IpAddr` and a checked service name, never from text.
//! Comparison is exact bytes on the physical line's content (its `\n` or `\r\n` removed).
//!
//! A physical line that continues a previous line ending in backslash-newline is part of that
//! earlier rule, not a rule of its own: it is never counted as present, never removed.

use std::net::IpAddr;

/// Why a managed line cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("service name is empty")]
    EmptyService,
    #[error("service name {service:?} contains {found}, which hosts_access would read as syntax")]
    ForbiddenInService { service: String, found: String },
    #[error("service name {0:?} is the EXCEPT operator, not a daemon name")]
    ExceptService(String),
    #[error("service name is {0} bytes long; at most {MAX_SERVICE_LEN} allowed")]
    ServiceTooLong(usize),
}

/// Longest accepted service name; keeps a managed line far below libwrap's 2046-byte limit.
pub const MAX_SERVICE_LEN: usize = 255;

/// `SERVICE: ADDRESS`, the line knockwrap adds to and removes from hosts.allow.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ManagedLine {
    service: String,
    addr: IpAddr,
}

impl ManagedLine {
    /// Checks `service` (one daemon name: printable ASCII without blank, `,`, `:`, `#`, `@`,
    /// `[`, `]`, `\`, and not `EXCEPT`) and keeps `addr`. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) becomes plain IPv4: libwrap's IPv4 rules match both forms of client,
    /// a bracketed mapped rule matches only the mapped one.
    pub fn new(service: &str, addr: IpAddr) -> Result<ManagedLine, EditError> {
        check_service(service)?;
        // The same normalisation as the lease journal's (`IpAddr::to_canonical`).
        Ok(ManagedLine {
            service: service.to_owned(),
            addr: addr.to_canonical(),
        })
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// The address as written (IPv4-mapped addresses already turned into IPv4).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// `SSHD: 203.0.113.7` or `SSHD: [2001:db8::7]`, without a line terminator.
    pub fn text(&self) -> String {
        match self.addr {
            IpAddr::V4(a) => format!("{}: {}", self.service, a),
            IpAddr::V6(a) => format!("{}: [{}]", self.service, a),
        }
    }
}

fn check_service(service: &str) -> Result<(), EditError> {
    if service.is_empty() {
        return Err(EditError::EmptyService);
    }
    if service.len() > MAX_SERVICE_LEN {
        return Err(EditError::ServiceTooLong(service.len()));
    }
    for c in service.chars() {
        let bad = match c {
            ' ' => Some("a blank".to_owned()),
            ',' | ':' | '#' | '@' | '[' | ']' | '\\' => Some(format!("{c:?}")),
            c if !c.is_ascii() || c.is_ascii_control() => Some(format!("{:?}", c)),
            _ => None,
        };
        if let Some(found) = bad {
            return Err(EditError::ForbiddenInService {
                service: service.to_owned(),
                found,
            });
        }
    }
    if service.eq_ignore_ascii_case("EXCEPT") {
        return Err(EditError::ExceptService(service.to_owned()));
    }
    Ok(())
}

/// One physical line of a file.
struct Physical {
    /// Start of the line.
    start: usize,
    /// End of the content (terminator excluded).
    content_end: usize,
    /// End of the line, terminator included.
    end: usize,
    /// This line continues the previous one (which ended in backslash-newline).
    continuation: bool,
}

fn physical_lines(bytes: &[u8]) -> impl Iterator<Item = Physical> + '_ {
    let mut pos = 0;
    let mut continues = false;
    std::iter::from_fn(move || {
        if pos >= bytes.len() {
            return None;
        }
        let start = pos;
        let (content_end, end) = match memchr_nl(&bytes[start..]) {
            Some(i) => {
                let nl = start + i;
                let ce = if nl > start && bytes[nl - 1] == b'\r' {
                    nl - 1
                } else {
                    nl
                };
                (ce, nl + 1)
            }
            None => (bytes.len(), bytes.len()),
        };
        let line = Physical {
            start,
            content_end,
            end,
            continuation: continues,
        };
        // libwrap joins only an exact backslash-newline (not backslash-CR-LF).
        continues = end > start + 1 && bytes[end - 1] == b'\n' && bytes[end - 2] == b'\\';
        pos = end;
        Some(line)
    })
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

fn is_managed(bytes: &[u8], p: &Physical, text: &[u8]) -> bool {
    !p.continuation && &bytes[p.start..p.content_end] == text
}

/// The physical lines whose content is exactly `text` (which holds no newline) and that do not
/// continue a previous line: what [`physical_lines`] filtered by [`is_managed`] gives, found
/// by a substring search instead of a walk over every line.
fn managed_lines<'a>(bytes: &'a [u8], text: &'a [u8]) -> impl Iterator<Item = Physical> + 'a {
    memchr::memmem::find_iter(bytes, text).filter_map(move |start| {
        // A line start that no backslash-newline continues into.
        let line_start = start == 0 || bytes[start - 1] == b'\n';
        if !line_start || (start >= 2 && bytes[start - 2] == b'\\') {
            return None;
        }
        let content_end = start + text.len();
        let end = match &bytes[content_end..] {
            [] => content_end,
            [b'\n', ..] => content_end + 1,
            [b'\r', b'\n', ..] => content_end + 2,
            _ => return None,
        };
        Some(Physical {
            start,
            content_end,
            end,
            continuation: false,
        })
    })
}

/// True when the file holds the managed line as a complete (newline-terminated) rule of its
/// own. An unterminated last line does not count: Debian's libwrap ignores it.
pub fn contains(bytes: &[u8], line: &ManagedLine) -> bool {
    let text = line.text();
    let found = managed_lines(bytes, text.as_bytes()).any(|p| p.end > p.content_end);
    found
}

/// The file's line terminator: `\r\n` when its first line ends that way, else `\n`.
fn line_ending(bytes: &[u8]) -> &'static [u8] {
    match memchr_nl(bytes) {
        Some(i) if i > 0 && bytes[i - 1] == b'\r' => b"\r\n",
        _ => b"\n",
    }
}

/// The file with the managed line appended, or `None` when it is already there.
///
/// Only bytes are appended: a missing final newline is supplied first (in the file's style);
/// when the file's last line is exactly the managed text without a terminator, the terminator
/// alone is added; when the last line ends in backslash-newline, an empty line is put first so
/// the managed line is not swallowed into that rule.
pub fn add(bytes: &[u8], line: &ManagedLine) -> Option<Vec<u8>> {
    if contains(bytes, line) {
        return None;
    }
    let text = line.text();
    let ending = line_ending(bytes);
    let mut out = Vec::with_capacity(bytes.len() + text.len() + 4);
    out.extend_from_slice(bytes);
    if let Some(last) = unterminated_last_line(bytes) {
        out.extend_from_slice(ending);
        if is_managed(bytes, &last, text.as_bytes()) {
            return Some(out);
        }
    }
    if out.ends_with(b"\\\n") {
        out.extend_from_slice(ending);
    }
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(ending);
    Some(out)
}

/// The file's last physical line when it has no line terminator.
fn unterminated_last_line(bytes: &[u8]) -> Option<Physical> {
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return None;
    }
    let start = memchr::memrchr(b'\n', bytes).map_or(0, |i| i + 1);
    Some(Physical {
        start,
        content_end: bytes.len(),
        end: bytes.len(),
        continuation: start >= 2 && bytes[start - 2] == b'\\',
    })
}

/// Above this many lines, `add_all` indexes the file's lines once instead of searching it for
/// each line.
const SEARCH_EACH_UP_TO: usize = 8;

/// The file with every managed line of `lines` that is not there yet appended (in order,
/// once each), or `None` when all are present. One pass over the file whatever the number of
/// lines: the daemon applies a burst of grants as one edit.
pub fn add_all(bytes: &[u8], lines: &[ManagedLine]) -> Option<Vec<u8>> {
    let present: Option<std::collections::HashSet<&[u8]>> =
        (lines.len() > SEARCH_EACH_UP_TO).then(|| {
            physical_lines(bytes)
                .filter(|p| p.end > p.content_end && !p.continuation)
                .map(|p| &bytes[p.start..p.content_end])
                .collect()
        });
    let mut missing = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in lines {
        let text = line.text();
        let there = match &present {
            Some(set) => set.contains(text.as_bytes()),
            None => contains(bytes, line),
        };
        if !there && seen.insert(text) {
            missing.push(line);
        }
    }
    let (first, rest) = missing.split_first()?;
    // The first goes through `add`, which settles the file's last line; the file then ends
    // with a complete line in the file's own line ending.
    let mut out = add(bytes, first).unwrap_or_else(|| bytes.to_vec());
    let ending = line_ending(&out);
    for line in rest {
        out.extend_from_slice(line.text().as_bytes());
        out.extend_from_slice(ending);
    }
    Some(out)
}

/// The file without any physical line that is exactly the managed text (with its terminator),
/// or `None` when there is none. Lines that merely start with the text are kept, and so are
/// continuation lines (they belong to the rule above them).
pub fn remove(bytes: &[u8], line: &ManagedLine) -> Option<Vec<u8>> {
    let text = line.text();
    without(
        bytes,
        managed_lines(bytes, text.as_bytes()).map(|p| (p.start, p.end)),
    )
}

/// `bytes` without the ranges (in ascending order, not overlapping), or `None` when there is
/// none: the one splice every removal here ends with.
fn without(bytes: &[u8], ranges: impl IntoIterator<Item = (usize, usize)>) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut kept_to = 0;
    for (start, end) in ranges {
        let o = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
        o.extend_from_slice(&bytes[kept_to..start]);
        kept_to = end;
    }
    let mut out = out?;
    out.extend_from_slice(&bytes[kept_to..]);
    Some(out)
}

/// The file without the first copy of each distinct line of `lines`, or `None` when none is
/// there. Ending a lease removes the one line knockwrap added: an identical line an operator
/// wrote by hand while the lease ran stays (it came later, so the first copy is knockwrap's).
/// One pass over the file whatever the number of lines: leases that end together end in one
/// edit.
pub fn remove_first_of_each(bytes: &[u8], lines: &[ManagedLine]) -> Option<Vec<u8>> {
    let texts: Vec<String> = lines.iter().map(ManagedLine::text).collect();
    let mut ranges: Vec<(usize, usize)> = if texts.len() <= SEARCH_EACH_UP_TO {
        let mut seen = std::collections::HashSet::new();
        texts
            .iter()
            .filter(|t| seen.insert(t.as_str()))
            .filter_map(|t| managed_lines(bytes, t.as_bytes()).next())
            .map(|p| (p.start, p.end))
            .collect()
    } else {
        let mut wanted: std::collections::HashSet<&[u8]> =
            texts.iter().map(|t| t.as_bytes()).collect();
        let mut found = Vec::new();
        for p in physical_lines(bytes) {
            if wanted.is_empty() {
                break;
            }
            if !p.continuation && wanted.remove(&bytes[p.start..p.content_end]) {
                found.push((p.start, p.end));
            }
        }
        found
    };
    ranges.sort_unstable();
    without(bytes, ranges)
}

/// True when `content` is the managed line's text as libwrap reads it: daemon names and host
/// addresses compare without regard to ASCII case (`sshd: 192.0.2.1` is `SSHD: 192.0.2.1`,
/// `[2001:DB8::1]` is `[2001:db8::1]`).
fn same_ignoring_case(content: &[u8], text: &[u8]) -> bool {
    content.eq_ignore_ascii_case(text)
}

/// The file without any physical line that is the managed line in any ASCII case (the
/// operator's revoke: what libwrap would match as the same rule), or `None` when there is none.
/// Continuation lines are kept, as in [`remove`].
pub fn remove_any_case(bytes: &[u8], line: &ManagedLine) -> Option<Vec<u8>> {
    let text = line.text();
    let ranges = physical_lines(bytes)
        .filter(|p| {
            !p.continuation && same_ignoring_case(&bytes[p.start..p.content_end], text.as_bytes())
        })
        .map(|p| (p.start, p.end));
    without(bytes, ranges)
}

/// How many complete (newline-terminated) copies of the managed line the file holds.
pub fn count(bytes: &[u8], line: &ManagedLine) -> usize {
    let text = line.text();
    let n = managed_lines(bytes, text.as_bytes())
        .filter(|p| p.end > p.content_end)
        .count();
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ml(s: &str, a: &str) -> ManagedLine {
        ManagedLine::new(s, a.parse().unwrap()).unwrap()
    }

    #[test]
    fn removing_the_first_copy_leaves_an_identical_later_line() {
        let f = b"# ops\nSSHD: 192.0.2.1\nSSHD: 192.0.2.2\nSSHD: 192.0.2.1\n";
        let one = [ml("SSHD", "192.0.2.1")];
        assert_eq!(
            remove_first_of_each(f, &one).unwrap(),
            b"# ops\nSSHD: 192.0.2.2\nSSHD: 192.0.2.1\n"
        );
        // Many lines at once: one pass, each removed once, prefixes kept.
        let mut file = String::from("SSHD: 192.0.2.10\n");
        let mut lines = Vec::new();
        for i in 0..20 {
            file.push_str(&format!("SSHD: 192.0.2.{i}\nSSHD: 192.0.2.{i}\n"));
            lines.push(ml("SSHD", &format!("192.0.2.{i}")));
        }
        let out =
            String::from_utf8(remove_first_of_each(file.as_bytes(), &lines).unwrap()).unwrap();
        for i in 0..20 {
            let want = if i == 10 { 2 } else { 1 };
            let needle = format!("SSHD: 192.0.2.{i}\n");
            assert_eq!(
                out.lines().filter(|l| format!("{l}\n") == needle).count(),
                want,
                "{i}"
            );
        }
        assert_eq!(remove_first_of_each(b"SSHD: 192.0.2.11\n", &one), None);
        // A continuation line is part of the rule above it.
        assert_eq!(
            remove_first_of_each(b"a: b \\\nSSHD: 192.0.2.1\n", &one),
            None
        );
    }

    #[test]
    fn the_operators_revoke_matches_the_line_in_any_case() {
        let f = b"sshd: 198.51.100.8\nSSHD: 198.51.100.8\nsshd: 198.51.100.80\nsshd:198.51.100.8\n";
        assert_eq!(
            remove_any_case(f, &ml("SSHD", "198.51.100.8")).unwrap(),
            b"sshd: 198.51.100.80\nsshd:198.51.100.8\n"
        );
        assert_eq!(
            remove_any_case(b"SSHD: [2001:DB8::1]\n", &ml("sshd", "2001:db8::1")).unwrap(),
            b""
        );
        assert_eq!(
            count(
                b"SSHD: 192.0.2.1\nSSHD: 192.0.2.1\nSSHD: 192.0.2.1",
                &ml("SSHD", "192.0.2.1")
            ),
            2
        );
    }

    use proptest::prelude::*;

    /// The walk over every physical line the substring search replaced: the reference.
    fn walk_contains(bytes: &[u8], text: &[u8]) -> bool {
        physical_lines(bytes).any(|p| p.end > p.content_end && is_managed(bytes, &p, text))
    }

    fn walk_remove(bytes: &[u8], text: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut removed = false;
        for p in physical_lines(bytes) {
            if is_managed(bytes, &p, text) {
                removed = true;
            } else {
                out.extend_from_slice(&bytes[p.start..p.end]);
            }
        }
        removed.then_some(out)
    }

    fn near_managed() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(&b"SSHD: 203.0.113.7"[..] as &[u8]),
            Just(&b"SSHD: 203.0.113.7"[..] as &[u8]),
            Just(&b"SSHD: 203.0.113.77"[..] as &[u8]),
            Just(&b"xSSHD: 203.0.113.7"[..] as &[u8]),
            Just(&b"SSHD: 203.0.113.7SSHD: 203.0.113.7"[..] as &[u8]),
            Just(&b"\n"[..] as &[u8]),
            Just(&b"\r\n"[..] as &[u8]),
            Just(&b"\r"[..] as &[u8]),
            Just(&b"\\\n"[..] as &[u8]),
            Just(&b"\\"[..] as &[u8]),
            Just(&b" "[..] as &[u8]),
            Just(&b"\0"[..] as &[u8]),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn search_agrees_with_the_line_walk(bytes in near_managed()) {
            let l = ml("SSHD", "203.0.113.7");
            let text = l.text();
            prop_assert_eq!(contains(&bytes, &l), walk_contains(&bytes, text.as_bytes()));
            prop_assert_eq!(remove(&bytes, &l), walk_remove(&bytes, text.as_bytes()));
            let last = physical_lines(&bytes).last().filter(|p| p.end == p.content_end);
            let fast = unterminated_last_line(&bytes);
            prop_assert_eq!(
                last.map(|p| (p.start, p.content_end, p.end, p.continuation)),
                fast.map(|p| (p.start, p.content_end, p.end, p.continuation))
            );
            // add_all searching each line == add_all indexing the file once.
            let many: Vec<ManagedLine> = (0..=SEARCH_EACH_UP_TO as u8)
                .map(|k| ml("SSHD", &format!("203.0.113.{}", 7 + k % 3)))
                .collect();
            let mut one_by_one = bytes.clone();
            for l in &many {
                if let Some(next) = add(&one_by_one, l) {
                    one_by_one = next;
                }
            }
            prop_assert_eq!(add_all(&bytes, &many).unwrap_or_else(|| bytes.clone()), one_by_one.clone());
            prop_assert_eq!(
                add_all(&bytes, &many[..3]).unwrap_or_else(|| bytes.clone()),
                {
                    let mut o = bytes.clone();
                    for l in &many[..3] {
                        if let Some(n) = add(&o, l) { o = n; }
                    }
                    o
                }
            );
        }
    }

    #[test]
    fn text_forms() {
        assert_eq!(ml("SSHD", "203.0.113.7").text(), "SSHD: 203.0.113.7");
        assert_eq!(ml("SSHD", "2001:DB8:0:0::7").text(), "SSHD: [2001:db8::7]");
        assert_eq!(ml("sshd", "::ffff:192.0.2.1").text(), "sshd: 192.0.2.1");
        assert_eq!(ml("sshd", "::1").text(), "sshd: [::1]");
    }

    #[test]
    fn service_names_checked() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(ManagedLine::new("", a), Err(EditError::EmptyService));
        for bad in [
            "ss hd",
            "a,b",
            "a:b",
            "#sshd",
            "sshd@host",
            "a[b",
            "a]",
            "a\\",
            "a\tb",
            "a\nb",
            "sshé",
            "a\u{7f}",
        ] {
            assert!(
                matches!(
                    ManagedLine::new(bad, a),
                    Err(EditError::ForbiddenInService { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            ManagedLine::new("except", a),
            Err(EditError::ExceptService(_))
        ));
        assert!(matches!(
            ManagedLine::new(&"x".repeat(256), a),
            Err(EditError::ServiceTooLong(256))
        ));
        assert!(ManagedLine::new("in.telnetd", a).is_ok());
        assert!(ManagedLine::new("ALL", a).is_ok());
    }

    #[test]
    fn add_to_empty_and_terminated() {
        let l = ml("SSHD", "203.0.113.7");
        assert_eq!(add(b"", &l).unwrap(), b"SSHD: 203.0.113.7\n");
        assert_eq!(
            add(b"# c\nsshd: 10.0.0.1\n", &l).unwrap(),
            b"# c\nsshd: 10.0.0.1\nSSHD: 203.0.113.7\n"
        );
    }

    #[test]
    fn add_twice_is_none() {
        let l = ml("SSHD", "203.0.113.7");
        let once = add(b"x: y\n", &l).unwrap();
        assert_eq!(add(&once, &l), None);
        assert!(contains(&once, &l));
    }

    #[test]
    fn add_missing_final_newline_and_crlf() {
        let l = ml("SSHD", "203.0.113.7");
        assert_eq!(add(b"a: b", &l).unwrap(), b"a: b\nSSHD: 203.0.113.7\n");
        assert_eq!(
            add(b"a: b\r\nc: d", &l).unwrap(),
            b"a: b\r\nc: d\r\nSSHD: 203.0.113.7\r\n"
        );
        assert_eq!(
            add(b"a: b\r\n", &l).unwrap(),
            b"a: b\r\nSSHD: 203.0.113.7\r\n"
        );
    }

    #[test]
    fn add_terminates_unterminated_managed_line() {
        let l = ml("SSHD", "203.0.113.7");
        assert!(!contains(b"a: b\nSSHD: 203.0.113.7", &l));
        assert_eq!(
            add(b"a: b\nSSHD: 203.0.113.7", &l).unwrap(),
            b"a: b\nSSHD: 203.0.113.7\n"
        );
    }

    #[test]
    fn add_after_continuation_is_not_swallowed() {
        let l = ml("SSHD", "203.0.113.7");
        assert_eq!(
            add(b"sshd: 10.0.0.1 \\\n", &l).unwrap(),
            b"sshd: 10.0.0.1 \\\n\nSSHD: 203.0.113.7\n"
        );
        assert_eq!(
            add(b"sshd: 10.0.0.1 \\", &l).unwrap(),
            b"sshd: 10.0.0.1 \\\n\nSSHD: 203.0.113.7\n"
        );
    }

    #[test]
    fn continuation_target_is_not_managed() {
        let l = ml("SSHD", "203.0.113.7");
        let f = b"sshd: 10.0.0.1 \\\nSSHD: 203.0.113.7\n";
        assert!(!contains(f, &l));
        assert_eq!(remove(f, &l), None);
        // Backslash-CR-LF is no continuation: the line is a rule of its own.
        let f = b"sshd: 10.0.0.1 \\\r\nSSHD: 203.0.113.7\r\n";
        assert!(contains(f, &l));
        assert_eq!(remove(f, &l).unwrap(), b"sshd: 10.0.0.1 \\\r\n");
    }

    #[test]
    fn remove_exact_only() {
        let l = ml("SSHD", "203.0.113.4");
        let f = b"SSHD: 203.0.113.45\nSSHD: 203.0.113.4\nSSHD: 203.0.113.4.example\n\
SSHD: 203.0.113.4 \nsshd: 203.0.113.4\nSSHD: 203.0.113.4\r\n# SSHD: 203.0.113.4\n";
        assert_eq!(
            remove(f, &l).unwrap(),
            b"SSHD: 203.0.113.45\nSSHD: 203.0.113.4.example\nSSHD: 203.0.113.4 \n\
sshd: 203.0.113.4\n# SSHD: 203.0.113.4\n"
                .to_vec()
        );
        assert_eq!(remove(b"SSHD: 203.0.113.45\n", &l), None);
    }

    #[test]
    fn remove_unterminated_last_line() {
        let l = ml("SSHD", "203.0.113.4");
        assert_eq!(remove(b"a: b\nSSHD: 203.0.113.4", &l).unwrap(), b"a: b\n");
        assert_eq!(remove(b"SSHD: 203.0.113.4", &l).unwrap(), b"");
    }

    #[test]
    fn add_then_remove_restores() {
        let l = ml("SSHD", "2001:db8::7");
        for f in [&b""[..], b"a: b\n", b"a: b\r\n# x\r\n", b"x: y\n\n"] {
            let added = add(f, &l).unwrap();
            assert!(contains(&added, &l));
            assert_eq!(remove(&added, &l).unwrap(), f);
        }
    }

    #[test]
    fn add_all_is_add_applied_in_turn() {
        let lines: Vec<ManagedLine> = ["203.0.113.4", "2001:db8::7", "203.0.113.4", "198.18.0.9"]
            .iter()
            .map(|a| ManagedLine::new("SSHD", a.parse().unwrap()).unwrap())
            .collect();
        for start in [
            &b""[..],
            b"ALL: LOCAL\n",
            b"ALL: LOCAL\r\n",
            b"SSHD: 198.18.0.9\n",
            b"SSHD: 203.0.113.4",
            b"sshd: foo \\\n",
            b"# no newline",
        ] {
            let mut one_by_one = start.to_vec();
            for l in &lines {
                if let Some(next) = add(&one_by_one, l) {
                    one_by_one = next;
                }
            }
            let all = add_all(start, &lines).unwrap_or_else(|| start.to_vec());
            assert_eq!(
                String::from_utf8_lossy(&all),
                String::from_utf8_lossy(&one_by_one),
                "{:?}",
                String::from_utf8_lossy(start)
            );
        }
        let done = add_all(b"", &lines).unwrap();
        assert_eq!(add_all(&done, &lines), None);
    }
}
