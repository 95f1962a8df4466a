//! The first factor, per method: a password (or an access token typed as
//! one), an SSH public key; then the decision whether a code must follow.

use std::net::IpAddr;

use super::attempt::fail;
use super::grant::{admit, grant};
use super::{
    AwaitCode, AwaitEnrolment, Context, DenyReason, Login, Snapshot, Step, audit_once, internal,
    locked, presentable,
};
use crate::audit::Event;
use crate::auth::accounts::{address_allowed, load_group};
use crate::auth::policy::{CodeDecision, FirstFactor, decide};
use crate::auth::tokens::{self, TokenRefusal};
use crate::auth::{
    ACCOUNTS, Account, Auth, AuthError, Group, Method, PASSWORDS, Protocol, lockout,
};
use crate::clock::Timestamp;
use crate::store::Read;

fn snapshot(
    auth: &Auth,
    user: &str,
    address: IpAddr,
    now: Timestamp,
) -> Result<Snapshot, AuthError> {
    let lockout = auth.policy()?.lockout;
    auth.store.read(|r| {
        let account = r.get(ACCOUNTS, user)?;
        let group = match &account {
            Some(a) => load_group(r, a)?,
            None => None,
        };
        Ok(Snapshot {
            hash: r.get(PASSWORDS, user)?.map(|p| p.hash),
            locked: lockout::locked_until(r, user, address, now)?,
            account,
            group,
            lockout,
        })
    })
}

/// The reason a known account may not log in from here, before any credential.
fn gate(account: &Account, group: Option<&Group>, address: IpAddr) -> Option<(Event, DenyReason)> {
    if account.disabled || group.is_some_and(|g| !g.enabled) {
        return Some((Event::LoginDisabled, DenyReason::Disabled));
    }
    if !address_allowed(account, group, address) {
        return Some((Event::AddressBlocked, DenyReason::AddressBlocked));
    }
    None
}

/// Reads the account's state for a first factor; a locked pair or address
/// ends the attempt here (audited), before any credential is looked at.
fn open_attempt(auth: &Auth, ctx: &Context, now: Timestamp) -> Result<Snapshot, Box<Step>> {
    if !presentable(&ctx.user) {
        // No account has such a name: refused like a wrong password, before
        // anything is looked up or written (so a flood of huge or garbled
        // names neither grows the store nor flushes the audit log).
        tracing::debug!(
            address = %ctx.address,
            chars = ctx.user.chars().count(),
            "login refused: the name is too long or has a control character"
        );
        return Err(Box::new(Step::Denied(
            DenyReason::InvalidCredentials.denied(),
        )));
    }
    let snap = snapshot(auth, &ctx.user, ctx.address, now).map_err(|e| Box::new(internal(e)))?;
    if let Some(until) = snap.locked {
        let method = ctx.method.as_str();
        audit_once(
            auth,
            ctx,
            Event::LoginWhileLocked,
            method,
            "refused while locked",
        );
        return Err(Box::new(locked(until, now)));
    }
    Ok(snap)
}

impl Login {
    /// Starts a login.
    pub fn new(user: &str, address: IpAddr, protocol: Protocol) -> Self {
        Self {
            user: user.to_string(),
            address,
            protocol,
        }
    }

    /// The user name as presented.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The login's context; the epoch is read before anything else, so a
    /// change written from now on ends the session this login may make.
    fn context(&self, auth: &Auth, method: Method) -> Context {
        Context {
            user: self.user.clone(),
            address: self.address,
            protocol: self.protocol,
            method,
            epoch: auth.credential_epoch(&self.user),
        }
    }

    /// The first factor is a password, or an access token typed as one.
    /// `method` says how it came (and so whether a code can follow).
    pub fn password(self, auth: &Auth, method: Method, password: &str) -> Step {
        let ctx = self.context(auth, method);
        let now = auth.now();
        let snap = match open_attempt(auth, &ctx, now) {
            Ok(snap) => snap,
            Err(step) => return *step,
        };
        if tokens::split(password).is_some() {
            return token_login(auth, ctx, snap, password, now);
        }
        let gated = snap
            .account
            .as_ref()
            .and_then(|a| gate(a, snap.group.as_ref(), ctx.address));
        let hash = if gated.is_none() {
            snap.hash.as_deref()
        } else {
            None
        };
        let Some(ok) = auth.verify_password(password, hash) else {
            return Step::Denied(DenyReason::Busy.denied());
        };
        if let Some((event, reason)) = gated {
            audit_once(auth, &ctx, event, method.as_str(), "");
            return Step::Denied(reason.denied());
        }
        let Some(account) = snap.account.filter(|_| ok) else {
            let known = hash.is_some();
            let wrote = auth.store.write(|tx| {
                let detail = if known {
                    "wrong password"
                } else {
                    "unknown account or no password"
                };
                fail(
                    tx,
                    &ctx,
                    &snap.lockout,
                    now,
                    Event::LoginFailed,
                    method.as_str(),
                    detail,
                )
            });
            return match wrote {
                Ok(()) => Step::Denied(DenyReason::InvalidCredentials.denied()),
                Err(e) => internal(e),
            };
        };
        after_first_factor(
            auth,
            ctx,
            account,
            snap.group,
            FirstFactor::Password,
            None,
            now,
        )
    }

