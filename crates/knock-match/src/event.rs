//! The knock event: what the capture layer hands the matcher for each packet it keeps.

use std::fmt;
use std::net::IpAddr;

/// Transport protocol of a knock step.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// Its name, as configurations, logs and nft write it.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// TCP header flag bits as they appear on the wire (byte 13 of the TCP header).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// A connection-opening SYN: SYN set, ACK, RST and FIN clear.
    pub fn is_pure_syn(self) -> bool {
        self.has(Self::SYN) && !self.has(Self::ACK) && !self.has(Self::RST) && !self.has(Self::FIN)
    }
}

/// One packet that may be a knock. `time_ms` is the capture time in milliseconds of a clock
/// that never jumps (the daemon uses CLOCK_BOOTTIME; tests use any origin); the matcher never
/// reads a clock itself and derives TOTP's wall-clock time with [`Matcher::set_wall_offset`].
/// `flags` is zero for UDP. `to_host` says the destination is one of this host's own
/// addresses: doors without a `target` count only such packets. `via_loopback` says the
/// packet arrived on a loopback interface (only there can a loopback source be genuine).
///
/// [`Matcher::set_wall_offset`]: crate::Matcher::set_wall_offset
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnockEvent {
    pub time_ms: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: Proto,
    pub dport: u16,
    pub flags: TcpFlags,
    pub to_host: bool,
    pub via_loopback: bool,
    /// Which connection attempt a TCP packet belongs to: a fingerprint of its source port and
    /// sequence number ([`KnockEvent::attempt_of`]), which a retransmitted SYN repeats
    /// exactly; 0 when unknown (UDP, tests).
    pub attempt: u32,
    /// Which capture interface the packet came in on: its index in the caller's list of
    /// interfaces (0 when there is one, or in tests). The matcher does not read it.
    pub interface: u16,
}

impl KnockEvent {
    /// The attempt fingerprint of a TCP segment from `sport` with sequence number `seq`
    /// (never 0).
    pub fn attempt_of(sport: u16, seq: u32) -> u32 {
        (seq ^ u32::from(sport).rotate_left(16) ^ 0x9e37_79b9).max(1)
    }
}
