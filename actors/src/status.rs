//! The job's state as plain serde values: what the job actor keeps, what the
//! registry persists, and what a status query returns.

use crate::id::{JobId, RunId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

/// What made a run start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Trigger {
    /// A schedule slot, on time.
    Schedule,
    /// A `trigger` request.
    Manual,
    /// A schedule slot missed while down or stalled, run late.
    CatchUp,
    /// A run interrupted by a crash or a shutdown, run again on restart.
    Recovery,
    /// A retry of a failed or timed-out run (a new attempt of the same fire).
    Retry,
    /// A `retry_run` request for a run that failed, timed out or was interrupted.
    ManualRetry,
    /// A named event the job listens to (see `Scheduler::emit`).
    Event,
    /// A past slot run by a `backfill` request.
    Backfill,
}

/// Why a fire did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SkipReason {
    /// The job was paused.
    Paused,
    /// A run was in flight and the overlap policy said skip.
    Overlap,
    /// The overlap queue was full, or holding the fire's event payload
    /// would pass [`MAX_HELD_EVENT_BYTES`](crate::MAX_HELD_EVENT_BYTES).
    QueueFull,
    /// A missed slot skipped by the misfire policy or the catch-up window.
    Misfire,
    /// The job's handler is not registered.
    Orphaned,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The handler returned `Ok`.
    Succeeded,
    /// The handler returned an error or panicked; the text says which.
    Failed(String),
    /// The run was cancelled through its token (`cancel`, `Replace`,
    /// `remove`).
    Cancelled(String),
    /// The process died, or the scheduler shut down, while the run was in
    /// flight (see [`CancelReason::cut_outcome`]).
    Interrupted,
    /// The run exceeded the job's timeout and was cancelled.
    TimedOut,
    /// Not a run: schedule slots from `scheduled` through `through` that were
    /// missed (down or stalled) and not run, for `reason`.
    Skipped {
        /// Why they did not run.
        reason: SkipReason,
        /// How many slots.
        slots: u64,
        /// The newest of them.
        #[serde(with = "crate::time_serde::instant")]
        through: DateTime<Utc>,
    },
    /// Not a run: missed schedule slots from `scheduled` through `through`
    /// served by the next run, a catch-up or the slot on time (misfire
    /// policy `FireOnce`).
    Coalesced {
        /// How many slots.
        slots: u64,
        /// The newest of them.
        #[serde(with = "crate::time_serde::instant")]
        through: DateTime<Utc>,
    },
}

impl Outcome {
    /// The error text, if the outcome is not a success.
    pub fn error_text(&self) -> Option<&str> {
        match self {
            Self::Succeeded => None,
            Self::Failed(e) | Self::Cancelled(e) => Some(e),
            Self::Interrupted => Some("interrupted by a crash or a shutdown"),
            Self::TimedOut => Some("timed out"),
            Self::Skipped { .. } | Self::Coalesced { .. } => None,
        }
    }

    /// Whether the entry records a run (rather than slots that did not run).
    pub fn is_run(&self) -> bool {
        !matches!(self, Self::Skipped { .. } | Self::Coalesced { .. })
    }

    /// Whether the outcome counts as a failure for retries and
    /// `pause_after_failures` (errors, panics and timeouts; not cancellations).
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Failed(_) | Self::TimedOut)
    }
}

/// Counters of a job's life, kept across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Schedule slots claimed (on time or caught up), manual triggers excluded.
    pub fires: u64,
    /// Runs started.
    pub runs: u64,
    /// Runs that succeeded.
    pub succeeded: u64,
    /// Runs that failed (error or panic).
    pub failed: u64,
    /// Runs cancelled.
    pub cancelled: u64,
    /// Runs interrupted by a crash or a shutdown.
    pub interrupted: u64,
    /// Runs that timed out.
    #[serde(default)]
    pub timed_out: u64,
    /// Retries started (attempts after the first).
    #[serde(default)]
    pub retries: u64,
    /// Runs that waited for admission (a concurrency cap) before starting.
    #[serde(default)]
    pub admission_waits: u64,
    /// Missed slots served by another slot's run.
    pub coalesced: u64,
    /// Fires skipped, by reason.
    pub skipped: SkipCounts,
}

