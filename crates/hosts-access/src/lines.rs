//! Physical line and byte column of source offsets, computed incrementally during one pass.

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
    /// Moves the checkpoint forward to `off` (never backwards) and returns its line.
    pub(crate) fn line_of(&mut self, src: &[u8], off: usize) -> usize {
        let off = off.min(src.len());
        if off > self.pos {
            for (i, &b) in src[self.pos..off].iter().enumerate() {
                if b == b'\n' {
                    self.line += 1;
                    self.line_start = self.pos + i + 1;
                }
            }
            self.pos = off;
        }
        self.line
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

    #[test]
    fn counts_lines_and_columns() {
        let src = b"ab\ncd\\\nef\n";
        let mut c = LineCounter::default();
        assert_eq!(c.line_of(src, 0), 1);
        assert_eq!(c.locate(src, 1), (1, 2));
        assert_eq!(c.line_of(src, 3), 2);
        assert_eq!(c.locate(src, 3), (2, 1));
        assert_eq!(c.locate(src, 8), (3, 2));
        assert_eq!(c.line_of(src, 1), 2, "never moves back");
    }
}
