//! The atomic update, the one routine every file knockwrap writes goes through (hosts.allow,
//! the lease journal, one-time and TOTP progress, the status snapshot and metrics): resolve a
//! symlinked file once, open and check its directory (`dirfd`), lock the sidecar, read, edit,
//! write a same-directory temp file carrying the original's mode/owner/xattrs, fsync, keep
//! `<file>.bak`, re-check nobody changed the file, rename over it, fsync the directory. On any
//! error the original is untouched and no temp file is left behind.
//!
//! Every step after the directory is opened and checked is relative to that one descriptor
//! (`openat` with `O_NOFOLLOW`, `linkat`, `renameat`, `unlinkat`, `fstatat` without following,
//! `fsync` of the descriptor): swapping the directory, or one above it, for a symlink between
//! the check and the rename cannot redirect root's write. The write lands in the directory that
//! was checked, or fails.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::dirfd::{self, HeldDir};
use crate::error::{UpdateError, WriteError};
use crate::fsmeta::{self, Snapshot, Xattr};
use crate::lock;

/// How an update behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keep the previous version as `<file>.bak`.
    pub backup: bool,
    /// How long to wait for another writer's lock.
    pub lock_timeout: Duration,
    /// fsync the temp file and the directory. Off only for benchmarks and for files that are
    /// rewritten every few seconds anyway (the daemon's status snapshot and metrics).
    pub durable: bool,
    /// How many times to redo the edit when someone else changes the file meanwhile.
    pub max_attempts: u32,
    /// A state file of knockwrap's own (lease journal, progress): never written through a
    /// symlink (a link planted in the state directory is refused, not followed), and always
    /// owner-only (0600), whatever mode it had.
    pub private: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backup: false,
            lock_timeout: Duration::from_secs(10),
            durable: true,
            max_attempts: 20,
            private: false,
        }
    }
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The file actually read and replaced (symlinks resolved).
    pub path: PathBuf,
    /// Whether the file existed before.
    pub existed: bool,
    /// Content before (as finally read, under the lock).
    pub before: Vec<u8>,
    /// Content after; equal to `before` when nothing changed.
    pub after: Vec<u8>,
    /// Whether a new version was written.
    pub written: bool,
    /// Reads done: 1, plus one for each time a foreign edit forced a redo.
    pub attempts: u32,
}

fn symlinked_state_file(path: &Path) -> WriteError {
    WriteError::Unsafe {
        path: path.to_path_buf(),
        why: "a state file must not be a symlink: refusing to follow it (planted by another \
              account?); remove it"
            .into(),
    }
}

/// A state file must not be a symlink: one planted in a writable state directory would
/// otherwise make root create or overwrite a file elsewhere (`/etc/nologin`). Checked on the
/// name in the held directory (`fstatat` without following).
fn refuse_symlink_at(dir: &HeldDir, name: &OsStr, path: &Path) -> Result<(), WriteError> {
    match rustix::fs::statat(dir.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st)
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink =>
        {
            Err(symlinked_state_file(path))
        }
        _ => Ok(()),
    }
}

/// Follow a symlink chain to the file that must be replaced. A missing final target is fine
/// (it will be created); the symlink itself is never replaced.
pub fn resolve_target(path: &Path) -> Result<PathBuf, WriteError> {
    let mut cur = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                let link =
                    fs::read_link(&cur).map_err(|e| WriteError::io(&cur, "read symlink", e))?;
                cur = if link.is_absolute() {
                    link
                } else {
                    cur.parent().unwrap_or_else(|| Path::new(".")).join(link)
                };
            }
            Ok(m) if m.is_dir() => {
                return Err(WriteError::io(
                    &cur,
                    "edit",
                    io::Error::from_raw_os_error(libc::EISDIR),
                ))
            }
            Ok(_) => return Ok(cur),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(cur),
            Err(e) => return Err(WriteError::io(&cur, "stat", e)),
        }
    }
    Err(WriteError::Symlink {
        path: path.to_path_buf(),
        why: "too many levels of symbolic links".into(),
    })
}

fn split(target: &Path) -> Result<(PathBuf, OsString), WriteError> {
    let name = target.file_name().ok_or_else(|| WriteError::Symlink {
        path: target.to_path_buf(),
        why: "the path has no file name".into(),
    })?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_os_string()))
}

