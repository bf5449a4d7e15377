//! The client's one-time progress: for a profile target with one-time sequences, which
//! sequence is next, kept in `$XDG_STATE_HOME/knockwrap/onetime-TARGET.json` as `{"next": N}`.
//! A sequence that reached the wire is spent (as the daemon has it), so the count moves on
//! once any of it went out. The file is written through the atomic file routine, as a
//! private state file. Also where the client's XDG directories are ([`xdg_dir`]).

use std::io;
use std::path::{Path, PathBuf};

use crate::failure::Failure;

/// A one-time sequence of a profile target about to be sent: `next` is recorded in `state`
/// once it has been (a sequence that reached the wire is spent, as the daemon has it).
pub(super) struct OneTimeMark {
    pub(super) state: PathBuf,
    pub(super) next: usize,
}

pub(super) fn one_time_state_path(target: &str) -> Option<PathBuf> {
    xdg_dir("XDG_STATE_HOME", ".local/state")
        .map(|d| d.join("knockwrap").join(format!("onetime-{target}.json")))
}

/// An XDG base directory: the variable when it holds an absolute path (the specification
/// says to ignore a relative one), else `$HOME/<fallback>`.
pub(super) fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    if let Some(v) = std::env::var_os(var) {
        let p = PathBuf::from(v);
        if p.is_absolute() {
            return Some(p);
        }
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(fallback))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct OneTimeState {
    next: usize,
}

pub(super) fn read_one_time_next(state: &Path) -> Result<usize, Failure> {
    match std::fs::read_to_string(state) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Failure::failed(format!(
            "cannot read one-time progress {}: {e}",
            state.display()
        ))),
        Ok(text) => serde_json::from_str::<OneTimeState>(&text)
            .map(|s| s.next)
            .map_err(|e| {
                Failure::failed(format!(
                    "{}:{}:{}: one-time progress is not {{\"next\": N}}: {e}",
                    state.display(),
                    e.line(),
                    e.column()
                ))
            }),
    }
}

/// Through the writer's one atomic routine (`atomic_files::update`: lock, temp, fsync, rename,
/// directory fsync, all relative to the checked directory), as a private state file: never
/// through a symlink, always 0600. A crash leaves the old or the new count, never half a file.
pub(super) fn write_one_time_next(state: &Path, next: usize) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    let fail = |e: &dyn std::fmt::Display| {
        Failure::failed(format!(
            "cannot record one-time progress in {}: {e} (the sequence was sent; next time, \
             set \"next\" to {next} by hand)",
            state.display()
        ))
    };
    let dir = state.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail(&e))?;
    let body = serde_json::to_string(&OneTimeState { next }).unwrap_or_default() + "\n";
    let opts = atomic_files::Options {
        private: true,
        ..atomic_files::Options::default()
    };
    atomic_files::update(state, &opts, |_| {
        Ok::<_, std::convert::Infallible>(Some(body.clone().into_bytes()))
    })
    .map(drop)
    .map_err(|e| fail(&e))
}
