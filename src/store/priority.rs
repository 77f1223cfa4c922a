//! The fold thread's CPU priority.
//!
//! A fold writes every job changed since the previous one: with 100k jobs
//! firing every second, seconds of one core every 10 s. At the default
//! priority it takes that core from the runtime's workers while it runs,
//! and the fires of those seconds start late (up to a second with 100k jobs
//! on two cores, enough for the misfire policy to coalesce some). The fold
//! has no deadline of its own: the journal holds its writes until it ends.
//! So its thread runs at a lower priority (a higher nice value), and the
//! workers take the CPU first, as RocksDB lowers the CPU priority of its
//! compaction threads (`Env::LowerThreadPoolCPUPriority`).

/// Lowers the calling thread's CPU priority to the nice value `nice`
/// (0 to 19; higher is lower). Never raises it: a thread already at `nice`
/// or lower priority is left as it is. Returns the nice value it runs at
/// afterwards, or `None` where that cannot be read or set (outside Linux).
pub(crate) fn lower_this_thread(nice: i32) -> Option<i32> {
    imp::lower(nice.clamp(0, 19))
}

#[cfg(target_os = "linux")]
mod imp {
    pub(super) fn lower(nice: i32) -> Option<i32> {
        // On Linux a nice value belongs to a thread: `PRIO_PROCESS` with a
        // thread id reads and sets that thread's alone.
        // SAFETY: `gettid` has no preconditions.
        let tid = unsafe { libc::gettid() } as libc::id_t;
        let before = current(tid)?;
        if before >= nice {
            return Some(before);
        }
        // SAFETY: `setpriority` only reads its arguments; raising a nice
        // value needs no privilege.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } != 0 {
            return Some(before);
        }
        current(tid)
    }

    /// The thread's nice value. `getpriority` returns it directly, and -1
    /// both for a nice value of -1 and for an error, hence `errno`.
    fn current(tid: libc::id_t) -> Option<i32> {
        // SAFETY: `__errno_location` returns this thread's `errno`;
        // `getpriority` only reads its arguments.
        unsafe {
            *libc::__errno_location() = 0;
            let value = libc::getpriority(libc::PRIO_PROCESS, tid);
            (value != -1 || *libc::__errno_location() == 0).then_some(value)
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn lower(_nice: i32) -> Option<i32> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn lowers_the_calling_thread_only_and_never_raises_it() {
        // A new thread starts at the process's nice value.
        let base = std::thread::spawn(|| lower_this_thread(0))
            .join()
            .unwrap()
            .expect("readable on Linux");
        if base > 13 {
            return; // a test run niced that far leaves nothing to check
        }
        std::thread::spawn(move || {
            assert_eq!(lower_this_thread(base + 5), Some(base + 5));
            // Never raised again.
            assert_eq!(lower_this_thread(base + 1), Some(base + 5));
            // Out of range: clamped.
            assert_eq!(lower_this_thread(40), Some(19));
        })
        .join()
        .unwrap();
        // Another thread is not touched by those changes.
        let other = std::thread::spawn(|| lower_this_thread(0)).join().unwrap();
        assert_eq!(other, Some(base));
    }
}
