//! Coffer: a file-transfer appliance service with strong multi-factor authentication.
pub mod seal;
