//! Passwords: argon2id hashes. The NIST SP 800-63B policy a new password
//! must meet is checked in [`super::policy::check`] (this module does not
//! import the policy, nor the policy this one's checks; only the cost type
//! goes from here to there).
//!
//! Policy: a minimum length (default 11, at most 200), a zxcvbn strength score
//! computed with the user name as context, and no reuse of the last N
//! passwords. Every Unicode character is allowed; there are no composition
//! rules and no forced expiry. A refusal says why in plain words.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::random::{OsRng, Rng};

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashCost {
    /// Memory in KiB.
    pub m: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for HashCost {
    /// OWASP's recommendation for argon2id: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        Self {
            m: 19_456,
            t: 2,
            p: 1,
        }
    }
}

impl std::fmt::Display for HashCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "m={},t={},p={}", self.m, self.t, self.p)
    }
}

/// The most memory a hash may ask for (4 GiB): costs above it are refused
/// when configured, and stored hashes claiming more verify nothing.
const MAX_M_KIB: u32 = 4 * 1024 * 1024;

impl std::str::FromStr for HashCost {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut cost = HashCost::default();
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected m=KiB,t=passes,p=lanes"))?;
            let n: u32 = v
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: not a whole number"))?;
            match k.trim() {
                "m" => cost.m = n,
                "t" => cost.t = n,
                "p" => cost.p = n,
                _ => return Err(format!("{part:?}: expected m=KiB,t=passes,p=lanes")),
            }
        }
        if !(1..=16).contains(&cost.p) {
            return Err("p= must be 1 to 16 lanes".into());
        }
        if cost.m < 8 * cost.p || cost.m > MAX_M_KIB {
            return Err(format!("m= must be {} KiB to 4 GiB", 8 * cost.p));
        }
        if !(1..=100).contains(&cost.t) {
            return Err("t= must be 1 to 100 passes".into());
        }
        Ok(cost)
    }
}

impl HashCost {
    fn params(&self) -> Result<Params, HashError> {
        Params::new(self.m, self.t, self.p, None).map_err(|e| HashError(e.to_string()))
    }
}

/// The hashing library failed (bad parameters or out of memory).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// The smallest allocation, in argon2 blocks, that holds a hash's working
/// memory: a little over 32 MiB. glibc serves a request of that size with
/// its own `mmap` whatever its dynamic threshold has grown to (the
/// threshold never exceeds 32 MiB), so freeing it gives the pages back to
/// the system instead of leaving them in a per-thread arena. Only the blocks
/// a hash uses are ever touched, so the rest costs address space, not
/// memory.
const MAPPED_BLOCKS: usize = 32 * 1024 + 1;

/// Working memory for one hash at a time: argon2's blocks, reused from one
/// hash to the next while a burst lasts.
struct Memory(Vec<Block>);

impl Memory {
    fn empty() -> Self {
        Self(Vec::new())
    }

    /// The first `n` blocks, allocating (once, and at least
    /// [`MAPPED_BLOCKS`]) when this memory is smaller.
    fn blocks(&mut self, n: usize) -> Result<&mut [Block], HashError> {
        if self.0.len() < n {
            let mut fresh = Vec::new();
            fresh
                .try_reserve_exact(n.max(MAPPED_BLOCKS))
                .map_err(|_| HashError("out of memory".into()))?;
            fresh.resize(n, Block::new());
            self.0 = fresh;
        }
        self.0
            .get_mut(..n)
            .ok_or_else(|| HashError("out of memory".into()))
    }
}

/// Every password hash of the process goes through one `Hashing`: at most
/// `bound` run at once, each on working memory the pool lends it, so the
/// memory argon2 uses is at most `bound` × the cost's m, whatever the load.
///
/// Memory lent during a burst goes back to the pool while someone waits for
/// it (wiped first), and back to the system as soon as no one does: after a
/// burst the process returns to its idle size.
///
/// Login steps that may hash are admitted by [`Hashing::admission`] before
/// they are handed to a blocking thread: a flood of logins waits there, as
/// suspended requests holding no thread, instead of filling the blocking
/// pool with threads that wait for a lease.
pub struct Hashing {
    bound: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
    queue: std::sync::Arc<tokio::sync::Semaphore>,
    /// Where salts come from.
    rng: Arc<dyn Rng>,
}

