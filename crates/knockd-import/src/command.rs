//! Recognising what a knockd command does to access: the commands knockd setups use to let a
//! knocker in or out become a [`Mapped`] grant or removal. A `SERVICE: %IP%` line appended to
//! or deleted from hosts.allow becomes that line; an iptables/ip6tables ACCEPT rule for the
//! knocker (`-s %IP% -p tcp --dport 22`), `ufw allow from %IP% ... port 22`, an
//! `nft add rule ... saddr %IP% tcp dport 22 accept` or an `nft add element` into an ssh set
//! becomes the ports it opens, for knockwrap's own firewall (`open_ports`). Anything else is
//! refused with the reason, for the importer to report: a command is mapped only when its whole
//! effect is known. `%IP%` is only ever recognised, never carried into the output.

use std::time::Duration;

use knock_match::Proto;
use knockwrap_config::PortSpec;

use crate::shell::{split, SimpleCommand};

/// What a recognised command does for the knocking address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Lets the knocker in (knockwrap: `action = "allow"`).
    Grant,
    /// Takes the knocker's access away (knockwrap: `action = "revoke"`).
    Remove,
}

/// A hosts.allow line a command adds or removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// The daemon name, the line's first field.
    pub service: String,
    /// The hosts.allow file edited.
    pub file: String,
}

/// A recognised command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapped {
    pub effect: Effect,
    /// The hosts.allow line, for commands that edit hosts.allow.
    pub line: Option<Line>,
    /// The ports firewall commands open to (or close for) the knocker, in command order,
    /// each once.
    pub ports: Vec<PortSpec>,
    /// An expiry the command itself sets (`nft add element ... { %IP% timeout 1h }`).
    pub lease: Option<Duration>,
    /// What knockd ran, in a few words, for the output's comments.
    pub what: String,
    /// What the mapping assumed, for the output's comments.
    pub assumed: Vec<String>,
}

impl Mapped {
    /// Same access: the same line (by service) and the same set of ports.
    pub fn same_access(&self, other: &Mapped) -> bool {
        let mut a = self.ports.clone();
        let mut b = other.ports.clone();
        a.sort();
        b.sort();
        a == b && self.line.as_ref().map(|l| &l.service) == other.line.as_ref().map(|l| &l.service)
    }
}

/// The service name sshd passes to libwrap.
pub(crate) const SSHD: &str = "sshd";

fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// Classifies a whole knockd command: every simple command in it must be recognised and do the
/// same thing to access (`iptables ...; ip6tables ...` is fine; their ports are joined, and a
/// hosts.allow line beside firewall rules gives a door with both).
pub(crate) fn classify(cmd: &str) -> Result<Mapped, String> {
    let commands = split(cmd).map_err(|why| format!("the command uses {why}"))?;
    if commands.is_empty() {
        return Err("the command is empty".into());
    }
    let mut mapped: Option<Mapped> = None;
    for (i, c) in commands.iter().enumerate() {
        let m = simple(c).map_err(|why| {
            if commands.len() > 1 {
                format!(
                    "it runs {} commands and the {} (`{}`) is not recognised: {why}",
                    commands.len(),
                    ordinal(i),
                    c.words[0]
                )
            } else {
                why
            }
        })?;
        let Some(first) = &mut mapped else {
            mapped = Some(m);
            continue;
        };
        let lines_agree = match (&first.line, &m.line) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let leases_agree = first.lease.is_none() || m.lease.is_none() || first.lease == m.lease;
        if first.effect != m.effect || !lines_agree || !leases_agree {
            return Err(format!(
                "its commands do different things ({} and {})",
                first.what, m.what
            ));
        }
        if first.line.is_none() {
            first.line = m.line;
        }
        first.lease = first.lease.or(m.lease);
        for p in m.ports {
            if !first.ports.contains(&p) {
                first.ports.push(p);
            }
        }
        if m.what != first.what {
            first.what = format!("{}; {}", first.what, m.what);
        }
        for a in m.assumed {
            if !first.assumed.contains(&a) {
                first.assumed.push(a);
            }
        }
    }
    Ok(mapped.expect("at least one command"))
}

fn ordinal(i: usize) -> String {
    match i {
        0 => "first".into(),
        1 => "second".into(),
        2 => "third".into(),
        n => format!("{}th", n + 1),
    }
}

