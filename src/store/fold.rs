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
    /// Where a history chunk that does not decode goes when the fold
    /// trims it, instead of being deleted.
    pub(crate) quarantine: &'a Tree,
}

/// The history chunks of one job in the tree, oldest first: (first sequence
/// number, number of entries).
type Chunks = VecDeque<(u64, u32)>;

/// What the folder remembers between folds: the chunks of every job it has
/// written or read, so that trimming needs no scan.
#[derive(Debug, Default)]
pub(crate) struct Folder {
    chunks: HashMap<JobId, Chunks, foldhash::fast::RandomState>,
    /// Whether `chunks` holds every job that has chunks in the tree, so
    /// that a job missing from it has none: set by one pass over the
    /// tree's keys, cleared by [`Folder::forget`].
    complete: bool,
}

/// From how many jobs a fold reads the chunks of every job in one pass over
/// the history tree's keys, instead of one prefix scan per job it does not
/// know yet. One pass reads each key once, in order; a prefix scan per job
/// walks the tree from its root (at 100k jobs on sled the scans took about
/// a sixth of the first fold after an open, 2.7 % of the process's CPU in
/// the bench's window).
const ONE_PASS_FROM_JOBS: usize = 1024;

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

    /// Removes a job's history chunk `(first, len)` from the tree, under
    /// the key it has there. A chunk of one run read from the tree may be
    /// a single-entry key of schema version 1 (`id + 0x00 + seq`, no
    /// length): when no chunk key was there, that key is removed instead.
    /// The chunk keys a fold writes always exist, so this costs no second
    /// removal for them; a job reset in a fold has its keys removed as the
    /// tree holds them, and then no chunk from before the reset.
    fn remove_chunk(
        &mut self,
        id: &JobId,
        first: u64,
        len: u32,
        key: &mut Vec<u8>,
    ) -> sled::Result<()> {
        codec::chunk_key_into(id.as_str(), first, len, key);
        match self {
            Sink::Direct(trees) => {
                let mut old = trees.history.remove(&key[..])?;
                if old.is_none() && len == 1 {
                    codec::history_key_into(id.as_str(), first, key);
                    old = trees.history.remove(&key[..])?;
                }
                // A trimmed chunk is read only here: one that does not
                // decode is kept in the quarantine, as a bad record found at
                // load is, in the next sled write after its removal.
                match old {
                    Some(raw) if codec::decode_chunk(&raw).is_err() => {
                        super::sled_store::quarantine_removed(
                            trees.quarantine,
                            super::sled_store::TREE_HISTORY,
                            key,
                            &raw,
                            format!("a history chunk of job {id} that does not decode, trimmed"),
                        )
                    }
                    _ => Ok(()),
                }
            }
            // A job removed (or reset) in this fold: its history goes with it.
            Sink::Batched(_) => self.remove(Kind::History, key),
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
        self.complete = false;
    }

    /// Forgets the chunks of one job (moved out of the tree).
    pub(crate) fn forget_job(&mut self, id: &JobId) {
        if let Some(chunks) = self.chunks.get_mut(id) {
            chunks.clear();
        }
    }

    /// Reads the chunks of every job in one pass over the history tree's
    /// keys (sled yields them in key order: each job's chunks together,
    /// oldest first, as [`scan_chunks`] reads them).
    fn learn_all(&mut self, history: &Tree) -> sled::Result<()> {
        let mut chunks: HashMap<JobId, Chunks, foldhash::fast::RandomState> = HashMap::default();
        let mut current: Option<(JobId, Chunks)> = None;
        for key in history.iter().keys() {
            let key = key?;
            // A job id has no control character, so the first separator
            // ends it.
            let Some(end) = key.iter().position(|b| *b == codec::SEP) else {
                continue;
            };
            let Some(chunk) = codec::history_chunk(&key, end + 1) else {
                continue;
            };
            let id = &key[..end];
            if current
                .as_ref()
                .is_none_or(|(cur, _)| cur.as_str().as_bytes() != id)
            {
                let Some(id) = std::str::from_utf8(id)
                    .ok()
                    .and_then(|id| JobId::try_from(id).ok())
                else {
                    continue;
                };
                if let Some((done, list)) = current.replace((id, VecDeque::new())) {
                    chunks.insert(done, list);
                }
            }
            if let Some((_, list)) = current.as_mut() {
                list.push_back(chunk);
            }
        }
        if let Some((done, list)) = current {
            chunks.insert(done, list);
        }
        self.chunks = chunks;
        self.complete = true;
        Ok(())
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
        if !self.complete && net.jobs.len() >= ONE_PASS_FROM_JOBS {
            self.learn_all(trees.history).map_err(io)?;
        }
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
                let scanned = if self.complete {
                    VecDeque::new()
                } else {
                    scan_chunks(trees.history, id.as_str())?
                };
                self.chunks.entry(id.clone()).or_insert(scanned)
            }
        };
        let key = &mut buf.key;
        let first = n.history.front().map_or(0, |(seq, _)| *seq);
        // Chunks at or after `first` come from a fold of the same entries
        // cut short by a crash: this chunk supersedes them.
        while chunks.back().is_some_and(|(f, _)| *f >= first) {
            if let Some((f, l)) = chunks.pop_back() {
                b.remove_chunk(id, f, l, key)?;
                writes += 1;
            }
        }
        // A chunk that starts before `first` and holds entries from it on
        // comes from a fold whose segment deletion a crash cut short (the
        // segments are deleted one by one, oldest first): the segments left
        // replay entries that chunk holds already. Those are skipped, so no
        // entry is in two chunks; counted twice, they made the trim below
        // delete chunks whose entries were still among the newest `keep`.
        let held = chunks
            .back()
            .map_or(0, |(f, l)| f.saturating_add(u64::from(*l)));
        let skip = n.history.iter().take_while(|(seq, _)| *seq < held).count();
        let new_runs = n.history.range(skip..);
        let first = new_runs.clone().next().map_or(held, |(seq, _)| *seq);
        let len = u32::try_from(new_runs.len()).unwrap_or(u32::MAX);
        // Drop the oldest chunks while the rest and the new one still hold
        // `keep` entries, before the new one is written: each job's chunks
        // then take the same number of keys after the fold as before it, so
        // sled's leaves keep their size instead of splitting (a leaf splits
        // above 16 keys; writing first and trimming after split about one
        // leaf in two at every fold). A reader in between sees the new
        // entries in the net being folded (see `SledStore::history`), and a
        // crash in between replays the journal, which writes the new chunk.
        let new = if n.keep > 0 { u64::from(len) } else { 0 };
        let mut total: u64 = new + chunks.iter().map(|(_, l)| u64::from(*l)).sum::<u64>();
        while let Some(&(f, l)) = chunks.front() {
            if total - u64::from(l) < n.keep {
                break;
            }
            b.remove_chunk(id, f, l, key)?;
            chunks.pop_front();
            total -= u64::from(l);
            writes += 1;
        }
        if n.keep > 0 && len > 0 {
            buf.value.clear();
            codec::encode_chunk_into(n.keep, new_runs.map(|(_, r)| &r[..]), &mut buf.value);
            codec::chunk_key_into(id.as_str(), first, len, key);
            b.insert(Kind::History, key, &buf.value)?;
            chunks.push_back((first, len));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> JobId {
        JobId::new(s).expect("id")
    }

    /// One pass over the tree's keys learns, for every job, the chunks that
    /// a prefix scan of that job reads: jobs whose ids are prefixes of one
    /// another, single-entry keys of earlier builds, and keys of no job.
    #[test]
    fn one_pass_learns_what_each_prefix_scan_reads() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let history = db.open_tree("history").expect("tree");
        let mut key = Vec::new();
        let jobs = ["job-1", "job-10", "job-1 b", "job-2"];
        for (n, job) in jobs.iter().enumerate() {
            for c in 0..=n as u64 {
                codec::chunk_key_into(job, 10 * c, 10, &mut key);
                history.insert(&key, b"v").expect("insert");
            }
        }
        // A single-entry key of an earlier build, and keys of no job.
        codec::history_prefix_into("job-2", &mut key);
        key.extend_from_slice(&100u64.to_be_bytes());
        history.insert(&key, b"v").expect("insert");
        history.insert(b"no separator", b"v").expect("insert");
        history.insert(b"job-3\x00short", b"v").expect("insert");

        let mut folder = Folder::default();
        folder.learn_all(&history).expect("learn");
        assert!(folder.complete);
        for job in jobs {
            let scanned = scan_chunks(&history, job).expect("scan");
            assert!(!scanned.is_empty());
            assert_eq!(folder.chunks.get(&id(job)), Some(&scanned), "{job}");
        }
        assert_eq!(folder.chunks[&id("job-2")].back(), Some(&(100, 1)));
        assert_eq!(folder.chunks.len(), jobs.len());
        folder.forget();
        assert!(!folder.complete && folder.chunks.is_empty());
    }
}
