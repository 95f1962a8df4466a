//! Source addresses as the per-address limits count them.
//!
//! Every counter kept per source address (login lockout, the web's attempt
//! limiter, the share of connections an address may hold on the HTTPS and
//! SSH ports) keys on [`peer_key`], so they all agree on what "one address"
//! is: an IPv4 address, or an IPv6 /64. A single IPv6 host is usually given a
//! whole /64 and can pick any address inside it, so counting IPv6 addresses
//! one by one would give it 2^64 shares.

use std::net::{IpAddr, Ipv6Addr};

/// The group a source address is counted in: an IPv4 address stays itself
/// (an IPv4-mapped IPv6 address `::ffff:a.b.c.d` becomes `a.b.c.d`, as a
/// dual-stack listener reports IPv4 peers that way); an IPv6 address becomes
/// its /64 network (the lower 64 bits cleared).
pub fn peer_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(peer_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(peer_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(
            peer_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            peer_key(ip("2001:db8:1:2::1")),
            peer_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            peer_key(ip("2001:db8:1:2::1")),
            peer_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(peer_key(ip("::1")), ip("::"));
    }
}
