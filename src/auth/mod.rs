//! The authentication core: accounts, credentials, policy and the login flow.
//!
//! Front ends (SSH, HTTPS, console, CLI) never decide anything about access:
//! they hand what the wire carried to [`flow::Login`] and act on the [`flow::Step`]
//! it answers, and they change accounts through the methods of [`Auth`], which
//! check who may do what ([`Actor`]), validate the input, and write the change
//! together with its audit event in one store transaction.
//!
//! Secrets at rest: passwords as argon2id hashes; recovery codes and access
//! tokens as HMAC-SHA256 under a key derived from the sealed data key (so the
//! store alone cannot be brute-forced offline); TOTP seeds encrypted with the
//! data key, bound to their account and enrolment.

mod access;
pub mod accounts;
pub mod claim;
pub mod console;
pub mod flow;
mod groups;
pub mod live;
mod lockout;
pub mod mfa;
mod names;
pub mod password;
pub mod policy;
mod rename;
pub mod tokens;
pub mod totp;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::audit::{self, Entry, Event};
use crate::clock::{Clock, Timestamp};
use crate::seal::{DataKey, SealError};
use crate::store::{META, Read, Store, StoreError, Table, WriteTx};

pub use groups::GroupChange;
pub use policy::Policy;

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The owner: everything, updates, policy.
    SystemAdmin,
    /// Manages accounts.
    Admin,
    /// Files only.
    User,
}

impl Role {
    /// All roles.
    pub const ALL: [Role; 3] = [Role::SystemAdmin, Role::Admin, Role::User];

    /// Whether this role manages accounts.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::SystemAdmin | Role::Admin)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::SystemAdmin => "system_admin",
            Role::Admin => "admin",
            Role::User => "user",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "system_admin" => Ok(Role::SystemAdmin),
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            _ => Err(format!("{s:?} is not a role: system_admin, admin or user")),
        }
    }
}

/// A protocol a login arrives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// SSH: SFTP and SCP.
    Ssh,
    /// HTTPS: web UI and REST API.
    Https,
    /// FTP over TLS.
    Ftps,
}

impl Protocol {
    /// All protocols.
    pub const ALL: [Protocol; 3] = [Protocol::Ssh, Protocol::Https, Protocol::Ftps];

    /// Whether a user can enrol a second factor during login on this protocol.
    pub fn can_enrol(self) -> bool {
        self == Protocol::Https
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ssh => "ssh",
            Protocol::Https => "https",
            Protocol::Ftps => "ftps",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ssh" | "sftp" | "scp" => Ok(Protocol::Ssh),
            "https" | "http" | "web" | "api" => Ok(Protocol::Https),
            "ftps" | "ftp" => Ok(Protocol::Ftps),
            _ => Err(format!("{s:?} is not a protocol: ssh, https or ftps")),
        }
    }
}

/// How the wire carries the first factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// SSH `password`: one secret, no way to ask a code afterwards.
    Password,
    /// SSH `keyboard-interactive`: prompts, so a code can follow.
    KeyboardInteractive,
    /// SSH `publickey` (a code may follow through partial success).
    PublicKey,
    /// A web form: a code page can follow.
    Form,
    /// The REST API: the code travels in the same request or the next.
    Api,
}

impl Method {
    /// Whether a code can be asked after this method.
    pub fn can_carry_code(self) -> bool {
        self != Method::Password
    }

    /// Name used in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::KeyboardInteractive => "keyboard-interactive",
            Method::PublicKey => "publickey",
            Method::Form => "form",
            Method::Api => "api",
        }
    }
}

