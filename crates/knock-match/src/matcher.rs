//! The sequence state machine: events in, decisions out, per-source progress held in the
//! bounded table of sources in progress (`table` module).

use std::net::IpAddr;
use std::time::Duration;

use crate::door::{Action, Door, DoorError, DoorKind, Step, TcpFlagRules, MAX_STEPS};
use crate::event::{KnockEvent, Proto};
use crate::table::{Table, Track};

/// Milliseconds from `start` to `t`, saturating at about 65 s (a step's time within its
/// track). A step matched later than that looks older than it is: its repeats are then
/// retransmissions only by connection attempt, never by time.
fn offset(start: u64, t: u64) -> u16 {
    t.saturating_sub(start).min(u64::from(u16::MAX)) as u16
}

/// A connection-attempt fingerprint folded to the 16 bits a track keeps (0 stays 0).
fn fold_attempt(a: u32) -> u16 {
    match a {
        0 => 0,
        a => ((a ^ (a >> 16)) as u16).max(1),
    }
}

impl Track {
    /// A track whose first step matched at `t`, from connection attempt `attempt`.
    pub(crate) fn started(door: u32, variant: u64, t: u64, attempt: u32) -> Track {
        let mut attempts = [0; MAX_STEPS];
        attempts[0] = fold_attempt(attempt);
        Track {
            door,
            variant,
            stage: 1,
            start_ms: t,
            at: [0; MAX_STEPS],
            attempts,
        }
    }

    /// True when the packet repeats an earlier step of `seq`: the same connection attempt as
    /// that step's original (a retransmitted SYN carries its source port and sequence number
    /// again, however late), or any packet to that step within [`RETRANSMIT_MS`] of it.
    fn is_retransmit(&self, seq: &[Step], ev: &KnockEvent, step: Step, t: u64) -> bool {
        let since = t.saturating_sub(self.start_ms);
        let attempt = fold_attempt(ev.attempt);
        (0..usize::from(self.stage).min(seq.len())).any(|j| {
            seq[j] == step
                && ((attempt != 0 && self.attempts[j] == attempt)
                    || since.saturating_sub(u64::from(self.at[j])) <= RETRANSMIT_MS)
        })
    }
}
use crate::totp::{totp_counter, totp_sequence};

/// A repeat of an earlier step this soon after that step's original is a retransmission, not
/// a new knock: Linux resends an unanswered SYN 1 s and 3 s after the original (1, 2, 3 and
/// 4 s with Linux 6.5's linear SYN timeouts), so a client whose knocks go unanswered (a
/// firewall that drops) and that keeps its sockets open while it knocks slowly resends steps
/// it already made, after later ones. A repeat of the same connection attempt (same source
/// port and sequence number) is a retransmission at any time.
pub const RETRANSMIT_MS: u64 = 3_500;

/// Default capacity of the table of sources in progress.
pub const DEFAULT_MAX_SOURCES: usize = 65_536;

/// Construction options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MatcherOptions {
    /// Most sources tracked at once; when full, the oldest source that has matched only its
    /// first step is evicted (a source further along only when no such source is left).
    pub max_sources: usize,
    /// Key of the table's hash. The daemon must pass random bytes (spoofed sources are chosen
    /// by the attacker); the default is a fixed value fit only for tests.
    pub hash_seed: [u64; 2],
}

impl Default for MatcherOptions {
    fn default() -> Self {
        MatcherOptions {
            max_sources: DEFAULT_MAX_SOURCES,
            hash_seed: [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344],
        }
    }
}

/// Running totals since construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Sources dropped from a full table.
    pub evictions: u64,
    /// Sequences in progress abandoned because a pure SYN or a UDP datagram hit a wrong port.
    pub resets: u64,
    /// Sequences in progress that ran out of time (or whose one-time/TOTP sequence stopped
    /// being valid).
    pub timeouts: u64,
    /// Packets that would have started one of a door's sequences but came from outside its
    /// `knock_from` (counted once per door and packet; they start nothing).
    pub outside_knock_from: u64,
    /// Decisions returned.
    pub grants: u64,
}

