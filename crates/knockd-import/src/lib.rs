//! Converting a knockd.conf into knockwrap's TOML configuration (`knockwrap import-knockd`).
//!
//! This crate owns the conversion and nothing else: it does no I/O, so it is tested on text
//! alone and the CLI (`src/cmd/import_knockd.rs`) does the reading, writing and exit codes.
//!
//! - [`convert`] reads the file as knockd 0.8 does (every key and alias, case-insensitively;
//!   knockd's defaults: `seq_timeout` 25 s, `cmd_timeout` 10 s), maps each door whose commands
//!   it recognises (see `command`) to a knockwrap door, and reports everything it leaves out,
//!   with the knockd file's line number and why, as [`Finding`]s.
//! - Every door written is validated with knockwrap's own configuration rules
//!   (`knockwrap_config::Config::from_toml_str`) before it is kept, so the output always
//!   loads; a door knockwrap refuses (one step, adjacent ports, ...) is left out with the
//!   configuration's reason.
//! - The output says, in comments, where knockwrap behaves differently from knockd.

mod command;
mod parse;
mod shell;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use command::{classify, Effect, Mapped};
use knock_match::{Proto, Step, MAX_STEPS};
use knockwrap_config::PortSpec;
use parse::{At, DoorSpec, KnockdConf};

/// knockd's default `seq_timeout` (SEQ_TIMEOUT in knockd.c).
pub const KNOCKD_SEQ_TIMEOUT: Duration = Duration::from_secs(25);
/// knockd's default `cmd_timeout` (CMD_TIMEOUT in knockd.c).
pub const KNOCKD_CMD_TIMEOUT: Duration = Duration::from_secs(10);
/// knockd's interface when the file names none.
pub const KNOCKD_INTERFACE: &str = "eth0";

/// A file knockd itself would refuse to read, at the line it stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something knockd did that the output does not do (a door, a command, an option).
    LeftOut,
    /// Carried over differently, or needing nothing; worth knowing.
    Note,
}

/// One thing to tell the operator, at a line of the knockd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: usize,
    pub severity: Severity,
    pub message: String,
}

/// The converted configuration and what was said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// knockwrap TOML, with comments.
    pub toml: String,
    /// In knockd file order.
    pub findings: Vec<Finding>,
    /// Doors written.
    pub doors: usize,
    /// Doors in the knockd file.
    pub knockd_doors: usize,
}

impl Import {
    /// True when nothing was left out.
    pub fn complete(&self) -> bool {
        self.findings
            .iter()
            .all(|f| f.severity != Severity::LeftOut)
    }
}

/// Converts `text`, a knockd.conf; `source` names it in the output's comments.
pub fn convert(text: &str, source: &str) -> Result<Import, ParseError> {
    let conf = parse::parse(text)?;
    Ok(Converter::default().run(&conf, source))
}

/// One door ready to write.
struct DoorOut {
    comments: Vec<String>,
    keys: Vec<(&'static str, String)>,
    /// `action = "revoke"`.
    revoke: bool,
    /// Its `open_ports`.
    ports: Vec<PortSpec>,
    /// Line of the knockd section, and its name.
    line: usize,
    knockd_name: String,
    /// Notes to print once the door is sure to be written.
    notes: Vec<(usize, String)>,
}

#[derive(Default)]
struct Converter {
    findings: Vec<Finding>,
    hosts_allow: Option<(String, usize)>,
    names: HashSet<String>,
}

impl Converter {
    fn left_out(&mut self, line: usize, message: impl Into<String>) {
        self.findings.push(Finding {
            line,
            severity: Severity::LeftOut,
            message: message.into(),
        });
    }

    fn note(&mut self, line: usize, message: impl Into<String>) {
        self.findings.push(Finding {
            line,
            severity: Severity::Note,
            message: message.into(),
        });
    }

