//! The second factor: a code (TOTP or recovery code) after the first, or
//! the TOTP enrolment an account must make before it may enter.

use super::grant::{admit, grant_in, session};
use super::{
    AwaitCode, AwaitEnrolment, CODE_PROMPT, DenyReason, Session, Step, audit_once, internal, locked,
};
use crate::audit::{self, Event};
use crate::auth::accounts::{self, load_group};
use crate::auth::mfa::{EnrolmentStart, FactorError, RecoveryCodes, SecondFactor};
use crate::auth::totp::CodeError;
use crate::auth::{Actor, Auth, AuthError, lockout, retain_of};
use crate::clock::Timestamp;
use crate::store::StoreError;

impl AwaitCode {
    /// The prompt to show.
    pub fn prompt(&self) -> &'static str {
        CODE_PROMPT
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.ctx.user
    }

    /// Like [`AwaitCode::code`], but a refused code (wrong, malformed or
    /// used before) hands the waiting login back, so the person may type
    /// the code again without the password. Each refused code counts toward
    /// the lockout exactly as with `code`, so the retries end where the
    /// lockout begins; a lock, the step's timeout (which does not move:
    /// it runs from the first factor) or any other outcome ends the login.
    pub fn code_again(self, auth: &Auth, input: &str) -> (Step, Option<AwaitCode>) {
        let again = AwaitCode {
            ctx: self.ctx.clone(),
            since: self.since,
        };
        let step = self.code(auth, input);
        let refused = matches!(
            &step,
            Step::Denied(d) if matches!(
                d.reason,
                DenyReason::WrongCode | DenyReason::MalformedCode | DenyReason::CodeReplayed
            )
        );
        if !refused {
            return (step, None);
        }
        // The code just refused may have set a lock: say so now rather than
        // at the next try.
        let now = auth.now();
        let ctx = &again.ctx;
        let lock = auth.store.read(|r| {
            Ok::<_, StoreError>(
                lockout::locked_until(r, &ctx.user, ctx.address, now)?
                    .max(lockout::code_locked_until(r, &ctx.user, now)?),
            )
        });
        match lock {
            Ok(Some(until)) => (locked(until, now), None),
            Ok(None) => (step, Some(again)),
            Err(e) => (internal(e), None),
        }
    }

    /// Checks a TOTP code or a recovery code.
    pub fn code(self, auth: &Auth, input: &str) -> Step {
        let ctx = self.ctx;
        let now = auth.now();
        if now.saturating_sub(self.since) > auth.options.code_timeout {
            audit_once(
                auth,
                &ctx,
                Event::CodeRejected,
                ctx.method.as_str(),
                "code step timed out",
            );
            return Step::Denied(DenyReason::Expired.denied());
        }
        let lockout = match auth.policy() {
            Ok(p) => p.lockout,
            Err(e) => return internal(e),
        };
        enum Outcome {
            Locked(Timestamp),
            Accepted(SecondFactor),
            Refused(DenyReason),
        }
        let outcome = auth.store.write(|tx| {
            if let Some(until) = ctx.attempt().refuse_code_if_locked(tx, now, "login")? {
                return Ok::<_, StoreError>(Outcome::Locked(until));
            }
            match auth.check_second_factor(tx, &ctx.user, input, now) {
                Ok(factor) => {
                    lockout::record_success(tx, &ctx.user, ctx.address)?;
                    let retain = retain_of(tx)?;
                    let event = match factor {
                        SecondFactor::Totp => Event::CodeAccepted,
                        SecondFactor::RecoveryCode => Event::RecoveryCodeUsed,
                    };
                    audit::append(
                        tx,
                        now,
                        event,
                        ctx.entry(factor.as_str(), String::new()),
                        retain,
                    )?;
                    grant_in(tx, &ctx, Some(factor), None, now)?;
                    Ok(Outcome::Accepted(factor))
                }
                Err(err) => {
                    let (event, reason, method, detail) = match err {
                        FactorError::Code(CodeError::Replayed) => (
                            Event::CodeReplayed,
                            DenyReason::CodeReplayed,
                            "totp",
                            "code already used",
                        ),
                        FactorError::Code(CodeError::Malformed(_)) => (
                            Event::CodeRejected,
                            DenyReason::MalformedCode,
                            "totp",
                            "malformed code",
                        ),
                        FactorError::Code(CodeError::Wrong) => (
                            Event::CodeRejected,
                            DenyReason::WrongCode,
                            "totp",
                            "wrong code",
                        ),
                        FactorError::RecoveryUnknown => (
                            Event::CodeRejected,
                            DenyReason::WrongCode,
                            "recovery-code",
                            "unknown or used recovery code",
                        ),
                        FactorError::NotEnrolled => (
                            Event::CodeRejected,
                            DenyReason::WrongCode,
                            "totp",
                            "enrolment removed",
                        ),
                    };
                    ctx.attempt()
                        .fail_code(tx, &lockout, now, event, method, detail)?;
                    Ok(Outcome::Refused(reason))
                }
            }
        });
        match outcome {
            Err(e) => internal(e),
            Ok(Outcome::Locked(until)) => locked(until, now),
            Ok(Outcome::Refused(reason)) => Step::Denied(reason.denied()),
            Ok(Outcome::Accepted(factor)) => {
                let loaded = auth.store.read(|r| {
                    let a = accounts::load_account(r, &ctx.user)?;
                    let g = load_group(r, &a)?;
                    Ok::<_, AuthError>((a, g))
                });
                let (account, group) = match loaded {
                    Ok(x) => x,
                    Err(e) => return internal(e),
                };
                // Checked again: the account may have changed while the
                // code was typed.
                let home = match admit(auth, &ctx, &account, group.as_ref(), factor.as_str()) {
                    Ok(home) => home,
                    Err(step) => return *step,
                };
                Step::Granted(session(
                    &ctx,
                    &account,
                    group.as_ref(),
                    home,
                    Some(factor),
                    None,
                    false,
                    now,
                ))
            }
        }
    }
}

