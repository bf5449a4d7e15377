//! The knock plan: which hosts to knock and which sequence to send them, and where that
//! sequence came from.
//!
//! A [`Plan`] is built from what the command line says, whatever sends it (`knock` or `connect`):
//! PORTs on the command line; `--door NAME --config PATH` (a static door's steps, a one-time
//! door's next unused sequence, a TOTP door's sequence for this moment, all derived here from
//! the daemon's own configuration); or, with neither, the client profile's target that HOST
//! names (see [`super::profile`]). The plan also carries the profile target's settings (family,
//! delay, port, timeout) and, for a one-time target, what to record once the sequence has gone
//! out (see [`super::onetime`]). Nothing here touches the network.

use std::path::Path;
use std::time::Duration;

use clock::wall_ms;
use hosts_writer::progress::ProgressStore;
use knock_match::{totp_counter, totp_sequence, DoorKind, Step, TcpFlags};
use knockwrap_config::client::{ClientTarget, Family};

use super::onetime::OneTimeMark;
use super::send::Knocked;
use crate::cli::KnockOptions;
use crate::failure::Failure;

/// What the command line says about the sequence.
pub(crate) struct Source<'a> {
    /// "knock" or "connect", for messages.
    pub cmd: &'static str,
    pub host: &'a str,
    pub ports: &'a [String],
    pub opts: &'a KnockOptions,
}

/// The hosts to knock and the sequence to send them, with the profile target's settings
/// when one was used.
pub(crate) struct Plan {
    pub hosts: Vec<String>,
    pub steps: Vec<Step>,
    /// Where the sequence came from, for messages ("door `x` of /etc/knockwrap.toml").
    pub origin: String,
    pub target: Option<ClientTarget>,
    pub(super) one_time: Option<OneTimeMark>,
}

impl Plan {
    /// The plan the command line gives by itself: its PORTs, or a `--door` of the daemon's
    /// configuration. `None` when it names neither: the client profile plans then
    /// ([`super::plan`]).
    pub fn from_command_line(src: &Source) -> Result<Option<Plan>, Failure> {
        let cmd = src.cmd;
        if src.opts.door.is_some() && !src.ports.is_empty() {
            return Err(Failure::usage(format!(
                "{cmd}: give either PORTs or --door, not both"
            )));
        }
        if !src.ports.is_empty() {
            return Ok(Some(Plan {
                hosts: parse_hosts(src.host)?,
                steps: parse_steps(src.ports, src.opts.udp)?,
                origin: "the command line".into(),
                target: None,
                one_time: None,
            }));
        }
        if src.opts.udp {
            return Err(Failure::usage(format!(
                "{cmd}: -u would change the door's protocols; leave it out with --door or a \
                 profile target"
            )));
        }
        if let Some(name) = src.opts.door.as_deref() {
            let Some(path) = src.opts.config.as_deref() else {
                return Err(Failure::usage(format!("{cmd}: --door needs --config PATH")));
            };
            return Ok(Some(Plan {
                hosts: parse_hosts(src.host)?,
                steps: door_steps(name, path, wall_ms())?,
                origin: format!("door `{name}` of {}", path.display()),
                target: None,
                one_time: None,
            }));
        }
        Ok(None)
    }

    /// `-4` / `-6` win over the profile target's `family`.
    pub fn family(&self, opts: &KnockOptions) -> Family {
        match (opts.ipv4, opts.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => self.target.as_ref().map_or(Family::Any, |t| t.family),
        }
    }

    /// `--delay` wins over the profile target's `delay_ms`.
    pub fn delay(&self, opts: &KnockOptions) -> Duration {
        opts.delay_ms
            .map(Duration::from_millis)
            .unwrap_or_else(|| self.target.as_ref().map_or(Duration::ZERO, |t| t.delay))
    }