/// A login step's place among those that may hash now; see
/// [`Hashing::admission`].
#[derive(Debug)]
pub struct Admission {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

#[derive(Default)]
struct PoolState {
    /// Leases out now.
    busy: usize,
    /// Callers waiting for a lease.
    waiting: usize,
    /// Memory returned while others waited, for the next lease.
    spare: Vec<Memory>,
    /// A hash ran since [`Hashing::settled`] last said so.
    used: bool,
}

impl std::fmt::Debug for Hashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hashing")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl Hashing {
    /// A pool that runs at most `bound` hashes at once (at least one).
    pub fn new(bound: usize) -> Self {
        Self {
            bound: bound.max(1),
            state: Mutex::new(PoolState::default()),
            freed: Condvar::new(),
            queue: std::sync::Arc::new(tokio::sync::Semaphore::new(2 * bound.max(1))),
            rng: Arc::new(OsRng),
        }
    }

    /// The same pool, drawing salts from `rng` instead of the operating
    /// system's source.
    pub fn with_rng(mut self, rng: Arc<dyn Rng>) -> Self {
        self.rng = rng;
        self
    }

    /// Waits (asynchronously, at most `wait`) until fewer than twice
    /// `bound` admitted login steps are running (twice: a step also writes
    /// to the store, and another may hash meanwhile). `None` when the wait ran out: the
    /// caller answers "busy" without having allocated anything for a hash.
    pub async fn admission(&self, wait: Duration) -> Option<Admission> {
        let permit = self.queue.clone().acquire_owned();
        match tokio::time::timeout(wait, permit).await {
            Ok(Ok(permit)) => Some(Admission { _permit: permit }),
            _ => None,
        }
    }

    /// The most hashes that run at once.
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// How many hashes run now and how many wait (for status and tests).
    pub fn load(&self) -> (usize, usize) {
        let state = self.lock();
        (state.busy, state.waiting)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once after hashes ran, when none runs or waits now: a burst of
    /// logins is over, and the memory its work freed can go back to the
    /// system ([`release_after_bursts`]).
    pub fn settled(&self) -> bool {
        let mut state = self.lock();
        let settled = state.used && state.busy == 0 && state.waiting == 0;
        if settled {
            state.used = false;
        }
        settled
    }

    /// A lease to hash with, waiting at most `wait` for one to come free.
    /// `None` when none did: the caller answers "busy". Waiting allocates
    /// nothing.
    pub fn lease(&self, wait: Duration) -> Option<Lease<'_>> {
        let mut state = self.lock();
        if state.busy >= self.bound {
            state.waiting += 1;
            let (mut waited, _) = self
                .freed
                .wait_timeout_while(state, wait, |s| s.busy >= self.bound)
                .unwrap_or_else(|p| p.into_inner());
            waited.waiting -= 1;
            state = waited;
            if state.busy >= self.bound {
                return None;
            }
        }
        state.busy += 1;
        state.used = true;
        let memory = state.spare.pop().unwrap_or_else(Memory::empty);
        Some(Lease {
            pool: self,
            memory: Some(memory),
        })
    }
}

/// How often [`release_after_bursts`] looks whether a burst is over.
pub const SETTLE_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs until the process ends: every [`SETTLE_CHECK`], if hashes ran and
/// none runs now, gives the memory the C allocator kept after the burst
/// back to the system (`malloc_trim`, in the worker threads' arenas: the
/// sessions, requests and store pages a burst of logins touched and
/// freed). The hash memory itself is mapped and returns at once
/// (`Memory`); this is the rest, a few MiB after 100 logins.
/// `settled` is the process's [`Hashing::settled`].
pub async fn release_after_bursts(settled: impl Fn() -> bool) {
    let mut ticker = tokio::time::interval(SETTLE_CHECK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Once more on the tick after: the burst's last requests are still
    // answered (stored, sent, their connections closed) when the last hash
    // ends, and free their memory after the first trim.
    let mut again = false;
    loop {
        ticker.tick().await;
        let now = settled();
        if now || again {
            let _ = tokio::task::spawn_blocking(coffer_release_memory::release_free_memory).await;
        }
        again = now;
    }
}

/// The right to run one hash now, with the memory to run it in. Dropping
/// it gives both back.
pub struct Lease<'a> {
    pool: &'a Hashing,
    memory: Option<Memory>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(mut memory) = self.memory.take() else {
            return;
        };
        let mut state = self.pool.lock();
        state.busy -= 1;
        let released = if state.waiting > 0 {
            // Someone waits: keep the memory for them, wiped.
            memory.0.iter_mut().for_each(Zeroize::zeroize);
            state.spare.push(memory);
            Vec::new()
        } else {
            // The burst is over: everything goes back to the system
            // (outside the lock).
            let mut all = std::mem::take(&mut state.spare);
            all.push(memory);
            all
        };
        self.pool.freed.notify_one();
        drop(state);
        drop(released);
    }
}

