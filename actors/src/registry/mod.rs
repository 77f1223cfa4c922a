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

mod commit;
mod entries;
mod outbox;
mod packed_spec;
mod query;

pub use outbox::Ack;
pub(crate) use outbox::{Outbox, Updates};

use crate::error::Error;
use crate::id::{JobId, RunId};
use crate::metrics::{Histograms, Metrics};
use crate::spec::JobSpec;
use crate::status::{JobState, JobStatus, RunRecord};
use crate::store::{QuarantinedRecord, SnapshotStore, StoreError, StoreOp};
use chrono_tz::Tz;
use commit::answer;
use entries::Entries;
use outbox::Write;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Fault injection for tests (feature `fault-injection`): a job whose
/// snapshot the registry withholds (it drops the reply), as when it does
/// not answer a restart's request in time.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub static WITHHOLD_SNAPSHOT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

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
    /// The group commit in flight handed its writes to the store (its
    /// flush may still run).
    Applied,
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

/// The registry actor.
#[derive(Debug, Default)]
pub struct RegistryActor;

/// The target of the registry's events, `cronactor_actors::registry`,
/// whichever of its files logs them: those below this one name it, since
/// their own path would be theirs.
const TARGET: &str = module_path!();

/// A history read waiting for a commit's writes (see `applying`).
type HistoryRead = (JobId, usize, RpcReplyPort<Result<Vec<RunRecord>, Error>>);

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
    /// A group commit's writes are on their way to the store (applied off
    /// the runtime): in neither `ops` nor the store's answers yet.
    applying: bool,
    /// History reads that came meanwhile: they wait for `Applied` (until
    /// 2026-12-05 they could miss the newest runs, which status already
    /// showed as the last run).
    history_reads: Vec<HistoryRead>,
    /// Held by a group commit from its apply to its end: the registry's
    /// last write, at its stop, waits for the commit in flight (see
    /// `post_stop`).
    committing: Arc<tokio::sync::Mutex<()>>,
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
            applying: false,
            history_reads: Vec::new(),
            committing: Arc::default(),
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
                    .and_then(|e| s.status_of(e))
                    .ok_or(Error::UnknownJob(id));
                let _ = reply.send(status);
            }
            RegistryMsg::List(reply) => {
                let mut all: Vec<JobStatus> =
                    s.entries.values().filter_map(|e| s.status_of(e)).collect();
                all.sort_by(|a, b| a.id.cmp(&b.id));
                let _ = reply.send(all);
            }
            RegistryMsg::Snapshot(id, reply) => {
                #[cfg(feature = "fault-injection")]
                let withheld = WITHHOLD_SNAPSHOT
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_deref()
                    == Some(id.as_str());
                #[cfg(not(feature = "fault-injection"))]
                let withheld = false;
                if !withheld {
                    let _ = reply.send(
                        s.entries
                            .get_mut(&id)
                            .and_then(|e| Some((e.spec_to_share()?, e.state()))),
                    );
                }
            }
            RegistryMsg::History { id, limit, reply } if s.applying => {
                s.history_reads.push((id, limit, reply));
            }
            RegistryMsg::Applied => {
                s.applying = false;
                for (id, limit, reply) in std::mem::take(&mut s.history_reads) {
                    let _ = reply.send(s.known_history(id, limit));
                }
            }
            RegistryMsg::History { id, limit, reply } => {
                let _ = reply.send(s.known_history(id, limit));
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
            RegistryMsg::Flush(reply) => s.barrier(&myself, Ack::Reply(reply)),
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
                // Even if the flush failed the prepared runs start, as the
                // runs acknowledged below do. Before the acknowledgements:
                // a job's `Recorded` starts the runs whose take it covers.
                s.updates.watermark().mark_durable(covers);
                for ack in acks {
                    answer(ack, result.clone().map_err(|e| Error::Store(e.to_string())));
                }
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
        // A group commit in flight goes first: its writes are older than
        // the ones below (applied before it, they could be overwritten by
        // it), and the watermark below covers its takes, which must not
        // be marked durable before it is (a prepared run would start with
        // its claim still on its way). Its `Flushed` is not read any more:
        // its callers see their reply port close.
        let committing = s.committing.clone();
        let _turn = committing.lock().await;
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
