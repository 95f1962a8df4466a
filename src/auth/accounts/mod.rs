//! Accounts: their creation, changes and removal. Public keys are in
//! `keys`, the password change in `password_change`, what administrators
//! see of an account in `view`, locks in `locks`, the checks a new name or
//! group must pass in `checks`; names and home folders are in `auth::names`,
//! groups in `auth::groups`, who may log in from where (and the rule that
//! keeps an owner) in `auth::access`. What callers use of them is
//! re-exported here.

mod checks;
mod keys;
mod locks;
mod password_change;
#[cfg(test)]
mod tests;
mod view;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    ACCOUNTS, Account, Actor, Auth, AuthError, GROUPS, Group, PASSWORDS, PUBLIC_KEYS,
    PasswordRecord, RECOVERY, Role, TOKENS, TOTP, password, retain_of,
};
use crate::audit::{self, Event};
use crate::clock::Timestamp;
use crate::store::{META, Read, WriteTx};

use super::access::{Proposed, keep_an_owner};
pub use super::access::{address_allowed, admits_some_address, parse_nets};
pub use super::groups::new_group;
pub use super::names::*;
use checks::{check_group_exists, check_name_free};
pub use checks::{check_new_owner, may_change_own_password};
pub use keys::{MAX_KEYS, parse_public_key};
pub use locks::Locks;
pub use view::{AccountView, MfaView, home_folder, home_text, permissions};

/// Most CIDR entries per list.
pub const MAX_NETS: usize = 256;

/// A new account.
#[derive(Clone, Debug)]
pub struct NewAccount {
    /// User name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Group.
    pub group: Option<String>,
    /// Initial password (checked by the policy); `None`: key or token only.
    pub password: Option<password::Secret>,
    /// Home override.
    pub home: Option<String>,
    /// authorized_keys lines.
    pub public_keys: Vec<String>,
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AccountChange {
    /// New role.
    pub role: Option<Role>,
    /// New group (`Some(None)` removes it).
    pub group: Option<Option<String>>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// New home (`Some(None)`: back to the template).
    pub home: Option<Option<String>>,
    /// New allow list.
    pub ip_allow: Option<Vec<IpNet>>,
    /// New deny list.
    pub ip_deny: Option<Vec<IpNet>>,
    /// Read-only.
    pub read_only: Option<bool>,
    /// No delete.
    pub no_delete: Option<bool>,
    /// May change own password (`Some(None)`: the group decides).
    pub may_change_password: Option<Option<bool>>,
    /// Exempt from required MFA.
    pub mfa_exempt: Option<bool>,
    /// Never offer enrolment again.
    pub mfa_skip: Option<bool>,
}

impl AccountChange {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.describe() == "changed "
    }

    fn only_mfa_skip(&self) -> bool {
        self.mfa_skip.is_some() && self.describe() == "changed mfa_skip"
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |set: bool, name: &str| {
            if set {
                parts.push(name.to_string());
            }
        };
        add(self.role.is_some(), "role");
        add(self.group.is_some(), "group");
        add(self.disabled.is_some(), "disabled");
        add(self.home.is_some(), "home");
        add(self.ip_allow.is_some(), "ip_allow");
        add(self.ip_deny.is_some(), "ip_deny");
        add(self.read_only.is_some(), "read_only");
        add(self.no_delete.is_some(), "no_delete");
        add(self.may_change_password.is_some(), "may_change_password");
        add(self.mfa_exempt.is_some(), "mfa_exempt");
        add(self.mfa_skip.is_some(), "mfa_skip");
        format!("changed {}", parts.join(", "))
    }
}

pub(crate) fn load_account(r: &impl Read, name: &str) -> Result<Account, AuthError> {
    r.get(ACCOUNTS, name)?.ok_or_else(|| AuthError::NotFound {
        what: "account",
        name: name.to_string(),
    })
}

pub(crate) fn load_group(r: &impl Read, account: &Account) -> Result<Option<Group>, AuthError> {
    Ok(match &account.group {
        Some(g) => r.get(GROUPS, g)?,
        None => None,
    })
}

