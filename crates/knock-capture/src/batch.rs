//! One receive batch: the buffers a single `recvmmsg(2)` fills (frame slots, per-frame control
//! space for the kernel's `SCM_TIMESTAMP`), and the pure, bounds-checked turning of what the
//! kernel wrote into [`KnockEvent`]s. Kept apart from the socket so the parsing can be tested
//! on recorded frames and malformed control data without a socket or root.

use knock_match::KnockEvent;

use crate::clock::from_wall_stamp;
use crate::decode::decode;
use crate::link::LinkType;

/// Frames read per `recvmmsg` call.
pub const SLOTS: usize = 64;
/// Bytes kept of each frame; longer frames are truncated, which only cuts payload (the old
/// single-frame path read at most 64 KiB too). The slots are allocated zeroed, so the kernel
/// only makes the pages a frame actually touches resident.
pub const SLOT_BYTES: usize = 65536;
/// Control space per frame, in `u64` words (aligned for `cmsghdr`): room for one
/// `SCM_TIMESTAMP` (a 16-byte header and a 16-byte `timeval` on 64-bit) with slack.
pub const CTRL_WORDS: usize = 8;

/// `SCM_TIMESTAMP` (equal to `SO_TIMESTAMP`, the `timeval` form).
pub const SCM_TIMESTAMP: i32 = libc::SO_TIMESTAMP;

/// What the kernel reported for one slot after `recvmmsg`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the slot (`msg_len`).
    pub len: usize,
    /// Bytes of control data written (`msg_controllen`).
    pub ctrl_len: usize,
    /// `msg_flags` (`MSG_TRUNC`, `MSG_CTRUNC`).
    pub flags: i32,
}

/// Buffers for one batch. Heap-allocated once per capture and reused for every call.
pub struct Batch {
    pub(crate) frames: Vec<u8>,
    pub(crate) ctrl: Vec<u64>,
    pub(crate) received: [Received; SLOTS],
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("slots", &SLOTS).finish()
    }
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            frames: vec![0u8; SLOTS * SLOT_BYTES],
            ctrl: vec![0u64; SLOTS * CTRL_WORDS],
            received: [Received::default(); SLOTS],
        }
    }

    /// The frame bytes of slot `i`, as far as the kernel filled it (never past the slot).
    pub fn frame(&self, i: usize) -> &[u8] {
        let Some(r) = self.received.get(i) else {
            return &[];
        };
        let start = i * SLOT_BYTES;
        self.frames
            .get(start..start + r.len.min(SLOT_BYTES))
            .unwrap_or(&[])
    }

    /// The kernel's receive stamp of slot `i` (wall-clock ms), if it sent one whole.
    pub fn stamp_ms(&self, i: usize) -> Option<u64> {
        let r = self.received.get(i)?;
        if r.flags & libc::MSG_CTRUNC != 0 {
            return None;
        }
        let words = self.ctrl.get(i * CTRL_WORDS..(i + 1) * CTRL_WORDS)?;
        let mut bytes = [0u8; CTRL_WORDS * 8];
        for (dst, w) in bytes.chunks_exact_mut(8).zip(words) {
            dst.copy_from_slice(&w.to_ne_bytes());
        }
        timestamp_ms(bytes.get(..r.ctrl_len.min(bytes.len()))?)
    }

    /// Decode the first `n` slots into `out` (frames that are not knocks are skipped). One
    /// clock reading (`wall_now`, `boot_now`) serves the whole batch: each frame's kernel stamp
    /// gives its age in the queue ([`from_wall_stamp`]); without a stamp, the read time.
    pub fn decode_into(
        &self,
        n: usize,
        link: LinkType,
        loopback: bool,
        wall_now: u64,
        boot_now: u64,
        out: &mut Vec<KnockEvent>,
    ) {
        for i in 0..n.min(SLOTS) {
            let time_ms = match self.stamp_ms(i) {
                Some(stamp) => from_wall_stamp(stamp, wall_now, boot_now),
                None => boot_now,
            };
            if let Some(mut ev) = decode(link, self.frame(i), time_ms) {
                ev.via_loopback = loopback;
                out.push(ev);
            }
        }
    }
}

/// Native-endian signed integer of `width` bytes (4 or 8) at `at`.
fn ne_int(b: &[u8], at: usize, width: usize) -> Option<i64> {
    let s = b.get(at..at.checked_add(width)?)?;
    match width {
        4 => Some(i64::from(i32::from_ne_bytes(s.try_into().ok()?))),
        8 => Some(i64::from_ne_bytes(s.try_into().ok()?)),
        _ => None,
    }
}

