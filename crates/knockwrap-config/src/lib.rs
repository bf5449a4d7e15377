//! The knockwrap TOML configuration: daemon settings and doors, with file:line diagnostics.
//!
//! - [`Config::from_toml_str`] is pure: it parses and validates the text, resolving relative
//!   paths against the directory of the path it is given. One-time and TOTP doors come back
//!   without their sequences or secret ([`DoorConfig::needs_files`]).
//! - [`Config::load`] reads the file and then the files the doors name (one-time sequences,
//!   TOTP keys, with their permission checks), giving doors ready for
//!   `knock_match::Matcher::new`.
//! - [`check`] is what `knockwrap check --config PATH` calls: every problem, as
//!   `path:line:column: message`.
//! - [`client`] is the knock client's profile (`client.toml`), read with the same rules.
//! - The firewall door: [`FirewallConfig`] (`[firewall]`), each door's `open_ports`
//!   ([`PortSpec`]), `hosts_allow` and `knock_from` ([`Prefix`]), [`Config::guarded_ports`],
//!   and [`lockout_warnings`] for `check --config` and `doctor`.
//!
//! It reads and nothing else: the durable one-time and TOTP progress in `state_dir` belongs to
//! the state owner (`hosts_writer::progress`).
//!
//! Relative paths in the file (`hosts_allow`, `state_dir`, `log`, `one_time_sequences`,
//! `totp_secret_file`) are relative to the directory holding the configuration file.

mod build;
pub mod client;
mod duration;
mod error;
mod files;
mod firewall;
mod raw;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use duration::parse_duration;
pub use error::{line_col, ConfigError, ConfigErrors};
pub use firewall::{
    lockout_warnings, ConfigWarning, FirewallConfig, PortSpec, PortSpecError, SshSession,
    DEFAULT_FIREWALL_TABLE, MAX_TABLE_NAME,
};
use knock_match::Door;
pub use knock_match::Prefix;

/// Where `--config` points when not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/knockwrap/knockwrap.toml";
pub const DEFAULT_HOSTS_ALLOW: &str = "/etc/hosts.allow";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/knockwrap";
/// knockd's default `seq_timeout`.
pub const DEFAULT_SEQ_TIMEOUT: Duration = Duration::from_secs(25);
pub const DEFAULT_TOTP_LENGTH: usize = 4;
pub const DEFAULT_TOTP_STEP: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_SOURCES: usize = knock_match::DEFAULT_MAX_SOURCES;
/// Largest `max_sources` accepted (about 1.5 GB of table at most).
pub const MAX_MAX_SOURCES: usize = 1 << 24;
/// Default bound on leases (distinct managed lines) the daemon grants: the matcher's table.
pub const DEFAULT_MAX_LEASES: usize = 65_536;
/// Largest `max_leases` accepted.
pub const MAX_MAX_LEASES: usize = 1 << 24;
/// Default bound on grants waiting while another process holds the hosts.allow lock.
pub const DEFAULT_MAX_WAITING_GRANTS: usize = 4_096;
/// Largest `max_waiting_grants` accepted.
pub const MAX_MAX_WAITING_GRANTS: usize = 1 << 20;

/// Where the daemon logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    Syslog,
    Stderr,
    File(PathBuf),
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file it came from (as given, for messages).
    pub path: PathBuf,
    /// Interfaces to capture on; empty when the file names none (then `--interface` must).
    pub interfaces: Vec<String>,
    pub hosts_allow: PathBuf,
    pub state_dir: PathBuf,
    pub log: LogTarget,
    pub backup: bool,
    pub max_sources: usize,
    /// Most leases (distinct managed lines) the daemon keeps; a grant for a new address
    /// beyond it is refused and counted (a replayed or forged storm grows nothing unbounded).
    pub max_leases: usize,
    /// Most grants kept waiting while another process holds the hosts.allow lock; beyond it
    /// a grant is refused and counted.
    pub max_waiting_grants: usize,
    /// Where the daemon writes its counters in the Prometheus text format (for
    /// node_exporter's textfile collector), if anywhere.
    pub metrics_file: Option<PathBuf>,
    /// The account the capture process runs as (None: `knockwrap` if it exists, else
    /// `nobody`).
    pub user: Option<String>,
    /// The `[firewall]` table, or its defaults when the file has none. It takes effect only
    /// when some allow door has `open_ports` ([`Config::guarded_ports`]).
    pub firewall: FirewallConfig,
    pub doors: Vec<DoorConfig>,
}

