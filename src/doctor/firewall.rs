//! The firewall door's checks, for a configuration that guards ports (some allow door has
//! `open_ports`):
//!
//! - the lockout warnings of `knockwrap check --config` (`knockwrap_config::lockout_warnings`:
//!   no `always_allow`, this SSH session's client not covered), the same text, so `check` and
//!   `doctor` agree;
//! - `nft` is installed (the usual sbin directories, then `PATH`);
//! - the kernel has nf_tables: `nft -j list ruleset` is run with `LC_ALL=C`, and nft's exit
//!   status 3 (it could not open its netlink socket: no nfnetlink) or an error saying
//!   `Protocol not supported` / `Operation not supported` (the kernel has no nf_tables
//!   subsystem, even after trying to load the module) means a kernel without it. This asks
//!   the kernel itself, where a module list or a /proc file would miss a built-in or a
//!   module loaded on demand;
//! - no other table's base chain on the `input` hook drops a guarded port ([`super::ruleset`]
//!   reads the listing): a drop anywhere is final, so it drops the knockers knockwrap admits;
//! - no iptables-legacy rules beside nf_tables: `/proc/net/ip_tables_names` and
//!   `/proc/net/ip6_tables_names` list the legacy tables the kernel holds in this network
//!   namespace (the files exist only once x_tables is loaded, so reading them loads nothing);
//!   when some exist and `iptables-legacy-save` is installed, its output says whether they hold
//!   rules or a `DROP` policy. Legacy `INPUT` sits on the same hook, so its drops are final too.
//!
//! Nothing here changes the ruleset: nft only lists, and iptables-legacy-save only runs when
//! the legacy tables already exist.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use knockwrap_config::{Config, PortSpec, SshSession};

use super::ruleset::{self, DropBy, RulesetReport};
use super::{fail, ok, warn, Check};

/// Where nft and iptables-legacy-save usually are, before `PATH` is searched.
pub const SBIN_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// `program` in `dirs`, then in the directories of `path` (a `PATH` value): the first
/// executable regular file.
pub fn find_program(program: &str, dirs: &[&str], path: Option<&OsStr>) -> Option<PathBuf> {
    let from_path = path
        .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.iter()
        .map(PathBuf::from)
        .chain(from_path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(program))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Why `nft list` failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NftFailure {
    /// The kernel has no nf_tables (or no nfnetlink at all).
    NoKernelSupport(String),
    /// Not allowed to list (not root, or no CAP_NET_ADMIN).
    NotPermitted(String),
    Other(String),
}

/// nft's exit status when it cannot open its netlink socket.
pub const NFT_EXIT_NONL: i32 = 3;

/// Reads a failed nft run (exit status, standard error under `LC_ALL=C`).
pub fn classify_nft_failure(status: Option<i32>, stderr: &str) -> NftFailure {
    let said = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let lower = said.to_ascii_lowercase();
    if status == Some(NFT_EXIT_NONL)
        || lower.contains("protocol not supported")
        || lower.contains("operation not supported")
    {
        NftFailure::NoKernelSupport(said)
    } else if lower.contains("operation not permitted") || lower.contains("permission denied") {
        NftFailure::NotPermitted(said)
    } else {
        NftFailure::Other(said)
    }
}

/// What `iptables-legacy-save` (or its IPv6 twin) shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegacyRules {
    /// Rules (`-A` lines), in every table.
    pub rules: usize,
    /// `table/chain` of the built-in chains whose policy is `DROP`.
    pub drop_policies: Vec<String>,
}

/// Reads iptables-save's format: `*table`, `:CHAIN POLICY [counters]`, `-A CHAIN ...`.
pub fn legacy_rules(save: &str) -> LegacyRules {
    let mut out = LegacyRules::default();
    let mut table = "";
    for line in save.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix('*') {
            table = t;
        } else if let Some(chain) = line.strip_prefix(':') {
            let mut f = chain.split_whitespace();
            if let (Some(name), Some("DROP")) = (f.next(), f.next()) {
                out.drop_policies.push(format!("{table}/{name}"));
            }
        } else if line.starts_with("-A ") {
            out.rules += 1;
        }
    }
    out
}

/// The names in `/proc/net/ip_tables_names`-style text (one table a line).
pub fn table_names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The allow doors with `open_ports`, by name.
pub fn firewall_doors(c: &Config) -> Vec<&knockwrap_config::DoorConfig> {
    c.doors
        .iter()
        .filter(|d| d.door.action == knock_match::Action::Allow && !d.open_ports.is_empty())
        .collect()
}