/// The file as read: its bytes, identity and attributes (None when it does not exist).
struct Current {
    bytes: Vec<u8>,
    snap: Option<Snapshot>,
    xattrs: Vec<Xattr>,
    /// The descriptor we read from: after our rename it still reaches the replaced inode, so
    /// bytes a non-locking writer appended there at the last moment can be salvaged.
    file: Option<File>,
}

/// Reads `name` in `dir` (`target` is its path, for messages), never through a symlink.
/// `xattrs`: also read its security xattrs (for a write, which carries them over; a read for
/// display has no use for them).
fn read_current(
    dir: &HeldDir,
    name: &OsStr,
    target: &Path,
    xattrs: bool,
) -> Result<Current, WriteError> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut file = match rustix::fs::openat(dir.fd(), name, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(Errno::NOENT) => {
            return Ok(Current {
                bytes: Vec::new(),
                snap: None,
                xattrs: Vec::new(),
                file: None,
            })
        }
        Err(e) => return Err(WriteError::io(target, "open", e.into())),
    };
    let meta = file
        .metadata()
        .map_err(|e| WriteError::io(target, "stat", e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| WriteError::io(target, "read", e))?;
    let xattrs = if xattrs {
        fsmeta::security_xattrs(&file).map_err(|e| WriteError::io(target, "read xattrs", e))?
    } else {
        Vec::new()
    };
    Ok(Current {
        bytes,
        snap: Some(Snapshot::of(&meta)),
        xattrs,
        file: Some(file),
    })
}

/// Did the file stay exactly as we read it? Metadata first (cheap), then the bytes, because
/// timestamps can be too coarse to see a same-size rewrite. The bytes are read again through
/// the descriptor of the first read: the metadata check has just shown that the name still
/// leads to that inode (device and inode number), so this reads what a reopen by name would,
/// without a second open, a second copy of the file in memory or its xattrs listed again.
fn unchanged_since(
    dir: &HeldDir,
    name: &OsStr,
    target: &Path,
    read: &Current,
) -> Result<bool, WriteError> {
    if !same_metadata(dir, name, target, read)? {
        return Ok(false);
    }
    match &read.file {
        None => Ok(true),
        Some(file) => same_bytes(file, &read.bytes).map_err(|e| WriteError::io(target, "read", e)),
    }
}

/// Does `file` hold exactly `bytes`, from offset 0 to its end? Compared a chunk at a time.
fn same_bytes(file: &File, bytes: &[u8]) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0usize;
    loop {
        let n = match file.read_at(&mut buf, off as u64) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(off == bytes.len());
        }
        match bytes.get(off..off + n) {
            Some(want) if want == &buf[..n] => off += n,
            _ => return Ok(false),
        }
    }
}

/// The cheap check: same inode, size and mtime (or still missing). Done once more right before
/// the rename, to keep the window for a non-locking append as short as a stat.
fn same_metadata(
    dir: &HeldDir,
    name: &OsStr,
    target: &Path,
    read: &Current,
) -> Result<bool, WriteError> {
    match (
        &read.snap,
        rustix::fs::statat(dir.fd(), name, AtFlags::SYMLINK_NOFOLLOW),
    ) {
        (None, Err(Errno::NOENT)) => Ok(true),
        (None, Ok(_)) => Ok(false),
        (Some(_), Err(Errno::NOENT)) => Ok(false),
        (_, Err(e)) => Err(WriteError::io(target, "stat", e.into())),
        (Some(snap), Ok(st)) => {
            let now = Snapshot::of_stat(&st);
            Ok(now.dev == snap.dev
                && now.ino == snap.ino
                && now.size == snap.size
                && now.mtime_ns == snap.mtime_ns)
        }
    }
}

/// Test hook: `KNOCKWRAP_TEST_PAUSE=<step>:<ms>` sleeps at a named step, so tests can widen a
/// race window on purpose. Unset in production; costs one env lookup per step.
fn pause_at(step: &str) {
    if let Ok(spec) = std::env::var("KNOCKWRAP_TEST_PAUSE") {
        if let Some((s, ms)) = spec.split_once(':') {
            if s == step {
                if let Ok(ms) = ms.parse::<u64>() {
                    std::thread::sleep(Duration::from_millis(ms));
                }
            }
        }
    }
}

/// A temp file in a held directory that unlinks itself unless it was renamed into place.
struct TempFile<'d> {
    dir: &'d HeldDir,
    name: OsString,
    armed: bool,
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = rustix::fs::unlinkat(self.dir.fd(), &self.name, AtFlags::empty());
        }
    }
}

/// The kinds of temp file an update makes beside the file: the new version, and the staged
/// backup.
const TEMP_KINDS: [&str; 2] = ["tmp", "baktmp"];

