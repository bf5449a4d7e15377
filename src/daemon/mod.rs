//! `knockwrap run`: the daemon. Wires capture threads to the matcher, matcher decisions to the
//! lease journal and the writer, and time to lease expiry; handles SIGHUP (reload) and
//! SIGTERM/SIGINT (stop), and tells systemd where it stands (sd_notify).

mod clock;
mod grants;
mod local;
pub mod notify;
mod refusals;
mod snapshot;

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use knock_capture::{spawn_capture_thread, CaptureThread, EventBatch, FilterSpec, SharedFilter};
use knock_match::{Action, Consume, Decision, Door, KnockEvent, Matcher, MatcherOptions};
use knockwrap_config::progress::ProgressStore;
use knockwrap_config::{Config, ConfigErrors};
use tracing::{error, info, warn};

use crate::cli::RunArgs;
use crate::failure::{CliResult, Failure};
use crate::logging;
use clock::Clock;
use hosts_writer::state::{Applied, Grant, State as Grants};
use knock_match::{check_source, Refusal};
use refusals::Refusals;

/// Longest the loop sleeps without looking at signals.
const POLL: Duration = Duration::from_millis(200);
/// Queue between capture threads and the loop, in batches (one per capture wake-up, at most
/// `knock_capture::MAX_BATCH` events each). When it is full a capture thread waits, so
/// overload shows up as the kernel's drop counter (logged by the capture thread).
const QUEUE: usize = 256;
/// Most events handled between two looks at timers and signals.
const DRAIN_BATCH: usize = 4096;
/// How long start-up waits for each interface's capture to open before reporting ready.
const OPEN_WAIT: Duration = Duration::from_secs(3);

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

use hosts_writer::time::now_ms;

fn random_seed() -> [u64; 2] {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if let Err(e) = read {
        // Without randomness the table's hash is predictable: still correct, weaker under a flood.
        warn!(error = %e, "cannot read /dev/urandom; using a time-based hash seed");
        bytes[..8].copy_from_slice(&now_ms().to_le_bytes());
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

struct Captures {
    interfaces: Vec<String>,
    threads: Vec<CaptureThread>,
    stop: Arc<AtomicBool>,
}

impl Captures {
    fn spawn(
        interfaces: &[String],
        filter: &SharedFilter,
        tx: &SyncSender<EventBatch>,
    ) -> Result<Captures, Failure> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for name in interfaces {
            let t = spawn_capture_thread(name, filter.clone(), tx.clone(), Arc::clone(&stop))
                .map_err(|e| Failure::failed(format!("{name}: cannot start capture: {e}")))?;
            threads.push(t);
        }
        for (name, t) in interfaces.iter().zip(&threads) {
            if !t.wait_opens(1, OPEN_WAIT) {
                warn!(interface = %name, "capture not open yet; retrying in the background");
            }
        }
        Ok(Captures {
            interfaces: interfaces.to_vec(),
            threads,
            stop,
        })
    }

    fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.handle.join();
        }
    }
}

struct Daemon {
    config_path: PathBuf,
    cli_interfaces: Vec<String>,
    config: Config,
    matcher: Matcher,
    grants: Grants,
    progress: ProgressStore,
    filter: SharedFilter,
    captures: Option<Captures>,
    tx: SyncSender<EventBatch>,
    rx: Receiver<EventBatch>,
    signals: Signals,
    destinations: local::Destinations,
    clock: Clock,
    refusals: Refusals,
    /// Decisions of the events drained so far, applied together after the drain.
    pending: Vec<Decision>,
    /// Grants that found the hosts.allow lock held elsewhere, retried every loop turn.
    deferred: Vec<Grant>,
    /// When a held lock was last logged (event clock ms): at most one line per 10 s.
    lock_logged_at: Option<u64>,
    /// What `knockwrap status` shows: counts kept here, published by [`snapshot`].
    started_at: u64,
    stats: crate::status::Counters,
    last_error: Option<String>,
    /// Doors disabled because their progress cannot be trusted, and why.
    disabled: Vec<(String, String)>,
    published_at: Option<u64>,
    dirty: bool,
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
        check_capture_privilege()?;
        let mut grants = grants::open(&config).map_err(Failure::failed)?;
        // Leases that ran out while the daemon was down end before it reports ready.
        let expired = grants
            .expire(now_ms() / 1000)
            .map_err(|e| Failure::failed(format!("reconciling leases: {e}")))?;
        let _ = grants::log_expiries(expired);

