//! Audit events with stable numeric ids.
//!
//! Every security event is written to the store's `audit` table inside the same
//! transaction as the change it records, and mirrored to the log (`tracing`)
//! with the same fields. Ids are part of the public contract: never renumber.
//! Details never carry a secret (password, code, token, seed).

use std::net::IpAddr;

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::store::{AUDIT, ReadTx, StoreError, WriteTx};

macro_rules! events {
    ($($(#[$doc:meta])* $name:ident = $id:literal, $slug:literal;)*) => {
        /// What happened. The numeric id is stable; see [`Event::id`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum Event { $($(#[$doc])* $name,)* }

        impl Event {
            /// Every event, in id order.
            pub const ALL: &'static [Event] = &[$(Event::$name,)*];

            /// The stable numeric id.
            pub fn id(self) -> u16 {
                match self { $(Event::$name => $id,)* }
            }

            /// The stable short name, e.g. `login_failed`.
            pub fn slug(self) -> &'static str {
                match self { $(Event::$name => $slug,)* }
            }

            /// The event with this id or short name.
            pub fn parse(text: &str) -> Option<Event> {
                let id = text.parse::<u16>().ok();
                Event::ALL.iter().copied().find(|e| Some(e.id()) == id || e.slug() == text)
            }
        }
    };
}

events! {
    /// A login completed.
    LoginGranted = 1000, "login_granted";
    /// Wrong password, unknown account or unknown key.
    LoginFailed = 1001, "login_failed";
    /// A login was attempted while its account/address pair was locked.
    LoginWhileLocked = 1002, "login_while_locked";
    /// Too many failures: the account is now locked for that address.
    AccountLocked = 1003, "account_locked";
    /// The account or its group is disabled.
    LoginDisabled = 1004, "login_disabled";
    /// The source address is not allowed for the account or its group.
    AddressBlocked = 1005, "address_blocked";
    /// The account needs a code, but the method cannot carry one.
    CodeUnsupported = 1006, "code_unsupported";
    /// The account must enrol MFA first and cannot do so on this protocol.
    EnrolmentRequired = 1007, "enrolment_required";
    /// A web or API session ended: signed out, expired, or revoked.
    SessionEnded = 1008, "session_ended";
    /// A login with valid credentials was refused because the account's name
    /// is outside the account-name alphabet (a store from before the rule);
    /// an administrator must rename the account.
    LoginNameRefused = 1009, "login_name_refused";
    /// An account's home folder was refused: its path (after `${USER}`
    /// substitution) is not a safe relative path, or a symbolic link or a
    /// non-folder sits on it. The login or the file session is refused.
    HomeRefused = 1010, "home_refused";
    /// A second-factor code was accepted.
    CodeAccepted = 1100, "code_accepted";
    /// A second-factor code was wrong or malformed.
    CodeRejected = 1101, "code_rejected";
    /// A code that was already used (or an older one) was presented again.
    CodeReplayed = 1102, "code_replayed";
    /// A recovery code was used in place of a code.
    RecoveryCodeUsed = 1103, "recovery_code_used";
    /// New recovery codes were issued (the old ones are void).
    RecoveryCodesIssued = 1104, "recovery_codes_issued";
    /// A TOTP enrolment was started.
    EnrolmentStarted = 1200, "enrolment_started";
    /// A TOTP enrolment was confirmed with a valid code.
    EnrolmentConfirmed = 1201, "enrolment_confirmed";
    /// A TOTP enrolment confirmation failed.
    EnrolmentFailed = 1202, "enrolment_failed";
    /// TOTP was removed from an account (reset).
    MfaReset = 1203, "mfa_reset";
    /// The user chose to skip MFA enrolment permanently.
    EnrolmentSkipped = 1204, "enrolment_skipped";
    /// An access token was created.
    TokenCreated = 1300, "token_created";
    /// An access token was used to log in.
    TokenUsed = 1301, "token_used";
    /// An access token was revoked.
    TokenRevoked = 1302, "token_revoked";
    /// An access token was refused (expired, revoked, wrong protocol).
    TokenRejected = 1303, "token_rejected";
    /// Policy settings changed.
    PolicyChanged = 1400, "policy_changed";
    /// An account was created.
    AccountCreated = 1500, "account_created";
    /// An account was removed.
    AccountRemoved = 1501, "account_removed";
    /// An account was disabled.
    AccountDisabled = 1502, "account_disabled";
    /// An account was enabled.
    AccountEnabled = 1503, "account_enabled";
    /// A password was set or changed.
    PasswordChanged = 1504, "password_changed";
    /// A proposed password was refused by the policy.
    PasswordRejected = 1505, "password_rejected";
    /// An account's lockouts were cleared.
    AccountUnlocked = 1506, "account_unlocked";
    /// An account's settings changed.
    AccountChanged = 1507, "account_changed";
    /// A public key was added to an account.
    PublicKeyAdded = 1508, "public_key_added";
    /// A public key was removed from an account.
    PublicKeyRemoved = 1509, "public_key_removed";
    /// A group was created.
    GroupCreated = 1600, "group_created";
    /// A group's settings changed.
    GroupChanged = 1601, "group_changed";
    /// A group was removed.
    GroupRemoved = 1602, "group_removed";
    /// The box was claimed: its owner account exists.
    BoxClaimed = 1700, "box_claimed";
    /// A wrong claim code was entered in the setup wizard.
    ClaimRefused = 1701, "claim_refused";
    /// The HTTPS certificate was replaced (uploaded or regenerated).
    CertificateChanged = 1702, "certificate_changed";
    /// The owner's password and two-factor authentication were reset at the
    /// technician console (physical presence shown with an on-screen code).
    ConsoleReset = 1800, "console_reset";
    /// The technician PIN was set or changed.
    ConsolePinSet = 1801, "console_pin_set";
    /// The technician PIN was removed.
    ConsolePinCleared = 1802, "console_pin_cleared";
    /// A wrong technician PIN was typed at the console.
    ConsolePinFailed = 1803, "console_pin_failed";
    /// The console changed an interface's network settings.
    NetworkChanged = 1804, "network_changed";
    /// The console rebooted the box.
    ConsoleReboot = 1805, "console_reboot";
    /// A factory reset began (recorded in the log only: the store is wiped).
    FactoryReset = 1806, "factory_reset";
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.id(), self.slug())
    }
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Sequence number, increasing.
    pub seq: u64,
    /// When it happened.
    pub at: Timestamp,
    /// Stable numeric id of the event.
    pub id: u16,
    /// The event.
    pub event: Event,
    /// The account concerned, if any (the name as presented for failed logins).
    pub account: Option<String>,
    /// The source address, when the event came over the network.
    pub address: Option<IpAddr>,
    /// `ssh`, `https`, `ftps`, `console` or `cli`.
    pub protocol: Option<String>,
    /// `password`, `publickey`, `keyboard-interactive`, `totp`, `recovery-code`, `token`, ...
    pub method: Option<String>,
    /// Free text without secrets, e.g. the reason of a denial.
    pub detail: String,
}

