//! The fold: writes the journal's per-job nets into the `jobs`, `state` and
//! `history` trees.
//!
//! A job's history is kept in chunks: one value per fold that appended to
//! it, holding the entries of that fold, keyed by `id`, first sequence number
//! and length (see `codec::chunk_key_into`). A fold writes one chunk per job
//! and deletes the oldest chunks that the newer ones make surplus, so a job
//! that fired five times between two folds costs one state write, one chunk
//! write and about one chunk delete instead of fifteen writes.

use super::codec;
use super::journal::NetMap;
use cronactor_actors::{JobId, StoreError};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Batch, Transactional, Tree};
use std::collections::{HashMap, VecDeque};

/// The trees a fold writes.
pub(crate) struct Trees<'a> {
    pub(crate) jobs: &'a Tree,
    pub(crate) state: &'a Tree,
    pub(crate) history: &'a Tree,
}

/// The history chunks of one job in the tree, oldest first: (first sequence
/// number, number of entries).
type Chunks = VecDeque<(u64, u32)>;

/// What the folder remembers between folds: the chunks of every job it has
/// written or read, so that trimming needs no scan.
#[derive(Debug, Default)]
pub(crate) struct Folder {
    chunks: HashMap<JobId, Chunks, foldhash::fast::RandomState>,
}

/// One sled batch per tree, with whether each has writes.
#[derive(Default)]
struct Batches {
    jobs: Batch,
    state: Batch,
    history: Batch,
    any: [bool; 3],
}

impl Batches {
    /// Applies the batches with writes, in the order `jobs`, `state`,
    /// `history`.
    fn apply(self, trees: &Trees<'_>) -> sled::Result<()> {
        if self.any[0] {
            trees.jobs.apply_batch(self.jobs)?;
        }
        if self.any[1] {
            trees.state.apply_batch(self.state)?;
        }
        if self.any[2] {
            trees.history.apply_batch(self.history)?;
        }
        Ok(())
    }
}

/// How many jobs one group of a fold's batches covers. sled 0.34 applies a
/// batch under a process-wide write lock that every other sled operation
/// then waits for (the journal writes of a flush included), and keeps the
/// memory of every node version it replaces until the batch ends: a fold
/// of 10k jobs in one batch per tree held flushes back for the whole fold.
pub(crate) const GROUP_JOBS: usize = 512;

/// Reads the chunk list of a job from the tree (keys only).
pub(crate) fn scan_chunks(history: &Tree, id: &str) -> sled::Result<Chunks> {
    let prefix = codec::history_prefix(id);
    let mut out = VecDeque::new();
    for key in history.scan_prefix(&prefix).keys() {
        if let Some(chunk) = codec::history_chunk(&key?, prefix.len()) {
            out.push_back(chunk);
        }
    }
    Ok(out)
}

impl Folder {
    /// Forgets what it knew (after a failed fold, the trees may differ).
    pub(crate) fn forget(&mut self) {
        self.chunks.clear();
    }

