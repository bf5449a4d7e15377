//! The model-based guard of the state owner ([`hosts_writer::state::State`]): random sequences
//! of door grants and revokes, the operator's CLI allow and revoke, the operator's own edits of
//! hosts.allow, lease expiry, crashes, restarts and clock steps, checked after every step
//! against a small model of what must hold. It owns the promise the state owner makes as a
//! whole (no line without its lease, no lease past its end, the operator's lines and a parsable
//! file survive anything knockwrap does), where the other tests check one path at a time.
//!
//! What is checked, always on the bytes of hosts.allow and the journal as read from disk
//! (`Journal::leases`), never only on a `State`'s memory:
//!
//! - (a) every managed line knockwrap added has its lease in the journal (no line without its
//!   lease), and knockwrap never holds two copies of one line;
//! - (b) after `expire(now)` no lease with `expires_at <= now` is left, nor a line knockwrap
//!   added for one;
//! - (c) the operator's lines, those identical to a managed line included (appended by hand
//!   while a lease for it runs, or before), are never removed by an expiry or a revoke door;
//!   only the operator's revoke (`revoke_any`) removes managed-looking lines;
//! - (d) the file never has a validation error its first version did not have, and every
//!   other line of the operator's survives byte for byte, in order.
//!
//! Two tests:
//!
//! - [`one_process_follows_the_model`]: one process, deterministic for a seed, the model exact
//!   (which lines, which leases, when each ends). A crash is the state dropped without the
//!   daemon's stop (and, separately, the journal left as a kill leaves it: a grant's lease
//!   journaled without its line, a record torn mid-append); a restart is the stop
//!   (`compact_journal`) and a new `State::open`; a clock step is `shift_expiries` with the
//!   clock moved by as much. On a failure it prints the seed, the step, the invariant, the
//!   file, the journal and the model, then shrinks the steps to a short reproduction.
//! - [`several_processes_race_on_shared_addresses`]: rounds of worker processes (this test
//!   binary run again, `KNOCKWRAP_MODEL_WORKER` selecting the worker) doing door grants and
//!   revokes, expiry, CLI allow and revoke and small clock steps on the same few addresses at
//!   once, one of them killed with SIGKILL at a random moment in most rounds, while the
//!   operator appends lines under the lock and the journal's lock is now and then held for a
//!   few milliseconds (a disk slow to fsync). Checked at every quiescent point (all workers
//!   done), again after an expiry there, and at the end an expiry far in the future must leave
//!   exactly the operator's lines and no lease. Every broken invariant is collected and
//!   reported at the end. Interleavings are not reproducible; the seed still fixes what each
//!   worker tries.
//!
//! Sizes: by default 2,000 steps in one process (8 runs of 250 from a fresh state) and
//! 6 rounds (`KNOCKWRAP_MODEL_ROUNDS`) × 4 workers × 50 steps, a few seconds. The long run:
//!
//! ```text
//! KNOCKWRAP_MODEL_STEPS=200000 KNOCKWRAP_MODEL_ROUNDS=200 \
//!     cargo test -p hosts-writer --release --test model -- --nocapture
//! ```
//!
//! Replay a failure with the seed it printed: `KNOCKWRAP_MODEL_SEED=<seed>` (the one-process
//! failure names the run's own seed; add `KNOCKWRAP_MODEL_STEPS=<steps per run>` to replay
//! that run alone). Without `KNOCKWRAP_MODEL_SEED` each run picks a new seed and prints it.
//!
//! What the model allows on purpose: a lease without its line (a crash between the grant's
//! journal write and its line, or between a removal and the lease's drop, leaves one; its end
//! removes nothing); across a clock step, a lease this daemon did not grant since it started
//! may move with the step or keep its wall-clock instant (both are read back and followed).
//! The operator never appends a line identical to one whose lease was journaled by a grant a
//! crash cut short before its line was written: whose line that is then cannot be told. The
//! race test cannot rule out the other way to that state (a kill between the removal of
//! knockwrap's copy and the drop of its lease, on a pair the operator also wrote, then a grant
//! that finds the operator's copy): a (c) there in a round with a kill may be that.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hosts_access::edit::ManagedLine;
use hosts_writer::state::{Grant, State};
use hosts_writer::{Journal, Lease, Options, PolicyOptions};
use test_support::Rng;

const SEED_ENV: &str = "KNOCKWRAP_MODEL_SEED";
const STEPS_ENV: &str = "KNOCKWRAP_MODEL_STEPS";
const ROUNDS_ENV: &str = "KNOCKWRAP_MODEL_ROUNDS";
const WORKER_ENV: &str = "KNOCKWRAP_MODEL_WORKER";

/// Steps of one single-process run (from a fresh state); the total is split into such runs.
const STEPS_PER_RUN: u64 = 250;
const DEFAULT_STEPS: u64 = 2_000;
const DEFAULT_ROUNDS: u64 = 6;
const WORKERS: u64 = 4;
const WORKER_STEPS: u64 = 50;
/// Model seconds one multi-process round covers.
const ROUND_SECS: u64 = 60;
/// Wall-clock second the model's time starts at.
const T0: u64 = 1_700_000_000;

const SERVICES: [&str; 2] = ["SSHD", "in.ftpd"];
/// The addresses every actor picks from. The last is an IPv4-mapped alias of the third: the
/// same managed line and the same lease.
const ADDRS: [&str; 5] = [
    "198.51.100.1",
    "198.51.100.2",
    "198.51.100.3",
    "2001:db8::5",
    "::ffff:198.51.100.3",
];

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v:?}: not a number")))
}

/// `KNOCKWRAP_MODEL_SEED`, or a new one from the clock and the pid.
fn base_seed() -> u64 {
    env_u64(SEED_ENV).unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (nanos ^ (u64::from(std::process::id()) << 32)).max(1)
    })
}

// ---------------------------------------------------------------------------------------------
// Pairs, lines and the file as read.

/// One (service, address) pair: one managed line, at most one lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pair {
    service: &'static str,
    ip: IpAddr,
}

impl Pair {
    /// The pair of service `s` and address `a` (indices into the pools), as stored: a mapped
    /// address is its IPv4 address.
    fn of(s: usize, a: usize) -> Pair {
        Pair {
            service: SERVICES[s],
            ip: raw_addr(a).to_canonical(),
        }
    }

    /// The managed line's text, written here independently of the writer.
    fn text(&self) -> String {
        match self.ip {
            IpAddr::V4(a) => format!("{}: {a}", self.service),
            IpAddr::V6(a) => format!("{}: [{a}]", self.service),
        }
    }
}

fn raw_addr(a: usize) -> IpAddr {
    ADDRS[a].parse().expect("pool address")
}

