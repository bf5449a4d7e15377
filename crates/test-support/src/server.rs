//! The server side's private root: a copy of /etc bind-mounted (the directory, never a file:
//! the writer's rename replaces the file's inode) over /etc in a mount namespace that also
//! sits in the server network namespace. A holder process keeps that mount namespace alive;
//! the daemon, sshd and knockd all enter it with nsenter, so they see the same /etc.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::net::NetPair;
use crate::process::{run_ok, Proc};
use crate::wait_until;

pub struct ServerRoot {
    holder: Proc,
    /// Host-side path of the private /etc (the same inode tree the server side sees as /etc).
    pub etc: PathBuf,
    dir: TempDir,
}

impl ServerRoot {
    /// hosts.deny is `sshd: ALL`, hosts.allow starts empty, and hosts lookups use files only
    /// (libwrap's refusal path resolves the client's name; no DNS exists in the namespace).
    pub fn new(net: &NetPair) -> ServerRoot {
        let dir = tempfile::Builder::new()
            .prefix("kw-e2e-")
            .tempdir()
            .expect("creating a temp dir");
        let etc = dir.path().join("etc");
        run_ok(Command::new("cp").arg("-a").arg("/etc").arg(&etc));
        std::fs::write(etc.join("hosts.deny"), "sshd: ALL\n").expect("writing hosts.deny");
        std::fs::write(etc.join("hosts.allow"), "").expect("writing hosts.allow");
        let nss = std::fs::read_to_string(etc.join("nsswitch.conf")).unwrap_or_default();
        let nss: String = nss
            .lines()
            .filter(|l| !l.starts_with("hosts:"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(etc.join("nsswitch.conf"), nss + "hosts: files\n")
            .expect("writing nsswitch.conf");

        let mut cmd = net.server_cmd("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$1\" /etc && exec sleep infinity")
            .arg("sh")
            .arg(&etc);
        let mut holder = Proc::spawn("mount-ns holder", &mut cmd, &dir.path().join("holder.log"));
        // `ip netns exec` and `unshare` exec in place, so the pid becomes `sleep` once mounted.
        let pid = holder.pid();
        let up = wait_until(Duration::from_secs(10), Duration::from_millis(2), || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n")
        });
        if !up || holder.exited().is_some() {
            panic!("mount namespace holder did not come up: {}", holder.log());
        }
        ServerRoot { holder, etc, dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn holder_pid(&self) -> u32 {
        self.holder.pid()
    }

    /// `program` run in the server's network namespace and private mount namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.holder.pid().to_string())
            .args(["-m", "-n", "--", program]);
        cmd
    }

    /// Host-side path of the /etc/hosts.allow the server side reads.
    pub fn hosts_allow(&self) -> PathBuf {
        self.etc.join("hosts.allow")
    }

    pub fn read_hosts_allow(&self) -> String {
        std::fs::read_to_string(self.hosts_allow()).unwrap_or_default()
    }

    pub fn write_hosts_allow(&self, text: &str) {
        std::fs::write(self.hosts_allow(), text).expect("writing hosts.allow");
    }

    /// What the server side sees at /etc/hosts.allow, read from inside the mount namespace.
    pub fn hosts_allow_inside(&self) -> String {
        let out = run_ok(self.command("cat").arg("/etc/hosts.allow"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Debian's sshd (linked with libwrap) on port 22 of the server's two addresses.
pub struct Sshd {
    proc: Proc,
}

impl Sshd {
    pub fn start(root: &ServerRoot, net: &NetPair) -> Sshd {
        Sshd::start_with(root, net, "")
    }

    /// As [`Sshd::start`], with `extra` appended to sshd_config (e.g. `AuthorizedKeysFile`).
    pub fn start_with(root: &ServerRoot, net: &NetPair, extra: &str) -> Sshd {
        let dir = root.dir();
        let key = dir.join("ssh_host_ed25519_key");
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key),
        );
        let config = dir.join("sshd_config");
        let v4 = SocketAddr::new(IpAddr::V4(net.server_v4()), 22);
        let v6 = SocketAddr::new(IpAddr::V6(net.server_v6()), 22);
        std::fs::write(
            &config,
            format!(
                "ListenAddress {v4}\nListenAddress {v6}\nHostKey {}\nPidFile none\n\
                 UsePAM no\nUseDNS no\nLogLevel VERBOSE\n{extra}",
                key.display()
            ),
        )
        .expect("writing sshd_config");
        // The privilege-separation directory; Debian's package creates it at boot.
        std::fs::create_dir_all("/run/sshd").expect("creating /run/sshd");
        let mut cmd = root.command("/usr/sbin/sshd");
        cmd.args(["-D", "-e", "-f"]).arg(&config);
        let mut proc = Proc::spawn("sshd", &mut cmd, &dir.join("sshd.log"));
        let listening = |log: &str, a: &SocketAddr| {
            log.contains(&format!("Server listening on {} port 22.", a.ip()))
        };
        let up = wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
            let log = proc.log();
            listening(&log, &v4) && listening(&log, &v6)
        });
        if !up || proc.exited().is_some() {
            panic!("sshd did not start listening:\n{}", proc.log());
        }
        Sshd { proc }
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}