    fn run(mut self, conf: &KnockdConf, source: &str) -> Import {
        let settings = self.settings(conf);
        let mut doors = Vec::new();
        for d in &conf.doors {
            match self.door(d) {
                Ok(door) => doors.push(door),
                Err(problems) => {
                    for (line, why) in problems {
                        self.left_out(line, format!("door [{}]: {why}", d.name));
                    }
                }
            }
        }
        // A revoke door can only close ports a converted allow door opens.
        let opened: Vec<PortSpec> = doors
            .iter()
            .filter(|d| !d.revoke)
            .flat_map(|d| d.ports.iter().copied())
            .collect();
        let (doors, orphans): (Vec<DoorOut>, Vec<DoorOut>) = doors
            .into_iter()
            .partition(|d| !d.revoke || d.ports.iter().all(|p| opened.contains(p)));
        for d in orphans {
            let missing: Vec<PortSpec> = d
                .ports
                .iter()
                .copied()
                .filter(|p| !opened.contains(p))
                .collect();
            self.left_out(
                d.line,
                format!(
                    "door [{}]: it closes {}, which no converted door opens (knockwrap guards \
                     only ports an allow door opens)",
                    d.knockd_name,
                    ports_list(&missing)
                ),
            );
        }
        for d in &doors {
            for (line, n) in &d.notes {
                self.note(*line, n.clone());
            }
        }
        if let Some(first) = doors.iter().find(|d| !d.ports.is_empty()) {
            self.note(
                first.line,
                "firewall commands are mapped to `open_ports` with `hosts_allow = false`: \
                 knockwrap hides those ports in its own nftables table and admits each knocker \
                 for the lease. Remove knockd's own rules that hid them (a DROP or REJECT \
                 elsewhere still drops admitted knockers), and list the addresses you manage \
                 the host from in `[firewall] always_allow`",
            );
        }
        let mut toml = header(source);
        for (k, v, comments) in &settings {
            for c in comments {
                write_comment(&mut toml, c);
            }
            let _ = writeln!(toml, "{k:<11} = {v}");
        }
        if let Some((path, _)) = &self.hosts_allow {
            let _ = writeln!(
                toml,
                "# the file knockd's commands edited; knockwrap adds and removes exactly its \
                 `SERVICE: ADDR` lines"
            );
            let _ = writeln!(toml, "hosts_allow = {}", quote(path));
        } else if doors
            .iter()
            .all(|d| d.keys.contains(&("hosts_allow", "false".into())))
        {
            let _ = writeln!(
                toml,
                "hosts_allow = \"/etc/hosts.allow\"   # no converted door writes a line here"
            );
        } else {
            let _ = writeln!(
                toml,
                "hosts_allow = \"/etc/hosts.allow\"   # where knockwrap writes `SERVICE: ADDR`"
            );
        }
        let _ = writeln!(
            toml,
            "state_dir   = \"/var/lib/knockwrap\" # leases and one-time progress (knockd kept none)"
        );
        let mut guarded: Vec<PortSpec> = doors
            .iter()
            .filter(|d| !d.revoke)
            .flat_map(|d| d.ports.iter().copied())
            .collect();
        guarded.sort();
        guarded.dedup();
        if !guarded.is_empty() {
            let _ = writeln!(toml);
            write_comment(
                &mut toml,
                &format!(
                    "knockd's firewall commands became `open_ports`: knockwrap owns this \
                     nftables table and drops new connections to {} from every source that has \
                     not knocked (established connections are never cut). List the addresses \
                     you manage this host from in always_allow so a lost knock client cannot \
                     lock you out; `knockwrap check --config` warns until you do.",
                    ports_list(&guarded)
                ),
            );
            let _ = writeln!(toml, "[firewall]");
            let _ = writeln!(
                toml,
                "table        = {}",
                quote(knockwrap_config::DEFAULT_FIREWALL_TABLE)
            );
            let _ = writeln!(toml, "# always_allow = [\"192.0.2.0/24\"]");
        }
        let written = doors.len();
        for d in doors {
            let _ = writeln!(toml);
            for c in &d.comments {
                write_comment(&mut toml, c);
            }
            let _ = writeln!(toml, "[[door]]");
            for (k, v) in &d.keys {
                let _ = writeln!(toml, "{k:<11} = {v}");
            }
        }
        if written == 0 {
            let _ = writeln!(
                toml,
                "\n# No door could be converted: see the messages import-knockd printed."
            );
        }
        self.findings.sort_by_key(|f| f.line);
        Import {
            toml,
            findings: self.findings,
            doors: written,
            knockd_doors: conf.doors.len(),
        }
    }

