//! What the technician console may change, decided here like every other
//! change: the owner reset, the technician PIN, and the console's records.
//!
//! The console itself only translates key presses into these calls. Physical
//! presence (the on-screen code typed back) is the console's to check; what
//! a reset does, and that it is one transaction with its audit event, is the
//! core's.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::accounts::{audit_in, load_account};
use super::lockout::clear_account;
use super::{ACCOUNTS, Actor, Auth, AuthError, PASSWORDS, PasswordRecord, RECOVERY, TOTP};
use crate::audit::Event;
use crate::clock::Timestamp;
use crate::store::{Read as _, Table};

/// Wrong PINs in a row that pause PIN checks.
pub const PIN_MAX_FAILURES: u32 = 5;
/// How long PIN checks pause after that, in seconds.
pub const PIN_LOCK_SECONDS: u64 = 300;
/// Shortest and longest PIN.
pub const PIN_LENGTH: std::ops::RangeInclusive<usize> = 4..=64;

/// The technician PIN: an argon2id hash and the count of recent failures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PinRecord {
    hash: String,
    set_at: Timestamp,
    #[serde(default)]
    failures: u32,
    #[serde(default)]
    paused_until: Option<Timestamp>,
}

/// The console's table: `pin`.
pub(crate) const CONSOLE: Table<PinRecord> = Table::new("console");

/// What a PIN check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PinCheck {
    /// No PIN is set: the console asks for none.
    NotSet,
    /// The PIN is right.
    Accepted,
    /// The PIN is wrong; this many tries are left before checks pause.
    Wrong {
        /// Tries left.
        left: u32,
    },
    /// Too many wrong PINs: no check until then.
    PausedUntil(Timestamp),
}

impl Actor {
    /// The technician at the console (a local operator).
    pub fn console() -> Self {
        Self {
            account: None,
            protocol: "console",
            address: None,
            access_token: None,
        }
    }
}

fn check_pin_text(pin: &str) -> Result<(), AuthError> {
    let n = pin.chars().count();
    if !PIN_LENGTH.contains(&n) || pin.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(AuthError::Invalid(format!(
            "a technician PIN has {} to {} characters and no spaces",
            PIN_LENGTH.start(),
            PIN_LENGTH.end()
        )));
    }
    Ok(())
}

impl Auth {
    /// Sets (or replaces) the technician PIN. Only the owner or the local
    /// operator may.
    pub fn console_pin_set(&self, actor: &Actor, pin: &str) -> Result<(), AuthError> {
        actor.require_owner()?;
        check_pin_text(pin)?;
        let hash = self.hash_password(pin)?;
        let now = self.now();
        self.store.write(|tx| {
            tx.put(
                CONSOLE,
                "pin",
                &PinRecord {
                    hash: hash.clone(),
                    set_at: now,
                    failures: 0,
                    paused_until: None,
                },
            )?;
            audit_in(
                tx,
                now,
                Event::ConsolePinSet,
                actor.entry(None, String::new()),
            )
        })
    }

    /// Removes the technician PIN.
    pub fn console_pin_clear(&self, actor: &Actor) -> Result<(), AuthError> {
        actor.require_owner()?;
        let now = self.now();
        self.store.write(|tx| {
            if !tx.remove(CONSOLE, "pin")? {
                return Err(AuthError::Invalid("no technician PIN is set".into()));
            }
            audit_in(
                tx,
                now,
                Event::ConsolePinCleared,
                actor.entry(None, String::new()),
            )
        })
    }

    /// Whether a technician PIN is set: the local operator (the console,
    /// the command line) or the system administrator.
    pub fn console_pin_is_set(&self, actor: &Actor) -> Result<bool, AuthError> {
        actor.may_administer_box()?;
        Ok(self.store.read(|r| r.get(CONSOLE, "pin"))?.is_some())
    }

