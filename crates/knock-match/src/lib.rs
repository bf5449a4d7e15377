//! Port-knock matching: knockd's door semantics without its holes, one-time and TOTP
//! sequences, and a fixed-capacity table of sources in progress.
//!
//! Pure: events and the current time come in as values, decisions go out as values.
//! Nothing here reads a clock, a file or a socket. Time is `time_ms`, milliseconds of a clock
//! that never jumps, carried by each [`KnockEvent`] and by [`Matcher::tick`]; the matcher keeps
//! the latest time it has seen and never goes back. TOTP alone needs wall-clock time: it is
//! `time_ms` plus the offset given to [`Matcher::set_wall_offset`], so a wall-clock jump moves
//! TOTP's window but neither extends nor cuts a sequence in progress.
//!
//! # Rules
//! - A door's sequence is 1 to 32 steps of `port:proto`, TCP and UDP mixed. The whole sequence
//!   must arrive within `seq_timeout` of its first knock (a knock at exactly first + timeout is
//!   too late, as in knockd).
//! - A TCP step is a connection attempt, a pure SYN (SYN set; ACK, RST, FIN clear), unless a
//!   static door's `tcp_flags` (required, `!`forbidden, don't care) asks for other flags;
//!   one-time and TOTP doors take pure SYNs only ([`Door::step_rule`]). UDP steps ignore
//!   flags. A TCP packet that fails the door's rule is neither a step nor a reset for it.
//! - `target`: a door with a target counts only packets sent to it; a door without one counts
//!   only packets sent to this host's own addresses ([`KnockEvent::to_host`]).
//! - Every door, every candidate sequence of a door and every source is tracked independently:
//!   doors sharing a prefix progress in parallel; any number of sources may be in progress.
//! - Sweep resistance: any packet from a source in progress that could be a step of the door
//!   (its flags pass the door's rule, or it is a UDP datagram), and any pure SYN, sent to a
//!   port that is not the source's next step, abandons that progress (counted as a reset);
//!   the packet is then evaluated as a possible first step. A repeat of any earlier step of the
//!   sequence that is the same connection attempt as that step's original (same source port
//!   and TCP sequence number: [`KnockEvent::attempt`]), or arrives within [`RETRANSMIT_MS`] of
//!   it, is a retransmission (Linux resends an unanswered SYN after 1 s and 3 s, or every
//!   second for 4 s since 6.5) and changes nothing. Other packets (ACKs of
//!   an ssh session, FINs, ...) that cannot be a step change nothing. When the next step
//!   equals an earlier one, the packet is taken as the next step.
//! - Bounded memory: at most `max_sources` sources in progress. When full, a new source
//!   evicts the oldest source that has matched only its first step; a source that has matched
//!   two or more steps is evicted only when no such source remains
//!   ([`Counters::evictions`]). A flood of spoofed first steps therefore never pushes out an
//!   honest knock that is under way. Expiry is driven by time:
//!   call [`Matcher::tick`] at [`Matcher::next_deadline`]. Expired progress is also ignored
//!   whenever it is met, so correctness never depends on when `tick` runs.
//!
//! # One-time and TOTP doors: the durability contract
//! A [`Decision`] for a one-time or TOTP door carries [`Consume`]. The matcher has already
//! advanced its in-memory state (the sequence or TOTP counter cannot be used again in this
//! process). **The caller must make that progress durable (write and fsync, e.g. with
//! `hosts_writer::progress`) before acting on the decision**, and must drop the decision
//! if persisting fails: a used sequence is then lost, never reusable. After a restart, pass
//! the persisted progress back in when building doors: `DoorKind::OneTime { next, .. }` (the
//! first unused index) and `TotpParams::used` (the counters used; each is refused). A one-time door whose `next` reaches the end is disabled
//! ([`Matcher::exhausted_doors`]; `Consume::OneTime::remaining == 0` says it just happened).
//!
//! TOTP doors accept the sequences of counters c-1, c and c+1, where c is the wall-clock
//! counter at the time of each knock (`docs/totp.md`), each counter at most once; a grant
//! for one counter never refuses its neighbours.

pub mod door;
pub mod event;
pub mod matcher;
pub mod onetime;
pub mod port;
pub mod prefix;
pub mod source;
mod table;
pub mod totp;

pub use door::{
    parse_port, Action, Door, DoorError, DoorKind, FlagError, FlagRule, Step, StepError,
    TcpFlagRules, TotpParams, MAX_STEPS, MIN_TOTP_SECRET,
};
pub use event::{KnockEvent, Proto, TcpFlags};
pub use matcher::{
    Consume, Counters, Decision, Matcher, MatcherOptions, DEFAULT_MAX_SOURCES, RETRANSMIT_MS,
};
pub use onetime::{parse_one_time, OneTimeError};
pub use port::{PortSpec, PortSpecError};
pub use prefix::{Prefix, PrefixError};
pub use source::{check_source, HostAddresses, Refusal};
pub use totp::{decode_base32, totp_counter, totp_sequence, Base32Error, UsedSteps};
