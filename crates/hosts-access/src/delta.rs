//! Which validation errors an edit introduces, found by validating only the lines it changed.
//!
//! The writer refuses any result with an error its input did not have. Validating both whole
//! files costs a pass over every rule for each one-line edit; this module validates only the
//! changed region when that provably gives the same answer, and the whole files otherwise.
//!
//! Why it is exact: the scanner starts every logical line afresh (its state is only the
//! position), and every *error* the validator reports depends on its own logical line alone
//! (the cross-line checks, duplicates and shadowing, report warnings only). So when the edit
//! replaces whole logical lines, the lines before and after the region are the same in both
//! files and carry the same errors, and per code `errors(after) - errors(before)` equals
//! `errors(after's region) - errors(before's region)`. A region boundary is a logical line
//! boundary when it is the start or end of the file, or follows a physical line that ends in
//! `\n`, not in backslash-newline, and holds no NUL (a NUL glues the next physical line on).
//! When a boundary does not meet that, the whole files are validated
//! ([`introduced_errors_full`]).
//!
//! tests/delta.rs checks both the locality of every error and the agreement with the
//! whole-file answer over generated files and the conformance corpus.

use std::collections::HashMap;

use crate::diagnostic::{Diagnostic, Severity};
use crate::validate::validate;

/// Error diagnostics of `after` beyond those `before` had, counted per code (lines shift when
/// lines are added or removed, codes do not). Validates only the changed lines when that is
/// exact (see the module doc), else both whole files. Which occurrence of a code is reported
/// may differ from [`introduced_errors_full`] (the changed region's, not a later line's); the
/// codes and their counts never do.
pub fn introduced_errors(before: &[u8], after: &[u8]) -> Vec<Diagnostic> {
    match changed_region(before, after) {
        Some(r) => {
            let mut new = excess(&after[r.start..r.after_end], &before[r.start..r.before_end]);
            if !new.is_empty() {
                let shift = count_newlines(&after[..r.start]);
                for d in &mut new {
                    d.line += shift;
                }
            }
            new
        }
        None => introduced_errors_full(before, after),
    }
}

/// [`introduced_errors`] by validating both whole files: the reference, and the fallback.
pub fn introduced_errors_full(before: &[u8], after: &[u8]) -> Vec<Diagnostic> {
    excess(after, before)
}

/// Error diagnostics of `after` beyond `before`'s, per code. `before` is validated only when
/// `after` has errors.
fn excess(after: &[u8], before: &[u8]) -> Vec<Diagnostic> {
    let after_errors: Vec<Diagnostic> = errors(after);
    if after_errors.is_empty() {
        return after_errors;
    }
    let mut budget: HashMap<&'static str, usize> = HashMap::new();
    for d in errors(before) {
        *budget.entry(d.code).or_default() += 1;
    }
    let mut new = Vec::new();
    for d in after_errors {
        match budget.get_mut(d.code) {
            Some(n) if *n > 0 => *n -= 1,
            _ => new.push(d),
        }
    }
    new
}

fn errors(bytes: &[u8]) -> Vec<Diagnostic> {
    validate(bytes)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

/// The lines an edit changed: `before[start..before_end]` became `after[start..after_end]`,
/// and everything before `start` and from the ends on is the same bytes in both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: usize,
    pub before_end: usize,
    pub after_end: usize,
}

/// The changed region of an edit, widened to whole physical lines, when both of its ends are
/// logical line boundaries in both files (see the module doc); None otherwise (including when
/// nothing changed).
pub fn changed_region(before: &[u8], after: &[u8]) -> Option<Region> {
    if before == after {
        return None;
    }
    let p = common_prefix(before, after);
    // The common suffix may not overlap the common prefix.
    let s = common_suffix(&before[p..], &after[p..]);
    let start = memchr::memrchr(b'\n', &before[..p]).map_or(0, |i| i + 1);
    let (mut before_end, mut after_end) = (before.len() - s, after.len() - s);
    if !(at_line_start(before, before_end) && at_line_start(after, after_end)) {
        // Widen over the common suffix to the end of its first physical line (the same bytes
        // in both files).
        match memchr::memchr(b'\n', &before[before_end..]) {
            Some(i) => {
                before_end += i + 1;
                after_end += i + 1;
            }
            None => {
                before_end = before.len();
                after_end = after.len();
            }
        }
    }
    // `start` is a line start in both files but the end of neither: the line before it must
    // end a logical line whatever follows.
    let ok = (start == 0 || clean_line_before(before, start))
        && ends_logical_line(before, before_end)
        && ends_logical_line(after, after_end);
    ok.then_some(Region {
        start,
        before_end,
        after_end,
    })
}