    /// Checks a PIN typed at the console. Wrong PINs are counted and
    /// audited; after [`PIN_MAX_FAILURES`] in a row, checks pause for
    /// [`PIN_LOCK_SECONDS`].
    pub fn console_pin_check(&self, pin: &str) -> Result<PinCheck, AuthError> {
        let now = self.now();
        let Some(record) = self.store.read(|r| r.get(CONSOLE, "pin"))? else {
            return Ok(PinCheck::NotSet);
        };
        if let Some(until) = record.paused_until.filter(|&t| t > now) {
            return Ok(PinCheck::PausedUntil(until));
        }
        let right = self.verify_password(pin, Some(&record.hash)) == Some(true);
        let actor = Actor::console();
        self.store.write(|tx| {
            let Some(mut current) = tx.get(CONSOLE, "pin")? else {
                return Ok(PinCheck::NotSet);
            };
            if right {
                if current.failures != 0 || current.paused_until.is_some() {
                    current.failures = 0;
                    current.paused_until = None;
                    tx.put(CONSOLE, "pin", &current)?;
                }
                return Ok(PinCheck::Accepted);
            }
            current.failures = current.failures.saturating_add(1);
            let answer = if current.failures >= PIN_MAX_FAILURES {
                current.failures = 0;
                let until = now.saturating_add(PIN_LOCK_SECONDS);
                current.paused_until = Some(until);
                PinCheck::PausedUntil(until)
            } else {
                PinCheck::Wrong {
                    left: PIN_MAX_FAILURES - current.failures,
                }
            };
            tx.put(CONSOLE, "pin", &current)?;
            audit_in(
                tx,
                now,
                Event::ConsolePinFailed,
                actor.entry(None, "wrong technician PIN".into()),
            )?;
            Ok(answer)
        })
    }

    /// Resets the owner at the console: a new password (the policy applies,
    /// the history does not: the old password is forgotten), TOTP and
    /// recovery codes removed, lockouts cleared, the account enabled. One
    /// transaction with its audit event. Returns the owner's name.
    pub fn console_reset_owner(
        &self,
        actor: &Actor,
        new_password: &str,
    ) -> Result<String, AuthError> {
        actor.require_owner()?;
        let owner = self
            .owner(actor)?
            .ok_or_else(|| AuthError::Invalid("this box has no owner yet (unclaimed)".into()))?;
        let policy = self.policy()?;
        super::policy::check(new_password, &owner, &policy.password)
            .map_err(|r| AuthError::PasswordRefused(r.0))?;
        let hash = Zeroizing::new(self.hash_password(new_password)?);
        let now = self.now();
        self.store.write(|tx| {
            let mut account = load_account(tx, &owner)?;
            tx.put(
                PASSWORDS,
                &owner,
                &PasswordRecord {
                    hash: hash.to_string(),
                    changed_at: now,
                    history: Vec::new(),
                },
            )?;
            let had_totp = tx.remove(TOTP, &owner)?;
            tx.remove(RECOVERY, &owner)?;
            let cleared = clear_account(tx, &owner)?;
            let was_disabled = account.disabled;
            if was_disabled {
                account.disabled = false;
                tx.put(ACCOUNTS, &owner, &account)?;
            }
            let detail = format!(
                "new password{}{}{}",
                if had_totp {
                    "; TOTP and recovery codes removed"
                } else {
                    ""
                },
                if cleared > 0 {
                    "; lockouts cleared"
                } else {
                    ""
                },
                if was_disabled {
                    "; account enabled"
                } else {
                    ""
                },
            );
            audit_in(
                tx,
                now,
                Event::ConsoleReset,
                actor.entry(Some(&owner), detail),
            )?;
            Ok::<_, AuthError>(())
        })?;
        // Whoever held the owner's sessions (an intruder, maybe) is out.
        self.credentials_changed(&owner, "console owner reset");
        Ok(owner)
    }

