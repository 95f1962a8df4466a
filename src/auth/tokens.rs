//! Access tokens: long random values that replace the password and skip the
//! second factor, for unattended clients.
//!
//! A token reads `cft_<id>_<secret>`: the id (12 hex digits) finds the record,
//! the secret (32 random bytes, base64url) is checked in constant time
//! against its keyed hash. The value is shown once, at creation.
//!
//! A caller authenticated by an access token can neither create, list nor
//! revoke tokens ([`Actor::may_manage_credentials`]): a narrow, short-lived
//! token must not be able to mint a wide, permanent one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::accounts::{audit_in, load_account};
use super::{Actor, Auth, AuthError, Protocol, TOKENS, keyed_hash};
use crate::audit::Event;
use crate::clock::Timestamp;
use crate::store::Read;

/// Prefix of every token.
pub const PREFIX: &str = "cft_";
/// Most tokens per account.
pub const MAX_TOKENS: usize = 50;

/// A stored token (no value: only its keyed hash).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id.
    pub id: String,
    /// Owner.
    pub account: String,
    /// What it is for.
    pub label: String,
    /// Keyed hash of the secret part.
    pub hash: String,
    /// Created.
    pub created_at: Timestamp,
    /// Stops working at this time.
    pub expires_at: Option<Timestamp>,
    /// Protocols it works on (empty: all).
    pub scope: BTreeSet<Protocol>,
    /// Last successful use.
    pub last_used: Option<Timestamp>,
}

/// A token as listed (no value, no hash).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Public id.
    pub id: String,
    /// Owner.
    pub account: String,
    /// Label.
    pub label: String,
    /// Created.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Protocols (empty: all).
    pub scope: BTreeSet<Protocol>,
    /// Last use.
    pub last_used: Option<Timestamp>,
    /// Past its expiry.
    pub expired: bool,
}

fn info(t: &TokenRecord, now: Timestamp) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        account: t.account.clone(),
        label: t.label.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        scope: t.scope.clone(),
        last_used: t.last_used,
        expired: t.expires_at.is_some_and(|e| e <= now),
    }
}

/// A new token: its value (shown once) and its listing.
pub struct NewToken {
    /// The value to give the client.
    pub value: Zeroizing<String>,
    /// Its details.
    pub info: TokenInfo,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("value", &"***")
            .field("info", &self.info)
            .finish()
    }
}

/// Splits a presented value into (id, secret) when it has the token shape.
pub(crate) fn split(value: &str) -> Option<(&str, &str)> {
    let rest = value.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRefusal {
    /// No such token, another account's, or a wrong secret.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Not valid on this protocol.
    OutOfScope,
}

impl TokenRefusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "unknown token",
            TokenRefusal::Expired => "token expired",
            TokenRefusal::OutOfScope => "token not valid for this protocol",
        }
    }
}

