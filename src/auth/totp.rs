//! TOTP (RFC 6238): configurations, code checks with replay protection,
//! otpauth:// URIs.
//!
//! Codes are computed here (RFC 4226 truncation of an HMAC of the step
//! counter, RFC 6238 steps) and compared in constant time. A check
//! accepts the current step and one step either side, but only a step later
//! than the last one accepted for the enrolment: a code, and every code
//! before it, is good once.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::clock::Timestamp;

/// The HMAC behind the code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// HMAC-SHA1 (what most authenticator apps expect).
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// HMAC of `message` under `key` with this hash.
    fn hmac(self, key: &[u8], message: &[u8]) -> Zeroizing<Vec<u8>> {
        fn run<M: hmac::Mac + hmac::KeyInit>(key: &[u8], message: &[u8]) -> Zeroizing<Vec<u8>> {
            // HMAC takes a key of any length (longer ones are hashed first),
            // so this cannot fail; an empty result would match no code.
            match <M as hmac::KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(message);
                    Zeroizing::new(mac.finalize().into_bytes().to_vec())
                }
                Err(_) => Zeroizing::new(Vec::new()),
            }
        }
        match self {
            Algorithm::Sha1 => run::<hmac::Hmac<sha1::Sha1>>(key, message),
            Algorithm::Sha256 => run::<hmac::Hmac<sha2::Sha256>>(key, message),
            Algorithm::Sha512 => run::<hmac::Hmac<sha2::Sha512>>(key, message),
        }
    }

    /// Seed length recommended by RFC 4226/6238 for this hash.
    pub fn seed_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        })
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sha1" => Ok(Algorithm::Sha1),
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            _ => Err(format!("{s:?} is not sha1, sha256 or sha512")),
        }
    }
}

/// A named TOTP configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpConfig {
    /// Name, e.g. `default`.
    pub name: String,
    /// Issuer shown by authenticator apps.
    pub issuer: String,
    /// HMAC algorithm.
    pub algorithm: Algorithm,
    /// Digits per code (6).
    pub digits: u32,
    /// Seconds per step (30).
    pub period: u64,
}

impl Default for TotpConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            issuer: "Coffer".into(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

/// Why a code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not the expected number of digits, or not digits.
    #[error("the code must be exactly {0} digits, without spaces")]
    Malformed(u32),
    /// No step in the window produces this code.
    #[error("the code is not valid")]
    Wrong,
    /// The code (or a later one) was accepted before.
    #[error("this code was already used; wait for the next one")]
    Replayed,
}

/// The TOTP parameters an enrolment was made with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// HMAC algorithm.
    pub algorithm: Algorithm,
    /// Digits per code.
    pub digits: u32,
    /// Seconds per step.
    pub period: u64,
}

impl From<&TotpConfig> for Params {
    fn from(c: &TotpConfig) -> Self {
        Self {
            algorithm: c.algorithm,
            digits: c.digits,
            period: c.period,
        }
    }
}

impl Params {
    /// The code for step `step` (the step counter, not a time).
    ///
    /// RFC 4226's HOTP of the step counter: the HMAC's low nibble picks four
    /// bytes, their low 31 bits modulo 10^digits are the code. An empty
    /// string if the HMAC failed, which matches no code.
    pub fn code_at_step(&self, seed: &[u8], step: u64) -> Zeroizing<String> {
        let mac = self.algorithm.hmac(seed, &step.to_be_bytes());
        let offset = mac.last().map_or(0, |b| usize::from(b & 0x0f));
        let Some(&[a, b, c, d]) = mac.get(offset..offset + 4) else {
            return Zeroizing::new(String::new());
        };
        let binary = u64::from(u32::from_be_bytes([a & 0x7f, b, c, d]));
        let digits = self.digits.clamp(1, 10);
        let modulus = 10u64.pow(digits);
        Zeroizing::new(format!(
            "{:0width$}",
            binary % modulus,
            width = digits as usize
        ))
    }

    /// The step counter at time `now`.
    pub fn step(&self, now: Timestamp) -> u64 {
        now / self.period.max(1)
    }

