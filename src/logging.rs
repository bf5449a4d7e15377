//! Log destinations for the daemon: stderr, a file, or the local syslog socket.
//!
//! One line per event, formatted by tracing-subscriber. In the capture child (which may not
//! write anything itself) every line goes to the parent over the channel instead
//! ([`forward_to`]); the parent writes it with [`write_child_line`] to the same destination,
//! after making it one printable line. Syslog is written directly to
//! `/dev/log` (RFC 3164 framing, facility authpriv) so no syslog crate is needed.

use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

pub use knockwrap_config::LogTarget;

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("KNOCKWRAP_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The channel to the parent, once this process is the capture child (unset: not
/// forwarding): a duplicate of its descriptor, held for the rest of the process's life.
static FORWARD: OnceLock<OwnedFd> = OnceLock::new();

/// The destination itself, for the parent to write the child's lines to.
type RawSink = Box<dyn Fn(&Level, &[u8]) + Send + Sync>;
static SINK: OnceLock<RawSink> = OnceLock::new();

/// From now on, this process's log lines go to the parent over `channel` (through a
/// close-on-exec duplicate of it, so the lines still go out after the caller closed its own).
/// Only the first call takes effect.
pub fn forward_to(channel: BorrowedFd<'_>) -> io::Result<()> {
    let own = channel.try_clone_to_owned()?;
    let _ = FORWARD.set(own);
    Ok(())
}

/// Writes a line the capture child formatted, made one printable line of bounded length (a
/// child that was taken over must not be able to forge several lines or terminal escapes).
pub fn write_child_line(level: &Level, text: &str) {
    let mut line: String = text
        .trim_end_matches('\n')
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    line.push('\n');
    if let Some(sink) = SINK.get() {
        sink(level, line.as_bytes());
    } else {
        let _ = io::stderr().write_all(line.as_bytes());
    }
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(target: &LogTarget) -> io::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false);
    let result = match target {
        LogTarget::Stderr => {
            let _ = SINK.set(Box::new(|_, line| {
                let _ = io::stderr().write_all(line);
            }));
            builder
                .with_ansi(io::stderr().is_terminal())
                .with_writer(Routed(io::stderr))
                .try_init()
        }
        LogTarget::File(path) => {
            let file = Arc::new(Mutex::new(open_log_file(path)?));
            let sink = Arc::clone(&file);
            let _ = SINK.set(Box::new(move |_, line| {
                let mut f = sink.lock().unwrap_or_else(|p| p.into_inner());
                let _ = f.write_all(line);
            }));
            builder
                .with_ansi(false)
                .with_writer(Routed(SharedFile(file)))
                .try_init()
        }
        LogTarget::Syslog => {
            let syslog = Syslog::connect()?;
            let sink = syslog.clone();
            let _ = SINK.set(Box::new(move |level, line| {
                let mut rec = sink.record(priority(level));
                let _ = rec.write_all(line);
            }));
            builder
                .with_ansi(false)
                .without_time()
                .with_level(false)
                .with_writer(Routed(syslog))
                .try_init()
        }
    };
    result.map_err(|e| io::Error::other(e.to_string()))
}

/// The log file, shared with the parent's sink for the child's lines.
#[derive(Clone)]
struct SharedFile(Arc<Mutex<std::fs::File>>);

struct FileGuard<'a>(std::sync::MutexGuard<'a, std::fs::File>);