/// Progress the daemon must make durable before it acts on the decision that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consume {
    /// One-time sequence `index` is used; the next unused one is `next`. `remaining` is how
    /// many unused sequences are left (0: the door is now disabled).
    OneTime {
        index: usize,
        next: usize,
        remaining: usize,
    },
    /// TOTP step `counter` is used; it is refused from now on (the door's
    /// [`TotpParams::used`](crate::TotpParams::used) is what to persist).
    Totp { counter: u64 },
}

/// A completed sequence: apply `action` for `addr` on `service`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Index of the door in the list given to [`Matcher::new`].
    pub door: usize,
    pub door_name: String,
    pub action: Action,
    pub addr: IpAddr,
    pub service: String,
    pub lease: Option<Duration>,
    /// Time of the knock that completed the sequence.
    pub time_ms: u64,
    pub consume: Option<Consume>,
}

struct DoorState {
    door: Door,
    timeout_ms: u64,
    class: u32,
    /// The door's step rule for TCP packets ([`Door::step_rule`]), computed once.
    rule: TcpFlagRules,
    has_udp: bool,
    /// Sequences a knock may currently follow, by variant: the static sequence (variant 0),
    /// the next unused one-time sequence (its index), or the TOTP sequences of the acceptable
    /// counters.
    candidates: Vec<(u64, Vec<Step>)>,
    /// Counter the TOTP candidates were computed for.
    totp_base: Option<u64>,
}

impl DoorState {
    fn candidate(&self, variant: u64) -> Option<&[Step]> {
        self.candidates
            .iter()
            .find(|(v, _)| *v == variant)
            .map(|(_, s)| s.as_slice())
    }

    /// Whether a packet counts for this door at all: sent to its target, or, for a door
    /// without one, to this host.
    fn target_ok(&self, ev: &KnockEvent) -> bool {
        match self.door.target {
            Some(t) => t == ev.dst,
            None => ev.to_host,
        }
    }

    /// Whether the packet could be a step of this door (so sent elsewhere, it is a reset).
    fn could_step(&self, ev: &KnockEvent) -> bool {
        match ev.proto {
            Proto::Udp => self.has_udp,
            Proto::Tcp => self.rule.matches(ev.flags),
        }
    }

    /// Recomputes the candidates; for TOTP only when the counter at wall time `wall` changed
    /// (or `force`). Returns whether they changed.
    fn refresh(&mut self, wall: u64, force: bool) -> bool {
        match &self.door.kind {
            DoorKind::Static { steps } => {
                if force || self.candidates.is_empty() {
                    self.candidates = vec![(0, steps.clone())];
                    return true;
                }
                false
            }
            DoorKind::OneTime { sequences, next } => {
                if !force && self.candidates.first().map(|c| c.0) == Some(*next as u64) {
                    return false;
                }
                self.candidates = sequences
                    .get(*next)
                    .map(|s| vec![(*next as u64, s.clone())])
                    .unwrap_or_default();
                true
            }
            DoorKind::Totp(p) => {
                let step_ms = p.step.as_millis().min(u128::from(u64::MAX)) as u64;
                let c = totp_counter(wall, step_ms);
                if !force && self.totp_base == Some(c) {
                    return false;
                }
                let old = std::mem::take(&mut self.candidates);
                let window = [c.checked_sub(1), Some(c), c.checked_add(1)];
                for k in window.into_iter().flatten() {
                    if p.used.contains(k) {
                        continue;
                    }
                    let steps = match old.iter().find(|(v, _)| *v == k) {
                        Some((_, s)) => s.clone(),
                        None => totp_sequence(&p.secret, k, p.length, p.lo, p.hi)
                            .into_iter()
                            .map(Step::tcp)
                            .collect(),
                    };
                    if !steps.is_empty() {
                        self.candidates.push((k, steps));
                    }
                }
                self.totp_base = Some(c);
                true
            }
        }
    }
}

