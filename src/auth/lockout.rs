//! Lockout: failures counted per account and source address, and per address.
//!
//! A record under `account\0address` remembers the times of recent failures
//! (a bounded `heapless::Vec`) and, once `max_failures` fall inside the
//! window, the time the lock lifts. Failures from one address never lock the
//! account for another address. A second record under `\0address` counts
//! failures from the address across all accounts (unknown names included) and
//! locks that address for everyone once `address_max_failures` is reached.
//! An address here is what every per-address limit counts
//! ([`peer_key`]): an IPv6 /64 is one address, so a host cannot step
//! around its lock by moving inside its /64.
//! Every check-and-update happens inside the caller's write transaction.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::FAILURES;
use super::policy::{LockoutPolicy, MAX_REMEMBERED_FAILURES};
use crate::address::peer_key;
use crate::clock::Timestamp;
use crate::store::{Read, StoreError, WriteTx};

/// Most lockout records kept; beyond it, expired ones are pruned first.
const MAX_RECORDS: u64 = 20_000;

/// Recent failures of one key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Failures {
    /// Times of failures inside the window (oldest first).
    pub recent: heapless::Vec<Timestamp, { MAX_REMEMBERED_FAILURES as usize }>,
    /// The lock lifts at this time.
    pub locked_until: Option<Timestamp>,
}

impl Failures {
    fn locked_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.locked_until.filter(|&t| t > now)
    }

    fn expired(&self, now: Timestamp, window: u64) -> bool {
        self.locked_at(now).is_none()
            && self.recent.iter().all(|&t| t.saturating_add(window) <= now)
    }
}

fn pair_key(account: &str, address: IpAddr) -> String {
    format!("{account}\0{}", peer_key(address))
}

fn address_key(address: IpAddr) -> String {
    format!("\0{}", peer_key(address))
}

/// When the account (from this address), or the address itself, is locked:
/// the time the lock lifts.
pub(crate) fn locked_until(
    r: &impl Read,
    account: &str,
    address: IpAddr,
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let pair = r
        .get(FAILURES, &pair_key(account, address))?
        .and_then(|f| f.locked_at(now));
    let addr = r
        .get(FAILURES, &address_key(address))?
        .and_then(|f| f.locked_at(now));
    Ok(pair.max(addr))
}

/// What a recorded failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recorded {
    /// The account/address pair became locked by this failure.
    pub locked_pair: Option<Timestamp>,
    /// The address became locked for every account.
    pub locked_address: Option<Timestamp>,
}

fn bump(
    tx: &mut WriteTx,
    key: &str,
    limit: u32,
    policy: &LockoutPolicy,
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let mut f = tx.get(FAILURES, key)?.unwrap_or_default();
    if f.locked_until.is_some_and(|t| t <= now) {
        f = Failures::default();
    }
    let window_start = now.saturating_sub(policy.window);
    let kept: heapless::Vec<Timestamp, { MAX_REMEMBERED_FAILURES as usize }> = f
        .recent
        .iter()
        .copied()
        .filter(|&t| t > window_start)
        .collect();
    f.recent = kept;
    if f.recent.is_full() {
        f.recent.remove(0);
    }
    // Cannot fail: one slot was freed above when full.
    let _ = f.recent.push(now);
    let mut newly_locked = None;
    if f.locked_at(now).is_none() && f.recent.len() >= limit as usize {
        let until = now.saturating_add(policy.duration);
        f.locked_until = Some(until);
        newly_locked = Some(until);
    }
    tx.put(FAILURES, key, &f)?;
    Ok(newly_locked)
}

/// Records one failure of `account` (known or not) from `address`.
/// `known` says whether the account exists: unknown names only count
/// against the address, so a flood of made-up names stores nothing per name.
pub(crate) fn record_failure(
    tx: &mut WriteTx,
    account: &str,
    known: bool,
    address: IpAddr,
    policy: &LockoutPolicy,
    now: Timestamp,
) -> Result<Recorded, StoreError> {
    prune(tx, policy, now)?;
    let locked_pair = if known {
        bump(
            tx,
            &pair_key(account, address),
            policy.max_failures,
            policy,
            now,
        )?
    } else {
        None
    };
    let locked_address = if policy.address_max_failures > 0 {
        bump(
            tx,
            &address_key(address),
            policy.address_max_failures,
            policy,
            now,
        )?
    } else {
        None
    };
    Ok(Recorded {
        locked_pair,
        locked_address,
    })
}

