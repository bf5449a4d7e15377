//! Logical lines exactly as libwrap's `xgets` assembles them from `fgets` chunks: 2048-byte
//! buffer (at most 2047 bytes per line, newline included), backslash-newline joins the next
//! line, a NUL ends what `strlen` sees of a chunk, and a chunk without its newline is returned
//! as is (the caller decides what that means).

use std::ops::Range;

use crate::swar;

/// libwrap's `BUFLEN`: a logical line holds at most `BUFLEN - 1` bytes, newline included.
pub(crate) const BUFLEN: usize = 2048;

/// One logical line's provenance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawLine {
    /// Source bytes this logical line consumed (everything up to the next line's start).
    pub span: Range<usize>,
    /// Source ranges whose concatenation is the logical text, in order.
    pub segs: Vec<Range<usize>>,
    /// The logical text ends with `\n` (what libwrap requires of every line).
    pub terminated: bool,
    /// The 2047-byte buffer filled up before a newline came.
    pub overlong: bool,
    /// Source offset of the first NUL byte `strlen` stopped at, if any.
    pub nul: Option<usize>,
    /// Source offset of the first control byte in the logical text (other than tab, CR, LF,
    /// NUL), if any.
    pub control: Option<usize>,
    /// Newlines in `span`, and the offset of the last one: lets line numbers advance without
    /// another pass over the bytes.
    pub newlines: usize,
    pub last_newline: Option<usize>,
}

impl RawLine {
    /// A newline-less chunk with text: Debian's libwrap stops reading the file here. (A chunk
    /// with no text at all, such as a final `\0\n`, is what `xgets` reports as a clean end of
    /// file.)
    pub(crate) fn stops_reading(&self) -> bool {
        !self.terminated && !self.segs.is_empty()
    }
}

/// Iterates over logical lines. Holds reusable buffers so the hot path does not allocate.
pub(crate) struct Scanner<'a> {
    src: &'a [u8],
    pos: usize,
    /// After an over-long chunk, skip the rest of its physical line: libwrap's run time stops
    /// reading the file there anyway, and re-reading the tail as a rule only adds noise.
    resync_after_overlong: bool,
}

fn find(hay: &[u8], b: u8) -> Option<usize> {
    hay.iter().position(|&c| c == b)
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(src: &'a [u8]) -> Self {
        Scanner {
            src,
            pos: 0,
            resync_after_overlong: true,
        }
    }

    /// Reads the next logical line into `out` (cleared first). Returns false at end of input.
    /// Bytes consumed without producing any logical text (for example `\0\n` at the end) are
    /// still reported as a line with no segments, so every byte belongs to some line.
    pub(crate) fn next_into(&mut self, out: &mut RawLine) -> bool {
        let src = self.src;
        if self.pos >= src.len() {
            return false;
        }
        out.segs.clear();
        out.terminated = false;
        out.overlong = false;
        out.nul = None;
        out.control = None;
        out.newlines = 0;
        out.last_newline = None;
        if !self.plain_line(out) {
            self.general(out);
        }
        true
    }

    /// One logical line as `xgets` reads it, chunk by chunk; `out` is already cleared.
    fn general(&mut self, out: &mut RawLine) {
        let src = self.src;
        let start = self.pos;
        // `len` in xgets: room left in the buffer, terminating NUL included.
        let mut room = BUFLEN;
        loop {
            if room <= 1 {
                out.overlong = true;
                break;
            }
            if self.pos >= src.len() {
                break;
            }
            // fgets: up to room - 1 bytes, stopping after a newline. One pass looks for the
            // newline, a NUL (where strlen stops) and other control bytes at once.
            let max = (src.len() - self.pos).min(room - 1);
            let chunk_start = self.pos;
            let window = &src[chunk_start..chunk_start + max];
            let mut stop = None;
            // Skip words with no control byte at all (the common case: printable text).
            let mut skip = 0;
            while skip + 8 <= window.len() {
                let w = swar::word(window, skip);
                if swar::has_less(w, 0x20) || swar::has_byte(w, 0x7f) {
                    break;
                }
                skip += 8;
            }
            for (i, &b) in window.iter().enumerate().skip(skip) {
                if b < 0x20 || b == 0x7f {
                    match b {
                        b'\n' | 0 => {
                            stop = Some(i);
                            break;
                        }
                        b'\t' | b'\r' => {}
                        _ => {
                            out.control.get_or_insert(chunk_start + i);
                        }
                    }
                }
            }
            let (chunk_len, got) = match stop {
                Some(i) if window[i] == b'\n' => (i + 1, i + 1),
                Some(z) => {
                    out.nul.get_or_insert(chunk_start + z);
                    let len = find(&window[z..], b'\n').map_or(max, |j| z + j + 1);
                    (len, z)
                }
                None => (max, max),
            };
            let chunk = &window[..chunk_len];
            self.pos += chunk_len;
            if chunk.last() == Some(&b'\n') {
                out.newlines += 1;
                out.last_newline = Some(self.pos - 1);
            }
            if got >= 1 && chunk[got - 1] == b'\n' {
                if got >= 2 && chunk[got - 2] == b'\\' {
                    push(&mut out.segs, chunk_start..chunk_start + got - 2);
                    room -= got - 2;
                    continue;
                }
                push(&mut out.segs, chunk_start..chunk_start + got);
                out.terminated = true;
                break;
            }
            push(&mut out.segs, chunk_start..chunk_start + got);
            room -= got;
        }
        if out.overlong && self.resync_after_overlong {
            self.pos = match find(&src[self.pos..], b'\n') {
                Some(i) => {
                    out.newlines += 1;
                    out.last_newline = Some(self.pos + i);
                    self.pos + i + 1
                }
                None => src.len(),
            };
        }
        out.span = start..self.pos;
    }
}