fn simple(c: &SimpleCommand) -> Result<Mapped, String> {
    let prog = base(&c.words[0]);
    let io_free = |what: &str| -> Result<(), String> {
        if c.redirects.is_empty() {
            Ok(())
        } else {
            Err(format!("{what} with a redirection is not recognised"))
        }
    };
    match prog {
        "echo" | "printf" => echo(c),
        "perl" => {
            io_free("perl")?;
            perl(&c.words[1..])
        }
        "sed" => {
            io_free("sed")?;
            sed(&c.words[1..])
        }
        "iptables" | "ip6tables" | "iptables-legacy" | "ip6tables-legacy" | "iptables-nft"
        | "ip6tables-nft" => {
            io_free(prog)?;
            iptables(prog, &c.words[1..])
        }
        "ufw" => {
            io_free("ufw")?;
            ufw(&c.words[1..])
        }
        "nft" => {
            io_free("nft")?;
            nft(&c.words[1..])
        }
        _ => Err(format!(
            "`{}` is not a command knockwrap can stand in for (it adds and removes hosts.allow \
             lines and admits knockers to ports of its own firewall; recognised: echo/printf \
             >> hosts.allow, perl -ni, sed -i, iptables/ip6tables, ufw, nft)",
            c.words[0]
        )),
    }
}

/// `SERVICE: %IP%` (blanks around the colon allowed): the service, if it is one daemon name.
pub(crate) fn hosts_line(text: &str) -> Option<String> {
    let (service, client) = text.trim().split_once(':')?;
    let service = service.trim();
    if client.trim() != "%IP%" || !valid_service(service) {
        return None;
    }
    Some(service.to_string())
}

fn valid_service(s: &str) -> bool {
    !s.is_empty()
        && !s.eq_ignore_ascii_case("EXCEPT")
        && !s.eq_ignore_ascii_case("ALL")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
}

fn hosts_allow_file(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "`{path}` is a relative path (knockd resolved it against its working directory)"
        ));
    }
    if base(path) != "hosts.allow" {
        return Err(format!("it edits `{path}`, not a hosts.allow file"));
    }
    Ok(path.to_string())
}

fn echo(c: &SimpleCommand) -> Result<Mapped, String> {
    let prog = base(&c.words[0]);
    let text = if prog == "printf" {
        match &c.words[1..] {
            [fmt] => fmt
                .strip_suffix("\\n")
                .filter(|t| !t.contains('\\') && !t.replace("%IP%", "").contains('%'))
                .map(str::to_string)
                .ok_or_else(|| format!("printf format `{fmt}` is not `SERVICE: %IP%\\n`"))?,
            _ => return Err("printf with other than one argument is not recognised".into()),
        }
    } else {
        if c.words.get(1).is_some_and(|w| w.starts_with('-')) {
            return Err(format!("echo option `{}` is not recognised", c.words[1]));
        }
        c.words[1..].join(" ")
    };
    let service = hosts_line(&text)
        .ok_or_else(|| format!("it writes `{text}`, not a `SERVICE: %IP%` line for one daemon"))?;
    let file = match c.redirects.as_slice() {
        [(op, file)] if op == ">>" => hosts_allow_file(file)?,
        [(op, file)] if op == ">" => {
            return Err(format!(
                "`> {file}` replaces the whole file instead of appending a line"
            ))
        }
        _ => {
            return Err(format!(
                "{prog} is recognised only with one `>> hosts.allow`"
            ))
        }
    };
    Ok(Mapped {
        effect: Effect::Grant,
        what: format!("appends `{service}: %IP%` to {file}"),
        line: Some(Line { service, file }),
        ports: Vec::new(),
        lease: None,
        assumed: Vec::new(),
    })
}

/// A regular expression that matches the line `SERVICE: %IP%`: `SSHD: %IP%`, `^sshd:\s*%IP%$`.
fn line_pattern(pat: &str) -> Option<String> {
    let mut p = pat.strip_prefix('^').unwrap_or(pat);
    p = p
        .strip_suffix('$')
        .or_else(|| p.strip_suffix("\\b"))
        .unwrap_or(p);
    let before = p.strip_suffix("%IP%")?;
    let seps = ["\\s*", "\\s+", " *", " +", " ", ""];
    let before = seps.iter().find_map(|s| before.strip_suffix(s))?;
    let before = before.strip_suffix(':')?;
    let service = seps.iter().find_map(|s| before.strip_suffix(s))?;
    valid_service(service).then(|| service.to_string())
}

fn removal(service: String, file: &str, tool: &str) -> Result<Mapped, String> {
    let file = hosts_allow_file(file)?;
    Ok(Mapped {
        effect: Effect::Remove,
        what: format!("deletes `{service}: %IP%` from {file} with {tool}"),
        line: Some(Line { service, file }),
        ports: Vec::new(),
        lease: None,
        assumed: Vec::new(),
    })
}

