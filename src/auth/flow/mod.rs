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

mod attempt;
mod first;
mod grant;
mod second;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use serde::Serialize;

use super::accounts::HomeFolder;
use super::mfa::SecondFactor;
use super::policy::LockoutPolicy;
use super::totp::CodeError;
use super::{Account, Auth, Group, Method, Permissions, Protocol, Role};
use crate::audit::{Entry, Event};
use crate::clock::Timestamp;

pub(super) use attempt::Attempt;
pub use grant::TOKEN_USE_INTERVAL;

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

fn locked(until: Timestamp, now: Timestamp) -> Step {
    Step::Locked(Locked {
        until,
        retry_after: until.saturating_sub(now),
    })
}

fn audit_once(auth: &Auth, ctx: &Context, event: Event, method: &str, detail: &str) {
    if let Err(e) = auth.audit(event, ctx.entry(method, detail)) {
        tracing::error!(error = %e, "could not write an audit event");
    }
}

/// The longest user name a login may present, in characters.
pub const MAX_LOGIN_NAME_CHARS: usize = crate::audit::MAX_NAME_CHARS;

/// Whether a presented user name could be an account's at all: at most
/// [`MAX_LOGIN_NAME_CHARS`] characters and no control character.
pub fn presentable(name: &str) -> bool {
    name.chars().count() <= MAX_LOGIN_NAME_CHARS && !name.chars().any(char::is_control)
}
