//! The knock client's profile (`client.toml`): named targets, each with its hosts, its door
//! (a static sequence, a one-time list or a TOTP key with its parameters), the pause between
//! knocks, the address family and the port `knockwrap connect` opens.
//!
//! It lives beside the daemon's configuration so that both are read by the same code: the same
//! step syntax, durations, TOTP parameters and rules ("exactly one of `sequence`,
//! `one_time_sequences`, `totp_secret_file`"), unknown keys refused, and every problem reported
//! at its `path:line:column`. Like the daemon, a TOTP key readable or writable by group or
//! others is refused; the client also refuses a key owned by another user, since whoever owns
//! it can read it.
//!
//! [`ClientProfile::from_toml_str`] is pure; [`ClientTarget::load_files`] reads the one target's
//! one-time list or key when it is about to be used (a broken key of another target does not
//! stop this one).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use knock_match::{parse_port, DoorKind};
use serde::Deserialize;
use toml::Spanned;

use crate::build::{check_door_name, duration_value, parse_toml, sequence_source, SourceKeys};
use crate::duration::RawDuration;
use crate::error::{ConfigErrors, Sink};
use crate::files::load_sequence_files;
use crate::raw::{StepSpec, StringOrList};
use crate::ConfigError;

/// The port `knockwrap connect` uses when neither the command line nor the target gives one.
pub const DEFAULT_CONNECT_PORT: u16 = 22;
/// How long `knockwrap connect` waits for the door to open, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `delay_ms` accepted (one minute between knocks).
pub const MAX_DELAY_MS: u64 = 60_000;
/// Longest `connect_timeout` accepted.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(300);

/// Which addresses of a name are knocked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    /// Every A and AAAA record.
    #[default]
    Any,
    V4,
    V6,
}

/// The whole profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientProfile {
    pub path: PathBuf,
    pub targets: Vec<ClientTarget>,
}

/// One `[[target]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTarget {
    pub name: String,
    /// Names or addresses, as written (an IPv6 address may be bracketed).
    pub hosts: Vec<String>,
    /// The door's sequences; one-time sequences and the TOTP secret are filled by
    /// [`ClientTarget::load_files`].
    pub kind: DoorKind,
    pub one_time_file: Option<PathBuf>,
    pub totp_secret_file: Option<PathBuf>,
    /// Pause between two knocks (`delay_ms`).
    pub delay: Duration,
    pub family: Family,
    /// The port `knockwrap connect` opens (`port`).
    pub port: u16,
    /// How long `knockwrap connect` waits for the door to open (`connect_timeout`).
    pub connect_timeout: Duration,
    /// Line of the `[[target]]` header.
    pub line: usize,
    file_pos: (usize, usize),
}

/// How a command-line HOST picked a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// HOST is the target's name: every host of the target is knocked.
    ByName,
    /// HOST is one of the target's hosts: that host is knocked.
    ByHost,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default)]
    target: Vec<Spanned<RawTarget>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: Spanned<String>,
    hosts: Spanned<StringOrList>,
    sequence: Option<Spanned<Vec<Spanned<StepSpec>>>>,
    one_time_sequences: Option<Spanned<String>>,
    totp_secret_file: Option<Spanned<String>>,
    totp_length: Option<Spanned<i64>>,
    totp_ports: Option<Spanned<String>>,
    totp_step: Option<Spanned<RawDuration>>,
    delay_ms: Option<Spanned<i64>>,
    family: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    connect_timeout: Option<Spanned<RawDuration>>,
}

