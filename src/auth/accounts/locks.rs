//! Lockouts as administrators see and clear them.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::load_account;
use crate::audit::{self, Event};
use crate::auth::{Actor, Auth, AuthError, retain_of};
use crate::clock::Timestamp;

/// Locks wider than one account from one address ([`Auth::locks`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Locks {
    /// Source addresses (an IPv6 /64 as its network) locked for every
    /// account, and when each lock lifts.
    pub addresses: Vec<(String, Timestamp)>,
    /// Accounts whose code entry is locked from every address, and when.
    pub code_entry: Vec<(String, Timestamp)>,
}

impl Auth {
    /// Clears every lockout of an account (all addresses).
    pub fn unlock(&self, actor: &Actor, name: &str) -> Result<usize, AuthError> {
        let now = self.now();
        self.store.write(|tx| {
            actor.require_admin()?;
            let account = load_account(tx, name)?;
            actor.require_admin_over(&account)?;
            let cleared = crate::auth::lockout::clear_account(tx, name)?;
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::AccountUnlocked,
                actor.entry(Some(name), format!("{cleared} lock record(s) cleared")),
                retain,
            )?;
            Ok(cleared)
        })
    }

    /// Clears the lock of a source address (for every account; an IPv6
    /// address stands for its /64) and the failures counted from it.
    pub fn unlock_address(&self, actor: &Actor, address: IpAddr) -> Result<usize, AuthError> {
        actor.require_admin()?;
        let now = self.now();
        self.store.write(|tx| {
            let cleared = crate::auth::lockout::clear_address(tx, address)?;
            let retain = retain_of(tx)?;
            let detail = format!(
                "{} unlocked ({cleared} lock record(s) cleared)",
                crate::address::describe(address)
            );
            audit::append(
                tx,
                now,
                Event::AddressUnlocked,
                actor.entry(None, detail),
                retain,
            )?;
            Ok(cleared)
        })
    }

    /// The locks that hold now beyond one account and one address: source
    /// addresses locked for every account, and accounts whose code entry is
    /// locked from every address. Administrators only.
    pub fn locks(&self, actor: &Actor) -> Result<Locks, AuthError> {
        actor.require_admin()?;
        let now = self.now();
        self.store.read(|r| {
            Ok(Locks {
                addresses: crate::auth::lockout::address_locks(r, now)?,
                code_entry: crate::auth::lockout::code_locks(r, now)?,
            })
        })
    }
}
