//! Configuration diagnostics: `path:line:column: message`, built from byte spans.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a configuration (or in a file it names). `line` and `column` are 1-based;
/// `column` counts characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// 1-based line and column (in characters) of a byte offset; offsets past the end, or inside
/// a character, are clamped.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Collects diagnostics for one source text.
pub(crate) struct Sink<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    pub errors: Vec<ConfigError>,
}

impl<'a> Sink<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Sink<'a> {
        Sink {
            path,
            text,
            errors: Vec::new(),
        }
    }

    pub fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_col(self.text, span.start);
        self.errors.push(ConfigError {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        });
    }

    pub fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }
}

/// The text of the file at `path`; a read failure is an error at 1:1, bytes that are not
/// UTF-8 an error at the first bad one. `what` names the file in messages ("configuration").
pub(crate) fn read_text(path: &Path, what: &str) -> Result<String, ConfigErrors> {
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read {what}: {e}"),
        }])
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(
            &String::from_utf8_lossy(e.as_bytes()),
            e.utf8_error().valid_up_to(),
        );
        ConfigErrors(vec![ConfigError {
            path: path.to_path_buf(),
            line,
            column,
            message: format!("{what} is not valid UTF-8"),
        }])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_to_line_and_column() {
        let t = "ab\ncdé\nf";
        let cases = [
            (0, (1, 1)),
            (1, (1, 2)),
            (3, (2, 1)),
            (5, (2, 3)),
            (6, (2, 3)),
            (7, (2, 4)),
            (8, (3, 1)),
            (99, (3, 2)),
        ];
        for (off, want) in cases {
            assert_eq!(line_col(t, off), want, "offset {off}");
        }
    }

    #[test]
    fn display() {
        let e = ConfigError {
            path: "/etc/k.toml".into(),
            line: 3,
            column: 7,
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "/etc/k.toml:3:7: bad");
        let all = ConfigErrors(vec![e.clone(), e]);
        assert_eq!(
            all.to_string(),
            "/etc/k.toml:3:7: bad\n/etc/k.toml:3:7: bad"
        );
    }
}
