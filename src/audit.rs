//! Audit events with stable numeric ids.
//!
//! Every security event is written to the store's `audit` table inside the same
//! transaction as the change it records, and mirrored to the log (`tracing`)
//! with the same fields. Ids are part of the public contract: never renumber.
//! Details never carry a secret (password, code, token, seed).
//!
//! The log is bounded three ways, so that no one outside can flush it:
//! - every text field is cleaned on the way in ([`clean`]): control
//!   characters escaped, an account name kept to [`MAX_NAME_CHARS`]
//!   characters and a detail to [`MAX_DETAIL_CHARS`];
//! - a flood is one record: an event of a flooding kind ([`Event::floods`])
//!   that repeats one already logged for the same address (an IPv6 address
//!   counts as its /64) within [`FLOOD_WINDOW`] seconds adds to that
//!   record's `repeated` count instead of writing a new one;
//! - the log keeps at most the policy's `audit.retain` records and at most
//!   [`BYTE_BUDGET`] bytes of them, dropping the oldest first.

use std::net::IpAddr;

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::store::{AUDIT, AUDIT_BYTES, ReadTx, StoreError, WriteTx};

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
    /// Too many wrong second factors for one account, from all addresses
    /// together: code entry for the account is locked (the owner's
    /// dashboard shows it until it lifts or is cleared).
    CodeEntryLocked = 1011, "code_entry_locked";
    /// An address-wide lock was cleared by an administrator.
    AddressUnlocked = 1012, "address_unlocked";
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
    /// A change of credentials ended an account's live sessions (web
    /// sessions, SSH connections); the detail says how many, and why.
    SessionsRevoked = 1510, "sessions_revoked";
    /// An account was renamed: its credentials, tokens, locks and (when
    /// derived from the name) home folder follow the new name, which the
    /// record names; the detail gives the old one.
    AccountRenamed = 1511, "account_renamed";
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

impl Event {
    /// Events an outsider can repeat at will (each try while locked out):
    /// repeats from one address within [`FLOOD_WINDOW`] share one record.
    pub fn floods(self) -> bool {
        matches!(self, Event::LoginWhileLocked)
    }
}

/// The longest account name a record keeps, in characters (longer names
/// are refused at login before anything is recorded; see
/// [`crate::auth::flow`]).
pub const MAX_NAME_CHARS: usize = 64;

/// The longest detail a record keeps, in characters.
pub const MAX_DETAIL_CHARS: usize = 512;

/// Seconds during which repeats of a flooding event from one address are
/// counted in the record of the first.
pub const FLOOD_WINDOW: u64 = 300;

/// The most bytes the log keeps (records as stored), whatever its count.
/// With every field bounded a record is under 1.5 KiB, so the budget holds
/// at least 20,000 of the largest and typically 150,000 ordinary ones.
#[cfg(not(test))]
pub const BYTE_BUDGET: u64 = 32 * 1024 * 1024;
/// A small budget, so unit tests reach it quickly.
#[cfg(test)]
pub const BYTE_BUDGET: u64 = 256 * 1024;

/// How many of the newest records a flooding event is compared with.
const FLOOD_LOOKBACK: usize = 32;

/// Text made safe for a record and for a terminal: every control character
/// (escape sequences, line breaks, NUL, ...) is written as `\u{..}`, and
/// text longer than `max` characters is cut, ending in `…`.
pub fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4 + 8));
    let mut chars = 0usize;
    for c in text.chars() {
        let piece: String = if c.is_control() {
            c.escape_unicode().collect()
        } else {
            c.into()
        };
        let len = piece.chars().count();
        if chars + len > max {
            out.push('…');
            break;
        }
        out.push_str(&piece);
        chars += len;
    }
    out
}