/// Every firewall check, for a configuration with guarded ports (nothing otherwise).
pub fn checks(c: &Config, checks: &mut Vec<Check>) {
    let guarded = c.guarded_ports();
    if guarded.is_empty() {
        return;
    }
    let session = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|v| SshSession::parse(&v));
    lockout(c, session.as_ref(), checks);

    let path = std::env::var_os("PATH");
    let nft = find_program("nft", &SBIN_DIRS, path.as_deref());
    checks.push(nft_check(nft.as_deref(), &guarded));
    if let Some(nft) = nft {
        ruleset_checks(c, &nft, &guarded, checks);
    }
    legacy(checks);
}

/// Whether nft was found.
pub fn nft_check(nft: Option<&Path>, guarded: &[PortSpec]) -> Check {
    match nft {
        None => fail(
            format!(
                "nft is not installed (looked in {} and PATH): the firewall door cannot guard \
                 {}, and its doors admit no one",
                SBIN_DIRS.join(", "),
                PortSpec::join(guarded, ", ")
            ),
            "apt-get install nftables",
        ),
        Some(nft) => ok(format!("nft is installed ({})", nft.display())),
    }
}

/// What a failed `nft -j list ruleset` means.
pub fn nft_failure_check(failure: NftFailure, status: &str) -> Check {
    match failure {
        NftFailure::NoKernelSupport(said) => fail(
            format!(
                "this kernel has no nf_tables: `nft list ruleset` says `{said}`, so knockwrap's \
                 table cannot be created and the firewall door admits no one"
            ),
            "load it (`modprobe nf_tables`) or boot a kernel built with CONFIG_NF_TABLES (every \
             current distribution kernel is); in a container, the host's kernel decides",
        ),
        NftFailure::NotPermitted(said) => warn(
            format!("cannot read the nftables ruleset (`{said}`)"),
            "run doctor as root to check other tables for drops of the guarded ports",
        ),
        NftFailure::Other(said) => warn(
            format!("`nft -j list ruleset` failed ({status}): `{said}`"),
            "run `nft list ruleset` to see what is wrong",
        ),
    }
}

/// `lockout_warnings`, as doctor's warnings.
pub fn lockout(c: &Config, session: Option<&SshSession>, checks: &mut Vec<Check>) {
    for w in knockwrap_config::lockout_warnings(c, session) {
        let hint = match w.code {
            "firewall-no-always-allow" => {
                "add `always_allow = [\"NETWORK/LEN\", ...]` to `[firewall]`, and make sure \
                 console access works"
            }
            "firewall-locks-out-session" => {
                "add this session's address or network to `always_allow` before the daemon \
                 starts guarding the port"
            }
            _ => "see `knockwrap check --config` and docs/firewall.md",
        };
        checks.push(warn(
            format!("{} (line {}, warning[{}])", w.message, w.line, w.code),
            hint,
        ));
    }
}

fn ruleset_checks(c: &Config, nft: &Path, guarded: &[PortSpec], checks: &mut Vec<Check>) {
    let out = match Command::new(nft)
        .args(["-j", "list", "ruleset"])
        .env("LC_ALL", "C")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            checks.push(fail(
                format!("cannot run {}: {e}", nft.display()),
                "reinstall nftables (`apt-get install --reinstall nftables`)",
            ));
            return;
        }
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let failure = classify_nft_failure(out.status.code(), &stderr);
        checks.push(nft_failure_check(failure, &out.status.to_string()));
        return;
    }
    checks.push(ok("the kernel has nf_tables (`nft list ruleset` works)"));
    let json = String::from_utf8_lossy(&out.stdout);
    match ruleset::analyze(&json, &c.firewall.table, guarded) {
        Ok(report) => report_checks(&report, &c.firewall.table, guarded, checks),
        Err(e) => checks.push(warn(
            e.to_string(),
            "run `nft list ruleset` and look for drops of the guarded ports on the input hook",
        )),
    }
}

