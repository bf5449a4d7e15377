//! The Linux capture socket: an `AF_PACKET`/`SOCK_RAW` socket made here, filtered in the
//! kernel by the generated cBPF program, then read in batches with `recvmmsg(2)`.
//!
//! Order of operations (race-free, so nothing unfiltered is ever queued and nothing needs
//! draining): the socket is created with protocol 0, which registers no packet hook, so it
//! receives nothing; the filter is attached; only then does `bind` (protocol `ETH_P_ALL`,
//! the interface's index) start delivery. The usual alternative (create with `ETH_P_ALL`,
//! attach a drop-all filter, drain, attach the real one) needs a drain because packets arrive
//! from `socket()` onwards, on every interface; here the receive queue is provably empty until
//! the filter is in place.
//!
//! Reading ([`ReceivePath`]): normally through a `PACKET_RX_RING` set up before `bind` (see
//! [`crate::ring`]): one `poll` per wake-up and no system call per frame. If the kernel refuses
//! the ring (memory), through `recvmmsg`: up to [`SLOTS`] frames per call, each with its kernel
//! receive stamp as `SCM_TIMESTAMP` control data (no per-frame ioctl), until the queue is empty
//! or [`MAX_ROUNDS`] calls were made (see [`crate::batch`]). Either way frames are decoded in
//! place, at most [`MAX_BATCH`] per wake-up.

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use knock_match::KnockEvent;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use thiserror::Error;

use crate::batch::{Batch, Received, CTRL_WORDS, SLOTS, SLOT_BYTES};
use crate::bpf::Insn;
use crate::filter::{FilterError, FilterSpec};
use crate::link::LinkType;
use crate::ring::{RingWalk, BLOCK_NR, BLOCK_SIZE, FRAME_NR, FRAME_SIZE};

// Stable across Linux architectures; not all are exported by the libc crate for every target.
const SO_ATTACH_FILTER: libc::c_int = 26;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V2: libc::c_int = 1;
/// `ARPHRD_LOOPBACK`: the hardware type of `lo`.
const ARPHRD_LOOPBACK: u16 = 772;

/// How long a read waits before reporting "nothing" so the caller can check for shutdown.
pub const READ_TIMEOUT: Duration = Duration::from_millis(200);
/// Receive buffer asked for (as root the kernel's `rmem_max` cap is bypassed).
const RCVBUF_BYTES: libc::c_int = 4 << 20;
/// Most `recvmmsg` calls per wake-up (so at most `MAX_ROUNDS * SLOTS` frames per batch): the
/// caller gets its turn (filter updates, stop flag, statistics) even under a flood.
pub const MAX_ROUNDS: usize = 16;
/// Most frames read per wake-up, on either path.
pub const MAX_BATCH: usize = MAX_ROUNDS * SLOTS;

/// `struct tpacket_req`.
#[repr(C)]
struct TpacketReq {
    tp_block_size: libc::c_uint,
    tp_block_nr: libc::c_uint,
    tp_frame_size: libc::c_uint,
    tp_frame_nr: libc::c_uint,
}

/// How frames get from the kernel to the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceivePath {
    /// A `PACKET_RX_RING` (`TPACKET_V2`) mapped into this process: zero-copy.
    Ring,
    /// `recvmmsg(2)` batches (the fallback when the ring cannot be set up).
    Recvmmsg,
}

/// An `mmap`ed `PACKET_RX_RING`, unmapped on drop.
struct Ring {
    map: *mut libc::c_void,
    len: usize,
    walk: RingWalk,
}

// SAFETY: the mapping is owned by this value alone; moving it to another thread moves that
// ownership (the kernel side is indifferent to which thread reads).
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: map/len are exactly what mmap returned; nothing refers to it after this.
        unsafe { libc::munmap(self.map, self.len) };
    }
}

