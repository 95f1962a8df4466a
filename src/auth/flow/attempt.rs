//! A tried secret: the lockout it is checked against and counted toward,
//! and the audit events it leaves. Logins and the checks that guard a
//! change of credentials share it.

use std::net::IpAddr;

use super::Context;
use crate::audit::{self, Entry, Event};
use crate::auth::policy::LockoutPolicy;
use crate::auth::{lockout, retain_of};
use crate::clock::Timestamp;
use crate::store::{StoreError, WriteTx};

/// Records a failure (and any lock it causes) with its audit events.
#[allow(clippy::too_many_arguments)] // the failure's context, spelled out at each call
pub(super) fn fail(
    tx: &mut WriteTx,
    ctx: &Context,
    lockout: &LockoutPolicy,
    now: Timestamp,
    event: Event,
    method: &str,
    detail: &str,
) -> Result<(), StoreError> {
    ctx.attempt().fail(tx, lockout, now, event, method, detail)
}

impl Context {
    pub(super) fn attempt(&self) -> Attempt<'_> {
        Attempt {
            account: &self.user,
            address: self.address,
            protocol: self.protocol.as_str(),
        }
    }
}

/// Who tried a secret, from where: the key of the lockout and the fields
/// of the audit events. Logins and the checks that guard a change of
/// credentials (current password, a code to replace TOTP) count alike.
#[derive(Clone, Copy, Debug)]
pub(in crate::auth) struct Attempt<'a> {
    /// The account, as presented.
    pub account: &'a str,
    /// The source address.
    pub address: IpAddr,
    /// `ssh`, `https`, `ftps`.
    pub protocol: &'a str,
}

impl<'a> Attempt<'a> {
    fn entry(&self, method: &'a str, detail: impl Into<String>) -> Entry<'a> {
        Entry {
            account: Some(self.account),
            address: Some(self.address),
            protocol: Some(self.protocol),
            method: Some(method),
            detail: detail.into(),
        }
    }

    /// When the account (from this address), or the address, is locked:
    /// records the refused attempt and answers when the lock lifts.
    pub(in crate::auth) fn refuse_if_locked(
        &self,
        tx: &mut WriteTx,
        now: Timestamp,
        method: &'a str,
        detail: &str,
    ) -> Result<Option<Timestamp>, StoreError> {
        let Some(until) = lockout::locked_until(tx, self.account, self.address, now)? else {
            return Ok(None);
        };
        let retain = retain_of(tx)?;
        audit::append(
            tx,
            now,
            Event::LoginWhileLocked,
            self.entry(method, format!("refused while locked: {detail}")),
            retain,
        )?;
        Ok(Some(until))
    }

    /// Before a second factor is checked: like [`Attempt::refuse_if_locked`],
    /// and also when code entry for the account is locked from every
    /// address ([`lockout::code_locked_until`]).
    pub(in crate::auth) fn refuse_code_if_locked(
        &self,
        tx: &mut WriteTx,
        now: Timestamp,
        detail: &str,
    ) -> Result<Option<Timestamp>, StoreError> {
        if let Some(until) = lockout::code_locked_until(tx, self.account, now)? {
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::LoginWhileLocked,
                self.entry(
                    "code",
                    format!("refused while code entry is locked: {detail}"),
                ),
                retain,
            )?;
            return Ok(Some(until));
        }
        self.refuse_if_locked(tx, now, "code", detail)
    }

    /// Records a wrong second factor: a failure like [`Attempt::fail`],
    /// and one more toward the account's code lock (all addresses
    /// together); the lock it may cause is audited
    /// ([`Event::CodeEntryLocked`]).
    #[allow(clippy::too_many_arguments)] // the failure's context, spelled out at each call
    pub(in crate::auth) fn fail_code(
        &self,
        tx: &mut WriteTx,
        lockout: &LockoutPolicy,
        now: Timestamp,
        event: Event,
        method: &'a str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.fail(tx, lockout, now, event, method, detail)?;
        if let Some(until) = lockout::record_code_failure(tx, self.account, now)? {
            let retain = retain_of(tx)?;
            let detail = format!(
                "{} wrong codes within {} minutes from all addresses: code entry locked until {}",
                lockout::CODE_MAX_FAILURES,
                lockout::CODE_WINDOW / 60,
                crate::clock::format_utc(until)
            );
            audit::append(
                tx,
                now,
                Event::CodeEntryLocked,
                self.entry(method, detail),
                retain,
            )?;
        }
        Ok(())
    }

    /// Records a failure (and any lock it causes) with its audit events.
    pub(in crate::auth) fn fail(
        &self,
        tx: &mut WriteTx,
        lockout: &LockoutPolicy,
        now: Timestamp,
        event: Event,
        method: &'a str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let recorded = lockout::record_failure(tx, self.account, self.address, lockout, now)?;
        let retain = retain_of(tx)?;
        audit::append(tx, now, event, self.entry(method, detail), retain)?;
        let locks = [
            (recorded.locked_pair, "locked for this address"),
            (recorded.locked_address, "address locked for all accounts"),
        ];
        for (until, what) in locks {
            if let Some(until) = until {
                let detail = format!("{what} until {}", crate::clock::format_utc(until));
                audit::append(
                    tx,
                    now,
                    Event::AccountLocked,
                    self.entry(method, detail),
                    retain,
                )?;
            }
        }
        Ok(())
    }

    /// Forgets the failures of the account from this address after the
    /// right secret.
    pub(in crate::auth) fn succeed(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        lockout::record_success(tx, self.account, self.address)
    }
}