impl Auth {
    /// Creates a token for `account`.
    pub fn create_token(
        &self,
        actor: &Actor,
        account: &str,
        label: &str,
        expires_at: Option<Timestamp>,
        scope: BTreeSet<Protocol>,
    ) -> Result<NewToken, AuthError> {
        actor.may_manage_credentials()?;
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control) {
            return Err(AuthError::Invalid(
                "a token label has 1 to 64 printable characters".into(),
            ));
        }
        let now = self.now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(AuthError::Invalid("the expiry date is in the past".into()));
        }
        // 9999-12-31T23:59:59Z: later dates can be neither shown nor parsed back.
        if expires_at.is_some_and(|e| e > 253_402_300_799) {
            return Err(AuthError::Invalid(
                "the expiry date is after the year 9999".into(),
            ));
        }
        let id = data_encoding::HEXLOWER.encode(&self.random::<6>()?);
        let secret = Zeroizing::new(data_encoding::BASE64URL_NOPAD.encode(&self.random::<32>()?));
        let record = TokenRecord {
            id: id.clone(),
            account: account.to_string(),
            label: label.to_string(),
            hash: keyed_hash(&self.token_key(), secret.as_bytes()),
            created_at: now,
            expires_at,
            scope,
            last_used: None,
        };
        self.store.write(|tx| {
            actor.require_self_or_admin(account)?;
            let target = load_account(tx, account)?;
            actor.require_self_or_admin_over(&target)?;
            let held = tx
                .all(TOKENS)?
                .into_iter()
                .filter(|(_, t)| t.account == account)
                .count();
            if held >= MAX_TOKENS {
                return Err(AuthError::Invalid(format!(
                    "{account} already has {MAX_TOKENS} tokens; revoke one first"
                )));
            }
            if tx.get(TOKENS, &id)?.is_some() {
                return Err(AuthError::Internal("token id collision".into()));
            }
            tx.put(TOKENS, &id, &record)?;
            audit_in(
                tx,
                now,
                Event::TokenCreated,
                actor.entry(Some(account), format!("token {id} {label:?}")),
            )
        })?;
        Ok(NewToken {
            value: Zeroizing::new(format!("{PREFIX}{id}_{}", secret.as_str())),
            info: info(&record, now),
        })
    }

    /// Tokens of `account`, or of every account when `None` (admins only).
    pub fn tokens(
        &self,
        actor: &Actor,
        account: Option<&str>,
    ) -> Result<Vec<TokenInfo>, AuthError> {
        actor.may_manage_credentials()?;
        let now = self.now();
        self.store.read(|r| {
            match account {
                Some(a) => {
                    actor.require_self_or_admin(a)?;
                    actor.require_self_or_admin_over(&load_account(r, a)?)?;
                }
                None => actor.require_admin()?,
            }
            Ok(r.all(TOKENS)?
                .into_iter()
                .filter(|(_, t)| account.is_none_or(|a| t.account == a))
                .map(|(_, t)| info(&t, now))
                .collect())
        })
    }

    /// Revokes a token: its owner or an administrator may.
    pub fn revoke_token(&self, actor: &Actor, id: &str) -> Result<TokenInfo, AuthError> {
        actor.may_manage_credentials()?;
        let now = self.now();
        let (revoked, owner) = self.store.write(|tx| {
            let not_found = || AuthError::NotFound {
                what: "token",
                name: id.to_string(),
            };
            let token = tx.get(TOKENS, id)?.ok_or_else(not_found)?;
            match load_account(tx, &token.account) {
                Ok(owner) => actor
                    .require_self_or_admin_over(&owner)
                    .map_err(|_| not_found())?,
                Err(_) => actor.require_admin()?,
            }
            tx.remove(TOKENS, id)?;
            audit_in(
                tx,
                now,
                Event::TokenRevoked,
                actor.entry(
                    Some(&token.account),
                    format!("token {id} {:?}", token.label),
                ),
            )?;
            Ok::<_, AuthError>((info(&token, now), token.account))
        })?;
        // Sessions opened with the token end with it.
        self.end_sessions(
            &super::live::Revocation {
                account: &owner,
                token: Some(id),
            },
            "access token revoked",
        );
        Ok(revoked)
    }

    /// Checks a presented token for `account` on `protocol` (no write).
    /// The account an access token claims to belong to, for a bearer
    /// token that arrives without a user name. Says nothing about whether
    /// the token is valid: the login that follows checks it fully (and the
    /// name is only a lookup key, never shown to the presenter).
    pub fn token_account(&self, value: &str) -> Result<Option<String>, AuthError> {
        let Some((id, _)) = split(value) else {
            return Ok(None);
        };
        Ok(self.store.read(|r| r.get(TOKENS, id))?.map(|t| t.account))
    }

    pub(crate) fn check_token(
        &self,
        r: &impl Read,
        account: &str,
        value: &str,
        protocol: Protocol,
        now: Timestamp,
    ) -> Result<Result<String, TokenRefusal>, AuthError> {
        let Some((id, secret)) = split(value) else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        let presented = keyed_hash(&self.token_key(), secret.as_bytes());
        let Some(token) = r.get(TOKENS, id)? else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        if !super::ct_eq(&token.hash, &presented) || token.account != account {
            return Ok(Err(TokenRefusal::Unknown));
        }
        if token.expires_at.is_some_and(|e| e <= now) {
            return Ok(Err(TokenRefusal::Expired));
        }
        if !token.scope.is_empty() && !token.scope.contains(&protocol) {
            return Ok(Err(TokenRefusal::OutOfScope));
        }
        Ok(Ok(token.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        let good = format!("cft_0123456789ab_{}", "A".repeat(43));
        assert_eq!(
            split(&good),
            Some(("0123456789ab", "A".repeat(43).as_str()))
        );
        for bad in [
            "",
            "cft_",
            "cft_0123456789ab",
            "password",
            "cft_xyz_abc",
            &format!("cft_0123456789ab_{}", "A".repeat(42)),
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }
}
