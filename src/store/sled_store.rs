//! [`SledStore`]: the [`SnapshotStore`] adapter on sled 0.34.

use super::codec::{self, RecordKind};
use chrono::{DateTime, Utc};
use cronactor_actors::{
    JobId, JobRecord, JobSpec, JobState, Loaded, QuarantinedRecord, RunRecord, SnapshotStore,
    StoreError, StoreOp,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Batch, IVec, Transactional, Tree};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
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
const TREE_HISTORY: &str = "history";
const TREE_QUARANTINE: &str = "quarantine";
const TREE_META: &str = "meta";
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
}

impl Default for SledStoreOptions {
    fn default() -> Self {
        Self {
            cache_capacity: 256 * 1024 * 1024,
            sync_on_flush: true,
        }
    }
}

impl SledStoreOptions {
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
}

/// The contiguous range of history sequence numbers a job holds:
/// `first..next`. Appends take `next`; trimming advances `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HistRange {
    first: u64,
    next: u64,
}

impl HistRange {
    fn len(self) -> u64 {
        self.next.saturating_sub(self.first)
    }
}

/// What the store knows of a job, kept in memory so that `apply` needs no
/// read to check that a job exists or to find its next history slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct JobEntry {
    /// The job has a spec in the `jobs` tree (counting the writes of the
    /// `apply` in progress).
    exists: bool,
    /// Its history range, once read from the tree.
    hist: Option<HistRange>,
}

/// The in-memory index of jobs; rebuilt from the `jobs` tree when `stale`.
#[derive(Debug, Default)]
struct Known {
    jobs: HashMap<JobId, JobEntry>,
    /// Set when a write failed half-way: the index may be ahead of the trees.
    stale: bool,
}

/// Reads the ids of the `jobs` tree (keys only; invalid keys are left for
/// `load` to quarantine).
fn read_known(jobs: &Tree) -> sled::Result<HashMap<JobId, JobEntry>> {
    let mut map = HashMap::new();
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
                    hist: None,
                },
            );
        }
    }
    Ok(map)
}

/// The trees `apply` writes.
#[derive(Clone, Copy, Debug)]
enum Which {
    Jobs,
    State,
    History,
}

/// One sled batch per tree, with the number of writes in each.
#[derive(Default)]
struct TreeBatches {
    jobs: Batch,
    state: Batch,
    history: Batch,
    jobs_n: usize,
    state_n: usize,
    history_n: usize,
}

impl TreeBatches {
    fn slot(&mut self, which: Which) -> (&mut Batch, &mut usize) {
        match which {
            Which::Jobs => (&mut self.jobs, &mut self.jobs_n),
            Which::State => (&mut self.state, &mut self.state_n),
            Which::History => (&mut self.history, &mut self.history_n),
        }
    }

    fn put(&mut self, which: Which, key: &[u8], value: &[u8]) {
        let (batch, n) = self.slot(which);
        batch.insert(key, value);
        *n += 1;
    }

    fn del(&mut self, which: Which, key: &[u8]) {
        let (batch, n) = self.slot(which);
        batch.remove(key);
        *n += 1;
    }
}

