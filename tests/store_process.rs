//! `SledStore` across real processes: a store held by another process is
//! refused at once with `Locked`, and writes flushed before a `SIGKILL` are
//! all there after it.
//!
//! The other process is this test binary, re-executed to run one of the
//! `helper_*` tests below (ignored, and a no-op unless the store directory is
//! passed in `CRONACTOR_STORE_TEST_DIR`).

mod store_support;

use cronactor::store::SledStore;
use cronactor_actors::{SnapshotStore, StoreError, StoreOp};
use std::time::{Duration, Instant};
use store_support::{
    flush, id, ids, open, put_job, run, spawn_helper, state, wait_for_line, DIR_ENV,
};

/// How long a helper lives if nobody kills it (a failed parent).
const HELPER_LIFETIME: Duration = Duration::from_secs(60);
const JOBS: u64 = 200;

fn job_name(n: u64) -> String {
    format!("job-{n:04}")
}

/// Helper: opens the store, says READY, and holds it until killed.
#[test]
#[ignore = "run by locked_by_another_process in a child process"]
fn helper_hold_store() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let store = SledStore::open(&dir).expect("the helper opens the store");
    println!("READY");
    std::thread::sleep(HELPER_LIFETIME);
    drop(store);
}

/// Helper: writes jobs, states and history, flushes, folds, appends more
/// history, flushes, adds one more job, flushes, says FLUSHED, and waits to
/// be killed.
#[test]
#[ignore = "run by flushed_writes_survive_sigkill in a child process"]
fn helper_write_flush_and_wait() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let store = SledStore::open(&dir).expect("the helper opens the store");
    let mut ops: Vec<StoreOp> = (0..JOBS).map(|n| put_job(&job_name(n), state(n))).collect();
    for n in 0..JOBS {
        for k in 0..3 {
            ops.push(StoreOp::AppendHistory {
                id: id(&job_name(n)),
                record: Box::new(run(n * 10 + k)),
                keep: 2,
            });
        }
    }
    ops.push(StoreOp::RemoveJob(id(&job_name(0))));
    store.apply(ops).expect("apply");
    flush(&store);
    // Folded into the trees; then two more entries per job that only the
    // journal holds when the kill comes, so the reopen replays them on top
    // of folded chunks.
    store.fold().expect("fold");
    let more: Vec<StoreOp> = (1..JOBS)
        .flat_map(|n| {
            (3..5).map(move |k| StoreOp::AppendHistory {
                id: id(&job_name(n)),
                record: Box::new(run(n * 10 + k)),
                keep: 3,
            })
        })
        .collect();
    store.apply(more).expect("apply");
    flush(&store);
    // A last control operation on its own, as the runtime does for an
    // acknowledged `remove` or `pause`: it is in sled's in-memory log buffer
    // until the flush writes it out.
    store
        .apply(vec![put_job(&job_name(JOBS), state(JOBS))])
        .expect("apply");
    flush(&store);
    println!("FLUSHED");
    std::thread::sleep(HELPER_LIFETIME);
    drop(store);
}

/// The bytes of every file under `dir` (directories' times left out: the
/// open's write probe is created and removed in the store directory).
fn file_bytes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    store_support::snapshot_dir(dir)
        .into_iter()
        .filter(|(path, _)| path.is_file())
        .map(|(path, (bytes, _))| (path, bytes))
        .collect()
}

#[test]
fn locked_by_another_process() {
    let dir = store_support::store_with_abc();
    let mut child = spawn_helper("helper_hold_store", dir.path());
    wait_for_line(&mut child, "READY", Duration::from_secs(30));

    let before = file_bytes(dir.path());
    let started = Instant::now();
    let result = SledStore::open(dir.path());
    let elapsed = started.elapsed();
    // The refused open wrote nothing (the helper, idle, writes nothing).
    let after = file_bytes(dir.path());
    child.kill().expect("kill the helper");
    child.wait().expect("reap the helper");
    assert!(before == after, "a file of the locked store changed");

    let err = result.expect_err("the store is held by the helper");
    assert_eq!(err, StoreError::Locked(dir.path().display().to_string()));
    assert!(err.to_string().contains("already open in another process"));
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");

    // The lock dies with its process; every job is there.
    let store = open(dir.path());
    assert_eq!(ids(&store.load().expect("load")), ["a", "b", "c"]);
}

#[test]
fn flushed_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = spawn_helper("helper_write_flush_and_wait", dir.path());
    wait_for_line(&mut child, "FLUSHED", Duration::from_secs(60));
    // Child::kill sends SIGKILL on Unix: no destructor, no sled flush on drop.
    child.kill().expect("kill the helper");
    let status = child.wait().expect("reap the helper");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    }
    #[cfg(not(unix))]
    let _ = status;

    let store = open(dir.path());
    let loaded = store.load().expect("load");
    assert!(loaded.quarantined.is_empty(), "{:?}", loaded.quarantined);
    let expected: Vec<String> = (1..=JOBS).map(job_name).collect();
    assert_eq!(ids(&loaded), expected, "the removal of job 0 held");
    for (n, job) in (1..JOBS).zip(&loaded.jobs) {
        assert_eq!(job.state, state(n), "{}", job.spec.id);
        assert_eq!(
            store.history(&job.spec.id, 10).expect("history"),
            [run(n * 10 + 4), run(n * 10 + 3), run(n * 10 + 2)],
            "{}",
            job.spec.id
        );
    }
    assert_eq!(loaded.jobs.last().map(|job| &job.state), Some(&state(JOBS)));
    assert!(store
        .history(&id(&job_name(0)), 10)
        .expect("history")
        .is_empty());
    drop(store);
    // The journal was replayed into the trees and emptied.
    let db = store_support::raw(dir.path());
    assert_eq!(db.open_tree("journal").expect("tree").len(), 0);
}
