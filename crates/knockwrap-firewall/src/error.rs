//! Errors of the firewall layer: each names the table and says what was asked and what nft
//! answered, in words an operator can act on.

use std::io;
use std::net::IpAddr;

use thiserror::Error;

use knock_match::Proto;

/// A failed firewall operation. nft applies a request as one transaction: after an error the
/// table is as it was before the call.
#[derive(Debug, Error)]
pub enum Error {
    /// The table name is not one knockwrap accepts (an ASCII letter, then letters, digits or
    /// `_`, at most 64 bytes).
    #[error("nftables table {table:?}: not a valid table name (an ASCII letter, then letters, digits or '_', at most 64 bytes)")]
    TableName { table: String },
    /// An `always_allow` prefix longer than its address.
    #[error(
        "nftables table inet {table}: always_allow {addr}/{len}: prefix longer than the address"
    )]
    Prefix {
        table: String,
        addr: IpAddr,
        len: u8,
    },
    /// Port 0 cannot be guarded or admitted.
    #[error("nftables table inet {table}: {proto} port 0 is not a port")]
    PortZero { table: String, proto: Proto },
    /// An admission without a timeout would never end: nft reads a zero timeout as "none".
    #[error("nftables table inet {table}: admitting {addr} to {port}/{proto} with a zero timeout (it would never end)")]
    ZeroTimeout {
        table: String,
        addr: IpAddr,
        proto: Proto,
        port: u16,
    },
    /// The nft program could not be started or fed.
    #[error("nftables table inet {table}: cannot {action}: cannot run {program}: {source}")]
    Spawn {
        table: String,
        action: &'static str,
        program: String,
        #[source]
        source: io::Error,
    },
    /// nft refused the request; `said` is its message.
    #[error(
        "nftables table inet {table}: cannot {action}: {program} exited with {status}: {said}"
    )]
    Nft {
        table: String,
        action: &'static str,
        program: String,
        status: String,
        said: String,
    },
    /// The table is not there (create it with `ensure`).
    #[error("nftables table inet {table}: cannot {action}: the table does not exist")]
    Missing { table: String, action: &'static str },
    /// nft answered something that is not the JSON listing we asked for.
    #[error("nftables table inet {table}: cannot {action}: nft's answer is not a listing we can read: {why}")]
    Listing {
        table: String,
        action: &'static str,
        why: String,
    },
}
