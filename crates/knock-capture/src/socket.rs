//! The Linux capture socket: an `AF_PACKET`/`SOCK_RAW` socket made here, filtered in the
//! kernel by the generated cBPF program, then read through pnet's datalink channel.
//!
//! Order of operations (race-free, so nothing unfiltered is ever queued and nothing needs
//! draining): the socket is created with protocol 0, which registers no packet hook, so it
//! receives nothing; the filter is attached; only then does `bind` (protocol `ETH_P_ALL`,
//! the interface's index) start delivery. The usual alternative (create with `ETH_P_ALL`,
//! attach a drop-all filter, drain, attach the real one) needs a drain because packets arrive
//! from `socket()` onwards, on every interface; here the receive queue is provably empty until
//! the filter is in place. pnet then binds again to the same address, which keeps the filter.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use knock_match::KnockEvent;
use pnet_datalink::{self as datalink, DataLinkReceiver, NetworkInterface};
use thiserror::Error;

use crate::bpf::Insn;
use crate::decode::decode;
use crate::filter::{FilterError, FilterSpec};
use crate::link::LinkType;

// Stable across Linux architectures; not all are exported by the libc crate for every target.
const SO_ATTACH_FILTER: libc::c_int = 26;
const PACKET_STATISTICS: libc::c_int = 6;
/// `SIOCGSTAMP` (the `timeval` form): the kernel receive time of the last frame read.
const SIOCGSTAMP: libc::c_ulong = 0x8906;
/// `ARPHRD_LOOPBACK`: the hardware type of `lo`.
const ARPHRD_LOOPBACK: u16 = 772;

/// How long a read waits before reporting "nothing" so the caller can check for shutdown.
pub const READ_TIMEOUT: Duration = Duration::from_millis(200);
/// Receive buffer asked for (as root the kernel's `rmem_max` cap is bypassed).
const RCVBUF_BYTES: libc::c_int = 4 << 20;
/// Largest frame copied out; longer ones are truncated, which only cuts payload.
const READ_BUFFER: usize = 65536;

/// `struct tpacket_stats`: counters since the previous read (the kernel resets them).
#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    tp_packets: libc::c_uint,
    tp_drops: libc::c_uint,
}

/// Counters since the capture was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames that passed the filter (including those then dropped).
    pub received: u64,
    /// Frames that passed the filter but were dropped because the receive queue was full.
    pub dropped: u64,
}

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
    #[error(
        "interface {name:?} has hardware type {hatype} (ARPHRD), which knockwrap cannot decode"
    )]
    UnsupportedLink { name: String, hatype: u16 },
    #[error("interface {0:?} went away")]
    InterfaceGone(String),
    /// The interface is down; the socket stays usable and resumes when it comes back up.
    #[error("interface {0:?} is down")]
    InterfaceDown(String),
    #[error("{op} on interface {interface:?}: {source}")]
    Io {
        interface: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("interface {interface:?}: {source}")]
    Filter {
        interface: String,
        #[source]
        source: FilterError,
    },
}

/// An open capture on one interface.
pub struct Capture {
    name: String,
    ifindex: u32,
    link: LinkType,
    /// The interface is a loopback device (only local processes can send on it).
    loopback: bool,
    /// Owned by `rx` (pnet closes it); valid exactly as long as `rx` lives.
    fd: RawFd,
    rx: Box<dyn DataLinkReceiver>,
    totals: Stats,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("interface", &self.name)
            .field("ifindex", &self.ifindex)
            .field("link", &self.link)
            .finish()
    }
}

fn os_err(interface: &str, op: &'static str) -> CaptureError {
    CaptureError::Io {
        interface: interface.to_string(),
        op,
        source: io::Error::last_os_error(),
    }
}

/// The interface's index in the calling thread's network namespace, if it exists.
fn ifindex(name: &str) -> Option<u32> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return None;
    }
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => None,
        i => Some(i),
    }
}

