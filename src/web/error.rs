//! The one place where core errors become HTTP answers.
//!
//! Every error leaves as JSON `{error, message}` with a fitting status: a
//! short machine-readable code and a sentence for the person. Internal
//! failures (store, data key) answer 500 with a fixed message; the detail
//! goes to the log only.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::AuthError;
use crate::files::{Fault, FsError};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short code, e.g. `otp_required`.
    pub error: &'static str,
    /// What to tell the person.
    pub message: String,
    /// Seconds to wait, for 429 and locks.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with a message saying what is wrong with the input.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    /// 401: no valid session or token.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Log in first: send Authorization: Bearer TOKEN (from POST /api/v1/auth/login, or an access token).",
        )
    }

    /// 403 with a reason.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 for a thing that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 with a fixed message; `detail` goes to the log.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed on an internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The request failed because of an internal error; the administrator can find it in the log.",
        )
    }

    /// Adds a Retry-After.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match &e {
            AuthError::NotFound { .. } => Self::not_found(e.to_string()),
            AuthError::Exists { .. } => Self::new(StatusCode::CONFLICT, "exists", e.to_string()),
            AuthError::Invalid(_) | AuthError::Policy(_) => Self::bad_request(e.to_string()),
            AuthError::PasswordRefused(_) => {
                Self::new(StatusCode::BAD_REQUEST, "password_refused", e.to_string())
            }
            AuthError::Forbidden(_) => Self::forbidden(e.to_string()),
            AuthError::Code(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_code", e.to_string()),
            AuthError::TokenCannotManageCredentials => Self::new(
                StatusCode::FORBIDDEN,
                "token_cannot_manage_credentials",
                e.to_string(),
            ),
            AuthError::Locked { retry_after, .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "locked", e.to_string())
                    .retry_after(*retry_after)
            }
            AuthError::AlreadyClaimed => {
                Self::new(StatusCode::CONFLICT, "already_claimed", e.to_string())
            }
            AuthError::Busy(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()).retry_after(1)
            }
            _ => Self::internal(&e),
        }
    }
}

impl From<FsError> for ApiError {
    fn from(e: FsError) -> Self {
        let message = e.to_string();
        match e.fault() {
            Fault::NoSuchFile => Self::not_found(message),
            Fault::PermissionDenied => Self::forbidden(message),
            Fault::BadMessage => Self::bad_request(message),
            Fault::Unsupported => Self::new(StatusCode::BAD_REQUEST, "unsupported", message),
            Fault::Failure => match &e {
                FsError::Io(io) if io.kind() == std::io::ErrorKind::AlreadyExists => {
                    Self::new(StatusCode::CONFLICT, "exists", message)
                }
                FsError::Io(io) if io.raw_os_error() == Some(nix::libc::ENOTEMPTY) => {
                    Self::new(StatusCode::CONFLICT, "not_empty", "the folder is not empty")
                }
                FsError::Io(io) if io.raw_os_error() == Some(nix::libc::EISDIR) => Self::new(
                    StatusCode::CONFLICT,
                    "is_a_folder",
                    "a folder of that name exists; a file cannot replace it",
                ),
                FsError::Io(io) if io.raw_os_error() == Some(nix::libc::ENOSPC) => Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "no_space",
                    "the disk is full",
                ),
                FsError::NotRegular => Self::new(StatusCode::CONFLICT, "not_a_file", message),
                _ => Self::new(StatusCode::CONFLICT, "failed", message),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(Body {
                error: self.error,
                message: &self.message,
            }),
        )
            .into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_of_the_box_are_500_and_never_the_callers_400() {
        let e = ApiError::from(AuthError::Internal(
            "no randomness available: getrandom failed".into(),
        ));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.error, "internal");
        assert!(!e.message.contains("getrandom"), "{}", e.message);
        let e = ApiError::from(AuthError::Busy(
            "the server is busy hashing passwords".into(),
        ));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!((e.error, e.retry_after), ("busy", Some(1)));
        let e = ApiError::from(AuthError::Invalid("bad name".into()));
        assert_eq!((e.status, e.error), (StatusCode::BAD_REQUEST, "invalid"));
    }
}
