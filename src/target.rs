//! Which hosts.allow and which lease journal a CLI edit uses: `--hosts-allow PATH` directly, or
//! the `hosts_allow` / `state_dir` / `backup` of `--config PATH` (default config path when
//! neither is given), with `--state-dir` overriding the journal location.

use std::path::{Path, PathBuf};

use crate::cli::{TargetArgs, DEFAULT_CONFIG};
use crate::failure::Failure;

/// Where an edit goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub hosts_allow: PathBuf,
    /// The lease journal's directory; None: no journal (only `--hosts-allow` was given).
    pub state_dir: Option<PathBuf>,
    pub backup: bool,
    /// The configuration, when the target came from one (its firewall door, for `revoke`).
    pub config: Option<knockwrap_config::Config>,
}

/// The settings the writer takes from a config file, and the whole of it.
struct FromConfig {
    hosts_allow: PathBuf,
    state_dir: PathBuf,
    backup: bool,
    config: knockwrap_config::Config,
}

fn load_config(path: &Path) -> Result<FromConfig, Failure> {
    let text = crate::configfile::read(path)?;
    // Only the writer's settings are needed: parse and validate the whole file, but leave the
    // doors' key and sequence files to the daemon.
    let config = knockwrap_config::Config::from_toml_str(&text, path)
        .map_err(|e| Failure::usage(e.to_string()))?;
    Ok(FromConfig {
        hosts_allow: config.hosts_allow.clone(),
        state_dir: config.state_dir.clone(),
        backup: config.backup,
        config,
    })
}

/// Resolve the target of `allow`/`revoke`.
pub fn resolve(args: &TargetArgs) -> Result<Target, Failure> {
    if let Some(path) = &args.hosts_allow {
        return Ok(Target {
            hosts_allow: path.clone(),
            state_dir: args.state_dir.clone(),
            backup: true,
            config: None,
        });
    }
    let config = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let c = load_config(&config)?;
    Ok(Target {
        hosts_allow: c.hosts_allow,
        state_dir: Some(args.state_dir.clone().unwrap_or(c.state_dir)),
        backup: c.backup,
        config: Some(c.config),
    })
}

/// The journal directory for `list`, and the hosts.allow to compare its leases with (none
/// when only `--state-dir` is given: then no config is read).
pub fn for_list(
    config: &Path,
    state_dir: Option<&Path>,
    hosts_allow: Option<&Path>,
) -> Result<(PathBuf, Option<PathBuf>), Failure> {
    match (state_dir, hosts_allow) {
        (Some(d), h) => Ok((d.to_path_buf(), h.map(Path::to_path_buf))),
        (None, h) => {
            let c = load_config(config)?;
            Ok((
                c.state_dir,
                Some(h.map_or(c.hosts_allow, Path::to_path_buf)),
            ))
        }
    }
}