    /// Records a profile target's one-time sequence as used once any of it went out.
    pub fn sent(&self, results: &[Knocked]) -> Result<(), Failure> {
        let Some(mark) = &self.one_time else {
            return Ok(());
        };
        let on_the_wire = results
            .iter()
            .any(|r| r.result.as_ref().map_or_else(|e| e.index > 0, |()| true));
        if !on_the_wire {
            return Ok(());
        }
        super::onetime::write_one_time_next(&mark.state, mark.next)
    }
}

fn parse_hosts(text: &str) -> Result<Vec<String>, Failure> {
    let hosts: Vec<String> = text.split(',').map(|h| h.trim().to_string()).collect();
    if hosts.iter().any(String::is_empty) {
        return Err(Failure::usage(format!(
            "knock: empty host in `{text}` (expected HOST[,HOST...])"
        )));
    }
    Ok(hosts)
}

fn parse_steps(ports: &[String], all_udp: bool) -> Result<Vec<Step>, Failure> {
    ports
        .iter()
        .map(|p| {
            let step: Step = p
                .parse()
                .map_err(|e| Failure::usage(format!("knock: step `{p}`: {e}")))?;
            Ok(if all_udp { Step::udp(step.port) } else { step })
        })
        .collect()
}

/// The sequence of door `name` in the configuration at `path`, now: a static door's steps,
/// a one-time door's next unused sequence (per the progress in `state_dir`; knocking does
/// not consume it, the daemon does when it accepts), a TOTP door's sequence for the current
/// step (TCP knocks).
pub(crate) fn door_steps(name: &str, path: &Path, now_ms: u64) -> Result<Vec<Step>, Failure> {
    let config = crate::configfile::load(path)?;
    let found = config
        .door(name)
        .ok_or_else(|| Failure::usage(format!("{}: no door named `{name}`", path.display())))?;
    let mut door = found.door.clone();
    if matches!(door.kind, DoorKind::OneTime { .. }) {
        let errors = ProgressStore::new(&config.state_dir).apply(std::slice::from_mut(&mut door));
        if let Some(e) = errors.first() {
            return Err(Failure::failed(format!("knock: door `{name}`: {e}")));
        }
    }
    if !door.tcp_flags.matches(TcpFlags(TcpFlags::SYN)) {
        eprintln!(
            "knockwrap: warning: door `{name}` requires TCP flags a connect's SYN does not \
             carry; its TCP steps will not count"
        );
    }
    kind_steps(&door.kind, now_ms)
        .map_err(|m| Failure::failed(format!("knock: door `{name}`: {m}")))
}

