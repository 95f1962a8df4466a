//! Web and API sessions.
//!
//! A session is a random 256-bit value held by the browser in the cookie
//! `__Host-coffer` (Secure, HttpOnly, SameSite=Strict, Path=/) or by an API
//! client as a bearer token. The server keeps only its SHA-256, so a memory
//! dump of the table cannot be replayed, and looks sessions up by that hash.
//!
//! A browser gets a session before it logs in (so that the login and setup
//! forms carry a CSRF token); every change of stage (password accepted, code
//! accepted, enrolment done, privilege change) moves the state to a *new*
//! value and forgets the old one, so a value planted before login is
//! worthless after it (no fixation).
//!
//! A granted session ends when it has been idle too long, when it reaches
//! its absolute lifetime, when its owner signs it out, and when the account's
//! credentials, role or state change ([`Auth::credential_epoch`]).
//!
//! The table is bounded: anonymous sessions are few per address and evicted
//! oldest first; granted sessions are capped per account.
//!
//! Session values, CSRF tokens and public ids come from the core's random
//! source ([`Auth::rng`], handed over by [`Sessions::with_rng`]), so tests
//! can repeat them like the core's own secrets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::address::peer_key;
use crate::auth::flow::{AwaitCode, AwaitEnrolment, Session};
use crate::auth::live::{Revocation, SessionHolder};
use crate::auth::{Auth, AuthError};
use crate::clock::Timestamp;
use crate::random::{OsRng, Rng};

/// The session cookie's name. `__Host-` makes browsers insist on Secure,
/// Path=/ and no Domain.
pub const COOKIE: &str = "__Host-coffer";

/// Limits and timeouts of sessions.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A granted session ends after this long without a request.
    pub idle: u64,
    /// A granted session ends this long after login, however busy.
    pub lifetime: u64,
    /// A login that stopped half-way (waiting for a code or an enrolment)
    /// is forgotten after this long.
    pub pending: u64,
    /// Most sessions in the table.
    pub max_sessions: usize,
    /// Most granted sessions per account; the oldest goes first.
    pub max_per_account: usize,
    /// Most anonymous sessions per source address.
    pub max_anonymous_per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle: 30 * 60,
            lifetime: 12 * 3600,
            pending: 10 * 60,
            max_sessions: 4096,
            max_per_account: 32,
            max_anonymous_per_address: 16,
        }
    }
}

/// How the holder presents the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Carrier {
    /// A browser cookie (CSRF checks apply).
    Cookie,
    /// An `Authorization: Bearer` header.
    Bearer,
}

/// Where a session is in the login.
#[derive(Debug)]
pub enum Stage {
    /// Not logged in (a browser on the login or setup page).
    Anonymous,
    /// Password accepted; waiting for a code.
    AwaitCode(AwaitCode),
    /// Password accepted; the account must enrol TOTP first.
    MustEnrol(AwaitEnrolment),
    /// Logged in.
    Granted(Session),
}

impl Stage {
    fn name(&self) -> &'static str {
        match self {
            Stage::Anonymous => "anonymous",
            Stage::AwaitCode(_) => "await_code",
            Stage::MustEnrol(_) => "must_enrol",
            Stage::Granted(_) => "granted",
        }
    }
}

/// One session.
#[derive(Debug)]
struct Entry {
    /// A public handle for lists and sign-out (not the secret value).
    id: String,
    stage: Stage,
    /// The CSRF token the session's forms must carry.
    csrf: Zeroizing<String>,
    carrier: Carrier,
    address: IpAddr,
    /// The browser's User-Agent, shortened, for the sessions list.
    agent: String,
    created: Timestamp,
    granted_at: Option<Timestamp>,
    last_seen: Timestamp,
    /// The account's credential epoch when granted.
    epoch: u64,
    /// A message to show once on the next page (e.g. after a redirect).
    flash: Option<String>,
    /// A TOTP enrolment started in this session and not yet confirmed: its
    /// secret and otpauth URI, so the page can show the same QR code again
    /// after a mistyped code. Forgotten when the session changes value.
    enrolment: Option<PendingEnrolment>,
}

/// An unconfirmed TOTP enrolment's secret and URI, kept for redisplay.
/// `Debug` hides both.
#[derive(Clone)]
pub struct PendingEnrolment {
    /// The secret in base32, for manual entry.
    pub secret: Zeroizing<String>,
    /// The `otpauth://` URI the QR code holds.
    pub uri: Zeroizing<String>,
}

impl std::fmt::Debug for PendingEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingEnrolment(***)")
    }
}

