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

/// How a group is written for people: an IPv4 address as itself, an IPv6
/// group as its network, `2001:db8:1:2::/64`.
pub fn describe(address: IpAddr) -> String {
    match peer_key(address) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{v6}/64"),
    }
}

/// Reads an address as an administrator names it to clear its lock: an
/// address, or a group as [`describe`] writes it (`2001:db8:1:2::/64`).
/// Any IPv6 address names its /64.
pub fn parse(text: &str) -> Result<IpAddr, String> {
    let text = text.trim();
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let address: IpAddr = addr.parse().map_err(|_| {
        format!("{text:?} is not an IP address (e.g. 192.0.2.7 or 2001:db8:1:2::/64)")
    })?;
    match (address.to_canonical(), prefix) {
        (_, None) | (IpAddr::V4(_), Some("32")) | (IpAddr::V6(_), Some("64")) => Ok(address),
        _ => Err(format!(
            "{text:?}: name one IPv4 address or an IPv6 /64 (addresses are counted that way)"
        )),
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

    #[test]
    fn groups_are_written_and_read_back() {
        assert_eq!(describe(ip("2001:db8:1:2::9")), "2001:db8:1:2::/64");
        assert_eq!(describe(ip("::ffff:192.0.2.7")), "192.0.2.7");
        for text in [
            "2001:db8:1:2::/64",
            "2001:db8:1:2::9",
            "192.0.2.7",
            "192.0.2.7/32",
        ] {
            let a = parse(text).unwrap();
            assert_eq!(parse(&describe(a)).map(peer_key), Ok(peer_key(a)), "{text}");
        }
        assert!(parse("2001:db8::/48").is_err());
        assert!(parse("192.0.2.0/24").is_err());
        assert!(parse("bob").is_err());
    }
}
