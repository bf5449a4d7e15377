//! Physical line and byte column of source offsets, computed incrementally during one pass.

use crate::scan::RawLine;

/// Tracks the physical line (1-based, lines end at `\n`) of a moving checkpoint; offsets at or
/// after the checkpoint are located by counting from it.
#[derive(Clone, Debug)]
pub(crate) struct LineCounter {
    pos: usize,
    line: usize,
    line_start: usize,
}

impl Default for LineCounter {
    fn default() -> Self {
        LineCounter {
            pos: 0,
            line: 1,
            line_start: 0,
        }
    }
}

impl LineCounter {
    /// The checkpoint's line (1-based).
    pub(crate) fn line(&self) -> usize {
        self.line
    }

    /// Moves the checkpoint to the end of a scanned logical line, using the scanner's newline
    /// bookkeeping instead of re-reading the bytes.
    pub(crate) fn skip(&mut self, raw: &RawLine) {
        self.line += raw.newlines;
        if let Some(nl) = raw.last_newline {
            self.line_start = nl + 1;
        }
        self.pos = raw.span.end;
    }

    /// Moves the checkpoint past `count` physical lines, the last of whose newlines is at `nl`.
    pub(crate) fn skip_newlines(&mut self, count: usize, nl: usize) {
        self.line += count;
        self.line_start = nl + 1;
        self.pos = nl + 1;
    }

    /// Line and 1-based byte column of `off`, which must not precede the checkpoint.
    pub(crate) fn locate(&self, src: &[u8], off: usize) -> (usize, usize) {
        let off = off.min(src.len()).max(self.pos);
        let mut line = self.line;
        let mut start = self.line_start;
        for (i, &b) in src[self.pos..off].iter().enumerate() {
            if b == b'\n' {
                line += 1;
                start = self.pos + i + 1;
            }
        }
        (line, off - start + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Scanner;

    #[test]
    fn counts_lines_and_columns() {
        let src = b"ab\ncd\\\nef\n";
        let mut scanner = Scanner::new(src);
        let mut raw = RawLine::default();
        let mut c = LineCounter::default();
        assert!(scanner.next_into(&mut raw));
        assert_eq!(c.line(), 1);
        assert_eq!(c.locate(src, 1), (1, 2));
        c.skip(&raw);
        assert!(scanner.next_into(&mut raw));
        assert_eq!(c.line(), 2);
        assert_eq!(c.locate(src, 3), (2, 1));
        assert_eq!(c.locate(src, 8), (3, 2));
        c.skip(&raw);
        assert_eq!(c.line(), 4);
    }
}
