//! Accounts as administrators (and each account itself) see them: the
//! effective home folder and permissions, MFA state, locks, keys.

use serde::{Deserialize, Serialize};

use super::{load_account, load_group};
use crate::auth::names::{HomeFolder, folder_name};
use crate::auth::{
    ACCOUNTS, Account, Actor, Auth, AuthError, DEFAULT_HOME_TEMPLATE, Group, PASSWORDS,
    PUBLIC_KEYS, Permissions, PublicKey, RECOVERY, TOKENS, TOTP,
};
use crate::clock::Timestamp;
use crate::store::Read;

/// An account as shown to administrators.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountView {
    /// Profile.
    #[serde(flatten)]
    pub account: Account,
    /// Has a password.
    pub has_password: bool,
    /// Public keys as authorized_keys lines.
    pub public_keys: Vec<String>,
    /// MFA state.
    pub mfa: MfaView,
    /// Access tokens held.
    pub tokens: usize,
    /// Locked for these addresses until these times.
    pub locked: Vec<(String, Timestamp)>,
    /// Code entry (TOTP and recovery codes) is locked from every address
    /// until this time: too many wrong second factors.
    pub code_entry_locked_until: Option<Timestamp>,
    /// Effective home folder (relative to the files root).
    pub home_folder: String,
    /// Effective file permissions.
    pub permissions: Permissions,
}

/// MFA state of an account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MfaView {
    /// Has a confirmed TOTP enrolment.
    pub enrolled: bool,
    /// An enrolment was started and not confirmed.
    pub pending: bool,
    /// Exempt from a required policy.
    pub exempt: bool,
    /// Chose to skip enrolment permanently.
    pub skip: bool,
    /// Unused recovery codes left.
    pub recovery_codes_left: usize,
}

/// The effective home folder as written: the account's own home, or its
/// group's template (else `${USER}`) with `${USER}` replaced by the
/// account's [`folder_name`]. Unchecked: for display; sessions use
/// [`home_folder`].
pub fn home_text(account: &Account, group: Option<&Group>) -> String {
    match &account.home {
        Some(h) => h.clone(),
        None => group
            .map_or(DEFAULT_HOME_TEMPLATE, |g| g.home_template.as_str())
            .replace("${USER}", &folder_name(&account.name)),
    }
}

/// The effective home folder (relative to the files root), checked after
/// substitution by [`HomeFolder::parse`].
pub fn home_folder(account: &Account, group: Option<&Group>) -> Result<HomeFolder, AuthError> {
    HomeFolder::parse(&home_text(account, group)).map_err(AuthError::from)
}

/// The effective permissions: the stricter of account and group.
pub fn permissions(account: &Account, group: Option<&Group>) -> Permissions {
    let read_only = account.read_only || group.is_some_and(|g| g.read_only);
    let no_delete = account.no_delete || group.is_some_and(|g| g.no_delete);
    Permissions {
        write: !read_only,
        delete: !read_only && !no_delete,
    }
}

impl Auth {
    /// Every account, in name order.
    pub fn accounts(&self, actor: &Actor) -> Result<Vec<AccountView>, AuthError> {
        actor.require_admin()?;
        let now = self.now();
        self.store.read(|r| {
            r.all(ACCOUNTS)?
                .into_iter()
                .map(|(_, a)| view(r, a, now))
                .collect::<Result<Vec<_>, AuthError>>()
        })
    }

    /// One account.
    pub fn account(&self, actor: &Actor, name: &str) -> Result<AccountView, AuthError> {
        let now = self.now();
        self.store.read(|r| {
            actor.require_self_or_admin(name)?;
            let account = load_account(r, name)?;
            actor.require_self_or_admin_over(&account)?;
            view(r, account, now)
        })
    }
}

fn view(r: &impl Read, account: Account, now: Timestamp) -> Result<AccountView, AuthError> {
    let name = account.name.clone();
    let group = load_group(r, &account)?;
    let totp = r.get(TOTP, &name)?;
    let recovery = r.get(RECOVERY, &name)?;
    let tokens = r
        .all(TOKENS)?
        .into_iter()
        .filter(|(_, t)| t.account == name)
        .count();
    Ok(AccountView {
        has_password: r.get(PASSWORDS, &name)?.is_some(),
        public_keys: r
            .get(PUBLIC_KEYS, &name)?
            .unwrap_or_default()
            .iter()
            .map(PublicKey::openssh)
            .collect(),
        mfa: MfaView {
            enrolled: totp.as_ref().is_some_and(|t| t.active.is_some()),
            pending: totp.as_ref().is_some_and(|t| t.pending.is_some()),
            exempt: account.mfa_exempt,
            skip: account.mfa_skip,
            recovery_codes_left: recovery.map_or(0, |r| {
                r.codes.iter().filter(|c| c.used_at.is_none()).count()
            }),
        },
        tokens,
        locked: crate::auth::lockout::locks_of(r, &name, now)?,
        code_entry_locked_until: crate::auth::lockout::code_locked_until(r, &name, now)?,
        home_folder: home_text(&account, group.as_ref()),
        permissions: permissions(&account, group.as_ref()),
        account,
    })
}
