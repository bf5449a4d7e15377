//! `knockwrap match`: predicts libwrap's verdict for `DAEMON[@SERVER] [USER@]CLIENT_ADDR` over
//! hosts.allow and hosts.deny, as tcpdmatch does for a numeric client without DNS.
//! Exit 0 granted, 1 denied or delegated (a `twist` rule: the client does not get the service
//! itself), 2 on error. Missing files are empty, as for libwrap.

use std::path::Path;

use hosts_access::eval::{evaluate, Request, Table, Verdict};
use serde_json::json;

use crate::cli::{MatchArgs, SimpleFormat};
use crate::failure::{Exit, Failure, Outcome};
use crate::output::outln;

pub fn run(args: MatchArgs) -> Outcome {
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
        SimpleFormat::Json => outln!(
            "{}",
            json!({
                "verdict": decision.verdict.as_str(),
                "file": file,
                "line": decision.line,
            })
        ),
        SimpleFormat::Human => {
            outln!("access: {}", decision.verdict);
            if let (Some(f), Some(l)) = (&file, decision.line) {
                outln!("rule:   {f}:{l}");
            }
            outln!("reason: {}", decision.reason);
        }
    }
    Ok(match decision.verdict {
        Verdict::Granted => Exit::Success,
        Verdict::Denied | Verdict::Delegated => Exit::Failed,
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