fn perl(args: &[String]) -> Result<Mapped, String> {
    let (mut n, mut i, mut program, mut files) = (false, false, None::<String>, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if program.is_some() || !a.starts_with('-') || a == "-" {
            files.push(a.clone());
            continue;
        }
        let mut chars = a[1..].chars();
        while let Some(ch) = chars.next() {
            match ch {
                'n' => n = true,
                'i' => {
                    i = true;
                    break; // the rest of the cluster is the backup suffix
                }
                'e' => {
                    let rest: String = chars.collect();
                    program = Some(if rest.is_empty() {
                        it.next().ok_or("perl -e without a program")?.clone()
                    } else {
                        rest
                    });
                    break;
                }
                'w' | 'l' => {}
                other => return Err(format!("perl option `-{other}` is not recognised")),
            }
        }
    }
    let program = program.ok_or("perl without -e is not recognised")?;
    if !(n && i) {
        return Err("perl is recognised only as `perl -ni -e ...` (edit in place)".into());
    }
    let prog = program.trim().trim_end_matches(';').trim();
    let pat = prog
        .strip_prefix("print unless")
        .or_else(|| prog.strip_prefix("print if !"))
        .map(str::trim)
        .and_then(|p| p.strip_prefix("m/").or_else(|| p.strip_prefix('/')))
        .and_then(|p| p.strip_suffix('/'))
        .ok_or_else(|| format!("perl program `{program}` is not `print unless /SERVICE: %IP%/`"))?;
    let service = line_pattern(pat)
        .ok_or_else(|| format!("perl pattern `/{pat}/` does not match a `SERVICE: %IP%` line"))?;
    match files.as_slice() {
        [file] => removal(service, file, "perl"),
        _ => Err("perl is recognised only with exactly one file".into()),
    }
}

fn sed(args: &[String]) -> Result<Mapped, String> {
    let (mut in_place, mut script, mut files) = (false, None::<String>, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-i" || (a.starts_with("-i") && !a.contains('e')) || a.starts_with("--in-place") {
            in_place = true;
        } else if a == "-e" || a == "--expression" {
            if script.is_some() {
                return Err("sed with several scripts is not recognised".into());
            }
            script = Some(it.next().ok_or("sed -e without a script")?.clone());
        } else if a == "-E" || a == "-r" || a == "--regexp-extended" {
        } else if a.starts_with('-') {
            return Err(format!("sed option `{a}` is not recognised"));
        } else if script.is_none() {
            script = Some(a.clone());
        } else {
            files.push(a.clone());
        }
    }
    if !in_place {
        return Err("sed without -i does not change the file".into());
    }
    let script = script.ok_or("sed without a script")?;
    let pat = script
        .trim()
        .strip_prefix('/')
        .and_then(|s| s.strip_suffix("/d"))
        .ok_or_else(|| format!("sed script `{script}` is not `/SERVICE: %IP%/d`"))?;
    let service = line_pattern(pat)
        .ok_or_else(|| format!("sed pattern `/{pat}/` does not match a `SERVICE: %IP%` line"))?;
    match files.as_slice() {
        [file] => removal(service, file, "sed"),
        _ => Err("sed is recognised only with exactly one file".into()),
    }
}

/// One port as firewall tools write it: a number from 1 to 65535, or `ssh`.
fn port_number(text: &str) -> Result<u16, String> {
    if text == "ssh" {
        return Ok(22);
    }
    if text.contains(':') || text.contains('-') {
        return Err(format!(
            "it opens the port range {text}: knockwrap admits knockers to listed ports; list \
             the ones you need in `open_ports` by hand"
        ));
    }
    knock_match::parse_port(text)
        .ok_or_else(|| format!("`{text}` is not a port from 1 to 65535 (a template placeholder?)"))
}

/// A comma-separated port list (`22`, `80,443`).
fn port_list(text: &str, proto: Proto) -> Result<Vec<PortSpec>, String> {
    let mut out = Vec::new();
    for p in text.split(',') {
        let spec = PortSpec {
            proto,
            port: port_number(p.trim())?,
        };
        if !out.contains(&spec) {
            out.push(spec);
        }
    }
    Ok(out)
}

fn proto_of(text: &str) -> Option<Proto> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" | "6" => Some(Proto::Tcp),
        "udp" | "17" => Some(Proto::Udp),
        _ => None,
    }
}

