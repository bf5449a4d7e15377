//! hosts.allow policy: exact removal, idempotent add, byte fidelity under many random edits,
//! and real tcpdmatch verdicts for what the writer produces.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use hosts_access::edit::ManagedLine;
use hosts_writer::{allow, revoke, Options, PolicyOptions};

fn ml(service: &str, ip: &str) -> ManagedLine {
    ManagedLine::new(service, ip.parse::<IpAddr>().unwrap()).unwrap()
}

fn fast() -> PolicyOptions {
    PolicyOptions {
        write: Options {
            durable: false,
            ..Options::default()
        },
        ..PolicyOptions::default()
    }
}

#[test]
fn revoking_an_address_keeps_lines_that_merely_start_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    let original = b"SSHD: 203.0.113.45\nSSHD: 203.0.113.4.example\n";
    fs::write(&p, original).unwrap();
    let l = ml("SSHD", "203.0.113.4");
    let out = allow(&p, &l, &fast()).unwrap();
    assert!(out.changed);
    assert_eq!(
        fs::read(&p).unwrap(),
        b"SSHD: 203.0.113.45\nSSHD: 203.0.113.4.example\nSSHD: 203.0.113.4\n"
    );
    let out = revoke(&p, &l, &fast()).unwrap();
    assert!(out.changed);
    assert_eq!(fs::read(&p).unwrap(), original);
    let out = revoke(&p, &l, &fast()).unwrap();
    assert!(!out.changed);
    assert_eq!(fs::read(&p).unwrap(), original);
}

#[test]
fn allow_twice_leaves_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    for l in [ml("SSHD", "203.0.113.7"), ml("SSHD", "2001:db8::7")] {
        assert!(allow(&p, &l, &fast()).unwrap().changed);
        assert!(!allow(&p, &l, &fast()).unwrap().changed);
    }
    assert_eq!(
        fs::read(&p).unwrap(),
        b"SSHD: 203.0.113.7\nSSHD: [2001:db8::7]\n"
    );
}

#[test]
fn dry_run_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.allow");
    fs::write(&p, b"a: b\n").unwrap();
    let opts = PolicyOptions {
        dry_run: true,
        ..fast()
    };
    let out = allow(&p, &ml("SSHD", "192.0.2.9"), &opts).unwrap();
    assert!(out.changed && !out.file.written);
    assert_eq!(out.file.after, b"a: b\nSSHD: 192.0.2.9\n");
    assert_eq!(fs::read(&p).unwrap(), b"a: b\n");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no lock, temp or backup"
    );
}

/// xorshift64*: reproducible randomness without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Split into lines keeping terminators.
fn lines(b: &[u8]) -> Vec<Vec<u8>> {
    b.split_inclusive(|c| *c == b'\n')
        .map(|l| l.to_vec())
        .collect()
}

fn strip_ending(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r\n")
        .or_else(|| l.strip_suffix(b"\n"))
        .unwrap_or(l)
}

