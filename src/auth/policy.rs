//! Policy settings: MFA, lockout, passwords, TOTP configurations, audit retention.
//!
//! One [`Policy`] record lives in the store. It is shown and changed as flat
//! `key = value` lines (`coffer policy show|set`), so every setting has one
//! stable name; [`Policy::set`] validates a value before anything is written.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::password::HashCost;
use super::totp::{Algorithm, TotpConfig};
use super::{Account, Protocol, Role};

/// Who must, and who may, use a second factor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaPolicy {
    /// Users may enrol TOTP (and are offered enrolment at web login).
    pub allowed: bool,
    /// Roles that must use a second factor (unless exempt).
    pub required_for: BTreeSet<Role>,
    /// Protocols on which a code is demanded.
    pub protocols: BTreeSet<Protocol>,
    /// An SSH public key alone is enough (no code after a key).
    pub ssh_key_is_enough: bool,
}

impl MfaPolicy {
    /// Whether `account` must use a second factor (its role is required
    /// and it is not exempt).
    pub fn requires(&self, account: &Account) -> bool {
        self.required_for.contains(&account.role) && !account.mfa_exempt
    }
}

/// What an account's own security page shows of the policy and of its
/// settings, decided here so the page only draws it ([`super::Auth::own_sign_in`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnSignIn {
    /// The account may change its own password (its own setting, else its
    /// group's, else yes).
    pub may_change_password: bool,
    /// The policy requires a second factor of this account.
    pub mfa_required: bool,
    /// Users may enrol a second factor.
    pub mfa_allowed: bool,
    /// The shortest password the policy accepts.
    pub password_min_length: usize,
}

impl super::Auth {
    /// The caller's own sign-in settings ([`OwnSignIn`]): for an account
    /// acting for itself; the local operator has none.
    pub fn own_sign_in(&self, actor: &super::Actor) -> Result<OwnSignIn, super::AuthError> {
        let Some((name, _)) = &actor.account else {
            return Err(super::AuthError::Forbidden(
                "only a signed-in account has sign-in settings".into(),
            ));
        };
        let policy = self.policy()?;
        self.store.read(|r| {
            let account = super::accounts::load_account(r, name)?;
            let group = super::accounts::load_group(r, &account)?;
            Ok(OwnSignIn {
                may_change_password: super::accounts::may_change_own_password(
                    &account,
                    group.as_ref(),
                ),
                mfa_required: policy.mfa.requires(&account),
                mfa_allowed: policy.mfa.allowed,
                password_min_length: policy.password.min_length,
            })
        })
    }
}

impl Default for MfaPolicy {
    fn default() -> Self {
        Self {
            allowed: true,
            required_for: BTreeSet::new(),
            protocols: Protocol::ALL.iter().copied().collect(),
            ssh_key_is_enough: true,
        }
    }
}

/// How failures lock a login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutPolicy {
    /// Failures of one account from one address that lock it (for that address).
    pub max_failures: u32,
    /// Seconds in which failures are counted.
    pub window: u64,
    /// Seconds a lock lasts.
    pub duration: u64,
    /// Failures from one address, whatever the account, that lock the address
    /// for every account (0: off).
    pub address_max_failures: u32,
}

/// Most failures a lockout record remembers (bounds each record).
pub const MAX_REMEMBERED_FAILURES: u32 = 64;

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: 300,
            duration: 300,
            address_max_failures: 20,
        }
    }
}

/// NIST SP 800-63B password rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Minimum length in characters (Unicode scalar values).
    pub min_length: usize,
    /// Minimum zxcvbn score, 0 (anything) to 4 (very strong).
    pub min_score: u8,
    /// How many previous passwords may not be reused.
    pub history: usize,
    /// argon2id cost for new hashes.
    pub hash_cost: HashCost,
}

/// Longest password accepted, in characters (bounds the hashing work).
pub const MAX_PASSWORD_CHARS: usize = 200;
/// Largest history kept.
pub const MAX_HISTORY: usize = 24;

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 11,
            min_score: 3,
            history: 5,
            hash_cost: HashCost::default(),
        }
    }
}

