//! The channel between the privileged parent and the capture child (a `SOCK_SEQPACKET`
//! socketpair: one datagram per message, never a partial one).
//!
//! Child → parent is the attack surface: the child decodes Internet packets, so the parent
//! treats every byte from it as hostile. Those messages are a small fixed binary layout
//! (version, kind, fixed-width fields), at most [`MAX_CHILD_MESSAGE`] bytes, decoded here
//! without panicking on anything; the parent then checks each decoded field against its own
//! configuration before acting (setup generation, door index, capture interface, address
//! policy, one-time index, TOTP counter). A knock names the interface it came in on by its
//! index in the setup's list, never whether that is a loopback one: the parent knows. A
//! knock message carries no service, line or lease: the parent builds the hosts.allow line
//! from its own door, so a child cannot write text into a file libwrap reads (`spawn`/`twist`
//! there would run commands as root).
//!
//! Parent → child carries the doors and capture settings as JSON (the parent is trusted by
//! the child), split into fragments that each fit a datagram.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use knock_match::{Door, MatcherOptions, Refusal};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Protocol version: the first byte of every message in both directions (2: knocks carry their
/// setup generation and capture interface, `Ready` the generation it acknowledges).
pub const VERSION: u8 = 2;
/// Largest message the parent accepts from the child.
pub const MAX_CHILD_MESSAGE: usize = 4096;
/// Longest log line the parent passes on from the child.
pub const MAX_LOG_TEXT: usize = 2048;
/// Payload bytes per parent → child fragment (well below the default socket buffer).
pub const FRAGMENT: usize = 32 * 1024;
/// Largest setup the child accepts in total (one-time lists can be long).
pub const MAX_SETUP: usize = 64 * 1024 * 1024;

const KIND_KNOCK: u8 = 1;
const KIND_LOG: u8 = 2;
const KIND_STATS: u8 = 3;
const KIND_READY: u8 = 4;
const KIND_SETUP: u8 = 10;
const KIND_STOP: u8 = 11;

/// What a completed sequence used up, as the child reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Used {
    None,
    /// One-time sequence number `index` of the door.
    OneTime {
        index: u32,
    },
    /// TOTP step counter.
    Totp {
        counter: u64,
    },
}

/// The child's counters, sent every second and at exit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildStats {
    pub packets: u64,
    pub evictions: u64,
    pub resets: u64,
    pub timeouts: u64,
    /// Refusals by reason (index into [`Refusal::ALL`]).
    pub refused: Vec<(Refusal, u64)>,
    /// Kernel counters per interface, in the order of the setup's interface list.
    pub interfaces: Vec<(u64, u64)>,
}

/// A door's sequence was completed by `addr` (the door's action follows from the parent's
/// configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knock {
    /// Index of the door in the doors of the message's setup generation.
    pub door: u16,
    pub addr: IpAddr,
    /// Index, in the setup's interface list, of the interface the completing packet came in
    /// on. Whether that interface is a loopback one is the parent's to know.
    pub interface: u16,
    /// Event clock (CLOCK_BOOTTIME ms) of the completing knock.
    pub time_ms: u64,
    pub used: Used,
}

/// Most knocks in one message (each at most [`KNOCK_BYTES`]).
pub const MAX_KNOCKS: usize = 100;
/// Encoded size of one knock with an IPv6 address: door 2, interface 2, flags 1, time 8, used
/// tag 1, used value 8, address 16.
const KNOCK_BYTES: usize = 38;
/// Version, kind, count (2), generation (4).
const KNOCKS_HEADER: usize = 8;
const _: () = assert!(KNOCKS_HEADER + MAX_KNOCKS * KNOCK_BYTES <= MAX_CHILD_MESSAGE);

/// A message from the child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildMessage {
    /// The sequences completed in one drain of the capture queue (1 to [`MAX_KNOCKS`]), so
    /// the parent applies a burst as one transaction, all matched against the doors of setup
    /// `generation`.
    Knocks {
        generation: u32,
        knocks: Vec<Knock>,
    },
    /// A log line (level 1 = error … 5 = trace), already formatted.
    Log {
        level: u8,
        text: String,
    },
    Stats(ChildStats),
    /// Setup `generation` is in use: captures are open (or being retried in the background),
    /// and no knock of an earlier generation follows.
    Ready {
        generation: u32,
    },
}

/// Why a message from the child was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("message of {0} bytes, more than {MAX_CHILD_MESSAGE}")]
    TooLong(usize),
    #[error("protocol version {0}, expected {VERSION}")]
    Version(u8),
    #[error("unknown message kind {0}")]
    Kind(u8),
    #[error("message kind {kind} is {len} bytes, which is not a valid length")]
    Length { kind: u8, len: usize },
    #[error("bad field: {0}")]
    Field(&'static str),
    #[error("setup: {0}")]
    Setup(String),
}

