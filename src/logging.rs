//! Log destinations for the daemon: stderr, a file, or the local syslog socket.
//!
//! One line per event, formatted by tracing-subscriber. Syslog is written directly to
//! `/dev/log` (RFC 3164 framing, facility authpriv) so no syslog crate is needed.

use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

pub use knockwrap_config::LogTarget;

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("KNOCKWRAP_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(target: &LogTarget) -> io::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false);
    let result = match target {
        LogTarget::Stderr => builder
            .with_ansi(io::stderr().is_terminal())
            .with_writer(io::stderr)
            .try_init(),
        LogTarget::File(path) => {
            let file = open_log_file(path)?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .try_init()
        }
        LogTarget::Syslog => builder
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_writer(Syslog::connect()?)
            .try_init(),
    };
    result.map_err(|e| io::Error::other(e.to_string()))
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
