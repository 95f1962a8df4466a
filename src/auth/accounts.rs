//! Accounts, their passwords and public keys: validation and changes. Names
//! and home folders are in `names`, groups in `groups`, who may log in from
//! where (and the rule that keeps an owner) in `access`; what callers use of
//! them is re-exported here.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::flow::Attempt;
use super::{
    ACCOUNTS, Account, Actor, Auth, AuthError, DEFAULT_HOME_TEMPLATE, GROUPS, Group, PASSWORDS,
    PUBLIC_KEYS, PasswordRecord, Permissions, PublicKey, RECOVERY, Role, TOKENS, TOTP, password,
    retain_of,
};
use crate::audit::{self, Event};
use crate::clock::Timestamp;
use crate::store::{META, Read, WriteTx};

use super::access::{Proposed, keep_an_owner};
pub use super::access::{address_allowed, admits_some_address, parse_nets};
pub use super::groups::new_group;
pub use super::names::*;

/// Most public keys per account.
pub const MAX_KEYS: usize = 64;
/// Most CIDR entries per list.
pub const MAX_NETS: usize = 256;
/// Parses an authorized_keys line into a key (algorithm, blob, comment),
/// checking that the blob is well-formed base64 whose embedded algorithm
/// matches.
pub fn parse_public_key(line: &str, now: Timestamp) -> Result<PublicKey, AuthError> {
    const ALGORITHMS: &[&str] = &[
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    let bad = |why: &str| AuthError::Invalid(format!("not an OpenSSH public key: {why}"));
    let line = line.trim();
    if line.len() > 16 * 1024 {
        return Err(bad("longer than 16 KiB"));
    }
    let mut parts = line.splitn(3, char::is_whitespace);
    let algorithm = parts.next().unwrap_or_default();
    let blob = parts.next().unwrap_or_default().trim();
    let comment: String = parts
        .next()
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if !ALGORITHMS.contains(&algorithm) {
        return Err(bad(&format!(
            "{:?} is not a supported key type (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa)",
            algorithm.chars().take(40).collect::<String>()
        )));
    }
    let raw = data_encoding::BASE64
        .decode(blob.as_bytes())
        .map_err(|_| bad("the key data is not base64"))?;
    let embedded = raw
        .get(..4)
        .and_then(|len| <[u8; 4]>::try_from(len).ok())
        .and_then(|len| raw.get(4..4 + u32::from_be_bytes(len) as usize))
        .ok_or_else(|| bad("the key data is truncated"))?;
    if embedded != algorithm.as_bytes() {
        return Err(bad("the key data does not match its type"));
    }
    if raw.len() < 4 + embedded.len() + 16 {
        return Err(bad("the key data is truncated"));
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&raw);
    Ok(PublicKey {
        algorithm: algorithm.to_string(),
        blob: blob.to_string(),
        comment,
        fingerprint: format!("SHA256:{}", data_encoding::BASE64_NOPAD.encode(&digest)),
        added_at: now,
    })
}

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

/// Locks wider than one account from one address ([`Auth::locks`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Locks {
    /// Source addresses (an IPv6 /64 as its network) locked for every
    /// account, and when each lock lifts.
    pub addresses: Vec<(String, Timestamp)>,
    /// Accounts whose code entry is locked from every address, and when.
    pub code_entry: Vec<(String, Timestamp)>,
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

/// Fails when an account has `name`, compared regardless of case (`Alice`
/// is taken when `alice` exists); the error names the existing account.
fn check_name_free(r: &impl Read, name: &str) -> Result<(), AuthError> {
    if let Some((taken, _)) = r
        .all(ACCOUNTS)?
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        return Err(AuthError::Exists {
            what: "account",
            name: taken,
        });
    }
    Ok(())
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

fn check_group_exists(r: &impl Read, group: &Option<String>) -> Result<(), AuthError> {
    if let Some(g) = group
        && r.get(GROUPS, g)?.is_none()
    {
        return Err(AuthError::NotFound {
            what: "group",
            name: g.clone(),
        });
    }
    Ok(())
}

/// Whether `account` may change its own password: its own setting, else
/// its group's, else yes.
pub fn may_change_own_password(account: &Account, group: Option<&Group>) -> bool {
    account
        .may_change_password
        .unwrap_or_else(|| group.is_none_or(|g| g.may_change_password))
}

/// Checks what a claim of a new box would check of the owner's name and
/// password, under the policy a new store starts with: for a front end
/// that wants to refuse before it creates the data dir and its keys.
pub fn check_new_owner(owner: &str, password: &str) -> Result<(), AuthError> {
    validate_account_name(owner)?;
    super::policy::check(password, owner, &super::Policy::default().password)
        .map_err(|r| AuthError::PasswordRefused(r.0))
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

    /// Sets a password. An account changing its own password must give the
    /// current one and be allowed to change it; an administrator need not.
    /// A wrong current password counts toward the lockout of the account
    /// from the caller's address and is audited, like a failed login; while
    /// that lock holds, the current password is not checked at all
    /// ([`AuthError::Locked`]).
    pub fn set_password(
        &self,
        actor: &Actor,
        name: &str,
        new_password: &str,
        current: Option<&str>,
    ) -> Result<(), AuthError> {
        actor.may_manage_credentials()?;
        let (account, record) = self.store.read(|r| {
            let a = load_account(r, name)?;
            Ok::<_, AuthError>((a, r.get(PASSWORDS, name)?))
        })?;
        let by_self = actor.is_self(name);
        let attempt = actor.address.filter(|_| by_self).map(|address| Attempt {
            account: name,
            address,
            protocol: actor.protocol,
        });
        if by_self {
            let group = self.store.read(|r| load_group(r, &account))?;
            if !may_change_own_password(&account, group.as_ref()) {
                return Err(AuthError::Forbidden(
                    "this account may not change its own password".into(),
                ));
            }
            self.check_current_password(actor, attempt.as_ref(), name, record.as_ref(), current)?;
        } else {
            actor.require_admin_over(&account)?;
        }
        let policy = self.policy()?;
        let now = self.now();
        let refuse = |why: String| {
            let _ = self.audit(
                Event::PasswordRejected,
                actor.entry(Some(name), why.clone()),
            );
            AuthError::PasswordRefused(why)
        };
        super::policy::check(new_password, name, &policy.password).map_err(|r| refuse(r.0))?;
        if let Some(rec) = &record {
            let mut previous: Vec<String> = vec![rec.hash.clone()];
            previous.extend(rec.history.iter().take(policy.password.history).cloned());
            if policy.password.history > 0 && self.lease()?.reused(new_password, &previous) {
                return Err(refuse(format!(
                    "it is one of your last {} passwords; choose a new one",
                    policy.password.history.max(1)
                )));
            }
        }
        let hash = self.hash_password(new_password)?;
        self.store.write(|tx| {
            load_account(tx, name)?;
            let mut history = Vec::new();
            if let Some(old) = tx.get(PASSWORDS, name)? {
                history.push(old.hash);
                history.extend(old.history);
            }
            history.truncate(policy.password.history);
            tx.put(
                PASSWORDS,
                name,
                &PasswordRecord {
                    hash: hash.clone(),
                    changed_at: now,
                    history,
                },
            )?;
            if let Some(a) = &attempt {
                a.succeed(tx)?;
            }
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::PasswordChanged,
                actor.entry(Some(name), String::new()),
                retain,
            )?;
            Ok::<_, AuthError>(())
        })?;
        self.credentials_changed(name, "password changed");
        Ok(())
    }

    /// Checks the current password an account gives to change its own,
    /// under the login lockout: refused unchecked while the account is
    /// locked from this address; a wrong one is counted and audited
    /// (`login_failed`, method `password`).
    fn check_current_password(
        &self,
        actor: &Actor,
        attempt: Option<&Attempt<'_>>,
        name: &str,
        record: Option<&PasswordRecord>,
        current: Option<&str>,
    ) -> Result<(), AuthError> {
        const PURPOSE: &str = "password change";
        let now = self.now();
        if let Some(a) = attempt {
            let locked = self
                .store
                .write(|tx| a.refuse_if_locked(tx, now, "password", PURPOSE))?;
            if let Some(until) = locked {
                return Err(AuthError::Locked {
                    until,
                    retry_after: until.saturating_sub(now),
                });
            }
        }
        let ok = match (record, current) {
            (Some(rec), Some(cur)) => match self.verify_password(cur, Some(&rec.hash)) {
                Some(ok) => ok,
                None => {
                    return Err(AuthError::Invalid(
                        "the server is busy hashing passwords; try again".into(),
                    ));
                }
            },
            (None, _) => true,
            (Some(_), None) => false,
        };
        if ok {
            return Ok(());
        }
        let detail = format!("wrong current password ({PURPOSE})");
        match attempt {
            Some(a) => {
                let lockout = self.policy()?.lockout;
                self.store.write(|tx| {
                    a.fail(tx, &lockout, now, Event::LoginFailed, "password", &detail)
                })?;
            }
            None => {
                let entry = audit::Entry {
                    method: Some("password"),
                    ..actor.entry(Some(name), detail)
                };
                self.audit(Event::LoginFailed, entry)?;
            }
        }
        Err(AuthError::Forbidden(
            "the current password is not correct".into(),
        ))
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

    /// Replaces an account's public keys with `keys`, in one transaction.
    fn set_public_keys(
        &self,
        actor: &Actor,
        name: &str,
        mut keys: Vec<PublicKey>,
    ) -> Result<(), AuthError> {
        actor.may_manage_credentials()?;
        let now = self.now();
        keys.dedup_by(|a, b| a.blob == b.blob);
        self.store.write(|tx| {
            actor.require_self_or_admin(name)?;
            let account = load_account(tx, name)?;
            actor.require_self_or_admin_over(&account)?;
            let old = tx.get(PUBLIC_KEYS, name)?.unwrap_or_default();
            tx.put(PUBLIC_KEYS, name, &keys)?;
            let retain = retain_of(tx)?;
            for k in old
                .iter()
                .filter(|o| !keys.iter().any(|n| n.blob == o.blob))
            {
                audit::append(
                    tx,
                    now,
                    Event::PublicKeyRemoved,
                    actor.entry(Some(name), k.fingerprint.clone()),
                    retain,
                )?;
            }
            for k in keys
                .iter()
                .filter(|n| !old.iter().any(|o| o.blob == n.blob))
            {
                audit::append(
                    tx,
                    now,
                    Event::PublicKeyAdded,
                    actor.entry(Some(name), k.fingerprint.clone()),
                    retain,
                )?;
            }
            Ok(())
        })
    }

    /// Adds a public key (an authorized_keys line) to an account.
    pub fn add_public_key(
        &self,
        actor: &Actor,
        name: &str,
        line: &str,
    ) -> Result<PublicKey, AuthError> {
        actor.may_manage_credentials()?;
        let now = self.now();
        let key = parse_public_key(line, now)?;
        self.store.write(|tx| {
            actor.require_self_or_admin(name)?;
            let account = load_account(tx, name)?;
            actor.require_self_or_admin_over(&account)?;
            let mut keys = tx.get(PUBLIC_KEYS, name)?.unwrap_or_default();
            if keys.iter().any(|k| k.blob == key.blob) {
                return Err(AuthError::Exists {
                    what: "key",
                    name: key.fingerprint.clone(),
                });
            }
            if keys.len() >= MAX_KEYS {
                return Err(AuthError::Invalid(format!(
                    "at most {MAX_KEYS} public keys per account"
                )));
            }
            keys.push(key.clone());
            tx.put(PUBLIC_KEYS, name, &keys)?;
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::PublicKeyAdded,
                actor.entry(Some(name), key.fingerprint.clone()),
                retain,
            )?;
            Ok(key)
        })
    }

    /// Removes a public key by fingerprint (`SHA256:...`) or by its comment.
    pub fn remove_public_key(
        &self,
        actor: &Actor,
        name: &str,
        which: &str,
    ) -> Result<PublicKey, AuthError> {
        actor.may_manage_credentials()?;
        let now = self.now();
        self.store.write(|tx| {
            actor.require_self_or_admin(name)?;
            let account = load_account(tx, name)?;
            actor.require_self_or_admin_over(&account)?;
            let mut keys = tx.get(PUBLIC_KEYS, name)?.unwrap_or_default();
            let pos = keys
                .iter()
                .position(|k| {
                    k.fingerprint == which || (!k.comment.is_empty() && k.comment == which)
                })
                .ok_or_else(|| AuthError::NotFound {
                    what: "key",
                    name: which.to_string(),
                })?;
            let key = keys.remove(pos);
            tx.put(PUBLIC_KEYS, name, &keys)?;
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::PublicKeyRemoved,
                actor.entry(Some(name), key.fingerprint.clone()),
                retain,
            )?;
            Ok(key)
        })
    }

    /// Whether `blob` (the SSH wire encoding of a public key) is one of the
    /// account's keys. For the SSH "would this key be accepted" query; the
    /// login itself goes through [`super::flow::Login::public_key`].
    pub fn key_is_authorized(&self, name: &str, blob: &[u8]) -> Result<bool, AuthError> {
        let encoded = data_encoding::BASE64.encode(blob);
        let keys = self
            .store
            .read(|r| r.get(PUBLIC_KEYS, name))?
            .unwrap_or_default();
        Ok(keys.iter().any(|k| super::ct_eq(&k.blob, &encoded)))
    }

    /// Clears every lockout of an account (all addresses).
    pub fn unlock(&self, actor: &Actor, name: &str) -> Result<usize, AuthError> {
        let now = self.now();
        self.store.write(|tx| {
            actor.require_admin()?;
            let account = load_account(tx, name)?;
            actor.require_admin_over(&account)?;
            let cleared = super::lockout::clear_account(tx, name)?;
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
            let cleared = super::lockout::clear_address(tx, address)?;
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
                addresses: super::lockout::address_locks(r, now)?,
                code_entry: super::lockout::code_locks(r, now)?,
            })
        })
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
        locked: super::lockout::locks_of(r, &name, now)?,
        code_entry_locked_until: super::lockout::code_locked_until(r, &name, now)?,
        home_folder: home_text(&account, group.as_ref()),
        permissions: permissions(&account, group.as_ref()),
        account,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_come_from_a_conservative_alphabet() {
        for ok in [
            "alice",
            "Bob-2",
            "joe@acme.example",
            "a.b_c",
            "x",
            &"x".repeat(64),
        ] {
            validate_account_name(ok).unwrap();
            assert_eq!(folder_name(ok), ok, "a valid name is its own folder");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "**",
            "//",
            ".:",
            "*",
            "/",
            "?",
            "a/b",
            "a\\b",
            "DOMAIN\\bob",
            "has space",
            "tab\t",
            "nl\n",
            "ünïcødé",
            "a:b",
            "a|b",
            &"x".repeat(65),
        ] {
            assert!(validate_account_name(bad).is_err(), "{bad:?}");
        }
        let err = validate_account_name("**").unwrap_err().to_string();
        assert!(err.contains("only letters"), "{err}");
        validate_group_name("Staff team").unwrap_err();
        validate_group_name("staff").unwrap();
    }

    #[test]
    fn names_from_elsewhere_map_to_safe_folder_names() {
        assert_eq!(folder_name("ACME\\joe"), "ACME.joe");
        assert_eq!(folder_name("joe@acme"), "joe@acme");
        assert_eq!(folder_name("a\\b/c:d*e?f\"g<h>i|j"), "a.b.c.d.e.f.g.h.i.j");
        assert_eq!(folder_name("ünï cødé"), "_n__c_d_");
        // Names whose old mapping was `..` or `.`: the data dir or the files root.
        for (name, folder) in [
            ("**", "_."),
            ("//", "_."),
            (".:", "_."),
            ("*", "_"),
            ("/", "_"),
            ("?", "_"),
            ("..", "_."),
            (".", "_"),
            ("", "_"),
        ] {
            assert_eq!(folder_name(name), folder, "{name:?}");
        }
        for name in [
            "**", "//", ".:", "*", "/", "?", "..", ".", "", "a/../..", "\u{0}", "\n",
        ] {
            let folder = folder_name(name);
            HomeFolder::parse(&folder).unwrap();
            let a = new_account(name, Role::User, None, None, 0);
            assert_eq!(home_folder(&a, None).unwrap().as_str(), folder);
        }
    }

    #[test]
    fn an_account_shut_out_from_every_address_is_recognised() {
        let nets = |t: &str| parse_nets(t).unwrap();
        let mut a = new_account("owner", Role::SystemAdmin, None, None, 0);
        let mut g = new_group("owners");
        assert!(admits_some_address(&a, Some(&g)));
        a.ip_deny = nets("0.0.0.0/0");
        assert!(admits_some_address(&a, None), "IPv6 is still open");
        a.ip_deny = nets("0.0.0.0/0,::/0");
        assert!(!admits_some_address(&a, None));
        a.ip_deny = nets("0.0.0.0/1,128.0.0.0/1,::/1,8000::/1");
        assert!(!admits_some_address(&a, None), "halves add up");
        a.ip_deny = nets("0.0.0.0/1,::/0");
        assert!(admits_some_address(&a, None), "128.0.0.0/1 is open");
        // An allow list that the deny list covers leaves nothing.
        a.ip_deny.clear();
        g.ip_allow = nets("10.0.0.0/8");
        g.ip_deny = nets("10.0.0.0/9,10.128.0.0/9");
        assert!(!admits_some_address(&a, Some(&g)));
        g.ip_deny = nets("10.0.0.0/9");
        assert!(admits_some_address(&a, Some(&g)));
        // The account's own allow list replaces the group's.
        g.ip_deny = nets("10.0.0.0/8");
        assert!(!admits_some_address(&a, Some(&g)));
        a.ip_allow = nets("192.0.2.1/32");
        assert!(admits_some_address(&a, Some(&g)));
        // IPv6 entries never match IPv4 clients (they are compared as IPv4).
        a.ip_allow = nets("::ffff:0.0.0.0/96");
        assert!(!admits_some_address(&a, None));
        a.ip_allow = nets("::/0");
        a.ip_deny = nets("::/1,8000::/1");
        assert!(!admits_some_address(&a, None));
        a.ip_deny = nets("255.255.255.255/32,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
        assert!(admits_some_address(&a, None));
        a.ip_allow = nets("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
        assert!(!admits_some_address(&a, None));
    }

    #[test]
    fn homes() {
        for ok in ["alice", "homes/${USER}", "a/b/c", "team/.x"] {
            validate_home(ok).unwrap();
        }
        for bad in [
            "", "/etc", "../x", "a/../b", "a//b", "./a", "a\\b", "a/.", "nul\0", "..", ".", "a/",
            "x\u{7f}",
        ] {
            assert!(validate_home(bad).is_err(), "{bad:?}");
        }
        assert!(validate_home(&"x".repeat(256)).is_err());
        let mut a = new_account("dom\\bob", Role::User, None, None, 0);
        assert_eq!(home_folder(&a, None).unwrap().as_str(), "dom.bob");
        let mut g = new_group("staff");
        g.home_template = "staff/${USER}".into();
        assert_eq!(home_folder(&a, Some(&g)).unwrap().as_str(), "staff/dom.bob");
        let home = home_folder(&a, Some(&g)).unwrap();
        let parts: Vec<&str> = home.parts().collect();
        assert_eq!(parts, ["staff", "dom.bob"]);
        a.home = Some("elsewhere".into());
        assert_eq!(home_folder(&a, Some(&g)).unwrap().as_str(), "elsewhere");
        // Values that bypassed validation (an old store) are checked after
        // substitution.
        a.home = Some("../..".into());
        assert!(home_folder(&a, Some(&g)).is_err());
        a.home = None;
        g.home_template = "${USER}/..".into();
        assert!(home_folder(&a, Some(&g)).is_err());
        g.home_template = "/${USER}".into();
        assert!(home_folder(&a, Some(&g)).is_err());
    }

    #[test]
    fn ip_filters() {
        let mut a = new_account("a", Role::User, None, None, 0);
        let mut g = new_group("g");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(address_allowed(&a, Some(&g), ip("10.1.2.3")));
        g.ip_allow = parse_nets("10.0.0.0/8").unwrap();
        assert!(address_allowed(&a, Some(&g), ip("10.1.2.3")));
        assert!(!address_allowed(&a, Some(&g), ip("192.168.1.1")));
        assert!(
            address_allowed(&a, Some(&g), ip("::ffff:10.9.9.9")),
            "v4-mapped v6"
        );
        a.ip_deny = parse_nets("10.1.0.0/16").unwrap();
        assert!(!address_allowed(&a, Some(&g), ip("10.1.2.3")));
        a.ip_allow = parse_nets("192.168.1.1").unwrap();
        assert!(
            address_allowed(&a, Some(&g), ip("192.168.1.1")),
            "account list overrides group's"
        );
        assert!(parse_nets("10.0.0.0/33").is_err());
        assert!(parse_nets("banana").is_err());
        assert!(parse_nets("none").unwrap().is_empty());
    }

    #[test]
    fn public_keys() {
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@laptop";
        let k = parse_public_key(line, 7).unwrap();
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert_eq!(k.comment, "bob@laptop");
        assert!(k.fingerprint.starts_with("SHA256:"));
        assert_eq!(k.openssh(), line);
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
            "ssh-ed25519 not-base64!",
            "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "ssh-ed25519 AAAA",
        ] {
            assert!(parse_public_key(bad, 0).is_err(), "{bad:?}");
        }
    }
}
