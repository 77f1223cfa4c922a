//! [`SledStore`]: the [`SnapshotStore`] adapter on sled 0.34.

use super::codec::{self, RecordKind};
use super::fold::{self, Folder, Trees};
use super::journal::{self, JournalOp, NetMap};
use chrono::{DateTime, Utc};
use cronactor_actors::{
    JobId, JobRecord, JobSpec, JobState, Loaded, QuarantinedRecord, RunRecord, SnapshotStore,
    StoreError, StoreOp,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{IVec, Transactional, Tree};
use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The name of the file, next to sled's own files, that holds the store's
/// schema version as decimal text. It is read before sled opens the
/// directory, so that a store written by a newer build is refused without a
/// single write.
const MARKER_FILE: &str = "schema_version";
/// The prefix of the file created and removed at open to check that the
/// directory is writable.
const PROBE_FILE: &str = ".cronactor-write-probe";
/// How long `open` retries a taken lock before it reports
/// [`StoreError::Locked`]; see [`SledStore::open`].
const LOCK_GRACE: Duration = Duration::from_millis(500);
/// The pause between two tries.
const LOCK_POLL: Duration = Duration::from_millis(5);
/// sled's log file in the store directory (fsynced after each flush).
const SLED_LOG_FILE: &str = "db";

const TREE_JOBS: &str = "jobs";
const TREE_STATE: &str = "state";
pub(super) const TREE_HISTORY: &str = "history";
const TREE_QUARANTINE: &str = "quarantine";
const TREE_META: &str = "meta";
const TREE_JOURNAL: &str = "journal";
/// The size at which a journal segment is closed and another begun. sled
/// 0.34 writes a log message of more than 128 KiB (a quarter of its segment)
/// to a blob file, which it does not `fsync`; a message is a value, but also
/// a whole tree node, which sled rewrites every ten updates and which holds
/// up to about twenty values (it splits past sixteen and merges below four).
/// Segments of 4 KiB keep the journal's nodes near 80 KiB at most, so every
/// segment lives in sled's log file and `sync_on_flush` covers it; 64 KiB
/// segments made nodes of 0.5 to 1 MiB, each rewrite a new blob file.
const SEGMENT_BYTES: usize = 4 * 1024;
/// The largest journal segment number a replay accepts: far beyond what a
/// store writes (one segment per 4 KiB flushed), and far enough from
/// `u64::MAX` that numbering on from it cannot overflow.
const MAX_SEGMENT: u64 = 1 << 62;
/// The key of the schema version in the `meta` tree.
const META_SCHEMA_VERSION: &[u8] = b"schema_version";

/// How [`SledStore::open_with`] opens a store.
///
/// ```
/// use cronactor::store::SledStoreOptions;
/// let options = SledStoreOptions::default()
///     .cache_capacity(64 * 1024 * 1024)
///     .sync_on_flush(true);
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
#[must_use = "options do nothing until passed to SledStore::open_with"]
pub struct SledStoreOptions {
    cache_capacity: u64,
    sync_on_flush: bool,
    fold_interval: Duration,
    fold_after_ops: u64,
    trim_after_fold: bool,
    fold_nice: i32,
}

impl Default for SledStoreOptions {
    fn default() -> Self {
        Self {
            cache_capacity: Self::DEFAULT_CACHE_CAPACITY,
            sync_on_flush: true,
            fold_interval: Self::DEFAULT_FOLD_INTERVAL,
            fold_after_ops: 4_000_000,
            trim_after_fold: true,
            fold_nice: Self::DEFAULT_FOLD_NICE,
        }
    }
}

impl SledStoreOptions {
    /// The default of [`cache_capacity`](Self::cache_capacity): 256 MiB.
    pub const DEFAULT_CACHE_CAPACITY: u64 = 256 * 1024 * 1024;

    /// The default of [`fold_interval`](Self::fold_interval): 10 s.
    pub const DEFAULT_FOLD_INTERVAL: Duration = Duration::from_secs(10);

    /// The default of [`fold_nice`](Self::fold_nice): 10.
    pub const DEFAULT_FOLD_NICE: i32 = 10;

    /// The most memory, in bytes, sled's page cache may use (default 256 MiB).
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }

    /// Whether [`SnapshotStore::flush`] also `fsync`s sled's log file after
    /// sled's own flush (default `true`).
    ///
    /// sled 0.34 makes a flush stable with `sync_file_range`, which survives a
    /// crash of the process but not necessarily a power loss or a kernel
    /// crash; the extra `fsync` covers those too, at the cost of one `fsync`
    /// per flush. Either way a flushed write survives `SIGKILL`.
    pub fn sync_on_flush(mut self, sync: bool) -> Self {
        self.sync_on_flush = sync;
        self
    }

    /// How often the journal is folded into the `jobs`, `state` and
    /// `history` trees (default 10 s; at least 10 ms).
    ///
    /// Writes reach the journal at every flush, as segments of up to 4 KiB
    /// holding many writes each; a fold writes each changed job once (its
    /// last state, its new history entries as one chunk). A longer interval
    /// coalesces more fires per write and keeps more of the journal in
    /// memory and to replay after a crash.
    pub fn fold_interval(mut self, interval: Duration) -> Self {
        self.fold_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Folds as soon as this many writes wait in the journal, before
    /// [`fold_interval`](Self::fold_interval) has passed (default 4,000,000).
    pub fn fold_after_ops(mut self, ops: u64) -> Self {
        self.fold_after_ops = ops.max(1);
        self
    }

    /// Whether the fold thread gives the C allocator's free memory back to
    /// the system after each fold (default `true`).
    ///
    /// On Linux with glibc this calls `malloc_trim(0)`, which releases the
    /// free pages of every `malloc` arena of the process (the embedding
    /// service's included): a fold frees at once what the journal and sled
    /// held since the previous one, and glibc would otherwise keep it. With
    /// 10k jobs firing every second it took 25 to 80 ms of the fold thread
    /// every 10 s and kept their RSS 60 to 100 MiB lower, for no measurable
    /// CPU (`docs/performance-history.md`, 2026-12-04). Elsewhere, or with
    /// a Rust global allocator other than the system's, it does nothing
    /// useful; turn it off then, or if the service trims memory itself.
    pub fn trim_after_fold(mut self, trim: bool) -> Self {
        self.trim_after_fold = trim;
        self
    }

    /// The nice value the fold thread runs at, 0 to 19 (default 10; Linux
    /// only). A fold writes every job changed since the previous one, which
    /// with 100k jobs firing every second takes seconds of one core every
    /// fold; at a lower priority than the runtime's workers it takes the
    /// CPU they leave, and the fires go on starting on time while it runs
    /// (`docs/performance-history.md`, sixth session). The thread's
    /// priority is only ever lowered: 0, or a value at or below the
    /// process's own nice value, leaves it as it is. Under a load the
    /// machine cannot carry, a niced fold runs less often, and more of the
    /// journal waits in memory for it.
    pub fn fold_nice(mut self, nice: i32) -> Self {
        self.fold_nice = nice.clamp(0, 19);
        self
    }
}

/// What the store knows of a job, kept in memory so that `apply` needs no
/// read to check that a job exists or to number its history entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct JobEntry {
    /// The job has a spec (counting the writes applied so far).
    exists: bool,
    /// The sequence number of its next history entry, once known.
    next_seq: Option<u64>,
    /// How many history entries it keeps (from its newest entry), once known.
    keep: Option<u64>,
}