/// Every policy setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// MFA.
    pub mfa: MfaPolicy,
    /// Lockout.
    pub lockout: LockoutPolicy,
    /// Passwords.
    pub password: PasswordPolicy,
    /// Named TOTP configurations; new enrolments use `totp_default`.
    pub totp: Vec<TotpConfig>,
    /// Name of the configuration new enrolments use.
    pub totp_default: String,
    /// How many audit events the store keeps.
    pub audit_retain: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            mfa: MfaPolicy::default(),
            lockout: LockoutPolicy::default(),
            password: PasswordPolicy::default(),
            totp: vec![TotpConfig::default()],
            totp_default: TotpConfig::default().name,
            audit_retain: 100_000,
        }
    }
}

/// A setting that could not be applied; the message says what is accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{key}: {reason}")]
pub struct PolicyError {
    /// The key as given.
    pub key: String,
    /// What is wrong and what is accepted.
    pub reason: String,
}

fn bad(key: &str, reason: impl Into<String>) -> PolicyError {
    PolicyError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, PolicyError> {
    match v {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => Err(bad(key, format!("{v:?} is not true or false"))),
    }
}

fn parse_num<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    v: &str,
    min: T,
    max: T,
) -> Result<T, PolicyError> {
    match v.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(bad(
            key,
            format!("{v:?} is not a whole number from {min} to {max}"),
        )),
    }
}

/// Parses `300`, `300s`, `5m`, `2h` or `1d` into seconds.
pub fn parse_duration(v: &str) -> Option<u64> {
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn parse_duration_in(key: &str, v: &str, min: u64, max: u64) -> Result<u64, PolicyError> {
    match parse_duration(v) {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(
            key,
            format!("{v:?} is not a duration from {min}s to {max}s (e.g. 300, 5m, 1h)"),
        )),
    }
}

fn parse_set<T: Ord + std::str::FromStr>(
    key: &str,
    v: &str,
    what: &str,
) -> Result<BTreeSet<T>, PolicyError> {
    if v == "none" || v.is_empty() {
        return Ok(BTreeSet::new());
    }
    v.split(',')
        .map(|s| {
            s.trim().parse::<T>().map_err(|_| {
                bad(
                    key,
                    format!("{s:?} is not one of {what} (comma-separated, or none)"),
                )
            })
        })
        .collect()
}

fn join<T: std::fmt::Display>(set: &BTreeSet<T>) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The settable keys with a line of help each, in display order.
pub const KEYS: &[(&str, &str)] = &[
    ("mfa.allowed", "users may enrol TOTP: true|false"),
    (
        "mfa.required_for",
        "roles that must use a code: system_admin,admin,user or none",
    ),
    (
        "mfa.protocols",
        "protocols that demand the code: ssh,https,ftps",
    ),
    (
        "mfa.ssh_key_is_enough",
        "an SSH key needs no code: true|false",
    ),
    (
        "lockout.max_failures",
        "failures that lock an account for one address: 1-64",
    ),
    (
        "lockout.window",
        "period in which failures count: 10s-1d (e.g. 5m)",
    ),
    ("lockout.duration", "how long a lock lasts: 10s-7d"),
    (
        "lockout.address_max_failures",
        "failures from one address that lock it for all accounts: 0 (off)-64",
    ),
    ("password.min_length", "minimum characters: 8-200"),
    ("password.min_score", "minimum zxcvbn strength score: 0-4"),
    (
        "password.history",
        "previous passwords that may not be reused: 0-24",
    ),
    (
        "password.hash_cost",
        "argon2id cost m=KiB,t=passes,p=lanes (default m=19456,t=2,p=1)",
    ),
    (
        "totp.config.NAME",
        "add or change a configuration: issuer=TEXT,algorithm=sha1|sha256|sha512; or 'remove'",
    ),
    (
        "totp.default",
        "name of the TOTP configuration new enrolments use",
    ),
    ("audit.retain", "audit events kept: 1000-10000000"),
];

