//! Background processes owned by a test: spawned with their output in a log file, stopped
//! (SIGTERM, then SIGKILL) and reaped on drop, their log printed when the test is failing.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
        let err = file.try_clone().expect("cloning a log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status if the process has ended (reaping it), None while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().expect("try_wait")
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.pid() as libc::pid_t;
        if pid > 0 {
            // SAFETY: plain kill(2) on a child we spawned and have not reaped yet.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Waits up to `timeout` for the process to end.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL and reap now.
    pub fn kill9(&mut self) -> ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{} survived SIGKILL", self.name))
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the status and whether SIGTERM sufficed.
    pub fn stop(&mut self, grace: Duration) -> (ExitStatus, bool) {
        if let Some(status) = self.exited() {
            return (status, true);
        }
        self.signal(libc::SIGTERM);
        match self.wait_exit(grace) {
            Some(status) => (status, true),
            None => (self.kill9(), false),
        }
    }

    /// Resident set size in KiB (VmRSS of /proc/PID/status).
    /// Resident memory of the process and of its children (knockwrap's capture process,
    /// which holds the knock table), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_else(|e| panic!("reading {}'s /proc status: {e}", self.name));
        let own = vm_rss(&status).unwrap_or_else(|| panic!("no VmRSS in {}'s status", self.name));
        own + children_of(self.pid())
            .into_iter()
            .filter_map(|c| std::fs::read_to_string(format!("/proc/{c}/status")).ok())
            .filter_map(|s| vm_rss(&s))
            .sum::<u64>()
    }
}

fn vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Live children of `parent` (from /proc/*/stat).
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let mut fields = after.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().and_then(|p| p.parse().ok());
        if ppid == Some(parent) && state != "Z" {
            out.push(pid);
        }
    }
    out
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(Duration::from_secs(3));
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "----- {} log ({}), last {} lines -----",
                self.name,
                self.log.display(),
                tail.len()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            eprintln!("----- end of {} log -----", self.name);
        }
    }
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Creates (truncating) a file, panicking with its path on error.
pub fn create(path: &Path) -> File {
    File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
}
