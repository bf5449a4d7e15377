//! The daemon's privileged root parent (see `docs/security.md`). It never reads a packet.
//! This file holds the [`Daemon`] itself: start-up (configuration, the state owner, the
//! firewall door, the leases due before READY), the serve loop (signals, clock jumps, expiry,
//! status) and reload. The rest of the parent, one concern per file:
//!
//! - [`supervise`]: starts the capture child (`super::child`), gives it its setup over the
//!   channel (`knockwrap_wire`), ends and restarts it with backoff;
//! - [`intake`]: reads what the child sends in bounded drains and checks every knock against
//!   the parent's own doors and source policy ([`judge`], [`bounds`], [`child_log`]);
//! - [`apply`]: hands the accepted decisions to the state owner (`hosts_writer::state`), which
//!   drives hosts.allow, the firewall door and the lease journal in one transaction;
//! - [`snapshot`] and [`notify`]: what `knockwrap status` and systemd see.
//!
//! A child that dies or sends a message the parent refuses is replaced, with backoff, while
//! leases keep expiring.

mod apply;
mod bounds;
mod child_log;
mod error;
mod grants;
mod intake;
mod judge;
pub mod notify;
mod snapshot;
mod supervise;

use super::shared::{clock, local, refusals};
use knockwrap_wire as wire;

use std::io::Read;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hosts_writer::progress::ProgressStore;
use knock_match::{Door, DoorKind};
use knockwrap_config::{Config, ConfigErrors};
use tracing::{error, info, warn};

use crate::cli::RunArgs;
use crate::failure::{CliResult, Failure};
use crate::logging;
use clock::Clock;
use error::DaemonError;
use hosts_writer::state::{Grant, State as Grants};
use judge::{Disabled, Generation, Judge, Judged};
use refusals::{Refusals, Throttle};
use wire::ChildStats;

use crate::sys::privilege;
use crate::sys::process;

/// Longest the loop sleeps without looking at signals.
const POLL: Duration = Duration::from_millis(200);
use super::shared::OPEN_WAIT;
use snapshot::Published;
use supervise::{Supervisor, RESTART_MIN};

pub fn run(args: RunArgs) -> CliResult {
    let config = load(&args.config).map_err(|e| Failure::usage(e.to_string()))?;
    logging::init(&config.log).map_err(|e| Failure::usage(format!("log: {e}")))?;
    let mut daemon = Daemon::start(args.config, args.interfaces, config)?;
    daemon.serve();
    Ok(ExitCode::SUCCESS)
}

fn load(path: &Path) -> Result<Config, ConfigErrors> {
    Config::load(path)
}

use ::clock::wall_ms;

fn random_seed() -> [u64; 2] {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if let Err(e) = read {
        // Without randomness the table's hash is predictable: still correct, weaker under a flood.
        warn!(error = %e, "cannot read /dev/urandom; using a time-based hash seed");
        bytes[..8].copy_from_slice(&wall_ms().to_le_bytes());
    }
    let (a, b) = bytes.split_at(8);
    [
        u64::from_le_bytes(a.try_into().unwrap_or_default()),
        u64::from_le_bytes(b.try_into().unwrap_or_default()),
    ]
}

struct Signals {
    hup: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> Result<Signals, Failure> {
        let hup = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        let reg = |sig, flag: &Arc<AtomicBool>| {
            signal_hook::flag::register(sig, Arc::clone(flag))
                .map_err(|e| Failure::failed(format!("cannot install signal handler: {e}")))
        };
        reg(signal_hook::consts::SIGHUP, &hup)?;
        reg(signal_hook::consts::SIGTERM, &term)?;
        reg(signal_hook::consts::SIGINT, &term)?;
        Ok(Signals { hup, term })
    }
}