/// The job index of the store.
type Known = HashMap<JobId, JobEntry, foldhash::fast::RandomState>;

/// Reads the ids of the `jobs` tree (keys only; invalid keys are left for
/// `load` to quarantine).
fn read_known(jobs: &Tree) -> sled::Result<Known> {
    let mut map = Known::default();
    for key in jobs.iter().keys() {
        let key = key?;
        if let Some(id) = std::str::from_utf8(&key)
            .ok()
            .and_then(|s| JobId::new(s).ok())
        {
            map.insert(
                id,
                JobEntry {
                    exists: true,
                    ..JobEntry::default()
                },
            );
        }
    }
    Ok(map)
}

/// The state `apply`, `flush`, `history` and the folder share.
#[derive(Debug, Default)]
struct Inner {
    /// Every job with a spec, and its history numbering (once
    /// `known_ready`: read at the first `load` or `apply`, so that opening
    /// a store does not scan its `jobs` tree twice).
    known: Known,
    known_ready: bool,
    /// Ops applied and not yet in the journal tree: a version byte, then
    /// postcard ops (empty when there are none).
    segment: Vec<u8>,
    /// Full segments waiting for the next flush, oldest first.
    sealed: Vec<Vec<u8>>,
    /// The key of the next journal segment.
    next_segment: u64,
    /// The net effect of the ops applied since the last fold started.
    pending: NetMap,
    /// The nets of the fold in progress, until its writes are in the trees.
    folding: Option<Arc<NetMap>>,
    /// Why the last fold failed; flushes fail until a fold succeeds.
    fold_error: Option<String>,
    /// The store is being dropped: the folder stops.
    closing: bool,
}

/// The part of the store the folder thread shares.
pub(super) struct Shared {
    shown: String,
    pub(super) db: sled::Db,
    jobs: Tree,
    state: Tree,
    pub(super) history: Tree,
    quarantine: Tree,
    pub(super) journal: Tree,
    inner: Mutex<Inner>,
    /// Wakes the folder early (enough ops waiting, or closing).
    wake: Condvar,
    /// Serialises folds, and remembers history chunks between them.
    folder: Mutex<Folder>,
    fold_interval: Duration,
    fold_after_ops: u64,
    /// Whether the folder releases free memory after each fold.
    trim_after_fold: bool,
    /// Tests: the number of journal inserts to fail, one each.
    #[cfg(test)]
    pub(super) fail_journal_inserts: std::sync::atomic::AtomicU32,
}

impl Shared {
    fn io(&self, e: sled::Error) -> StoreError {
        sled_error(&self.shown, e)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn trees(&self) -> Trees<'_> {
        Trees {
            jobs: &self.jobs,
            state: &self.state,
            history: &self.history,
            quarantine: &self.quarantine,
        }
    }

    /// Inserts the segments closed since the last flush, and the current
    /// one, into the journal tree, one value each (not yet flushed). A
    /// segment whose insert fails stays, with those after it, for the next
    /// flush: a later flush that succeeds must not acknowledge ops whose
    /// segment was dropped.
    fn write_segment(&self, inner: &mut Inner) -> Result<(), StoreError> {
        let mut sealed = std::mem::take(&mut inner.sealed).into_iter();
        while let Some(segment) = sealed.next() {
            if let Err(e) = self.insert_segment(inner.next_segment, &segment) {
                inner.sealed = std::iter::once(segment).chain(sealed).collect();
                return Err(e);
            }
            inner.next_segment += 1;
        }
        if inner.segment.len() <= 1 {
            return Ok(());
        }
        self.insert_segment(inner.next_segment, &inner.segment)?;
        inner.next_segment += 1;
        inner.segment.clear();
        Ok(())
    }