/// Skipped fires by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipCounts {
    /// While paused.
    pub paused: u64,
    /// A run was in flight.
    pub overlap: u64,
    /// The overlap queue was full (or the job held its limit of event
    /// payloads; see [`SkipReason::QueueFull`]).
    pub queue_full: u64,
    /// Missed slots skipped by the misfire policy or window.
    pub misfire: u64,
    /// The handler was not registered.
    pub orphaned: u64,
}

impl SkipCounts {
    /// Adds `n` skips for `reason`.
    pub fn add(&mut self, reason: SkipReason, n: u64) {
        let slot = match reason {
            SkipReason::Paused => &mut self.paused,
            SkipReason::Overlap => &mut self.overlap,
            SkipReason::QueueFull => &mut self.queue_full,
            SkipReason::Misfire => &mut self.misfire,
            SkipReason::Orphaned => &mut self.orphaned,
        };
        *slot = slot.saturating_add(n);
    }

    /// All skips together.
    pub fn total(&self) -> u64 {
        [self.overlap, self.queue_full, self.misfire, self.orphaned]
            .into_iter()
            .fold(self.paused, u64::saturating_add)
    }
}

/// Why and since when a job is paused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseInfo {
    /// The note given with the pause, shown in status.
    pub note: Option<String>,
    /// When it was paused.
    #[serde(with = "crate::time_serde::instant")]
    pub since: DateTime<Utc>,
}

/// A run that has started and not yet ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlightRun {
    /// The run.
    pub run_id: RunId,
    /// The schedule slot (or trigger time) it serves.
    #[serde(with = "crate::time_serde::instant")]
    pub scheduled: DateTime<Utc>,
    /// When it was started.
    #[serde(with = "crate::time_serde::instant")]
    pub started: DateTime<Utc>,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// What started it.
    pub trigger: Trigger,
    /// The named event that started it, if any.
    #[serde(default)]
    pub event: Option<String>,
    /// That event's payload: stored with the run, so that a run interrupted
    /// by a crash runs again with its event.
    #[serde(default, with = "payload_serde")]
    pub payload: Option<Arc<serde_json::Value>>,
    /// Why the run was cancelled, if it was, while it has not ended yet. A
    /// restart records a run still in flight with this set as
    /// [`CancelReason::cut_outcome`] says: `Cancelled` (with
    /// [`CancelReason::text`]), not retried, except for a shutdown's mark,
    /// which is `Interrupted` as without a mark.
    #[serde(default)]
    pub cancelled: Option<CancelReason>,
}

/// Why a run was cancelled through its token; kept with a run in flight
/// (one byte, where the text would take a string per run).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CancelReason {
    /// A `cancel` request.
    Request,
    /// A newer fire under `OverlapPolicy::Replace`.
    Replaced,
    /// The job was removed.
    Removed,
    /// The scheduler shut down.
    Shutdown,
}

impl CancelReason {
    /// The text of the run's `Outcome::Cancelled`.
    pub fn text(self) -> &'static str {
        match self {
            Self::Request => "cancelled by request",
            Self::Replaced => "replaced by a newer fire",
            Self::Removed => "job removed",
            Self::Shutdown => "scheduler shutdown",
        }
    }

    /// How a run cut short for this reason ends when its handler does not
    /// finish its work (it returns an error after the cancellation, or is
    /// dropped after the cancel grace, or the process ends first): a
    /// shutdown interrupts it, as the end of the process would, so that the
    /// next start runs its fire again under
    /// [`InterruptedPolicy::Retry`](crate::InterruptedPolicy::Retry); every
    /// other reason cancels it.
    ///
    /// ```
    /// use cronactor_actors::{CancelReason, Outcome};
    ///
    /// assert_eq!(CancelReason::Shutdown.cut_outcome(), Outcome::Interrupted);
    /// assert_eq!(
    ///     CancelReason::Request.cut_outcome(),
    ///     Outcome::Cancelled("cancelled by request".into())
    /// );
    /// ```
    pub fn cut_outcome(self) -> Outcome {
        match self {
            Self::Shutdown => Outcome::Interrupted,
            other => Outcome::Cancelled(other.text().into()),
        }
    }
}

