//! The login flow: one state machine for every protocol.
//!
//! A front end starts a [`Login`] with what the connection knows (user name,
//! source address, protocol), feeds it the first factor the wire carried, and
//! acts on the [`Step`] that comes back. Each state is its own type and each
//! transition consumes it, so a login waiting for a code cannot be asked to
//! grant a session, and a used state cannot be replayed.
//!
//! The flow owns every rule: lockout (checked before and counted after each
//! factor), IP filters, disabled accounts and groups, token scope and expiry,
//! the MFA decision, replay protection, audit events. Unknown accounts cost
//! the same hashing time as known ones and get the same answer.

use std::net::IpAddr;

use serde::Serialize;

use super::accounts::{self, HomeFolder, address_allowed, load_group};
use super::lockout;
use super::mfa::{EnrolmentStart, FactorError, RecoveryCodes, SecondFactor};
use super::policy::{CodeDecision, FirstFactor, LockoutPolicy, decide};
use super::tokens::{self, TokenRefusal};
use super::totp::CodeError;
use super::{
    ACCOUNTS, Account, Actor, Auth, AuthError, Group, Method, PASSWORDS, Permissions, Protocol,
    Role, TOKENS, retain_of,
};
use crate::audit::{self, Entry, Event};
use crate::clock::Timestamp;
use crate::files::{HomeError, Root};
use crate::store::{Read, StoreError, WriteTx};

/// The prompt for the second factor (the SSH keyboard-interactive contract).
pub const CODE_PROMPT: &str = "Authentication code:";
/// The prompt for the password in keyboard-interactive.
pub const PASSWORD_PROMPT: &str = "Password:";

/// What the connection knows about a login.
#[derive(Clone, Debug)]
struct Context {
    user: String,
    address: IpAddr,
    protocol: Protocol,
    method: Method,
    /// The account's credential epoch when the login began.
    epoch: u64,
}

impl Context {
    fn entry<'a>(&'a self, method: &'a str, detail: impl Into<String>) -> Entry<'a> {
        Entry {
            account: Some(&self.user),
            address: Some(self.address),
            protocol: Some(self.protocol.as_str()),
            method: Some(method),
            detail: detail.into(),
        }
    }
}

/// A login waiting for its first factor.
#[derive(Debug)]
pub struct Login {
    user: String,
    address: IpAddr,
    protocol: Protocol,
}

/// What the front end must do next.
#[derive(Debug)]
#[must_use]
pub enum Step {
    /// Ask for a code (TOTP or recovery code) with [`AwaitCode::prompt`].
    NeedCode(AwaitCode),
    /// The account must enrol TOTP before it may enter (web only).
    MustEnrol(AwaitEnrolment),
    /// The login is complete.
    Granted(Session),
    /// Refused; say [`Denied::message`].
    Denied(Denied),
    /// Too many failures; nothing is checked until the lock lifts.
    Locked(Locked),
}

/// A refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// Why (for tests and logs; the client sees only the message).
    pub reason: DenyReason,
    /// What to tell the client. Never reveals whether an account exists.
    pub message: String,
}

/// Why a login was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// Unknown account, wrong password, unknown key.
    InvalidCredentials,
    /// The account or its group is disabled.
    Disabled,
    /// The source address is not allowed.
    AddressBlocked,
    /// The token is unknown, expired or out of scope.
    TokenRefused,
    /// The code is wrong.
    WrongCode,
    /// The code was used before.
    CodeReplayed,
    /// The code is not a code.
    MalformedCode,
    /// A code is needed but the method cannot carry one.
    CodeUnsupported,
    /// The account must enrol MFA, which this protocol cannot do.
    EnrolmentRequired,
    /// Too long between the first factor and the code.
    Expired,
    /// The account's name is outside the account-name alphabet (a store
    /// from before the rule): an administrator must rename it.
    NameRefused,
    /// The account's home folder is not safe to open (an invalid path, or a
    /// symbolic link on it).
    HomeRefused,
    /// No hashing slot came free in time.
    Busy,
    /// The store or data key failed.
    Internal,
}

