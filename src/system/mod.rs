//! The system box: how `coffer serve` lives in the operating system.
//!
//! - [`notify`]: the service manager's notification protocol (`READY=1`,
//!   `STATUS=`, `WATCHDOG=1`, `RELOADING=1`, `STOPPING=1`);
//! - [`health`]: the periodic health check that decides whether a watchdog
//!   keep-alive is sent;
//! - [`logging`]: journald with structured fields, or compact lines on
//!   standard error; the level can change on SIGHUP;
//! - [`privilege`]: a server started as root drops to its service account;
//! - [`modes`]: the data dir's file modes, checked before anything is opened.
//!
//! - [`factory`]: the factory reset, and [`root_files`]: files in the data
//!   dir made or opened without following links.
//!
//! The server ties them to its life (`crate::server::service`); nothing
//! here reads the configuration file or calls a front end. Every failure is
//! a [`SystemError`].

mod error;
pub mod factory;
pub mod health;
pub mod logging;
pub mod modes;
pub mod notify;
pub mod privilege;
pub mod root_files;

pub use error::SystemError;

/// The control socket's file name in the data dir (see `crate::admin::wire`).
pub const CONTROL_SOCKET: &str = "coffer.sock";