fn firewall(effect: Effect, what: String, ports: Vec<PortSpec>, lease: Option<Duration>) -> Mapped {
    Mapped {
        effect,
        line: None,
        ports,
        lease,
        what,
        assumed: Vec::new(),
    }
}

/// Every port: a rule without one lets the knocker reach all of them.
const EVERY_PORT: &str = "it admits the knocker to every port; knockwrap guards and opens \
                          named ports only (`open_ports`): list the ports you need by hand";

fn iptables(prog: &str, args: &[String]) -> Result<Mapped, String> {
    let mut effect = None;
    let (mut source, mut proto, mut dport, mut jump) = (None, None, None, None);
    let mut it = args.iter().peekable();
    let value = |it: &mut std::iter::Peekable<std::slice::Iter<String>>, opt: &str| {
        it.next()
            .cloned()
            .ok_or_else(|| format!("`{opt}` without a value"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "-A" | "--append" | "-I" | "--insert" | "-D" | "--delete" => {
                if effect.is_some() {
                    return Err("iptables with several commands".into());
                }
                let chain = value(&mut it, a)?;
                if chain != "INPUT" {
                    return Err(format!(
                        "the rule is in chain {chain}, not INPUT: knockwrap only stands in for \
                         rules that let the knocker reach this host"
                    ));
                }
                if matches!(a.as_str(), "-I" | "--insert")
                    && it
                        .peek()
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                {
                    it.next();
                }
                effect = Some(if matches!(a.as_str(), "-D" | "--delete") {
                    Effect::Remove
                } else {
                    Effect::Grant
                });
            }
            "-t" | "--table" => {
                let t = value(&mut it, a)?;
                if t != "filter" {
                    return Err(format!("the rule is in table {t}, not filter"));
                }
            }
            "-s" | "--source" | "--src" => source = Some(value(&mut it, a)?),
            "-p" | "--protocol" => proto = Some(value(&mut it, a)?),
            "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                if dport.is_some() {
                    return Err("iptables with two port options is not recognised".into());
                }
                dport = Some(value(&mut it, a)?);
            }
            "-j" | "--jump" => jump = Some(value(&mut it, a)?),
            "-w" | "--wait" => {
                if it
                    .peek()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                {
                    it.next();
                }
            }
            "-m" | "--match" => match value(&mut it, a)?.as_str() {
                "tcp" | "udp" | "comment" | "multiport" => {}
                "state" | "conntrack" => {
                    let opt = value(&mut it, a)?;
                    if opt != "--state" && opt != "--ctstate" {
                        return Err(format!("iptables option `{opt}` is not recognised"));
                    }
                    let states = value(&mut it, &opt)?;
                    if states != "NEW" {
                        return Err(format!(
                            "a rule for connection state {states} is not recognised (knockwrap \
                             admits new connections; established ones are always accepted)"
                        ));
                    }
                }
                m => return Err(format!("iptables match `-m {m}` is not recognised")),
            },
            "--comment" => {
                value(&mut it, a)?;
            }
            other => {
                return Err(format!(
                    "iptables option `{other}` is not recognised (knockwrap can stand in for \
                     `-s %IP% -p tcp|udp --dport PORT -j ACCEPT`)"
                ))
            }
        }
    }
    let effect = effect.ok_or("iptables without -A, -I or -D")?;
    if jump.as_deref() != Some("ACCEPT") {
        return Err(format!(
            "the rule's target is {}, not ACCEPT for the knocker",
            jump.as_deref().unwrap_or("missing")
        ));
    }
    match source.as_deref() {
        Some("%IP%" | "%IP%/32" | "%IP%/128") => {}
        Some(s) => {
            return Err(format!(
                "the rule's source is `{s}`, not the knocker (%IP%)"
            ))
        }
        None => {
            return Err(
                "the rule has no `-s %IP%`: it opens the port to every address, not to the \
                 knocker, and knockwrap can only let the knocker in"
                    .into(),
            )
        }
    }
    let Some(port) = dport else {
        return Err(format!("the rule has no --dport: {EVERY_PORT}"));
    };
    let proto = proto
        .as_deref()
        .and_then(proto_of)
        .ok_or("a port rule not restricted to `-p tcp` or `-p udp` is not recognised")?;
    let ports = port_list(&port, proto)?;
    let what = format!(
        "{prog} {} the knocker on {}",
        if effect == Effect::Grant {
            "accepts"
        } else {
            "deletes the rule accepting"
        },
        PortSpec::join(&ports, ", ")
    );
    Ok(firewall(effect, what, ports, None))
}

