//! Properties over arbitrary bytes: render(parse(b)) == b, and nothing panics in parse,
//! validate, evaluate or edit; edits change only what they promise.

use std::net::IpAddr;

use hosts_access::edit::{add, contains, remove, ManagedLine};
use hosts_access::eval::{evaluate, Request, Verdict};
use hosts_access::{parse, validate};
use proptest::prelude::*;

mod common;
use common::hostsish;

fn request() -> Request {
    Request::parse("sshd", "10.0.0.1").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn roundtrip_arbitrary(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        prop_assert_eq!(parse(&bytes).render(), bytes);
    }

    #[test]
    fn roundtrip_hostsish(bytes in hostsish()) {
        let doc = parse(&bytes);
        prop_assert_eq!(doc.render(), bytes.clone());
        // Spans tile the input.
        let mut pos = 0;
        for l in doc.lines() {
            prop_assert_eq!(l.span.start, pos);
            prop_assert!(l.span.end > l.span.start);
            pos = l.span.end;
        }
        prop_assert_eq!(pos, bytes.len());
    }

    #[test]
    fn validate_positions_are_inside_the_file(bytes in hostsish()) {
        let lines = bytes.split(|&b| b == b'\n').collect::<Vec<_>>();
        for d in validate(&bytes) {
            prop_assert!(d.line >= 1 && d.line <= lines.len(), "{:?}", d);
            // Column may point one past the end of a line (e.g. missing newline).
            prop_assert!(d.column >= 1 && d.column <= lines[d.line - 1].len() + 1, "{:?}", d);
        }
    }

    #[test]
    fn evaluate_never_panics(allow in hostsish(), deny in hostsish()) {
        let d = evaluate(&allow, &deny, &request());
        prop_assert_eq!(d.table.is_none(), d.line.is_none());
        if d.table.is_none() {
            prop_assert!(d.verdict == Verdict::Granted || d.verdict == Verdict::Denied);
        }
    }

    #[test]
    fn add_then_remove_restores(bytes in hostsish(), v4 in any::<u32>()) {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(v4));
        let line = ManagedLine::new("SSHD", ip).unwrap();
        match add(&bytes, &line) {
            None => prop_assert!(contains(&bytes, &line)),
            Some(added) => {
                prop_assert!(contains(&added, &line));
                prop_assert!(added.starts_with(&bytes), "add only appends");
                prop_assert_eq!(add(&added, &line), None);
                let removed = remove(&added, &line).unwrap();
                prop_assert!(!contains(&removed, &line));
            }
        }
    }

    #[test]
    fn added_line_is_effective(bytes in hostsish(), v4 in any::<u32>()) {
        // After add, the managed address is granted sshd unless an earlier problem (a line
        // libwrap stops at, an earlier matching rule) decides first; with an empty hosts.deny
        // and an allow file that validates without errors, it must be granted.
        let ip = IpAddr::from(std::net::Ipv4Addr::from(v4));
        let line = ManagedLine::new("sshd", ip).unwrap();
        if let Some(added) = add(&bytes, &line) {
            let clean = validate(&bytes).iter().all(|d| d.severity == hosts_access::Severity::Warning);
            if clean {
                let req = Request::new("sshd", ip);
                let d = evaluate(&added, b"ALL: ALL\n", &req);
                prop_assert_ne!(d.table, Some(hosts_access::eval::Table::Deny), "{:?}", d);
            }
        }
    }
}
