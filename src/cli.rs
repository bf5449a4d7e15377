//! Command-line grammar. The forms here are the contract in SPEC.md: extend, never rename.

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
    /// Send a knock sequence (compatible with knockd's `knock`).
    Knock(KnockArgs),
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
    #[arg(long, value_enum, default_value_t = SimpleFormat::Human)]
    pub format: SimpleFormat,
}

#[derive(Args, Debug)]
pub struct KnockArgs {
    /// HOST[,HOST...]
    pub host: String,
    /// PORT[:tcp|:udp]...
    pub ports: Vec<String>,
    /// Default protocol UDP instead of TCP.
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,
    /// Delay between knocks in milliseconds.
    #[arg(short = 'd', long = "delay", default_value_t = 0)]
    pub delay_ms: u64,
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Take the sequence from this door of the config (TOTP doors included).
    #[arg(long, requires = "config")]
    pub door: Option<String>,
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}