fn ufw(args: &[String]) -> Result<Mapped, String> {
    let mut w: Vec<&str> = args.iter().map(String::as_str).collect();
    let effect = match w.first() {
        Some(&"delete") => {
            w.remove(0);
            Effect::Remove
        }
        Some(&"insert") if w.get(1).is_some_and(|n| n.parse::<u32>().is_ok()) => {
            w.drain(..2);
            Effect::Grant
        }
        _ => Effect::Grant,
    };
    if w.first() != Some(&"allow") {
        return Err(format!(
            "ufw `{}` is not recognised (only `ufw [delete|insert N] allow from %IP% to any port \
             PORT [proto tcp|udp]`)",
            args.join(" ")
        ));
    }
    w.remove(0);
    if w.first() == Some(&"in") {
        w.remove(0);
    }
    let (mut from, mut to, mut port, mut proto) = (None, None, None, None);
    let mut i = 0;
    while i < w.len() {
        let v = w.get(i + 1).copied();
        match (w[i], v) {
            ("from", Some(v)) => from = Some(v),
            ("to", Some(v)) => to = Some(v),
            ("port", Some(v)) => port = Some(v),
            ("proto", Some(v)) => proto = Some(v),
            ("comment", Some(_)) => {}
            (other, _) => return Err(format!("ufw word `{other}` is not recognised")),
        }
        i += 2;
    }
    if !matches!(from, Some("%IP%" | "%IP%/32" | "%IP%/128")) {
        return Err("the ufw rule is not `from %IP%`: it does not admit just the knocker".into());
    }
    if !matches!(to, Some("any") | None) {
        return Err(format!("ufw `to {}` is not recognised", to.unwrap_or("")));
    }
    let port = port.ok_or_else(|| format!("the ufw rule has no port: {EVERY_PORT}"))?;
    let mut assumed = Vec::new();
    let ports = match proto {
        None => {
            assumed.push(format!(
                "ufw without `proto` allows TCP and UDP on port {port}: both are kept"
            ));
            let mut both = port_list(port, Proto::Tcp)?;
            both.extend(port_list(port, Proto::Udp)?);
            both
        }
        Some(p) => port_list(
            port,
            proto_of(p).ok_or_else(|| format!("ufw `proto {p}` is not tcp or udp"))?,
        )?,
    };
    let what = format!(
        "ufw {} the knocker on {}",
        if effect == Effect::Grant {
            "allows"
        } else {
            "deletes the rule allowing"
        },
        PortSpec::join(&ports, ", ")
    );
    let mut m = firewall(effect, what, ports, None);
    m.assumed = assumed;
    Ok(m)
}

fn nft(args: &[String]) -> Result<Mapped, String> {
    let effect = match args.first().map(String::as_str) {
        Some("add") | Some("create") | Some("insert") => Effect::Grant,
        Some("delete") | Some("destroy") => Effect::Remove,
        _ => return Err(nft_unrecognised(args)),
    };
    match args.get(1).map(String::as_str) {
        Some("element") => nft_element(effect, args),
        Some("rule") if effect == Effect::Grant => nft_rule(&args[2..]),
        Some("rule") => Err(
            "`nft delete rule` names a rule by its handle, which knockd could not know: the \
             rule the start command added is not recognised as removed"
                .into(),
        ),
        _ => Err(nft_unrecognised(args)),
    }
}

fn nft_unrecognised(args: &[String]) -> String {
    format!(
        "nft `{}` is not recognised (only `nft add/delete element ... {{ %IP% }}` and `nft add \
         rule ... saddr %IP% tcp dport PORT accept`)",
        args.join(" ")
    )
}