/// `.<name>.knockwrap.<kind>`: a temp name beside `name`. One fixed name per kind is enough:
/// temp files are only ever created under the sidecar lock, so no two writers use one at the
/// same time, and a killed writer's leftover is known by name (see [`sweep_stale_temps`]).
fn sibling(name: &OsStr, kind: &str) -> OsString {
    let mut n = OsString::from(".");
    n.push(name);
    n.push(".knockwrap.");
    n.push(kind);
    n
}

/// Remove temp files a killed writer left behind: an `unlinkat` of each temp name (ENOENT when
/// there is none), not a listing of the directory. Safe because we hold the lock and temp files
/// are only ever created under it.
fn sweep_stale_temps(dir: &HeldDir, name: &OsStr) {
    for kind in TEMP_KINDS {
        let _ = rustix::fs::unlinkat(dir.fd(), sibling(name, kind), AtFlags::empty());
    }
}

/// Write `bytes` to a fresh temp file `temp_name` in `dir` with the given attributes.
fn write_temp<'d>(
    dir: &'d HeldDir,
    temp_name: OsString,
    target: &Path,
    bytes: &[u8],
    read: &Current,
    durable: bool,
    private: bool,
) -> Result<TempFile<'d>, WriteError> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut file = rustix::fs::openat(dir.fd(), &temp_name, flags, Mode::from_raw_mode(0o600))
        .map(File::from)
        .map_err(|e| WriteError::io(target, "create temporary file", e.into()))?;
    let temp = TempFile {
        dir,
        name: temp_name,
        armed: true,
    };
    file.write_all(bytes)
        .map_err(|e| WriteError::io(target, "write temporary file", e))?;
    let (owner, mode) = match &read.snap {
        // Ours, whoever owned the old one (a foreign one is refused before this).
        Some(_) if private => (None, 0o600),
        Some(s) => (Some((s.uid, s.gid)), s.mode),
        None if private => (None, 0o600),
        // A new hosts file: world-readable like the distribution's, owned by us (root).
        None => (None, 0o644),
    };
    fsmeta::set_owner_and_mode(&file, owner, mode)
        .map_err(|e| WriteError::io(target, "set owner and mode of temporary file", e))?;
    fsmeta::set_xattrs(&file, &read.xattrs)
        .map_err(|e| WriteError::io(target, "copy security xattrs", e))?;
    if durable {
        file.sync_all()
            .map_err(|e| WriteError::io(target, "fsync temporary file", e))?;
    }
    Ok(temp)
}

/// Make `<file>.bak` the version about to be replaced, atomically: hard-link the current file
/// to a temp name and rename that over the old .bak, so .bak is always one whole version. Where
/// hard links are refused, copy the bytes we read instead (also temp + fsync + rename).
fn keep_backup(
    dir: &HeldDir,
    name: &OsStr,
    read: &Current,
    durable: bool,
) -> Result<(), WriteError> {
    let mut bak_name = name.to_os_string();
    bak_name.push(".bak");
    let bak = dir.path().join(&bak_name);
    // No leftover under this name: the sweep at the start of the update removed it.
    let tmp = sibling(name, "baktmp");
    // linkat without AT_SYMLINK_FOLLOW links the name itself, never what a symlink names.
    let staged = match rustix::fs::linkat(dir.fd(), name, dir.fd(), &tmp, AtFlags::empty()) {
        Ok(()) => TempFile {
            dir,
            name: tmp,
            armed: true,
        },
        Err(Errno::PERM | Errno::XDEV | Errno::MLINK | Errno::NOTSUP) => {
            write_temp(dir, tmp, &bak, &read.bytes, read, durable, false)?
        }
        Err(e) => return Err(WriteError::io(&bak, "create backup", e.into())),
    };
    rustix::fs::renameat(dir.fd(), &staged.name, dir.fd(), &bak_name)
        .map_err(|e| WriteError::io(&bak, "replace backup", e.into()))?;
    // `staged` stays armed: when .bak already was a link to the same inode, rename(2) does
    // nothing and leaves the temp name, which the drop then removes (ENOENT otherwise).
    drop(staged);
    Ok(())
}