/// A fire waiting in the overlap queue (`OverlapPolicy::Queue`) for the runs
/// in flight to end; persisted, so that a restart runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedFire {
    /// The schedule slot (or trigger time) it serves.
    #[serde(with = "crate::time_serde::instant")]
    pub scheduled: DateTime<Utc>,
    /// What started it.
    pub trigger: Trigger,
    /// The attempt it runs as, from 1.
    pub attempt: u32,
    /// The named event that started it, and the event's payload.
    #[serde(default, with = "event_serde")]
    pub event: Option<(String, Arc<serde_json::Value>)>,
}

impl QueuedFire {
    /// A first attempt, not started by an event.
    pub(crate) fn new(scheduled: DateTime<Utc>, trigger: Trigger) -> Self {
        Self {
            scheduled,
            trigger,
            attempt: 1,
            event: None,
        }
    }
}

/// A queued fire's event: the payload as it is in JSON, and as JSON text in
/// binary formats (postcard cannot decode a `serde_json::Value`, which needs
/// a self-describing format).
mod event_serde {
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::sync::Arc;

    type Event = Option<(String, Arc<serde_json::Value>)>;

    pub(super) fn serialize<S: Serializer>(event: &Event, s: S) -> Result<S::Ok, S::Error> {
        match event {
            Some((name, payload)) if !s.is_human_readable() => {
                let text = serde_json::to_string(&**payload).map_err(S::Error::custom)?;
                Some((name, text)).serialize(s)
            }
            event => event
                .as_ref()
                .map(|(name, payload)| (name, &**payload))
                .serialize(s),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        if d.is_human_readable() {
            let event = Option::<(String, serde_json::Value)>::deserialize(d)?;
            return Ok(event.map(|(name, payload)| (name, Arc::new(payload))));
        }
        Option::<(String, String)>::deserialize(d)?
            .map(|(name, text)| {
                let payload = serde_json::from_str(&text).map_err(D::Error::custom)?;
                Ok((name, Arc::new(payload)))
            })
            .transpose()
    }
}

/// A run's event payload: the JSON value as it is in JSON, and as JSON text
/// in binary formats (see `event_serde`).
mod payload_serde {
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::sync::Arc;

    type Payload = Option<Arc<serde_json::Value>>;

    pub(super) fn serialize<S: Serializer>(payload: &Payload, s: S) -> Result<S::Ok, S::Error> {
        match payload {
            Some(payload) if !s.is_human_readable() => {
                let text = serde_json::to_string(&**payload).map_err(S::Error::custom)?;
                Some(text).serialize(s)
            }
            payload => payload.as_deref().serialize(s),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        if d.is_human_readable() {
            return Ok(Option::<serde_json::Value>::deserialize(d)?.map(Arc::new));
        }
        Option::<String>::deserialize(d)?
            .map(|text| serde_json::from_str(&text).map(Arc::new))
            .transpose()
            .map_err(D::Error::custom)
    }
}

/// A boxed event, encoded as `event_serde` encodes an unboxed one.
mod boxed_event_serde {
    use serde::{Deserializer, Serializer};
    use std::sync::Arc;

    type Boxed = Option<Box<(String, Arc<serde_json::Value>)>>;

