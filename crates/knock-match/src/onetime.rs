//! knockd's one-time sequences file format: one sequence per line, comma-separated
//! `port[:proto]` steps, `#` starts a comment (knockd marks used lines by writing a `#` at their
//! start, so such lines are skipped), blank lines ignored.

use thiserror::Error;

use crate::door::{Step, MAX_STEPS};

/// A line of a one-time sequences file that is not a valid sequence. `line` and `column` are
/// 1-based; `column` counts characters.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{line}:{column}: {message}")]
pub struct OneTimeError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses the whole file into its sequences, in file order. Any invalid line is an error (a
/// typo must not silently shift which sequence is next).
pub fn parse_one_time(text: &str) -> Result<Vec<Vec<Step>>, OneTimeError> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let content = match raw.find('#') {
            Some(i) => &raw[..i],
            None => raw,
        };
        if content.trim().is_empty() {
            continue;
        }
        let mut steps = Vec::new();
        let mut offset = 0usize; // byte offset of the current token within the line
        for token in content.split(',') {
            let lead = token.len() - token.trim_start().len();
            let column = raw[..offset + lead].chars().count() + 1;
            let step: Step = token.parse().map_err(|e| OneTimeError {
                line: line_no,
                column,
                message: format!("{e}"),
            })?;
            steps.push(step);
            offset += token.len() + 1;
        }
        if let Some(why) = crate::door::sweep_shaped(&steps) {
            return Err(OneTimeError {
                line: line_no,
                column: raw.len() - raw.trim_start().len() + 1,
                message: why,
            });
        }
        if steps.len() > MAX_STEPS {
            return Err(OneTimeError {
                line: line_no,
                column: 1,
                message: format!(
                    "sequence has {} steps, at most {MAX_STEPS} allowed",
                    steps.len()
                ),
            });
        }
        out.push(steps);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_knockd_files() {
        let text = "# header comment\n\
                    7000,8000:udp,9000:tcp\n\
                    \n\
                    #1111,2222 (used by knockd)\n\
                    \t 1234:UDP , 4321  # trailing comment\r\n\
                    5,9\n";
        assert_eq!(
            parse_one_time(text).unwrap(),
            vec![
                vec![Step::tcp(7000), Step::udp(8000), Step::tcp(9000)],
                vec![Step::udp(1234), Step::tcp(4321)],
                vec![Step::tcp(5), Step::tcp(9)],
            ]
        );
    }

    #[test]
    fn reports_line_and_column() {
        let cases = [
            ("7000,8000\n7000,80x0\n", 2, 6),
            ("1,3\n\n  3,,4\n", 3, 5),
            ("1,3\n  7000,7001,7002\n", 2, 3),
            ("1,3\n4444\n", 2, 1),
            ("99999\n", 1, 1),
            ("1:tcp, 2:sctp\n", 1, 8),
            ("1,2,\n", 1, 5),
        ];
        for (text, line, column) in cases {
            let err = parse_one_time(text).unwrap_err();
            assert_eq!((err.line, err.column), (line, column), "{text:?}: {err}");
        }
        let long = (1..=33)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(parse_one_time(&long).unwrap_err().line, 1);
        let ok32 = (1..=32)
            .map(|p| (p * 2).to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(parse_one_time(&ok32).unwrap()[0].len(), 32);
    }

    #[test]
    fn empty_file_has_no_sequences() {
        assert_eq!(
            parse_one_time("# nothing\n\n").unwrap(),
            Vec::<Vec<Step>>::new()
        );
    }
}