    /// Inserts one journal segment under `key`.
    fn insert_segment(&self, key: u64, segment: &[u8]) -> Result<(), StoreError> {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering;
            let left = &self.fail_journal_inserts;
            if left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(StoreError::Io("injected journal insert failure".into()));
            }
        }
        self.journal
            .insert(key.to_be_bytes(), segment)
            .map_err(|e| self.io(e))?;
        Ok(())
    }

    /// A job's state as the `state` tree holds it (tests).
    #[cfg(test)]
    pub(super) fn state_of(&self, id: &JobId) -> Option<JobState> {
        let bytes = self.state.get(id.as_str().as_bytes()).ok()??;
        codec::decode_state(&bytes).ok()
    }

    /// Deletes the journal segments with a key below `upto` (folded into
    /// the trees already).
    fn delete_segments_below(&self, upto: u64) -> Result<(), StoreError> {
        // One removal at a time: a sled batch would hold the process-wide
        // write lock that the flushes' journal writes wait for (see
        // `Folder::write`); a replay after a crash part way finds the
        // segments left and folds them again, to the same trees.
        for key in self.journal.range(..upto.to_be_bytes()).keys() {
            self.journal
                .remove(key.map_err(|e| self.io(e))?)
                .map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    /// Folds every op applied so far into the trees, then deletes the journal
    /// segments they came from. Safe at any time: a crash at any point leaves
    /// segments that replay to the same trees.
    fn fold(&self) -> Result<(), StoreError> {
        let mut folder = self.folder.lock().unwrap_or_else(|p| p.into_inner());
        let (net, upto) = {
            let mut inner = self.lock();
            if let Some(e) = &inner.fold_error {
                // The failed fold's writes are only in its journal segments
                // (and partly in the trees): a later fold would delete those
                // segments with it. They stay for the next open to replay.
                return Err(StoreError::Io(format!(
                    "an earlier fold failed ({e}); the journal is replayed at the next open"
                )));
            }
            if inner.pending.is_empty() && inner.segment.len() <= 1 && inner.sealed.is_empty() {
                return Ok(());
            }
            self.write_segment(&mut inner)?;
            let net = Arc::new(std::mem::take(&mut inner.pending));
            inner.folding = Some(net.clone());
            (net, inner.next_segment)
        };
        let started = Instant::now();
        let result = folder.write(&self.trees(), &net).and_then(|writes| {
            self.db.flush().map_err(|e| self.io(e))?;
            self.delete_segments_below(upto)?;
            Ok(writes)
        });
        let mut inner = self.lock();
        match result {
            Ok(writes) => {
                inner.folding = None;
                inner.fold_error = None;
                tracing::debug!(
                    ops = net.ops,
                    jobs = net.jobs.len(),
                    writes,
                    took_ms = started.elapsed().as_millis() as u64,
                    "store: journal folded"
                );
                Ok(())
            }
            Err(e) => {
                // The segments stay: the next open replays them. The nets stay
                // readable; the chunk bookkeeping is read again.
                folder.forget();
                inner.fold_error = Some(e.to_string());
                tracing::error!(error = %e, "store: journal fold failed");
                Err(e)
            }
        }
    }

    /// The folder thread: folds every `fold_interval`, or sooner when enough
    /// ops wait; stops when the store is dropped.
    fn run_folder(&self) {
        loop {
            {
                let inner = self.lock();
                if inner.closing {
                    return;
                }
                let (inner, _) = self
                    .wake
                    .wait_timeout_while(inner, self.fold_interval, |inner| {
                        !inner.closing && inner.pending.ops < self.fold_after_ops
                    })
                    .unwrap_or_else(|p| p.into_inner());
                if inner.closing {
                    return;
                }
                if inner.pending.is_empty() || inner.fold_error.is_some() {
                    continue;
                }
            }
            if self.fold().is_ok() && self.trim_after_fold {
                let (took, released) = super::heap::release_free_memory();
                tracing::debug!(
                    took_us = took.as_micros() as u64,
                    released,
                    "store: free memory released after the fold"
                );
            }
        }
    }

    /// Replays the segments a crash left in the journal, quarantining those
    /// that do not decode, and folds them. Returns the next segment key.
    fn replay(&self, folder: &mut Folder) -> Result<u64, StoreError> {
        let mut net = NetMap::default();
        let mut next = 0u64;
        let mut bad = Vec::new();
        for item in self.journal.iter() {
            let (key, value) = item.map_err(|e| self.io(e))?;
            // A key that is not a segment number (damage: this store never
            // writes one) may sort at or after `next`, so that the deletion
            // below would leave it to be replayed again, over newer writes,
            // at every open; one past `MAX_SEGMENT` would make the next
            // segment numbers overflow. It is quarantined instead.
            let Some(number) = <[u8; 8]>::try_from(&key[..])
                .ok()
                .map(u64::from_be_bytes)
                .filter(|n| *n <= MAX_SEGMENT)
            else {
                bad.push(BadRecord {
                    tree: TREE_JOURNAL,
                    key,
                    raw: value,
                    reason: format!(
                        "the journal key is not a segment number (8 bytes, at most {MAX_SEGMENT})"
                    ),
                });
                continue;
            };
            next = next.max(number + 1);
            match journal::decode_segment(&value) {
                Ok(ops) => ops.into_iter().for_each(|op| net.record(op)),
                Err(reason) => bad.push(BadRecord {
                    tree: TREE_JOURNAL,
                    key,
                    raw: value,
                    reason,
                }),
            }
        }
        quarantine_all(self, &bad)?;
        if net.is_empty() {
            return Ok(next);
        }
        tracing::info!(
            ops = net.ops,
            jobs = net.jobs.len(),
            "store: journal replayed"
        );
        folder.write(&self.trees(), &net)?;
        self.db.flush().map_err(|e| self.io(e))?;
        self.delete_segments_below(next)?;
        self.db.flush().map_err(|e| self.io(e))?;
        Ok(next)
    }
}

/// Moves every bad record to the quarantine tree, with a warning each (a
/// bad journal segment's successors are still replayed).
fn quarantine_all(shared: &Shared, bad: &[BadRecord]) -> Result<(), StoreError> {
    let now = Utc::now();
    for record in bad {
        tracing::warn!(
            tree = record.tree,
            key = %String::from_utf8_lossy(&record.key),
            reason = %record.reason,
            "store: record moved to quarantine"
        );
        quarantine_record(shared, record, now)?;
    }
    Ok(())
}

/// Moves a bad record to the quarantine tree: the quarantine insert and the
/// removal from its tree happen in one transaction, so the record is in
/// exactly one of the two trees whatever happens.
fn quarantine_record(
    shared: &Shared,
    bad: &BadRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let source = match bad.tree {
        TREE_JOBS => &shared.jobs,
        TREE_STATE => &shared.state,
        TREE_JOURNAL => &shared.journal,
        TREE_HISTORY => &shared.history,
        other => {
            return Err(StoreError::Io(format!(
                "cannot quarantine a record of tree {other}"
            )))
        }
    };
    let entry = QuarantineEntry {
        tree: bad.tree.to_owned(),
        key: bad.key.to_vec(),
        reason: bad.reason.clone(),
        raw: bad.raw.to_vec(),
        quarantined_at: now,
    };
    let value = IVec::from(
        codec::encode(RecordKind::Quarantine, &entry)
            .map_err(|e| StoreError::Io(format!("cannot encode a quarantine record: {e}")))?,
    );
    (source, &shared.quarantine)
        .transaction(|(source, quarantine)| {
            // Never overwrite an earlier quarantine of the same key.
            let mut n = 0u64;
            let qkey = loop {
                let candidate = codec::quarantine_key(bad.tree, &bad.key, n);
                if quarantine.get(&candidate)?.is_none() {
                    break candidate;
                }
                n += 1;
            };
            quarantine.insert(qkey, value.clone())?;
            source.remove(&bad.key)?;
            Ok::<(), ConflictableTransactionError<()>>(())
        })
        .map_err(|e| match e {
            TransactionError::Storage(e) => shared.io(e),
            TransactionError::Abort(()) => {
                StoreError::Io("a quarantine transaction aborted".into())
            }
        })?;
    shared.db.flush().map_err(|e| shared.io(e))?;
    Ok(())
}

/// Keeps in the quarantine a record its tree no longer holds (the fold
/// found it undecodable as it removed it), under a key no earlier
/// quarantine of the same key has.
pub(super) fn quarantine_removed(
    quarantine: &sled::Tree,
    tree: &str,
    key: &[u8],
    raw: &[u8],
    reason: String,
) -> sled::Result<()> {
    tracing::warn!(
        tree,
        key = %String::from_utf8_lossy(key),
        reason = %reason,
        "store: record moved to quarantine"
    );
    let entry = QuarantineEntry {
        tree: tree.to_owned(),
        key: key.to_vec(),
        reason,
        raw: raw.to_vec(),
        quarantined_at: Utc::now(),
    };
    let value = codec::encode(RecordKind::Quarantine, &entry)
        .map_err(|e| sled::Error::Unsupported(format!("cannot encode a quarantine record: {e}")))?;
    let mut n = 0u64;
    let qkey = loop {
        let candidate = codec::quarantine_key(tree, key, n);
        if quarantine.get(&candidate)?.is_none() {
            break candidate;
        }
        n += 1;
    };
    quarantine.insert(qkey, value).map(drop)
}

/// A record of the `quarantine` tree, as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct QuarantineEntry {
    /// The tree the record was in.
    tree: String,
    /// Its key, as raw bytes.
    key: Vec<u8>,
    /// Why it was quarantined.
    reason: String,
    /// Its value, exactly as it was.
    raw: Vec<u8>,
    /// When it was quarantined.
    quarantined_at: DateTime<Utc>,
}

