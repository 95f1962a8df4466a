//! The box's settings as callers read and change them: the policy, who
//! owns the box, what the store holds.

use std::collections::BTreeMap;

use super::{ACCOUNTS, Actor, Auth, AuthError, GROUPS, Policy, SETTINGS, TOKENS, TOTP, totp};
use crate::audit::{self, Event};
use crate::store::{META, Read, Store, StoreError};

impl Auth {
    /// The policy as a caller reads it: administrators only
    /// ([`Actor::may_administer_accounts`]).
    pub fn policy_for(&self, actor: &Actor) -> Result<Policy, AuthError> {
        actor.may_administer_accounts()?;
        self.policy()
    }

    /// The current policy, for the core's own decisions only (private to
    /// the core): a front end reads it as such through
    /// [`Auth::policy_for`], and what a user's own page shows of it
    /// through [`Auth::own_sign_in`].
    pub(super) fn policy(&self) -> Result<Policy, AuthError> {
        Ok(self
            .store
            .read(|r| r.get(SETTINGS, "policy"))?
            .unwrap_or_default())
    }

    /// Applies `key = value` settings, all or none, in one transaction.
    pub fn set_policy(
        &self,
        actor: &Actor,
        changes: &[(String, String)],
    ) -> Result<Policy, AuthError> {
        actor.require_owner()?;
        if changes.is_empty() {
            return Err(AuthError::Invalid("no setting given: use KEY=VALUE".into()));
        }
        let now = self.now();
        self.store.write(|tx| {
            let mut policy = tx.get(SETTINGS, "policy")?.unwrap_or_default();
            for (k, v) in changes {
                policy.set(k, v)?;
            }
            tx.put(SETTINGS, "policy", &policy)?;
            let detail = changes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            audit::append(
                tx,
                now,
                Event::PolicyChanged,
                actor.entry(None, detail),
                policy.audit_retain,
            )?;
            Ok(policy)
        })
    }

    /// Whether the box has an owner (public: the health answer and the
    /// setup wizard say it to anyone).
    pub fn is_claimed(&self) -> Result<bool, AuthError> {
        Ok(owner_of(&self.store)?.is_some())
    }

    /// The account that claimed the box, as a caller reads it: the system
    /// administrator or the local operator ([`Actor::may_administer_box`]).
    pub fn owner(&self, actor: &Actor) -> Result<Option<String>, AuthError> {
        actor.may_administer_box()?;
        Ok(owner_of(&self.store)?)
    }

    /// Replaces the whole policy with `new` (the REST `PUT`): every setting
    /// that differs goes through the same checks as `coffer policy set`,
    /// all in one transaction.
    pub fn replace_policy(&self, actor: &Actor, new: &Policy) -> Result<Policy, AuthError> {
        actor.require_owner()?;
        // The key = value form carries only what can be changed: refuse the
        // rest here rather than drop it silently.
        let fixed = totp::TotpConfig::default();
        for (i, c) in new.totp.iter().enumerate() {
            let key = format!("totp.config.{}", c.name);
            if new
                .totp
                .iter()
                .take(i)
                .any(|earlier| earlier.name == c.name)
            {
                return Err(AuthError::Invalid(format!("{key}: named twice")));
            }
            if c.digits != fixed.digits || c.period != fixed.period {
                return Err(AuthError::Invalid(format!(
                    "{key}: codes have {} digits and a {} s period; only issuer and algorithm can change",
                    fixed.digits, fixed.period
                )));
            }
            if c.issuer.contains(',') || c.issuer.trim() != c.issuer {
                return Err(AuthError::Invalid(format!(
                    "{key}: the issuer is 1-64 characters, without ':' or ',' or surrounding spaces"
                )));
            }
        }
        let current = self.policy()?;
        let old = current.entries();
        let wanted = new.entries();
        if let Some((key, _)) = old
            .iter()
            .find(|(k, _)| !wanted.iter().any(|(w, _)| w == k))
        {
            return Err(AuthError::Invalid(format!(
                "{key}: a TOTP configuration cannot be removed while enrolments may use it"
            )));
        }
        let changes: Vec<(String, String)> =
            wanted.into_iter().filter(|e| !old.contains(e)).collect();
        if changes.is_empty() {
            return Ok(current);
        }
        self.set_policy(actor, &changes)
    }

    /// Counts of what the store holds, for status displays: the system
    /// administrator only ([`Actor::may_administer_box`]).
    pub fn counts(&self, actor: &Actor) -> Result<BTreeMap<&'static str, u64>, AuthError> {
        actor.may_administer_box()?;
        Ok(self.store.read(|r| {
            let mut m = BTreeMap::new();
            m.insert("accounts", r.count(ACCOUNTS)?);
            m.insert("groups", r.count(GROUPS)?);
            m.insert("totp_enrolments", r.count(TOTP)?);
            m.insert("access_tokens", r.count(TOKENS)?);
            Ok::<_, StoreError>(m)
        })?)
    }
}

/// The account that claimed the box, read from a store without a data key.
pub fn owner_of(store: &Store) -> Result<Option<String>, StoreError> {
    Ok(store
        .read(|r| r.get(META, "claimed_by"))?
        .and_then(|v| v.as_str().map(str::to_string)))
}