/// An account's profile (no credentials; those live in their own tables).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// User name, as typed at login (case-sensitive).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Group whose settings apply, if any.
    #[serde(default)]
    pub group: Option<String>,
    /// A disabled account cannot log in.
    #[serde(default)]
    pub disabled: bool,
    /// Home folder relative to the files root; `None`: from the group's template.
    #[serde(default)]
    pub home: Option<String>,
    /// Source networks allowed (empty: the group decides, else any).
    #[serde(default)]
    pub ip_allow: Vec<IpNet>,
    /// Source networks refused (in addition to the group's).
    #[serde(default)]
    pub ip_deny: Vec<IpNet>,
    /// Files may be read but not written.
    #[serde(default)]
    pub read_only: bool,
    /// Files may not be deleted or renamed away.
    #[serde(default)]
    pub no_delete: bool,
    /// May change their own password; `None`: the group decides (default yes).
    #[serde(default)]
    pub may_change_password: Option<bool>,
    /// Exempt from a role's MFA requirement.
    #[serde(default)]
    pub mfa_exempt: bool,
    /// Chose "don't ask again" for optional enrolment.
    #[serde(default)]
    pub mfa_skip: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Settings shared by the members of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Name.
    pub name: String,
    /// When false, no member can log in.
    pub enabled: bool,
    /// Home folder template relative to the files root, with `${USER}`.
    pub home_template: String,
    /// Members may change their own password.
    pub may_change_password: bool,
    /// Source networks allowed (empty: any).
    #[serde(default)]
    pub ip_allow: Vec<IpNet>,
    /// Source networks refused.
    #[serde(default)]
    pub ip_deny: Vec<IpNet>,
    /// Members' files are read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Members may not delete.
    #[serde(default)]
    pub no_delete: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Default home folder template.
pub const DEFAULT_HOME_TEMPLATE: &str = "${USER}";

/// File permissions granted to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// May create, write and rename files.
    pub write: bool,
    /// May delete files and folders.
    pub delete: bool,
}

/// A session's permissions as the file layer enforces them.
impl From<Permissions> for crate::files::Access {
    fn from(p: Permissions) -> Self {
        crate::files::Access {
            write: p.write,
            delete: p.delete,
        }
    }
}

/// A stored password and the hashes of earlier ones.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PasswordRecord {
    pub hash: String,
    pub changed_at: Timestamp,
    #[serde(default)]
    pub history: Vec<String>,
}

/// An SSH public key of an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// Algorithm, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The key blob (SSH wire encoding), base64 as in authorized_keys.
    pub blob: String,
    /// Comment.
    pub comment: String,
    /// `SHA256:...` fingerprint as OpenSSH prints it.
    pub fingerprint: String,
    /// When it was added.
    pub added_at: Timestamp,
}

impl PublicKey {
    /// The key as an authorized_keys line.
    pub fn openssh(&self) -> String {
        if self.comment.is_empty() {
            format!("{} {}", self.algorithm, self.blob)
        } else {
            format!("{} {} {}", self.algorithm, self.blob, self.comment)
        }
    }
}

pub(crate) const ACCOUNTS: Table<Account> = Table::new("accounts");
pub(crate) const GROUPS: Table<Group> = Table::new("groups");
pub(crate) const PASSWORDS: Table<PasswordRecord> = Table::new("passwords");
pub(crate) const PUBLIC_KEYS: Table<Vec<PublicKey>> = Table::new("public_keys");
pub(crate) const TOTP: Table<mfa::TotpRecord> = Table::new("totp");
pub(crate) const RECOVERY: Table<mfa::RecoveryRecord> = Table::new("recovery_codes");
pub(crate) const TOKENS: Table<tokens::TokenRecord> = Table::new("tokens");
pub(crate) const FAILURES: Table<lockout::Failures> = Table::new("login_failures");
pub(crate) const SETTINGS: Table<Policy> = Table::new("settings");

/// The core's schema: the history of its tables, which the store runs on
/// open ([`crate::store::Schema`]). Every opener of the store passes it.
pub static SCHEMA: crate::store::Schema = crate::store::Schema {
    steps: &[crate::store::Migration {
        to: 1,
        run: create_tables_v1,
    }],
};

