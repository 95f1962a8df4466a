//! Coffer: a file-transfer appliance service with strong multi-factor authentication.
//!
//! One process, `coffer serve` ([`server`]), serves files over SFTP/SCP and
//! HTTPS to users who log in with a password, an SSH key or an access token,
//! plus a TOTP code where policy asks for one. The crate is five boxes:
//!
//! ```text
//!   front ends   ssh (SFTP/SCP)   web (UI + REST)   console    cli
//!                      \                |               \        /
//!                       \               |         admin (requests, control socket)
//!                        +--------------+-------+-------+
//!                                               |
//!   core         auth: one login flow, policy, accounts, audit events
//!                       |                                 |
//!   below        store + seal                      files
//!                (records, sealed secrets)         (confinement to a home)
//!
//!   beside       system (sd_notify, watchdog, journald, privilege drop, modes)
//! ```
//!
//! - **Front ends** translate wire events into calls on the core and decide
//!   nothing about access themselves: [`ssh`] (russh; the `sftp` subsystem and
//!   legacy `scp`), [`web`] (setup wizard, server-rendered pages, the REST API
//!   under `/api/v1`), [`console`] (the technician's menu on a serial line) and
//!   [`cli`] (the `coffer` commands). The command line and the console only
//!   parse and print: every administrative operation is a typed request of
//!   [`admin`], run by one executor, inside a running server (over its Unix
//!   socket, [`admin::wire`]) or on the store opened directly when none runs
//!   ([`admin::Link`]). The server's settings come from [`config`];
//!   every per-address limit counts addresses the way [`address`] defines.
//! - **The core** ([`auth`]): one login state machine for every protocol
//!   ([`auth::flow`]), the MFA, lockout, password and IP policy
//!   ([`auth::policy`]), accounts, groups, credentials (argon2id passwords,
//!   TOTP with replay protection, recovery codes, access tokens), the
//!   technician's rescue operations ([`auth::console`]) and live sessions
//!   ([`auth::live`]). Every change is checked against its caller
//!   ([`auth::Actor`]) and written with its audit event ([`audit`]) in one
//!   store transaction. Time and randomness are parameters ([`clock`],
//!   [`random`]).
//! - **Files** ([`files`]): each account's home folder as a directory
//!   capability ([`files::Root`]); every path resolves beneath it, and the
//!   read-only and no-delete rules live here once for SFTP, SCP and HTTPS.
//! - **Store and seal**: [`store`] is one redb file of typed tables, one write
//!   transaction per change, with a writer lock; [`seal`] keeps the data key,
//!   sealed by a TPM 2.0 (through the `coffer-tpm` helper process) or in a
//!   0600 key file, and encrypts every secret the service must read back.
//! - **System** ([`system`]): how the server lives in the operating system:
//!   readiness and the watchdog, logging, dropping root, file modes.
//!
//! **How a login flows.** A front end starts a [`auth::flow::Login`] with the
//! user name, source address and protocol, feeds it the first factor the wire
//! carried (a password or token, or a public key), and acts on the
//! [`auth::flow::Step`] it answers: `NeedCode` (the state that waits for a TOTP
//! or recovery code, and can do nothing else), `MustEnrol`, `Denied`, `Locked`
//! or `Granted` with a [`auth::flow::Session`]. Every rule is decided inside the
//! flow: lockout, IP lists, disabled accounts, token scope, the MFA decision,
//! replay, and the audit event. The front end maps the step onto its wire
//! (an SSH method and prompt, an HTTP status, a cookie), opens the account's
//! home with [`auth::Auth::open_home`], and registers the session so that a
//! change of credentials ends it at once ([`auth::live::SessionHolder`]).
//!
//! No secret is stored in clear: passwords are argon2id hashes, recovery codes
//! and tokens are keyed hashes, TOTP seeds are encrypted with the data key.
//!
//! **Errors keep their type.** Each layer has its own `#[non_exhaustive]`
//! enum ([`auth::AuthError`], [`admin::AdminError`], [`store::StoreError`],
//! [`seal::SealError`], [`files::FsError`], [`config::ConfigError`],
//! [`system::SystemError`], [`ssh::HostKeyError`]) whose messages are one
//! line fit for the person at the keyboard and hold no secret. A front end
//! maps them in one place ([`web::error`] to HTTP). `anyhow` appears only at
//! the commands' top level: [`cli`], [`server::run`] and [`console::main`].

pub mod address;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod files;
pub mod random;
pub mod seal;
pub mod server;
pub mod ssh;
pub mod store;
pub mod system;
pub mod web;
