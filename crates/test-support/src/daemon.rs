//! knockwrap's daemon under test: its TOML config (SPEC shape), started in the server's
//! private root with NOTIFY_SOCKET pointing at a datagram socket the test owns, so that
//! readiness is the daemon's own READY=1 and not a guess. Stderr goes to a log file that is
//! printed when a test fails.
//!
//! The binary is found at run time ([`knockwrap_bin`]): `env!("CARGO_BIN_EXE_knockwrap")` is
//! set only while cargo compiles the root package's integration tests, and this crate is
//! compiled on its own. Cargo puts those tests in `target/<profile>/deps/` and the binary,
//! which it builds before running them, in `target/<profile>/`.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::net::SERVER_IF;
use crate::process::Proc;
use crate::server::ServerRoot;

/// One `[[door]]`.
#[derive(Clone, Debug)]
pub struct Door {
    pub name: String,
    pub sequence: Vec<String>,
    pub seq_timeout: String,
    pub action: String,
    pub service: String,
    pub lease: Option<String>,
    pub tcp_flags: Option<Vec<String>>,
    /// More `key = value` lines of the door, verbatim (`open_ports = ["22/tcp"]`).
    pub more: String,
}

impl Door {
    /// An allow door for SSHD with a 5 s sequence timeout, SYN-only TCP steps and no lease.
    pub fn allow(name: &str, sequence: &[&str]) -> Door {
        Door {
            name: name.to_owned(),
            sequence: sequence.iter().map(|s| (*s).to_owned()).collect(),
            seq_timeout: "5s".to_owned(),
            action: "allow".to_owned(),
            service: "SSHD".to_owned(),
            lease: None,
            tcp_flags: Some(vec!["syn".to_owned()]),
            more: String::new(),
        }
    }

    pub fn revoke(name: &str, sequence: &[&str]) -> Door {
        Door {
            action: "revoke".to_owned(),
            ..Door::allow(name, sequence)
        }
    }

    pub fn lease(mut self, lease: &str) -> Door {
        self.lease = Some(lease.to_owned());
        self
    }

    pub fn seq_timeout(mut self, timeout: &str) -> Door {
        self.seq_timeout = timeout.to_owned();
        self
    }

    fn render(&self) -> String {
        let list = |items: &[String]| {
            let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut s = format!(
            "[[door]]\nname = {:?}\nsequence = {}\nseq_timeout = {:?}\naction = {:?}\nservice = {:?}\n",
            self.name,
            list(&self.sequence),
            self.seq_timeout,
            self.action,
            self.service
        );
        if let Some(flags) = &self.tcp_flags {
            s += &format!("tcp_flags = {}\n", list(flags));
        }
        if let Some(lease) = &self.lease {
            s += &format!("lease = {lease:?}\n");
        }
        s += &self.more;
        s
    }

    /// Adds `key = value` lines to the door (`open_ports = [\"22/tcp\"]\n`).
    pub fn with(mut self, lines: &str) -> Door {
        self.more.push_str(lines);
        if !self.more.ends_with('\n') {
            self.more.push('\n');
        }
        self
    }
}

/// The whole config file. `extra` is appended to the top-level keys verbatim.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub interface: String,
    pub hosts_allow: String,
    pub state_dir: PathBuf,
    pub extra: String,
    pub doors: Vec<Door>,
}

impl DaemonConfig {
    /// Listens on the server veth and manages the private root's /etc/hosts.allow.
    pub fn new(root: &ServerRoot, doors: Vec<Door>) -> DaemonConfig {
        let state_dir = root.dir().join("state");
        std::fs::create_dir_all(&state_dir).expect("creating state_dir");
        DaemonConfig {
            interface: SERVER_IF.to_owned(),
            hosts_allow: "/etc/hosts.allow".to_owned(),
            state_dir,
            extra: String::new(),
            doors,
        }
    }

    pub fn render(&self) -> String {
        let mut s = format!(
            "interface = {:?}\nhosts_allow = {:?}\nstate_dir = {:?}\nlog = \"stderr\"\nbackup = true\n",
            self.interface,
            self.hosts_allow,
            self.state_dir.display().to_string()
        );
        s += &self.extra;
        for door in &self.doors {
            s += "\n";
            s += &door.render();
        }
        s
    }