impl AwaitEnrolment {
    /// The user name.
    pub fn user(&self) -> &str {
        &self.ctx.user
    }

    fn actor(&self) -> Actor {
        Actor {
            account: Some((self.ctx.user.clone(), self.role)),
            protocol: self.ctx.protocol.as_str(),
            address: Some(self.ctx.address),
            access_token: None,
        }
    }

    /// Starts (or restarts) the enrolment: the secret to show.
    pub fn start(&self, auth: &Auth) -> Result<EnrolmentStart, AuthError> {
        auth.totp_start(&self.actor(), &self.ctx.user, None, None)
    }

    /// Confirms with a code; on success the login is granted and the
    /// recovery codes are returned for display. On failure the state comes
    /// back so the user can try again.
    pub fn confirm(
        self,
        auth: &Auth,
        code: &str,
    ) -> Result<(Session, RecoveryCodes), (Box<AwaitEnrolment>, AuthError)> {
        let now = auth.now();
        if now.saturating_sub(self.since) > auth.options.code_timeout.saturating_mul(4) {
            return Err((
                Box::new(self),
                AuthError::Invalid("the enrolment took too long; log in again".into()),
            ));
        }
        if auth.credential_epoch(&self.ctx.user) != self.ctx.epoch {
            return Err((
                Box::new(self),
                AuthError::Forbidden("the account changed during the login; log in again".into()),
            ));
        }
        let codes = match auth.totp_confirm(&self.actor(), &self.ctx.user, code) {
            Ok(c) => c,
            Err(e) => return Err((Box::new(self), e)),
        };
        let loaded = auth.store.read(|r| {
            let a = accounts::load_account(r, &self.ctx.user)?;
            let g = load_group(r, &a)?;
            Ok::<_, AuthError>((a, g))
        });
        let (account, group) = match loaded {
            Ok(x) => x,
            Err(e) => return Err((Box::new(self), e)),
        };
        let home = match admit(auth, &self.ctx, &account, group.as_ref(), "totp") {
            Ok(home) => home,
            Err(step) => {
                let message = match *step {
                    Step::Denied(d) => d.message,
                    _ => "this account may not log in".into(),
                };
                return Err((Box::new(self), AuthError::Forbidden(message)));
            }
        };
        let wrote = auth.store.write(|tx| {
            lockout::record_success(tx, &account.name, self.ctx.address)?;
            grant_in(tx, &self.ctx, Some(SecondFactor::Totp), None, now)
        });
        if let Err(e) = wrote {
            return Err((Box::new(self), e.into()));
        }
        let s = session(
            &self.ctx,
            &account,
            group.as_ref(),
            home,
            Some(SecondFactor::Totp),
            None,
            false,
            now,
        )
        // The enrolment itself moved the epoch.
        .renewed(auth);
        Ok((s, codes))
    }
}