/// The `jobs` tree, in key order: the specs that decode, and the records
/// that do not.
fn read_specs(shared: &Shared) -> Result<(Vec<ReadSpec>, Vec<BadRecord>), StoreError> {
    let mut specs = Vec::new();
    let mut bad = Vec::new();
    for item in shared.jobs.iter() {
        let (key, value) = item.map_err(|e| shared.io(e))?;
        match decode_job(&key, &value) {
            Ok(spec) => specs.push((key, spec)),
            Err(reason) => bad.push(BadRecord {
                tree: TREE_JOBS,
                key,
                raw: value,
                reason,
            }),
        }
    }
    Ok((specs, bad))
}

/// A spec as read, with its key.
type ReadSpec = (IVec, JobSpec);

/// A state as read: its key, its bytes, and what they decode to.
type ReadState = (IVec, IVec, Result<JobState, String>);

/// The `state` tree, in key order, decoded.
fn read_states(shared: &Shared) -> Result<Vec<ReadState>, StoreError> {
    let mut states = Vec::new();
    for item in shared.state.iter() {
        let (key, value) = item.map_err(|e| shared.io(e))?;
        let decoded = codec::decode_state(&value).map_err(|e| e.to_string());
        states.push((key, value, decoded));
    }
    Ok(states)
}

/// A record found bad during [`SnapshotStore::load`], to be quarantined.
struct BadRecord {
    tree: &'static str,
    key: IVec,
    raw: IVec,
    reason: String,
}

/// A [`SnapshotStore`] on a sled database directory: every job's spec, state
/// and history survive the process.
///
/// One sled tree per record kind (`jobs`, `state`, `history`, `quarantine`,
/// `meta`, `journal`); every value starts with a record-version byte. Writes
/// are buffered by [`apply`](SnapshotStore::apply) and made durable by
/// [`flush`](SnapshotStore::flush), which appends them to the `journal` tree
/// in segments of up to 4 KiB; a background thread folds the journal into the other trees
/// every few seconds (see [`SledStoreOptions::fold_interval`]), and a crash
/// before a fold is replayed at the next open. Before a flush, a crash may
/// lose any write applied since the previous one, but never half a record,
/// never a job's state without its spec, and never part of a removal (a
/// job's spec, state and history go together). The layout and the
/// durability contract are described in `docs/storage.md`.
///
/// Only one process may have a store open: a second
/// [`open`](SledStore::open) fails with [`StoreError::Locked`], after
/// trying the lock for half a second at most.
///
/// ```
/// use cronactor::store::SledStore;
/// use cronactor_actors::{JobRecord, JobSpec, JobState, ScheduleSpec, SnapshotStore, StoreOp};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("cronactor-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let spec = JobSpec::builder("backup", ScheduleSpec::every(Duration::from_secs(60)), "run-backup")
///     .build()?;
/// {
///     let store = SledStore::open(&dir)?;
///     store.apply(vec![StoreOp::PutJob(Box::new(JobRecord {
///         spec: spec.clone(),
///         state: JobState::default(),
///     }))])?;
///     futures::executor::block_on(store.flush())?; // durable from here on
/// }
/// // Later, or in the next process:
/// let store = SledStore::open(&dir)?;
/// let loaded = store.load()?;
/// assert_eq!(loaded.jobs.len(), 1);
/// assert_eq!(loaded.jobs[0].spec, spec);
/// assert!(loaded.quarantined.is_empty());
/// # drop(store);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub struct SledStore {
    path: PathBuf,
    pub(super) shared: Arc<Shared>,
    /// A handle on sled's log file, `fsync`ed after each flush; `None` when
    /// [`SledStoreOptions::sync_on_flush`] is off.
    sync_file: Option<Arc<File>>,
    /// The folder thread, joined on drop.
    folder_thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("sync_on_flush", &self.sync_file.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for SledStore {
    /// Stops the folder and folds what is left, so that a store closed
    /// cleanly leaves an empty journal.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.folder_thread.take() {
            let _ = thread.join();
        }
        if let Err(e) = self.shared.fold() {
            tracing::warn!(error = %e, "store: final fold failed; the next open replays the journal");
        }
    }
}

impl SledStore {
    /// The store schema version this build writes, and the newest it opens.
    /// Version 2 added the journal, history chunks and binary states;
    /// version 3 stores a run's start and end as offsets (smaller history
    /// chunks and journal segments); version 4 writes job states of record
    /// version 3 (the overlap queue and the runs' cancel marks); version 5
    /// of record version 4 (the event payloads of runs in flight and of a
    /// waiting retry); version 6 of record version 5 (the job's last run
    /// result). A store of an earlier version is read and upgraded in
    /// place.
    pub const SCHEMA_VERSION: u32 = 6;

