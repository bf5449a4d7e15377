//! Conformance with Debian's libwrap: runs `knockwrap match` and `knockwrap check` over every
//! case in tests/conformance/cases and compares with the verdicts the real tcpdmatch and tcpdchk
//! gave (expected.json, produced by tests/conformance/oracle.sh; see tests/conformance/README.md).
//!
//! - match: same verdict; same file; line within the physical lines of the rule tcpdmatch names
//!   (libwrap reports the last line of a continued rule), or both report no rule.
//! - check: each line span tcpdchk flags gets a knockwrap diagnostic there; where tcpdchk is
//!   silent knockwrap may warn but reports an error only if tests/conformance/deliberate.json
//!   lists that case, file, line and code (documented deliberate strictness).
//!
//! Every disagreement is listed before the test fails.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// One allowed difference from tests/conformance/deliberate.json.
struct Deliberate {
    case: String,
    file: String,
    line: u64,
    code: String,
}

fn deliberate() -> Vec<Deliberate> {
    let path = corpus().join("deliberate.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let entries = doc["differences"]
        .as_array()
        .expect("deliberate.json: `differences` array");
    entries
        .iter()
        .map(|e| {
            let field = |k: &str| {
                e[k].as_str()
                    .unwrap_or_else(|| panic!("deliberate.json: entry without `{k}`: {e}"))
                    .to_string()
            };
            assert!(
                e["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "deliberate.json: entry without a reason: {e}"
            );
            Deliberate {
                case: field("case"),
                file: field("file"),
                line: e["line"].as_u64().expect("deliberate.json: `line` number"),
                code: field("code"),
            }
        })
        .collect()
}

/// The queries file's query lines (blank and `#` lines skipped), as oracle.py reads them.
fn query_lines(case_dir: &Path) -> Vec<String> {
    let text = fs::read_to_string(case_dir.join("queries")).expect("queries file");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

struct Run {
    code: Option<i32>,
    json: Result<Value, String>,
}

fn knockwrap(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_knockwrap"))
        .args(args)
        .output()
        .expect("spawn knockwrap");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).map_err(|e| {
        format!(
            "exit {:?}, no JSON on stdout ({e}): stdout {:?} stderr {:?}",
            out.status.code(),
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    });
    Run {
        code: out.status.code(),
        json,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Default)]
struct Tally {
    cases: usize,
    queries: usize,
    spans: usize,
    problems: Vec<String>,
}

/// Whether tcpdchk flagged `line` of `file` as an unterminated or over-long line. There libwrap
/// stops reading the file; in hosts.deny it then denies without naming a rule, and knockwrap may
/// name that line as the one that decided.
fn unterminated_at(exp: &Value, file: &str, line: u64) -> bool {
    exp["check"]["flagged"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| {
            let l = &f["lines"];
            f["file"] == file
                && (l[0].as_u64().unwrap_or(0)..=l[1].as_u64().unwrap_or(0)).contains(&line)
                && f["messages"].as_array().into_iter().flatten().any(|m| {
                    m.as_str()
                        .is_some_and(|m| m.contains("missing newline or line too long"))
                })
        })
}

fn check_match(tally: &mut Tally, case: &str, dir: &Path, exp: &Value, q: &Value) {
    let (daemon, client) = (q["daemon"].as_str().unwrap(), q["client"].as_str().unwrap());
    let allow = dir.join("hosts.allow");
    let deny = dir.join("hosts.deny"); // may not exist: an empty file, as at run time
    let run = knockwrap(&[
        "match",
        daemon,
        client,
        "--hosts-allow",
        allow.to_str().unwrap(),
        "--hosts-deny",
        deny.to_str().unwrap(),
        "--format",
        "json",
    ]);
    tally.queries += 1;
    let want = format!(
        "{} {}:{} (lines {})",
        show(&q["verdict"]),
        show(&q["file"]),
        show(&q["line"]),
        show(&q["lines"])
    );
    let got = match run.json {
        Ok(v) => v,
        Err(e) => {
            tally.problems.push(format!(
                "{case}: match {daemon} {client}: expected {want}, got {e}"
            ));
            return;
        }
    };
    let verdict_ok = got["verdict"] == q["verdict"];
    let (file_ok, line_ok) = match (got["file"].as_str(), q["file"].as_str()) {
        (None, None) => (true, got["line"].is_null()),
        (Some(g), Some(w)) => {
            let line_ok = match (got["line"].as_u64(), q["lines"].as_array()) {
                (Some(l), Some(span)) => {
                    let (a, b) = (span[0].as_u64().unwrap(), span[1].as_u64().unwrap());
                    (a..=b).contains(&l)
                }
                _ => false,
            };
            (base_name(g) == w, line_ok)
        }
        (Some(g), None) => {
            let ok = got["line"]
                .as_u64()
                .is_some_and(|l| unterminated_at(exp, base_name(g), l));
            (ok, ok)
        }
        (None, Some(_)) => (false, false),
    };
    // SPEC: exit 0 when granted, 1 when denied.
    let exit_ok = match got["verdict"].as_str() {
        Some("granted") => run.code == Some(0),
        Some("denied") => run.code == Some(1),
        _ => true,
    };
    if !(verdict_ok && file_ok && line_ok && exit_ok) {
        let got_s = format!(
            "{} {}:{} (exit {:?})",
            show(&got["verdict"]),
            got["file"].as_str().map(base_name).unwrap_or("none"),
            show(&got["line"]),
            run.code
        );
        let mut msg = format!("{case}: match {daemon} {client}: expected {want}, got {got_s}");
        if let Some(m) = q["messages"].as_array().filter(|m| !m.is_empty()) {
            let _ = write!(msg, "; libwrap said {}", Value::Array(m.clone()));
        }
        tally.problems.push(msg);
    }
}

fn check_check(
    tally: &mut Tally,
    case: &str,
    dir: &Path,
    exp: &Value,
    allowed: &[Deliberate],
    used: &mut BTreeSet<usize>,
) {
    let files: Vec<&str> = exp["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let paths: Vec<String> = files
        .iter()
        .map(|f| dir.join(f).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["check"];
    args.extend(paths.iter().map(String::as_str));
    args.extend(["--format", "json"]);
    let run = knockwrap(&args);
    let got = match run.json {
        Ok(v) => v,
        Err(e) => {
            tally.problems.push(format!("{case}: check: {e}"));
            return;
        }
    };
    // (file base name, line, severity, code)
    let mut diags: Vec<(String, u64, String, String)> = Vec::new();
    for f in got["files"].as_array().into_iter().flatten() {
        let name = base_name(f["path"].as_str().unwrap_or("?")).to_string();
        for d in f["diagnostics"].as_array().into_iter().flatten() {
            diags.push((
                name.clone(),
                d["line"].as_u64().unwrap_or(0),
                d["severity"].as_str().unwrap_or("?").to_string(),
                d["code"].as_str().unwrap_or("?").to_string(),
            ));
        }
    }
    let spans: Vec<(&str, u64, u64, &Value)> = exp["check"]["flagged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let l = f["lines"].as_array().unwrap();
            (
                f["file"].as_str().unwrap(),
                l[0].as_u64().unwrap(),
                l[1].as_u64().unwrap(),
                &f["messages"],
            )
        })
        .collect();
    for (file, a, b, msgs) in &spans {
        tally.spans += 1;
        if !diags
            .iter()
            .any(|(f, l, _, _)| f == file && (*a..=*b).contains(l))
        {
            let lines = if a == b {
                format!("{a}")
            } else {
                format!("{a}-{b}")
            };
            tally.problems.push(format!(
                "{case}: check {file}:{lines}: tcpdchk says {msgs}, knockwrap reports nothing there"
            ));
        }
    }
    let mut any_error = false;
    for (file, line, severity, code) in &diags {
        if severity != "error" {
            continue;
        }
        any_error = true;
        if spans
            .iter()
            .any(|(f, a, b, _)| f == file && (*a..=*b).contains(line))
        {
            continue;
        }
        let ok = allowed
            .iter()
            .position(|d| d.case == case && &d.file == file && d.line == *line && &d.code == code);
        match ok {
            Some(i) => {
                used.insert(i);
            }
            None => tally.problems.push(format!(
                "{case}: check {file}:{line}: knockwrap error `{code}` where tcpdchk is silent \
                 (not listed in deliberate.json)"
            )),
        }
    }
    let want_exit = if any_error { 1 } else { 0 };
    if run.code != Some(want_exit) {
        tally.problems.push(format!(
            "{case}: check exited {:?}, SPEC wants {want_exit} (errors found: {any_error})",
            run.code
        ));
    }
}

#[test]
fn conformance_with_debian_libwrap() {
    let allowed = deliberate();
    let mut used = BTreeSet::new();
    let only = std::env::var("KNOCKWRAP_CONFORMANCE_CASE").ok();
    // KNOCKWRAP_CONFORMANCE_CASES: another directory of cases (gen-random.py's output).
    let cases = std::env::var_os("KNOCKWRAP_CONFORMANCE_CASES")
        .map(PathBuf::from)
        .unwrap_or_else(|| corpus().join("cases"));
    let mut dirs: Vec<PathBuf> = fs::read_dir(&cases)
        .unwrap_or_else(|e| panic!("{}: {e}", cases.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("queries").is_file())
        .collect();
    dirs.sort();
    let mut tally = Tally::default();
    let mut ran = BTreeSet::new();
    for dir in &dirs {
        let case = dir.file_name().unwrap().to_str().unwrap().to_string();
        if only.as_ref().is_some_and(|o| !case.contains(o.as_str())) {
            continue;
        }
        tally.cases += 1;
        ran.insert(case.clone());
        let exp: Value = match fs::read_to_string(dir.join("expected.json")) {
            Ok(text) => serde_json::from_str(&text).expect("expected.json parses"),
            Err(_) => {
                tally.problems.push(format!(
                    "{case}: no expected.json (run tests/conformance/oracle.sh)"
                ));
                continue;
            }
        };
        let fixture: Vec<String> = exp["queries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["query"].as_str().unwrap().to_string())
            .collect();
        if fixture != query_lines(dir) {
            tally.problems.push(format!("{case}: expected.json is stale (queries changed): rerun tests/conformance/oracle.sh"));
            continue;
        }
        for q in exp["queries"].as_array().unwrap() {
            check_match(&mut tally, &case, dir, &exp, q);
        }
        check_check(&mut tally, &case, dir, &exp, &allowed, &mut used);
    }
    // An entry for a case that ran but no longer needs it is stale.
    for (i, d) in allowed.iter().enumerate() {
        if ran.contains(&d.case) && !used.contains(&i) {
            tally.problems.push(format!(
                "deliberate.json lists {} {}:{} `{}` but knockwrap reports no such error there: remove it",
                d.case, d.file, d.line, d.code
            ));
        }
    }
    println!(
        "conformance: {} cases, {} queries, {} tcpdchk-flagged spans, {} disagreements",
        tally.cases,
        tally.queries,
        tally.spans,
        tally.problems.len()
    );
    assert!(tally.cases > 0, "no conformance cases found");
    if !tally.problems.is_empty() {
        panic!(
            "{} disagreements with Debian libwrap:\n  {}",
            tally.problems.len(),
            tally.problems.join("\n  ")
        );
    }
}