/// Apply `edit` to the file at `path` atomically (see the module doc). `edit` gets the current
/// bytes and returns the new ones, or None for "no change". It may run more than once: when
/// someone else changed the file between our read and our rename, the edit is redone on their
/// version.
pub fn update<E, F>(path: &Path, opts: &Options, mut edit: F) -> Result<Outcome, UpdateError<E>>
where
    F: FnMut(&[u8]) -> Result<Option<Vec<u8>>, E>,
{
    update_log(path, opts, |bytes| {
        Ok(edit(bytes)?.map_or(Change::Keep, Change::Replace))
    })
}

/// What the edit of an append-only file (the lease journal) asks [`update_log`] for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing to write.
    Keep,
    /// Add these bytes (whole records, each ending in a newline) at the end of the file.
    Append(Vec<u8>),
    /// Replace the whole file with these bytes (the atomic rename of [`update`]).
    Replace(Vec<u8>),
}

/// [`update`] for a file that mostly grows at its end: under the same lock, after the same
/// checks, an [`Change::Append`] is one `write` at the end of the file it read and one
/// `fdatasync`, instead of a whole new file, its fsync, a rename and a directory fsync. A
/// reader that looks mid-write sees a last record without its newline, which it ignores (so
/// does a reader after a crash mid-write); a failed write is cut off again before the error
/// is returned. An append becomes a replace where it cannot be done in place: no file yet, a
/// state file whose owner or mode is not ours and 0600 (the rewrite puts them right), or a
/// file that does not end in a newline (then a torn last record, which the replacement drops).
pub fn update_log<E, F>(path: &Path, opts: &Options, edit: F) -> Result<Outcome, UpdateError<E>>
where
    F: FnMut(&[u8]) -> Result<Change, E>,
{
    update_log_then(path, opts, edit, |_| Ok(()))
}

/// [`update`], then `after` on the outcome while the lock is still held: once the new version
/// is durable (or the edit changed nothing), before any other knockwrap writer can read the
/// file. The state owner drops a lease there, so that a line and its lease change in one
/// transaction whoever races (a grant waits for the lock). An error from `after` is returned
/// as the edit's; the file stays as written.
pub fn update_then<E, F, A>(
    path: &Path,
    opts: &Options,
    mut edit: F,
    after: A,
) -> Result<Outcome, UpdateError<E>>
where
    F: FnMut(&[u8]) -> Result<Option<Vec<u8>>, E>,
    A: FnOnce(&Outcome) -> Result<(), E>,
{
    update_log_then(
        path,
        opts,
        |bytes| Ok(edit(bytes)?.map_or(Change::Keep, Change::Replace)),
        after,
    )
}

