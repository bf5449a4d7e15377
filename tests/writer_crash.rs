//! Crash safety: SIGKILL `knockwrap allow`/`revoke` at random moments, 500 times, on a 5 MB
//! hosts.allow (release build). After every kill the file is exactly the old or the new content, never a mix
//! or a truncation, and `hosts.allow.bak` is always a whole earlier version.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KILLS: usize = 500;
/// 5 MB in release builds (CI: `cargo test --release`). An unoptimised build validates and
/// evaluates ~8× slower, so there the file is 512 KB to keep the run near a minute.
const SIZE: usize = if cfg!(debug_assertions) {
    512 * 1024
} else {
    5 * 1024 * 1024
};

fn spawn(verb: &str, ip: &str, file: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_knockwrap"))
        .args([verb, ip, "--hosts-allow"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn knockwrap")
}

/// Random timing from the clock's low bits mixed through xorshift.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

fn hash(b: &[u8]) -> u64 {
    // FNV-1a: enough to tell versions apart in a set.
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts.allow");
    let mut big = b"# a large file of foreign rules\n".to_vec();
    let mut k = 0u32;
    while big.len() < SIZE {
        big.extend_from_slice(
            format!("sshd: 10.{}.{}.{}\n", k >> 16 & 255, k >> 8 & 255, k & 255).as_bytes(),
        );
        k += 1;
    }
    fs::write(&file, &big).unwrap();
    // Denied by default, as on a real host (a revoke that leaves the address granted fails).
    fs::write(dir.path().join("hosts.deny"), b"ALL: ALL\n").unwrap();

    // How long an uninterrupted operation takes here: the kill moment is drawn from
    // [0, 1.3 × that], so kills land before, during and after each step.
    let t0 = Instant::now();
    for verb in ["allow", "revoke", "allow", "revoke"] {
        assert!(spawn(verb, "203.0.113.200", &file)
            .wait()
            .unwrap()
            .success());
    }
    let typical = t0.elapsed() / 4;
    let window_us = (typical.as_micros() as u64 * 13 / 10).max(1000);
    assert_eq!(fs::read(&file).unwrap(), big);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    // Every version the file has legitimately had; .bak must always be one of them.
    let mut versions: HashSet<u64> = HashSet::new();
    versions.insert(hash(&big));
    let mut warm = big.clone();
    warm.extend_from_slice(b"SSHD: 203.0.113.200\n");
    versions.insert(hash(&warm));
    let mut current = big;
    let (mut old_kept, mut new_seen, mut mid_write) = (0, 0, 0);
    for i in 0..KILLS {
        // Toggle one of a few lines so that every run has a change to make.
        let ip = format!("203.0.113.{}", rng.below(4) + 1);
        let line = format!("SSHD: {ip}\n");
        let present = current
            .split_inclusive(|b| *b == b'\n')
            .any(|l| l == line.as_bytes());
        let verb = if present { "revoke" } else { "allow" };
        let expected_new = if present {
            current
                .split_inclusive(|b| *b == b'\n')
                .filter(|l| *l != line.as_bytes())
                .flatten()
                .copied()
                .collect::<Vec<u8>>()
        } else {
            let mut v = current.clone();
            v.extend_from_slice(line.as_bytes());
            v
        };
        let mut child = spawn(verb, &ip, &file);
        std::thread::sleep(Duration::from_micros(rng.below(window_us)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();

        // A temp file left behind means the kill landed between creating it and the rename.
        if fs::read_dir(dir.path()).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains("knockwrap.tmp")
        }) {
            mid_write += 1;
        }
        let now = fs::read(&file).unwrap();
        if now == current {
            old_kept += 1;
        } else if now == expected_new {
            new_seen += 1;
            versions.insert(hash(&expected_new));
            current = expected_new;
        } else {
            panic!(
                "kill {i}: file is neither old ({} B) nor new ({} B) but {} B",
                current.len(),
                expected_new.len(),
                now.len()
            );
        }
        if let Ok(bak) = fs::read(dir.path().join("hosts.allow.bak")) {
            assert!(
                versions.contains(&hash(&bak)),
                "kill {i}: .bak ({} B) is not a whole earlier version",
                bak.len()
            );
        }
    }
    eprintln!(
        "crash: {KILLS} kills on {} bytes within {window_us} µs (typical run {typical:?}): \
         {old_kept} left the old content, {new_seen} the new; {mid_write} killed mid-write \
         (temp file present)",
        SIZE
    );
    // Both outcomes must have happened, or the timing never hit the interesting window.
    assert!(
        old_kept > 0 && new_seen > 0,
        "{old_kept} old / {new_seen} new"
    );

    // One clean run afterwards sweeps what the killed writers left behind.
    assert!(spawn("allow", "203.0.113.99", &file)
        .wait()
        .unwrap()
        .success());
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("knockwrap.tmp") || n.contains("knockwrap.baktmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
