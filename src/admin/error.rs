//! The administration layer's error: what went wrong, by kind, with a
//! message fit for the person at the keyboard. It crosses the control
//! socket as it is, so a front end never matches on message text.

use serde::{Deserialize, Serialize};

use crate::auth::AuthError;

/// Why an administrative operation failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdminError {
    /// No such account, group, key or token.
    #[error("{0}")]
    NotFound(String),
    /// The name is taken, or the box is claimed already.
    #[error("{0}")]
    Exists(String),
    /// The request does not fit; the message says what is accepted.
    #[error("{0}")]
    Invalid(String),
    /// The password policy refused a password.
    #[error("{0}")]
    PasswordRefused(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed attempts; nothing is checked until the lock lifts.
    #[error("{0}")]
    Locked(String),
    /// What the operation needs is not there: no store yet, no data key,
    /// no server.
    #[error("{0}")]
    Unavailable(String),
    /// The control socket's two ends do not understand each other.
    #[error("{0}")]
    Protocol(String),
    /// A fault of the box (store, key, file system): not the caller's.
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    /// An invalid request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

/// An error with its causes, as one line (`what: why: deeper why`).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text.replace('\n', " ")
}

impl From<AuthError> for AdminError {
    fn from(e: AuthError) -> Self {
        let text = chain(&e);
        match e {
            AuthError::NotFound { .. } => Self::NotFound(text),
            AuthError::Exists { .. } | AuthError::AlreadyClaimed => Self::Exists(text),
            AuthError::PasswordRefused(_) => Self::PasswordRefused(text),
            AuthError::Invalid(_) | AuthError::Policy(_) | AuthError::Code(_) => {
                Self::Invalid(text)
            }
            AuthError::Forbidden(_) | AuthError::TokenCannotManageCredentials => {
                Self::Forbidden(text)
            }
            AuthError::Locked { .. } => Self::Locked(text),
            AuthError::Busy(_) => Self::Unavailable(text),
            _ => Self::Internal(text),
        }
    }
}

impl From<crate::store::StoreError> for AdminError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::NotInitialized { .. } => Self::Unavailable(chain(&e)),
            e => Self::Internal(chain(&e)),
        }
    }
}

impl From<crate::seal::SealError> for AdminError {
    fn from(e: crate::seal::SealError) -> Self {
        Self::Unavailable(chain(&e))
    }
}

/// A step of the system box (a factory reset) failed: a fault of the box,
/// not of the caller.
impl From<crate::system::SystemError> for AdminError {
    fn from(e: crate::system::SystemError) -> Self {
        Self::Internal(chain(&e))
    }
}