/// `nft add rule [FAMILY] TABLE CHAIN ip saddr %IP% tcp dport 22 [ct state new] accept`.
fn nft_rule(args: &[String]) -> Result<Mapped, String> {
    let text = args.join(" ");
    let words: Vec<&str> = text.split_whitespace().collect();
    // The words before the first match keyword name the table and chain.
    let start = words
        .iter()
        .position(|w| matches!(*w, "ip" | "ip6" | "tcp" | "udp" | "ct" | "meta" | "th"))
        .ok_or_else(|| format!("nft rule `{text}` is not recognised"))?;
    if !(2..=3).contains(&start) {
        return Err("nft rule without `[family] table chain`".into());
    }
    let chain = words[start - 1];
    if !chain.eq_ignore_ascii_case("input") {
        return Err(format!(
            "the rule is in chain {chain}, not input: knockwrap only stands in for rules that \
             let the knocker reach this host"
        ));
    }
    let (mut source, mut ports, mut verdict) = (false, None, None);
    let mut i = start;
    while i < words.len() {
        match &words[i..] {
            ["ip" | "ip6", "saddr", "%IP%", ..] => {
                source = true;
                i += 3;
            }
            ["ip" | "ip6", "saddr", other, ..] => {
                return Err(format!(
                    "the rule's source is `{other}`, not the knocker (%IP%)"
                ))
            }
            [p @ ("tcp" | "udp"), "dport", rest @ ..] if ports.is_none() => {
                let proto = proto_of(p).expect("tcp or udp");
                let (list, used) = match rest {
                    [first, ..] if first.starts_with('{') => {
                        let end = rest
                            .iter()
                            .position(|w| w.ends_with('}'))
                            .ok_or("nft port set is not closed with `}`")?;
                        let joined = rest[..=end].concat();
                        (joined.trim_matches(['{', '}']).to_string(), end + 1)
                    }
                    [one, ..] => (one.to_string(), 1),
                    [] => return Err("nft `dport` without a port".into()),
                };
                ports = Some(port_list(list.trim_matches(','), proto)?);
                i += 2 + used;
            }
            ["ct", "state", "new", ..] => i += 3,
            ["counter", ..] => i += 1,
            ["comment", _, ..] => i += 2,
            ["accept"] => {
                verdict = Some("accept");
                i += 1;
            }
            [w, ..] => return Err(format!("nft rule word `{w}` is not recognised")),
            [] => break,
        }
    }
    if verdict != Some("accept") {
        return Err("the nft rule does not end in `accept` for the knocker".into());
    }
    if !source {
        return Err(
            "the nft rule has no `saddr %IP%`: it opens the port to every address, not to the \
             knocker"
                .into(),
        );
    }
    let ports = ports.ok_or_else(|| format!("the nft rule has no dport: {EVERY_PORT}"))?;
    let what = format!(
        "nft adds a rule accepting the knocker on {}",
        PortSpec::join(&ports, ", ")
    );
    Ok(firewall(Effect::Grant, what, ports, None))
}

/// `nft add|delete element [FAMILY] TABLE SET { %IP% [timeout T] }`, for a set whose name says
/// ssh: the port is taken to be 22/tcp (the rule using the set is not in the command).
fn nft_element(effect: Effect, args: &[String]) -> Result<Mapped, String> {
    let rest = args[2..].join(" ");
    let (names, elements) = rest
        .split_once('{')
        .ok_or("nft element without `{ ... }`")?;
    let elements = elements
        .trim()
        .strip_suffix('}')
        .ok_or("nft element list is not closed with `}`")?;
    let names: Vec<&str> = names.split_whitespace().collect();
    let set = match names.as_slice() {
        [_, _, set] | [_, set] => *set,
        _ => return Err("nft element command without `[family] table set`".into()),
    };
    let mut parts = elements.split_whitespace();
    if parts.next() != Some("%IP%") {
        return Err(format!(
            "the nft element is `{}`, not the knocker (%IP%)",
            elements.trim()
        ));
    }
    let lease = match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => None,
        (Some("timeout"), Some(t), None) => {
            Some(nft_duration(t).ok_or_else(|| format!("nft timeout `{t}` is not understood"))?)
        }
        _ => {
            return Err(format!(
                "nft element `{}` is not recognised",
                elements.trim()
            ))
        }
    };
    if !set.to_ascii_lowercase().contains("ssh") {
        return Err(format!(
            "cannot tell which port set `{set}` admits to (the rule using it is not in the \
             command; only sets whose name says `ssh` are mapped, to 22/tcp)"
        ));
    }
    let what = format!(
        "nft {} the knocker {} set {set}",
        if effect == Effect::Grant {
            "adds"
        } else {
            "deletes"
        },
        if effect == Effect::Grant {
            "to"
        } else {
            "from"
        }
    );
    let mut m = firewall(effect, what, vec![PortSpec::tcp(22)], lease);
    m.assumed.push(format!(
        "set `{set}` is taken to admit to 22/tcp (its name says ssh); check the rule that uses \
         it"
    ));
    Ok(m)
}

