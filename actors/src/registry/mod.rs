//! The registry actor: the one place that answers status, list and history
//! queries, and the only writer of the store.
//!
//! Every write reaches it through `Updates`, a queue it drains in batches:
//! an idle registry is woken by one `Drain` message, a busy one drains every
//! 10 ms on its own, and a write waiting for an acknowledgement wakes it at
//! once. A job actor posts its state to its `Outbox`, a one-slot mailbox
//! the registry reads the job's state (and, with the private in-memory
//! store, its history) from: the actor copies its state into the slot,
//! reusing the slot's allocations, with the history entries and
//! acknowledgements since the registry last looked, and queues the outbox
//! only when it is not queued yet, so that consecutive changes of one job
//! coalesce.
//!
//! Writes are group-committed: run state is coalesced per job and written at
//! least every `flush_interval`; a write that carries an acknowledgement (a
//! control operation, or a fire whose run waits for its record) starts a
//! flush at once, or joins the next one if a flush is in flight. Only one
//! flush is in flight at a time, so writes reach the store in order. With a
//! store that is not durable, acknowledged writes are applied at once and run
//! state at the latest `flush_interval` later. Nothing is written to the
//! private in-memory store (see `RegistryState::private_store`), which nobody
//! can load: the jobs' history is kept in their outboxes.