/// The knock matcher. See the crate documentation for the rules and the durability contract.
pub struct Matcher {
    doors: Vec<DoorState>,
    /// Indices of the TOTP doors: the only ones whose candidates change with time.
    totp_doors: Vec<usize>,
    table: Table,
    /// One bit per (protocol, port) that is the first step of some candidate sequence.
    first_steps: Vec<u64>,
    now: u64,
    /// Wall-clock milliseconds minus `now`'s clock: TOTP's time is `now + wall_offset`.
    wall_offset: i64,
    counters: Counters,
    /// Link-local sources that completed a door not taking them: (door, source), until
    /// [`Matcher::take_link_local_refusals`].
    link_local_refused: Vec<(usize, IpAddr)>,
}

/// Two doors are the same door if they differ at most in progress (one-time `next`, TOTP
/// `used`), which the progress store restores separately.
fn same_definition(a: &Door, b: &Door) -> bool {
    let strip = |d: &Door| {
        let mut d = d.clone();
        match &mut d.kind {
            DoorKind::Static { .. } => {}
            DoorKind::OneTime { next, .. } => *next = 0,
            DoorKind::Totp(p) => p.used = Default::default(),
        }
        d
    };
    a.name == b.name && strip(a) == strip(b)
}

#[inline]
fn bit_index(proto: Proto, port: u16) -> usize {
    (match proto {
        Proto::Tcp => 0,
        Proto::Udp => 65_536,
    }) + usize::from(port)
}

impl Matcher {
    /// Builds a matcher for `doors` (each validated). One-time progress comes in
    /// `DoorKind::OneTime::next`, TOTP progress in `TotpParams::used`.
    pub fn new(doors: Vec<Door>, options: MatcherOptions) -> Result<Matcher, DoorError> {
        let mut timeouts: Vec<u64> = Vec::new();
        let mut states = Vec::with_capacity(doors.len());
        for door in doors {
            door.validate()?;
            let timeout_ms = door.seq_timeout.as_millis().min(u128::from(u64::MAX / 2)) as u64;
            let class = match timeouts.iter().position(|&t| t == timeout_ms) {
                Some(i) => i,
                None => {
                    timeouts.push(timeout_ms);
                    timeouts.len() - 1
                }
            } as u32;
            states.push(DoorState {
                rule: door.step_rule(),
                has_udp: door.has_udp_step(),
                door,
                timeout_ms,
                class,
                candidates: Vec::new(),
                totp_base: None,
            });
        }
        let totp_doors = states
            .iter()
            .enumerate()
            .filter(|(_, d)| matches!(d.door.kind, DoorKind::Totp(_)))
            .map(|(i, _)| i)
            .collect();
        let mut m = Matcher {
            doors: states,
            totp_doors,
            table: Table::new(options.max_sources, timeouts.len(), options.hash_seed),
            first_steps: vec![0; 2 * 65_536 / 64],
            now: 0,
            wall_offset: 0,
            counters: Counters::default(),
            link_local_refused: Vec::new(),
        };
        for d in &mut m.doors {
            d.refresh(0, true);
        }
        m.rebuild_first_steps();
        Ok(m)
    }

    /// The (door index, source) of each link-local source that completed a door not taking
    /// them (`Door::link_local`) since the last call: it got no decision and used up nothing.
    pub fn take_link_local_refusals(&mut self) -> Vec<(usize, IpAddr)> {
        std::mem::take(&mut self.link_local_refused)
    }

    /// The doors with their current progress (one-time `next`, TOTP `used`).
    pub fn doors(&self) -> impl Iterator<Item = &Door> {
        self.doors.iter().map(|d| &d.door)
    }

