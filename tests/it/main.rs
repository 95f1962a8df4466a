//! Integration tests: the core through its public API, and the `coffer`
//! binary as a user runs it. One test binary (each file in tests/ would be
//! another link).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod cli;
mod config;
mod crash;
mod credentials;
mod files;
mod flow;
mod harness;
mod layers;
mod previous_store;
mod secrets_at_rest;
/// Starts software TPMs (shared with the library's own TPM tests).
#[path = "../support/swtpm.rs"]
mod swtpm;
mod system;
mod tpm;
mod web;
