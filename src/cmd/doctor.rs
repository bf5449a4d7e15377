//! `knockwrap doctor [--config PATH] [--sshd PATH]`: prints one line per check of
//! `crate::doctor` (✓ ok, ✗ failure, ! warning), each failure followed by its fix. Exit 1 when
//! any check failed, else 0.

use crate::cli::DoctorArgs;
use crate::doctor::{self, Status};
use crate::failure::{Exit, Outcome};
use crate::output::outln;

pub fn run(args: DoctorArgs) -> Outcome {
    let checks = doctor::run(&args.config, args.sshd.as_deref());
    for c in &checks {
        outln!("{} {}", c.status.mark(), c.text);
        match (&c.fix, c.status) {
            (Some(fix), Status::Fail) => outln!("    fix: {fix}"),
            (Some(hint), Status::Warn) => outln!("    hint: {hint}"),
            _ => {}
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    outln!(
        "{} check{}: {failed} failed, {warned} warning{}",
        checks.len(),
        if checks.len() == 1 { "" } else { "s" },
        if warned == 1 { "" } else { "s" }
    );
    Ok(if failed > 0 {
        Exit::Failed
    } else {
        Exit::Success
    })
}