    pub(super) fn serialize<S: Serializer>(event: &Boxed, s: S) -> Result<S::Ok, S::Error> {
        super::event_serde::serialize(&event.as_deref().cloned(), s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Boxed, D::Error> {
        Ok(super::event_serde::deserialize(d)?.map(Box::new))
    }
}

/// One entry of a job's execution history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run.
    pub run_id: RunId,
    /// The slot it served.
    #[serde(with = "crate::time_serde::instant")]
    pub scheduled: DateTime<Utc>,
    /// When it started.
    #[serde(with = "crate::time_serde::instant")]
    pub started: DateTime<Utc>,
    /// When it ended.
    #[serde(with = "crate::time_serde::instant")]
    pub finished: DateTime<Utc>,
    /// The attempt number, from 1; 0 for an entry that records slots that
    /// did not run ([`Outcome::Skipped`], [`Outcome::Coalesced`]).
    pub attempt: u32,
    /// What started it.
    pub trigger: Trigger,
    /// How it ended.
    pub outcome: Outcome,
}

impl RunRecord {
    /// How long it ran.
    pub fn duration(&self) -> std::time::Duration {
        (self.finished - self.started).to_std().unwrap_or_default()
    }
}

/// A retry waiting for its backoff delay; persisted, so that a crash during
/// the wait resumes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryWait {
    /// The fire being retried.
    #[serde(with = "crate::time_serde::instant")]
    pub scheduled: DateTime<Utc>,
    /// The attempt that will run.
    pub attempt: u32,
    /// When it runs.
    #[serde(with = "crate::time_serde::instant")]
    pub due: DateTime<Utc>,
    /// What started the fire.
    pub trigger: Trigger,
    /// The named event that started the fire, and its payload: the retry is
    /// an attempt of the same fire (boxed: rare).
    #[serde(default, with = "boxed_event_serde")]
    pub event: Option<Box<(String, Arc<serde_json::Value>)>>,
}

/// Everything about a job that changes as it runs; persisted by the registry
/// so that a restarted process resumes the job where it was.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    /// Set while the job is paused (boxed, as the other rare fields: every
    /// live job holds its state twice, in its actor and in its outbox).
    pub paused: Option<Box<PauseInfo>>,
    /// The next planned fire (a schedule slot), if any.
    #[serde(with = "crate::time_serde::opt_instant")]
    pub next_fire: Option<DateTime<Utc>>,
    /// The newest schedule slot claimed: slots up to it are run or accounted.
    #[serde(with = "crate::time_serde::opt_instant")]
    pub last_slot: Option<DateTime<Utc>>,
    /// The newest fire's time (slot or manual trigger).
    #[serde(with = "crate::time_serde::opt_instant")]
    pub last_fire: Option<DateTime<Utc>>,
    /// The last run that ended.
    pub last_run: Option<RunRecord>,
    /// Lifetime counters.
    pub counters: Counters,
    /// Failed fires in a row since the last success: a fire counts once its
    /// retries are exhausted (a run that is retried does not count).
    pub consecutive_failures: u32,
    /// Runs started and not yet ended.
    pub in_flight: Vec<InFlightRun>,
    /// Fires waiting in the overlap queue, oldest first (see
    /// [`JobState::queued`]).
    #[serde(default)]
    pub queue: VecDeque<QueuedFire>,
    /// The schedule is exhausted: no fire will come.
    pub completed: bool,
    /// A retry waiting for its delay (boxed: rare).
    #[serde(default)]
    pub retry_wait: Option<Box<RetryWait>>,
    /// Set when the job's actor kept crashing and was given up on.
    #[serde(default)]
    pub failed: Option<String>,
    /// The last progress reported by a run in flight (boxed: rare).
    #[serde(default)]
    pub progress: Option<Box<(f32, String)>>,
    /// The result the newest successful run that set one left for the runs
    /// after it (`JobContext::set_result`). It is the last field: a state
    /// of record version 4, written before it existed, decodes as this
    /// layout without it (then `None`, its default).
    #[serde(default, with = "payload_serde")]
    pub last_result: Option<Arc<serde_json::Value>>,
}

// A live job holds its state twice (its actor's and its outbox's copy), so
// every byte here counts twice per job (issue #7's memory target).
const _: () = assert!(std::mem::size_of::<JobState>() <= 368);

impl JobState {
    /// The job has a new schedule (an upsert, or an upsert that revives a
    /// failed job): it is no longer completed, and the new schedule's slots
    /// count from `now` (see `Schedule::slots_counted_after`). Its times
    /// before were never the job's, so none is caught up (as Temporal
    /// discards a schedule's actions before its update).
    pub(crate) fn reschedule(&mut self, schedule: &crate::schedule::Schedule, now: DateTime<Utc>) {
        self.completed = false;
        let from = schedule.slots_counted_after(now);
        self.last_slot = Some(self.last_slot.map_or(from, |l| l.max(from)));
    }

