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
use super::journal::{Net, NetMap};
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

/// One sled batch per tree, and whether any holds a write.
#[derive(Default)]
struct Batches {
    jobs: Batch,
    state: Batch,
    history: Batch,
    any: bool,
}

/// Where a fold's writes go.
enum Sink<'t> {
    /// Straight into the trees, one sled write each.
    Direct(&'t Trees<'t>),
    /// Into one batch per tree, applied later in one transaction.
    Batched(&'t mut Batches),
}

/// One of the trees a fold writes.
#[derive(Clone, Copy)]
enum Kind {
    Jobs,
    State,
    History,
}

impl Sink<'_> {
    fn insert(&mut self, kind: Kind, key: &[u8], value: &[u8]) -> sled::Result<()> {
        match self {
            Sink::Direct(trees) => trees.get(kind).insert(key, value).map(drop),
            Sink::Batched(batches) => {
                batches.get(kind).insert(key, value);
                Ok(())
            }
        }
    }

    fn remove(&mut self, kind: Kind, key: &[u8]) -> sled::Result<()> {
        match self {
            Sink::Direct(trees) => trees.get(kind).remove(key).map(drop),
            Sink::Batched(batches) => {
                batches.get(kind).remove(key);
                Ok(())
            }
        }
    }
}

impl Trees<'_> {
    fn get(&self, kind: Kind) -> &Tree {
        match kind {
            Kind::Jobs => self.jobs,
            Kind::State => self.state,
            Kind::History => self.history,
        }
    }
}

impl Batches {
    /// The batch of `kind`, marked as holding writes.
    fn get(&mut self, kind: Kind) -> &mut Batch {
        self.any = true;
        match kind {
            Kind::Jobs => &mut self.jobs,
            Kind::State => &mut self.state,
            Kind::History => &mut self.history,
        }
    }
}

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
    /// every other job with single inserts and removals, its spec before
    /// its state and history. A crash part way leaves the journal segments
    /// (they are deleted only once the fold is flushed), and the next open
    /// replays them before anything is read, so the trees never show a
    /// half-written fold. Single writes take sled's shared lock, not the
    /// process-wide write lock of a batch: the flushes' journal writes go
    /// on while a fold runs (at 100k jobs a fold takes seconds, and batches
    /// of 512 jobs held every flush back, and with it every run waiting for
    /// its record, for hundreds of milliseconds at a time). Returns the
    /// number of writes.
    ///
    /// # Errors
    /// [`StoreError::Io`] for a sled error or an encoding error; the caller
    /// keeps the journal segments, so nothing is lost.
    pub(crate) fn write(&mut self, trees: &Trees<'_>, net: &NetMap) -> Result<u64, StoreError> {
        let io = |e: sled::Error| StoreError::Io(format!("sled error while folding: {e}"));
        // Jobs written as they are: each write is one sled insert, under
        // sled's shared lock, so the flushes' journal writes go on beside
        // them (a replay after a crash gives the same trees: see
        // `journal`). Jobs removed and added again within the fold go into
        // one transaction at the end, so that no crash shows them half
        // reset.
        let mut removed = Batches::default();
        let mut fast = Sink::Direct(trees);
        let mut tx = Sink::Batched(&mut removed);
        let mut buf = Buffers::default();
        let mut writes = 0u64;
        // In key order: consecutive inserts land in the same or the next
        // leaf of each tree, whose path stays in cache (in the map's hash
        // order each insert walked a cold path, and a fold of 100k jobs
        // took about 1.5 times as long).
        let mut order: Vec<(&JobId, &Net)> = net.jobs.iter().collect();
        order.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for (id, n) in order {
            let b = if n.reset { &mut tx } else { &mut fast };
            if n.reset {
                let idb = id.as_str().as_bytes();
                b.remove(Kind::Jobs, idb).map_err(io)?;
                b.remove(Kind::State, idb).map_err(io)?;
                for k in trees
                    .history
                    .scan_prefix(codec::history_prefix(id.as_str()))
                    .keys()
                {
                    b.remove(Kind::History, &k.map_err(io)?).map_err(io)?;
                    writes += 1;
                }
                self.chunks.insert(id.clone(), VecDeque::new());
                writes += 2;
            }
            // Its spec before its state and history.
            writes += write_record(b, Kind::Jobs, id, n.spec.as_deref()).map_err(io)?;
            writes += write_record(b, Kind::State, id, n.state.as_deref()).map_err(io)?;
            writes += self.write_history(trees, b, id, n, &mut buf).map_err(io)?;
        }

        if removed.any {
            let tx = &removed;
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

    /// Writes a job's new history entries as one chunk, deleting the chunks
    /// it supersedes or makes surplus. Returns the number of writes.
    fn write_history(
        &mut self,
        trees: &Trees<'_>,
        b: &mut Sink<'_>,
        id: &JobId,
        n: &Net,
        buf: &mut Buffers,
    ) -> sled::Result<u64> {
        if n.history.is_empty() {
            return Ok(0);
        }
        let mut writes = 0;
        let chunks = match self.chunks.get_mut(id) {
            Some(chunks) => chunks,
            None => {
                let scanned = scan_chunks(trees.history, id.as_str())?;
                self.chunks.entry(id.clone()).or_insert(scanned)
            }
        };
        let key = &mut buf.key;
        let first = n.history.front().map_or(0, |(seq, _)| *seq);
        let len = u32::try_from(n.history.len()).unwrap_or(u32::MAX);
        // Chunks at or after `first` come from a fold of the same entries
        // cut short by a crash: this chunk supersedes them.
        while chunks.back().is_some_and(|(f, _)| *f >= first) {
            if let Some((f, l)) = chunks.pop_back() {
                codec::chunk_key_into(id.as_str(), f, l, key);
                b.remove(Kind::History, key)?;
                writes += 1;
            }
        }
        if n.keep > 0 {
            buf.value.clear();
            codec::encode_chunk_into(
                n.keep,
                n.history.iter().map(|(_, r)| &r[..]),
                &mut buf.value,
            );
            codec::chunk_key_into(id.as_str(), first, len, key);
            b.insert(Kind::History, key, &buf.value)?;
            chunks.push_back((first, len));
            writes += 1;
        }
        // Drop the oldest chunks while the rest still hold `keep` entries.
        let mut total: u64 = chunks.iter().map(|(_, l)| u64::from(*l)).sum();
        while let Some(&(f, l)) = chunks.front() {
            if total - u64::from(l) < n.keep || (n.keep > 0 && chunks.len() == 1) {
                break;
            }
            codec::chunk_key_into(id.as_str(), f, l, key);
            b.remove(Kind::History, key)?;
            chunks.pop_front();
            total -= u64::from(l);
            writes += 1;
        }
        Ok(writes)
    }
}

/// The key and value buffers a fold reuses.
struct Buffers {
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Default for Buffers {
    fn default() -> Self {
        Self {
            key: Vec::with_capacity(64),
            value: Vec::with_capacity(512),
        }
    }
}

/// Writes a job's record (spec or state) into `kind`'s tree, if there is
/// one. Returns the number of writes.
fn write_record(
    b: &mut Sink<'_>,
    kind: Kind,
    id: &JobId,
    record: Option<&[u8]>,
) -> sled::Result<u64> {
    match record {
        Some(record) => b.insert(kind, id.as_str().as_bytes(), record).map(|()| 1),
        None => Ok(0),
    }
}
