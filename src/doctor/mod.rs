//! `knockwrap doctor`: the checks that catch the silent failures, each a [`Check`] with a
//! status (✓ ok, ✗ failure, ! warning) and, for every failure, the fix. The most common silent
//! failure comes first: an sshd that does not read hosts.allow at all (OpenSSH upstream
//! removed TCP Wrappers in 6.7; Fedora, RHEL 8+ and Arch build sshd without libwrap), which
//! is read from the ELF dynamic section ([`elf`], [`libs`]), never with `ldd`. Such an sshd is
//! what the firewall door is for: doors with `open_ports` and `hosts_allow = false` admit the
//! knocker through knockwrap's nftables table, and with such doors the missing libwrap is no
//! failure. A configuration that guards ports gets the firewall door's checks ([`firewall`],
//! [`ruleset`]): nft, the kernel's nf_tables, other tables and iptables-legacy rules that drop
//! admitted knockers, and the lockout warnings `check --config` gives.
//!
//! The checks read files, interfaces and the ruleset but change nothing.

pub mod elf;
pub mod firewall;
pub mod hosts;
pub mod libs;
pub mod ruleset;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use knock_match::Action;
use knockwrap_config::Config;

/// A check's outcome.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Fail,
    Warn,
}

impl Status {
    pub fn mark(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Fail => "✗",
            Status::Warn => "!",
        }
    }
}

/// One line of the report, and the fix for a failure (or advice for a warning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub status: Status,
    pub text: String,
    pub fix: Option<String>,
}

fn ok(text: impl Into<String>) -> Check {
    Check {
        status: Status::Ok,
        text: text.into(),
        fix: None,
    }
}

fn fail(text: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        status: Status::Fail,
        text: text.into(),
        fix: Some(fix.into()),
    }
}

fn warn(text: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        status: Status::Warn,
        text: text.into(),
        fix: Some(fix.into()),
    }
}

