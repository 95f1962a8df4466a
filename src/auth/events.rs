//! Audit events the core records outside a change of its own, and the
//! audit log as administrators read it.

use super::{Actor, Auth, AuthError, Policy, SETTINGS, flow};
use crate::audit::{self, Entry, Event};
use crate::store::{Read, StoreError};

impl Auth {
    /// Records an audit event in its own transaction.
    pub(crate) fn audit(&self, event: Event, entry: Entry<'_>) -> Result<(), AuthError> {
        let now = self.now();
        self.store.write(|tx| {
            let retain = retain_of(tx)?;
            audit::append(tx, now, event, entry, retain)?;
            Ok::<_, AuthError>(())
        })
    }

    /// Records that the HTTPS certificate was replaced.
    pub fn certificate_changed(&self, actor: &Actor, fingerprint: &str) {
        if let Err(e) = self.audit(
            Event::CertificateChanged,
            actor.entry(None, format!("SHA-256 {fingerprint}")),
        ) {
            tracing::error!(error = %e, "could not write an audit event");
        }
    }

    /// Records that a web or API session ended (signed out, expired,
    /// revoked), with why.
    pub fn session_ended(&self, session: &flow::Session, why: &str) {
        let entry = Entry {
            account: Some(&session.account),
            address: Some(session.address),
            protocol: Some(session.protocol.as_str()),
            method: Some(session.method.as_str()),
            detail: why.to_string(),
        };
        if let Err(e) = self.audit(Event::SessionEnded, entry) {
            tracing::error!(error = %e, "could not write an audit event");
        }
    }

    /// Audit events, newest first: administrators only
    /// ([`Actor::may_administer_accounts`]).
    pub fn audit_log(
        &self,
        actor: &Actor,
        filter: &audit::Filter,
    ) -> Result<Vec<audit::Record>, AuthError> {
        actor.may_administer_accounts()?;
        Ok(self.store.read(|r| audit::query(r, filter))?)
    }
}

/// The audit retention setting, read inside a transaction.
pub(crate) fn retain_of(r: &impl Read) -> Result<u64, StoreError> {
    Ok(r.get(SETTINGS, "policy")?
        .map_or(Policy::default().audit_retain, |p| p.audit_retain))
}