impl DenyReason {
    /// The refusal for this reason, with its fixed message.
    pub fn denied(self) -> Denied {
        let message = match self {
            DenyReason::InvalidCredentials
            | DenyReason::Disabled
            | DenyReason::AddressBlocked
            | DenyReason::TokenRefused => "Permission denied: wrong user name, password or token.".to_string(),
            DenyReason::WrongCode => "Invalid authentication code.".into(),
            DenyReason::CodeReplayed => CodeError::Replayed.to_string(),
            DenyReason::MalformedCode => "The code must be exactly 6 digits, or a recovery code such as abcd-efgh-ijkl-mnop.".into(),
            DenyReason::CodeUnsupported => "This account needs an authentication code, which the password method cannot carry: use keyboard-interactive authentication (for OpenSSH: -o PreferredAuthentications=keyboard-interactive).".into(),
            DenyReason::EnrolmentRequired => "This account must set up two-factor authentication in the web interface before it can log in here.".into(),
            DenyReason::Expired => "The login took too long; please start again.".into(),
            DenyReason::NameRefused => "This account's name is no longer allowed (user names may contain only letters, digits, '.', '-', '_' and '@'); an administrator must rename the account before it can log in.".into(),
            DenyReason::HomeRefused => "This account's home folder is refused (it is not a safe path or a symbolic link is on its path); the administrator can find the details in the audit log.".into(),
            DenyReason::Busy => "The server is busy; please try again shortly.".into(),
            DenyReason::Internal => "Login failed because of an internal error; the administrator can find it in the log.".into(),
        };
        Denied {
            reason: self,
            message,
        }
    }
}

/// A lock that refuses logins until it lifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locked {
    /// When the lock lifts.
    pub until: Timestamp,
    /// Seconds from now.
    pub retry_after: u64,
}

impl Locked {
    /// "Too many failed attempts; try again in 4 minutes."
    pub fn message(&self) -> String {
        let minutes = self.retry_after.div_ceil(60);
        if minutes <= 1 {
            "Too many failed attempts; try again in a minute.".into()
        } else {
            format!("Too many failed attempts; try again in {minutes} minutes.")
        }
    }
}

/// A granted login.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    /// Account name.
    pub account: String,
    /// Role.
    pub role: Role,
    /// Group.
    pub group: Option<String>,
    /// Home folder relative to the files root, checked (not yet created:
    /// the front end opens it with [`Auth::open_home`]).
    pub home: HomeFolder,
    /// File permissions.
    pub permissions: Permissions,
    /// Protocol.
    pub protocol: Protocol,
    /// Source address.
    pub address: IpAddr,
    /// How the first factor came.
    pub method: Method,
    /// The first factor was an access token (its id).
    pub token: Option<String>,
    /// The second factor, when one was given.
    pub second_factor: Option<SecondFactor>,
    /// Offer MFA enrolment ("set up now / skip / don't ask again").
    pub offer_enrolment: bool,
    /// When it was granted.
    pub granted_at: Timestamp,
    /// The account's credential epoch when the login began
    /// ([`Auth::credential_epoch`]): the session is over once it differs.
    #[serde(skip)]
    pub epoch: u64,
}

impl Session {
    /// The same session, continuing after a change of credentials its
    /// holder made (a new password, a new enrolment): it takes the current
    /// epoch. The front end issues it under a new value.
    pub fn renewed(&self, auth: &Auth) -> Session {
        Session {
            epoch: auth.credential_epoch(&self.account),
            ..self.clone()
        }
    }
}

/// A login whose first factor passed, waiting for a code.
#[derive(Debug)]
pub struct AwaitCode {
    ctx: Context,
    since: Timestamp,
}

/// A login whose first factor passed, that must enrol TOTP first.
#[derive(Debug)]
pub struct AwaitEnrolment {
    ctx: Context,
    role: Role,
    since: Timestamp,
}

/// The state of an account at the start of a login.
struct Snapshot {
    account: Option<Account>,
    group: Option<Group>,
    hash: Option<String>,
    locked: Option<Timestamp>,
    lockout: LockoutPolicy,
}

fn internal(err: impl std::fmt::Display) -> Step {
    tracing::error!(error = %err, "login failed on an internal error");
    Step::Denied(DenyReason::Internal.denied())
}

fn snapshot(
    auth: &Auth,
    user: &str,
    address: IpAddr,
    now: Timestamp,
) -> Result<Snapshot, AuthError> {
    let lockout = auth.policy()?.lockout;
    auth.store.read(|r| {
        let account = r.get(ACCOUNTS, user)?;
        let group = match &account {
            Some(a) => load_group(r, a)?,
            None => None,
        };
        Ok(Snapshot {
            hash: r.get(PASSWORDS, user)?.map(|p| p.hash),
            locked: lockout::locked_until(r, user, address, now)?,
            account,
            group,
            lockout,
        })
    })
}

/// The reason a known account may not log in from here, before any credential.
fn gate(account: &Account, group: Option<&Group>, address: IpAddr) -> Option<(Event, DenyReason)> {
    if account.disabled || group.is_some_and(|g| !g.enabled) {
        return Some((Event::LoginDisabled, DenyReason::Disabled));
    }
    if !address_allowed(account, group, address) {
        return Some((Event::AddressBlocked, DenyReason::AddressBlocked));
    }
    None
}