impl<'a> Scanner<'a> {
    /// Passes over `len` bytes. A caller may pass over a physical line whose newline comes
    /// within the buffer (`BUFLEN - 1` bytes from the position) and that holds no NUL or other
    /// control byte but tab and CR and does not end in backslash-newline: that line is what
    /// [`Scanner::next_into`] reads next as one plain, terminated logical line (the case
    /// `plain_line` takes).
    pub(crate) fn consume(&mut self, len: usize) {
        self.pos += len;
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
}

impl Scanner<'_> {
    /// The common case in one step: a physical line that fits the buffer, ends in `\n` (not
    /// backslash-newline) and holds no NUL or other control byte (tab and CR are fine). The
    /// general loop in [`Scanner::next_into`] reads such a line as one chunk to the same
    /// result (tests below). `out` is already cleared; false: not such a line, nothing read.
    fn plain_line(&mut self, out: &mut RawLine) -> bool {
        let src = self.src;
        let start = self.pos;
        let window = &src[start..src.len().min(start + BUFLEN - 1)];
        let Some(nl) = memchr::memchr(b'\n', window) else {
            return false;
        };
        let line = &window[..nl];
        if line.last() == Some(&b'\\') || has_control(line) {
            return false;
        }
        let end = start + nl + 1;
        out.segs.push(start..end);
        out.terminated = true;
        out.newlines = 1;
        out.last_newline = Some(end - 1);
        out.span = start..end;
        self.pos = end;
        true
    }
}

/// Some byte is a control byte other than tab and CR (NUL and LF included).
fn has_control(b: &[u8]) -> bool {
    let mut i = 0;
    while i + 8 <= b.len() {
        let w = swar::word(b, i);
        if swar::has_less(w, 0x20) || swar::has_byte(w, 0x7f) {
            break;
        }
        i += 8;
    }
    b[i..]
        .iter()
        .any(|&c| (c < 0x20 && c != b'\t' && c != b'\r') || c == 0x7f)
}

/// Appends a segment, merging it with the previous one when contiguous and dropping empties.
fn push(segs: &mut Vec<Range<usize>>, r: Range<usize>) {
    if r.is_empty() {
        return;
    }
    if let Some(last) = segs.last_mut() {
        if last.end == r.start {
            last.end = r.end;
            return;
        }
    }
    segs.push(r);
}

/// The logical text of a line: borrowed when it is one contiguous source range, else copied
/// into `buf`.
pub(crate) fn logical<'b>(src: &'b [u8], line: &RawLine, buf: &'b mut Vec<u8>) -> &'b [u8] {
    match line.segs.as_slice() {
        [] => &[],
        [one] => &src[one.clone()],
        many => {
            buf.clear();
            for s in many {
                buf.extend_from_slice(&src[s.clone()]);
            }
            buf
        }
    }
}

