//! The core's tables and the history of their schema.

use super::{Account, Group, PasswordRecord, Policy, PublicKey, lockout, mfa, tokens};
use crate::store::{META, Read, StoreError, Table, WriteTx};

pub(crate) const ACCOUNTS: Table<Account> = Table::new("accounts");
pub(crate) const GROUPS: Table<Group> = Table::new("groups");
pub(crate) const PASSWORDS: Table<PasswordRecord> = Table::new("passwords");
pub(crate) const PUBLIC_KEYS: Table<Vec<PublicKey>> = Table::new("public_keys");
pub(crate) const TOTP: Table<mfa::TotpRecord> = Table::new("totp");
pub(crate) const RECOVERY: Table<mfa::RecoveryRecord> = Table::new("recovery_codes");
pub(crate) const TOKENS: Table<tokens::TokenRecord> = Table::new("tokens");
pub(crate) const FAILURES: Table<lockout::Failures> = Table::new("login_failures");
pub(crate) const SETTINGS: Table<Policy> = Table::new("settings");

/// The core's schema: the history of its tables, which the store runs on
/// open ([`crate::store::Schema`]). Every opener of the store passes it.
pub static SCHEMA: crate::store::Schema = crate::store::Schema {
    steps: &[crate::store::Migration {
        to: 1,
        run: create_tables_v1,
    }],
};

/// Schema version 1: every table of the first release and the default policy.
pub(crate) fn create_tables_v1(tx: &mut WriteTx) -> Result<(), StoreError> {
    tx.create_table(META)?;
    tx.create_table(ACCOUNTS)?;
    tx.create_table(GROUPS)?;
    tx.create_table(PASSWORDS)?;
    tx.create_table(PUBLIC_KEYS)?;
    tx.create_table(TOTP)?;
    tx.create_table(RECOVERY)?;
    tx.create_table(TOKENS)?;
    tx.create_table(FAILURES)?;
    tx.create_table(SETTINGS)?;
    tx.raw().open_table(crate::store::AUDIT)?;
    if tx.get(SETTINGS, "policy")?.is_none() {
        tx.put(SETTINGS, "policy", &Policy::default())?;
    }
    Ok(())
}