    /// Opens the store in directory `path`, creating the directory and the
    /// store if they do not exist, with the default [`SledStoreOptions`].
    ///
    /// # Errors
    /// - [`StoreError::NotADirectory`]: `path` exists and is not a directory.
    /// - [`StoreError::NotWritable`]: the directory cannot be created, or a
    ///   file cannot be created in it.
    /// - [`StoreError::NewerVersion`]: the store was written by a newer build;
    ///   it is left untouched (nothing is written before this check).
    /// - [`StoreError::Locked`]: another process (or another `SledStore` in
    ///   this process) has the store open. Never waits for it: the lock is
    ///   tried for half a second at most (sled 0.34 releases the lock of a
    ///   store just closed in this process from a background thread, a
    ///   moment after the drop), then this error is returned.
    /// - [`StoreError::Damaged`]: the `schema_version` file says the store
    ///   was created, but sled opened its database empty (its log was
    ///   damaged or replaced); or the schema version, in that file or in
    ///   the `meta` tree, does not read (not a number, 0, an unknown record
    ///   version).
    /// - [`StoreError::Io`]: anything else (sled cannot read its files...).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SledStoreOptions::default())
    }

    /// Opens the store in directory `path` with `options`; see
    /// [`SledStore::open`].
    ///
    /// # Errors
    /// As [`SledStore::open`].
    pub fn open_with(
        path: impl AsRef<Path>,
        options: SledStoreOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let shown = path.display().to_string();

        // 1. The directory, without writing anything if it exists.
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(StoreError::NotADirectory(shown)),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(path)
                    .map_err(|e| open_io_error(&shown, "cannot create the directory", &e))?;
            }
            Err(e) => return Err(open_io_error(&shown, "cannot inspect the path", &e)),
        }

        // 2. The schema version, read from the marker file before any write.
        let marker = read_marker(path, &shown)?;
        if let Some(found) = marker {
            check_version(found, &shown, "its schema marker")?;
        }

        // 3. Writable? A probe file, created and removed.
        probe_writable(path, &shown)?;

        // 4. sled: takes an exclusive lock on its log file and fails at once
        //    if it is taken. A store closed a moment ago in this process may
        //    still hold it (sled 0.34 drops its last handle from a background
        //    thread), so a taken lock is retried for LOCK_GRACE before it
        //    is reported.
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_capacity)
            .mode(sled::Mode::HighThroughput);
        let started = Instant::now();
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(e) if is_lock_error(&e) && started.elapsed() < LOCK_GRACE => {
                    std::thread::sleep(LOCK_POLL);
                }
                Err(e) => return Err(sled_open_error(&shown, e)),
            }
        };
        // The marker is written only after `meta` is flushed: a marker
        // without a `meta` tree means sled lost its data (sled 0.34 opens a
        // database whose log is damaged as an empty one). Checked before
        // any tree is opened, as opening a tree that does not exist writes
        // it, and the scheduler must not start empty and write over what
        // is left.
        if let Some(found) = marker {
            if !db
                .tree_names()
                .iter()
                .any(|name| name == TREE_META.as_bytes())
            {
                return Err(StoreError::Damaged {
                    path: shown,
                    reason: format!(
                        "its schema marker says version {found}, but sled's database holds no \
                         schema version: sled's log file was damaged or replaced, and sled \
                         opened it as an empty database; restore the directory from a backup"
                    ),
                });
            }
        }
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| StoreError::Io(format!("cannot open tree {name} of {shown}: {e}")))
        };
        // 5. The authoritative copy of the version, in the meta tree, read
        //    before the other trees are opened: opening a tree that does
        //    not exist writes it, and a store this build refuses gets
        //    nothing of its own.
        let meta = tree(TREE_META)?;
        let stored = match meta
            .get(META_SCHEMA_VERSION)
            .map_err(|e| sled_error(&shown, e))?
        {
            Some(bytes) => {
                // A value that does not read cannot say which layout the
                // store has: damage (a newer build that changes the meta
                // value's layout also raises the schema version, and the
                // marker, read first, is not newer).
                let found: u32 =
                    codec::decode(RecordKind::Meta, &bytes).map_err(|e| StoreError::Damaged {
                        path: shown.clone(),
                        reason: format!(
                            "its schema version (meta/schema_version) is unreadable: {e}"
                        ),
                    })?;
                check_version(found, &shown, "its schema version (meta/schema_version)")?;
                Some(found)
            }
            None => None,
        };
        let (jobs, state, history, quarantine, journal) = (
            tree(TREE_JOBS)?,
            tree(TREE_STATE)?,
            tree(TREE_HISTORY)?,
            tree(TREE_QUARANTINE)?,
            tree(TREE_JOURNAL)?,
        );
        match stored {
            // Upgrade: the marker first (read first at open), so an older
            // build refuses the store before it meets a record of the new
            // layout.
            Some(found) if found < Self::SCHEMA_VERSION => {
                write_marker(path, &shown)?;
                write_meta_version(&meta, &db, &shown)?;
            }
            Some(_) => {}
            None => write_meta_version(&meta, &db, &shown)?,
        }
        if marker.is_none_or(|m| m < Self::SCHEMA_VERSION) {
            write_marker(path, &shown)?;
        }

        let sync_file = if options.sync_on_flush {
            let file = File::open(path.join(SLED_LOG_FILE)).map_err(|e| {
                StoreError::Io(format!("cannot open sled's log file in {shown}: {e}"))
            })?;
            Some(Arc::new(file))
        } else {
            None
        };

        let shared = Arc::new(Shared {
            shown: shown.clone(),
            db,
            jobs,
            state,
            history,
            quarantine,
            journal,
            inner: Mutex::new(Inner::default()),
            wake: Condvar::new(),
            folder: Mutex::new(Folder::default()),
            fold_interval: options.fold_interval,
            fold_after_ops: options.fold_after_ops,
            trim_after_fold: options.trim_after_fold,
            #[cfg(test)]
            fail_journal_inserts: std::sync::atomic::AtomicU32::new(0),
        });
        // 6. What a crash left in the journal, before anything is read.
        let next_segment = {
            let mut folder = shared.folder.lock().unwrap_or_else(|p| p.into_inner());
            shared.replay(&mut folder)?
        };
        shared.lock().next_segment = next_segment;
        let folder_thread = {
            let shared = shared.clone();
            let fold_nice = options.fold_nice;
            std::thread::Builder::new()
                .name("cronactor-store-fold".into())
                .spawn(move || {
                    if fold_nice > 0 {
                        let now = super::priority::lower_this_thread(fold_nice);
                        tracing::debug!(nice = ?now, "store: fold thread priority");
                    }
                    shared.run_folder()
                })
                .map_err(|e| StoreError::Io(format!("cannot start the fold thread: {e}")))?
        };

        Ok(Self {
            path: path.to_path_buf(),
            shared,
            sync_file,
            folder_thread: Some(folder_thread),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Folds the journal into the `jobs`, `state` and `history` trees now,
    /// and waits for it. The store does this on its own every
    /// [`fold_interval`](SledStoreOptions::fold_interval), before a
    /// [`load`](SnapshotStore::load) and when dropped; calling it is never
    /// needed for durability (a flushed write is durable in the journal).
    ///
    /// # Errors
    /// [`StoreError::Io`]; the journal is kept, so nothing is lost.
    pub fn fold(&self) -> Result<(), StoreError> {
        self.shared.fold()
    }

    /// The sequence number of a job's next history entry: known, or read
    /// from the tree's last chunk.
    fn next_seq(&self, id: &JobId) -> Result<u64, StoreError> {
        let chunks =
            fold::scan_chunks(&self.shared.history, id.as_str()).map_err(|e| self.shared.io(e))?;
        Ok(chunks
            .iter()
            .map(|(first, len)| first.saturating_add(u64::from(*len)))
            .max()
            .unwrap_or(0))
    }

    /// Every record of the quarantine tree, in key order (tree, then key).
    pub(super) fn list_quarantine(&self) -> Result<Vec<QuarantinedRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.shared.quarantine.iter() {
            let (key, value) = item.map_err(|e| self.shared.io(e))?;
            out.push(
                match codec::decode::<QuarantineEntry>(RecordKind::Quarantine, &value) {
                    Ok(entry) => QuarantinedRecord {
                        tree: entry.tree,
                        key: String::from_utf8_lossy(&entry.key).into_owned(),
                        reason: entry.reason,
                        raw: entry.raw,
                    },
                    // Reported as it is, and left in place.
                    Err(e) => QuarantinedRecord {
                        tree: TREE_QUARANTINE.to_owned(),
                        key: String::from_utf8_lossy(&key).into_owned(),
                        reason: format!("the quarantine record itself is unreadable: {e}"),
                        raw: value.to_vec(),
                    },
                },
            );
        }
        Ok(out)
    }

    /// Moves to the quarantine the history chunks of every job whose spec
    /// or state is in the quarantine (from this load or an earlier one) and
    /// that did not load: a job that has no spec has no history either, so
    /// that a job added later under the same id starts with none, instead
    /// of showing the runs of the one quarantined (and the chunks stay
    /// readable for an operator, as the spec and the state do). A key that
    /// is not a valid job id is left alone: its prefix could match the
    /// history keys of another job. Returns whether anything moved.
    fn quarantine_orphan_history(
        &self,
        jobs: &[JobRecord],
        quarantined: &[QuarantinedRecord],
    ) -> Result<bool, StoreError> {
        let shared = &*self.shared;
        let loaded: std::collections::HashSet<&str> =
            jobs.iter().map(|job| job.spec.id.as_str()).collect();
        let mut ids: Vec<JobId> = quarantined
            .iter()
            .filter(|q| q.tree == TREE_JOBS || q.tree == TREE_STATE)
            .filter(|q| !loaded.contains(q.key.as_str()))
            .filter_map(|q| JobId::new(q.key.as_str()).ok())
            .collect();
        ids.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        ids.dedup();
        let mut bad = Vec::new();
        for id in &ids {
            for item in shared
                .history
                .scan_prefix(codec::history_prefix(id.as_str()))
            {
                let (key, raw) = item.map_err(|e| shared.io(e))?;
                bad.push(BadRecord {
                    tree: TREE_HISTORY,
                    key,
                    raw,
                    reason: format!(
                        "a history chunk of job {id} without a job spec (its spec or state is in \
                         the quarantine)"
                    ),
                });
            }
        }
        if bad.is_empty() {
            return Ok(false);
        }
        {
            let mut folder = shared.folder.lock().unwrap_or_else(|p| p.into_inner());
            for id in &ids {
                folder.forget_job(id);
            }
        }
        quarantine_all(shared, &bad)?;
        Ok(true)
    }

    /// Turns a store op into its journal op, updating the job index; `None`
    /// for an op on a job without a spec (dropped, as it always was).
    fn journal_op(&self, inner: &mut Inner, op: StoreOp) -> Result<Option<JournalOp>, StoreError> {
        Ok(Some(match op {
            StoreOp::PutJob(record) => {
                let JobRecord { spec, state } = *record;
                let encoded = codec::encode(RecordKind::JobSpec, &spec).map_err(|e| {
                    StoreError::Io(format!("cannot encode the spec of job {}: {e}", spec.id))
                })?;
                inner.known.entry(spec.id.clone()).or_default().exists = true;
                JournalOp::PutJob {
                    state: encode_state(&spec.id, &state)?,
                    id: spec.id,
                    spec: encoded,
                }
            }
            StoreOp::PutState(id, state) => {
                if !inner.known.get(&id).is_some_and(|e| e.exists) {
                    tracing::debug!(job_id = %id, "store: state of a job without a spec ignored");
                    return Ok(None);
                }
                JournalOp::PutState {
                    state: encode_state(&id, &state)?,
                    id,
                }
            }
            StoreOp::RemoveJob(id) => {
                if let Some(entry) = inner.known.get_mut(&id) {
                    entry.exists = false;
                }
                JournalOp::Remove { id }
            }
            StoreOp::AppendHistory { id, record, keep } => {
                let Some(entry) = inner.known.get_mut(&id).filter(|e| e.exists) else {
                    tracing::debug!(job_id = %id, "store: history of a job without a spec ignored");
                    return Ok(None);
                };
                let seq = match entry.next_seq {
                    Some(seq) => seq,
                    None => self.next_seq(&id)?,
                };
                let keep = u64::try_from(keep).unwrap_or(u64::MAX);
                entry.next_seq = Some(seq.saturating_add(1));
                entry.keep = Some(keep);
                JournalOp::History {
                    record: codec::encode_run(&record).map_err(|e| {
                        StoreError::Io(format!("cannot encode a run of job {id}: {e}"))
                    })?,
                    id,
                    seq,
                    keep,
                }
            }
        }))
    }
}