    /// Sets the wall-clock time as an offset from the event clock: wall = `time_ms` + offset.
    /// TOTP doors compute their window from it; nothing else uses wall time. Call it whenever
    /// the caller notices the wall clock moved against the event clock (a jump, or slewing).
    pub fn set_wall_offset(&mut self, offset_ms: i64) {
        if offset_ms == self.wall_offset {
            return;
        }
        self.wall_offset = offset_ms;
        let wall = self.wall(self.now);
        let mut changed = false;
        for &i in &self.totp_doors {
            changed |= self.doors[i].refresh(wall, false);
        }
        if changed {
            self.rebuild_first_steps();
        }
    }

    /// Wall-clock milliseconds at event-clock time `t` (0 before the epoch).
    fn wall(&self, t: u64) -> u64 {
        (i128::from(t) + i128::from(self.wall_offset)).clamp(0, i128::from(u64::MAX)) as u64
    }

    /// Takes over, from the matcher this one replaces (a configuration reload), the sequences
    /// in progress on every door whose definition is unchanged (same name, kind, sequence,
    /// timeout, flags, action, service, lease and target). Progress on changed or removed doors
    /// is dropped. What the old matcher used up (one-time `next`, TOTP counters) is kept on
    /// every door of the same name and kind ([`Door::merge_progress`]): a sequence it granted
    /// after the new doors were read is not granted again. Returns how many tracks were
    /// carried over.
    pub fn adopt_progress(&mut self, old: &Matcher) -> usize {
        for ds in &mut self.doors {
            for o in &old.doors {
                ds.door.merge_progress(&o.door);
            }
        }
        for ds in &mut self.doors {
            if matches!(ds.door.kind, DoorKind::OneTime { .. }) {
                ds.refresh(0, true);
            }
        }
        let map: Vec<Option<u32>> = old
            .doors
            .iter()
            .map(|o| {
                self.doors
                    .iter()
                    .position(|n| same_definition(&o.door, &n.door))
                    .map(|i| i as u32)
            })
            .collect();
        self.wall_offset = old.wall_offset;
        let now = self.advance(old.now);
        let wall = self.wall(now);
        for &i in &self.totp_doors {
            self.doors[i].refresh(wall, true);
        }
        self.rebuild_first_steps();
        self.counters = old.counters;
        let mut carried = 0;
        for entry in old.table.iter() {
            for tr in &entry.tracks {
                let Some(d) = map[tr.door as usize] else {
                    continue;
                };
                let ds = &self.doors[d as usize];
                let deadline = tr.start_ms.saturating_add(ds.timeout_ms);
                if deadline <= now || ds.candidate(tr.variant).is_none() {
                    continue;
                }
                let slot = match self.table.get(entry.key) {
                    Some(s) => s,
                    None => {
                        let (s, evicted) = self.table.insert(entry.key, ds.class, deadline);
                        if evicted.is_some() {
                            self.counters.evictions += 1;
                        }
                        s
                    }
                };
                let class = ds.class;
                self.table
                    .entry_mut(slot)
                    .tracks
                    .push(Track { door: d, ..*tr });
                self.table.extend_deadline(slot, class, deadline);
                self.table.settle(slot);
                carried += 1;
            }
        }
        carried
    }

