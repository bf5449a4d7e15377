//! From raw TOML values to a validated [`Config`]: defaults, meanings, cross-key rules, and a
//! diagnostic at the offending value for each problem.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use knock_match::{
    parse_port, Action, Door, DoorKind, Prefix, Step, TcpFlagRules, TotpParams, MAX_STEPS,
};
use toml::Spanned;

use crate::duration::RawDuration;
use crate::error::{line_col, ConfigErrors, Sink};
use crate::firewall::{check_table_name, prefix_value, FirewallConfig, PortSpec};
use crate::raw::{RawConfig, RawDoor, RawFirewall, StepSpec, StringOrList};
use crate::{
    Config, DoorConfig, LogTarget, DEFAULT_HOSTS_ALLOW, DEFAULT_MAX_LEASES, DEFAULT_MAX_SOURCES,
    DEFAULT_MAX_WAITING_GRANTS, DEFAULT_SEQ_TIMEOUT, DEFAULT_STATE_DIR, DEFAULT_TOTP_LENGTH,
    DEFAULT_TOTP_STEP, MAX_MAX_LEASES, MAX_MAX_SOURCES, MAX_MAX_WAITING_GRANTS,
};

/// `text` as TOML of shape `T`; a syntax or shape error goes to `sink` at its position.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, sink: &mut Sink) -> Option<T> {
    match toml::from_str(text) {
        Ok(r) => Some(r),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let message = tidy_toml_message(e.message(), text, span.start);
            sink.at(span, message);
            None
        }
    }
}