/// A job state as the `state` tree stores it.
fn encode_state(id: &JobId, state: &JobState) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::with_capacity(128);
    codec::encode_state_into(state, &mut buf)
        .map_err(|e| StoreError::Io(format!("cannot encode the state of job {id}: {e}")))?;
    Ok(buf)
}

/// Checks a `jobs` record: a valid job id as key, a spec that decodes, and
/// the same id inside.
fn decode_job(key: &[u8], value: &[u8]) -> Result<JobSpec, String> {
    let id =
        std::str::from_utf8(key).map_err(|_| "the key is not UTF-8, so not a job id".to_owned())?;
    JobId::new(id).map_err(|e| format!("the key is not a valid job id: {e}"))?;
    let spec: JobSpec = codec::decode(RecordKind::JobSpec, value).map_err(|e| e.to_string())?;
    if spec.id.as_str() != id {
        return Err(format!(
            "the key names job {id:?} but the spec in it names job {:?}",
            spec.id.as_str()
        ));
    }
    Ok(spec)
}

impl SnapshotStore for SledStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        // Everything applied so far goes into the trees first.
        self.shared.fold()?;
        let shared = &*self.shared;
        // The two trees are read at once, the states on a second thread:
        // reading and decoding them is most of the time a restart takes.
        let (specs, states) = std::thread::scope(|scope| {
            let states = scope.spawn(|| read_states(shared));
            (read_specs(shared), states.join())
        });
        let (specs, mut bad) = specs?;
        let states = states.map_err(|_| {
            StoreError::Io(format!("reading the states of {} failed", shared.shown))
        })??;

        // Both are in key order: each spec meets its state in one pass.
        let mut states = states.into_iter().peekable();
        let mut jobs = Vec::with_capacity(specs.len());
        let orphan = |key: IVec, raw: IVec| BadRecord {
            tree: TREE_STATE,
            key,
            raw,
            reason: "a state record without a job spec (no valid spec under this key)".to_owned(),
        };
        for (key, spec) in specs {
            while let Some((stray, raw, _)) = states.next_if(|(k, _, _)| *k < key) {
                bad.push(orphan(stray, raw));
            }
            let state = match states.next_if(|(k, _, _)| *k == key) {
                Some((_, _, Ok(state))) => state,
                Some((key, raw, Err(reason))) => {
                    bad.push(BadRecord {
                        tree: TREE_STATE,
                        key,
                        raw,
                        reason,
                    });
                    JobState::default()
                }
                None => JobState::default(),
            };
            jobs.push(JobRecord { spec, state });
        }
        bad.extend(states.map(|(key, raw, _)| orphan(key, raw)));

        quarantine_all(shared, &bad)?;
        let mut quarantined = self.list_quarantine()?;
        if self.quarantine_orphan_history(&jobs, &quarantined)? {
            quarantined = self.list_quarantine()?;
        }

        {
            let mut inner = shared.lock();
            let old = std::mem::take(&mut inner.known);
            inner.known = jobs
                .iter()
                .map(|job| {
                    let entry = old.get(&job.spec.id).copied().unwrap_or_default();
                    (
                        job.spec.id.clone(),
                        JobEntry {
                            exists: true,
                            ..entry
                        },
                    )
                })
                .collect();
            inner.known_ready = true;
        }
        Ok(Loaded { jobs, quarantined })
    }

    fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut inner = self.shared.lock();
        if !inner.known_ready {
            inner.known = read_known(&self.shared.jobs).map_err(|e| self.shared.io(e))?;
            inner.known_ready = true;
        }
        let mut scratch = Vec::with_capacity(256);
        for op in ops {
            let Some(op) = self.journal_op(&mut inner, op)? else {
                continue;
            };
            scratch.clear();
            journal::encode_op(&op, &mut scratch)
                .map_err(|e| StoreError::Io(format!("cannot encode a journal entry: {e}")))?;
            // A segment is closed before an op would take it past
            // SEGMENT_BYTES, so that it stays out of sled's blob files; only
            // an op larger than that on its own (a spec with a payload of
            // more than about 4 KiB) makes a larger segment, and a journal
            // node holding many of those can still reach a blob file.
            if inner.segment.len() > 1 && inner.segment.len() + scratch.len() > SEGMENT_BYTES {
                let full = std::mem::take(&mut inner.segment);
                inner.sealed.push(full);
            }
            if inner.segment.is_empty() {
                inner.segment.push(RecordKind::Journal.current_version());
            }
            inner.segment.extend_from_slice(&scratch);
            inner.pending.record(op);
        }
        if inner.pending.ops >= self.shared.fold_after_ops {
            self.shared.wake.notify_all();
        }
        Ok(())
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), StoreError>> {
        let shared = self.shared.clone();
        let sync_file = self.sync_file.clone();
        Box::pin(async move {
            // On tokio's blocking pool, the journal write included: a flush
            // under load writes hundreds of sled values, which must not hold
            // an async worker (not with sled's `flush_async` either, which
            // completes on sled's own threads: a runtime with paused time
            // would jump its clock ahead while the flush runs). The segment
            // written holds every op applied before `flush` was called, and
            // perhaps later ones.
            let written = shared.clone();
            run_blocking(move || {
                {
                    let mut inner = written.lock();
                    if let Some(e) = &inner.fold_error {
                        return Err(io::Error::other(format!(
                            "the journal of {} cannot be folded: {e}",
                            written.shown
                        )));
                    }
                    written.write_segment(&mut inner).map_err(|e| match e {
                        StoreError::Io(message) => io::Error::other(message),
                        other => io::Error::other(other.to_string()),
                    })?;
                }
                written.db.flush().map_err(|e| {
                    io::Error::other(format!("cannot flush {}: {e}", written.shown))
                })?;
                Ok(())
            })
            .await
            .map_err(|e| StoreError::Io(e.to_string()))?;
            let shown = shared.shown.clone();
            if let Some(file) = sync_file {
                run_blocking(move || file.sync_data())
                    .await
                    .map_err(|e| StoreError::Io(format!("cannot fsync {shown}: {e}")))?;
            }
            Ok(())
        })
    }

    fn history(&self, id: &JobId, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let (mut out, below, reset, keep) = {
            let inner = self.shared.lock();
            let keep = inner
                .known
                .get(id)
                .and_then(|e| e.keep)
                .map_or(usize::MAX, |k| usize::try_from(k).unwrap_or(usize::MAX));
            let limit = limit.min(keep);
            let mut out = Vec::new();
            let mut below = u64::MAX;
            let mut reset = false;
            // The newest entries first: not folded, then being folded.
            for net in [Some(&inner.pending), inner.folding.as_deref()]
                .into_iter()
                .flatten()
            {
                if reset {
                    break;
                }
                if let Some(n) = net.jobs.get(id) {
                    for (seq, record) in n.history.iter().rev() {
                        if out.len() >= limit {
                            break;
                        }
                        if *seq < below {
                            below = *seq;
                            match codec::decode_run(record) {
                                Ok(run) => out.push(run),
                                Err(e) => {
                                    tracing::warn!(job_id = %id, error = %e, "store: unreadable pending history entry")
                                }
                            }
                        }
                    }
                    reset = n.reset;
                }
            }
            (out, below, reset, limit)
        };
        if reset || out.len() >= keep {
            return Ok(out);
        }
        // Then the trees, newest chunk first, skipping entries seen above; the
        // newest chunk says how many entries the job keeps (older chunks may
        // hold more until the next fold trims them).
        let prefix = codec::history_prefix(id.as_str());
        let mut below = below;
        let mut keep = keep;
        let mut newest = true;
        for item in self.shared.history.scan_prefix(&prefix).rev() {
            let (key, value) = item.map_err(|e| self.shared.io(e))?;
            let Some((first, _)) = codec::history_chunk(&key, prefix.len()) else {
                continue;
            };
            match codec::decode_chunk(&value) {
                Ok(chunk) => {
                    if std::mem::take(&mut newest) {
                        if let Some(k) = chunk.keep {
                            keep = keep.min(usize::try_from(k).unwrap_or(usize::MAX));
                        }
                    }
                    for (i, record) in chunk.runs.into_iter().enumerate().rev() {
                        let seq = first.saturating_add(i as u64);
                        if seq < below && out.len() < keep {
                            below = seq;
                            out.push(record);
                        }
                    }
                }
                // Left in place (trimmed or removed with the job later).
                Err(e) => tracing::warn!(
                    job_id = %id,
                    first,
                    error = %e,
                    "store: unreadable history chunk skipped"
                ),
            }
            if out.len() >= keep {
                break;
            }
        }
        Ok(out)
    }

    fn is_durable(&self) -> bool {
        true
    }
}

