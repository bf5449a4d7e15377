//! The zero-copy receive path: a `PACKET_RX_RING` (`TPACKET_V2`) shared with the kernel. The
//! kernel writes each frame that passes the filter into the next slot (a `tpacket2_hdr`, then
//! the frame) and flips the slot's status to "user"; we decode it in place and hand the slot
//! back. No system call per frame: one `poll` per wake-up, none at all while frames are
//! waiting. This module owns the ring's layout and the walk over it; the walk is written
//! against a plain memory region so it is tested on heap buffers, malformed headers included.
//!
//! Why V2 and not V3: a V3 block is only handed to user space when it is full or its retire
//! timer fires, so a lone knock on a quiet host waits for the block timeout; V2 wakes the
//! reader for the first frame at once and, under load, the capture thread's coalescing wait
//! (see [`crate::supervisor`]) gives the batching V3 would give.

use std::sync::atomic::{AtomicU32, Ordering};

use knock_match::KnockEvent;

use crate::clock::from_wall_stamp;
use crate::decode::decode;
use crate::link::LinkType;

/// `TP_STATUS_KERNEL`: the slot belongs to the kernel.
pub const TP_STATUS_KERNEL: u32 = 0;
/// `TP_STATUS_USER`: the slot holds a frame for us.
pub const TP_STATUS_USER: u32 = 1;
/// `sizeof(struct tpacket2_hdr)`.
pub const HDR_LEN: usize = 32;

/// Bytes per slot: the header, the `sockaddr_ll` the kernel puts after it, and the frame.
/// Frames longer than what fits are truncated (`tp_snaplen < tp_len`), which only cuts payload:
/// a knock's headers fit many times over.
pub const FRAME_SIZE: usize = 1024;
/// Ring memory per block (a multiple of the page size, holding whole slots).
pub const BLOCK_SIZE: usize = 1 << 16;
/// Blocks in the ring: 8 MiB, 8192 slots, the burst the socket absorbs while the reader is
/// away (about 35 ms of a 230 k packets/s flood; by our estimate the 4 MiB socket buffer of
/// the copying path held some 5000 small frames). 2048 slots were measured to drop a few dozen
/// frames of a million when the shared machine descheduled the reader.
pub const BLOCK_NR: usize = 128;
/// Slots in the ring.
pub const FRAME_NR: usize = BLOCK_SIZE / FRAME_SIZE * BLOCK_NR;

/// The fields of a slot's `tpacket2_hdr` that matter here, read from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotHeader {
    /// `tp_snaplen`: bytes of the frame in the slot.
    pub snaplen: u32,
    /// `tp_mac`: offset of the frame from the start of the slot.
    pub mac: u16,
    /// `tp_sec`, `tp_nsec`: the kernel's receive stamp (wall clock).
    pub sec: u32,
    pub nsec: u32,
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

impl SlotHeader {
    /// Parse the header at the start of `slot` (status excluded: it is read atomically).
    pub fn parse(slot: &[u8]) -> Option<SlotHeader> {
        Some(SlotHeader {
            snaplen: ne_u32(slot, 8)?,
            mac: ne_u16(slot, 12)?,
            sec: ne_u32(slot, 16)?,
            nsec: ne_u32(slot, 20)?,
        })
    }

    /// The frame bytes inside `slot`, or `None` when the header points outside the slot or
    /// into the header itself (a kernel that writes that is not one we understand).
    pub fn frame<'a>(&self, slot: &'a [u8]) -> Option<&'a [u8]> {
        let start = usize::from(self.mac);
        if start < HDR_LEN {
            return None;
        }
        let end = start.checked_add(usize::try_from(self.snaplen).ok()?)?;
        slot.get(start..end.min(slot.len()))
    }

    /// The receive stamp in wall-clock ms, if plausible.
    pub fn stamp_ms(&self) -> Option<u64> {
        if self.sec == 0 || self.nsec >= 1_000_000_000 {
            return None;
        }
        Some(u64::from(self.sec) * 1000 + u64::from(self.nsec) / 1_000_000)
    }
}

/// A walk over a ring of `frame_nr` slots of `frame_size` bytes at `base`, remembering where
/// the next frame will be.
#[derive(Debug)]
pub struct RingWalk {
    base: *mut u8,
    frame_size: usize,
    frame_nr: usize,
    next: usize,
}

// SAFETY: the walk only touches the region it was built on, which its owner (the capture, or a
// test's buffer) keeps alive and does not share with another thread.
unsafe impl Send for RingWalk {}

