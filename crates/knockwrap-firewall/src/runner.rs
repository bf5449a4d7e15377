//! How nft is run: which program, with which leading arguments (`ip netns exec NS nft` in
//! tests, or an absolute path in the daemon), always as `<program> <leading> -j -f -` with
//! the JSON document on standard input. nft applies one document as one transaction.
//!
//! This is our own few lines rather than the `nftables` crate's helpers because those let
//! nft's standard error through to ours (the error they return then carries no message) and
//! put `-j` before the leading arguments when listing, which a wrapper such as `ip netns exec`
//! would take as its own option.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::process::{Command, Stdio};

/// The nft program and the arguments put before nft's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runner {
    program: OsString,
    leading: Vec<OsString>,
}

impl Default for Runner {
    /// `nft`, found through `PATH`.
    fn default() -> Runner {
        Runner::new("nft")
    }
}

/// What a failed run said.
#[derive(Debug)]
pub(crate) enum RunError {
    Spawn(io::Error),
    Failed { status: String, said: String },
}

impl Runner {
    /// Run `program` (a path, or a name looked up in `PATH`).
    pub fn new(program: impl Into<OsString>) -> Runner {
        Runner {
            program: program.into(),
            leading: Vec::new(),
        }
    }

    /// Run `program leading... -j -f -`, e.g. `Runner::with_args("ip", ["netns", "exec",
    /// "ns1", "nft"])`.
    pub fn with_args<I, A>(program: impl Into<OsString>, leading: I) -> Runner
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        Runner {
            program: program.into(),
            leading: leading.into_iter().map(Into::into).collect(),
        }
    }

    pub fn program(&self) -> &OsStr {
        &self.program
    }

    pub fn leading(&self) -> &[OsString] {
        &self.leading
    }

    /// The command line, for messages.
    pub fn describe(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.leading {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Feed `json` to nft; its standard output on success.
    pub(crate) fn run(&self, json: &str) -> Result<String, RunError> {
        let mut child = Command::new(&self.program)
            .args(&self.leading)
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(RunError::Spawn)?;
        // nft reads the whole document before it writes anything, so writing all of it
        // before reading cannot deadlock; a write error (nft gone) shows in its status.
        let written = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(json.as_bytes()));
        let out = child.wait_with_output().map_err(RunError::Spawn)?;
        if out.status.success() {
            if let Some(Err(e)) = written {
                return Err(RunError::Spawn(e));
            }
            return String::from_utf8(out.stdout).map_err(|e| RunError::Failed {
                status: "success".into(),
                said: format!("output is not UTF-8: {e}"),
            });
        }
        let said = String::from_utf8_lossy(&out.stderr);
        // nft prefixes each message with the input's position (`internal:0:0-0: `), which
        // says nothing for a document read from standard input.
        let said: Vec<&str> = said
            .lines()
            .map(|l| l.strip_prefix("internal:0:0-0: ").unwrap_or(l).trim())
            .filter(|l| !l.is_empty())
            .collect();
        Err(RunError::Failed {
            status: out.status.to_string(),
            said: said.join("; "),
        })
    }
}
