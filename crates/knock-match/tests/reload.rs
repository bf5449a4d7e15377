//! A configuration reload keeps the sequences in progress on unchanged doors, and only those.

mod common;

use common::*;
use knock_match::{Matcher, MatcherOptions};

fn matcher(doors: Vec<knock_match::Door>) -> Matcher {
    Matcher::new(doors, MatcherOptions::default()).unwrap()
}

#[test]
fn progress_on_an_unchanged_door_survives_a_reload() {
    let abc = || door("abc", "7000,8000,9000", 10, &["syn"]);
    let mut old = matcher(vec![abc()]);
    assert!(old.observe(&syn(0, 1, 7000)).is_empty());
    assert!(old.observe(&syn(100, 1, 8000)).is_empty());

    // The new configuration adds a door and reorders: the index of `abc` changes.
    let mut new = matcher(vec![door("other", "1,3", 10, &[]), abc()]);
    assert_eq!(new.adopt_progress(&old), 1);
    let got = new.observe(&syn(200, 1, 9000));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].door_name, "abc");
    assert_eq!(got[0].door, 1);
}

#[test]
fn progress_on_a_changed_or_removed_door_is_dropped() {
    let mut old = matcher(vec![
        door("abc", "7000,8000,9000", 10, &["syn"]),
        door("gone", "100,200,300", 10, &[]),
    ]);
    old.observe(&syn(0, 1, 7000));
    old.observe(&syn(100, 1, 8000));
    old.observe(&syn(0, 2, 100));
    old.observe(&syn(100, 2, 200));

    // Same name, different sequence: a different door.
    let mut new = matcher(vec![door("abc", "7000,8000,9001", 10, &["syn"])]);
    assert_eq!(new.adopt_progress(&old), 0);
    assert!(new.observe(&syn(200, 1, 9001)).is_empty());
    assert_eq!(new.in_progress(), 0);
}

#[test]
fn adopted_progress_keeps_its_original_deadline() {
    let abc = || door("abc", "7000,8000,9000", 10, &["syn"]);
    let mut old = matcher(vec![abc()]);
    old.observe(&syn(0, 1, 7000));
    old.observe(&syn(100, 1, 8000));
    let mut new = matcher(vec![abc()]);
    new.adopt_progress(&old);
    // seq_timeout (10 s) still counts from the first knock at t=0.
    assert!(new.observe(&syn(10_000, 1, 9000)).is_empty());
}

fn one_time(name: &str, next: usize) -> knock_match::Door {
    let mut d = door(name, "1,3", 10, &["syn"]);
    d.kind = knock_match::DoorKind::OneTime {
        sequences: vec![steps("7001,7003"), steps("7101,7103")],
        next,
    };
    d
}

/// A one-time sequence the old matcher granted after the new doors were read (their `next`
/// is behind) is not granted again by the new matcher: what was used stays used.
#[test]
fn a_sequence_used_by_the_old_matcher_stays_used_after_a_reload() {
    let mut old = matcher(vec![one_time("ot", 0)]);
    old.observe(&syn(0, 1, 7001));
    assert_eq!(old.observe(&syn(100, 1, 7003)).len(), 1);
    // The setup was built while that knock was in flight: it still says `next = 0`.
    let mut new = matcher(vec![door("x", "1,3", 10, &[]), one_time("ot", 0)]);
    new.adopt_progress(&old);
    assert!(run(&mut new, &[syn(200, 2, 7001), syn(300, 2, 7003)]).is_empty());
    assert_eq!(
        run(&mut new, &[syn(400, 2, 7101), syn(500, 2, 7103)]).len(),
        1
    );
}
