//! The typed requests and answers of administration: what the command
//! line, the console and the control socket say to the core, and what it
//! says back. Everything here is data (serde), checked for shape by the
//! front end that built it and for meaning by the core.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::{Event, Record};
use crate::auth::accounts::{AccountChange, AccountView, Locks};
use crate::auth::console::PinCheck;
use crate::auth::tokens::TokenInfo;
use crate::auth::{Actor, Group, GroupChange, Policy, Protocol, PublicKey, Role};
use crate::clock::Timestamp;
use crate::system::factory::Wiped;

use super::StatusReport;

/// Who sends the request: the local operator at the command line or at
/// the technician console (the control socket admits only the server's
/// own user and root, see [`super::wire`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Caller {
    /// `coffer user …` and the other commands.
    Cli,
    /// `coffer console`.
    Console,
}

impl Caller {
    /// The core's view of the caller.
    pub fn actor(self) -> Actor {
        match self {
            Caller::Cli => Actor::cli(),
            Caller::Console => Actor::console(),
        }
    }
}

/// When a new token stops working.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expiry {
    /// At this time.
    At(Timestamp),
    /// This many seconds after the core's now.
    In(u64),
}

/// One row of [`Request::Locks`]: `(account, address, until)`.
pub type LockRow = (String, String, Timestamp);

/// The account column of an address locked for every account.
pub const ALL_ACCOUNTS: &str = "(all accounts)";
/// The address column of an account whose code entry is locked.
pub const CODE_ENTRY: &str = "code entry, every address";

/// An administrative operation.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Claim an unclaimed box: create the owner (a system_admin).
    Claim {
        /// The owner's name.
        admin: String,
        /// The owner's password.
        password: Zeroizing<String>,
        /// argon2id cost, `m=KiB,t=passes,p=lanes` (None: the default).
        hash_cost: Option<String>,
    },
    /// What the box knows about itself.
    Status,
    /// Create an account.
    CreateAccount {
        /// User name.
        name: String,
        /// Role.
        role: Role,
        /// Group.
        group: Option<String>,
        /// Password (None: keys or tokens only).
        password: Option<Zeroizing<String>>,
        /// Home folder relative to the files root (None: the group's).
        home: Option<String>,
        /// authorized_keys lines.
        keys: Vec<String>,
    },
    /// Every account.
    ListAccounts,
    /// One account, with the address-wide locks that keep it out too.
    ShowAccount {
        /// User name.
        name: String,
    },
    /// Change some of an account's settings (one transaction).
    ChangeAccount {
        /// User name.
        name: String,
        /// What changes.
        change: AccountChange,
    },
    /// Remove an account and its credentials (its files stay).
    RemoveAccount {
        /// User name.
        name: String,
    },
    /// Rename an account.
    RenameAccount {
        /// The current name.
        name: String,
        /// The new name.
        new_name: String,
    },
    /// Set an account's password.
    SetPassword {
        /// User name.
        name: String,
        /// The new password.
        password: Zeroizing<String>,
    },
    /// Add an authorized_keys line to an account.
    AddKey {
        /// User name.
        name: String,
        /// The line.
        key: String,
    },
    /// Remove a key by fingerprint or comment.
    RemoveKey {
        /// User name.
        name: String,
        /// Fingerprint (`SHA256:…`) or comment.
        key: String,
    },
    /// Create a group with these settings (the rest default).
    CreateGroup {
        /// Group name.
        name: String,
        /// Settings given.
        settings: GroupChange,
    },
    /// Change some of a group's settings (one transaction).
    ChangeGroup {
        /// Group name.
        name: String,
        /// What changes.
        change: GroupChange,
    },
    /// Every group.
    ListGroups,
    /// Remove a group without members.
    RemoveGroup {
        /// Group name.
        name: String,
    },
    /// Start a TOTP enrolment for an account.
    StartTotp {
        /// User name.
        name: String,
        /// TOTP configuration (None: the policy's default).
        config: Option<String>,
    },
    /// Confirm an enrolment with a code.
    ConfirmTotp {
        /// User name.
        name: String,
        /// The code the app shows.
        code: String,
    },
    /// Remove TOTP and recovery codes from an account.
    ResetMfa {
        /// User name.
        name: String,
    },
    /// New recovery codes for an account (the old ones stop working).
    NewRecoveryCodes {
        /// User name.
        name: String,
    },
    /// Create an access token for an account.
    CreateToken {
        /// User name.
        name: String,
        /// What it is for.
        label: String,
        /// When it stops working (None: never).
        expires: Option<Expiry>,
        /// Protocols it works on (empty: all).
        scope: BTreeSet<Protocol>,
    },
    /// Tokens of one account, or of all.
    ListTokens {
        /// User name (None: every account's).
        name: Option<String>,
    },
    /// Revoke a token by id.
    RevokeToken {
        /// Token id.
        id: String,
    },
    /// Clear an account's lockouts.
    Unlock {
        /// User name.
        name: String,
    },
    /// Clear the lock of a source address for every account.
    UnlockAddress {
        /// The address (an IPv6 address stands for its /64).
        address: IpAddr,
    },
    /// Every lock on the box, as [`LockRow`]s: an address locked for every
    /// account comes as the account [`ALL_ACCOUNTS`], and an account's
    /// code-entry lock as the address [`CODE_ENTRY`].
    Locks,
    /// The policy.
    ShowPolicy,
    /// Change policy settings, all or none.
    SetPolicy {
        /// `(key, value)` pairs, e.g. `("lockout.max_failures", "5")`.
        changes: Vec<(String, String)>,
    },
    /// Audit events, newest first.
    Audit {
        /// Only this account's.
        account: Option<String>,
        /// Only these events (empty: all).
        events: Vec<Event>,
        /// Only since this time.
        since: Option<Timestamp>,
        /// At most this many.
        limit: usize,
    },
    /// New owner password; TOTP and recovery codes removed (the console's
    /// rescue).
    ResetOwner {
        /// The new password.
        password: Zeroizing<String>,
    },
    /// Whether a technician PIN is set.
    PinIsSet,
    /// Check a technician PIN.
    CheckPin {
        /// The PIN typed.
        pin: Zeroizing<String>,
    },
    /// Set or change the technician PIN.
    SetPin {
        /// The new PIN.
        pin: Zeroizing<String>,
    },
    /// Remove the technician PIN.
    ClearPin,
    /// Record a console action done outside the store (network, reboot).
    Record {
        /// [`Event::NetworkChanged`] or [`Event::ConsoleReboot`].
        event: Event,
        /// What was done.
        detail: String,
    },
    /// Wipe the box back to unclaimed (the store closed first).
    FactoryReset {
        /// Remove the users' files too.
        user_files: bool,
    },
}