struct Daemon {
    /// The state directory's lock, held for the daemon's life.
    _owner: hosts_writer::owner::DaemonLock,
    config_path: PathBuf,
    cli_interfaces: Vec<String>,
    config: Config,
    /// The doors with their recorded progress, by setup generation: the parent's own copy,
    /// against which every message from the child is checked, and which it updates before
    /// recording progress. The current generation's interfaces are the capture's.
    judge: Judge,
    /// Which interfaces are loopback ones, as this process reads them.
    loopback: local::LoopbackInterfaces,
    hash_seed: [u64; 2],
    /// The capture child: its account, the running one, when the next may start.
    sup: Supervisor,
    child_stats: ChildStats,
    ready: bool,
    /// Shutting down: a child that ends is not replaced.
    stopping: bool,
    grants: Grants,
    progress: ProgressStore,
    signals: Signals,
    destinations: local::Destinations,
    clock: Clock,
    refusals: Refusals,
    /// Decisions of the messages drained so far, applied together after the drain.
    pending: Vec<Judged>,
    /// Grants that found the hosts.allow lock held elsewhere, retried every loop turn.
    deferred: Vec<Grant>,
    /// The held-lock warning: at most one line per 10 s.
    lock_log: Throttle,
    /// The refused-child-message error, likewise.
    attack_log: Throttle,
    /// The warning for a knock of a setup generation no longer kept, likewise.
    stale_log: Throttle,
    /// The bound on the child's log lines.
    child_logs: child_log::ChildLogs,
    /// What `knockwrap status` shows: counts kept here, published by [`snapshot`].
    status: Published,
}

fn interfaces_of(cli: &[String], config: &Config) -> Vec<String> {
    if cli.is_empty() {
        config.interfaces.clone()
    } else {
        cli.to_vec()
    }
}

impl Daemon {
    fn start(
        config_path: PathBuf,
        cli_interfaces: Vec<String>,
        config: Config,
    ) -> Result<Daemon, Failure> {
        let signals = Signals::register()?;
        let interfaces = interfaces_of(&cli_interfaces, &config);
        if interfaces.is_empty() {
            return Err(Failure::usage(format!(
                "{}: no interface: set `interface` or pass --interface",
                config_path.display()
            )));
        }
        // The parent must be root: it writes hosts.allow and drops the capture process to
        // `user` itself (setuid needs root's CAP_SETUID/CAP_SETGID).
        let euid = rustix::process::geteuid().as_raw();
        if euid != 0 {
            return Err(Failure::failed(format!(
                "knockwrap run must start as root (running as uid {euid}): it drops the process \
                 that reads packets to an unprivileged account itself (docs/security.md)"
            )));
        }
        crate::sys::can_capture().map_err(|e| {
            Failure::failed(format!(
                "cannot open a packet socket: {e} (knockwrap run needs CAP_NET_RAW)"
            ))
        })?;
        let account = privilege::choose(config.user.as_deref())
            .map_err(|e| Failure::failed(format!("the capture process's account: {e}")))?;
        // One daemon per state directory, before anything reads or changes the state. The
        // capture child closes its copy of the descriptor first thing (`sanitize_fds`).
        let owner = hosts_writer::owner::lock_state_dir(&config.state_dir)
            .map_err(|e| Failure::failed(e.to_string()))?;
        let mut grants = grants::open(&config).map_err(|e| Failure::failed(e.to_string()))?;
        // A wall clock behind the journal's last write is wrong (an RTC-less board that booted
        // in 2001, a VM restored from an old snapshot): the expiries written before this start
        // were stamped on a truer clock and cannot be judged on this one, and a later step to
        // the truth is indistinguishable from one that must move this boot's leases. Those
        // leases end now: cut short, never stretched by years (docs/lockout-safety.md).
        if let Some(written) = grants.written_ms().filter(|&w| wall_ms() < w) {
            let behind_s = (written - wall_ms()) / 1000;
            let ended = grants
                .end_timed_leases()
                .map_err(|e| Failure::failed(format!("reconciling leases: {e}")))?;
            error!(
                behind_s,
                ended = ended.len(),
                journal_written = %hosts_writer::time::rfc3339_utc(written / 1000),
                "the wall clock is behind the lease journal's last write: it cannot judge leases \
                 from before this start, so every one with an expiry ends now; order the service \
                 after time-sync.target with a time-sync wait service enabled"
            );
            let _ = grants::log_expiries(ended);
        }
        // Leases that ran out while the daemon was down end before it reports ready: all of
        // them, a bounded batch per transaction (`State::expire`).
        let now = wall_ms() / 1000;
        while grants.wake_at().is_some_and(|t| t <= now) {
            let expired = grants
                .expire(now)
                .map_err(|e| Failure::failed(format!("reconciling leases: {e}")))?;
            let failed = expired.is_empty() || expired.iter().any(|e| e.result.is_err());
            let _ = grants::log_expiries(expired);
            if failed {
                break; // retried by the loop, after RETRY_SECS
            }
        }

        // The firewall door (when a door names `open_ports`): the table installed and its
        // admissions made to agree with the journal before READY. A firewall that cannot be
        // set up is logged and the daemon serves anyway: hosts.allow doors still work.
        if let Err(e) = install_firewall(&mut grants, &config) {
            error!(
                error = %e,
                fix = "run as root with CAP_NET_ADMIN (under systemd: the firewall-door.conf drop-in, docs/install.md) and with nft installed (Debian package nftables)",
                "the firewall door is not in place: guarded ports are NOT hidden and knocks admit nobody through it"
            );
        }

        let progress = ProgressStore::new(&config.state_dir);
        let (doors, disabled) =
            prepare_doors(&config, &progress).map_err(|e| Failure::failed(e.to_string()))?;
        let destinations = local::Destinations::new(targets(&config));
        let judge = Judge::new(Generation {
            id: 1,
            doors,
            disabled,
            interfaces,
        });
        let mut daemon = Daemon {
            _owner: owner,
            destinations,
            judge,
            loopback: local::LoopbackInterfaces::default(),
            stale_log: Throttle::default(),
            child_logs: Default::default(),
            clock: Clock::new(),
            refusals: Refusals::default(),
            pending: Vec::new(),
            deferred: Vec::new(),
            lock_log: Throttle::default(),
            attack_log: Throttle::default(),
            status: Published {
                started_at: wall_ms() / 1000,
                stats: Default::default(),
                last_error: None,
                published_at: None,
                dirty: true,
            },
            config_path,
            cli_interfaces,
            config,
            hash_seed: random_seed(),
            sup: Supervisor {
                account,
                child: None,
                restart: None,
                restart_delay: RESTART_MIN,
            },
            child_stats: ChildStats::default(),
            ready: false,
            stopping: false,
            grants,
            progress,
            signals,
        };
        daemon.spawn_child()?;
        // Ready once the child has its captures open (or is retrying them in the background).
        let deadline = Instant::now() + OPEN_WAIT + Duration::from_secs(2);
        while !daemon.ready && daemon.sup.child.is_some() && Instant::now() < deadline {
            daemon.read_child(Duration::from_millis(100));
        }
        if daemon.sup.child.is_none() {
            return Err(Failure::failed(
                "the capture process ended during start-up (see the lines above)".to_owned(),
            ));
        }
        startup_checks(&daemon.config_path);
        info!(
            config = %daemon.config_path.display(),
            hosts_allow = %daemon.config.hosts_allow.display(),
            interfaces = %daemon.judge.current().interfaces.join(","),
            doors = daemon.config.doors.len(),
            capture_user = %daemon.sup.account.name,
            "ready"
        );
        if let Err(e) = notify::notify("READY=1") {
            warn!(error = %e, "sd_notify READY=1 failed");
        }
        Ok(daemon)
    }

