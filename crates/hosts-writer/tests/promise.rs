//! The state owner's promise on the paths a review found open: a revoke racing a grant never
//! leaves a line without its lease, a lease's end removes the line knockwrap added and not an
//! identical one an operator wrote meanwhile, and leases that end together end in one
//! transaction. Each test drives `hosts_writer::state::State` as the daemon and the CLI do.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hosts_access::edit::{self, ManagedLine};
use hosts_writer::state::{Grant, State};
use hosts_writer::{Journal, Options, PolicyOptions};

fn opts(backup: bool) -> PolicyOptions {
    PolicyOptions {
        write: Options {
            durable: false,
            backup,
            ..Options::default()
        },
        ..PolicyOptions::default()
    }
}

struct Files {
    _dir: tempfile::TempDir,
    allow: PathBuf,
    state: PathBuf,
}

fn files(deny: &str) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("hosts.allow");
    fs::write(&allow, "# operator\n").unwrap();
    fs::write(dir.path().join("hosts.deny"), deny).unwrap();
    let state = dir.path().join("state");
    Files {
        allow,
        state,
        _dir: dir,
    }
}

fn open(f: &Files, backup: bool) -> State {
    State::open(&f.allow, &f.state, opts(backup)).unwrap().0
}

fn grant(addr: &str, wall_ms: u64, secs: u64) -> Grant {
    Grant {
        door: "openSSH".into(),
        service: "SSHD".into(),
        addr: addr.parse().unwrap(),
        lease: Some(Duration::from_secs(secs)),
        wall_ms,
        line: true,
        ports: Vec::new(),
    }
}

fn ml(addr: &str) -> ManagedLine {
    ManagedLine::new("SSHD", addr.parse::<IpAddr>().unwrap()).unwrap()
}

/// Every managed-looking line in the file has a lease, unless `operator` says it is theirs.
fn lines_without_lease(allow: &Path, state: &Path, addrs: &[String]) -> Vec<String> {
    let bytes = fs::read(allow).unwrap();
    let leases = Journal::at(state).leases().unwrap();
    addrs
        .iter()
        .filter(|a| edit::contains(&bytes, &ml(a)))
        .filter(|a| !leases.iter().any(|l| l.ip.to_string() == **a))
        .cloned()
        .collect()
}

/// Issue point 1: `revoke` removed the line under the hosts.allow lock, released it, and
/// dropped the lease afterwards; a grant in between re-added the line and merged into the
/// lease that was then dropped: a permanent line. Two threads, each with its own state (as
/// two processes have), race a revoke against a grant of the same addresses; after every
/// round no line may be left without its lease.
#[test]
fn a_revoke_racing_a_grant_never_leaves_a_line_without_its_lease() {
    // A deny table whose deciding rule is last makes every grant check take a while, as on
    // the hosts where the race was measured.
    let mut deny = String::new();
    for i in 0..3000 {
        deny.push_str(&format!("in.ftpd{i}: 10.{}.{}.0/24\n", i / 256, i % 256));
    }
    deny.push_str("ALL: ALL\n");
    let f = files(&deny);
    let addrs: Vec<String> = (1..=4).map(|i| format!("198.18.7.{i}")).collect();
    let rounds = 150;
    let barrier = std::sync::Barrier::new(2);
    let mut broken = Vec::new();
    std::thread::scope(|s| {
        let revoker = s.spawn(|| {
            let mut st = open(&f, false);
            for r in 0..rounds {
                barrier.wait();
                let a = &addrs[r % addrs.len()];
                st.revoke_any(&ml(a)).unwrap();
                barrier.wait();
            }
        });
        let mut st = open(&f, false);
        for r in 0..rounds {
            let a = &addrs[r % addrs.len()];
            st.grant_all(&[grant(a, 1_000_000, 3600)]).unwrap();
            barrier.wait();
            st.grant_all(&[grant(a, 1_000_000, 3600)]).unwrap();
            barrier.wait();
            let orphans = lines_without_lease(&f.allow, &f.state, &addrs);
            if !orphans.is_empty() {
                broken.push((r, orphans));
            }
        }
        revoker.join().unwrap();
    });
    assert!(
        broken.is_empty(),
        "rounds that left a line without a lease (round, addresses): {broken:?}\nfile:\n{}",
        fs::read_to_string(&f.allow).unwrap()
    );
}