fn locked(until: Timestamp, now: Timestamp) -> Step {
    Step::Locked(Locked {
        until,
        retry_after: until.saturating_sub(now),
    })
}

/// Records a failure (and any lock it causes) with its audit events.
#[allow(clippy::too_many_arguments)] // the failure's context, spelled out at each call
fn fail(
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
    fn attempt(&self) -> Attempt<'_> {
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
pub(super) struct Attempt<'a> {
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
    pub(super) fn refuse_if_locked(
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
    pub(super) fn refuse_code_if_locked(
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
    pub(super) fn fail_code(
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
    pub(super) fn fail(
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
    pub(super) fn succeed(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        lockout::record_success(tx, self.account, self.address)
    }
}

fn audit_once(auth: &Auth, ctx: &Context, event: Event, method: &str, detail: &str) {
    if let Err(e) = auth.audit(event, ctx.entry(method, detail)) {
        tracing::error!(error = %e, "could not write an audit event");
    }
}

/// Whether an account whose credentials passed may have a session: its
/// name is in the account-name alphabet (a store from before the rule may
/// hold others), its home folder is a safe path after substitution, and no
/// symbolic link or non-folder sits on the part of it that exists. A
/// refusal is audited and answered with a message saying what is wrong.
fn admit(
    auth: &Auth,
    ctx: &Context,
    account: &Account,
    group: Option<&Group>,
    method: &str,
) -> Result<HomeFolder, Box<Step>> {
    if let Err(e) = accounts::validate_account_name(&account.name) {
        audit_once(
            auth,
            ctx,
            Event::LoginNameRefused,
            method,
            &format!("{e}; rename the account"),
        );
        return Err(Box::new(Step::Denied(DenyReason::NameRefused.denied())));
    }
    let refused = |detail: String| {
        audit_once(auth, ctx, Event::HomeRefused, method, &detail);
        Box::new(Step::Denied(DenyReason::HomeRefused.denied()))
    };
    let home = accounts::home_folder(account, group).map_err(|e| refused(e.to_string()))?;
    match crate::files::check_home(&auth.options.files_root, &home) {
        Err(e) if e.is_refusal() => Err(refused(e.to_string())),
        // A failing file system is reported when the session opens it.
        _ => Ok(home),
    }
}

impl Auth {
    /// Opens a session's home folder beneath the files root, creating it on
    /// first use, without following a symbolic link at any part
    /// ([`Root::open_home`]). A link or non-folder on the path is audited
    /// ([`Event::HomeRefused`]) and the home refused.
    pub fn open_home(&self, session: &Session) -> Result<Root, HomeError> {
        let opened = Root::open_home(
            &self.options.files_root,
            &session.home,
            &session.account,
            session.permissions.into(),
        );
        if let Err(e) = &opened
            && e.is_refusal()
        {
            let entry = Entry {
                account: Some(&session.account),
                address: Some(session.address),
                protocol: Some(session.protocol.as_str()),
                method: Some(session.method.as_str()),
                detail: e.to_string(),
            };
            if let Err(e) = self.audit(Event::HomeRefused, entry) {
                tracing::error!(error = %e, "could not write an audit event");
            }
        }
        opened
    }
}

/// Reads the account's state for a first factor; a locked pair or address
/// ends the attempt here (audited), before any credential is looked at.
fn open_attempt(auth: &Auth, ctx: &Context, now: Timestamp) -> Result<Snapshot, Box<Step>> {
    if !presentable(&ctx.user) {
        // No account has such a name: refused like a wrong password, before
        // anything is looked up or written (so a flood of huge or garbled
        // names neither grows the store nor flushes the audit log).
        tracing::debug!(
            address = %ctx.address,
            chars = ctx.user.chars().count(),
            "login refused: the name is too long or has a control character"
        );
        return Err(Box::new(Step::Denied(
            DenyReason::InvalidCredentials.denied(),
        )));
    }
    let snap = snapshot(auth, &ctx.user, ctx.address, now).map_err(|e| Box::new(internal(e)))?;
    if let Some(until) = snap.locked {
        let method = ctx.method.as_str();
        audit_once(
            auth,
            ctx,
            Event::LoginWhileLocked,
            method,
            "refused while locked",
        );
        return Err(Box::new(locked(until, now)));
    }
    Ok(snap)
}

/// The longest user name a login may present, in characters.
pub const MAX_LOGIN_NAME_CHARS: usize = crate::audit::MAX_NAME_CHARS;

/// Whether a presented user name could be an account's at all: at most
/// [`MAX_LOGIN_NAME_CHARS`] characters and no control character.
pub fn presentable(name: &str) -> bool {
    name.chars().count() <= MAX_LOGIN_NAME_CHARS && !name.chars().any(char::is_control)
}

impl Login {
    /// Starts a login.
    pub fn new(user: &str, address: IpAddr, protocol: Protocol) -> Self {
        Self {
            user: user.to_string(),
            address,
            protocol,
        }
    }

    /// The user name as presented.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The login's context; the epoch is read before anything else, so a
    /// change written from now on ends the session this login may make.
    fn context(&self, auth: &Auth, method: Method) -> Context {
        Context {
            user: self.user.clone(),
            address: self.address,
            protocol: self.protocol,
            method,
            epoch: auth.credential_epoch(&self.user),
        }
    }

    /// The first factor is a password, or an access token typed as one.
    /// `method` says how it came (and so whether a code can follow).
    pub fn password(self, auth: &Auth, method: Method, password: &str) -> Step {
        let ctx = self.context(auth, method);
        let now = auth.now();
        let snap = match open_attempt(auth, &ctx, now) {
            Ok(snap) => snap,
            Err(step) => return *step,
        };
        if tokens::split(password).is_some() {
            return token_login(auth, ctx, snap, password, now);
        }
        let gated = snap
            .account
            .as_ref()
            .and_then(|a| gate(a, snap.group.as_ref(), ctx.address));
        let hash = if gated.is_none() {
            snap.hash.as_deref()
        } else {
            None
        };
        let Some(ok) = auth.verify_password(password, hash) else {
            return Step::Denied(DenyReason::Busy.denied());
        };
        if let Some((event, reason)) = gated {
            audit_once(auth, &ctx, event, method.as_str(), "");
            return Step::Denied(reason.denied());
        }
        let Some(account) = snap.account.filter(|_| ok) else {
            let known = hash.is_some();
            let wrote = auth.store.write(|tx| {
                let detail = if known {
                    "wrong password"
                } else {
                    "unknown account or no password"
                };
                fail(
                    tx,
                    &ctx,
                    &snap.lockout,
                    now,
                    Event::LoginFailed,
                    method.as_str(),
                    detail,
                )
            });
            return match wrote {
                Ok(()) => Step::Denied(DenyReason::InvalidCredentials.denied()),
                Err(e) => internal(e),
            };
        };
        after_first_factor(
            auth,
            ctx,
            account,
            snap.group,
            FirstFactor::Password,
            None,
            now,
        )
    }

    /// The first factor is an SSH public key whose signature the front end
    /// has verified. `blob` is the key in SSH wire encoding. Unknown keys are
    /// not counted as failures (clients offer several keys in turn).
    pub fn public_key(self, auth: &Auth, blob: &[u8]) -> Step {
        let ctx = self.context(auth, Method::PublicKey);
        let now = auth.now();
        let snap = match open_attempt(auth, &ctx, now) {
            Ok(snap) => snap,
            Err(step) => return *step,
        };
        let Some(account) = snap.account else {
            audit_once(
                auth,
                &ctx,
                Event::LoginFailed,
                "publickey",
                "unknown account",
            );
            return Step::Denied(DenyReason::InvalidCredentials.denied());
        };
        if let Some((event, reason)) = gate(&account, snap.group.as_ref(), ctx.address) {
            audit_once(auth, &ctx, event, "publickey", "");
            return Step::Denied(reason.denied());
        }
        match auth.key_is_authorized(&ctx.user, blob) {
            Ok(true) => after_first_factor(
                auth,
                ctx,
                account,
                snap.group,
                FirstFactor::PublicKey,
                None,
                now,
            ),
            Ok(false) => {
                audit_once(
                    auth,
                    &ctx,
                    Event::LoginFailed,
                    "publickey",
                    "key not authorized",
                );
                Step::Denied(DenyReason::InvalidCredentials.denied())
            }
            Err(e) => internal(e),
        }
    }
}

fn token_login(auth: &Auth, ctx: Context, snap: Snapshot, value: &str, now: Timestamp) -> Step {
    let checked = auth
        .store
        .read(|r| auth.check_token(r, &ctx.user, value, ctx.protocol, now));
    let refusal = match checked {
        Err(e) => return internal(e),
        Ok(Ok(id)) => match snap.account {
            Some(account) => {
                if let Some((event, reason)) = gate(&account, snap.group.as_ref(), ctx.address) {
                    audit_once(auth, &ctx, event, "token", "");
                    return Step::Denied(reason.denied());
                }
                return after_first_factor(
                    auth,
                    ctx,
                    account,
                    snap.group,
                    FirstFactor::Token,
                    Some(id),
                    now,
                );
            }
            None => TokenRefusal::Unknown,
        },
        Ok(Err(refusal)) => refusal,
    };
    let wrote = auth.store.write(|tx| {
        fail(
            tx,
            &ctx,
            &snap.lockout,
            now,
            Event::TokenRejected,
            "token",
            refusal.as_str(),
        )
    });
    match wrote {
        Ok(()) => Step::Denied(DenyReason::TokenRefused.denied()),
        Err(e) => internal(e),
    }
}

fn after_first_factor(
    auth: &Auth,
    ctx: Context,
    account: Account,
    group: Option<Group>,
    first: FirstFactor,
    token: Option<String>,
    now: Timestamp,
) -> Step {
    let policy = match auth.policy() {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let enrolled = match auth.is_enrolled(&account.name) {
        Ok(e) => e,
        Err(e) => return internal(e),
    };
    let method = if first == FirstFactor::Token {
        "token"
    } else {
        ctx.method.as_str()
    };
    let home = match admit(auth, &ctx, &account, group.as_ref(), method) {
        Ok(home) => home,
        Err(step) => return *step,
    };
    match decide(&policy.mfa, &account, enrolled, ctx.protocol, first) {
        CodeDecision::NotNeeded => grant(
            auth,
            &ctx,
            &account,
            group.as_ref(),
            home,
            None,
            token,
            false,
            now,
        ),
        CodeDecision::Offer => {
            let offer = ctx.protocol.can_enrol();
            grant(
                auth,
                &ctx,
                &account,
                group.as_ref(),
                home,
                None,
                token,
                offer,
                now,
            )
        }
        CodeDecision::Ask if ctx.method.can_carry_code() => {
            Step::NeedCode(AwaitCode { ctx, since: now })
        }
        CodeDecision::Ask => {
            audit_once(
                auth,
                &ctx,
                Event::CodeUnsupported,
                method,
                "code required; method cannot carry one",
            );
            Step::Denied(DenyReason::CodeUnsupported.denied())
        }
        CodeDecision::MustEnrol if ctx.protocol.can_enrol() => Step::MustEnrol(AwaitEnrolment {
            ctx,
            role: account.role,
            since: now,
        }),
        CodeDecision::MustEnrol => {
            audit_once(
                auth,
                &ctx,
                Event::EnrolmentRequired,
                method,
                "must enrol MFA first",
            );
            Step::Denied(DenyReason::EnrolmentRequired.denied())
        }
    }
}

/// Writes the grant (lockout cleared, audit, token use) and builds the session.
#[allow(clippy::too_many_arguments)] // every piece is part of the grant
fn grant(
    auth: &Auth,
    ctx: &Context,
    account: &Account,
    group: Option<&Group>,
    home: HomeFolder,
    second: Option<SecondFactor>,
    token: Option<String>,
    offer_enrolment: bool,
    now: Timestamp,
) -> Step {
    let recorded = match token.as_deref() {
        Some(id) => token_use_recorded(auth, &account.name, ctx.address, id, now),
        None => Ok(false),
    };
    match recorded {
        // A token used again within the minute: nothing to write (its last
        // use and a `token_used` event are at most a minute old).
        Ok(true) => tracing::debug!(account = %account.name, "token used again within a minute"),
        Ok(false) => {
            let wrote = auth.store.write(|tx| {
                lockout::record_success(tx, &account.name, ctx.address)?;
                grant_in(tx, ctx, second, token.as_deref(), now)
            });
            if let Err(e) = wrote {
                return internal(e);
            }
        }
        Err(e) => return internal(e),
    }
    Step::Granted(session(
        ctx,
        account,
        group,
        home,
        second,
        token,
        offer_enrolment,
        now,
    ))
}

/// Seconds during which further uses of one access token write nothing:
/// its `last_used` and the audit log record a token's use at most once a
/// minute, so a script's requests neither load the disk nor flush the log.
pub const TOKEN_USE_INTERVAL: Timestamp = 60;

/// Whether the use of token `id` now is already on record: its last use is
/// less than [`TOKEN_USE_INTERVAL`] ago and there is no failure of the
/// account from this address to clear.
fn token_use_recorded(
    auth: &Auth,
    account: &str,
    address: IpAddr,
    id: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    auth.store.read(|r| {
        let recent = r
            .get(TOKENS, id)?
            .and_then(|t| t.last_used)
            .is_some_and(|last| last <= now && now - last < TOKEN_USE_INTERVAL);
        Ok(recent && !lockout::has_failures(r, account, address)?)
    })
}

fn grant_in(
    tx: &mut WriteTx,
    ctx: &Context,
    second: Option<SecondFactor>,
    token: Option<&str>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let retain = retain_of(tx)?;
    let method = match (token, second) {
        (Some(_), _) => "token".to_string(),
        (None, Some(f)) => format!("{}+{}", ctx.method.as_str(), f.as_str()),
        (None, None) => ctx.method.as_str().to_string(),
    };
    if let Some(id) = token {
        if let Some(mut t) = tx.get(TOKENS, id)? {
            t.last_used = Some(now);
            tx.put(TOKENS, id, &t)?;
        }
        audit::append(
            tx,
            now,
            Event::TokenUsed,
            ctx.entry("token", format!("token {id}")),
            retain,
        )?;
    }
    audit::append(
        tx,
        now,
        Event::LoginGranted,
        ctx.entry(&method, String::new()),
        retain,
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)] // every piece is part of the session
fn session(
    ctx: &Context,
    account: &Account,
    group: Option<&Group>,
    home: HomeFolder,
    second: Option<SecondFactor>,
    token: Option<String>,
    offer_enrolment: bool,
    now: Timestamp,
) -> Session {
    Session {
        account: account.name.clone(),
        role: account.role,
        group: account.group.clone(),
        home,
        permissions: accounts::permissions(account, group),
        protocol: ctx.protocol,
        address: ctx.address,
        method: ctx.method,
        token,
        second_factor: second,
        offer_enrolment,
        granted_at: now,
        epoch: ctx.epoch,
    }
}

impl AwaitCode {
    /// The prompt to show.
    pub fn prompt(&self) -> &'static str {
        CODE_PROMPT
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.ctx.user
    }

    /// Checks a TOTP code or a recovery code.
    pub fn code(self, auth: &Auth, input: &str) -> Step {
        let ctx = self.ctx;
        let now = auth.now();
        if now.saturating_sub(self.since) > auth.options.code_timeout {
            audit_once(
                auth,
                &ctx,
                Event::CodeRejected,
                ctx.method.as_str(),
                "code step timed out",
            );
            return Step::Denied(DenyReason::Expired.denied());
        }
        let lockout = match auth.policy() {
            Ok(p) => p.lockout,
            Err(e) => return internal(e),
        };
        enum Outcome {
            Locked(Timestamp),
            Accepted(SecondFactor),
            Refused(DenyReason),
        }
        let outcome = auth.store.write(|tx| {
            if let Some(until) = ctx.attempt().refuse_code_if_locked(tx, now, "login")? {
                return Ok::<_, StoreError>(Outcome::Locked(until));
            }
            match auth.check_second_factor(tx, &ctx.user, input, now) {
                Ok(factor) => {
                    lockout::record_success(tx, &ctx.user, ctx.address)?;
                    let retain = retain_of(tx)?;
                    let event = match factor {
                        SecondFactor::Totp => Event::CodeAccepted,
                        SecondFactor::RecoveryCode => Event::RecoveryCodeUsed,
                    };
                    audit::append(
                        tx,
                        now,
                        event,
                        ctx.entry(factor.as_str(), String::new()),
                        retain,
                    )?;
                    grant_in(tx, &ctx, Some(factor), None, now)?;
                    Ok(Outcome::Accepted(factor))
                }
                Err(err) => {
                    let (event, reason, method, detail) = match err {
                        FactorError::Code(CodeError::Replayed) => (
                            Event::CodeReplayed,
                            DenyReason::CodeReplayed,
                            "totp",
                            "code already used",
                        ),
                        FactorError::Code(CodeError::Malformed(_)) => (
                            Event::CodeRejected,
                            DenyReason::MalformedCode,
                            "totp",
                            "malformed code",
                        ),
                        FactorError::Code(CodeError::Wrong) => (
                            Event::CodeRejected,
                            DenyReason::WrongCode,
                            "totp",
                            "wrong code",
                        ),
                        FactorError::RecoveryUnknown => (
                            Event::CodeRejected,
                            DenyReason::WrongCode,
                            "recovery-code",
                            "unknown or used recovery code",
                        ),
                        FactorError::NotEnrolled => (
                            Event::CodeRejected,
                            DenyReason::WrongCode,
                            "totp",
                            "enrolment removed",
                        ),
                    };
                    ctx.attempt()
                        .fail_code(tx, &lockout, now, event, method, detail)?;
                    Ok(Outcome::Refused(reason))
                }
            }
        });
        match outcome {
            Err(e) => internal(e),
            Ok(Outcome::Locked(until)) => locked(until, now),
            Ok(Outcome::Refused(reason)) => Step::Denied(reason.denied()),
            Ok(Outcome::Accepted(factor)) => {
                let loaded = auth.store.read(|r| {
                    let a = accounts::load_account(r, &ctx.user)?;
                    let g = load_group(r, &a)?;
                    Ok::<_, AuthError>((a, g))
                });
                let (account, group) = match loaded {
                    Ok(x) => x,
                    Err(e) => return internal(e),
                };
                // Checked again: the account may have changed while the
                // code was typed.
                let home = match admit(auth, &ctx, &account, group.as_ref(), factor.as_str()) {
                    Ok(home) => home,
                    Err(step) => return *step,
                };
                Step::Granted(session(
                    &ctx,
                    &account,
                    group.as_ref(),
                    home,
                    Some(factor),
                    None,
                    false,
                    now,
                ))
            }
        }
    }
}

impl AwaitEnrolment {
    /// The user name.
    pub fn user(&self) -> &str {
        &self.ctx.user
    }

    fn actor(&self) -> Actor {
        Actor {
            account: Some((self.ctx.user.clone(), self.role)),
            protocol: self.ctx.protocol.as_str(),
            address: Some(self.ctx.address),
            access_token: None,
        }
    }

    /// Starts (or restarts) the enrolment: the secret to show.
    pub fn start(&self, auth: &Auth) -> Result<EnrolmentStart, AuthError> {
        auth.totp_start(&self.actor(), &self.ctx.user, None, None)
    }

    /// Confirms with a code; on success the login is granted and the
    /// recovery codes are returned for display. On failure the state comes
    /// back so the user can try again.
    pub fn confirm(
        self,
        auth: &Auth,
        code: &str,
    ) -> Result<(Session, RecoveryCodes), (Box<AwaitEnrolment>, AuthError)> {
        let now = auth.now();
        if now.saturating_sub(self.since) > auth.options.code_timeout.saturating_mul(4) {
            return Err((
                Box::new(self),
                AuthError::Invalid("the enrolment took too long; log in again".into()),
            ));
        }
        if auth.credential_epoch(&self.ctx.user) != self.ctx.epoch {
            return Err((
                Box::new(self),
                AuthError::Forbidden("the account changed during the login; log in again".into()),
            ));
        }
        let codes = match auth.totp_confirm(&self.actor(), &self.ctx.user, code) {
            Ok(c) => c,
            Err(e) => return Err((Box::new(self), e)),
        };
        let loaded = auth.store.read(|r| {
            let a = accounts::load_account(r, &self.ctx.user)?;
            let g = load_group(r, &a)?;
            Ok::<_, AuthError>((a, g))
        });
        let (account, group) = match loaded {
            Ok(x) => x,
            Err(e) => return Err((Box::new(self), e)),
        };
        let home = match admit(auth, &self.ctx, &account, group.as_ref(), "totp") {
            Ok(home) => home,
            Err(step) => {
                let message = match *step {
                    Step::Denied(d) => d.message,
                    _ => "this account may not log in".into(),
                };
                return Err((Box::new(self), AuthError::Forbidden(message)));
            }
        };
        let wrote = auth.store.write(|tx| {
            lockout::record_success(tx, &account.name, self.ctx.address)?;
            grant_in(tx, &self.ctx, Some(SecondFactor::Totp), None, now)
        });
        if let Err(e) = wrote {
            return Err((Box::new(self), e.into()));
        }
        let s = session(
            &self.ctx,
            &account,
            group.as_ref(),
            home,
            Some(SecondFactor::Totp),
            None,
            false,
            now,
        )
        // The enrolment itself moved the epoch.
        .renewed(auth);
        Ok((s, codes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::accounts::{NewAccount, new_group};
    use crate::clock::ManualClock;

    const PASSWORD: &str = "correct-horse-battery-staple-9";

    fn auth(dir: &std::path::Path) -> Auth {
        let clock = ManualClock::new(1_800_000_000);
        let auth = crate::auth::test_core(dir, clock, Some(("owner", PASSWORD)));
        std::fs::create_dir_all(&auth.options.files_root).unwrap();
        auth
    }

    fn user(auth: &Auth, name: &str, group: Option<&str>, home: Option<&str>) {
        auth.create_account(
            &Actor::cli(),
            NewAccount {
                name: name.into(),
                role: Role::User,
                group: group.map(Into::into),
                password: Some(zeroize::Zeroizing::new(PASSWORD.into())),
                home: home.map(Into::into),
                public_keys: vec![],
            },
        )
        .unwrap();
    }

    fn login(auth: &Auth, name: &str, password: &str) -> Step {
        Login::new(name, "192.0.2.7".parse().unwrap(), Protocol::Ssh).password(
            auth,
            Method::Password,
            password,
        )
    }

    fn last_event(auth: &Auth) -> (Event, String) {
        let log = auth
            .audit_log(&Actor::cli(), &audit::Filter::default())
            .unwrap();
        let r = log.first().unwrap();
        (r.event, r.detail.clone())
    }

    fn denied(step: Step) -> Denied {
        match step {
            Step::Denied(d) => d,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Writes an account under `legacy`, copied from `template`, straight
    /// into the store: what a store from before the name rule may hold.
    fn plant_legacy(auth: &Auth, template: &str, legacy: &str) {
        auth.store
            .write(|tx| {
                let mut a: Account = tx.get(ACCOUNTS, template)?.unwrap();
                a.name = legacy.to_string();
                tx.put(ACCOUNTS, legacy, &a)?;
                let p = tx.get(PASSWORDS, template)?.unwrap();
                tx.put(PASSWORDS, legacy, &p)?;
                Ok::<_, AuthError>(())
            })
            .unwrap();
    }

    #[test]
    fn a_stored_name_outside_the_alphabet_is_refused_login_with_its_own_event() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth(dir.path());
        user(&auth, "template", None, None);
        for legacy in ["..", "**", ".:", "*", "/", "ACME\\joe", "ünï"] {
            plant_legacy(&auth, "template", legacy);
            // The store still reads it: administrators see it.
            auth.account(&Actor::cli(), legacy).unwrap();
            let d = denied(login(&auth, legacy, PASSWORD));
            assert_eq!(d.reason, DenyReason::NameRefused, "{legacy:?}");
            assert!(d.message.contains("rename"), "{}", d.message);
            let (event, detail) = last_event(&auth);
            assert_eq!(event, Event::LoginNameRefused, "{legacy:?}");
            assert!(detail.contains("rename the account"), "{detail}");
            // A wrong password learns nothing more than for anyone else.
            let d = denied(login(&auth, legacy, "wrong password here"));
            assert_eq!(d.reason, DenyReason::InvalidCredentials);
        }
        // Nothing was created outside the files root on the way.
        assert!(!dir.path().join("files").join("..").join("secrets").exists());
    }

    #[test]
    fn a_stored_home_that_escapes_after_substitution_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth(dir.path());
        user(&auth, "bob", None, None);
        auth.store
            .write(|tx| {
                let mut a: Account = tx.get(ACCOUNTS, "bob")?.unwrap();
                a.home = Some("../..".into());
                tx.put(ACCOUNTS, "bob", &a)?;
                Ok::<_, AuthError>(())
            })
            .unwrap();
        let d = denied(login(&auth, "bob", PASSWORD));
        assert_eq!(d.reason, DenyReason::HomeRefused);
        assert_eq!(last_event(&auth).0, Event::HomeRefused);
    }

    #[test]
    fn a_link_on_the_path_of_a_home_refuses_login_and_session_with_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth(dir.path());
        let files = auth.options.files_root.clone();
        let mut team = new_group("team");
        team.home_template = "team/${USER}".into();
        auth.create_group(&Actor::cli(), team).unwrap();
        user(&auth, "manager", None, Some("team"));
        user(&auth, "bob", Some("team"), None);
        user(&auth, "carol", Some("team"), None);

        // The manager (whose home holds the team's) plants a link where
        // bob's home will be.
        std::fs::create_dir_all(files.join("team")).unwrap();
        std::os::unix::fs::symlink("../..", files.join("team/bob")).unwrap();
        let d = denied(login(&auth, "bob", PASSWORD));
        assert_eq!(d.reason, DenyReason::HomeRefused);
        let (event, detail) = last_event(&auth);
        assert_eq!(event, Event::HomeRefused);
        assert!(detail.contains("symbolic link"), "{detail}");

        // Carol logs in; the link is planted after the login: the session's
        // home does not open, and that is audited too.
        let Step::Granted(s) = login(&auth, "carol", PASSWORD) else {
            panic!("carol");
        };
        assert_eq!(s.home.as_str(), "team/carol");
        std::os::unix::fs::symlink("../..", files.join("team/carol")).unwrap();
        let err = auth.open_home(&s).unwrap_err();
        assert!(matches!(err, HomeError::Link { .. }), "{err}");
        assert!(err.to_string().contains("\"team/carol\""), "{err}");
        assert_eq!(last_event(&auth).0, Event::HomeRefused);

        // A link higher up (the group's folder itself) is refused the same.
        std::fs::remove_file(files.join("team/carol")).unwrap();
        std::fs::rename(files.join("team"), files.join("team-moved")).unwrap();
        std::os::unix::fs::symlink("team-moved", files.join("team")).unwrap();
        let err = auth.open_home(&s).unwrap_err();
        assert!(
            matches!(&err, HomeError::Link { part, .. } if part == "team"),
            "{err}"
        );

        // Without links the home is created and opened.
        std::fs::remove_file(files.join("team")).unwrap();
        let root = auth.open_home(&s).unwrap();
        assert_eq!(root.account(), "carol");
        assert!(files.join("team/carol").is_dir());
    }
}
