//! `knockwrap check`: validates hosts_access files and reports like rustc (human), as GitHub
//! workflow annotations (github) or as the contract's JSON (docs/contract.md). Exit 1 when any error is found.
//!
//! `--config PATH` also validates that configuration (and the one-time and TOTP files it
//! names); its problems are reported like the others, with the code `invalid-config`, and make
//! the exit code 2 (docs/contract.md: invalid configuration). Without FILE arguments, `--config` checks the
//! configuration's `hosts_allow` and the `hosts.deny` beside it instead of the /etc pair.
//! A valid configuration that guards ports with the firewall also gets the lockout warnings
//! (`knockwrap_config::lockout_warnings`), judged against the SSH session in
//! `SSH_CONNECTION` when there is one; warnings leave the exit code alone.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hosts_access::{validate, Diagnostic, Severity};
use serde_json::json;

use crate::cli::{CheckArgs, Format};
use crate::failure::{Exit, Failure, Outcome};
use crate::output::out;

const DEFAULT_FILES: [&str; 2] = ["/etc/hosts.allow", "/etc/hosts.deny"];

/// One checked file.
struct Checked {
    path: PathBuf,
    bytes: Vec<u8>,
    diagnostics: Vec<Diagnostic>,
}

impl Checked {
    fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}

pub fn run(args: CheckArgs) -> Outcome {
    let (config, config_ok) = match &args.config {
        Some(path) => check_config(path),
        None => (Vec::new(), true),
    };
    let files = match (&args.config, args.files.is_empty()) {
        (Some(path), true) => read_config_files(path)?,
        _ => read_files(&args.files)?,
    };
    let mut checked: Vec<Checked> = config;
    checked.extend(files.into_iter().map(|(path, bytes)| Checked {
        diagnostics: {
            let mut d = validate(&bytes);
            d.extend(filesystem_findings(&bytes));
            d.sort_by_key(|d| (d.line, d.column));
            d
        },
        path,
        bytes,
    }));
    let out = match args.format {
        Format::Human => human(&checked),
        Format::Github => github(&checked),
        Format::Json => json_report(&checked),
    };
    out!("{out}");
    let errors: usize = checked.iter().map(Checked::errors).sum();
    Ok(if !config_ok {
        Exit::Usage
    } else if errors > 0 {
        Exit::Failed
    } else {
        Exit::Success
    })
}

/// What tcpdchk checks on this machine beyond the syntax, as warnings: a `banners` directory
/// that does not exist, a `spawn`/`twist` program that does not exist or cannot be run, a
/// `user`/`group` name this machine does not have (libwrap then refuses the connection).
fn filesystem_findings(bytes: &[u8]) -> Vec<Diagnostic> {
    let doc = hosts_access::parse(bytes);
    let mut out = Vec::new();
    let at = |offset: usize| {
        let before = &bytes[..offset.min(bytes.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = offset
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        (line, column)
    };
    let mut warn = |offset: usize, code: &'static str, message: String| {
        let (line, column) = at(offset);
        out.push(Diagnostic {
            line,
            column,
            severity: Severity::Warning,
            code,
            message,
        });
    };
    for (_, rule) in doc.effective_rules() {
        for opt in rule.options.iter().flatten() {
            let name = String::from_utf8_lossy(&opt.name)
                .trim()
                .to_ascii_lowercase();
            let value = opt
                .value
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).trim().to_owned())
                .unwrap_or_default();
            match name.as_str() {
                "banners" if !value.is_empty() && !Path::new(&value).is_dir() => warn(
                    opt.offset,
                    "missing-banners-dir",
                    format!("banners directory `{value}` does not exist"),
                ),
                "spawn" | "twist" => {
                    let program = value.split_whitespace().next().unwrap_or("");
                    if program.starts_with('/') && !program.contains('%') {
                        let runnable = std::fs::metadata(program).is_ok_and(|m| {
                            use std::os::unix::fs::PermissionsExt;
                            m.is_file() && m.permissions().mode() & 0o111 != 0
                        });
                        if !runnable {
                            warn(
                                opt.offset,
                                "missing-program",
                                format!("{name}: `{program}` does not exist or is not executable"),
                            );
                        }
                    }
                }
                "user" if !value.is_empty() => {
                    let (user, group) = match value.split_once('.') {
                        Some((u, g)) => (u, Some(g)),
                        None => (value.as_str(), None),
                    };
                    if !name_exists(user, false) {
                        warn(
                            opt.offset,
                            "unknown-user",
                            format!(
                                "user `{user}` does not exist here: libwrap refuses the connection"
                            ),
                        );
                    }
                    if let Some(g) = group.filter(|g| !name_exists(g, true)) {
                        warn(
                            opt.offset,
                            "unknown-group",
                            format!(
                                "group `{g}` does not exist here: libwrap refuses the connection"
                            ),
                        );
                    }
                }
                "group" if !value.is_empty() && !name_exists(&value, true) => warn(
                    opt.offset,
                    "unknown-group",
                    format!("group `{value}` does not exist here: libwrap refuses the connection"),
                ),
                _ => {}
            }
        }
    }
    out
}