pub(crate) fn build(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let mut sink = Sink::new(path, text);
    let Some(raw) = parse_toml::<RawConfig>(text, &mut sink) else {
        return Err(ConfigErrors(sink.errors));
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let config = settings(&raw, &base, path, &mut sink);
    let mut doors = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for d in &raw.door {
        let line = sink.line_of(&d.span());
        if let Some(door) = door(d.get_ref(), line, &base, &mut sink) {
            let name = d.get_ref().name.get_ref().clone();
            if let Some(first) = names.get(&name) {
                sink.at(
                    d.get_ref().name.span(),
                    format!("duplicate door name `{name}` (first defined at line {first})"),
                );
            } else {
                names.insert(name, line);
            }
            doors.push(door);
        }
    }
    if sink.errors.is_empty() {
        revoke_ports(&raw, &doors, &mut sink);
    }
    if sink.errors.is_empty() {
        Ok(Config { doors, ..config })
    } else {
        sink.errors.sort_by_key(|e| (e.line, e.column));
        Err(ConfigErrors(sink.errors))
    }
}

/// toml's messages end with a newline and sometimes repeat themselves; keep one line. Some
/// are empty (a control character in a comment, a lone carriage return, a key with no value
/// at the end): then say what was found at `at`.
pub(crate) fn tidy_toml_message(m: &str, text: &str, at: usize) -> String {
    let m = m.trim();
    if !m.is_empty() {
        return m.replace('\n', "; ");
    }
    match text.get(at..).map(|rest| rest.chars().next()) {
        Some(Some(c)) => format!("invalid TOML: unexpected character {c:?}"),
        Some(None) => "invalid TOML: unexpected end of file".into(),
        None => "invalid TOML".into(),
    }
}

pub(crate) fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

pub(crate) fn nonempty_path(
    v: &Spanned<String>,
    key: &str,
    base: &Path,
    sink: &mut Sink,
) -> PathBuf {
    if v.get_ref().trim().is_empty() {
        sink.at(v.span(), format!("`{key}` must not be empty"));
    }
    resolve(base, v.get_ref())
}

/// An integer setting from 1 to `max` (`default` when absent); out of range is an error at
/// the value's position.
fn bounded(
    v: &Option<Spanned<i64>>,
    key: &str,
    default: usize,
    max: usize,
    sink: &mut Sink,
) -> usize {
    let Some(v) = v else {
        return default;
    };
    let n = *v.get_ref();
    if n < 1 || n as u64 > max as u64 {
        sink.at(
            v.span(),
            format!("`{key}` must be from 1 to {max}, not {n}"),
        );
        return default;
    }
    n as usize
}

fn settings(raw: &RawConfig, base: &Path, path: &Path, sink: &mut Sink) -> Config {
    let mut interfaces = Vec::new();
    if let Some(v) = &raw.interface {
        let list = match v.get_ref() {
            StringOrList::One(s) => vec![s.clone()],
            StringOrList::List(l) => l.clone(),
        };
        if list.is_empty() {
            sink.at(v.span(), "`interface` list is empty");
        }
        for name in &list {
            if let Err(m) = check_interface(name) {
                sink.at(v.span(), m);
            }
        }
        interfaces = list;
    }
    let hosts_allow = raw
        .hosts_allow
        .as_ref()
        .map(|v| nonempty_path(v, "hosts_allow", base, sink))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_HOSTS_ALLOW));
    let state_dir = raw
        .state_dir
        .as_ref()
        .map(|v| nonempty_path(v, "state_dir", base, sink))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let log = match raw.log.as_ref() {
        None => LogTarget::Syslog,
        Some(v) => match v.get_ref().as_str() {
            "syslog" => LogTarget::Syslog,
            "stderr" => LogTarget::Stderr,
            _ => LogTarget::File(nonempty_path(v, "log", base, sink)),
        },
    };
    let max_sources = bounded(
        &raw.max_sources,
        "max_sources",
        DEFAULT_MAX_SOURCES,
        MAX_MAX_SOURCES,
        sink,
    );
    let max_leases = bounded(
        &raw.max_leases,
        "max_leases",
        DEFAULT_MAX_LEASES,
        MAX_MAX_LEASES,
        sink,
    );
    let max_waiting_grants = bounded(
        &raw.max_waiting_grants,
        "max_waiting_grants",
        DEFAULT_MAX_WAITING_GRANTS,
        MAX_MAX_WAITING_GRANTS,
        sink,
    );
    Config {
        path: path.to_path_buf(),
        interfaces,
        hosts_allow,
        state_dir,
        log,
        backup: raw.backup.unwrap_or(true),
        max_sources,
        max_leases,
        max_waiting_grants,
        metrics_file: raw
            .metrics_file
            .as_ref()
            .map(|v| nonempty_path(v, "metrics_file", base, sink)),
        user: raw.user.as_ref().map(|v| {
            let name = v.get_ref();
            let portable = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
            if name.is_empty() || name.len() > 32 || !name.chars().all(portable) || name == "root" {
                sink.at(
                    v.span(),
                    format!("`user` must name an unprivileged account (letters, digits, `._-`), not `{name}`"),
                );
            }
            name.clone()
        }),
        firewall: raw
            .firewall
            .as_ref()
            .map(|f| firewall(f, sink))
            .unwrap_or_default(),
        doors: Vec::new(),
    }
}

fn firewall(f: &Spanned<RawFirewall>, sink: &mut Sink) -> FirewallConfig {
    let raw = f.get_ref();
    let mut out = FirewallConfig {
        header_pos: Some(line_col(sink.text, f.span().start)),
        ..FirewallConfig::default()
    };
    if let Some(t) = &raw.table {
        match check_table_name(t.get_ref()) {
            Ok(()) => out.table = t.get_ref().clone(),
            Err(m) => sink.at(t.span(), m),
        }
    }
    if let Some(list) = &raw.always_allow {
        out.always_allow_pos = Some(line_col(sink.text, list.span().start));
        out.always_allow = prefixes(list, "always_allow", sink);
    }
    out
}

