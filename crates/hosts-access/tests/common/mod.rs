//! Generators shared by the property tests.

use proptest::prelude::*;

/// Bytes biased towards hosts_access syntax, so the interesting paths are reached.
pub fn hostsish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"sshd".to_vec()),
        Just(b"ALL".to_vec()),
        Just(b"EXCEPT".to_vec()),
        Just(b":".to_vec()),
        Just(b", ".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\\\n".to_vec()),
        Just(b"\\:".to_vec()),
        Just(b"#".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b"10.0.0.1".to_vec()),
        Just(b"10.0.0.0/8".to_vec()),
        Just(b"[2001:db8::]/32".to_vec()),
        Just(b"@".to_vec()),
        Just(b"allow".to_vec()),
        Just(b"twist x".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}