/// Whether this machine has a user (or group) of that name (getpwnam_r/getgrnam_r; a failed
/// lookup, or a name with a NUL, is none).
fn name_exists(name: &str, group: bool) -> bool {
    if group {
        matches!(nix::unistd::Group::from_name(name), Ok(Some(_)))
    } else {
        matches!(nix::unistd::User::from_name(name), Ok(Some(_)))
    }
}

/// The configuration's problems, one [`Checked`] per file they are in, and whether it is valid.
/// Only the configuration itself is quoted in excerpts: a TOTP key file's bytes never are.
fn check_config(path: &Path) -> (Vec<Checked>, bool) {
    let errors = knockwrap_config::check(path);
    let mut out: Vec<Checked> = vec![Checked {
        path: path.to_path_buf(),
        bytes: std::fs::read(path).unwrap_or_default(),
        diagnostics: Vec::new(),
    }];
    let valid = errors.is_empty();
    if valid {
        add_state_problems(path, &mut out);
        add_lockout_warnings(path, &mut out);
    }
    for e in errors {
        let diagnostic = Diagnostic {
            line: e.line,
            column: e.column,
            severity: Severity::Error,
            code: "invalid-config",
            message: e.message,
        };
        match out.iter_mut().find(|c| c.path == e.path) {
            Some(c) => c.diagnostics.push(diagnostic),
            None => out.push(Checked {
                path: e.path,
                bytes: Vec::new(),
                diagnostics: vec![diagnostic],
            }),
        }
    }
    (out, valid)
}

