//! hosts_access(5) files exactly as Debian's libwrap 7.6.q reads them: parse with byte
//! positions, render back byte for byte, validate, evaluate a request, and edit managed lines.
//!
//! Pure: bytes in, values out. No files, network, DNS or clock.

pub mod delta;
mod diagnostic;
mod document;
pub mod edit;
pub mod eval;
mod lines;
mod options;
mod pattern;
mod scan;
mod swar;
mod syntax;
mod validate;

pub use delta::introduced_errors;
pub use diagnostic::{Diagnostic, Severity};
pub use document::{parse, Document, LineKind, LogicalLine, OptionField, Rule, Token};
pub use validate::validate;