fn update_log_then<E, F, A>(
    path: &Path,
    opts: &Options,
    mut edit: F,
    after_write: A,
) -> Result<Outcome, UpdateError<E>>
where
    F: FnMut(&[u8]) -> Result<Change, E>,
    A: FnOnce(&Outcome) -> Result<(), E>,
{
    let done = |outcome: Outcome| -> Result<Outcome, UpdateError<E>> {
        after_write(&outcome).map_err(UpdateError::Edit)?;
        Ok(outcome)
    };
    // A state file is never resolved (a symlink there is refused below); hosts.allow is
    // resolved once, and the link stays.
    let target = if opts.private {
        path.to_path_buf()
    } else {
        resolve_target(path)?
    };
    let (dir_path, name) = split(&target)?;
    let dir = dirfd::open_for_write(&dir_path, &target, opts.private)?;
    if opts.private {
        refuse_symlink_at(&dir, &name, &target)?;
    }
    let _lock = lock::acquire(&target, &dir, &name, opts.lock_timeout)?;
    pause_at("locked");
    sweep_stale_temps(&dir, &name);
    let mut attempts = 0;
    let mut outcome: Option<Outcome> = None;
    // Bytes a non-locking writer appended to the replaced inode after our last check.
    let mut salvage: Option<Vec<u8>> = None;
    loop {
        attempts += 1;
        if attempts > opts.max_attempts {
            return Err(WriteError::Unstable {
                path: target,
                attempts: attempts - 1,
            }
            .into());
        }
        let read = read_current(&dir, &name, &target, true)?;
        if opts.private {
            if let Some(snap) = &read.snap {
                refuse_foreign(&target, snap.uid, snap.mode)?;
            }
            pause_at("state-read");
        }
        let after = match &salvage {
            Some(tail) => {
                let mut a = read.bytes.clone();
                if !a.is_empty() && !a.ends_with(b"\n") {
                    a.push(b'\n');
                }
                a.extend_from_slice(tail);
                a
            }
            None => match edit(&read.bytes).map_err(UpdateError::Edit)? {
                Change::Replace(a) if a != read.bytes => a,
                Change::Append(tail) if !tail.is_empty() => {
                    if let Some(snap) = appendable(&read, opts) {
                        if !append(&dir, &name, &target, snap, &tail, opts.durable)? {
                            continue;
                        }
                        let mut after = read.bytes.clone();
                        after.extend_from_slice(&tail);
                        return done(Outcome {
                            path: target,
                            existed: true,
                            before: read.bytes,
                            after,
                            written: true,
                            attempts,
                        });
                    }
                    // Whole records only: a torn last record (no newline) is not carried over.
                    let whole = read
                        .bytes
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1);
                    let mut a = read.bytes[..whole].to_vec();
                    a.extend_from_slice(&tail);
                    a
                }
                _ => {
                    return done(Outcome {
                        path: target,
                        existed: read.snap.is_some(),
                        after: read.bytes.clone(),
                        before: read.bytes,
                        written: false,
                        attempts,
                    })
                }
            },
        };
        let temp = write_temp(
            &dir,
            sibling(&name, "tmp"),
            &target,
            &after,
            &read,
            opts.durable,
            opts.private,
        )?;
        // The backup goes first so that only a stat separates the last check from the rename.
        if opts.backup && read.snap.is_some() && salvage.is_none() {
            keep_backup(&dir, &name, &read, opts.durable)?;
            pause_at("backup-kept");
        }
        pause_at("temp-written");
        if !unchanged_since(&dir, &name, &target, &read)?
            || !same_metadata(&dir, &name, &target, &read)?
        {
            drop(temp);
            continue;
        }
        pause_at("checked");
        rustix::fs::renameat(dir.fd(), &temp.name, dir.fd(), &name)
            .map_err(|e| WriteError::io(&target, "rename", e.into()))?;
        let mut temp = temp;
        temp.armed = false;
        if opts.durable {
            dir.sync()
                .map_err(|e| WriteError::io(dir.path(), "fsync directory", e))?;
        }
        salvage = appended_after_check(&read);
        let result = match outcome.take() {
            // A salvage round: the caller's edit happened in the first round.
            Some(first) => Outcome {
                after,
                attempts,
                ..first
            },
            None => Outcome {
                path: target.clone(),
                existed: read.snap.is_some(),
                before: read.bytes,
                after,
                written: true,
                attempts,
            },
        };
        if salvage.is_none() {
            return done(result);
        }
        outcome = Some(result);
    }
}

/// Can records go at the end of the file as read (see [`update_log`])? Its identity as read
/// when they can.
fn appendable<'r>(read: &'r Current, opts: &Options) -> Option<&'r Snapshot> {
    let snap = read.snap.as_ref()?;
    let ours = !opts.private || (snap.mode & 0o7777 == 0o600 && snap.uid == dirfd::euid());
    (ours && read.bytes.ends_with(b"\n")).then_some(snap)
}

/// Appends `tail` to the file read as `snap`, in place: opened again by name in the held
/// directory (never through a symlink) and checked to be that same inode at the same size, so
/// the bytes land right after what the edit saw. Under the lock no other knockwrap writes;
/// when a foreign non-locking writer got in between, nothing is written and the result is
/// false: the caller reads again and redoes its edit.
fn append(
    dir: &HeldDir,
    name: &OsStr,
    target: &Path,
    snap: &Snapshot,
    tail: &[u8],
    durable: bool,
) -> Result<bool, WriteError> {
    let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut file = rustix::fs::openat(dir.fd(), name, flags, Mode::empty())
        .map(File::from)
        .map_err(|e| WriteError::io(target, "open for append", e.into()))?;
    let meta = file
        .metadata()
        .map_err(|e| WriteError::io(target, "stat", e))?;
    let now = Snapshot::of(&meta);
    if (now.dev, now.ino, now.size, now.mtime_ns) != (snap.dev, snap.ino, snap.size, snap.mtime_ns)
    {
        return Ok(false);
    }
    let written = file
        .write_all(tail)
        .and_then(|()| if durable { file.sync_data() } else { Ok(()) });
    if let Err(e) = written {
        // Cut the torn record off again (readers ignore it meanwhile: it has no newline, or
        // its fdatasync failed and the caller reports the change as not made).
        let _ = file.set_len(snap.size);
        return Err(WriteError::io(target, "append", e));
    }
    Ok(true)
}

