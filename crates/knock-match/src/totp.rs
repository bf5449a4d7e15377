//! TOTP knock sequences: the step counter, the port derivation (HMAC-SHA-256, rejection
//! sampling, no repeats) and base32 secrets. `docs/totp.md` is the normative description;
//! the test vectors below are the ones printed there.

use std::collections::BTreeSet;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

/// The TOTP step counters one door has accepted: every counter at or below `floor`, and each
/// counter in `above`. A grant for counter k must never refuse the legitimate client's code
/// for k-1 or k+1, so each used counter is remembered on its own, not as a high-water mark.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsedSteps {
    pub floor: Option<u64>,
    pub above: BTreeSet<u64>,
}

impl UsedSteps {
    pub fn contains(&self, counter: u64) -> bool {
        self.floor.is_some_and(|f| counter <= f) || self.above.contains(&counter)
    }

    /// Marks `counter` used when the current counter is `now`. Counters below `now - 1` are
    /// outside the acceptance window and can never be accepted again, so they fold into the
    /// floor; the floor keeps them refused should the wall clock be set back.
    pub fn mark(&mut self, counter: u64, now: u64) {
        self.above.insert(counter);
        if let Some(f) = now.checked_sub(2) {
            if self.floor.is_none_or(|old| f > old) {
                self.floor = Some(f);
            }
        }
        if let Some(f) = self.floor {
            self.above.retain(|&c| c > f);
        }
    }
}

/// The step counter for a time: `floor(time_ms / step_ms)`. A zero step gives 0.
pub fn totp_counter(time_ms: u64, step_ms: u64) -> u64 {
    time_ms.checked_div(step_ms).unwrap_or(0)
}

/// The ports of the sequence for `step_counter`: `length` distinct ports in `lo..=hi`.
///
/// Block 0 is HMAC-SHA-256(secret, BE64(counter)); block j >= 1 is
/// HMAC-SHA-256(secret, BE64(counter) || BE32(j)). Each block is read as sixteen big-endian
/// 16-bit values v; with n = hi - lo + 1, a value is rejected when v >= 65536 - (65536 mod n)
/// (no modulo bias), else the port is lo + (v mod n), skipped if already chosen.
///
/// Returns fewer than `length` ports only when the range is empty (lo > hi) or holds fewer
/// than `length` ports (then every port of the range, in derived order).
pub fn totp_sequence(
    secret: &[u8],
    step_counter: u64,
    length: usize,
    lo: u16,
    hi: u16,
) -> Vec<u16> {
    if lo > hi {
        return Vec::new();
    }
    let n = u32::from(hi - lo) + 1;
    let want = length.min(n as usize);
    let limit = 65536 - (65536 % n);
    let mut out: Vec<u16> = Vec::with_capacity(want);
    let mut block: u32 = 0;
    while out.len() < want {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return Vec::new();
        };
        mac.update(&step_counter.to_be_bytes());
        if block > 0 {
            mac.update(&block.to_be_bytes());
        }
        let bytes = mac.finalize().into_bytes();
        for pair in bytes.chunks_exact(2) {
            let v = u32::from(u16::from_be_bytes([pair[0], pair[1]]));
            if v >= limit {
                continue;
            }
            let port = (u32::from(lo) + v % n) as u16;
            if !out.contains(&port) {
                out.push(port);
                if out.len() == want {
                    break;
                }
            }
        }
        block = match block.checked_add(1) {
            Some(b) => b,
            None => break,
        };
    }
    out
}

/// Why a base32 secret did not decode.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Base32Error {
    #[error("character {ch:?} at offset {offset} is not base32 (A-Z, 2-7)")]
    BadChar { ch: char, offset: usize },
    #[error("padding `=` followed by data at offset {offset}")]
    DataAfterPadding { offset: usize },
    #[error("no key data")]
    Empty,
}