        let progress = ProgressStore::new(&config.state_dir);
        let clock = Clock::new();
        let (mut matcher, disabled) = build_matcher(&config, &progress).map_err(Failure::failed)?;
        matcher.set_wall_offset(clock.wall_offset());
        let filter = SharedFilter::new(filter_spec(&config));
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let captures = Captures::spawn(&interfaces, &filter, &tx)?;
        startup_checks(&config_path);
        info!(
            config = %config_path.display(),
            hosts_allow = %config.hosts_allow.display(),
            interfaces = %interfaces.join(","),
            doors = config.doors.len(),
            "ready"
        );
        if let Err(e) = notify::notify("READY=1") {
            warn!(error = %e, "sd_notify READY=1 failed");
        }
        let destinations = local::Destinations::new(targets(&config));
        Ok(Daemon {
            destinations,
            clock,
            refusals: Refusals::default(),
            pending: Vec::new(),
            deferred: Vec::new(),
            lock_logged_at: None,
            started_at: clock::real_wall_ms() / 1000,
            stats: Default::default(),
            last_error: None,
            disabled,
            published_at: None,
            dirty: true,
            config_path,
            cli_interfaces,
            config,
            matcher,
            grants,
            progress,
            filter,
            captures: Some(captures),
            tx,
            rx,
            signals,
        })
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
            let now = self.clock.boot_ms();
            let wall = self.clock.wall_at(now);
            self.destinations.refresh();
            self.matcher.tick(now);
            match self.grants.notice_changes() {
                Ok(aside) => grants::log_set_aside(aside),
                Err(e) => error!(error = %e, "cannot read the lease journal"),
            }
            match self.grants.expire(wall / 1000) {
                Ok(done) => {
                    if !done.is_empty() {
                        self.stats.expiries += grants::log_expiries(done);
                        self.dirty = true;
                    }
                }
                Err(e) => error!(error = %e, "cannot read the lease journal"),
            }
            self.refusals.flush(now, false);
            if self.dirty
                || self
                    .published_at
                    .is_none_or(|t| now.saturating_sub(t) >= 5_000)
            {
                self.publish(now);
            }
            if !self.deferred.is_empty() {
                let waiting = std::mem::take(&mut self.deferred);
                self.grant_batch(waiting);
            }
            let retry = (!self.deferred.is_empty()).then_some(100);
            let wake = [
                retry,
                self.matcher.next_deadline().map(|t| t.saturating_sub(now)),
                self.grants
                    .wake_at()
                    .map(|s| s.saturating_mul(1000).saturating_sub(wall)),
                self.refusals.deadline().map(|t| t.saturating_sub(now)),
            ]
            .into_iter()
            .flatten()
            .min()
            .map_or(POLL, |ms| Duration::from_millis(ms).min(POLL));
            match self.rx.recv_timeout(wake) {
                Ok(batch) => {
                    let mut seen = batch.len();
                    batch.into_iter().for_each(|e| self.observe(e));
                    // Drain what is queued, but a bounded number of events: under a flood,
                    // lease expiry and signals must still get their turn.
                    while seen < DRAIN_BATCH {
                        match self.rx.try_recv() {
                            Ok(batch) => {
                                seen += batch.len();
                                batch.into_iter().for_each(|e| self.observe(e));
                            }
                            Err(_) => break,
                        }
                    }
                    self.apply_pending();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    error!("all capture threads ended");
                    break;
                }
            }
        }
        let _ = notify::notify("STOPPING=1");
        info!("stopping");
        if let Some(c) = self.captures.take() {
            c.shutdown();
        }
        self.refusals.flush(self.clock.boot_ms(), true);
        let counters = self.matcher.counters();
        info!(
            grants = counters.grants,
            resets = counters.resets,
            timeouts = counters.timeouts,
            evictions = counters.evictions,
            "stopped"
        );
    }

    /// The wall clock jumped: TOTP follows it, and every lease keeps its remaining time (the
    /// journal's wall-clock expiries move with the jump).
    fn on_clock_jump(&mut self, jump_ms: i64) {
        self.matcher.set_wall_offset(self.clock.wall_offset());
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

    /// One captured packet: checked for destination and source, then matched. Decisions wait
    /// in `pending` until the drain ends.
    fn observe(&mut self, mut event: KnockEvent) {
        if !self.destinations.accepts(event.dst) {
            return;
        }
        event.to_host = self.destinations.is_local(event.dst);
        match check_source(event.src, event.via_loopback, self.destinations.host()) {
            Ok(()) => {}
            Err(Refusal::LinkLocal) if self.config.doors.iter().any(|d| d.link_local) => {}
            Err(why) => {
                self.refusals
                    .note(event.time_ms, why.as_str(), "any", event.src);
                return;
            }
        }
        self.stats.packets += 1;
        let decisions = self.matcher.observe(&event);
        self.pending.extend(decisions);
    }

    /// Applies the decisions of one drain: progress first (each one-time/TOTP decision), then
    /// consecutive grants as one transaction (one journal write, one hosts.allow edit), revokes
    /// in their place. Per-grant work is bounded: a burst of thousands of grants costs two
    /// writes, not thousands.
    fn apply_pending(&mut self) {
        let decisions = std::mem::take(&mut self.pending);
        self.dirty |= !decisions.is_empty();
        let mut batch: Vec<Grant> = Vec::new();
        for d in decisions {
            if !self.record_progress(&d) {
                continue;
            }
            let link_local_ok = self
                .config
                .doors
                .get(d.door)
                .is_some_and(|door| door.link_local);
            if knock_match::source::is_link_local(d.addr) && !link_local_ok {
                self.refusals
                    .note(d.time_ms, Refusal::LinkLocal.as_str(), &d.door_name, d.addr);
                continue;
            }
            match d.action {
                Action::Allow => batch.push(Grant {
                    door: d.door_name,
                    service: d.service,
                    addr: d.addr,
                    lease: d.lease,
                    wall_ms: self.clock.wall_at(d.time_ms),
                }),
                Action::Revoke => {
                    self.grant_batch(std::mem::take(&mut batch));
                    self.revoke(&d);
                }
            }
        }
        self.grant_batch(batch);
    }

    /// Durable before acting: a used one-time or TOTP sequence must never work twice, even
    /// after a crash. False when the decision must be dropped.
    fn record_progress(&mut self, d: &Decision) -> bool {
        let Some(consume) = d.consume else {
            return true;
        };
        let recorded = match self.matcher.doors().nth(d.door) {
            Some(door) => self
                .progress
                .record(door, &consume)
                .map_err(|e| e.to_string()),
            None => Err(format!("door #{} not found", d.door)),
        };
        if let Err(e) = recorded {
            error!(door = %d.door_name, addr = %d.addr, error = %e,
                "refused: cannot persist one-time/TOTP progress");
            return false;
        }
        if let Consume::OneTime { remaining: 0, .. } = consume {
            error!(door = %d.door_name, "one-time sequences exhausted: door disabled");
        }
        true
    }

    fn grant_batch(&mut self, batch: Vec<Grant>) {
        if batch.is_empty() {
            return;
        }
        match self.grants.grant_all(&batch) {
            Err(e) if e.lock_busy().is_some() => {
                let now = self.clock.boot_ms();
                if self
                    .lock_logged_at
                    .is_none_or(|t| now.saturating_sub(t) >= 10_000)
                {
                    self.lock_logged_at = Some(now);
                    let lock = e.lock_busy().map(|p| p.to_path_buf()).unwrap_or_default();
                    let holder = hosts_writer::holder_pid(&lock)
                        .map_or_else(|| "unknown".to_owned(), |p| p.to_string());
                    warn!(
                        lock = %lock.display(), holder_pid = %holder,
                        waiting = batch.len() + self.deferred.len(),
                        "hosts.allow is locked by another process; grants wait and are retried, knocks and expiry go on"
                    );
                }
                self.deferred.extend(batch);
            }
            Ok(results) => {
                for (g, applied) in batch.iter().zip(results) {
                    self.stats.grants += 1;
                    match applied {
                        Applied::Granted { changed } => info!(
                            door = %g.door, addr = %g.addr, service = %g.service,
                            lease_s = g.lease.map(|l| l.as_secs()), already_present = !changed,
                            "grant"
                        ),
                        Applied::NotEffective { decided_by, .. } => error!(
                            door = %g.door, addr = %g.addr, service = %g.service,
                            decided_by = %decided_by,
                            "grant written but libwrap would NOT honour it"
                        ),
                        other => {
                            warn!(door = %g.door, addr = %g.addr, outcome = ?other, "grant")
                        }
                    }
                }
            }
            Err(e) => {
                self.stats.write_failures += 1;
                self.last_error = Some(format!("grant: {e}"));
                for g in &batch {
                    error!(
                        door = %g.door, addr = %g.addr, service = %g.service, error = %e,
                        "grant failed"
                    );
                }
            }
        }
    }

    fn revoke(&mut self, d: &Decision) {
        match self.grants.revoke(&d.service, d.addr) {
            Ok(Applied::Kept) => warn!(
                door = %d.door_name, addr = %d.addr, service = %d.service,
                "revoke refused: the line was not added by knockwrap"
            ),
            Ok(Applied::Revoked { changed }) => {
                self.stats.revokes += 1;
                info!(
                    door = %d.door_name, addr = %d.addr, service = %d.service,
                    was_present = changed, "revoke"
                )
            }
            Ok(other) => warn!(door = %d.door_name, addr = %d.addr, outcome = ?other, "revoke"),
            Err(e) => {
                self.stats.write_failures += 1;
                self.last_error = Some(format!("revoke: {e}"));
                error!(
                    door = %d.door_name, addr = %d.addr, service = %d.service, error = %e,
                    "revoke failed"
                )
            }
        }
    }

    /// Installs the whole new configuration or keeps the whole old one.
    fn reload(&mut self) {
        let _ = notify::notify("RELOADING=1");
        info!(config = %self.config_path.display(), "reloading");
        match self.try_reload() {
            Ok(carried) => info!(
                doors = self.config.doors.len(),
                sequences_kept = carried,
                "reloaded"
            ),
            Err(message) => {
                for line in message.lines() {
                    error!(error = %line, "reload refused; the previous configuration keeps serving");
                }
            }
        }
        let _ = notify::notify("READY=1");
    }

    fn try_reload(&mut self) -> Result<usize, String> {
        let config = load(&self.config_path).map_err(|e| e.to_string())?;
        let interfaces = interfaces_of(&self.cli_interfaces, &config);
        if interfaces.is_empty() {
            return Err(format!("{}: no interface", self.config_path.display()));
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
        let (mut matcher, disabled) = build_matcher(&config, &progress)?;
        matcher.set_wall_offset(self.clock.wall_offset());
        let carried = matcher.adopt_progress(&self.matcher);
        // Everything is built: install it all at once.
        if let Some(g) = grants {
            self.grants = g;
        }
        self.progress = progress;
        self.matcher = matcher;
        self.disabled = disabled;
        self.dirty = true;
        self.destinations = local::Destinations::new(targets(&config));
        self.filter.set(filter_spec(&config));
        let same_interfaces = self
            .captures
            .as_ref()
            .is_some_and(|c| c.interfaces == interfaces);
        if !same_interfaces {
            if let Some(c) = self.captures.take() {
                c.shutdown();
            }
            self.captures =
                Some(Captures::spawn(&interfaces, &self.filter, &self.tx).map_err(|e| e.message)?);
        }
        if config.log != self.config.log {
            warn!("the `log` setting changed: it takes effect at the next restart");
        }
        self.config = config;
        Ok(carried)
    }
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

/// Fails start-up at once, with the reason, when this process may not open packet sockets
/// (the capture threads would otherwise retry forever in the background).
fn check_capture_privilege() -> Result<(), Failure> {
    // SAFETY: plain socket(2) call; the descriptor is closed right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Failure::failed(format!(
            "cannot open a packet socket: {e} (knockwrap run needs root or CAP_NET_RAW)"
        )));
    }
    // SAFETY: fd is a descriptor this function owns.
    unsafe { libc::close(fd) };
    Ok(())
}