fn all_pairs() -> Vec<Pair> {
    let mut out: Vec<Pair> = (0..SERVICES.len())
        .flat_map(|s| (0..ADDRS.len()).map(move |a| Pair::of(s, a)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// hosts.allow split the way the writer sees it: complete physical lines that are exactly a
/// pool pair's managed text (and do not continue a rule above them), counted per pair; every
/// other line, terminator included, in order.
struct Lines {
    managed: BTreeMap<Pair, usize>,
    other: Vec<Vec<u8>>,
}

fn classify(bytes: &[u8]) -> Lines {
    let texts: BTreeMap<String, Pair> = all_pairs().into_iter().map(|p| (p.text(), p)).collect();
    let mut managed = BTreeMap::new();
    let mut other = Vec::new();
    let mut continues = false;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let content = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"));
        let pair = match content {
            Some(c) if !continues => std::str::from_utf8(c).ok().and_then(|t| texts.get(t)),
            _ => None,
        };
        match pair {
            Some(p) => *managed.entry(*p).or_insert(0) += 1,
            None => other.push(line.to_vec()),
        }
        // libwrap joins only an exact backslash-newline.
        continues = line.ends_with(b"\\\n");
    }
    Lines { managed, other }
}

/// Error diagnostics per code.
fn error_codes(bytes: &[u8]) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for d in hosts_access::validate(bytes) {
        if d.severity == hosts_access::Severity::Error {
            *out.entry(d.code).or_insert(0) += 1;
        }
    }
    out
}

fn new_errors(
    base: &BTreeMap<&'static str, usize>,
    now: &BTreeMap<&'static str, usize>,
) -> Vec<String> {
    now.iter()
        .filter(|(c, n)| base.get(*c).copied().unwrap_or(0) < **n)
        .map(|(c, n)| format!("{c} ×{n}"))
        .collect()
}

/// The two files as they are on disk.
struct Disk {
    allow: Vec<u8>,
    journal_raw: Vec<u8>,
    leases: Result<BTreeMap<Pair, Option<u64>>, String>,
}

fn read_disk(dir: &Path) -> Disk {
    let allow = std::fs::read(dir.join("hosts.allow")).unwrap_or_default();
    let state = dir.join("state");
    let journal_raw = std::fs::read(state.join("leases.json")).unwrap_or_default();
    let leases = Journal::at(&state)
        .leases()
        .map_err(|e| e.to_string())
        .and_then(|ls| {
            let mut out = BTreeMap::new();
            for l in ls {
                let pair = all_pairs()
                    .into_iter()
                    .find(|p| p.ip == l.ip && p.service == l.service)
                    .ok_or_else(|| format!("a lease outside the pool: {l:?}"))?;
                if out.insert(pair, l.expires_at).is_some() {
                    return Err(format!("two leases for {}", pair.text()));
                }
            }
            Ok(out)
        });
    Disk {
        allow,
        journal_raw,
        leases,
    }
}

fn show_bytes(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let mut out = String::new();
    for line in s.split_inclusive('\n') {
        let _ = writeln!(out, "    | {}", line.escape_debug());
    }
    if out.is_empty() {
        out.push_str("    | (empty)\n");
    }
    out
}

fn show_disk(d: &Disk) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  hosts.allow on disk:\n{}", show_bytes(&d.allow));
    let _ = writeln!(
        out,
        "  leases.json on disk:\n{}",
        show_bytes(&d.journal_raw)
    );
    match &d.leases {
        Ok(ls) => {
            let _ = writeln!(out, "  leases as the journal reads:");
            for (p, e) in ls {
                let _ = writeln!(out, "    {} until {}", p.text(), show_expiry(*e));
            }
            if ls.is_empty() {
                let _ = writeln!(out, "    (none)");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "  the journal does not read: {e}");
        }
    }
    out
}

fn show_expiry(e: Option<u64>) -> String {
    match e {
        Some(t) => format!("T0{:+}", t as i64 - T0 as i64),
        None => "revoked".into(),
    }
}

/// One broken promise: which invariant, and about what.
#[derive(Debug, Clone)]
struct Violation {
    invariant: &'static str,
    /// The managed line it is about, if any.
    about: String,
    detail: String,
}

const LINE_WITHOUT_LEASE: &str = "(a) a managed line knockwrap added has no lease";
const TWO_COPIES: &str = "(a) knockwrap holds two copies of one managed line";
const EXPIRED_LEASE: &str = "(b) a lease past its end is still in the journal";
const EXPIRED_LINE: &str = "(b) the line of a lease past its end is still in hosts.allow";
const OPERATOR_LINE: &str = "(c) an operator's line identical to a managed line was removed";
const NEW_ERRORS: &str = "(d) hosts.allow has validation errors it did not have";
const OTHER_LINES: &str = "(d) the operator's other lines did not survive byte for byte";
const JOURNAL: &str = "the journal does not read";
const MODEL_LEASE: &str = "model: the journal's leases are not the model's";
const MODEL_LINE: &str = "model: knockwrap's lines are not the model's";
const MEMORY: &str = "model: the daemon's leases in memory are not the journal's";
const FAILED: &str = "an operation failed";

fn violation(invariant: &'static str, detail: impl Into<String>) -> Violation {
    Violation {
        invariant,
        about: String::new(),
        detail: detail.into(),
    }
}

fn about(p: &Pair, invariant: &'static str, detail: impl Into<String>) -> Violation {
    Violation {
        about: p.text(),
        ..violation(invariant, detail)
    }
}

/// The checks that need no exact model (the multi-process test uses only these): `op` is the
/// operator's copies per pair, `other` the operator's other lines, `expired_at` the `now` of an
/// expiry just done.
fn check_common(
    disk: &Disk,
    base_errors: &BTreeMap<&'static str, usize>,
    op: &BTreeMap<Pair, usize>,
    other: &[Vec<u8>],
    expired_at: Option<u64>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let errors = new_errors(base_errors, &error_codes(&disk.allow));
    if !errors.is_empty() {
        out.push(violation(NEW_ERRORS, errors.join(", ")));
    }
    let lines = classify(&disk.allow);
    if lines.other != other {
        out.push(violation(
            OTHER_LINES,
            format!(
                "want\n{}  have\n{}",
                show_bytes(&other.concat()),
                show_bytes(&lines.other.concat())
            ),
        ));
    }
    let leases = match &disk.leases {
        Ok(l) => l.clone(),
        Err(e) => {
            out.push(violation(JOURNAL, e.clone()));
            BTreeMap::new()
        }
    };
    for pair in all_pairs() {
        let have = lines.managed.get(&pair).copied().unwrap_or(0);
        let ops = op.get(&pair).copied().unwrap_or(0);
        let t = pair.text();
        if have < ops {
            out.push(about(
                &pair,
                OPERATOR_LINE,
                format!("{t:?}: the operator wrote {ops}, {have} left"),
            ));
        }
        if have > ops + 1 {
            out.push(about(
                &pair,
                TWO_COPIES,
                format!("{t:?}: {have} copies, {ops} of them the operator's"),
            ));
        }
        if have > ops && !leases.contains_key(&pair) {
            out.push(about(
                &pair,
                LINE_WITHOUT_LEASE,
                format!("{t:?}: {have} copies, {ops} of them the operator's, and no lease"),
            ));
        }
        if let Some(now) = expired_at {
            if let Some(Some(end)) = leases.get(&pair) {
                if *end <= now {
                    out.push(about(
                        &pair,
                        EXPIRED_LEASE,
                        format!(
                            "{t:?} ends at {}, expiry ran at {}",
                            show_expiry(Some(*end)),
                            show_expiry(Some(now))
                        ),
                    ));
                    if have > ops {
                        out.push(about(&pair, EXPIRED_LINE, format!("{t:?}")));
                    }
                }
            }
        }
    }
    out
}

