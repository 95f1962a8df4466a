//! The process-wide memory budget of file transfers.
//!
//! Each SFTP or SCP channel bounds what it buffers (a request backlog, READ
//! replies queued, data being written), but the sum over every channel of
//! every connection is what must fit the unit's `MemoryMax`. The large,
//! client-driven buffers therefore also draw on two pools shared by the
//! whole process, and wait when their pool is spent:
//! - [`intake`]: requests taken off a channel ahead of the SFTP server
//!   (`ssh::files`'s backlog); released as the server reads them;
//! - [`work`]: SFTP replies being made, waiting to be sent or being sent
//!   (READ data, listings, statuses, each with a fixed cost for its place
//!   in the queue, and the packets gathered from them), and WRITE data in
//!   flight to the disk; released when a reply has gone to the connection
//!   or a write is done.
//!
//! What a channel takes comes first out of its account's part of the pool
//! ([`Purse`], a half), so that one account's stalled channels leave the
//! other half to everyone else. Requests taken off a channel keep their
//! intake share while they are an unfinished SFTP packet in the server's
//! buffer ([`crate::files::sftp::Requests`]), so a client that sends most
//! of a large packet and stops holds pool bytes, not bytes of its own.
//!
//! READ reply buffers kept for reuse after their reply went out are
//! capped process-wide too ([`KEPT_BYTES`]), and so are SSH channels
//! (`sftp.max_open_channels`), each of which holds a bounded amount
//! outside the pools ([`CHANNEL_OUTSIDE_BYTES`]).
//!
//! Two pools, not one, so that waiting cannot go round in a circle: the
//! server waits only on `work`, which drains as clients read and disks
//! write, and never on `intake`, which drains as servers read requests.
//! A client that never reads its replies holds at most its account's
//! part; several accounts doing so slow other transfers down (they wait
//! for the pool), they do not grow the process. The figures and the rest
//! of the arithmetic are in docs/configuration.md ("Memory budget").

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of the intake pool: 32 MiB (sixteen OpenSSH uploads, each 2 MiB
/// ahead, never wait for it).
pub const INTAKE_BYTES: usize = 32 * 1024 * 1024;
/// Bytes of the work pool: 32 MiB (eight sessions at their 4 MiB of READ
/// replies).
pub const WORK_BYTES: usize = 32 * 1024 * 1024;

/// Bytes an SSH channel holds at most outside the pools: the packets its
/// connection queued for it (2 of at most 64 KiB with the default
/// `sftp.max_packet`) and the state of an idle session (about 60 KiB).
/// The partial SFTP packet being taken and the replies gathered for one
/// send draw on the pools. `sftp.max_open_channels` (512) bounds how many
/// there are.
pub const CHANNEL_OUTSIDE_BYTES: usize = 2 * 64 * 1024 + 60 * 1024;

/// The part of each pool one account may hold: a half. Channels of one
/// account that never read their replies, or never finish a packet, stall
/// that account's own transfers once they hold its half; other accounts
/// keep the other half.
pub const ACCOUNT_PART: usize = 2;

/// Bytes of READ reply buffers all SFTP sessions together keep for reuse
/// once their replies are sent: 32 MiB.
pub const KEPT_BYTES: usize = 32 * 1024 * 1024;

static KEPT: AtomicUsize = AtomicUsize::new(0);

/// Counts `n` more bytes of kept buffers if they fit under
/// [`KEPT_BYTES`]; false (keep nothing) if not.
pub fn keep(n: usize) -> bool {
    KEPT.fetch_update(Ordering::AcqRel, Ordering::Acquire, |kept| {
        kept.checked_add(n).filter(|&total| total <= KEPT_BYTES)
    })
    .is_ok()
}

/// Counts `n` bytes of kept buffers as given up.
pub fn unkeep(n: usize) {
    let _ = KEPT.fetch_update(Ordering::AcqRel, Ordering::Acquire, |kept| {
        Some(kept.saturating_sub(n))
    });
}

fn pool(cell: &'static OnceLock<Arc<Semaphore>>, bytes: usize) -> Arc<Semaphore> {
    cell.get_or_init(|| Arc::new(Semaphore::new(bytes))).clone()
}

/// The pool for requests taken off channels.
pub fn intake() -> Arc<Semaphore> {
    static POOL: OnceLock<Arc<Semaphore>> = OnceLock::new();
    pool(&POOL, INTAKE_BYTES)
}

/// The pool for replies and data on their way.
pub fn work() -> Arc<Semaphore> {
    static POOL: OnceLock<Arc<Semaphore>> = OnceLock::new();
    pool(&POOL, WORK_BYTES)
}

/// `n` bytes of `pool` (at most the whole pool), waiting while it is
/// spent; `None` only if the pool was closed.
pub async fn take(pool: &Arc<Semaphore>, n: usize, whole: usize) -> Option<OwnedSemaphorePermit> {
    let n = u32::try_from(n.min(whole)).unwrap_or(u32::MAX);
    pool.clone().acquire_many_owned(n).await.ok()
}

/// `n` bytes of `pool` if they are free now.
pub fn try_take(pool: &Arc<Semaphore>, n: usize, whole: usize) -> Option<OwnedSemaphorePermit> {
    let n = u32::try_from(n.min(whole)).unwrap_or(u32::MAX);
    pool.clone().try_acquire_many_owned(n).ok()
}

/// Which of the two pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// [`intake`].
    Intake,
    /// [`work`].
    Work,
}