/// A list of prefixes (`always_allow`, `knock_from`), each problem at its entry.
fn prefixes(list: &Spanned<Vec<Spanned<String>>>, key: &str, sink: &mut Sink) -> Vec<Prefix> {
    let mut out = Vec::new();
    for v in list.get_ref() {
        match prefix_value(v.get_ref(), key) {
            Ok(p) => out.push(p),
            Err(m) => sink.at(v.span(), m),
        }
    }
    out
}

/// `open_ports`: `"PORT/tcp"` or `"PORT/udp"` entries, each once.
fn open_ports(list: &Spanned<Vec<Spanned<StepSpec>>>, sink: &mut Sink) -> Vec<PortSpec> {
    let mut out: Vec<(PortSpec, usize)> = Vec::new();
    for v in list.get_ref() {
        let parsed = match v.get_ref() {
            StepSpec::Number(n) => Err(format!(
                "`open_ports` entry {n} needs its protocol: write \"{n}/tcp\" or \"{n}/udp\""
            )),
            StepSpec::Text(t) => t
                .parse::<PortSpec>()
                .map_err(|e| format!("`open_ports` entry `{t}`: {e}")),
        };
        match parsed {
            Ok(p) => {
                if let Some((_, line)) = out.iter().find(|(q, _)| *q == p) {
                    sink.at(
                        v.span(),
                        format!("`open_ports` names {p} twice (first at line {line})"),
                    );
                } else {
                    out.push((p, sink.line_of(&v.span())));
                }
            }
            Err(m) => sink.at(v.span(), m),
        }
    }
    out.into_iter().map(|(p, _)| p).collect()
}

/// A revoke door's `open_ports` must be ports some allow door opens: the firewall guards only
/// those, so any other entry would remove nothing.
fn revoke_ports(raw: &RawConfig, doors: &[DoorConfig], sink: &mut Sink) {
    let opened: Vec<PortSpec> = doors
        .iter()
        .filter(|d| d.door.action == Action::Allow)
        .flat_map(|d| d.open_ports.iter().copied())
        .collect();
    for d in &raw.door {
        let d = d.get_ref();
        if d.action.as_ref().map(|a| a.get_ref().as_str()) != Some("revoke") {
            continue;
        }
        for v in d.open_ports.iter().flat_map(|l| l.get_ref()) {
            if let StepSpec::Text(t) = v.get_ref() {
                if let Ok(p) = t.parse::<PortSpec>() {
                    if !opened.contains(&p) {
                        sink.at(
                            v.span(),
                            format!(
                                "`open_ports`: no allow door opens {p}, so this revoke door \
                                 has nothing to close there"
                            ),
                        );
                    }
                }
            }
        }
    }
}

fn check_interface(name: &str) -> Result<(), String> {
    // IFNAMSIZ is 16 with the terminating NUL.
    if name.is_empty() || name.len() > 15 {
        return Err(format!("interface name `{name}` must be 1 to 15 bytes"));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c == ':' || c.is_control())
    {
        return Err(format!("`{name}` is not a valid interface name"));
    }
    Ok(())
}

/// Door names become file names in `state_dir`, so keep them plain.
pub(crate) fn check_door_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("door name must be 1 to 64 characters".into());
    }
    if name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "door name `{name}` may use only letters, digits, `_`, `-`, `.` (not first)"
        ));
    }
    Ok(())
}

/// The service becomes the first field of a hosts_access line: one daemon name.
pub(crate) fn check_service(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("`service` must not be empty".into());
    }
    if let Some(c) = s
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ':' | '#' | '\\'))
    {
        return Err(format!(
            "`service` must be one daemon name: {c:?} is not allowed (no blank, comma, colon, #, backslash or control character)"
        ));
    }
    if s.eq_ignore_ascii_case("EXCEPT") {
        return Err("`service` cannot be the hosts_access keyword EXCEPT".into());
    }
    Ok(())
}

