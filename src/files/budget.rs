//! The process-wide memory budget of file transfers.
//!
//! Each SFTP or SCP channel bounds what it buffers (a request backlog, READ
//! replies queued, data being written), but the sum over every channel of
//! every connection is what must fit the unit's `MemoryMax`. The large,
//! client-driven buffers therefore also draw on two pools shared by the
//! whole process, and wait when their pool is spent:
//! - [`intake`]: requests taken off a channel ahead of the SFTP server
//!   (`ssh::files`'s backlog); released as the server reads them;
//! - [`work`]: SFTP replies being made or waiting to be sent (READ data,
//!   listings, statuses, each with a fixed cost for its place in the
//!   queue), and WRITE data in flight to the disk; released when a reply
//!   is handed to the connection's writer or a write is done.
//!
//! READ reply buffers kept for reuse after their reply went out are
//! capped process-wide too ([`KEPT_BYTES`]).
//!
//! Two pools, not one, so that waiting cannot go round in a circle: the
//! server waits only on `work`, which drains as clients read and disks
//! write, and never on `intake`, which drains as servers read requests.
//! A client that never reads its replies holds at most its channel's own
//! bounds; several of them slow other transfers down (they wait for the
//! pool), they do not grow the process. The figures and the rest of the
//! arithmetic are in docs/configuration.md ("Memory budget").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of the intake pool: 32 MiB (sixteen OpenSSH uploads, each 2 MiB
/// ahead, never wait for it).
pub const INTAKE_BYTES: usize = 32 * 1024 * 1024;
/// Bytes of the work pool: 32 MiB (eight sessions at their 4 MiB of READ
/// replies).
pub const WORK_BYTES: usize = 32 * 1024 * 1024;

/// Most file channels (SFTP or SCP) open at once in the process; one more
/// is refused. Each holds, outside the pools, at most about 1.7 MiB: the
/// connection's queue of its packets (256 KiB), one packet being taken,
/// the SFTP packet being parsed, up to 1 MiB of replies gathered for one
/// send; or SCP's stream buffers and chunks.
pub const MAX_FILE_CHANNELS: usize = 64;

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

/// The slots of open file channels.
pub fn channels() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    pool(&SLOTS, MAX_FILE_CHANNELS)
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
}