impl Ring {
    /// Set up a `TPACKET_V2` receive ring on `fd` and map it. `None` if the kernel refuses
    /// (the socket is then left usable for ordinary reads).
    fn setup(fd: RawFd) -> Option<Ring> {
        set_int(fd, libc::SOL_PACKET, PACKET_VERSION, TPACKET_V2).ok()?;
        let req = TpacketReq {
            tp_block_size: BLOCK_SIZE as libc::c_uint,
            tp_block_nr: BLOCK_NR as libc::c_uint,
            tp_frame_size: FRAME_SIZE as libc::c_uint,
            tp_frame_nr: FRAME_NR as libc::c_uint,
        };
        // SAFETY: req is a valid tpacket_req of the given size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                PACKET_RX_RING,
                (&req as *const TpacketReq).cast(),
                mem::size_of::<TpacketReq>() as libc::socklen_t,
            )
        };
        if rc == -1 {
            return None;
        }
        let len = BLOCK_SIZE * BLOCK_NR;
        // SAFETY: mapping the ring the kernel just allocated for fd, at its exact size.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            // Tear the ring down again so ordinary reads work (a zeroed request frees it).
            let off = TpacketReq {
                tp_block_size: 0,
                tp_block_nr: 0,
                tp_frame_size: 0,
                tp_frame_nr: 0,
            };
            // SAFETY: as above.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_PACKET,
                    PACKET_RX_RING,
                    (&off as *const TpacketReq).cast(),
                    mem::size_of::<TpacketReq>() as libc::socklen_t,
                )
            };
            return None;
        }
        // SAFETY: the mapping is len = FRAME_SIZE * FRAME_NR bytes (blocks hold whole frames),
        // page-aligned, read/write, and lives as long as `Ring` (which owns the walk); the
        // kernel writes to it only through the ring protocol. FRAME_SIZE is a multiple of 4.
        let walk = unsafe { RingWalk::new(map.cast(), FRAME_SIZE, FRAME_NR) };
        Some(Ring { map, len, walk })
    }
}