impl ClientProfile {
    /// Parses and validates `text`; `path` names it in messages and anchors relative paths.
    /// Does no I/O.
    pub fn from_toml_str(
        text: &str,
        path: impl AsRef<Path>,
    ) -> Result<ClientProfile, ConfigErrors> {
        let path = path.as_ref();
        let mut sink = Sink::new(path, text);
        let Some(raw) = parse_toml::<RawProfile>(text, &mut sink) else {
            return Err(ConfigErrors(sink.errors));
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut targets = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for t in &raw.target {
            let line = sink.line_of(&t.span());
            let name = t.get_ref().name.get_ref().clone();
            if let Some(first) = names.get(&name) {
                sink.at(
                    t.get_ref().name.span(),
                    format!("duplicate target name `{name}` (first defined at line {first})"),
                );
            } else {
                names.insert(name, line);
            }
            if let Some(target) = target(t.get_ref(), line, &base, &mut sink) {
                targets.push(target);
            }
        }
        if sink.errors.is_empty() {
            Ok(ClientProfile {
                path: path.to_path_buf(),
                targets,
            })
        } else {
            sink.errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigErrors(sink.errors))
        }
    }

    /// Reads and validates the profile at `path` (not the files its targets name).
    pub fn load(path: impl AsRef<Path>) -> Result<ClientProfile, ConfigErrors> {
        let path = path.as_ref();
        let text = crate::error::read_text(path, "client profile")?;
        ClientProfile::from_toml_str(&text, path)
    }

    /// The target a command-line HOST means: the one named HOST, else the first whose `hosts`
    /// include HOST (names compared without regard to case).
    pub fn find(&self, host: &str) -> Option<(&ClientTarget, Pick)> {
        if let Some(t) = self.targets.iter().find(|t| t.name == host) {
            return Some((t, Pick::ByName));
        }
        self.targets
            .iter()
            .find(|t| t.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
            .map(|t| (t, Pick::ByHost))
    }
}

impl ClientTarget {
    /// Reads this target's one-time sequences or TOTP key (`profile_path` is where problems
    /// with the file as a whole are reported, at the key that names it). A TOTP key must
    /// belong to the user running the client and be closed to group and others.
    pub fn load_files(&mut self, profile_path: &Path) -> Result<(), ConfigErrors> {
        if let Some(key) = &self.totp_secret_file {
            if let Err(message) = check_key_owner(key) {
                return Err(ConfigErrors(vec![ConfigError {
                    path: profile_path.to_path_buf(),
                    line: self.file_pos.0,
                    column: self.file_pos.1,
                    message,
                }]));
            }
        }
        let errors = load_sequence_files(
            &mut self.kind,
            self.one_time_file.as_deref(),
            self.totp_secret_file.as_deref(),
            profile_path,
            self.file_pos,
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// A key owned by someone else is not private to the user knocking with it.
fn check_key_owner(file: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file)
        .map_err(|e| format!("cannot read TOTP key `{}`: {e}", file.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "TOTP key `{}` belongs to uid {}, not to you (uid {me}): a key must be private to \
             the user who knocks with it",
            file.display(),
            meta.uid()
        ));
    }
    Ok(())
}

/// A host as the profile may write it: a name or an address, one per entry.
fn check_host(h: &str) -> Result<(), String> {
    if h.trim().is_empty() {
        return Err("empty host in `hosts`".into());
    }
    if let Some(c) = h
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '/' | '#'))
    {
        return Err(format!(
            "host `{h}`: {c:?} is not allowed in a host name or address (one host per entry)"
        ));
    }
    Ok(())
}