/// One `[[door]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoorConfig {
    /// The door. For one-time and TOTP doors the sequences / secret are filled by
    /// [`Config::load`] (or [`DoorConfig::load_files`]); progress (`next`, `used`) by
    /// `hosts_writer::progress::ProgressStore::apply`.
    pub door: Door,
    pub one_time_file: Option<PathBuf>,
    pub totp_secret_file: Option<PathBuf>,
    /// `open_ports`: ports the firewall admits the knocker to for the lease (an allow door),
    /// or from which a revoke door removes the knocker's admission. In file order, no
    /// duplicates; empty when absent.
    pub open_ports: Vec<PortSpec>,
    /// `hosts_allow` (default true): the door adds (or, for a revoke door, removes) the line
    /// `SERVICE: ADDR`. False: firewall only (sshd without libwrap); `open_ports` is then
    /// non-empty.
    pub hosts_allow: bool,
    /// Line of the `[[door]]` header. (`knock_from` is the door's own: [`Door::knock_from`].)
    pub line: usize,
    /// Line and column of the file key's value, for diagnostics about that file.
    pub(crate) file_pos: (usize, usize),
    /// Line and column of `open_ports` (of the header when absent), for warnings.
    pub(crate) open_ports_pos: (usize, usize),
}

impl DoorConfig {
    /// True while the door still needs its one-time file or TOTP key read.
    pub fn needs_files(&self) -> bool {
        match &self.door.kind {
            knock_match::DoorKind::Static { .. } => false,
            knock_match::DoorKind::OneTime { sequences, .. } => sequences.is_empty(),
            knock_match::DoorKind::Totp(p) => p.secret.is_empty(),
        }
    }

    /// True when a knock from `src` may count for this door (`knock_from` is empty or holds
    /// it). An IPv4-mapped IPv6 source is taken as its IPv4 address.
    pub fn knock_allowed_from(&self, src: std::net::IpAddr) -> bool {
        self.door.knock_allowed_from(src)
    }
}

impl Config {
    /// Parses and validates `text`; `path` names it in messages and anchors relative paths.
    /// Does no I/O.
    pub fn from_toml_str(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
        build::build(text, path.as_ref())
    }

    /// Reads and validates the file at `path`, then the one-time sequence files and TOTP keys
    /// its doors name.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
        let path = path.as_ref();
        let text = error::read_text(path, "configuration")?;
        let mut config = Config::from_toml_str(&text, path)?;
        let mut errors = Vec::new();
        for d in &mut config.doors {
            errors.extend(d.load_files(path));
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The doors, ready for `Matcher::new` once loaded and given their progress.
    pub fn doors(&self) -> Vec<Door> {
        self.doors.iter().map(|d| d.door.clone()).collect()
    }

    /// The guarded ports: every port some allow door names in `open_ports`, sorted, each
    /// once. Empty: the configuration asks nothing of the firewall.
    pub fn guarded_ports(&self) -> Vec<PortSpec> {
        let mut ports: Vec<PortSpec> = self
            .doors
            .iter()
            .filter(|d| d.door.action == knock_match::Action::Allow)
            .flat_map(|d| d.open_ports.iter().copied())
            .collect();
        ports.sort();
        ports.dedup();
        ports
    }

    /// Finds a door by name.
    pub fn door(&self, name: &str) -> Option<&DoorConfig> {
        self.doors.iter().find(|d| d.door.name == name)
    }
}

/// Every problem in the configuration at `path` and in the files it names (empty: valid).
/// This is `knockwrap check --config PATH`.
pub fn check(path: impl AsRef<Path>) -> Vec<ConfigError> {
    match Config::load(path) {
        Ok(_) => Vec::new(),
        Err(e) => e.0,
    }
}
