//! Helpers shared by the `store_*` integration tests: sample records, a
//! byte-for-byte snapshot of a directory, and child processes that re-execute
//! the test binary to run one ignored helper test.
#![allow(dead_code)] // each test binary uses a subset

use chrono::{DateTime, TimeZone, Utc};
use cronactor::store::SledStore;
use cronactor_actors::{
    Counters, JobId, JobRecord, JobSpec, JobState, Outcome, PauseInfo, RunId, RunRecord,
    ScheduleSpec, SnapshotStore, StoreOp, Trigger,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

/// The env var that tells a helper test which store directory to use.
pub const DIR_ENV: &str = "CRONACTOR_STORE_TEST_DIR";

pub fn id(s: &str) -> JobId {
    JobId::new(s).expect("a valid test id")
}

pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 123_456_789)
        .single()
        .expect("a valid test instant")
}

/// A spec with a JSON payload, as a service would declare it.
pub fn spec(name: &str) -> JobSpec {
    JobSpec::builder(name, ScheduleSpec::every(Duration::from_secs(1)), "handler")
        .payload(serde_json::json!({ "job": name, "n": [1, 2, 3], "nested": { "ok": true } }))
        .catch_up_window(Duration::from_secs(3600))
        .build()
        .expect("a valid test spec")
}

/// A run record numbered `n`.
pub fn run(n: u64) -> RunRecord {
    RunRecord {
        run_id: RunId(0xdead_beef_0000_0000 + n),
        scheduled: t(n as i64),
        started: t(n as i64),
        finished: t(n as i64 + 1),
        attempt: 1,
        trigger: Trigger::Schedule,
        outcome: if n.is_multiple_of(2) {
            Outcome::Succeeded
        } else {
            Outcome::Failed(format!("run {n} failed"))
        },
    }
}

/// A typical state after `n` runs: counters, last fire, last run, next fire.
pub fn state(n: u64) -> JobState {
    JobState {
        paused: None,
        next_fire: Some(t(n as i64 + 1)),
        last_slot: Some(t(n as i64)),
        last_fire: Some(t(n as i64)),
        last_run: Some(run(n)),
        counters: Counters {
            fires: n,
            runs: n,
            succeeded: n / 2,
            failed: n - n / 2,
            ..Counters::default()
        },
        consecutive_failures: (n % 3) as u32,
        ..JobState::default()
    }
}

pub fn paused_state(note: &str) -> JobState {
    JobState {
        paused: Some(Box::new(PauseInfo {
            note: Some(note.to_owned()),
            since: t(0),
        })),
        ..JobState::default()
    }
}

pub fn put_job(name: &str, state: JobState) -> StoreOp {
    StoreOp::PutJob(Box::new(JobRecord {
        spec: spec(name),
        state,
    }))
}

pub fn flush(store: &SledStore) {
    futures::executor::block_on(store.flush()).expect("flush");
}

/// Every file under `root` (recursively) with its bytes and modification
/// time, and each directory's modification time.
pub fn snapshot_dir(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, Option<SystemTime>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let meta = std::fs::metadata(&dir).expect("stat dir");
        out.insert(dir.clone(), (Vec::new(), meta.modified().ok()));
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let meta = std::fs::metadata(&path).expect("stat file");
                let bytes = std::fs::read(&path).expect("read file");
                out.insert(path, (bytes, meta.modified().ok()));
            }
        }
    }
    out
}

/// Re-executes this test binary to run the ignored test `name` alone, with
/// `DIR_ENV` set to `dir` and its stdout piped.
pub fn spawn_helper(name: &str, dir: &Path) -> Child {
    let exe = std::env::current_exe().expect("the test binary's path");
    Command::new(exe)
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the helper process")
}

/// Waits until the child prints a line ending with `marker` on stdout; panics
/// after `timeout`. Lines are read on a thread so the wait has a bound.
pub fn wait_for_line(child: &mut Child, marker: &str, timeout: Duration) {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let marker_owned = marker.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest prints "test name ... " first, on the same line.
            if line.trim_end().ends_with(&marker_owned) {
                let _ = tx.send(());
                break;
            }
        }
    });
    if rx.recv_timeout(timeout).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the helper process did not print {marker:?} within {timeout:?}");
    }
}

/// Opens the store, panicking with the error.
pub fn open(dir: &Path) -> SledStore {
    SledStore::open(dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// Opens the raw sled database of a closed store, to inspect or damage it.
///
/// sled 0.34 releases its file lock from a background thread a moment after
/// the last handle of a database is dropped, so a taken lock is retried for
/// up to five seconds (`SledStore::open` tries for half a second; a test
/// machine under load can take longer to run that thread).
pub fn raw(dir: &Path) -> sled::Db {
    let started = std::time::Instant::now();
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < Duration::from_secs(5) =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("raw open {}: {e}", dir.display()),
        }
    }
}

/// A store in a fresh temp dir with jobs `a`, `b` and `c` (states 1, 2, 3)
/// flushed and closed.
pub fn store_with_abc() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    store
        .apply(vec![
            put_job("a", state(1)),
            put_job("b", state(2)),
            put_job("c", state(3)),
        ])
        .expect("apply");
    flush(&store);
    drop(store);
    dir
}

/// The ids of the loaded jobs, in order.
pub fn ids(loaded: &cronactor_actors::Loaded) -> Vec<String> {
    loaded
        .jobs
        .iter()
        .map(|job| job.spec.id.as_str().to_owned())
        .collect()
}
