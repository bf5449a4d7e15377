//! How the parent judges a knock the capture child reports: against the doors of the setup
//! generation the child matched it with, the interface list of that setup and the source
//! policy, consuming one-time and TOTP progress in its own copy of those doors.
//!
//! - **Generations.** Every setup the parent sends has a number; a reload installs the next
//!   one at once but keeps the earlier ones ([`MAX_GENERATIONS`] at most) until the child
//!   acknowledges a later one (`Ready`): a knock the child matched before it took the new
//!   setup is judged by the door it was matched against, never by the door that now has its
//!   index. A knock of a generation the parent no longer keeps is dropped (counted); one of a
//!   generation the child already left behind, or never got, is a lie. What one generation's
//!   door uses up is used in every kept door of the same name and kind, since they share one
//!   progress file.
//! - **Interfaces.** A knock names its capture interface by index; whether that interface is
//!   a loopback one (where a loopback or own source is genuine) is the parent's own
//!   knowledge, asked through the caller, never the child's word.
//! - **Link-local** sources are checked against the door before anything is consumed.
//! - **TOTP** counters are judged in the step of the knock's own time (which the caller has
//!   clamped to the last minute), widened by [`TOTP_SLACK_MS`] for the two processes'
//!   clock anchors.
//! - **Drains.** What the checks consume is undone ([`Judge::rollback`]) when a later
//!   message of the same drain is refused: a lying child gets nothing of what it sent since
//!   the last drain the parent accepted, and the parent's doors stay what their progress
//!   files say.

use knock_match::source::admit;
use knock_match::{Consume, Decision, Door, DoorKind, HostAddresses, Refusal};

use super::error::Refused;
use knockwrap_wire::{Knock, Used};

/// Most setup generations kept while the child has not acknowledged the latest.
pub const MAX_GENERATIONS: usize = 4;
/// How far apart the parent's and the child's wall clocks may be: each re-anchors only when
/// the real wall clock departs from its own by more than this (`clock::JUMP_MS`).
pub const TOTP_SLACK_MS: u64 = crate::daemon::shared::clock::JUMP_MS as u64;

/// Doors disabled because their progress cannot be trusted: (door name, why).
pub type Disabled = Vec<(String, String)>;

/// One setup as the parent sent it.
#[derive(Clone, Debug)]
pub struct Generation {
    pub id: u32,
    /// The doors with their progress: the parent's own copy.
    pub doors: Vec<Door>,
    pub disabled: Disabled,
    pub interfaces: Vec<String>,
}

/// A knock that passed every check: its decision, and the generation whose door made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judged {
    pub generation: u32,
    pub decision: Decision,
}

/// What became of a knock that is not a lie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Take(Judged),
    /// Matched against a generation no longer kept: dropped, not judged by another door.
    Stale,
}

/// A door's progress, as saved for [`Judge::rollback`].
#[derive(Clone, Debug)]
enum Progress {
    None,
    OneTime(usize),
    Totp(knock_match::UsedSteps),
}

fn progress_of(d: &Door) -> Progress {
    match &d.kind {
        DoorKind::Static { .. } => Progress::None,
        DoorKind::OneTime { next, .. } => Progress::OneTime(*next),
        DoorKind::Totp(p) => Progress::Totp(p.used.clone()),
    }
}

fn restore(d: &mut Door, p: Progress) {
    match (&mut d.kind, p) {
        (DoorKind::OneTime { next, .. }, Progress::OneTime(n)) => *next = n,
        (DoorKind::Totp(t), Progress::Totp(used)) => t.used = used,
        _ => {}
    }
}

/// The parent's doors, by generation, and the checks a knock must pass.
pub struct Judge {
    /// Oldest first; the last is the current one.
    generations: Vec<Generation>,
    /// The latest generation the child said it uses.
    acknowledged: u32,
    /// Every kept door's progress before the first check of the drain under way.
    saved: Option<Vec<(u32, Vec<Progress>)>>,
}

