//! Returning the allocator's free memory to the operating system after a
//! fold.
//!
//! A fold frees in one go what the journal held since the previous one (the
//! nets of every changed job) and what sled allocated meanwhile (node copies
//! kept until no thread can read them). glibc's `malloc` keeps such memory in
//! the arena of the thread that allocated it, for reuse, and gives it back
//! to the system only from the top of a heap: five minutes into 10k jobs
//! firing every second with the sled store, glibc held 604 MB of which
//! 212 MB was in use (`malloc_stats`). `malloc_trim` gives the free
//! pages of every arena back (`MADV_DONTNEED`), which is what the fold thread
//! asks for after each fold (see `SledStoreOptions::trim_after_fold`).
//!
//! On other C libraries, and with a Rust global allocator other than the
//! system's, this does nothing useful and costs next to nothing.

use std::time::{Duration, Instant};

/// Gives the C allocator's free pages back to the system. Returns how long
/// it took, and whether any memory was released (always `false` where the C
/// library has no `malloc_trim`).
pub(crate) fn release_free_memory() -> (Duration, bool) {
    let started = Instant::now();
    let released = trim();
    (started.elapsed(), released)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> bool {
    // SAFETY: `malloc_trim` takes a padding in bytes and only walks and
    // trims glibc's own arenas, under their locks; it is safe to call from
    // any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_memory_is_released_to_the_system() {
        // Many small blocks, then all freed: glibc keeps them in its bins
        // until trimmed (one block allocated after them keeps the heap's top
        // in use, so `free` alone cannot release them). A store's fold thread
        // in another test may trim in between, hence a few attempts.
        let gnu = cfg!(all(target_os = "linux", target_env = "gnu"));
        for _ in 0..3 {
            let blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 512]).collect();
            let keep = std::hint::black_box(vec![1u8; 512]);
            drop(blocks);
            let (_, released) = release_free_memory();
            drop(keep);
            if released || !gnu {
                assert_eq!(released, gnu);
                return;
            }
        }
        panic!("malloc_trim released nothing in three attempts");
    }
}
