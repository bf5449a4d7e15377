//! The fixed-capacity table of sources with a sequence in progress: a slab of entries, a
//! seeded hash index by source address, and one intrusive deadline-ordered list per distinct
//! `seq_timeout` so that expiry and eviction are O(number of distinct timeouts).
//!
//! Why lists per timeout: an entry's deadline is the latest deadline of its tracks, and a track
//! (re)started at time t for a door with timeout T ends at t + T. Time never goes back, so
//! within one T, appending at the tail keeps a list sorted by deadline.
//!
//! Eviction favours knocks under way: a second intrusive list holds, oldest first, the
//! "novices", entries none of whose tracks has matched more than its first step. A full table
//! evicts the oldest novice; only when there is none does it evict the entry closest to its
//! deadline. Spoofed first steps cost an attacker one packet each; a second matched step needs
//! the sequence, so a first-step flood only ever displaces other first steps.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;

const NIL: u32 = u32::MAX;

/// Progress of one source through one candidate sequence of one door.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Track {
    pub door: u32,
    /// Which sequence of the door: 0 for a static door, the sequence index for a one-time door,
    /// the step counter for a TOTP door.
    pub variant: u64,
    /// Number of steps already matched (>= 1 while tracked).
    pub stage: u8,
    pub start_ms: u64,
    /// When each matched step arrived, in ms after `start_ms`, saturating at about 65 s
    /// (`at[0]` is 0): a repeat of step j is a retransmission only close to step j's own
    /// original. Two bytes a step keep a full table of 32-step tracks small.
    pub at: [u16; crate::door::MAX_STEPS],
    /// The connection attempt of each matched step, folded to 16 bits
    /// ([`KnockEvent::attempt`]; 0: unknown). A collision only makes a wrong repeat of an
    /// earlier step count as a retransmission, which neither counts nor cancels.
    ///
    /// [`KnockEvent::attempt`]: crate::KnockEvent::attempt
    pub attempts: [u16; crate::door::MAX_STEPS],
}

pub(crate) struct Entry {
    pub key: IpAddr,
    pub tracks: Vec<Track>,
    pub deadline: u64,
    class: u32,
    prev: u32,
    next: u32,
    live: bool,
    /// On the novice list (no track past its first step).
    novice: bool,
    nprev: u32,
    nnext: u32,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

/// Address key hashed as two words; IPv4 and IPv4-mapped IPv6 stay distinct via the tag.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key(IpAddr);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (bits, tag) = match self.0 {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 1u64),
            IpAddr::V6(a) => (u128::from(a), 2u64),
        };
        state.write_u64(bits as u64);
        state.write_u64(((bits >> 64) as u64) ^ (tag << 62));
    }
}

/// A keyed multiply-fold hasher (the construction of foldhash/ahash's fallback). Spoofed
/// sources are attacker-chosen, so the key must be secret and random (the daemon supplies it);
/// this defeats precomputed collision sets at a fraction of SipHash's cost.
#[derive(Clone, Copy)]
pub(crate) struct SeededState {
    k0: u64,
    k1: u64,
}

impl SeededState {
    pub fn new(seed: [u64; 2]) -> SeededState {
        // Odd multipliers never collapse the product to zero.
        SeededState {
            k0: seed[0] | 1,
            k1: (seed[1] ^ 0x9e37_79b9_7f4a_7c15) | 1,
        }
    }
}

pub(crate) struct SeededHasher {
    acc: u64,
    k0: u64,
    k1: u64,
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for SeededHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.acc = fold_mul(self.acc ^ x, self.k0).rotate_left(23) ^ self.k1;
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(self.acc, self.k1)
    }
}

impl BuildHasher for SeededState {
    type Hasher = SeededHasher;

    fn build_hasher(&self) -> SeededHasher {
        SeededHasher {
            acc: self.k1,
            k0: self.k0,
            k1: self.k1,
        }
    }
}

pub(crate) struct Table {
    map: HashMap<Key, u32, SeededState>,
    entries: Vec<Entry>,
    free: Vec<u32>,
    lists: Vec<List>,
    novices: List,
    cap: usize,
}

