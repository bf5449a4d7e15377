//! What the firewall door's kernel tests add to the shared namespaces (`test_support::net`):
//! nft run inside the server's namespace, and the client's second address (another source on
//! the same side).

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use knockwrap_firewall::Runner;
pub use test_support::net::{
    assert_filtered, connect_from, NetPair, CLIENT_V6, FILTERED_AFTER, SERVER_V6,
};

/// The client's second IPv6 address: another source on the same side.
pub const OTHER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x4b57, 0, 0, 0, 0, 0, 3);

/// A server and a client namespace joined by a veth pair, the client with a second address of
/// each family ([`other4`], [`OTHER6`]); deleted on drop.
pub fn pair(tag: &str) -> NetPair {
    let pair = NetPair::new(tag);
    pair.add_client_addr(IpAddr::V4(other4(&pair)));
    pair.add_client_addr(IpAddr::V6(OTHER6));
    pair
}

/// The client's second IPv4 address.
pub fn other4(pair: &NetPair) -> Ipv4Addr {
    pair.client_subnet_v4(3)
}

/// nft inside the server's namespace.
pub fn runner(pair: &NetPair) -> Runner {
    Runner::with_args("ip", ["netns", "exec", pair.server.name(), "nft"])
}

/// Run nft with fixed arguments in the server's namespace (test set-up only).
pub fn nft(pair: &NetPair, args: &[&str]) {
    test_support::run_ok(pair.server_cmd("nft").args(args));
}