fn at_line_start(b: &[u8], at: usize) -> bool {
    at == 0 || b[at - 1] == b'\n'
}

/// Does the scanner end a logical line at `at` (a physical line start, or the end of the
/// file)? Sure when `at` is the start or end of the file, or the physical line before it holds
/// no NUL and does not end in backslash-newline. (Other lines may end one too; they are not
/// worth the proof.)
fn ends_logical_line(b: &[u8], at: usize) -> bool {
    at == 0 || at == b.len() || clean_line_before(b, at)
}

/// The physical line that ends (with its `\n`) at `at` holds no NUL and does not end in
/// backslash-newline: the scanner ends a logical line there, whatever follows.
fn clean_line_before(b: &[u8], at: usize) -> bool {
    debug_assert_eq!(b[at - 1], b'\n');
    let line_start = memchr::memrchr(b'\n', &b[..at - 1]).map_or(0, |i| i + 1);
    let line = &b[line_start..at];
    !line.ends_with(b"\\\n") && memchr::memchr(0, line).is_none()
}

/// Length of the longest common prefix (compared a block at a time: memcmp-fast).
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 128;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Length of the longest common suffix.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 128;
    let n = a.len().min(b.len());
    let (la, lb) = (a.len(), b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[la - i - BLOCK..la - i] == b[lb - i - BLOCK..lb - i] {
        i += BLOCK;
    }
    while i < n && a[la - i - 1] == b[lb - i - 1] {
        i += 1;
    }
    i
}

fn count_newlines(b: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', b).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(b: &[u8], a: &[u8]) -> Option<(usize, usize, usize)> {
        changed_region(b, a).map(|r| (r.start, r.before_end, r.after_end))
    }

    #[test]
    fn regions_are_whole_lines() {
        // Append.
        assert_eq!(region(b"a: b\n", b"a: b\nc: d\n"), Some((5, 5, 10)));
        // Removal in the middle, and of a line equal to its neighbour's tail.
        assert_eq!(
            region(b"a: b\nc: d\ne: f\n", b"a: b\ne: f\n"),
            Some((5, 10, 5))
        );
        assert_eq!(region(b"x\nx\nx\n", b"x\nx\n"), Some((4, 6, 4)));
        // A change inside a line widens to the line.
        assert_eq!(region(b"a: b\nc: d\n", b"a: b\nc: e\n"), Some((5, 10, 10)));
        assert_eq!(region(b"ab: c\n", b"a: c\n"), Some((0, 6, 5)));
        // No newline at the end.
        assert_eq!(region(b"a: b", b"a: b\nc: d\n"), Some((0, 4, 10)));
        assert_eq!(region(b"a: b\n", b"a: b\n"), None);
    }

    #[test]
    fn unclean_boundaries_fall_back() {
        // The line before the region continues into it.
        assert_eq!(region(b"a: b \\\n", b"a: b \\\nc: d\n"), None);
        // A NUL glues the next physical line on.
        assert_eq!(region(b"a\0: b\n", b"a\0: b\nc: d\n"), None);
        assert_eq!(region(b"a\0\nc: d\ne: f\n", b"a\0\ne: f\n"), None);
        // The region's last line continues into the rest.
        assert_eq!(region(b"a: b\nc: d\n", b"a: b\nx \\\nc: d\n"), None);
    }

    #[test]
    fn same_codes_as_the_whole_files() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"a: b\n", b"a: b\nx\n"),
            (b"x\na: b\n", b"SSHD: 192.0.2.1\nx\na: b\n"),
            (b"x\n", b"x\ny\n"),
            (b"a: b\nfoo", b"a: b\nfoo\nSSHD: 192.0.2.1\n"),
            (b"x\0\nSSHD: 192.0.2.1\n", b"x\0\n"),
            (
                b"sshd: 10.0.0.1 \\\n",
                b"sshd: 10.0.0.1 \\\n\nSSHD: 1.2.3.4\n",
            ),
        ];
        for (b, a) in cases {
            let codes = |v: Vec<Diagnostic>| {
                let mut c: Vec<_> = v.into_iter().map(|d| d.code).collect();
                c.sort_unstable();
                c
            };
            assert_eq!(
                codes(introduced_errors(b, a)),
                codes(introduced_errors_full(b, a)),
                "{:?} -> {:?}",
                String::from_utf8_lossy(b),
                String::from_utf8_lossy(a)
            );
        }
        // The new error is reported on its own line.
        let d = introduced_errors(b"a: b\nc: d\n", b"a: b\nc: d\nbroken\n");
        assert_eq!((d[0].line, d[0].column, d[0].code), (3, 1, "missing-colon"));
    }
}
