//! Port-knock matching: knockd's door semantics without its holes, one-time and TOTP
//! sequences, and a fixed-capacity table of sources in progress.
//!
//! Pure: events and the current time come in as values, decisions go out as values.
//! Nothing here reads a clock, a file or a socket. Time is `time_ms`, Unix-epoch
//! milliseconds, carried by each [`KnockEvent`] and by [`Matcher::tick`]; the matcher keeps
//! the latest time it has seen and never goes back.
//!
//! # Rules
//! - A door's sequence is 1 to 32 steps of `port:proto`, TCP and UDP mixed. The whole sequence
//!   must arrive within `seq_timeout` of its first knock (a knock at exactly first + timeout is
//!   too late, as in knockd).
//! - `tcp_flags` rules (required, `!`forbidden, don't care) must all hold for a TCP packet to
//!   count as a step; UDP steps ignore them. A TCP packet that fails them is ignored.
//! - `target`: only packets sent to that address count (as steps or as resets) for the door.
//! - Every door, every candidate sequence of a door and every source is tracked independently:
//!   doors sharing a prefix progress in parallel; any number of sources may be in progress.
//! - Sweep resistance: a pure SYN (SYN without ACK, RST, FIN) or a UDP datagram from a source
//!   in progress, to a port that is not its next step, abandons that progress (counted as a
//!   reset); the packet is then evaluated as a possible first step. An exact repeat of the
//!   step just matched within 1 s ([`RETRANSMIT_MS`]) is a retransmission and changes nothing.
//!   Other packets (ACKs of an ssh session, FINs, ...) that are not a step change nothing.
//!   When the next step equals the previous one, the packet is taken as the next step.
//! - Bounded memory: at most `max_sources` sources in progress; when full, the source closest
//!   to its deadline is evicted ([`Counters::evictions`]). Expiry is driven by time:
//!   call [`Matcher::tick`] at [`Matcher::next_deadline`]. Expired progress is also ignored
//!   whenever it is met, so correctness never depends on when `tick` runs.
//!
//! # One-time and TOTP doors: the durability contract
//! A [`Decision`] for a one-time or TOTP door carries [`Consume`]. The matcher has already
//! advanced its in-memory state (the sequence or TOTP counter cannot be used again in this
//! process). **The caller must make that progress durable (write and fsync, e.g. with
//! `knockwrap_config::progress`) before acting on the decision**, and must drop the decision
//! if persisting fails: a used sequence is then lost, never reusable. After a restart, pass
//! the persisted progress back in when building doors: `DoorKind::OneTime { next, .. }` (the
//! first unused index) and `TotpParams::last_used` (the highest counter used; it and every
//! earlier counter are refused). A one-time door whose `next` reaches the end is disabled
//! ([`Matcher::exhausted_doors`]; `Consume::OneTime::remaining == 0` says it just happened).
//!
//! TOTP doors accept the sequences of counters c-1, c and c+1, where c is the counter at the
//! time of each knock (`docs/totp.md`), each counter at most once.

pub mod door;
pub mod event;
pub mod matcher;
pub mod onetime;
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
pub use totp::{decode_base32, totp_counter, totp_sequence, Base32Error};
