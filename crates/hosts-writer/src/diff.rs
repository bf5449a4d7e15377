//! A unified diff over lines, for `--dry-run`. Lines keep their terminators, so a CRLF or a
//! missing final newline shows exactly as it will be written.
//!
//! The edit script comes from `similar` (Myers, under a deadline); the `diff -u` formatting
//! stays here, because similar's line splitter and formatter also end a line at a bare `\r`,
//! which diff(1) does not.

use std::time::{Duration, Instant};

use similar::{capture_diff_slices_deadline, group_diff_ops, Algorithm, DiffOp};

/// How long the edit script may search for a short diff. Past it, similar settles for a longer
/// one (the rest removed and re-added), which is still correct: a pathological file cannot hang
/// the command.
const DEADLINE: Duration = Duration::from_secs(1);

/// Split into lines, each keeping its `\n` (the last may lack one).
fn lines(b: &[u8]) -> Vec<&[u8]> {
    b.split_inclusive(|c| *c == b'\n').collect()
}

fn push_line(out: &mut Vec<u8>, sign: u8, line: &[u8]) {
    out.push(sign);
    out.extend_from_slice(line);
    if !line.ends_with(b"\n") {
        out.extend_from_slice(b"\n\\ No newline at end of file\n");
    }
}

/// One side of a hunk header: `start,count`, or `start` alone for one line; an empty side
/// names the line after which it sits.
fn range(start: usize, end: usize) -> String {
    match end - start {
        0 => format!("{start},0"),
        1 => (start + 1).to_string(),
        n => format!("{},{n}", start + 1),
    }
}

/// Unified diff of `old` → `new` with `context` lines around each change, headed by the two
/// labels. Empty when the contents are equal.
pub fn unified(
    old: &[u8],
    new: &[u8],
    old_label: &str,
    new_label: &str,
    context: usize,
) -> Vec<u8> {
    let deadline = Instant::now().checked_add(DEADLINE);
    unified_until(old, new, old_label, new_label, context, deadline)
}

