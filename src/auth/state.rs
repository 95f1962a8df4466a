//! The core itself: [`Auth`], what it is built with ([`Options`], the
//! clock, the random source), the credential epochs, password hashing under its bound, the
//! keys derived from the data key, and [`blocking`], the way async front
//! ends call it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{AuthError, live, password};
use crate::clock::{Clock, Timestamp};
use crate::random::{OsRng, Rng};
use crate::seal::DataKey;
use crate::store::Store;

/// Runs a core call (hashing, store reads and writes) on the blocking
/// pool, off the async threads: the one way every async front end calls
/// the core. A call that dies is an [`AuthError::Internal`].
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, AuthError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "a core call's task failed");
            Err(AuthError::Internal("the request's task failed".into()))
        }
    }
}

/// Tuning of the core that comes from the server's configuration.
#[derive(Clone, Debug)]
pub struct Options {
    /// Root under which home folders are made.
    pub files_root: PathBuf,
    /// Most password hashes computed at once (bounds argon2's memory).
    pub max_concurrent_hashes: usize,
    /// Longest wait for a hashing slot before a login is refused as busy.
    pub hash_wait: Duration,
    /// Seconds between the first factor and the code before the login expires.
    pub code_timeout: u64,
}

impl Options {
    /// Defaults for a data dir: files under `<data-dir>/files`.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Self {
            files_root: data_dir.join("files"),
            max_concurrent_hashes: 4,
            hash_wait: Duration::from_secs(10),
            code_timeout: 300,
        }
    }
}

/// The core. One per data dir; shared by every front end (it is `Sync`).
pub struct Auth {
    pub(super) store: Store,
    pub(super) key: DataKey,
    pub(super) clock: Arc<dyn Clock>,
    /// Where every secret the core makes comes from ([`crate::random`]).
    pub(super) rng: Arc<dyn Rng>,
    pub(super) options: Options,
    pub(super) hashing: password::Hashing,
    /// The hash an unknown account's password is checked against, and the
    /// cost it was made with: made again when the policy's cost changes,
    /// so an unknown name keeps costing what a real account's check costs.
    pub(super) dummy_hash: Mutex<Option<(password::HashCost, String)>>,
    /// Bumped when an account's credentials, role or state change, so that
    /// sessions made before the change end (see [`Auth::credential_epoch`]).
    pub(super) epochs: Mutex<std::collections::HashMap<String, u64>>,
    /// The front ends' live sessions, ended when credentials change.
    pub(super) holders: live::Holders,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Subkey labels; changing one voids every stored hash made with it.
const RECOVERY_KEY_LABEL: &[u8] = b"coffer/recovery-codes/v1";
const TOKEN_KEY_LABEL: &[u8] = b"coffer/access-tokens/v1";

impl Auth {
    /// Builds the core on an open store and its unsealed data key. Its
    /// secrets come from the operating system's random source until
    /// [`Auth::with_rng`] hands it another.
    pub fn new(store: Store, key: DataKey, clock: Arc<dyn Clock>, options: Options) -> Self {
        let hashing = password::Hashing::new(options.max_concurrent_hashes);
        Self {
            store,
            key,
            clock,
            rng: Arc::new(OsRng),
            options,
            hashing,
            dummy_hash: Mutex::new(None),
            epochs: Mutex::new(std::collections::HashMap::new()),
            holders: live::Holders::default(),
        }
    }

    /// The same core drawing every secret it makes (and the password
    /// salts) from `rng`: the seam tests use to make them repeatable.
    pub fn with_rng(mut self, rng: Arc<dyn Rng>) -> Self {
        self.hashing =
            password::Hashing::new(self.options.max_concurrent_hashes).with_rng(Arc::clone(&rng));
        self.rng = rng;
        self
    }

    /// The random source the core draws from, for a front end whose own
    /// secrets (web session values) should come from the same place.
    pub fn rng(&self) -> Arc<dyn Rng> {
        Arc::clone(&self.rng)
    }

    /// `N` random bytes from the core's source; a failing source is an
    /// [`AuthError::Internal`].
    pub(super) fn random<const N: usize>(&self) -> Result<[u8; N], AuthError> {
        Ok(self.rng.bytes::<N>()?)
    }

    /// Fills `dest` from the core's source, like [`Auth::random`].
    pub(super) fn fill_random(&self, dest: &mut [u8]) -> Result<(), AuthError> {
        Ok(self.rng.fill(dest)?)
    }