/// Everything the child needs, sent at start and on every reload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Setup {
    /// Numbers the setups the parent sends (a reload sends the next one); the child's knocks
    /// and acknowledgements name it.
    pub generation: u32,
    pub doors: Vec<Door>,
    pub interfaces: Vec<String>,
    pub options: MatcherOptions,
}

impl ChildMessage {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        match self {
            ChildMessage::Knocks { generation, knocks } => {
                out.push(KIND_KNOCK);
                let knocks = &knocks[..knocks.len().min(MAX_KNOCKS)];
                out.extend_from_slice(&(knocks.len() as u16).to_le_bytes());
                out.extend_from_slice(&generation.to_le_bytes());
                for k in knocks {
                    out.extend_from_slice(&k.door.to_le_bytes());
                    out.extend_from_slice(&k.interface.to_le_bytes());
                    out.push(u8::from(matches!(k.addr, IpAddr::V6(_))));
                    out.extend_from_slice(&k.time_ms.to_le_bytes());
                    let (tag, value) = match k.used {
                        Used::None => (0u8, 0u64),
                        Used::OneTime { index } => (1, u64::from(index)),
                        Used::Totp { counter } => (2, counter),
                    };
                    out.push(tag);
                    out.extend_from_slice(&value.to_le_bytes());
                    match k.addr {
                        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
                    }
                }
            }
            ChildMessage::Log { level, text } => {
                out.push(KIND_LOG);
                out.push(*level);
                let mut end = text.len().min(MAX_LOG_TEXT);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                out.extend_from_slice(&text.as_bytes()[..end]);
            }
            ChildMessage::Stats(s) => {
                out.push(KIND_STATS);
                for v in [s.packets, s.evictions, s.resets, s.timeouts] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                let refused: Vec<_> = s.refused.iter().take(255).collect();
                out.push(refused.len() as u8);
                for (r, n) in refused {
                    let i = Refusal::ALL.iter().position(|x| x == r).unwrap_or(0);
                    out.push(i as u8);
                    out.extend_from_slice(&n.to_le_bytes());
                }
                let ifs: Vec<_> = s.interfaces.iter().take(64).collect();
                out.push(ifs.len() as u8);
                for (received, dropped) in ifs {
                    out.extend_from_slice(&received.to_le_bytes());
                    out.extend_from_slice(&dropped.to_le_bytes());
                }
            }
            ChildMessage::Ready { generation } => {
                out.push(KIND_READY);
                out.extend_from_slice(&generation.to_le_bytes());
            }
        }
        out
    }

    /// Decodes one datagram from the child. Never panics; every length is checked.
    pub fn decode(bytes: &[u8]) -> Result<ChildMessage, WireError> {
        if bytes.len() > MAX_CHILD_MESSAGE {
            return Err(WireError::TooLong(bytes.len()));
        }
        let (&version, rest) = bytes.split_first().ok_or(WireError::Empty)?;
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        let (&kind, body) = rest.split_first().ok_or(WireError::Empty)?;
        let bad_len = || WireError::Length {
            kind,
            len: bytes.len(),
        };
        let mut r = Reader(body);
        let message = match kind {
            KIND_KNOCK => {
                let n = usize::from(u16::from_le_bytes(r.take().ok_or_else(bad_len)?));
                if n == 0 || n > MAX_KNOCKS {
                    return Err(WireError::Field("knock count"));
                }
                let generation = r.u32().ok_or_else(bad_len)?;
                let mut knocks = Vec::with_capacity(n);
                for _ in 0..n {
                    let door = u16::from_le_bytes(r.take().ok_or_else(bad_len)?);
                    let interface = u16::from_le_bytes(r.take().ok_or_else(bad_len)?);
                    let flags = r.byte().ok_or_else(bad_len)?;
                    if flags & !1 != 0 {
                        return Err(WireError::Field("knock flags"));
                    }
                    let time_ms = r.u64().ok_or_else(bad_len)?;
                    let tag = r.byte().ok_or_else(bad_len)?;
                    let value = r.u64().ok_or_else(bad_len)?;
                    let used = match tag {
                        0 if value == 0 => Used::None,
                        1 => Used::OneTime {
                            index: u32::try_from(value)
                                .map_err(|_| WireError::Field("one-time index"))?,
                        },
                        2 => Used::Totp { counter: value },
                        _ => return Err(WireError::Field("what the knock used")),
                    };
                    let addr = if flags & 1 != 0 {
                        IpAddr::V6(Ipv6Addr::from(r.take::<16>().ok_or_else(bad_len)?))
                    } else {
                        IpAddr::V4(Ipv4Addr::from(r.take::<4>().ok_or_else(bad_len)?))
                    };
                    knocks.push(Knock {
                        door,
                        addr,
                        interface,
                        time_ms,
                        used,
                    });
                }
                ChildMessage::Knocks { generation, knocks }
            }
            KIND_LOG => {
                let level = r.byte().ok_or_else(bad_len)?;
                if !(1..=5).contains(&level) {
                    return Err(WireError::Field("log level"));
                }
                if r.0.len() > MAX_LOG_TEXT {
                    return Err(bad_len());
                }
                let text = String::from_utf8_lossy(r.0).into_owned();
                r.0 = &[];
                ChildMessage::Log { level, text }
            }
            KIND_STATS => {
                let mut s = ChildStats {
                    packets: r.u64().ok_or_else(bad_len)?,
                    evictions: r.u64().ok_or_else(bad_len)?,
                    resets: r.u64().ok_or_else(bad_len)?,
                    timeouts: r.u64().ok_or_else(bad_len)?,
                    ..ChildStats::default()
                };
                for _ in 0..r.byte().ok_or_else(bad_len)? {
                    let i = r.byte().ok_or_else(bad_len)?;
                    let reason = *Refusal::ALL
                        .get(usize::from(i))
                        .ok_or(WireError::Field("refusal reason"))?;
                    s.refused.push((reason, r.u64().ok_or_else(bad_len)?));
                }
                for _ in 0..r.byte().ok_or_else(bad_len)? {
                    let received = r.u64().ok_or_else(bad_len)?;
                    s.interfaces.push((received, r.u64().ok_or_else(bad_len)?));
                }
                ChildMessage::Stats(s)
            }
            KIND_READY => ChildMessage::Ready {
                generation: r.u32().ok_or_else(bad_len)?,
            },
            other => return Err(WireError::Kind(other)),
        };
        if !r.0.is_empty() {
            return Err(bad_len());
        }
        Ok(message)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
    fn byte(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
}

/// The setup as datagrams: `[VERSION, KIND_SETUP, more, json…]`, `more` = 1 on all but the
/// last fragment.
pub fn setup_fragments(setup: &Setup) -> Result<Vec<Vec<u8>>, WireError> {
    let json = serde_json::to_vec(setup).map_err(|e| WireError::Setup(e.to_string()))?;
    if json.len() > MAX_SETUP {
        return Err(WireError::Setup(format!(
            "{} bytes, more than {MAX_SETUP}",
            json.len()
        )));
    }
    let chunks: Vec<&[u8]> = json.chunks(FRAGMENT).collect();
    let last = chunks.len().saturating_sub(1);
    Ok(chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut m = vec![VERSION, KIND_SETUP, u8::from(i != last)];
            m.extend_from_slice(c);
            m
        })
        .collect())
}

