//! Gives memory the C allocator keeps, after the program freed it, back to
//! the system.
//!
//! glibc's allocator returns freed memory to the system only from the top
//! of each arena; what a burst of work (a hundred logins at once) freed
//! below a chunk still in use stays resident, in the arenas of the threads
//! that did the work. `malloc_trim(0)` walks every arena and gives back the
//! free pages (`madvise(MADV_DONTNEED)`), so the process returns to its idle
//! size after a burst.
//!
//! This is the only place Coffer calls C itself, in a crate of its own so
//! that the service's crate keeps `unsafe_code = "forbid"`. Elsewhere than
//! glibc (musl's allocator returns memory by itself) the call does nothing.

/// Asks the C allocator to give every free page of every arena back to the
/// system; true if it gave anything back. It locks each arena in turn:
/// call it when the process is quiet, not on every request.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes no pointers and has no preconditions; glibc
    // documents it MT-Safe (it takes each arena's lock as malloc does).
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Does nothing off glibc; see the crate documentation.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident bytes of this process.
    fn resident() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: usize = statm
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        pages * 4096
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn memory_freed_below_a_live_block_goes_back() {
        const MIB: usize = 1024 * 1024;
        // In a thread of its own (an arena of its own, as a runtime worker
        // has): 64 MiB of small blocks (from the arena, not mmap), then one
        // block kept above them, then the 64 MiB freed. glibc cannot give
        // that back by itself: it lies below a block in use.
        let (before, after) = std::thread::spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..16 * 1024).map(|i| vec![i as u8; 4000]).collect();
            let keep = vec![1u8; 4000];
            drop(blocks);
            let before = resident();
            assert!(release_free_memory());
            let after = resident();
            assert_eq!(keep.first(), Some(&1));
            (before, after)
        })
        .join()
        .unwrap_or_default();
        assert!(
            before >= after + 32 * MIB,
            "resident {} MiB before, {} MiB after",
            before / MIB,
            after / MIB
        );
    }
}
