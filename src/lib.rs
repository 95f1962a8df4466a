//! Coffer: a file-transfer appliance service with strong multi-factor authentication.
//!
//! One process serves files over SFTP/SCP and HTTPS to users who log in with a
//! password, an SSH key or an access token, plus a TOTP code where policy asks
//! for one. The crate is layered the way the product is:
//!
//! - **front ends** translate wire events into calls on the core and decide
//!   nothing themselves: the command line ([`cli`]) today; SSH, HTTPS and the
//!   serial console build on the same calls;
//! - **the core** ([`auth`]): one login state machine for every protocol
//!   ([`auth::flow`]), MFA policy, lockout, IP filters, credentials (argon2id
//!   passwords, TOTP with replay protection, recovery codes, access tokens)
//!   and audit events ([`audit`]);
//! - **the foundations**: the store ([`store`], redb: typed tables, one
//!   transaction per change, schema migrations, a writer lock), sealed secrets
//!   ([`seal`]: a data key sealed by a TPM 2.0 or kept in a 0600 key file,
//!   encrypting every reversible secret), and time as a parameter ([`clock`]);
//! - **files** ([`files`]): each user's home folder as a confined virtual
//!   tree, served over SFTP and legacy SCP on any byte stream.
//!
//! No secret is stored in clear: passwords are argon2id hashes, recovery codes
//! and tokens are keyed hashes, TOTP seeds are encrypted with the data key.

pub mod address;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod control;
pub mod files;
pub mod seal;
pub mod server;
pub mod ssh;
pub mod store;
pub mod system;
pub mod web;