    /// `interface` and `log`, each with its comments.
    fn settings(&mut self, conf: &KnockdConf) -> Vec<(&'static str, String, Vec<String>)> {
        let o = &conf.options;
        let mut out = Vec::new();
        match &o.interface {
            None => out.push((
                "interface",
                quote(KNOCKD_INTERFACE),
                vec![format!(
                    "knockd listened on {KNOCKD_INTERFACE} when its file named no interface \
                     (unless started with -i, e.g. from /etc/default/knockd): check the name \
                     with `ip link`"
                )],
            )),
            Some(at) => match interface_name(&at.value) {
                Ok(name) => out.push((
                    "interface",
                    quote(&name),
                    vec![format!(
                        "knockd: Interface = {} (line {})",
                        at.value, at.line
                    )],
                )),
                Err(why) => self.left_out(
                    at.line,
                    format!(
                        "Interface `{}` left out: {why}; name the interface with `interface = \
                         \"...\"` or `knockwrap run --interface`",
                        at.value
                    ),
                ),
            },
        }
        let mut log = None;
        if let Some(at) = &o.log_file {
            match log_path(&at.value) {
                Ok(l) => {
                    log = Some((
                        l,
                        format!("knockd: LogFile = {} (line {})", at.value, at.line),
                    ))
                }
                Err(why) => {
                    self.left_out(at.line, format!("LogFile `{}` left out: {why}", at.value))
                }
            }
        }
        match (o.use_syslog, log) {
            (Some(line), Some((_, _))) => {
                let at = o.log_file.as_ref().expect("a log file was read");
                self.left_out(
                    at.line,
                    format!(
                        "LogFile `{}` left out: knockd logged to syslog (UseSyslog, line {line}) \
                         and to the file; knockwrap logs to one place and keeps syslog",
                        at.value
                    ),
                );
                out.push((
                    "log",
                    quote("syslog"),
                    vec![format!("knockd: UseSyslog (line {line})")],
                ));
            }
            (Some(line), None) => out.push((
                "log",
                quote("syslog"),
                vec![format!("knockd: UseSyslog (line {line})")],
            )),
            (None, Some((l, c))) => out.push(("log", l, vec![c])),
            (None, None) => out.push((
                "log",
                quote("syslog"),
                vec![
                    "knockd logged nowhere without UseSyslog or LogFile; knockwrap logs to syslog"
                        .into(),
                ],
            )),
        }
        if let Some(at) = &o.pid_file {
            self.note(
                at.line,
                format!(
                    "PidFile `{}` needs no equivalent: knockwrap writes no pid file (systemd runs \
                     it as Type=notify)",
                    at.value
                ),
            );
        }
        for at in &o.unknown {
            self.left_out(
                at.line,
                format!(
                    "`{}` left out: not a knockd 0.8 option (knockd 0.8 refuses the file for it)",
                    at.value
                ),
            );
        }
        out
    }

