//! Attempts per source address: logins, codes and claim codes.
//!
//! A fixed window per address, counted on the core's clock. Addresses are
//! grouped as every per-address limit groups them
//! ([`peer_key`](crate::address::peer_key): an IPv6 /64 counts as one). The table is
//! bounded; when full, windows that have ended are dropped first, then the
//! oldest. The core's lockout still applies on top: this only stops a
//! client from spending the server's hashing time at will.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::clock::Timestamp;

/// Most addresses tracked at once.
const MAX_ADDRESSES: usize = 8192;

/// Attempts per address per window.
#[derive(Debug)]
pub struct RateLimiter {
    per_window: u32,
    window: u64,
    table: Mutex<HashMap<IpAddr, (Timestamp, u32)>>,
}

impl RateLimiter {
    /// `per_window` attempts per `window` seconds for each address.
    pub fn new(per_window: u32, window: u64) -> Self {
        Self {
            per_window: per_window.max(1),
            window: window.max(1),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt. `Err(seconds)` says how long until the next one is
    /// allowed.
    pub fn attempt(&self, address: IpAddr, now: Timestamp) -> Result<(), u64> {
        let address = crate::address::peer_key(address);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_ADDRESSES && !table.contains_key(&address) {
            let window = self.window;
            table.retain(|_, (start, _)| now.saturating_sub(*start) < window);
            if table.len() >= MAX_ADDRESSES
                && let Some(oldest) = table.iter().min_by_key(|(_, (s, _))| *s).map(|(a, _)| *a)
            {
                table.remove(&oldest);
            }
        }
        let slot = table.entry(address).or_insert((now, 0));
        if now.saturating_sub(slot.0) >= self.window {
            *slot = (now, 0);
        }
        if slot.1 >= self.per_window {
            return Err(self
                .window
                .saturating_sub(now.saturating_sub(slot.0))
                .max(1));
        }
        slot.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_quota_per_window_and_others_are_unaffected() {
        let limiter = RateLimiter::new(3, 60);
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        for _ in 0..3 {
            limiter.attempt(a, 1000).unwrap();
        }
        assert_eq!(limiter.attempt(a, 1010), Err(50));
        limiter.attempt(b, 1010).unwrap();
        limiter.attempt(a, 1060).unwrap();
    }

    #[test]
    fn an_ipv6_64_shares_one_quota() {
        let limiter = RateLimiter::new(2, 60);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        limiter.attempt(ip("2001:db8:0:1::1"), 1000).unwrap();
        limiter.attempt(ip("2001:db8:0:1::2"), 1000).unwrap();
        assert!(limiter.attempt(ip("2001:db8:0:1:ffff::3"), 1000).is_err());
        limiter.attempt(ip("2001:db8:0:2::1"), 1000).unwrap();
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = RateLimiter::new(1, 60);
        for i in 0..(MAX_ADDRESSES as u32 + 100) {
            limiter
                .attempt(IpAddr::from(i.to_be_bytes()), 1000)
                .unwrap();
        }
        assert!(limiter.table.lock().unwrap().len() <= MAX_ADDRESSES);
    }
}