/// A message from the parent.
#[derive(Debug)]
pub enum ParentMessage {
    /// Doors, interfaces and options: at start and on every reload.
    Setup(Box<Setup>),
    /// Send the last summaries and counters, then exit.
    Stop,
}

/// The stop message.
pub fn stop_message() -> Vec<u8> {
    vec![VERSION, KIND_STOP]
}

/// Collects setup fragments until the last one.
#[derive(Default)]
pub struct SetupReader {
    buf: Vec<u8>,
}

impl SetupReader {
    /// Feeds one datagram; `Some` when it completed a message (the last fragment of a setup,
    /// or a stop).
    pub fn feed(&mut self, datagram: &[u8]) -> Result<Option<ParentMessage>, WireError> {
        match datagram {
            [VERSION, KIND_STOP] => Ok(Some(ParentMessage::Stop)),
            [VERSION, KIND_SETUP, more @ (0 | 1), body @ ..] => {
                if self.buf.len() + body.len() > MAX_SETUP {
                    self.buf.clear();
                    return Err(WireError::Setup("too long".into()));
                }
                self.buf.extend_from_slice(body);
                if *more == 1 {
                    return Ok(None);
                }
                let json = std::mem::take(&mut self.buf);
                serde_json::from_slice(&json)
                    .map(|s| Some(ParentMessage::Setup(Box::new(s))))
                    .map_err(|e| WireError::Setup(e.to_string()))
            }
            [] => Err(WireError::Empty),
            [v, ..] if *v != VERSION => Err(WireError::Version(*v)),
            [_, k, ..] => Err(WireError::Kind(*k)),
            [_] => Err(WireError::Empty),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knock(addr: IpAddr, used: Used) -> ChildMessage {
        ChildMessage::Knocks {
            generation: 7,
            knocks: vec![Knock {
                door: 3,
                addr,
                interface: 1,
                time_ms: 123_456,
                used,
            }],
        }
    }

    #[test]
    fn every_message_round_trips() {
        let messages = [
            knock("198.18.0.2".parse().unwrap(), Used::None),
            knock("fd00:4b57::2".parse().unwrap(), Used::OneTime { index: 7 }),
            knock(
                "198.18.0.2".parse().unwrap(),
                Used::Totp { counter: 1 << 40 },
            ),
            ChildMessage::Log {
                level: 2,
                text: "refused reason=loopback".into(),
            },
            ChildMessage::Stats(ChildStats {
                packets: 10,
                evictions: 1,
                resets: 2,
                timeouts: 3,
                refused: vec![(Refusal::Loopback, 4), (Refusal::Multicast, 5)],
                interfaces: vec![(100, 0), (7, 1)],
            }),
            ChildMessage::Ready { generation: 1 },
            ChildMessage::Knocks {
                generation: u32::MAX,
                knocks: (0..MAX_KNOCKS as u16)
                    .map(|i| Knock {
                        door: i,
                        addr: "fd00:4b57::9".parse().unwrap(),
                        interface: u16::MAX - i,
                        time_ms: u64::MAX - u64::from(i),
                        used: Used::Totp { counter: 1 },
                    })
                    .collect(),
            },
        ];
        for m in messages {
            assert_eq!(ChildMessage::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn malformed_messages_are_refused_not_panicked_on() {
        let good = knock("198.18.0.2".parse().unwrap(), Used::None).encode();
        assert_eq!(ChildMessage::decode(&[]), Err(WireError::Empty));
        assert_eq!(ChildMessage::decode(&[1, 1]), Err(WireError::Version(1)));
        assert_eq!(
            ChildMessage::decode(&[VERSION, 99]),
            Err(WireError::Kind(99))
        );
        // Every truncation of a valid knock is refused.
        for n in 0..good.len() {
            assert!(ChildMessage::decode(&good[..n]).is_err(), "{n}");
        }
        // A 5-byte address, a bad flag, an unknown `used` tag, a huge message.
        let mut long = good.clone();
        long.push(0);
        assert!(ChildMessage::decode(&long).is_err());
        // Layout: version, kind, count (2), generation (4), door (2), interface (2), flags.
        let mut flag = good.clone();
        flag[12] = 2;
        assert_eq!(
            ChildMessage::decode(&flag),
            Err(WireError::Field("knock flags"))
        );
        let mut count = good.clone();
        count[2] = 0;
        assert_eq!(
            ChildMessage::decode(&count),
            Err(WireError::Field("knock count"))
        );
        let mut tag = good.clone();
        tag[21] = 9;
        assert!(ChildMessage::decode(&tag).is_err());
        assert_eq!(
            ChildMessage::decode(&vec![1; MAX_CHILD_MESSAGE + 1]),
            Err(WireError::TooLong(MAX_CHILD_MESSAGE + 1))
        );
        // Random bytes: never a panic.
        let mut rng = test_support::Rng::new(7);
        for _ in 0..100_000 {
            let len = (rng.next_u64() % 48) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if len > 1 && rng.next_u64().is_multiple_of(2) {
                b[0] = VERSION;
                b[1] = (rng.next_u64() % 5) as u8;
            }
            let _ = ChildMessage::decode(&b);
        }
    }

    #[test]
    fn setup_is_reassembled_from_fragments() {
        let door = Door {
            name: "d".into(),
            kind: knock_match::DoorKind::OneTime {
                sequences: (0..5000)
                    .map(|i| {
                        vec![
                            knock_match::Step::tcp(1000 + (i % 50) as u16),
                            knock_match::Step::tcp(3000),
                        ]
                    })
                    .collect(),
                next: 3,
            },
            seq_timeout: std::time::Duration::from_secs(5),
            tcp_flags: Default::default(),
            action: knock_match::Action::Allow,
            service: "SSHD".into(),
            lease: None,
            target: None,
            knock_from: Vec::new(),
            link_local: false,
        };
        let setup = Setup {
            generation: 3,
            doors: vec![door.clone()],
            interfaces: vec!["eth0".into()],
            options: MatcherOptions {
                max_sources: 10,
                hash_seed: [1, 2],
            },
        };
        let frags = setup_fragments(&setup).unwrap();
        assert!(frags.len() > 1, "{}", frags.len());
        let mut r = SetupReader::default();
        let mut got = None;
        for f in &frags {
            assert!(f.len() <= FRAGMENT + 3);
            got = r.feed(f).unwrap();
        }
        let Some(ParentMessage::Setup(got)) = got else {
            panic!("no complete setup: {got:?}");
        };
        assert!(matches!(
            r.feed(&stop_message()),
            Ok(Some(ParentMessage::Stop))
        ));
        assert_eq!(got.doors, vec![door]);
        assert_eq!(got.interfaces, vec!["eth0".to_owned()]);
        assert_eq!(got.generation, 3);
    }
}