/// Schema version 1: every table of the first release and the default policy.
pub(crate) fn create_tables_v1(tx: &mut WriteTx) -> Result<(), StoreError> {
    tx.create_table(META)?;
    tx.create_table(ACCOUNTS)?;
    tx.create_table(GROUPS)?;
    tx.create_table(PASSWORDS)?;
    tx.create_table(PUBLIC_KEYS)?;
    tx.create_table(TOTP)?;
    tx.create_table(RECOVERY)?;
    tx.create_table(TOKENS)?;
    tx.create_table(FAILURES)?;
    tx.create_table(SETTINGS)?;
    tx.raw().open_table(crate::store::AUDIT)?;
    if tx.get(SETTINGS, "policy")?.is_none() {
        tx.put(SETTINGS, "policy", &Policy::default())?;
    }
    Ok(())
}

/// Errors of the core, by audience: the message is fit for the person at the
/// keyboard; it never contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No such account, group, key or token.
    #[error("there is no {what} named {name:?}")]
    NotFound {
        /// `account`, `group`, `key`, `token`.
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// The name is taken.
    #[error("{what} {name:?} already exists")]
    Exists {
        /// `account`, `group`, `key`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Input that does not fit; the message says what is accepted.
    #[error("{0}")]
    Invalid(String),
    /// The password policy refused a password.
    #[error("password refused: {0}")]
    PasswordRefused(String),
    /// The actor may not do this.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// A policy setting was refused.
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    /// A code was refused.
    #[error(transparent)]
    Code(#[from] totp::CodeError),
    /// The box has an owner already.
    #[error("this box is already claimed")]
    AlreadyClaimed,
    /// Too busy to do this now (every password-hashing slot is taken);
    /// the same request may succeed in a moment.
    #[error("{0}")]
    Busy(String),
    /// A fault of the box, not of the request: no randomness, a damaged
    /// record, a task that died. Front ends show a generic message and log
    /// this one; it never contains a secret.
    #[error("internal error: {0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data key failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] password::HashError),
    /// The caller was authenticated by an access token, which may not
    /// manage credentials (tokens, TOTP, recovery codes, password, public
    /// keys, sessions): otherwise a narrow or short-lived token could mint
    /// a wider, permanent credential.
    #[error(
        "an access token cannot manage credentials (tokens, two-factor sign-in, recovery codes, password, keys, sessions); sign in with your password to do this"
    )]
    TokenCannotManageCredentials,
    /// Too many wrong passwords or codes from this address: nothing is
    /// checked until the lock lifts (the same lock as logins).
    #[error("{}", locked_message(*retry_after))]
    Locked {
        /// When the lock lifts.
        until: crate::clock::Timestamp,
        /// Seconds from now.
        retry_after: u64,
    },
}

/// Runs a core call (hashing, store reads and writes) on the blocking
/// pool, off the async threads: the one way every async front end calls
/// the core. A call that dies is an [`AuthError::Internal`].
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, AuthError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "a core call's task failed");
            Err(AuthError::Internal("the request's task failed".into()))
        }
    }
}

/// "too many failed attempts; try again in 4 minutes"
fn locked_message(retry_after: u64) -> String {
    let minutes = retry_after.div_ceil(60);
    if minutes <= 1 {
        "too many failed attempts; try again in a minute".into()
    } else {
        format!("too many failed attempts; try again in {minutes} minutes")
    }
}

/// Who asks for a change; the core decides whether they may.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The account acting, or `None` for the local operator (CLI, console),
    /// who holds every right on the box.
    pub account: Option<(String, Role)>,
    /// `cli`, `console`, `ssh`, `https`.
    pub protocol: &'static str,
    /// Source address, when remote.
    pub address: Option<IpAddr>,
    /// The id of the access token the caller was authenticated by (as the
    /// bearer, or as the password of the login that made the session).
    /// Such a caller may not manage credentials
    /// ([`Actor::may_manage_credentials`]).
    pub access_token: Option<String>,
}

impl Actor {
    /// The local operator at the command line.
    pub fn cli() -> Self {
        Self {
            account: None,
            protocol: "cli",
            address: None,
            access_token: None,
        }
    }

