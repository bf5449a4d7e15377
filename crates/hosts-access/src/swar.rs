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

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The high bit of each byte of `w` that is neither an ASCII digit nor `.`, and no other bit:
/// exact per byte (no carry crosses a byte), so the lowest set bit marks the first such byte.
#[inline]
pub(crate) fn not_digit_or_dot(w: u64) -> u64 {
    // A byte is a digit when `b ^ 0x30 < 10`: adding 0x76 to its low seven bits sets the
    // high bit exactly when they are 10 or more; a high bit already set means b >= 0x80.
    let x = w ^ (LO * 0x30);
    let not_digit = ((x & LOW7).wrapping_add(LO * 0x76) | x) & HI;
    // A byte is `.` when `b ^ 0x2e` is zero: adding 0x7f to the low seven bits sets the high
    // bit exactly when one of them is set.
    let y = w ^ (LO * u64::from(b'.'));
    let not_dot = ((y & LOW7).wrapping_add(LOW7) | y) & HI;
    not_digit & not_dot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_or_dot_test_is_exact_in_every_position() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                for fill in [b'0', b'9', b'.', 0xff, 0x00] {
                    let mut bytes = [fill; 8];
                    bytes[pos] = b;
                    let mask = not_digit_or_dot(u64::from_le_bytes(bytes));
                    for (k, &c) in bytes.iter().enumerate() {
                        let bad = !(c.is_ascii_digit() || c == b'.');
                        assert_eq!(
                            mask >> (8 * k) & 0xff,
                            if bad { 0x80 } else { 0 },
                            "{bytes:?}"
                        );
                    }
                }
            }
        }
    }

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
