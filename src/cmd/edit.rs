//! What `allow` and `revoke` share: the managed line from the command line's address and
//! service, the write options of a CLI edit, and the `--dry-run` diff.

use std::net::IpAddr;
use std::time::Duration;

use hosts_access::edit::ManagedLine;
use hosts_writer::{diff, Options, PolicyError, PolicyOutcome};

use crate::failure::Failure;
use crate::output::outln;

/// The managed line for a CLI address and service; anything but a plain IP address is a usage
/// error.
pub fn managed_line(ip: &str, service: &str) -> Result<ManagedLine, Failure> {
    let addr: IpAddr = ip
        .parse()
        .map_err(|_| Failure::usage(format!("{ip:?} is not an IPv4 or IPv6 address")))?;
    ManagedLine::new(service, addr).map_err(|e| Failure::usage(format!("--service: {e}")))
}

/// Write options for CLI edits.
pub fn write_options(backup: bool) -> Options {
    Options {
        backup,
        lock_timeout: Duration::from_secs(10),
        ..Options::default()
    }
}

pub fn policy_failure(e: &PolicyError) -> Failure {
    Failure::failed(e.to_string())
}

/// `--dry-run`: the unified diff the operation would write, or why there is none.
pub fn print_dry_run(out: &PolicyOutcome, line: &ManagedLine, op: &str, unchanged: &str) {
    let label = out.file.path.display().to_string();
    let d = diff::unified(
        &out.file.before,
        &out.file.after,
        &label,
        &format!("{label} (after {op})"),
        3,
    );
    crate::output::bytes(&d);
    if d.is_empty() {
        outln!("{}: {unchanged} {label}; nothing to do", line.text());
    }
}