pub(crate) fn duration_value(
    v: &Spanned<RawDuration>,
    key: &str,
    sink: &mut Sink,
) -> Option<Duration> {
    match &v.get_ref().0 {
        Err(m) => {
            sink.at(v.span(), format!("`{key}`: {m}"));
            None
        }
        Ok(d) if d.is_zero() => {
            sink.at(v.span(), format!("`{key}` must be positive"));
            None
        }
        Ok(d) => Some(*d),
    }
}

pub(crate) fn step_value(v: &Spanned<StepSpec>, sink: &mut Sink) -> Option<Step> {
    match v.get_ref() {
        StepSpec::Number(n) => match u16::try_from(*n).ok().filter(|&p| p != 0) {
            Some(p) => Some(Step::tcp(p)),
            None => {
                sink.at(v.span(), format!("port {n} is not from 1 to 65535"));
                None
            }
        },
        StepSpec::Text(t) => match t.parse::<Step>() {
            Ok(s) => Some(s),
            Err(e) => {
                sink.at(v.span(), format!("sequence step `{t}`: {e}"));
                None
            }
        },
    }
}

pub(crate) fn port_range(v: &Spanned<String>, sink: &mut Sink) -> Option<(u16, u16)> {
    let t = v.get_ref().trim();
    let parsed = t
        .split_once('-')
        .and_then(|(a, b)| Some((parse_port(a.trim())?, parse_port(b.trim())?)));
    match parsed {
        Some((lo, hi)) if lo <= hi => Some((lo, hi)),
        _ => {
            sink.at(
                v.span(),
                format!("`totp_ports` must be \"lo-hi\" with 1 <= lo <= hi <= 65535, not `{t}`"),
            );
            None
        }
    }
}

fn door(d: &RawDoor, line: usize, base: &Path, sink: &mut Sink) -> Option<DoorConfig> {
    let before = sink.errors.len();
    let name = d.name.get_ref().clone();
    if let Err(m) = check_door_name(&name) {
        sink.at(d.name.span(), m);
    }
    if let Err(m) = check_service(d.service.get_ref()) {
        sink.at(d.service.span(), m);
    }

    let action = match d.action.as_ref() {
        None => Action::Allow,
        Some(v) => match v.get_ref().as_str() {
            "allow" => Action::Allow,
            "revoke" => Action::Revoke,
            other => {
                sink.at(
                    v.span(),
                    format!("`action` must be \"allow\" or \"revoke\", not `{other}`"),
                );
                Action::Allow
            }
        },
    };
    let seq_timeout = d
        .seq_timeout
        .as_ref()
        .and_then(|v| duration_value(v, "seq_timeout", sink))
        .unwrap_or(DEFAULT_SEQ_TIMEOUT);
    let lease = d
        .lease
        .as_ref()
        .and_then(|v| duration_value(v, "lease", sink));
    if let (Some(v), Action::Revoke) = (&d.lease, action) {
        sink.at(
            v.span(),
            "`lease` applies only to doors with action = \"allow\"",
        );
    }
    let tcp_flags = match &d.tcp_flags {
        None => TcpFlagRules::none(),
        Some(v) => {
            let items: Vec<&str> = match v.get_ref() {
                StringOrList::One(s) => s.split(',').collect(),
                StringOrList::List(l) => l.iter().map(String::as_str).collect(),
            };
            match TcpFlagRules::parse_list(items) {
                Ok(r) => r,
                Err(e) => {
                    sink.at(v.span(), format!("`tcp_flags`: {e}"));
                    TcpFlagRules::none()
                }
            }
        }
    };
    if let (Some(v), true) = (&d.tcp_flags, d.sequence.is_none()) {
        if TcpFlagRules::pure_syn().and(tcp_flags).is_none() {
            sink.at(
                v.span(),
                "`tcp_flags`: one-time and TOTP doors take only pure SYNs (SYN set; ACK, RST, \
                 FIN clear): they cannot require ack, rst or fin, nor forbid syn",
            );
        }
    }
    let target = d
        .target
        .as_ref()
        .and_then(|v| match v.get_ref().trim().parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                sink.at(
                    v.span(),
                    format!("`target` must be an IP address, not `{}`", v.get_ref()),
                );
                None
            }
        });

    let open_ports_list = d
        .open_ports
        .as_ref()
        .map(|v| open_ports(v, sink))
        .unwrap_or_default();
    let hosts_allow = d.hosts_allow.as_ref().is_none_or(|v| *v.get_ref());
    if let Some(v) = &d.hosts_allow {
        if !*v.get_ref() && d.open_ports.as_ref().is_none_or(|l| l.get_ref().is_empty()) {
            sink.at(
                v.span(),
                "`hosts_allow = false` leaves this door nothing to do: give it `open_ports` \
                 (the ports the firewall admits the knocker to) or drop `hosts_allow = false`",
            );
        }
    }
    let knock_from = d
        .knock_from
        .as_ref()
        .map(|v| prefixes(v, "knock_from", sink))
        .unwrap_or_default();
    let open_ports_pos = d
        .open_ports
        .as_ref()
        .map_or((line, 1), |v| line_col(sink.text, v.span().start));

    let (kind, one_time_file, totp_secret_file, file_pos) = sequence_source(
        &SourceKeys {
            sequence: d.sequence.as_ref(),
            one_time_sequences: d.one_time_sequences.as_ref(),
            totp_secret_file: d.totp_secret_file.as_ref(),
            totp_length: d.totp_length.as_ref(),
            totp_ports: d.totp_ports.as_ref(),
            totp_step: d.totp_step.as_ref(),
        },
        &d.name,
        "door",
        line,
        base,
        sink,
    );

    if sink.errors.len() != before {
        return None;
    }
    Some(DoorConfig {
        door: Door {
            name,
            kind,
            seq_timeout,
            tcp_flags,
            action,
            service: d.service.get_ref().clone(),
            lease,
            target,
            knock_from,
            link_local: d.link_local_sources.unwrap_or(false),
        },
        one_time_file,
        totp_secret_file,
        open_ports: open_ports_list,
        hosts_allow,
        line,
        file_pos,
        open_ports_pos,
    })
}

