//! Live sessions, and how a change of credentials ends them at once.
//!
//! Every change that takes a right away (an account disabled, removed,
//! re-passworded, re-homed, demoted, its group changed, its second factor
//! reset, the console's owner reset) moves the account's credential epoch
//! ([`Auth::credential_epoch`]) and then asks every front end that holds
//! sessions to end those of the account at once: the web ends its sessions
//! (they would fail the epoch check on their next request anyway), the SSH
//! server disconnects the account's connections. Revoking an access token
//! ends the sessions that were opened with it. When any ended, one audit
//! event ([`Event::SessionsRevoked`]) says how many, and why.
//!
//! A front end that holds sessions implements [`SessionHolder`] and hands
//! it to [`Auth::hold_sessions`]; one that keeps one task per connection can
//! use [`Connections`], which also closes the race of a login granted just
//! before a change and registered just after it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::flow::Session;
use super::{Auth, AuthError, TOKENS};
use crate::audit::{Entry, Event};
use crate::store::Read as _;

/// Which live sessions a change ends.
#[derive(Clone, Copy, Debug)]
pub struct Revocation<'a> {
    /// The account whose sessions end.
    pub account: &'a str,
    /// Only the sessions opened with this access token (its id), when set.
    pub token: Option<&'a str>,
}

impl Revocation<'_> {
    /// Whether `session` is one of those that end.
    pub fn covers(&self, session: &Session) -> bool {
        session.account == self.account
            && self
                .token
                .is_none_or(|id| session.token.as_deref() == Some(id))
    }
}

/// A front end's sessions, as the core sees them.
pub trait SessionHolder: Send + Sync {
    /// A short name for the audit detail (`web`, `ssh`).
    fn kind(&self) -> &'static str;

    /// Ends the sessions `revocation` covers, at once; returns how many.
    fn end_sessions(&self, revocation: &Revocation<'_>) -> usize;
}

/// The holders the core asks; weak, so a front end that stopped is skipped.
#[derive(Default)]
pub(crate) struct Holders(Mutex<Vec<Weak<dyn SessionHolder>>>);

impl Holders {
    fn all(&self) -> Vec<Arc<dyn SessionHolder>> {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|h| h.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    }
}

impl Auth {
    /// Registers a front end's sessions, so that changes of credentials end
    /// them at once. The core keeps only a weak reference.
    pub fn hold_sessions(&self, holder: Weak<dyn SessionHolder>) {
        self.holders
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(holder);
    }

    /// Ends the live sessions `revocation` covers in every front end and,
    /// when any ended, records how many ([`Event::SessionsRevoked`], with
    /// `why`). Returns the count.
    pub fn end_sessions(&self, revocation: &Revocation<'_>, why: &str) -> usize {
        let mut total = 0;
        let mut parts = Vec::new();
        for holder in self.holders.all() {
            let n = holder.end_sessions(revocation);
            total += n;
            if n > 0 {
                parts.push(format!("{n} {}", holder.kind()));
            }
        }
        if total == 0 {
            // Nothing ended: the change's own event says what changed.
            return 0;
        }
        let detail = format!(
            "{total} session{} ended: {} ({why})",
            if total == 1 { "" } else { "s" },
            parts.join(", ")
        );
        let entry = Entry {
            account: Some(revocation.account),
            address: None,
            protocol: None,
            method: None,
            detail,
        };
        if let Err(e) = self.audit(Event::SessionsRevoked, entry) {
            tracing::error!(error = %e, "could not write an audit event");
        }
        total
    }
}

/// The live connections of a front end that keeps one task per connection
/// (SSH). Each registers when its login is granted and gets ended through
/// the closure it gave.
pub struct Connections {
    kind: &'static str,
    inner: Mutex<ConnectionTable>,
}

#[derive(Default)]
struct ConnectionTable {
    next: u64,
    live: HashMap<u64, LiveConnection>,
}

struct LiveConnection {
    account: String,
    token: Option<String>,
    end: Box<dyn FnOnce() + Send>,
}

/// A connection's place in [`Connections`]; dropping it leaves.
pub struct Registration {
    table: Weak<Connections>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(table) = self.table.upgrade() {
            table.lock().live.remove(&self.id);
        }
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .finish()
    }
}

