//! The directory a write happens in, held open: the one place that turns a directory path into
//! a descriptor, and the checks on it.
//!
//! Checking a directory by path and then writing by path leaves a window: swap the directory
//! (or one above it) for a symlink in between and root's write lands wherever the link points.
//! So the writer resolves the path once ([`std::fs::canonicalize`]: operators keep symlinked
//! hosts.allow and symlinked directories), then walks it from `/` one component at a time,
//! each opened relative to the one before with `O_NOFOLLOW` and checked on its descriptor
//! (`fstat`). Every later step of the write (read, temp file, backup, re-checks, rename,
//! lock file, stale-temp sweep, directory fsync) is relative to the last descriptor, so a
//! swap after the walk redirects nothing: the write lands in the directory that was checked.
//!
//! A per-component `openat` with `O_NOFOLLOW` refuses a symlink exactly where `openat2` with
//! `RESOLVE_NO_SYMLINKS` would, and the walk has to `fstat` every ancestor anyway (the
//! ancestor rule below); it also works on kernels without `openat2` (before 5.6, or where a
//! seccomp filter answers ENOSYS), so there is one code path, not two.
//!
//! The rules, as sshd's StrictModes: the directory holding the file must be owned by root or
//! by us; neither it nor any directory above it may be writable by group or others, unless
//! sticky (`/tmp`: nobody may rename another account's entries there). Directories above owned
//! by another account are accepted (a checkout in an operator's home, the quick start).
//! A state directory (`private`) is stricter: it must not itself be a symlink (its path is not
//! resolved), and sticky does not excuse a group/other-writable one.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, FileType, Mode, OFlags};

use crate::error::WriteError;

/// A directory held open for a write, checked on its descriptor.
#[derive(Debug)]
pub struct HeldDir {
    fd: OwnedFd,
    /// The path it was reached by (for messages).
    path: PathBuf,
}

impl HeldDir {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// fsync the directory, so a rename in it survives a power cut.
    pub fn sync(&self) -> io::Result<()> {
        Ok(rfs::fsync(&self.fd)?)
    }
}

/// The effective uid: root or the daemon's own account may own what it writes.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Opens `dir`, the directory holding `target`, for a write: resolved once, walked from `/`
/// without following symlinks, every directory on the way checked on its descriptor (see the
/// module doc). Errors name `target` and the offending directory with its owner and mode.
pub fn open_for_write(dir: &Path, target: &Path, private: bool) -> Result<HeldDir, WriteError> {
    let resolved =
        resolve_dir(dir, private).map_err(|e| WriteError::io(dir, "open directory", e))?;
    let unsafe_dir = |shown: &Path, why: String| WriteError::Unsafe {
        path: target.to_path_buf(),
        why: format!(
            "refusing to write: its directory {} is {why}, so another account could swap the \
             file; make it root's and not group/other-writable",
            shown.display()
        ),
    };
    let me = euid();
    let mut walked = PathBuf::from("/");
    let mut fd = rfs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| WriteError::io(Path::new("/"), "open directory", e.into()))?;
    let names: Vec<&OsStr> = resolved
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    for i in 0..=names.len() {
        if i > 0 {
            let name = names[i - 1];
            walked.push(name);
            // The holder is opened for reading (fsync needs a real descriptor, not O_PATH);
            // the ones above only to walk through.
            let access = if i == names.len() {
                OFlags::RDONLY
            } else {
                OFlags::PATH
            };
            fd = match rfs::openat(
                &fd,
                name,
                access | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(next) => next,
                // A symlink where the resolved path had a directory: swapped since, or (for a
                // state directory) the directory itself is a link.
                Err(rustix::io::Errno::LOOP) | Err(rustix::io::Errno::NOTDIR) => {
                    return Err(unsafe_dir(
                        &walked,
                        "a symlink (or no directory), not the directory resolved a moment ago"
                            .into(),
                    ))
                }
                Err(e) => return Err(WriteError::io(&walked, "open directory", e.into())),
            };
        }
        let st =
            rfs::fstat(&fd).map_err(|e| WriteError::io(&walked, "stat directory", e.into()))?;
        let mode = st.st_mode & 0o7777;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(unsafe_dir(&walked, "not a directory".into()));
        }
        let holder = i == names.len();
        let sticky = mode & 0o1000 != 0 && !(holder && private);
        if holder && st.st_uid != 0 && st.st_uid != me {
            return Err(unsafe_dir(
                &walked,
                format!("owned by uid {} (mode {mode:04o})", st.st_uid),
            ));
        }
        if mode & 0o022 != 0 && !sticky {
            return Err(unsafe_dir(
                &walked,
                format!(
                    "writable by group or others (owner uid {}, mode {mode:04o})",
                    st.st_uid
                ),
            ));
        }
    }
    Ok(HeldDir { fd, path: walked })
}

/// Opens `dir` to read a file in it (`--dry-run`, `list`, the journal): no checks, since
/// reading changes nothing; the file itself is then opened relative to it without following
/// a symlink. `None` when the directory does not exist.
pub fn open_for_read(dir: &Path) -> Result<Option<HeldDir>, WriteError> {
    match rfs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(HeldDir {
            fd,
            path: dir.to_path_buf(),
        })),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(WriteError::io(dir, "open directory", e.into())),
    }
}

/// The absolute path to walk: `dir` with every symlink resolved; for a state directory
/// (`private`) only the part above it is, so a state directory that is a symlink is met (and
/// refused) by the walk.
fn resolve_dir(dir: &Path, private: bool) -> io::Result<PathBuf> {
    let last = match dir.components().next_back() {
        Some(Component::Normal(n)) if private => Some(n),
        _ => None,
    };
    match (last, dir.parent()) {
        (Some(last), Some(parent)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            Ok(std::fs::canonicalize(parent)?.join(last))
        }
        _ => std::fs::canonicalize(dir),
    }
}

/// The state directory's own checks, on a descriptor of it that does not follow a symlink:
/// `Ok(None)` when it does not exist (it is created 0700), else `Err(why)` or its owner and
/// mode when it is fine.
pub fn inspect_state_dir(dir: &Path) -> Result<Option<(u32, u32)>, String> {
    // O_PATH with O_NOFOLLOW opens a symlink itself, so fstat sees what the name is.
    let fd = match rfs::open(
        dir,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(format!("cannot inspect it: {}", io::Error::from(e))),
    };
    let st = rfs::fstat(&fd).map_err(|e| format!("cannot inspect it: {}", io::Error::from(e)))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Ok(Some((st.st_uid, st.st_mode & 0o7777))),
        FileType::Symlink => Err("it is a symlink; give the real directory in `state_dir`".into()),
        _ => Err("it is not a directory".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_dir_is_resolved_above_itself_only() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, base.path().join("link")).unwrap();
        let canon = std::fs::canonicalize(base.path()).unwrap();
        assert_eq!(
            resolve_dir(&base.path().join("link"), true).unwrap(),
            canon.join("link")
        );
        assert_eq!(
            resolve_dir(&base.path().join("link"), false).unwrap(),
            canon.join("real")
        );
        let err = open_for_write(&base.path().join("link"), &real.join("x"), true).unwrap_err();
        assert!(err.to_string().contains("a symlink"), "{err}");
        open_for_write(&base.path().join("link"), &real.join("x"), false).unwrap();
    }
}
