//! A unified diff over lines, for `--dry-run`. Lines keep their terminators, so a CRLF or a
//! missing final newline shows exactly as it will be written.

/// Split into lines, each keeping its `\n` (the last may lack one).
fn lines(b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in b.iter().enumerate() {
        if *c == b'\n' {
            out.push(&b[start..=i]);
            start = i + 1;
        }
    }
    if start < b.len() {
        out.push(&b[start..]);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal(usize, usize),
    Delete(usize),
    Insert(usize),
}

/// Largest middle (old × new lines) diffed with a full LCS table; beyond it the middle is shown
/// as removed and re-added, which is still a correct diff, only a longer one.
const LCS_LIMIT: usize = 4_000_000;

fn script(a: &[&[u8]], b: &[&[u8]]) -> Vec<Op> {
    let mut pre = 0;
    while pre < a.len() && pre < b.len() && a[pre] == b[pre] {
        pre += 1;
    }
    let mut suf = 0;
    while suf < a.len() - pre && suf < b.len() - pre && a[a.len() - 1 - suf] == b[b.len() - 1 - suf]
    {
        suf += 1;
    }
    let (am, bm) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut ops: Vec<Op> = (0..pre).map(|i| Op::Equal(i, i)).collect();
    if am.len().saturating_mul(bm.len()) <= LCS_LIMIT {
        // lcs[i][j] = LCS length of am[i..] and bm[j..].
        let w = bm.len() + 1;
        let mut lcs = vec![0u32; (am.len() + 1) * w];
        for i in (0..am.len()).rev() {
            for j in (0..bm.len()).rev() {
                lcs[i * w + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < am.len() || j < bm.len() {
            if i < am.len() && j < bm.len() && am[i] == bm[j] {
                ops.push(Op::Equal(pre + i, pre + j));
                i += 1;
                j += 1;
            } else if j < bm.len() && (i == am.len() || lcs[i * w + j + 1] >= lcs[(i + 1) * w + j])
            {
                ops.push(Op::Insert(pre + j));
                j += 1;
            } else {
                ops.push(Op::Delete(pre + i));
                i += 1;
            }
        }
    } else {
        ops.extend((0..am.len()).map(|i| Op::Delete(pre + i)));
        ops.extend((0..bm.len()).map(|j| Op::Insert(pre + j)));
    }
    let (ao, bo) = (a.len() - suf, b.len() - suf);
    ops.extend((0..suf).map(|k| Op::Equal(ao + k, bo + k)));
    // Within a changed run, show deletions before insertions, as diff(1) does.
    normalise(&mut ops);
    ops
}

fn normalise(ops: &mut [Op]) {
    let mut i = 0;
    while i < ops.len() {
        if matches!(ops[i], Op::Equal(..)) {
            i += 1;
            continue;
        }
        let start = i;
        while i < ops.len() && !matches!(ops[i], Op::Equal(..)) {
            i += 1;
        }
        ops[start..i].sort_by_key(|op| match op {
            Op::Delete(k) => (0, *k),
            Op::Insert(k) => (1, *k),
            Op::Equal(..) => (2, 0),
        });
    }
}

fn push_line(out: &mut Vec<u8>, sign: u8, line: &[u8]) {
    out.push(sign);
    out.extend_from_slice(line);
    if !line.ends_with(b"\n") {
        out.extend_from_slice(b"\n\\ No newline at end of file\n");
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
    let (a, b) = (lines(old), lines(new));
    let ops = script(&a, &b);
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Equal(..)))
        .map(|(k, _)| k)
        .collect();
    let mut out = Vec::new();
    if changed.is_empty() {
        return out;
    }
    out.extend_from_slice(format!("--- {old_label}\n+++ {new_label}\n").as_bytes());
    // Group changes whose context windows touch into one hunk.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for &k in &changed {
        let lo = k.saturating_sub(context);
        let hi = (k + context + 1).min(ops.len());
        match groups.last_mut() {
            Some(g) if lo <= g.1 => g.1 = hi,
            _ => groups.push((lo, hi)),
        }
    }
    for (lo, hi) in groups {
        let slice = &ops[lo..hi];
        // Position of the hunk in each file: the first line it covers, or where it sits.
        let (mut a_start, mut b_start) = (None, None);
        let (mut a_count, mut b_count) = (0usize, 0usize);
        for op in slice {
            match *op {
                Op::Equal(i, j) => {
                    a_start.get_or_insert(i);
                    b_start.get_or_insert(j);
                    a_count += 1;
                    b_count += 1;
                }
                Op::Delete(i) => {
                    a_start.get_or_insert(i);
                    a_count += 1;
                }
                Op::Insert(j) => {
                    b_start.get_or_insert(j);
                    b_count += 1;
                }
            }
        }
        let a_pos = position(&ops[..lo], a_start, a_count, true);
        let b_pos = position(&ops[..lo], b_start, b_count, false);
        out.extend_from_slice(
            format!(
                "@@ -{} +{} @@\n",
                range(a_pos, a_count),
                range(b_pos, b_count)
            )
            .as_bytes(),
        );
        for op in slice {
            match *op {
                Op::Equal(i, _) => push_line(&mut out, b' ', a[i]),
                Op::Delete(i) => push_line(&mut out, b'-', a[i]),
                Op::Insert(j) => push_line(&mut out, b'+', b[j]),
            }
        }
    }
    out
}

/// 1-based start line of a hunk side; for an empty side, the line after which it sits.
fn position(before: &[Op], start: Option<usize>, count: usize, old_side: bool) -> usize {
    if count > 0 {
        return start.map_or(0, |s| s + 1);
    }
    before
        .iter()
        .filter(|op| match op {
            Op::Equal(..) => true,
            Op::Delete(_) => old_side,
            Op::Insert(_) => !old_side,
        })
        .count()
}

fn range(pos: usize, count: usize) -> String {
    if count == 1 {
        pos.to_string()
    } else {
        format!("{pos},{count}")
    }
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
