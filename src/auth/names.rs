//! Account names and the folders made of them.
//!
//! A local account name comes from a conservative alphabet
//! ([`validate_account_name`]); a name from elsewhere becomes a folder name
//! through one mapping ([`folder_name`]); whatever the name or template, the
//! home folder is checked after substitution ([`HomeFolder::parse`]).

use super::AuthError;

/// Longest account or group name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Characters a local account name may use besides ASCII letters and digits.
pub const NAME_PUNCTUATION: &str = ".-_@";

/// Characters of names from elsewhere (domain forms such as `ACME\joe`)
/// that become `.` in folder names; any other character outside the
/// account-name alphabet becomes `_`.
const FOLDER_DOTS: &str = "\\/:*?\"<>|";

fn in_name_alphabet(c: char) -> bool {
    c.is_ascii_alphanumeric() || NAME_PUNCTUATION.contains(c)
}

/// Checks a local account name: 1 to 64 characters from the alphabet
/// `A-Z a-z 0-9 . - _ @`, not starting with a dot. Such a name is its own
/// folder name. Uniqueness regardless of case is checked where accounts are
/// created.
pub fn validate_account_name(name: &str) -> Result<(), AuthError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS {
        return Err(AuthError::Invalid(format!(
            "a user name has 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if !name.chars().all(in_name_alphabet) {
        return Err(AuthError::Invalid(
            "a user name may contain only letters A-Z and a-z, digits, '.', '-', '_' and '@'"
                .into(),
        ));
    }
    if name.starts_with('.') {
        return Err(AuthError::Invalid(
            "a user name may not start with a dot".into(),
        ));
    }
    Ok(())
}

/// Checks a group name: 1-64 printable characters, no white space, not
/// only dots. (A group name never becomes a folder name.)
pub fn validate_group_name(name: &str) -> Result<(), AuthError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS {
        return Err(AuthError::Invalid(format!(
            "a group name has 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(AuthError::Invalid(
            "a group name may not contain spaces or control characters".into(),
        ));
    }
    if name.chars().all(|c| c == '.') {
        return Err(AuthError::Invalid(format!(
            "{name:?} is not a usable group name"
        )));
    }
    Ok(())
}

/// The folder name for a user name, the one mapping from names to folders:
/// characters of the account-name alphabet stay, `\/:*?"<>|` become `.`,
/// every other character becomes `_`, and a leading `.` becomes `_`. A
/// valid local name maps to itself; a name from elsewhere (`ACME\joe`,
/// `joe@acme`) maps to `ACME.joe`, `joe@acme`. The result is never empty,
/// never `.` or `..`, and never holds a separator or a control character.
pub fn folder_name(user: &str) -> String {
    let mut folder: String = user
        .chars()
        .map(|c| {
            if in_name_alphabet(c) {
                c
            } else if FOLDER_DOTS.contains(c) {
                '.'
            } else {
                '_'
            }
        })
        .collect();
    if folder.starts_with('.') {
        folder.replace_range(..1, "_");
    }
    if folder.is_empty() {
        folder.push('_');
    }
    folder
}

pub use crate::files::{BadHome, HomeFolder, MAX_HOME_BYTES, MAX_HOME_PART_BYTES};

impl From<BadHome> for AuthError {
    fn from(e: BadHome) -> Self {
        AuthError::Invalid(e.to_string())
    }
}

/// Checks a home path or template an administrator sets (see
/// [`HomeFolder::parse`]).
pub fn validate_home(text: &str) -> Result<(), AuthError> {
    HomeFolder::parse(text).map(|_| ()).map_err(AuthError::from)
}
