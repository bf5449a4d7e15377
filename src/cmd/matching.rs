//! `knockwrap match`: predicts libwrap's verdict for `DAEMON[@SERVER] [USER@]CLIENT_ADDR` over
//! hosts.allow and hosts.deny, as tcpdmatch does for a numeric client without DNS.
//! Exit 0 granted, 1 denied or delegated (a `twist` rule: the client does not get the service
//! itself), 2 on error. Missing files are empty, as for libwrap.

use std::path::Path;
use std::process::ExitCode;

use hosts_access::eval::{evaluate, Request, Table, Verdict};
use serde_json::json;

use crate::cli::{MatchArgs, SimpleFormat};
use crate::failure::{CliResult, Failure};

pub fn run(args: MatchArgs) -> CliResult {
    let request = Request::parse(&args.daemon, &args.client)
        .map_err(|e| Failure::usage(format!("match: {e}")))?;
    let allow = read_or_empty(&args.hosts_allow)?;
    let deny = read_or_empty(&args.hosts_deny)?;
    let decision = evaluate(&allow, &deny, &request);
    let file = decision.table.map(|t| match t {
        Table::Allow => args.hosts_allow.display().to_string(),
        Table::Deny => args.hosts_deny.display().to_string(),
    });
    match args.format {
        SimpleFormat::Json => println!(
            "{}",
            json!({
                "verdict": decision.verdict.as_str(),
                "file": file,
                "line": decision.line,
            })
        ),
        SimpleFormat::Human => {
            println!("access: {}", decision.verdict);
            if let (Some(f), Some(l)) = (&file, decision.line) {
                println!("rule:   {f}:{l}");
            }
            println!("reason: {}", decision.reason);
        }
    }
    Ok(match decision.verdict {
        Verdict::Granted => ExitCode::SUCCESS,
        Verdict::Denied | Verdict::Delegated => ExitCode::from(crate::failure::FAILED),
    })
}

/// The file's bytes; a missing file is empty (libwrap treats it so), any other error is fatal.
fn read_or_empty(path: &Path) -> Result<Vec<u8>, Failure> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Failure::usage(format!(
            "{}: cannot read: {e}",
            path.display()
        ))),
    }
}
