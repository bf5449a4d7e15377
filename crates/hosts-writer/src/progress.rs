//! Durable one-time and TOTP progress in `state_dir`: `onetime-<door>.json` and
//! `totp-<door>.json`, each replaced through the one atomic routine
//! (`atomic_files::update`: lock, temp file, fsync, rename, directory fsync; a state file is
//! never written through a symlink and is always 0600).
//! The operator's one-time sequences file is never written.
//!
//! Contract with `knock_match`: when a `Decision` carries `Consume`, call
//! [`ProgressStore::record`] and act on the decision only if it returns `Ok`. At start-up,
//! [`ProgressStore::apply`] puts the recorded progress into the doors before the matcher is
//! built.
//!
//! One-time progress records `next` (the first unused index) and a SHA-256 digest of the used
//! sequences. On load, if the file's first `next` sequences no longer match that digest (the
//! file was edited, not just appended to), the door is disabled with an error rather than
//! guessing which sequences were used.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use knock_match::{Consume, Door, DoorKind, Step, UsedSteps};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A progress file that cannot be read, written or trusted.
#[derive(Debug, Error)]
pub enum ProgressError {
    #[error("door `{door}`: {path}: {source}")]
    Io {
        door: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("door `{door}`: {path}: {message}")]
    Invalid {
        door: String,
        path: PathBuf,
        message: String,
    },
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct OneTimeRecord {
    door: String,
    next: usize,
    used_sha256: String,
}

/// Used TOTP counters: every counter at or below `floor`, and each one in `used`. Files
/// written before counters were kept one by one hold only `last_used_counter`, read as the
/// floor (what it meant then).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct TotpRecord {
    door: String,
    #[serde(alias = "last_used_counter", default)]
    floor: Option<u64>,
    #[serde(default)]
    used: Vec<u64>,
}