    /// Writes `net` into the trees: jobs that were removed in one
    /// transaction over the three trees (a removal and a re-add are atomic),
    /// every other job in groups of [`GROUP_JOBS`] jobs, one batch per tree
    /// and group, applied in the order `jobs`, `state`, `history`, so that a
    /// crash never keeps a new job's state without its spec. (A crash
    /// between groups leaves the journal segments, which replay the whole
    /// fold.) Returns the number of writes.
    ///
    /// # Errors
    /// [`StoreError::Io`] for a sled error or an encoding error; the caller
    /// keeps the journal segments, so nothing is lost.
    pub(crate) fn write(&mut self, trees: &Trees<'_>, net: &NetMap) -> Result<u64, StoreError> {
        let io = |e: sled::Error| StoreError::Io(format!("sled error while folding: {e}"));
        let mut fast = Batches::default();
        let mut tx = Batches::default();
        let mut value = Vec::with_capacity(512);
        let mut key = Vec::with_capacity(64);
        let mut writes = 0u64;
        let mut grouped = 0usize;
        for (id, n) in &net.jobs {
            if !n.reset {
                if grouped == GROUP_JOBS {
                    std::mem::take(&mut fast).apply(trees).map_err(io)?;
                    grouped = 0;
                }
                grouped += 1;
            }
            let b = if n.reset { &mut tx } else { &mut fast };
            let idb = id.as_str().as_bytes();
            if n.reset {
                b.jobs.remove(idb);
                b.state.remove(idb);
                b.any[0] = true;
                b.any[1] = true;
                for k in trees
                    .history
                    .scan_prefix(codec::history_prefix(id.as_str()))
                    .keys()
                {
                    b.history.remove(k.map_err(io)?);
                    b.any[2] = true;
                    writes += 1;
                }
                self.chunks.insert(id.clone(), VecDeque::new());
                writes += 2;
            }
            if let Some(spec) = &n.spec {
                b.jobs.insert(idb, &spec[..]);
                b.any[0] = true;
                writes += 1;
            }
            if let Some(state) = &n.state {
                b.state.insert(idb, &state[..]);
                b.any[1] = true;
                writes += 1;
            }
            if n.history.is_empty() {
                continue;
            }
            let chunks = match self.chunks.get_mut(id) {
                Some(chunks) => chunks,
                None => {
                    let scanned = scan_chunks(trees.history, id.as_str()).map_err(io)?;
                    self.chunks.entry(id.clone()).or_insert(scanned)
                }
            };
            let first = n.history.front().map_or(0, |(seq, _)| *seq);
            let len = u32::try_from(n.history.len()).unwrap_or(u32::MAX);
            // Chunks at or after `first` come from a fold of the same entries
            // cut short by a crash: this chunk supersedes them.
            while chunks.back().is_some_and(|(f, _)| *f >= first) {
                if let Some((f, l)) = chunks.pop_back() {
                    codec::chunk_key_into(id.as_str(), f, l, &mut key);
                    b.history.remove(&key[..]);
                    writes += 1;
                }
            }
            if n.keep > 0 {
                value.clear();
                codec::encode_chunk_into(n.keep, n.history.iter().map(|(_, r)| &r[..]), &mut value);
                codec::chunk_key_into(id.as_str(), first, len, &mut key);
                b.history.insert(&key[..], &value[..]);
                chunks.push_back((first, len));
                writes += 1;
            }
            // Drop the oldest chunks while the rest still hold `keep` entries.
            let mut total: u64 = chunks.iter().map(|(_, l)| u64::from(*l)).sum();
            while let Some(&(f, l)) = chunks.front() {
                if total - u64::from(l) < n.keep || (n.keep > 0 && chunks.len() == 1) {
                    break;
                }
                codec::chunk_key_into(id.as_str(), f, l, &mut key);
                b.history.remove(&key[..]);
                chunks.pop_front();
                total -= u64::from(l);
                writes += 1;
            }
            b.any[2] = true;
        }

        fast.apply(trees).map_err(io)?;
        if tx.any.iter().any(|b| *b) {
            (trees.jobs, trees.state, trees.history)
                .transaction(|(j, s, h)| {
                    j.apply_batch(&tx.jobs)?;
                    s.apply_batch(&tx.state)?;
                    h.apply_batch(&tx.history)?;
                    Ok::<(), ConflictableTransactionError<()>>(())
                })
                .map_err(|e| match e {
                    TransactionError::Storage(e) => io(e),
                    TransactionError::Abort(()) => {
                        StoreError::Io("a store transaction aborted".into())
                    }
                })?;
        }
        // Jobs removed and not re-added: nothing to remember.
        for (id, n) in &net.jobs {
            if n.reset && n.spec.is_none() {
                self.chunks.remove(id);
            }
        }
        Ok(writes)
    }
}