fn target(t: &RawTarget, line: usize, base: &Path, sink: &mut Sink) -> Option<ClientTarget> {
    let before = sink.errors.len();
    let name = t.name.get_ref().clone();
    if let Err(m) = check_door_name(&name) {
        sink.at(t.name.span(), m.replace("door name", "target name"));
    }
    let hosts = match t.hosts.get_ref() {
        StringOrList::One(s) => vec![s.clone()],
        StringOrList::List(l) => l.clone(),
    };
    if hosts.is_empty() {
        sink.at(t.hosts.span(), "`hosts` is empty: name at least one host");
    }
    for h in &hosts {
        if let Err(m) = check_host(h) {
            sink.at(t.hosts.span(), m);
        }
    }
    let delay = match &t.delay_ms {
        None => Duration::ZERO,
        Some(v) => {
            let n = *v.get_ref();
            if !(0..=MAX_DELAY_MS as i64).contains(&n) {
                sink.at(
                    v.span(),
                    format!("`delay_ms` must be from 0 to {MAX_DELAY_MS} milliseconds, not {n}"),
                );
            }
            Duration::from_millis(n.clamp(0, MAX_DELAY_MS as i64) as u64)
        }
    };
    let family = match &t.family {
        None => Family::Any,
        Some(v) => match v.get_ref().as_str() {
            "any" => Family::Any,
            "ipv4" => Family::V4,
            "ipv6" => Family::V6,
            other => {
                sink.at(
                    v.span(),
                    format!("`family` must be \"any\", \"ipv4\" or \"ipv6\", not `{other}`"),
                );
                Family::Any
            }
        },
    };
    let port = match &t.port {
        None => DEFAULT_CONNECT_PORT,
        Some(v) => {
            let n = *v.get_ref();
            match u16::try_from(n)
                .ok()
                .and_then(|p| parse_port(&p.to_string()))
            {
                Some(p) => p,
                None => {
                    sink.at(v.span(), format!("`port` must be from 1 to 65535, not {n}"));
                    DEFAULT_CONNECT_PORT
                }
            }
        }
    };
    let connect_timeout = match &t.connect_timeout {
        None => DEFAULT_CONNECT_TIMEOUT,
        Some(v) => match duration_value(v, "connect_timeout", sink) {
            Some(d) if d > MAX_CONNECT_TIMEOUT => {
                sink.at(
                    v.span(),
                    format!(
                        "`connect_timeout` must be at most {}s",
                        MAX_CONNECT_TIMEOUT.as_secs()
                    ),
                );
                DEFAULT_CONNECT_TIMEOUT
            }
            Some(d) => d,
            None => DEFAULT_CONNECT_TIMEOUT,
        },
    };
    let (kind, one_time_file, totp_secret_file, file_pos) = sequence_source(
        &SourceKeys {
            sequence: t.sequence.as_ref(),
            one_time_sequences: t.one_time_sequences.as_ref(),
            totp_secret_file: t.totp_secret_file.as_ref(),
            totp_length: t.totp_length.as_ref(),
            totp_ports: t.totp_ports.as_ref(),
            totp_step: t.totp_step.as_ref(),
        },
        &t.name,
        "target",
        line,
        base,
        sink,
    );
    if sink.errors.len() != before {
        return None;
    }
    Some(ClientTarget {
        name,
        hosts,
        kind,
        one_time_file,
        totp_secret_file,
        delay,
        family,
        port,
        connect_timeout,
        line,
        file_pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_match::Step;

    const GOOD: &str = r#"
[[target]]
name = "prod"
hosts = ["bastion.example.org", "198.18.0.1"]
sequence = ["7000", "8000:udp", 9000]
delay_ms = 50
family = "ipv6"
port = 2222
connect_timeout = "8s"

[[target]]
name = "totp"
hosts = "b.example.org"
totp_secret_file = "keys/totp.key"
totp_ports = "20000-40000"
totp_length = 3
"#;

    #[test]
    fn a_valid_profile() {
        let p =
            ClientProfile::from_toml_str(GOOD, "/home/u/.config/knockwrap/client.toml").unwrap();
        let prod = &p.targets[0];
        assert_eq!(prod.name, "prod");
        assert_eq!(prod.hosts, ["bastion.example.org", "198.18.0.1"]);
        assert_eq!(
            prod.kind,
            DoorKind::Static {
                steps: vec![Step::tcp(7000), Step::udp(8000), Step::tcp(9000)]
            }
        );
        assert_eq!(prod.delay, Duration::from_millis(50));
        assert_eq!(prod.family, Family::V6);
        assert_eq!(prod.port, 2222);
        assert_eq!(prod.connect_timeout, Duration::from_secs(8));
        assert_eq!(prod.line, 2);
        let totp = &p.targets[1];
        assert_eq!(totp.port, DEFAULT_CONNECT_PORT);
        assert_eq!(totp.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(
            totp.totp_secret_file.as_deref(),
            Some(Path::new("/home/u/.config/knockwrap/keys/totp.key"))
        );
        match &totp.kind {
            DoorKind::Totp(t) => {
                assert_eq!((t.length, t.lo, t.hi), (3, 20000, 40000));
                assert_eq!(t.step, Duration::from_secs(30));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p.find("prod").map(|(t, k)| (&t.name[..], k)),
            Some(("prod", Pick::ByName))
        );
        assert_eq!(
            p.find("BASTION.example.org").map(|(t, k)| (&t.name[..], k)),
            Some(("prod", Pick::ByHost))
        );
        assert!(p.find("elsewhere").is_none());
    }

    fn errors(text: &str) -> Vec<String> {
        ClientProfile::from_toml_str(text, "/p/client.toml")
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn every_mistake_at_its_line_and_column() {
        let cases: &[(&str, &str)] = &[
            ("[[target]]\nname = \"a\"\nhosts = \"h\"\nsequence = [\"7000\"]\nport = 0\n", "/p/client.toml:5:8: `port` must be from 1 to 65535, not 0"),
            ("[[target]]\nname = \"a\"\nhosts = \"h\"\nsequence = [\"7000\"]\nfamily = \"v6\"\n", "/p/client.toml:5:10: `family` must be \"any\", \"ipv4\" or \"ipv6\", not `v6`"),
            ("[[target]]\nname = \"a\"\nhosts = \"h\"\nsequence = [\"7000\"]\ncolour = 1\n", "/p/client.toml:5:1: unknown field `colour`"),
            ("[[target]]\nname = \"a\"\nhosts = []\nsequence = [\"7000\"]\n", "/p/client.toml:3:9: `hosts` is empty"),
            ("[[target]]\nname = \"a\"\nhosts = \"h\"\nsequence = [\"7000:icmp\"]\n", "/p/client.toml:4:13: sequence step `7000:icmp`"),
            ("[[target]]\nname = \"a\"\nhosts = \"h\"\n", "/p/client.toml:2:8: target `a` needs one of"),
            ("[[target]]\nname = \"a\"\nhosts = \"h\"\nsequence = [\"7000\"]\ntotp_ports = \"1-9\"\n", "/p/client.toml:5:14: `totp_ports` applies only to targets with `totp_secret_file`"),
            ("[[target]]\nname = \"a\"\nhosts = \"h\"\nsequence = [\"7000\"]\ndelay_ms = -1\n", "/p/client.toml:5:12: `delay_ms` must be from 0 to 60000"),
            ("[[target]]\nname = \"a\"\nhosts = \"h\"\nsequence = [\"7000\"]\nconnect_timeout = \"soon\"\n", "/p/client.toml:5:19: `connect_timeout`: `soon` is not a duration"),
            ("[[target]]\nname = \"a\"\nhosts = \"h j\"\nsequence = [\"7000\"]\n", "/p/client.toml:3:9: host `h j`"),
            ("[[target]]\nname = \"a\"\nhosts = \"h\"\nsequence = [\"7000\"]\n[[target]]\nname = \"a\"\nhosts = \"h\"\nsequence = [\"7000\"]\n", "/p/client.toml:6:8: duplicate target name `a` (first defined at line 1)"),
            ("[[target]]\nname = \"a\"\nhosts = \"h\"\nsequence = [\"7000\"\n", "/p/client.toml:5:1: invalid array"),
        ];
        for (text, want) in cases {
            let got = errors(text);
            assert!(
                got.iter().any(|e| e.starts_with(want)),
                "for {text:?} wanted {want:?}, got {got:?}"
            );
        }
    }
}
