//! The core's error: one enum for every caller, by audience.

use super::{password, policy, totp};
use crate::random::RandomError;
use crate::seal::SealError;
use crate::store::StoreError;

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

/// A failing random source is a fault of the box, not of the request.
impl From<RandomError> for AuthError {
    fn from(e: RandomError) -> Self {
        AuthError::Internal(e.to_string())
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