    fn serve(&mut self) {
        loop {
            if self.signals.term.load(Ordering::Relaxed) {
                break;
            }
            if self.signals.hup.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            if let Some(jump_ms) = self.clock.check_jump() {
                self.on_clock_jump(jump_ms);
            }
            self.maybe_restart();
            let now = self.clock.boot_ms();
            let wall = self.clock.wall_at(now);
            self.destinations.refresh();
            match self.grants.notice_changes() {
                Ok(aside) => grants::log_set_aside(aside),
                Err(e) => error!(error = %e, "cannot read the lease journal"),
            }
            match self.grants.expire(wall / 1000) {
                Ok(done) => {
                    if !done.is_empty() {
                        self.status.stats.expiries += grants::log_expiries(done);
                        self.status.dirty = true;
                    }
                }
                // hosts.allow locked elsewhere: the due leases end as soon as it is free (the
                // held lock is logged by the grant path, once per 10 s).
                Err(e) if e.lock_busy().is_some() => {}
                Err(e) => error!(error = %e, "cannot end the leases that are due; retried in 1 s"),
            }
            self.refusals.flush(now, false);
            self.child_logs.flush(now, false);
            if self.status.dirty
                || self
                    .status
                    .published_at
                    .is_none_or(|t| now.saturating_sub(t) >= 5_000)
            {
                self.publish(now);
            }
            if !self.deferred.is_empty() {
                // A grant that waited for the lock counts its lease from now, when access
                // begins: the knocker gets the whole lease, never more, and a lease that ran
                // out while it waited is not written and removed in the same instant.
                let mut waiting = std::mem::take(&mut self.deferred);
                for g in &mut waiting {
                    g.wall_ms = g.wall_ms.max(wall);
                }
                self.grant_batch(waiting);
            }
            let retry = (!self.deferred.is_empty()).then_some(100);
            let restart = self
                .sup
                .restart
                .as_ref()
                .map(|r| r.at.saturating_duration_since(Instant::now()).as_millis() as u64);
            let wake = [
                retry,
                restart,
                self.grants
                    .wake_at()
                    .map(|s| s.saturating_mul(1000).saturating_sub(wall)),
                self.refusals.deadline().map(|t| t.saturating_sub(now)),
                self.child_logs.deadline().map(|t| t.saturating_sub(now)),
            ]
            .into_iter()
            .flatten()
            .min()
            .map_or(POLL, |ms| Duration::from_millis(ms).min(POLL));
            self.read_child(wake);
            self.apply_pending();
            self.report_sink_errors();
        }
        let _ = notify::notify("STOPPING=1");
        info!("stopping");
        self.stopping = true;
        if let Some(child) = &self.sup.child {
            // The child's last refusal summaries and counters, then its exit.
            let _ = process::send(
                child.channel.as_fd(),
                &wire::stop_message(),
                Some(Duration::from_millis(200)),
            );
            let deadline = Instant::now() + Duration::from_secs(1);
            while self.sup.child.is_some() && Instant::now() < deadline {
                self.read_child(Duration::from_millis(50));
            }
        }
        // A child still there ignores its channel: ended like any other, with bounded waits.
        self.end_child("stopping");
        self.refusals.flush(self.clock.boot_ms(), true);
        self.child_logs.flush(self.clock.boot_ms(), true);
        // Records folded into one document: what an earlier build (a downgrade) can read.
        if let Err(e) = self.grants.compact_journal() {
            warn!(error = %e, "could not compact the lease journal at stop; it stays valid as it is");
        }
        let c = &self.child_stats;
        info!(
            grants = self.status.stats.grants,
            resets = c.resets,
            timeouts = c.timeouts,
            evictions = c.evictions,
            "stopped"
        );
    }