/// A knock's time and wall time as the parent reckons them.
#[derive(Clone, Copy, Debug)]
pub struct When {
    /// The knock's event-clock time, clamped by the caller.
    pub time_ms: u64,
    /// Wall-clock ms at `time_ms`.
    pub wall_ms: u64,
}

impl Judge {
    pub fn new(first: Generation) -> Judge {
        Judge {
            acknowledged: first.id,
            generations: vec![first],
            saved: None,
        }
    }

    pub fn current(&self) -> &Generation {
        // Never empty: built with one, and pruning keeps the last.
        &self.generations[self.generations.len() - 1]
    }

    /// The most interfaces of any kept generation (the child's counters follow the setup it
    /// uses, which may be an earlier one).
    pub fn max_interfaces(&self) -> usize {
        self.generations
            .iter()
            .map(|g| g.interfaces.len())
            .max()
            .unwrap_or(0)
    }

    /// The door `index` of generation `generation`, while it is kept.
    pub fn door(&self, generation: u32, index: usize) -> Option<&Door> {
        self.generations
            .iter()
            .find(|g| g.id == generation)
            .and_then(|g| g.doors.get(index))
    }

    /// Installs the next generation (its id is the current one's plus one), keeping the
    /// earlier ones until the child acknowledges it. Returns its id.
    pub fn install(&mut self, mut next: Generation) -> u32 {
        next.id = self.current().id.wrapping_add(1);
        let id = next.id;
        self.generations.push(next);
        if self.generations.len() > MAX_GENERATIONS {
            let extra = self.generations.len() - MAX_GENERATIONS;
            self.generations.drain(..extra);
        }
        id
    }

    /// A new child got the current setup and nothing else.
    pub fn child_started(&mut self) {
        let keep = self.generations.len() - 1;
        self.generations.drain(..keep);
        self.acknowledged = self.current().id;
        self.saved = None;
    }

    /// The child uses `generation` from now on. The generations before it are dropped at the
    /// next [`prune`](Self::prune) (decisions already judged by them still need their doors).
    pub fn acknowledge(&mut self, generation: u32) -> Result<(), Refused> {
        let current = self.current().id;
        if generation > current || generation < self.acknowledged {
            return Err(Refused::Generation {
                got: generation,
                current,
            });
        }
        self.acknowledged = generation;
        Ok(())
    }

    /// Drops the generations the child no longer uses (call between drains).
    pub fn prune(&mut self) {
        let acknowledged = self.acknowledged;
        let last = self.current().id;
        self.generations
            .retain(|g| g.id >= acknowledged || g.id == last);
    }

    /// Checks one knock of `generation` and consumes what it uses. `is_loopback` says
    /// whether an interface (by name) is a loopback one; `when` is the knock's time.
    pub fn check(
        &mut self,
        generation: u32,
        knock: &Knock,
        host: &HostAddresses,
        is_loopback: &mut dyn FnMut(&str) -> bool,
        when: When,
    ) -> Result<Verdict, Refused> {
        let current = self.current().id;
        if generation > current || generation < self.acknowledged {
            return Err(Refused::Generation {
                got: generation,
                current,
            });
        }
        let Some(g) = self.generations.iter().position(|g| g.id == generation) else {
            return Ok(Verdict::Stale);
        };
        if self.saved.is_none() {
            self.saved = Some(
                self.generations
                    .iter()
                    .map(|g| (g.id, g.doors.iter().map(progress_of).collect()))
                    .collect(),
            );
        }
        let gen = &mut self.generations[g];
        let i = usize::from(knock.door);
        let Some(d) = gen.doors.get_mut(i) else {
            return Err(Refused::DoorOutOfRange(knock.door));
        };
        if gen.disabled.iter().any(|(name, _)| *name == d.name) {
            return Err(Refused::DoorDisabled(d.name.clone()));
        }
        let Some(interface) = gen.interfaces.get(usize::from(knock.interface)) else {
            return Err(Refused::Interface {
                index: knock.interface,
                configured: gen.interfaces.len(),
            });
        };
        let addr = knock.addr;
        // The one admission rule (`knock_match::source::admit`), as the child applied it: the
        // interface's loopback-ness is the parent's own reading, asked only when it matters.
        let verdict = match admit(addr, false, host, d) {
            Err(Refusal::Loopback | Refusal::OwnAddress) if is_loopback(interface) => {
                admit(addr, true, host, d)
            }
            other => other,
        };
        if let Err(why) = verdict {
            return Err(Refused::Source { addr, why });
        }
        let consume = consume(d, knock.used, when.wall_ms)?;
        let decision = Decision {
            door: i,
            door_name: d.name.clone(),
            action: d.action,
            addr,
            service: d.service.clone(),
            lease: d.lease,
            time_ms: when.time_ms,
            consume,
        };
        if consume.is_some() {
            let used = d.clone();
            for other in self.generations.iter_mut().filter(|o| o.id != generation) {
                for door in &mut other.doors {
                    door.merge_progress(&used);
                }
            }
        }
        Ok(Verdict::Take(Judged {
            generation,
            decision,
        }))
    }

