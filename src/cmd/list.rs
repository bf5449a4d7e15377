//! `knockwrap list`: the active leases, as a table or as SPEC's JSON array.

use hosts_writer::time::rfc3339_utc;
use hosts_writer::Journal;

use crate::cli::{ListArgs, SimpleFormat};
use crate::failure::{Exit, Failure, Outcome};
use crate::output::outln;
use crate::target;

pub fn run(args: ListArgs) -> Outcome {
    let dir = target::state_dir_for_list(&args.config, args.state_dir.as_deref())?;
    let journal = Journal::load(&dir).map_err(|e| Failure::failed(e.to_string()))?;
    let mut leases = journal
        .active(hosts_writer::time::now_ms() / 1000)
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
            // A struct keeps SPEC's key order (json! would sort the keys).
            #[derive(serde::Serialize)]
            struct Item<'a> {
                ip: String,
                service: &'a str,
                door: &'a str,
                expires_at: Option<String>,
            }
            let items: Vec<Item> = leases
                .iter()
                .map(|l| Item {
                    ip: l.ip.to_string(),
                    service: &l.service,
                    door: &l.door,
                    expires_at: l.expires_at.map(rfc3339_utc),
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
                    outln!(
                        "{:<40} {:<12} {:<16} {exp}",
                        l.ip.to_string(),
                        l.service,
                        l.door
                    );
                }
            }
        }
    }
    Ok(Exit::Success)
}