impl Write for FileGuard<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.write(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for SharedFile {
    type Writer = FileGuard<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        FileGuard(self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A destination that becomes the channel to the parent once [`forward_to`] was called.
struct Routed<M>(M);

enum RoutedWriter<W> {
    Local(W),
    Forward(Forwarded),
}

/// One line for the parent, sent as one message when dropped.
struct Forwarded {
    fd: BorrowedFd<'static>,
    level: u8,
    buf: Vec<u8>,
}

impl Forwarded {
    fn new(fd: BorrowedFd<'static>, level: &Level) -> Forwarded {
        Forwarded {
            fd,
            level: level_number(level),
            buf: Vec::new(),
        }
    }
}

fn level_number(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// The level of a forwarded line's number (the parent's side).
pub fn level_of(n: u8) -> Level {
    match n {
        1 => Level::ERROR,
        2 => Level::WARN,
        3 => Level::INFO,
        4 => Level::DEBUG,
        _ => Level::TRACE,
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Routed<M> {
    type Writer = RoutedWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        match FORWARD.get() {
            None => RoutedWriter::Local(self.0.make_writer()),
            Some(fd) => RoutedWriter::Forward(Forwarded::new(fd.as_fd(), &Level::INFO)),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        match FORWARD.get() {
            None => RoutedWriter::Local(self.0.make_writer_for(meta)),
            Some(fd) => RoutedWriter::Forward(Forwarded::new(fd.as_fd(), meta.level())),
        }
    }
}

impl<W: Write> Write for RoutedWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            RoutedWriter::Local(w) => w.write(data),
            RoutedWriter::Forward(f) => {
                f.buf.extend_from_slice(data);
                Ok(data.len())
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            RoutedWriter::Local(w) => w.flush(),
            RoutedWriter::Forward(_) => Ok(()),
        }
    }
}

impl Drop for Forwarded {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        let message = knockwrap_wire::ChildMessage::Log {
            level: self.level,
            text,
        };
        // A full channel loses the line rather than stall a capture thread.
        let _ = crate::sys::process::send(
            self.fd,
            &message.encode(),
            Some(std::time::Duration::from_millis(50)),
        );
    }
}

fn open_log_file(path: &Path) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// A connected datagram socket to the local syslog daemon.
#[derive(Clone)]
pub struct Syslog {
    socket: Arc<UnixDatagram>,
}

impl Syslog {
    pub fn connect() -> io::Result<Syslog> {
        let socket = UnixDatagram::unbound()?;
        socket
            .connect("/dev/log")
            .map_err(|e| io::Error::new(e.kind(), format!("/dev/log: {e}")))?;
        Ok(Syslog {
            socket: Arc::new(socket),
        })
    }
}

/// One syslog record being written; sent as a single datagram when dropped.
pub struct SyslogRecord {
    socket: Arc<UnixDatagram>,
    priority: u8,
    buf: Vec<u8>,
}

/// authpriv (10) * 8 + severity.
fn priority(level: &Level) -> u8 {
    let severity = match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    };
    10 * 8 + severity
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogRecord;

    fn make_writer(&'a self) -> SyslogRecord {
        self.record(6)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> SyslogRecord {
        self.record(priority(meta.level()))
    }
}

impl Syslog {
    fn record(&self, priority: u8) -> SyslogRecord {
        SyslogRecord {
            socket: Arc::clone(&self.socket),
            priority,
            buf: Vec::new(),
        }
    }
}

impl Write for SyslogRecord {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogRecord {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let line = text.trim_end();
        if line.is_empty() {
            return;
        }
        let msg = format!(
            "<{}>knockwrap[{}]: {}",
            self.priority,
            std::process::id(),
            line
        );
        // Logging must never take the daemon down; a full or absent syslog loses the line.
        let _ = self.socket.send(msg.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_record_is_one_framed_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let client = UnixDatagram::unbound().unwrap();
        client.connect(&path).unwrap();
        let syslog = Syslog {
            socket: Arc::new(client),
        };
        {
            let mut rec = syslog.record(priority(&Level::WARN));
            rec.write_all(b"grant door=openSSH ").unwrap();
            rec.write_all(b"addr=198.18.0.2\n").unwrap();
        }
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(got.starts_with("<84>knockwrap["), "{got}");
        assert!(
            got.ends_with("]: grant door=openSSH addr=198.18.0.2"),
            "{got}"
        );
    }
}