impl Connections {
    /// An empty table; `kind` names the front end in audit details.
    pub fn new(kind: &'static str) -> Arc<Self> {
        Arc::new(Self {
            kind,
            inner: Mutex::new(ConnectionTable::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionTable> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection whose login granted `session`; `end` closes
    /// it. Refused ([`AuthError::Forbidden`], nothing registered) when the
    /// account's credentials changed since the login began: the change
    /// could not see this connection, so it must not start.
    pub fn register(
        self: &Arc<Self>,
        auth: &Auth,
        session: &Session,
        end: impl FnOnce() + Send + 'static,
    ) -> Result<Registration, AuthError> {
        let id = {
            let mut table = self.lock();
            let id = table.next;
            table.next = table.next.wrapping_add(1);
            table.live.insert(
                id,
                LiveConnection {
                    account: session.account.clone(),
                    token: session.token.clone(),
                    end: Box::new(end),
                },
            );
            id
        };
        let registration = Registration {
            table: Arc::downgrade(self),
            id,
        };
        // Read after the insert: a change that moved the epoch before this
        // read ends the connection through the table or is seen here.
        if auth.credential_epoch(&session.account) != session.epoch {
            return Err(AuthError::Forbidden(
                "the account changed during the login; log in again".into(),
            ));
        }
        // Likewise a token revoked while its login ran.
        if let Some(id) = &session.token
            && auth.store.read(|r| r.get(TOKENS, id))?.is_none()
        {
            return Err(AuthError::Forbidden(
                "the access token was revoked during the login".into(),
            ));
        }
        Ok(registration)
    }

    /// Connections registered now.
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SessionHolder for Connections {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn end_sessions(&self, revocation: &Revocation<'_>) -> usize {
        let ending: Vec<LiveConnection> = {
            let mut table = self.lock();
            let ids: Vec<u64> = table
                .live
                .iter()
                .filter(|(_, c)| {
                    c.account == revocation.account
                        && revocation
                            .token
                            .is_none_or(|id| c.token.as_deref() == Some(id))
                })
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| table.live.remove(id)).collect()
        };
        let n = ending.len();
        for c in ending {
            (c.end)();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::auth::accounts::{AccountChange, NewAccount, new_group};
    use crate::auth::flow::{Login, Step};
    use crate::auth::{Actor, Method, Protocol, Role};
    use crate::clock::ManualClock;

    const PW: &str = "correct-horse-battery-staple-9";
    const OTHER: &str = "another-long-passphrase-for-alice-3";

    fn core() -> (Arc<Auth>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_795_392_000);
        let auth = crate::auth::test_core(dir.path(), clock, Some(("owner", PW)));
        (Arc::new(auth), dir)
    }

    fn add(auth: &Auth, name: &str, role: Role, group: Option<&str>) {
        auth.create_account(
            &Actor::cli(),
            NewAccount {
                name: name.into(),
                role,
                group: group.map(str::to_string),
                password: Some(PW.to_string().into()),
                home: None,
                public_keys: Vec::new(),
            },
        )
        .unwrap();
    }

    fn login(auth: &Auth, name: &str, password: &str) -> Session {
        match Login::new(name, "192.0.2.1".parse().unwrap(), Protocol::Ssh).password(
            auth,
            Method::Password,
            password,
        ) {
            Step::Granted(s) => s,
            other => panic!("not granted: {other:?}"),
        }
    }

    fn admin(name: &str) -> Actor {
        Actor {
            account: Some((name.into(), Role::Admin)),
            protocol: "https",
            address: None,
            access_token: None,
        }
    }

    /// Registers a connection whose end is counted.
    fn connect(
        table: &Arc<Connections>,
        auth: &Auth,
        session: &Session,
    ) -> (Registration, Arc<AtomicUsize>) {
        let ended = Arc::new(AtomicUsize::new(0));
        let e = ended.clone();
        let r = table
            .register(auth, session, move || {
                e.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        (r, ended)
    }

    fn revoked(auth: &Auth) -> Vec<String> {
        auth.audit_log(&Actor::cli(), &crate::audit::Filter::default())
            .unwrap()
            .into_iter()
            .filter(|r| r.event == Event::SessionsRevoked)
            .map(|r| r.detail)
            .collect()
    }

    /// A change an administrator makes to `alice`.
    type Change = Box<dyn Fn(&Auth)>;

    #[test]
    fn every_change_of_rights_ends_the_accounts_connections() {
        let (auth, _d) = core();
        let table = Connections::new("ssh");
        auth.hold_sessions(Arc::downgrade(&table) as Weak<dyn SessionHolder>);
        auth.create_group(&Actor::cli(), new_group("staff"))
            .unwrap();
        add(&auth, "alice", Role::Admin, Some("staff"));
        add(&auth, "bob", Role::User, None);
        let changes: Vec<(&str, Change)> = vec![
            (
                "disabled",
                Box::new(|a| {
                    let change = AccountChange {
                        disabled: Some(true),
                        ..Default::default()
                    };
                    a.update_account(&Actor::cli(), "alice", change).unwrap();
                }),
            ),
            (
                "password changed",
                Box::new(|a| a.set_password(&Actor::cli(), "alice", OTHER, None).unwrap()),
            ),
            (
                "role",
                Box::new(|a| {
                    let change = AccountChange {
                        role: Some(Role::User),
                        ..Default::default()
                    };
                    a.update_account(&Actor::cli(), "alice", change).unwrap();
                }),
            ),
            (
                "home",
                Box::new(|a| {
                    let change = AccountChange {
                        home: Some(Some("elsewhere".into())),
                        ..Default::default()
                    };
                    a.update_account(&Actor::cli(), "alice", change).unwrap();
                }),
            ),
            (
                "group staff changed",
                Box::new(|a| {
                    let mut g = new_group("staff");
                    g.read_only = true;
                    a.update_group(&Actor::cli(), g).unwrap();
                }),
            ),
        ];
        let bob = login(&auth, "bob", PW);
        let (_bob_reg, bob_ended) = connect(&table, &auth, &bob);
        let mut password = PW;
        for (why, change) in changes {
            let session = login(&auth, "alice", password);
            let (_reg, ended) = connect(&table, &auth, &session);
            change(&auth);
            assert_eq!(ended.load(Ordering::SeqCst), 1, "{why}");
            assert!(auth.credential_epoch("alice") != session.epoch, "{why}");
            let detail = revoked(&auth).remove(0);
            assert!(
                detail.starts_with("1 session ended: 1 ssh (") && detail.contains(why),
                "{why}: {detail}"
            );
            if why == "password changed" {
                password = OTHER;
            }
            if why == "disabled" {
                let change = AccountChange {
                    disabled: Some(false),
                    ..Default::default()
                };
                auth.update_account(&Actor::cli(), "alice", change).unwrap();
                assert_eq!(revoked(&auth).len(), 1, "nothing to end: no event");
            }
        }
        assert_eq!(bob_ended.load(Ordering::SeqCst), 0, "others keep theirs");
        assert_eq!(table.len(), 1);
        // Removing the account ends its connections too.
        let session = login(&auth, "alice", password);
        let (_reg, ended) = connect(&table, &auth, &session);
        auth.remove_account(&Actor::cli(), "alice").unwrap();
        assert_eq!(ended.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_console_reset_and_a_token_revocation_end_sessions() {
        let (auth, _d) = core();
        let table = Connections::new("ssh");
        auth.hold_sessions(Arc::downgrade(&table) as Weak<dyn SessionHolder>);
        let session = login(&auth, "owner", PW);
        let (_reg, ended) = connect(&table, &auth, &session);
        auth.console_reset_owner(&Actor::console(), OTHER).unwrap();
        assert_eq!(ended.load(Ordering::SeqCst), 1);
        assert!(revoked(&auth)[0].contains("console owner reset"));

        add(&auth, "bob", Role::User, None);
        let token = auth
            .create_token(&Actor::cli(), "bob", "t", None, [Protocol::Ssh].into())
            .unwrap();
        let by_token = login(&auth, "bob", &token.value);
        let by_password = login(&auth, "bob", PW);
        let (_r1, ended_token) = connect(&table, &auth, &by_token);
        let (_r2, ended_password) = connect(&table, &auth, &by_password);
        auth.revoke_token(&Actor::cli(), &token.info.id).unwrap();
        assert_eq!(ended_token.load(Ordering::SeqCst), 1);
        assert_eq!(ended_password.load(Ordering::SeqCst), 0);
        assert!(revoked(&auth)[0].contains("access token revoked"));
        // A login with a token revoked before it registered stays out.
        let token = auth
            .create_token(&Actor::cli(), "bob", "u", None, [Protocol::Ssh].into())
            .unwrap();
        let late = login(&auth, "bob", &token.value);
        auth.revoke_token(&Actor::cli(), &token.info.id).unwrap();
        assert!(table.register(&auth, &late, || {}).is_err());
    }

    #[test]
    fn a_login_that_began_before_a_change_is_not_registered() {
        let (auth, _d) = core();
        let table = Connections::new("ssh");
        add(&auth, "bob", Role::User, None);
        let session = login(&auth, "bob", PW);
        auth.set_password(&Actor::cli(), "bob", OTHER, None)
            .unwrap();
        assert!(table.register(&auth, &session, || {}).is_err());
        assert!(table.is_empty());
        // A dropped registration leaves the table.
        let session = login(&auth, "bob", OTHER);
        let r = table.register(&auth, &session, || {}).unwrap();
        assert_eq!(table.len(), 1);
        drop(r);
        assert!(table.is_empty());
    }

    #[test]
    fn a_group_with_an_owner_is_the_owners_and_keeps_one_owner_able_to_log_in() {
        let (auth, _d) = core();
        auth.create_group(&Actor::cli(), new_group("owners"))
            .unwrap();
        let into_group = AccountChange {
            group: Some(Some("owners".into())),
            ..Default::default()
        };
        auth.update_account(&Actor::cli(), "owner", into_group)
            .unwrap();
        add(&auth, "adam", Role::Admin, None);
        let mut disabled = new_group("owners");
        disabled.enabled = false;
        let refused = auth
            .update_group(&admin("adam"), disabled.clone())
            .unwrap_err();
        assert!(matches!(refused, AuthError::Forbidden(_)), "{refused}");
        assert!(refused.to_string().contains("system_admin"));
        assert!(auth.remove_group(&admin("adam"), "owners").is_err());
        // The owner itself may not shut the last owner out, by any path.
        let last = |e: AuthError| e.to_string().contains("last enabled system_admin");
        assert!(last(
            auth.update_group(&Actor::cli(), disabled.clone())
                .unwrap_err()
        ));
        let mut walled = new_group("owners");
        walled.ip_deny = crate::auth::accounts::parse_nets("0.0.0.0/0,::/0").unwrap();
        assert!(last(
            auth.update_group(&Actor::cli(), walled.clone())
                .unwrap_err()
        ));
        let deny_all = AccountChange {
            ip_deny: Some(walled.ip_deny.clone()),
            ..Default::default()
        };
        assert!(last(
            auth.update_account(&Actor::cli(), "owner", deny_all)
                .unwrap_err()
        ));
        assert!(auth.groups().unwrap()[0].enabled);
        // With a second owner who can log in, the first may be walled in.
        add(&auth, "olga", Role::SystemAdmin, None);
        auth.update_group(&Actor::cli(), walled).unwrap();
        let disable = AccountChange {
            disabled: Some(true),
            ..Default::default()
        };
        assert!(last(
            auth.update_account(&Actor::cli(), "olga", disable)
                .unwrap_err()
        ));
        assert!(last(
            auth.remove_account(&Actor::cli(), "olga").unwrap_err()
        ));
        // An admin still manages groups without an owner in them.
        auth.create_group(&admin("adam"), new_group("staff"))
            .unwrap();
        auth.update_group(&admin("adam"), disabled_group("staff"))
            .unwrap();
        auth.remove_group(&admin("adam"), "staff").unwrap();
    }

    fn disabled_group(name: &str) -> crate::auth::Group {
        let mut g = new_group(name);
        g.enabled = false;
        g
    }
}