/// The steps a door of this kind expects at `now_ms` (one-time progress already applied).
/// The TOTP sequence is the daemon's own derivation (`knock_match::totp_sequence`).
pub(super) fn kind_steps(kind: &DoorKind, now_ms: u64) -> Result<Vec<Step>, String> {
    match kind {
        DoorKind::Static { steps } => Ok(steps.clone()),
        DoorKind::OneTime { sequences, next } => sequences
            .get(*next)
            .cloned()
            .ok_or_else(|| "every one-time sequence has been used".to_string()),
        DoorKind::Totp(p) => {
            let step_ms = u64::try_from(p.step.as_millis()).unwrap_or(u64::MAX);
            let counter = totp_counter(now_ms, step_ms);
            let ports = totp_sequence(&p.secret, counter, p.length, p.lo, p.hi);
            if ports.len() < p.length {
                return Err("the TOTP port range is too small for its length".into());
            }
            Ok(ports.into_iter().map(Step::tcp).collect())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cli::KnockArgs;
    use crate::failure::USAGE;

    pub(crate) fn args(host: &str, ports: &[&str]) -> KnockArgs {
        KnockArgs {
            host: host.into(),
            ports: ports.iter().map(|p| p.to_string()).collect(),
            knock: crate::cli::KnockOptions {
                udp: false,
                delay_ms: None,
                ipv4: false,
                ipv6: false,
                verbose: false,
                door: None,
                config: None,
                profile: None,
            },
        }
    }

    /// A config with a static, a one-time and a TOTP door (RFC 6238's test secret).
    pub(crate) fn door_config(dir: &Path) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.join("totp.key");
        std::fs::write(&key, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.join("open.otp"), "# used\n1111,2222:udp\n3333,4444\n").unwrap();
        let path = dir.join("knockwrap.toml");
        std::fs::write(
            &path,
            r#"interface = "lo"
hosts_allow = "hosts.allow"
state_dir = "state"
log = "stderr"

[[door]]
name = "static"
sequence = ["7000", "8000:udp", "9000:tcp"]
service = "SSHD"

[[door]]
name = "otp"
one_time_sequences = "open.otp"
service = "SSHD"

[[door]]
name = "totp"
totp_secret_file = "totp.key"
totp_ports = "20000-40000"
service = "SSHD"
"#,
        )
        .unwrap();
        path
    }

    /// What `knock` does with its arguments before it resolves or sends anything.
    fn build(a: KnockArgs) -> Result<(), Failure> {
        crate::client::plan(&Source {
            cmd: "knock",
            host: &a.host,
            ports: &a.ports,
            opts: &a.knock,
        })
        .map(drop)
    }

    #[test]
    fn hosts_and_steps() {
        assert_eq!(parse_hosts("a, b").unwrap(), vec!["a", "b"]);
        assert_eq!(parse_hosts("a,,b").unwrap_err().code, USAGE);
        let ports: Vec<String> = ["7000", "8000:udp", "9000:TCP"].map(String::from).to_vec();
        assert_eq!(
            parse_steps(&ports, false).unwrap(),
            vec![Step::tcp(7000), Step::udp(8000), Step::tcp(9000)]
        );
        assert_eq!(
            parse_steps(&ports, true).unwrap(),
            vec![Step::udp(7000), Step::udp(8000), Step::udp(9000)]
        );
        for bad in ["0", "70000", "7000:icmp", "x"] {
            let e = parse_steps(&[bad.to_string()], false).unwrap_err();
            assert_eq!(e.code, USAGE, "{bad}");
            assert!(e.message.contains(bad), "{}", e.message);
        }
    }

    #[test]
    fn door_sequences_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = door_config(dir.path());
        assert_eq!(
            door_steps("static", &path, 0).unwrap(),
            vec![Step::tcp(7000), Step::udp(8000), Step::tcp(9000)]
        );
        assert_eq!(
            door_steps("otp", &path, 0).unwrap(),
            vec![Step::tcp(1111), Step::udp(2222)]
        );
        // docs/totp.md's test vectors: counter 0 and 1 with 30 s steps.
        let tcp = |ports: [u16; 4]| ports.map(Step::tcp).to_vec();
        assert_eq!(
            door_steps("totp", &path, 29_999).unwrap(),
            tcp([39129, 36346, 25873, 21785])
        );
        assert_eq!(
            door_steps("totp", &path, 30_000).unwrap(),
            tcp([20327, 31565, 32304, 24102])
        );
        assert_eq!(door_steps("nope", &path, 0).unwrap_err().code, USAGE);
        std::fs::write(&path, "door = 3\n").unwrap();
        let e = door_steps("static", &path, 0).unwrap_err();
        assert_eq!(e.code, USAGE);
        assert!(e.message.contains("knockwrap.toml:1"), "{}", e.message);
        // PORTs and --door together, -u with --door, --door without --config.
        let mut a = args("198.18.0.1", &["7000"]);
        a.knock.door = Some("static".into());
        a.knock.config = Some(path.clone());
        assert_eq!(build(a).unwrap_err().code, USAGE);
        let mut a = args("198.18.0.1", &[]);
        a.knock.door = Some("static".into());
        a.knock.config = Some(path.clone());
        a.knock.udp = true;
        assert_eq!(build(a).unwrap_err().code, USAGE);
        let mut a = args("198.18.0.1", &[]);
        a.knock.door = Some("static".into());
        assert_eq!(build(a).unwrap_err().code, USAGE);
    }
}