/// The account the daemon's capture process will run as (`user`, else `knockwrap`, else
/// `nobody`): a missing one keeps `knockwrap run` from starting.
fn capture_account(c: &knockwrap_config::Config) -> Check {
    use crate::sys::privilege;
    match privilege::choose(c.user.as_deref()) {
        Ok(a) if c.user.is_none() && a.name == "nobody" => warn(
            format!(
                "the capture process will run as `nobody` (uid {}): no `knockwrap` account",
                a.uid
            ),
            "create one so no other service shares the capture process's uid: `useradd --system \
             --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
             knockwrap` (the Debian package does this)",
        ),
        Ok(a) => ok(format!(
            "the capture process will run as `{}` (uid {})",
            a.name, a.uid
        )),
        Err(e) => fail(
            format!("the capture process's account: {e}"),
            "set `user` to an existing unprivileged account, or create it (`useradd --system \
             --no-create-home --shell /usr/sbin/nologin NAME`)",
        ),
    }
}

/// Runs every check.
pub fn run(config_path: &Path, sshd: Option<&Path>) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = config_check(config_path, &mut checks);
    let hosts_allow = config.as_ref().map_or_else(
        || PathBuf::from(knockwrap_config::DEFAULT_HOSTS_ALLOW),
        |c| c.hosts_allow.clone(),
    );
    let hosts_deny = hosts_allow.with_file_name("hosts.deny");
    // The services whose hosts.allow lines some door writes (a firewall-only door writes
    // none, so hosts.deny does not matter to it).
    let services: BTreeSet<String> = match &config {
        Some(c) if !c.doors.is_empty() => c
            .doors
            .iter()
            .filter(|d| d.hosts_allow)
            .map(|d| d.door.service.clone())
            .collect(),
        _ => BTreeSet::from(["sshd".to_string()]),
    };
    if services.is_empty() {
        checks.push(ok(
            "no door writes hosts.allow lines (firewall doors only): hosts.allow and hosts.deny \
             decide nothing for them",
        ));
    }

    sshd_check(sshd, config.as_ref(), &mut checks);

    let allow = read_hosts(&hosts_allow, &mut checks);
    let deny = read_hosts(&hosts_deny, &mut checks);
    let mut denies_all = true;
    for service in &services {
        match hosts::deny_default(&deny, service) {
            None => checks.push(ok(format!(
                "{} denies `{service}` to clients that did not knock",
                hosts_deny.display()
            ))),
            Some(why) => {
                denies_all = false;
                checks.push(fail(
                    why,
                    format!(
                        "add `{service}: ALL` (or `ALL: ALL`) to {}: without it hosts.allow \
                         grants nothing that was not granted already",
                        hosts_deny.display()
                    ),
                ))
            }
        }
        let shadows = hosts::shadowing(&allow, &deny, service);
        if shadows.is_empty() {
            checks.push(ok(format!(
                "no rule in {} decides `{service}` before knockwrap's lines",
                hosts_allow.display()
            )));
        }
        for s in shadows {
            checks.push(fail(
                format!("{}: {s}", hosts_allow.display()),
                format!(
                    "remove or narrow that rule in {} (`knockwrap match {service} ADDR` shows \
                     which rule decides for an address)",
                    hosts_allow.display()
                ),
            ));
        }
    }

    if let Some(c) = &config {
        door_services(c, &mut checks);
        interfaces(c, &mut checks);
        checks.push(capture_account(c));
    }
    permissions(
        config_path,
        config.as_ref(),
        &hosts_allow,
        &hosts_deny,
        &mut checks,
    );
    if let Some(c) = &config {
        if !services.is_empty() {
            lockout(c, &allow, denies_all, &mut checks);
        }
        firewall::checks(c, &mut checks);
    }
    checks
}

fn config_check(path: &Path, checks: &mut Vec<Check>) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => {
            checks.push(ok(format!(
                "configuration {} is valid ({} door{})",
                path.display(),
                c.doors.len(),
                if c.doors.len() == 1 { "" } else { "s" }
            )));
            Some(c)
        }
        Err(e) => {
            let missing = !path.exists();
            let shown: Vec<String> = e.iter().take(5).map(ToString::to_string).collect();
            let more = e.len().saturating_sub(5);
            checks.push(fail(
                format!(
                    "configuration {}: {}{}",
                    path.display(),
                    shown.join("; "),
                    if more > 0 {
                        format!(" (and {more} more)")
                    } else {
                        String::new()
                    }
                ),
                if missing {
                    format!(
                        "write {} (`knockwrap import-knockd /etc/knockd.conf -o {}`, or start \
                         from config/knockwrap.example.toml), or name yours with --config",
                        path.display(),
                        path.display()
                    )
                } else {
                    format!(
                        "correct it: `knockwrap check --config {}` lists every problem",
                        path.display()
                    )
                },
            ));
            None
        }
    }
}

/// The libwrap check, and for an sshd without libwrap whether the firewall door covers it.
fn sshd_check(explicit: Option<&Path>, config: Option<&Config>, checks: &mut Vec<Check>) {
    let (linkage, without) = sshd_linkage(explicit);
    let (Some(c), Some(without)) = (config, without) else {
        checks.push(linkage);
        return;
    };
    let fw = firewall::firewall_doors(c);
    // Allow doors for sshd that only write lines: on this system they let no one in.
    let lines_only: Vec<&str> = c
        .doors
        .iter()
        .filter(|d| {
            d.door.action == Action::Allow
                && d.open_ports.is_empty()
                && d.door.service.eq_ignore_ascii_case("sshd")
        })
        .map(|d| d.door.name.as_str())
        .collect();
    let names = |v: &[&str]| {
        v.iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if fw.is_empty() {
        checks.push(linkage);
        return;
    }
    let fw_names: Vec<&str> = fw.iter().map(|d| d.door.name.as_str()).collect();
    let covered = format!(
        "sshd {} is not linked with libwrap: hosts.allow does nothing for sshd here, and the \
         firewall door covers it (door{} {} admit{} knockers to {})",
        without.shown,
        if fw.len() == 1 { "" } else { "s" },
        names(&fw_names),
        if fw.len() == 1 { "s" } else { "" },
        c.guarded_ports()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    checks.push(ok(covered));
    if !lines_only.is_empty() {
        checks.push(fail(
            format!(
                "door{} {} only write{} hosts.allow lines for sshd, which let no one in on this \
                 system (sshd is not linked with libwrap)",
                if lines_only.len() == 1 { "" } else { "s" },
                names(&lines_only),
                if lines_only.len() == 1 { "s" } else { "" }
            ),
            "give them `open_ports = [\"22/tcp\"]` and `hosts_allow = false`, as the firewall \
             door does",
        ));
    }
    let still_lines: Vec<&str> = fw
        .iter()
        .filter(|d| d.hosts_allow && d.door.service.eq_ignore_ascii_case("sshd"))
        .map(|d| d.door.name.as_str())
        .collect();
    if !still_lines.is_empty() {
        checks.push(warn(
            format!(
                "door{} {} also write{} hosts.allow lines for sshd, which sshd ignores here",
                if still_lines.len() == 1 { "" } else { "s" },
                names(&still_lines),
                if still_lines.len() == 1 { "s" } else { "" }
            ),
            "set `hosts_allow = false` in them: the lines change nothing on this system",
        ));
    }
}

