//! The sidecar lock: an exclusive `flock` on `<dir>/.<name>.knockwrap.lock`, taken with a deadline.
//!
//! The lock lives on a file that is never renamed over, so every writer locks the same inode;
//! locking the managed file itself would be useless once a rename gives it a new inode.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::WriteError;

/// Path of the sidecar lock for a file named `name` in `dir`.
pub fn lock_path(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    let mut lock_name = std::ffi::OsString::from(".");
    lock_name.push(name);
    lock_name.push(".knockwrap.lock");
    dir.join(lock_name)
}

/// An exclusive lock, released when dropped (closing the descriptor releases the flock).
#[derive(Debug)]
pub struct SidecarLock {
    _file: File,
}

/// Take the exclusive lock at `path` for the managed file `target`, polling until `timeout`
/// has passed. Errors name the managed file first, then the lock file.
pub fn acquire(target: &Path, path: &Path, timeout: Duration) -> Result<SidecarLock, WriteError> {
    let lock_err = |op, source| WriteError::Lock {
        path: target.to_path_buf(),
        lock: path.to_path_buf(),
        op,
        source,
    };
    let file = open_lock_file(path).map_err(|e| lock_err("create lock file", e))?;
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
                        lock: path.to_path_buf(),
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

fn open_lock_file(path: &Path) -> io::Result<File> {
    let created = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // A lock file planted as a symlink must not make root create the file it names.
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match created {
        Ok(f) => Ok(f),
        // On a read-only file system an existing lock file can still be flocked read-only; the
        // write that follows then fails with the real reason (EROFS) naming the managed file.
        Err(e) if is_readonly_like(&e) => match File::open(path) {
            Ok(f) => Ok(f),
            Err(_) => Err(e),
        },
        Err(e) => Err(e),
    }
}

fn is_readonly_like(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM)
    )
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
        let path = dir.path().join("x.lock");
        let held = acquire(&path, &path, Duration::from_secs(1)).unwrap();
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
        let p = dir.path().join(".x.lock");
        let t = dir.path().join("x");
        let first = acquire(&t, &p, Duration::from_millis(100)).unwrap();
        let start = Instant::now();
        let err = acquire(&t, &p, Duration::from_millis(150)).unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert!(matches!(err, WriteError::LockTimeout { .. }), "{err}");
        assert!(err.to_string().contains("lock timeout"), "{err}");
        drop(first);
        acquire(&t, &p, Duration::from_millis(100)).unwrap();
    }
}
