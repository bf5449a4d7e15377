//! The region-only validation of an edit (`hosts_access::delta`) against whole-file validation,
//! over generated files and every file of the conformance corpus:
//!
//! - locality: when `changed_region` accepts an edit, the errors of each whole file are exactly
//!   (line, column, code, message) the errors of its three parts validated alone (prefix,
//!   region, rest), line numbers shifted; so `errors(after)` is `errors(before)` minus the old
//!   region's plus the new region's;
//! - agreement: `introduced_errors` gives the same codes, as many times each, as
//!   `introduced_errors_full` for every edit (managed line added, removed, a burst added,
//!   arbitrary lines inserted, replaced or deleted).

use std::net::IpAddr;
use std::path::Path;

use hosts_access::delta::{changed_region, introduced_errors_full};
use hosts_access::edit::{add, add_all, remove, ManagedLine};
use hosts_access::{introduced_errors, validate, Diagnostic, Severity};
use proptest::prelude::*;

mod common;
use common::hostsish;

type Found = (usize, usize, &'static str, String);

fn errors_at(bytes: &[u8], line_shift: usize) -> Vec<Found> {
    validate(bytes)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| (d.line + line_shift, d.column, d.code, d.message))
        .collect()
}

fn newlines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

/// Whole-file errors == the parts' errors (split at `cuts`), sorted.
fn check_locality(file: &[u8], cuts: [usize; 2]) -> Result<(), String> {
    let mut whole = errors_at(file, 0);
    let mut parts = Vec::new();
    let mut from = 0;
    for to in [cuts[0], cuts[1], file.len()] {
        parts.extend(errors_at(&file[from..to], newlines(&file[..from])));
        from = to;
    }
    whole.sort();
    parts.sort();
    if whole == parts {
        Ok(())
    } else {
        Err(format!(
            "{:?} cut at {cuts:?}:\nwhole {whole:?}\nparts {parts:?}",
            String::from_utf8_lossy(file)
        ))
    }
}

fn codes(v: Vec<Diagnostic>) -> Vec<&'static str> {
    let mut c: Vec<_> = v.into_iter().map(|d| d.code).collect();
    c.sort_unstable();
    c
}

fn check_edit(before: &[u8], after: &[u8]) -> Result<(), String> {
    if let Some(r) = changed_region(before, after) {
        check_locality(before, [r.start, r.before_end])?;
        check_locality(after, [r.start, r.after_end])?;
    }
    let fast = codes(introduced_errors(before, after));
    let full = codes(introduced_errors_full(before, after));
    if fast == full {
        Ok(())
    } else {
        Err(format!(
            "{:?} -> {:?}: region {fast:?}, whole files {full:?}",
            String::from_utf8_lossy(before),
            String::from_utf8_lossy(after)
        ))
    }
}

fn managed(service: &str, ip: &str) -> ManagedLine {
    ManagedLine::new(service, ip.parse::<IpAddr>().unwrap()).unwrap()
}

/// The edits tried on every corpus file: the managed line added and removed, a burst added,
/// and (at a few line starts) a broken line, a blank line and a continued line inserted, and
/// a physical line deleted.
fn corpus_edits(file: &[u8]) -> Vec<Vec<u8>> {
    let lines = [
        managed("SSHD", "203.0.113.7"),
        managed("sshd", "2001:db8::7"),
        managed("ALL", "192.0.2.1"),
    ];
    let mut out = Vec::new();
    for l in &lines {
        if let Some(a) = add(file, l) {
            out.push(remove(&a, l).unwrap_or_default());
            out.push(a);
        }
        if let Some(r) = remove(file, l) {
            out.push(r);
        }
    }
    if let Some(a) = add_all(file, &lines) {
        out.push(a);
    }
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            file.iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let step = (starts.len() / 16).max(1);
    for (k, &s) in starts.iter().enumerate().step_by(step) {
        for insert in [
            &b"broken line\n"[..],
            b"\n",
            b"sshd: 10.0.0.1 \\\n",
            b"x\0\n",
        ] {
            let mut e = file[..s].to_vec();
            e.extend_from_slice(insert);
            e.extend_from_slice(&file[s..]);
            out.push(e);
        }
        if let Some(&next) = starts.get(k + 1) {
            let mut e = file[..s].to_vec();
            e.extend_from_slice(&file[next..]);
            out.push(e);
        }
    }
    out
}

