//! Command-line grammar. The forms here are the interface contract (docs/contract.md): extend,
//! never rename.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_CONFIG: &str = "/etc/knockwrap/knockwrap.toml";

#[derive(Parser, Debug)]
#[command(
    name = "knockwrap",
    version,
    about = "TCP Wrappers access manager with a port-knock trigger"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon in the foreground (systemd Type=notify).
    Run(RunArgs),
    /// Validate hosts_access files (and a config) as libwrap reads them.
    Check(CheckArgs),
    /// Predict whether libwrap grants DAEMON to CLIENT_ADDR (tcpdmatch for numeric clients).
    Match(MatchArgs),
    /// Grant an address: add the managed line to hosts.allow.
    Allow(AllowArgs),
    /// Remove an address's managed line from hosts.allow.
    Revoke(RevokeArgs),
    /// List active leases.
    List(ListArgs),
    /// Send a knock sequence to every address of a host (compatible with knockd's `knock`).
    Knock(KnockArgs),
    /// Knock, then connect to HOST:PORT once the door opens and relay stdin/stdout (for ssh's
    /// ProxyCommand).
    Connect(ConnectArgs),
    /// Convert a knockd.conf into a knockwrap configuration, reporting what cannot be mapped.
    ImportKnockd(ImportKnockdArgs),
    /// Check this host for the failures that make a door silently useless (sshd without
    /// libwrap, a hosts.deny that denies nothing, shadowing rules, missing interfaces, ...).
    Doctor(DoctorArgs),
    /// What the running daemon is doing: doors, leases, counters (from its published
    /// snapshot); exit 1 when it is not running or its snapshot is stale.
    Status(StatusArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    Man,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Github,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SimpleFormat {
    Human,
    Json,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Interface(s) to listen on; overrides the config's `interface`.
    #[arg(long = "interface", short = 'i')]
    pub interfaces: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Files to check (default: /etc/hosts.allow /etc/hosts.deny).
    pub files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Also validate this knockwrap configuration.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct MatchArgs {
    /// DAEMON[@SERVER]
    pub daemon: String,
    /// [USER@]CLIENT_ADDR
    pub client: String,
    #[arg(long, default_value = "/etc/hosts.allow")]
    pub hosts_allow: PathBuf,
    #[arg(long, default_value = "/etc/hosts.deny")]
    pub hosts_deny: PathBuf,
    #[arg(long, value_enum, default_value_t = SimpleFormat::Human)]
    pub format: SimpleFormat,
}

#[derive(Args, Debug)]
pub struct TargetArgs {
    /// The hosts.allow to edit (instead of the config's `hosts_allow`).
    #[arg(long, conflicts_with = "config")]
    pub hosts_allow: Option<PathBuf>,
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Lease journal directory (instead of the config's `state_dir`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Print the unified diff that would be written and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct AllowArgs {
    pub ip: String,
    #[arg(long, default_value = "SSHD")]
    pub service: String,
    /// Lease length, e.g. 3600, "90s", "15m", "1h".
    #[arg(long = "for")]
    pub duration: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    pub ip: String,
    #[arg(long, default_value = "SSHD")]
    pub service: String,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Lease journal directory (instead of the config's `state_dir`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The hosts.allow to compare the leases with (instead of the config's `hosts_allow`):
    /// the human listing also names managed-looking lines there that have no lease.
    #[arg(long)]
    pub hosts_allow: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = SimpleFormat::Human)]
    pub format: SimpleFormat,
}

#[derive(Args, Debug)]
pub struct KnockArgs {
    /// HOST[,HOST...], or the name of a target in the client profile.
    pub host: String,
    /// PORT[:tcp|:udp]... (none: the door of the profile target HOST names).
    pub ports: Vec<String>,
    #[command(flatten)]
    pub knock: KnockOptions,
}

/// How to knock: the options `knock` and `connect` share.
#[derive(Args, Debug)]
pub struct KnockOptions {
    /// Default protocol UDP instead of TCP for the knock steps.
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,
    /// Delay between knocks in milliseconds (default 0, or the profile's `delay_ms`).
    #[arg(short = 'd', long = "delay")]
    pub delay_ms: Option<u64>,
    /// Use only the IPv4 addresses of each host.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Use only the IPv6 addresses of each host.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Report each address, each knock and (connect) each connection attempt as it happens.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Take the sequence from this door of the config (TOTP doors included).
    #[arg(long, requires = "config")]
    pub door: Option<String>,
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Client profile (default: $XDG_CONFIG_HOME/knockwrap/client.toml, else
    /// ~/.config/knockwrap/client.toml).
    #[arg(long, value_name = "PATH")]
    pub profile: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The host to knock and connect to, or the name of a target in the client profile.
    pub host: String,
    /// The port to connect to (default: the profile target's `port`, else 22).
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Knock steps PORT[:tcp|:udp]... (instead of --door or a profile target).
    pub steps: Vec<String>,
    #[command(flatten)]
    pub knock: KnockOptions,
    /// How long to keep trying after the knock, e.g. "5s", "1500ms" (default: the profile's
    /// `connect_timeout`, else 5s).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// The door is open as soon as TCP connects (for protocols where the client speaks first);
    /// by default the server's first bytes (ssh's banner) are awaited, since TCP Wrappers
    /// accepts every connection and refuses by closing it.
    #[arg(long)]
    pub no_banner: bool,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ImportKnockdArgs {
    /// The knockd configuration to convert ("-" reads standard input).
    #[arg(value_name = "KNOCKD_CONF", default_value = "/etc/knockd.conf")]
    pub knockd_conf: PathBuf,
    /// Write the knockwrap configuration here (atomically) instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[arg(long, value_enum, default_value_t = SimpleFormat::Human)]
    pub format: SimpleFormat,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The sshd binary to inspect (default: the one systemd's ssh.service or sshd.service
    /// runs, else /usr/sbin/sshd).
    #[arg(long, value_name = "PATH")]
    pub sshd: Option<PathBuf>,
}