/// Text for a terminal, line by line: like [`clean`] without a length
/// limit, but line breaks and tabs stay. Every human-readable output (the
/// command line, the console) goes through it, so a name or detail chosen
/// to carry escape sequences shows them as text.
pub fn for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether two addresses count as one source (see [`crate::address::peer_key`]).
fn same_source(a: IpAddr, b: IpAddr) -> bool {
    crate::address::peer_key(a) == crate::address::peer_key(b)
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
    /// How many more times the same flooding event came from the same
    /// source within [`FLOOD_WINDOW`] of `at` (0: it came once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeated: u64,
    /// When the last of those repeats came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<Timestamp>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
/// A repeat of a flooding event is counted in its first record instead.
/// Trims the log to `retain` records and [`BYTE_BUDGET`] bytes. Returns
/// the sequence number of the record written or counted in.
pub fn append(
    tx: &mut WriteTx,
    at: Timestamp,
    event: Event,
    entry: Entry<'_>,
    retain: u64,
) -> Result<u64, StoreError> {
    let raw: &redb::WriteTransaction = tx.raw();
    let mut table = raw.open_table(AUDIT)?;
    let mut sizes = raw.open_table(AUDIT_BYTES)?;
    let mut total = stored_bytes(&sizes, &table)?;
    let record = Record {
        seq: 0,
        at,
        id: event.id(),
        event,
        account: entry.account.map(|a| clean(a, MAX_NAME_CHARS)),
        address: entry.address,
        protocol: entry.protocol.map(|p| clean(p, MAX_NAME_CHARS)),
        method: entry.method.map(|m| clean(m, MAX_NAME_CHARS)),
        detail: clean(&entry.detail, MAX_DETAIL_CHARS),
        repeated: 0,
        last_at: None,
    };
    if event.floods()
        && let Some((seq, grew)) = count_repeat(&mut table, &record)?
    {
        sizes.insert("bytes", total.saturating_add(grew))?;
        return Ok(seq);
    }
    let seq = match table.last()? {
        Some((k, _)) => k.value().saturating_add(1),
        None => 1,
    };
    let record = Record { seq, ..record };
    let bytes = encode(&record)?;
    total = total.saturating_add(bytes.len() as u64);
    table.insert(seq, bytes.as_slice())?;
    // Trim in small batches so one write never does unbounded work (a
    // record's bytes are bounded, so a few pops bring it under budget).
    let mut excess = table.len()?.saturating_sub(retain.max(1)).min(64);
    let mut popped = 0;
    while (excess > 0 || total > BYTE_BUDGET) && popped < 64 && table.len()? > 1 {
        match table.pop_first()? {
            Some((_, v)) => total = total.saturating_sub(v.value().len() as u64),
            None => break,
        }
        excess = excess.saturating_sub(1);
        popped += 1;
    }
    sizes.insert("bytes", total)?;
    mirror(&record);
    Ok(seq)
}

fn encode(record: &Record) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::Database(e.to_string()))
}

/// The bytes the log's records take, as kept beside the log; counted once
/// from the records for a store made before the count was kept.
fn stored_bytes(
    sizes: &redb::Table<'_, &'static str, u64>,
    table: &redb::Table<'_, u64, &'static [u8]>,
) -> Result<u64, StoreError> {
    if let Some(bytes) = sizes.get("bytes")? {
        return Ok(bytes.value());
    }
    let mut total = 0u64;
    for row in table.iter()? {
        let (_, v) = row?;
        total = total.saturating_add(v.value().len() as u64);
    }
    Ok(total)
}

/// Counts `record` in a recent record of the same flood, if there is one:
/// that record's sequence number and how many bytes it grew.
fn count_repeat(
    table: &mut redb::Table<'_, u64, &'static [u8]>,
    record: &Record,
) -> Result<Option<(u64, u64)>, StoreError> {
    let Some(address) = record.address else {
        return Ok(None);
    };
    let mut found = None;
    for row in table.iter()?.rev().take(FLOOD_LOOKBACK) {
        let (k, v) = row?;
        let Ok(old) = serde_json::from_slice::<Record>(v.value()) else {
            continue;
        };
        if old.at.saturating_add(FLOOD_WINDOW) < record.at {
            break;
        }
        if old.event == record.event && old.address.is_some_and(|a| same_source(a, address)) {
            found = Some((k.value(), old, v.value().len() as u64));
            break;
        }
    }
    let Some((seq, mut old, before)) = found else {
        return Ok(None);
    };
    old.repeated = old.repeated.saturating_add(1);
    old.last_at = Some(record.at);
    let bytes = encode(&old)?;
    table.insert(seq, bytes.as_slice())?;
    if old.repeated.is_power_of_two() {
        mirror(&old);
    }
    Ok(Some((seq, (bytes.len() as u64).saturating_sub(before))))
}

