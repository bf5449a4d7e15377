//! One daemon per state directory: `daemon.lock` in it, locked (an exclusive `flock`) by the
//! running daemon for its whole life, with its pid written in for the message a second one
//! prints. The lock is the truth, not the pid: the kernel drops it when the last descriptor of
//! the open file goes, so a daemon that crashed or was killed leaves a file that blocks
//! nothing. Two daemons on one state would judge every knock twice and expire every lease
//! twice.
//!
//! The file is opened as every state file is written: the state directory is checked (owner,
//! mode, not a symlink) and held open, and the file is opened relative to it without
//! following a symlink (`dirfd`). The descriptor is close-on-exec; a process that forks (the
//! daemon's capture child) must close it in the child, or the lock would live as long as the
//! child does.

use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use thiserror::Error;

use crate::error::WriteError;
use crate::state::{check_state_dir, StateError};

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "daemon.lock";

#[derive(Debug, Error)]
pub enum OwnerError {
    /// Another process holds the lock.
    #[error(
        "{}: another knockwrap daemon ({}) already runs on this state directory (it holds {}); \
         stop it first, or give this one another `state_dir`",
        dir.display(),
        pid.map_or_else(|| "pid unknown".to_owned(), |p| format!("pid {p}")),
        lock.display()
    )]
    Held {
        dir: PathBuf,
        lock: PathBuf,
        pid: Option<u32>,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// The state directory's lock, held until dropped.
#[derive(Debug)]
pub struct DaemonLock {
    file: File,
    path: PathBuf,
}

impl DaemonLock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor, for a forked child to close.
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// Takes the lock of `state_dir` for this process (created 0700 if missing, like the journal's
/// directory), or names the process that holds it.
pub fn lock_state_dir(state_dir: &Path) -> Result<DaemonLock, OwnerError> {
    check_state_dir(state_dir)?;
    let path = state_dir.join(LOCK_FILE);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|e| WriteError::io(state_dir, "create directory", e))?;
    let dir = crate::dirfd::open_for_write(state_dir, &path, true)?;
    let fd = rustix::fs::openat(
        dir.fd(),
        LOCK_FILE,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| WriteError::io(&path, "open", e.into()))?;
    let mut file = File::from(fd);
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let pid = recorded_pid(&mut file).or_else(|| crate::lock::holder_pid(&path));
            return Err(OwnerError::Held {
                dir: state_dir.to_path_buf(),
                lock: path,
                pid,
            });
        }
        Err(TryLockError::Error(e)) => return Err(WriteError::io(&path, "lock", e).into()),
    }
    let record = |file: &mut File| -> io::Result<()> {
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
    };
    record(&mut file).map_err(|e| WriteError::io(&path, "write the pid into", e))?;
    Ok(DaemonLock { file, path })
}

/// The pid the holder wrote, if it is there already.
fn recorded_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_a_dropped_one_blocks_nothing() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        let held = lock_state_dir(&dir).unwrap();
        let text = std::fs::read_to_string(held.path()).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        // Another open file description of the same file: flock conflicts, as for another
        // process.
        let err = lock_state_dir(&dir).unwrap_err();
        assert!(
            matches!(err, OwnerError::Held { pid: Some(p), .. } if p == std::process::id()),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains(&format!("pid {}", std::process::id())));
        drop(held);
        // The file stays with the old pid in it (as after a crash): it blocks nothing.
        std::fs::write(dir.join(LOCK_FILE), "999999\n").unwrap();
        let again = lock_state_dir(&dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(again.path()).unwrap(),
            format!("{}\n", std::process::id())
        );
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        let target = base.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, dir.join(LOCK_FILE)).unwrap();
        let err = lock_state_dir(&dir).unwrap_err();
        assert!(matches!(err, OwnerError::Write(_)), "{err}");
        assert!(!target.exists());
    }
}