    /// The first factor is an SSH public key whose signature the front end
    /// has verified. `blob` is the key in SSH wire encoding. Unknown keys are
    /// not counted as failures (clients offer several keys in turn).
    pub fn public_key(self, auth: &Auth, blob: &[u8]) -> Step {
        let ctx = self.context(auth, Method::PublicKey);
        let now = auth.now();
        let snap = match open_attempt(auth, &ctx, now) {
            Ok(snap) => snap,
            Err(step) => return *step,
        };
        let Some(account) = snap.account else {
            audit_once(
                auth,
                &ctx,
                Event::LoginFailed,
                "publickey",
                "unknown account",
            );
            return Step::Denied(DenyReason::InvalidCredentials.denied());
        };
        if let Some((event, reason)) = gate(&account, snap.group.as_ref(), ctx.address) {
            audit_once(auth, &ctx, event, "publickey", "");
            return Step::Denied(reason.denied());
        }
        match auth.key_is_authorized(&ctx.user, blob) {
            Ok(true) => after_first_factor(
                auth,
                ctx,
                account,
                snap.group,
                FirstFactor::PublicKey,
                None,
                now,
            ),
            Ok(false) => {
                audit_once(
                    auth,
                    &ctx,
                    Event::LoginFailed,
                    "publickey",
                    "key not authorized",
                );
                Step::Denied(DenyReason::InvalidCredentials.denied())
            }
            Err(e) => internal(e),
        }
    }
}

fn token_login(auth: &Auth, ctx: Context, snap: Snapshot, value: &str, now: Timestamp) -> Step {
    let checked = auth
        .store
        .read(|r| auth.check_token(r, &ctx.user, value, ctx.protocol, now));
    let refusal = match checked {
        Err(e) => return internal(e),
        Ok(Ok(id)) => match snap.account {
            Some(account) => {
                if let Some((event, reason)) = gate(&account, snap.group.as_ref(), ctx.address) {
                    audit_once(auth, &ctx, event, "token", "");
                    return Step::Denied(reason.denied());
                }
                return after_first_factor(
                    auth,
                    ctx,
                    account,
                    snap.group,
                    FirstFactor::Token,
                    Some(id),
                    now,
                );
            }
            None => TokenRefusal::Unknown,
        },
        Ok(Err(refusal)) => refusal,
    };
    let wrote = auth.store.write(|tx| {
        fail(
            tx,
            &ctx,
            &snap.lockout,
            now,
            Event::TokenRejected,
            "token",
            refusal.as_str(),
        )
    });
    match wrote {
        Ok(()) => Step::Denied(DenyReason::TokenRefused.denied()),
        Err(e) => internal(e),
    }
}

fn after_first_factor(
    auth: &Auth,
    ctx: Context,
    account: Account,
    group: Option<Group>,
    first: FirstFactor,
    token: Option<String>,
    now: Timestamp,
) -> Step {
    let policy = match auth.policy() {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let enrolled = match auth.is_enrolled(&account.name) {
        Ok(e) => e,
        Err(e) => return internal(e),
    };
    let method = if first == FirstFactor::Token {
        "token"
    } else {
        ctx.method.as_str()
    };
    let home = match admit(auth, &ctx, &account, group.as_ref(), method) {
        Ok(home) => home,
        Err(step) => return *step,
    };
    match decide(&policy.mfa, &account, enrolled, ctx.protocol, first) {
        CodeDecision::NotNeeded => grant(
            auth,
            &ctx,
            &account,
            group.as_ref(),
            home,
            None,
            token,
            false,
            now,
        ),
        CodeDecision::Offer => {
            let offer = ctx.protocol.can_enrol();
            grant(
                auth,
                &ctx,
                &account,
                group.as_ref(),
                home,
                None,
                token,
                offer,
                now,
            )
        }
        CodeDecision::Ask if ctx.method.can_carry_code() => {
            Step::NeedCode(AwaitCode { ctx, since: now })
        }
        CodeDecision::Ask => {
            audit_once(
                auth,
                &ctx,
                Event::CodeUnsupported,
                method,
                "code required; method cannot carry one",
            );
            Step::Denied(DenyReason::CodeUnsupported.denied())
        }
        CodeDecision::MustEnrol if ctx.protocol.can_enrol() => Step::MustEnrol(AwaitEnrolment {
            ctx,
            role: account.role,
            since: now,
        }),
        CodeDecision::MustEnrol => {
            audit_once(
                auth,
                &ctx,
                Event::EnrolmentRequired,
                method,
                "must enrol MFA first",
            );
            Step::Denied(DenyReason::EnrolmentRequired.denied())
        }
    }
}
