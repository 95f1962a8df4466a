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
//!
//! Time and randomness are handed in: the core reads the clock it was built
//! with ([`crate::clock`]) and draws every secret it makes from its random
//! source ([`crate::random`], [`Auth::with_rng`]), so tests control both.

mod access;
pub mod accounts;
mod actor;
pub mod claim;
pub mod console;
mod error;
mod events;
pub mod flow;
mod groups;
pub mod live;
mod lockout;
pub mod mfa;
mod names;
pub mod password;
pub mod policy;
mod rename;
mod schema;
mod settings;
mod state;
pub mod tokens;
pub mod totp;

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

pub use actor::Actor;
pub use error::AuthError;
pub(crate) use events::retain_of;
pub use groups::GroupChange;
pub use policy::Policy;
pub use schema::SCHEMA;
pub(crate) use schema::{
    ACCOUNTS, FAILURES, GROUPS, PASSWORDS, PUBLIC_KEYS, RECOVERY, SETTINGS, TOKENS, TOTP,
};
pub use settings::owner_of;
#[cfg(test)]
pub(crate) use state::test_core;
pub use state::{Auth, Options, blocking};

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
    /// The last login granted, written in the login's own transaction.
    #[serde(default)]
    pub last_login: Option<LastLogin>,
}

/// A granted login, as the account list shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastLogin {
    /// When.
    pub at: Timestamp,
    /// From where.
    pub address: IpAddr,
    /// On which protocol (`ssh`, `https`).
    pub protocol: String,
    /// With which method (`password+totp`, `publickey`, `token`).
    pub method: String,
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

#[cfg(test)]
mod tests;