/// The interface's `ARPHRD_*` hardware type.
fn hardware_type(fd: RawFd, name: &str) -> Result<u16, CaptureError> {
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: fd is an open socket and req a properly sized, NUL-terminated ifreq.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) } == -1 {
        return Err(os_err(name, "SIOCGIFHWADDR"));
    }
    // SAFETY: SIOCGIFHWADDR fills the hwaddr member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family })
}

fn attach(fd: RawFd, prog: &[Insn]) -> io::Result<()> {
    let mut filters: Vec<libc::sock_filter> = prog
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let fprog = libc::sock_fprog {
        // The generator keeps programs within BPF_MAXINSNS (4096), far below u16::MAX.
        len: filters.len() as libc::c_ushort,
        filter: filters.as_mut_ptr(),
    };
    // SAFETY: fprog points at `filters`, alive for the call; the kernel copies the program.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: passing a c_int by pointer with its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Read and clear the socket's pending error (`SO_ERROR`).
fn take_socket_error(fd: RawFd) -> Option<io::Error> {
    let mut v: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid for writes of their sizes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0 && v != 0).then(|| io::Error::from_raw_os_error(v))
}

/// The kernel's receive timestamp of the last frame read from `fd`, in wall-clock ms since
/// the epoch. The first call also turns on timestamping for the socket.
fn kernel_stamp_ms(fd: RawFd) -> Option<u64> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: tv is a valid timeval for the kernel to fill.
    if unsafe { libc::ioctl(fd, SIOCGSTAMP as _, &mut tv) } != 0 || tv.tv_sec <= 0 {
        return None;
    }
    let ms = (tv.tv_sec as u64).checked_mul(1000)? + (tv.tv_usec.max(0) as u64) / 1000;
    Some(ms)
}

impl Capture {
    /// Open a filtered capture on `interface` in the calling thread's network namespace.
    /// Promiscuous mode stays off; reads time out after [`READ_TIMEOUT`].
    pub fn open(interface: &str, spec: &FilterSpec) -> Result<Capture, CaptureError> {
        let ifindex =
            ifindex(interface).ok_or_else(|| CaptureError::NoSuchInterface(interface.into()))?;
        // Protocol 0: no packet hook until bind, so nothing is queued before the filter.
        // SAFETY: plain socket(2) call.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw == -1 {
            return Err(os_err(interface, "socket(AF_PACKET)"));
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let hatype = hardware_type(fd.as_raw_fd(), interface)?;
        let link = LinkType::from_arphrd(hatype).ok_or_else(|| CaptureError::UnsupportedLink {
            name: interface.into(),
            hatype,
        })?;
        let prog = spec.compile(link).map_err(|source| CaptureError::Filter {
            interface: interface.into(),
            source,
        })?;
        attach(fd.as_raw_fd(), &prog).map_err(|source| CaptureError::Io {
            interface: interface.into(),
            op: "SO_ATTACH_FILTER",
            source,
        })?;
        // A bigger queue absorbs bursts; SO_RCVBUFFORCE needs CAP_NET_ADMIN, so fall back.
        if set_int(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            RCVBUF_BYTES,
        )
        .is_err()
        {
            let _ = set_int(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                RCVBUF_BYTES,
            );
        }
        // Turn on kernel receive timestamps before the first frame can be queued.
        let _ = kernel_stamp_ms(fd.as_raw_fd());
        // SAFETY: sockaddr_ll is plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as libc::c_ushort;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: sll is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc == -1 {
            return Err(os_err(interface, "bind"));
        }

