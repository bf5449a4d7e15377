//! The door model: knock steps, TCP flag rules, actions and the three kinds of door
//! (a fixed sequence, a list of one-time sequences, a TOTP-derived sequence).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

use crate::event::{Proto, TcpFlags};

/// Most steps a sequence may have (knockd's `SEQ_MAX`).
pub const MAX_STEPS: usize = 32;

/// One knock: a destination port and a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub port: u16,
    pub proto: Proto,
}

impl Step {
    pub fn tcp(port: u16) -> Step {
        Step {
            port,
            proto: Proto::Tcp,
        }
    }

    pub fn udp(port: u16) -> Step {
        Step {
            port,
            proto: Proto::Udp,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.port, self.proto)
    }
}

/// Why a `port[:proto]` step did not parse.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StepError {
    #[error("empty step (expected port or port:tcp / port:udp)")]
    Empty,
    #[error("port `{0}` is not a number from 1 to 65535")]
    BadPort(String),
    #[error("unknown protocol `{0}` (expected tcp or udp)")]
    BadProto(String),
}

impl FromStr for Step {
    type Err = StepError;

    /// `7000`, `7000:tcp`, `7000:udp` (protocol case-insensitive, blanks around parts ignored).
    fn from_str(s: &str) -> Result<Step, StepError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(StepError::Empty);
        }
        let (port_text, proto) = match s.split_once(':') {
            None => (s, Proto::Tcp),
            Some((p, proto)) => {
                let proto_text = proto.trim();
                let proto = if proto_text.eq_ignore_ascii_case("tcp") {
                    Proto::Tcp
                } else if proto_text.eq_ignore_ascii_case("udp") {
                    Proto::Udp
                } else {
                    return Err(StepError::BadProto(proto_text.to_string()));
                };
                (p.trim(), proto)
            }
        };
        let port = parse_port(port_text).ok_or_else(|| StepError::BadPort(port_text.into()))?;
        Ok(Step { port, proto })
    }
}

/// A port from 1 to 65535, digits only (no sign, no blanks).
pub fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match text.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Some(p as u16),
        _ => None,
    }
}

/// What a door requires of one TCP flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FlagRule {
    DontCare,
    /// The flag must be set (`syn`).
    Set,
    /// The flag must be clear (`!ack`).
    Unset,
}

/// knockd's `tcpflags`: a tri-state rule per flag; all rules must hold. UDP knocks are
/// unaffected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpFlagRules {
    required: u8,
    forbidden: u8,
}

/// Why a `tcp_flags` list did not parse.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FlagError {
    #[error("unknown TCP flag `{0}` (expected fin, syn, rst, psh, ack, urg, ece, cwr, optionally prefixed by `!`)")]
    Unknown(String),
    #[error("TCP flag `{0}` is both required and forbidden")]
    Conflict(String),
}

const FLAG_NAMES: [(&str, u8); 8] = [
    ("fin", TcpFlags::FIN),
    ("syn", TcpFlags::SYN),
    ("rst", TcpFlags::RST),
    ("psh", TcpFlags::PSH),
    ("ack", TcpFlags::ACK),
    ("urg", TcpFlags::URG),
    ("ece", TcpFlags::ECE),
    ("cwr", TcpFlags::CWR),
];

impl TcpFlagRules {
    /// No rule: every TCP packet qualifies (knockd's default).
    pub fn none() -> TcpFlagRules {
        TcpFlagRules::default()
    }

    pub fn with(mut self, bit: u8, rule: FlagRule) -> TcpFlagRules {
        self.required &= !bit;
        self.forbidden &= !bit;
        match rule {
            FlagRule::DontCare => {}
            FlagRule::Set => self.required |= bit,
            FlagRule::Unset => self.forbidden |= bit,
        }
        self
    }

    pub fn rule(&self, bit: u8) -> FlagRule {
        if self.required & bit != 0 {
            FlagRule::Set
        } else if self.forbidden & bit != 0 {
            FlagRule::Unset
        } else {
            FlagRule::DontCare
        }
    }

