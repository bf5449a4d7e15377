//! Reading the knockwrap configuration for the CLI commands. When it cannot be read, the
//! message says which configuration was meant, whether it is the default one (no `--config`
//! given), and how to get one, instead of a bare "cannot read" (docs/contract.md: every error names what
//! failed).

use std::io;
use std::path::Path;

use knockwrap_config::Config;

use crate::cli::DEFAULT_CONFIG;
use crate::failure::Failure;

/// The failure for a configuration file that cannot be read.
pub fn unreadable(path: &Path, e: &io::Error) -> Failure {
    let which = if path == Path::new(DEFAULT_CONFIG) {
        format!("the default configuration {DEFAULT_CONFIG} (no --config given)")
    } else {
        format!("configuration {}", path.display())
    };
    let hint = if e.kind() == io::ErrorKind::NotFound {
        format!(
            "; name yours with --config PATH, or write this one (`knockwrap import-knockd \
             /etc/knockd.conf -o {}` converts a knockd.conf)",
            path.display()
        )
    } else {
        String::new()
    };
    Failure::usage(format!(
        "{}:1:1: cannot read {which}: {e}{hint}",
        path.display()
    ))
}

/// The configuration's text.
pub fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| unreadable(path, &e))
}

/// `Config::load` (the doors' files included), with [`unreadable`]'s message for the file.
pub fn load(path: &Path) -> Result<Config, Failure> {
    if let Err(e) = std::fs::metadata(path).and_then(|m| {
        if m.is_dir() {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a directory",
            ))
        } else {
            Ok(())
        }
    }) {
        return Err(unreadable(path, &e));
    }
    Config::load(path).map_err(|e| Failure::usage(e.to_string()))
}