    /// Names of one-time doors with no unused sequence left (they never open).
    pub fn exhausted_doors(&self) -> Vec<&str> {
        self.doors
            .iter()
            .filter(|d| matches!(&d.door.kind, DoorKind::OneTime { sequences, next } if *next >= sequences.len()))
            .map(|d| d.door.name.as_str())
            .collect()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Sources with a sequence in progress.
    pub fn in_progress(&self) -> usize {
        self.table.len()
    }

    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// The latest time seen (events and ticks); time never goes back.
    pub fn now_ms(&self) -> u64 {
        self.now
    }

    /// When the next source in progress times out: call [`tick`](Self::tick) then.
    pub fn next_deadline(&self) -> Option<u64> {
        self.table.next_deadline()
    }

    /// Drops every source whose sequences have all timed out by `now_ms`. Returns how many
    /// sources were dropped.
    pub fn tick(&mut self, now_ms: u64) -> usize {
        let now = self.advance(now_ms);
        let mut dropped = 0;
        while let Some(slot) = self.table.earliest() {
            let e = self.table.entry(slot);
            if e.deadline > now {
                break;
            }
            self.counters.timeouts += e.tracks.len() as u64;
            self.table.remove(slot);
            dropped += 1;
        }
        dropped
    }

    fn advance(&mut self, t: u64) -> u64 {
        if t > self.now {
            self.now = t;
            let wall = self.wall(t);
            let mut changed = false;
            for &i in &self.totp_doors {
                changed |= self.doors[i].refresh(wall, false);
            }
            if changed {
                self.rebuild_first_steps();
            }
        }
        self.now
    }

    fn rebuild_first_steps(&mut self) {
        self.first_steps.iter_mut().for_each(|w| *w = 0);
        for d in &self.doors {
            for (_, seq) in &d.candidates {
                if let Some(first) = seq.first() {
                    let i = bit_index(first.proto, first.port);
                    self.first_steps[i / 64] |= 1 << (i % 64);
                }
            }
        }
    }

    #[inline]
    fn is_first_step(&self, proto: Proto, port: u16) -> bool {
        let i = bit_index(proto, port);
        self.first_steps[i / 64] & (1 << (i % 64)) != 0
    }

    /// Feeds one packet. Returns the decisions it completes (usually none).
    #[inline]
    pub fn observe(&mut self, ev: &KnockEvent) -> Vec<Decision> {
        let t = self.advance(ev.time_ms);
        let slot = self.table.get(ev.src);
        if slot.is_none() && !self.is_first_step(ev.proto, ev.dport) {
            return Vec::new();
        }
        self.observe_slow(ev, t, slot)
    }

    fn observe_slow(&mut self, ev: &KnockEvent, t: u64, mut slot: Option<u32>) -> Vec<Decision> {
        let step = Step {
            port: ev.dport,
            proto: ev.proto,
        };
        let pure = ev.proto == Proto::Udp || ev.flags.is_pure_syn();
        // (door, variant) pairs completed by this packet; rare, so the Vec seldom allocates.
        let mut completed: Vec<(u32, u64)> = Vec::new();

        if let Some(s) = slot {
            let doors = &self.doors;
            let entry = self.table.entry_mut(s);
            let mut i = 0;
            while i < entry.tracks.len() {
                let tr = entry.tracks[i];
                let ds = &doors[tr.door as usize];
                let seq = match ds.candidate(tr.variant) {
                    Some(seq) if t.saturating_sub(tr.start_ms) < ds.timeout_ms => seq,
                    _ => {
                        entry.tracks.swap_remove(i);
                        self.counters.timeouts += 1;
                        continue;
                    }
                };
                if !ds.target_ok(ev) {
                    i += 1;
                    continue;
                }
                let stage = usize::from(tr.stage);
                let could_step = ds.could_step(ev);
                if could_step && seq.get(stage) == Some(&step) {
                    if stage + 1 >= seq.len() {
                        entry.tracks.swap_remove(i);
                        completed.push((tr.door, tr.variant));
                        continue;
                    }
                    let tr = &mut entry.tracks[i];
                    tr.at[stage] = offset(tr.start_ms, t);
                    tr.attempts[stage] = fold_attempt(ev.attempt);
                    tr.stage += 1;
                    i += 1;
                    continue;
                }
                if (pure || could_step) && !tr.is_retransmit(seq, ev, step, t) {
                    entry.tracks.swap_remove(i);
                    self.counters.resets += 1;
                    continue;
                }
                i += 1;
            }
        }

        // The packet may also begin a sequence (including right after resetting one).
        let mut singles: Vec<(u32, u64)> = Vec::new();
        if self.is_first_step(ev.proto, ev.dport) {
            for (d, ds) in self.doors.iter().enumerate() {
                if !ds.target_ok(ev) || !ds.could_step(ev) {
                    continue;
                }
                if !ds.door.knock_allowed_from(ev.src) {
                    if ds
                        .candidates
                        .iter()
                        .any(|(_, seq)| seq.first() == Some(&step))
                    {
                        self.counters.outside_knock_from += 1;
                    }
                    continue;
                }
                for (variant, seq) in &ds.candidates {
                    if seq.first() != Some(&step) || completed.contains(&(d as u32, *variant)) {
                        continue;
                    }
                    if seq.len() == 1 {
                        singles.push((d as u32, *variant));
                        continue;
                    }
                    let s = match slot {
                        Some(s) => {
                            let tracks = &self.table.entry(s).tracks;
                            if tracks
                                .iter()
                                .any(|tr| tr.door == d as u32 && tr.variant == *variant)
                            {
                                continue;
                            }
                            s
                        }
                        None => {
                            let (s, evicted) = self.table.insert(
                                ev.src,
                                ds.class,
                                t.saturating_add(ds.timeout_ms),
                            );
                            if evicted.is_some() {
                                self.counters.evictions += 1;
                            }
                            slot = Some(s);
                            s
                        }
                    };
                    self.table
                        .entry_mut(s)
                        .tracks
                        .push(Track::started(d as u32, *variant, t, ev.attempt));
                    self.table
                        .extend_deadline(s, ds.class, t.saturating_add(ds.timeout_ms));
                }
            }
        }

        if let Some(s) = slot {
            if self.table.entry(s).tracks.is_empty() {
                self.table.remove(s);
            } else {
                self.table.settle(s);
            }
        }

        if completed.is_empty() && singles.is_empty() {
            return Vec::new();
        }
        completed.extend(singles);
        // One decision per door per packet; for TOTP the highest counter is the one used.
        completed.sort_unstable();
        let mut out = Vec::new();
        let mut k = 0;
        while k < completed.len() {
            let door = completed[k].0;
            let mut variant = completed[k].1;
            while k < completed.len() && completed[k].0 == door {
                variant = variant.max(completed[k].1);
                k += 1;
            }
            if let Some(d) = self.grant(door as usize, variant, ev.src, t) {
                out.push(d);
            }
        }
        out
    }

    fn grant(&mut self, d: usize, variant: u64, addr: IpAddr, t: u64) -> Option<Decision> {
        let wall = self.wall(t);
        let ds = &mut self.doors[d];
        if crate::source::admit_to_door(addr, &ds.door) == Err(crate::source::Refusal::LinkLocal) {
            self.link_local_refused.push((d, addr));
            return None;
        }
        let consume = match &mut ds.door.kind {
            DoorKind::Static { .. } => None,
            DoorKind::OneTime { sequences, next } => {
                if variant != *next as u64 {
                    return None;
                }
                *next += 1;
                Some(Consume::OneTime {
                    index: variant as usize,
                    next: *next,
                    remaining: sequences.len().saturating_sub(*next),
                })
            }
            DoorKind::Totp(p) => {
                if p.used.contains(variant) {
                    return None;
                }
                let step_ms = p.step.as_millis().min(u128::from(u64::MAX)) as u64;
                p.used.mark(variant, totp_counter(wall, step_ms));
                Some(Consume::Totp { counter: variant })
            }
        };
        if consume.is_some() {
            ds.refresh(wall, true);
            self.rebuild_first_steps();
        }
        let ds = &self.doors[d];
        self.counters.grants += 1;
        Some(Decision {
            door: d,
            door_name: ds.door.name.clone(),
            action: ds.door.action,
            addr,
            service: ds.door.service.clone(),
            lease: ds.door.lease,
            time_ms: t,
            consume,
        })
    }
}
