//! The tokio runtime a service runs the scheduler on: keeping its workers
//! one per CPU.
//!
//! When many jobs share an instant (every job on `* * * * * *`), the worker
//! that wakes at the instant wakes the other workers, and Linux may place a
//! woken worker on the CPU of the worker that woke it. On a 2-vCPU VM, a
//! scheduler trace (`sched_switch`) of a 10k-job burst showed both workers
//! on one CPU, taking turns at each 4-ms tick, for the first 60 ms of every
//! burst while the other CPU idled (see `docs/performance-history.md`,
//! seventh session). A worker pinned to its own CPU cannot be placed there.
//!
//! Pinning is the service's choice, so the scheduler never does it by
//! itself: a pinned worker cannot move off a CPU that something else keeps
//! busy, which on a shared machine or under a CPU quota costs more than it
//! gives. [`pin_workers`](crate::runtime::pin_workers) is for a service that
//! owns its CPUs.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sets `builder` to run `workers` worker threads and to keep worker `i` on
/// the `i`-th CPU the process may run on (cycling when there are fewer CPUs
/// than workers). Returns the CPUs used, in the workers' order.
///
/// For a multi-thread runtime (`Builder::new_multi_thread`): on a
/// current-thread builder it would pin the first blocking threads instead.
/// It installs the builder's `on_thread_start` callback (tokio keeps one:
/// a callback set later replaces it). tokio starts its workers when the
/// runtime is built, before any blocking thread, so the first `workers`
/// threads the callback sees are the workers; blocking threads are left
/// unpinned. A CPU that refuses the pinning leaves its worker unpinned.
///
/// # Errors
/// The CPUs the process may run on cannot be read, or none is allowed; on
/// systems other than Linux, [`io::ErrorKind::Unsupported`].
///
/// # Examples
///
/// ```
/// let mut builder = tokio::runtime::Builder::new_multi_thread();
/// builder.enable_all();
/// let cpus = cronactor::runtime::pin_workers(&mut builder, 2)?;
/// assert_eq!(cpus.len(), 2);
/// let runtime = builder.build()?;
/// runtime.block_on(async {
///     // Start the scheduler here.
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn pin_workers(
    builder: &mut tokio::runtime::Builder,
    workers: usize,
) -> io::Result<Vec<usize>> {
    let workers = workers.max(1);
    let allowed = imp::allowed_cpus()?;
    if allowed.is_empty() {
        return Err(io::Error::other("no CPU is allowed for this process"));
    }
    let cpus: Vec<usize> = (0..workers).map(|i| allowed[i % allowed.len()]).collect();
    let plan = cpus.clone();
    let started = AtomicUsize::new(0);
    builder.worker_threads(workers).on_thread_start(move || {
        let i = started.fetch_add(1, Ordering::SeqCst);
        if let Some(&cpu) = plan.get(i) {
            imp::pin_this_thread(cpu);
        }
    });
    Ok(cpus)
}

/// The CPUs the calling thread may run on, in ascending order.
///
/// # Errors
/// The affinity cannot be read; on systems other than Linux,
/// [`io::ErrorKind::Unsupported`].
pub fn this_thread_cpus() -> io::Result<Vec<usize>> {
    imp::allowed_cpus()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;

    pub(super) fn allowed_cpus() -> io::Result<Vec<usize>> {
        // SAFETY: `set` is a plain bit set that the call fills in; its size
        // is given. 0 is the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok((0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect())
        }
    }

    pub(super) fn pin_this_thread(cpu: usize) {
        // SAFETY: as above; the set holds one CPU below `CPU_SETSIZE` (it
        // came from `allowed_cpus`).
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                tracing::warn!(
                    cpu,
                    error = %io::Error::last_os_error(),
                    "a worker thread could not be pinned"
                );
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    pub(super) fn allowed_cpus() -> io::Result<Vec<usize>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pinning threads to CPUs is supported on Linux only",
        ))
    }

    pub(super) fn pin_this_thread(_cpu: usize) {}
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Each worker runs on the one CPU planned for it, and a blocking
    /// thread keeps the process's CPUs.
    #[test]
    fn each_worker_runs_on_its_own_planned_cpu_and_blocking_threads_do_not() {
        let allowed = this_thread_cpus().expect("affinity");
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all();
        let plan = pin_workers(&mut builder, 2).expect("pin");
        assert_eq!(plan.len(), 2);
        assert!(plan.iter().all(|c| allowed.contains(c)));
        if allowed.len() >= 2 {
            assert_ne!(plan[0], plan[1], "two CPUs allowed: one per worker");
        }
        let runtime = builder.build().expect("runtime");
        let seen: BTreeSet<Vec<usize>> = runtime.block_on(async {
            let mut seen = BTreeSet::new();
            // Many short tasks, so that both workers run some.
            for _ in 0..200 {
                let tasks: Vec<_> = (0..8)
                    .map(|_| {
                        tokio::spawn(async {
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            this_thread_cpus().expect("affinity")
                        })
                    })
                    .collect();
                for t in tasks {
                    seen.insert(t.await.expect("task"));
                }
            }
            seen
        });
        for cpus in &seen {
            assert_eq!(cpus.len(), 1, "a worker allowed on {cpus:?}");
            assert!(plan.contains(&cpus[0]));
        }
        let blocking = runtime
            .block_on(async { tokio::task::spawn_blocking(this_thread_cpus).await })
            .expect("blocking task")
            .expect("affinity");
        assert_eq!(blocking, allowed, "a blocking thread stays unpinned");
    }
}
