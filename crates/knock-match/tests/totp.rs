//! TOTP doors: the published test vectors, the ±1 step window and replay refusal.

mod common;

use std::time::Duration;

use common::*;
use knock_match::{
    decode_base32, totp_sequence, Consume, Door, DoorKind, Matcher, MatcherOptions, TotpParams,
};

/// RFC 6238's test secret, "12345678901234567890" (160 bits).
const SECRET_B32: &str = "GEZDGNBVGY3TQOJQ GEZDGNBVGY3TQOJQ";

fn secret() -> Vec<u8> {
    decode_base32(SECRET_B32).unwrap()
}

/// The vectors printed in docs/totp.md (computed independently with Python's hmac module).
#[test]
fn published_vectors() {
    assert_eq!(secret(), b"12345678901234567890");
    let cases: &[(u64, usize, u16, u16, &[u16])] = &[
        (0, 4, 20000, 40000, &[39129, 36346, 25873, 21785]),
        (1, 4, 20000, 40000, &[20327, 31565, 32304, 24102]),
        (56666666, 4, 20000, 40000, &[26762, 31839, 24471, 32060]),
        (56666667, 4, 20000, 40000, &[34865, 21402, 37476, 22878]),
        (
            56666666,
            8,
            1,
            65535,
            &[6763, 11840, 4472, 32062, 16019, 44226, 24015, 7536],
        ),
        (
            56666666,
            32,
            100,
            131,
            &[
                110, 131, 123, 129, 118, 101, 114, 115, 126, 105, 102, 108, 120, 119, 116, 127,
                103, 117, 130, 124, 111, 106, 100, 109, 125, 121, 112, 128, 122, 107, 113, 104,
            ],
        ),
        (
            56666666,
            6,
            7000,
            7009,
            &[7002, 7009, 7001, 7008, 7005, 7004],
        ),
    ];
    for &(counter, length, lo, hi, want) in cases {
        assert_eq!(
            totp_sequence(&secret(), counter, length, lo, hi),
            want,
            "counter {counter} length {length} {lo}-{hi}"
        );
    }
}

const STEP_MS: u64 = 30_000;
/// 2023-11-14T22:13:20Z, inside counter 56666666.
const T0: u64 = 1_700_000_000_000;
const C: u64 = T0 / STEP_MS;

fn totp_door(last_used: Option<u64>) -> Door {
    let mut d = door("totp", "1", 10, &["syn"]);
    d.kind = DoorKind::Totp(TotpParams {
        secret: secret(),
        length: 4,
        lo: 20000,
        hi: 40000,
        step: Duration::from_millis(STEP_MS),
        used: knock_match::UsedSteps {
            floor: last_used,
            above: Default::default(),
        },
    });
    d
}

fn fresh(last_used: Option<u64>) -> Matcher {
    Matcher::new(vec![totp_door(last_used)], MatcherOptions::default()).unwrap()
}

/// Knocks the sequence of `counter` from source `from`, starting at `t`, 100 ms apart.
fn knock_counter(m: &mut Matcher, t: u64, from: u32, counter: u64) -> Vec<knock_match::Decision> {
    let ports = totp_sequence(&secret(), counter, 4, 20000, 40000);
    let mut out = Vec::new();
    for (i, p) in ports.into_iter().enumerate() {
        out.extend(m.observe(&syn(t + 100 * i as u64, from, p)));
    }
    out
}

#[test]
fn window_is_current_step_plus_minus_one() {
    let cases = [
        (C - 2, false),
        (C - 1, true),
        (C, true),
        (C + 1, true),
        (C + 2, false),
    ];
    for (counter, want) in cases {
        let mut m = fresh(None);
        let out = knock_counter(&mut m, T0, 1, counter);
        assert_eq!(
            out.len() == 1,
            want,
            "counter C{:+}",
            counter as i64 - C as i64
        );
        if want {
            assert_eq!(out[0].consume, Some(Consume::Totp { counter }));
        }
    }
}