enum Reader {
    Ring(Ring),
    Recvmmsg(Box<Batch>),
}

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
    // Declared before `fd`: the ring is unmapped before the socket is closed.
    reader: Reader,
    fd: OwnedFd,
    /// Events read but not yet handed out by [`Capture::next_event`].
    pending: VecDeque<KnockEvent>,
    totals: Stats,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("interface", &self.name)
            .field("ifindex", &self.ifindex)
            .field("link", &self.link)
            .field("receive", &self.receive_path())
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
///
/// SIOCGIFINDEX on a NETLINK_ROUTE socket of its own, not glibc's if_nametoindex: glibc
/// (before 2.37) asks on an AF_UNIX socket first, which the daemon's capture process may not
/// make (its seccomp list allows only packet and NETLINK_ROUTE sockets), then AF_INET and
/// AF_INET6, which the systemd unit does not allow.
fn ifindex(name: &str) -> Option<u32> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return None;
    }
    // NETLINK_ROUTE is netlink's default protocol (None).
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .ok()?;
    match rustix::net::netdevice::name_to_index(&fd, name) {
        Ok(i) if i > 0 && i <= i32::MAX as u32 => Some(i),
        _ => None,
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
fn take_socket_error(fd: BorrowedFd<'_>) -> Option<io::Error> {
    match rustix::net::sockopt::socket_error(fd) {
        Ok(Err(pending)) => Some(pending.into()),
        Ok(Ok(())) | Err(_) => None,
    }
}

impl Capture {
    /// Open a filtered capture on `interface` in the calling thread's network namespace.
    /// Promiscuous mode stays off; reads time out after [`READ_TIMEOUT`].
    pub fn open(interface: &str, spec: &FilterSpec) -> Result<Capture, CaptureError> {
        Capture::open_with(interface, spec, ReceivePath::Ring)
    }

    /// [`Capture::open`], asking for a receive path: [`ReceivePath::Ring`] falls back to
    /// [`ReceivePath::Recvmmsg`] when the kernel refuses the ring; asking for
    /// [`ReceivePath::Recvmmsg`] (tests, diagnosis) skips the ring.
    pub fn open_with(
        interface: &str,
        spec: &FilterSpec,
        want: ReceivePath,
    ) -> Result<Capture, CaptureError> {
        let ifindex =
            ifindex(interface).ok_or_else(|| CaptureError::NoSuchInterface(interface.into()))?;
        // Protocol 0: no packet hook until bind, so nothing is queued before the filter.
        let fd = rustix::net::socket_with(
            AddressFamily::PACKET,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| CaptureError::Io {
            interface: interface.to_string(),
            op: "socket(AF_PACKET)",
            source: e.into(),
        })?;
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
        {
            use rustix::net::sockopt::{
                set_socket_recv_buffer_size, set_socket_recv_buffer_size_force,
            };
            let bytes = RCVBUF_BYTES as usize;
            if set_socket_recv_buffer_size_force(&fd, bytes).is_err() {
                let _ = set_socket_recv_buffer_size(&fd, bytes);
            }
        }
        // Kernel receive timestamps, as control data with every frame, from the first frame.
        set_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMP, 1).map_err(|source| {
            CaptureError::Io {
                interface: interface.into(),
                op: "SO_TIMESTAMP",
                source,
            }
        })?;
        // The ring, like the filter, is in place before delivery starts.
        let ring = match want {
            ReceivePath::Ring => Ring::setup(fd.as_raw_fd()),
            ReceivePath::Recvmmsg => None,
        };
        let reader = match ring {
            Some(ring) => Reader::Ring(ring),
            None => Reader::Recvmmsg(Box::default()),
        };
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

        Ok(Capture {
            name: interface.to_string(),
            ifindex,
            link,
            loopback: hatype == ARPHRD_LOOPBACK,
            reader,
            fd,
            pending: VecDeque::new(),
            totals: Stats::default(),
        })
    }

    pub fn interface(&self) -> &str {
        &self.name
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Which receive path this capture uses.
    pub fn receive_path(&self) -> ReceivePath {
        match self.reader {
            Reader::Ring(_) => ReceivePath::Ring,
            Reader::Recvmmsg(_) => ReceivePath::Recvmmsg,
        }
    }

    /// Wait up to [`READ_TIMEOUT`] for one event. `Ok(None)` on timeout or when what was read
    /// held no decodable TCP/UDP packet. An error means the capture is unusable: reopen it.
    /// A convenience over [`Capture::next_batch`] for tests and one-shot tools.
    pub fn next_event(&mut self) -> Result<Option<KnockEvent>, CaptureError> {
        if let Some(ev) = self.pending.pop_front() {
            return Ok(Some(ev));
        }
        let mut out = Vec::new();
        self.next_batch(&mut out)?;
        self.pending.extend(out);
        Ok(self.pending.pop_front())
    }

    /// Wait up to [`READ_TIMEOUT`] for frames, then read what is queued (up to [`MAX_BATCH`]
    /// frames) and append the decodable ones to `out`, in arrival order. Returns how many
    /// frames were read (decodable or not; 0 on timeout). An error means the capture is
    /// unusable: reopen it ([`CaptureError::InterfaceDown`] excepted).
    ///
    /// Each event's time is on the event clock ([`clock::boot_ms`]): the kernel's
    /// receive stamp (wall clock) turned into an age in the queue against one clock reading
    /// per batch, so frames read late under load keep their arrival time while a wall-clock
    /// jump moves nothing.
    pub fn next_batch(&mut self, out: &mut Vec<KnockEvent>) -> Result<usize, CaptureError> {
        if let Reader::Ring(ring) = &self.reader {
            if ring.walk.ready() {
                return Ok(self.drain_ring(out));
            }
        }
        if self.wait_readable()? {
            return self.receive_error(None);
        }
        if let Reader::Ring(_) = self.reader {
            return Ok(self.drain_ring(out));
        }
        let mut total = 0;
        for _ in 0..MAX_ROUNDS {
            match self.recv_batch() {
                Ok(n) => {
                    let boot = clock::boot_ms();
                    let wall = clock::wall_ms();
                    if let Reader::Recvmmsg(batch) = &self.reader {
                        batch.decode_into(n, self.link, self.loopback, wall, boot, out);
                    }
                    total += n;
                    if n < SLOTS {
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    break
                }
                Err(e) if total == 0 => return self.receive_error(Some(e)),
                // Deliver what was read; the error shows again on the next call.
                Err(_) => break,
            }
        }
        Ok(total)
    }

    fn drain_ring(&mut self, out: &mut Vec<KnockEvent>) -> usize {
        let (link, loopback) = (self.link, self.loopback);
        match &mut self.reader {
            Reader::Ring(ring) => {
                let boot = clock::boot_ms();
                let wall = clock::wall_ms();
                ring.walk.drain(MAX_BATCH, link, loopback, wall, boot, out)
            }
            Reader::Recvmmsg(_) => 0,
        }
    }

    /// `poll` for input up to [`READ_TIMEOUT`]. `Ok(false)`: readable or timed out (the
    /// non-blocking read that follows tells which); `Ok(true)`: the socket reported an error
    /// condition.
    fn wait_readable(&mut self) -> Result<bool, CaptureError> {
        use rustix::event::{PollFd, PollFlags, Timespec};
        // Whole milliseconds, as poll(2) takes them.
        let ms = READ_TIMEOUT.as_millis() as i64;
        let timeout = Timespec {
            tv_sec: ms / 1000,
            tv_nsec: (ms % 1000) * 1_000_000,
        };
        let mut pfd = [PollFd::new(&self.fd, PollFlags::IN)];
        match rustix::event::poll(&mut pfd, Some(&timeout)) {
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(CaptureError::Io {
                interface: self.name.clone(),
                op: "poll",
                source: e.into(),
            }),
            Ok(n) => Ok(n > 0
                && pfd[0]
                    .revents()
                    .intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL)),
        }
    }

    /// One non-blocking `recvmmsg` into the batch buffers; the number of frames read.
    fn recv_batch(&mut self) -> io::Result<usize> {
        let Reader::Recvmmsg(batch) = &mut self.reader else {
            return Ok(0);
        };
        // SAFETY: iovec and mmsghdr are plain old data; zeroed is a valid value.
        let mut iov: [libc::iovec; SLOTS] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; SLOTS] = unsafe { mem::zeroed() };
        let frames = batch.frames.as_mut_ptr();
        let ctrl = batch.ctrl.as_mut_ptr();
        for (i, (v, h)) in iov.iter_mut().zip(hdrs.iter_mut()).enumerate() {
            // SAFETY: slot i lies inside `frames` (SLOTS * SLOT_BYTES bytes) and control area
            // i inside `ctrl` (SLOTS * CTRL_WORDS words); both outlive the call below.
            unsafe {
                v.iov_base = frames.add(i * SLOT_BYTES).cast();
                h.msg_hdr.msg_control = ctrl.add(i * CTRL_WORDS).cast();
            }
            v.iov_len = SLOT_BYTES;
            h.msg_hdr.msg_controllen = (CTRL_WORDS * 8) as _;
            h.msg_hdr.msg_iovlen = 1;
        }
        for (v, h) in iov.iter_mut().zip(hdrs.iter_mut()) {
            h.msg_hdr.msg_iov = v;
        }
        // SAFETY: `hdrs` holds SLOTS valid mmsghdr, each with one iovec and a control buffer
        // of the stated size, all pointing into buffers alive and unaliased for the call.
        let rc = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                SLOTS as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (rc as usize).min(SLOTS);
        for (r, h) in batch.received.iter_mut().zip(&hdrs).take(n) {
            // msg_controllen is size_t on glibc, socklen_t on musl.
            #[allow(clippy::unnecessary_cast)]
            let ctrl_len = h.msg_hdr.msg_controllen as usize;
            *r = Received {
                len: h.msg_len as usize,
                ctrl_len,
                flags: h.msg_hdr.msg_flags,
            };
        }
        Ok(n)
    }

    /// The socket failed (`err` is what the read said, if it said anything): read and clear
    /// the pending socket error (ENETDOWN when the interface goes down or away), or every
    /// later poll would fail at once, and classify.
    fn receive_error<T>(&mut self, err: Option<io::Error>) -> Result<T, CaptureError> {
        let pending = take_socket_error(self.fd.as_fd()).or(err);
        self.check_interface()?;
        // Down, not gone: the kernel re-arms the socket when the interface is up again.
        if pending.as_ref().and_then(io::Error::raw_os_error) == Some(libc::ENETDOWN) {
            return Err(CaptureError::InterfaceDown(self.name.clone()));
        }
        Err(CaptureError::Io {
            interface: self.name.clone(),
            op: "receive",
            source: pending.unwrap_or_else(|| io::Error::other("socket error condition")),
        })
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
        attach(self.fd.as_raw_fd(), &prog).map_err(|source| CaptureError::Io {
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
                self.fd.as_raw_fd(),
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