    /// Checks `code` at `now` with ±1 step of skew, refusing any step at or
    /// before `last_step`. Returns the step that matched.
    pub fn check(
        &self,
        seed: &[u8],
        code: &str,
        now: Timestamp,
        last_step: Option<u64>,
    ) -> Result<u64, CodeError> {
        if code.len() != self.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodeError::Malformed(self.digits));
        }
        let current = self.step(now);
        let mut matched = None;
        // Check every candidate (no early exit) so timing says nothing.
        for step in [
            current.saturating_sub(1),
            current,
            current.saturating_add(1),
        ] {
            let candidate = self.code_at_step(seed, step);
            if bool::from(candidate.as_bytes().ct_eq(code.as_bytes())) && matched.is_none() {
                matched = Some(step);
            }
        }
        match matched {
            None => Err(CodeError::Wrong),
            Some(step) if last_step.is_some_and(|last| step <= last) => Err(CodeError::Replayed),
            Some(step) => Ok(step),
        }
    }
}

/// Builds the otpauth:// URI an authenticator app scans.
pub fn otpauth_uri(config: &TotpConfig, account: &str, seed: &[u8]) -> Zeroizing<String> {
    let secret = Zeroizing::new(data_encoding::BASE32_NOPAD.encode(seed));
    Zeroizing::new(format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm={alg}&digits={digits}&period={period}",
        issuer = percent_encode(&config.issuer),
        account = percent_encode(account),
        secret = secret.as_str(),
        alg = config.algorithm.to_string().to_ascii_uppercase(),
        digits = config.digits,
        period = config.period,
    ))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(alg: Algorithm) -> (Params, Vec<u8>) {
        // RFC 6238 appendix B: the seed is the ASCII digits repeated to the hash size.
        let seed: Vec<u8> = b"1234567890"
            .iter()
            .copied()
            .cycle()
            .take(alg.seed_len())
            .collect();
        (
            Params {
                algorithm: alg,
                digits: 8,
                period: 30,
            },
            seed,
        )
    }

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (time, sha1, sha256, sha512) in table {
            for (alg, want) in [
                (Algorithm::Sha1, sha1),
                (Algorithm::Sha256, sha256),
                (Algorithm::Sha512, sha512),
            ] {
                let (p, seed) = rfc(alg);
                assert_eq!(
                    p.code_at_step(&seed, p.step(time)).as_str(),
                    want,
                    "{alg} at {time}"
                );
                assert_eq!(p.check(&seed, want, time, None), Ok(p.step(time)));
            }
        }
    }

    fn six() -> (Params, Vec<u8>) {
        (
            Params {
                algorithm: Algorithm::Sha1,
                digits: 6,
                period: 30,
            },
            b"12345678901234567890".to_vec(),
        )
    }

    #[test]
    fn skew_is_one_step_either_side() {
        let (p, seed) = six();
        let now = 1_700_000_000;
        let s = p.step(now);
        for (step, ok) in [
            (s - 2, false),
            (s - 1, true),
            (s, true),
            (s + 1, true),
            (s + 2, false),
        ] {
            let code = p.code_at_step(&seed, step);
            assert_eq!(p.check(&seed, &code, now, None).is_ok(), ok, "step {step}");
        }
        let old = p.code_at_step(&seed, s - 2);
        assert_eq!(p.check(&seed, &old, now, None), Err(CodeError::Wrong));
    }

    #[test]
    fn replay_of_the_same_or_an_earlier_step_is_refused() {
        let (p, seed) = six();
        let now = 1_700_000_000;
        let s = p.step(now);
        let code = p.code_at_step(&seed, s);
        let accepted = p.check(&seed, &code, now, None).unwrap();
        assert_eq!(
            p.check(&seed, &code, now, Some(accepted)),
            Err(CodeError::Replayed)
        );
        let earlier = p.code_at_step(&seed, s - 1);
        assert_eq!(
            p.check(&seed, &earlier, now, Some(accepted)),
            Err(CodeError::Replayed)
        );
        let next = p.code_at_step(&seed, s + 1);
        assert_eq!(p.check(&seed, &next, now + 30, Some(accepted)), Ok(s + 1));
    }

    #[test]
    fn malformed_codes_are_named() {
        let (p, seed) = six();
        for bad in [
            "12345",
            "1234567",
            "12a456",
            "abcdef",
            "123 456",
            " 123456",
            "123456 ",
            "",
            "１２３４５６",
        ] {
            let err = p.check(&seed, bad, 1_700_000_000, None).unwrap_err();
            assert_eq!(err, CodeError::Malformed(6), "{bad:?}");
            assert!(err.to_string().contains("exactly 6 digits"));
        }
    }

    #[test]
    fn uri_is_escaped() {
        let c = TotpConfig {
            issuer: "Acme Box".into(),
            ..TotpConfig::default()
        };
        let uri = otpauth_uri(&c, "bob smith", b"12345678901234567890");
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Acme%20Box:bob%20smith?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Box&algorithm=SHA1&digits=6&period=30"
        );
    }
}
