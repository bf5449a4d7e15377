//! Which sshd runs and what it is linked with. The binary comes from `--sshd`, else from the
//! ExecStart of systemd's `ssh.service`/`sshd.service` unit file (read as a file: systemd need
//! not be running), else `/usr/sbin/sshd`. Its libraries are followed breadth-first through
//! DT_NEEDED, resolving names as the dynamic loader does (DT_RUNPATH/DT_RPATH with `$ORIGIN`,
//! the directories of /etc/ld.so.conf, then the standard paths), keeping only files of the
//! binary's architecture.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use super::elf;

/// Unit directories in systemd's order of precedence.
const UNIT_DIRS: [&str; 5] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];
const UNITS: [&str; 2] = ["ssh.service", "sshd.service"];
pub const DEFAULT_SSHD: &str = "/usr/sbin/sshd";
const STANDARD_DIRS: [&str; 6] = [
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
    "/lib32",
];
/// Files read at most while following libraries.
const MAX_FILES: usize = 512;
/// Largest file read.
const MAX_SIZE: u64 = 512 << 20;

/// The sshd binary and where its path came from.
pub struct SshdBinary {
    pub path: PathBuf,
    pub source: String,
}

/// `--sshd`, else the unit's ExecStart, else /usr/sbin/sshd.
pub fn locate_sshd(explicit: Option<&Path>) -> SshdBinary {
    if let Some(p) = explicit {
        return SshdBinary {
            path: p.to_path_buf(),
            source: "--sshd".into(),
        };
    }
    for unit in UNITS {
        for dir in UNIT_DIRS {
            let file = Path::new(dir).join(unit);
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            let mut texts = vec![text];
            for d in UNIT_DIRS {
                let dropins = Path::new(d).join(format!("{unit}.d"));
                let mut confs: Vec<PathBuf> = fs::read_dir(&dropins)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                    .collect();
                confs.sort();
                texts.extend(confs.iter().filter_map(|c| fs::read_to_string(c).ok()));
            }
            if let Some(prog) = exec_start(texts.iter().map(String::as_str)) {
                return SshdBinary {
                    path: PathBuf::from(prog),
                    source: format!("ExecStart of {}", file.display()),
                };
            }
        }
    }
    SshdBinary {
        path: PathBuf::from(DEFAULT_SSHD),
        source: "the default path".into(),
    }
}

/// The program of the effective `ExecStart=` over a unit file and its drop-ins in order (an
/// empty `ExecStart=` resets the list; prefixes `-@:+!` are skipped). Only absolute paths.
pub fn exec_start<'a>(texts: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut prog = None;
    for text in texts {
        let mut in_service = false;
        for line in text.lines() {
            let l = line.trim();
            if l.starts_with('[') {
                in_service = l == "[Service]";
                continue;
            }
            if !in_service {
                continue;
            }
            let Some((k, v)) = l.split_once('=') else {
                continue;
            };
            if k.trim() != "ExecStart" {
                continue;
            }
            let v = v.trim().trim_start_matches(['-', '@', ':', '+', '!']);
            prog = v
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
                .map(str::to_string);
        }
    }
    prog
}

/// What following the libraries found.
pub struct Linkage {
    /// The chain from the binary to the library matching, e.g. `[sshd, libwrap.so.0]`.
    pub found: Option<Vec<String>>,
    /// Needed names that could not be found on this system.
    pub unresolved: Vec<String>,
}

/// Follows `binary`'s DT_NEEDED breadth-first looking for a library whose name `matches`.
pub fn find_library(binary: &Path, matches: impl Fn(&str) -> bool) -> Result<Linkage, String> {
    let root = read_elf(binary)?;
    let dirs = ld_so_conf_dirs();
    let mut queue = VecDeque::from([(
        binary.to_path_buf(),
        root.clone(),
        vec![binary.display().to_string()],
    )]);
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut unresolved = Vec::new();
    while let Some((path, dynamic, chain)) = queue.pop_front() {
        for name in &dynamic.needed {
            let mut chain = chain.clone();
            chain.push(name.clone());
            if matches(name) {
                return Ok(Linkage {
                    found: Some(chain),
                    unresolved,
                });
            }
            if seen.len() >= MAX_FILES {
                continue;
            }
            match resolve(name, &path, &dynamic, root.machine, &dirs) {
                Some((lib, d)) => {
                    if seen.insert(lib.clone()) {
                        queue.push_back((lib, d, chain));
                    }
                }
                None => {
                    if !unresolved.contains(name) {
                        unresolved.push(name.clone());
                    }
                }
            }
        }
    }
    Ok(Linkage {
        found: None,
        unresolved,
    })
}