impl Table {
    pub fn new(cap: usize, classes: usize, seed: [u64; 2]) -> Table {
        let cap = cap.clamp(1, NIL as usize - 1);
        Table {
            map: HashMap::with_capacity_and_hasher(cap.min(1 << 16), SeededState::new(seed)),
            entries: Vec::new(),
            free: Vec::new(),
            lists: vec![
                List {
                    head: NIL,
                    tail: NIL
                };
                classes.max(1)
            ],
            novices: List {
                head: NIL,
                tail: NIL,
            },
            cap,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The live entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.live)
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    #[inline]
    pub fn get(&self, key: IpAddr) -> Option<u32> {
        if self.map.is_empty() {
            return None;
        }
        self.map.get(&Key(key)).copied()
    }

    pub fn entry(&self, slot: u32) -> &Entry {
        &self.entries[slot as usize]
    }

    pub fn entry_mut(&mut self, slot: u32) -> &mut Entry {
        &mut self.entries[slot as usize]
    }

    /// Inserts a new empty entry for `key` (which must be absent), in list `class` with
    /// `deadline`; it starts as a novice. When the table is full the oldest novice (or, with
    /// none, the entry closest to its deadline) is evicted first; the number of tracks it held
    /// is returned.
    pub fn insert(&mut self, key: IpAddr, class: u32, deadline: u64) -> (u32, Option<usize>) {
        let mut evicted = None;
        if self.map.len() >= self.cap {
            let victim = match self.novices.head {
                NIL => self.earliest(),
                head => Some(head),
            };
            if let Some(victim) = victim {
                let n = self.entries[victim as usize].tracks.len();
                self.remove(victim);
                evicted = Some(n);
            }
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.entries.push(Entry {
                    key,
                    // Most sources follow one door: room for one track, not the default four.
                    tracks: Vec::with_capacity(1),
                    deadline: 0,
                    class: 0,
                    prev: NIL,
                    next: NIL,
                    live: false,
                    novice: false,
                    nprev: NIL,
                    nnext: NIL,
                });
                (self.entries.len() - 1) as u32
            }
        };
        {
            let e = &mut self.entries[slot as usize];
            e.key = key;
            e.tracks.clear();
            e.deadline = deadline;
            e.class = class;
            e.live = true;
        }
        self.push_back(slot);
        self.novice_push(slot);
        self.map.insert(Key(key), slot);
        (slot, evicted)
    }

    /// Puts the entry on or off the novice list after its tracks changed: a novice is an entry
    /// none of whose tracks has matched more than its first step. An entry that becomes a
    /// novice again (its advanced tracks were reset) goes to the list's tail.
    pub fn settle(&mut self, slot: u32) {
        let e = &self.entries[slot as usize];
        let novice = e.tracks.iter().all(|t| t.stage <= 1);
        if novice != e.novice {
            if novice {
                self.novice_push(slot);
            } else {
                self.novice_unlink(slot);
            }
        }
    }

    fn novice_push(&mut self, slot: u32) {
        let tail = self.novices.tail;
        {
            let e = &mut self.entries[slot as usize];
            e.novice = true;
            e.nprev = tail;
            e.nnext = NIL;
        }
        if tail == NIL {
            self.novices.head = slot;
        } else {
            self.entries[tail as usize].nnext = slot;
        }
        self.novices.tail = slot;
    }

