//! Standard output for every command. A reader that goes away early (`knockwrap check FILE |
//! head -1`) ends the output quietly: the rest is discarded and the command finishes and exits
//! as if it had been read, instead of panicking in `print!`. Any other write error (a full
//! disk behind a redirection) is kept and turned into exit 1 by [`finish`].

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set once the reader has gone: nothing more is written.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write error that was not a closed pipe.
static ERROR: Mutex<Option<String>> = Mutex::new(None);

fn record(e: io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CLOSED.store(true, Ordering::Relaxed);
    } else if let Ok(mut slot) = ERROR.lock() {
        slot.get_or_insert_with(|| e.to_string());
    }
}

/// Writes `bytes` to standard output unless the reader has gone.
pub fn bytes(bytes: &[u8]) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = io::stdout().lock().write_all(bytes) {
        record(e);
    }
}

/// `print!` that never panics.
pub fn print(args: fmt::Arguments) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = io::stdout().lock().write_fmt(args) {
        record(e);
    }
}

/// Flushes standard output; the first write error that was not a closed pipe, if any.
pub fn finish() -> Option<String> {
    if !CLOSED.load(Ordering::Relaxed) {
        if let Err(e) = io::stdout().lock().flush() {
            record(e);
        }
    }
    ERROR.lock().ok().and_then(|mut e| e.take())
}

/// `print!` through [`print`].
macro_rules! out {
    ($($t:tt)*) => { $crate::output::print(format_args!($($t)*)) };
}

/// `println!` through [`print`].
macro_rules! outln {
    () => { $crate::output::print(format_args!("\n")) };
    ($($t:tt)*) => { $crate::output::print(format_args!("{}\n", format_args!($($t)*))) };
}

pub(crate) use {out, outln};