/// The keys that give a door (or a client target) its sequences.
pub(crate) struct SourceKeys<'a> {
    pub sequence: Option<&'a Spanned<Vec<Spanned<StepSpec>>>>,
    pub one_time_sequences: Option<&'a Spanned<String>>,
    pub totp_secret_file: Option<&'a Spanned<String>>,
    pub totp_length: Option<&'a Spanned<i64>>,
    pub totp_ports: Option<&'a Spanned<String>>,
    pub totp_step: Option<&'a Spanned<RawDuration>>,
}

/// What a door's (or a client target's) sequences come from: exactly one of `sequence`,
/// `one_time_sequences`, `totp_secret_file`, with the TOTP parameters only beside the last.
/// Returns the kind (one-time sequences and TOTP secret still empty), the named file and the
/// line:column of the key naming it. `what` is "door" or "target", for messages.
pub(crate) fn sequence_source(
    k: &SourceKeys,
    name_span: &Spanned<String>,
    what: &str,
    line: usize,
    base: &Path,
    sink: &mut Sink,
) -> (DoorKind, Option<PathBuf>, Option<PathBuf>, (usize, usize)) {
    let name = name_span.get_ref();
    // Exactly one source of sequences.
    let sources: Vec<(&str, Range<usize>)> = [
        k.sequence.as_ref().map(|v| ("sequence", v.span())),
        k.one_time_sequences
            .as_ref()
            .map(|v| ("one_time_sequences", v.span())),
        k.totp_secret_file
            .as_ref()
            .map(|v| ("totp_secret_file", v.span())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if sources.is_empty() {
        sink.at(
            name_span.span(),
            format!(
                "{what} `{name}` needs one of `sequence`, `one_time_sequences`, `totp_secret_file`"
            ),
        );
    }
    let mut by_pos = sources.clone();
    by_pos.sort_by_key(|s| s.1.start);
    for extra in by_pos.iter().skip(1) {
        sink.at(
            extra.1.clone(),
            format!(
                "`{}` cannot be combined with `{}`: a {what} takes exactly one of `sequence`, `one_time_sequences`, `totp_secret_file`",
                extra.0, by_pos[0].0
            ),
        );
    }
    if k.totp_secret_file.is_none() {
        for (key, span) in [
            ("totp_length", k.totp_length.as_ref().map(|v| v.span())),
            ("totp_ports", k.totp_ports.as_ref().map(|v| v.span())),
            ("totp_step", k.totp_step.as_ref().map(|v| v.span())),
        ] {
            if let Some(span) = span {
                sink.at(
                    span,
                    format!("`{key}` applies only to {what}s with `totp_secret_file`"),
                );
            }
        }
    }

    let mut one_time_file = None;
    let mut totp_secret_file = None;
    let mut file_pos = (line, 1);
    let kind = if let Some(v) = &k.sequence {
        let steps: Vec<Step> = v
            .get_ref()
            .iter()
            .filter_map(|s| step_value(s, sink))
            .collect();
        let n = v.get_ref().len();
        if n == 0 {
            sink.at(v.span(), "`sequence` is empty: give 2 to 32 steps");
        } else if n > MAX_STEPS {
            sink.at(
                v.span(),
                format!("`sequence` has {n} steps, at most {MAX_STEPS} allowed"),
            );
        } else if steps.len() == n {
            if let Some(why) = knock_match::door::sweep_shaped(&steps) {
                sink.at(v.span(), format!("`sequence`: {why}"));
            }
        }
        DoorKind::Static { steps }
    } else if let Some(v) = &k.one_time_sequences {
        one_time_file = Some(nonempty_path(v, "one_time_sequences", base, sink));
        file_pos = crate::error::line_col(sink.text, v.span().start);
        DoorKind::OneTime {
            sequences: Vec::new(),
            next: 0,
        }
    } else if let Some(v) = &k.totp_secret_file {
        totp_secret_file = Some(nonempty_path(v, "totp_secret_file", base, sink));
        file_pos = crate::error::line_col(sink.text, v.span().start);
        let length = match &k.totp_length {
            None => DEFAULT_TOTP_LENGTH,
            Some(l) => {
                let n = *l.get_ref();
                if !(2..=MAX_STEPS as i64).contains(&n) {
                    sink.at(
                        l.span(),
                        format!(
                            "`totp_length` must be from 2 to {MAX_STEPS}, not {n} \
                             (a single step is opened by any port sweep)"
                        ),
                    );
                    DEFAULT_TOTP_LENGTH
                } else {
                    n as usize
                }
            }
        };
        let (lo, hi) = match &k.totp_ports {
            None => {
                sink.at(
                    name_span.span(),
                    format!("TOTP {what} `{name}` needs `totp_ports = \"lo-hi\"`"),
                );
                (1, 65535)
            }
            Some(v) => {
                let r = port_range(v, sink).unwrap_or((1, 65535));
                if usize::from(r.1 - r.0) + 1 < length {
                    sink.at(
                        v.span(),
                        format!("`totp_ports` holds fewer than totp_length = {length} ports"),
                    );
                }
                r
            }
        };
        let step = k
            .totp_step
            .and_then(|v| duration_value(v, "totp_step", sink))
            .unwrap_or(DEFAULT_TOTP_STEP);
        DoorKind::Totp(TotpParams {
            secret: Vec::new(),
            length,
            lo,
            hi,
            step,
            used: Default::default(),
        })
    } else {
        DoorKind::Static { steps: Vec::new() }
    };

    (kind, one_time_file, totp_secret_file, file_pos)
}
