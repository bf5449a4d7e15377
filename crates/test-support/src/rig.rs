//! The running daemon with its namespaces that most end-to-end tests start from, and the
//! knocks they send through it.
//!
//! ```ignore
//! let rig = Rig::builder("tag")
//!     .doors(vec![Door::allow("openSSH", &["7000", "8000", "9000"])])
//!     .config("max_leases = 3\n") // more top-level keys (or doors), verbatim
//!     .hosts_allow("sshd: 198.18.0.9\n") // the private /etc/hosts.allow's first content
//!     .sshd() // also start the real sshd
//!     .start();
//! ```

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::daemon::knockwrap_bin;
use crate::process::run_ok;
use crate::{
    lines_of, tcpdmatch_verdict, wait_for_line, wait_until, Daemon, DaemonConfig, Door, NetPair,
    RawV4, ServerRoot, Sshd, Verdict,
};

/// A running daemon with its namespaces. Fields drop in order: daemon, sshd, root, net.
pub struct Rig {
    pub daemon: Daemon,
    pub sshd: Option<Sshd>,
    pub root: ServerRoot,
    pub net: NetPair,
}

/// What [`Rig::builder`] starts: doors, more config, the first hosts.allow, and sshd or not.
#[must_use = "a RigBuilder does nothing until .start()"]
pub struct RigBuilder {
    tag: String,
    doors: Vec<Door>,
    config: String,
    hosts_allow: String,
    sshd: Option<String>,
    prepare: Vec<Prepare>,
}

/// A step run on the private root before sshd and the daemon start.
type Prepare = Box<dyn FnOnce(&ServerRoot)>;

impl RigBuilder {
    /// Adds one door.
    pub fn door(mut self, door: Door) -> RigBuilder {
        self.doors.push(door);
        self
    }

    /// Adds these doors.
    pub fn doors(mut self, doors: Vec<Door>) -> RigBuilder {
        self.doors.extend(doors);
        self
    }

    /// More top-level config keys (or `[[door]]` tables), appended verbatim.
    pub fn config(mut self, extra: &str) -> RigBuilder {
        self.config.push_str(extra);
        self
    }

    /// The initial content of the private /etc/hosts.allow (empty otherwise).
    pub fn hosts_allow(mut self, text: &str) -> RigBuilder {
        self.hosts_allow = text.to_owned();
        self
    }

    /// Also starts the real sshd on the server side.
    pub fn sshd(mut self) -> RigBuilder {
        self.sshd.get_or_insert_with(String::new);
        self
    }

    /// Also starts the real sshd, with `extra` appended to its sshd_config
    /// ([`Sshd::start_with`]).
    pub fn sshd_config(mut self, extra: &str) -> RigBuilder {
        self.sshd.get_or_insert_with(String::new).push_str(extra);
        self
    }

    /// Runs `f` on the server's private root once it exists, before sshd and the daemon start
    /// (e.g. to edit a file of its /etc).
    pub fn prepare(mut self, f: impl FnOnce(&ServerRoot) + 'static) -> RigBuilder {
        self.prepare.push(Box::new(f));
        self
    }

    /// Creates the namespaces and the private root, then starts sshd (if asked) and the
    /// daemon (ready).
    pub fn start(self) -> Rig {
        let net = NetPair::new(&self.tag);
        let root = ServerRoot::new(&net);
        root.write_hosts_allow(&self.hosts_allow);
        for f in self.prepare {
            f(&root);
        }
        let sshd = self.sshd.map(|extra| Sshd::start_with(&root, &net, &extra));
        let daemon = start_daemon(&root, &net, self.doors, &self.config);
        Rig {
            daemon,
            sshd,
            root,
            net,
        }
    }
}

impl Rig {
    /// A rig named `tag` (in its namespaces' names), to be given doors and started.
    pub fn builder(tag: &str) -> RigBuilder {
        RigBuilder {
            tag: tag.to_owned(),
            doors: Vec::new(),
            config: String::new(),
            hosts_allow: String::new(),
            sshd: None,
            prepare: Vec::new(),
        }
    }

    pub fn server(&self) -> String {
        self.net.server_v4().to_string()
    }

    pub fn client(&self) -> String {
        self.net.client_v4().to_string()
    }

    pub fn hosts_allow(&self) -> String {
        self.root.read_hosts_allow()
    }

    /// Runs the real `knock` in the client namespace.
    pub fn knock(&self, args: &[&str]) {
        run_ok(self.net.client_cmd("knock").args(args));
    }

    pub fn wait_line(&self, line: &str, timeout: Duration) -> Option<Instant> {
        wait_for_line(&self.root.hosts_allow(), line, timeout)
    }

    /// Panics (with the file and the daemon log) unless `line` appears within 5 s.
    pub fn expect_line(&self, line: &str) {
        if self.wait_line(line, Duration::from_secs(5)).is_none() {
            panic!(
                "expected hosts.allow line {line:?} within 5 s; hosts.allow is {:?}\ndaemon log:\n{}",
                self.hosts_allow(),
                self.daemon.log()
            );
        }
    }

    /// Waits until `line` is gone; the instant it went.
    pub fn wait_gone(&self, line: &str, timeout: Duration) -> Option<Instant> {
        let path = self.root.hosts_allow();
        let gone = wait_until(timeout, Duration::from_millis(2), || {
            !lines_of(&path).iter().any(|l| l == line)
        });
        gone.then(Instant::now)
    }