impl Policy {
    /// Every setting as `(key, value)`, in the syntax [`Policy::set`] accepts.
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("mfa.allowed".into(), self.mfa.allowed.to_string()),
            ("mfa.required_for".into(), join(&self.mfa.required_for)),
            ("mfa.protocols".into(), join(&self.mfa.protocols)),
            (
                "mfa.ssh_key_is_enough".into(),
                self.mfa.ssh_key_is_enough.to_string(),
            ),
            (
                "lockout.max_failures".into(),
                self.lockout.max_failures.to_string(),
            ),
            ("lockout.window".into(), format!("{}s", self.lockout.window)),
            (
                "lockout.duration".into(),
                format!("{}s", self.lockout.duration),
            ),
            (
                "lockout.address_max_failures".into(),
                self.lockout.address_max_failures.to_string(),
            ),
            (
                "password.min_length".into(),
                self.password.min_length.to_string(),
            ),
            (
                "password.min_score".into(),
                self.password.min_score.to_string(),
            ),
            ("password.history".into(), self.password.history.to_string()),
            (
                "password.hash_cost".into(),
                self.password.hash_cost.to_string(),
            ),
        ];
        for c in &self.totp {
            out.push((
                format!("totp.config.{}", c.name),
                format!("issuer={},algorithm={}", c.issuer, c.algorithm),
            ));
        }
        out.push(("totp.default".into(), self.totp_default.clone()));
        out.push(("audit.retain".into(), self.audit_retain.to_string()));
        out
    }

    /// Applies one `key = value` setting, validating it first.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), PolicyError> {
        let v = value.trim();
        match key {
            "mfa.allowed" => self.mfa.allowed = parse_bool(key, v)?,
            "mfa.required_for" => {
                self.mfa.required_for = parse_set(key, v, "system_admin, admin, user")?
            }
            "mfa.protocols" => self.mfa.protocols = parse_set(key, v, "ssh, https, ftps")?,
            "mfa.ssh_key_is_enough" => self.mfa.ssh_key_is_enough = parse_bool(key, v)?,
            "lockout.max_failures" => {
                self.lockout.max_failures = parse_num(key, v, 1, MAX_REMEMBERED_FAILURES)?
            }
            "lockout.window" => self.lockout.window = parse_duration_in(key, v, 10, 86_400)?,
            "lockout.duration" => {
                self.lockout.duration = parse_duration_in(key, v, 10, 7 * 86_400)?
            }
            "lockout.address_max_failures" => {
                self.lockout.address_max_failures = parse_num(key, v, 0, MAX_REMEMBERED_FAILURES)?
            }
            "password.min_length" => {
                self.password.min_length = parse_num(key, v, 8, MAX_PASSWORD_CHARS)?
            }
            "password.min_score" => self.password.min_score = parse_num(key, v, 0, 4)?,
            "password.history" => self.password.history = parse_num(key, v, 0, MAX_HISTORY)?,
            "password.hash_cost" => {
                self.password.hash_cost = v.parse().map_err(|e: String| bad(key, e))?
            }
            "totp.default" => {
                if !self.totp.iter().any(|c| c.name == v) {
                    return Err(bad(
                        key,
                        format!("there is no TOTP configuration named {v:?}"),
                    ));
                }
                self.totp_default = v.to_string();
            }
            "audit.retain" => self.audit_retain = parse_num(key, v, 1000, 10_000_000)?,
            _ => match key.strip_prefix("totp.config.") {
                Some(name) => self.set_totp_config(key, name, v)?,
                None => {
                    return Err(bad(
                        key,
                        "unknown setting; `coffer policy show` lists the settings",
                    ));
                }
            },
        }
        Ok(())
    }

    fn set_totp_config(&mut self, key: &str, name: &str, v: &str) -> Result<(), PolicyError> {
        if name.is_empty()
            || name.len() > 32
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(
                key,
                "a configuration name is 1-32 letters, digits, - or _",
            ));
        }
        if v == "remove" {
            if self.totp_default == name {
                return Err(bad(
                    key,
                    "this is the default configuration; choose another default first",
                ));
            }
            let before = self.totp.len();
            self.totp.retain(|c| c.name != name);
            if self.totp.len() == before {
                return Err(bad(
                    key,
                    format!("there is no TOTP configuration named {name:?}"),
                ));
            }
            return Ok(());
        }
        let mut config = self
            .totp
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .unwrap_or_else(|| TotpConfig {
                name: name.to_string(),
                ..TotpConfig::default()
            });
        for part in v.split(',') {
            match part.split_once('=') {
                Some(("issuer", issuer)) => {
                    let issuer = issuer.trim();
                    if issuer.is_empty()
                        || issuer.chars().count() > 64
                        || issuer.contains(':')
                        || issuer.chars().any(char::is_control)
                    {
                        return Err(bad(key, "the issuer is 1-64 characters, without ':'"));
                    }
                    config.issuer = issuer.to_string();
                }
                Some(("algorithm", alg)) => {
                    config.algorithm = alg.trim().parse::<Algorithm>().map_err(|e| bad(key, e))?
                }
                _ => {
                    return Err(bad(
                        key,
                        format!("{part:?}: expected issuer=TEXT or algorithm=sha1|sha256|sha512"),
                    ));
                }
            }
        }
        match self.totp.iter_mut().find(|c| c.name == name) {
            Some(existing) => *existing = config,
            None => self.totp.push(config),
        }
        Ok(())
    }

    /// The TOTP configuration named `name`, or the default one.
    pub fn totp_config(&self, name: Option<&str>) -> Option<&TotpConfig> {
        let wanted = name.unwrap_or(&self.totp_default);
        self.totp.iter().find(|c| c.name == wanted)
    }
}