/// The matcher for `config`, with the recorded one-time/TOTP progress. A progress file that
/// cannot be trusted disables its door only (never reusing a sequence), logged with what to
/// do; every other door serves. Only an invalid door is an error.
/// Also returns the doors disabled because their progress cannot be trusted, with why.
fn build_matcher(
    config: &Config,
    progress: &ProgressStore,
) -> Result<(Matcher, Vec<(String, String)>), String> {
    let mut doors = config.doors();
    let errors = progress.apply(&mut doors);
    let mut disabled = Vec::new();
    for e in &errors {
        let (door, path) = match e {
            knockwrap_config::progress::ProgressError::Io { door, path, .. }
            | knockwrap_config::progress::ProgressError::Invalid { door, path, .. } => (door, path),
        };
        error!(
            door = %door, error = %e,
            fix = %format!("check the door's files, then delete {} to start its progress over", path.display()),
            "door disabled until an operator acts: its progress cannot be trusted"
        );
        disabled.push((door.clone(), e.to_string()));
    }
    let options = MatcherOptions {
        max_sources: config.max_sources,
        hash_seed: random_seed(),
    };
    let matcher = Matcher::new(doors, options).map_err(|e| e.to_string())?;
    for door in matcher.exhausted_doors() {
        if !disabled.iter().any(|(d, _)| d == door) {
            error!(door = %door, "one-time sequences exhausted: door disabled");
        }
    }
    Ok((matcher, disabled))
}