    /// The drain's decisions are taken: its consumption stands.
    pub fn commit(&mut self) {
        self.saved = None;
    }

    /// The drain is refused: every door's progress goes back to what it was before it.
    pub fn rollback(&mut self) {
        let Some(saved) = self.saved.take() else {
            return;
        };
        for (id, progress) in saved {
            if let Some(g) = self.generations.iter_mut().find(|g| g.id == id) {
                for (d, p) in g.doors.iter_mut().zip(progress) {
                    restore(d, p);
                }
            }
        }
    }
}

/// The TOTP counters a knock at wall time `wall_ms` may use: one step either side of its
/// own step, with [`TOTP_SLACK_MS`] either way for the clock anchors.
pub fn totp_window(wall_ms: u64, step_ms: u64) -> (u64, u64) {
    let lo = knock_match::totp_counter(wall_ms.saturating_sub(TOTP_SLACK_MS), step_ms);
    let hi = knock_match::totp_counter(wall_ms.saturating_add(TOTP_SLACK_MS), step_ms);
    (lo.saturating_sub(1), hi.saturating_add(1))
}

/// What a completed knock the child reports uses up, checked against the parent's copy of the
/// door and consumed there: a static door uses nothing; a one-time door exactly its next unused
/// sequence (the matcher accepts no other, so a child that names another is not to be trusted:
/// it could otherwise use up the list); a TOTP door an unused step within one of the knock's
/// own step (`wall_ms` is the knock's time).
pub fn consume(d: &mut Door, used: Used, wall_ms: u64) -> Result<Option<Consume>, Refused> {
    match (used, &mut d.kind) {
        (Used::None, DoorKind::Static { .. }) => Ok(None),
        (Used::OneTime { index }, DoorKind::OneTime { sequences, next }) => {
            let i = index as usize;
            if i != *next || i >= sequences.len() {
                return Err(Refused::OneTimeUsed {
                    door: d.name.clone(),
                    index,
                });
            }
            *next = i + 1;
            Ok(Some(Consume::OneTime {
                index: i,
                next: i + 1,
                remaining: sequences.len() - (i + 1),
            }))
        }
        (Used::Totp { counter }, DoorKind::Totp(p)) => {
            let step = p.step.as_millis().max(1) as u64;
            let (lo, hi) = totp_window(wall_ms, step);
            if p.used.contains(counter) || counter < lo || counter > hi {
                return Err(Refused::TotpStep {
                    door: d.name.clone(),
                    counter,
                });
            }
            // Everything below the window's low end can never be accepted again: `mark`
            // folds counters below its `now - 1` into the floor.
            p.used.mark(counter, lo.saturating_add(1));
            Ok(Some(Consume::Totp { counter }))
        }
        _ => Err(Refused::WrongKind(d.name.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_match::{Action, Step, TotpParams};
    use std::net::IpAddr;
    use std::time::Duration;

    fn door(name: &str, service: &str, kind: DoorKind) -> Door {
        Door {
            name: name.into(),
            kind,
            seq_timeout: Duration::from_secs(10),
            tcp_flags: knock_match::TcpFlagRules::parse_list(["syn"]).unwrap(),
            action: Action::Allow,
            service: service.into(),
            lease: None,
            target: None,
            knock_from: Vec::new(),
            link_local: false,
        }
    }

    fn fixed(name: &str, service: &str) -> Door {
        door(
            name,
            service,
            DoorKind::Static {
                steps: vec![Step::tcp(7000), Step::tcp(8000)],
            },
        )
    }

    fn one_time(name: &str, next: usize) -> Door {
        let seq = |p: u16| vec![Step::tcp(p), Step::tcp(p + 2)];
        door(
            name,
            &format!("in.{name}"),
            DoorKind::OneTime {
                sequences: vec![seq(1000), seq(2000), seq(3000)],
                next,
            },
        )
    }

    fn totp(step_s: u64) -> Door {
        door(
            "t",
            "SSHD",
            DoorKind::Totp(TotpParams {
                secret: vec![7; 20],
                length: 4,
                lo: 20000,
                hi: 40000,
                step: Duration::from_secs(step_s),
                used: Default::default(),
            }),
        )
    }

    fn generation(doors: Vec<Door>, interfaces: &[&str]) -> Generation {
        Generation {
            id: 1,
            doors,
            disabled: Vec::new(),
            interfaces: interfaces.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn host() -> HostAddresses {
        let mut h = HostAddresses::default();
        h.add("127.0.0.1".parse().unwrap(), 8);
        h.add("198.18.0.1".parse().unwrap(), 24);
        h
    }

    fn knock(door: u16, interface: u16, addr: &str, used: Used) -> Knock {
        Knock {
            door,
            addr: addr.parse().unwrap(),
            interface,
            time_ms: 5_000,
            used,
        }
    }

    const WHEN: When = When {
        time_ms: 5_000,
        wall_ms: 1_700_000_000_000,
    };

    fn lo_only(name: &str) -> bool {
        name == "lo"
    }

    fn check(j: &mut Judge, generation: u32, k: Knock) -> Result<Verdict, Refused> {
        j.check(generation, &k, &host(), &mut lo_only, WHEN)
    }

    fn taken(v: Result<Verdict, Refused>) -> Judged {
        match v {
            Ok(Verdict::Take(j)) => j,
            other => panic!("not taken: {other:?}"),
        }
    }

    #[test]
    fn loopback_and_own_sources_only_on_an_interface_the_parent_knows_is_loopback() {
        let mut j = Judge::new(generation(vec![fixed("d", "SSHD")], &["eth0", "lo"]));
        for addr in ["127.0.0.1", "198.18.0.1", "::1"] {
            assert_eq!(
                check(&mut j, 1, knock(0, 0, addr, Used::None)).map(|_| ()),
                Err(Refused::Source {
                    addr: addr.parse().unwrap(),
                    why: if addr == "198.18.0.1" {
                        Refusal::OwnAddress
                    } else {
                        Refusal::Loopback
                    }
                }),
                "{addr} on eth0"
            );
            assert_eq!(
                taken(check(&mut j, 1, knock(0, 1, addr, Used::None)))
                    .decision
                    .addr,
                addr.parse::<IpAddr>().unwrap(),
                "{addr} on lo"
            );
        }
        // What no host sends stays refused on lo; an interface not in the setup is a lie.
        assert!(check(&mut j, 1, knock(0, 1, "224.0.0.1", Used::None)).is_err());
        assert_eq!(
            check(&mut j, 1, knock(0, 2, "198.18.0.9", Used::None)),
            Err(Refused::Interface {
                index: 2,
                configured: 2
            })
        );
        // A child given only eth0 cannot get lo's verdict at all.
        let mut j = Judge::new(generation(vec![fixed("d", "SSHD")], &["eth0"]));
        assert!(check(&mut j, 1, knock(0, 0, "127.0.0.1", Used::None)).is_err());
        assert!(check(&mut j, 1, knock(0, 1, "127.0.0.1", Used::None)).is_err());
    }

    #[test]
    fn a_link_local_knock_consumes_nothing_on_a_door_that_does_not_take_them() {
        let mut g = generation(vec![one_time("a", 0), one_time("b", 0)], &["eth0"]);
        g.doors[1].link_local = true;
        let mut j = Judge::new(g);
        assert!(matches!(
            check(
                &mut j,
                1,
                knock(0, 0, "fe80::5", Used::OneTime { index: 0 })
            ),
            Err(Refused::Source {
                why: Refusal::LinkLocal,
                ..
            })
        ));
        j.rollback();
        assert!(matches!(
            j.current().doors[0].kind,
            DoorKind::OneTime { next: 0, .. }
        ));
        // The sequence is still there for the honest client; the door that takes link-local
        // sources takes one.
        taken(check(
            &mut j,
            1,
            knock(0, 0, "198.18.0.9", Used::OneTime { index: 0 }),
        ));
        taken(check(
            &mut j,
            1,
            knock(1, 0, "fe80::5", Used::OneTime { index: 0 }),
        ));
    }

    #[test]
    fn a_knock_of_an_earlier_generation_is_judged_by_its_own_doors() {
        let mut j = Judge::new(generation(
            vec![one_time("a", 0), one_time("b", 0), fixed("c", "in.c")],
            &["eth0"],
        ));
        let id = j.install(generation(
            vec![one_time("b", 0), one_time("a", 0)],
            &["eth0"],
        ));
        assert_eq!(id, 2);
        // Door 0 of generation 1 is `a`, whatever door 0 is now.
        let a = taken(check(
            &mut j,
            1,
            knock(0, 0, "198.18.0.9", Used::OneTime { index: 0 }),
        ));
        assert_eq!((a.generation, a.decision.door_name.as_str()), (1, "a"));
        assert_eq!(a.decision.service, "in.a");
        assert_eq!(j.door(1, 0).map(|d| d.name.as_str()), Some("a"));
        // What it used is used in the new generation's `a` too, and nowhere in `b`.
        assert!(matches!(
            j.door(2, 1).unwrap().kind,
            DoorKind::OneTime { next: 1, .. }
        ));
        assert!(matches!(
            j.door(2, 0).unwrap().kind,
            DoorKind::OneTime { next: 0, .. }
        ));
        assert!(check(
            &mut j,
            2,
            knock(1, 0, "198.18.0.9", Used::OneTime { index: 0 })
        )
        .is_err());
        j.rollback();
        // A door the reload removed still judges what was matched against it.
        let c = taken(check(&mut j, 1, knock(2, 0, "198.18.0.9", Used::None)));
        assert_eq!(c.decision.service, "in.c");
        j.commit();
        // Once the child says it uses generation 2, generation 1 goes (after the drain) and
        // a knock that claims it is a lie; so is one from a generation never sent.
        j.acknowledge(2).unwrap();
        assert!(j.door(1, 0).is_some(), "kept until pruned");
        j.prune();
        assert!(j.door(1, 0).is_none());
        assert!(check(&mut j, 1, knock(0, 0, "198.18.0.9", Used::None)).is_err());
        assert!(check(&mut j, 3, knock(0, 0, "198.18.0.9", Used::None)).is_err());
        assert!(j.acknowledge(1).is_err() && j.acknowledge(3).is_err());
    }

    #[test]
    fn generations_beyond_the_bound_are_dropped_not_judged_by_another_door() {
        let mut j = Judge::new(generation(vec![fixed("a", "in.a")], &["eth0"]));
        for _ in 0..MAX_GENERATIONS {
            j.install(generation(vec![fixed("b", "in.b")], &["eth0"]));
        }
        assert_eq!(
            check(&mut j, 1, knock(0, 0, "198.18.0.9", Used::None)),
            Ok(Verdict::Stale)
        );
        let b = taken(check(&mut j, 2, knock(0, 0, "198.18.0.9", Used::None)));
        assert_eq!(b.decision.service, "in.b");
        // A new child knows only the current generation.
        j.child_started();
        assert!(check(&mut j, 2, knock(0, 0, "198.18.0.9", Used::None)).is_err());
    }

    #[test]
    fn a_rollback_restores_every_doors_progress() {
        let mut j = Judge::new(generation(vec![one_time("a", 0), totp(30)], &["eth0"]));
        let c = WHEN.wall_ms / 30_000;
        taken(check(
            &mut j,
            1,
            knock(0, 0, "198.18.0.9", Used::OneTime { index: 0 }),
        ));
        taken(check(
            &mut j,
            1,
            knock(1, 0, "198.18.0.9", Used::Totp { counter: c }),
        ));
        j.rollback();
        taken(check(
            &mut j,
            1,
            knock(0, 0, "198.18.0.9", Used::OneTime { index: 0 }),
        ));
        taken(check(
            &mut j,
            1,
            knock(1, 0, "198.18.0.9", Used::Totp { counter: c }),
        ));
        j.commit();
        j.rollback();
        assert!(check(
            &mut j,
            1,
            knock(0, 0, "198.18.0.9", Used::OneTime { index: 0 })
        )
        .is_err());
    }

    #[test]
    fn a_knock_uses_exactly_what_its_door_allows_once() {
        let mut one_time = one_time("d", 1);
        // Only the next unused sequence: not a used one, not one further on, not past the end.
        for index in [0, 2, 3, 99] {
            assert!(
                consume(&mut one_time, Used::OneTime { index }, 0).is_err(),
                "{index}"
            );
        }
        assert_eq!(
            consume(&mut one_time, Used::OneTime { index: 1 }, 0),
            Ok(Some(Consume::OneTime {
                index: 1,
                next: 2,
                remaining: 1
            }))
        );
        assert!(consume(&mut one_time, Used::OneTime { index: 1 }, 0).is_err());
        assert!(consume(&mut one_time, Used::None, 0).is_err());

        let mut t = totp(30);
        let now = 1_700_000_015_000u64;
        let c = now / 30_000;
        assert!(consume(&mut t, Used::Totp { counter: c + 2 }, now).is_err());
        assert!(consume(&mut t, Used::Totp { counter: c - 2 }, now).is_err());
        assert!(consume(&mut t, Used::Totp { counter: c + 1 }, now).is_ok());
        assert!(consume(&mut t, Used::Totp { counter: c + 1 }, now).is_err());
        assert!(consume(&mut t, Used::Totp { counter: c }, now).is_ok());

        let mut fixed = fixed("f", "SSHD");
        assert_eq!(consume(&mut fixed, Used::None, now), Ok(None));
        assert!(consume(&mut fixed, Used::OneTime { index: 0 }, now).is_err());
    }

    /// The step boundary: a code one step slow, matched in the last instant of step c, is
    /// within one step of the knock (whenever the parent reads it); two steps away is not,
    /// and a used counter stays refused however the window moves.
    #[test]
    fn totp_is_judged_in_the_knocks_own_step() {
        let step = 30_000u64;
        let c = 56_666_667u64;
        let last_of_c = (c + 1) * step - 1;
        let mut t = totp(30);
        assert!(consume(&mut t, Used::Totp { counter: c - 1 }, last_of_c).is_ok());
        assert!(consume(&mut t, Used::Totp { counter: c - 1 }, last_of_c).is_err());
        assert!(consume(&mut t, Used::Totp { counter: c - 2 }, last_of_c).is_err());
        // In the middle of step c the window is c-1..=c+1 exactly.
        let mid = c * step + step / 2;
        assert_eq!(totp_window(mid, step), (c - 1, c + 1));
        assert!(consume(&mut t, Used::Totp { counter: c + 2 }, mid).is_err());
        // At the boundary the clock slack widens it by one step on that side only.
        assert_eq!(totp_window(c * step + 10, step), (c - 2, c + 1));
        assert_eq!(totp_window(last_of_c, step), (c - 1, c + 2));
        // The floor `mark` keeps never reaches into a later knock's window.
        if let DoorKind::Totp(p) = &t.kind {
            assert!(p.used.floor.is_none_or(|f| f < c - 1), "{:?}", p.used);
        }
    }
}
