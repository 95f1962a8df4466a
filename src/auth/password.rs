//! Passwords: argon2id hashes and the NIST SP 800-63B policy.
//!
//! Policy: a minimum length (default 11, at most 200), a zxcvbn strength score
//! computed with the user name as context, and no reuse of the last N
//! passwords. Every Unicode character is allowed; there are no composition
//! rules and no forced expiry. A refusal says why in plain words.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::policy::{MAX_PASSWORD_CHARS, PasswordPolicy};

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashCost {
    /// Memory in KiB.
    pub m: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for HashCost {
    /// OWASP's recommendation for argon2id: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        Self {
            m: 19_456,
            t: 2,
            p: 1,
        }
    }
}

impl std::fmt::Display for HashCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "m={},t={},p={}", self.m, self.t, self.p)
    }
}

impl std::str::FromStr for HashCost {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut cost = HashCost::default();
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected m=KiB,t=passes,p=lanes"))?;
            let n: u32 = v
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: not a whole number"))?;
            match k.trim() {
                "m" => cost.m = n,
                "t" => cost.t = n,
                "p" => cost.p = n,
                _ => return Err(format!("{part:?}: expected m=KiB,t=passes,p=lanes")),
            }
        }
        if !(1..=16).contains(&cost.p) {
            return Err("p= must be 1 to 16 lanes".into());
        }
        if cost.m < 8 * cost.p || cost.m > 4 * 1024 * 1024 {
            return Err(format!("m= must be {} KiB to 4 GiB", 8 * cost.p));
        }
        if !(1..=100).contains(&cost.t) {
            return Err("t= must be 1 to 100 passes".into());
        }
        Ok(cost)
    }
}

impl HashCost {
    fn hasher(&self) -> Result<Argon2<'static>, HashError> {
        let params =
            Params::new(self.m, self.t, self.p, None).map_err(|e| HashError(e.to_string()))?;
        Ok(Argon2::new(
            argon2::Algorithm::Argon2id,
            Version::V0x13,
            params,
        ))
    }
}

/// The hashing library failed (bad parameters or out of memory).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes a password into a PHC string (`$argon2id$v=19$m=...`).
pub fn hash(password: &str, cost: HashCost) -> Result<String, HashError> {
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes).map_err(|e| HashError(e.to_string()))?;
    let phc = cost
        .hasher()?
        .hash_password_with_salt(password.as_bytes(), &salt_bytes)
        .map_err(|e| HashError(e.to_string()))?;
    Ok(phc.to_string())
}

/// Checks a password against a PHC string (in constant time, by the library).
/// A malformed hash verifies nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Why a proposed password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// Checks a proposed password against the policy (not the history: that
/// needs the stored hashes; see [`reused`]).
pub fn check(password: &str, user: &str, policy: &PasswordPolicy) -> Result<(), Refusal> {
    let chars = password.chars().count();
    if chars < policy.min_length {
        return Err(Refusal(format!(
            "the password is too short: use at least {} characters (it has {chars})",
            policy.min_length
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(Refusal(format!(
            "the password is too long: at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    if password.chars().any(|c| c.is_control()) {
        return Err(Refusal(
            "the password contains a control character (such as a line break)".into(),
        ));
    }
    if policy.min_score > 0 {
        let estimate = zxcvbn::zxcvbn(password, &[user, "coffer"]);
        let score = u8::from(estimate.score());
        if score < policy.min_score {
            let why = estimate
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| format!("{w}"))
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "it follows a common pattern".into());
            let hint = estimate
                .feedback()
                .and_then(|f| f.suggestions().first().map(|s| format!(" {s}")))
                .unwrap_or_default();
            return Err(Refusal(format!(
                "the password is too easy to guess (strength {score} of 4, at least {} needed): {}.{hint}",
                policy.min_score,
                why.trim_end_matches('.')
            )));
        }
    }
    Ok(())
}

/// Whether `password` matches one of the previous hashes.
pub fn reused(password: &str, previous: &[String]) -> bool {
    previous.iter().any(|phc| verify(password, phc))
}

/// A password read from a file or prompt; wiped on drop.
pub type Secret = Zeroizing<String>;

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashCost = HashCost { m: 64, t: 1, p: 1 };

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery staple", CHEAP).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stable", &h));
        assert!(!verify("x", "not a hash"));
    }

    #[test]
    fn hashes_made_elsewhere_verify() {
        // Made by the reference implementation (argon2-cffi), salt
        // "0123456789abcdef": stored hashes do not depend on the crate.
        let phc = "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$\
                   aq42HBL+IPAitHspChw/8mx5JRX2jFDkTmlsBskwH/0";
        assert!(verify("correct horse battery staple", phc));
        assert!(!verify("correct horse battery stable", phc));
    }

    #[test]
    fn policy_says_why() {
        let p = PasswordPolicy::default();
        let short = check("abc", "alice", &p).unwrap_err().0;
        assert!(short.contains("at least 11 characters"), "{short}");
        let weak = check("password123", "alice", &p).unwrap_err().0;
        assert!(weak.contains("too easy to guess"), "{weak}");
        let named = check("alice-alice-alice", "alice", &p).unwrap_err().0;
        assert!(named.contains("too easy to guess"), "{named}");
        let long = "x".repeat(201);
        assert!(
            check(&long, "alice", &p)
                .unwrap_err()
                .0
                .contains("too long")
        );
        assert!(check("tab\there is fine? no: it is a control", "a", &p).is_err());
        check("Grüne Äpfel fallen leise im Oktober", "alice", &p).unwrap();
        check("пароль-который-трудно-угадать", "alice", &p).unwrap();
    }

    #[test]
    fn cost_parses_and_rejects_garbage() {
        assert_eq!(
            "m=19456,t=2,p=1".parse::<HashCost>().unwrap(),
            HashCost::default()
        );
        for bad in [
            "",
            "m=1,t=1,p=1",
            "m=64,t=0,p=1",
            "m=64,t=1,p=0",
            "m=x,t=1,p=1",
            "q=1",
            "m=64;t=1",
        ] {
            assert!(bad.parse::<HashCost>().is_err(), "{bad}");
        }
    }

    #[test]
    fn history_detects_reuse() {
        let old = vec![hash("first password here", CHEAP).unwrap()];
        assert!(reused("first password here", &old));
        assert!(!reused("second password here", &old));
    }
}