    /// How many fires wait in the overlap queue.
    pub fn queued(&self) -> u32 {
        u32::try_from(self.queue.len()).unwrap_or(u32::MAX)
    }
}

impl Clone for JobState {
    fn clone(&self) -> Self {
        let mut state = Self::default();
        state.clone_from(self);
        state
    }

    /// Field by field, so that a job actor's copy of its state for the
    /// registry reuses the copy's allocations (the in-flight list, strings).
    fn clone_from(&mut self, source: &Self) {
        let Self {
            paused,
            next_fire,
            last_slot,
            last_fire,
            last_run,
            counters,
            consecutive_failures,
            in_flight,
            queue,
            completed,
            retry_wait,
            failed,
            progress,
            last_result,
        } = source;
        self.paused.clone_from(paused);
        self.next_fire = *next_fire;
        self.last_slot = *last_slot;
        self.last_fire = *last_fire;
        self.last_run.clone_from(last_run);
        self.counters.clone_from(counters);
        self.consecutive_failures = *consecutive_failures;
        // Exactly the room needed: `Vec::clone_from` grows a vector to at
        // least four entries, most of it never used (a job rarely has more
        // than one run in flight).
        self.in_flight.truncate(in_flight.len());
        if self.in_flight.capacity() < in_flight.len() {
            self.in_flight
                .reserve_exact(in_flight.len() - self.in_flight.len());
        }
        self.in_flight.clone_from(in_flight);
        // Empty for almost every job: no allocation then.
        self.queue.clone_from(queue);
        self.completed = *completed;
        self.retry_wait.clone_from(retry_wait);
        self.failed.clone_from(failed);
        self.progress.clone_from(progress);
        self.last_result.clone_from(last_result);
    }
}

/// The state a job is in, as shown by status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobPhase {
    /// Waiting for its next fire.
    Scheduled,
    /// At least one run in flight.
    Running,
    /// Paused: fires are counted as skipped.
    Paused,
    /// The schedule is exhausted, nothing is in flight, and no retry or
    /// queued fire is still to run (a one-shot whose run failed is
    /// `Scheduled` while its retry waits).
    Completed,
    /// Its handler is not registered in this process: kept, not run.
    Orphaned,
    /// Its actor kept crashing (restart budget exhausted): stopped.
    Failed,
}

impl JobPhase {
    /// Every phase, in declaration order.
    pub const ALL: [JobPhase; 6] = [
        JobPhase::Scheduled,
        JobPhase::Running,
        JobPhase::Paused,
        JobPhase::Completed,
        JobPhase::Orphaned,
        JobPhase::Failed,
    ];

    /// The phases in which the job can still start runs on its own.
    pub const ACTIVE_PHASES: [JobPhase; 2] = [JobPhase::Scheduled, JobPhase::Running];
}