/// The checks for an analysed ruleset.
pub fn report_checks(
    report: &RulesetReport,
    own_table: &str,
    guarded: &[PortSpec],
    checks: &mut Vec<Check>,
) {
    if report.dropping.is_empty() {
        checks.push(ok(format!(
            "no other nftables table drops {} on the input hook ({} base chain{} read{})",
            PortSpec::join(guarded, ", "),
            report.input_chains,
            if report.input_chains == 1 { "" } else { "s" },
            if report.own_table {
                format!("; table inet {own_table} is installed")
            } else {
                String::new()
            }
        )));
        return;
    }
    for chain in &report.dropping {
        let whole = format!("{} {}", chain.family, chain.table);
        let how: Vec<String> = chain
            .drops
            .iter()
            .map(|d| match &d.by {
                DropBy::Policy => {
                    format!("{}: by its policy drop (no rule accepts it first)", d.port)
                }
                DropBy::Rule { chain, handle } => {
                    format!("{}: by rule handle {handle} in chain {chain}", d.port)
                }
                DropBy::Some(rules) => format!(
                    "{}: for some sources, by rule{} {}",
                    d.port,
                    if rules.len() == 1 { "" } else { "s" },
                    rules
                        .iter()
                        .map(|(c, h)| format!("handle {h} in chain {c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
            .collect();
        let first = chain.drops[0].port;
        checks.push(warn(
            format!(
                "table {whole}, chain {} (hook input, policy {}) drops new connections to {}: a \
                 drop anywhere is final, so it also drops the knockers knockwrap admits",
                chain.chain,
                chain.policy,
                how.join("; ")
            ),
            format!(
                "let the guarded ports through in that table before its drops (e.g. `nft insert \
                 rule {whole} {} {} dport {} accept`, or `ufw allow {}`): knockwrap's table is \
                 then the only gate in front of them; `nft -a list table {whole}` shows the \
                 rules with their handles",
                chain.chain, first.proto, first.port, first
            ),
        ));
    }
}

fn legacy(checks: &mut Vec<Check>) {
    let mut names = Vec::new();
    for (file, family) in [
        ("/proc/net/ip_tables_names", "IPv4"),
        ("/proc/net/ip6_tables_names", "IPv6"),
    ] {
        if let Ok(text) = fs::read_to_string(file) {
            names.extend(
                table_names(&text)
                    .into_iter()
                    .map(|t| format!("{t} ({family})")),
            );
        }
    }
    let path = std::env::var_os("PATH");
    let mut seen = None::<LegacyRules>;
    if !names.is_empty() {
        for tool in ["iptables-legacy-save", "ip6tables-legacy-save"] {
            let Some(bin) = find_program(tool, &SBIN_DIRS, path.as_deref()) else {
                continue;
            };
            if let Ok(o) = Command::new(&bin).env("LC_ALL", "C").output() {
                if o.status.success() {
                    let r = legacy_rules(&String::from_utf8_lossy(&o.stdout));
                    let total = seen.get_or_insert_with(LegacyRules::default);
                    total.rules += r.rules;
                    total.drop_policies.extend(r.drop_policies);
                }
            }
        }
    }
    checks.push(legacy_check(&names, seen.as_ref()));
}

/// The legacy tables the kernel holds (`filter (IPv4)`, ...) and, when iptables-legacy-save
/// could read them, what they hold.
pub fn legacy_check(names: &[String], seen: Option<&LegacyRules>) -> Check {
    if names.is_empty() {
        return ok("no iptables-legacy tables beside nf_tables");
    }
    let tables = names.join(", ");
    let why = "they are evaluated too (legacy INPUT is on the same hook), and a DROP there \
               drops the knockers knockwrap admits";
    let hint = "move them to nftables (`iptables-legacy-save | iptables-restore-translate`, or \
                iptables-nft) and flush the legacy ones, or make sure they accept the guarded \
                ports";
    match seen {
        Some(r) if r.rules == 0 && r.drop_policies.is_empty() => ok(format!(
            "iptables-legacy tables exist ({tables}) but hold no rule and no DROP policy"
        )),
        Some(r) => warn(
            format!(
                "iptables-legacy rules beside nf_tables ({tables}: {} rule{}{}): {why}",
                r.rules,
                if r.rules == 1 { "" } else { "s" },
                if r.drop_policies.is_empty() {
                    String::new()
                } else {
                    format!(", policy DROP in {}", r.drop_policies.join(", "))
                }
            ),
            hint,
        ),
        None => warn(
            format!(
                "iptables-legacy tables beside nf_tables ({tables}; iptables-legacy-save is not \
                 installed to read them): {why}"
            ),
            hint,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn nft_failures() {
        assert!(matches!(
            classify_nft_failure(Some(3), "E: Unable to open Netlink socket: x\n"),
            NftFailure::NoKernelSupport(_)
        ));
        assert_eq!(
            classify_nft_failure(
                Some(1),
                "netlink: Error: cannot list ruleset: Protocol not supported\n"
            ),
            NftFailure::NoKernelSupport(
                "netlink: Error: cannot list ruleset: Protocol not supported".into()
            )
        );
        assert!(matches!(
            classify_nft_failure(Some(1), "Error: Operation not supported\n"),
            NftFailure::NoKernelSupport(_)
        ));
        assert!(matches!(
            classify_nft_failure(Some(1), "Operation not permitted (you must be root)\n"),
            NftFailure::NotPermitted(_)
        ));
        assert!(matches!(
            classify_nft_failure(Some(1), "Error: something else\n"),
            NftFailure::Other(_)
        ));
    }

    #[test]
    fn a_missing_nft_fails_with_the_package_to_install() {
        let c = nft_check(None, &[PortSpec::tcp(22)]);
        assert_eq!(c.status, Status::Fail);
        assert!(c
            .text
            .starts_with("nft is not installed (looked in /usr/sbin, /sbin"));
        assert!(c.text.contains("cannot guard 22/tcp"), "{}", c.text);
        assert_eq!(c.fix.as_deref(), Some("apt-get install nftables"));
        let c = nft_check(Some(Path::new("/usr/sbin/nft")), &[PortSpec::tcp(22)]);
        assert_eq!(c.status, Status::Ok);
    }

    #[test]
    fn a_kernel_without_nf_tables_fails() {
        let c = nft_failure_check(
            classify_nft_failure(
                Some(1),
                "Error: Could not process rule: Protocol not supported",
            ),
            "exit status: 1",
        );
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.text
                .starts_with("this kernel has no nf_tables: `nft list ruleset` says"),
            "{}",
            c.text
        );
        assert!(c.fix.as_deref().unwrap().contains("modprobe nf_tables"));
        let c = nft_failure_check(
            classify_nft_failure(Some(1), "Operation not permitted"),
            "exit status: 1",
        );
        assert_eq!(c.status, Status::Warn);
    }

    #[test]
    fn legacy_rules_beside_nf_tables_warn() {
        let names = vec!["filter (IPv4)".to_string()];
        let c = legacy_check(
            &names,
            Some(&LegacyRules {
                rules: 1,
                drop_policies: vec!["filter/INPUT".into()],
            }),
        );
        assert_eq!(c.status, Status::Warn);
        assert_eq!(
            c.text,
            "iptables-legacy rules beside nf_tables (filter (IPv4): 1 rule, policy DROP in \
             filter/INPUT): they are evaluated too (legacy INPUT is on the same hook), and a \
             DROP there drops the knockers knockwrap admits"
        );
        // Tables the save tool could not read: still a warning.
        assert_eq!(legacy_check(&names, None).status, Status::Warn);
        // Empty legacy tables, or none at all: fine.
        assert_eq!(
            legacy_check(&names, Some(&LegacyRules::default())).status,
            Status::Ok
        );
        assert_eq!(legacy_check(&[], None).status, Status::Ok);
    }

    #[test]
    fn legacy_save_output() {
        let empty = "# Generated by iptables-save v1.8.9\n*filter\n:INPUT ACCEPT [0:0]\n\
                     :FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        assert_eq!(legacy_rules(empty), LegacyRules::default());
        let rules = "*filter\n:INPUT DROP [10:600]\n:FORWARD ACCEPT [0:0]\n\
                     -A INPUT -p tcp -m tcp --dport 22 -j DROP\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n\
                     *raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n";
        assert_eq!(
            legacy_rules(rules),
            LegacyRules {
                rules: 2,
                drop_policies: vec!["filter/INPUT".into()]
            }
        );
        assert_eq!(table_names("filter\nraw\n\n"), vec!["filter", "raw"]);
        assert!(table_names("").is_empty());
    }

    #[test]
    fn programs_are_found_in_dirs_then_path() {
        let d = tempfile::tempdir().unwrap();
        let sbin = d.path().join("sbin");
        let bin = d.path().join("bin");
        fs::create_dir_all(&sbin).unwrap();
        fs::create_dir_all(&bin).unwrap();
        let sbin_s = sbin.to_str().unwrap();
        let path = std::env::join_paths([&bin]).unwrap();
        assert_eq!(find_program("nft", &[sbin_s], Some(&path)), None);
        // Not executable: not a program.
        fs::write(bin.join("nft"), "").unwrap();
        assert_eq!(find_program("nft", &[sbin_s], Some(&path)), None);
        fs::set_permissions(bin.join("nft"), fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_program("nft", &[sbin_s], Some(&path)),
            Some(bin.join("nft"))
        );
        fs::write(sbin.join("nft"), "").unwrap();
        fs::set_permissions(sbin.join("nft"), fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_program("nft", &[sbin_s], Some(&path)),
            Some(sbin.join("nft"))
        );
        // A directory of that name is not it, and relative PATH entries are ignored.
        assert_eq!(
            find_program("sbin", &[], Some(OsStr::new("relative"))),
            None
        );
    }

    fn guarded_config(always_allow: &str) -> Config {
        let text = format!(
            "interface = \"lo\"\n[firewall]\n{always_allow}\n[[door]]\nname = \"fw\"\n\
             sequence = [\"7000\", \"8000\"]\nservice = \"sshd\"\nopen_ports = [\"22/tcp\"]\nhosts_allow = false\n"
        );
        Config::from_toml_str(&text, "/etc/knockwrap/knockwrap.toml").unwrap()
    }

    #[test]
    fn lockout_warnings_are_checks() {
        let c = guarded_config("");
        let session = SshSession::parse("198.51.100.7 50122 192.0.2.1 22");
        let mut checks = Vec::new();
        lockout(&c, session.as_ref(), &mut checks);
        assert_eq!(checks.len(), 2, "{checks:#?}");
        assert!(checks.iter().all(|c| c.status == Status::Warn));
        assert!(checks[0].text.contains("no `always_allow`"), "{checks:#?}");
        assert!(checks[0].text.contains("warning[firewall-no-always-allow]"));
        assert!(
            checks[1]
                .text
                .contains("this SSH session comes from 198.51.100.7"),
            "{checks:#?}"
        );
        // Covered by always_allow: neither.
        let c = guarded_config("always_allow = [\"198.51.100.0/24\"]");
        let mut checks = Vec::new();
        lockout(&c, session.as_ref(), &mut checks);
        assert!(checks.is_empty(), "{checks:#?}");
    }

    #[test]
    fn dropping_chains_are_warnings_naming_table_and_chain() {
        let report = RulesetReport {
            own_table: true,
            input_chains: 2,
            dropping: vec![ruleset::ChainReport {
                family: "inet".into(),
                table: "filter".into(),
                chain: "input".into(),
                policy: "drop".into(),
                drops: vec![
                    ruleset::PortDrop {
                        port: PortSpec::tcp(22),
                        by: DropBy::Policy,
                    },
                    ruleset::PortDrop {
                        port: PortSpec::udp(51820),
                        by: DropBy::Rule {
                            chain: "sub".into(),
                            handle: 7,
                        },
                    },
                ],
            }],
        };
        let mut checks = Vec::new();
        let guarded = [PortSpec::tcp(22), PortSpec::udp(51820)];
        report_checks(&report, "knockwrap", &guarded, &mut checks);
        assert_eq!(checks.len(), 1);
        let c = &checks[0];
        assert_eq!(c.status, Status::Warn);
        assert_eq!(
            c.text,
            "table inet filter, chain input (hook input, policy drop) drops new connections to \
             22/tcp: by its policy drop (no rule accepts it first); 51820/udp: by rule handle 7 \
             in chain sub: a drop anywhere is final, so it also drops the knockers knockwrap \
             admits"
        );
        assert!(c
            .fix
            .as_deref()
            .unwrap()
            .contains("nft insert rule inet filter input tcp dport 22 accept"));
        let mut checks = Vec::new();
        let fine = RulesetReport {
            own_table: true,
            input_chains: 1,
            dropping: Vec::new(),
        };
        report_checks(&fine, "knockwrap", &guarded, &mut checks);
        assert_eq!(checks[0].status, Status::Ok);
        assert_eq!(
            checks[0].text,
            "no other nftables table drops 22/tcp, 51820/udp on the input hook (1 base chain \
             read; table inet knockwrap is installed)"
        );
    }
}
