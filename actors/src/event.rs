//! Typed events: every transition of every job, broadcast to subscribers.
//!
//! The bus is a bounded `tokio::sync::broadcast` channel: publishing never
//! waits, and a subscriber that falls behind learns how many events it missed
//! ([`Received::Missed`]) instead of slowing the runtime down.

use crate::id::{JobId, RunId};
use crate::status::{SkipReason, Trigger};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::broadcast;

/// One event about one job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Wall-clock time of the event.
    pub at: DateTime<Utc>,
    /// The job it concerns.
    pub job_id: JobId,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// The job was added.
    Added,
    /// The job's spec was replaced by an upsert.
    Updated,
    /// The job was removed.
    Removed,
    /// The job was paused.
    Paused {
        /// The note given.
        note: Option<String>,
    },
    /// The job was resumed.
    Resumed {
        /// The note given.
        note: Option<String>,
    },
    /// A schedule slot or trigger fired (before the overlap decision).
    Fired {
        /// The slot or trigger time.
        scheduled: DateTime<Utc>,
        /// What fired.
        trigger: Trigger,
    },
    /// A fire was skipped; `count` slots at once for misfires.
    Skipped {
        /// The slot (the newest, for several).
        scheduled: DateTime<Utc>,
        /// Why.
        reason: SkipReason,
        /// How many slots.
        count: u64,
    },
    /// A fire was put in the overlap queue: behind a run in flight, or a
    /// `BufferAll` backfill's slots. The catch-up runs of one misfire plan
    /// are queued without this event.
    Queued {
        /// The slot.
        scheduled: DateTime<Utc>,
    },
    /// A run started.
    Started {
        /// The run.
        run_id: RunId,
        /// The slot it serves.
        scheduled: DateTime<Utc>,
        /// What started it.
        trigger: Trigger,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// A run succeeded.
    Succeeded {
        /// The run.
        run_id: RunId,
        /// How long it ran, in milliseconds.
        duration_ms: u64,
    },
    /// A run failed (error or panic).
    Failed {
        /// The run.
        run_id: RunId,
        /// The error text.
        error: String,
    },
    /// A run was cancelled.
    Cancelled {
        /// The run.
        run_id: RunId,
        /// Why.
        reason: String,
    },
    /// A run in flight at a crash was found on restart, or the job was
    /// given up on (`GaveUp`) with the run in flight.
    Interrupted {
        /// The run.
        run_id: RunId,
    },
    /// The schedule is exhausted.
    Completed,
    /// The wall clock stepped; the job re-planned its next fire.
    Replanned {
        /// The new next fire.
        next_fire: Option<DateTime<Utc>>,
    },
    /// The job actor died and was restarted from the registry's state:
    /// the new actor's first event.
    Restarted {
        /// The failure.
        reason: String,
    },
    /// The job's handler is not registered: it is kept but not run.
    Orphaned {
        /// The missing handler.
        handler: String,
    },
    /// A run exceeded the job's timeout.
    TimedOut {
        /// The run.
        run_id: RunId,
    },
    /// A failed run will be retried.
    RetryScheduled {
        /// The failed run.
        run_id: RunId,
        /// The attempt that will run.
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The job's waiting retry (announced by its `RetryScheduled`; a job has
    /// at most one) was dropped and will never run: by `cancel`, by a newer
    /// fire under `OverlapPolicy::Replace`, or at its due time because the
    /// job was paused or its handler is missing (with a `Skipped` of the
    /// fire).
    RetryDropped {
        /// The slot or trigger time of the fire it would have retried.
        scheduled: DateTime<Utc>,
        /// The attempt that will not run (its `RetryScheduled`'s attempt).
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// Retries are exhausted: the fire is recorded as failed.
    RetriesExhausted {
        /// The last run.
        run_id: RunId,
        /// Attempts made.
        attempts: u32,
    },
    /// The job paused itself after failed fires in a row.
    AutoPaused {
        /// The failures in a row.
        failures: u32,
    },
    /// The job actor kept crashing and was given up on.
    GaveUp {
        /// The last failure.
        reason: String,
    },
    /// A run reported progress.
    Progress {
        /// The run.
        run_id: RunId,
        /// Done, from 0 to 1.
        fraction: f32,
        /// What it is doing.
        message: String,
    },
    /// A store record could not be decoded at start and was moved to the
    /// quarantine tree (with its raw bytes); the other jobs loaded. `job_id`
    /// is the record's key when it is a valid job id, else `"(store)"`.
    Quarantined {
        /// The tree it was in.
        tree: String,
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A run logged a line.
    Log {
        /// The run.
        run_id: RunId,
        /// The line.
        line: String,
    },
}

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    /// The next event.
    Event(Event),
    /// The subscriber fell behind and this many events were dropped for it.
    Missed(u64),
}

/// A subscription to the event stream, from `Scheduler::subscribe`.
///
/// A subscriber that falls behind receives [`Received::Missed`] with the
/// number of events it lost, then goes on with the newest: the runtime never
/// waits for it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{EventKind, JobContext, JobSpec, Received, ScheduleSpec, Scheduler};
/// use std::time::Duration;
///
/// let scheduler = Scheduler::builder()
///     .handler("noop", |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) })
///     .in_memory()
///     .start()
///     .await?;
/// let mut events = scheduler.subscribe();
/// scheduler
///     .add(JobSpec::builder("tick", ScheduleSpec::cron("0 0 * * * *"), "noop").build()?)
///     .await?;
/// scheduler.trigger("tick").await?;
/// let mut seen = Vec::new();
/// loop {
///     match events.recv().await {
///         Some(Received::Event(event)) => {
///             assert_eq!(event.job_id.as_str(), "tick");
///             let done = matches!(event.kind, EventKind::Succeeded { .. });
///             seen.push(event.kind);
///             if done {
///                 break;
///             }
///         }
///         Some(Received::Missed(n)) => eprintln!("fell behind: {n} events lost"),
///         None => break, // the scheduler shut down
///     }
/// }
/// assert!(matches!(seen[0], EventKind::Added));
/// assert!(seen.iter().any(|kind| matches!(kind, EventKind::Started { .. })));
/// scheduler.shutdown(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EventStream {
    rx: broadcast::Receiver<Event>,
    /// Sticky events delivered first to every new subscriber.
    replay: std::collections::VecDeque<Event>,
    /// The bus's count of subscribers, decremented when this one is dropped.
    subscribers: std::sync::Arc<AtomicUsize>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.subscribers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl EventStream {
    /// The next event, or how many were missed; `None` once the scheduler
    /// has shut down and every event has been read.
    pub async fn recv(&mut self) -> Option<Received> {
        if let Some(e) = self.replay.pop_front() {
            return Some(Received::Event(e));
        }
        match self.rx.recv().await {
            Ok(e) => Some(Received::Event(e)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Received::Missed(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<Received> {
        if let Some(e) = self.replay.pop_front() {
            return Some(Received::Event(e));
        }
        match self.rx.try_recv() {
            Ok(e) => Some(Received::Event(e)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Received::Missed(n)),
            Err(_) => None,
        }
    }
}

/// The publishing side, shared by every actor.
///
/// ```
/// use cronactor_actors::{EventBus, EventKind, JobId, Received};
///
/// let bus = EventBus::new(16);
/// let mut stream = bus.subscribe();
/// let id = JobId::new("report")?;
/// bus.publish(&id, chrono::Utc::now(), EventKind::Added);
/// match stream.try_recv() {
///     Some(Received::Event(event)) => assert_eq!(event.kind, EventKind::Added),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), cronactor_actors::InvalidJobId>(())
/// ```
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    /// Events about the store's state at start (quarantined records), which
    /// happen before anyone can subscribe: every subscriber gets them first.
    sticky: std::sync::Arc<std::sync::Mutex<Vec<Event>>>,
    /// Live subscriptions. `broadcast::Sender::receiver_count` takes the
    /// channel's lock, which every job turn on every worker would contend
    /// for; this count is only written when a subscription starts or ends.
    subscribers: std::sync::Arc<AtomicUsize>,
}

impl EventBus {
    /// A bus that keeps up to `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            sticky: Default::default(),
            subscribers: Default::default(),
        }
    }

    /// Publishes an event; never waits. With no subscriber it costs one
    /// atomic load.
    pub fn publish(&self, job_id: &JobId, at: DateTime<Utc>, kind: EventKind) {
        if self.has_subscribers() {
            let _ = self.tx.send(Event {
                at,
                job_id: job_id.clone(),
                kind,
            });
        }
    }

    /// Whether anyone is subscribed: publishers may skip building an event
    /// nobody would receive.
    pub(crate) fn has_subscribers(&self) -> bool {
        self.subscribers.load(Ordering::SeqCst) > 0
    }

    /// A new subscription: first the sticky events (a store's `Quarantined`
    /// records found at start), then every event from now on.
    pub fn subscribe(&self) -> EventStream {
        let replay = self
            .sticky
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        self.subscribers.fetch_add(1, Ordering::SeqCst);
        EventStream {
            rx: self.tx.subscribe(),
            replay,
            subscribers: self.subscribers.clone(),
        }
    }

    /// Publishes an event that every future subscriber also receives first.
    pub fn publish_sticky(&self, job_id: &JobId, at: DateTime<Utc>, kind: EventKind) {
        let event = Event {
            at,
            job_id: job_id.clone(),
            kind,
        };
        self.sticky
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
        let _ = self.tx.send(event);
    }
}
