//! `knockwrap connect HOST [PORT]`: knock every address of HOST, connect to HOST:PORT at one
//! of the addresses just knocked as soon as the door opens, and relay standard input and
//! output to the connection, so that `ssh -o ProxyCommand='knockwrap connect %h %p' bastion`
//! knocks and logs in in one step.
//!
//! This file holds the arguments (the port and `--timeout`, over the profile target's) and
//! what goes to standard error; the knock is [`crate::client`]'s, and when a connection counts
//! as open, how attempts are paced and what a failure says is [`crate::client::connect`]'s.

use std::io::{self, Write};
use std::net::IpAddr;
use std::time::Duration;

use knockwrap_config::client::{DEFAULT_CONNECT_PORT, DEFAULT_CONNECT_TIMEOUT};
use knockwrap_config::parse_duration;

use crate::cli::ConnectArgs;
use crate::client::{self, Source};
use crate::failure::{Failure, Outcome};

/// Writes one line to standard error, for `connect`, whose stdout is the connection.
fn say_err(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

pub fn run(args: ConnectArgs) -> Outcome {
    let plan = client::plan(&Source {
        cmd: "connect",
        host: &args.host,
        ports: &args.steps,
        opts: &args.knock,
    })?;
    let port = args
        .port
        .or(plan.target.as_ref().map(|t| t.port))
        .unwrap_or(DEFAULT_CONNECT_PORT);
    let timeout = match &args.timeout {
        Some(t) => parse_timeout(t)?,
        None => plan
            .target
            .as_ref()
            .map_or(DEFAULT_CONNECT_TIMEOUT, |t| t.connect_timeout),
    };
    // Standard output is the connection: everything else goes to standard error.
    let verbose = |line: &str| say_err(&format!("knockwrap: {line}"));
    let log: Option<&(dyn Fn(&str) + Sync)> = if args.knock.verbose {
        Some(&verbose)
    } else {
        None
    };

    let knocked = client::knock(&plan, &args.knock, log)?;
    let n = plan.steps.len();
    let mut addrs: Vec<IpAddr> = Vec::new();
    let mut knock_lines = Vec::new();
    for k in &knocked {
        knock_lines.push(k.summary(n));
        if let Some(log) = log {
            log(&k.summary(n));
        }
        if k.result.is_ok() && !addrs.contains(&k.ip) {
            addrs.push(k.ip);
        }
    }
    let what = format!(
        "knocked with the sequence from {} ({n} knock{}):\n    {}",
        plan.origin,
        if n == 1 { "" } else { "s" },
        knock_lines.join("\n    ")
    );
    if addrs.is_empty() {
        return Err(Failure::failed(format!(
            "connect {} port {port}: no address could be knocked, so none was tried.\n  {what}",
            args.host
        )));
    }
    client::connect::open_and_relay(
        &args.host,
        &addrs,
        port,
        timeout,
        args.no_banner,
        &what,
        log,
    )
}

/// A duration for `--timeout`: "1500ms", or integer seconds / "5s" / "1m" as in the config.
fn parse_timeout(text: &str) -> Result<Duration, Failure> {
    let t = text.trim();
    let d = match t.strip_suffix("ms") {
        Some(ms) if !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()) => {
            ms.parse().ok().map(Duration::from_millis)
        }
        _ => parse_duration(t),
    };
    match d {
        Some(d) if !d.is_zero() && d <= Duration::from_secs(300) => Ok(d),
        _ => Err(Failure::usage(format!(
            "connect: --timeout `{text}` is not a duration from 1ms to 300s (e.g. \"5s\", \
             \"1500ms\")"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(
            parse_timeout("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_timeout("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_timeout("1m").unwrap(), Duration::from_secs(60));
        for bad in ["0", "0ms", "ms", "1.5s", "10m", "soon"] {
            assert_eq!(
                parse_timeout(bad).unwrap_err().code,
                crate::failure::USAGE,
                "{bad}"
            );
        }
    }
}
