//! Fuzz target: arbitrary bytes through parse (render must give them back), validate,
//! evaluate (as hosts.allow and as hosts.deny) and the managed-line edits.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hosts_access::edit::{add, contains, remove, ManagedLine};
use hosts_access::eval::{evaluate, Request};
use hosts_access::{parse, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let doc = parse(data);
    assert_eq!(doc.render(), data);

    let line_count = data.split(|&b| b == b'\n').count();
    for d in validate(data) {
        assert!(d.line >= 1 && d.line <= line_count, "{d:?}");
        assert!(d.column >= 1, "{d:?}");
    }

    let clients = [
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
        IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()),
    ];
    for client in clients {
        let mut req = Request::new("sshd", client);
        req.user = Some("alice".into());
        let a = evaluate(data, b"", &req);
        let b = evaluate(b"", data, &req);
        assert_eq!(a.table.is_some(), a.line.is_some());
        assert_eq!(b.table.is_some(), b.line.is_some());

        let line = ManagedLine::new("sshd", client).unwrap();
        if let Some(added) = add(data, &line) {
            assert!(added.starts_with(data));
            assert!(contains(&added, &line));
            let removed = remove(&added, &line).unwrap();
            assert!(!contains(&removed, &line));
        }
    }
});
