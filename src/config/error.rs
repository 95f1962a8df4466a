//! Why a configuration cannot be used ([`ConfigError`]).
//!
//! Every message is one line fit for the operator and names what to fix:
//! the file, the key (`sftp.listen`) and what it accepts. A message carries
//! its cause in its own text and never exposes it again as `source()`, so
//! anyhow's `{:#}` prints it once. No message holds a secret: the
//! configuration holds none.

use std::path::PathBuf;

use crate::system::SystemError;

/// Why the configuration file or a flag was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration {}: {cause}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        cause: std::io::Error,
    },
    /// Something in this file is wrong; `cause` says what.
    #[error("in {}: {cause}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        cause: Box<ConfigError>,
    },
    /// The text is not TOML of the expected shape (a misspelt key, a word
    /// where a number belongs), in the TOML parser's words.
    #[error("{0}")]
    Syntax(String),
    /// A version of the format this coffer cannot read.
    #[error("version = {0}: this coffer reads configuration version 1")]
    Version(u32),
    /// A value is malformed or out of its range; `key` names it and the
    /// message says what is accepted.
    #[error("{message}")]
    Value {
        /// The key, as written in the file (`sftp.max_connections`).
        key: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// A setting the system box checks (`[service]`, `log_level`,
    /// `RUST_LOG`) is wrong.
    #[error(transparent)]
    System(#[from] SystemError),
}

impl ConfigError {
    /// A value is wrong.
    pub(crate) fn value(key: &'static str, message: impl Into<String>) -> Self {
        Self::Value {
            key,
            message: message.into(),
        }
    }

    /// The key the error is about (`sftp.listen`, `version`), if it is
    /// about one.
    pub fn key(&self) -> Option<&'static str> {
        match self {
            Self::Value { key, .. } => Some(key),
            Self::Version(_) => Some("version"),
            Self::InFile { cause, .. } => cause.key(),
            Self::System(e) => e.key(),
            Self::Unreadable { .. } | Self::Syntax(_) => None,
        }
    }
}