/// The core's answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Answer {
    /// Done; nothing to show.
    Done,
    /// [`Request::Claim`].
    Claimed {
        /// The owner.
        owner: String,
        /// How the data key is protected.
        sealing: crate::seal::Backend,
    },
    /// [`Request::Status`].
    Status(Box<StatusReport>),
    /// [`Request::ListAccounts`].
    Accounts(Vec<AccountView>),
    /// [`Request::ShowAccount`], [`Request::ChangeAccount`],
    /// [`Request::RenameAccount`].
    Account {
        /// The account.
        view: Box<AccountView>,
        /// Address-wide locks (only for [`Request::ShowAccount`]).
        address_locks: Vec<(String, Timestamp)>,
    },
    /// [`Request::AddKey`], [`Request::RemoveKey`].
    Key(PublicKey),
    /// [`Request::ListGroups`].
    Groups(Vec<Group>),
    /// [`Request::CreateGroup`], [`Request::ChangeGroup`].
    Group(Group),
    /// [`Request::StartTotp`].
    TotpStarted {
        /// The seed, base32.
        secret: Zeroizing<String>,
        /// The otpauth:// URI.
        uri: Zeroizing<String>,
    },
    /// [`Request::ConfirmTotp`], [`Request::NewRecoveryCodes`]: shown once.
    RecoveryCodes(Vec<Zeroizing<String>>),
    /// [`Request::CreateToken`]: the value, shown once.
    TokenCreated {
        /// The value.
        value: Zeroizing<String>,
        /// Its listing.
        info: TokenInfo,
    },
    /// [`Request::ListTokens`].
    Tokens(Vec<TokenInfo>),
    /// [`Request::RevokeToken`].
    TokenRevoked(TokenInfo),
    /// [`Request::Unlock`], [`Request::UnlockAddress`].
    Unlocked {
        /// Lock records cleared.
        cleared: usize,
    },
    /// [`Request::Locks`].
    Locks(Vec<LockRow>),
    /// [`Request::ShowPolicy`], [`Request::SetPolicy`].
    Policy(Box<Policy>),
    /// [`Request::Audit`].
    Audit(Vec<Record>),
    /// [`Request::ResetOwner`].
    OwnerReset {
        /// The owner's name.
        owner: String,
    },
    /// [`Request::PinIsSet`].
    PinIsSet(bool),
    /// [`Request::CheckPin`].
    Pin(PinCheck),
    /// [`Request::FactoryReset`].
    FactoryReset {
        /// What went.
        wiped: Wiped,
        /// The server stops (a service manager starts it again, unclaimed).
        server_stops: bool,
    },
}

/// [`Locks`] and the accounts' own locks as [`LockRow`]s.
pub(super) fn lock_rows(accounts: Vec<AccountView>, wider: Locks) -> Vec<LockRow> {
    let mut rows = Vec::new();
    for view in accounts {
        for (address, until) in view.locked {
            rows.push((view.account.name.clone(), address, until));
        }
    }
    for (name, until) in wider.code_entry {
        rows.push((name, CODE_ENTRY.to_string(), until));
    }
    for (address, until) in wider.addresses {
        rows.push((ALL_ACCOUNTS.to_string(), address, until));
    }
    rows
}