/// A session as its owner sees it in the list of active sessions.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionInfo {
    /// Public handle.
    pub id: String,
    /// Cookie or bearer.
    pub carrier: Carrier,
    /// Source address.
    pub address: IpAddr,
    /// Browser or client.
    pub agent: String,
    /// Logged in at.
    pub granted_at: Timestamp,
    /// Last request.
    pub last_seen: Timestamp,
    /// Ends at the latest.
    pub expires_at: Timestamp,
    /// The session asking.
    pub current: bool,
}

/// A session value: what the cookie or bearer token holds. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// The value to hand to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Wraps a value a client presented.
    pub fn presented(value: &str) -> Self {
        Token(Zeroizing::new(value.to_string()))
    }

    fn fresh(rng: &dyn Rng) -> Result<Self, AuthError> {
        Ok(Token(Zeroizing::new(format!(
            "cws_{}",
            data_encoding::BASE64URL_NOPAD.encode(&rng.bytes::<32>()?)
        ))))
    }

    fn key(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

/// A granted session, as a request handler sees it.
#[derive(Clone, Debug)]
pub struct Current {
    /// The session value (to rotate or end it).
    pub token: Token,
    /// The public handle.
    pub id: String,
    /// The login.
    pub session: Session,
    /// The CSRF token.
    pub csrf: String,
    /// How it is carried.
    pub carrier: Carrier,
    /// When it ends at the latest.
    pub expires_at: Timestamp,
}

/// A session taken out of the table: its stage, to advance, and the rest,
/// to put back if the step fails.
#[derive(Debug)]
pub struct Taken {
    /// The stage.
    pub stage: Stage,
    entry: Entry,
}

impl Taken {
    /// The browser or client.
    pub fn agent(&self) -> &str {
        &self.entry.agent
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found {
    /// No such session (or it ended).
    Nothing,
    /// A session not (yet) logged in: its stage name and CSRF token.
    Pending {
        /// `anonymous`, `await_code`, `must_enrol`.
        stage: &'static str,
        /// The CSRF token.
        csrf: String,
    },
    /// A granted session.
    Granted(Box<Current>),
}

/// The session table.
#[derive(Debug)]
pub struct Sessions {
    limits: Limits,
    table: Mutex<HashMap<[u8; 32], Entry>>,
    /// Where session values, CSRF tokens and ids come from.
    rng: Arc<dyn Rng>,
}

impl Sessions {
    /// An empty table.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            table: Mutex::new(HashMap::new()),
            rng: Arc::new(OsRng),
        }
    }

    /// The same table, drawing its values from `rng` (the core's source,
    /// [`Auth::rng`]) instead of the operating system's.
    pub fn with_rng(mut self, rng: Arc<dyn Rng>) -> Self {
        self.rng = rng;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an anonymous browser session.
    pub fn anonymous(
        &self,
        address: IpAddr,
        agent: &str,
        now: Timestamp,
    ) -> Result<(Token, String), AuthError> {
        let token = Token::fresh(&*self.rng)?;
        let csrf = csrf_token(&*self.rng)?;
        let mut table = self.lock();
        self.sweep(&mut table, now);
        // Bound anonymous sessions per address (an IPv6 /64 is one): the
        // oldest goes.
        let source = peer_key(address);
        let mine = |e: &Entry| matches!(e.stage, Stage::Anonymous) && peer_key(e.address) == source;
        if table.values().filter(|e| mine(e)).count() >= self.limits.max_anonymous_per_address {
            evict_oldest(&mut table, mine);
        }
        // Anonymous sessions take at most a quarter of the table, and only
        // ever push out other anonymous ones: a flood of page views from
        // many addresses never ends a login that waits for its code, nor a
        // signed-in session.
        let anonymous = |e: &Entry| matches!(e.stage, Stage::Anonymous);
        if table.values().filter(|e| anonymous(e)).count() >= self.max_anonymous() {
            evict_oldest(&mut table, anonymous);
        }
        if table.len() >= self.limits.max_sessions && !evict_oldest(&mut table, anonymous) {
            return Err(AuthError::Invalid(
                "the server is busy; please try again shortly".into(),
            ));
        }
        table.insert(
            token.key(),
            Entry {
                id: public_id(&*self.rng)?,
                stage: Stage::Anonymous,
                csrf: Zeroizing::new(csrf.clone()),
                carrier: Carrier::Cookie,
                address,
                agent: shorten(agent),
                created: now,
                granted_at: None,
                last_seen: now,
                epoch: 0,
                flash: None,
                enrolment: None,
            },
        );
        Ok((token, csrf))
    }

    /// Looks a session up, ending it if it expired or its account changed.
    /// Touches a granted session (idle timer).
    pub fn find(&self, auth: &Auth, token: &Token, now: Timestamp) -> Found {
        let key = token.key();
        let mut table = self.lock();
        let Some(entry) = table.get_mut(&key) else {
            return Found::Nothing;
        };
        if self.expired(entry, auth, now) {
            if let Some(e) = table.remove(&key) {
                ended(auth, &e, "expired");
            }
            return Found::Nothing;
        }
        match &entry.stage {
            Stage::Granted(session) => {
                entry.last_seen = now;
                let granted = entry.granted_at.unwrap_or(entry.created);
                Found::Granted(Box::new(Current {
                    token: token.clone(),
                    id: entry.id.clone(),
                    session: session.clone(),
                    csrf: entry.csrf.to_string(),
                    carrier: entry.carrier,
                    expires_at: granted.saturating_add(self.limits.lifetime),
                }))
            }
            stage => Found::Pending {
                stage: stage.name(),
                csrf: entry.csrf.to_string(),
            },
        }
    }

    fn expired(&self, entry: &Entry, auth: &Auth, now: Timestamp) -> bool {
        match &entry.stage {
            Stage::Granted(session) => {
                let granted = entry.granted_at.unwrap_or(entry.created);
                now.saturating_sub(entry.last_seen) > self.limits.idle
                    || now.saturating_sub(granted) > self.limits.lifetime
                    || auth.credential_epoch(&session.account) != entry.epoch
            }
            Stage::Anonymous => now.saturating_sub(entry.last_seen) > self.limits.idle,
            Stage::AwaitCode(_) | Stage::MustEnrol(_) => {
                now.saturating_sub(entry.created) > self.limits.pending
            }
        }
    }

    /// Takes a session out for a handler to advance; it is gone until
    /// [`Sessions::advance`] stores the next stage under a new value, or
    /// [`Sessions::restore`] puts it back.
    pub fn take(&self, token: &Token, now: Timestamp, auth: &Auth) -> Option<Taken> {
        let key = token.key();
        let mut table = self.lock();
        let entry = table.get(&key)?;
        if self.expired(entry, auth, now) {
            if let Some(e) = table.remove(&key) {
                ended(auth, &e, "expired");
            }
            return None;
        }
        let mut entry = table.remove(&key)?;
        let stage = std::mem::replace(&mut entry.stage, Stage::Anonymous);
        Some(Taken { stage, entry })
    }

    /// Stores a session at a new stage under a *new* value (the old value,
    /// if any, is already gone), with a new CSRF token. Returns the value.
    pub fn advance(
        &self,
        auth: &Auth,
        stage: Stage,
        carrier: Carrier,
        address: IpAddr,
        agent: &str,
        now: Timestamp,
    ) -> Result<Token, AuthError> {
        let token = Token::fresh(&*self.rng)?;
        let (epoch, granted_at) = match &stage {
            // The epoch of when the login began: a change written since
            // ends the session at its first request.
            Stage::Granted(s) => (s.epoch, Some(now)),
            _ => (0, None),
        };
        let mut table = self.lock();
        self.sweep(&mut table, now);
        if let Stage::Granted(s) = &stage {
            // Cap per account: the least recently used goes.
            let mine: Vec<([u8; 32], Timestamp)> = table
                .iter()
                .filter(|(_, e)| matches!(&e.stage, Stage::Granted(o) if o.account == s.account))
                .map(|(k, e)| (*k, e.last_seen))
                .collect();
            if mine.len() >= self.limits.max_per_account
                && let Some((oldest, _)) = mine.iter().min_by_key(|(_, t)| *t)
                && let Some(e) = table.remove(oldest)
            {
                ended(auth, &e, "too many sessions: the oldest was ended");
            }
        }
        self.make_room(&mut table);
        table.insert(
            token.key(),
            Entry {
                id: public_id(&*self.rng)?,
                stage,
                csrf: Zeroizing::new(csrf_token(&*self.rng)?),
                carrier,
                address,
                agent: shorten(agent),
                created: now,
                granted_at,
                last_seen: now,
                epoch,
                flash: None,
                enrolment: None,
            },
        );
        Ok(token)
    }

    /// Puts a taken session back under the same value, unchanged but for
    /// its stage (the step did not change its privilege, e.g. a wrong code
    /// was typed).
    pub fn restore(&self, token: &Token, taken: Taken) {
        let mut table = self.lock();
        self.make_room(&mut table);
        let mut entry = taken.entry;
        entry.stage = taken.stage;
        table.insert(token.key(), entry);
    }

    /// Ends one session (sign-out). Returns whether it existed.
    pub fn end(&self, auth: &Auth, token: &Token, why: &str) -> bool {
        match self.lock().remove(&token.key()) {
            Some(e) => {
                ended(auth, &e, why);
                true
            }
            None => false,
        }
    }

    /// Ends, without a word to the holders, the granted sessions a change
    /// of credentials covers; returns how many (the core records them).
    fn revoke(&self, revocation: &Revocation<'_>) -> usize {
        let mut table = self.lock();
        let before = table.len();
        table.retain(|_, e| !matches!(&e.stage, Stage::Granted(s) if revocation.covers(s)));
        before - table.len()
    }

    /// Ends a session of `account` by its public id.
    pub fn end_by_id(&self, auth: &Auth, account: &str, id: &str) -> bool {
        let mut table = self.lock();
        let key = table
            .iter()
            .find(|(_, e)| {
                e.id == id && matches!(&e.stage, Stage::Granted(s) if s.account == account)
            })
            .map(|(k, _)| *k);
        match key.and_then(|k| table.remove(&k)) {
            Some(e) => {
                ended(auth, &e, "signed out from another session");
                true
            }
            None => false,
        }
    }

    /// The granted sessions of `account`, newest first.
    pub fn list(
        &self,
        account: &str,
        current: Option<&Token>,
        now: Timestamp,
        auth: &Auth,
    ) -> Vec<SessionInfo> {
        let current = current.map(Token::key);
        let mut table = self.lock();
        self.sweep(&mut table, now);
        // A session whose account changed since (a new enrolment, a new
        // password, a revocation) is over: it is not listed, and goes.
        self.drop_ended(&mut table, auth, now);
        let mut out: Vec<SessionInfo> = table
            .iter()
            .filter_map(|(k, e)| match &e.stage {
                Stage::Granted(s) if s.account == account => {
                    let granted = e.granted_at.unwrap_or(e.created);
                    Some(SessionInfo {
                        id: e.id.clone(),
                        carrier: e.carrier,
                        address: e.address,
                        agent: e.agent.clone(),
                        granted_at: granted,
                        last_seen: e.last_seen,
                        expires_at: granted.saturating_add(self.limits.lifetime),
                        current: Some(*k) == current,
                    })
                }
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| b.granted_at.cmp(&a.granted_at).then(a.id.cmp(&b.id)));
        out
    }

    /// Checks a form's or header's CSRF token against the session's, in
    /// constant time.
    pub fn csrf_ok(&self, token: &Token, presented: &str) -> bool {
        let table = self.lock();
        table
            .get(&token.key())
            .is_some_and(|e| bool::from(e.csrf.as_bytes().ct_eq(presented.as_bytes())))
    }

    /// Leaves a one-time message for the session's next page.
    pub fn set_flash(&self, token: &Token, message: impl Into<String>) {
        if let Some(e) = self.lock().get_mut(&token.key()) {
            e.flash = Some(message.into());
        }
    }

    /// Takes the one-time message, if any.
    pub fn take_flash(&self, token: &Token) -> Option<String> {
        self.lock()
            .get_mut(&token.key())
            .and_then(|e| e.flash.take())
    }

    /// Keeps an unconfirmed enrolment's secret with the session (`None`
    /// forgets it).
    pub fn set_enrolment(&self, token: &Token, enrolment: Option<PendingEnrolment>) {
        if let Some(e) = self.lock().get_mut(&token.key()) {
            e.enrolment = enrolment;
        }
    }

    /// The unconfirmed enrolment kept with the session, if any.
    pub fn enrolment(&self, token: &Token) -> Option<PendingEnrolment> {
        self.lock()
            .get(&token.key())
            .and_then(|e| e.enrolment.clone())
    }

    /// Number of sessions held, of every stage (for tests and limits).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Number of live signed-in sessions (web and API), for the system
    /// page: not the anonymous ones of a login page, not those that ended.
    pub fn signed_in(&self, auth: &Auth, now: Timestamp) -> usize {
        let mut table = self.lock();
        self.sweep(&mut table, now);
        self.drop_ended(&mut table, auth, now);
        table
            .values()
            .filter(|e| matches!(e.stage, Stage::Granted(_)))
            .count()
    }

    /// Removes the granted sessions that are over for their account
    /// (see [`Sessions::expired`]), recording each end.
    fn drop_ended(&self, table: &mut HashMap<[u8; 32], Entry>, auth: &Auth, now: Timestamp) {
        let over: Vec<[u8; 32]> = table
            .iter()
            .filter(|(_, e)| matches!(e.stage, Stage::Granted(_)) && self.expired(e, auth, now))
            .map(|(k, _)| *k)
            .collect();
        for k in over {
            if let Some(e) = table.remove(&k) {
                ended(auth, &e, "expired");
            }
        }
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops what has expired by time alone (no account lookups).
    fn sweep(&self, table: &mut HashMap<[u8; 32], Entry>, now: Timestamp) {
        let limits = &self.limits;
        table.retain(|_, e| match &e.stage {
            Stage::Granted(_) => {
                let granted = e.granted_at.unwrap_or(e.created);
                now.saturating_sub(e.last_seen) <= limits.idle
                    && now.saturating_sub(granted) <= limits.lifetime
            }
            Stage::Anonymous => now.saturating_sub(e.last_seen) <= limits.idle,
            Stage::AwaitCode(_) | Stage::MustEnrol(_) => {
                now.saturating_sub(e.created) <= limits.pending
            }
        });
    }

    /// The most anonymous sessions at once: a quarter of the table.
    fn max_anonymous(&self) -> usize {
        (self.limits.max_sessions / 4).max(1)
    }

    /// Keeps the table under its cap: anonymous sessions go first, then
    /// logins waiting for a code or an enrolment, oldest first; granted
    /// sessions only when nothing else is left.
    fn make_room(&self, table: &mut HashMap<[u8; 32], Entry>) {
        while table.len() >= self.limits.max_sessions {
            let rank = |e: &Entry| match e.stage {
                Stage::Anonymous => 0,
                Stage::AwaitCode(_) | Stage::MustEnrol(_) => 1,
                Stage::Granted(_) => 2,
            };
            let victim = table
                .iter()
                .min_by_key(|(_, e)| (rank(e), e.last_seen))
                .map(|(k, _)| *k);
            match victim {
                Some(k) => {
                    table.remove(&k);
                }
                None => break,
            }
        }
    }
}

/// Removes the least recently seen session that `which` picks; whether
/// there was one.
fn evict_oldest(table: &mut HashMap<[u8; 32], Entry>, which: impl Fn(&Entry) -> bool) -> bool {
    let victim = table
        .iter()
        .filter(|(_, e)| which(e))
        .min_by_key(|(_, e)| e.last_seen)
        .map(|(k, _)| *k);
    victim.is_some_and(|k| table.remove(&k).is_some())
}

/// The web's sessions, for the core to end when credentials change.
impl SessionHolder for super::Web {
    fn kind(&self) -> &'static str {
        "web"
    }

    fn end_sessions(&self, revocation: &Revocation<'_>) -> usize {
        self.sessions.revoke(revocation)
    }
}

fn ended(auth: &Auth, entry: &Entry, why: &str) {
    if let Stage::Granted(s) = &entry.stage {
        auth.session_ended(s, why);
    }
}

fn csrf_token(rng: &dyn Rng) -> Result<String, AuthError> {
    Ok(data_encoding::BASE64URL_NOPAD.encode(&rng.bytes::<24>()?))
}

fn public_id(rng: &dyn Rng) -> Result<String, AuthError> {
    Ok(data_encoding::HEXLOWER.encode(&rng.bytes::<6>()?))
}

fn shorten(agent: &str) -> String {
    agent
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRng;

    fn anonymous(seed: u64) -> (Token, String) {
        Sessions::new(Limits::default())
            .with_rng(Arc::new(SeededRng::new(seed)))
            .anonymous("192.0.2.7".parse().unwrap(), "test", 1_000)
            .unwrap()
    }

    #[test]
    fn session_values_come_from_the_source_handed_in() {
        let (token, csrf) = anonymous(5);
        let (again, csrf_again) = anonymous(5);
        assert_eq!(token.expose(), again.expose());
        assert_eq!(csrf, csrf_again);
        let (other, other_csrf) = anonymous(6);
        assert_ne!(token.expose(), other.expose());
        assert_ne!(csrf, other_csrf);
        // The value is the stream's first block.
        let stream = SeededRng::new(5);
        let first = (&stream as &dyn Rng).bytes::<32>().unwrap();
        assert_eq!(
            token.expose(),
            format!("cws_{}", data_encoding::BASE64URL_NOPAD.encode(&first))
        );
    }
}