/// What the daemon would find wrong in its state directory at start (it would set these aside
/// or disable the door and go on; here they are findings, exit 1): an unsafe state
/// directory, a corrupt lease journal, one-time or TOTP progress that cannot be trusted.
fn add_state_problems(config: &Path, out: &mut Vec<Checked>) {
    let Ok(cfg) = knockwrap_config::Config::load(config) else {
        return;
    };
    let mut found: Vec<(PathBuf, usize, usize, &'static str, String)> = Vec::new();
    if let Err(e) = hosts_writer::state::check_state_dir(&cfg.state_dir) {
        found.push((
            cfg.state_dir.clone(),
            1,
            1,
            "unsafe-state-dir",
            e.to_string(),
        ));
    }
    match hosts_writer::Journal::load(&cfg.state_dir) {
        Err(hosts_writer::JournalError::Corrupt {
            path,
            line,
            column,
            message,
        }) => found.push((
            path,
            line.max(1),
            column.max(1),
            "corrupt-journal",
            format!("{message} (the daemon moves it aside and rebuilds it)"),
        )),
        Err(e) => found.push((
            cfg.state_dir.clone(),
            1,
            1,
            "corrupt-journal",
            e.to_string(),
        )),
        Ok(_) => {}
    }
    let mut doors = cfg.doors();
    for e in hosts_writer::progress::ProgressStore::new(&cfg.state_dir).apply(&mut doors) {
        let path = match &e {
            hosts_writer::progress::ProgressError::Io { path, .. }
            | hosts_writer::progress::ProgressError::Invalid { path, .. } => path.clone(),
        };
        found.push((
            path.clone(),
            1,
            1,
            "untrusted-progress",
            format!(
                "{e}; the daemon disables this door until the file is fixed or removed ({})",
                path.display()
            ),
        ));
    }
    for (path, line, column, code, message) in found {
        let diagnostic = Diagnostic {
            line,
            column,
            severity: Severity::Error,
            code,
            message,
        };
        match out.iter_mut().find(|c| c.path == path) {
            Some(c) => c.diagnostics.push(diagnostic),
            None => out.push(Checked {
                path,
                bytes: Vec::new(),
                diagnostics: vec![diagnostic],
            }),
        }
    }
}

/// Ways the firewall guard could cut the operator off, as warnings at the configuration's
/// lines: no `always_allow`, the client of this SSH session (`SSH_CONNECTION`) not covered
/// while the port it reached is guarded, a `[firewall]` table that guards nothing.
fn add_lockout_warnings(config: &Path, out: &mut [Checked]) {
    let text = std::fs::read_to_string(config).unwrap_or_default();
    let Ok(cfg) = knockwrap_config::Config::from_toml_str(&text, config) else {
        return;
    };
    let session = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|v| knockwrap_config::SshSession::parse(&v));
    let found = knockwrap_config::lockout_warnings(&cfg, session.as_ref());
    let Some(checked) = out.iter_mut().find(|c| c.path == config) else {
        return;
    };
    checked
        .diagnostics
        .extend(found.into_iter().map(|w| Diagnostic {
            line: w.line,
            column: w.column,
            severity: Severity::Warning,
            code: w.code,
            message: w.message,
        }));
}