    /// The wall clock jumped: every lease keeps its remaining time (the journal's wall-clock
    /// expiries move with the jump). The child follows the jump for TOTP by itself.
    fn on_clock_jump(&mut self, jump_ms: i64) {
        let secs = (jump_ms as f64 / 1000.0).round() as i64;
        match self.grants.shift_expiries(secs) {
            Ok(moved) => warn!(
                jump_s = secs,
                leases_moved = moved,
                "the wall clock jumped; lease expiries moved with it so each lease keeps its remaining time"
            ),
            Err(e) => error!(jump_s = secs, error = %e, "the wall clock jumped and the lease journal could not follow"),
        }
    }

    /// Installs the whole new configuration or keeps the whole old one.
    fn reload(&mut self) {
        let _ = notify::notify("RELOADING=1");
        info!(config = %self.config_path.display(), "reloading");
        match self.try_reload() {
            Ok(()) => info!(doors = self.config.doors.len(), "reloaded"),
            Err(e) => {
                for line in e.to_string().lines() {
                    error!(error = %line, "reload refused; the previous configuration keeps serving");
                }
            }
        }
        let _ = notify::notify("READY=1");
    }

    /// Parses and checks the new configuration here; the child gets the result (doors,
    /// interfaces) over the channel and keeps the progress of sources half-way through an
    /// unchanged door.
    fn try_reload(&mut self) -> Result<(), DaemonError> {
        let config = load(&self.config_path)?;
        let interfaces = interfaces_of(&self.cli_interfaces, &config);
        if interfaces.is_empty() {
            return Err(DaemonError::NoInterface(self.config_path.clone()));
        }
        let grants = if config.hosts_allow != self.config.hosts_allow
            || config.state_dir != self.config.state_dir
            || config.backup != self.config.backup
        {
            Some(grants::open(&config)?)
        } else {
            None
        };
        let progress = ProgressStore::new(&config.state_dir);
        let (doors, disabled) = prepare_doors(&config, &progress)?;
        // Everything is built: install it all at once.
        if let Some(g) = grants {
            self.grants = g;
        }
        if let Err(e) = install_firewall(&mut self.grants, &config) {
            self.status.last_error = Some(format!("firewall: {e}"));
            error!(error = %e, "the firewall door is not in place after the reload: guarded ports are NOT hidden");
        }
        if config.log != self.config.log {
            warn!("the `log` setting changed: it takes effect at the next restart");
        }
        if config.user != self.config.user {
            warn!("the `user` setting changed: it takes effect at the next restart");
        }
        self.progress = progress;
        // The doors the child may still be matching with stay until it says it took these.
        self.judge.install(Generation {
            id: 0,
            doors,
            disabled,
            interfaces,
        });
        self.status.dirty = true;
        self.destinations = local::Destinations::new(targets(&config));
        self.config = config;
        if let Some(child) = &self.sup.child {
            if let Err(e) = self.send_setup(child) {
                self.end_child(&e.to_string());
            }
        }
        Ok(())
    }
}

