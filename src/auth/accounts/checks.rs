//! What a new or renamed account must pass beyond its name's alphabet: the
//! name is free, the group exists; and who may change their own password.

use crate::auth::{ACCOUNTS, Account, AuthError, GROUPS, Group, names::validate_account_name};
use crate::store::Read;

/// Fails when an account has `name`, compared regardless of case (`Alice`
/// is taken when `alice` exists); the error names the existing account.
pub(super) fn check_name_free(r: &impl Read, name: &str) -> Result<(), AuthError> {
    if let Some((taken, _)) = r
        .all(ACCOUNTS)?
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        return Err(AuthError::Exists {
            what: "account",
            name: taken,
        });
    }
    Ok(())
}

pub(super) fn check_group_exists(r: &impl Read, group: &Option<String>) -> Result<(), AuthError> {
    if let Some(g) = group
        && r.get(GROUPS, g)?.is_none()
    {
        return Err(AuthError::NotFound {
            what: "group",
            name: g.clone(),
        });
    }
    Ok(())
}

/// Whether `account` may change its own password: its own setting, else
/// its group's, else yes.
pub fn may_change_own_password(account: &Account, group: Option<&Group>) -> bool {
    account
        .may_change_password
        .unwrap_or_else(|| group.is_none_or(|g| g.may_change_password))
}

/// Checks what a claim of a new box would check of the owner's name and
/// password, under the policy a new store starts with: for a front end
/// that wants to refuse before it creates the data dir and its keys.
pub fn check_new_owner(owner: &str, password: &str) -> Result<(), AuthError> {
    validate_account_name(owner)?;
    crate::auth::policy::check(password, owner, &crate::auth::Policy::default().password)
        .map_err(|r| AuthError::PasswordRefused(r.0))
}
