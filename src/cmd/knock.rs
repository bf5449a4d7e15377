//! `knockwrap knock`: the knock client, compatible with knockd's `knock`; its arguments and
//! its result lines. The knocking itself is [`crate::client`]'s.
//!
//! Like `knock`, a TCP step is a non-blocking `connect` closed at once (one SYN on the wire,
//! no handshake completed by us) and a UDP step is one datagram of one zero byte. `-u` makes
//! every step UDP, `-d MS` waits between steps, `-4`/`-6` pick the address family. Unlike
//! `knock`, a name is resolved to every A and AAAA record and each address gets the whole
//! sequence, the addresses of one name in parallel (a dual-stack or round-robin bastion is
//! open whichever address ssh then picks), with one result line per address; several
//! comma-separated hosts get it one host after the other; an unknown protocol suffix is an
//! error rather than TCP; and there is no wait after the last step.
//!
//! Where the sequence comes from (a [`Plan`]): PORTs on the command line; `--door NAME
//! --config PATH` (a static door's steps, a one-time door's next unused sequence, a TOTP
//! door's sequence for this moment); or, with neither, the client profile's target that HOST
//! names (`knockwrap knock prod`), see `knockwrap_config::client`.

use crate::cli::KnockArgs;
use crate::client::{self, Source};
use crate::failure::{Exit, Failure, Outcome};

/// Writes one line to standard output; a closed or full stdout is not worth a panic.
fn say(line: &str) {
    crate::output::print(format_args!("{line}\n"));
}

pub fn run(args: KnockArgs) -> Outcome {
    let plan = client::plan(&Source {
        cmd: "knock",
        host: &args.host,
        ports: &args.ports,
        opts: &args.knock,
    })?;
    let verbose = |line: &str| say(line);
    let log: Option<&(dyn Fn(&str) + Sync)> = if args.knock.verbose {
        Some(&verbose)
    } else {
        None
    };
    let results = client::knock(&plan, &args.knock, log)?;
    let mut failed = Vec::new();
    for r in &results {
        match &r.result {
            Ok(()) => say(&r.summary(plan.steps.len())),
            Err(_) => failed.push(r.summary(plan.steps.len())),
        }
    }
    if failed.is_empty() {
        Ok(Exit::Success)
    } else {
        Err(Failure::failed(format!(
            "knock: {} of {} addresses not knocked:\n  {}",
            failed.len(),
            results.len(),
            failed.join("\n  ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::plan::door_steps;
    use crate::client::plan::tests::{args, door_config};
    use crate::failure::{FAILED, USAGE};
    use clock::wall_ms;
    use knock_capture::{Capture, FilterSpec};
    use knock_match::Proto;
    use std::time::{Duration, Instant};
    use test_support::net::{NetPair, SERVER_IF};

    #[test]
    fn usage_errors() {
        assert_eq!(run(args("198.18.0.1", &[])).unwrap_err().code, USAGE);
        let mut a = args("198.18.0.1", &[]);
        a.knock.door = Some("openSSH".into());
        a.knock.config = Some("/nonexistent/knockwrap.toml".into());
        assert_eq!(run(a).unwrap_err().code, USAGE);
        let mut a = args("198.18.0.1", &["7000"]);
        a.knock.ipv6 = true;
        assert_eq!(run(a).unwrap_err().code, FAILED);
    }

    /// (proto, port, pure SYN) in arrival order, and the receipt times.
    fn capture_knocks(
        pair: &NetPair,
        send: impl FnOnce() + Send,
    ) -> (Vec<(Proto, u16, bool)>, Vec<u64>) {
        let mut spec = FilterSpec::new();
        spec.udp(1..=65535);
        spec.pass_pure_syn_any_port = true;
        let mut cap = pair.server.run(|| Capture::open(SERVER_IF, &spec)).unwrap();
        // The kernel turns receive timestamps on from a work queue shortly after the first
        // socket asks: give it that moment so the first knock is stamped too.
        std::thread::sleep(Duration::from_millis(100));
        pair.client.run(send);
        let (mut seen, mut times) = (Vec::new(), Vec::new());
        let mut last = Instant::now();
        while last.elapsed() < Duration::from_millis(500) {
            if let Some(e) = cap.next_event().unwrap() {
                seen.push((e.proto, e.dport, e.flags.is_pure_syn()));
                times.push(e.time_ms);
                last = Instant::now();
            }
        }
        (seen, times)
    }

    #[test]
    fn knocks_on_the_wire_match_the_real_knock_client() {
        test_support::skip_unless_root!("ip");
        let pair = NetPair::new("knock");
        let server = pair.server_v4().to_string();
        let mut a = args(
            &format!("{server},{}", pair.server_v6()),
            &["7000", "8000:udp", "9000"],
        );
        a.knock.delay_ms = Some(30);
        let (ours, times) = capture_knocks(&pair, || {
            run(a).unwrap();
        });
        let one = [
            (Proto::Tcp, 7000, true),
            (Proto::Udp, 8000, false),
            (Proto::Tcp, 9000, true),
        ];
        assert_eq!(ours, [one, one].concat());
        for w in times.windows(2) {
            assert!(w[1] >= w[0] + 25, "-d 30 between knocks: {times:?}");
        }
        let mut a = args(&server, &["7000", "8000:tcp"]);
        a.knock.udp = true;
        let (ours_u, _) = capture_knocks(&pair, || {
            run(a).unwrap();
        });
        assert_eq!(
            ours_u,
            [(Proto::Udp, 7000, false), (Proto::Udp, 8000, false)]
        );

        // --door: the TOTP door's current sequence, as TCP SYNs.
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(&server, &[]);
        a.knock.door = Some("totp".into());
        a.knock.config = Some(door_config(dir.path()));
        let before = wall_ms();
        let (ours_d, _) = capture_knocks(&pair, || {
            run(a).unwrap();
        });
        let after = wall_ms();
        let path = dir.path().join("knockwrap.toml");
        let expect: Vec<_> = [before, after]
            .iter()
            .map(|t| {
                door_steps("totp", &path, *t)
                    .unwrap()
                    .iter()
                    .map(|s| (s.proto, s.port, true))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(expect.contains(&ours_d), "{ours_d:?} not in {expect:?}");

        // The reference client puts the same packets on the wire. Without it the comparison says
        // SKIPPED (and fails where skips are forbidden).
        if std::process::Command::new("knock")
            .arg("-V")
            .output()
            .is_err()
        {
            test_support::skip_or_fail(test_support::test_name!(), "knock (Debian: knockd)");
            return;
        }
        let (theirs, _) = capture_knocks(&pair, || {
            for host in [server.clone(), pair.server_v6().to_string()] {
                let st = std::process::Command::new("knock")
                    .args([host.as_str(), "7000", "8000:udp", "9000"])
                    .status()
                    .unwrap();
                assert!(st.success());
            }
        });
        assert_eq!(theirs, ours);
    }
}
