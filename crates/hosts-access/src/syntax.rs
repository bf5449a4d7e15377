//! The rule syntax of one logical line, as `table_match`, `split_at`, `strtok` and the options
//! parser (`get_field`, `chop_string`) cut it up. All positions are offsets into the logical
//! text; nothing here allocates.

use std::ops::Range;

use crate::swar;

/// Separators of daemon and client lists (`sep` in hosts_access.c).
pub(crate) fn is_list_sep(b: u8) -> bool {
    LIST_SEP[usize::from(b)]
}

/// Lookup table for `is_list_sep` (hot in the validator).
static LIST_SEP: [bool; 256] = {
    let mut t = [false; 256];
    t[b',' as usize] = true;
    t[b' ' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\r' as usize] = true;
    t[b'\n' as usize] = true;
    t
};

/// `isspace` in the C locale.
pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// libwrap's `split_at`: the first `delim` outside `[...]`. The bracket count is a plain
/// counter, so a stray `]` hides every later delimiter, as in C.
pub(crate) fn split_at(s: &[u8], delim: u8) -> Option<usize> {
    let mut depth: i32 = 0;
    // Outside brackets, skip words holding neither the delimiter nor a bracket.
    let mut skip = 0;
    while skip + 8 <= s.len() {
        let w = swar::word(s, skip);
        if swar::has_byte(w, delim) || swar::has_byte(w, b'[') || swar::has_byte(w, b']') {
            break;
        }
        skip += 8;
    }
    for (i, &b) in s.iter().enumerate().skip(skip) {
        match b {
            b'[' => depth += 1,
            b']' => depth -= 1,
            _ if depth == 0 && b == delim => return Some(i),
            _ => {}
        }
    }
    None
}

/// `split_at` for short tokens, where the delimiter is usually absent: a quick `memchr`
/// first.
pub(crate) fn split_token(tok: &[u8], delim: u8) -> Option<usize> {
    if tok.contains(&delim) {
        split_at(tok, delim)
    } else {
        None
    }
}

/// What a logical line is to `table_match`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Only ` \t\r\n` (or nothing).
    Blank,
    /// `#` in column 1.
    Comment,
    /// No unbracketed `:`: libwrap skips the line.
    MissingColon,
    /// `daemons : clients [: options]`; ranges into the logical text, separators excluded.
    Rule {
        daemons: Range<usize>,
        clients: Range<usize>,
        options: Option<Range<usize>>,
    },
}

pub(crate) fn shape(text: &[u8]) -> Shape {
    if text.first() == Some(&b'#') {
        return Shape::Comment;
    }
    if text
        .iter()
        .all(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return Shape::Blank;
    }
    let Some(c1) = split_at(text, b':') else {
        return Shape::MissingColon;
    };
    let rest = c1 + 1;
    match split_at(&text[rest..], b':') {
        Some(c2) => Shape::Rule {
            daemons: 0..c1,
            clients: rest..rest + c2,
            options: Some(rest + c2 + 1..text.len()),
        },
        None => Shape::Rule {
            daemons: 0..c1,
            clients: rest..text.len(),
            options: None,
        },
    }
}

/// `strtok(list, ", \t\r\n")`: the tokens of a list field, as ranges offset by `base`.
pub(crate) fn tokens(text: &[u8], field: Range<usize>) -> Tokens<'_> {
    Tokens {
        text,
        pos: field.start,
        end: field.end,
    }
}

pub(crate) struct Tokens<'a> {
    text: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Tokens<'a> {
    /// The whole logical text the ranges index into.
    pub(crate) fn text(&self) -> &'a [u8] {
        self.text
    }
}

impl Iterator for Tokens<'_> {
    type Item = Range<usize>;
    fn next(&mut self) -> Option<Range<usize>> {
        while self.pos < self.end && is_list_sep(self.text[self.pos]) {
            self.pos += 1;
        }
        if self.pos >= self.end {
            return None;
        }
        let start = self.pos;
        while self.pos < self.end && !is_list_sep(self.text[self.pos]) {
            self.pos += 1;
        }
        Some(start..self.pos)
    }
}

/// `EXCEPT`, in any case (`strcasecmp`).
pub(crate) fn is_except(tok: &[u8]) -> bool {
    tok.eq_ignore_ascii_case(b"EXCEPT")
}

/// One `:`-separated option field as `get_field` yields it: the raw range (without the
/// terminating `:`), whether it contains `\:` escapes, and whether the rule ends right after
/// its colon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawField {
    pub range: Range<usize>,
    pub escaped: bool,
}

/// Splits the options part at every `:` not preceded by `\` (not bracket-aware, unlike
/// `split_at`). Mirrors `get_field`: an empty remainder ends the list, but a remainder of just
/// the newline is a field (an empty one, hence "missing option name").
pub(crate) fn option_fields(text: &[u8], part: Range<usize>) -> OptionFields<'_> {
    OptionFields {
        text,
        pos: part.start,
        end: part.end,
    }
}

pub(crate) struct OptionFields<'a> {
    text: &'a [u8],
    pos: usize,
    end: usize,
}