    /// Frames the daemon's capture has received (the kernel's count, summed over its
    /// interfaces), as its last status snapshot says; 0 before the first.
    pub fn frames_received(&self) -> u64 {
        let path = self.root.dir().join("state").join("status.json");
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                v["interfaces"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|i| i["received"].as_u64()).sum())
            })
            .unwrap_or(0)
    }

    /// [`Rig::frames_received`] once it has settled (the same in two snapshots 1.2 s apart:
    /// the kernel's counters reach the status once a second), to take before a knock whose
    /// arrival [`Rig::expect_refused`] then proves.
    pub fn frames_settled(&self) -> u64 {
        let mut last = self.frames_received();
        loop {
            std::thread::sleep(Duration::from_millis(1_200));
            let now = self.frames_received();
            if now == last {
                return now;
            }
            last = now;
        }
    }

    /// Asserts that a knock arrived and was refused: the capture received at least `frames`
    /// frames more than `before` ([`Rig::frames_settled`] taken before the knock), and then,
    /// with its decisions settled, `line` is not in hosts.allow. Without the first half, a
    /// test of a refusal would pass as well when the packets never reached the daemon.
    pub fn expect_refused(&self, before: u64, frames: u64, line: &str, why: &str) {
        let arrived = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            self.frames_received() >= before + frames
        });
        assert!(
            arrived,
            "{why}: the knock never reached the daemon ({} frames received, {before} before, \
             {frames} sent); the test proves nothing\ndaemon log:\n{}",
            self.frames_received(),
            self.daemon.log()
        );
        // Frames counted are frames read: their decisions are at most a loop turn away.
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            !lines_of(&self.root.hosts_allow()).iter().any(|l| l == line),
            "{why}: {line:?} was written; hosts.allow is {:?}\ndaemon log:\n{}",
            self.hosts_allow(),
            self.daemon.log()
        );
    }

    pub fn verdict(&self, daemon: &str, addr: &str) -> Verdict {
        tcpdmatch_verdict(&self.root.etc, daemon, addr)
    }

    /// The line an SSHD door writes for the client's own IPv4 address.
    pub fn client_line(&self) -> String {
        format!("SSHD: {}", self.client())
    }

    /// Runs the real `knock` from the client's own address to the server's IPv4 address with
    /// `ports` (knock's syntax: `7000`, `8000:udp`), and expects `line` within 5 s.
    pub fn knock_and_expect(&self, ports: &[&str], line: &str) {
        let server = self.server();
        let mut args = vec![server.as_str()];
        args.extend_from_slice(ports);
        self.knock(&args);
        self.expect_line(line);
    }

    /// The honest knock: [`Rig::knock_and_expect`] with the client's own SSHD line.
    pub fn knock_opens(&self, ports: &[&str]) {
        self.knock_and_expect(ports, &self.client_line());
    }

    /// `knockwrap status --format json` for this daemon (Null while it cannot be read).
    pub fn status(&self) -> serde_json::Value {
        status_of(&self.root, &self.daemon.config)
    }

    /// The status counter `name` (`counters.<name>`), 0 while it is absent.
    pub fn counter(&self, name: &str) -> u64 {
        self.status()["counters"][name].as_u64().unwrap_or(0)
    }

    /// Knocks refused for `reason` (`counters.refused.<reason>`), 0 while there are none.
    pub fn refused(&self, reason: &str) -> u64 {
        self.status()["counters"]["refused"][reason]
            .as_u64()
            .unwrap_or(0)
    }

    /// Waits until the status counter `name` is at least `want`; its last value.
    pub fn wait_counter(&self, name: &str, want: u64, timeout: Duration) -> u64 {
        wait_counter(&self.root, &self.daemon.config, name, want, timeout)
    }
}

/// `knockwrap status --format json` for the daemon of `config`, run in the server's root (Null
/// while it cannot be read).
pub fn status_of(root: &ServerRoot, config: &Path) -> serde_json::Value {
    let out = root
        .command(knockwrap_bin())
        .args(["status", "--config"])
        .arg(config)
        .args(["--format", "json"])
        .output()
        .expect("status");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Waits until the status counter `name` of the daemon of `config` is at least `want`; its last
/// value.
pub fn wait_counter(
    root: &ServerRoot,
    config: &Path,
    name: &str,
    want: u64,
    timeout: Duration,
) -> u64 {
    let mut last = 0;
    wait_until(timeout, Duration::from_millis(100), || {
        last = status_of(root, config)["counters"][name]
            .as_u64()
            .unwrap_or(0);
        last >= want
    });
    last
}

/// Writes the daemon's config (`doors`, `extra` top-level keys or doors) into `root`, starts it
/// (ready), and warms the neighbour caches so the first knock is not an ARP exchange.
pub fn start_daemon(root: &ServerRoot, net: &NetPair, doors: Vec<Door>, extra: &str) -> Daemon {
    let mut config = DaemonConfig::new(root, doors);
    config.extra = extra.to_owned();
    let path = config.write(root);
    let daemon = Daemon::start(root, &path, "1");
    net.warm_neighbours();
    daemon
}

pub fn raw_knock(raw: &RawV4, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, ports: &[u16]) {
    for &port in ports {
        raw.syn(src, dst, sport, port);
    }
}

pub fn count_lines_with(path: &Path, prefix: &str) -> usize {
    lines_of(path)
        .iter()
        .filter(|l| l.starts_with(prefix))
        .count()
}

/// Runs `knockwrap knock SERVER --door NAME --config CONFIG` in the client namespace.
pub fn knock_door(rig: &Rig, name: &str) {
    let config = rig.daemon.config.display().to_string();
    run_ok(rig.net.client_cmd(knockwrap_bin()).args([
        "knock",
        &rig.server(),
        "--door",
        name,
        "--config",
        &config,
    ]));
}
