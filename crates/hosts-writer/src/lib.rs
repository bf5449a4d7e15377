//! Locked, atomic, validated replacement of hosts.allow, and the durable lease journal.
