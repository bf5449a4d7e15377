//! Word-at-a-time byte tests ("SIMD within a register"): let the hot loops skip eight bytes at
//! once when none of them is interesting.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

#[inline]
pub(crate) fn word(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

/// Some byte of `w` is zero.
#[inline]
fn has_zero(w: u64) -> bool {
    w.wrapping_sub(LO) & !w & HI != 0
}

/// Some byte of `w` equals `b`.
#[inline]
pub(crate) fn has_byte(w: u64, b: u8) -> bool {
    has_zero(w ^ (LO * u64::from(b)))
}

/// Some byte of `w` is below `n` (exact for `n <= 128`).
#[inline]
pub(crate) fn has_less(w: u64, n: u8) -> bool {
    w.wrapping_sub(LO * u64::from(n)) & !w & HI != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tests_are_exact() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut bytes = [b'a'; 8];
                bytes[pos] = b;
                let w = u64::from_le_bytes(bytes);
                assert_eq!(has_byte(w, b':'), b == b':', "{b} at {pos}");
                assert_eq!(has_less(w, 0x20), b < 0x20, "{b} at {pos}");
                assert_eq!(has_byte(w, 0x7f), b == 0x7f);
            }
        }
        // Several interesting bytes in one word.
        let w = u64::from_le_bytes(*b"\x00\x01:[]\x7f\xff\x80");
        assert!(has_byte(w, b'[') && has_byte(w, b']') && has_less(w, 1) && has_byte(w, 0xff));
    }
}