/// Decodes RFC 4648 base32 as authenticator apps write it: case-insensitive, `=` padding
/// optional, blanks (spaces, tabs, newlines) ignored. Trailing bits that do not fill a byte
/// are dropped.
pub fn decode_base32(text: &str) -> Result<Vec<u8>, Base32Error> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut padded = false;
    for (offset, ch) in text.char_indices() {
        if ch.is_whitespace() {
            continue;
        }
        if ch == '=' {
            padded = true;
            continue;
        }
        if padded {
            return Err(Base32Error::DataAfterPadding { offset });
        }
        let v = match ch {
            'A'..='Z' => ch as u32 - 'A' as u32,
            'a'..='z' => ch as u32 - 'a' as u32,
            '2'..='7' => ch as u32 - '2' as u32 + 26,
            _ => return Err(Base32Error::BadChar { ch, offset }),
        };
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if out.is_empty() {
        return Err(Base32Error::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_rfc4648_vectors() {
        let cases = [
            ("MY======", "f"),
            ("MZXQ====", "fo"),
            ("MZXW6===", "foo"),
            ("MZXW6YQ=", "foob"),
            ("MZXW6YTB", "fooba"),
            ("MZXW6YTBOI======", "foobar"),
            ("mzxw 6ytb\noi", "foobar"),
        ];
        for (text, want) in cases {
            assert_eq!(decode_base32(text).unwrap(), want.as_bytes(), "{text}");
        }
        assert_eq!(
            decode_base32("MZ1W"),
            Err(Base32Error::BadChar { ch: '1', offset: 2 })
        );
        assert_eq!(
            decode_base32("MY==MY"),
            Err(Base32Error::DataAfterPadding { offset: 4 })
        );
        assert_eq!(decode_base32("  \n"), Err(Base32Error::Empty));
    }

    #[test]
    fn used_steps_are_a_set_not_a_high_water_mark() {
        let mut u = UsedSteps::default();
        u.mark(101, 100);
        assert!(u.contains(101));
        // The neighbours of a used step stay usable: an attacker's grant for k+1 must not
        // burn the honest client's k.
        assert!(!u.contains(100) && !u.contains(99) && !u.contains(102));
        u.mark(99, 100);
        assert!(u.contains(99) && u.contains(101) && !u.contains(100));
        // Time moves on: what fell out of the window folds into the floor.
        u.mark(200, 200);
        assert_eq!(u.floor, Some(198));
        assert_eq!(u.above.iter().copied().collect::<Vec<_>>(), vec![200]);
        assert!(u.contains(101) && u.contains(198) && !u.contains(199));
        // A clock set back never lowers the floor.
        u.mark(50, 50);
        assert_eq!(u.floor, Some(198));
        assert!(u.contains(50));
    }

    #[test]
    fn counter_floors() {
        assert_eq!(totp_counter(59_999, 30_000), 1);
        assert_eq!(totp_counter(60_000, 30_000), 2);
        assert_eq!(totp_counter(5, 0), 0);
    }

    #[test]
    fn sequences_are_distinct_and_in_range() {
        let secret = b"12345678901234567890";
        for counter in 0..200u64 {
            for (len, lo, hi) in [(4usize, 20000u16, 40000u16), (8, 1, 10), (32, 100, 131)] {
                let s = totp_sequence(secret, counter, len, lo, hi);
                assert_eq!(s.len(), len);
                assert!(s.iter().all(|p| (lo..=hi).contains(p)));
                let mut d = s.clone();
                d.sort_unstable();
                d.dedup();
                assert_eq!(d.len(), len, "repeat in {s:?}");
            }
        }
        assert_ne!(
            totp_sequence(secret, 1, 4, 20000, 40000),
            totp_sequence(secret, 2, 4, 20000, 40000)
        );
        assert_eq!(totp_sequence(secret, 1, 4, 9, 8), Vec::<u16>::new());
        assert_eq!(totp_sequence(secret, 1, 4, 7, 8).len(), 2);
    }
}