#[test]
fn foreign_bytes_survive_1000_random_operations() {
    // Each base: CRLF or LF, with or without a final newline, comments, tabs, foreign rules,
    // lines that start like managed ones, blank lines.
    let bases: [&[u8]; 5] = [
        b"# hosts.allow\r\nsshd:\t10.0.0.0/8\r\n\r\nSSHD: 203.0.113.45\r\nALL: LOCAL\r\n",
        b"# no final newline\nsshd : 192.0.2.0/24 : allow\n\tin.ftpd: ALL\nSSHD: 203.0.113.4.example",
        b"",
        b"#only a comment",
        b"  # indented is a rule\nSSHD: [2001:db8::1]/64\n\n\n",
    ];
    let pool: Vec<ManagedLine> = [
        "203.0.113.4",
        "203.0.113.5",
        "198.51.100.7",
        "2001:db8::1",
        "2001:db8::7",
        "::1",
        "192.0.2.1",
    ]
    .iter()
    .flat_map(|a| [ml("SSHD", a), ml("sshd", a)])
    .collect();
    let texts: BTreeSet<Vec<u8>> = pool.iter().map(|l| l.text().into_bytes()).collect();

    for (k, base) in bases.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts.allow");
        fs::write(&p, base).unwrap();
        // Foreign lines of the base that happen to equal a pool line would count as managed.
        assert!(lines(base).iter().all(|l| !texts.contains(strip_ending(l))));
        let crlf = base.windows(2).any(|w| w == b"\r\n");
        let mut model: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (k as u64 + 1));
        for _ in 0..1000 {
            let l = &pool[rng.below(pool.len() as u64) as usize];
            let t = l.text().into_bytes();
            if rng.below(2) == 0 {
                let out = allow(&p, l, &fast()).unwrap();
                assert_eq!(out.changed, model.insert(t));
            } else {
                // A revoke removes the line in any case: libwrap reads `sshd` as `SSHD`.
                let out = revoke(&p, l, &fast()).unwrap();
                let before = model.len();
                model.retain(|m| !m.eq_ignore_ascii_case(&t));
                assert_eq!(out.changed, model.len() < before);
            }
            let now = fs::read(&p).unwrap();
            let (managed, foreign): (Vec<Vec<u8>>, Vec<Vec<u8>>) = lines(&now)
                .into_iter()
                .partition(|l| texts.contains(strip_ending(l)));
            // Managed lines: exactly the model, once each, in the file's line ending.
            let got: BTreeSet<Vec<u8>> = managed.iter().map(|l| strip_ending(l).to_vec()).collect();
            assert_eq!(got, model);
            assert_eq!(managed.len(), model.len(), "duplicate managed line");
            for m in &managed {
                assert!(m.ends_with(if crlf { b"\r\n" } else { b"\n" }));
            }
            // Foreign bytes: the base, plus at most the newline that ends its last line.
            let foreign: Vec<u8> = foreign.concat();
            let mut terminated = base.to_vec();
            if !base.is_empty() && !base.ends_with(b"\n") {
                terminated.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
            assert!(
                foreign == *base || foreign == terminated,
                "foreign bytes changed:\n{:?}\nvs\n{:?}",
                String::from_utf8_lossy(&foreign),
                String::from_utf8_lossy(base)
            );
        }
    }
}

/// Run the real tcpdmatch over `dir`'s hosts.allow/hosts.deny, without network (no DNS).
/// None when it cannot run here (the caller skips or fails per the privileged-test rule).
fn tcpdmatch(dir: &Path, daemon: &str, client: &str) -> Option<bool> {
    let out = Command::new("unshare")
        .args(["-n", "/usr/sbin/tcpdmatch", "-d", daemon, client])
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let access = text
        .lines()
        .find_map(|l| l.strip_prefix("access:"))?
        .trim()
        .to_string();
    Some(access == "granted")
}

fn require_tcpdmatch(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    let present = Path::new("/usr/sbin/tcpdmatch").exists();
    if root && present {
        return true;
    }
    let why = if root {
        "tcpdmatch (package tcpd)"
    } else {
        "root"
    };
    test_support::skip_or_fail(test, why)
}

#[test]
fn written_lines_are_granted_by_real_tcpdmatch_and_revoked_ones_are_not() {
    if !require_tcpdmatch("written_lines_are_granted_by_real_tcpdmatch_and_revoked_ones_are_not") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let allow_p = dir.path().join("hosts.allow");
    fs::write(dir.path().join("hosts.deny"), b"ALL: ALL\n").unwrap();
    fs::write(&allow_p, b"# managed by test\r\nSSHD: 203.0.113.45\r\n").unwrap();
    let cases = [
        ("2001:db8::7", "2001:db8::8"),
        ("203.0.113.4", "203.0.113.44"),
        ("::1", "::2"),
    ];
    for (ip, neighbour) in cases {
        let l = ml("SSHD", ip);
        assert_eq!(
            tcpdmatch(dir.path(), "sshd", ip),
            Some(false),
            "{ip} before allow"
        );
        let out = allow(&allow_p, &l, &fast()).unwrap();
        assert!(out.changed);
        assert_eq!(
            tcpdmatch(dir.path(), "sshd", ip),
            Some(true),
            "{ip} after allow"
        );
        assert_eq!(
            tcpdmatch(dir.path(), "sshd", neighbour),
            Some(false),
            "{neighbour}"
        );
        if ip.contains(':') {
            assert!(fs::read_to_string(&allow_p)
                .unwrap()
                .contains(&format!("SSHD: [{ip}]")));
        }
        revoke(&allow_p, &l, &fast()).unwrap();
        assert_eq!(
            tcpdmatch(dir.path(), "sshd", ip),
            Some(false),
            "{ip} after revoke"
        );
    }
    // The hand-written neighbour survived and is still granted.
    assert_eq!(tcpdmatch(dir.path(), "sshd", "203.0.113.45"), Some(true));
    assert_eq!(
        fs::read(&allow_p).unwrap(),
        b"# managed by test\r\nSSHD: 203.0.113.45\r\n"
    );
}