/// An sshd found not linked with libwrap: how it is named in messages.
struct WithoutLibwrap {
    shown: String,
}

/// The libwrap check on its own (as when no configuration says more), and, when the binary is
/// an ELF file without libwrap, that finding.
fn sshd_linkage(explicit: Option<&Path>) -> (Check, Option<WithoutLibwrap>) {
    let bin = libs::locate_sshd(explicit);
    let shown = format!("{} (from {})", bin.path.display(), bin.source);
    let mut linkage = libs::find_library(&bin.path, |n| n.starts_with("libwrap.so"));
    // OpenSSH 9.8+ moves the per-connection work into sshd-session beside it.
    if matches!(&linkage, Ok(l) if l.found.is_none()) {
        for dir in ["/usr/lib/openssh", "/usr/libexec/openssh", "/usr/libexec"] {
            let session = Path::new(dir).join("sshd-session");
            if explicit.is_none() && session.exists() {
                if let Ok(l) = libs::find_library(&session, |n| n.starts_with("libwrap.so")) {
                    if l.found.is_some() {
                        linkage = Ok(l);
                        break;
                    }
                }
            }
        }
    }
    match linkage {
        Ok(l) => match l.found {
            Some(chain) => (
                ok(format!(
                    "sshd {shown} is linked with libwrap ({})",
                    chain.join(" → ")
                )),
                None,
            ),
            None => {
                let mut text = format!(
                    "sshd {shown} is not linked with libwrap: hosts.allow does nothing for sshd \
                     on this system, so knockwrap's grants let no one in and hosts.deny keeps \
                     no one out"
                );
                if !l.unresolved.is_empty() {
                    text.push_str(&format!(
                        " (libraries not found here: {})",
                        l.unresolved.join(", ")
                    ));
                }
                (
                    fail(
                        text,
                        "give the doors `open_ports = [\"22/tcp\"]` and `hosts_allow = \
                         false`: they then admit the knocker through knockwrap's nftables \
                         table, which needs no libwrap (docs/firewall.md); or use an sshd built \
                         with TCP Wrappers (Debian's and Ubuntu's openssh-server are; Fedora, \
                         RHEL 8+ and Arch builds are not), or name the right binary with --sshd",
                    ),
                    Some(WithoutLibwrap { shown }),
                )
            }
        },
        Err(e) => (
            fail(
                format!("sshd {shown}: {e}"),
                "install openssh-server, or name the sshd binary with --sshd",
            ),
            None,
        ),
    }
}