/// A job as a status query shows it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{JobContext, JobPhase, JobSpec, ScheduleSpec, Scheduler};
/// use std::time::Duration;
///
/// let scheduler = Scheduler::builder()
///     .handler("noop", |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) })
///     .in_memory()
///     .start()
///     .await?;
/// let spec = JobSpec::builder("backup", ScheduleSpec::cron("0 30 2 * * *").in_tz("Europe/Berlin"), "noop")
///     .build()?;
/// scheduler.add(spec).await?;
/// scheduler.pause("backup", Some("disk replaced tonight")).await?;
///
/// let status = scheduler.status("backup").await?;
/// assert_eq!(status.phase, JobPhase::Paused);
/// assert_eq!(status.pause_note.as_deref(), Some("disk replaced tonight"));
/// assert_eq!(status.time_zone, "Europe/Berlin");
/// assert!(status.next_fire.is_some());
/// assert_eq!(status.counters.runs, 0);
/// scheduler.shutdown(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job.
    pub id: JobId,
    /// The schedule as written.
    pub schedule: String,
    /// The zone the schedule is evaluated in.
    pub time_zone: String,
    /// The handler's name.
    pub handler: String,
    /// The job's tags, as in its spec.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The job's phase.
    pub phase: JobPhase,
    /// The pause note, while paused.
    pub pause_note: Option<String>,
    /// The next planned fire.
    pub next_fire: Option<DateTime<Utc>>,
    /// The newest fire.
    pub last_fire: Option<DateTime<Utc>>,
    /// The last run that ended.
    pub last_run: Option<RunRecord>,
    /// Lifetime counters.
    pub counters: Counters,
    /// Failed fires in a row since the last success (a fire counts once its
    /// retries are exhausted), what `pause_after_failures` compares.
    pub consecutive_failures: u32,
    /// Runs in flight now.
    pub runs_in_flight: u32,
    /// The runs in flight now, oldest claim first (each one can be
    /// cancelled alone with `Scheduler::cancel_run`).
    #[serde(default)]
    pub in_flight: Vec<InFlightRun>,
    /// Fires waiting in the overlap queue.
    pub queued: u32,
    /// A retry waiting for its delay.
    pub retry_wait: Option<RetryWait>,
    /// Why the job failed, in phase `Failed`.
    pub failure: Option<String>,
    /// The last progress reported by a run in flight: fraction and message.
    pub progress: Option<(f32, String)>,
    /// The result the newest successful run that set one left for the runs
    /// after it (`JobContext::set_result`).
    #[serde(default, with = "payload_serde")]
    pub last_result: Option<Arc<serde_json::Value>>,
}

impl JobStatus {
    /// The error text of the last run, if it did not succeed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_run.as_ref().and_then(|r| r.outcome.error_text())
    }
}

/// The fire-ahead view of a job's runs in flight at `now`: schedule runs
/// claimed ahead of their slot that have not started (how many, and the
/// earliest slot), and the newest slot of a scheduled run that has.
///
/// A fire is prepared shortly before its slot, and its claimed run records
/// the slot as its start. Until then, status and metrics show that fire as
/// still to come: not counted in `fires` and `runs`, not in flight, and its
/// slot as the next fire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ahead {
    pub(crate) runs: u32,
    pub(crate) first: Option<DateTime<Utc>>,
    pub(crate) started_slot: Option<DateTime<Utc>>,
}

impl Ahead {
    /// Takes the fires and runs prepared ahead out of `counters`.
    pub(crate) fn uncount(&self, counters: &mut Counters) {
        let runs = u64::from(self.runs);
        counters.fires = counters.fires.saturating_sub(runs);
        counters.runs = counters.runs.saturating_sub(runs);
    }
}

/// Whether `run`, in flight in `state`, is a fire prepared ahead whose
/// slot has not come at `now` (see [`Ahead`]). A run handled at its slot,
/// or prepared and known to have started (see
/// `JobActorState::withdraw_prepared`), has its slot as the job's last
/// fire: a wall clock stepped back before its start does not make it a
/// fire still to come.
pub(crate) fn is_ahead(state: &JobState, run: &InFlightRun, now: DateTime<Utc>) -> bool {
    run.trigger == Trigger::Schedule && run.started > now && state.last_fire < Some(run.scheduled)
}