/// Maps an offset in the logical text back to its source offset.
pub(crate) fn to_source(line: &RawLine, logical_off: usize) -> usize {
    let mut base = 0;
    for s in &line.segs {
        let len = s.end - s.start;
        if logical_off < base + len {
            return s.start + (logical_off - base);
        }
        base += len;
    }
    // Past the end (e.g. an empty logical line): point at the end of the last segment.
    line.segs.last().map_or(line.span.start, |s| s.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// Every line through the general loop alone: the reference for `plain_line`.
    fn general_lines(src: &[u8]) -> Vec<RawLine> {
        let mut s = Scanner::new(src);
        let mut v = Vec::new();
        let mut l = RawLine::default();
        loop {
            if s.pos >= src.len() {
                return v;
            }
            // Force the general loop: a plain line is read by it when plain_line is skipped.
            let before = s.pos;
            let mut probe = RawLine::default();
            let mut copy = Scanner {
                src,
                pos: before,
                resync_after_overlong: true,
            };
            let plain = copy.plain_line(&mut probe);
            assert!(s.next_into(&mut l));
            if plain {
                let mut general = Scanner {
                    src,
                    pos: before,
                    resync_after_overlong: true,
                };
                let mut g = RawLine::default();
                general.general(&mut g);
                assert_eq!(g, l, "{:?} at {before}", String::from_utf8_lossy(src));
                assert_eq!(general.pos, s.pos);
            }
            v.push(l.clone());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn plain_line_agrees_with_the_general_loop(
            pieces in prop::collection::vec(prop_oneof![
                Just(b"sshd: 10.0.0.1".to_vec()), Just(b"\n".to_vec()), Just(b"\r\n".to_vec()),
                Just(b"\\\n".to_vec()), Just(b"\\".to_vec()), Just(b"\t".to_vec()), Just(b"\0".to_vec()),
                Just(b"\x07".to_vec()), Just(b"\x7f".to_vec()), Just(b"\r".to_vec()),
                Just(vec![b'x'; 700]), prop::collection::vec(any::<u8>(), 0..12),
            ], 0..30)
        ) {
            general_lines(&pieces.concat());
        }
    }

    #[test]
    fn newline_and_control_bookkeeping() {
        let src = b"a\x07b\\\nc\n\0\x01\nd\n";
        let mut s = Scanner::new(src);
        let mut l = RawLine::default();
        assert!(s.next_into(&mut l));
        assert_eq!(
            (l.newlines, l.last_newline, l.control),
            (2, Some(6), Some(1))
        );
        assert!(s.next_into(&mut l));
        // The control byte after the NUL is not part of the logical text.
        assert_eq!((l.newlines, l.nul, l.control), (2, Some(7), None));
        assert!(!s.next_into(&mut l));
    }

    fn lines(src: &[u8]) -> Vec<(Vec<u8>, bool, bool, Range<usize>)> {
        let mut s = Scanner::new(src);
        let mut l = RawLine::default();
        let mut buf = Vec::new();
        let mut v = Vec::new();
        while s.next_into(&mut l) {
            let text = logical(src, &l, &mut buf).to_vec();
            v.push((text, l.terminated, l.overlong, l.span.clone()));
        }
        v
    }

    #[test]
    fn plain_lines() {
        let v = lines(b"a: b\n\nc: d\n");
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].0, b"a: b\n");
        assert!(v[0].1);
        assert_eq!(v[1].0, b"\n");
        assert_eq!(v[2].3, 6..11);
    }

    #[test]
    fn continuation_joins_without_space() {
        let v = lines(b"ss\\\nhd: a\\\n b\n");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, b"sshd: a b\n");
        assert_eq!(v[0].3, 0..14);
    }

    #[test]
    fn backslash_crlf_and_backslash_space_do_not_join() {
        assert_eq!(lines(b"a \\\r\nb\n").len(), 2);
        assert_eq!(lines(b"a \\ \nb\n").len(), 2);
    }

    #[test]
    fn missing_final_newline() {
        let v = lines(b"a: b\nc: d");
        assert_eq!(v[1].0, b"c: d");
        assert!(!v[1].1 && !v[1].2);
        let v = lines(b"a: b\\\n");
        assert_eq!(v[0].0, b"a: b");
        assert!(!v[0].1);
    }

    #[test]
    fn limit_is_2047_bytes_with_newline() {
        let mut ok = vec![b'x'; 2046];
        ok.push(b'\n');
        let v = lines(&ok);
        assert!(v[0].1 && !v[0].2);
        let mut long = vec![b'x'; 2047];
        long.extend_from_slice(b"\nnext: x\n");
        let v = lines(&long);
        assert!(!v[0].1 && v[0].2);
        assert_eq!(v[0].0.len(), 2047);
        // The tail of the over-long line is skipped with it.
        assert_eq!(v[0].3, 0..2048);
        assert_eq!(v[1].0, b"next: x\n");
    }

    #[test]
    fn limit_applies_to_joined_line() {
        let mut src = vec![b'a'; 1500];
        src.extend_from_slice(b"\\\n");
        src.extend_from_slice(&[b'b'; 600]);
        src.push(b'\n');
        let v = lines(&src);
        assert!(v[0].2, "1500 + 600 joined bytes overflow the buffer");
    }

    #[test]
    fn nul_glues_next_line() {
        let v = lines(b"ab\0c\nsshd: ALL\n");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, b"absshd: ALL\n");
        assert!(v[0].1);
        let v = lines(b"\0junk\nsshd: ALL\n");
        assert_eq!(v[0].0, b"sshd: ALL\n");
        let v = lines(b"x\0\n");
        assert_eq!(v[0].0, b"x");
        assert!(!v[0].1);
        let v = lines(b"\0\n");
        assert_eq!(v.len(), 1);
        assert!(v[0].0.is_empty());
    }

    #[test]
    fn cr_only_file_is_one_chunk() {
        let v = lines(b"a: b\rc: d\r");
        assert_eq!(v.len(), 1);
        assert!(!v[0].1);
    }

    #[test]
    fn source_mapping() {
        let src = b"ss\\\nhd: a\n";
        let mut s = Scanner::new(src);
        let mut l = RawLine::default();
        assert!(s.next_into(&mut l));
        assert_eq!(to_source(&l, 0), 0);
        assert_eq!(to_source(&l, 2), 4);
        assert_eq!(to_source(&l, 4), 6);
    }
}
