//! SSH public keys of accounts: parsing an authorized_keys line, adding,
//! replacing and removing keys, and the "would this key be accepted" query.

use super::load_account;
use crate::audit::{self, Event};
use crate::auth::{Actor, Auth, AuthError, PUBLIC_KEYS, PublicKey, retain_of};
use crate::clock::Timestamp;
use crate::store::Read;

/// Most public keys per account.
pub const MAX_KEYS: usize = 64;

/// Parses an authorized_keys line into a key (algorithm, blob, comment),
/// checking that the blob is well-formed base64 whose embedded algorithm
/// matches.
pub fn parse_public_key(line: &str, now: Timestamp) -> Result<PublicKey, AuthError> {
    const ALGORITHMS: &[&str] = &[
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    let bad = |why: &str| AuthError::Invalid(format!("not an OpenSSH public key: {why}"));
    let line = line.trim();
    if line.len() > 16 * 1024 {
        return Err(bad("longer than 16 KiB"));
    }
    let mut parts = line.splitn(3, char::is_whitespace);
    let algorithm = parts.next().unwrap_or_default();
    let blob = parts.next().unwrap_or_default().trim();
    let comment: String = parts
        .next()
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if !ALGORITHMS.contains(&algorithm) {
        return Err(bad(&format!(
            "{:?} is not a supported key type (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa)",
            algorithm.chars().take(40).collect::<String>()
        )));
    }
    let raw = data_encoding::BASE64
        .decode(blob.as_bytes())
        .map_err(|_| bad("the key data is not base64"))?;
    let embedded = raw
        .get(..4)
        .and_then(|len| <[u8; 4]>::try_from(len).ok())
        .and_then(|len| raw.get(4..4 + u32::from_be_bytes(len) as usize))
        .ok_or_else(|| bad("the key data is truncated"))?;
    if embedded != algorithm.as_bytes() {
        return Err(bad("the key data does not match its type"));
    }
    if raw.len() < 4 + embedded.len() + 16 {
        return Err(bad("the key data is truncated"));
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&raw);
    Ok(PublicKey {
        algorithm: algorithm.to_string(),
        blob: blob.to_string(),
        comment,
        fingerprint: format!("SHA256:{}", data_encoding::BASE64_NOPAD.encode(&digest)),
        added_at: now,
    })
}

impl Auth {
    /// Replaces an account's public keys with `keys`, in one transaction.
    pub(super) fn set_public_keys(
        &self,
        actor: &Actor,
        name: &str,
        mut keys: Vec<PublicKey>,
    ) -> Result<(), AuthError> {
        actor.may_manage_credentials()?;
        let now = self.now();
        keys.dedup_by(|a, b| a.blob == b.blob);
        self.store.write(|tx| {
            actor.require_self_or_admin(name)?;
            let account = load_account(tx, name)?;
            actor.require_self_or_admin_over(&account)?;
            let old = tx.get(PUBLIC_KEYS, name)?.unwrap_or_default();
            tx.put(PUBLIC_KEYS, name, &keys)?;
            let retain = retain_of(tx)?;
            for k in old
                .iter()
                .filter(|o| !keys.iter().any(|n| n.blob == o.blob))
            {
                audit::append(
                    tx,
                    now,
                    Event::PublicKeyRemoved,
                    actor.entry(Some(name), k.fingerprint.clone()),
                    retain,
                )?;
            }
            for k in keys
                .iter()
                .filter(|n| !old.iter().any(|o| o.blob == n.blob))
            {
                audit::append(
                    tx,
                    now,
                    Event::PublicKeyAdded,
                    actor.entry(Some(name), k.fingerprint.clone()),
                    retain,
                )?;
            }
            Ok(())
        })
    }

    /// Adds a public key (an authorized_keys line) to an account.
    pub fn add_public_key(
        &self,
        actor: &Actor,
        name: &str,
        line: &str,
    ) -> Result<PublicKey, AuthError> {
        actor.may_manage_credentials()?;
        let now = self.now();
        let key = parse_public_key(line, now)?;
        self.store.write(|tx| {
            actor.require_self_or_admin(name)?;
            let account = load_account(tx, name)?;
            actor.require_self_or_admin_over(&account)?;
            let mut keys = tx.get(PUBLIC_KEYS, name)?.unwrap_or_default();
            if keys.iter().any(|k| k.blob == key.blob) {
                return Err(AuthError::Exists {
                    what: "key",
                    name: key.fingerprint.clone(),
                });
            }
            if keys.len() >= MAX_KEYS {
                return Err(AuthError::Invalid(format!(
                    "at most {MAX_KEYS} public keys per account"
                )));
            }
            keys.push(key.clone());
            tx.put(PUBLIC_KEYS, name, &keys)?;
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::PublicKeyAdded,
                actor.entry(Some(name), key.fingerprint.clone()),
                retain,
            )?;
            Ok(key)
        })
    }

    /// Removes a public key by fingerprint (`SHA256:...`) or by its comment.
    pub fn remove_public_key(
        &self,
        actor: &Actor,
        name: &str,
        which: &str,
    ) -> Result<PublicKey, AuthError> {
        actor.may_manage_credentials()?;
        let now = self.now();
        self.store.write(|tx| {
            actor.require_self_or_admin(name)?;
            let account = load_account(tx, name)?;
            actor.require_self_or_admin_over(&account)?;
            let mut keys = tx.get(PUBLIC_KEYS, name)?.unwrap_or_default();
            let pos = keys
                .iter()
                .position(|k| {
                    k.fingerprint == which || (!k.comment.is_empty() && k.comment == which)
                })
                .ok_or_else(|| AuthError::NotFound {
                    what: "key",
                    name: which.to_string(),
                })?;
            let key = keys.remove(pos);
            tx.put(PUBLIC_KEYS, name, &keys)?;
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::PublicKeyRemoved,
                actor.entry(Some(name), key.fingerprint.clone()),
                retain,
            )?;
            Ok(key)
        })
    }

    /// Whether `blob` (the SSH wire encoding of a public key) is one of the
    /// account's keys. For the SSH "would this key be accepted" query; the
    /// login itself goes through [`crate::auth::flow::Login::public_key`].
    pub fn key_is_authorized(&self, name: &str, blob: &[u8]) -> Result<bool, AuthError> {
        let encoded = data_encoding::BASE64.encode(blob);
        let keys = self
            .store
            .read(|r| r.get(PUBLIC_KEYS, name))?
            .unwrap_or_default();
        Ok(keys.iter().any(|k| crate::auth::ct_eq(&k.blob, &encoded)))
    }
}
