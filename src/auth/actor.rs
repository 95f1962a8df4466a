//! Who asks: the caller of every core operation, and the rights the core
//! checks for it.

use std::net::IpAddr;

use super::{Account, AuthError, Role, flow};
use crate::audit::Entry;

/// Who asks for a change; the core decides whether they may.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The account acting, or `None` for the local operator (CLI, console),
    /// who holds every right on the box.
    pub account: Option<(String, Role)>,
    /// `cli`, `console`, `ssh`, `https`.
    pub protocol: &'static str,
    /// Source address, when remote.
    pub address: Option<IpAddr>,
    /// The id of the access token the caller was authenticated by (as the
    /// bearer, or as the password of the login that made the session).
    /// Such a caller may not manage credentials
    /// ([`Actor::may_manage_credentials`]).
    pub access_token: Option<String>,
}

impl Actor {
    /// The local operator at the command line.
    pub fn cli() -> Self {
        Self {
            account: None,
            protocol: "cli",
            address: None,
            access_token: None,
        }
    }

    /// A logged-in session acting for itself.
    pub fn session(session: &flow::Session) -> Self {
        Self {
            account: Some((session.account.clone(), session.role)),
            protocol: session.protocol.as_str(),
            address: Some(session.address),
            access_token: session.token.clone(),
        }
    }

    /// Whether this caller may manage credentials: tokens, TOTP, recovery
    /// codes, passwords, public keys and sessions. A caller authenticated
    /// by an access token may not ([`AuthError::TokenCannotManageCredentials`]).
    /// Every credential method of [`Auth`](super::Auth) checks it; front ends that keep
    /// credentials of their own (web sessions) ask it too.
    pub fn may_manage_credentials(&self) -> Result<(), AuthError> {
        match self.access_token {
            Some(_) => Err(AuthError::TokenCannotManageCredentials),
            None => Ok(()),
        }
    }

    /// Whether this caller may administer accounts and read the box's
    /// administrative state (accounts, groups, policy, audit log): an
    /// admin, the system administrator or the local operator. The core
    /// methods that need it check it themselves; front ends may ask it
    /// first to refuse before they parse a body or draw a page.
    pub fn may_administer_accounts(&self) -> Result<(), AuthError> {
        self.require_admin()
    }

    /// Whether this caller may administer the box itself (policy changes,
    /// system facts, the HTTPS certificate): the system administrator or
    /// the local operator. Like [`Actor::may_administer_accounts`], the
    /// core methods check it; front ends may ask it first.
    pub fn may_administer_box(&self) -> Result<(), AuthError> {
        self.require_owner()
    }

    pub(super) fn name(&self) -> &str {
        self.account
            .as_ref()
            .map_or("local operator", |(n, _)| n.as_str())
    }

    pub(super) fn role(&self) -> Option<Role> {
        self.account.as_ref().map(|(_, r)| *r)
    }

    pub(super) fn is_self(&self, account: &str) -> bool {
        self.account.as_ref().is_some_and(|(n, _)| n == account)
    }

    /// Local operator or an admin.
    pub(super) fn require_admin(&self) -> Result<(), AuthError> {
        match self.role() {
            None | Some(Role::Admin | Role::SystemAdmin) => Ok(()),
            Some(Role::User) => Err(AuthError::Forbidden("this needs an administrator".into())),
        }
    }

    /// Local operator or the system administrator.
    pub(super) fn require_owner(&self) -> Result<(), AuthError> {
        match self.role() {
            None | Some(Role::SystemAdmin) => Ok(()),
            _ => Err(AuthError::Forbidden(
                "this needs the system administrator".into(),
            )),
        }
    }

    /// The account itself, or an admin (who may not touch a system_admin
    /// unless they are one).
    pub(super) fn require_self_or_admin_over(&self, target: &Account) -> Result<(), AuthError> {
        if self.is_self(&target.name) {
            return Ok(());
        }
        self.require_admin_over(target)
    }

    /// Before an account is looked up: the caller is that account or an
    /// admin. Anyone else is refused alike whether the name exists or not,
    /// so the answer does not tell.
    pub(super) fn require_self_or_admin(&self, name: &str) -> Result<(), AuthError> {
        if self.is_self(name) {
            return Ok(());
        }
        self.require_admin()
    }

    pub(super) fn require_admin_over(&self, target: &Account) -> Result<(), AuthError> {
        self.require_admin()?;
        if target.role == Role::SystemAdmin {
            self.require_owner()?;
        }
        Ok(())
    }

    pub(super) fn entry<'a>(&'a self, account: Option<&'a str>, detail: String) -> Entry<'a> {
        Entry {
            account,
            address: self.address,
            protocol: Some(self.protocol),
            method: None,
            detail: if self.account.is_some() && !account.is_some_and(|a| self.is_self(a)) {
                format!("{detail} (by {})", self.name())
            } else {
                detail
            },
        }
    }
}