impl Lease<'_> {
    fn run(
        &mut self,
        argon2: &Argon2<'_>,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), HashError> {
        let memory = self
            .memory
            .as_mut()
            .ok_or_else(|| HashError("no working memory".into()))?;
        let blocks = memory.blocks(argon2.params().block_count())?;
        argon2
            .hash_password_into_with_memory(password, salt, out, blocks)
            .map_err(|e| HashError(e.to_string()))
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=...`).
    pub fn hash(&mut self, password: &str, cost: HashCost) -> Result<String, HashError> {
        let mut salt_bytes = [0u8; 16];
        self.pool
            .rng
            .fill(&mut salt_bytes)
            .map_err(|e| HashError(e.to_string()))?;
        let params = cost.params()?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
        self.run(&argon2, password.as_bytes(), &salt_bytes, &mut out[..])?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| HashError(e.to_string()))?,
            salt: Some(Salt::new(&salt_bytes).map_err(|e| HashError(e.to_string()))?),
            hash: Some(Output::new(&out[..]).map_err(|e| HashError(e.to_string()))?),
        };
        Ok(phc.to_string())
    }

    /// Checks a password against a PHC string, comparing in constant time.
    /// A malformed hash verifies nothing.
    pub fn verify(&mut self, password: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from).transpose() {
            Ok(v) => v.unwrap_or_default(),
            Err(_) => return false,
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        if params.m_cost() > MAX_M_KIB {
            return false;
        }
        let expected = expected.as_bytes();
        let mut out = Zeroizing::new(vec![0u8; expected.len()]);
        let argon2 = Argon2::new(algorithm, version, params);
        if self
            .run(&argon2, password.as_bytes(), salt, &mut out)
            .is_err()
        {
            return false;
        }
        out.as_slice().ct_eq(expected).into()
    }

    /// Whether `password` matches one of the previous hashes.
    pub fn reused(&mut self, password: &str, previous: &[String]) -> bool {
        let mut any = false;
        for phc in previous {
            any |= self.verify(password, phc);
        }
        any
    }
}

/// A password read from a file or prompt; wiped on drop.
pub type Secret = Zeroizing<String>;

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashCost = HashCost { m: 64, t: 1, p: 1 };

    fn hash(password: &str, cost: HashCost) -> Result<String, HashError> {
        Hashing::new(1)
            .lease(Duration::ZERO)
            .unwrap()
            .hash(password, cost)
    }

    fn verify(password: &str, phc: &str) -> bool {
        Hashing::new(1)
            .lease(Duration::ZERO)
            .unwrap()
            .verify(password, phc)
    }

    fn reused(password: &str, previous: &[String]) -> bool {
        Hashing::new(1)
            .lease(Duration::ZERO)
            .unwrap()
            .reused(password, previous)
    }

    #[test]
    fn hashes_of_other_shapes_verify() {
        // The library's own hasher: argon2i and argon2d, an older version,
        // a longer output; what this module writes is only argon2id v19.
        use argon2::password_hash::PasswordHasher;
        for (algorithm, version, out) in [
            (Algorithm::Argon2i, Version::V0x13, 32),
            (Algorithm::Argon2d, Version::V0x10, 32),
            (Algorithm::Argon2id, Version::V0x13, 64),
        ] {
            let params = Params::new(64, 2, 2, Some(out)).unwrap();
            let phc = Argon2::new(algorithm, version, params)
                .hash_password_with_salt(b"pass phrase", b"saltsaltsalt")
                .unwrap()
                .to_string();
            assert!(verify("pass phrase", &phc), "{phc}");
            assert!(!verify("pass phrasE", &phc), "{phc}");
        }
        // Garbage and absurd costs verify nothing, without allocating.
        for bad in [
            "",
            "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg",
            "$argon2id$v=19$m=4294967295,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$\
             aq42HBL+IPAitHspChw/8mx5JRX2jFDkTmlsBskwH/0",
            "$scrypt$ln=16,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$\
             aq42HBL+IPAitHspChw/8mx5JRX2jFDkTmlsBskwH/0",
            "$argon2id$v=99$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$\
             aq42HBL+IPAitHspChw/8mx5JRX2jFDkTmlsBskwH/0",
        ] {
            assert!(!verify("correct horse battery staple", bad), "{bad}");
        }
    }

    #[test]
    fn at_most_bound_hashes_at_once() {
        let pool = Hashing::new(2);
        let a = pool.lease(Duration::ZERO).unwrap();
        let _b = pool.lease(Duration::ZERO).unwrap();
        assert_eq!(pool.load(), (2, 0));
        assert!(pool.lease(Duration::from_millis(20)).is_none());
        assert_eq!(pool.load(), (2, 0), "a caller that gave up waits no more");
        drop(a);
        assert!(pool.lease(Duration::ZERO).is_some());
    }

    #[test]
    fn memory_is_reused_in_a_burst_and_freed_after() {
        let pool = Hashing::new(1);
        let mut first = pool.lease(Duration::ZERO).unwrap();
        let phc = first.hash("a password to hash", CHEAP).unwrap();
        let blocks = |lease: &Lease<'_>| lease.memory.as_ref().map_or(0, |m| m.0.len());
        assert_eq!(blocks(&first), 64);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let mut next = pool.lease(Duration::from_secs(30)).unwrap();
                // The memory the first hash used, handed over wiped.
                let handed = next.memory.as_ref().unwrap();
                assert_eq!(handed.0.len(), 64);
                assert!(handed.0.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)));
                assert!(next.verify("a password to hash", &phc));
            });
            while pool.load() != (1, 1) {
                std::thread::yield_now();
            }
            drop(first);
            waiter.join().unwrap();
        });
        // No one waited when the second lease ended: nothing is kept.
        assert!(pool.lock().spare.is_empty());
        assert_eq!(blocks(&pool.lease(Duration::ZERO).unwrap()), 0);
    }

    #[test]
    fn a_burst_is_settled_once_when_nothing_runs_or_waits() {
        let pool = Hashing::new(1);
        assert!(!pool.settled(), "nothing ran yet");
        let lease = pool.lease(Duration::ZERO).unwrap();
        assert!(!pool.settled(), "a hash runs");
        drop(lease);
        assert!(pool.settled());
        assert!(!pool.settled(), "said once");
    }

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery staple", CHEAP).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stable", &h));
        assert!(!verify("x", "not a hash"));
    }

    #[test]
    fn hashes_made_elsewhere_verify() {
        // Made by the reference implementation (argon2-cffi), salt
        // "0123456789abcdef": stored hashes do not depend on the crate.
        let phc = "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$\
                   aq42HBL+IPAitHspChw/8mx5JRX2jFDkTmlsBskwH/0";
        assert!(verify("correct horse battery staple", phc));
        assert!(!verify("correct horse battery stable", phc));
    }

    #[test]
    fn cost_parses_and_rejects_garbage() {
        assert_eq!(
            "m=19456,t=2,p=1".parse::<HashCost>().unwrap(),
            HashCost::default()
        );
        for bad in [
            "",
            "m=1,t=1,p=1",
            "m=64,t=0,p=1",
            "m=64,t=1,p=0",
            "m=x,t=1,p=1",
            "q=1",
            "m=64;t=1",
        ] {
            assert!(bad.parse::<HashCost>().is_err(), "{bad}");
        }
    }

    #[test]
    fn history_detects_reuse() {
        let old = vec![hash("first password here", CHEAP).unwrap()];
        assert!(reused("first password here", &old));
        assert!(!reused("second password here", &old));
    }
}
