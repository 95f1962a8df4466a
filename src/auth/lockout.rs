//! Lockout: failures counted per account and source address, and per address.
//!
//! A record under `account\0address` remembers the times of recent failures
//! (a bounded `heapless::Vec`) and, once `max_failures` fall inside the
//! window, the time the lock lifts. Failures from one address never lock the
//! account for another address. A second record under `\0address` counts
//! failures from the address across all accounts (unknown names included) and
//! locks that address for everyone once `address_max_failures` is reached.
//! A name that is no account is counted per (name, address) exactly like a
//! real one, so the answers to a run of wrong passwords (and when `locked`
//! starts) do not tell whether the account exists.
//!
//! A third record under `account\0codes` counts wrong second factors of an
//! account from every address together: after [`CODE_MAX_FAILURES`] within
//! [`CODE_WINDOW`] seconds, code entry (TOTP and recovery codes) for the
//! account is locked for [`CODE_LOCK`] seconds, so a holder of the password
//! cannot spread guesses over many addresses. It is reached only after a
//! right password, so it cannot be set off by someone who lacks one; a
//! right code does not reset it (the attacker's guesses would start over).
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

/// Wrong second factors of one account, from all addresses, that lock its
/// code entry.
pub const CODE_MAX_FAILURES: u32 = 10;
/// Seconds in which wrong second factors of one account are counted.
pub const CODE_WINDOW: u64 = 900;
/// Seconds code entry stays locked.
pub const CODE_LOCK: u64 = 900;

/// The suffix of an account's code record (never an address's text).
const CODE_SUFFIX: &str = "codes";

fn pair_key(account: &str, address: IpAddr) -> String {
    if account.is_empty() {
        // Not `\0address`: that is the address's own record.
        return format!("\0\0{}", peer_key(address));
    }
    format!("{account}\0{}", peer_key(address))
}

fn address_key(address: IpAddr) -> String {
    format!("\0{}", peer_key(address))
}