/// The hosts_allow a configuration manages and the hosts.deny beside it (missing = empty, as
/// for libwrap). A configuration that does not parse falls back to the /etc pair.
fn read_config_files(config: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, Failure> {
    let text = std::fs::read_to_string(config).unwrap_or_default();
    let Ok(parsed) = knockwrap_config::Config::from_toml_str(&text, config) else {
        return read_files(&[]);
    };
    let allow = parsed.hosts_allow.clone();
    let deny = hosts_writer::policy::sibling_deny(&allow);
    [allow, deny].into_iter().map(read_or_empty).collect()
}

/// A file libwrap would read: missing is empty, any other failure is an error.
fn read_or_empty(path: PathBuf) -> Result<(PathBuf, Vec<u8>), Failure> {
    match std::fs::read(&path) {
        Ok(b) => Ok((path, b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((path, Vec::new())),
        Err(e) => Err(unreadable(&path, &e)),
    }
}

/// Reads the named files (any failure is an error), or the default pair (a missing one is
/// checked as the empty file it is to libwrap).
fn read_files(named: &[PathBuf]) -> Result<Vec<(PathBuf, Vec<u8>)>, Failure> {
    if named.is_empty() {
        return DEFAULT_FILES
            .iter()
            .map(|p| read_or_empty(PathBuf::from(p)))
            .collect();
    }
    named
        .iter()
        .map(|path| {
            std::fs::read(path)
                .map(|b| (path.clone(), b))
                .map_err(|e| unreadable(path, &e))
        })
        .collect()
}

fn unreadable(path: &Path, e: &std::io::Error) -> Failure {
    Failure::usage(format!("{}: cannot read: {e}", path.display()))
}

/// The physical line `line` (1-based) of `bytes`, without its terminator.
fn source_line(bytes: &[u8], line: usize) -> &[u8] {
    let l = bytes.split(|&b| b == b'\n').nth(line - 1).unwrap_or(b"");
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// A printable excerpt of a source line and the caret's character offset in it. Control
/// characters show as blanks; very long lines are cut to a window around the column.
fn excerpt(line: &[u8], column: usize) -> (String, usize) {
    const BEFORE: usize = 60;
    const AFTER: usize = 60;
    let col = column.saturating_sub(1).min(line.len());
    let start = col.saturating_sub(BEFORE);
    let end = (col + AFTER).min(line.len());
    let clean = |b: &[u8]| -> String {
        String::from_utf8_lossy(b)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let mut text = String::new();
    if start > 0 {
        text.push_str("...");
    }
    let prefix = clean(&line[start..col]);
    let caret = text.chars().count() + prefix.chars().count();
    text.push_str(&prefix);
    text.push_str(&clean(&line[col..end]));
    if end < line.len() {
        text.push_str("...");
    }
    (text, caret)
}

fn human(checked: &[Checked]) -> String {
    let mut out = String::new();
    let (mut errors, mut warnings) = (0, 0);
    for f in checked {
        for d in &f.diagnostics {
            match d.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
            }
            let (text, caret) = excerpt(source_line(&f.bytes, d.line), d.column);
            let num = d.line.to_string();
            let pad = " ".repeat(num.len());
            let _ = writeln!(out, "{}[{}]: {}", d.severity, d.code, d.message);
            let _ = writeln!(out, "{pad}--> {}:{}:{}", f.path.display(), d.line, d.column);
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{num} | {text}");
            let _ = writeln!(out, "{pad} | {}^", " ".repeat(caret));
            out.push('\n');
        }
    }
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(
        out,
        "checked {}: {}, {}",
        plural(checked.len(), "file"),
        plural(errors, "error"),
        plural(warnings, "warning")
    );
    out
}

/// Escapes a workflow-command message (`%`, CR, LF).
fn gh_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow-command property value (also `:` and `,`).
fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn github(checked: &[Checked]) -> String {
    let mut out = String::new();
    for f in checked {
        let file = gh_property(&f.path.display().to_string());
        for d in &f.diagnostics {
            let _ = writeln!(
                out,
                "::{} file={file},line={},col={},title={}::{}",
                d.severity,
                d.line,
                d.column,
                gh_property(d.code),
                gh_data(&d.message)
            );
        }
    }
    out
}

fn json_report(checked: &[Checked]) -> String {
    let files: Vec<_> = checked
        .iter()
        .map(|f| {
            let diagnostics: Vec<_> = f
                .diagnostics
                .iter()
                .map(|d| {
                    json!({
                        "line": d.line,
                        "column": d.column,
                        "severity": d.severity.as_str(),
                        "code": d.code,
                        "message": d.message,
                    })
                })
                .collect();
            json!({
                "path": f.path.display().to_string(),
                "valid": f.errors() == 0,
                "diagnostics": diagnostics,
            })
        })
        .collect();
    let mut s = json!({ "files": files }).to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_places_the_caret() {
        assert_eq!(
            excerpt(b"sshd: 10.1.2.3/8", 7),
            ("sshd: 10.1.2.3/8".into(), 6)
        );
        assert_eq!(excerpt(b"a\tb", 3), ("a b".into(), 2));
        let long = vec![b'x'; 300];
        let (t, c) = excerpt(&long, 200);
        assert!(t.starts_with("...") && t.ends_with("..."));
        assert_eq!(c, 63);
        // Column one past the end (missing newline) is fine.
        assert_eq!(excerpt(b"ab", 3), ("ab".into(), 2));
    }

    #[test]
    fn source_lines() {
        assert_eq!(source_line(b"a\r\nb\n", 1), b"a");
        assert_eq!(source_line(b"a\r\nb\n", 2), b"b");
        assert_eq!(source_line(b"a", 5), b"");
    }

    #[test]
    fn github_escaping() {
        assert_eq!(gh_data("50%\nx"), "50%25%0Ax");
        assert_eq!(gh_property("a:b,c"), "a%3Ab%2Cc");
    }
}
