//! Why the system box failed ([`SystemError`]): by kind, with a message
//! fit for the person at the keyboard (an operator reading one line on a
//! terminal or in the journal). No message holds a secret: they name paths,
//! accounts, settings and the operating system's reason.
//!
//! A message already carries its cause ("cannot read /x: Permission
//! denied"), so no variant exposes it again as `source()`: printed with
//! anyhow's `{:#}`, the line does not repeat itself.

use std::io;

/// Why a step of the system box failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SystemError {
    /// The operating system refused a step: what was tried (`cannot read
    /// /var/lib/coffer`) and the reason it gave.
    #[error("{doing}: {cause}")]
    Os {
        /// The step, as a phrase naming the path, account or call.
        doing: String,
        /// The operating system's reason.
        cause: io::Error,
    },
    /// A setting (`[service]`, `log_level`, `log_target`, `RUST_LOG`) is
    /// malformed or does not fit this machine; `key` names it.
    #[error("{message}")]
    Setting {
        /// The setting, as written in the configuration (`service.user`).
        key: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// The data dir, or a file in it, is not private to the service; the
    /// message names the path and the command that fixes it.
    #[error("{0}")]
    UnsafeDataDir(String),
    /// A factory reset refuses to delete the users' files in this place.
    #[error("{0}")]
    Refused(String),
    /// The privilege drop did not leave the process as it must be.
    #[error("{0}")]
    PrivilegeKept(String),
    /// The log could not be changed.
    #[error("{0}")]
    Log(String),
}

impl SystemError {
    /// The operating system refused `doing`.
    pub(crate) fn os(doing: impl Into<String>, cause: impl Into<io::Error>) -> Self {
        Self::Os {
            doing: doing.into(),
            cause: cause.into(),
        }
    }

    /// A setting is wrong.
    pub(crate) fn setting(key: &'static str, message: impl Into<String>) -> Self {
        Self::Setting {
            key,
            message: message.into(),
        }
    }

    /// The configuration key this error is about, if it is about one.
    pub fn key(&self) -> Option<&'static str> {
        match self {
            Self::Setting { key, .. } => Some(key),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_said_once() {
        let e = SystemError::os(
            "cannot read /x",
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.to_string(), "cannot read /x: permission denied");
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(
            format!("{:#}", anyhow::Error::from(e)),
            "cannot read /x: permission denied"
        );
    }
}
