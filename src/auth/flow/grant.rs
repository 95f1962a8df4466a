//! The end of a login: whether the account may have a session at all (its
//! name, its home folder), the grant written with its audit events, and
//! the session built.

use std::net::IpAddr;

use super::{Context, DenyReason, Session, Step, audit_once, internal};
use crate::audit::{self, Entry, Event};
use crate::auth::accounts::{self, HomeFolder};
use crate::auth::mfa::SecondFactor;
use crate::auth::{ACCOUNTS, Account, Auth, Group, LastLogin, TOKENS, lockout, retain_of};
use crate::clock::Timestamp;
use crate::files::{HomeError, Root};
use crate::store::{Read, StoreError, WriteTx};

/// Whether an account whose credentials passed may have a session: its
/// name is in the account-name alphabet (a store from before the rule may
/// hold others), its home folder is a safe path after substitution, and no
/// symbolic link or non-folder sits on the part of it that exists. A
/// refusal is audited and answered with a message saying what is wrong.
pub(super) fn admit(
    auth: &Auth,
    ctx: &Context,
    account: &Account,
    group: Option<&Group>,
    method: &str,
) -> Result<HomeFolder, Box<Step>> {
    if let Err(e) = accounts::validate_account_name(&account.name) {
        audit_once(
            auth,
            ctx,
            Event::LoginNameRefused,
            method,
            &format!("{e}; rename the account"),
        );
        return Err(Box::new(Step::Denied(DenyReason::NameRefused.denied())));
    }
    let refused = |detail: String| {
        audit_once(auth, ctx, Event::HomeRefused, method, &detail);
        Box::new(Step::Denied(DenyReason::HomeRefused.denied()))
    };
    let home = accounts::home_folder(account, group).map_err(|e| refused(e.to_string()))?;
    match crate::files::check_home(&auth.options.files_root, &home) {
        Err(e) if e.is_refusal() => Err(refused(e.to_string())),
        // A failing file system is reported when the session opens it.
        _ => Ok(home),
    }
}

impl Auth {
    /// Opens a session's home folder beneath the files root, creating it on
    /// first use, without following a symbolic link at any part
    /// ([`Root::open_home`]). A link or non-folder on the path is audited
    /// ([`Event::HomeRefused`]) and the home refused.
    pub fn open_home(&self, session: &Session) -> Result<Root, HomeError> {
        let opened = Root::open_home(
            &self.options.files_root,
            &session.home,
            &session.account,
            session.permissions.into(),
        );
        if let Err(e) = &opened
            && e.is_refusal()
        {
            let entry = Entry {
                account: Some(&session.account),
                address: Some(session.address),
                protocol: Some(session.protocol.as_str()),
                method: Some(session.method.as_str()),
                detail: e.to_string(),
            };
            if let Err(e) = self.audit(Event::HomeRefused, entry) {
                tracing::error!(error = %e, "could not write an audit event");
            }
        }
        opened
    }
}

/// Writes the grant (lockout cleared, audit, token use) and builds the session.
#[allow(clippy::too_many_arguments)] // every piece is part of the grant
pub(super) fn grant(
    auth: &Auth,
    ctx: &Context,
    account: &Account,
    group: Option<&Group>,
    home: HomeFolder,
    second: Option<SecondFactor>,
    token: Option<String>,
    offer_enrolment: bool,
    now: Timestamp,
) -> Step {
    let recorded = match token.as_deref() {
        Some(id) => token_use_recorded(auth, &account.name, ctx.address, id, now),
        None => Ok(false),
    };
    match recorded {
        // A token used again within the minute: nothing to write (its last
        // use and a `token_used` event are at most a minute old).
        Ok(true) => tracing::debug!(account = %account.name, "token used again within a minute"),
        Ok(false) => {
            let wrote = auth.store.write(|tx| {
                lockout::record_success(tx, &account.name, ctx.address)?;
                grant_in(tx, ctx, second, token.as_deref(), now)
            });
            if let Err(e) = wrote {
                return internal(e);
            }
        }
        Err(e) => return internal(e),
    }
    Step::Granted(session(
        ctx,
        account,
        group,
        home,
        second,
        token,
        offer_enrolment,
        now,
    ))
}

/// Seconds during which further uses of one access token write nothing:
/// its `last_used` and the audit log record a token's use at most once a
/// minute, so a script's requests neither load the disk nor flush the log.
pub const TOKEN_USE_INTERVAL: Timestamp = 60;

/// Whether the use of token `id` now is already on record: its last use is
/// less than [`TOKEN_USE_INTERVAL`] ago and there is no failure of the
/// account from this address to clear.
pub(super) fn token_use_recorded(
    auth: &Auth,
    account: &str,
    address: IpAddr,
    id: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    auth.store.read(|r| {
        let recent = r
            .get(TOKENS, id)?
            .and_then(|t| t.last_used)
            .is_some_and(|last| last <= now && now - last < TOKEN_USE_INTERVAL);
        Ok(recent && !lockout::has_failures(r, account, address)?)
    })
}

pub(super) fn grant_in(
    tx: &mut WriteTx,
    ctx: &Context,
    second: Option<SecondFactor>,
    token: Option<&str>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let retain = retain_of(tx)?;
    let method = match (token, second) {
        (Some(_), _) => "token".to_string(),
        (None, Some(f)) => format!("{}+{}", ctx.method.as_str(), f.as_str()),
        (None, None) => ctx.method.as_str().to_string(),
    };
    if let Some(id) = token {
        if let Some(mut t) = tx.get(TOKENS, id)? {
            t.last_used = Some(now);
            tx.put(TOKENS, id, &t)?;
        }
        audit::append(
            tx,
            now,
            Event::TokenUsed,
            ctx.entry("token", format!("token {id}")),
            retain,
        )?;
    }
    audit::append(
        tx,
        now,
        Event::LoginGranted,
        ctx.entry(&method, String::new()),
        retain,
    )?;
    if let Some(mut account) = tx.get(ACCOUNTS, &ctx.user)? {
        account.last_login = Some(LastLogin {
            at: now,
            address: ctx.address,
            protocol: ctx.protocol.as_str().to_string(),
            method,
        });
        tx.put(ACCOUNTS, &ctx.user, &account)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // every piece is part of the session
pub(super) fn session(
    ctx: &Context,
    account: &Account,
    group: Option<&Group>,
    home: HomeFolder,
    second: Option<SecondFactor>,
    token: Option<String>,
    offer_enrolment: bool,
    now: Timestamp,
) -> Session {
    Session {
        account: account.name.clone(),
        role: account.role,
        group: account.group.clone(),
        home,
        permissions: accounts::permissions(account, group),
        protocol: ctx.protocol,
        address: ctx.address,
        method: ctx.method,
        token,
        second_factor: second,
        offer_enrolment,
        granted_at: now,
        epoch: ctx.epoch,
    }
}