/// Issue point 6: an operator appends the same `SSHD: X` by hand while knockwrap's lease for X
/// runs; the lease's end must leave the operator's line.
#[test]
fn a_lease_end_leaves_an_identical_line_the_operator_added_meanwhile() {
    let f = files("ALL: ALL\n");
    let mut st = open(&f, false);
    st.grant_all(&[grant("198.51.100.8", 1_000_000, 60)])
        .unwrap();
    let mut bytes = fs::read(&f.allow).unwrap();
    bytes.extend_from_slice(b"SSHD: 198.51.100.8\n");
    fs::write(&f.allow, &bytes).unwrap();
    let ended = st.expire(1_000 + 60).unwrap();
    assert_eq!(ended.len(), 1);
    assert!(matches!(ended[0].result, Ok(true)), "{:?}", ended[0].result);
    let after = fs::read(&f.allow).unwrap();
    assert_eq!(
        edit::count(&after, &ml("198.51.100.8")),
        1,
        "the operator's line must stay:\n{}",
        String::from_utf8_lossy(&after)
    );
    assert!(st.leases().is_empty());
    // A revoke door ends it the same way: the second lease's end leaves the operator's line.
    st.grant_all(&[grant("198.51.100.8", 2_000_000, 60)])
        .unwrap();
    assert_eq!(
        edit::count(&fs::read(&f.allow).unwrap(), &ml("198.51.100.8")),
        1
    );
    st.revoke("SSHD", "198.51.100.8".parse().unwrap()).unwrap();
    assert_eq!(
        edit::count(&fs::read(&f.allow).unwrap(), &ml("198.51.100.8")),
        1
    );
}

/// Issue point 3: 4,000 leases granted together and ending together end in one transaction
/// (one hosts.allow rewrite: the backup still holds every line), not one rewrite per lease.
#[test]
fn leases_ending_together_end_in_one_transaction() {
    let f = files("ALL: ALL\n");
    let mut st = open(&f, true);
    let grants: Vec<Grant> = (0..4000u32)
        .map(|i| {
            grant(
                &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                5_000_000,
                30,
            )
        })
        .collect();
    st.grant_all(&grants).unwrap();
    assert_eq!(st.leases().len(), 4000);
    assert!(st.expire(5_000 + 29).unwrap().is_empty());
    let ended = st.expire(5_000 + 30).unwrap();
    assert_eq!(ended.len(), 4000);
    assert!(ended.iter().all(|e| matches!(e.result, Ok(true))));
    assert_eq!(fs::read_to_string(&f.allow).unwrap(), "# operator\n");
    assert!(st.leases().is_empty() && st.wake_at().is_none());
    let bak = fs::read(f.allow.with_file_name("hosts.allow.bak")).unwrap();
    let in_backup = grants
        .iter()
        .filter(|g| edit::contains(&bak, &ml(&g.addr.to_string())))
        .count();
    assert_eq!(
        in_backup, 4000,
        "the version before the expiry is the backup: one rewrite ended them all"
    );
}

/// Issue point 7, the library's part: the operator's revoke matches the service as libwrap
/// does (case-insensitively) and drops the lease recorded under either spelling.
#[test]
fn the_operators_revoke_matches_the_service_in_any_case() {
    let f = files("ALL: ALL\n");
    let mut st = open(&f, false);
    let mut g = grant("198.51.100.8", 1_000_000, 3600);
    g.service = "sshd".into();
    st.grant_all(&[g]).unwrap();
    assert!(fs::read_to_string(&f.allow)
        .unwrap()
        .contains("sshd: 198.51.100.8\n"));
    let out = st.revoke_any(&ml("198.51.100.8")).unwrap();
    assert!(out.changed, "sshd: 198.51.100.8 is SSHD's line for libwrap");
    assert!(!out.grant.granted(), "{}", out.grant);
    assert_eq!(fs::read_to_string(&f.allow).unwrap(), "# operator\n");
    assert!(st.leases().is_empty());
}