/// Forgets the failures of `account` from `address` after a complete login.
pub(crate) fn record_success(
    tx: &mut WriteTx,
    account: &str,
    address: IpAddr,
) -> Result<(), StoreError> {
    tx.remove(FAILURES, &pair_key(account, address))?;
    Ok(())
}

/// Whether failures are recorded for `account` from `address` (a success
/// from there has something to clear).
pub(crate) fn has_failures(
    r: &impl Read,
    account: &str,
    address: IpAddr,
) -> Result<bool, StoreError> {
    Ok(r.get(FAILURES, &pair_key(account, address))?.is_some())
}

/// Removes every record of `account`; returns how many.
pub(crate) fn clear_account(tx: &mut WriteTx, account: &str) -> Result<usize, StoreError> {
    let prefix = format!("{account}\0");
    tx.retain(FAILURES, |k, _| !k.starts_with(&prefix))
}

/// Active locks of an account: (address, until).
pub(crate) fn locks_of(
    r: &impl Read,
    account: &str,
    now: Timestamp,
) -> Result<Vec<(String, Timestamp)>, StoreError> {
    let prefix = format!("{account}\0");
    Ok(r.all(FAILURES)?
        .into_iter()
        .filter_map(|(k, f)| {
            let addr = k.strip_prefix(&prefix)?.to_string();
            f.locked_at(now).map(|t| (addr, t))
        })
        .collect())
}

fn prune(tx: &mut WriteTx, policy: &LockoutPolicy, now: Timestamp) -> Result<(), StoreError> {
    if tx.count(FAILURES)? < MAX_RECORDS {
        return Ok(());
    }
    tx.retain(FAILURES, |_, f| !f.expired(now, policy.window))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OpenMode, Store};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn fifth_failure_locks_only_that_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create).unwrap();
        let p = LockoutPolicy::default();
        let a = ip("192.0.2.1");
        for i in 0..5 {
            let r = store
                .write(|tx| record_failure(tx, "bob", true, a, &p, 1000 + i))
                .unwrap();
            assert_eq!(r.locked_pair.is_some(), i == 4, "failure {i}");
        }
        let until = store.read(|r| locked_until(r, "bob", a, 1010)).unwrap();
        assert_eq!(until, Some(1004 + 300));
        assert_eq!(
            store
                .read(|r| locked_until(r, "bob", ip("192.0.2.2"), 1010))
                .unwrap(),
            None
        );
        assert_eq!(
            store.read(|r| locked_until(r, "bob", a, 1304)).unwrap(),
            None
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create).unwrap();
        let p = LockoutPolicy::default();
        let a = ip("192.0.2.1");
        for i in 0..10 {
            let r = store
                .write(|tx| record_failure(tx, "bob", true, a, &p, 1000 + i * 100))
                .unwrap();
            assert!(
                r.locked_pair.is_none(),
                "failure {i} spaced 100 s apart locks nothing"
            );
        }
    }

    #[test]
    fn unknown_names_count_against_the_address_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create).unwrap();
        let p = LockoutPolicy::default();
        let a = ip("198.51.100.9");
        for i in 0..20u64 {
            let r = store
                .write(|tx| record_failure(tx, &format!("ghost{i}"), false, a, &p, 1000))
                .unwrap();
            assert_eq!(r.locked_address.is_some(), i == 19);
        }
        assert_eq!(store.read(|r| r.count(FAILURES)).unwrap(), 1);
        assert!(
            store
                .read(|r| locked_until(r, "owner", a, 1001))
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .read(|r| locked_until(r, "owner", ip("198.51.100.10"), 1001))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_ipv6_64_is_locked_as_one_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create).unwrap();
        let p = LockoutPolicy::default();
        for i in 0..5u64 {
            let from = ip(&format!("2001:db8:0:7::{:x}", i + 1));
            store
                .write(|tx| record_failure(tx, "bob", true, from, &p, 1000 + i))
                .unwrap();
        }
        let locked = |s: &str| store.read(|r| locked_until(r, "bob", ip(s), 1010)).unwrap();
        assert!(locked("2001:db8:0:7:ffff::1").is_some());
        assert!(locked("2001:db8:0:8::1").is_none());
        // A dual-stack listener's IPv4-mapped form is the IPv4 address.
        for i in 0..5u64 {
            store
                .write(|tx| record_failure(tx, "bob", true, ip("::ffff:192.0.2.5"), &p, 1000 + i))
                .unwrap();
        }
        assert!(locked("192.0.2.5").is_some());
    }
}