fn read_hosts(path: &Path, checks: &mut Vec<Check>) -> Vec<u8> {
    match fs::read(path) {
        Ok(bytes) => {
            let diags = hosts_access::validate(&bytes);
            let errors: Vec<String> = diags
                .iter()
                .filter(|d| d.severity == hosts_access::Severity::Error)
                .map(|d| format!("{}:{}:{}: {}", path.display(), d.line, d.column, d.message))
                .collect();
            let warnings = diags.len() - errors.len();
            if !errors.is_empty() {
                checks.push(fail(
                    errors
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; "),
                    format!(
                        "correct it: `knockwrap check {}` lists every problem",
                        path.display()
                    ),
                ));
            } else if warnings > 0 {
                checks.push(warn(
                    format!("{} is valid, with {warnings} warning(s)", path.display()),
                    format!("see `knockwrap check {}`", path.display()),
                ));
            } else {
                checks.push(ok(format!("{} is valid", path.display())));
            }
            bytes
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            checks.push(warn(
                format!(
                    "{} does not exist (libwrap reads a missing file as empty)",
                    path.display()
                ),
                format!("create {}", path.display()),
            ));
            Vec::new()
        }
        Err(e) => {
            checks.push(fail(
                format!("cannot read {}: {e}", path.display()),
                "make it readable by root (libwrap runs as root in sshd)".to_string(),
            ));
            Vec::new()
        }
    }
}

fn door_services(c: &Config, checks: &mut Vec<Check>) {
    // A firewall-only door writes no lines: its service names nothing libwrap is asked about.
    for d in c.doors.iter().filter(|d| d.hosts_allow) {
        let s = &d.door.service;
        if s.eq_ignore_ascii_case("sshd") {
            checks.push(ok(format!(
                "door `{}` manages `{s}` lines, the name sshd asks libwrap about",
                d.door.name
            )));
        } else if s.to_ascii_lowercase().contains("ssh") {
            checks.push(fail(
                format!(
                    "door `{}` manages `{s}` lines, but sshd asks libwrap about `sshd`: they \
                     let no one in",
                    d.door.name
                ),
                format!("set `service = \"sshd\"` in door `{}`", d.door.name),
            ));
        } else {
            checks.push(warn(
                format!(
                    "door `{}` manages `{s}` lines, not sshd's: only a daemon that asks \
                     libwrap about `{s}` is affected",
                    d.door.name
                ),
                "keep it if that is the daemon you mean; sshd asks about `sshd`",
            ));
        }
    }
}

fn interfaces(c: &Config, checks: &mut Vec<Check>) {
    if c.interfaces.is_empty() {
        checks.push(warn(
            "the configuration names no interface",
            "set `interface = \"...\"` (or run the daemon with --interface)",
        ));
        return;
    }
    let addrs = match interface_addresses() {
        Ok(a) => a,
        Err(e) => {
            checks.push(fail(
                format!("cannot list this host's interfaces: {e}"),
                "run doctor on the host (and in the network namespace) the daemon runs in",
            ));
            return;
        }
    };
    for name in &c.interfaces {
        let exists =
            Path::new("/sys/class/net").join(name).exists() || addrs.iter().any(|(n, _)| n == name);
        let mine: Vec<String> = addrs
            .iter()
            .filter(|(n, a)| n == name && a.is_some())
            .filter_map(|(_, a)| a.map(|a| a.to_string()))
            .collect();
        if !exists {
            checks.push(fail(
                format!("interface {name} does not exist"),
                "name an existing interface (`ip link`) in `interface`",
            ));
        } else if mine.is_empty() {
            checks.push(fail(
                format!("interface {name} has no IP address: no knock can be sent to it"),
                format!(
                    "configure an address on {name} (`ip addr`), or listen on another interface"
                ),
            ));
        } else {
            checks.push(ok(format!("interface {name} exists ({})", mine.join(", "))));
        }
    }
}

