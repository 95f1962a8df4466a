//! Setting an account's password: by an administrator, or by the account
//! itself with its current one, under the login lockout.

use super::{load_account, load_group, may_change_own_password};
use crate::audit::{self, Event};
use crate::auth::flow::Attempt;
use crate::auth::{Actor, Auth, AuthError, PASSWORDS, PasswordRecord, retain_of};
use crate::store::Read;

impl Auth {
    /// Sets a password. An account changing its own password must give the
    /// current one and be allowed to change it; an administrator need not.
    /// A wrong current password counts toward the lockout of the account
    /// from the caller's address and is audited, like a failed login; while
    /// that lock holds, the current password is not checked at all
    /// ([`AuthError::Locked`]).
    pub fn set_password(
        &self,
        actor: &Actor,
        name: &str,
        new_password: &str,
        current: Option<&str>,
    ) -> Result<(), AuthError> {
        actor.may_manage_credentials()?;
        let (account, record) = self.store.read(|r| {
            let a = load_account(r, name)?;
            Ok::<_, AuthError>((a, r.get(PASSWORDS, name)?))
        })?;
        let by_self = actor.is_self(name);
        let attempt = actor.address.filter(|_| by_self).map(|address| Attempt {
            account: name,
            address,
            protocol: actor.protocol,
        });
        if by_self {
            let group = self.store.read(|r| load_group(r, &account))?;
            if !may_change_own_password(&account, group.as_ref()) {
                return Err(AuthError::Forbidden(
                    "this account may not change its own password".into(),
                ));
            }
            self.check_current_password(actor, attempt.as_ref(), name, record.as_ref(), current)?;
        } else {
            actor.require_admin_over(&account)?;
        }
        let policy = self.policy()?;
        let now = self.now();
        let refuse = |why: String| {
            let _ = self.audit(
                Event::PasswordRejected,
                actor.entry(Some(name), why.clone()),
            );
            AuthError::PasswordRefused(why)
        };
        crate::auth::policy::check(new_password, name, &policy.password)
            .map_err(|r| refuse(r.0))?;
        if let Some(rec) = &record {
            let mut previous: Vec<String> = vec![rec.hash.clone()];
            previous.extend(rec.history.iter().take(policy.password.history).cloned());
            if policy.password.history > 0 && self.lease()?.reused(new_password, &previous) {
                return Err(refuse(format!(
                    "it is one of your last {} passwords; choose a new one",
                    policy.password.history.max(1)
                )));
            }
        }
        let hash = self.hash_password(new_password)?;
        self.store.write(|tx| {
            load_account(tx, name)?;
            let mut history = Vec::new();
            if let Some(old) = tx.get(PASSWORDS, name)? {
                history.push(old.hash);
                history.extend(old.history);
            }
            history.truncate(policy.password.history);
            tx.put(
                PASSWORDS,
                name,
                &PasswordRecord {
                    hash: hash.clone(),
                    changed_at: now,
                    history,
                },
            )?;
            if let Some(a) = &attempt {
                a.succeed(tx)?;
            }
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::PasswordChanged,
                actor.entry(Some(name), String::new()),
                retain,
            )?;
            Ok::<_, AuthError>(())
        })?;
        self.credentials_changed(name, "password changed");
        Ok(())
    }

    /// Checks the current password an account gives to change its own,
    /// under the login lockout: refused unchecked while the account is
    /// locked from this address; a wrong one is counted and audited
    /// (`login_failed`, method `password`).
    fn check_current_password(
        &self,
        actor: &Actor,
        attempt: Option<&Attempt<'_>>,
        name: &str,
        record: Option<&PasswordRecord>,
        current: Option<&str>,
    ) -> Result<(), AuthError> {
        const PURPOSE: &str = "password change";
        let now = self.now();
        if let Some(a) = attempt {
            let locked = self
                .store
                .write(|tx| a.refuse_if_locked(tx, now, "password", PURPOSE))?;
            if let Some(until) = locked {
                return Err(AuthError::Locked {
                    until,
                    retry_after: until.saturating_sub(now),
                });
            }
        }
        let ok = match (record, current) {
            (Some(rec), Some(cur)) => match self.verify_password(cur, Some(&rec.hash)) {
                Some(ok) => ok,
                None => {
                    return Err(AuthError::Invalid(
                        "the server is busy hashing passwords; try again".into(),
                    ));
                }
            },
            (None, _) => true,
            (Some(_), None) => false,
        };
        if ok {
            return Ok(());
        }
        let detail = format!("wrong current password ({PURPOSE})");
        match attempt {
            Some(a) => {
                let lockout = self.policy()?.lockout;
                self.store.write(|tx| {
                    a.fail(tx, &lockout, now, Event::LoginFailed, "password", &detail)
                })?;
            }
            None => {
                let entry = audit::Entry {
                    method: Some("password"),
                    ..actor.entry(Some(name), detail)
                };
                self.audit(Event::LoginFailed, entry)?;
            }
        }
        Err(AuthError::Forbidden(
            "the current password is not correct".into(),
        ))
    }
}
