//! The snapshot store port, and [`MemoryStore`], its in-memory adapter.
//!
//! The registry actor is the only writer. It applies batches of [`StoreOp`]
//! (buffered, fast) and calls [`SnapshotStore::flush`] to make them durable:
//! at once for control operations (`add`, `upsert`, `remove`, `pause`,
//! `resume`), and by group commit for run state.

use crate::id::JobId;
use crate::spec::JobSpec;
use crate::status::{JobState, RunRecord};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

/// A job's persisted record: its spec and its state.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    /// The declaration.
    pub spec: JobSpec,
    /// The state, if any was saved yet.
    pub state: JobState,
}

/// A record that could not be decoded, moved aside with its raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuarantinedRecord {
    /// The tree it was in.
    pub tree: String,
    /// Its key, as text (lossy for non-UTF-8 keys).
    pub key: String,
    /// Why it was quarantined.
    pub reason: String,
    /// The raw bytes, as they were.
    pub raw: Vec<u8>,
}

/// What a store holds at start.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Every job that decoded.
    pub jobs: Vec<JobRecord>,
    /// Records moved to quarantine during this load or an earlier one.
    pub quarantined: Vec<QuarantinedRecord>,
}

/// One write.
#[derive(Clone, Debug)]
pub enum StoreOp {
    /// Insert or replace a job's spec and state.
    PutJob(Box<JobRecord>),
    /// Replace a job's state.
    PutState(JobId, Box<JobState>),
    /// Remove a job with its state and history.
    RemoveJob(JobId),
    /// Append a run to a job's history, keeping the newest `keep`.
    AppendHistory {
        /// The job.
        id: JobId,
        /// The run.
        record: Box<RunRecord>,
        /// How many entries to keep.
        keep: usize,
    },
}

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store was written by a newer version of cronactor.
    #[error("the store at {path} has schema version {found}; this build reads up to {supported}; it was left untouched")]
    NewerVersion {
        /// The store's path.
        path: String,
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Another process has the store open.
    #[error("the store at {0} is already open in another process")]
    Locked(String),
    /// The path exists and is not a directory.
    #[error("the store path {0} is not a directory")]
    NotADirectory(String),
    /// The path cannot be written.
    #[error("the store path {path} is not writable: {reason}")]
    NotWritable {
        /// The path.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The store's files contradict each other: its schema marker says it
    /// was created, but sled's database holds no schema version (sled 0.34
    /// opens a database whose log was damaged as an empty one); or its
    /// schema version record does not read. Refused, so that the scheduler
    /// does not start empty and write over what is left, or read records
    /// with a layout it cannot know.
    #[error("the store at {path} is damaged: {reason}")]
    Damaged {
        /// The store's path.
        path: String,
        /// What contradicts what.
        reason: String,
    },
    /// Any other I/O or storage-engine error.
    #[error("store I/O error: {0}")]
    Io(String),
}

/// The port through which the registry persists jobs.
pub trait SnapshotStore: Send + Sync + 'static {
    /// Reads every job; quarantines records that do not decode.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read at all.
    fn load(&self) -> Result<Loaded, StoreError>;
    /// Applies writes (buffered: not yet durable).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError>;
    /// Makes every applied write durable.
    fn flush(&self) -> BoxFuture<'static, Result<(), StoreError>>;
    /// The newest `limit` history entries of a job, newest first.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    fn history(&self, id: &JobId, limit: usize) -> Result<Vec<RunRecord>, StoreError>;
    /// Whether writes survive the process (false for [`MemoryStore`]).
    fn is_durable(&self) -> bool;
}

/// A store that keeps everything in memory: nothing survives the process.
///
/// Shared between two schedulers one after the other, it shows what a
/// restart from a durable store does: the second finds the first's jobs.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{JobContext, JobPhase, JobSpec, MemoryStore, ScheduleSpec, Scheduler};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let store = Arc::new(MemoryStore::new());
/// let noop = |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) };
/// let first = Scheduler::builder().handler("noop", noop).store(store.clone()).start().await?;
/// first.add(JobSpec::builder("report", ScheduleSpec::cron("0 0 9 * * *"), "noop").build()?).await?;
/// first.pause("report", Some("until Monday")).await?;
/// first.shutdown(Duration::from_secs(5)).await?;
///
/// let second = Scheduler::builder().handler("noop", noop).store(store).start().await?;
/// let status = second.status("report").await?;
/// assert_eq!(status.phase, JobPhase::Paused);
/// assert_eq!(status.pause_note.as_deref(), Some("until Monday"));
/// second.shutdown(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    jobs: BTreeMap<JobId, JobRecord>,
    history: HashMap<JobId, VecDeque<RunRecord>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SnapshotStore for MemoryStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            jobs: self.lock().jobs.values().cloned().collect(),
            quarantined: Vec::new(),
        })
    }

    fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for op in ops {
            match op {
                StoreOp::PutJob(rec) => {
                    inner.jobs.insert(rec.spec.id.clone(), *rec);
                }
                StoreOp::PutState(id, state) => {
                    if let Some(rec) = inner.jobs.get_mut(&id) {
                        rec.state = *state;
                    }
                }
                StoreOp::RemoveJob(id) => {
                    inner.jobs.remove(&id);
                    inner.history.remove(&id);
                }
                StoreOp::AppendHistory { id, record, keep } => {
                    let h = inner.history.entry(id).or_default();
                    h.push_back(*record);
                    while h.len() > keep {
                        h.pop_front();
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn history(&self, id: &JobId, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        Ok(self
            .lock()
            .history
            .get(id)
            .map(|h| h.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    fn is_durable(&self) -> bool {
        false
    }
}