        let iface = NetworkInterface {
            name: interface.to_string(),
            description: String::new(),
            index: ifindex,
            mac: None,
            ips: Vec::new(),
            flags: 0,
        };
        let config = datalink::Config {
            read_buffer_size: READ_BUFFER,
            read_timeout: Some(READ_TIMEOUT),
            promiscuous: false,
            socket_fd: Some(fd.as_raw_fd()),
            ..datalink::Config::default()
        };
        // pnet owns the descriptor from here on (it closes it on its own errors too).
        let raw = fd.into_raw_fd();
        let rx = match datalink::channel(&iface, config) {
            Ok(datalink::Channel::Ethernet(_tx, rx)) => rx,
            Ok(_) => {
                return Err(CaptureError::Io {
                    interface: interface.into(),
                    op: "pnet channel",
                    source: io::Error::other("unexpected channel type"),
                })
            }
            Err(source) => {
                return Err(CaptureError::Io {
                    interface: interface.into(),
                    op: "pnet channel",
                    source,
                })
            }
        };
        Ok(Capture {
            name: interface.to_string(),
            ifindex,
            link,
            loopback: hatype == ARPHRD_LOOPBACK,
            fd: raw,
            rx,
            totals: Stats::default(),
        })
    }

    pub fn interface(&self) -> &str {
        &self.name
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Wait up to [`READ_TIMEOUT`] for one frame. `Ok(None)` on timeout or when the frame is
    /// not a decodable TCP/UDP packet. An error means the capture is unusable: reopen it.
    /// The event's time is on the event clock ([`crate::clock::boot_ms`]): the kernel's
    /// receive stamp (wall clock) turned into an age in the queue, so frames read late under
    /// load keep their arrival time while a wall-clock jump moves nothing.
    pub fn next_event(&mut self) -> Result<Option<KnockEvent>, CaptureError> {
        match self.rx.next() {
            Ok(frame) => {
                let boot = crate::clock::boot_ms();
                let time_ms = match kernel_stamp_ms(self.fd) {
                    Some(stamp) => {
                        crate::clock::from_wall_stamp(stamp, crate::clock::wall_ms(), boot)
                    }
                    None => boot,
                };
                Ok(decode(self.link, frame, time_ms).map(|mut ev| {
                    ev.via_loopback = self.loopback;
                    ev
                }))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(e) => {
                // pnet reports POLLERR ("unexpected poll event") without consuming the socket
                // error (ENETDOWN when the interface goes down or away): read it, or every
                // later poll would fail at once.
                let pending = take_socket_error(self.fd);
                self.check_interface()?;
                // Down, not gone: the kernel re-arms the socket when the interface is up again.
                if pending.as_ref().and_then(io::Error::raw_os_error) == Some(libc::ENETDOWN) {
                    return Err(CaptureError::InterfaceDown(self.name.clone()));
                }
                Err(CaptureError::Io {
                    interface: self.name.clone(),
                    op: "receive",
                    source: pending.unwrap_or(e),
                })
            }
        }
    }

    /// `InterfaceGone` when no interface of this name and index exists any more. A socket
    /// bound to an interface that vanishes while down gets no error, so callers check this
    /// now and then.
    pub fn check_interface(&self) -> Result<(), CaptureError> {
        if ifindex(&self.name) == Some(self.ifindex) {
            Ok(())
        } else {
            Err(CaptureError::InterfaceGone(self.name.clone()))
        }
    }

    /// Replace the filter (e.g. after a reload). The kernel swaps programs atomically.
    pub fn set_filter(&mut self, spec: &FilterSpec) -> Result<(), CaptureError> {
        let prog = spec
            .compile(self.link)
            .map_err(|source| CaptureError::Filter {
                interface: self.name.clone(),
                source,
            })?;
        attach(self.fd, &prog).map_err(|source| CaptureError::Io {
            interface: self.name.clone(),
            op: "SO_ATTACH_FILTER",
            source,
        })
    }

    /// Kernel counters since open (`PACKET_STATISTICS`, accumulated: the kernel resets them
    /// at each read).
    pub fn stats(&mut self) -> Stats {
        let mut st = TpacketStats::default();
        let mut len = mem::size_of::<TpacketStats>() as libc::socklen_t;
        // SAFETY: st and len are valid for writes of their sizes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                (&mut st as *mut TpacketStats).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            // tp_packets already includes tp_drops.
            self.totals.received += u64::from(st.tp_packets);
            self.totals.dropped += u64::from(st.tp_drops);
        }
        self.totals
    }
}
