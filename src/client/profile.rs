//! The client profile: where it is (`$XDG_CONFIG_HOME/knockwrap/client.toml`), and the plan
//! for a HOST that names one of its targets (`knockwrap knock prod`) or one of a target's
//! hosts. The profile's format and loading are `knockwrap_config::client`'s; this module picks
//! the target, takes its hosts and its sequence (a one-time target's next unused one, by the
//! progress [`super::onetime`] keeps), and the XDG base directories both files live under.

use std::path::{Path, PathBuf};

use clock::wall_ms;
use knock_match::DoorKind;
use knockwrap_config::client::{ClientProfile, Pick};

use super::onetime::{one_time_state_path, read_one_time_next, xdg_dir, OneTimeMark};
use super::plan::{kind_steps, Plan, Source};
use crate::failure::Failure;

/// The plan for HOST from the client profile (`--profile PATH`, else the default one), when
/// neither PORTs nor `--door` were given.
pub(super) fn plan(src: &Source) -> Result<Plan, Failure> {
    let cmd = src.cmd;
    let explicit = src.opts.profile.is_some();
    let Some(path) = src
        .opts
        .profile
        .as_deref()
        .map(Path::to_path_buf)
        .or_else(default_profile_path)
    else {
        return Err(Failure::usage(format!(
            "{cmd}: no knock sequence for `{}`: give PORT[:tcp|:udp]..., --door NAME \
             --config PATH, or --profile PATH (neither XDG_CONFIG_HOME nor HOME is set)",
            src.host
        )));
    };
    if !explicit && !path.exists() {
        return Err(Failure::usage(format!(
            "{cmd}: no knock sequence for `{}`: give PORT[:tcp|:udp]..., --door NAME \
             --config PATH, or a target in the client profile {} (there is none)",
            src.host,
            path.display()
        )));
    }
    let profile = ClientProfile::load(&path).map_err(|e| Failure::usage(e.to_string()))?;
    let Some((found, pick)) = profile.find(src.host) else {
        let names: Vec<&str> = profile.targets.iter().map(|t| t.name.as_str()).collect();
        return Err(Failure::usage(format!(
            "{cmd}: `{}` is neither the name nor a host of a target in {} (targets: {}); \
             give PORT[:tcp|:udp]... or --door NAME --config PATH",
            src.host,
            path.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let mut target = found.clone();
    target
        .load_files(&path)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let hosts = match pick {
        Pick::ByName => target.hosts.clone(),
        Pick::ByHost => vec![src.host.to_string()],
    };
    let origin = format!("target `{}` of {}", target.name, path.display());
    let mut one_time = None;
    let steps = match &target.kind {
        DoorKind::OneTime { sequences, .. } => {
            let state = one_time_state_path(&target.name).ok_or_else(|| {
                Failure::failed(format!(
                    "{cmd}: target `{}`: nowhere to keep one-time progress (neither \
                     XDG_STATE_HOME nor HOME is set)",
                    target.name
                ))
            })?;
            let next = read_one_time_next(&state)?;
            let Some(seq) = sequences.get(next) else {
                return Err(Failure::failed(format!(
                    "{cmd}: target `{}`: every one-time sequence has been used ({} of {}, \
                     progress in {})",
                    target.name,
                    next,
                    sequences.len(),
                    state.display()
                )));
            };
            one_time = Some(OneTimeMark {
                state,
                next: next + 1,
            });
            seq.clone()
        }
        kind => kind_steps(kind, wall_ms())
            .map_err(|m| Failure::failed(format!("{cmd}: target `{}`: {m}", target.name)))?,
    };
    Ok(Plan {
        hosts,
        steps,
        origin,
        target: Some(target),
        one_time,
    })
}

/// `$XDG_CONFIG_HOME/knockwrap/client.toml`, else `$HOME/.config/knockwrap/client.toml`.
fn default_profile_path() -> Option<PathBuf> {
    xdg_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("knockwrap").join("client.toml"))
}