/// Runs blocking file I/O off the async executor: on tokio's blocking pool
/// inside a tokio runtime, else on a short-lived thread.
async fn run_blocking<F>(f: F) -> io::Result<()>
where
    F: FnOnce() -> io::Result<()> + Send + 'static,
{
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return handle
            .spawn_blocking(f)
            .await
            .map_err(|e| io::Error::other(format!("the sync task failed: {e}")))?;
    }
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::Builder::new()
        .name("cronactor-store-sync".into())
        .spawn(move || {
            let _ = tx.send(f());
        })?;
    rx.await
        .map_err(|_| io::Error::other("the sync thread ended without a result"))?
}

/// Maps an I/O error met while opening: permission and read-only errors mean
/// the path is not writable.
fn open_io_error(shown: &str, what: &str, e: &io::Error) -> StoreError {
    match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem | ErrorKind::NotADirectory => {
            StoreError::NotWritable {
                path: shown.to_owned(),
                reason: format!("{what}: {e}"),
            }
        }
        _ => StoreError::Io(format!("{what} {shown}: {e}")),
    }
}

/// Maps a sled error met after the store is open.
fn sled_error(shown: &str, e: sled::Error) -> StoreError {
    StoreError::Io(format!("sled error in {shown}: {e}"))
}

/// Whether `sled::Config::open` failed because the lock is taken. sled 0.34
/// reports it as an `Io` error of kind `Other` whose text starts with "could
/// not acquire lock" (it uses `try_lock_exclusive`, so it never waits); the
/// integration tests pin this down.
fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Maps the error of `sled::Config::open`.
fn sled_open_error(shown: &str, e: sled::Error) -> StoreError {
    match e {
        e if is_lock_error(&e) => StoreError::Locked(shown.to_owned()),
        sled::Error::Io(io) => open_io_error(shown, "sled cannot open the database", &io),
        other => StoreError::Io(format!("sled cannot open the database at {shown}: {other}")),
    }
}

