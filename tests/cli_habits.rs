//! CLI habits every command keeps: a reader that goes away early ends the output quietly
//! (exit as if complete, never a panic), exit codes are 0/1/2, and a missing configuration is
//! named. The pipes here are real pipes, closed before or while the command writes.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_knockwrap");

/// A hosts.allow with thousands of errors: far more output than a pipe buffer holds.
fn noisy_hosts_file(dir: &Path) -> std::path::PathBuf {
    let f = dir.join("hosts.allow");
    let mut text = String::new();
    for i in 0..4000 {
        text.push_str(&format!("this line {i} has no colon at all\n"));
    }
    std::fs::write(&f, text).unwrap();
    f
}

/// Runs `args` with standard output on a pipe whose read end is already closed.
fn run_into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two new descriptors we own from here on.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are ours and open; each is wrapped once.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    let out = Command::new(BIN)
        .args(args)
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_piped_into_head_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let f = noisy_hosts_file(dir.path());
    let f = f.to_str().unwrap();
    let full = Command::new(BIN).args(["check", f]).output().unwrap();
    assert_eq!(full.status.code(), Some(1));
    assert!(
        full.stdout.len() > 1 << 17,
        "the test needs more output than a pipe holds"
    );

    // `knockwrap check FILE | head -1`: read one line, then close the pipe.
    let mut child = Command::new(BIN)
        .args(["check", f])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.is_empty(),
        "a closed pipe is not an error to report: {err}"
    );
    assert_eq!(status.code(), Some(1), "the exit code of the complete run");
}

#[test]
fn a_shell_pipeline_into_head() {
    if !Path::new("/bin/sh").exists() {
        test_support::skip_or_fail(test_support::test_name!(), "/bin/sh");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = noisy_hosts_file(dir.path());
    let err = dir.path().join("err");
    let o = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "'{BIN}' check '{}' 2>'{}' | head -1; exit 0",
            f.display(),
            err.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
    let err = std::fs::read_to_string(&err).unwrap();
    assert!(err.is_empty(), "{err}");
}

#[test]
fn every_writing_command_survives_a_closed_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let f = noisy_hosts_file(dir.path());
    let f = f.to_str().unwrap();
    let deny = dir.path().join("hosts.deny");
    std::fs::write(&deny, "ALL: ALL\n").unwrap();
    let deny = deny.to_str().unwrap();
    let article = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/knockd/article.conf"
    );
    for (args, code) in [
        (vec!["check", f], 1),
        (vec!["check", "--format", "json", f], 1),
        (vec!["completions", "bash"], 0),
        (vec!["completions", "zsh"], 0),
        (vec!["man"], 0),
        (
            vec![
                "match",
                "sshd",
                "192.0.2.1",
                "--hosts-allow",
                f,
                "--hosts-deny",
                deny,
            ],
            1,
        ),
        (vec!["import-knockd", article], 0),
        (
            vec![
                "doctor",
                "--config",
                "/nonexistent.toml",
                "--sshd",
                "/bin/ls",
            ],
            1,
        ),
    ] {
        let (got, err) = run_into_closed_pipe(&args);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        assert_eq!(got, Some(code), "{args:?}: {err}");
    }
}

#[test]
fn a_missing_configuration_is_named() {
    for args in [
        vec!["list", "--config", "/nonexistent/k.toml"],
        vec!["allow", "192.0.2.9", "--config", "/nonexistent/k.toml"],
        vec!["revoke", "192.0.2.9", "--config", "/nonexistent/k.toml"],
        vec![
            "knock",
            "--door",
            "d",
            "--config",
            "/nonexistent/k.toml",
            "localhost",
        ],
    ] {
        let o = Command::new(BIN).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("cannot read configuration /nonexistent/k.toml: ")
                && err.contains("--config PATH"),
            "{args:?}: {err}"
        );
    }
}