impl Iterator for OptionFields<'_> {
    type Item = RawField;
    fn next(&mut self) -> Option<RawField> {
        if self.pos >= self.end {
            return None;
        }
        let start = self.pos;
        let mut escaped = false;
        let mut i = start;
        while i < self.end {
            match self.text[i] {
                b':' => {
                    self.pos = i + 1;
                    return Some(RawField {
                        range: start..i,
                        escaped,
                    });
                }
                b'\\' if i + 1 < self.end && self.text[i + 1] == b':' => {
                    escaped = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        self.pos = self.end;
        Some(RawField {
            range: start..self.end,
            escaped,
        })
    }
}

/// `chop_string`: the range without leading and trailing `isspace` bytes.
pub(crate) fn chop(text: &[u8], r: Range<usize>) -> Range<usize> {
    let mut s = r.start;
    let mut e = r.end;
    while s < e && is_space(text[s]) {
        s += 1;
    }
    while e > s && is_space(text[e - 1]) {
        e -= 1;
    }
    s..e
}

/// An option split into name and value as `process_options` does: the name runs to the first
/// of `= \t\r\n`; then blanks, at most one `=`, blanks; the value is the rest (None if empty).
/// `field` must already be chopped.
pub(crate) fn option_name_value(
    text: &[u8],
    field: Range<usize>,
) -> (Range<usize>, Option<Range<usize>>) {
    let is_ws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut i = field.start;
    while i < field.end && !(text[i] == b'=' || is_ws(text[i])) {
        i += 1;
    }
    let name = field.start..i;
    if i < field.end && text[i] != b'=' {
        i += 1;
        while i < field.end && is_ws(text[i]) {
            i += 1;
        }
    }
    if i < field.end && text[i] == b'=' {
        i += 1;
        while i < field.end && is_ws(text[i]) {
            i += 1;
        }
    }
    let value = (i < field.end).then_some(i..field.end);
    (name, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(t: &[u8], r: Range<usize>) -> Vec<&[u8]> {
        tokens(t, r).map(|x| &t[x]).collect()
    }

    #[test]
    fn split_at_skips_brackets() {
        assert_eq!(split_at(b"a[b:c]:d", b':'), Some(6));
        assert_eq!(split_at(b"a]b:c", b':'), None);
        assert_eq!(split_at(b"abc", b':'), None);
    }

    #[test]
    fn shapes() {
        assert_eq!(shape(b"# x\n"), Shape::Comment);
        assert_eq!(shape(b" \t\r\n"), Shape::Blank);
        assert_eq!(shape(b""), Shape::Blank);
        assert_eq!(shape(b"sshd 10.0.0.1\n"), Shape::MissingColon);
        assert!(matches!(shape(b"  # sshd: x\n"), Shape::Rule { .. }));
        assert_eq!(
            shape(b"a: b: c\n"),
            Shape::Rule {
                daemons: 0..1,
                clients: 2..4,
                options: Some(5..8)
            }
        );
        assert_eq!(
            shape(b"a: [::1]\n"),
            Shape::Rule {
                daemons: 0..1,
                clients: 2..9,
                options: None
            }
        );
    }

    #[test]
    fn list_tokens() {
        let t = b"a, b,,c\td\r\n";
        assert_eq!(toks(t, 0..t.len()), vec![&b"a"[..], b"b", b"c", b"d"]);
        assert!(toks(b" , ", 0..3).is_empty());
        assert_eq!(toks(b"10.0.0.1;", 0..9), vec![&b"10.0.0.1;"[..]]);
    }

    #[test]
    fn option_field_split() {
        let t = b" spawn a\\:b : deny\n";
        let f: Vec<_> = option_fields(t, 0..t.len()).collect();
        assert_eq!(f.len(), 2);
        assert_eq!(&t[f[0].range.clone()], b" spawn a\\:b ");
        assert!(f[0].escaped);
        assert_eq!(&t[f[1].range.clone()], b" deny\n");
        // A trailing colon before the newline leaves a field holding only the newline.
        let t = b" allow:\n";
        let f: Vec<_> = option_fields(t, 0..t.len()).collect();
        assert_eq!(f.len(), 2);
        assert_eq!(&t[f[1].range.clone()], b"\n");
        // Nothing at all after the last colon: no further field.
        let f: Vec<_> = option_fields(b"allow:", 0..6).collect();
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn name_value() {
        let t = b"spawn = echo hi";
        let (n, v) = option_name_value(t, 0..t.len());
        assert_eq!(&t[n], b"spawn");
        assert_eq!(&t[v.unwrap()], b"echo hi");
        let t = b"allow=";
        let (n, v) = option_name_value(t, 0..t.len());
        assert_eq!(&t[n], b"allow");
        assert!(v.is_none());
        let t = b"umask 022";
        let (_, v) = option_name_value(t, 0..t.len());
        assert_eq!(&t[v.unwrap()], b"022");
    }

    #[test]
    fn chop_blanks() {
        let t = b" \t x y \n";
        assert_eq!(&t[chop(t, 0..t.len())], b"x y");
        assert!(chop(b"\n", 0..1).is_empty());
    }
}