fn read_elf(path: &Path) -> Result<elf::Dynamic, String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_SIZE {
        return Err(format!(
            "{} is larger than {MAX_SIZE} bytes",
            path.display()
        ));
    }
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    elf::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn resolve(
    name: &str,
    from: &Path,
    dynamic: &elf::Dynamic,
    machine: u16,
    dirs: &[PathBuf],
) -> Option<(PathBuf, elf::Dynamic)> {
    let origin = from
        .parent()
        .unwrap_or(Path::new("/"))
        .display()
        .to_string();
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)]
    } else {
        dynamic
            .search
            .iter()
            .map(|d| PathBuf::from(d.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin)))
            .chain(dirs.iter().cloned())
            .chain(STANDARD_DIRS.iter().map(PathBuf::from))
            .map(|d| d.join(name))
            .collect()
    };
    candidates.into_iter().find_map(|c| {
        let d = read_elf(&c).ok()?;
        (d.machine == machine).then_some((c, d))
    })
}

/// The directories /etc/ld.so.conf names, following `include` lines (globs with `*` in the
/// file name), depth-limited.
pub fn ld_so_conf_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    read_ld_conf(Path::new("/etc/ld.so.conf"), &mut dirs, 0);
    dirs
}

fn read_ld_conf(file: &Path, dirs: &mut Vec<PathBuf>, depth: usize) {
    if depth > 8 {
        return;
    }
    let Ok(text) = fs::read_to_string(file) else {
        return;
    };
    for line in text.lines() {
        let l = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = l.strip_prefix("include") {
            for f in glob(pattern.trim(), file.parent().unwrap_or(Path::new("/"))) {
                read_ld_conf(&f, dirs, depth + 1);
            }
        } else if l.starts_with('/') {
            let d = PathBuf::from(l);
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
}

/// Expands a path whose last component may hold one `*`.
fn glob(pattern: &str, base: &Path) -> Vec<PathBuf> {
    let p = if pattern.starts_with('/') {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let Some((pre, post)) = name.split_once('*') else {
        return vec![p.clone()];
    };
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.to_string();
            (n.starts_with(pre) && n.ends_with(post) && n.len() >= pre.len() + post.len())
                .then(|| e.path())
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_of_units_and_dropins() {
        let unit =
            "[Unit]\nDescription=x\nExecStart=/bogus\n[Service]\nExecStartPre=/usr/sbin/sshd -t\n\
                    ExecStart=/usr/sbin/sshd -D $SSHD_OPTS\n";
        assert_eq!(exec_start([unit]).as_deref(), Some("/usr/sbin/sshd"));
        let dropin = "[Service]\nExecStart=\nExecStart=-/opt/ssh/sbin/sshd -D\n";
        assert_eq!(
            exec_start([unit, dropin]).as_deref(),
            Some("/opt/ssh/sbin/sshd")
        );
        assert_eq!(exec_start(["[Service]\nExecStart=\n"]), None);
        assert_eq!(exec_start(["[Service]\nExecStart=sshd -D\n"]), None);
    }

    #[test]
    fn libwrap_is_found_through_the_binarys_own_libraries() {
        use crate::doctor::elf::tests::tiny;
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        fs::create_dir(&lib).unwrap();
        // sshd -> libhelper.so.1 (found through RUNPATH $ORIGIN/lib) -> libwrap.so.0
        fs::write(
            dir.path().join("sshd"),
            tiny(&["libhelper.so.1"], Some("$ORIGIN/lib")),
        )
        .unwrap();
        fs::write(lib.join("libhelper.so.1"), tiny(&["libwrap.so.0"], None)).unwrap();
        let l = find_library(&dir.path().join("sshd"), |n| n.starts_with("libwrap.so")).unwrap();
        let chain = l.found.expect("found through libhelper");
        assert_eq!(chain[1..], ["libhelper.so.1", "libwrap.so.0"]);
        // Without the helper on disk: not found, and the missing name is reported.
        fs::remove_file(lib.join("libhelper.so.1")).unwrap();
        let l = find_library(&dir.path().join("sshd"), |n| n.starts_with("libwrap.so")).unwrap();
        assert!(l.found.is_none());
        assert_eq!(l.unresolved, ["libhelper.so.1"]);
        // A loop of libraries ends.
        fs::write(
            lib.join("libhelper.so.1"),
            tiny(&["libhelper.so.1"], Some("$ORIGIN")),
        )
        .unwrap();
        let l = find_library(&dir.path().join("sshd"), |n| n.starts_with("libwrap.so")).unwrap();
        assert!(l.found.is_none());
    }
}