    fn novice_unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let e = &mut self.entries[slot as usize];
            if !e.novice {
                return;
            }
            e.novice = false;
            (e.nprev, e.nnext)
        };
        if prev == NIL {
            self.novices.head = next;
        } else {
            self.entries[prev as usize].nnext = next;
        }
        if next == NIL {
            self.novices.tail = prev;
        } else {
            self.entries[next as usize].nprev = prev;
        }
    }

    /// Removes an entry; its slot (and its track buffer) is reused later.
    pub fn remove(&mut self, slot: u32) {
        let e = &self.entries[slot as usize];
        if !e.live {
            return;
        }
        let key = e.key;
        self.unlink(slot);
        self.novice_unlink(slot);
        let e = &mut self.entries[slot as usize];
        e.live = false;
        e.tracks.clear();
        self.map.remove(&Key(key));
        self.free.push(slot);
    }

    /// Records that a track of timeout class `class` now ends at `deadline`; the entry moves to
    /// that class's tail when this extends its deadline.
    pub fn extend_deadline(&mut self, slot: u32, class: u32, deadline: u64) {
        if deadline <= self.entries[slot as usize].deadline {
            return;
        }
        self.unlink(slot);
        let e = &mut self.entries[slot as usize];
        e.deadline = deadline;
        e.class = class;
        self.push_back(slot);
    }

    /// The live entry with the earliest deadline.
    pub fn earliest(&self) -> Option<u32> {
        self.lists
            .iter()
            .filter(|l| l.head != NIL)
            .map(|l| l.head)
            .min_by_key(|&s| self.entries[s as usize].deadline)
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.earliest().map(|s| self.entries[s as usize].deadline)
    }

    fn push_back(&mut self, slot: u32) {
        let class = self.entries[slot as usize].class as usize;
        let tail = self.lists[class].tail;
        {
            let e = &mut self.entries[slot as usize];
            e.prev = tail;
            e.next = NIL;
        }
        if tail == NIL {
            self.lists[class].head = slot;
        } else {
            self.entries[tail as usize].next = slot;
        }
        self.lists[class].tail = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next, class) = {
            let e = &self.entries[slot as usize];
            (e.prev, e.next, e.class as usize)
        };
        if prev == NIL {
            self.lists[class].head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[class].tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        let e = &mut self.entries[slot as usize];
        e.prev = NIL;
        e.next = NIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn evicts_earliest_deadline_when_full_of_knocks_under_way() {
        let mut t = Table::new(3, 2, [1, 2]);
        for (n, class, deadline) in [(1, 0, 100), (2, 1, 50), (3, 0, 200)] {
            let (slot, _) = t.insert(ip(n), class, deadline);
            advanced(&mut t, slot);
        }
        assert_eq!(t.len(), 3);
        let (_, ev) = t.insert(ip(4), 1, 300);
        assert_eq!(ev, Some(1));
        assert_eq!(t.len(), 3);
        assert!(t.get(ip(2)).is_none());
        assert_eq!(t.next_deadline(), Some(100));
        let s1 = t.get(ip(1)).unwrap();
        t.extend_deadline(s1, 1, 400);
        assert_eq!(t.next_deadline(), Some(200));
        t.extend_deadline(s1, 0, 10); // never shortens
        assert_eq!(t.entry(s1).deadline, 400);
        let s3 = t.get(ip(3)).unwrap();
        t.remove(s3);
        t.remove(s3);
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_deadline(), Some(300));
    }

    fn advanced(t: &mut Table, slot: u32) {
        t.entry_mut(slot).tracks.push(Track {
            door: 0,
            variant: 0,
            stage: 2,
            start_ms: 0,
            at: [0; crate::door::MAX_STEPS],
            attempts: [0; crate::door::MAX_STEPS],
        });
        t.settle(slot);
    }

    #[test]
    fn a_first_step_flood_evicts_only_novices() {
        let mut t = Table::new(3, 1, [1, 2]);
        // The honest source started first (closest to its deadline) and is two steps in.
        let (honest, _) = t.insert(ip(1), 0, 100);
        advanced(&mut t, honest);
        for n in 2..10_000 {
            t.insert(ip(n), 0, 100 + u64::from(n));
            assert!(
                t.get(ip(1)).is_some(),
                "honest source evicted by source {n}"
            );
        }
        assert_eq!(t.len(), 3);
        // With no novice left, the entry closest to its deadline goes.
        let mut t = Table::new(2, 1, [1, 2]);
        let (a, _) = t.insert(ip(1), 0, 100);
        advanced(&mut t, a);
        let (b, _) = t.insert(ip(2), 0, 200);
        advanced(&mut t, b);
        t.insert(ip(3), 0, 300);
        assert!(t.get(ip(1)).is_none() && t.get(ip(2)).is_some());
        // An entry reset to first-step-only is a novice again, at the back of the line.
        let mut t = Table::new(3, 1, [1, 2]);
        let (a, _) = t.insert(ip(1), 0, 100);
        advanced(&mut t, a);
        t.insert(ip(2), 0, 110);
        t.entry_mut(a).tracks.clear();
        t.entry_mut(a).tracks.push(Track::started(0, 0, 5, 0));
        t.settle(a);
        t.insert(ip(3), 0, 120);
        t.insert(ip(4), 0, 130);
        assert!(t.get(ip(2)).is_none() && t.get(ip(1)).is_some());
        t.insert(ip(5), 0, 140);
        assert!(t.get(ip(1)).is_none());
    }

    #[test]
    fn v4_and_mapped_v6_are_distinct() {
        let mut t = Table::new(10, 1, [0, 0]);
        let v4 = ip(0x0102_0304);
        let v6: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
        t.insert(v4, 0, 1);
        assert!(t.get(v6).is_none());
        t.insert(v6, 0, 2);
        assert_eq!(t.len(), 2);
    }
}
