//! Fuzz target: the privileged parent's decoder of messages from the capture child
//! (`knockwrap_wire::ChildMessage::decode`), the one parser in the root process that reads bytes
//! a compromised child controls, and the child's reader of setup fragments.
//!
//! Beyond "no panic": a datagram longer than the limit is always refused; whatever decodes
//! re-encodes to exactly the same bytes (the layout has one encoding per value, so nothing is
//! accepted that the child could not have meant); knock batches hold 1 to MAX_KNOCKS knocks
//! and log text stays within its bound. Setup fragments fed in any split never panic.
#![no_main]

use knockwrap_wire::{ChildMessage, SetupReader, MAX_CHILD_MESSAGE, MAX_KNOCKS, MAX_LOG_TEXT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ChildMessage::decode(data) {
        Ok(m) => {
            assert!(data.len() <= MAX_CHILD_MESSAGE);
            match &m {
                ChildMessage::Knocks { knocks, .. } => {
                    assert!(!knocks.is_empty() && knocks.len() <= MAX_KNOCKS)
                }
                ChildMessage::Log { text, .. } => assert!(text.len() <= MAX_LOG_TEXT * 3),
                _ => {}
            }
            // Log text is decoded lossily (invalid UTF-8 becomes U+FFFD), so only the other
            // kinds promise a byte-exact round trip.
            if !matches!(m, ChildMessage::Log { .. }) {
                assert_eq!(m.encode(), data, "{m:?}");
            }
        }
        Err(_) => {}
    }
    if data.len() > MAX_CHILD_MESSAGE {
        assert!(ChildMessage::decode(data).is_err());
    }
    // The child's side: the same bytes as setup fragments, split at every 0xff byte.
    let mut reader = SetupReader::default();
    for part in data.split(|&b| b == 0xff) {
        let _ = reader.feed(part);
    }
});