/// A record of the `quarantine` tree, as stored.
#[derive(Debug, Serialize, Deserialize)]
struct QuarantineEntry {
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
/// `meta`); every value is a record-version byte followed by JSON. Writes are
/// buffered by [`apply`](SnapshotStore::apply) and made durable by
/// [`flush`](SnapshotStore::flush). Before a flush, a crash may lose any
/// write applied since the previous one, but never half a record, never a
/// job's state without its spec, and never part of a removal (a job's spec,
/// state and history go together). The layout and the durability contract
/// are described in `docs/storage.md`.
///
/// Only one process may have a store open: a second
/// [`open`](SledStore::open) fails at once with [`StoreError::Locked`].
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
    db: sled::Db,
    jobs: Tree,
    state: Tree,
    history: Tree,
    quarantine: Tree,
    /// A handle on sled's log file, `fsync`ed after each flush; `None` when
    /// [`SledStoreOptions::sync_on_flush`] is off.
    sync_file: Option<Arc<File>>,
    /// Every job with a spec, with its history range once known.
    known: Mutex<Known>,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("sync_on_flush", &self.sync_file.is_some())
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// The store schema version this build writes, and the newest it opens.
    pub const SCHEMA_VERSION: u32 = 1;

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
            check_version(found, &shown)?;
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
            .cache_capacity(options.cache_capacity);
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
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| StoreError::Io(format!("cannot open tree {name} of {shown}: {e}")))
        };
        let (jobs, state, history, quarantine, meta) = (
            tree(TREE_JOBS)?,
            tree(TREE_STATE)?,
            tree(TREE_HISTORY)?,
            tree(TREE_QUARANTINE)?,
            tree(TREE_META)?,
        );

        // 5. The authoritative copy of the version, in the meta tree.
        match meta
            .get(META_SCHEMA_VERSION)
            .map_err(|e| sled_error(&shown, e))?
        {
            Some(bytes) => {
                let found: u32 = codec::decode(RecordKind::Meta, &bytes).map_err(|e| {
                    StoreError::Io(format!("the schema version in {shown} is unreadable: {e}"))
                })?;
                check_version(found, &shown)?;
            }
            None => {
                let value =
                    codec::encode(RecordKind::Meta, &Self::SCHEMA_VERSION).map_err(|e| {
                        StoreError::Io(format!("cannot encode the schema version: {e}"))
                    })?;
                meta.insert(META_SCHEMA_VERSION, value)
                    .map_err(|e| sled_error(&shown, e))?;
                db.flush().map_err(|e| sled_error(&shown, e))?;
            }
        }
        if marker.is_none() {
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

        let known = read_known(&jobs).map_err(|e| sled_error(&shown, e))?;

        Ok(Self {
            path: path.to_path_buf(),
            db,
            jobs,
            state,
            history,
            quarantine,
            sync_file,
            known: Mutex::new(Known {
                jobs: known,
                stale: false,
            }),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    fn io(&self, e: sled::Error) -> StoreError {
        sled_error(&self.shown(), e)
    }

    /// Locks the job index, rebuilding it from the `jobs` tree if a failed
    /// write (or a panic) left it stale.
    fn lock_known(&self) -> Result<MutexGuard<'_, Known>, StoreError> {
        let mut guard = self.known.lock().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            guard.stale = true;
            guard
        });
        if guard.stale {
            guard.jobs = read_known(&self.jobs).map_err(|e| self.io(e))?;
            guard.stale = false;
        }
        Ok(guard)
    }

    /// The history range of a job, read from the tree (once per job).
    fn scan_hist_range(&self, id: &str, prefix_buf: &mut Vec<u8>) -> Result<HistRange, StoreError> {
        codec::history_prefix_into(id, prefix_buf);
        let prefix_len = prefix_buf.len();
        let mut keys = self.history.scan_prefix(&prefix_buf[..]).keys();
        let mut first = None;
        for key in keys.by_ref() {
            let key = key.map_err(|e| self.io(e))?;
            if let Some(seq) = codec::history_seq(&key, prefix_len) {
                first = Some(seq);
                break;
            }
        }
        let Some(first) = first else {
            return Ok(HistRange { first: 0, next: 0 });
        };
        let mut last = first;
        while let Some(key) = keys.next_back() {
            let key = key.map_err(|e| self.io(e))?;
            if let Some(seq) = codec::history_seq(&key, prefix_len) {
                last = seq;
                break;
            }
        }
        Ok(HistRange {
            first,
            next: last.saturating_add(1),
        })
    }

    /// Applies `ops` as if one by one, in two groups of writes with disjoint
    /// keys:
    ///
    /// - every write for a job that this call removes goes into one
    ///   transaction over the three trees, applied last, so that a removal
    ///   (spec, state and history) is atomic;
    /// - every other write goes into one batch per tree, applied in the order
    ///   `jobs`, `state`, `history` (each atomic), so that a crash never keeps
    ///   a new job's state without its spec.
    ///
    /// A sled batch keeps the last write per key, which is the result of
    /// applying the ops in order; several states of one job in one call cost
    /// one write.
    fn apply_inner(
        &self,
        ops: Vec<StoreOp>,
        known: &mut HashMap<JobId, JobEntry>,
    ) -> Result<(), StoreError> {
        let removing: HashSet<JobId> = ops
            .iter()
            .filter_map(|op| match op {
                StoreOp::RemoveJob(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let in_tx = |id: &JobId| !removing.is_empty() && removing.contains(id);
        let mut fast = TreeBatches::default();
        let mut tx = TreeBatches::default();
        // Scratch buffers, reused for every record and key.
        let mut value = Vec::with_capacity(1024);
        let mut key = Vec::with_capacity(64);
        let encode_err = |what: &str, id: &JobId, e: serde_json::Error| {
            StoreError::Io(format!("cannot encode the {what} of job {id}: {e}"))
        };

        for op in ops {
            match op {
                StoreOp::PutJob(record) => {
                    let id = &record.spec.id;
                    let batches = if in_tx(id) { &mut tx } else { &mut fast };
                    value.clear();
                    codec::encode_into(RecordKind::JobSpec, &record.spec, &mut value)
                        .map_err(|e| encode_err("spec", id, e))?;
                    batches.put(Which::Jobs, id.as_str().as_bytes(), &value);
                    value.clear();
                    codec::encode_into(RecordKind::JobState, &record.state, &mut value)
                        .map_err(|e| encode_err("state", id, e))?;
                    batches.put(Which::State, id.as_str().as_bytes(), &value);
                    match known.get_mut(id) {
                        Some(entry) => entry.exists = true,
                        None => {
                            known.insert(
                                id.clone(),
                                JobEntry {
                                    exists: true,
                                    hist: None,
                                },
                            );
                        }
                    }
                }
                StoreOp::PutState(id, job_state) => {
                    if !known.get(&id).is_some_and(|entry| entry.exists) {
                        tracing::debug!(job = %id, "store: state of a job without a spec ignored");
                        continue;
                    }
                    value.clear();
                    codec::encode_into(RecordKind::JobState, &*job_state, &mut value)
                        .map_err(|e| encode_err("state", &id, e))?;
                    let batches = if in_tx(&id) { &mut tx } else { &mut fast };
                    batches.put(Which::State, id.as_str().as_bytes(), &value);
                }
                StoreOp::RemoveJob(id) => {
                    tx.del(Which::Jobs, id.as_str().as_bytes());
                    tx.del(Which::State, id.as_str().as_bytes());
                    // Every history key in the tree, and those appended
                    // earlier in this call; later appends take `next` on.
                    codec::history_prefix_into(id.as_str(), &mut key);
                    let prefix_len = key.len();
                    let mut next = 0u64;
                    for k in self.history.scan_prefix(&key[..]).keys() {
                        let k = k.map_err(|e| self.io(e))?;
                        if let Some(seq) = codec::history_seq(&k, prefix_len) {
                            next = next.max(seq.saturating_add(1));
                        }
                        tx.del(Which::History, &k);
                    }
                    if let Some(range) = known.get(&id).and_then(|entry| entry.hist) {
                        for seq in range.first..range.next {
                            codec::history_key_into(id.as_str(), seq, &mut key);
                            tx.del(Which::History, &key);
                        }
                        next = next.max(range.next);
                    }
                    known.insert(
                        id,
                        JobEntry {
                            exists: false,
                            hist: Some(HistRange { first: next, next }),
                        },
                    );
                }
                StoreOp::AppendHistory { id, record, keep } => {
                    let batches = if in_tx(&id) { &mut tx } else { &mut fast };
                    let Some(entry) = known.get_mut(&id).filter(|entry| entry.exists) else {
                        tracing::debug!(job = %id, "store: history of a job without a spec ignored");
                        continue;
                    };
                    let mut range = match entry.hist {
                        Some(range) => range,
                        None => self.scan_hist_range(id.as_str(), &mut key)?,
                    };
                    let keep = u64::try_from(keep).unwrap_or(u64::MAX);
                    // With keep 0 the entry would be trimmed at once: skip it.
                    if keep > 0 {
                        value.clear();
                        codec::encode_into(RecordKind::Run, &*record, &mut value)
                            .map_err(|e| encode_err("run record", &id, e))?;
                        codec::history_key_into(id.as_str(), range.next, &mut key);
                        batches.put(Which::History, &key, &value);
                        range.next = range.next.saturating_add(1);
                    }
                    while range.len() > keep {
                        codec::history_key_into(id.as_str(), range.first, &mut key);
                        batches.del(Which::History, &key);
                        range.first += 1;
                    }
                    entry.hist = Some(range);
                }
            }
        }

        let io = |e| self.io(e);
        if fast.jobs_n > 0 {
            self.jobs.apply_batch(fast.jobs).map_err(io)?;
        }
        if fast.state_n > 0 {
            self.state.apply_batch(fast.state).map_err(io)?;
        }
        if fast.history_n > 0 {
            self.history.apply_batch(fast.history).map_err(io)?;
        }
        if !removing.is_empty() {
            (&self.jobs, &self.state, &self.history)
                .transaction(|(j, s, h)| {
                    j.apply_batch(&tx.jobs)?;
                    s.apply_batch(&tx.state)?;
                    h.apply_batch(&tx.history)?;
                    Ok::<(), ConflictableTransactionError<()>>(())
                })
                .map_err(|e| match e {
                    TransactionError::Storage(e) => self.io(e),
                    TransactionError::Abort(()) => {
                        StoreError::Io("a store transaction aborted".into())
                    }
                })?;
            // Their history is gone: forget removed jobs, unless re-added.
            for id in &removing {
                if known.get(id).is_some_and(|entry| !entry.exists) {
                    known.remove(id);
                }
            }
        }
        Ok(())
    }

    /// Moves a bad record to the quarantine tree: the quarantine insert and
    /// the removal from its tree happen in one transaction, so the record is
    /// in exactly one of the two trees whatever happens.
    fn quarantine_record(&self, bad: &BadRecord, now: DateTime<Utc>) -> Result<(), StoreError> {
        let source = match bad.tree {
            TREE_JOBS => &self.jobs,
            TREE_STATE => &self.state,
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
        (source, &self.quarantine)
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
                TransactionError::Storage(e) => self.io(e),
                TransactionError::Abort(()) => {
                    StoreError::Io("a quarantine transaction aborted".into())
                }
            })
    }

    /// Every record of the quarantine tree, in key order (tree, then key).
    fn list_quarantine(&self) -> Result<Vec<QuarantinedRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.quarantine.iter() {
            let (key, value) = item.map_err(|e| self.io(e))?;
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
        let mut bad = Vec::new();

        let mut specs: BTreeMap<IVec, JobSpec> = BTreeMap::new();
        for item in self.jobs.iter() {
            let (key, value) = item.map_err(|e| self.io(e))?;
            match decode_job(&key, &value) {
                Ok(spec) => {
                    specs.insert(key, spec);
                }
                Err(reason) => bad.push(BadRecord {
                    tree: TREE_JOBS,
                    key,
                    raw: value,
                    reason,
                }),
            }
        }

        let mut states: HashMap<IVec, JobState> = HashMap::with_capacity(specs.len());
        for item in self.state.iter() {
            let (key, value) = item.map_err(|e| self.io(e))?;
            if !specs.contains_key(&key) {
                bad.push(BadRecord {
                    tree: TREE_STATE,
                    key,
                    raw: value,
                    reason: "a state record without a job spec (no valid spec under this key)"
                        .to_owned(),
                });
                continue;
            }
            match codec::decode::<JobState>(RecordKind::JobState, &value) {
                Ok(state) => {
                    states.insert(key, state);
                }
                Err(e) => bad.push(BadRecord {
                    tree: TREE_STATE,
                    key,
                    raw: value,
                    reason: e.to_string(),
                }),
            }
        }

        if !bad.is_empty() {
            let now = Utc::now();
            for record in &bad {
                tracing::warn!(
                    tree = record.tree,
                    key = %String::from_utf8_lossy(&record.key),
                    reason = %record.reason,
                    "store: record moved to quarantine"
                );
                self.quarantine_record(record, now)?;
            }
            self.db.flush().map_err(|e| self.io(e))?;
        }

        {
            let mut known = self.lock_known()?;
            let old = std::mem::take(&mut known.jobs);
            known.jobs = specs
                .values()
                .map(|spec| {
                    let hist = old.get(&spec.id).and_then(|entry| entry.hist);
                    (spec.id.clone(), JobEntry { exists: true, hist })
                })
                .collect();
        }

        let jobs = specs
            .into_iter()
            .map(|(key, spec)| JobRecord {
                state: states.remove(&key).unwrap_or_default(),
                spec,
            })
            .collect();
        Ok(Loaded {
            jobs,
            quarantined: self.list_quarantine()?,
        })
    }

    fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut known = self.lock_known()?;
        let result = self.apply_inner(ops, &mut known.jobs);
        if result.is_err() {
            // Some writes may be in, some not: rebuild the index next time.
            known.stale = true;
        }
        result
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), StoreError>> {
        let db = self.db.clone();
        let sync_file = self.sync_file.clone();
        let shown = self.shown();
        Box::pin(async move {
            db.flush_async()
                .await
                .map_err(|e| StoreError::Io(format!("cannot flush {shown}: {e}")))?;
            if let Some(file) = sync_file {
                run_blocking(move || file.sync_data())
                    .await
                    .map_err(|e| StoreError::Io(format!("cannot fsync {shown}: {e}")))?;
            }
            Ok(())
        })
    }

    fn history(&self, id: &JobId, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let prefix = codec::history_prefix(id.as_str());
        for item in self.history.scan_prefix(&prefix).rev() {
            let (key, value) = item.map_err(|e| self.io(e))?;
            match codec::decode::<RunRecord>(RecordKind::Run, &value) {
                Ok(record) => out.push(record),
                // Left in place (trimmed or removed with the job later).
                Err(e) => tracing::warn!(
                    job = %id,
                    seq = ?codec::history_seq(&key, prefix.len()),
                    error = %e,
                    "store: unreadable history entry skipped"
                ),
            }
            if out.len() >= limit {
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

fn check_version(found: u32, shown: &str) -> Result<(), StoreError> {
    if found > SledStore::SCHEMA_VERSION {
        Err(StoreError::NewerVersion {
            path: shown.to_owned(),
            found,
            supported: SledStore::SCHEMA_VERSION,
        })
    } else if found == 0 {
        Err(StoreError::Io(format!(
            "the store at {shown} has schema version 0, which no build writes"
        )))
    } else {
        Ok(())
    }
}

/// The version in the marker file, `None` if there is no marker yet.
fn read_marker(path: &Path, shown: &str) -> Result<Option<u32>, StoreError> {
    match fs::read_to_string(path.join(MARKER_FILE)) {
        Ok(text) => text.trim().parse::<u32>().map(Some).map_err(|_| {
            StoreError::Io(format!(
                "the schema marker {} holds {:?}, not a version number; the store was left untouched",
                path.join(MARKER_FILE).display(),
                text.chars().take(40).collect::<String>()
            ))
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(open_io_error(shown, "cannot read the schema marker", &e)),
    }
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