/// What a caller knows about an event before it gets a sequence number.
#[derive(Clone, Debug, Default)]
pub struct Entry<'a> {
    /// The account concerned.
    pub account: Option<&'a str>,
    /// The source address.
    pub address: Option<IpAddr>,
    /// The protocol.
    pub protocol: Option<&'a str>,
    /// The method.
    pub method: Option<&'a str>,
    /// Free text without secrets.
    pub detail: String,
}

/// Appends an event to the log inside `tx`, and mirrors it to `tracing`.
/// Trims the log to `retain` events.
pub fn append(
    tx: &mut WriteTx,
    at: Timestamp,
    event: Event,
    entry: Entry<'_>,
    retain: u64,
) -> Result<u64, StoreError> {
    let mut table = tx.raw().open_table(AUDIT)?;
    let seq = match table.last()? {
        Some((k, _)) => k.value().saturating_add(1),
        None => 1,
    };
    let record = Record {
        seq,
        at,
        id: event.id(),
        event,
        account: entry.account.map(str::to_string),
        address: entry.address,
        protocol: entry.protocol.map(str::to_string),
        method: entry.method.map(str::to_string),
        detail: entry.detail,
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| StoreError::Database(e.to_string()))?;
    table.insert(seq, bytes.as_slice())?;
    // Trim in small batches so one write never does unbounded work.
    let mut excess = table.len()?.saturating_sub(retain.max(1)).min(64);
    while excess > 0 {
        if table.pop_first()?.is_none() {
            break;
        }
        excess -= 1;
    }
    tracing::info!(
        event_id = record.id,
        event = record.event.slug(),
        account = record.account.as_deref().unwrap_or("-"),
        address = %record.address.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
        protocol = record.protocol.as_deref().unwrap_or("-"),
        method = record.method.as_deref().unwrap_or("-"),
        detail = %record.detail,
        "audit"
    );
    Ok(seq)
}

/// Which events [`query`] returns.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this account.
    pub account: Option<String>,
    /// Only these events (empty: all).
    pub events: Vec<Event>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// At most this many, newest first (0: no limit).
    pub limit: usize,
}

/// The newest events that pass `filter`, newest first.
pub fn query(r: &ReadTx, filter: &Filter) -> Result<Vec<Record>, StoreError> {
    let table = match r.raw().open_table(AUDIT) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for row in table.iter()?.rev() {
        let (k, v) = row?;
        let record: Record =
            serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                table: "audit",
                key: k.value().to_string(),
                detail: e.to_string(),
            })?;
        if filter.since.is_some_and(|s| record.at < s) {
            break;
        }
        if filter
            .account
            .as_ref()
            .is_some_and(|a| record.account.as_ref() != Some(a))
        {
            continue;
        }
        if !filter.events.is_empty() && !filter.events.contains(&record.event) {
            continue;
        }
        out.push(record);
        if filter.limit != 0 && out.len() >= filter.limit {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_slugs_are_unique_and_parse_back() {
        let mut ids: Vec<u16> = Event::ALL.iter().map(|e| e.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Event::ALL.len());
        for e in Event::ALL {
            assert_eq!(Event::parse(e.slug()), Some(*e));
            assert_eq!(Event::parse(&e.id().to_string()), Some(*e));
        }
        assert_eq!(Event::parse("nonsense"), None);
        // The contract: these ids never change.
        assert_eq!(Event::LoginGranted.id(), 1000);
        assert_eq!(Event::LoginFailed.id(), 1001);
        assert_eq!(Event::CodeReplayed.id(), 1102);
        assert_eq!(Event::TokenRevoked.id(), 1302);
        assert_eq!(Event::ConsoleReset.id(), 1800);
        assert_eq!(Event::FactoryReset.id(), 1806);
    }
}
