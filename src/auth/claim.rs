//! The first-boot claim code.
//!
//! An unclaimed box makes one random code (60 bits, `XXXX-XXXX-XXXX` from an
//! alphabet without look-alike characters) and shows it where only someone
//! with the box in hand can read it: the log, `coffer status`, the serial
//! console. The setup wizard creates the owner only when given that code.
//! The code is kept encrypted under the data key, so it survives a restart;
//! claiming the box (by the wizard or by `coffer setup`) deletes it in the
//! same transaction that creates the owner, so it can never be used twice.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{Actor, Auth, AuthError, password};
use crate::audit::Event;
use crate::random::Rng;
use crate::store::META;
use crate::store::Read as _;

/// Letters and digits a person cannot misread: no I, O, 0 or 1.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Characters of a code, without the dashes.
const LEN: usize = 12;
/// Associated data of the encrypted code.
const CONTEXT: &[u8] = b"coffer/claim-code/v1";
/// Key of the encrypted code in the meta table.
const KEY: &str = "claim_code";

/// A claim code. Shown in full by `Display` (it is meant to be read off the
/// box); `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimCode(Zeroizing<String>);

impl fmt::Debug for ClaimCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimCode(***)")
    }
}

impl fmt::Display for ClaimCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                f.write_str("-")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl ClaimCode {
    fn generate(rng: &dyn Rng) -> Result<Self, AuthError> {
        let bytes = Zeroizing::new(rng.bytes::<LEN>()?);
        let code = bytes
            .iter()
            .map(|b| char::from(ALPHABET.get(usize::from(b & 31)).copied().unwrap_or(b'A')))
            .collect();
        Ok(Self(Zeroizing::new(code)))
    }

    /// The code as typed: case, dashes and spaces do not matter. `None` when
    /// it cannot be a code at all.
    fn normalise(text: &str) -> Option<Zeroizing<String>> {
        let code: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !matches!(c, '-' | ' '))
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
    }

    fn matches(&self, typed: &str) -> bool {
        match Self::normalise(typed) {
            Some(typed) => bool::from(self.0.as_bytes().ct_eq(typed.as_bytes())),
            None => false,
        }
    }
}

impl Auth {
    /// The claim code of an unclaimed box, made and stored on first call;
    /// `None` once the box is claimed. Only for the local operator (the
    /// server's own log, `coffer status`, the console) or a system
    /// administrator ([`Actor::may_administer_box`]): whoever has it can
    /// claim the box.
    pub fn claim_code(&self, actor: &Actor) -> Result<Option<ClaimCode>, AuthError> {
        actor.may_administer_box()?;
        if let Some(code) = self.stored_claim_code()? {
            return Ok(Some(code));
        }
        let fresh = ClaimCode::generate(&*self.rng)?;
        let sealed = self.key.encrypt(CONTEXT, fresh.0.as_bytes())?;
        let encoded = data_encoding::BASE64.encode(&sealed);
        let stored = self.store.write(|tx| {
            if tx.get(META, "claimed_by")?.is_some() {
                return Ok::<_, AuthError>(false);
            }
            if tx.get(META, KEY)?.is_some() {
                // Another caller stored one first: use theirs.
                return Ok(true);
            }
            tx.put(META, KEY, &serde_json::json!(encoded))?;
            Ok(true)
        })?;
        if !stored {
            return Ok(None);
        }
        self.stored_claim_code()
    }

    /// The shortest password a claim accepts (the policy's minimum), for
    /// the setup wizard's form: anyone who may try a claim may know it, as
    /// [`Auth::claim_with_code`] refuses a shorter one with that reason.
    pub fn claim_min_password_length(&self) -> Result<usize, AuthError> {
        Ok(self.policy()?.password.min_length)
    }

    fn stored_claim_code(&self) -> Result<Option<ClaimCode>, AuthError> {
        let value = self.store.read(|r| {
            if r.get(META, "claimed_by")?.is_some() {
                return Ok(None);
            }
            r.get(META, KEY)
        })?;
        let Some(text) = value.as_ref().and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        let blob = data_encoding::BASE64
            .decode(text.as_bytes())
            .map_err(|_| AuthError::Internal("the stored claim code is damaged".into()))?;
        let plain = self.key.decrypt(CONTEXT, &blob)?;
        let code = String::from_utf8(plain.to_vec())
            .map_err(|_| AuthError::Internal("the stored claim code is damaged".into()))?;
        Ok(Some(ClaimCode(Zeroizing::new(code))))
    }

    /// Claims the box with its claim code: creates the owner (system_admin).
    /// A wrong code is audited and refused with a message that says only
    /// that the code is wrong.
    pub fn claim_with_code(
        &self,
        actor: &Actor,
        code: &str,
        owner: &str,
        password: &str,
        hash_cost: Option<password::HashCost>,
    ) -> Result<(), AuthError> {
        let Some(expected) = self.stored_claim_code()? else {
            return Err(AuthError::AlreadyClaimed);
        };
        if !expected.matches(code) {
            self.audit(
                Event::ClaimRefused,
                actor.entry(None, "wrong claim code".into()),
            )?;
            return Err(AuthError::Forbidden(
                "that is not this box's claim code".into(),
            ));
        }
        self.claim(actor, owner, password, hash_cost)
    }
}

/// Deletes the claim code; called inside the claim's transaction.
pub(crate) fn forget(tx: &mut crate::store::WriteTx) -> Result<(), crate::store::StoreError> {
    tx.remove(META, KEY).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_twelve_unambiguous_characters_shown_in_groups_of_four() {
        let code = ClaimCode::generate(&crate::random::OsRng).unwrap();
        let shown = code.to_string();
        assert_eq!(shown.len(), 14);
        assert_eq!(shown.matches('-').count(), 2);
        assert!(shown.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)));
        assert_eq!(format!("{code:?}"), "ClaimCode(***)");
    }

    #[test]
    fn typed_codes_ignore_case_dashes_and_spaces() {
        let code = ClaimCode(Zeroizing::new("ABCDEFGH2345".into()));
        assert!(code.matches("ABCD-EFGH-2345"));
        assert!(code.matches("abcd efgh 2345"));
        assert!(!code.matches("ABCD-EFGH-2346"));
        assert!(!code.matches("ABCD-EFGH-234"));
        assert!(!code.matches("ABCD-EFGH-23450"));
        assert!(!code.matches("ABCD-EFGH-234O"));
        assert!(!code.matches(""));
    }
}