#[test]
fn window_edges() {
    let start_of = |c: u64| c * STEP_MS;
    // Sequence of C knocked while the clock is in C+1, up to its very last millisecond.
    let last_ms_of_next = start_of(C + 2) - 1 - 300;
    let mut m = fresh(None);
    assert_eq!(knock_counter(&mut m, last_ms_of_next, 1, C).len(), 1);
    // Once the clock reaches C+2 the sequence of C is refused.
    let mut m = fresh(None);
    assert!(knock_counter(&mut m, start_of(C + 2), 1, C).is_empty());
    // Sequence of C knocked in C-1 (client clock ahead): accepted to the first millisecond.
    let mut m = fresh(None);
    assert_eq!(knock_counter(&mut m, start_of(C - 1), 1, C).len(), 1);
    let mut m = fresh(None);
    assert!(knock_counter(&mut m, start_of(C - 1) - 1, 1, C).is_empty());
    // Started inside the window, finished after it closed: refused.
    let mut m = fresh(None);
    assert!(knock_counter(&mut m, start_of(C + 2) - 150, 1, C).is_empty());
}

#[test]
fn each_step_is_accepted_once() {
    let mut m = fresh(None);
    assert_eq!(knock_counter(&mut m, T0, 1, C).len(), 1);
    assert!(
        knock_counter(&mut m, T0 + 1_000, 1, C).is_empty(),
        "replay, same source"
    );
    assert!(
        knock_counter(&mut m, T0 + 2_000, 2, C).is_empty(),
        "replay, other source"
    );
    // The neighbours of a used step stay usable (issue 8: a grant for step k must never
    // refuse the legitimate client's k-1 or k+1), each once.
    assert_eq!(
        knock_counter(&mut m, T0 + 3_000, 2, C - 1).len(),
        1,
        "older step refused"
    );
    assert!(knock_counter(&mut m, T0 + 3_500, 3, C - 1).is_empty());
    assert_eq!(knock_counter(&mut m, T0 + 4_000, 2, C + 1).len(), 1);
    assert_eq!(m.counters().grants, 3);

    // After a restart with the persisted counter, the used steps stay used.
    let mut m = fresh(Some(C));
    assert!(knock_counter(&mut m, T0 + 5_000, 3, C).is_empty());
    assert_eq!(knock_counter(&mut m, T0 + 6_000, 3, C + 1).len(), 1);
}

#[test]
fn sequences_of_adjacent_steps_are_tracked_in_parallel() {
    // Two sources knock C and C+1 interleaved: both are recognised.
    let mut m = fresh(None);
    let a = totp_sequence(&secret(), C, 4, 20000, 40000);
    let b = totp_sequence(&secret(), C + 1, 4, 20000, 40000);
    let mut grants = Vec::new();
    for i in 0..4 {
        grants.extend(m.observe(&syn(T0 + i as u64 * 10, 1, a[i])));
        grants.extend(m.observe(&syn(T0 + i as u64 * 10 + 5, 2, b[i])));
    }
    let mut got: Vec<_> = grants.iter().map(|d| (d.addr, d.consume)).collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        vec![
            (src(1), Some(Consume::Totp { counter: C })),
            (src(2), Some(Consume::Totp { counter: C + 1 })),
        ]
    );
}

#[test]
fn wrong_secret_never_opens() {
    let mut m = fresh(None);
    let other = b"another secret of 128 bits!!";
    for c in C - 1..=C + 1 {
        for (i, p) in totp_sequence(other, c, 4, 20000, 40000)
            .into_iter()
            .enumerate()
        {
            assert!(m.observe(&syn(T0 + i as u64, 1, p)).is_empty());
        }
    }
}

#[test]
fn sequence_at_gives_the_client_the_current_sequence() {
    let d = totp_door(None);
    let want: Vec<knock_match::Step> = [26762, 31839, 24471, 32060]
        .into_iter()
        .map(knock_match::Step::tcp)
        .collect();
    assert_eq!(d.sequence_at(1_700_000_000_000), Some(want.clone()));
    // The knock the client sends is accepted.
    let mut m = fresh(None);
    let mut out = Vec::new();
    for (i, s) in want.iter().enumerate() {
        out.extend(m.observe(&syn(T0 + i as u64, 1, s.port)));
    }
    assert_eq!(out.len(), 1);
    let st = door("s", "1,2:udp", 5, &[]);
    assert_eq!(st.sequence_at(0), Some(steps("1,2:udp")));
}
