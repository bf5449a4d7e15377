//! The knockwrap TOML configuration: daemon settings and doors, with file:line diagnostics.