/// The doors' explicit `target` addresses.
fn targets(config: &Config) -> Vec<IpAddr> {
    config.doors.iter().filter_map(|d| d.door.target).collect()
}

/// Each door's step rule and UDP, to every port: what sweep detection needs (see
/// [`FilterSpec::from_doors`]).
fn filter_spec(config: &Config) -> FilterSpec {
    spec_for_doors(&config.doors())
}

fn spec_for_doors(doors: &[Door]) -> FilterSpec {
    FilterSpec::from_doors(doors.iter(), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_match::{DoorKind, Proto};

    fn door(sequence: Vec<knock_match::Step>) -> Door {
        Door {
            name: "d".into(),
            kind: DoorKind::Static { steps: sequence },
            seq_timeout: Duration::from_secs(10),
            tcp_flags: knock_match::TcpFlagRules::parse_list(["syn"]).unwrap(),
            action: Action::Allow,
            service: "SSHD".into(),
            lease: None,
            target: None,
        }
    }

    #[test]
    fn udp_passes_everywhere_only_when_a_door_uses_udp() {
        use knock_match::{Step, TcpFlags};
        let none = TcpFlags(0);
        let tcp_only = spec_for_doors(&[door(vec![Step::tcp(7000), Step::tcp(8000)])]);
        assert!(!tcp_only.wants(Proto::Udp, 53, none));
        assert!(tcp_only.wants(Proto::Tcp, 22, TcpFlags(TcpFlags::SYN)));
        assert!(!tcp_only.wants(Proto::Tcp, 22, TcpFlags(TcpFlags::ACK)));
        let mixed = spec_for_doors(&[door(vec![Step::tcp(7000), Step::udp(8000)])]);
        assert!(mixed.wants(Proto::Udp, 8000, none));
        assert!(mixed.wants(Proto::Udp, 53, none));
    }
}