/// Writes a record to the log (`tracing`, hence the journal).
fn mirror(record: &Record) {
    tracing::info!(
        event_id = record.id,
        event = record.event.slug(),
        account = record.account.as_deref().unwrap_or("-"),
        address = %record.address.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
        protocol = record.protocol.as_deref().unwrap_or("-"),
        method = record.method.as_deref().unwrap_or("-"),
        detail = %record.detail,
        repeated = record.repeated,
        "audit"
    );
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
    use crate::store::{OpenMode, Store};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create, &crate::auth::SCHEMA).unwrap();
        (dir, store)
    }

    fn add(store: &Store, at: Timestamp, event: Event, account: &str, address: &str) -> u64 {
        store
            .write(|tx| {
                append(
                    tx,
                    at,
                    event,
                    Entry {
                        account: Some(account),
                        address: Some(address.parse().unwrap()),
                        protocol: Some("ssh"),
                        method: Some("password"),
                        detail: "refused while locked".into(),
                    },
                    100_000,
                )
            })
            .unwrap()
    }

    fn all(store: &Store) -> Vec<Record> {
        store.read(|r| query(r, &Filter::default())).unwrap()
    }

    #[test]
    fn text_is_escaped_and_bounded() {
        assert_eq!(clean("joe", 64), "joe");
        assert_eq!(clean("\u{1b}[2Jroot\n", 64), "\\u{1b}[2Jroot\\u{a}");
        let long = clean(&"é".repeat(1000), MAX_NAME_CHARS);
        assert_eq!(long.chars().count(), MAX_NAME_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(
            for_terminal("a\tb\nc\u{1b}[31m\r"),
            "a\tb\nc\\u{1b}[31m\\u{d}"
        );
    }

    #[test]
    fn records_keep_at_most_64_characters_of_a_name() {
        let (_dir, store) = store();
        let name = format!("\u{1b}]0;{}", "x".repeat(300_000));
        add(&store, 1000, Event::LoginFailed, &name, "192.0.2.1");
        let records = all(&store);
        let kept = records[0].account.as_deref().unwrap();
        assert!(kept.starts_with("\\u{1b}]0;x"), "{kept}");
        assert!(kept.ends_with("x…"), "{kept}");
        assert_eq!(kept.chars().count(), MAX_NAME_CHARS + 1);
    }

    #[test]
    fn a_flood_from_one_source_is_one_record() {
        let (_dir, store) = store();
        let first = add(&store, 1000, Event::LoginWhileLocked, "owner", "192.0.2.1");
        for i in 0..100 {
            let seq = add(
                &store,
                1000 + i / 10,
                Event::LoginWhileLocked,
                &format!("n{i}"),
                "192.0.2.1",
            );
            assert_eq!(seq, first);
        }
        // Another IPv6 address of one /64 is the same source; another /64,
        // another IPv4 address, another event are not.
        let v6 = add(
            &store,
            1100,
            Event::LoginWhileLocked,
            "a",
            "2001:db8:1:2::1",
        );
        assert_eq!(
            add(
                &store,
                1101,
                Event::LoginWhileLocked,
                "a",
                "2001:db8:1:2:ffff::9"
            ),
            v6
        );
        assert_ne!(
            add(
                &store,
                1101,
                Event::LoginWhileLocked,
                "a",
                "2001:db8:1:3::1"
            ),
            v6
        );
        assert_ne!(
            add(&store, 1102, Event::LoginWhileLocked, "a", "192.0.2.2"),
            first
        );
        assert_ne!(
            add(&store, 1103, Event::LoginFailed, "a", "192.0.2.1"),
            first
        );
        // Out of the window: a new record.
        let later = add(
            &store,
            1000 + FLOOD_WINDOW + 100,
            Event::LoginWhileLocked,
            "a",
            "192.0.2.1",
        );
        assert_ne!(later, first);
        let records = all(&store);
        assert_eq!(records.len(), 6);
        let flood = records.iter().find(|r| r.seq == first).unwrap();
        assert_eq!(flood.repeated, 100);
        assert_eq!(flood.last_at, Some(1009));
        assert_eq!(flood.account.as_deref(), Some("owner"));
        let pair = records.iter().find(|r| r.seq == v6).unwrap();
        assert_eq!(pair.repeated, 1);
    }

    #[test]
    fn the_log_keeps_to_its_byte_budget_and_newest_events() {
        let (_dir, store) = store();
        let mut last = 0;
        for i in 0..60u64 {
            // A few transactions of many events, as a flood would come.
            last = store
                .write(|tx| {
                    for _ in 0..9 {
                        append(
                            tx,
                            i,
                            Event::LoginFailed,
                            Entry {
                                detail: "z".repeat(5000),
                                ..Entry::default()
                            },
                            100_000,
                        )?;
                    }
                    append(
                        tx,
                        i,
                        Event::LoginFailed,
                        Entry {
                            account: Some(&"y".repeat(64)),
                            address: Some(IpAddr::from([192, 0, 2, (i % 250) as u8])),
                            protocol: Some("ssh"),
                            method: Some("password"),
                            detail: "z".repeat(5000),
                        },
                        100_000,
                    )
                })
                .unwrap();
        }
        let records = all(&store);
        let bytes: u64 = records
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap().len() as u64)
            .sum();
        assert!(bytes <= BYTE_BUDGET, "{bytes} bytes kept");
        assert!(bytes > BYTE_BUDGET - 2048, "{bytes} bytes kept");
        assert_eq!(records[0].seq, last, "the newest event is kept");
        let kept = store
            .read(|r| {
                Ok::<_, StoreError>(
                    r.raw()
                        .open_table(AUDIT_BYTES)?
                        .get("bytes")?
                        .map(|v| v.value()),
                )
            })
            .unwrap();
        assert_eq!(kept, Some(bytes), "the running count matches the records");
    }

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
