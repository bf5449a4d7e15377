//! Supervision of the capture child, as the root parent does it: the socketpair and fork that
//! start it, the setup it is given (doors, interfaces, matcher options of the current
//! generation), its end (channel closed, SIGKILL as its own account, bounded reap) and its
//! restart with backoff. Leases keep expiring while no child runs; only new knocks wait.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use knock_match::MatcherOptions;
use knockwrap_wire as wire;
use tracing::{error, info, warn};
use wire::Setup;

use super::error::DaemonError;
use super::Daemon;
use crate::daemon::child;
use crate::failure::Failure;
use crate::sys::{process, sandbox};

/// The capture child as the parent sees it.
/// The capture child as the parent supervises it.
pub(super) struct Supervisor {
    /// The account the child runs as (and is killed as, without CAP_KILL).
    pub(super) account: crate::sys::privilege::Account,
    pub(super) child: Option<ChildProcess>,
    pub(super) restart: Option<Restart>,
    /// Delay before the next restart; doubles per quick death, back to the minimum after a
    /// child that ran for a while.
    pub(super) restart_delay: Duration,
}

pub(super) struct ChildProcess {
    pub(super) pid: libc::pid_t,
    pub(super) channel: OwnedFd,
    pub(super) started: Instant,
}

/// When the next child may start, after one died or was killed.
pub(super) struct Restart {
    pub(super) at: Instant,
    pub(super) delay: Duration,
}

/// First and longest wait before starting a new capture child.
pub(super) const RESTART_MIN: Duration = Duration::from_millis(500);
pub(super) const RESTART_MAX: Duration = Duration::from_secs(30);
/// A child that lived this long resets the restart delay.
pub(super) const RESTART_RESET: Duration = Duration::from_secs(60);

impl Daemon {
    pub(super) fn setup(&self) -> Setup {
        let g = self.judge.current();
        Setup {
            generation: g.id,
            doors: g.doors.clone(),
            interfaces: g.interfaces.clone(),
            options: MatcherOptions {
                max_sources: self.config.max_sources,
                hash_seed: self.hash_seed,
            },
        }
    }

    pub(super) fn send_setup(&self, child: &ChildProcess) -> Result<(), DaemonError> {
        for f in wire::setup_fragments(&self.setup())? {
            process::send(child.channel.as_fd(), &f, Some(Duration::from_secs(2)))
                .map_err(DaemonError::Channel)?;
        }
        Ok(())
    }

    /// Starts the capture child: a socketpair, fork, and the setup over the channel. The
    /// parent runs no threads, so fork(2) is safe here.
    pub(super) fn spawn_child(&mut self) -> Result<(), Failure> {
        let (mine, theirs) =
            process::seqpacket_pair().map_err(|e| Failure::failed(format!("socketpair: {e}")))?;
        if let Some(n) = process::thread_count().filter(|&n| n > 1) {
            warn!(
                threads = n,
                "forking the capture process from a multi-threaded parent"
            );
        }
        // SAFETY: the parent is single-threaded (checked above; it starts no threads).
        match unsafe { process::fork() }.map_err(|e| Failure::failed(format!("fork: {e}")))? {
            process::Forked::Child => {
                drop(mine);
                child::main(theirs, &self.sup.account, sandbox::Mode::Kill)
            }
            process::Forked::Parent(pid) => {
                drop(theirs);
                // The new child gets the current setup and knows no other.
                self.judge.child_started();
                self.pending.clear();
                let child = ChildProcess {
                    pid,
                    channel: mine,
                    started: Instant::now(),
                };
                if let Err(e) = self.send_setup(&child) {
                    error!(error = %e, "capture process not set up; restarting it");
                    self.sup.child = Some(child);
                    self.end_child("not set up");
                    return Ok(());
                }
                self.sup.child = Some(child);
                Ok(())
            }
        }
    }

    /// The child is gone or must go: kill, reap, log, and schedule a new one with backoff.
    /// Leases keep expiring meanwhile; only new knocks wait.
    pub(super) fn end_child(&mut self, why: &str) {
        let Some(child) = self.sup.child.take() else {
            return;
        };
        let ChildProcess {
            pid,
            channel,
            started,
        } = child;
        // Closing the channel ends an honest child by itself; SIGKILL ends any child, sent as
        // the child's own account where this process lacks CAP_KILL (the unit withholds it).
        // The wait is bounded: a child that still did not end dies with this process (its
        // parent-death signal), never blocks it.
        drop(channel);
        if let Err(e) = process::kill_child(pid, self.sup.account.uid) {
            error!(pid, error = %e, "cannot signal the capture process");
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let exit = loop {
            match process::reap(pid, false) {
                Some(e) => break Some(e),
                None if Instant::now() >= deadline => break None,
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        if exit.is_none() {
            error!(
                pid,
                "the capture process did not end within 2 s of SIGKILL; it ends with this process"
            );
        }
        if self.stopping {
            return;
        }
        if started.elapsed() >= RESTART_RESET {
            self.sup.restart_delay = RESTART_MIN;
        }
        let delay = self.sup.restart_delay;
        self.sup.restart_delay = (self.sup.restart_delay * 2).min(RESTART_MAX);
        self.sup.restart = Some(Restart {
            at: Instant::now() + delay,
            delay,
        });
        self.status.stats.child_restarts += 1;
        self.status.dirty = true;
        error!(
            pid,
            why,
            ended = %exit.map_or_else(|| "unknown".to_owned(), |e| e.to_string()),
            restart_in_ms = delay.as_millis() as u64,
            "capture process ended; starting a new one (leases keep expiring meanwhile)"
        );
    }

    pub(super) fn maybe_restart(&mut self) {
        if self.sup.child.is_some()
            || self
                .sup
                .restart
                .as_ref()
                .is_none_or(|r| Instant::now() < r.at)
        {
            return;
        }
        let waited = self.sup.restart.take().map(|r| r.delay);
        if let Err(e) = self.spawn_child() {
            error!(error = %e.message, "cannot start the capture process; retrying");
            self.sup.restart = Some(Restart {
                at: Instant::now() + self.sup.restart_delay,
                delay: self.sup.restart_delay,
            });
        } else {
            info!(
                after_ms = waited.map(|d| d.as_millis() as u64),
                "capture process restarted"
            );
        }
    }
}