/// Refuses a schema version newer than this build's ([`StoreError::NewerVersion`])
/// or 0, which no build writes (damage: [`StoreError::Damaged`]). `what`
/// names where it was read.
fn check_version(found: u32, shown: &str, what: &str) -> Result<(), StoreError> {
    if found > SledStore::SCHEMA_VERSION {
        Err(StoreError::NewerVersion {
            path: shown.to_owned(),
            found,
            supported: SledStore::SCHEMA_VERSION,
        })
    } else if found == 0 {
        Err(StoreError::Damaged {
            path: shown.to_owned(),
            reason: format!("{what} says version 0, which no build writes"),
        })
    } else {
        Ok(())
    }
}

/// The version in the marker file, `None` if there is no marker yet.
fn read_marker(path: &Path, shown: &str) -> Result<Option<u32>, StoreError> {
    match fs::read_to_string(path.join(MARKER_FILE)) {
        Ok(text) => text
            .trim()
            .parse::<u32>()
            .map(Some)
            .map_err(|_| StoreError::Damaged {
                path: shown.to_owned(),
                reason: format!(
                    "its schema marker {} holds {:?}, not a version number; the store was left \
                     untouched",
                    path.join(MARKER_FILE).display(),
                    text.chars().take(40).collect::<String>()
                ),
            }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(open_io_error(shown, "cannot read the schema marker", &e)),
    }
}

/// Writes this build's schema version into the `meta` tree and flushes.
fn write_meta_version(meta: &Tree, db: &sled::Db, shown: &str) -> Result<(), StoreError> {
    let value = codec::encode(RecordKind::Meta, &SledStore::SCHEMA_VERSION)
        .map_err(|e| StoreError::Io(format!("cannot encode the schema version: {e}")))?;
    meta.insert(META_SCHEMA_VERSION, value)
        .map_err(|e| sled_error(shown, e))?;
    db.flush().map_err(|e| sled_error(shown, e))?;
    Ok(())
}

/// Writes the marker file atomically: a temporary file, `fsync`, rename,
/// `fsync` of the directory.
fn write_marker(path: &Path, shown: &str) -> Result<(), StoreError> {
    let tmp = path.join(format!("{MARKER_FILE}.tmp"));
    let write = || -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        writeln!(file, "{}", SledStore::SCHEMA_VERSION)?;
        file.sync_all()?;
        fs::rename(&tmp, path.join(MARKER_FILE))?;
        File::open(path)?.sync_all()
    };
    write().map_err(|e| open_io_error(shown, "cannot write the schema marker", &e))
}

/// Creates and removes a probe file in the directory.
fn probe_writable(path: &Path, shown: &str) -> Result<(), StoreError> {
    let probe = path.join(format!("{PROBE_FILE}-{}", std::process::id()));
    let result = File::create(&probe).and_then(|mut f| f.write_all(b"probe"));
    let _ = fs::remove_file(&probe);
    result.map_err(|e| StoreError::NotWritable {
        path: shown.to_owned(),
        reason: format!("cannot create a file in it: {e}"),
    })
}