/// Bytes appended to the inode we just replaced, after the check that preceded the rename
/// (a `>>` that slipped into the window). Only a pure append is salvaged.
fn appended_after_check(read: &Current) -> Option<Vec<u8>> {
    let (file, snap) = (read.file.as_ref()?, read.snap.as_ref()?);
    let size = file.metadata().ok()?.len();
    if size <= snap.size {
        return None;
    }
    let mut tail = Vec::new();
    let mut f = file;
    f.seek(io::SeekFrom::Start(snap.size)).ok()?;
    f.read_to_end(&mut tail).ok()?;
    (!tail.is_empty()).then_some(tail)
}

/// What `update` would do, without locking or writing anything (for `--dry-run`).
pub fn preview<E, F>(path: &Path, mut edit: F) -> Result<Outcome, UpdateError<E>>
where
    F: FnMut(&[u8]) -> Result<Option<Vec<u8>>, E>,
{
    let target = resolve_target(path)?;
    let read = read_for_display(&target)?;
    let after = edit(&read.bytes)
        .map_err(UpdateError::Edit)?
        .unwrap_or_else(|| read.bytes.clone());
    Ok(Outcome {
        path: target,
        existed: read.snap.is_some(),
        written: false,
        attempts: 1,
        before: read.bytes,
        after,
    })
}

/// A state file another account owns, or that group or others may write, could hold anything
/// that account chose: refused for reading and writing alike.
fn refuse_foreign(path: &Path, uid: u32, mode: u32) -> Result<(), WriteError> {
    if uid != dirfd::euid() || mode & 0o022 != 0 {
        return Err(WriteError::ForeignOwner {
            path: path.to_path_buf(),
            uid,
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Reads a state file of knockwrap's own (missing = empty): never through a symlink, and only
/// when our account owns it and nobody else may write it ([`WriteError::ForeignOwner`]).
pub fn read_private(path: &Path) -> Result<Vec<u8>, WriteError> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut file = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(Errno::NOENT) => return Ok(Vec::new()),
        Err(Errno::LOOP) => return Err(symlinked_state_file(path)),
        Err(e) => return Err(WriteError::io(path, "open", e.into())),
    };
    let meta = file
        .metadata()
        .map_err(|e| WriteError::io(path, "stat", e))?;
    refuse_foreign(
        path,
        std::os::unix::fs::MetadataExt::uid(&meta),
        std::os::unix::fs::MetadataExt::mode(&meta),
    )?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| WriteError::io(path, "read", e))?;
    Ok(bytes)
}

/// Read a file for display (missing = empty), following symlinks.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, WriteError> {
    let target = resolve_target(path)?;
    Ok(read_for_display(&target)?.bytes)
}

/// The resolved `target`, read relative to its directory (no checks: nothing is written). A
/// missing directory holds no file: empty, like a missing file.
fn read_for_display(target: &Path) -> Result<Current, WriteError> {
    let (dir_path, name) = split(target)?;
    match dirfd::open_for_read(&dir_path)? {
        Some(dir) => read_current(&dir, &name, target, false),
        None => Ok(Current {
            bytes: Vec::new(),
            snap: None,
            xattrs: Vec::new(),
            file: None,
        }),
    }
}

/// Renames the state file at `path` to `new_name` in the same directory (a corrupt journal set
/// aside), through the state directory's checked descriptor: never in a directory a symlink
/// swapped in, never the file a planted link names.
pub fn rename_aside(path: &Path, new_name: &OsStr) -> Result<PathBuf, WriteError> {
    let (dir_path, name) = split(path)?;
    let dir = dirfd::open_for_write(&dir_path, path, true)?;
    rustix::fs::renameat(dir.fd(), &name, dir.fd(), new_name)
        .map_err(|e| WriteError::io(path, "move aside", e.into()))?;
    Ok(dir_path.join(new_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_compares_the_whole_file_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&p, &bytes).unwrap();
        let file = File::open(&p).unwrap();
        assert!(same_bytes(&file, &bytes).unwrap());
        // One byte differs in a later chunk; the file is longer; the file is shorter.
        let mut other = bytes.clone();
        other[150_000] ^= 1;
        assert!(!same_bytes(&file, &other).unwrap());
        assert!(!same_bytes(&file, &bytes[..bytes.len() - 1]).unwrap());
        let mut longer = bytes.clone();
        longer.push(b'\n');
        assert!(!same_bytes(&file, &longer).unwrap());
        assert!(same_bytes(&File::open(dir.path().join("f")).unwrap(), &bytes).unwrap());
        fs::write(&p, b"").unwrap();
        assert!(same_bytes(&File::open(&p).unwrap(), b"").unwrap());
    }
}