    /// Parses one item of a `tcp_flags` list: `syn`, `!ack` (case-insensitive).
    pub fn parse_item(item: &str) -> Result<(u8, FlagRule), FlagError> {
        let t = item.trim();
        let (name, rule) = match t.strip_prefix('!') {
            Some(rest) => (rest.trim(), FlagRule::Unset),
            None => (t, FlagRule::Set),
        };
        FLAG_NAMES
            .iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n))
            .map(|&(_, bit)| (bit, rule))
            .ok_or_else(|| FlagError::Unknown(item.to_string()))
    }

    /// Parses a whole list such as `["syn", "!ack"]`.
    pub fn parse_list<'a, I: IntoIterator<Item = &'a str>>(
        items: I,
    ) -> Result<TcpFlagRules, FlagError> {
        let mut rules = TcpFlagRules::none();
        for item in items {
            let (bit, rule) = Self::parse_item(item)?;
            let existing = rules.rule(bit);
            if existing != FlagRule::DontCare && existing != rule {
                return Err(FlagError::Conflict(
                    item.trim().trim_start_matches('!').into(),
                ));
            }
            rules = rules.with(bit, rule);
        }
        Ok(rules)
    }

    /// True when the flags satisfy every rule.
    pub fn matches(&self, flags: TcpFlags) -> bool {
        flags.0 & self.required == self.required && flags.0 & self.forbidden == 0
    }

    pub fn is_none(&self) -> bool {
        self.required == 0 && self.forbidden == 0
    }

    /// A connection attempt: SYN set; ACK, RST and FIN clear (the other bits don't matter:
    /// ECN-capable stacks set ECE and CWR on their SYNs).
    pub fn pure_syn() -> TcpFlagRules {
        TcpFlagRules {
            required: TcpFlags::SYN,
            forbidden: TcpFlags::ACK | TcpFlags::RST | TcpFlags::FIN,
        }
    }

    /// Both rules at once, or `None` when one requires a flag the other forbids.
    pub fn and(self, other: TcpFlagRules) -> Option<TcpFlagRules> {
        let rules = TcpFlagRules {
            required: self.required | other.required,
            forbidden: self.forbidden | other.forbidden,
        };
        (rules.required & rules.forbidden == 0).then_some(rules)
    }

    /// The bits that must be set and the bits that must be clear.
    pub fn bits(&self) -> (u8, u8) {
        (self.required, self.forbidden)
    }
}

/// What a completed sequence does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Action {
    Allow,
    Revoke,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Revoke => "revoke",
        })
    }
}

/// Parameters of a TOTP door. Its steps are TCP knocks (see `docs/totp.md`).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TotpParams {
    pub secret: Vec<u8>,
    pub length: usize,
    pub lo: u16,
    pub hi: u16,
    pub step: Duration,
    /// Step counters already accepted (from the progress store): each (door, counter) is
    /// usable once.
    pub used: crate::totp::UsedSteps,
}

impl fmt::Debug for TotpParams {
    // Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpParams")
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("length", &self.length)
            .field("lo", &self.lo)
            .field("hi", &self.hi)
            .field("step", &self.step)
            .field("used", &self.used)
            .finish()
    }
}

/// Where a door's sequence comes from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DoorKind {
    /// One fixed sequence (`sequence = [...]`).
    Static { steps: Vec<Step> },
    /// Sequences used once each, in order; `next` is the index of the first unused one (from
    /// the progress store). The door is disabled once `next >= sequences.len()`.
    OneTime {
        sequences: Vec<Vec<Step>>,
        next: usize,
    },
    /// A sequence derived from a shared secret and the time.
    Totp(TotpParams),
}

/// A door: which knocks open (or close) it and what it then does.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Door {
    pub name: String,
    pub kind: DoorKind,
    /// The whole sequence must arrive within this, counted from the first knock.
    pub seq_timeout: Duration,
    pub tcp_flags: TcpFlagRules,
    pub action: Action,
    pub service: String,
    pub lease: Option<Duration>,
    /// When set, only knocks sent to this destination address count for this door.
    pub target: Option<IpAddr>,
    /// When not empty, only knocks from these sources count for this door (`knock_from`):
    /// a knock from elsewhere never starts or advances it, so it takes no table space.
    #[serde(default)]
    pub knock_from: Vec<crate::Prefix>,
    /// Link-local sources (169.254.0.0/16, fe80::/10) may knock this door
    /// (`link_local_sources`); other doors refuse them.
    #[serde(default)]
    pub link_local: bool,
}

impl Door {
    /// True when a knock from `src` may count for this door (`knock_from` is empty or holds
    /// it). An IPv4-mapped IPv6 source is taken as its IPv4 address.
    pub fn knock_allowed_from(&self, src: IpAddr) -> bool {
        let src = src.to_canonical();
        self.knock_from.is_empty() || self.knock_from.iter().any(|p| p.contains(src))
    }
}

/// Why a door cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DoorError {
    #[error("door `{door}`: {message}")]
    Invalid { door: String, message: String },
}

/// Smallest TOTP secret accepted, in bytes (128 bits).
pub const MIN_TOTP_SECRET: usize = 16;

