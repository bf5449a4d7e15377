//! `knockwrap list`: the active leases, as a table or as the contract's JSON array. The table
//! also names the managed-looking lines of hosts.allow that no lease accounts for (an
//! operator's own, or access nothing will end), so an operator sees every line of that form.

use hosts_writer::time::rfc3339_utc;
use hosts_writer::Journal;

use crate::cli::{ListArgs, SimpleFormat};
use crate::failure::{Exit, Failure, Outcome};
use crate::output::outln;
use crate::target;

pub fn run(args: ListArgs) -> Outcome {
    let (dir, hosts_allow) = target::for_list(
        &args.config,
        args.state_dir.as_deref(),
        args.hosts_allow.as_deref(),
    )?;
    let journal = Journal::load(&dir).map_err(|e| Failure::failed(e.to_string()))?;
    let mut leases = journal
        .active(clock::wall_ms() / 1000)
        .map_err(|e| Failure::failed(e.to_string()))?;
    leases.sort_by(|a, b| {
        (a.expires_at.is_none(), a.expires_at, a.ip).cmp(&(
            b.expires_at.is_none(),
            b.expires_at,
            b.ip,
        ))
    });
    match args.format {
        SimpleFormat::Json => {
            // A struct keeps the contract's key order (docs/contract.md) (json! would sort the keys).
            #[derive(serde::Serialize)]
            struct Item<'a> {
                ip: String,
                service: &'a str,
                door: &'a str,
                expires_at: Option<String>,
                /// Only for leases that admit firewall ports (an extension of the contract's
                /// four keys, absent otherwise).
                #[serde(skip_serializing_if = "Vec::is_empty")]
                ports: Vec<String>,
            }
            let items: Vec<Item> = leases
                .iter()
                .map(|l| Item {
                    ip: l.ip.to_string(),
                    service: &l.service,
                    door: &l.door,
                    expires_at: l.expires_at.map(rfc3339_utc),
                    ports: l.ports.iter().map(|p| p.to_string()).collect(),
                })
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into())
            );
        }
        SimpleFormat::Human => {
            if leases.is_empty() {
                outln!("no active leases");
            } else {
                outln!("{:<40} {:<12} {:<16} EXPIRES", "IP", "SERVICE", "DOOR");
                for l in &leases {
                    let exp = l
                        .expires_at
                        .map_or_else(|| "never".to_string(), rfc3339_utc);
                    let ports = if l.ports.is_empty() {
                        String::new()
                    } else {
                        format!("  firewall {}", knock_match::PortSpec::join(&l.ports, ","))
                    };
                    outln!(
                        "{:<40} {:<12} {:<16} {exp}{ports}",
                        l.ip.to_string(),
                        l.service,
                        l.door
                    );
                }
            }
            if let Some(path) = &hosts_allow {
                let bytes = hosts_writer::atomic::read_bytes(path)
                    .map_err(|e| Failure::failed(e.to_string()))?;
                let all = journal
                    .leases()
                    .map_err(|e| Failure::failed(e.to_string()))?;
                let unleased = unleased_lines(&bytes, &all);
                if !unleased.is_empty() {
                    outln!(
                        "\nlines in {} of the managed form that no lease ends (an operator's own, or access nothing will end):",
                        path.display()
                    );
                    for (line, text) in unleased {
                        outln!("  {}:{line}: {text}", path.display());
                    }
                }
            }
        }
    }
    Ok(Exit::Success)
}

/// The lines of `bytes` that are exactly a managed line (`SERVICE: ADDRESS` as knockwrap
/// writes it) for which no lease exists (service compared as libwrap does, in any case):
/// (1-based line number, text).
fn unleased_lines(bytes: &[u8], leases: &[hosts_writer::Lease]) -> Vec<(usize, String)> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let (service, addr) = line.split_once(": ")?;
            let addr = addr
                .strip_prefix('[')
                .and_then(|a| a.strip_suffix(']'))
                .unwrap_or(addr);
            let managed = hosts_access::edit::ManagedLine::new(service, addr.parse().ok()?).ok()?;
            if managed.text() != line {
                return None;
            }
            let leased = leases.iter().any(|l| {
                l.ip == managed.addr() && l.service.eq_ignore_ascii_case(managed.service())
            });
            (!leased).then(|| (i + 1, line.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_the_managed_form_without_a_lease_are_named() {
        let lease = hosts_writer::Lease {
            ip: "198.51.100.8".parse().unwrap(),
            service: "SSHD".into(),
            door: "d".into(),
            expires_at: None,
            added_line: true,
            ports: Vec::new(),
        };
        let file = b"# c\nsshd: 198.51.100.8\nSSHD: 198.51.100.9\r\nSSHD: [2001:db8::1]\nSSHD:198.51.100.7\nSSHD: 10.0.0.0/8\n";
        assert_eq!(
            unleased_lines(file, &[lease]),
            [
                (3, "SSHD: 198.51.100.9".to_owned()),
                (4, "SSHD: [2001:db8::1]".to_owned())
            ]
        );
    }
}