use crate::error::Error;
use crate::event::EventKind;
use crate::id::{JobId, RunId};
use crate::job::JobMsg;
use crate::kept::KeptHistory;
use crate::metrics::{Histograms, Metrics};
use crate::schedule::{ScheduleKind, ScheduleSpec};
use crate::spec::JobSpec;
use crate::status::{phase_of, JobState, JobStatus, Outcome, RunRecord};
use crate::store::{JobRecord, QuarantinedRecord, SnapshotStore, StoreError, StoreOp};
use chrono_tz::Tz;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The channel of every write to the registry (`PutJob`, `Restore`, outbox posts,
/// `Remove`, `MarkFailed`), from the supervisor and the job actors.
///
/// A queue drained by the registry in batches. A push wakes an idle registry
/// with one `Drain` message; while writes keep coming the registry drains the
/// queue every [`DRAIN_CADENCE`] on its own, so that under load thousands of
/// writes share one message. A write that waits for an acknowledgement wakes
/// the registry at once (one `Drain` for all such writes until the registry
/// takes them). Writes keep their order. Queries go through the registry's
/// mailbox; the registry drains the queue before it handles any message, so
/// a query sees every write pushed before it was sent.
#[derive(Debug, Default)]
pub(crate) struct Updates {
    inner: Mutex<UpdateQueue>,
    registry: OnceLock<ActorRef<RegistryMsg>>,
    /// Set by the registry while its store is one nobody else reads (see
    /// `RegistryState::private_store`): job actors then keep their history
    /// in their outbox and queue it only when the registry must act.
    private: std::sync::atomic::AtomicBool,
    /// History entries kept per job.
    history_keep: std::sync::atomic::AtomicUsize,
    /// How far the queue's writes are durable (see `watermark`).
    watermark: crate::watermark::Watermark,
}

#[derive(Debug, Default)]
struct UpdateQueue {
    queue: Vec<Write>,
    /// The registry is awake: a `Drain` message is on its way, or it drains
    /// on its cadence.
    woken: bool,
    /// A `Drain` for writes waiting for an acknowledgement is on its way.
    urgent: bool,
}

/// How often the registry drains the update queue while writes keep coming.
const DRAIN_CADENCE: Duration = Duration::from_millis(10);

impl Updates {
    fn lock(&self) -> std::sync::MutexGuard<'_, UpdateQueue> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a write for the registry; one waiting for an acknowledgement
    /// wakes it at once.
    pub(crate) fn push(&self, update: RegistryMsg) {
        let urgent = match &update {
            RegistryMsg::PutJob { ack, .. } | RegistryMsg::Remove { ack, .. } => {
                !matches!(ack, Ack::None)
            }
            _ => false,
        };
        self.enqueue(Write::Msg(update), urgent);
    }

    /// Whether the registry's store is one nobody else reads (see
    /// `RegistryState::private_store`), as of its last drain.
    pub(crate) fn is_private(&self) -> bool {
        self.private.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Returns the take that carries the write (see `watermark`).
    fn enqueue(&self, update: Write, urgent: bool) -> u64 {
        let Some(registry) = self.registry.get() else {
            return 0; // no registry: nothing can answer or persist
        };
        let (wake, carrier) = {
            let mut q = self.lock();
            q.queue.push(update);
            let idle = !std::mem::replace(&mut q.woken, true);
            let urgent = urgent && !std::mem::replace(&mut q.urgent, true);
            // Takes are counted under this lock: the next one swaps the
            // queue that holds the write.
            (idle || urgent, self.watermark.next_take())
        };
        let gone = if wake {
            registry.cast(RegistryMsg::Drain).is_err()
        } else {
            registry.get_status() >= ractor::ActorStatus::Stopping
        };
        if gone {
            // The registry stopped: drop what it will never read (callers
            // waiting for an acknowledgement see their reply port close).
            drop(std::mem::take(&mut self.lock().queue));
        }
        carrier
    }

    /// Wakes the registry for a write waiting for an acknowledgement.
    fn wake_urgent(&self) {
        let Some(registry) = self.registry.get() else {
            return;
        };
        let wake = {
            let mut q = self.lock();
            q.woken = true;
            !std::mem::replace(&mut q.urgent, true)
        };
        if wake {
            let _ = registry.cast(RegistryMsg::Drain);
        }
    }

    /// Moves every queued write into `into` (empty on entry). With nothing
    /// queued the registry goes idle: the next push wakes it.
    fn take(&self, into: &mut Vec<Write>) {
        let mut q = self.lock();
        q.urgent = false;
        if q.queue.is_empty() {
            q.woken = false;
        } else {
            self.watermark.take();
            std::mem::swap(&mut q.queue, into);
        }
    }

    /// How far the queue's writes are durable.
    pub(crate) fn watermark(&self) -> &crate::watermark::Watermark {
        &self.watermark
    }
}

/// One entry of the update queue.
#[derive(Debug)]
enum Write {
    /// A write message.
    Msg(RegistryMsg),
    /// A job actor posted to its outbox.
    Outbox(Arc<Outbox>),
}

/// A job actor's one-slot mailbox to the registry: the job's latest state,
/// the history entries and acknowledgements posted since the registry last
/// took them, and a new spec. The registry keeps the outbox of each job and
/// reads the job's state from it.
#[derive(Debug)]
pub(crate) struct Outbox {
    id: JobId,
    inner: Mutex<OutboxSlot>,
    /// The take of the update queue that carries the outbox while it is
    /// queued (written and read by the job actor only).
    carrier: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct OutboxSlot {
    /// In the update queue, not yet taken by the registry.
    queued: bool,
    /// The registry reads the job from this outbox (it took it once).
    adopted: bool,
    /// Posts since the registry last took the slot.
    posts: u64,
    state: JobState,
    records: Vec<RunRecord>,
    /// The job's history, oldest first, with a store nobody else reads.
    history: KeptHistory,
    acks: Vec<Ack>,
    /// A new spec (upsert), with whether its handler is missing.
    spec: Option<(Arc<JobSpec>, bool)>,
}

impl Outbox {
    /// An outbox holding `state`.
    pub(crate) fn new(id: JobId, state: JobState) -> Arc<Self> {
        Arc::new(Self {
            id,
            inner: Mutex::new(OutboxSlot {
                state,
                ..OutboxSlot::default()
            }),
            carrier: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutboxSlot> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Posts the job's state, the history entries written since the last
    /// post (moved out of `records`), an acknowledgement, and a new spec.
    /// Returns the take of the update queue that carries the post (see
    /// `watermark`), or 0 when the post stays here.
    pub(crate) fn post(
        self: &Arc<Self>,
        updates: &Updates,
        state: &JobState,
        records: &mut Vec<RunRecord>,
        ack: Ack,
        spec: Option<(Arc<JobSpec>, bool)>,
    ) -> u64 {
        use std::sync::atomic::Ordering;
        let urgent = !matches!(ack, Ack::None);
        // With a store nobody else reads, a plain change (no caller waiting,
        // no new spec, no run the registry indexes) needs nothing from the
        // registry: the state and the history stay here for its queries.
        let here = updates.private.load(Ordering::Relaxed)
            && !urgent
            && spec.is_none()
            && !records.iter().any(indexed);
        let queue = {
            let mut slot = self.lock();
            slot.state.clone_from(state);
            // Once the registry reads the job from here, and unless earlier
            // entries still wait for it (order).
            if here && slot.adopted && !slot.queued {
                let keep = updates.history_keep.load(Ordering::Relaxed);
                slot.history.push(records.drain(..), keep);
                slot.posts += 1;
                return 0;
            }
            slot.records.append(records);
            if !matches!(ack, Ack::None) {
                slot.acks.push(ack);
            }
            if spec.is_some() {
                slot.spec = spec;
            }
            slot.posts += 1;
            !std::mem::replace(&mut slot.queued, true)
        };
        if !queue {
            if urgent {
                // Already queued: make sure the registry comes for it soon.
                updates.wake_urgent();
            }
            // Still queued when posted: the take that reads it has not
            // read it yet.
            return self.carrier.load(Ordering::Relaxed);
        }
        let carrier = updates.enqueue(Write::Outbox(self.clone()), urgent);
        self.carrier.store(carrier, Ordering::Relaxed);
        carrier
    }

    /// A copy of the state.
    fn state(&self) -> JobState {
        self.lock().state.clone()
    }
}

/// Whether the registry indexes a history entry (runs `retry_run` can find).
fn indexed(record: &RunRecord) -> bool {
    record.outcome.is_failure() || record.outcome == Outcome::Interrupted
}

/// Who to tell once a write is durable.
#[derive(Debug)]
pub enum Ack {
    /// Nobody: the write is group-committed.
    None,
    /// A caller waiting for a control operation.
    Reply(RpcReplyPort<Result<(), Error>>),
    /// A job actor whose claimed runs start once their record is durable.
    Job(ActorRef<JobMsg>),
    /// Nobody, but the write is flushed at once: a prepared run waits for
    /// it through the durable watermark (see `watermark`).
    Urgent,
}

/// Messages to the registry.
#[derive(Debug)]
pub enum RegistryMsg {
    /// Insert or replace a job's spec and state (add, upsert).
    PutJob {
        /// The spec.
        spec: Arc<JobSpec>,
        /// The state.
        state: Box<JobState>,
        /// Whether its handler is missing.
        orphaned: bool,
        /// Who to tell once durable.
        ack: Ack,
    },
    /// A job loaded from the store at start: known, not rewritten.
    Restore {
        /// The spec.
        spec: Arc<JobSpec>,
        /// The state.
        state: Box<JobState>,
        /// Whether its handler is missing.
        orphaned: bool,
    },
    /// Writes are waiting in the update queue.
    Drain,
    /// Delete a job with its state and history.
    Remove {
        /// The job.
        id: JobId,
        /// Who to tell once durable.
        ack: Ack,
    },
    /// One job's status.
    Status(JobId, RpcReplyPort<Result<JobStatus, Error>>),
    /// Every job's status, ordered by id.
    List(RpcReplyPort<Vec<JobStatus>>),
    /// A job's spec and latest state, to restart its actor.
    Snapshot(JobId, RpcReplyPort<Option<(Arc<JobSpec>, JobState)>>),
    /// A job's newest `limit` runs, newest first.
    History {
        /// The job.
        id: JobId,
        /// How many.
        limit: usize,
        /// The answer.
        reply: RpcReplyPort<Result<Vec<RunRecord>, Error>>,
    },
    /// Records quarantined by the store.
    Quarantined(RpcReplyPort<Vec<QuarantinedRecord>>),
    /// Scheduler-wide metrics.
    Metrics(RpcReplyPort<Metrics>),
    /// Which job a run belongs to, with its history entry.
    FindRun(RunId, RpcReplyPort<Option<(JobId, RunRecord)>>),
    /// The job's actor was given up on (restart budget exhausted).
    MarkFailed {
        /// The job.
        id: JobId,
        /// The last failure.
        reason: String,
        /// Now: the end of its runs in flight, recorded as interrupted.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The job's actor stopped for passivation: what the registry keeps
    /// for it is trimmed to its length (the job's state stays here until
    /// its actor is respawned).
    Passivated(JobId),
    /// Flush everything now (shutdown); answered once durable.
    Flush(RpcReplyPort<Result<(), Error>>),
    /// The group-commit timer.
    Tick,
    /// A flush ended.
    Flushed {
        /// The acknowledgements it carried.
        acks: Vec<Ack>,
        /// How it went.
        result: Result<(), StoreError>,
        /// When the oldest update it carried reached the registry.
        since: Option<std::time::Instant>,
        /// Write operations it carried.
        writes: u64,
        /// Every take of the update queue up to this one is in it.
        covers: u64,
    },
}

/// Arguments of the registry.
pub struct RegistryArgs {
    pub(crate) store: Arc<dyn SnapshotStore>,
    pub(crate) durable: bool,
    pub(crate) quarantined: Vec<QuarantinedRecord>,
    pub(crate) default_tz: Tz,
    pub(crate) flush_interval: Duration,
    pub(crate) history_keep: usize,
    pub(crate) history_max_age: Option<Duration>,
    pub(crate) clock: Arc<dyn crate::clock::Clock>,
    pub(crate) histograms: Arc<Histograms>,
    pub(crate) updates: Arc<Updates>,
    /// Where the runs a give-up interrupts are announced (see `MarkFailed`).
    pub(crate) events: crate::event::EventBus,
}

/// The most failed runs remembered for `retry_run` without a store scan.
const RETRYABLE_INDEX: usize = 10_000;

/// The registry actor.
#[derive(Debug, Default)]
pub struct RegistryActor;

struct Entry {
    spec: Arc<JobSpec>,
    /// Holds the job's state: its actor's outbox once the actor posted, or
    /// packed while the job is passive.
    held: Held,
    orphaned: bool,
}

/// Where the registry holds a job's state.
enum Held {
    /// In an outbox: the one its actor posts to (or did, last).
    Outbox(Arc<Outbox>),
    /// Packed: the job is passive and no actor holds its outbox.
    Packed(Packed),
}

// The packed bytes' pointer and length leave room for the outbox's pointer
// (no tag): an entry stays at 32 bytes on 64-bit targets.
const _: () = assert!(std::mem::size_of::<Held>() == std::mem::size_of::<Box<[u8]>>());

/// A passive job, encoded in one allocation (about 100 bytes instead of an
/// outbox of about 600): its phase when packed (a packed job does not
/// change; metrics read it without decoding the rest), its `JobState`, and
/// its history with the private in-memory store; postcard, one after the
/// other.
struct Packed(Box<[u8]>);

impl Packed {
    fn new(
        phase: crate::status::JobPhase,
        state: &JobState,
        history: &KeptHistory,
    ) -> Option<Self> {
        let bytes = postcard::to_allocvec(&(phase, state, history)).ok()?;
        Some(Self(bytes.into_boxed_slice()))
    }

    fn phase(&self) -> crate::status::JobPhase {
        postcard::take_from_bytes(&self.0).map_or_else(
            |e| {
                // Never happens: the bytes were encoded by this process.
                tracing::error!(error = %e, "packed job phase does not decode");
                crate::status::JobPhase::Scheduled
            },
            |(phase, _)| phase,
        )
    }

    fn decode(&self, id: &JobId) -> JobState {
        self.read::<(crate::status::JobPhase, JobState)>(id)
            .map(|(_, state)| state)
            .unwrap_or_default()
    }

    /// The state and the history.
    fn unpack(&self, id: &JobId) -> (JobState, KeptHistory) {
        self.read::<(crate::status::JobPhase, JobState, KeptHistory)>(id)
            .map(|(_, state, history)| (state, history))
            .unwrap_or_default()
    }

    fn history(&self, id: &JobId) -> KeptHistory {
        self.unpack(id).1
    }

    fn read<T: serde::de::DeserializeOwned>(&self, id: &JobId) -> Option<T> {
        match postcard::take_from_bytes(&self.0) {
            Ok((value, _)) => Some(value),
            Err(e) => {
                // Never happens: the bytes were encoded by this process.
                tracing::error!(job_id = %id, error = %e, "packed job state does not decode");
                None
            }
        }
    }
}

impl Held {
    /// The job's kept history, as the job leaves this holder (replaced or
    /// removed): a packed job is decoded once, and its counters leave
    /// `packed_totals`.
    fn into_history(self, id: &JobId, packed_totals: &mut crate::status::Counters) -> KeptHistory {
        match self {
            Held::Outbox(outbox) => std::mem::take(&mut outbox.lock().history),
            Held::Packed(p) => {
                let (state, history) = p.unpack(id);
                packed_totals.sub(&state.counters);
                history
            }
        }
    }
}

impl Entry {
    fn new(spec: Arc<JobSpec>, outbox: Arc<Outbox>, orphaned: bool) -> Self {
        Self {
            spec,
            held: Held::Outbox(outbox),
            orphaned,
        }
    }

    /// A copy of the job's state.
    fn state(&self) -> JobState {
        match &self.held {
            Held::Outbox(outbox) => outbox.state(),
            Held::Packed(p) => p.decode(&self.spec.id),
        }
    }

    /// The job's outbox, unpacking a packed job into a new one
    /// (`packed_totals` loses its counters).
    fn outbox(&mut self, packed_totals: &mut crate::status::Counters) -> &Arc<Outbox> {
        if let Held::Packed(p) = &self.held {
            let (state, history) = p.unpack(&self.spec.id);
            packed_totals.sub(&state.counters);
            let outbox = Outbox::new(self.spec.id.clone(), state);
            outbox.lock().history = history;
            self.held = Held::Outbox(outbox);
        }
        match &self.held {
            Held::Outbox(outbox) => outbox,
            Held::Packed(_) => unreachable!("unpacked above"),
        }
    }

    /// Packs a passive job whose outbox nobody else holds and that has
    /// nothing waiting in it; `Some(false)` if its outbox is still held
    /// (its actor is stopping: try again), `None` if there is nothing to do.
    fn pack(&mut self, packed_totals: &mut crate::status::Counters) -> Option<bool> {
        let Held::Outbox(outbox) = &self.held else {
            return None;
        };
        if Arc::strong_count(outbox) > 1 {
            return Some(false);
        }
        let slot = outbox.lock();
        if slot.queued || !slot.acks.is_empty() || !slot.records.is_empty() || slot.spec.is_some() {
            return Some(false);
        }
        // Packed only when idle: nothing in flight, so no fire ahead.
        let phase = phase_of(&slot.state, self.orphaned, &Default::default());
        let packed = Packed::new(phase, &slot.state, &slot.history)?;
        packed_totals.add(&slot.state.counters);
        drop(slot);
        self.held = Held::Packed(packed);
        Some(true)
    }
}

/// The registry's jobs, found by the id in their spec: a hash table of
/// entries with no separate key (16 bytes less per bucket than a map keyed
/// by id; with a million jobs, about 2 million buckets).
#[derive(Default)]
struct Entries {
    table: hashbrown::HashTable<Entry>,
    hasher: foldhash::fast::RandomState,
}

impl Entries {
    fn hash(&self, id: &JobId) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, id)
    }

    fn get(&self, id: &JobId) -> Option<&Entry> {
        self.table.find(self.hash(id), |e| e.spec.id == *id)
    }

    fn get_mut(&mut self, id: &JobId) -> Option<&mut Entry> {
        let hash = self.hash(id);
        self.table.find_mut(hash, |e| e.spec.id == *id)
    }

    fn contains_key(&self, id: &JobId) -> bool {
        self.get(id).is_some()
    }

    /// Inserts `entry` under its spec's id, replacing (and giving back) the
    /// entry of that id.
    fn insert(&mut self, entry: Entry) -> Option<Entry> {
        let hash = self.hash(&entry.spec.id);
        let hasher = &self.hasher;
        match self.table.entry(
            hash,
            |e| e.spec.id == entry.spec.id,
            |e| std::hash::BuildHasher::hash_one(hasher, &e.spec.id),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                Some(std::mem::replace(o.get_mut(), entry))
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(entry);
                None
            }
        }
    }

    fn remove(&mut self, id: &JobId) -> Option<Entry> {
        let hash = self.hash(id);
        let found = self.table.find_entry(hash, |e| e.spec.id == *id).ok()?;
        Some(found.remove().0)
    }

    fn values(&self) -> impl Iterator<Item = &Entry> {
        self.table.iter()
    }

    fn keys(&self) -> impl Iterator<Item = &JobId> {
        self.table.iter().map(|e| &e.spec.id)
    }
}

/// The registry's state.
pub struct RegistryState {
    entries: Entries,
    store: Arc<dyn SnapshotStore>,
    durable: bool,
    quarantined: Vec<QuarantinedRecord>,
    default_tz: Tz,
    history_keep: usize,
    history_max_age: Option<Duration>,
    clock: Arc<dyn crate::clock::Clock>,
    /// Writes not yet handed to the store, in order.
    ops: Vec<StoreOp>,
    /// Jobs whose state changed since the last commit, with the index in
    /// `ops` of the `PutState` that carries it: a later post of the same job
    /// overwrites that state in place, so a job writes one state per commit
    /// however often it posts.
    dirty: HashMap<JobId, usize, foldhash::fast::RandomState>,
    /// Acknowledgements waiting for the next flush.
    acks: Vec<Ack>,
    flushing: bool,
    /// The update queue, and the batch being applied.
    updates: Arc<Updates>,
    batch: Vec<Write>,
    /// Scratch space for the records taken from an outbox.
    records: Vec<RunRecord>,
    /// A `Tick` is on its way (stores that are not durable).
    tick_armed: bool,
    /// A `Drain` on the registry's cadence is on its way.
    cadence_armed: bool,
    flush_interval: Duration,
    histograms: Arc<Histograms>,
    /// The event bus: `MarkFailed` announces the runs it records as
    /// interrupted, then the give-up.
    events: crate::event::EventBus,
    /// Recent runs that can be retried by hand, oldest first.
    retryable: VecDeque<(RunId, JobId)>,
    /// When the oldest update not yet committed reached the registry.
    oldest_pending: Option<std::time::Instant>,
    /// Counters and the store lag, for `Metrics::store`.
    stats: StoreCounters,
    /// The counters of every packed job, summed (metrics read no packed
    /// state).
    packed_totals: crate::status::Counters,
    /// Passivated jobs to pack once their actor let go of the outbox.
    to_pack: Vec<JobId>,
}

/// The registry's store counters.
struct StoreCounters {
    updates: u64,
    writes: u64,
    flushes: u64,
    lag: hdrhistogram::Histogram<u64>,
}

impl Actor for RegistryActor {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RegistryMsg>,
        args: RegistryArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let durable = args.durable;
        if durable {
            myself.send_interval(args.flush_interval, || RegistryMsg::Tick);
        }
        let _ = args.updates.registry.set(myself.clone());
        args.updates
            .history_keep
            .store(args.history_keep, std::sync::atomic::Ordering::Relaxed);
        Ok(RegistryState {
            entries: Entries::default(),
            store: args.store,
            durable,
            quarantined: args.quarantined,
            default_tz: args.default_tz,
            history_keep: args.history_keep,
            history_max_age: args.history_max_age,
            clock: args.clock,
            ops: Vec::new(),
            dirty: HashMap::default(),
            acks: Vec::new(),
            flushing: false,
            updates: args.updates,
            batch: Vec::new(),
            records: Vec::new(),
            tick_armed: false,
            cadence_armed: false,
            flush_interval: args.flush_interval,
            histograms: args.histograms,
            events: args.events,
            retryable: VecDeque::new(),
            oldest_pending: None,
            stats: StoreCounters {
                updates: 0,
                writes: 0,
                flushes: 0,
                lag: crate::metrics::histogram(),
            },
            packed_totals: crate::status::Counters::default(),
            to_pack: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RegistryMsg>,
        msg: RegistryMsg,
        s: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        if matches!(msg, RegistryMsg::Drain) {
            s.cadence_armed = false;
        }
        // Every write pushed before this message was sent is applied first.
        s.drain(&myself);
        let mut acks = Vec::new();
        let Some(msg) = s.apply_write(msg, &mut acks) else {
            s.settle(&myself, acks);
            return Ok(());
        };
        match msg {
            RegistryMsg::Drain => {}
            RegistryMsg::PutJob { .. }
            | RegistryMsg::Restore { .. }
            | RegistryMsg::Remove { .. }
            | RegistryMsg::Passivated(_)
            | RegistryMsg::MarkFailed { .. } => {}
            RegistryMsg::Status(id, reply) => {
                let status = s
                    .entries
                    .get(&id)
                    .map(|e| s.status_of(e))
                    .ok_or(Error::UnknownJob(id));
                let _ = reply.send(status);
            }
            RegistryMsg::List(reply) => {
                let mut all: Vec<JobStatus> = s.entries.values().map(|e| s.status_of(e)).collect();
                all.sort_by(|a, b| a.id.cmp(&b.id));
                let _ = reply.send(all);
            }
            RegistryMsg::Snapshot(id, reply) => {
                let _ = reply.send(s.entries.get(&id).map(|e| (e.spec.clone(), e.state())));
            }
            RegistryMsg::History { id, limit, reply } => {
                let answer = if s.entries.contains_key(&id) {
                    s.history(&id, limit)
                } else {
                    Err(Error::UnknownJob(id))
                };
                let _ = reply.send(answer);
            }
            RegistryMsg::Quarantined(reply) => {
                let _ = reply.send(s.quarantined.clone());
            }
            RegistryMsg::Metrics(reply) => {
                let _ = reply.send(s.metrics());
            }
            RegistryMsg::FindRun(run_id, reply) => {
                let _ = reply.send(s.find_run(run_id));
            }
            RegistryMsg::Flush(reply) => s.write(&myself, Ack::Reply(reply)),
            RegistryMsg::Tick if s.durable => s.commit(&myself),
            RegistryMsg::Tick => {
                s.tick_armed = false;
                if let Err(e) = s.apply_pending() {
                    tracing::error!(error = %e, "store write failed");
                }
            }
            RegistryMsg::Flushed {
                acks,
                result,
                since,
                writes,
                covers,
            } => {
                s.flushing = false;
                s.stats.flushes += 1;
                s.stats.writes += writes;
                if let Some(since) = since {
                    crate::metrics::record_us(&mut s.stats.lag, since.elapsed());
                }
                if let Err(e) = &result {
                    tracing::error!(error = %e, "store flush failed");
                }
                for ack in acks {
                    answer(ack, result.clone().map_err(|e| Error::Store(e.to_string())));
                }
                // Even if the flush failed the prepared runs start, as the
                // runs acknowledged above do.
                s.updates.watermark().mark_durable(covers);
                if !s.acks.is_empty() {
                    s.commit(&myself);
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<RegistryMsg>,
        s: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        // Last chance to persist run state written since the last commit.
        s.drain(&myself);
        let covers = s.updates.watermark().taken();
        let ops = s.take_ops();
        if !ops.is_empty() {
            if let Err(e) = s.store.apply(ops) {
                tracing::error!(error = %e, "store write at stop failed");
            }
        }
        if s.durable {
            if let Err(e) = s.store.flush().await {
                tracing::error!(error = %e, "store flush at stop failed");
            }
        }
        s.updates.watermark().mark_durable(covers);
        Ok(())
    }
}

/// Queues history entries for the store, or keeps them in `kept` (the
/// registry's own history of a job, for a store nobody else reads).
fn append_history(
    retryable: &mut VecDeque<(RunId, JobId)>,
    ops: &mut Vec<StoreOp>,
    mut kept: Option<&mut KeptHistory>,
    id: &JobId,
    records: impl IntoIterator<Item = RunRecord>,
    keep: usize,
) {
    for record in records {
        if indexed(&record) {
            if retryable.len() == RETRYABLE_INDEX {
                retryable.pop_front();
            }
            retryable.push_back((record.run_id, id.clone()));
        }
        match kept.as_deref_mut() {
            Some(kept) => kept.push([record], keep),
            None => ops.push(StoreOp::AppendHistory {
                id: id.clone(),
                record: Box::new(record),
                keep,
            }),
        }
    }
}

fn answer(ack: Ack, result: Result<(), Error>) {
    match ack {
        Ack::None | Ack::Urgent => {}
        Ack::Reply(reply) => {
            let _ = reply.send(result);
        }
        Ack::Job(job) => {
            // Even if the write failed the runs start: the fire was decided
            // and losing the run would be worse than running it twice.
            let _ = job.cast(JobMsg::Recorded);
        }
    }
}

impl RegistryState {
    /// Removes a job's entry, taking a packed job's counters out of the
    /// packed totals.
    fn remove_entry(&mut self, id: &JobId) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        if let Held::Packed(p) = &entry.held {
            let state = p.decode(id);
            self.packed_totals.sub(&state.counters);
        }
        Some(entry)
    }

    /// Packs the passivated jobs whose actor has let go of the outbox; the
    /// others are tried again at the next drain (an actor stops moments
    /// after it reports its passivation).
    fn pack_passivated(&mut self) {
        if self.to_pack.is_empty() {
            return;
        }
        let mut to_pack = std::mem::take(&mut self.to_pack);
        to_pack.retain(|id| {
            // A job that was removed, or woke and posted from a new actor,
            // has nothing to pack.
            let Some(entry) = self.entries.get_mut(id) else {
                return false;
            };
            matches!(entry.pack(&mut self.packed_totals), Some(false))
        });
        // A job whose old outbox stays held (its actor woke again) is
        // dropped from the list after a few drains.
        if to_pack.len() > 4 * 1024 {
            to_pack.drain(..to_pack.len() - 4 * 1024);
        }
        self.to_pack = to_pack;
    }

    /// Applies every update waiting in the job actors' queue.
    fn drain(&mut self, myself: &ActorRef<RegistryMsg>) {
        self.pack_passivated();
        self.updates
            .private
            .store(self.private_store(), std::sync::atomic::Ordering::Relaxed);
        let mut batch = std::mem::take(&mut self.batch);
        self.updates.take(&mut batch);
        if batch.is_empty() {
            self.batch = batch;
            return;
        }
        // More may come: look again on the cadence (the queue stays awake).
        if !self.cadence_armed {
            self.cadence_armed = true;
            myself.send_after(DRAIN_CADENCE, || RegistryMsg::Drain);
        }
        let mut acks = Vec::new();
        for write in batch.drain(..) {
            match write {
                Write::Outbox(outbox) => self.take_outbox(outbox, &mut acks),
                Write::Msg(msg) => {
                    if let Some(other) = self.apply_write(msg, &mut acks) {
                        debug_assert!(false, "not a write: {other:?}");
                    }
                }
            }
        }
        self.batch = batch;
        self.settle(myself, acks);
    }

    /// Takes a write into the registry's view and queues its store
    /// operations; its acknowledgement goes to `acks`. Any other message is
    /// given back.
    fn apply_write(&mut self, msg: RegistryMsg, acks: &mut Vec<Ack>) -> Option<RegistryMsg> {
        let ack = match msg {
            RegistryMsg::PutJob {
                spec,
                state,
                orphaned,
                ack,
            } => {
                let id = spec.id.clone();
                self.dirty.remove(&id);
                if !self.private_store() {
                    self.ops.push(StoreOp::PutJob(Box::new(JobRecord {
                        spec: (*spec).clone(),
                        state: (*state).clone(),
                    })));
                }
                let outbox = Outbox::new(id.clone(), *state);
                // An upsert keeps the history.
                if let Some(old) = self.entries.remove(&id) {
                    outbox.lock().history = old.held.into_history(&id, &mut self.packed_totals);
                }
                self.entries.insert(Entry::new(spec, outbox, orphaned));
                ack
            }
            RegistryMsg::Restore {
                spec,
                state,
                orphaned,
            } => {
                let outbox = Outbox::new(spec.id.clone(), *state);
                self.remove_entry(&spec.id);
                self.entries.insert(Entry::new(spec, outbox, orphaned));
                return None;
            }
            RegistryMsg::Remove { id, ack } => {
                self.remove_entry(&id);
                self.dirty.remove(&id);
                if !self.private_store() {
                    self.ops.push(StoreOp::RemoveJob(id));
                }
                ack
            }
            RegistryMsg::Passivated(id) => {
                if self.entries.contains_key(&id) {
                    self.to_pack.push(id);
                }
                return None;
            }
            RegistryMsg::MarkFailed { id, reason, at } => match self.entries.get_mut(&id) {
                Some(entry) => {
                    let outbox = entry.outbox(&mut self.packed_totals).clone();
                    // Its runs in flight end with the actor that owned them:
                    // interrupted (or cancelled, if they were), as after a
                    // crash of the process (their own end, if any, has no
                    // actor to reach).
                    let interrupted: Vec<RunRecord> = {
                        let mut slot = outbox.lock();
                        slot.state.failed = Some(reason.clone());
                        let runs = std::mem::take(&mut slot.state.in_flight);
                        let records: Vec<RunRecord> = runs
                            .into_iter()
                            .map(|run| RunRecord {
                                run_id: run.run_id,
                                scheduled: run.scheduled,
                                started: run.started.min(at),
                                finished: at,
                                attempt: run.attempt,
                                trigger: run.trigger,
                                outcome: match run.cancelled {
                                    Some(why) => why.cut_outcome(),
                                    None => Outcome::Interrupted,
                                },
                            })
                            .collect();
                        let counters = &mut slot.state.counters;
                        for record in &records {
                            match record.outcome {
                                Outcome::Interrupted => counters.interrupted += 1,
                                _ => counters.cancelled += 1,
                            }
                        }
                        if let Some(last) = records.last() {
                            slot.state.last_run = Some(last.clone());
                        }
                        records
                    };
                    // Announced as a crash's are at restart, before the
                    // give-up: a subscriber sees every started run end.
                    for record in &interrupted {
                        let run_id = record.run_id;
                        let kind = match &record.outcome {
                            Outcome::Cancelled(reason) => EventKind::Cancelled {
                                run_id,
                                reason: reason.clone(),
                            },
                            _ => EventKind::Interrupted { run_id },
                        };
                        self.events.publish(&id, at, kind);
                    }
                    self.events.publish(&id, at, EventKind::GaveUp { reason });
                    if !interrupted.is_empty() {
                        let mut slot = self.private_store().then(|| outbox.lock());
                        append_history(
                            &mut self.retryable,
                            &mut self.ops,
                            slot.as_mut().map(|slot| &mut slot.history),
                            &id,
                            interrupted,
                            self.history_keep,
                        );
                    }
                    if !self.private_store() {
                        self.queue_state(&id, &outbox);
                    }
                    Ack::None
                }
                None => {
                    // Removed meanwhile: nothing to mark.
                    self.events.publish(&id, at, EventKind::GaveUp { reason });
                    return None;
                }
            },
            other => return Some(other),
        };
        self.stats.updates += 1;
        if self.oldest_pending.is_none() {
            self.oldest_pending = Some(std::time::Instant::now());
        }
        if !matches!(ack, Ack::None) {
            acks.push(ack);
        }
        None
    }

    /// What a job actor posted to its outbox: its state (read from the
    /// outbox from now on), history entries, acknowledgements, a new spec.
    fn take_outbox(&mut self, outbox: Arc<Outbox>, acks: &mut Vec<Ack>) {
        let mut records = std::mem::take(&mut self.records);
        // The acknowledgements join `acks` (the slot keeps its vector's
        // room for the job's next post).
        let first_ack = acks.len();
        let (spec, posts) = {
            let mut slot = outbox.lock();
            slot.queued = false;
            slot.adopted = true;
            std::mem::swap(&mut slot.records, &mut records);
            acks.append(&mut slot.acks);
            (slot.spec.take(), std::mem::take(&mut slot.posts))
        };
        let id = &outbox.id;
        let private = self.private_store();
        let Some(entry) = self.entries.get_mut(id) else {
            // The job was removed; a late update must not resurrect it.
            for ack in acks.drain(first_ack..) {
                answer(ack, Err(Error::UnknownJob(id.clone())));
            }
            records.clear();
            self.records = records;
            return;
        };
        let same = matches!(&entry.held, Held::Outbox(held) if Arc::ptr_eq(held, &outbox));
        if !same {
            // The job's actor (a new one after a restart or a wake-up) posts
            // for the first time: its outbox holds the job from now on, with
            // the history.
            let old = std::mem::replace(&mut entry.held, Held::Outbox(outbox.clone()));
            let older = old.into_history(&entry.spec.id, &mut self.packed_totals);
            outbox.lock().history.prepend(older);
        }
        if let Some((spec, orphaned)) = spec {
            entry.spec = spec;
            entry.orphaned = orphaned;
            if !private {
                let state = outbox.state();
                self.ops.push(StoreOp::PutJob(Box::new(JobRecord {
                    spec: (*entry.spec).clone(),
                    state,
                })));
                // The record carries the state: a later post writes its
                // state after it.
                self.dirty.remove(id);
            }
        }
        if !records.is_empty() {
            // With the private store the history stays in the outbox; with
            // any other it goes to the store (no second lock).
            let mut slot = private.then(|| outbox.lock());
            append_history(
                &mut self.retryable,
                &mut self.ops,
                slot.as_mut().map(|slot| &mut slot.history),
                id,
                records.drain(..),
                self.history_keep,
            );
        }
        self.records = records;
        if !private {
            self.queue_state(id, &outbox);
        }
        self.stats.updates += posts;
        if self.oldest_pending.is_none() {
            self.oldest_pending = Some(std::time::Instant::now());
        }
    }

    /// After writes were queued: acknowledged writes start a flush at once
    /// (or join the next one) with a durable store, and are applied at once
    /// otherwise; run state waits for the group commit.
    fn settle(&mut self, myself: &ActorRef<RegistryMsg>, acks: Vec<Ack>) {
        if self.durable {
            if !acks.is_empty() {
                self.acks.extend(acks);
                self.commit(myself);
            }
            return;
        }
        if acks.is_empty() {
            if self.ops.is_empty() {
                return;
            }
            // A store only the registry holds (the default in-memory store)
            // is read by nobody else: its writes can wait for the group
            // commit (history answers include what waits). A store shared
            // with others sees every write at once, as before.
            if !self.private_store() {
                if let Err(e) = self.apply_pending() {
                    tracing::error!(error = %e, "store write failed");
                }
            } else if !self.tick_armed {
                self.tick_armed = true;
                myself.send_after(self.flush_interval, || RegistryMsg::Tick);
            }
            return;
        }
        let result = self
            .apply_pending()
            .map_err(|e| Error::Store(e.to_string()));
        for ack in acks {
            answer(ack, result.clone());
        }
    }

    /// Queues the writes made by a message; acknowledged writes start a
    /// flush at once (or join the next one).
    fn write(&mut self, myself: &ActorRef<RegistryMsg>, ack: Ack) {
        self.stats.updates += 1;
        if self.oldest_pending.is_none() {
            self.oldest_pending = Some(std::time::Instant::now());
        }
        let acks = if matches!(ack, Ack::None) {
            Vec::new()
        } else {
            vec![ack]
        };
        self.settle(myself, acks);
    }

    /// Whether the store is one nobody can read but the registry: not
    /// durable, and held by the registry alone (the default in-memory store).
    /// Nothing ever loads it, so job state is left out of it; it keeps what
    /// history queries read.
    fn private_store(&self) -> bool {
        !self.durable && Arc::strong_count(&self.store) == 1
    }

    /// Queues the state in `outbox` for the store: copied while the outbox
    /// is still in cache from the take that changed it, into the job's
    /// pending `PutState` if it has one (reusing its allocations), or a new
    /// one. (Copying every changed state at the commit instead looked each
    /// job up again and locked its outbox from a cold cache: at 100k jobs on
    /// sled that was about 7 % of the process's CPU.)
    fn queue_state(&mut self, id: &JobId, outbox: &Outbox) {
        if let Some(&i) = self.dirty.get(id) {
            if let Some(StoreOp::PutState(_, state)) = self.ops.get_mut(i) {
                (**state).clone_from(&outbox.lock().state);
                return;
            }
        }
        self.dirty.insert(id.clone(), self.ops.len());
        self.ops
            .push(StoreOp::PutState(id.clone(), Box::new(outbox.state())));
    }

    fn take_ops(&mut self) -> Vec<StoreOp> {
        self.dirty.clear();
        std::mem::take(&mut self.ops)
    }

    /// Hands pending writes to the store without flushing.
    fn apply_pending(&mut self) -> Result<(), StoreError> {
        let ops = self.take_ops();
        self.oldest_pending = None;
        if ops.is_empty() {
            return Ok(());
        }
        self.stats.writes += ops.len() as u64;
        self.store.apply(ops)
    }

    /// Starts a group commit unless one is in flight.
    fn commit(&mut self, myself: &ActorRef<RegistryMsg>) {
        if self.flushing || (self.ops.is_empty() && self.acks.is_empty()) {
            return;
        }
        self.flushing = true;
        // Every take so far is drained into the operations taken here.
        let covers = self.updates.watermark().taken();
        let ops = self.take_ops();
        let writes = ops.len() as u64;
        let since = self.oldest_pending.take();
        let acks = std::mem::take(&mut self.acks);
        let store = self.store.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let applied = if ops.is_empty() {
                Ok(())
            } else {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.apply(ops))
                    .await
                    .unwrap_or_else(|e| Err(StoreError::Io(format!("store writer failed: {e}"))))
            };
            let result = match applied {
                Ok(()) => store.flush().await,
                Err(e) => Err(e),
            };
            let _ = myself.cast(RegistryMsg::Flushed {
                acks,
                result,
                since,
                writes,
                covers,
            });
        });
    }

    /// The store's history plus the entries not yet handed to it (handing
    /// them over here could overtake a flush in flight).
    fn history(&self, id: &JobId, limit: usize) -> Result<Vec<RunRecord>, Error> {
        let kept: Vec<RunRecord> = self
            .entries
            .get(id)
            .map(|e| match &e.held {
                Held::Outbox(outbox) => {
                    let slot = outbox.lock();
                    slot.history.newest_first().take(limit).collect()
                }
                Held::Packed(p) => p.history(id).newest_first().take(limit).collect(),
            })
            .unwrap_or_default();
        let mut newest: Vec<RunRecord> = kept
            .into_iter()
            .chain(self.ops.iter().rev().filter_map(|op| match op {
                StoreOp::AppendHistory { id: of, record, .. } if of == id => {
                    Some((**record).clone())
                }
                _ => None,
            }))
            .take(limit)
            .collect();
        let rest = limit - newest.len();
        if rest > 0 {
            let stored = self
                .store
                .history(id, rest)
                .map_err(|e| Error::Store(e.to_string()))?;
            newest.extend(stored);
        }
        // An age reaching past the start of chrono's calendar keeps everything.
        let oldest = self.history_max_age.and_then(|max_age| {
            let max_age = chrono::Duration::from_std(max_age).ok()?;
            self.clock.now().checked_sub_signed(max_age)
        });
        if let Some(oldest) = oldest {
            newest.retain(|r| r.finished >= oldest);
        }
        Ok(newest)
    }

    fn metrics(&self) -> Metrics {
        let mut m = Metrics {
            quarantined: self.quarantined.len() as u64,
            lateness: self.histograms.lateness(),
            duration: self.histograms.duration(),
            store: crate::metrics::StoreStats {
                updates: self.stats.updates,
                writes: self.stats.writes,
                flushes: self.stats.flushes,
                pending: self.ops.len() as u64,
                lag: crate::metrics::percentiles_of(&self.stats.lag),
            },
            ..Metrics::default()
        };
        let now = self.clock.now();
        for e in self.entries.values() {
            match &e.held {
                Held::Outbox(outbox) => {
                    let slot = outbox.lock();
                    let ahead = crate::status::ahead_of(&slot.state, now);
                    *m.jobs_by_phase
                        .entry(phase_of(&slot.state, e.orphaned, &ahead))
                        .or_default() += 1;
                    // Fires prepared ahead of their slot are still to come.
                    let mut counters = slot.state.counters.clone();
                    ahead.uncount(&mut counters);
                    m.totals.add(&counters);
                    m.runs_in_flight +=
                        (slot.state.in_flight.len() as u64).saturating_sub(u64::from(ahead.runs));
                }
                Held::Packed(p) => *m.jobs_by_phase.entry(p.phase()).or_default() += 1,
            }
        }
        m.totals.add(&self.packed_totals);
        m
    }

    /// Finds a run: in the index of recent failed runs, else by scanning
    /// every job's history (a rare, operator-driven request).
    fn find_run(&self, run_id: RunId) -> Option<(JobId, RunRecord)> {
        let indexed = self
            .retryable
            .iter()
            .rev()
            .find(|(r, _)| *r == run_id)
            .map(|(_, id)| id.clone());
        let candidates: Vec<JobId> = match indexed {
            Some(id) => vec![id],
            None => self.entries.keys().cloned().collect(),
        };
        candidates.into_iter().find_map(|id| {
            let history = self.history(&id, self.history_keep).ok()?;
            let record = history.into_iter().find(|r| r.run_id == run_id)?;
            Some((id, record))
        })
    }

    fn status_of(&self, e: &Entry) -> JobStatus {
        let now = self.clock.now();
        let unpacked;
        let slot;
        let st = match &e.held {
            Held::Outbox(outbox) => {
                slot = outbox.lock();
                &slot.state
            }
            Held::Packed(p) => {
                unpacked = p.decode(&e.spec.id);
                &unpacked
            }
        };
        let ahead = crate::status::ahead_of(st, now);
        let mut status = JobStatus {
            id: e.spec.id.clone(),
            schedule: describe(&e.spec.schedule),
            time_zone: e
                .spec
                .schedule
                .tz
                .clone()
                .unwrap_or_else(|| self.default_tz.name().to_string()),
            handler: e.spec.handler.clone(),
            tags: e.spec.tags.clone(),
            phase: phase_of(st, e.orphaned, &ahead),
            pause_note: st.paused.as_ref().and_then(|p| p.note.clone()),
            next_fire: st.next_fire,
            last_fire: st.last_fire,
            last_run: st.last_run.clone(),
            counters: st.counters.clone(),
            consecutive_failures: st.consecutive_failures,
            runs_in_flight: st.in_flight.len() as u32,
            in_flight: st.in_flight.clone(),
            queued: st.queued(),
            retry_wait: st.retry_wait.clone(),
            failure: st.failed.clone(),
            progress: st.progress.clone(),
            last_result: st.last_result.clone(),
        };
        status.show_ahead(&ahead, now);
        status
    }
}

/// The schedule as written.
fn describe(spec: &ScheduleSpec) -> String {
    match &spec.kind {
        ScheduleKind::Cron(expr) if spec.also.is_empty() => expr.clone(),
        ScheduleKind::Cron(expr) => std::iter::once(expr)
            .chain(&spec.also)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        ScheduleKind::Interval {
            every_ms,
            offset_ms,
        } if *offset_ms > 0 => format!("every {every_ms} ms (offset {offset_ms} ms)"),
        ScheduleKind::Interval { every_ms, .. } => format!("every {every_ms} ms"),
        ScheduleKind::Once(at) => format!("once at {}", at.to_rfc3339()),
    }
}
