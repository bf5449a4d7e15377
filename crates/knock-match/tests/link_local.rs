//! Link-local sources complete only the doors that take them, and use up nothing elsewhere.

mod common;

use std::net::IpAddr;

use common::*;
use knock_match::{DoorKind, KnockEvent};

fn from(mut ev: KnockEvent, addr: &str) -> KnockEvent {
    ev.src = addr.parse().unwrap();
    ev
}

#[test]
fn a_link_local_source_completes_only_doors_that_take_them_and_burns_nothing() {
    let mut ot = door("ot", "1,3", 10, &["syn"]);
    ot.kind = DoorKind::OneTime {
        sequences: vec![steps("7001,7003"), steps("7101,7103")],
        next: 0,
    };
    let mut ll_door = door("ll", "8001,8003", 10, &["syn"]);
    ll_door.link_local = true;
    let mut m = matcher(vec![ot, ll_door]);
    let ll = "fe80::5";
    for (t, port) in [(0, 7001), (100, 7003), (200, 8001), (300, 8003)] {
        let got = m.observe(&from(syn(t, 0, port), ll));
        if port == 8003 {
            assert_eq!(got.len(), 1, "the door that takes link-local sources");
            assert_eq!(got[0].door_name, "ll");
        } else {
            assert!(got.is_empty(), "{port}: {got:?}");
        }
    }
    assert_eq!(
        m.take_link_local_refusals(),
        [(0, ll.parse::<IpAddr>().unwrap())]
    );
    assert!(m.take_link_local_refusals().is_empty());
    // The one-time sequence is still the next one for an ordinary source.
    let got = run(&mut m, &[syn(400, 1, 7001), syn(500, 1, 7003)]);
    assert_eq!(got.len(), 1, "sequence 0 was burnt by the link-local knock");
    // 169.254.0.0/16 too.
    m.observe(&from(syn(600, 0, 7101), "169.254.1.1"));
    assert!(m
        .observe(&from(syn(700, 0, 7103), "169.254.1.1"))
        .is_empty());
    assert_eq!(m.take_link_local_refusals().len(), 1);
}