    /// A number that changes whenever the account's password, second
    /// factor, role, group or enabled state changes. A session remembers it
    /// when granted and ends when it differs.
    pub fn credential_epoch(&self, account: &str) -> u64 {
        let epochs = self.epochs.lock().unwrap_or_else(|p| p.into_inner());
        epochs.get(account).copied().unwrap_or(0)
    }

    /// Ends every session of `account`: moves its credential epoch (so a
    /// session checked per request fails its next check), then has every
    /// front end end the account's live sessions at once and records how
    /// many ended, saying `why` ([`Auth::end_sessions`]). Returns the count.
    /// Called after the change is written.
    pub fn credentials_changed(&self, account: &str, why: &str) -> usize {
        {
            let mut epochs = self.epochs.lock().unwrap_or_else(|p| p.into_inner());
            let n = epochs.entry(account.to_string()).or_insert(0);
            *n = n.wrapping_add(1);
        }
        self.end_sessions(
            &live::Revocation {
                account,
                token: None,
            },
            why,
        )
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The options the core was built with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    pub(super) fn hash_password(&self, password: &str) -> Result<String, AuthError> {
        self.hash_password_with(password, self.policy()?.password.hash_cost)
    }

    pub(super) fn hash_password_with(
        &self,
        password: &str,
        cost: password::HashCost,
    ) -> Result<String, AuthError> {
        Ok(self.lease()?.hash(password, cost)?)
    }

    /// A lease on the process's password hashing, or the "busy" refusal
    /// when none came free within the configured wait.
    pub(super) fn lease(&self) -> Result<password::Lease<'_>, AuthError> {
        self.hashing.lease(self.options.hash_wait).ok_or_else(|| {
            AuthError::Busy("the server is busy hashing passwords; try again".into())
        })
    }

    /// Admission for a login step that may hash a password, waiting at
    /// most the configured time; `None` means "busy". Front ends take it
    /// before handing the step to a blocking thread and keep it until the
    /// step is done.
    pub async fn admit_hashing(&self) -> Option<password::Admission> {
        self.hashing.admission(self.options.hash_wait).await
    }

    /// The password hashing of this core (bound and load, for status).
    pub fn hashing(&self) -> &password::Hashing {
        &self.hashing
    }

    /// Verifies under the hashing limit. `None` when no slot came free in time.
    pub(super) fn verify_password(&self, password: &str, phc: Option<&str>) -> Option<bool> {
        let mut lease = self.hashing.lease(self.options.hash_wait)?;
        match phc {
            Some(phc) => Some(lease.verify(password, phc)),
            None => {
                // Unknown account: spend the same time as a real check.
                let cost = self
                    .policy()
                    .map(|p| p.password.hash_cost)
                    .unwrap_or_default();
                let dummy = {
                    let mut cached = self.dummy_hash.lock().unwrap_or_else(|p| p.into_inner());
                    match cached.as_ref() {
                        Some((made_with, hash)) if *made_with == cost => hash.clone(),
                        _ => {
                            let hash = lease
                                .hash("coffer-dummy-password", cost)
                                .unwrap_or_default();
                            *cached = Some((cost, hash.clone()));
                            hash
                        }
                    }
                };
                let _ = lease.verify(password, &dummy);
                Some(false)
            }
        }
    }

    pub(super) fn recovery_key(&self) -> zeroize::Zeroizing<[u8; 32]> {
        self.key.subkey(RECOVERY_KEY_LABEL)
    }

    pub(super) fn token_key(&self) -> zeroize::Zeroizing<[u8; 32]> {
        self.key.subkey(TOKEN_KEY_LABEL)
    }
}

/// A core for unit tests: a new store in `dir`, a fresh data key, the
/// given clock; `owner` claims it with `password` at a cheap hashing cost
/// when given.
#[cfg(test)]
pub(crate) fn test_core(
    dir: &Path,
    clock: crate::clock::ManualClock,
    owner: Option<(&str, &str)>,
) -> Auth {
    let (store, key) = (
        Store::open(dir, crate::store::OpenMode::Create, &crate::auth::SCHEMA).unwrap(),
        DataKey::generate().unwrap().0,
    );
    let auth = Auth::new(store, key, Arc::new(clock), Options::for_data_dir(dir));
    if let Some((name, password)) = owner {
        auth.claim(
            &super::Actor::cli(),
            name,
            password,
            Some("m=64,t=1,p=1".parse().unwrap()),
        )
        .unwrap();
    }
    auth
}