/// How a login proved the first factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstFactor {
    /// A password.
    Password,
    /// An SSH public key.
    PublicKey,
    /// An access token.
    Token,
}

/// What the second step of a login must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeDecision {
    /// No code; the login is complete.
    NotNeeded,
    /// No code; the user may be offered enrolment (where the protocol allows).
    Offer,
    /// Ask for a code.
    Ask,
    /// A code is required but the user has not enrolled.
    MustEnrol,
}

/// Decides whether a login needs a code. Rules, in order:
/// 1. an access token never needs a code;
/// 2. an SSH key needs none when `ssh_key_is_enough`;
/// 3. on a protocol outside `mfa.protocols` no code is asked;
/// 4. an enrolled user is always asked (even when exempt: exemption lifts the
///    requirement, not a protection the user chose);
/// 5. a user whose role requires MFA and who is not exempt must enrol;
/// 6. otherwise, when MFA is allowed and the user neither is exempt nor chose
///    to skip permanently, enrolment is offered.
pub fn decide(
    policy: &MfaPolicy,
    account: &Account,
    enrolled: bool,
    protocol: Protocol,
    first: FirstFactor,
) -> CodeDecision {
    if first == FirstFactor::Token {
        return CodeDecision::NotNeeded;
    }
    if first == FirstFactor::PublicKey && policy.ssh_key_is_enough {
        return CodeDecision::NotNeeded;
    }
    if !policy.protocols.contains(&protocol) {
        return CodeDecision::NotNeeded;
    }
    if enrolled {
        return CodeDecision::Ask;
    }
    if policy.requires(account) {
        return CodeDecision::MustEnrol;
    }
    if policy.allowed && !account.mfa_exempt && !account.mfa_skip {
        return CodeDecision::Offer;
    }
    CodeDecision::NotNeeded
}

/// Why a proposed password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// Checks a proposed password against the policy (not the history: that
/// needs the stored hashes; see [`super::password::Lease::reused`]).
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn show_and_set_round_trip() {
        let mut p = Policy::default();
        p.set("mfa.required_for", "admin,system_admin").unwrap();
        p.set("lockout.window", "10m").unwrap();
        p.set("totp.config.work", "issuer=Acme Corp,algorithm=sha256")
            .unwrap();
        p.set("totp.default", "work").unwrap();
        let mut q = Policy::default();
        for (k, v) in p.entries() {
            q.set(&k, &v).unwrap();
        }
        assert_eq!(p, q);
        assert_eq!(p.lockout.window, 600);
        assert_eq!(p.totp_config(None).unwrap().algorithm, Algorithm::Sha256);
    }

    #[test]
    fn bad_settings_say_what_is_accepted() {
        let mut p = Policy::default();
        let cases = [
            ("mfa.allowed", "maybe", "not true or false"),
            ("mfa.required_for", "root", "not one of"),
            ("mfa.protocols", "telnet", "not one of"),
            ("lockout.max_failures", "0", "from 1 to 64"),
            ("lockout.max_failures", "65", "from 1 to 64"),
            ("lockout.window", "5y", "not a duration"),
            ("password.min_length", "7", "from 8 to 200"),
            ("password.min_length", "201", "from 8 to 200"),
            ("password.min_score", "5", "from 0 to 4"),
            ("password.hash_cost", "m=1", "m="),
            ("totp.default", "nope", "no TOTP configuration"),
            ("totp.config.x", "algorithm=md5", "sha1"),
            ("totp.config.x", "issuer=a:b", "without ':'"),
            ("totp.config.bad name", "issuer=x", "configuration name"),
            ("totp.config.default", "remove", "default configuration"),
            ("no.such", "1", "unknown setting"),
        ];
        for (k, v, want) in cases {
            let err = p.set(k, v).unwrap_err().to_string();
            assert!(err.contains(want), "{k}={v}: {err}");
        }
        assert_eq!(p, Policy::default(), "a refused setting changes nothing");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("300"), Some(300));
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("1d"), Some(86_400));
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("-5"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }
}
