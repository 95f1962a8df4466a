//! TOTP (RFC 6238): configurations, code checks with replay protection,
//! otpauth:// URIs.
//!
//! Codes are computed by the totp-rs crate (RFC 4226 truncation of an HMAC
//! of the step counter, RFC 6238 steps). What stays here is what a server
//! adds around it:
//!
//! - The window: the current step and one step either side. totp-rs's own
//!   `Totp::check` stops at the first step that matches, so its time says
//!   which step matched; here every candidate step is computed and compared
//!   in constant time (`subtle`), with no early exit.
//! - The replay rule: only a step later than the last one accepted for the
//!   enrolment passes, so a code, and every code before it, is good once.
//!   The caller stores the new step in the same write transaction as the
//!   check ([`crate::auth::Auth`]'s second-factor check).
//! - The named configurations, the otpauth:// URI and the seed's sealing
//!   (in `mfa`); seeds come from the operating system's RNG, not totp-rs.

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
    /// Seed length recommended by RFC 4226/6238 for this hash.
    pub fn seed_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

impl From<Algorithm> for totp_rs::Algorithm {
    fn from(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
            Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
            Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
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
    /// RFC 4226's HOTP of the step counter, by totp-rs. An empty string when
    /// totp-rs refuses the parameters (digits outside 6-8, a seed under 128
    /// bits, a zero period) or the step's time does not fit: it matches no
    /// code.
    pub fn code_at_step(&self, seed: &[u8], step: u64) -> Zeroizing<String> {
        match self.generator(seed) {
            Some(generator) => self.code_with(&generator, step),
            None => Zeroizing::new(String::new()),
        }
    }

    /// totp-rs's generator for `seed` with these parameters, or `None` when
    /// it refuses them. Only [`totp_rs::Builder::build`] is used, never
    /// `build_noncompliant`: the checks it makes are what keep
    /// [`totp_rs::Totp::generate`] from panicking (digits of 10 or more, a
    /// zero period).
    fn generator(&self, seed: &[u8]) -> Option<totp_rs::Totp> {
        totp_rs::Builder::new()
            .with_algorithm(self.algorithm.into())
            .with_digits(u8::try_from(self.digits).ok()?)
            .with_step_duration(self.period)
            .with_skew(0)
            .with_secret(seed.to_vec())
            .build()
            .ok()
    }

    /// The code of `generator` for step `step`.
    fn code_with(&self, generator: &totp_rs::Totp, step: u64) -> Zeroizing<String> {
        match step.checked_mul(self.period) {
            Some(time) => Zeroizing::new(generator.generate(time).to_string()),
            None => Zeroizing::new(String::new()),
        }
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
        let generator = self.generator(seed).ok_or(CodeError::Wrong)?;
        let current = self.step(now);
        let mut matched = None;
        // Check every candidate (no early exit) so timing says nothing.
        for step in [
            current.saturating_sub(1),
            current,
            current.saturating_add(1),
        ] {
            let candidate = self.code_with(&generator, step);
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
    fn parameters_totp_rs_refuses_match_nothing_and_never_panic() {
        let (p, seed) = six();
        let now = 1_700_000_000;
        let code = p.code_at_step(&seed, p.step(now));
        for (params, seed) in [
            (
                Params {
                    digits: 10,
                    ..p.clone()
                },
                seed.clone(),
            ),
            (
                Params {
                    digits: 5,
                    ..p.clone()
                },
                seed.clone(),
            ),
            (
                Params {
                    period: 0,
                    ..p.clone()
                },
                seed.clone(),
            ),
            (p.clone(), seed[..15].to_vec()),
        ] {
            assert_eq!(params.code_at_step(&seed, params.step(now)).as_str(), "");
            let typed = "0".repeat(params.digits as usize);
            assert!(params.check(&seed, &typed, now, None).is_err());
        }
        assert!(p.check(&seed, &code, now, None).is_ok());
        // A step whose time does not fit in 64 bits has no code.
        assert_eq!(p.code_at_step(&seed, u64::MAX).as_str(), "");
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