    /// Converts one door, or says every reason it cannot be (each at its line).
    fn door(&mut self, d: &DoorSpec) -> Result<DoorOut, Vec<(usize, String)>> {
        let mut problems: Vec<(usize, String)> = Vec::new();
        let mut notes: Vec<(usize, String)> = Vec::new();
        macro_rules! take {
            ($e:expr) => {
                match $e {
                    Ok(v) => Some(v),
                    Err(p) => {
                        problems.push(p);
                        None
                    }
                }
            };
        }
        for at in &d.unknown {
            let why = match at.value.to_ascii_lowercase().as_str() {
                "key" => "`key` is a knock-totp fork's TOTP secret; knockwrap's TOTP doors \
                          (`totp_secret_file`, docs/totp.md) derive their ports differently, so \
                          clients must change: write the door by hand"
                    .to_string(),
                _ => format!(
                    "`{}` is not a knockd 0.8 key (knockd 0.8 refuses the file for it; a fork's \
                     key?) and its meaning cannot be carried over",
                    at.value
                ),
            };
            problems.push((at.line, why));
        }
        let mut comments = vec![format!("knockd [{}] at line {}", d.name, d.line)];
        let mut keys: Vec<(&'static str, String)> = Vec::new();
        let name = self.unique_name(&d.name);
        if name != d.name {
            comments.push(format!(
                "named `{name}`: door names use letters, digits, `_`, `-`, `.`"
            ));
        }
        keys.push(("name", quote(&name)));

        // The sequence.
        let mut all_udp = false;
        let mut one_time = false;
        if let Some(at) = &d.one_time_sequences {
            one_time = true;
            if !at.value.starts_with('/') {
                problems.push((
                    at.line,
                    format!(
                        "one_time_sequences `{}` is a relative path (knockd resolved it against \
                         its working directory); give the absolute path",
                        at.value
                    ),
                ));
            }
            if let Some(s) = &d.sequence {
                notes.push((
                    s.line,
                    format!(
                        "door [{}]: `sequence` is replaced by one_time_sequences (line {})",
                        d.name, at.line
                    ),
                ));
            }
            comments.push(format!(
                "knockd: one_time_sequences = {} (line {}). knockwrap reads the same format but \
                 never rewrites the file: progress lives in state_dir/onetime-{name}.json, and \
                 lines knockd already commented out with `#` are skipped. Every sequence needs \
                 2 or more steps, not on adjacent ports, and only pure SYNs count.",
                at.value, at.line
            ));
            keys.push(("one_time_sequences", quote(&at.value)));
        } else if let Some(at) = &d.sequence {
            if let Some(steps) = take!(sequence(&at.value).map_err(|why| (at.line, why))) {
                if let Some(why) = knock_match::door::sweep_shaped(&steps) {
                    problems.push((
                        at.line,
                        format!(
                            "sequence `{}`: {why}. knockd opened it on any sweep too; knockwrap \
                             refuses it: pick two or more ports far apart and out of order, \
                             tell the clients, and add the door by hand",
                            at.value
                        ),
                    ));
                }
                all_udp = steps.iter().all(|s| s.proto == Proto::Udp);
                let list: Vec<String> = steps
                    .iter()
                    .map(|s| match s.proto {
                        Proto::Tcp => quote(&s.port.to_string()),
                        Proto::Udp => quote(&s.to_string()),
                    })
                    .collect();
                keys.push(("sequence", format!("[{}]", list.join(", "))));
            }
        } else {
            problems.push((
                d.line,
                "it has no sequence (knockd 0.8 refuses such a door)".into(),
            ));
        }

        // Timing.
        let seq_timeout = match &d.seq_timeout {
            None => {
                comments.push("seq_timeout: knockd's default, 25 s".into());
                Some(KNOCKD_SEQ_TIMEOUT)
            }
            Some(at) => take!(secs(at, "seq_timeout").map_err(|why| (at.line, why))),
        };
        if let Some(t) = seq_timeout {
            keys.push(("seq_timeout", quote(&format!("{}s", t.as_secs()))));
        }

        // TCP flags.
        match &d.tcp_flags {
            None if all_udp => {}
            None => comments.push(
                "knockd (no tcpflags) counted any TCP packet as a knock; knockwrap counts only \
                 pure SYNs (SYN set; ACK, RST, FIN clear), which is what knock clients send"
                    .into(),
            ),
            Some(at) => {
                if let Some(flags) = take!(tcp_flags(&at.value).map_err(|why| (at.line, why))) {
                    if all_udp {
                        comments.push(format!(
                            "knockd: tcpflags = {} (line {}) has no effect on UDP steps; left \
                             out",
                            at.value, at.line
                        ));
                    } else if flags == ["syn"] || (one_time && flags_fit_pure_syn(&flags)) {
                        comments.push(format!(
                            "knockd: tcpflags = {} (line {}); knockwrap's default, a pure SYN \
                             (SYN set; ACK, RST, FIN clear), is what knock clients send and is \
                             stricter",
                            at.value, at.line
                        ));
                    } else {
                        comments.push(format!(
                            "knockd: tcpflags = {} (line {}); flags beyond a pure SYN make \
                             every such packet to every port reach knockwrap (see \
                             docs/benchmarks.md)",
                            at.value, at.line
                        ));
                        let list: Vec<String> = flags.iter().map(|f| quote(f)).collect();
                        keys.push(("tcp_flags", format!("[{}]", list.join(", "))));
                    }
                }
            }
        }

        // Target.
        if let Some(at) = &d.target {
            match at.value.parse::<IpAddr>() {
                Ok(addr) => keys.push(("target", quote(&addr.to_string()))),
                Err(_) => problems.push((
                    at.line,
                    format!("target `{}` is not an IP address", at.value),
                )),
            }
        }

        // What the door does.
        let Some(start) = &d.start_command else {
            problems.push((
                d.line,
                "it has no start_command/command: knockd ran nothing for this door".into(),
            ));
            return Err(problems);
        };
        let Some(open) = take!(mapped(start, "start_command")) else {
            return Err(problems);
        };
        let mut action_lease = None;
        match (open.effect, &d.stop_command) {
            (Effect::Grant, None) => {
                if let Some(at) = &d.cmd_timeout {
                    notes.push((
                        at.line,
                        format!(
                            "door [{}]: cmd_timeout has no effect without stop_command (as in \
                             knockd)",
                            d.name
                        ),
                    ));
                }
                action_lease = Some(("allow", open.lease));
            }
            (Effect::Grant, Some(stop)) => {
                let close = take!(mapped(stop, "stop_command").map_err(|(line, why)| {
                    (
                        line,
                        format!("{why}; converting only the start would leave access open"),
                    )
                }));
                match close {
                    Some(close) if close.effect != Effect::Remove || !close.same_access(&open) => {
                        problems.push((
                            stop.line,
                            format!(
                                "stop_command does not undo start_command (it {}; the start \
                                 {}): converting only the start would leave access open",
                                close.what, open.what
                            ),
                        ));
                    }
                    Some(_) => {
                        let lease = match &d.cmd_timeout {
                            None => {
                                comments.push("lease: knockd's default cmd_timeout, 10 s".into());
                                Some(KNOCKD_CMD_TIMEOUT)
                            }
                            Some(at) => {
                                take!(secs(at, "cmd_timeout").map_err(|why| (at.line, why)))
                            }
                        };
                        comments.push(format!(
                            "knockd ran stop_command (line {}) cmd_timeout after the knock: \
                             that is the lease, which survives restarts",
                            stop.line
                        ));
                        action_lease = lease.map(|l| ("allow", Some(l)));
                    }
                    None => {}
                }
            }
            (Effect::Remove, None) => action_lease = Some(("revoke", None)),
            (Effect::Remove, Some(stop)) => problems.push((
                stop.line,
                "a door that removes access and then runs a stop_command has no knockwrap \
                 equivalent"
                    .into(),
            )),
        }
        if let (Some(l), Some((first, line))) = (&open.line, &self.hosts_allow) {
            if *first != l.file {
                problems.push((
                    start.line,
                    format!(
                        "it edits {}, but line {line} edits {first}; knockwrap manages one \
                         hosts.allow",
                        l.file
                    ),
                ));
            }
        }
        let Some((action, lease)) = action_lease.filter(|_| problems.is_empty()) else {
            return Err(problems);
        };

        comments.push(format!("knockd ran (line {}): {}", start.line, start.value));
        if let Some(stop) = &d.stop_command {
            comments.push(format!("knockd ran (line {}): {}", stop.line, stop.value));
        }
        if open.effect == Effect::Remove && open.line.is_some() {
            comments.push(
                "knockwrap removes exactly the line `SERVICE: ADDR` (knockd's pattern also \
                 removed every line merely containing it, and its dots matched any character)"
                    .into(),
            );
        }
        let ports = open.ports.clone();
        if !ports.is_empty() {
            let list = ports_list(&ports);
            comments.push(if open.effect == Effect::Grant {
                format!(
                    "the firewall commands became open_ports: knockwrap admits the knocker to \
                     {list} in its own nftables table{}; every other source stays hidden from \
                     them",
                    if lease.is_some() {
                        " until the lease ends"
                    } else {
                        ""
                    }
                )
            } else {
                format!("the firewall commands became open_ports: knockwrap ends the knocker's admission to {list}")
            });
            comments.extend(open.assumed.iter().cloned());
        }
        let service = match &open.line {
            Some(l) => l.service.clone(),
            None => {
                let s = service_for(&ports);
                comments.push(format!(
                    "hosts_allow = false: no hosts.allow line (knockd wrote none); service = \
                     \"{s}\" names the grants in logs and in the lease journal"
                ));
                s
            }
        };
        keys.push(("action", quote(action)));
        keys.push(("service", quote(&service)));
        if !ports.is_empty() {
            let list: Vec<String> = ports.iter().map(|p| quote(&p.to_string())).collect();
            keys.push(("open_ports", format!("[{}]", list.join(", "))));
        }
        if open.line.is_none() {
            keys.push(("hosts_allow", "false".into()));
        }
        if let Some(l) = lease {
            keys.push(("lease", quote(&duration_text(l))));
        }
        let mut out = DoorOut {
            comments,
            keys,
            revoke: action == "revoke",
            ports,
            line: d.line,
            knockd_name: d.name.clone(),
            notes: Vec::new(),
        };
        validate(&out).map_err(|why| vec![(d.line, why)])?;

        // Kept: now the IPv6 commands and the file it edits count; its notes wait until the
        // door is sure to be written.
        out.notes = notes;
        if let (Some(l), None) = (&open.line, &self.hosts_allow) {
            self.hosts_allow = Some((l.file.clone(), start.line));
        }
        self.ipv6(d, &open, &mut out.comments);
        self.names.insert(name);
        Ok(out)
    }

    /// knockd 0.8 ran `start_command_6`/`stop_command_6` for IPv6 knockers (falling back to
    /// the IPv4 commands when they are absent); knockwrap grants IPv6 knockers exactly as IPv4
    /// ones, so a `_6` command is carried only when it does what the IPv4 one does.
    fn ipv6(&mut self, d: &DoorSpec, open: &Mapped, comments: &mut Vec<String>) {
        let pairs = [
            (&d.start_command_6, Some(open.effect), "start_command_6"),
            (
                &d.stop_command_6,
                d.stop_command.as_ref().map(|_| Effect::Remove),
                "stop_command_6",
            ),
        ];
        for (cmd, want, key) in pairs {
            let Some(at) = cmd else { continue };
            match classify(&at.value) {
                Ok(m) if Some(m.effect) == want && m.same_access(open) => {
                    comments.push(format!(
                        "knockd ran for IPv6 (line {}): {}",
                        at.line, at.value
                    ));
                }
                Ok(m) => self.left_out(
                    at.line,
                    format!(
                        "door [{}]: {key} left out: it {}, which is not what the IPv4 command \
                         does; knockwrap treats IPv6 knockers exactly like IPv4 ones",
                        d.name, m.what
                    ),
                ),
                Err(why) => self.left_out(
                    at.line,
                    format!(
                        "door [{}]: {key} left out: {why}; knockwrap treats IPv6 knockers \
                         exactly like IPv4 ones",
                        d.name
                    ),
                ),
            }
        }
    }

    /// A knockwrap door name for a knockd section name, unique in the output.
    fn unique_name(&self, section: &str) -> String {
        let mut base: String = section
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if base.starts_with('.') {
            base.insert_str(0, "door");
        }
        base.truncate(60);
        if base.is_empty() {
            base = "door".into();
        }
        let mut name = base.clone();
        let mut n = 2;
        while self.names.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }
}

fn mapped(at: &At, key: &str) -> Result<Mapped, (usize, String)> {
    classify(&at.value).map_err(|why| (at.line, format!("{key} is not recognised: {why}")))
}

/// Checks one door with knockwrap's configuration rules. A revoke door's `open_ports` must be
/// opened by some allow door: here a stand-in allow door opens them (whether a converted door
/// really does is checked once every door is converted).
fn validate(d: &DoorOut) -> Result<(), String> {
    let mut text = String::from("[[door]]\n");
    for (k, v) in &d.keys {
        let _ = writeln!(text, "{k} = {v}");
    }
    if d.revoke && !d.ports.is_empty() {
        let list: Vec<String> = d.ports.iter().map(|p| quote(&p.to_string())).collect();
        let _ = write!(
            text,
            "[[door]]\nname = \"{}\"\nsequence = [1, 3]\nservice = \"s\"\nopen_ports = [{}]\n",
            if d.keys
                .iter()
                .any(|(k, v)| *k == "name" && v == "\"opener\"")
            {
                "opener2"
            } else {
                "opener"
            },
            list.join(", ")
        );
    }
    knockwrap_config::Config::from_toml_str(&text, "/import-check.toml")
        .map(|_| ())
        .map_err(|e| {
            let msgs: Vec<String> = e.iter().map(|e| e.message.clone()).collect();
            format!("knockwrap refuses it: {}", msgs.join("; "))
        })
}

/// `22/tcp, 22/udp`.
fn ports_list(ports: &[PortSpec]) -> String {
    ports
        .iter()
        .map(PortSpec::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The service of a firewall-only door: `sshd` when it opens 22/tcp, else named after its
/// ports (`port-2222-tcp`). A door that opens and the door that closes the same ports get the
/// same name, so a revoke finds the grant.
fn service_for(ports: &[PortSpec]) -> String {
    if ports.contains(&PortSpec::tcp(22)) {
        return command::SSHD.to_string();
    }
    let mut sorted = ports.to_vec();
    sorted.sort();
    let parts: Vec<String> = sorted
        .iter()
        .map(|p| format!("{}-{}", p.port, p.proto))
        .collect();
    format!("port-{}", parts.join("-"))
}

/// knockd's sequence: `port[:proto]` separated by commas. Stricter than knockd's `atoi`: a
/// step that is not a port (a template placeholder, an empty step) is an error, not port 0.
fn sequence(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for item in text.split(',') {
        let (port, proto) = match item.split_once(':') {
            Some((p, proto)) => (p.trim(), Some(proto.trim())),
            None => (item.trim(), None),
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                format!(
                    "sequence `{text}`: `{port}` is not a port from 1 to 65535 (a template \
                     placeholder?)"
                )
            })?;
        let step = match proto.map(str::to_ascii_lowercase).as_deref() {
            None | Some("tcp") => Step::tcp(port),
            Some("udp") => Step::udp(port),
            Some(other) => {
                return Err(format!(
                    "sequence `{text}`: unknown protocol `{other}` (tcp or udp)"
                ))
            }
        };
        steps.push(step);
    }
    if steps.len() > MAX_STEPS {
        return Err(format!(
            "sequence `{text}` has {} steps; knockd and knockwrap take at most {MAX_STEPS}",
            steps.len()
        ));
    }
    Ok(steps)
}

/// `seq_timeout`/`cmd_timeout`: knockd reads them with `atoi`; a positive number of seconds.
fn secs(at: &At, key: &str) -> Result<Duration, String> {
    let v = at.value.trim();
    let n: u64 = v
        .parse()
        .map_err(|_| format!("{key} `{v}` is not a whole number of seconds"))?;
    if n == 0 {
        return Err(format!("{key} = 0: knockwrap needs a positive duration"));
    }
    Ok(Duration::from_secs(n))
}

/// knockd's TCPFlags: `fin`, `syn`, `rst`, `psh`, `ack`, `urg`, each optionally `!`-negated.
fn tcp_flags(text: &str) -> Result<Vec<String>, String> {
    text.split(',')
        .map(|f| {
            let f = f.trim().to_ascii_lowercase();
            let name = f.strip_prefix('!').unwrap_or(&f);
            if matches!(name, "fin" | "syn" | "rst" | "psh" | "ack" | "urg") {
                Ok(f)
            } else {
                Err(format!(
                    "tcpflags `{text}`: `{f}` is not a knockd flag (fin, syn, rst, psh, ack, \
                     urg, each optionally with `!`)"
                ))
            }
        })
        .collect()
}

/// True when the flags only narrow a pure SYN towards itself (`syn`, `!ack`, `!rst`, `!fin`):
/// for a one-time door knockwrap's pure SYN already says it.
fn flags_fit_pure_syn(flags: &[String]) -> bool {
    flags
        .iter()
        .all(|f| matches!(f.as_str(), "syn" | "!ack" | "!rst" | "!fin"))
}

fn interface_name(v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > 15 {
        return Err("an interface name is 1 to 15 bytes".into());
    }
    if v.chars().any(|c| {
        c == '/' || c == ':' || c == '"' || c == '\'' || c.is_whitespace() || c.is_control()
    }) {
        return Err("not an interface name (knockd could not open it either)".into());
    }
    Ok(v.to_string())
}

fn log_path(v: &str) -> Result<String, String> {
    match v {
        "/dev/stdout" | "/dev/stderr" => Ok(quote("stderr")),
        _ if v.contains("://") => Err("the path looks corrupted (it contains a URL)".into()),
        _ if !v.starts_with('/') => Err(
            "a relative path (knockd resolved it against its working directory); knockwrap logs to syslog"
                .into(),
        ),
        _ => Ok(quote(v)),
    }
}

fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes `text` as `# ` comment lines of at most about 96 characters.
fn write_comment(toml: &mut String, text: &str) {
    let text = comment_text(text);
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.len() + 1 + word.len() > 94 {
            let _ = writeln!(toml, "# {line}");
            line = String::from("  ");
        } else if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.trim().is_empty() {
        let _ = writeln!(toml, "# {line}");
    }
}

/// Text safe inside a TOML comment (no control characters but tab).
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

fn header(source: &str) -> String {
    let mut h = String::new();
    let lines = [
        format!("knockwrap configuration converted from {source} by `knockwrap import-knockd`."),
        "Check it with `knockwrap check --config FILE`, then run `knockwrap doctor`.".into(),
        String::new(),
        "Where knockwrap behaves differently from knockd:".into(),
        "- Sweep resistance: a packet to a wrong port in the middle of a sequence resets that"
            .into(),
        "  source's progress (knockd ignored it, which is how a port sweep opened its doors)."
            .into(),
        "  Sequences of one step or of adjacent ports (7000,7001,7002) are refused.".into(),
        "- Pure-SYN steps: without tcp_flags a TCP step is a connection attempt (SYN set; ACK,"
            .into(),
        "  RST, FIN clear). One-time and TOTP doors take only pure SYNs.".into(),
        "- Retransmits: a repeat of an earlier step within 3.5 s of it (a retransmitted SYN)"
            .into(),
        "  neither counts nor resets the sequence.".into(),
        "- Source addresses: knocks from loopback, this host's own addresses, multicast,".into(),
        "  broadcast, reserved and documentation ranges are never granted; link-local sources"
            .into(),
        "  only with link_local_sources = true. knockd ran its command for any source.".into(),
        "- knockwrap runs no commands. hosts.allow edits became the line `SERVICE: ADDR`,".into(),
        "  written atomically and once; a revoke removes exactly that line. iptables, ufw and"
            .into(),
        "  nft commands became `open_ports` with `hosts_allow = false`: knockwrap admits the"
            .into(),
        "  knocker to those ports in its own nftables table, and every other source stays".into(),
        "  hidden from them. Leases survive restarts; the kernel ends admissions on time.".into(),
        "- IPv6 knockers are granted like IPv4 ones (`sshd: [2001:db8::7]`).".into(),
        String::new(),
        "knockd's one_time_sequences has a direct equivalent (same file format, never".into(),
        "rewritten; progress in state_dir), and time-based doors replace shared one-time lists:"
            .into(),
        "  [[door]]".into(),
        "  name               = \"otpSSH\"".into(),
        "  one_time_sequences = \"/etc/knockwrap/open.otp\"   # or: totp_secret_file = \"...\""
            .into(),
        "  service            = \"sshd\"".into(),
        "  lease              = \"1h\"".into(),
        "See docs/migrate-from-knockd.md and docs/configuration.md.".into(),
    ];
    for l in lines {
        if l.is_empty() {
            h.push_str("#\n");
        } else {
            let _ = writeln!(h, "# {}", comment_text(&l));
        }
    }
    h.push('\n');
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("\u{1}"), r#""\u0001""#);
        assert_eq!(comment_text("a\u{1}b\tc"), "a?b\tc");
    }

    #[test]
    fn sequences() {
        assert_eq!(
            sequence("7000, 8000:UDP ,9000:tcp").unwrap(),
            vec![Step::tcp(7000), Step::udp(8000), Step::tcp(9000)]
        );
        assert!(sequence("KNOCKD_PORTS")
            .unwrap_err()
            .contains("placeholder"));
        assert!(sequence("7000,").is_err());
        assert!(sequence("0,1").is_err());
        assert!(sequence("70000,1").is_err());
        assert!(sequence("1:icmp,2").unwrap_err().contains("protocol"));
    }

    #[test]
    fn durations() {
        assert_eq!(duration_text(Duration::from_secs(3600)), "1h");
        assert_eq!(duration_text(Duration::from_secs(90)), "90s");
        assert_eq!(duration_text(Duration::from_secs(120)), "2m");
    }
}