impl Auth {
    /// Claims the box: creates the owner (system_admin), optionally setting
    /// the password hashing cost first. Fails once claimed.
    pub fn claim(
        &self,
        actor: &Actor,
        owner: &str,
        password: &str,
        hash_cost: Option<password::HashCost>,
    ) -> Result<(), AuthError> {
        validate_account_name(owner)?;
        let mut policy = self.policy()?;
        super::policy::check(password, owner, &policy.password)
            .map_err(|r| AuthError::PasswordRefused(r.0))?;
        if let Some(cost) = hash_cost {
            policy.password.hash_cost = cost;
        }
        let hash = self.hash_password_with(password, policy.password.hash_cost)?;
        let now = self.now();
        self.store.write(|tx| {
            if tx.get(META, "claimed_by")?.is_some() {
                return Err(AuthError::AlreadyClaimed);
            }
            check_name_free(tx, owner)?;
            let account = new_account(owner, Role::SystemAdmin, None, None, now);
            tx.put(ACCOUNTS, owner, &account)?;
            tx.put(
                PASSWORDS,
                owner,
                &PasswordRecord {
                    hash: hash.clone(),
                    changed_at: now,
                    history: Vec::new(),
                },
            )?;
            tx.put(META, "claimed_by", &serde_json::json!(owner))?;
            super::claim::forget(tx)?;
            tx.put(super::SETTINGS, "policy", &policy)?;
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::AccountCreated,
                actor.entry(Some(owner), "role system_admin".into()),
                retain,
            )?;
            audit::append(
                tx,
                now,
                Event::BoxClaimed,
                actor.entry(Some(owner), "owner created".into()),
                retain,
            )?;
            Ok(())
        })
    }

    /// Creates an account.
    pub fn create_account(&self, actor: &Actor, new: NewAccount) -> Result<AccountView, AuthError> {
        actor.require_admin()?;
        if new.role == Role::SystemAdmin {
            actor.require_owner()?;
        }
        validate_account_name(&new.name)?;
        if let Some(h) = &new.home {
            validate_home(h)?;
        }
        let now = self.now();
        let keys = new
            .public_keys
            .iter()
            .map(|l| parse_public_key(l, now))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.len() > MAX_KEYS {
            return Err(AuthError::Invalid(format!(
                "at most {MAX_KEYS} public keys per account"
            )));
        }
        for (i, k) in keys.iter().enumerate() {
            if keys.iter().take(i).any(|earlier| earlier.blob == k.blob) {
                return Err(AuthError::Exists {
                    what: "key",
                    name: k.fingerprint.clone(),
                });
            }
        }
        let hash = match &new.password {
            Some(p) => {
                let policy = self.policy()?;
                super::policy::check(p, &new.name, &policy.password)
                    .map_err(|r| AuthError::PasswordRefused(r.0))?;
                Some(self.hash_password(p)?)
            }
            None => None,
        };
        self.store.write(|tx| {
            check_name_free(tx, &new.name)?;
            check_group_exists(tx, &new.group)?;
            let account = new_account(
                &new.name,
                new.role,
                new.group.clone(),
                new.home.clone(),
                now,
            );
            tx.put(ACCOUNTS, &new.name, &account)?;
            if let Some(hash) = &hash {
                tx.put(
                    PASSWORDS,
                    &new.name,
                    &PasswordRecord {
                        hash: hash.clone(),
                        changed_at: now,
                        history: Vec::new(),
                    },
                )?;
            }
            if !keys.is_empty() {
                tx.put(PUBLIC_KEYS, &new.name, &keys)?;
            }
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::AccountCreated,
                actor.entry(Some(&new.name), format!("role {}", new.role)),
                retain,
            )?;
            Ok::<_, AuthError>(())
        })?;
        self.account(actor, &new.name)
    }

    /// Changes an account's settings.
    pub fn update_account(
        &self,
        actor: &Actor,
        name: &str,
        change: AccountChange,
    ) -> Result<AccountView, AuthError> {
        if let Some(Some(h)) = &change.home {
            validate_home(h)?;
        }
        let now = self.now();
        // Choosing "don't ask again" is the one change users make themselves.
        let self_service = change.only_mfa_skip();
        self.store.write(|tx| {
            actor.require_self_or_admin(name)?;
            let mut a = load_account(tx, name)?;
            if self_service {
                actor.require_self_or_admin_over(&a)?;
            } else {
                actor.require_admin_over(&a)?;
            }
            if change.role == Some(Role::SystemAdmin) {
                actor.require_owner()?;
            }
            if let Some(Some(g)) = &change.group {
                check_group_exists(tx, &Some(g.clone()))?;
            }
            let was_disabled = a.disabled;
            if let Some(v) = change.role {
                a.role = v;
            }
            if let Some(v) = &change.group {
                a.group = v.clone();
            }
            if let Some(v) = change.disabled {
                a.disabled = v;
            }
            if let Some(v) = &change.home {
                a.home = v.clone();
            }
            if let Some(v) = &change.ip_allow {
                a.ip_allow = v.clone();
            }
            if let Some(v) = &change.ip_deny {
                a.ip_deny = v.clone();
            }
            if let Some(v) = change.read_only {
                a.read_only = v;
            }
            if let Some(v) = change.no_delete {
                a.no_delete = v;
            }
            if let Some(v) = change.may_change_password {
                a.may_change_password = v;
            }
            if let Some(v) = change.mfa_exempt {
                a.mfa_exempt = v;
            }
            if let Some(v) = change.mfa_skip {
                a.mfa_skip = v;
            }
            keep_an_owner(tx, Proposed::Account(&a))?;
            tx.put(ACCOUNTS, name, &a)?;
            let retain = retain_of(tx)?;
            let event = match (was_disabled, a.disabled) {
                (false, true) => Event::AccountDisabled,
                (true, false) => Event::AccountEnabled,
                _ if change.mfa_skip == Some(true) && self_service => Event::EnrolmentSkipped,
                _ => Event::AccountChanged,
            };
            audit::append(
                tx,
                now,
                event,
                actor.entry(Some(name), change.describe()),
                retain,
            )?;
            Ok::<_, AuthError>(())
        })?;
        // "Don't ask again" changes no right: the account's sessions go on.
        if !change.only_mfa_skip() {
            self.credentials_changed(name, &change.describe());
        }
        self.account(actor, name)
    }

    /// Removes an account with every credential, token and lockout record.
    /// Files are left in place.
    pub fn remove_account(&self, actor: &Actor, name: &str) -> Result<(), AuthError> {
        if actor.is_self(name) {
            return Err(AuthError::Forbidden(
                "you cannot remove your own account".into(),
            ));
        }
        let now = self.now();
        self.store.write(|tx| {
            actor.require_admin()?;
            let account = load_account(tx, name)?;
            actor.require_admin_over(&account)?;
            keep_an_owner(tx, Proposed::Removed(&account.name))?;
            tx.remove(ACCOUNTS, name)?;
            tx.remove(PASSWORDS, name)?;
            tx.remove(PUBLIC_KEYS, name)?;
            tx.remove(TOTP, name)?;
            tx.remove(RECOVERY, name)?;
            tx.retain(TOKENS, |_, t| t.account != name)?;
            super::lockout::clear_account(tx, name)?;
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::AccountRemoved,
                actor.entry(Some(name), String::new()),
                retain,
            )?;
            Ok::<_, AuthError>(())
        })?;
        self.credentials_changed(name, "account removed");
        Ok(())
    }

    /// Applies an administrator's change of profile, password, public
    /// keys and name together (the REST `PATCH`). Everything that can be
    /// refused is checked before the first write: rights, the password
    /// against the policy, every key line, the new name; the rename comes
    /// last ([`Auth::rename_account`]).
    pub fn update_account_fully(
        &self,
        actor: &Actor,
        name: &str,
        change: AccountChange,
        new_password: Option<&str>,
        public_keys: Option<Vec<String>>,
        new_name: Option<&str>,
    ) -> Result<AccountView, AuthError> {
        if new_password.is_some() || public_keys.is_some() {
            actor.may_manage_credentials()?;
        }
        if let Some(new) = new_name {
            self.check_rename(actor, name, new)?;
        }
        let now = self.now();
        let target = self.store.read(|r| load_account(r, name))?;
        actor.require_admin_over(&target)?;
        let keys = public_keys
            .map(|lines| {
                lines
                    .iter()
                    .map(|l| parse_public_key(l, now))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        if let Some(keys) = &keys
            && keys.len() > MAX_KEYS
        {
            return Err(AuthError::Invalid(format!(
                "at most {MAX_KEYS} public keys per account"
            )));
        }
        if let Some(pw) = new_password {
            super::policy::check(pw, name, &self.policy()?.password)
                .map_err(|r| AuthError::PasswordRefused(r.0))?;
        }
        if !change.is_empty() {
            self.update_account(actor, name, change)?;
        }
        if let Some(pw) = new_password {
            self.set_password(actor, name, pw, None)?;
        }
        if let Some(keys) = keys {
            self.set_public_keys(actor, name, keys)?;
        }
        match new_name {
            Some(new) => self.rename_account(actor, name, new),
            None => self.account(actor, name),
        }
    }
}

fn new_account(
    name: &str,
    role: Role,
    group: Option<String>,
    home: Option<String>,
    now: Timestamp,
) -> Account {
    Account {
        name: name.to_string(),
        role,
        group,
        disabled: false,
        home,
        ip_allow: Vec::new(),
        ip_deny: Vec::new(),
        read_only: false,
        no_delete: false,
        may_change_password: None,
        mfa_exempt: false,
        mfa_skip: false,
        created_at: now,
        last_login: None,
    }
}

/// Writes an audit event for an account inside a transaction.
pub(crate) fn audit_in(
    tx: &mut WriteTx,
    now: Timestamp,
    event: Event,
    entry: audit::Entry<'_>,
) -> Result<(), AuthError> {
    let retain = retain_of(tx)?;
    audit::append(tx, now, event, entry, retain)?;
    Ok(())
}