/// Sets up the firewall door for `config` as a sink of the state owner: the table ensured, its
/// admissions reconciled with the journal both ways, and the sink installed (any earlier one
/// removed). Nothing when no door names `open_ports`.
fn install_firewall(grants: &mut Grants, config: &Config) -> Result<(), String> {
    grants.clear_sinks();
    let Some(sink) =
        crate::firewall::FirewallSink::for_config(config).map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let ensured = sink.ensure().map_err(|e| e.to_string())?;
    let (removed, admitted) = sink
        .reconcile(grants.leases(), wall_ms())
        .map_err(|e| e.to_string())?;
    info!(
        table = %sink.table(),
        ensured = ?ensured,
        guarded = %knock_match::PortSpec::join(&config.guarded_ports(), ","),
        stray_removed = removed,
        leases_admitted = admitted,
        "firewall door in place"
    );
    grants.add_sink(Box::new(sink));
    Ok(())
}

/// `knockwrap doctor`'s checks at start-up: each failure or warning is logged with its fix,
/// and none of them keeps the daemon from starting (a wrong hosts.deny must not also take
/// the way in away).
fn startup_checks(config_path: &Path) {
    for check in crate::doctor::run(config_path, None) {
        let fix = check.fix.as_deref().unwrap_or("");
        match check.status {
            crate::doctor::Status::Ok => {}
            crate::doctor::Status::Fail => {
                warn!(check = %check.text, fix = %fix, "start-up check failed (knockwrap doctor)")
            }
            crate::doctor::Status::Warn => {
                warn!(check = %check.text, advice = %fix, "start-up check (knockwrap doctor)")
            }
        }
    }
}

/// The doors for `config`, with the recorded one-time/TOTP progress, checked as the matcher
/// checks them. A progress file that cannot be trusted disables its door only (never reusing
/// a sequence), logged with what to do; every other door serves. Only an invalid door is an
/// error. Also returns the doors disabled because their progress cannot be trusted, with why.
fn prepare_doors(
    config: &Config,
    progress: &ProgressStore,
) -> Result<(Vec<Door>, Disabled), DaemonError> {
    let mut doors = config.doors();
    let errors = progress.apply(&mut doors);
    let mut disabled = Vec::new();
    for e in &errors {
        let (door, path) = match e {
            hosts_writer::progress::ProgressError::Io { door, path, .. }
            | hosts_writer::progress::ProgressError::Invalid { door, path, .. } => (door, path),
        };
        error!(
            door = %door, error = %e,
            fix = %format!("check the door's files, then delete {} to start its progress over", path.display()),
            "door disabled until an operator acts: its progress cannot be trusted"
        );
        disabled.push((door.clone(), e.to_string()));
    }
    for d in &doors {
        d.validate()?;
        if matches!(&d.kind, DoorKind::OneTime { sequences, next } if *next >= sequences.len())
            && !disabled.iter().any(|(name, _)| *name == d.name)
        {
            error!(door = %d.name, "one-time sequences exhausted: door disabled");
        }
    }
    Ok((doors, disabled))
}

/// The doors' explicit `target` addresses.
fn targets(config: &Config) -> Vec<IpAddr> {
    config.doors.iter().filter_map(|d| d.door.target).collect()
}