#[test]
fn conformance_corpus() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/cases");
    let mut files = 0;
    let mut edits = 0;
    let mut regional = 0;
    let mut failures = Vec::new();
    for case in std::fs::read_dir(&cases).unwrap() {
        let case = case.unwrap().path();
        for name in ["hosts.allow", "hosts.deny"] {
            let Ok(file) = std::fs::read(case.join(name)) else {
                continue;
            };
            files += 1;
            for after in corpus_edits(&file) {
                edits += 1;
                regional += usize::from(changed_region(&file, &after).is_some());
                if let Err(e) = check_edit(&file, &after) {
                    failures.push(format!("{}/{name}: {e}", case.display()));
                }
            }
        }
    }
    assert!(files > 300, "corpus not found at {}", cases.display());
    assert!(
        failures.is_empty(),
        "{} of {edits} edits:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Most edits take the region-only path (inserting a continued line or a NUL does not).
    assert!(
        regional * 10 > edits * 6,
        "{regional} of {edits} edits by region"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(800))]

    #[test]
    fn managed_line_added_and_removed(before in hostsish(), v4 in any::<u32>()) {
        let line = ManagedLine::new("SSHD", IpAddr::from(std::net::Ipv4Addr::from(v4))).unwrap();
        if let Some(after) = add(&before, &line) {
            check_edit(&before, &after).map_err(TestCaseError::fail)?;
            let back = remove(&after, &line).unwrap();
            check_edit(&after, &back).map_err(TestCaseError::fail)?;
        }
        if let Some(after) = remove(&before, &line) {
            check_edit(&before, &after).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn arbitrary_splices(
        before in hostsish(),
        insert in hostsish(),
        at in any::<prop::sample::Index>(),
        len in 0usize..40,
    ) {
        let start = at.index(before.len() + 1);
        let end = (start + len).min(before.len());
        let mut after = before[..start].to_vec();
        after.extend_from_slice(&insert);
        after.extend_from_slice(&before[end..]);
        check_edit(&before, &after).map_err(TestCaseError::fail)?;
        check_edit(&after, &before).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn whole_line_splices(
        lines in prop::collection::vec(hostsish(), 0..6),
        new in prop::collection::vec(hostsish(), 0..3),
        at in any::<prop::sample::Index>(),
        drop in 0usize..3,
    ) {
        // Files made of newline-terminated pieces, edited by whole pieces: the edits the
        // writer makes, on inputs full of NULs, continuations and CRs.
        let term = |v: &Vec<u8>| { let mut v = v.clone(); v.push(b'\n'); v };
        let lines: Vec<Vec<u8>> = lines.iter().map(term).collect();
        let new: Vec<Vec<u8>> = new.iter().map(term).collect();
        let k = at.index(lines.len() + 1);
        let before = lines.concat();
        let mut after = lines[..k].concat();
        after.extend(new.concat());
        after.extend(lines[(k + drop).min(lines.len())..].concat());
        check_edit(&before, &after).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn locality_at_clean_boundaries(file in hostsish(), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        // Cut points found by changed_region on a self-edit that deletes one byte range.
        let (x, y) = {
            let (x, y) = (a.index(file.len() + 1), b.index(file.len() + 1));
            (x.min(y), x.max(y))
        };
        let mut after = file[..x].to_vec();
        after.extend_from_slice(&file[y..]);
        if let Some(r) = changed_region(&file, &after) {
            check_locality(&file, [r.start, r.before_end]).map_err(TestCaseError::fail)?;
        }
    }
}