fn check_sequence(steps: &[Step]) -> Result<(), String> {
    if steps.is_empty() {
        return Err("empty sequence".into());
    }
    if steps.len() > MAX_STEPS {
        return Err(format!(
            "sequence has {} steps, at most {MAX_STEPS} allowed",
            steps.len()
        ));
    }
    if steps.iter().any(|s| s.port == 0) {
        return Err("port 0 in sequence".into());
    }
    if let Some(why) = sweep_shaped(steps) {
        return Err(why);
    }
    Ok(())
}

/// Why a port sweep would complete this sequence, if it would: a single step (any packet to
/// that port opens it), or steps on adjacent ports in one direction (7000, 7001, 7002), which
/// an ascending or descending sweep sends in order with nothing in between.
pub fn sweep_shaped(steps: &[Step]) -> Option<String> {
    if steps.len() == 1 {
        return Some(
            "a single-step sequence is opened by any port sweep: use at least two steps".into(),
        );
    }
    let adjacent = |d: i32| {
        steps
            .windows(2)
            .all(|w| w[0].proto == w[1].proto && i32::from(w[1].port) - i32::from(w[0].port) == d)
    };
    if steps.len() > 1 && (adjacent(1) || adjacent(-1)) {
        return Some(format!(
            "steps on adjacent ports ({}) are opened by any port sweep: spread them out",
            steps
                .iter()
                .map(Step::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    None
}

impl Door {
    /// Takes over what `other` has used when it keeps its progress in the same place (the
    /// same name and kind): a one-time door's `next` becomes the later of the two, a TOTP
    /// door's used counters the union. Anything else is left alone. A sequence used through
    /// either copy is then used in both, so neither can grant it again.
    pub fn merge_progress(&mut self, other: &Door) {
        if self.name != other.name {
            return;
        }
        match (&mut self.kind, &other.kind) {
            (
                DoorKind::OneTime { sequences, next },
                DoorKind::OneTime {
                    next: other_next, ..
                },
            ) => *next = (*next).max(*other_next).min(sequences.len()),
            (DoorKind::Totp(mine), DoorKind::Totp(theirs)) => {
                let used = &mut mine.used;
                used.floor = used.floor.max(theirs.used.floor);
                used.above.extend(theirs.used.above.iter().copied());
                if let Some(f) = used.floor {
                    used.above.retain(|&c| c > f);
                }
            }
            _ => {}
        }
    }

    /// Checks every invariant the matcher relies on.
    pub fn validate(&self) -> Result<(), DoorError> {
        let fail = |message: String| DoorError::Invalid {
            door: self.name.clone(),
            message,
        };
        if self.name.is_empty() {
            return Err(fail("empty door name".into()));
        }
        if self.seq_timeout.as_millis() == 0 {
            return Err(fail("seq_timeout must be positive".into()));
        }
        if self.lease == Some(Duration::ZERO) {
            return Err(fail("lease must be positive".into()));
        }
        let secret_door = !matches!(self.kind, DoorKind::Static { .. });
        if secret_door && TcpFlagRules::pure_syn().and(self.tcp_flags).is_none() {
            return Err(fail(
                "one-time and TOTP doors take only pure SYNs (SYN set; ACK, RST, FIN clear): \
                 `tcp_flags` cannot require ack, rst or fin, nor forbid syn"
                    .into(),
            ));
        }
        match &self.kind {
            DoorKind::Static { steps } => check_sequence(steps).map_err(fail)?,
            DoorKind::OneTime { sequences, .. } => {
                for (i, s) in sequences.iter().enumerate() {
                    check_sequence(s)
                        .map_err(|m| fail(format!("one-time sequence {}: {m}", i + 1)))?;
                }
            }
            DoorKind::Totp(p) => {
                if p.secret.len() < MIN_TOTP_SECRET {
                    return Err(fail(format!(
                        "TOTP secret has {} bits, at least {} required",
                        p.secret.len() * 8,
                        MIN_TOTP_SECRET * 8
                    )));
                }
                if p.length < 2 || p.length > MAX_STEPS {
                    return Err(fail(format!(
                        "totp_length must be 2 to {MAX_STEPS} (a single step is opened by any port sweep)"
                    )));
                }
                if p.lo == 0 || p.lo > p.hi {
                    return Err(fail("totp_ports must be lo-hi with 1 <= lo <= hi".into()));
                }
                if usize::from(p.hi - p.lo) + 1 < p.length {
                    return Err(fail("totp_ports range is smaller than totp_length".into()));
                }
                if p.step.as_millis() == 0 {
                    return Err(fail("totp_step must be positive".into()));
                }
            }
        }
        Ok(())
    }

    /// The sequence a client should knock at `time_ms`: the static sequence, the next unused
    /// one-time sequence (`None` when exhausted), or the TOTP sequence of the current step.
    pub fn sequence_at(&self, time_ms: u64) -> Option<Vec<Step>> {
        match &self.kind {
            DoorKind::Static { steps } => Some(steps.clone()),
            DoorKind::OneTime { sequences, next } => sequences.get(*next).cloned(),
            DoorKind::Totp(p) => {
                let step_ms = p.step.as_millis().min(u128::from(u64::MAX)) as u64;
                let counter = crate::totp::totp_counter(time_ms, step_ms);
                let ports = crate::totp::totp_sequence(&p.secret, counter, p.length, p.lo, p.hi);
                (!ports.is_empty()).then(|| ports.into_iter().map(Step::tcp).collect())
            }
        }
    }

    /// The rule a TCP packet must satisfy to be a step of this door: a pure SYN (a connection
    /// attempt) unless a static door's `tcp_flags` asks for something else; one-time and TOTP
    /// doors take pure SYNs only (their `tcp_flags` may narrow that further, never widen it).
    pub fn step_rule(&self) -> TcpFlagRules {
        match (&self.kind, self.tcp_flags.is_none()) {
            (_, true) => TcpFlagRules::pure_syn(),
            (DoorKind::Static { .. }, false) => self.tcp_flags,
            // Validated: the two are compatible (see `validate`).
            (_, false) => TcpFlagRules::pure_syn()
                .and(self.tcp_flags)
                .unwrap_or_else(TcpFlagRules::pure_syn),
        }
    }

    /// True when a TCP packet with these flags could be a step of this door (UDP always can).
    pub fn flags_ok(&self, proto: Proto, flags: TcpFlags) -> bool {
        proto == Proto::Udp || self.step_rule().matches(flags)
    }

    /// True when some step of some sequence of the door is a UDP step.
    pub fn has_udp_step(&self) -> bool {
        match &self.kind {
            DoorKind::Static { steps } => steps.iter().any(|s| s.proto == Proto::Udp),
            DoorKind::OneTime { sequences, .. } => {
                sequences.iter().flatten().any(|s| s.proto == Proto::Udp)
            }
            DoorKind::Totp(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse() {
        let cases: &[(&str, Result<Step, StepError>)] = &[
            ("7000", Ok(Step::tcp(7000))),
            (" 7000 : UDP ", Ok(Step::udp(7000))),
            ("8000:tcp", Ok(Step::tcp(8000))),
            ("1", Ok(Step::tcp(1))),
            ("65535:udp", Ok(Step::udp(65535))),
            ("0", Err(StepError::BadPort("0".into()))),
            ("65536", Err(StepError::BadPort("65536".into()))),
            ("-1", Err(StepError::BadPort("-1".into()))),
            ("+80", Err(StepError::BadPort("+80".into()))),
            ("80:icmp", Err(StepError::BadProto("icmp".into()))),
            ("", Err(StepError::Empty)),
            ("abc", Err(StepError::BadPort("abc".into()))),
        ];
        for (text, want) in cases {
            assert_eq!(&text.parse::<Step>(), want, "{text:?}");
        }
    }

    #[test]
    fn flag_rules() {
        let syn = TcpFlagRules::parse_list(["syn"]).unwrap();
        let syn_not_ack = TcpFlagRules::parse_list(["SYN", "!ack"]).unwrap();
        let cases = [
            (TcpFlags(TcpFlags::SYN), true, true),
            (TcpFlags(TcpFlags::SYN | TcpFlags::ACK), true, false),
            (TcpFlags(TcpFlags::ACK), false, false),
            (
                TcpFlags(TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR),
                true,
                true,
            ),
            (TcpFlags(0), false, false),
        ];
        for (flags, want_syn, want_syn_not_ack) in cases {
            assert_eq!(syn.matches(flags), want_syn, "{flags:?}");
            assert_eq!(syn_not_ack.matches(flags), want_syn_not_ack, "{flags:?}");
        }
        assert!(TcpFlagRules::none().matches(TcpFlags(0xff)));
        assert_eq!(
            TcpFlagRules::parse_list(["syn", "!syn"]),
            Err(FlagError::Conflict("syn".into()))
        );
        assert_eq!(
            TcpFlagRules::parse_list(["sin"]),
            Err(FlagError::Unknown("sin".into()))
        );
        assert_eq!(syn_not_ack.rule(TcpFlags::ACK), FlagRule::Unset);
        assert_eq!(syn_not_ack.rule(TcpFlags::FIN), FlagRule::DontCare);
    }
}
