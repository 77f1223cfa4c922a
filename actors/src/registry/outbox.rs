//! The write queue and the job actors' outboxes: `Updates`, the queue every
//! write reaches the registry through, `Outbox`, a job actor's one-slot
//! mailbox to the registry, and `Ack`, who to tell once a write is durable.

use super::RegistryMsg;
use crate::error::Error;
use crate::id::JobId;
use crate::job::JobMsg;
use crate::kept::KeptHistory;
use crate::spec::JobSpec;
use crate::status::{JobState, Outcome, RunRecord};
use ractor::{ActorRef, RpcReplyPort};
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
    pub(super) registry: OnceLock<ActorRef<RegistryMsg>>,
    /// Set by the registry while its store is one nobody else reads (see
    /// `RegistryState::private_store`): job actors then keep their history
    /// in their outbox and queue it only when the registry must act.
    pub(super) private: std::sync::atomic::AtomicBool,
    /// History entries kept per job.
    pub(super) history_keep: std::sync::atomic::AtomicUsize,
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
pub(super) const DRAIN_CADENCE: Duration = Duration::from_millis(10);

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
    pub(super) fn take(&self, into: &mut Vec<Write>) {
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
pub(super) enum Write {
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
    pub(super) id: JobId,
    inner: Mutex<OutboxSlot>,
    /// The take of the update queue that carries the outbox while it is
    /// queued (written and read by the job actor only).
    carrier: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
pub(super) struct OutboxSlot {
    /// In the update queue, not yet taken by the registry.
    pub(super) queued: bool,
    /// The registry reads the job from this outbox (it took it once).
    pub(super) adopted: bool,
    /// Posts since the registry last took the slot.
    pub(super) posts: u64,
    pub(super) state: JobState,
    pub(super) records: Vec<RunRecord>,
    /// The job's history, oldest first, with a store nobody else reads.
    pub(super) history: KeptHistory,
    pub(super) acks: Vec<Ack>,
    /// A new spec (upsert), with whether its handler is missing.
    pub(super) spec: Option<(Arc<JobSpec>, bool)>,
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, OutboxSlot> {
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
    pub(super) fn state(&self) -> JobState {
        self.lock().state.clone()
    }
}

/// Whether the registry indexes a history entry (runs `retry_run` can find).
pub(super) fn indexed(record: &RunRecord) -> bool {
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