/// `CMSG_ALIGN`: control messages are aligned to `size_t`.
fn cmsg_align(n: usize) -> Option<usize> {
    let a = std::mem::size_of::<usize>();
    Some(n.checked_add(a - 1)? & !(a - 1))
}

/// The `SCM_TIMESTAMP` in a control buffer as written by the kernel (`cmsghdr` layout of this
/// target: `size_t cmsg_len; int cmsg_level; int cmsg_type;` then the data), in wall-clock ms.
/// Walks every message, checking each length against the buffer; anything malformed ends the
/// walk with `None`.
pub fn timestamp_ms(ctrl: &[u8]) -> Option<u64> {
    let word = std::mem::size_of::<usize>();
    let hdr = cmsg_align(word + 8)?;
    let time_w = std::mem::size_of::<libc::time_t>();
    let usec_w = std::mem::size_of::<libc::suseconds_t>();
    let mut at = 0usize;
    while at.checked_add(hdr)? <= ctrl.len() {
        let len = usize::try_from(ne_int(ctrl, at, word)?).ok()?;
        if len < hdr || at.checked_add(len)? > ctrl.len() {
            return None;
        }
        let level = ne_int(ctrl, at + word, 4)?;
        let kind = ne_int(ctrl, at + word + 4, 4)?;
        if level == i64::from(libc::SOL_SOCKET) && kind == i64::from(SCM_TIMESTAMP) {
            let data = ctrl.get(at + hdr..at + len)?;
            let sec = ne_int(data, 0, time_w)?;
            // timeval's tv_usec follows tv_sec, aligned to its own size.
            let usec_at = time_w.next_multiple_of(usec_w);
            let usec = ne_int(data, usec_at, usec_w)?;
            if sec <= 0 || !(0..1_000_000).contains(&usec) {
                return None;
            }
            return (sec as u64)
                .checked_mul(1000)?
                .checked_add(usec as u64 / 1000);
        }
        at = at.checked_add(cmsg_align(len)?)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testframes::{addr4, frame, ipv4, udp};
    use knock_match::Proto;

    /// A control buffer holding one message of `level`/`kind` with `data`, laid out as the
    /// kernel does on this target.
    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let word = std::mem::size_of::<usize>();
        let hdr = cmsg_align(word + 8).unwrap();
        let len = hdr + data.len();
        let mut b = vec![0u8; cmsg_align(len).unwrap()];
        b[..word].copy_from_slice(&len.to_ne_bytes());
        b[word..word + 4].copy_from_slice(&level.to_ne_bytes());
        b[word + 4..word + 8].copy_from_slice(&kind.to_ne_bytes());
        b[hdr..hdr + data.len()].copy_from_slice(data);
        b
    }

    fn timeval(sec: i64, usec: i64) -> Vec<u8> {
        let tv = libc::timeval {
            tv_sec: sec as libc::time_t,
            tv_usec: usec as libc::suseconds_t,
        };
        // SAFETY: timeval is plain old data; we view its bytes for its exact size.
        unsafe {
            std::slice::from_raw_parts(
                (&tv as *const libc::timeval).cast::<u8>(),
                std::mem::size_of::<libc::timeval>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn reads_a_timestamp_among_other_messages() {
        let mut ctrl = cmsg(libc::SOL_PACKET, 8, &[1, 2, 3, 4, 5]);
        ctrl.extend(cmsg(
            libc::SOL_SOCKET,
            SCM_TIMESTAMP,
            &timeval(1_700_000_000, 123_456),
        ));
        assert_eq!(timestamp_ms(&ctrl), Some(1_700_000_000_123));
    }

    #[test]
    fn malformed_control_data_is_no_timestamp() {
        let good = cmsg(libc::SOL_SOCKET, SCM_TIMESTAMP, &timeval(1_700_000_000, 5));
        assert!(timestamp_ms(&good).is_some());
        assert_eq!(timestamp_ms(&[]), None);
        // Every truncation of a good message.
        for cut in 0..good.len() {
            assert_eq!(timestamp_ms(&good[..cut]), None, "cut at {cut}");
        }
        let word = std::mem::size_of::<usize>();
        // Lengths that are too small, too large, or overflow.
        for len in [0usize, 1, word, good.len() + 1, usize::MAX, usize::MAX - 3] {
            let mut b = good.clone();
            b[..word].copy_from_slice(&len.to_ne_bytes());
            assert_eq!(timestamp_ms(&b), None, "len {len}");
        }
        // A stamp before the epoch or with a bad microsecond field.
        assert_eq!(
            timestamp_ms(&cmsg(libc::SOL_SOCKET, SCM_TIMESTAMP, &timeval(-5, 0))),
            None
        );
        assert_eq!(
            timestamp_ms(&cmsg(
                libc::SOL_SOCKET,
                SCM_TIMESTAMP,
                &timeval(5, 2_000_000)
            )),
            None
        );
        // Other messages only.
        assert_eq!(timestamp_ms(&cmsg(libc::SOL_IP, 1, &[0; 16])), None);
    }

    #[test]
    fn arbitrary_control_bytes_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..20_000usize {
            let len = n % 97;
            let mut b = vec![0u8; len];
            for x in &mut b {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *x = state as u8;
            }
            // Sometimes a plausible header, to get past the first check.
            if len >= 16 && n % 3 == 0 {
                let word = std::mem::size_of::<usize>();
                let len = usize::from(b[word]) % 64;
                b[..word].copy_from_slice(&len.to_ne_bytes());
            }
            let _ = timestamp_ms(&b);
        }
    }

    fn put(batch: &mut Batch, i: usize, bytes: &[u8], ctrl: &[u8], flags: i32) {
        let start = i * SLOT_BYTES;
        let n = bytes.len().min(SLOT_BYTES);
        batch.frames[start..start + n].copy_from_slice(&bytes[..n]);
        let words = &mut batch.ctrl[i * CTRL_WORDS..(i + 1) * CTRL_WORDS];
        for (w, chunk) in words.iter_mut().zip(ctrl.chunks(8)) {
            let mut a = [0u8; 8];
            a[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_ne_bytes(a);
        }
        batch.received[i] = Received {
            len: bytes.len(),
            ctrl_len: ctrl.len(),
            flags,
        };
    }

    #[test]
    fn a_batch_decodes_in_order_with_each_frame_s_age() {
        let mut batch = Batch::new();
        let syn = crate::testframes::syn_frame;
        let wall_now = 1_700_000_001_000u64;
        let boot_now = 90_000u64;
        // Slot 0: stamped 250 ms ago. Slot 1: no stamp. Slot 2: not a knock (ARP-ish garbage).
        // Slot 3: UDP, control data truncated. Slot 4: stamp from a wall clock an hour ahead.
        put(
            &mut batch,
            0,
            &syn(7000),
            &cmsg(
                libc::SOL_SOCKET,
                SCM_TIMESTAMP,
                &timeval(1_700_000_000, 750_000),
            ),
            0,
        );
        put(&mut batch, 1, &syn(8000), &[], 0);
        put(&mut batch, 2, &[0xff; 30], &[], 0);
        let dgram = frame(
            LinkType::Ethernet,
            &[],
            &ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, 0, 0, &udp(5, 9000, b"x")),
        );
        put(
            &mut batch,
            3,
            &dgram,
            &cmsg(libc::SOL_SOCKET, SCM_TIMESTAMP, &timeval(1_700_000_000, 0)),
            libc::MSG_CTRUNC,
        );
        put(
            &mut batch,
            4,
            &syn(9000),
            &cmsg(libc::SOL_SOCKET, SCM_TIMESTAMP, &timeval(1_700_003_600, 0)),
            0,
        );
        let mut out = Vec::new();
        batch.decode_into(5, LinkType::Ethernet, true, wall_now, boot_now, &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|e| (e.proto, e.dport, e.time_ms, e.via_loopback, e.src))
            .collect();
        let src = addr4([10, 0, 0, 1]);
        assert_eq!(
            got,
            vec![
                (Proto::Tcp, 7000, 89_750, true, src),
                (Proto::Tcp, 8000, 90_000, true, src),
                (Proto::Udp, 9000, 90_000, true, src),
                (Proto::Tcp, 9000, 90_000, true, src),
            ]
        );
    }

    #[test]
    fn lengths_past_the_slot_or_the_batch_are_clamped() {
        let mut batch = Batch::new();
        batch.received[0] = Received {
            len: usize::MAX,
            ctrl_len: usize::MAX,
            flags: libc::MSG_TRUNC,
        };
        assert_eq!(batch.frame(0).len(), SLOT_BYTES);
        assert_eq!(batch.frame(SLOTS), &[] as &[u8]);
        assert_eq!(batch.stamp_ms(0), None);
        assert_eq!(batch.stamp_ms(SLOTS), None);
        let mut out = Vec::new();
        batch.decode_into(usize::MAX, LinkType::RawIp, false, 0, 0, &mut out);
        assert!(out.is_empty());
    }
}