    /// A logged-in session acting for itself.
    pub fn session(session: &flow::Session) -> Self {
        Self {
            account: Some((session.account.clone(), session.role)),
            protocol: session.protocol.as_str(),
            address: Some(session.address),
            access_token: session.token.clone(),
        }
    }

    /// Whether this caller may manage credentials: tokens, TOTP, recovery
    /// codes, passwords, public keys and sessions. A caller authenticated
    /// by an access token may not ([`AuthError::TokenCannotManageCredentials`]).
    /// Every credential method of [`Auth`] checks it; front ends that keep
    /// credentials of their own (web sessions) ask it too.
    pub fn may_manage_credentials(&self) -> Result<(), AuthError> {
        match self.access_token {
            Some(_) => Err(AuthError::TokenCannotManageCredentials),
            None => Ok(()),
        }
    }

    /// Whether this caller may administer accounts and read the box's
    /// administrative state (accounts, groups, policy, audit log): an
    /// admin, the system administrator or the local operator. The core
    /// methods that need it check it themselves; front ends may ask it
    /// first to refuse before they parse a body or draw a page.
    pub fn may_administer_accounts(&self) -> Result<(), AuthError> {
        self.require_admin()
    }

    /// Whether this caller may administer the box itself (policy changes,
    /// system facts, the HTTPS certificate): the system administrator or
    /// the local operator. Like [`Actor::may_administer_accounts`], the
    /// core methods check it; front ends may ask it first.
    pub fn may_administer_box(&self) -> Result<(), AuthError> {
        self.require_owner()
    }

    fn name(&self) -> &str {
        self.account
            .as_ref()
            .map_or("local operator", |(n, _)| n.as_str())
    }

    fn role(&self) -> Option<Role> {
        self.account.as_ref().map(|(_, r)| *r)
    }

    fn is_self(&self, account: &str) -> bool {
        self.account.as_ref().is_some_and(|(n, _)| n == account)
    }

    /// Local operator or an admin.
    fn require_admin(&self) -> Result<(), AuthError> {
        match self.role() {
            None | Some(Role::Admin | Role::SystemAdmin) => Ok(()),
            Some(Role::User) => Err(AuthError::Forbidden("this needs an administrator".into())),
        }
    }

    /// Local operator or the system administrator.
    fn require_owner(&self) -> Result<(), AuthError> {
        match self.role() {
            None | Some(Role::SystemAdmin) => Ok(()),
            _ => Err(AuthError::Forbidden(
                "this needs the system administrator".into(),
            )),
        }
    }

    /// The account itself, or an admin (who may not touch a system_admin
    /// unless they are one).
    fn require_self_or_admin_over(&self, target: &Account) -> Result<(), AuthError> {
        if self.is_self(&target.name) {
            return Ok(());
        }
        self.require_admin_over(target)
    }

    /// Before an account is looked up: the caller is that account or an
    /// admin. Anyone else is refused alike whether the name exists or not,
    /// so the answer does not tell.
    fn require_self_or_admin(&self, name: &str) -> Result<(), AuthError> {
        if self.is_self(name) {
            return Ok(());
        }
        self.require_admin()
    }

    fn require_admin_over(&self, target: &Account) -> Result<(), AuthError> {
        self.require_admin()?;
        if target.role == Role::SystemAdmin {
            self.require_owner()?;
        }
        Ok(())
    }

    fn entry<'a>(&'a self, account: Option<&'a str>, detail: String) -> Entry<'a> {
        Entry {
            account,
            address: self.address,
            protocol: Some(self.protocol),
            method: None,
            detail: if self.account.is_some() && !account.is_some_and(|a| self.is_self(a)) {
                format!("{detail} (by {})", self.name())
            } else {
                detail
            },
        }
    }
}

/// Tuning of the core that comes from the server's configuration.
#[derive(Clone, Debug)]
pub struct Options {
    /// Root under which home folders are made.
    pub files_root: PathBuf,
    /// Most password hashes computed at once (bounds argon2's memory).
    pub max_concurrent_hashes: usize,
    /// Longest wait for a hashing slot before a login is refused as busy.
    pub hash_wait: Duration,
    /// Seconds between the first factor and the code before the login expires.
    pub code_timeout: u64,
}