    /// Writes the config to `<root>/knockwrap.toml` and returns that path.
    pub fn write(&self, root: &ServerRoot) -> PathBuf {
        let path = root.dir().join("knockwrap.toml");
        std::fs::write(&path, self.render()).expect("writing knockwrap.toml");
        path
    }
}

/// The binary under test: `knockwrap` in the directory above the running test executable's
/// (`target/<profile>/knockwrap` for `target/<profile>/deps/<test>-<hash>`), or `KNOCKWRAP_BIN`
/// when set (to run a suite against an earlier build and see which attacks it lets through).
pub fn knockwrap_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var("KNOCKWRAP_BIN")
            .ok()
            .filter(|b| !b.is_empty())
        {
            return bin;
        }
        let exe = std::env::current_exe().expect("the test executable's path");
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .map(|profile| profile.join("knockwrap"))
            .filter(|bin| bin.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "no knockwrap binary beside {} (run the root package's integration tests \
                     with cargo, or set KNOCKWRAP_BIN)",
                    exe.display()
                )
            });
        bin.to_str().expect("a UTF-8 target path").to_owned()
    })
}

pub struct Daemon {
    proc: Proc,
    notify: UnixDatagram,
    notify_path: PathBuf,
    pub config: PathBuf,
    /// Every sd_notify datagram received so far, in order.
    pub notices: Vec<String>,
}

impl Daemon {
    /// Starts `knockwrap run --config CONFIG` without waiting; `label` names the log file
    /// (`<root>/daemon-<label>.log`) so restarts keep separate logs.
    pub fn spawn(root: &ServerRoot, config: &Path, label: &str) -> Daemon {
        let notify_path = root.dir().join(format!("notify-{label}.sock"));
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("binding the notify socket");
        let mut cmd = root.command(knockwrap_bin());
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("RUST_BACKTRACE", "1");
        let log = root.dir().join(format!("daemon-{label}.log"));
        let proc = Proc::spawn(&format!("knockwrap daemon ({label})"), &mut cmd, &log);
        Daemon {
            proc,
            notify,
            notify_path,
            config: config.to_owned(),
            notices: Vec::new(),
        }
    }

    /// Starts the daemon and waits for READY=1; panics with the daemon's log otherwise.
    pub fn start(root: &ServerRoot, config: &Path, label: &str) -> Daemon {
        let mut daemon = Daemon::spawn(root, config, label);
        if let Err(why) = daemon.wait_notice("READY=1", Duration::from_secs(15)) {
            panic!("knockwrap daemon not ready: {why}\n{}", daemon.log());
        }
        daemon
    }

    /// Waits until a datagram containing the line `want` arrives; the instant it was read.
    pub fn wait_notice(&mut self, want: &str, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            // Queued datagrams first: a daemon that has exited may have said it on the way.
            let exited = self.proc.exited();
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = if exited.is_some() {
                Duration::from_millis(1)
            } else {
                left.clamp(Duration::from_millis(1), Duration::from_millis(50))
            };
            self.notify
                .set_read_timeout(Some(wait))
                .expect("set_read_timeout");
            if let Ok(n) = self.notify.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = text.lines().any(|l| l == want);
                self.notices.push(text);
                if hit {
                    return Ok(Instant::now());
                }
                continue;
            }
            if let Some(status) = exited {
                return Err(format!(
                    "daemon exited ({status}) without sending {want} (notices: {:?})",
                    self.notices
                ));
            }
            if left.is_zero() {
                return Err(format!(
                    "no {want} within {timeout:?} (notices so far: {:?})",
                    self.notices
                ));
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    pub fn sighup(&self) {
        self.proc.signal(libc::SIGHUP);
    }

    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    /// SIGTERM and wait; true when the daemon stopped on its own within `grace`.
    pub fn stop(&mut self, grace: Duration) -> (std::process::ExitStatus, bool) {
        self.proc.stop(grace)
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.proc.exited()
    }

    pub fn rss_kib(&self) -> u64 {
        self.proc.rss_kib()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.notify_path);
    }
}