impl RingWalk {
    /// # Safety
    /// `base` must point at `frame_size * frame_nr` bytes, valid for reads and writes, aligned
    /// for `u32`, with `frame_size` a multiple of 4, for as long as the walk is used; only the
    /// kernel (through the ring protocol) may write to it meanwhile.
    pub unsafe fn new(base: *mut u8, frame_size: usize, frame_nr: usize) -> RingWalk {
        RingWalk {
            base,
            frame_size,
            frame_nr,
            next: 0,
        }
    }

    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: slot i < frame_nr lies inside the region (constructor contract), its first
        // word is u32-aligned, and the kernel accesses it atomically too.
        unsafe { AtomicU32::from_ptr(self.base.add(i * self.frame_size).cast::<u32>()) }
    }

    /// Whether the next slot holds a frame.
    pub fn ready(&self) -> bool {
        self.frame_nr > 0 && self.status(self.next).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Decode up to `max` waiting frames into `out`, in arrival order, handing each slot back
    /// to the kernel. One clock reading (`wall_now`, `boot_now`) serves the batch; each frame's
    /// stamp gives its age in the queue. Returns how many slots were consumed.
    pub fn drain(
        &mut self,
        max: usize,
        link: LinkType,
        loopback: bool,
        wall_now: u64,
        boot_now: u64,
        out: &mut Vec<KnockEvent>,
    ) -> usize {
        let mut n = 0;
        while n < max && self.ready() {
            let i = self.next;
            {
                // SAFETY: the slot's status is "user", so the kernel does not write to it until
                // we store "kernel" below; the slice stays inside the region.
                let slot = unsafe {
                    std::slice::from_raw_parts(self.base.add(i * self.frame_size), self.frame_size)
                };
                if let Some(h) = SlotHeader::parse(slot) {
                    let time_ms = match h.stamp_ms() {
                        Some(stamp) => from_wall_stamp(stamp, wall_now, boot_now),
                        None => boot_now,
                    };
                    if let Some(mut ev) = h.frame(slot).and_then(|f| decode(link, f, time_ms)) {
                        ev.via_loopback = loopback;
                        out.push(ev);
                    }
                }
            }
            self.status(i).store(TP_STATUS_KERNEL, Ordering::Release);
            self.next = (i + 1) % self.frame_nr;
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testframes::syn_frame as syn;

    const SLOT: usize = 256;

    /// A ring on the heap, in u32 words so it is aligned like the kernel's.
    struct HeapRing {
        mem: Vec<u32>,
        walk: RingWalk,
        /// Where the "kernel" writes next.
        head: usize,
        slots: usize,
    }

    impl HeapRing {
        fn new(slots: usize) -> HeapRing {
            let mut mem = vec![0u32; slots * SLOT / 4];
            // SAFETY: mem holds slots * SLOT bytes, u32-aligned, and outlives the walk (both
            // live in this struct; the Vec's buffer never moves).
            let walk = unsafe { RingWalk::new(mem.as_mut_ptr().cast(), SLOT, slots) };
            HeapRing {
                mem,
                walk,
                head: 0,
                slots,
            }
        }

        fn bytes(&mut self, i: usize) -> &mut [u8] {
            let all: &mut [u8] = bytemuck_bytes(&mut self.mem);
            &mut all[i * SLOT..(i + 1) * SLOT]
        }

        /// What the kernel does: write the header and frame, then flip the status. False when
        /// the ring is full (the kernel drops).
        fn push(&mut self, header: SlotHeader, data: &[u8]) -> bool {
            let i = self.head;
            if self.walk.status(i).load(Ordering::Acquire) != TP_STATUS_KERNEL {
                return false;
            }
            let s = self.bytes(i);
            s[8..12].copy_from_slice(&header.snaplen.to_ne_bytes());
            s[12..14].copy_from_slice(&header.mac.to_ne_bytes());
            s[16..20].copy_from_slice(&header.sec.to_ne_bytes());
            s[20..24].copy_from_slice(&header.nsec.to_ne_bytes());
            let at = usize::from(header.mac).clamp(HDR_LEN, SLOT);
            let n = data.len().min(SLOT - at);
            s[at..at + n].copy_from_slice(&data[..n]);
            self.walk.status(i).store(TP_STATUS_USER, Ordering::Release);
            self.head = (i + 1) % self.slots;
            true
        }
    }

    fn bytemuck_bytes(words: &mut [u32]) -> &mut [u8] {
        // SAFETY: u8 has no alignment or validity requirements; the length covers exactly the
        // words' bytes.
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 4) }
    }

    fn good(len: usize) -> SlotHeader {
        SlotHeader {
            snaplen: len as u32,
            mac: 48,
            sec: 1_700_000_000,
            nsec: 750_000_000,
        }
    }

    #[test]
    fn a_burst_larger_than_the_ring_arrives_whole_and_in_order_across_wraps() {
        let mut ring = HeapRing::new(8);
        let mut got = Vec::new();
        let mut sent = 0u16;
        // 100 frames through an 8-slot ring, read in uneven batches.
        while sent < 100 {
            let burst = 1 + usize::from(sent) % 7;
            for _ in 0..burst {
                if sent < 100 && ring.push(good(syn(0).len()), &syn(1000 + sent)) {
                    sent += 1;
                }
            }
            let n = ring.walk.drain(
                3,
                LinkType::Ethernet,
                false,
                1_700_000_001_000,
                50_000,
                &mut got,
            );
            assert!(n <= 3);
        }
        while ring.walk.ready() {
            ring.walk.drain(
                64,
                LinkType::Ethernet,
                false,
                1_700_000_001_000,
                50_000,
                &mut got,
            );
        }
        let ports: Vec<u16> = got.iter().map(|e| e.dport).collect();
        assert_eq!(ports, (1000..1100).collect::<Vec<_>>());
        // Stamped 250 ms before the read.
        assert!(got.iter().all(|e| e.time_ms == 49_750));
    }

    #[test]
    fn a_full_ring_drops_and_recovers() {
        let mut ring = HeapRing::new(4);
        for p in 0..4 {
            assert!(ring.push(good(syn(0).len()), &syn(p)));
        }
        assert!(!ring.push(good(syn(0).len()), &syn(99)), "full");
        let mut got = Vec::new();
        assert_eq!(
            ring.walk
                .drain(usize::MAX, LinkType::Ethernet, true, 0, 7, &mut got),
            4
        );
        assert!(got.iter().all(|e| e.via_loopback && e.time_ms == 7));
        assert!(ring.push(good(syn(0).len()), &syn(5)));
        assert_eq!(
            ring.walk
                .drain(1, LinkType::Ethernet, false, 0, 7, &mut got),
            1
        );
        assert_eq!(got.last().map(|e| e.dport), Some(5));
        assert!(!ring.walk.ready());
    }

    #[test]
    fn malformed_headers_are_skipped_without_panic() {
        let f = syn(7000);
        let bad = [
            // Frame offset inside the header.
            SlotHeader {
                mac: 0,
                ..good(f.len())
            },
            SlotHeader {
                mac: 31,
                ..good(f.len())
            },
            // Offset past the slot.
            SlotHeader {
                mac: u16::MAX,
                ..good(f.len())
            },
            SlotHeader {
                mac: SLOT as u16,
                ..good(f.len())
            },
            // Lengths past the slot, or overflowing with the offset.
            SlotHeader {
                snaplen: u32::MAX,
                ..good(0)
            },
            // Truncated: the frame ends inside the IP header.
            good(20),
            // Nonsense stamps: the read time is used.
            SlotHeader {
                sec: 0,
                ..good(f.len())
            },
            SlotHeader {
                nsec: u32::MAX,
                ..good(f.len())
            },
        ];
        let mut ring = HeapRing::new(bad.len());
        for h in bad {
            assert!(ring.push(h, &f));
        }
        let mut got = Vec::new();
        let n = ring.walk.drain(
            usize::MAX,
            LinkType::Ethernet,
            false,
            1_700_000_001_000,
            9,
            &mut got,
        );
        assert_eq!(n, bad.len(), "every slot is handed back");
        // Only the frame whose length was clamped to the slot, and the two with bad stamps,
        // decode; the clamped one keeps its stamp.
        let times: Vec<u64> = got.iter().map(|e| e.time_ms).collect();
        assert_eq!(times, vec![0, 9, 9]);
        assert!(!ring.walk.ready());
    }

    #[test]
    fn arbitrary_slot_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut ring = HeapRing::new(16);
        let mut out = Vec::new();
        for _ in 0..2000 {
            for i in 0..16 {
                for b in ring.bytes(i).iter_mut() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    *b = state as u8;
                }
                ring.walk.status(i).store(TP_STATUS_USER, Ordering::Release);
            }
            ring.walk
                .drain(16, LinkType::Ethernet, false, state, state >> 3, &mut out);
            out.clear();
        }
    }

    #[test]
    fn an_empty_ring_is_never_ready() {
        // SAFETY: a zero-slot walk never dereferences its base.
        let mut walk = unsafe { RingWalk::new(std::ptr::NonNull::dangling().as_ptr(), 64, 0) };
        assert!(!walk.ready());
        let mut out = Vec::new();
        assert_eq!(walk.drain(10, LinkType::RawIp, false, 0, 0, &mut out), 0);
    }
}
