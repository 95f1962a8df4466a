//! The SSH front end: SFTP and SCP over russh, logins through the core.
//!
//! This module translates SSH events into calls on [`crate::auth::flow`] and
//! decides nothing about access itself. It owns what only the transport
//! knows: the TCP peer address, the accept loop and its limits (connections,
//! unauthenticated connections per address and in all, login grace time),
//! the failure delay, and the mapping of flow steps onto SSH methods:
//!
//! - `password`: one secret; an account that needs a code is refused and
//!   steered to keyboard-interactive (the method cannot carry a code);
//! - `keyboard-interactive`: `Password:` then, when the flow asks, `Authentication code:`
//!   (an access token typed as the password skips the code; a recovery code is
//!   accepted at the code prompt);
//! - `publickey`: the key alone, or key + code through SSH partial success
//!   (then keyboard-interactive asks only for the code).
//!
//! After login each session channel serves the `sftp` subsystem or a legacy
//! `scp` command, confined to the account's home folder; shells and other
//! commands are refused with a message.

mod files;
mod handler;
mod hostkeys;
mod listener;

pub use hostkeys::{ED25519_FILE, HostKeyError, HostKeys, RSA_FILE, load_or_create};
pub use listener::{Limits, Shared, serve};

/// The authentication methods offered: publickey, keyboard-interactive, password.
pub fn offered_methods() -> russh::MethodSet {
    handler::offered()
}

/// Text shown before login: what the box accepts, and how to give a code.
pub const BANNER: &str = "Coffer file transfer (SFTP/SCP). Accounts with two-factor authentication log in with keyboard-interactive: password, then authentication code.\r\n";

/// What a shell or an unknown command gets.
pub const NO_SHELL: &str =
    "coffer: this server offers SFTP and SCP only; shell access and commands are disabled.\r\n";