/// nft's `1h30m`, `90s`, `2d` (no fractions).
fn nft_duration(t: &str) -> Option<Duration> {
    let d = knockwrap_config::parse_duration(t)?;
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(cmd: &str) -> Mapped {
        classify(cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    fn err(cmd: &str) -> String {
        classify(cmd).expect_err(cmd)
    }

    fn line(m: &Mapped) -> (Effect, &str, &str) {
        let l = m.line.as_ref().expect("a hosts.allow line");
        (m.effect, l.service.as_str(), l.file.as_str())
    }

    #[test]
    fn the_articles_commands() {
        let m = ok(r#"/bin/echo "SSHD: %IP%" >> /etc/hosts.allow"#);
        assert_eq!(line(&m), (Effect::Grant, "SSHD", "/etc/hosts.allow"));
        assert!(m.ports.is_empty());
        let m = ok("/usr/bin/perl -ni -e 'print unless /SSHD: %IP%/' /etc/hosts.allow");
        assert_eq!(line(&m), (Effect::Remove, "SSHD", "/etc/hosts.allow"));
    }

    #[test]
    fn hosts_allow_variants() {
        for c in [
            "echo 'sshd: %IP%' >> /etc/hosts.allow",
            "echo sshd: %IP% >> /etc/hosts.allow",
            r"printf 'sshd : %IP%\n' >> /etc/hosts.allow",
        ] {
            assert_eq!(line(&ok(c)).0, Effect::Grant, "{c}");
            assert_eq!(line(&ok(c)).1, "sshd", "{c}");
        }
        for c in [
            "sed -i '/sshd: %IP%/d' /etc/hosts.allow",
            "sed -i -e '/^sshd:\\s*%IP%$/d' /etc/hosts.allow",
            "sed -i.bak \"/sshd: %IP%/d\" /etc/hosts.allow",
            "perl -n -i -e 'print unless m/^sshd: %IP%$/;' /etc/hosts.allow",
            "perl -ni.bak -e 'print if !/sshd: %IP%/' /etc/hosts.allow",
        ] {
            assert_eq!(line(&ok(c)).0, Effect::Remove, "{c}");
            assert_eq!(line(&ok(c)).1, "sshd", "{c}");
        }
        assert!(err("echo 'SSHD: %IP%' > /etc/hosts.allow").contains("replaces the whole file"));
        assert!(err("echo 'SSHD, ftpd: %IP%' >> /etc/hosts.allow").contains("not a `SERVICE"));
        assert!(err("echo 'ALL: %IP%' >> /etc/hosts.allow").contains("not a `SERVICE"));
        assert!(err("echo 'SSHD: %IP%' >> /tmp/list").contains("not a hosts.allow"));
        assert!(err("echo 'SSHD: %IP%' >> hosts.allow").contains("relative"));
        assert!(
            err("perl -n -e 'print unless /SSHD: %IP%/' /etc/hosts.allow").contains("in place")
        );
        // `-nie` makes `e` the backup suffix: the program is then taken as a file.
        assert!(classify("perl -nie 'print unless /SSHD: %IP%/' /etc/hosts.allow").is_err());
        assert!(err("sed '/SSHD: %IP%/d' /etc/hosts.allow").contains("without -i"));
        assert!(err("sed -i 's/SSHD: %IP%//' /etc/hosts.allow").contains("not `/SERVICE"));
    }

    fn ports(list: &[&str]) -> Vec<PortSpec> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn firewall_commands_become_ports() {
        for (c, effect, want) in [
            ("/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT", Effect::Grant, &["22/tcp"][..]),
            ("/usr/sbin/iptables -I INPUT 1 -s %IP% -p tcp --dport 22 -j ACCEPT # first", Effect::Grant, &["22/tcp"]),
            ("iptables -I INPUT -s %IP% -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT", Effect::Grant, &["22/tcp"]),
            ("iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT", Effect::Remove, &["22/tcp"]),
            ("iptables -I INPUT -s %IP% -p tcp --dport 2222 -j ACCEPT", Effect::Grant, &["2222/tcp"]),
            ("iptables -A INPUT -s %IP% -p udp --dport 51820 -j ACCEPT", Effect::Grant, &["51820/udp"]),
            ("iptables -A INPUT -s %IP% -p tcp --dport ssh -j ACCEPT", Effect::Grant, &["22/tcp"]),
            ("iptables -A INPUT -s %IP% -p tcp -m multiport --dports 80,443 -j ACCEPT", Effect::Grant, &["80/tcp", "443/tcp"]),
            ("ip6tables -A INPUT -s %IP%/128 -p tcp --dport 22 -j ACCEPT", Effect::Grant, &["22/tcp"]),
            ("ufw allow proto tcp from %IP% to any port 22", Effect::Grant, &["22/tcp"]),
            ("ufw insert 1 allow from %IP% to any port 22 proto tcp", Effect::Grant, &["22/tcp"]),
            ("ufw allow from %IP% to any port 1194 proto udp", Effect::Grant, &["1194/udp"]),
            ("ufw delete allow from %IP% to any port 22 proto tcp", Effect::Remove, &["22/tcp"]),
            ("ufw allow from %IP% to any port 22", Effect::Grant, &["22/tcp", "22/udp"]),
            ("nft add element inet filter ssh_ok { %IP% }", Effect::Grant, &["22/tcp"]),
            ("nft delete element inet filter ssh_ok { %IP% }", Effect::Remove, &["22/tcp"]),
            ("nft add rule inet filter input ip saddr %IP% tcp dport 22 accept", Effect::Grant, &["22/tcp"]),
            ("nft insert rule filter INPUT ip6 saddr %IP% ct state new counter udp dport 60001 accept", Effect::Grant, &["60001/udp"]),
            ("nft add rule inet filter input ip saddr %IP% tcp dport { 80, 443 } accept", Effect::Grant, &["80/tcp", "443/tcp"]),
            ("iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT; ip6tables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT", Effect::Grant, &["22/tcp"]),
            ("iptables -A INPUT -s %IP% -p tcp --dport 80 -j ACCEPT && iptables -A INPUT -s %IP% -p tcp --dport 443 -j ACCEPT", Effect::Grant, &["80/tcp", "443/tcp"]),
        ] {
            let m = ok(c);
            assert_eq!((m.effect, &m.ports, &m.line), (effect, &ports(want), &None), "{c}");
        }
        assert_eq!(
            ok("nft add element ip filter sshers '{ %IP% timeout 1h }'").lease,
            Some(Duration::from_secs(3600))
        );
        assert!(ok("ufw allow from %IP% to any port 22").assumed[0].contains("TCP and UDP"));
        assert!(ok("nft add element inet f ssh_ok { %IP% }").assumed[0].contains("22/tcp"));
        // A hosts.allow line beside a firewall rule: a door with both.
        let m = ok("echo 'sshd: %IP%' >> /etc/hosts.allow; iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT");
        assert_eq!(line(&m).1, "sshd");
        assert_eq!(m.ports, ports(&["22/tcp"]));

        assert!(err("iptables -I INPUT -p tcp --dport 8001 -j ACCEPT").contains("every address"));
        assert!(err("iptables -A INPUT -s %IP% -j ACCEPT").contains("every port"));
        assert!(
            err("iptables -A INPUT -s %IP% -p tcp --dport 6000:6010 -j ACCEPT").contains("range")
        );
        assert!(
            err("iptables -A INPUT -s %IP% -p tcp --dport @@@@@2@@@@@ -j ACCEPT")
                .contains("placeholder")
        );
        assert!(err("iptables -A INPUT -s %IP% --dport 22 -j ACCEPT").contains("-p tcp"));
        assert!(err("iptables -D INPUT -p tcp --dport 22 -j DROP").contains("not ACCEPT"));
        assert!(err("iptables -A FORWARD -s %IP% -p tcp --dport 22 -j ACCEPT").contains("FORWARD"));
        assert!(
            err("iptables -A INPUT -i eth0 -s %IP% -p tcp --dport 22 -j ACCEPT").contains("`-i`")
        );
        assert!(err(
            "iptables -A INPUT -s %IP% -p tcp -m state --state ESTABLISHED --dport 22 -j ACCEPT"
        )
        .contains("ESTABLISHED"));
        assert!(err("ufw allow from %IP%").contains("every port"));
        assert!(err("ufw allow from %IP% to any port 22 proto sctp").contains("sctp"));
        assert!(err("nft add element inet filter web { %IP% }").contains("which port"));
        assert!(err("nft add rule inet filter input tcp dport 22 accept").contains("every address"));
        assert!(err("nft add rule inet filter input ip saddr %IP% accept").contains("every port"));
        assert!(
            err("nft add rule inet filter forward ip saddr %IP% tcp dport 22 accept")
                .contains("forward")
        );
        assert!(err("nft delete rule inet filter input handle 7").contains("handle"));
        assert!(
            err("/usr/local/sbin/knock_add -i -c INPUT -p tcp -d 443 -f %IP%")
                .contains("knock_add")
        );
        assert!(
            err("iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT; /opt/x.py %IP%")
                .contains("second")
        );
        assert!(err("iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT; iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT").contains("different"));
    }
}