impl Pool {
    fn shared(self) -> (Arc<Semaphore>, usize) {
        match self {
            Pool::Intake => (intake(), INTAKE_BYTES),
            Pool::Work => (work(), WORK_BYTES),
        }
    }
}

/// An account's part of the two pools ([`ACCOUNT_PART`]): what its
/// channels take comes out of its part first, then out of the pool.
#[derive(Debug)]
pub struct Purse {
    intake: Arc<Semaphore>,
    work: Arc<Semaphore>,
}

/// Bytes taken from an account's part and from the pool, given back to
/// both when dropped.
#[derive(Debug)]
pub struct Grant {
    _part: OwnedSemaphorePermit,
    _pool: OwnedSemaphorePermit,
}

impl Purse {
    /// A part of its own: for a server that serves one client only
    /// (`coffer sftp-server`), and for tests.
    pub fn own() -> Arc<Purse> {
        Arc::new(Purse {
            intake: Arc::new(Semaphore::new(INTAKE_BYTES / ACCOUNT_PART)),
            work: Arc::new(Semaphore::new(WORK_BYTES / ACCOUNT_PART)),
        })
    }

    /// The part of the account named `account`, shared by all its
    /// channels on every connection. Accounts are told apart as the store
    /// tells them (names are unique regardless of case).
    pub fn of(account: &str) -> Arc<Purse> {
        static PURSES: OnceLock<Mutex<HashMap<String, Weak<Purse>>>> = OnceLock::new();
        let key = account.to_lowercase();
        let mut purses = PURSES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(purse) = purses.get(&key).and_then(Weak::upgrade) {
            return purse;
        }
        // Forget the parts no channel uses any more.
        purses.retain(|_, p| p.strong_count() > 0);
        let purse = Purse::own();
        purses.insert(key, Arc::downgrade(&purse));
        purse
    }

    fn part(&self, pool: Pool) -> (&Arc<Semaphore>, usize) {
        match pool {
            Pool::Intake => (&self.intake, INTAKE_BYTES / ACCOUNT_PART),
            Pool::Work => (&self.work, WORK_BYTES / ACCOUNT_PART),
        }
    }

    /// `n` bytes (at most the account's part), waiting while the part or
    /// the pool is spent; `None` only if a pool was closed. The part is
    /// taken first, so an account waiting on its own part holds nothing
    /// of the pool.
    pub async fn take(&self, pool: Pool, n: usize) -> Option<Grant> {
        let (part, whole) = self.part(pool);
        let part = take(part, n, whole).await?;
        let (shared, all) = pool.shared();
        let pooled = take(&shared, n.min(whole), all).await?;
        Some(Grant {
            _part: part,
            _pool: pooled,
        })
    }

    /// `n` bytes if both the part and the pool have them now.
    pub fn try_take(&self, pool: Pool, n: usize) -> Option<Grant> {
        let (part, whole) = self.part(pool);
        let part = try_take(part, n, whole)?;
        let (shared, all) = pool.shared();
        let pooled = try_take(&shared, n.min(whole), all)?;
        Some(Grant {
            _part: part,
            _pool: pooled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_share_larger_than_the_pool_takes_the_whole_pool() {
        let p = Arc::new(Semaphore::new(10));
        let all = take(&p, 100, 10).await.unwrap();
        assert_eq!(p.available_permits(), 0);
        assert!(try_take(&p, 1, 10).is_none());
        drop(all);
        assert!(try_take(&p, 1, 10).is_some());
    }

    #[tokio::test]
    async fn one_account_holds_at_most_its_part_of_a_pool() {
        let greedy = Purse::of("Greedy");
        let same = Purse::of("greedy");
        let half = INTAKE_BYTES / ACCOUNT_PART;
        let held = greedy.take(Pool::Intake, half).await.unwrap();
        // The account's other channels (any case of its name) wait ...
        assert!(same.try_take(Pool::Intake, 1).is_none());
        // ... while another account still finds its part and the pool.
        let other = Purse::of("other");
        let got = other.try_take(Pool::Intake, half).unwrap();
        drop(got);
        drop(held);
        assert!(same.try_take(Pool::Intake, half).is_some());
    }
}