fn write_opts() -> PolicyOptions {
    PolicyOptions {
        write: Options {
            // hosts.allow only; the journal is always durable. A kill (not a power cut) loses
            // nothing written.
            durable: false,
            ..Options::default()
        },
        ..PolicyOptions::default()
    }
}

/// The operator's edit of hosts.allow: `line` appended under the writer's lock (what `flock`
/// around an editor does), nothing else changed.
fn operator_append(allow: &Path, line: &[u8]) {
    let opts = Options {
        durable: false,
        ..Options::default()
    };
    hosts_writer::update(allow, &opts, |bytes: &[u8]| {
        let mut out = bytes.to_vec();
        out.extend_from_slice(line);
        Ok::<_, std::convert::Infallible>(Some(out))
    })
    .expect("the operator's append");
}

/// Other lines the operator writes: a comment, rules in other forms, a line that starts like a
/// managed one, an indented one, a blank line. None is a managed line.
fn other_line(kind: u64, k: u64) -> String {
    match kind % 6 {
        0 => format!("# operator note {k}"),
        1 => format!("sshd : 192.0.2.{} : allow", k % 250),
        2 => format!("in.ftpd: ALL EXCEPT 203.0.113.{}", k % 250),
        3 => format!("SSHD: 198.51.100.1.example{}", k % 10),
        4 => format!("  SSHD: 198.51.100.{}", 1 + k % 3),
        _ => String::new(),
    }
}

/// The operator's hosts.allow at the start: LF or CRLF, with a line identical to a managed
/// one (SSHD 198.51.100.2) and a comment continued onto a line that reads like a managed one
/// (part of the comment: never a managed line).
const BASES: [&[u8]; 2] = [
    b"# hosts.allow: the operator's own rules\n\
      sshd : 192.0.2.0/24 : allow\n\
      in.ftpd: ALL EXCEPT 203.0.113.9\n\
      SSHD: 198.51.100.2\n\
      SSHD: 198.51.100.1.example\n\
      # disabled for now: \\\n\
      SSHD: 198.51.100.1\n\
      \n\
      ALL: LOCAL\n",
    b"# hosts.allow (CRLF)\r\nsshd:\t10.0.0.0/8\r\nSSHD: 198.51.100.2\r\nALL: LOCAL\r\n",
];

fn eol_of(base: &[u8]) -> &'static [u8] {
    if base.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    }
}