/// (interface name, address) for every entry getifaddrs lists (address `None` for link-layer
/// entries), from the program's one reading of them (`sys::ifaddrs`).
fn interface_addresses() -> io::Result<Vec<(String, Option<IpAddr>)>> {
    Ok(crate::sys::ifaddrs::entries()?
        .into_iter()
        .map(|e| (e.name, e.addr))
        .collect())
}

/// Who may change what decides access: every file and directory involved must belong to root
/// and be writable by no one else; secrets must be readable by no one else.
fn permissions(
    config_path: &Path,
    config: Option<&Config>,
    hosts_allow: &Path,
    hosts_deny: &Path,
    checks: &mut Vec<Check>,
) {
    let mut items: Vec<(PathBuf, &str, bool)> = vec![
        (config_path.to_path_buf(), "configuration", false),
        (hosts_allow.to_path_buf(), "hosts.allow", false),
        (hosts_deny.to_path_buf(), "hosts.deny", false),
    ];
    if let Some(dir) = hosts_allow.parent().filter(|d| !d.as_os_str().is_empty()) {
        items.push((dir.to_path_buf(), "the directory of hosts.allow", false));
    }
    if let Some(c) = config {
        items.push((c.state_dir.clone(), "state_dir", false));
        for d in &c.doors {
            if let Some(f) = &d.one_time_file {
                items.push((f.clone(), "one-time sequences", true));
            }
            if let Some(f) = &d.totp_secret_file {
                items.push((f.clone(), "TOTP key", true));
            }
        }
    }
    let mut bad = 0;
    for (path, what, secret) in items {
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if what == "state_dir" {
                    checks.push(warn(
                        format!("state_dir {} does not exist yet", path.display()),
                        "the daemon creates it; or `install -d -m 0700 -o root DIR`",
                    ));
                }
                continue;
            }
            Err(e) => {
                bad += 1;
                checks.push(fail(
                    format!("{what} {}: {e}", path.display()),
                    "make it readable by root",
                ));
                continue;
            }
        };
        let mode = meta.mode() & 0o7777;
        // A directory's sticky bit does not stop its owner's peers from replacing files.
        if meta.uid() != 0 {
            bad += 1;
            checks.push(fail(
                format!(
                    "{what} {} belongs to uid {}, not root: that account decides who gets in",
                    path.display(),
                    meta.uid()
                ),
                format!("chown root {}", path.display()),
            ));
        }
        if mode & 0o022 != 0 {
            bad += 1;
            checks.push(fail(
                format!(
                    "{what} {} is writable by group or others (mode {mode:04o})",
                    path.display()
                ),
                format!("chmod go-w {}", path.display()),
            ));
        }
        if secret && mode & 0o044 != 0 {
            bad += 1;
            checks.push(fail(
                format!(
                    "{what} {} is readable by group or others (mode {mode:04o}): anyone on this \
                     host can knock with it",
                    path.display()
                ),
                format!("chmod 600 {}", path.display()),
            ));
        }
    }
    if bad == 0 {
        checks.push(ok(
            "configuration, hosts files, state_dir and key files belong to root and only root \
             can write them",
        ));
    }
}

fn lockout(c: &Config, allow: &[u8], denies: bool, checks: &mut Vec<Check>) {
    let allow_doors = c
        .doors
        .iter()
        .filter(|d| d.door.action == Action::Allow && d.door.service.eq_ignore_ascii_case("sshd"))
        .count();
    if !denies || allow_doors >= 2 || hosts::has_standing_rule(allow, "sshd") {
        return;
    }
    checks.push(warn(
        format!(
            "knocking is the only way in over ssh ({allow_doors} door{} for sshd, no standing \
             hosts.allow rule): a lost client, a broken door or a clock off by minutes for a \
             TOTP door locks you out",
            if allow_doors == 1 { "" } else { "s" }
        ),
        "keep a standing rule for a trusted network in hosts.allow (e.g. `sshd: 192.168.1.0/24` \
         or `sshd: LOCAL`), or a second door, and make sure console access works",
    ));
}
