//! A booted container for the tests that need systemd itself: a real systemd as PID 1 of a
//! `systemd-nspawn` container over a read-only view of the host's / with a throw-away tmpfs
//! overlay, in the server network namespace of a [`NetPair`](super::NetPair). Commands run in
//! it through `nsenter`; its files are reached from the host through `/proc/LEADER/root`.
//!
//! Nothing on the host is written: the container's writes land in its overlay, the bind mount
//! of / lives in a private mount namespace, and the container is powered off on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::process::Proc;
use super::wait_until;
use crate::{require_root_or_skip, skip_or_fail};

/// Whether `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd` with no stdin and returns its output, whatever its status.
pub fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// stdout then stderr of `out`, as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether test `name` can boot a container here: root and the container tools.
pub fn can_boot(name: &str) -> bool {
    if !require_root_or_skip(name) {
        return false;
    }
    for tool in ["systemd-nspawn", "systemd-run", "nsenter", "unshare"] {
        if !have(tool) && !skip_or_fail(name, &format!("{tool} (Debian: systemd-container)")) {
            return false;
        }
    }
    true
}

/// A booted container: systemd as PID 1 over a read-only view of / with a tmpfs overlay, in
/// the network namespace `netns`, up to basic.target (so none of the host's enabled services,
/// sshd among them, runs in it). Powered off on drop.
pub struct Container {
    nspawn: Proc,
    /// Host pid of the container's PID 1.
    pub leader: u32,
}

impl Container {
    /// `dir` holds the nspawn log and the (empty) mount point of the bind mount of /.
    pub fn boot(netns: &str, dir: &Path) -> Result<Container, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let log = dir.join("nspawn.log");
        let machine = format!(
            "kw-unit-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let root = dir.join("root");
        std::fs::create_dir(&root).expect("creating the container's mount point");
        let script = r#"set -e
root=$3
mount --bind / "$root"
mount -o remount,bind,ro "$root"
exec systemd-nspawn --quiet --directory="$root" --volatile=overlay --boot \
    --register=no --keep-unit --machine="$1" --network-namespace-path="/run/netns/$2" \
    -- --unit=basic.target"#;
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&machine)
        .arg(netns)
        .arg(&root);
        let mut nspawn = Proc::spawn("systemd-nspawn", &mut cmd, &log);
        // unshare and sh exec in place: the pid is nspawn's, and its child is the container's
        // PID 1.
        let pid = nspawn.pid();
        let mut leader = 0;
        let up = wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
            // nspawn forks an intermediate child before the container's PID 1: the leader is
            // the child that runs systemd.
            leader = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .find(|c| {
                    std::fs::read_to_string(format!("/proc/{c}/comm"))
                        .is_ok_and(|comm| comm == "systemd\n")
                })
                .unwrap_or(0);
            leader != 0
                && Command::new("nsenter")
                    .arg("-t")
                    .arg(leader.to_string())
                    .args(["-a", "systemctl", "is-active", "--quiet", "basic.target"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        });
        if !up || nspawn.exited().is_some() {
            return Err(format!("the container did not boot:\n{}", nspawn.log()));
        }
        Ok(Container { nspawn, leader })
    }

    /// `args` run inside the container (all its namespaces).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.leader.to_string())
            .arg("-a")
            .arg("--")
            .args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        output(&mut self.cmd(args))
    }

    /// Runs `args` inside the container and panics with their output unless they succeed.
    pub fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} in the container failed ({}): {}",
            out.status,
            text(&out)
        );
        out
    }

    /// A path of the container's file system, seen from the host.
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.leader))
    }

    /// The unit's journal, messages only.
    pub fn journal(&self, unit: &str) -> String {
        text(&self.run(&["journalctl", "--no-pager", "-o", "cat", "-u", unit]))
    }

    /// `systemctl show --value -p PROPERTY UNIT`.
    pub fn show(&self, unit: &str, property: &str) -> String {
        let out = self.run(&["systemctl", "show", "--value", "-p", property, unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM to nspawn powers the container off; Proc's drop falls back to SIGKILL.
        self.nspawn.stop(Duration::from_secs(20));
    }
}