    /// Records a console action that happened outside the store (a network
    /// change, a reboot) in the audit log.
    pub fn console_record(
        &self,
        actor: &Actor,
        event: Event,
        detail: &str,
    ) -> Result<(), AuthError> {
        if !matches!(event, Event::NetworkChanged | Event::ConsoleReboot) {
            return Err(AuthError::Invalid(format!(
                "{} is not a console record",
                event.slug()
            )));
        }
        actor.require_owner()?;
        let detail: String = detail
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        self.audit(event, actor.entry(None, detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Method, Protocol, flow::Login};
    use crate::clock::ManualClock;

    const PW: &str = "correct-horse-battery-staple-9";
    const NEW: &str = "another-long-passphrase-for-the-owner-7";

    fn core() -> (Auth, ManualClock, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_795_392_000);
        let auth = crate::auth::test_core(dir.path(), clock.clone(), Some(("owner", PW)));
        (auth, clock, dir)
    }

    fn events(auth: &Auth) -> Vec<Event> {
        auth.audit_log(&Actor::cli(), &crate::audit::Filter::default())
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect()
    }

    #[test]
    fn pin_is_hashed_checked_counted_and_paused() {
        let (auth, clock, _d) = core();
        assert_eq!(auth.console_pin_check("1234").unwrap(), PinCheck::NotSet);
        assert!(auth.console_pin_set(&Actor::console(), "12").is_err());
        auth.console_pin_set(&Actor::cli(), "482913").unwrap();
        assert!(auth.console_pin_is_set(&Actor::console()).unwrap());
        assert_eq!(
            auth.console_pin_check("482913").unwrap(),
            PinCheck::Accepted
        );
        for left in (1..PIN_MAX_FAILURES).rev() {
            assert_eq!(
                auth.console_pin_check("000000").unwrap(),
                PinCheck::Wrong { left }
            );
        }
        let paused = auth.console_pin_check("000000").unwrap();
        assert_eq!(
            paused,
            PinCheck::PausedUntil(crate::clock::Clock::now(&clock) + PIN_LOCK_SECONDS)
        );
        // Even the right PIN waits out the pause.
        assert!(matches!(
            auth.console_pin_check("482913").unwrap(),
            PinCheck::PausedUntil(_)
        ));
        clock.advance(PIN_LOCK_SECONDS + 1);
        assert_eq!(
            auth.console_pin_check("482913").unwrap(),
            PinCheck::Accepted
        );
        assert!(events(&auth).contains(&Event::ConsolePinFailed));
        auth.console_pin_clear(&Actor::cli()).unwrap();
        assert!(!auth.console_pin_is_set(&Actor::console()).unwrap());
        assert!(auth.console_pin_clear(&Actor::cli()).is_err());
        // The hash, not the PIN, is stored.
        let raw = std::fs::read(auth.store().dir().join(crate::store::STORE_FILE)).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"482913"));
    }

    #[test]
    fn owner_reset_is_one_change_with_its_event() {
        let (auth, _clock, _d) = core();
        auth.totp_start(&Actor::cli(), "owner", None, None).unwrap();
        assert!(
            auth.console_reset_owner(&Actor::console(), "short")
                .is_err()
        );
        let owner = auth.console_reset_owner(&Actor::console(), NEW).unwrap();
        assert_eq!(owner, "owner");
        assert_eq!(events(&auth)[0], Event::ConsoleReset);
        let step = Login::new("owner", "192.0.2.1".parse().unwrap(), Protocol::Ssh).password(
            &auth,
            Method::KeyboardInteractive,
            NEW,
        );
        assert!(
            matches!(step, crate::auth::flow::Step::Granted(_)),
            "{step:?}"
        );
        let session_actor = Actor {
            account: Some(("admin".into(), crate::auth::Role::Admin)),
            protocol: "ssh",
            address: None,
            access_token: None,
        };
        assert!(auth.console_reset_owner(&session_actor, NEW).is_err());
        assert!(
            auth.console_record(&Actor::console(), Event::LoginGranted, "x")
                .is_err()
        );
        auth.console_record(&Actor::console(), Event::NetworkChanged, "eth0: DHCP")
            .unwrap();
    }
}