/// Digest of the used sequences, one `port:proto,...` line each.
fn digest(sequences: &[Vec<Step>]) -> String {
    let mut h = Sha256::new();
    for s in sequences {
        let line: Vec<String> = s.iter().map(Step::to_string).collect();
        h.update(line.join(",").as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The progress files of one `state_dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressStore {
    dir: PathBuf,
}

impl ProgressStore {
    pub fn new(state_dir: impl Into<PathBuf>) -> ProgressStore {
        ProgressStore {
            dir: state_dir.into(),
        }
    }

    pub fn one_time_path(&self, door: &str) -> PathBuf {
        self.dir.join(format!("onetime-{door}.json"))
    }

    pub fn totp_path(&self, door: &str) -> PathBuf {
        self.dir.join(format!("totp-{door}.json"))
    }

    /// The first unused index for a one-time door (0 when nothing was recorded).
    pub fn load_one_time(
        &self,
        door: &str,
        sequences: &[Vec<Step>],
    ) -> Result<usize, ProgressError> {
        let path = self.one_time_path(door);
        let Some(rec) = read_json::<OneTimeRecord>(door, &path)? else {
            return Ok(0);
        };
        let invalid = |message: String| ProgressError::Invalid {
            door: door.into(),
            path: path.clone(),
            message,
        };
        if rec.door != door {
            return Err(invalid(format!("records door `{}`", rec.door)));
        }
        if rec.next > sequences.len() {
            return Err(invalid(format!(
                "records {} used sequences but the file holds only {}: it was edited; delete this progress file to start over",
                rec.next,
                sequences.len()
            )));
        }
        if digest(&sequences[..rec.next]) != rec.used_sha256 {
            return Err(invalid(format!(
                "the first {} sequences of the one-time file differ from those recorded as used: it was edited; delete this progress file to start over",
                rec.next
            )));
        }
        Ok(rec.next)
    }

    /// Durably records that sequences `..next` of a one-time door are used.
    pub fn save_one_time(
        &self,
        door: &str,
        sequences: &[Vec<Step>],
        next: usize,
    ) -> Result<(), ProgressError> {
        let next = next.min(sequences.len());
        let rec = OneTimeRecord {
            door: door.into(),
            next,
            used_sha256: digest(&sequences[..next]),
        };
        write_json(door, &self.one_time_path(door), &rec)
    }

    /// The TOTP counters used (none when nothing was recorded).
    pub fn load_totp(&self, door: &str) -> Result<UsedSteps, ProgressError> {
        let path = self.totp_path(door);
        match read_json::<TotpRecord>(door, &path)? {
            None => Ok(UsedSteps::default()),
            Some(rec) if rec.door != door => Err(ProgressError::Invalid {
                door: door.into(),
                path,
                message: format!("records door `{}`", rec.door),
            }),
            Some(rec) => Ok(UsedSteps {
                floor: rec.floor,
                above: rec.used.into_iter().collect(),
            }),
        }
    }

    /// Durably records the TOTP counters used.
    pub fn save_totp(&self, door: &str, used: &UsedSteps) -> Result<(), ProgressError> {
        let rec = TotpRecord {
            door: door.into(),
            floor: used.floor,
            used: used.above.iter().copied().collect(),
        };
        write_json(door, &self.totp_path(door), &rec)
    }

    /// Persists what a decision consumed. `door` is the matcher's door (its sequences are
    /// needed for the one-time digest).
    pub fn record(&self, door: &Door, consume: &Consume) -> Result<(), ProgressError> {
        match (consume, &door.kind) {
            (Consume::OneTime { next, .. }, DoorKind::OneTime { sequences, .. }) => {
                self.save_one_time(&door.name, sequences, *next)
            }
            (Consume::Totp { counter }, DoorKind::Totp(p)) if p.used.contains(*counter) => {
                self.save_totp(&door.name, &p.used)
            }
            _ => Err(ProgressError::Invalid {
                door: door.name.clone(),
                path: self.dir.clone(),
                message: "progress does not fit the door's kind".into(),
            }),
        }
    }

    /// Puts recorded progress into the doors. A door whose progress cannot be trusted is
    /// disabled (one-time: marked exhausted; TOTP: every counter refused) and its error
    /// returned, so that nothing is ever accepted twice.
    pub fn apply(&self, doors: &mut [Door]) -> Vec<ProgressError> {
        let mut errors = Vec::new();
        for d in doors.iter_mut() {
            let name = d.name.clone();
            match &mut d.kind {
                DoorKind::Static { .. } => {}
                DoorKind::OneTime { sequences, next } => match self.load_one_time(&name, sequences)
                {
                    Ok(n) => *next = n,
                    Err(e) => {
                        *next = sequences.len();
                        errors.push(e);
                    }
                },
                DoorKind::Totp(p) => match self.load_totp(&name) {
                    Ok(used) => p.used = used,
                    Err(e) => {
                        p.used = UsedSteps {
                            floor: Some(u64::MAX),
                            above: Default::default(),
                        };
                        errors.push(e);
                    }
                },
            }
        }
        errors
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(
    door: &str,
    path: &Path,
) -> Result<Option<T>, ProgressError> {
    // Owner root (or us), mode 0600/0400, no symlink: a progress file another account could
    // write would let it reuse one-time sequences or TOTP steps.
    let bytes = match atomic_files::secret::read_secret(path, "progress file", false) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(ProgressError::Invalid {
                door: door.into(),
                path: path.into(),
                message: e.to_string(),
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ProgressError::Invalid {
            door: door.into(),
            path: path.into(),
            message: format!("unreadable progress: {e}"),
        })
}

fn write_json<T: Serialize>(door: &str, path: &Path, value: &T) -> Result<(), ProgressError> {
    let io_err = |source: io::Error| ProgressError::Io {
        door: door.into(),
        path: path.into(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err)?;
    let mut body = serde_json::to_vec_pretty(value).map_err(|e| io_err(io::Error::other(e)))?;
    body.push(b'\n');
    // The one atomic-write routine every knockwrap file goes through (lock, temp, fsync,
    // rename, directory fsync), as a private state file: never through a planted symlink,
    // always 0600.
    let opts = atomic_files::Options {
        private: true,
        ..atomic_files::Options::default()
    };
    atomic_files::update(path, &opts, |_| {
        Ok::<_, std::convert::Infallible>(Some(body.clone()))
    })
    .map(|_| ())
    .map_err(|e| ProgressError::Invalid {
        door: door.into(),
        path: path.into(),
        message: e.to_string(),
    })
}