fn code_key(account: &str) -> String {
    format!("{account}\0{CODE_SUFFIX}")
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

/// How many failures within how long lock a key for how long.
#[derive(Clone, Copy, Debug)]
struct Limit {
    max: u32,
    window: u64,
    duration: u64,
}

impl Limit {
    fn of(max: u32, policy: &LockoutPolicy) -> Self {
        Self {
            max,
            window: policy.window,
            duration: policy.duration,
        }
    }

    const CODES: Limit = Limit {
        max: CODE_MAX_FAILURES,
        window: CODE_WINDOW,
        duration: CODE_LOCK,
    };
}

fn bump(
    tx: &mut WriteTx,
    key: &str,
    limit: Limit,
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let mut f = tx.get(FAILURES, key)?.unwrap_or_default();
    if f.locked_until.is_some_and(|t| t <= now) {
        f = Failures::default();
    }
    let window_start = now.saturating_sub(limit.window);
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
    if f.locked_at(now).is_none() && f.recent.len() >= limit.max as usize {
        let until = now.saturating_add(limit.duration);
        f.locked_until = Some(until);
        newly_locked = Some(until);
    }
    tx.put(FAILURES, key, &f)?;
    Ok(newly_locked)
}

/// Records one failure of `account` (known or not: a made-up name is
/// counted per (name, address) like a real one) from `address`.
pub(crate) fn record_failure(
    tx: &mut WriteTx,
    account: &str,
    address: IpAddr,
    policy: &LockoutPolicy,
    now: Timestamp,
) -> Result<Recorded, StoreError> {
    prune(tx, policy, now)?;
    let locked_pair = bump(
        tx,
        &pair_key(account, address),
        Limit::of(policy.max_failures, policy),
        now,
    )?;
    let locked_address = if policy.address_max_failures > 0 {
        bump(
            tx,
            &address_key(address),
            Limit::of(policy.address_max_failures, policy),
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

/// Records one wrong second factor of `account` (from any address) in its
/// account-wide code record; answers when code entry became locked by it.
pub(crate) fn record_code_failure(
    tx: &mut WriteTx,
    account: &str,
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    bump(tx, &code_key(account), Limit::CODES, now)
}

/// When code entry for `account` is locked (from every address): the time
/// the lock lifts.
pub(crate) fn code_locked_until(
    r: &impl Read,
    account: &str,
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    Ok(r.get(FAILURES, &code_key(account))?
        .and_then(|f| f.locked_at(now)))
}

/// Accounts whose code entry is locked now, with the time it lifts.
pub(crate) fn code_locks(
    r: &impl Read,
    now: Timestamp,
) -> Result<Vec<(String, Timestamp)>, StoreError> {
    let suffix = format!("\0{CODE_SUFFIX}");
    Ok(r.all(FAILURES)?
        .into_iter()
        .filter_map(|(k, f)| {
            let account = k.strip_suffix(&suffix)?.to_string();
            f.locked_at(now).map(|t| (account, t))
        })
        .collect())
}

/// Addresses locked for every account now (an IPv6 address as its /64),
/// with the time each lock lifts.
pub(crate) fn address_locks(
    r: &impl Read,
    now: Timestamp,
) -> Result<Vec<(String, Timestamp)>, StoreError> {
    Ok(r.all(FAILURES)?
        .into_iter()
        .filter_map(|(k, f)| {
            let address = k.strip_prefix('\0')?.parse::<IpAddr>().ok()?;
            f.locked_at(now)
                .map(|t| (crate::address::describe(address), t))
        })
        .collect())
}

/// Clears the address-wide record of `address` (its /64 for IPv6) and the
/// per-account records from it; returns how many records were removed.
pub(crate) fn clear_address(tx: &mut WriteTx, address: IpAddr) -> Result<usize, StoreError> {
    let text = peer_key(address).to_string();
    tx.retain(FAILURES, |k, _| {
        k.rsplit_once('\0').is_none_or(|(_, from)| from != text)
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

/// Moves every record of `account` (its locks and failures from single
/// addresses, its code-entry record) to `renamed`: a rename neither lifts
/// a lock nor leaves one on a name nobody has. Returns how many moved. An
/// empty old name has no records of its own (its key would be an
/// address's), so nothing moves.
pub(crate) fn move_account(
    tx: &mut WriteTx,
    account: &str,
    renamed: &str,
) -> Result<usize, StoreError> {
    if account.is_empty() {
        return Ok(0);
    }
    let prefix = format!("{account}\0");
    let records: Vec<(String, Failures)> = tx
        .all(FAILURES)?
        .into_iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .collect();
    for (key, failures) in &records {
        let rest = key.strip_prefix(&prefix).unwrap_or_default();
        tx.remove(FAILURES, key)?;
        tx.put(FAILURES, &format!("{renamed}\0{rest}"), failures)?;
    }
    Ok(records.len())
}

/// Active locks of an account from single addresses: (address, until).
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
            if addr == CODE_SUFFIX {
                return None;
            }
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
        let store = Store::open(dir.path(), OpenMode::Create, &crate::auth::SCHEMA).unwrap();
        let p = LockoutPolicy::default();
        let a = ip("192.0.2.1");
        for i in 0..5 {
            let r = store
                .write(|tx| record_failure(tx, "bob", a, &p, 1000 + i))
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
        let store = Store::open(dir.path(), OpenMode::Create, &crate::auth::SCHEMA).unwrap();
        let p = LockoutPolicy::default();
        let a = ip("192.0.2.1");
        for i in 0..10 {
            let r = store
                .write(|tx| record_failure(tx, "bob", a, &p, 1000 + i * 100))
                .unwrap();
            assert!(
                r.locked_pair.is_none(),
                "failure {i} spaced 100 s apart locks nothing"
            );
        }
    }

    #[test]
    fn unknown_names_count_per_name_and_address_like_real_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create, &crate::auth::SCHEMA).unwrap();
        let p = LockoutPolicy::default();
        let a = ip("198.51.100.9");
        // The same five failures lock a made-up name exactly as a real one.
        for name in ["bob", "ghost"] {
            for i in 0..5u64 {
                let r = store
                    .write(|tx| record_failure(tx, name, a, &p, 1000 + i))
                    .unwrap();
                assert_eq!(r.locked_pair.is_some(), i == 4, "{name} failure {i}");
            }
            assert_eq!(
                store.read(|r| locked_until(r, name, a, 1005)).unwrap(),
                Some(1004 + 300),
                "{name}"
            );
        }
        // Ten more names from the address lock it for everyone.
        for i in 0..10u64 {
            let r = store
                .write(|tx| record_failure(tx, &format!("ghost{i}"), a, &p, 1010))
                .unwrap();
            assert_eq!(r.locked_address.is_some(), i == 9);
        }
        assert!(
            store
                .read(|r| locked_until(r, "owner", a, 1011))
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .read(|r| locked_until(r, "owner", ip("198.51.100.10"), 1011))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store.read(|r| address_locks(r, 1011)).unwrap(),
            vec![("198.51.100.9".to_string(), 1010 + 300)]
        );
        // An empty name is a name like any other, not the address's record.
        let r = store
            .write(|tx| record_failure(tx, "", ip("198.51.100.11"), &p, 1000))
            .unwrap();
        assert_eq!(r.locked_pair, None);
    }

    #[test]
    fn wrong_codes_from_many_addresses_lock_code_entry_of_the_account() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create, &crate::auth::SCHEMA).unwrap();
        for i in 0..CODE_MAX_FAILURES {
            let locked = store
                .write(|tx| record_code_failure(tx, "bob", 1000 + u64::from(i) * 60))
                .unwrap();
            assert_eq!(locked.is_some(), i + 1 == CODE_MAX_FAILURES, "failure {i}");
        }
        let last = 1000 + u64::from(CODE_MAX_FAILURES - 1) * 60;
        let locked = |now| store.read(|r| code_locked_until(r, "bob", now)).unwrap();
        assert_eq!(locked(last + 1), Some(last + CODE_LOCK));
        assert_eq!(locked(last + CODE_LOCK), None);
        assert_eq!(
            store.read(|r| code_locked_until(r, "carol", last)).unwrap(),
            None
        );
        assert_eq!(
            store.read(|r| code_locks(r, last + 1)).unwrap(),
            vec![("bob".to_string(), last + CODE_LOCK)]
        );
        // It is no address's lock, and `unlock NAME` clears it.
        assert!(
            store
                .read(|r| locks_of(r, "bob", last + 1))
                .unwrap()
                .is_empty()
        );
        store.write(|tx| clear_account(tx, "bob")).unwrap();
        assert_eq!(locked(last + 1), None);
    }

    #[test]
    fn wrong_codes_spread_over_the_window_do_not_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create, &crate::auth::SCHEMA).unwrap();
        let spacing = CODE_WINDOW / u64::from(CODE_MAX_FAILURES - 1) + 1;
        for i in 0..3 * CODE_MAX_FAILURES {
            let locked = store
                .write(|tx| record_code_failure(tx, "bob", 1000 + u64::from(i) * spacing))
                .unwrap();
            assert_eq!(locked, None, "failure {i}");
        }
    }

    #[test]
    fn clearing_an_address_lifts_its_lock_and_keeps_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create, &crate::auth::SCHEMA).unwrap();
        let p = LockoutPolicy::default();
        for from in ["2001:db8:0:7::1", "192.0.2.9"] {
            for i in 0..20u64 {
                store
                    .write(|tx| record_failure(tx, &format!("n{i}"), ip(from), &p, 1000))
                    .unwrap();
            }
        }
        store
            .write(|tx| record_code_failure(tx, "n1", 1000))
            .unwrap();
        assert_eq!(store.read(|r| address_locks(r, 1001)).unwrap().len(), 2);
        // Any address inside the /64 names it.
        let cleared = store
            .write(|tx| clear_address(tx, ip("2001:db8:0:7:ffff::2")))
            .unwrap();
        assert_eq!(cleared, 21);
        let left = store.read(|r| address_locks(r, 1001)).unwrap();
        assert_eq!(left, vec![("192.0.2.9".to_string(), 1300)]);
        assert!(
            store
                .read(|r| locked_until(r, "n1", ip("2001:db8:0:7::5"), 1001))
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .read(|r| r.get(FAILURES, &code_key("n1")))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn an_ipv6_64_is_locked_as_one_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create, &crate::auth::SCHEMA).unwrap();
        let p = LockoutPolicy::default();
        for i in 0..5u64 {
            let from = ip(&format!("2001:db8:0:7::{:x}", i + 1));
            store
                .write(|tx| record_failure(tx, "bob", from, &p, 1000 + i))
                .unwrap();
        }
        let locked = |s: &str| store.read(|r| locked_until(r, "bob", ip(s), 1010)).unwrap();
        assert!(locked("2001:db8:0:7:ffff::1").is_some());
        assert!(locked("2001:db8:0:8::1").is_none());
        // A dual-stack listener's IPv4-mapped form is the IPv4 address.
        for i in 0..5u64 {
            store
                .write(|tx| record_failure(tx, "bob", ip("::ffff:192.0.2.5"), &p, 1000 + i))
                .unwrap();
        }
        assert!(locked("192.0.2.5").is_some());
    }
}
