//! Recognising what a knockd command does to access: the commands knockd setups use to let a
//! knocker in or out (a `SERVICE: %IP%` line appended to or deleted from hosts.allow, an
//! iptables/ip6tables ACCEPT rule for the knocker on port 22, `ufw allow from %IP% ... port 22`,
//! `nft add element` into an ssh set) become a [`Mapped`] grant or removal. Anything else is
//! refused with the reason, for the importer to report: a command is mapped only when its whole
//! effect is known.

use std::time::Duration;

use crate::shell::{split, SimpleCommand};

/// What a recognised command does for the knocking address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Lets the knocker in (knockwrap: `action = "allow"`).
    Grant,
    /// Takes the knocker's access away (knockwrap: `action = "revoke"`).
    Remove,
}

/// How knockd did it, for the comments in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    HostsAllow,
    Firewall,
}

/// A recognised command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapped {
    pub effect: Effect,
    /// The daemon name of the hosts.allow line.
    pub service: String,
    /// The hosts.allow file the command edits (hosts.allow commands only).
    pub hosts_allow: Option<String>,
    /// An expiry the command itself sets (`nft add element ... { %IP% timeout 1h }`).
    pub lease: Option<Duration>,
    pub via: Via,
    /// What knockd ran, in a few words, for the output's comments.
    pub what: String,
}

/// The service name sshd passes to libwrap.
pub(crate) const SSHD: &str = "sshd";

fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// Classifies a whole knockd command: every simple command in it must be recognised and do the
/// same thing (`iptables ...; ip6tables ...` is fine).
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
        match &mapped {
            None => mapped = Some(m),
            Some(first)
                if first.effect == m.effect
                    && first.service == m.service
                    && first.hosts_allow == m.hosts_allow => {}
            Some(first) => {
                return Err(format!(
                    "its commands do different things ({} and {})",
                    first.what, m.what
                ))
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
            "`{}` is not a command knockwrap can stand in for (it only adds and removes \
             hosts.allow lines; recognised: echo/printf >> hosts.allow, perl -ni, sed -i, \
             iptables/ip6tables, ufw, nft)",
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
        service,
        hosts_allow: Some(file),
        lease: None,
        via: Via::HostsAllow,
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
        service,
        hosts_allow: Some(file),
        lease: None,
        via: Via::HostsAllow,
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

/// The port a firewall command opens, as the service knockwrap can grant instead.
fn port_service(port: &str) -> Result<String, String> {
    match port {
        "22" | "ssh" => Ok(SSHD.to_string()),
        other => Err(format!(
            "it opens port {other}: knockwrap grants through hosts.allow, which only daemons \
             linked with libwrap read; only port 22 (sshd) is mapped (if sshd listens on \
             {other}, write a door with service = \"sshd\" by hand)"
        )),
    }
}

fn firewall(effect: Effect, what: String, lease: Option<Duration>) -> Mapped {
    Mapped {
        effect,
        service: SSHD.to_string(),
        hosts_allow: None,
        lease,
        via: Via::Firewall,
        what,
    }
}

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
                         rules that let the knocker reach this host's sshd"
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
            "--dport" | "--destination-port" => dport = Some(value(&mut it, a)?),
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
                "tcp" | "comment" => {}
                "state" | "conntrack" => {
                    let opt = value(&mut it, a)?;
                    if opt != "--state" && opt != "--ctstate" {
                        return Err(format!("iptables option `{opt}` is not recognised"));
                    }
                    value(&mut it, &opt)?;
                }
                m => return Err(format!("iptables match `-m {m}` is not recognised")),
            },
            "--comment" => {
                value(&mut it, a)?;
            }
            other => {
                return Err(format!(
                    "iptables option `{other}` is not recognised (knockwrap can only stand in \
                     for `-s %IP% -p tcp --dport 22 -j ACCEPT`)"
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
        return Err(
            "the rule has no --dport: it lets the knocker reach every port, and hosts.allow \
             only controls daemons linked with libwrap (sshd); only port 22 is mapped"
                .into(),
        );
    };
    if proto.as_deref() != Some("tcp") {
        return Err("a port rule not restricted to `-p tcp` is not recognised".into());
    }
    let _ = port_service(&port)?;
    let verb = if effect == Effect::Grant {
        "accepts"
    } else {
        "deletes the rule accepting"
    };
    Ok(firewall(
        effect,
        format!("{prog} {verb} the knocker on port 22"),
        None,
    ))
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
            "ufw `{}` is not recognised (only `ufw [delete|insert N] allow from %IP% to any port 22`)",
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
    let port = port.ok_or(
        "the ufw rule has no port: it lets the knocker reach every port, and hosts.allow only \
         controls daemons linked with libwrap (sshd); only port 22 is mapped",
    )?;
    if !matches!(proto, None | Some("tcp")) {
        return Err(format!("ufw `proto {}` is not TCP", proto.unwrap_or("")));
    }
    port_service(port)?;
    let what = if effect == Effect::Grant {
        "ufw allows the knocker on port 22"
    } else {
        "ufw deletes the rule allowing the knocker on port 22"
    };
    Ok(firewall(effect, what.into(), None))
}

fn nft(args: &[String]) -> Result<Mapped, String> {
    let effect = match args.first().map(String::as_str) {
        Some("add") | Some("create") => Effect::Grant,
        Some("delete") | Some("destroy") => Effect::Remove,
        _ => {
            return Err(format!(
                "nft `{}` is not recognised (only `nft add/delete element ... {{ %IP% }}`)",
                args.join(" ")
            ))
        }
    };
    if args.get(1).map(String::as_str) != Some("element") {
        return Err(format!(
            "nft `{}` is not recognised (only `nft add/delete element ... {{ %IP% }}`)",
            args.join(" ")
        ));
    }
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
            "cannot tell which service set `{set}` admits (only sets whose name says `ssh` are \
             mapped, to sshd)"
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
    Ok(firewall(effect, what, lease))
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

    #[test]
    fn the_articles_commands() {
        let m = ok(r#"/bin/echo "SSHD: %IP%" >> /etc/hosts.allow"#);
        assert_eq!(
            (m.effect, m.service.as_str(), m.hosts_allow.as_deref()),
            (Effect::Grant, "SSHD", Some("/etc/hosts.allow"))
        );
        let m = ok("/usr/bin/perl -ni -e 'print unless /SSHD: %IP%/' /etc/hosts.allow");
        assert_eq!(
            (m.effect, m.service.as_str(), m.hosts_allow.as_deref()),
            (Effect::Remove, "SSHD", Some("/etc/hosts.allow"))
        );
    }

    #[test]
    fn hosts_allow_variants() {
        for c in [
            "echo 'sshd: %IP%' >> /etc/hosts.allow",
            "echo sshd: %IP% >> /etc/hosts.allow",
            r"printf 'sshd : %IP%\n' >> /etc/hosts.allow",
        ] {
            assert_eq!(ok(c).service, "sshd", "{c}");
            assert_eq!(ok(c).effect, Effect::Grant, "{c}");
        }
        for c in [
            "sed -i '/sshd: %IP%/d' /etc/hosts.allow",
            "sed -i -e '/^sshd:\\s*%IP%$/d' /etc/hosts.allow",
            "sed -i.bak \"/sshd: %IP%/d\" /etc/hosts.allow",
            "perl -n -i -e 'print unless m/^sshd: %IP%$/;' /etc/hosts.allow",
            "perl -ni.bak -e 'print if !/sshd: %IP%/' /etc/hosts.allow",
        ] {
            assert_eq!(ok(c).service, "sshd", "{c}");
            assert_eq!(ok(c).effect, Effect::Remove, "{c}");
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

    #[test]
    fn firewall_commands() {
        for (c, effect) in [
            ("/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT", Effect::Grant),
            ("/usr/sbin/iptables -I INPUT 1 -s %IP% -p tcp --dport 22 -j ACCEPT # first", Effect::Grant),
            ("iptables -I INPUT -s %IP% -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT", Effect::Grant),
            ("iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT", Effect::Remove),
            ("ip6tables -A INPUT -s %IP%/128 -p tcp --dport 22 -j ACCEPT", Effect::Grant),
            ("ufw allow from %IP% to any port 22", Effect::Grant),
            ("ufw allow proto tcp from %IP% to any port 22", Effect::Grant),
            ("ufw insert 1 allow from %IP% to any port 22 proto tcp", Effect::Grant),
            ("ufw delete allow from %IP% to any port 22", Effect::Remove),
            ("nft add element inet filter ssh_ok { %IP% }", Effect::Grant),
            ("nft delete element inet filter ssh_ok { %IP% }", Effect::Remove),
            ("iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT; ip6tables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT", Effect::Grant),
        ] {
            let m = ok(c);
            assert_eq!((m.effect, m.service.as_str(), m.via), (effect, "sshd", Via::Firewall), "{c}");
        }
        assert_eq!(
            ok("nft add element ip filter sshers '{ %IP% timeout 1h }'").lease,
            Some(Duration::from_secs(3600))
        );
        assert!(err("iptables -I INPUT -p tcp --dport 8001 -j ACCEPT").contains("every address"));
        assert!(err("iptables -A INPUT -s %IP% -j ACCEPT").contains("every port"));
        assert!(err("iptables -A INPUT -s %IP% -p tcp --dport 443 -j ACCEPT").contains("port 443"));
        assert!(err("iptables -D INPUT -p tcp --dport 22 -j DROP").contains("not ACCEPT"));
        assert!(err("iptables -A FORWARD -s %IP% -p tcp --dport 22 -j ACCEPT").contains("FORWARD"));
        assert!(
            err("iptables -A INPUT -i eth0 -s %IP% -p tcp --dport 22 -j ACCEPT").contains("`-i`")
        );
        assert!(err("ufw allow from %IP%").contains("every port"));
        assert!(err("nft add element inet filter web { %IP% }").contains("which service"));
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