impl Options {
    /// Defaults for a data dir: files under `<data-dir>/files`.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Self {
            files_root: data_dir.join("files"),
            max_concurrent_hashes: 4,
            hash_wait: Duration::from_secs(10),
            code_timeout: 300,
        }
    }
}

/// The core. One per data dir; shared by every front end (it is `Sync`).
pub struct Auth {
    store: Store,
    key: DataKey,
    clock: Arc<dyn Clock>,
    options: Options,
    hashing: password::Hashing,
    /// The hash an unknown account's password is checked against, and the
    /// cost it was made with: made again when the policy's cost changes,
    /// so an unknown name keeps costing what a real account's check costs.
    dummy_hash: Mutex<Option<(password::HashCost, String)>>,
    /// Bumped when an account's credentials, role or state change, so that
    /// sessions made before the change end (see [`Auth::credential_epoch`]).
    epochs: Mutex<std::collections::HashMap<String, u64>>,
    /// The front ends' live sessions, ended when credentials change.
    holders: live::Holders,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Subkey labels; changing one voids every stored hash made with it.
const RECOVERY_KEY_LABEL: &[u8] = b"coffer/recovery-codes/v1";
const TOKEN_KEY_LABEL: &[u8] = b"coffer/access-tokens/v1";

impl Auth {
    /// Builds the core on an open store and its unsealed data key.
    pub fn new(store: Store, key: DataKey, clock: Arc<dyn Clock>, options: Options) -> Self {
        let hashing = password::Hashing::new(options.max_concurrent_hashes);
        Self {
            store,
            key,
            clock,
            options,
            hashing,
            dummy_hash: Mutex::new(None),
            epochs: Mutex::new(std::collections::HashMap::new()),
            holders: live::Holders::default(),
        }
    }

    /// A number that changes whenever the account's password, second
    /// factor, role, group or enabled state changes. A session remembers it
    /// when granted and ends when it differs.
    pub fn credential_epoch(&self, account: &str) -> u64 {
        let epochs = self.epochs.lock().unwrap_or_else(|p| p.into_inner());
        epochs.get(account).copied().unwrap_or(0)
    }

