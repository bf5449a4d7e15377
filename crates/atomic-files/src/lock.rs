//! The sidecar lock: an exclusive `flock` on `<dir>/.<name>.knockwrap.lock`, taken with a deadline.
//!
//! The lock lives on a file that is never renamed over, so every writer locks the same inode;
//! locking the managed file itself would be useless once a rename gives it a new inode. It is
//! opened relative to the directory the write happens in (see `dirfd`), never through a
//! symlink.

use std::ffi::{OsStr, OsString};
use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};

use crate::dirfd::HeldDir;
use crate::error::WriteError;

/// Path of the sidecar lock for a file named `name` in `dir`.
pub fn lock_path(dir: &Path, name: &OsStr) -> PathBuf {
    dir.join(lock_name(name))
}

/// `.<name>.knockwrap.lock`.
fn lock_name(name: &OsStr) -> OsString {
    let mut lock_name = OsString::from(".");
    lock_name.push(name);
    lock_name.push(".knockwrap.lock");
    lock_name
}

/// An exclusive lock, released when dropped (closing the descriptor releases the flock).
#[derive(Debug)]
pub struct SidecarLock {
    _file: File,
}

/// Take the exclusive lock beside the file `name` in `dir` for the managed file `target`,
/// polling until `timeout` has passed. Errors name the managed file first, then the lock file.
pub fn acquire(
    target: &Path,
    dir: &HeldDir,
    name: &OsStr,
    timeout: Duration,
) -> Result<SidecarLock, WriteError> {
    let path = lock_path(dir.path(), name);
    let lock_err = |op, source| WriteError::Lock {
        path: target.to_path_buf(),
        lock: path.clone(),
        op,
        source,
    };
    let file =
        open_lock_file(dir, &lock_name(name)).map_err(|e| lock_err("create lock file", e))?;
    let deadline = Instant::now() + timeout;
    // Start with short sleeps so an uncontended or briefly held lock is cheap, then back off.
    let mut pause = Duration::from_micros(200);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(SidecarLock { _file: file }),
            Err(TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    return Err(WriteError::LockTimeout {
                        path: target.to_path_buf(),
                        lock: path,
                        waited: timeout,
                    });
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(TryLockError::Error(e)) => return Err(lock_err("lock", e)),
        }
    }
}

/// The PID holding a flock on the lock file at `path`, where the kernel reports it
/// (`/proc/locks`), for the log line about a lock held elsewhere.
pub fn holder_pid(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(path).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&locks, ino)
}

/// The PID of an FLOCK on inode `ino` in `/proc/locks` text.
fn holder_in(locks: &str, ino: u64) -> Option<u32> {
    locks.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (blocked waiters have "->").
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) != Some(&"FLOCK") || f.get(2) == Some(&"->") {
            return None;
        }
        let inode = f.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
        (inode == ino).then(|| f.get(4)?.parse().ok())?
    })
}

fn open_lock_file(dir: &HeldDir, name: &OsStr) -> io::Result<File> {
    // A lock file planted as a symlink must not make root create the file it names.
    let flags = OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let created = rustix::fs::openat(
        dir.fd(),
        name,
        flags | OFlags::RDWR | OFlags::CREATE,
        Mode::from_raw_mode(0o600),
    );
    match created {
        Ok(fd) => Ok(File::from(fd)),
        // On a read-only file system an existing lock file can still be flocked read-only; the
        // write that follows then fails with the real reason (EROFS) naming the managed file.
        Err(e) if is_readonly_like(e) => {
            match rustix::fs::openat(dir.fd(), name, flags | OFlags::RDONLY, Mode::empty()) {
                Ok(fd) => Ok(File::from(fd)),
                Err(_) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn is_readonly_like(e: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    matches!(e, Errno::ROFS | Errno::ACCESS | Errno::PERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let text = "1: POSIX  ADVISORY  WRITE 10 08:01:77 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 4242 fd:00:1234 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 99 fd:00:1234 0 EOF\n";
        assert_eq!(holder_in(text, 1234), Some(4242));
        assert_eq!(holder_in(text, 77), None);
        // A real lock held by this process.
        let dir = tempfile::tempdir().unwrap();
        let held_dir = crate::dirfd::open_for_write(dir.path(), dir.path(), false).unwrap();
        let path = lock_path(held_dir.path(), OsStr::new("x"));
        let held = acquire(&path, &held_dir, OsStr::new("x"), Duration::from_secs(1)).unwrap();
        assert_eq!(holder_pid(&path), Some(std::process::id()));
        drop(held);
        assert_eq!(holder_pid(&path), None);
    }

    #[test]
    fn lock_path_is_a_hidden_sibling() {
        let p = lock_path(Path::new("/etc"), std::ffi::OsStr::new("hosts.allow"));
        assert_eq!(p, Path::new("/etc/.hosts.allow.knockwrap.lock"));
    }

    #[test]
    fn second_lock_times_out_while_first_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let d = crate::dirfd::open_for_write(dir.path(), dir.path(), false).unwrap();
        let t = dir.path().join("x");
        let n = OsStr::new("x");
        let first = acquire(&t, &d, n, Duration::from_millis(100)).unwrap();
        let start = Instant::now();
        let err = acquire(&t, &d, n, Duration::from_millis(150)).unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert!(matches!(err, WriteError::LockTimeout { .. }), "{err}");
        assert!(err.to_string().contains("lock timeout"), "{err}");
        drop(first);
        acquire(&t, &d, n, Duration::from_millis(100)).unwrap();
    }
}