fn unified_until(
    old: &[u8],
    new: &[u8],
    old_label: &str,
    new_label: &str,
    context: usize,
    deadline: Option<Instant>,
) -> Vec<u8> {
    let (a, b) = (lines(old), lines(new));
    // Between two equal runs there is one op (a delete, an insert or a replace), which lists
    // its removed lines before its added ones, as diff(1) does.
    let ops = capture_diff_slices_deadline(Algorithm::Myers, &a, &b, deadline);
    let mut out = Vec::new();
    if ops.iter().all(|op| matches!(op, DiffOp::Equal { .. })) {
        return out;
    }
    out.extend_from_slice(format!("--- {old_label}\n+++ {new_label}\n").as_bytes());
    // Changes whose context windows touch share a hunk.
    for hunk in group_diff_ops(ops, context) {
        let (Some(first), Some(last)) = (hunk.first(), hunk.last()) else {
            continue;
        };
        let old_span = range(first.old_range().start, last.old_range().end);
        let new_span = range(first.new_range().start, last.new_range().end);
        out.extend_from_slice(format!("@@ -{old_span} +{new_span} @@\n").as_bytes());
        for op in &hunk {
            if let DiffOp::Equal { .. } = op {
                for i in op.old_range() {
                    push_line(&mut out, b' ', a[i]);
                }
            } else {
                for i in op.old_range() {
                    push_line(&mut out, b'-', a[i]);
                }
                for j in op.new_range() {
                    push_line(&mut out, b'+', b[j]);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Apply our own unified diff to `old`: the test that it describes `new` exactly.
    fn apply(old: &[u8], patch: &[u8]) -> Vec<u8> {
        let old_lines = lines(old);
        let mut out = Vec::new();
        let mut next_old = 0usize; // 0-based index of the next unconsumed old line
        let plines = lines(patch);
        let mut k = 2; // skip the --- / +++ headers
        while k < plines.len() {
            let h = std::str::from_utf8(plines[k]).unwrap();
            assert!(h.starts_with("@@ -"), "hunk header expected: {h:?}");
            let minus = h[4..].split(' ').next().unwrap();
            let (pos, count) = match minus.split_once(',') {
                Some((p, c)) => (p.parse::<usize>().unwrap(), c.parse::<usize>().unwrap()),
                None => (minus.parse::<usize>().unwrap(), 1),
            };
            let first = if count == 0 { pos } else { pos - 1 };
            while next_old < first {
                out.extend_from_slice(old_lines[next_old]);
                next_old += 1;
            }
            k += 1;
            while k < plines.len() && !plines[k].starts_with(b"@@") {
                let l = plines[k];
                let body = &l[1..];
                let no_nl =
                    k + 1 < plines.len() && plines[k + 1] == b"\\ No newline at end of file\n";
                let text: &[u8] = if no_nl { &body[..body.len() - 1] } else { body };
                match l[0] {
                    b' ' => {
                        assert_eq!(old_lines[next_old], text);
                        out.extend_from_slice(text);
                        next_old += 1;
                    }
                    b'-' => {
                        assert_eq!(old_lines[next_old], text);
                        next_old += 1;
                    }
                    b'+' => out.extend_from_slice(text),
                    _ => panic!("bad line {l:?}"),
                }
                k += if no_nl { 2 } else { 1 };
            }
        }
        while next_old < old_lines.len() {
            out.extend_from_slice(old_lines[next_old]);
            next_old += 1;
        }
        out
    }

    #[test]
    fn append_a_line_matches_diff_u() {
        let old = b"a\nb\nc\nd\ne\n";
        let new = b"a\nb\nc\nd\ne\nSSHD: 1.2.3.4\n";
        let d = unified(old, new, "a/f", "b/f", 3);
        assert_eq!(
            String::from_utf8(d).unwrap(),
            "--- a/f\n+++ b/f\n@@ -3,3 +3,4 @@\n c\n d\n e\n+SSHD: 1.2.3.4\n"
        );
    }

    #[test]
    fn removal_in_the_middle_and_missing_final_newline() {
        let old = b"1\n2\n3\n4\n5\n6\n7\n8\n9";
        let new = b"1\n2\n3\n4\n6\n7\n8\n9";
        let d = String::from_utf8(unified(old, new, "x", "y", 3)).unwrap();
        assert_eq!(
            d,
            "--- x\n+++ y\n@@ -2,7 +2,6 @@\n 2\n 3\n 4\n-5\n 6\n 7\n 8\n"
        );
        let d = String::from_utf8(unified(old, new, "x", "y", 4)).unwrap();
        assert!(d.ends_with(" 9\n\\ No newline at end of file\n"), "{d}");
        let d = String::from_utf8(unified(b"", b"SSHD: x\n", "x", "y", 3)).unwrap();
        assert_eq!(d, "--- x\n+++ y\n@@ -0,0 +1 @@\n+SSHD: x\n");
        let d = String::from_utf8(unified(b"a\nSSHD: x\n", b"a\n", "x", "y", 0)).unwrap();
        assert_eq!(d, "--- x\n+++ y\n@@ -2 +1,0 @@\n-SSHD: x\n");
    }

    #[test]
    fn equal_inputs_give_nothing() {
        assert!(unified(b"a\r\nb", b"a\r\nb", "x", "y", 3).is_empty());
    }

    #[test]
    fn a_bare_carriage_return_does_not_end_a_line() {
        // As diff(1) sees it: only `\n` ends a line, so the `\r` stays inside and the last
        // line still lacks its newline.
        let d = unified(
            b"a\rb\nc\nSSHD: x\r",
            b"a\rb\nc\nSSHD: x\r\nSSHD: y\n",
            "x",
            "y",
            3,
        );
        assert_eq!(
            String::from_utf8(d).unwrap(),
            "--- x\n+++ y\n@@ -1,3 +1,4 @@\n a\rb\n c\n-SSHD: x\r\n\\ No newline at end of file\n\
             +SSHD: x\r\n+SSHD: y\n"
        );
    }

    #[test]
    fn past_the_deadline_the_diff_is_longer_but_still_applies() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut file = || -> Vec<u8> {
            (0..3000)
                .flat_map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    format!("sshd: 10.0.0.{}\n", s % 16).into_bytes()
                })
                .collect()
        };
        let (old, new) = (file(), file());
        let past = Instant::now().checked_sub(Duration::from_millis(1));
        let late = unified_until(&old, &new, "x", "y", 3, past.or(Some(Instant::now())));
        assert_eq!(apply(&old, &late), new);
        let on_time = unified(&old, &new, "x", "y", 3);
        assert_eq!(apply(&old, &on_time), new);
        assert!(
            late.len() > on_time.len(),
            "{} vs {}",
            late.len(),
            on_time.len()
        );
    }

    proptest! {
        #[test]
        fn diff_applies_back(
            old in proptest::collection::vec(prop_oneof![Just("a\n"), Just("b\n"), Just("c\r\n"), Just("d")], 0..30),
            new in proptest::collection::vec(prop_oneof![Just("a\n"), Just("b\n"), Just("c\r\n"), Just("d")], 0..30),
            ctx in 0usize..4,
        ) {
            // Only the last line may lack a newline, as in a real file.
            let fix = |v: Vec<&str>| -> Vec<u8> {
                let n = v.len();
                v.into_iter().enumerate().flat_map(|(i, s)| {
                    if i + 1 < n && s == "d" { b"d\n".to_vec() } else { s.as_bytes().to_vec() }
                }).collect()
            };
            let (old, new) = (fix(old), fix(new));
            let d = unified(&old, &new, "x", "y", ctx);
            if old == new {
                prop_assert!(d.is_empty());
            } else {
                prop_assert_eq!(apply(&old, &d), new);
            }
        }
    }
}