    /// Ends every session of `account`: moves its credential epoch (so a
    /// session checked per request fails its next check), then has every
    /// front end end the account's live sessions at once and records how
    /// many ended, saying `why` ([`Auth::end_sessions`]). Returns the count.
    /// Called after the change is written.
    pub fn credentials_changed(&self, account: &str, why: &str) -> usize {
        {
            let mut epochs = self.epochs.lock().unwrap_or_else(|p| p.into_inner());
            let n = epochs.entry(account.to_string()).or_insert(0);
            *n = n.wrapping_add(1);
        }
        self.end_sessions(
            &live::Revocation {
                account,
                token: None,
            },
            why,
        )
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The options the core was built with.
    pub fn options(&self) -> &Options {
        &self.options
    }

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
    fn policy(&self) -> Result<Policy, AuthError> {
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

    /// Records an audit event in its own transaction.
    pub(crate) fn audit(&self, event: Event, entry: Entry<'_>) -> Result<(), AuthError> {
        let now = self.now();
        self.store.write(|tx| {
            let retain = retain_of(tx)?;
            audit::append(tx, now, event, entry, retain)?;
            Ok::<_, AuthError>(())
        })
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

    /// Records that the HTTPS certificate was replaced.
    pub fn certificate_changed(&self, actor: &Actor, fingerprint: &str) {
        if let Err(e) = self.audit(
            Event::CertificateChanged,
            actor.entry(None, format!("SHA-256 {fingerprint}")),
        ) {
            tracing::error!(error = %e, "could not write an audit event");
        }
    }

    /// Records that a web or API session ended (signed out, expired,
    /// revoked), with why.
    pub fn session_ended(&self, session: &flow::Session, why: &str) {
        let entry = Entry {
            account: Some(&session.account),
            address: Some(session.address),
            protocol: Some(session.protocol.as_str()),
            method: Some(session.method.as_str()),
            detail: why.to_string(),
        };
        if let Err(e) = self.audit(Event::SessionEnded, entry) {
            tracing::error!(error = %e, "could not write an audit event");
        }
    }

    /// Audit events, newest first: administrators only
    /// ([`Actor::may_administer_accounts`]).
    pub fn audit_log(
        &self,
        actor: &Actor,
        filter: &audit::Filter,
    ) -> Result<Vec<audit::Record>, AuthError> {
        actor.may_administer_accounts()?;
        Ok(self.store.read(|r| audit::query(r, filter))?)
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

    fn hash_password(&self, password: &str) -> Result<String, AuthError> {
        self.hash_password_with(password, self.policy()?.password.hash_cost)
    }

    fn hash_password_with(
        &self,
        password: &str,
        cost: password::HashCost,
    ) -> Result<String, AuthError> {
        Ok(self.lease()?.hash(password, cost)?)
    }

    /// A lease on the process's password hashing, or the "busy" refusal
    /// when none came free within the configured wait.
    fn lease(&self) -> Result<password::Lease<'_>, AuthError> {
        self.hashing.lease(self.options.hash_wait).ok_or_else(|| {
            AuthError::Busy("the server is busy hashing passwords; try again".into())
        })
    }

    /// Admission for a login step that may hash a password, waiting at
    /// most the configured time; `None` means "busy". Front ends take it
    /// before handing the step to a blocking thread and keep it until the
    /// step is done.
    pub async fn admit_hashing(&self) -> Option<password::Admission> {
        self.hashing.admission(self.options.hash_wait).await
    }

    /// The password hashing of this core (bound and load, for status).
    pub fn hashing(&self) -> &password::Hashing {
        &self.hashing
    }

    /// Verifies under the hashing limit. `None` when no slot came free in time.
    fn verify_password(&self, password: &str, phc: Option<&str>) -> Option<bool> {
        let mut lease = self.hashing.lease(self.options.hash_wait)?;
        match phc {
            Some(phc) => Some(lease.verify(password, phc)),
            None => {
                // Unknown account: spend the same time as a real check.
                let cost = self
                    .policy()
                    .map(|p| p.password.hash_cost)
                    .unwrap_or_default();
                let dummy = {
                    let mut cached = self.dummy_hash.lock().unwrap_or_else(|p| p.into_inner());
                    match cached.as_ref() {
                        Some((made_with, hash)) if *made_with == cost => hash.clone(),
                        _ => {
                            let hash = lease
                                .hash("coffer-dummy-password", cost)
                                .unwrap_or_default();
                            *cached = Some((cost, hash.clone()));
                            hash
                        }
                    }
                };
                let _ = lease.verify(password, &dummy);
                Some(false)
            }
        }
    }

    fn recovery_key(&self) -> zeroize::Zeroizing<[u8; 32]> {
        self.key.subkey(RECOVERY_KEY_LABEL)
    }

    fn token_key(&self) -> zeroize::Zeroizing<[u8; 32]> {
        self.key.subkey(TOKEN_KEY_LABEL)
    }
}

/// The account that claimed the box, read from a store without a data key.
pub fn owner_of(store: &Store) -> Result<Option<String>, StoreError> {
    Ok(store
        .read(|r| r.get(META, "claimed_by"))?
        .and_then(|v| v.as_str().map(str::to_string)))
}

/// The audit retention setting, read inside a transaction.
pub(crate) fn retain_of(r: &impl Read) -> Result<u64, StoreError> {
    Ok(r.get(SETTINGS, "policy")?
        .map_or(Policy::default().audit_retain, |p| p.audit_retain))
}

/// HMAC-SHA256 of `data` under `key`, hex-encoded.
pub(crate) fn keyed_hash(key: &[u8; 32], data: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    match <Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
        }
        // HMAC accepts keys of any length; this arm cannot be reached.
        Err(_) => String::new(),
    }
}

/// Constant-time equality of two strings.
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| AuthError::Internal(format!("no randomness available: {e}")))?;
    Ok(b)
}

