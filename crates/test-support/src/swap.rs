//! The planted-link race on a directory: while a writer is paused (`KNOCKWRAP_TEST_PAUSE`),
//! the directory it checked is renamed away and a symlink to another directory put in its
//! place. [`contents`] records what that other directory holds, to show nothing there was
//! created, changed or removed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Every entry of `dir` (not recursive): regular files with their text, symlinks with their
/// target, anything else with its kind.
pub fn contents(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("dir entry");
        let kind = entry.file_type().expect("file type");
        let value = if kind.is_symlink() {
            let mut v = b"symlink -> ".to_vec();
            v.extend_from_slice(
                std::fs::read_link(entry.path())
                    .expect("read link")
                    .as_os_str()
                    .as_encoded_bytes(),
            );
            v
        } else if kind.is_file() {
            std::fs::read(entry.path()).expect("read file")
        } else {
            format!("{kind:?}").into_bytes()
        };
        out.insert(
            entry.file_name().to_string_lossy().into_owned(),
            String::from_utf8_lossy(&value).into_owned(),
        );
    }
    out
}

/// Renames `dir` to `aside` and puts a symlink to `target` at `dir`.
pub fn swap_for_symlink(dir: &Path, aside: &Path, target: &Path) {
    std::fs::rename(dir, aside).expect("rename the directory away");
    std::os::unix::fs::symlink(target, dir).expect("plant the symlink");
}

/// Waits until `path` exists (a writer's lock file: the writer holds its lock), or panics
/// after `timeout`.
pub fn wait_for(path: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::fs::symlink_metadata(path).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