/// See [`Ahead`].
pub(crate) fn ahead_of(state: &JobState, now: DateTime<Utc>) -> Ahead {
    let mut ahead = Ahead::default();
    for run in state
        .in_flight
        .iter()
        .filter(|r| r.trigger == Trigger::Schedule)
    {
        if is_ahead(state, run, now) {
            ahead.runs += 1;
            ahead.first = Some(ahead.first.map_or(run.scheduled, |f| f.min(run.scheduled)));
        } else {
            ahead.started_slot = ahead.started_slot.max(Some(run.scheduled));
        }
    }
    ahead
}

/// Derives the phase shown by status, given the job's [`Ahead`] view.
pub(crate) fn phase_of(state: &JobState, orphaned: bool, ahead: &Ahead) -> JobPhase {
    if state.failed.is_some() {
        JobPhase::Failed
    } else if orphaned {
        JobPhase::Orphaned
    } else if state.paused.is_some() {
        JobPhase::Paused
    } else if state.in_flight.len() > ahead.runs as usize {
        JobPhase::Running
    } else if state.completed
        && ahead.runs == 0
        && state.retry_wait.is_none()
        && state.queue.is_empty()
    {
        // Exhausted, with no retry or queued fire still to run.
        JobPhase::Completed
    } else {
        // Nothing in flight, or only a prepared fire not started yet.
        JobPhase::Scheduled
    }
}

impl JobStatus {
    /// Shows runs claimed ahead of their slot as fires still to come, and a
    /// started scheduled run's slot as the last fire (see [`Ahead`]).
    pub(crate) fn show_ahead(&mut self, ahead: &Ahead, now: DateTime<Utc>) {
        self.last_fire = self.last_fire.max(ahead.started_slot);
        ahead.uncount(&mut self.counters);
        self.runs_in_flight = self.runs_in_flight.saturating_sub(ahead.runs);
        if ahead.runs > 0 {
            self.in_flight
                .retain(|r| r.trigger != Trigger::Schedule || r.started <= now);
        }
        self.next_fire = match (ahead.first, self.next_fire) {
            (Some(first), Some(next)) => Some(first.min(next)),
            (first, next) => first.or(next),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clone_from` into a state that already has a queue (longer, shorter
    /// or empty) gives exactly the source's queue, event payloads included.
    #[test]
    fn clone_from_copies_the_overlap_queue_whatever_the_target_held() {
        let t = |s: u32| DateTime::from_timestamp(1_767_571_200 + i64::from(s), 0).expect("time");
        let mut event = QueuedFire::new(t(2), Trigger::Event);
        event.event = Some(("deploy".into(), Arc::new(serde_json::json!({ "v": 7 }))));
        let mut retry = QueuedFire::new(t(1), Trigger::Recovery);
        retry.attempt = 3;
        let mut source = JobState::default();
        source
            .queue
            .extend([retry, event, QueuedFire::new(t(3), Trigger::Backfill)]);
        let mut longer = JobState::default();
        longer
            .queue
            .extend((0..5).map(|s| QueuedFire::new(t(10 + s), Trigger::Schedule)));
        let mut shorter = JobState::default();
        shorter
            .queue
            .push_back(QueuedFire::new(t(20), Trigger::Manual));
        for mut target in [longer, shorter, JobState::default()] {
            target.clone_from(&source);
            assert_eq!(target, source);
            assert_eq!(target.queued(), 3);
        }
        assert_eq!(source.clone(), source);
        // And back to an empty queue.
        let mut target = source.clone();
        target.clone_from(&JobState::default());
        assert!(target.queue.is_empty());
    }
}
