//! What a replacement must carry over from the file it replaces: mode, owner and `security.*`
//! extended attributes (SELinux labels, IMA/EVM), read and written through descriptors.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;

/// Identity and attributes of the file as read. Equal snapshots plus equal bytes mean nobody
/// touched the file between our read and our re-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Snapshot {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Snapshot {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }

    /// The same from `fstatat` (a name in a held directory, not followed if a symlink).
    // The field types of `struct stat` differ between architectures: a conversion that is
    // the identity on one is needed on another.
    #[allow(clippy::useless_conversion)]
    pub fn of_stat(st: &rustix::fs::Stat) -> Self {
        let ns = |secs: i64, nsec: u64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        Snapshot {
            dev: u64::from(st.st_dev),
            ino: u64::from(st.st_ino),
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_ns: ns(i64::from(st.st_mtime), u64::from(st.st_mtime_nsec)),
            ctime_ns: ns(i64::from(st.st_ctime), u64::from(st.st_ctime_nsec)),
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
        }
    }
}

/// One `security.*` attribute: name (without NUL) and value.
pub type Xattr = (CString, Vec<u8>);

/// The `security.*` attributes of an open file. A file system without xattr support has none.
pub fn security_xattrs(file: &File) -> io::Result<Vec<Xattr>> {
    let names = read_sized(
        unsupported,
        || rustix::fs::flistxattr_query(file),
        |buf| rustix::fs::flistxattr(file, buf),
    )?;
    let Some(names) = names else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for raw in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if !raw.starts_with(b"security.") {
            continue;
        }
        let name = CString::new(raw).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        if let Some(value) = get_xattr(file, &name)? {
            out.push((name, value));
        }
    }
    Ok(out)
}

fn get_xattr(file: &File, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let gone = |e: &io::Error| e.raw_os_error() == Some(libc::ENODATA);
    read_sized(
        gone,
        || rustix::fs::fgetxattr_query(file, name),
        |buf| rustix::fs::fgetxattr(file, name, buf),
    )
}

/// The size-then-fetch protocol of the xattr calls: `query` asks for the length (a null
/// buffer and size 0), then `fetch` fills a buffer of that length; ERANGE on the fetch means
/// the data grew in between, so it asks again. `Ok(None)` when the length query fails in a way
/// `absent` accepts as "nothing there".
fn read_sized(
    absent: impl Fn(&io::Error) -> bool,
    query: impl Fn() -> rustix::io::Result<usize>,
    fetch: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Option<Vec<u8>>> {
    loop {
        let len = match query() {
            Ok(len) => len,
            Err(e) => {
                let e = io::Error::from(e);
                return if absent(&e) { Ok(None) } else { Err(e) };
            }
        };
        let mut buf = vec![0u8; len];
        match fetch(&mut buf) {
            Ok(got) => {
                buf.truncate(got);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Set the attributes on an open file (the replacement, before it is renamed into place).
pub fn set_xattrs(file: &File, attrs: &[Xattr]) -> io::Result<()> {
    for (name, value) in attrs {
        rustix::fs::fsetxattr(
            file,
            name.as_c_str(),
            value,
            rustix::fs::XattrFlags::empty(),
        )?;
    }
    Ok(())
}

/// Give the replacement the original's owner and mode. Without set-id bits (hosts.allow never
/// has them) the mode is set first, while the file is still ours, then the owner: so replacing
/// a file that belongs to another account needs CAP_CHOWN only, not CAP_FOWNER (the unit keeps
/// the first and not the second). With set-id bits the owner goes first, because chown clears
/// them.
pub fn set_owner_and_mode(file: &File, owner: Option<(u32, u32)>, mode: u32) -> io::Result<()> {
    use rustix::fs::{fchmod, fchown, Gid, Mode, Uid};
    let chmod = || fchmod(file, Mode::from_raw_mode(mode & 0o7777));
    let chown = || match owner {
        Some((uid, gid)) => fchown(file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))),
        None => Ok(()),
    };
    if mode & 0o6000 == 0 {
        chmod()?;
        chown()?;
    } else {
        chown()?;
        chmod()?;
    }
    Ok(())
}

fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_mode_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let f = File::create(&p).unwrap();
        set_owner_and_mode(&f, None, 0o100640).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640);
    }

    #[test]
    fn security_xattrs_round_trip_when_supported() {
        let dir = tempfile::tempdir().unwrap();
        let a = File::create(dir.path().join("a")).unwrap();
        let b = File::create(dir.path().join("b")).unwrap();
        let attrs = vec![(
            CString::new("security.knockwrap-test").unwrap(),
            b"v1".to_vec(),
        )];
        match set_xattrs(&a, &attrs) {
            // tmpfs and some overlays refuse arbitrary security.* names: nothing to compare.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) => {
                eprintln!("security xattrs unsupported here: {e}");
                return;
            }
            r => r.unwrap(),
        }
        let got = security_xattrs(&a).unwrap();
        assert!(got.contains(&attrs[0]), "{got:?}");
        set_xattrs(&b, &got).unwrap();
        assert!(security_xattrs(&b).unwrap().contains(&attrs[0]));
    }
}