/// A core for unit tests: a new store in `dir`, a fresh data key, the
/// given clock; `owner` claims it with `password` at a cheap hashing cost
/// when given.
#[cfg(test)]
pub(crate) fn test_core(
    dir: &Path,
    clock: crate::clock::ManualClock,
    owner: Option<(&str, &str)>,
) -> Auth {
    let (store, key) = (
        Store::open(dir, crate::store::OpenMode::Create, &crate::auth::SCHEMA).unwrap(),
        DataKey::generate().unwrap().0,
    );
    let auth = Auth::new(store, key, Arc::new(clock), Options::for_data_dir(dir));
    if let Some((name, password)) = owner {
        auth.claim(
            &Actor::cli(),
            name,
            password,
            Some("m=64,t=1,p=1".parse().unwrap()),
        )
        .unwrap();
    }
    auth
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn core() -> (Auth, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let auth = test_core(dir.path(), ManualClock::new(1_795_392_000), None);
        (auth, dir)
    }

    fn remote(role: Role) -> Actor {
        Actor {
            account: Some((format!("{role}-account"), role)),
            protocol: "https",
            address: None,
            access_token: None,
        }
    }

    #[test]
    fn administrative_reads_are_decided_by_the_core() {
        let (auth, _dir) = core();
        let filter = audit::Filter::default();
        let user = remote(Role::User);
        let admin = remote(Role::Admin);
        let owner = remote(Role::SystemAdmin);
        let user_token = Actor {
            access_token: Some("t0".into()),
            ..user.clone()
        };
        for actor in [&user, &user_token] {
            assert!(matches!(
                auth.audit_log(actor, &filter),
                Err(AuthError::Forbidden(_))
            ));
            assert!(matches!(
                auth.policy_for(actor),
                Err(AuthError::Forbidden(_))
            ));
            assert!(matches!(
                auth.groups_for(actor),
                Err(AuthError::Forbidden(_))
            ));
        }
        for actor in [&admin, &owner, &Actor::cli()] {
            auth.audit_log(actor, &filter).unwrap();
            auth.policy_for(actor).unwrap();
            auth.groups_for(actor).unwrap();
        }
        fn refused<T>(answer: Result<T, AuthError>) -> bool {
            matches!(answer, Err(AuthError::Forbidden(_)))
        }
        for actor in [&user, &admin] {
            assert!(refused(auth.counts(actor)));
            assert!(refused(auth.owner(actor)));
            assert!(refused(auth.claim_code(actor)));
            assert!(refused(auth.console_pin_is_set(actor)));
            assert!(refused(actor.may_administer_box()));
        }
        for actor in [&owner, &Actor::cli()] {
            auth.counts(actor).unwrap();
            auth.owner(actor).unwrap();
            auth.claim_code(actor).unwrap();
            auth.console_pin_is_set(actor).unwrap();
            actor.may_administer_box().unwrap();
        }
        // What a user's own security page shows of the policy is read for
        // the caller's own account, never another's; the local operator
        // has no account and gets none.
        let policy = policy::Policy::default();
        auth.create_account(
            &Actor::cli(),
            accounts::NewAccount {
                name: "plain".into(),
                role: Role::User,
                group: None,
                password: None,
                home: None,
                public_keys: vec![],
            },
        )
        .unwrap();
        let plain = Actor {
            account: Some(("plain".into(), Role::User)),
            ..user.clone()
        };
        let own = auth.own_sign_in(&plain).unwrap();
        assert!(own.may_change_password && !own.mfa_required);
        assert_eq!(own.password_min_length, policy.password.min_length);
        assert!(refused(auth.own_sign_in(&Actor::cli())));
        // A token session is refused credentials, not administration.
        let admin_token = Actor {
            access_token: Some("t1".into()),
            ..admin
        };
        admin_token.may_administer_accounts().unwrap();
        auth.audit_log(&admin_token, &filter).unwrap();
    }
}