fn setup(dir: &Path, base: &[u8], deny_filler: usize) {
    std::fs::write(dir.join("hosts.allow"), base).unwrap();
    // Rules that never match, then the deciding one last: each grant check reads them all.
    let mut deny = String::new();
    for i in 0..deny_filler {
        let _ = writeln!(deny, "in.telnetd: 192.0.{}.{}", 2 + i / 250, i % 250);
    }
    deny.push_str("ALL: ALL\n");
    std::fs::write(dir.join("hosts.deny"), deny).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The one-process model.

#[derive(Debug, Clone)]
enum Op {
    /// A door's burst of grants, one transaction: (service, address, lease seconds).
    DoorGrant {
        grants: Vec<(usize, usize, Option<u64>)>,
        ms: u64,
    },
    DoorRevoke {
        s: usize,
        a: usize,
    },
    /// `knockwrap allow [--for]`: a state opened for one operation.
    CliAllow {
        s: usize,
        a: usize,
        lease: Option<u64>,
        ms: u64,
    },
    /// `knockwrap revoke`.
    CliRevoke {
        s: usize,
        a: usize,
    },
    /// The operator appends a line identical to a managed one.
    OperatorManaged {
        s: usize,
        a: usize,
    },
    /// The operator appends another line.
    OperatorOther {
        kind: u64,
    },
    /// Time passes; the daemon's expiry runs.
    Tick {
        secs: u64,
    },
    /// The wall clock jumps; the daemon shifts the journal's expiries by as much.
    ClockStep {
        delta: i64,
    },
    /// The daemon stops (compacting the journal) and starts again.
    Restart,
    /// The daemon dies (no compaction) and starts again.
    Crash,
    /// A grant killed between its journal write and its line (what a kill leaves there),
    /// then the daemon starts again.
    CrashMidGrant {
        s: usize,
        a: usize,
        lease: u64,
        ms: u64,
    },
    /// A journal record torn by a kill mid-append.
    TornRecord,
    /// The daemon's journal compaction while running.
    Compact,
}

fn show_op(op: &Op) -> String {
    let p = |s: usize, a: usize| format!("{} {}", SERVICES[s], ADDRS[a]);
    let lease = |l: Option<u64>| l.map_or("no end".to_string(), |l| format!("{l}s"));
    match op {
        Op::DoorGrant { grants, ms } => format!(
            "door grant [{}] at +{ms}ms",
            grants
                .iter()
                .map(|(s, a, l)| format!("{} for {}", p(*s, *a), lease(*l)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Op::DoorRevoke { s, a } => format!("door revoke {}", p(*s, *a)),
        Op::CliAllow { s, a, lease: l, ms } => {
            format!("cli allow {} for {} at +{ms}ms", p(*s, *a), lease(*l))
        }
        Op::CliRevoke { s, a } => format!("cli revoke {}", p(*s, *a)),
        Op::OperatorManaged { s, a } => format!("operator appends {:?}", Pair::of(*s, *a).text()),
        Op::OperatorOther { kind } => format!("operator appends other line kind {kind}"),
        Op::Tick { secs } => format!("tick +{secs}s, expire"),
        Op::ClockStep { delta } => format!("clock step {delta:+}s, shift expiries"),
        Op::Restart => "restart (compact, reopen)".into(),
        Op::Crash => "crash (reopen without compaction)".into(),
        Op::CrashMidGrant { s, a, lease, ms } => {
            format!(
                "kill mid-grant {} for {lease}s at +{ms}ms (lease journaled, no line), reopen",
                p(*s, *a)
            )
        }
        Op::TornRecord => "torn journal record".into(),
        Op::Compact => "compact journal".into(),
    }
}

fn gen_ops(seed: u64, steps: u64) -> Vec<Op> {
    let mut r = Rng::new(seed);
    let pick = |r: &mut Rng| (r.below(2) as usize, r.below(ADDRS.len() as u64) as usize);
    let lease = |r: &mut Rng| (r.below(20) != 0).then(|| 1 + r.below(90));
    (0..steps)
        .map(|_| match r.below(100) {
            0..=21 => {
                let n = 1 + r.below(3);
                let grants = (0..n)
                    .map(|_| {
                        let (s, a) = pick(&mut r);
                        (s, a, lease(&mut r))
                    })
                    .collect();
                Op::DoorGrant {
                    grants,
                    ms: r.below(1000),
                }
            }
            22..=31 => {
                let (s, a) = pick(&mut r);
                Op::DoorRevoke { s, a }
            }
            32..=41 => {
                let (s, a) = pick(&mut r);
                let l = (r.below(5) != 0).then(|| 1 + r.below(120));
                Op::CliAllow {
                    s,
                    a,
                    lease: l,
                    ms: r.below(1000),
                }
            }
            42..=47 => {
                let (s, a) = pick(&mut r);
                Op::CliRevoke { s, a }
            }
            48..=55 => {
                let (s, a) = pick(&mut r);
                Op::OperatorManaged { s, a }
            }
            56..=59 => Op::OperatorOther { kind: r.below(6) },
            60..=81 => Op::Tick { secs: r.below(40) },
            82..=85 => {
                let mag = 1 + r.below(7200) as i64;
                Op::ClockStep {
                    delta: if r.below(2) == 0 { mag } else { -mag },
                }
            }
            86..=88 => Op::Restart,
            89..=91 => Op::Crash,
            92..=94 => {
                let (s, a) = pick(&mut r);
                Op::CrashMidGrant {
                    s,
                    a,
                    lease: 1 + r.below(90),
                    ms: r.below(1000),
                }
            }
            95..=97 => Op::TornRecord,
            _ => Op::Compact,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelLease {
    expires: Option<u64>,
    /// Knockwrap found no copy of the line when the lease began: its end removes knockwrap's
    /// line (when there is one).
    added: bool,
    /// Granted by the running daemon since it started: a clock step moves it for sure.
    own: bool,
}

/// What must be on disk.
struct Model {
    now: u64,
    leases: BTreeMap<Pair, ModelLease>,
    /// Pairs whose line knockwrap added and has not removed.
    kw: BTreeSet<Pair>,
    /// The operator's copies of managed-looking lines.
    op: BTreeMap<Pair, usize>,
    /// The operator's other lines, in order.
    other: Vec<Vec<u8>>,
    eol: &'static [u8],
    appended: u64,
}

impl Model {
    fn new(base: &[u8]) -> Model {
        let lines = classify(base);
        Model {
            now: T0,
            leases: BTreeMap::new(),
            kw: BTreeSet::new(),
            op: lines.managed,
            other: lines.other,
            eol: eol_of(base),
            appended: 0,
        }
    }

    fn copies(&self, p: &Pair) -> usize {
        self.op.get(p).copied().unwrap_or(0) + usize::from(self.kw.contains(p))
    }

    /// A grant transaction: each line is added if no copy was there when it began.
    fn grant(&mut self, grants: &[(Pair, Option<u64>)], own: bool) {
        let present: BTreeSet<Pair> = grants
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| self.copies(p) > 0)
            .collect();
        for (p, expires) in grants {
            self.journal(*p, *expires, !present.contains(p), own);
        }
        for (p, _) in grants {
            if !present.contains(p) {
                self.kw.insert(*p);
            }
        }
    }

    /// The journal's merge: the line is ours if either grant added it, the later end wins (no
    /// end beats any).
    fn journal(&mut self, p: Pair, expires: Option<u64>, added: bool, own: bool) {
        match self.leases.get_mut(&p) {
            Some(l) => {
                let decides = match (l.expires, expires) {
                    (_, None) => true,
                    (None, Some(_)) => false,
                    (Some(a), Some(b)) => b >= a,
                };
                l.expires = match (l.expires, expires) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                l.added |= added;
                if decides {
                    l.own = own;
                }
            }
            None => {
                self.leases.insert(
                    p,
                    ModelLease {
                        expires,
                        added,
                        own,
                    },
                );
            }
        }
    }

    /// A lease's end, or a revoke door: knockwrap's own copy goes, the operator's stay.
    fn end(&mut self, p: &Pair) {
        if let Some(l) = self.leases.remove(p) {
            if l.added {
                self.kw.remove(p);
            }
        }
    }

    /// The operator's revoke: every copy goes, and the lease.
    fn revoke_any(&mut self, p: &Pair) {
        self.leases.remove(p);
        self.kw.remove(p);
        self.op.remove(p);
    }

    fn expire(&mut self, now: u64) {
        let due: Vec<Pair> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires.is_some_and(|t| t <= now))
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            self.end(&p);
        }
    }

    /// A lease journaled by a grant whose line was never written: the operator's identical
    /// line would then be indistinguishable from knockwrap's (see the module doc).
    fn orphan(&self, p: &Pair) -> bool {
        self.leases.get(p).is_some_and(|l| l.added) && !self.kw.contains(p)
    }

    fn show(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "  model (now {}):", show_expiry(Some(self.now)));
        for (p, l) in &self.leases {
            let _ = writeln!(
                out,
                "    lease {} until {}{}{}",
                p.text(),
                show_expiry(l.expires),
                if l.added { ", line knockwrap's" } else { "" },
                if l.own { ", this daemon's" } else { "" }
            );
        }
        for p in &self.kw {
            let _ = writeln!(out, "    knockwrap's line {:?}", p.text());
        }
        for (p, n) in &self.op {
            let _ = writeln!(out, "    operator's line {:?} ×{n}", p.text());
        }
        out
    }
}

/// How a replay failed.
struct Failure {
    step: usize,
    invariant: &'static str,
    report: String,
}

struct Replay {
    dir: tempfile::TempDir,
    base_errors: BTreeMap<&'static str, usize>,
    model: Model,
    daemon: Option<State>,
}

impl Replay {
    fn new(base: &'static [u8]) -> Replay {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path(), base, 0);
        let mut r = Replay {
            base_errors: error_codes(base),
            model: Model::new(base),
            dir,
            daemon: None,
        };
        r.open().expect("first open");
        r
    }

    fn allow(&self) -> PathBuf {
        self.dir.path().join("hosts.allow")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn open(&mut self) -> Result<(), String> {
        self.daemon = None;
        let (s, aside) = State::open(&self.allow(), &self.state_dir(), write_opts())
            .map_err(|e| format!("State::open: {e}"))?;
        if let Some(a) = aside {
            return Err(format!("State::open set the journal aside: {a:?}"));
        }
        for l in self.model.leases.values_mut() {
            l.own = false;
        }
        self.daemon = Some(s);
        Ok(())
    }

    /// The daemon, after the look at the journal its loop takes every turn.
    fn daemon(&mut self) -> Result<&mut State, String> {
        let d = self.daemon.as_mut().expect("open");
        if let Some(a) = d.notice_changes().map_err(|e| e.to_string())? {
            return Err(format!("notice_changes set the journal aside: {a:?}"));
        }
        Ok(d)
    }

    fn cli(&self) -> Result<State, String> {
        State::open_once(&self.allow(), &self.state_dir(), write_opts())
            .map(|(s, _)| s)
            .map_err(|e| format!("State::open_once: {e}"))
    }

    fn wall_ms(&self, ms: u64) -> u64 {
        self.model.now * 1000 + ms
    }

    /// Runs one step on the real state and the model; returns the `now` of an expiry it ran.
    fn step(&mut self, op: &Op) -> Result<Option<u64>, String> {
        let m = |e: hosts_writer::state::StateError| e.to_string();
        match op {
            Op::DoorGrant { grants, ms } => {
                let wall_ms = self.wall_ms(*ms);
                let gs: Vec<Grant> = grants
                    .iter()
                    .map(|(s, a, l)| Grant {
                        door: "door-a".into(),
                        service: SERVICES[*s].into(),
                        addr: raw_addr(*a),
                        lease: l.map(Duration::from_secs),
                        wall_ms,
                        line: true,
                        ports: Vec::new(),
                    })
                    .collect();
                self.daemon()?.grant_all(&gs).map_err(m)?;
                let model: Vec<(Pair, Option<u64>)> = grants
                    .iter()
                    .map(|(s, a, l)| (Pair::of(*s, *a), l.map(|l| end_of(wall_ms, l))))
                    .collect();
                self.model.grant(&model, true);
            }
            Op::DoorRevoke { s, a } => {
                self.daemon()?
                    .revoke(SERVICES[*s], raw_addr(*a))
                    .map_err(m)?;
                self.model.end(&Pair::of(*s, *a));
            }
            Op::CliAllow { s, a, lease, ms } => {
                let wall_ms = self.wall_ms(*ms);
                let g = Grant {
                    door: "manual".into(),
                    service: SERVICES[*s].into(),
                    addr: raw_addr(*a),
                    lease: lease.map(Duration::from_secs),
                    wall_ms,
                    line: true,
                    ports: Vec::new(),
                };
                self.cli()?.grant_all(&[g]).map_err(m)?;
                self.model.grant(
                    &[(Pair::of(*s, *a), lease.map(|l| end_of(wall_ms, l)))],
                    false,
                );
            }
            Op::CliRevoke { s, a } => {
                let line = ManagedLine::new(SERVICES[*s], raw_addr(*a)).unwrap();
                self.cli()?.revoke_any(&line).map_err(m)?;
                self.model.revoke_any(&Pair::of(*s, *a));
            }
            Op::OperatorManaged { s, a } => {
                let p = Pair::of(*s, *a);
                if !self.model.orphan(&p) {
                    let mut line = p.text().into_bytes();
                    line.extend_from_slice(self.model.eol);
                    operator_append(&self.allow(), &line);
                    *self.model.op.entry(p).or_insert(0) += 1;
                }
            }
            Op::OperatorOther { kind } => {
                let mut line = other_line(*kind, self.model.appended).into_bytes();
                self.model.appended += 1;
                line.extend_from_slice(self.model.eol);
                operator_append(&self.allow(), &line);
                self.model.other.push(line);
            }
            Op::Tick { secs } => {
                self.model.now += secs;
                let now = self.model.now;
                let done = self.daemon()?.expire(now).map_err(m)?;
                if let Some(e) = done.iter().find(|e| e.result.is_err()) {
                    return Err(format!("expire: {e:?}"));
                }
                self.model.expire(now);
                return Ok(Some(now));
            }
            Op::ClockStep { delta } => {
                self.model.now = self.model.now.saturating_add_signed(*delta);
                self.daemon()?.shift_expiries(*delta).map_err(m)?;
                self.follow_shift(*delta)?;
            }
            Op::Restart => {
                self.daemon()?.compact_journal().map_err(m)?;
                self.open()?;
            }
            Op::Crash => self.open()?,
            Op::CrashMidGrant { s, a, lease, ms } => {
                let p = Pair::of(*s, *a);
                let expires = end_of(self.wall_ms(*ms), *lease);
                let added = self.model.copies(&p) == 0;
                self.daemon = None;
                Journal::at(&self.state_dir())
                    .record_grant(Lease {
                        ip: raw_addr(*a),
                        service: SERVICES[*s].into(),
                        door: "door-a".into(),
                        expires_at: Some(expires),
                        added_line: added,
                        ports: Vec::new(),
                    })
                    .map_err(|e| e.to_string())?;
                self.model.journal(p, Some(expires), added, false);
                self.open()?;
            }
            Op::TornRecord => {
                let path = self.state_dir().join("leases.json");
                if let Ok(bytes) = std::fs::read(&path) {
                    if bytes.ends_with(b"\n") {
                        use std::io::Write;
                        let mut f = std::fs::OpenOptions::new()
                            .append(true)
                            .open(&path)
                            .unwrap();
                        f.write_all(br#"{"set":{"ip":"198.51.100.9","serv"#)
                            .unwrap();
                    }
                }
            }
            Op::Compact => {
                self.daemon()?.compact_journal().map_err(m)?;
            }
        }
        Ok(None)
    }

    /// After a clock step: the daemon's own leases moved by `delta`; any other may have moved
    /// or kept its instant. The model follows what the journal says where either is allowed.
    fn follow_shift(&mut self, delta: i64) -> Result<(), String> {
        let disk = read_disk(self.dir.path());
        let Ok(leases) = disk.leases else {
            return Ok(()); // reported by the check
        };
        for (p, l) in self.model.leases.iter_mut() {
            let Some(t) = l.expires else { continue };
            let kept = !l.own && leases.get(p) == Some(&Some(t));
            if !kept {
                // Anything else than the move is reported by the check.
                l.expires = Some(t.saturating_add_signed(delta));
            }
        }
        Ok(())
    }

    /// The checks of one step: the common invariants, then the exact model.
    fn check(&mut self, expired_at: Option<u64>) -> Vec<Violation> {
        let disk = read_disk(self.dir.path());
        let mut out = check_common(
            &disk,
            &self.base_errors,
            &self.model.op,
            &self.model.other,
            expired_at,
        );
        if let Ok(leases) = &disk.leases {
            let want: BTreeMap<Pair, Option<u64>> = self
                .model
                .leases
                .iter()
                .map(|(p, l)| (*p, l.expires))
                .collect();
            if *leases != want {
                out.push(violation(
                    MODEL_LEASE,
                    format!("want {}, have {}", show_leases(&want), show_leases(leases)),
                ));
            }
            // The daemon's memory, after the look its loop takes.
            match self.daemon() {
                Ok(d) => {
                    let mem: BTreeMap<Pair, Option<u64>> = d
                        .leases()
                        .iter()
                        .filter_map(|l| {
                            all_pairs()
                                .into_iter()
                                .find(|p| p.ip == l.ip && p.service == l.service)
                                .map(|p| (p, l.expires_at))
                        })
                        .collect();
                    if mem != *leases || mem.len() != d.leases().len() {
                        out.push(violation(
                            MEMORY,
                            format!("journal {}, memory {:?}", show_leases(leases), d.leases()),
                        ));
                    }
                }
                Err(e) => out.push(violation(FAILED, e)),
            }
        }
        let lines = classify(&disk.allow);
        for p in all_pairs() {
            let have = lines.managed.get(&p).copied().unwrap_or(0);
            let ops = self.model.op.get(&p).copied().unwrap_or(0);
            let want = self.model.copies(&p);
            // Fewer than the operator's, or extra without a lease: reported above already.
            if have != want && have >= ops && !out.iter().any(|v| v.about == p.text()) {
                out.push(about(
                    &p,
                    MODEL_LINE,
                    format!("{:?}: want {want} copies, have {have}", p.text()),
                ));
            }
        }
        out
    }
}

fn show_leases(l: &BTreeMap<Pair, Option<u64>>) -> String {
    let v: Vec<String> = l
        .iter()
        .map(|(p, e)| format!("{} until {}", p.text(), show_expiry(*e)))
        .collect();
    format!("[{}]", v.join(", "))
}

/// The model's own lease end: wall ms plus the lease, rounded up to the second.
fn end_of(wall_ms: u64, lease_secs: u64) -> u64 {
    (wall_ms + lease_secs * 1000).div_ceil(1000)
}

/// Replays `ops` from a fresh state on `base`; the first step that breaks a promise fails.
fn replay(base: &'static [u8], ops: &[Op]) -> Result<(), Failure> {
    let mut r = Replay::new(base);
    for (i, op) in ops.iter().enumerate() {
        let (expired_at, mut violations) = match r.step(op) {
            Ok(at) => (at, Vec::new()),
            Err(e) => (None, vec![violation(FAILED, e)]),
        };
        violations.extend(r.check(expired_at));
        if let Some(first) = violations.first() {
            let mut report = String::new();
            let _ = writeln!(report, "step {i}: {}", show_op(op));
            for v in &violations {
                let _ = writeln!(report, "  BROKEN {}: {}", v.invariant, v.detail);
            }
            let _ = writeln!(report, "  steps before it (last 12):");
            for (k, o) in ops.iter().enumerate().take(i).skip(i.saturating_sub(12)) {
                let _ = writeln!(report, "    {k}: {}", show_op(o));
            }
            report.push_str(&show_disk(&read_disk(r.dir.path())));
            report.push_str(&r.model.show());
            return Err(Failure {
                step: i,
                invariant: first.invariant,
                report,
            });
        }
    }
    Ok(())
}

/// Removes steps while the same invariant still breaks, within `budget`.
fn shrink(base: &'static [u8], mut ops: Vec<Op>, invariant: &str, budget: Duration) -> Vec<Op> {
    let deadline = Instant::now() + budget;
    let mut chunk = ops.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        let mut progress = false;
        while i < ops.len() && Instant::now() < deadline {
            let mut cand = ops.clone();
            cand.drain(i..(i + chunk).min(ops.len()));
            match replay(base, &cand) {
                Err(f) if f.invariant == invariant => {
                    cand.truncate(f.step + 1);
                    ops = cand;
                    progress = true;
                }
                _ => i += chunk,
            }
        }
        if Instant::now() >= deadline || (chunk == 1 && !progress) {
            break;
        }
        if !progress {
            chunk = chunk.div_ceil(2);
        }
    }
    // Then adjacent ticks as one.
    let mut k = 0;
    while k + 1 < ops.len() && Instant::now() < deadline {
        if let (Op::Tick { secs: a }, Op::Tick { secs: b }) = (&ops[k], &ops[k + 1]) {
            let mut cand = ops.clone();
            cand[k] = Op::Tick { secs: a + b };
            cand.remove(k + 1);
            if let Err(f) = replay(base, &cand) {
                if f.invariant == invariant && f.step + 1 == cand.len() {
                    ops = cand;
                    continue;
                }
            }
        }
        k += 1;
    }
    // Then the grants of each burst, one at a time.
    let mut k = 0;
    while k < ops.len() && Instant::now() < deadline {
        let mut g = 0;
        while let Op::DoorGrant { grants, ms } = &ops[k] {
            if grants.len() < 2 || g >= grants.len() || Instant::now() >= deadline {
                break;
            }
            let mut fewer = grants.clone();
            fewer.remove(g);
            let mut cand = ops.clone();
            cand[k] = Op::DoorGrant {
                grants: fewer,
                ms: *ms,
            };
            match replay(base, &cand) {
                Err(f) if f.invariant == invariant && f.step + 1 == cand.len() => ops = cand,
                _ => g += 1,
            }
        }
        k += 1;
    }
    ops
}

#[test]
fn one_process_follows_the_model() {
    if std::env::var_os(WORKER_ENV).is_some() {
        return;
    }
    for (i, base) in BASES.iter().enumerate() {
        let errors = error_codes(base);
        assert!(errors.is_empty(), "base {i} has errors: {errors:?}");
        let mut all = base.to_vec();
        for k in 0..12 {
            all.extend_from_slice(other_line(k, k).as_bytes());
            all.extend_from_slice(eol_of(base));
        }
        assert!(error_codes(&all).is_empty(), "other lines have errors");
    }
    let seed = base_seed();
    let steps = env_u64(STEPS_ENV).unwrap_or(DEFAULT_STEPS).max(1);
    let runs = steps.div_ceil(STEPS_PER_RUN);
    let per_run = steps.min(STEPS_PER_RUN);
    eprintln!(
        "model: {runs} runs × {per_run} steps, {SEED_ENV}={seed} \
         (replay one run: {SEED_ENV}=<its seed> {STEPS_ENV}={per_run})"
    );
    let started = Instant::now();
    for k in 0..runs {
        let run_seed = seed.wrapping_add(k).max(1);
        let base = BASES[(run_seed % BASES.len() as u64) as usize];
        let ops = gen_ops(run_seed, per_run);
        if let Err(f) = replay(base, &ops) {
            let mut ops = ops;
            ops.truncate(f.step + 1);
            let small = shrink(base, ops, f.invariant, Duration::from_secs(20));
            let mut repro = String::new();
            for (i, op) in small.iter().enumerate() {
                let _ = writeln!(repro, "    {i}: {}", show_op(op));
            }
            let shrunk = match replay(base, &small) {
                Err(g) => g.report,
                Ok(()) => "(the shrunk steps pass: see the full report)".into(),
            };
            panic!(
                "model run {k} of {runs}: {}\n\
                 seed {run_seed} (replay: {SEED_ENV}={run_seed} {STEPS_ENV}={per_run})\n\
                 {}\n\
                 shrunk to {} steps (base {}):\n{repro}\
                 the shrunk run fails at its last step:\n{shrunk}",
                f.invariant,
                f.report,
                small.len(),
                if base == BASES[0] { "LF" } else { "CRLF" },
            );
        }
    }
    eprintln!(
        "model: {} steps in {:.2?}",
        runs * per_run,
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Several processes at once.

/// What one worker process does: its directory, seed, round's start, steps.
struct WorkerSpec {
    dir: PathBuf,
    seed: u64,
    base: u64,
    steps: u64,
}

impl WorkerSpec {
    fn encode(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.seed,
            self.base,
            self.steps,
            self.dir.display()
        )
    }

    fn decode(s: &str) -> WorkerSpec {
        let mut it = s.splitn(4, '\n');
        let mut num = || it.next().and_then(|v| v.parse().ok()).expect("worker spec");
        let (seed, base, steps) = (num(), num(), num());
        WorkerSpec {
            seed,
            base,
            steps,
            dir: PathBuf::from(it.next().expect("worker spec dir")),
        }
    }
}

/// The pairs whose lines the operator also writes by hand (the first two addresses): the
/// workers end their leases (door revoke, expiry) but never revoke them as the operator would,
/// so every copy the operator wrote must stay. The operator's revoke races grants on the others.
fn operator_pair(p: &Pair) -> bool {
    [0, 1].iter().any(|&a| raw_addr(a).to_canonical() == p.ip)
}

fn run_worker(spec: &WorkerSpec) {
    let allow = spec.dir.join("hosts.allow");
    let state_dir = spec.dir.join("state");
    let (mut daemon, _) = State::open(&allow, &state_dir, write_opts()).expect("worker open");
    let mut r = Rng::new(spec.seed);
    let mut now = spec.base + r.below(5);
    // Mostly the same two pairs, so that workers collide on them: SSHD 198.51.100.1 (an
    // operator's pair) and SSHD 198.51.100.3 (also as its mapped alias).
    let pick = |r: &mut Rng| {
        let s = usize::from(r.below(6) == 0);
        let a = match r.below(10) {
            0..=3 => 0,
            4..=6 => 2,
            7 => 4,
            8 => 1,
            _ => 3,
        };
        (s, a)
    };
    let mut done: Vec<String> = Vec::new();
    for i in 0..spec.steps {
        now = (now + r.below(3)).min(spec.base + ROUND_SECS - 1);
        let wall_ms = now * 1000 + r.below(1000);
        let (s, a) = pick(&mut r);
        let what = r.below(100);
        let result = (|| -> Result<String, hosts_writer::state::StateError> {
            daemon.notice_changes()?;
            Ok(match what {
                0..=29 => {
                    let n = 1 + r.below(2);
                    let mut gs = vec![(s, a)];
                    gs.extend((1..n).map(|_| pick(&mut r)));
                    let grants: Vec<Grant> = gs
                        .iter()
                        .map(|(s, a)| Grant {
                            door: "door-a".into(),
                            service: SERVICES[*s].into(),
                            addr: raw_addr(*a),
                            lease: Some(Duration::from_secs(2 + r.below(20))),
                            wall_ms,
                            line: true,
                            ports: Vec::new(),
                        })
                        .collect();
                    daemon.grant_all(&grants)?;
                    format!("door grant {gs:?}")
                }
                30..=49 => {
                    let g = Grant {
                        door: "manual".into(),
                        service: SERVICES[s].into(),
                        addr: raw_addr(a),
                        lease: Some(Duration::from_secs(5 + r.below(30))),
                        wall_ms,
                        line: true,
                        ports: Vec::new(),
                    };
                    let (mut cli, _) = State::open_once(&allow, &state_dir, write_opts())?;
                    cli.grant_all(&[g])?;
                    format!("cli allow {s} {a}")
                }
                50..=61 => {
                    daemon.revoke(SERVICES[s], raw_addr(a))?;
                    format!("door revoke {s} {a}")
                }
                62..=76 => {
                    // Never the operator's pairs (see `operator_pair`).
                    let a = if operator_pair(&Pair::of(s, a)) {
                        2 + a % 3
                    } else {
                        a
                    };
                    let line = ManagedLine::new(SERVICES[s], raw_addr(a))?;
                    let (mut cli, _) = State::open_once(&allow, &state_dir, write_opts())?;
                    cli.revoke_any(&line)?;
                    format!("cli revoke {s} {a}")
                }
                77..=96 => {
                    daemon.expire(now)?;
                    format!("expire at {now}")
                }
                _ => {
                    let delta = r.below(7) as i64 - 3;
                    daemon.shift_expiries(delta)?;
                    format!("clock step {delta}")
                }
            })
        })();
        match result {
            Ok(step) => done.push(step),
            Err(e) => panic!("worker step {i} ({what}): {e}; steps before: {done:?}"),
        }
    }
}

/// A journal whose writes now and then take a few milliseconds (a disk busy with fsyncs), for
/// the length of a round: its lock is held for 0.5 to 3 ms every few milliseconds. Whoever
/// then wants the journal waits, with the hosts.allow lock held (a grant) or not (the drop of
/// a lease after its line's removal): the interleavings a real stall makes likely.
struct SlowJournal {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl SlowJournal {
    fn start(state_dir: &Path, seed: u64) -> SlowJournal {
        use std::sync::atomic::{AtomicBool, Ordering};
        std::fs::create_dir_all(state_dir).unwrap();
        let lock = hosts_writer::lock_path(state_dir, std::ffi::OsStr::new("leases.json"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut r = Rng::new(seed | 1);
            while !flag.load(Ordering::Relaxed) {
                file.lock().unwrap();
                std::thread::sleep(Duration::from_micros(500 + r.below(2500)));
                file.unlock().unwrap();
                std::thread::sleep(Duration::from_micros(1000 + r.below(5000)));
            }
        });
        SlowJournal { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap();
    }
}

/// The operator's side of the multi-process run: what it wrote, to check against.
struct Operator {
    op: BTreeMap<Pair, usize>,
    other: Vec<Vec<u8>>,
    appended: u64,
}

/// Every invariant broken so far, first occurrence of each (invariant, detail) kept.
#[derive(Default)]
struct Findings {
    list: Vec<(String, Violation, String)>,
    seen: BTreeSet<(String, String)>,
}

impl Findings {
    fn add(&mut self, at: &str, vs: Vec<Violation>, disk: &Disk) {
        for v in vs {
            if self.seen.insert((v.invariant.to_string(), v.about.clone())) {
                let first_of_kind = !self.list.iter().any(|(_, w, _)| w.invariant == v.invariant);
                let snapshot = if first_of_kind {
                    show_disk(disk)
                } else {
                    String::new()
                };
                self.list.push((at.to_string(), v, snapshot));
            }
        }
    }
}

#[test]
fn several_processes_race_on_shared_addresses() {
    if let Ok(spec) = std::env::var(WORKER_ENV) {
        run_worker(&WorkerSpec::decode(&spec));
        return;
    }
    let seed = base_seed();
    let rounds = env_u64(ROUNDS_ENV).unwrap_or(DEFAULT_ROUNDS);
    eprintln!(
        "model race: {rounds} rounds × {WORKERS} workers × {WORKER_STEPS} steps, {SEED_ENV}={seed}"
    );
    let started = Instant::now();
    let mut r = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let base = BASES[0];
    setup(dir.path(), base, 2000);
    let allow = dir.path().join("hosts.allow");
    let state_dir = dir.path().join("state");
    let base_errors = error_codes(base);
    let lines = classify(base);
    let mut operator = Operator {
        op: lines.managed,
        other: lines.other,
        appended: 0,
    };
    let mut findings = Findings::default();
    let exe = std::env::current_exe().unwrap();
    let mut kills = 0;
    for round in 0..rounds {
        let round_base = T0 + round * ROUND_SECS;
        let children: Vec<_> = (0..WORKERS)
            .map(|w| {
                let spec = WorkerSpec {
                    dir: dir.path().to_path_buf(),
                    seed: (seed ^ (round << 20) ^ (w << 8)).wrapping_mul(0x9E37_79B9) | 1,
                    base: round_base,
                    steps: WORKER_STEPS,
                };
                Command::new(&exe)
                    .args([
                        "--exact",
                        "several_processes_race_on_shared_addresses",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(WORKER_ENV, spec.encode())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn worker")
            })
            .collect();
        // The operator's edits while they run, and most rounds a kill at a random moment.
        let victim = (r.below(3) != 0).then(|| r.below(WORKERS) as usize);
        let kill_after = Duration::from_millis(5 + r.below(80));
        let t = Instant::now();
        let stall = SlowJournal::start(&state_dir, seed ^ round);
        let mut children: Vec<_> = children.into_iter().map(Some).collect();
        for _ in 0..1 + r.below(3) {
            std::thread::sleep(Duration::from_millis(r.below(30)));
            let mut line = other_line(r.below(6), operator.appended).into_bytes();
            operator.appended += 1;
            line.push(b'\n');
            operator_append(&allow, &line);
            operator.other.push(line);
        }
        if let Some(v) = victim {
            std::thread::sleep(kill_after.saturating_sub(t.elapsed()));
            if let Some(c) = children[v].as_mut() {
                if c.try_wait().unwrap().is_none() {
                    c.kill().unwrap();
                    kills += 1;
                }
            }
        }
        for (w, c) in children.iter_mut().enumerate() {
            let out = c.take().unwrap().wait_with_output().unwrap();
            if !out.status.success() && Some(w) != victim {
                panic!(
                    "round {round} worker {w} failed ({}), {SEED_ENV}={seed}:\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        stall.stop();
        // Quiescent: nobody is writing.
        let disk = read_disk(dir.path());
        let vs = check_common(&disk, &base_errors, &operator.op, &operator.other, None);
        findings.add(&format!("round {round}, all workers done"), vs, &disk);
        let now = round_base + ROUND_SECS;
        let (mut state, _) = State::open(&allow, &state_dir, write_opts()).unwrap();
        state.expire(now).unwrap();
        drop(state);
        let disk = read_disk(dir.path());
        let vs = check_common(
            &disk,
            &base_errors,
            &operator.op,
            &operator.other,
            Some(now),
        );
        findings.add(&format!("round {round}, after expire"), vs, &disk);
        // Follow what was lost, so that later rounds report only new breaks.
        let lines = classify(&disk.allow);
        for (p, n) in operator.op.iter_mut() {
            *n = (*n).min(lines.managed.get(p).copied().unwrap_or(0));
        }
        operator.other = lines.other;
        // The operator copies a managed line that runs under its lease, or writes one nobody
        // holds (never one whose lease lost its line to a kill: see the module doc).
        let leases = disk.leases.unwrap_or_default();
        for p in all_pairs().into_iter().filter(operator_pair) {
            let have = lines.managed.get(&p).copied().unwrap_or(0);
            let ops = operator.op.get(&p).copied().unwrap_or(0);
            let eligible = (have > ops && leases.contains_key(&p))
                || (have == ops && !leases.contains_key(&p) && r.below(4) == 0);
            if eligible && r.below(2) == 0 {
                operator_append(&allow, format!("{}\n", p.text()).as_bytes());
                *operator.op.entry(p).or_insert(0) += 1;
            }
        }
    }
    // Every lease ends: exactly the operator's lines are left.
    let far = T0 + rounds * ROUND_SECS + 1_000_000;
    let (mut state, _) = State::open(&allow, &state_dir, write_opts()).unwrap();
    state.expire(far).unwrap();
    drop(state);
    let disk = read_disk(dir.path());
    // With no lease left, (a) and (c) together say: exactly the operator's copies.
    let mut vs = check_common(
        &disk,
        &base_errors,
        &operator.op,
        &operator.other,
        Some(far),
    );
    if disk.leases.as_ref().is_ok_and(|l| !l.is_empty()) {
        vs.push(violation(EXPIRED_LEASE, "leases left after every end"));
    }
    findings.add("the end, after an expiry far in the future", vs, &disk);
    eprintln!(
        "model race: {} steps, {kills} workers killed, in {:.2?}",
        rounds * WORKERS * WORKER_STEPS,
        started.elapsed()
    );
    if !findings.list.is_empty() {
        let mut report = String::new();
        let kinds: BTreeSet<&str> = findings.list.iter().map(|(_, v, _)| v.invariant).collect();
        for (at, v, snapshot) in &findings.list {
            let _ = writeln!(
                report,
                "{at}: BROKEN {}: {}\n{snapshot}",
                v.invariant, v.detail
            );
        }
        panic!(
            "model race broke {}, {SEED_ENV}={seed}:\n{report}",
            kinds.into_iter().collect::<Vec<_>>().join("; ")
        );
    }
}
