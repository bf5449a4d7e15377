//! The parsed form of a hosts_access file: logical lines as libwrap's `xgets` assembles them,
//! each with the source bytes it came from (so rendering gives back the input exactly) and,
//! for rules, the daemon, client and option fields as libwrap splits them.

use std::ops::Range;

use crate::lines::LineCounter;
use crate::options;
use crate::scan::{logical, to_source, RawLine, Scanner};
use crate::syntax::{chop, shape, tokens, Shape};

/// A parsed hosts_access file. Never fails: every byte belongs to exactly one logical line,
/// in order, so [`Document::render`] reproduces the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    source: Vec<u8>,
    lines: Vec<LogicalLine>,
}

/// One logical line: one or more physical lines joined by backslash-newline (or glued after a
/// NUL), as libwrap reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalLine {
    /// The source bytes it consumed, terminators and continuations included.
    pub span: Range<usize>,
    /// 1-based number of the physical line it starts on.
    pub line: usize,
    /// The logical text as libwrap sees it (continuations removed, NUL-truncated chunks cut).
    pub text: Vec<u8>,
    /// The text ends with a newline. When false and the line has text (kind
    /// [`LineKind::Unterminated`]: last line without newline, over-long line), Debian's libwrap
    /// stops reading the file at this line.
    pub terminated: bool,
    pub kind: LineKind,
}

/// What a logical line is to libwrap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// Only blanks (` \t\r\n`).
    Blank,
    /// `#` in column 1 (a continued comment swallows the following lines).
    Comment,
    /// No unbracketed `:`: libwrap skips it.
    MissingColon,
    /// A newline-less chunk (over-long line, or last line without newline): not parsed further.
    Unterminated,
    Rule(Rule),
}

/// `daemons : clients [: options]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub daemons: Vec<Token>,
    pub clients: Vec<Token>,
    /// None when the rule has no second `:`.
    pub options: Option<Vec<OptionField>>,
}

/// A list entry (pattern or `EXCEPT`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: Vec<u8>,
    /// Source offset of its first byte.
    pub offset: usize,
}

/// One `:`-separated option, split into name and value as libwrap does (`\:` unescaped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionField {
    pub name: Vec<u8>,
    pub value: Option<Vec<u8>>,
    /// Source offset of the field's first non-blank byte (or of the field when empty).
    pub offset: usize,
}

/// Parse `bytes`. Never fails.
pub fn parse(bytes: &[u8]) -> Document {
    let mut lines = Vec::new();
    let mut scanner = Scanner::new(bytes);
    let mut raw = RawLine::default();
    let mut buf = Vec::new();
    let mut counter = LineCounter::default();
    while scanner.next_into(&mut raw) {
        let line = counter.line();
        counter.skip(&raw);
        let text = logical(bytes, &raw, &mut buf);
        let kind = if raw.stops_reading() {
            LineKind::Unterminated
        } else if !raw.terminated {
            // Only NUL-truncated bytes before the end: xgets reports a clean end of file.
            LineKind::Blank
        } else {
            match shape(text) {
                Shape::Blank => LineKind::Blank,
                Shape::Comment => LineKind::Comment,
                Shape::MissingColon => LineKind::MissingColon,
                Shape::Rule {
                    daemons,
                    clients,
                    options,
                } => {
                    let list = |r: Range<usize>| {
                        tokens(text, r)
                            .map(|t| Token {
                                offset: to_source(&raw, t.start),
                                text: text[t].to_vec(),
                            })
                            .collect()
                    };
                    LineKind::Rule(Rule {
                        daemons: list(daemons),
                        clients: list(clients),
                        options: options.map(|part| {
                            options::fields(text, part)
                                .into_iter()
                                .map(|f| {
                                    let first = chop(text, f.raw.clone()).start;
                                    OptionField {
                                        name: unescape(&text[f.name.clone()], f.escaped),
                                        value: f.value.map(|v| unescape(&text[v], f.escaped)),
                                        offset: to_source(&raw, first),
                                    }
                                })
                                .collect()
                        }),
                    })
                }
            }
        };
        lines.push(LogicalLine {
            span: raw.span.clone(),
            line,
            text: text.to_vec(),
            terminated: raw.terminated,
            kind,
        });
    }
    Document {
        source: bytes.to_vec(),
        lines,
    }
}

/// `get_field` turns `\:` into `:`.
fn unescape(b: &[u8], escaped: bool) -> Vec<u8> {
    if !escaped {
        return b.to_vec();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b':') {
            i += 1;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

impl Document {
    /// The bytes this document stands for: the source of every logical line, in order.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.source.len());
        for l in &self.lines {
            out.extend_from_slice(&self.source[l.span.clone()]);
        }
        out
    }

    /// The logical lines, in file order.
    pub fn lines(&self) -> &[LogicalLine] {
        &self.lines
    }

    /// The source bytes of one logical line.
    pub fn source_of(&self, line: &LogicalLine) -> &[u8] {
        &self.source[line.span.clone()]
    }

    /// The rules, in order, up to the first line Debian's libwrap stops at.
    pub fn effective_rules(&self) -> impl Iterator<Item = (&LogicalLine, &Rule)> {
        self.lines
            .iter()
            .take_while(|l| l.terminated || l.kind != LineKind::Unterminated)
            .filter_map(|l| match &l.kind {
                LineKind::Rule(r) => Some((l, r)),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(t: &[Token]) -> Vec<&[u8]> {
        t.iter().map(|t| t.text.as_slice()).collect()
    }

    #[test]
    fn renders_back() {
        for src in [
            &b""[..],
            b"a: b\n",
            b"x",
            b"\r\r\r",
            b"a\\\nb: c\\",
            b"\0\n\0",
            b"# c\n\n  sshd: 10.0.0.1 : allow\r\n",
        ] {
            assert_eq!(parse(src).render(), src);
        }
    }

    #[test]
    fn rule_fields() {
        let d = parse(b"# c\nsshd, in.ftpd@10.0.0.1: 10.0.0.1 EXCEPT \\\n alice@10.0.0.2 : spawn echo a\\:b : ALLOW\n");
        assert_eq!(d.lines().len(), 2);
        assert_eq!(d.lines()[0].kind, LineKind::Comment);
        let l = &d.lines()[1];
        assert_eq!(l.line, 2);
        let LineKind::Rule(r) = &l.kind else {
            panic!("{:?}", l.kind)
        };
        assert_eq!(texts(&r.daemons), vec![&b"sshd"[..], b"in.ftpd@10.0.0.1"]);
        assert_eq!(
            texts(&r.clients),
            vec![&b"10.0.0.1"[..], b"EXCEPT", b"alice@10.0.0.2"]
        );
        assert_eq!(r.clients[2].offset, 47);
        let o = r.options.as_ref().unwrap();
        assert_eq!(o[0].name, b"spawn");
        assert_eq!(o[0].value.as_deref(), Some(&b"echo a:b"[..]));
        assert_eq!(o[1].name, b"ALLOW");
        assert_eq!(o[1].value, None);
        assert_eq!(d.effective_rules().count(), 1);
    }

    #[test]
    fn kinds() {
        let d = parse(b"\nx y\nsshd: a\nlast: b");
        let k: Vec<_> = d.lines().iter().map(|l| &l.kind).collect();
        assert_eq!(k[0], &LineKind::Blank);
        assert_eq!(k[1], &LineKind::MissingColon);
        assert!(matches!(k[2], LineKind::Rule(_)));
        assert_eq!(k[3], &LineKind::Unterminated);
        assert_eq!(d.effective_rules().count(), 1);
    }
}
