//! The parsed form of a hosts_access file: logical lines as libwrap's `xgets` assembles them,
//! with the source bytes each one came from, so rendering gives back the input exactly.

use std::ops::Range;

/// A parsed hosts_access file. Never fails: every byte belongs to exactly one logical line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    source: Vec<u8>,
    lines: Vec<LogicalLine>,
}

/// What a logical line is to libwrap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// Only blanks (` \t\r\n`).
    Blank,
    /// Starts with `#` in column 1.
    Comment,
    /// A rule (possibly broken; the validator says how).
    Rule,
}

/// One logical line: one or more physical lines joined by backslash-newline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalLine {
    /// The source bytes, terminators and continuations included.
    pub span: Range<usize>,
    /// 1-based number of its first physical line.
    pub line: usize,
    pub kind: LineKind,
}

/// Parse `bytes`. Never fails.
pub fn parse(bytes: &[u8]) -> Document {
    let lines = if bytes.is_empty() {
        Vec::new()
    } else {
        vec![LogicalLine {
            span: 0..bytes.len(),
            line: 1,
            kind: LineKind::Rule,
        }]
    };
    Document {
        source: bytes.to_vec(),
        lines,
    }
}

impl Document {
    /// The bytes this document stands for; equal to the parsed input when unmodified.
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
    pub fn text(&self, line: &LogicalLine) -> &[u8] {
        &self.source[line.span.clone()]
    }
}
