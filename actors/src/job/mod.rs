//! The job actor: one per job. It owns the job's spec, schedule and state,
//! keeps at most one pending timer of each kind (schedule, retry), decides
//! each fire by pause state, misfire and overlap policy, starts runs as
//! separate tasks and learns their outcome by message.

use crate::clock::deadline_for;
use crate::error::Error;
use crate::event::EventKind;
use crate::handler::{Handler, JobContext, RunLink};
use crate::id::RunId;
use crate::policy::{InterruptedPolicy, MisfireDecision, OverlapDecision, OverlapPolicy};
use crate::registry::{Ack, RegistryMsg};
use crate::runtime::Runtime;
use crate::schedule::{NextFire, PreviewFire, Schedule};
use crate::spec::JobSpec;
use crate::status::{
    CancelReason, InFlightRun, JobState, Outcome, PauseInfo, QueuedFire, RetryWait, RunRecord,
    SkipReason, Trigger,
};
use crate::supervisor::SupervisorMsg;
use crate::timer::{TimerKind, TimerTarget};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The most missed slots enumerated one by one when a job wakes up late; older
/// ones are counted as skipped without being listed.
const MAX_ENUMERATED_SLOTS: usize = 10_000;

/// The missed slots older than the enumerated ones (see
/// [`MAX_ENUMERATED_SLOTS`]): counted, with their range for the history
/// entry that accounts for them, but not listed.
#[derive(Clone, Copy, Debug, Default)]
struct Uncounted {
    slots: u64,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Uncounted {
    fn push(&mut self, slot: DateTime<Utc>) {
        self.slots += 1;
        self.range = Some((self.range.map_or(slot, |(first, _)| first), slot));
    }
}

/// Messages to a job actor. Control messages carry their reply port last.
#[derive(Debug)]
pub enum JobMsg {
    /// The timer of generation `generation` went off.
    Fired {
        /// The timer's generation; stale generations are ignored.
        generation: u64,
        /// Which of the job's timers.
        kind: TimerKind,
    },
    /// Pause the job, with an optional note.
    Pause {
        /// Shown in status.
        note: Option<String>,
        /// Answered once the pause is durable.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Resume the job; it re-arms from now, with no catch-up burst.
    Resume {
        /// Shown in the event.
        note: Option<String>,
        /// Answered once the resume is durable.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Fire now, through the overlap policy, leaving the schedule untouched.
    Trigger(RpcReplyPort<Result<TriggerOutcome, Error>>),
    /// Fire now through `overlap` instead of the job's overlap policy.
    TriggerWith {
        /// The overlap policy of this fire.
        overlap: OverlapPolicy,
        /// What the fire did.
        reply: RpcReplyPort<Result<TriggerOutcome, Error>>,
    },
    /// A named event this job listens to: run with its payload, through the
    /// overlap policy.
    Event {
        /// The event's name.
        name: String,
        /// The event's payload.
        payload: Arc<serde_json::Value>,
        /// What the job did.
        reply: RpcReplyPort<Result<TriggerOutcome, Error>>,
    },
    /// Cancel the runs in flight (and a waiting retry); answered with the
    /// runs cancelled (empty when nothing was running: a no-op).
    Cancel(RpcReplyPort<Result<Vec<RunId>, Error>>),
    /// Cancel one run in flight; `Error::UnknownRun` if the job has no such
    /// run in flight.
    CancelRun {
        /// The run.
        run_id: RunId,
        /// Answered once the cancel mark is durable.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Run a failed, timed-out or interrupted run again, with its original
    /// scheduled time.
    RetryRun {
        /// The run to retry.
        record: Box<RunRecord>,
        /// What the job did.
        reply: RpcReplyPort<Result<TriggerOutcome, Error>>,
    },
    /// A run in flight reported progress.
    Progress {
        /// The run.
        run_id: RunId,
        /// Done, from 0 to 1.
        fraction: f32,
        /// What it is doing.
        message: String,
    },
    /// Set (or clear, with `None`) the job's last result, as an operator
    /// rewinding a watermark does; answered once durable.
    SetLastResult {
        /// The new last result.
        value: Option<Arc<serde_json::Value>>,
        /// Answered once durable.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// A run in flight set its result (`JobContext::set_result`): it
    /// becomes the job's last result if the run succeeds.
    SetResult {
        /// The run.
        run_id: RunId,
        /// The result.
        value: Arc<serde_json::Value>,
    },
    /// Replace the spec, keeping state and counters (upsert).
    Update {
        /// The new spec.
        spec: Arc<JobSpec>,
        /// Its compiled schedule.
        schedule: Schedule,
        /// The new spec's handler (runs started from now on call it).
        handler: Option<Arc<dyn Handler>>,
        /// Answered once the new spec is durable.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Cancel the runs in flight, delete the job and stop.
    Remove(RpcReplyPort<Result<(), Error>>),
    /// Queue the schedule's slots in `(from, to]` (see `Scheduler::backfill`).
    Backfill {
        /// The range's start (excluded).
        from: DateTime<Utc>,
        /// The range's end (included).
        to: DateTime<Utc>,
        /// One after another, or all at once.
        overlap: crate::policy::BackfillOverlap,
        /// How many slots were queued or started, once durable.
        reply: RpcReplyPort<Result<usize, Error>>,
    },
    /// The next `n` fires (at most [`MAX_PREVIEW`]).
    Preview {
        /// How many.
        n: usize,
        /// The answer.
        reply: RpcReplyPort<Result<Vec<PreviewFire>, Error>>,
    },
    /// The wall clock stepped: re-plan the pending timer.
    Replan,
    /// Stop timers and fires, and let the runs in flight end by themselves
    /// (a shutdown's drain); a `Stop` follows.
    Drain {
        /// Answered once nothing is in flight.
        idle: RpcReplyPort<()>,
    },
    /// Stop timers and cancel runs.
    Stop {
        /// Answered at once with the runs cancelled.
        cancelled: RpcReplyPort<Vec<RunId>>,
        /// Answered once nothing is in flight.
        idle: RpcReplyPort<()>,
    },
    /// A run ended.
    RunFinished {
        /// The run.
        run_id: RunId,
        /// What the task saw.
        result: RunResult,
    },
    /// The store holds the records of the runs claimed so far: start them.
    Recorded,
    /// A run waiting for admission (a concurrency cap) may start.
    Admitted {
        /// The run.
        run_id: RunId,
        /// The tags its place was counted under (the job's tags when it
        /// asked; an update may have changed them since).
        tags: Arc<[String]>,
    },
    /// Fault injection for tests (feature `fault-injection`): make the actor
    /// fail, to exercise supervision. Without the feature it does nothing.
    #[doc(hidden)]
    Crash,
    /// From the supervisor, after the actor reported itself idle: stop for
    /// passivation if still idle and far from the next fire, else decline.
    #[doc(hidden)]
    Passivate,
    /// The runs of the failed actor this one replaced, parked after it
    /// started (see `OrphanTokens::await_parked`).
    #[doc(hidden)]
    Adopt(ParkedRuns),
}

/// The runs a failed job actor left for its successor (see `JobMsg::Adopt`).
#[doc(hidden)]
#[derive(Debug)]
pub struct ParkedRuns(pub(crate) Vec<crate::runtime::ParkedRun>);

/// The reason a job actor gives when it stops for passivation.
pub(crate) const PASSIVATED: &str = "passivated";

impl JobMsg {
    /// Whether the message could change what happens at a prepared fire's
    /// slot, so that the fire is withdrawn first (see `ahead`): every
    /// control message that fires, pauses, cancels, re-plans, changes the
    /// spec or stops. Exhaustive, so that a new message must be classified.
    fn withdraws_prepared(&self) -> bool {
        match self {
            JobMsg::Pause { .. }
            | JobMsg::Trigger(_)
            | JobMsg::TriggerWith { .. }
            | JobMsg::Backfill { .. }
            | JobMsg::Event { .. }
            | JobMsg::Cancel(_)
            | JobMsg::RetryRun { .. }
            | JobMsg::Update { .. }
            | JobMsg::Replan
            | JobMsg::Drain { .. }
            | JobMsg::Stop { .. } => true,
            // Resume, admission and retry timers cannot meet a prepared
            // fire (a prepared job is not paused, capped or retrying);
            // Remove cancels it with the job's other runs.
            JobMsg::Fired { .. }
            | JobMsg::CancelRun { .. }
            | JobMsg::Resume { .. }
            | JobMsg::Progress { .. }
            | JobMsg::SetResult { .. }
            | JobMsg::SetLastResult { .. }
            | JobMsg::Remove(_)
            | JobMsg::Preview { .. }
            | JobMsg::RunFinished { .. }
            | JobMsg::Recorded
            | JobMsg::Admitted { .. }
            | JobMsg::Crash
            | JobMsg::Passivate
            | JobMsg::Adopt(_) => false,
        }
    }
}

/// Fault injection for tests (feature `fault-injection`): a job whose failed
/// actor leaves runs, and how long its state then takes to drop (a thread
/// descheduled between ractor reporting the failure and dropping the
/// state), so that its successor starts before the runs are parked.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub static SLOW_PARK: std::sync::Mutex<Option<(String, Duration)>> = std::sync::Mutex::new(None);

#[cfg(feature = "fault-injection")]
fn slow_park(id: &str) {
    let slow = SLOW_PARK.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some((_, delay)) = slow.filter(|(slow, _)| slow == id) {
        std::thread::sleep(delay);
    }
}

/// The most fires a job lists in one preview (`Scheduler::preview`).
pub const MAX_PREVIEW: usize = 10_000;

/// The most fires a job's overlap queue holds after a backfill request
/// (`Scheduler::backfill`). The queue is stored with the job's state and
/// copied at each of its changes, so it is kept short: a larger backfill is
/// split into requests made as the queue drains.
pub const MAX_BACKFILL: usize = 1_000;

/// What `trigger` did.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{JobContext, JobSpec, OverlapPolicy, ScheduleSpec, Scheduler, SkipReason, TriggerOutcome};
/// use std::time::Duration;
///
/// let scheduler = Scheduler::builder()
///     .handler("slow", |_ctx: JobContext| async {
///         tokio::time::sleep(Duration::from_millis(200)).await;
///         Ok::<(), std::io::Error>(())
///     })
///     .in_memory()
///     .start()
///     .await?;
/// let spec = JobSpec::builder("sync", ScheduleSpec::cron("0 0 * * * *"), "slow")
///     .overlap(OverlapPolicy::Skip)
///     .build()?;
/// scheduler.add(spec).await?;
///
/// assert!(matches!(scheduler.trigger("sync").await?, TriggerOutcome::Started(_)));
/// // The first run is still going: `Skip` skips the second fire.
/// assert_eq!(
///     scheduler.trigger("sync").await?,
///     TriggerOutcome::Skipped(SkipReason::Overlap)
/// );
/// scheduler.shutdown(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerOutcome {
    /// A run started.
    Started(RunId),
    /// The fire was queued behind a run in flight.
    Queued,
    /// The fire was skipped, for this reason.
    Skipped(SkipReason),
}

/// How a run task ended, as seen from the task.
#[derive(Debug, Clone)]
pub enum RunResult {
    /// The handler returned Ok.
    Ok,
    /// The handler returned an error.
    Err(String),
    /// The handler panicked.
    Panicked(String),
    /// The run was cancelled before its handler started (waiting for its
    /// slot, its record or its jitter): the handler never ran.
    Dropped,
    /// The run was cancelled and its handler did not stop within the
    /// cancel grace: its future was dropped.
    Abandoned,
    /// The run exceeded its timeout.
    TimedOut,
}

/// How a cancelled run whose handler did not stop within the cancel grace
/// ends its outcome's reason.
const ABANDONED: &str = "dropped: the handler did not stop within the cancel grace";

/// A fire waiting to run: in the overlap queue (`JobState::queue`, stored
/// with the state), or planned.
type Pending = QueuedFire;

/// The cancellation tokens of a job's runs in flight, with why each was
/// cancelled, and the tasks of those started. A job rarely has more than one
/// run in flight: a vector searched in order costs less than hashing the run
/// id at the claim, the start and the end of every run.
#[derive(Default)]
struct RunTokens(Vec<(RunId, RunToken, Option<RunTask>)>);

/// A run's cancellation token, with why it was cancelled.
type RunToken = (CancellationToken, Option<CancelReason>);

/// A run's task; its output is the run's result, which its successor takes
/// if the job actor fails before reading the task's `RunFinished` (see
/// `OrphanTokens`). `None`: the task ended without a result to report.
pub(crate) type RunTask = tokio::task::JoinHandle<Option<RunResult>>;

impl RunTokens {
    fn get(&self, run_id: &RunId) -> Option<&RunToken> {
        self.0
            .iter()
            .find(|(id, ..)| id == run_id)
            .map(|(_, v, _)| v)
    }

    /// Adds a new run's token (run ids are fresh).
    fn push(&mut self, run_id: RunId, entry: RunToken) {
        self.0.push((run_id, entry, None));
    }

    /// Keeps the task of a run started.
    fn set_task(&mut self, run_id: &RunId, task: RunTask) {
        if let Some((.., slot)) = self.0.iter_mut().find(|(id, ..)| id == run_id) {
            *slot = Some(task);
        }
    }

    fn remove(&mut self, run_id: &RunId) -> Option<RunToken> {
        let pos = self.0.iter().position(|(id, ..)| id == run_id)?;
        Some(self.0.remove(pos).1)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&RunId, &mut RunToken)> {
        self.0.iter_mut().map(|(id, v, _)| (&*id, v))
    }
}

/// Arguments of a job actor: the last snapshot of the job.
pub struct JobArgs {
    pub(crate) spec: Arc<JobSpec>,
    pub(crate) schedule: Schedule,
    pub(crate) state: JobState,
    pub(crate) handler: Option<Arc<dyn Handler>>,
    pub(crate) runtime: Arc<Runtime>,
    /// Restored from the store (or restarted): runs in flight were interrupted.
    pub(crate) restored: bool,
    /// Respawned after passivation: nothing was interrupted, and nothing is
    /// announced again (the orphaned event).
    pub(crate) reactivated: bool,
    /// Where this incarnation's timers go.
    pub(crate) target: Arc<TimerTarget>,
}

/// The job actor (stateless: the state is [`JobActorState`]).
#[derive(Debug, Default)]
pub struct JobActor;

/// A job actor's state.
pub struct JobActorState {
    spec: Arc<JobSpec>,
    schedule: Schedule,
    state: JobState,
    payload: Arc<serde_json::Value>,
    /// The generation of the one pending schedule timer.
    generation: u64,
    /// The generation of the one pending retry timer.
    retry_generation: u64,
    /// Cancellation tokens of the runs in flight, and why each was cancelled.
    tokens: RunTokens,
    /// Results set by runs in flight (`JobContext::set_result`), taken at
    /// their end: the job's last result if the run succeeded.
    results: Vec<(RunId, Arc<serde_json::Value>)>,
    /// Where the runs this actor adopted from a failed predecessor read the
    /// job's last result (their link's, not this actor's): written with
    /// this actor's own, and let go once no run reads them.
    adopted_cells: Vec<crate::handler::ResultCell>,
    /// Waiting for the runs of the failed actor this one replaced (see
    /// `OrphanTokens::await_parked`), and the messages about those runs
    /// read meanwhile, in their order: the ends of runs that ended, and
    /// `cancel_run`s (answered once the run is adopted, rather than
    /// `UnknownRun` for a run that status lists). They are taken once the
    /// runs (their tokens, why each was cancelled, their results) are
    /// adopted.
    awaiting_park: bool,
    early: Vec<JobMsg>,
    /// Claimed runs waiting for their record to be durable.
    unrecorded: Vec<RunId>,
    /// History entries not yet sent to the registry.
    history: Vec<RunRecord>,
    /// Where the state goes to the registry.
    outbox: Arc<crate::registry::Outbox>,
    /// Claimed runs waiting for admission (a concurrency cap), with the
    /// tags they asked with; a run stays here until its `Admitted` comes,
    /// even once cancelled, so that a job that stops first can give back
    /// the place taken for it.
    waiting_admission: HashMap<RunId, Arc<[String]>, foldhash::fast::RandomState>,
    /// The job's tags, shared with its admission entries.
    tags: Arc<[String]>,
    /// Set by `Stop`: answered once nothing is in flight (boxed: rare, and
    /// kept in every live job's state).
    stopping: Option<Box<RpcReplyPort<()>>>,
    /// Where this incarnation's timers go.
    target: Arc<TimerTarget>,
    /// The supervisor was told the job is idle; its `Passivate` is coming.
    idle_reported: bool,
    /// A fire-ahead timer came too late to prepare its fire: the runtime
    /// is behind, and this job's timers go off at the fire itself until a
    /// fire is handled on time (see `ahead::came_late`).
    behind: bool,
    /// What this actor's run tasks hold (see [`RunLink`]): the actor reads
    /// its runtime and its handler there too (no second copy per job).
    link: Arc<RunLink>,
    /// The wall clock read once per turn (see [`JobActorState::now`]).
    turn_now: std::cell::Cell<Option<DateTime<Utc>>>,
    /// The schedule fire prepared ahead of its instant, until its run ends
    /// or it is withdrawn (see `ahead`).
    prepared: Option<Box<Prepared>>,
}

/// A schedule fire prepared ahead of its instant: its run, and what the
/// job's state was before, to withdraw it as if it had never been prepared.
#[derive(Debug)]
struct Prepared {
    slot: Arc<crate::ahead::Slot>,
    run_id: RunId,
    last_slot: Option<DateTime<Utc>>,
    /// With a durable store, the take of the update queue whose flush the
    /// run waits for after its slot (see `watermark`); 0: none.
    durable_at: u64,
}

impl Drop for JobActorState {
    fn drop(&mut self) {
        // Timers still pending must not keep the stopped actor allocated.
        self.target.release();
        // A failed actor's runs go on: the actor restarted in its place
        // takes their tokens, with why each was cancelled, the results they
        // set (their end applies them) and where they read the job's last
        // result (none to gather for an idle actor, as a passivated one),
        // and asks again for the records of those not yet durable. (A
        // removed job leaves none: see `JobMsg::Remove`.)
        let mut cells = Vec::new();
        if !self.tokens.0.is_empty() {
            cells.push(self.link.last_result.clone());
            cells.extend(self.adopted_cells.iter().cloned());
        }
        let runs: Vec<crate::runtime::ParkedRun> = std::mem::take(&mut self.tokens.0)
            .into_iter()
            .map(
                |(run_id, (token, cancelled), task)| crate::runtime::ParkedRun {
                    unrecorded: self.unrecorded.contains(&run_id),
                    admission: self.waiting_admission.get(&run_id).cloned(),
                    result: self
                        .results
                        .iter()
                        .find(|(id, _)| *id == run_id)
                        .map(|(_, value)| value.clone()),
                    cells: cells.clone(),
                    run_id,
                    token,
                    cancelled,
                    task,
                },
            )
            .collect();
        if !runs.is_empty() {
            #[cfg(feature = "fault-injection")]
            slow_park(self.spec.id.as_str());
            self.link.rt.orphan_tokens.park(&self.spec.id, runs);
        }
    }
}

impl Actor for JobActor {
    type Msg = JobMsg;
    type State = JobActorState;
    type Arguments = JobArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<JobMsg>,
        args: JobArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let outbox = crate::registry::Outbox::new(args.spec.id.clone(), JobState::default());
        args.target.set_live(myself.clone());
        let link = Arc::new(RunLink {
            rt: args.runtime,
            job: myself.clone(),
            id: args.spec.id.clone(),
            handler: args.handler,
            last_result: crate::handler::result_cell(args.state.last_result.clone()),
        });
        let mut s = JobActorState {
            link,
            tags: Arc::from(args.spec.tags.as_slice()),
            payload: Arc::new(args.spec.payload.clone()),
            spec: args.spec,
            schedule: args.schedule,
            state: args.state,
            generation: 0,
            retry_generation: 0,
            // Room for one run and one history entry: a job rarely has more
            // at a time, and a first push would otherwise allocate room for
            // four (a few hundred bytes per live job, kept for its life).
            tokens: RunTokens(Vec::with_capacity(1)),
            results: Vec::new(),
            adopted_cells: Vec::new(),
            awaiting_park: false,
            early: Vec::new(),
            unrecorded: Vec::new(),
            history: Vec::with_capacity(1),
            outbox,
            waiting_admission: HashMap::default(),
            stopping: None,
            target: args.target,
            idle_reported: false,
            behind: false,
            turn_now: std::cell::Cell::new(None),
            prepared: None,
        };
        // Runs of a failed predecessor still going: their tokens come back,
        // and the runs it claimed whose record it did not see durable wait
        // for this actor's `Recorded` (see `save_claims` below).
        let parked = s.link.rt.orphan_tokens.take(&s.spec.id);
        s.adopt(&myself, parked);
        if s.state.in_flight.capacity() == 0 {
            s.state.in_flight.reserve_exact(1); // as `tokens` above
        }
        if args.restored {
            s.recover_interrupted(&myself);
        } else if !s.state.queue.is_empty() {
            // Restarted after a failure of its actor (or revived): the
            // stored queue goes on behind the runs still in flight.
            s.start_queued(&myself);
        }
        if s.state
            .in_flight
            .iter()
            .any(|r| s.tokens.get(&r.run_id).is_none())
        {
            // The predecessor's runs are not parked yet.
            let parked = s.link.rt.orphan_tokens.await_parked(&s.spec.id, &myself);
            s.awaiting_park = parked.is_empty();
            s.adopt(&myself, parked);
        }
        if s.link.handler.is_none() && !args.reactivated {
            s.publish(EventKind::Orphaned {
                handler: s.spec.handler.clone(),
            });
        }
        let before = s.fingerprint();
        s.wake(&myself);
        s.arm_retry(&myself);
        // A respawned passive job woken before its fire changed nothing: the
        // registry's copy of its state stays as it is (no store write).
        if !args.reactivated || s.fingerprint() != before || !s.unrecorded.is_empty() {
            s.save_claims(&myself);
        } else {
            tracing::debug!(job_id = %s.spec.id, next_fire = ?s.state.next_fire, "job woken");
        }
        s.consider_passivation(&myself);
        Ok(s)
    }

    async fn handle(
        &self,
        myself: ActorRef<JobMsg>,
        msg: JobMsg,
        s: &mut JobActorState,
    ) -> Result<(), ActorProcessingErr> {
        // A new turn reads the wall clock afresh.
        s.turn_now.set(None);
        if msg.withdraws_prepared() && s.withdraw_prepared(&myself) {
            // The slot is given back: what the message does next (or a
            // shutdown) must find it so in the store.
            s.save(Ack::None);
        }
        match msg {
            JobMsg::Fired { generation, kind } => {
                let current = match kind {
                    TimerKind::Schedule => s.generation,
                    TimerKind::Retry => s.retry_generation,
                };
                // A stale generation is a cancelled timer.
                if generation == current && s.stopping.is_none() {
                    let before = s.fingerprint();
                    match kind {
                        TimerKind::Schedule => s.wake(&myself),
                        TimerKind::Retry => s.retry_due(&myself),
                    }
                    // A timer armed early for a far fire (see `passive`)
                    // that only re-armed changed nothing to save.
                    if kind == TimerKind::Retry
                        || s.fingerprint() != before
                        || !s.unrecorded.is_empty()
                    {
                        s.save_claims(&myself);
                    }
                }
            }
            JobMsg::Event {
                name,
                payload,
                reply,
            } => {
                let outcome = s.fire_now(&myself, Trigger::Event, Some((name, payload)), None);
                if outcome.is_ok() {
                    s.save_claims(&myself);
                }
                s.answer_when_durable(reply, outcome);
            }
            JobMsg::Cancel(reply) => {
                // A prepared run was withdrawn above: it is not cancelled,
                // it runs at its instant as if it had not been prepared.
                let mut cancelled = s.cancel_all(&myself, CancelReason::Request);
                let dropped = s.state.retry_wait.take();
                let dropped_retry = dropped.is_some();
                if let Some(wait) = dropped {
                    s.retry_dropped(&wait, CancelReason::Request.text());
                    // The waiting retry's timer becomes stale, and fires
                    // queued behind it go on, as behind a cancelled run.
                    s.retry_generation += 1;
                    s.start_queued(&myself);
                }
                cancelled.sort();
                if (dropped_retry || !cancelled.is_empty()) && s.link.rt.durable {
                    // A crash must not bring the retry back, nor retry the
                    // runs cancelled (their cancel marks are in the state).
                    s.answer_when_durable(reply, Ok(cancelled));
                } else {
                    // Nothing cancelled, or a store that is not durable:
                    // nothing to wait for.
                    s.save(Ack::None);
                    let _ = reply.send(Ok(cancelled));
                }
            }
            JobMsg::CancelRun { run_id, reply } => {
                match s.tokens.get(&run_id).map(|(_, why)| why.is_some()) {
                    None if s.awaiting_park
                        && s.state.in_flight.iter().any(|r| r.run_id == run_id) =>
                    {
                        // A run of the failed predecessor not adopted yet:
                        // its token comes with it.
                        s.early.push(JobMsg::CancelRun { run_id, reply });
                    }
                    None => {
                        let _ = reply.send(Err(Error::UnknownRun(run_id)));
                    }
                    Some(cancelled_already) => {
                        if !cancelled_already {
                            s.cancel_runs(&myself, CancelReason::Request, Some(run_id));
                        }
                        tracing::debug!(
                            job_id = %s.spec.id,
                            run_id = %run_id,
                            cancelled_already,
                            "run cancelled by request"
                        );
                        if s.link.rt.durable {
                            // A crash must not retry it: its cancel mark is
                            // in the state. A run cancelled already (a
                            // `Replace`, a `cancel`) may have its mark still
                            // on its way to the store: the answer waits for
                            // it too.
                            s.answer_when_durable(reply, Ok(()));
                        } else {
                            if !cancelled_already {
                                s.save(Ack::None);
                            }
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
            }
            JobMsg::RetryRun { record, reply } => {
                let refused = s.link.handler.is_none()
                    || s.state.failed.is_some()
                    || s.state.paused.is_some();
                let outcome = if refused {
                    Err(s.invalid_state("retry a run"))
                } else {
                    let mut fire = Pending::new(record.scheduled, Trigger::ManualRetry);
                    fire.attempt = record.attempt + 1;
                    s.publish(EventKind::Fired {
                        scheduled: record.scheduled,
                        trigger: Trigger::ManualRetry,
                    });
                    Ok(s.overlap_fire(&myself, fire))
                };
                if outcome.is_ok() {
                    s.save_claims(&myself);
                }
                s.answer_when_durable(reply, outcome);
            }
            JobMsg::Progress {
                run_id,
                fraction,
                message,
            } => {
                if s.state.in_flight.iter().any(|r| r.run_id == run_id) {
                    s.state.progress = Some((fraction, message));
                    s.save(Ack::None);
                }
            }
            JobMsg::SetResult { run_id, value } => {
                let in_flight = &s.state.in_flight;
                s.results
                    .retain(|(id, _)| in_flight.iter().any(|r| r.run_id == *id));
                if in_flight.iter().any(|r| r.run_id == run_id) {
                    match s.results.iter_mut().find(|(id, _)| *id == run_id) {
                        Some(slot) => slot.1 = value,
                        None => s.results.push((run_id, value)),
                    }
                }
            }
            JobMsg::SetLastResult { value, reply } => {
                s.set_last_result(value);
                s.save(Ack::Reply(reply));
            }
            JobMsg::Pause { note, reply } => {
                if s.state.paused.is_some() {
                    let refusal = s.invalid_state("pause");
                    s.refuse_when_durable(reply, refusal);
                } else {
                    s.state.paused = Some(PauseInfo {
                        note: note.clone(),
                        since: s.now(),
                    });
                    s.publish(EventKind::Paused { note });
                    s.save(Ack::Reply(reply));
                }
            }
            JobMsg::Resume { note, reply } => {
                if s.state.paused.is_none() {
                    let refusal = s.invalid_state("resume");
                    s.refuse_when_durable(reply, refusal);
                } else {
                    s.state.paused = None;
                    // Resume re-arms from now: slots that passed while paused
                    // were counted as skipped by their timers already.
                    let now = s.now();
                    s.state.last_slot = Some(s.state.last_slot.map_or(now, |l| l.max(now)));
                    s.publish(EventKind::Resumed { note });
                    s.arm(&myself);
                    s.save(Ack::Reply(reply));
                }
            }
            JobMsg::Backfill {
                from,
                to,
                overlap,
                reply,
            } => {
                let outcome = s.backfill(&myself, from, to, overlap);
                if outcome.is_ok() {
                    s.save_claims(&myself);
                }
                s.answer_when_durable(reply, outcome);
            }
            JobMsg::Trigger(reply) => s.trigger(&myself, None, reply),
            JobMsg::TriggerWith { overlap, reply } => s.trigger(&myself, Some(overlap), reply),
            JobMsg::Update {
                spec,
                schedule,
                handler,
                reply,
            } => {
                let rearm = spec.schedule != s.spec.schedule;
                if spec.handler != s.spec.handler {
                    // Runs in flight keep the link they were started with,
                    // and read the job's last result where the new one's
                    // runs do.
                    s.link = Arc::new(RunLink {
                        rt: s.link.rt.clone(),
                        job: myself.clone(),
                        id: s.spec.id.clone(),
                        handler,
                        last_result: s.link.last_result.clone(),
                    });
                }
                s.payload = Arc::new(spec.payload.clone());
                s.tags = Arc::from(spec.tags.as_slice());
                s.spec = spec;
                s.schedule = schedule;
                if rearm {
                    s.state.completed = false;
                    // The new schedule's slots count from now (see
                    // `Schedule::slots_counted_after`): its times
                    // before the update were never the job's, so none is
                    // caught up (as Temporal discards a schedule's actions
                    // before its update).
                    let from = s.schedule.slots_counted_after(s.now());
                    s.state.last_slot = Some(s.state.last_slot.map_or(from, |l| l.max(from)));
                    s.arm(&myself);
                }
                s.publish(EventKind::Updated);
                let spec = Some((s.spec.clone(), s.link.handler.is_none()));
                s.outbox.post(
                    &s.link.rt.updates,
                    &s.state,
                    &mut s.history,
                    Ack::Reply(reply),
                    spec,
                );
            }
            JobMsg::Remove(reply) => {
                s.generation += 1;
                s.retry_generation += 1;
                // The actor stops before its runs end: the runs announced
                // as started are announced as cancelled now.
                let announced = s.announced_runs();
                s.cancel_all(&myself, CancelReason::Removed);
                for run_id in announced {
                    s.publish(EventKind::Cancelled {
                        run_id,
                        reason: "job removed".into(),
                    });
                }
                // Runs admitted whose `Admitted` is still on its way: the
                // actor stops before it comes, so their places go back now.
                for (run_id, tags) in s.waiting_admission.drain() {
                    if s.link.rt.admission.take_admitted(run_id) {
                        s.link.rt.admission.release(&tags);
                    }
                }
                s.publish(EventKind::Removed);
                // The runs are cancelled and the job is gone: nothing
                // parks their tokens for a successor.
                s.tokens.0.clear();
                s.link.rt.updates.push(RegistryMsg::Remove {
                    id: s.spec.id.clone(),
                    ack: Ack::Reply(reply),
                });
                myself.stop(Some("removed".into()));
            }
            JobMsg::Preview { n, reply } => {
                // A prepared fire that has not started is still to come.
                let not_started = |p: &&Prepared| {
                    let run = s.state.in_flight.iter().find(|r| r.run_id == p.run_id);
                    run.is_some_and(|r| r.started > s.now())
                };
                let (last_slot, fired) = match s.prepared.as_deref().filter(not_started) {
                    Some(p) => (p.last_slot, s.state.counters.fires.saturating_sub(1)),
                    None => (s.state.last_slot, s.state.counters.fires),
                };
                let after = s.now().max(last_slot.unwrap_or_default());
                // Capped: the job computes it on its own actor, and an
                // endless schedule asked for `usize::MAX` fires would keep
                // it busy until the process runs out of memory.
                let fires = s
                    .schedule
                    .preview_remaining(after, fired, n.min(MAX_PREVIEW));
                let _ = reply.send(Ok(fires));
            }
            JobMsg::Replan => {
                if s.stopping.is_none() {
                    s.arm(&myself);
                    // A waiting retry's timer too: its due time is a wall
                    // instant, which a forward step may have passed.
                    s.arm_retry(&myself);
                    s.publish(EventKind::Replanned {
                        next_fire: s.state.next_fire,
                    });
                    s.save(Ack::None);
                }
            }
            JobMsg::Drain { idle } => {
                // As `Stop` without the cancel: no timer, queued fire or
                // retry starts a run any more (their state is kept for the
                // next start), and the runs in flight go on.
                s.generation += 1;
                s.retry_generation += 1;
                if s.state.in_flight.is_empty() {
                    let _ = idle.send(());
                } else {
                    s.stopping = Some(Box::new(idle));
                }
            }
            JobMsg::Stop { cancelled, idle } => {
                // A prepared run was withdrawn above: it is not a run cut
                // short by the shutdown, and its slot is left to the next
                // start's misfire policy, as any slot after the shutdown.
                s.generation += 1;
                s.retry_generation += 1;
                // The queue stays in the state: the next start runs it.
                let _ = cancelled.send(s.cancel_all(&myself, CancelReason::Shutdown));
                if s.state.in_flight.is_empty() {
                    let _ = idle.send(());
                } else {
                    s.stopping = Some(Box::new(idle));
                }
            }
            JobMsg::RunFinished { run_id, result } => {
                if s.awaiting_park
                    && s.tokens.get(&run_id).is_none()
                    && s.state.in_flight.iter().any(|r| r.run_id == run_id)
                {
                    // A run of the failed predecessor that ended before it
                    // was parked: its end waits for its token and result.
                    tracing::debug!(job_id = %s.spec.id, run_id = %run_id, "run ended before it was adopted");
                    s.early.push(JobMsg::RunFinished { run_id, result });
                } else {
                    s.finish_run(&myself, run_id, result);
                    s.start_queued(&myself);
                    s.prepare_at_run_end(&myself);
                    s.save_claims(&myself);
                    if s.state.in_flight.is_empty() {
                        if let Some(idle) = s.stopping.take() {
                            let _ = idle.send(());
                        }
                    }
                }
            }
            JobMsg::Recorded => {
                for run_id in std::mem::take(&mut s.unrecorded) {
                    s.start_run(&myself, run_id);
                }
            }
            JobMsg::Admitted { run_id, tags } => {
                // A restarted actor that took the run's place over (see
                // `take_over_admission`) ignores its message coming after.
                if s.link.rt.admission.take_admitted(run_id) {
                    s.admitted(&myself, run_id, tags);
                }
            }
            JobMsg::Adopt(ParkedRuns(runs)) => {
                s.adopt(&myself, runs);
                s.awaiting_park = false;
                s.save_claims(&myself);
                // In the order they came.
                for msg in std::mem::take(&mut s.early) {
                    let _ = myself.cast(msg);
                }
            }
            JobMsg::Crash => {
                #[cfg(any(test, feature = "fault-injection"))]
                return Err(format!("injected fault in job {}", s.spec.id).into());
            }
            JobMsg::Passivate => {
                s.idle_reported = false;
                if s.passivable() && s.link.rt.supervisor.get().is_some() {
                    // Its state is posted already; the registry only trims
                    // what it keeps for the job.
                    s.target.set_passive(s.generation);
                    s.link
                        .rt
                        .updates
                        .push(RegistryMsg::Passivated(s.spec.id.clone()));
                    tracing::debug!(
                        job_id = %s.spec.id,
                        next_fire = ?s.state.next_fire,
                        "job passivated"
                    );
                    myself.stop(Some(PASSIVATED.into()));
                    return Ok(());
                }
                if let Some(supervisor) = s.link.rt.supervisor.get() {
                    let _ = supervisor.cast(SupervisorMsg::StayLive {
                        id: s.spec.id.clone(),
                        actor: myself.get_id(),
                    });
                }
            }
        }
        s.consider_passivation(&myself);
        Ok(())
    }
}

impl JobActorState {
    /// The wall clock, read at most once per turn: a turn does not wait, so
    /// its decisions (slots due, the run's start, the next timer, passivation)
    /// share one instant, and the fire path reads the clock once instead of
    /// five times.
    fn now(&self) -> DateTime<Utc> {
        if let Some(now) = self.turn_now.get() {
            return now;
        }
        let now = self.link.rt.clock.now();
        self.turn_now.set(Some(now));
        now
    }

    /// What tells whether a wake-up changed the job's state.
    fn fingerprint(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>, bool, usize) {
        (
            self.state.last_slot,
            self.state.next_fire,
            self.state.completed,
            self.history.len(),
        )
    }

    /// What the job has going on, for the passivation decision.
    fn activity(&self) -> crate::passive::Activity {
        crate::passive::Activity {
            in_flight: self.state.in_flight.len() + self.tokens.len(),
            queued: self.state.queue.len(),
            unrecorded: self.unrecorded.len(),
            waiting_admission: self.waiting_admission.len(),
            retry_waiting: self.state.retry_wait.is_some(),
            stopping: self.stopping.is_some(),
            unposted: !self.history.is_empty(),
        }
    }

    /// Whether the job may give up its actor now (see `passive`).
    fn passivable(&self) -> bool {
        crate::passive::should_passivate(
            self.link.rt.config.passivate_after,
            &self.activity(),
            self.state.next_fire,
            || self.now(),
        )
    }

    /// At the end of a turn: an idle job far from its next fire tells the
    /// supervisor, which stops routing to it and asks it to passivate.
    fn consider_passivation(&mut self, myself: &ActorRef<JobMsg>) {
        if self.idle_reported || !self.passivable() {
            return;
        }
        if let Some(supervisor) = self.link.rt.supervisor.get() {
            let msg = SupervisorMsg::Idle {
                id: self.spec.id.clone(),
                actor: myself.get_id(),
                next_fire: self.state.next_fire,
            };
            self.idle_reported = supervisor.cast(msg).is_ok();
        }
    }

    fn publish(&self, kind: EventKind) {
        // Without a subscriber, skip reading the clock.
        if self.link.rt.events.has_subscribers() {
            self.link.rt.events.publish(&self.spec.id, self.now(), kind);
        }
    }

    fn invalid_state(&self, action: &'static str) -> Error {
        let ahead = crate::status::ahead_of(&self.state, self.now());
        let phase = crate::status::phase_of(&self.state, self.link.handler.is_none(), &ahead);
        Error::InvalidState {
            id: self.spec.id.clone(),
            action,
            state: format!("{phase:?}").to_lowercase(),
        }
    }

    /// Answers a trigger, an event, a manual retry or a cancel once the
    /// state it changed is durable, as `add` and `pause` are answered: the
    /// instant after the answer a crash must not undo it (a run answered as
    /// started would vanish without a trace, a dropped retry would come
    /// back). An error, or any answer with a store that is not durable, goes
    /// at once. A failed write makes the answer that error.
    fn answer_when_durable<T: Send + 'static>(
        &mut self,
        reply: RpcReplyPort<Result<T, Error>>,
        answer: Result<T, Error>,
    ) {
        if answer.is_err() || !self.link.rt.durable {
            let _ = reply.send(answer);
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        // After the post that carries the change (claims included): it is
        // in the same flush or an earlier one.
        self.save(Ack::Reply(tx.into()));
        tokio::spawn(async move {
            let answer = match rx.await {
                Ok(Ok(())) => answer,
                Ok(Err(e)) => Err(e),
                Err(_) => Err(Error::ShutDown),
            };
            let _ = reply.send(answer);
        });
    }

    /// Refuses a pause or resume because the job is in that state already,
    /// once that state is durable. The pause found may not be yet: an
    /// auto-pause is group-committed, and another caller's pause may still
    /// wait for its flush. A bulk call reports such a job as already paused
    /// (resumed), and a crash right after its answer must not undo that. An
    /// answer with a store that is not durable goes at once; a failed write
    /// makes the answer that error.
    fn refuse_when_durable(&mut self, reply: RpcReplyPort<Result<(), Error>>, refusal: Error) {
        if !self.link.rt.durable {
            let _ = reply.send(Err(refusal));
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.save(Ack::Reply(tx.into()));
        tokio::spawn(async move {
            let answer = match rx.await {
                Ok(Ok(())) => refusal,
                Ok(Err(e)) => e,
                Err(_) => Error::ShutDown,
            };
            let _ = reply.send(Err(answer));
        });
    }

    /// Sends the state, and the history entries written since the last
    /// save, to the registry. Returns the take of the update queue that
    /// carries them (see `watermark`).
    fn save(&mut self, ack: Ack) -> u64 {
        self.outbox.post(
            &self.link.rt.updates,
            &self.state,
            &mut self.history,
            ack,
            None,
        )
    }

    /// Sends the state to the registry with what starts the claimed runs
    /// once their record is durable. A prepared run's task is spawned now:
    /// after its slot it waits for the durable watermark to pass the take
    /// that carries this post (see `watermark`), without a message to the
    /// job. Other claimed runs start at `Recorded`.
    fn save_claims(&mut self, myself: &ActorRef<JobMsg>) {
        if self.unrecorded.is_empty() {
            self.save(Ack::None);
            return;
        }
        let prepared = self
            .prepared
            .as_ref()
            .map(|p| p.run_id)
            .filter(|id| self.unrecorded.contains(id));
        let ack = if self.unrecorded.len() > usize::from(prepared.is_some()) {
            // Other claimed runs: started by `Recorded`.
            Ack::Job(myself.clone())
        } else {
            // Nobody to tell, but flushed at once as a claim must be.
            Ack::Urgent
        };
        let carrier = self.save(ack);
        if let (Some(run_id), Some(p)) = (prepared, self.prepared.as_deref_mut()) {
            p.durable_at = carrier;
            self.unrecorded.retain(|r| *r != run_id);
            self.start_run(myself, run_id);
        }
    }

    /// Arms the schedule timer for the first slot after the last one
    /// claimed (or after now, for a job that never fired).
    fn arm(&mut self, myself: &ActorRef<JobMsg>) {
        self.generation += 1;
        let now = self.now();
        let after = self.state.last_slot.unwrap_or(now);
        match self.schedule.next_fire(after, self.state.counters.fires) {
            NextFire::At(t) => self.arm_at(myself, t),
            NextFire::Exhausted => self.complete(),
        }
    }

    fn arm_at(&mut self, _myself: &ActorRef<JobMsg>, at: DateTime<Utc>) {
        self.state.next_fire = Some(at);
        // A far fire's timer goes off a little before it, so that the job
        // can passivate meanwhile and be woken by it (see `passive`).
        let now = self.now();
        let mut go_off = if self.link.rt.config.passivate_after.is_some() {
            crate::passive::timer_instant(&self.link.rt.config, at, now)
        } else {
            at
        };
        // A near fire's timer goes off at the start of its fire-ahead window
        // (see `ahead`), unless the runtime was found behind.
        if go_off == at && !self.behind {
            let window = crate::ahead::window(self.link.rt.fire_ahead, self.state.last_slot, at);
            go_off = crate::ahead::go_off(window, at, now);
        }
        let deadline = deadline_for(self.now(), go_off);
        self.link.rt.timer.arm(
            deadline,
            self.target.clone(),
            TimerKind::Schedule,
            self.generation,
        );
    }

    /// Arms the retry timer for the waiting retry, if any.
    fn arm_retry(&mut self, _myself: &ActorRef<JobMsg>) {
        self.retry_generation += 1;
        if let Some(wait) = &self.state.retry_wait {
            let deadline = deadline_for(self.now(), wait.due);
            self.link.rt.timer.arm(
                deadline,
                self.target.clone(),
                TimerKind::Retry,
                self.retry_generation,
            );
        }
    }

    /// The backoff delay of a retry ended: run the next attempt.
    fn retry_due(&mut self, myself: &ActorRef<JobMsg>) {
        let Some(wait) = self.state.retry_wait.take() else {
            return;
        };
        if self.now() < wait.due {
            // The wall clock stepped back: wait until the retry's wall time.
            self.state.retry_wait = Some(wait);
            self.arm_retry(myself);
            return;
        }
        if self.state.paused.is_some() || self.link.handler.is_none() {
            let (why, reason) = match self.state.paused {
                Some(_) => ("job paused", SkipReason::Paused),
                None => ("handler not registered", SkipReason::Orphaned),
            };
            self.retry_dropped(&wait, why);
            self.skip(wait.scheduled, reason, 1);
            // Fires queued behind the retry are skipped too.
            self.start_queued(myself);
            return;
        }
        self.state.counters.retries += 1;
        let fire = Pending {
            scheduled: wait.scheduled,
            trigger: wait.trigger,
            attempt: wait.attempt,
            event: wait.event.map(|event| *event),
        };
        self.claim_run(myself, fire);
    }

    /// Announces that the waiting retry `wait`, just taken, will never run.
    fn retry_dropped(&mut self, wait: &RetryWait, reason: &str) {
        self.publish(EventKind::RetryDropped {
            scheduled: wait.scheduled,
            attempt: wait.attempt,
            reason: reason.into(),
        });
    }

    fn complete(&mut self) {
        self.state.next_fire = None;
        if !self.state.completed {
            self.state.completed = true;
            self.publish(EventKind::Completed);
        }
    }

    /// Handles every slot due by now, then arms the timer for the next one.
    ///
    /// The common case is one slot, on time; after a stall, a restart or a
    /// forward step of the wall clock there may be many, and the misfire
    /// policy decides. If the wall clock is behind the planned slot (it
    /// stepped back), nothing is due and the timer is re-armed.
    fn wake(&mut self, myself: &ActorRef<JobMsg>) {
        self.generation += 1;
        let now = self.now();
        let mut after = match self.state.last_slot {
            Some(last) => last,
            None => {
                // A new job: its first slot is the first after now.
                self.state.last_slot = Some(now);
                now
            }
        };
        // The common case is one due slot: it is kept out of the vector,
        // which is only filled (and allocated) once a second slot is due.
        let mut single = None;
        // A ring: a per-second job down for days drops its oldest slot
        // hundreds of thousands of times.
        let mut due = VecDeque::new();
        let mut uncounted = Uncounted::default();
        let mut fired = self.state.counters.fires;
        let next = loop {
            match self.schedule.next_fire(after, fired) {
                NextFire::At(t) if t <= now => {
                    if single.is_none() && due.is_empty() {
                        single = Some(t);
                    } else {
                        due.extend(single.take());
                        if due.len() == MAX_ENUMERATED_SLOTS {
                            if let Some(oldest) = due.pop_front() {
                                uncounted.push(oldest);
                            }
                        }
                        due.push_back(t);
                    }
                    after = t;
                    fired += 1;
                }
                other => break other,
            }
        };
        if let (true, Some(newest)) = (self.behind, single.or(due.back().copied())) {
            // The window that applied to it (before its slot is taken).
            let window =
                crate::ahead::window(self.link.rt.fire_ahead, self.state.last_slot, newest);
            if crate::ahead::on_time(window, newest, now) {
                self.behind = false;
            }
        }
        if let Some(slot) = single {
            self.handle_due(myself, &[slot], Uncounted::default(), now);
        } else if !due.is_empty() {
            self.handle_due(myself, due.make_contiguous(), uncounted, now);
        }
        match next {
            NextFire::At(t) if self.may_prepare(t, now) => self.prepare(myself, t),
            NextFire::At(t) => {
                let window = crate::ahead::window(self.link.rt.fire_ahead, self.state.last_slot, t);
                if crate::ahead::came_late(window, t, now) {
                    self.behind = true;
                }
                self.arm_at(myself, t);
            }
            NextFire::Exhausted => self.complete(),
        }
    }

    /// At a run's end, prepares the next fire at once if it is near (see
    /// `ahead::at_run_end`): the run's outcome and the next claim are
    /// posted together, and the timer armed for the fire is dropped by the
    /// timer service (a newer one replaces it).
    fn prepare_at_run_end(&mut self, myself: &ActorRef<JobMsg>) {
        let fire_ahead = self.link.rt.fire_ahead;
        if fire_ahead.is_zero() || self.behind || self.prepared.is_some() {
            return;
        }
        let Some(next) = self.state.next_fire else {
            return;
        };
        let now = self.now();
        if crate::ahead::at_run_end(fire_ahead, next, now) && self.readiness().is_ready() {
            self.generation += 1;
            self.prepare(myself, next);
        }
    }

    /// Whether the job could prepare a fire, as far as its own state goes.
    fn readiness(&self) -> crate::ahead::Readiness {
        crate::ahead::Readiness {
            paused: self.state.paused.is_some(),
            orphaned: self.link.handler.is_none(),
            failed: self.state.failed.is_some(),
            admission_limited: self.link.rt.admission.is_limited(),
            // Anything going on but history not yet posted.
            busy: !crate::passive::Activity {
                unposted: false,
                ..self.activity()
            }
            .is_idle(),
        }
    }

    /// Whether the next fire, at `next`, is prepared now (see `ahead`).
    fn may_prepare(&self, next: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let window = crate::ahead::window(self.link.rt.fire_ahead, self.state.last_slot, next);
        crate::ahead::may_prepare(self.readiness(), window, next, now)
    }

    /// Prepares the fire at `slot`, before its instant: takes the slot,
    /// claims its run (whose task waits for the instant, see `spawn_run`),
    /// and arms the timer for the fire after it. Until the run starts,
    /// `withdraw_prepared` undoes all of this, and status shows the fire as
    /// still to come (see `status::Ahead`).
    fn prepare(&mut self, myself: &ActorRef<JobMsg>, slot: DateTime<Utc>) {
        let run_id = RunId::random();
        // The schedule's last fire completes the job now, but `Completed`
        // is announced by the run's task after `Fired` and `Started`, at
        // the slot, as for a fire handled at its instant.
        // The next fire after this one, found once: it says whether this
        // one is the last, and it is armed below.
        let next = self
            .schedule
            .next_fire(slot, self.state.counters.fires.saturating_add(1));
        let last = next == NextFire::Exhausted;
        // The run is known as prepared before its task is spawned.
        self.prepared = Some(Box::new(Prepared {
            slot: Arc::new(crate::ahead::Slot::new(last)),
            run_id,
            last_slot: self.state.last_slot,
            durable_at: 0,
        }));
        // `last_fire` is set when the run ends (status shows the slot as
        // the last fire from its start).
        self.state.last_slot = Some(slot);
        self.state.counters.fires += 1;
        self.claim_run_as(myself, Pending::new(slot, Trigger::Schedule), run_id);
        match next {
            NextFire::At(t) => self.arm_at(myself, t),
            NextFire::Exhausted => {
                self.state.next_fire = None;
                self.state.completed = true;
            }
        }
    }

    /// Withdraws the prepared run if it has not started: the job is as if
    /// the fire had never been prepared, and its timer is armed for the
    /// instant again. Called first for every message that could change what
    /// happens at that instant (`JobMsg::withdraws_prepared`). True if a run
    /// was withdrawn.
    fn withdraw_prepared(&mut self, myself: &ActorRef<JobMsg>) -> bool {
        let Some(p) = self.prepared.take() else {
            return false;
        };
        let Some(pos) = self
            .state
            .in_flight
            .iter()
            .position(|r| r.run_id == p.run_id)
        else {
            return false;
        };
        // A later slot was handled meanwhile (the run's record took longer
        // than a period to be written): the slots up to it are taken, and
        // the run stays, as if it had started.
        let later_handled = self.state.last_slot != Some(self.state.in_flight[pos].scheduled);
        if later_handled || !p.slot.withdraw() {
            // Its handler started: it is an ordinary run in flight now.
            self.prepared = Some(p);
            return false;
        }
        self.state.in_flight.remove(pos);
        if let Some((token, _)) = self.tokens.remove(&p.run_id) {
            // The task, waiting for the instant, ends without a word.
            token.cancel();
        }
        self.unrecorded.retain(|r| *r != p.run_id);
        self.state.counters.runs -= 1;
        self.state.counters.fires -= 1;
        self.state.last_slot = p.last_slot;
        // A job with a next fire to prepare was not completed; preparing the
        // last fire of its schedule completed it.
        self.state.completed = false;
        tracing::debug!(job_id = %self.spec.id, run_id = %p.run_id, "prepared run withdrawn");
        self.arm(myself);
        true
    }

    fn handle_due(
        &mut self,
        myself: &ActorRef<JobMsg>,
        due: &[DateTime<Utc>],
        uncounted: Uncounted,
        now: DateTime<Utc>,
    ) {
        let newest = *due.last().expect("handle_due is called with slots");
        let oldest = uncounted.range.map_or(due[0], |(first, _)| first);
        let n = due.len() as u64 + uncounted.slots;
        self.state.last_slot = Some(newest);
        self.state.last_fire = Some(newest);
        self.state.counters.fires += n;
        let skip_all = if self.state.paused.is_some() {
            Some(SkipReason::Paused)
        } else if self.link.handler.is_none() {
            Some(SkipReason::Orphaned)
        } else {
            None
        };
        if let Some(reason) = skip_all {
            if n > 1 {
                self.record_not_run(oldest, newest, reason, n);
            }
            self.skip(newest, reason, n);
            return;
        }
        let age = (now - newest).to_std().unwrap_or(Duration::ZERO);
        if n == 1 && age <= self.link.rt.config.misfire_threshold {
            // One slot, on time: what every misfire policy plans for it.
            self.publish(EventKind::Fired {
                scheduled: newest,
                trigger: Trigger::Schedule,
            });
            self.overlap_fire(myself, Pending::new(newest, Trigger::Schedule));
            return;
        }
        let plan = self.spec.misfire.plan(
            due,
            uncounted.slots,
            now,
            self.link.rt.config.misfire_threshold,
            self.spec.catch_up_window,
        );
        if plan.skipped > 0 {
            // The uncounted slots are older than the enumerated ones and
            // all skipped: the range runs from the first of them.
            let (first, last) = match (uncounted.range, plan.skipped_range) {
                (Some((first, _)), Some((_, last))) => (first, last),
                (Some(range), None) | (None, Some(range)) => range,
                (None, None) => (oldest, newest),
            };
            self.record_not_run(first, last, SkipReason::Misfire, plan.skipped);
            self.skip(last, SkipReason::Misfire, plan.skipped);
        }
        if plan.coalesced > 0 {
            self.state.counters.coalesced += plan.coalesced;
            let served = plan.runs.first().map_or(newest, |(slot, _)| *slot);
            let after_skipped = plan.skipped_range.map(|(_, last)| last);
            let coalesced: Vec<_> = due
                .iter()
                .filter(|s| **s < served && after_skipped.is_none_or(|l| **s > l))
                .copied()
                .collect();
            let first = coalesced.first().copied().unwrap_or(served);
            let through = coalesced.last().copied().unwrap_or(served);
            self.history.push(RunRecord {
                run_id: RunId::random(),
                scheduled: first,
                started: now,
                finished: now,
                attempt: 0,
                trigger: Trigger::CatchUp,
                outcome: Outcome::Coalesced {
                    slots: plan.coalesced,
                    through,
                },
            });
        }
        for (i, (slot, decision)) in plan.runs.into_iter().enumerate() {
            let trigger = match decision {
                MisfireDecision::OnTime => Trigger::Schedule,
                MisfireDecision::CatchUp => Trigger::CatchUp,
            };
            self.publish(EventKind::Fired {
                scheduled: slot,
                trigger,
            });
            // The runs of one plan run one after another: the first goes
            // through the overlap policy, the others (catch-ups, then the
            // slot on time) wait in the queue. Through the overlap policy,
            // the slot on time would meet the plan's own first catch-up
            // run and be skipped while older slots ran.
            if i > 0 {
                self.state.queue.push_back(Pending::new(slot, trigger));
            } else {
                self.overlap_fire(myself, Pending::new(slot, trigger));
            }
        }
    }

    /// Writes a history entry for missed slots that will not run, so that
    /// history accounts for every slot of a downtime.
    fn record_not_run(
        &mut self,
        first: DateTime<Utc>,
        through: DateTime<Utc>,
        reason: SkipReason,
        slots: u64,
    ) {
        let now = self.now();
        self.history.push(RunRecord {
            run_id: RunId::random(),
            scheduled: first,
            started: now,
            finished: now,
            attempt: 0,
            trigger: Trigger::CatchUp,
            outcome: Outcome::Skipped {
                reason,
                slots,
                through,
            },
        });
    }

    fn skip(&mut self, scheduled: DateTime<Utc>, reason: SkipReason, count: u64) {
        self.state.counters.skipped.add(reason, count);
        tracing::debug!(job_id = %self.spec.id, ?reason, count, "fire skipped");
        self.publish(EventKind::Skipped {
            scheduled,
            reason,
            count,
        });
    }

    /// Applies the overlap policy to one fire.
    ///
    /// A retry waiting for its backoff counts as a run in flight: the next
    /// fire meets the overlap policy as if the failed run were still going
    /// (`Replace` drops the waiting retry).
    fn overlap_fire(&mut self, myself: &ActorRef<JobMsg>, fire: Pending) -> TriggerOutcome {
        self.overlap_fire_with(myself, fire, self.spec.overlap)
    }

    /// [`Self::overlap_fire`] through `overlap` instead of the job's policy.
    fn overlap_fire_with(
        &mut self,
        myself: &ActorRef<JobMsg>,
        fire: Pending,
        overlap: OverlapPolicy,
    ) -> TriggerOutcome {
        let scheduled = fire.scheduled;
        let busy = self.state.in_flight.len() + usize::from(self.state.retry_wait.is_some());
        let decision = overlap.decide(busy, self.state.queue.len());
        match decision {
            OverlapDecision::Start => TriggerOutcome::Started(self.claim_run(myself, fire)),
            OverlapDecision::ReplaceThenStart => {
                self.cancel_all(myself, CancelReason::Replaced);
                if let Some(wait) = self.state.retry_wait.take() {
                    self.retry_generation += 1;
                    self.retry_dropped(&wait, CancelReason::Replaced.text());
                    // The fire whose retry is dropped failed for good: it
                    // counts toward `pause_after_failures`, and a job that
                    // pauses itself so does not start this fire.
                    self.count_failed_fire();
                    if self.state.paused.is_some() {
                        self.skip(scheduled, SkipReason::Paused, 1);
                        return TriggerOutcome::Skipped(SkipReason::Paused);
                    }
                }
                TriggerOutcome::Started(self.claim_run(myself, fire))
            }
            OverlapDecision::Skip => {
                self.skip(scheduled, SkipReason::Overlap, 1);
                TriggerOutcome::Skipped(SkipReason::Overlap)
            }
            OverlapDecision::Enqueue => {
                self.state.queue.push_back(fire);
                self.publish(EventKind::Queued { scheduled });
                TriggerOutcome::Queued
            }
            OverlapDecision::Drop => {
                self.skip(scheduled, SkipReason::QueueFull, 1);
                TriggerOutcome::Skipped(SkipReason::QueueFull)
            }
        }
    }

    /// `trigger` (through `overlap` instead of the job's policy, if given):
    /// answered once the claim is durable.
    fn trigger(
        &mut self,
        myself: &ActorRef<JobMsg>,
        overlap: Option<OverlapPolicy>,
        reply: RpcReplyPort<Result<TriggerOutcome, Error>>,
    ) {
        let outcome = self.fire_now(myself, Trigger::Manual, None, overlap);
        if outcome.is_ok() {
            self.save_claims(myself);
        }
        self.answer_when_durable(reply, outcome);
    }

    /// A manual trigger or a named event: fire now through the overlap
    /// policy (or `overlap`, for this fire). A completed job can still be
    /// triggered (its schedule is exhausted, its handler is not).
    fn fire_now(
        &mut self,
        myself: &ActorRef<JobMsg>,
        trigger: Trigger,
        event: Option<(String, Arc<serde_json::Value>)>,
        overlap: Option<OverlapPolicy>,
    ) -> Result<TriggerOutcome, Error> {
        if self.link.handler.is_none() || self.state.failed.is_some() {
            return Err(self.invalid_state("trigger"));
        }
        let now = self.now();
        self.state.last_fire = Some(now);
        self.publish(EventKind::Fired {
            scheduled: now,
            trigger,
        });
        if self.state.paused.is_some() {
            self.skip(now, SkipReason::Paused, 1);
            return Ok(TriggerOutcome::Skipped(SkipReason::Paused));
        }
        let mut fire = Pending::new(now, trigger);
        fire.event = event;
        let overlap = overlap.unwrap_or(self.spec.overlap);
        Ok(self.overlap_fire_with(myself, fire, overlap))
    }

    /// Queues the schedule's slots in `(from, to]` as backfilled fires,
    /// oldest first, behind the runs in flight and the fires already queued,
    /// whatever the overlap policy (Temporal's buffer-all for backfills).
    /// They are stored with the queue, so a restart runs the rest.
    fn backfill(
        &mut self,
        myself: &ActorRef<JobMsg>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        overlap: crate::policy::BackfillOverlap,
    ) -> Result<usize, Error> {
        use crate::policy::BackfillOverlap;
        if self.link.handler.is_none() || self.state.failed.is_some() || self.state.paused.is_some()
        {
            return Err(self.invalid_state("backfill"));
        }
        let range = || format!("({}, {}]", from.to_rfc3339(), to.to_rfc3339());
        if from >= to {
            return Err(Error::InvalidBackfill(format!(
                "the range {} is empty: from must be before to",
                range()
            )));
        }
        // Both the queue and the runs in flight are stored with the job's
        // state: a backfill adds at most `MAX_BACKFILL` to either.
        let (held, place) = match overlap {
            BackfillOverlap::BufferAll => (self.state.queue.len(), "queue"),
            BackfillOverlap::AllowAll => (self.state.in_flight.len(), "runs in flight"),
        };
        let room = MAX_BACKFILL.saturating_sub(held);
        let mut slots = Vec::new();
        let mut cursor = from;
        while let Some(slot) = self.schedule.next_after(cursor).filter(|s| *s <= to) {
            if slots.len() == room {
                return Err(Error::InvalidBackfill(format!(
                    "the range {} holds more slots than the job's {place} have room for \
                     ({room} of {MAX_BACKFILL} places free): split it",
                    range()
                )));
            }
            slots.push(slot);
            cursor = slot;
        }
        for &slot in &slots {
            self.publish(EventKind::Fired {
                scheduled: slot,
                trigger: Trigger::Backfill,
            });
            let fire = Pending::new(slot, Trigger::Backfill);
            match overlap {
                BackfillOverlap::AllowAll => {
                    self.claim_run(myself, fire);
                }
                BackfillOverlap::BufferAll => {
                    self.state.queue.push_back(fire);
                    self.publish(EventKind::Queued { scheduled: slot });
                }
            }
        }
        self.start_queued(myself);
        Ok(slots.len())
    }

    /// Records a run as in flight; it starts once its record is durable (at
    /// once with a store that is not durable).
    fn claim_run(&mut self, myself: &ActorRef<JobMsg>, fire: Pending) -> RunId {
        self.claim_run_as(myself, fire, RunId::random())
    }

    /// [`Self::claim_run`], under a given run id.
    fn claim_run_as(&mut self, myself: &ActorRef<JobMsg>, fire: Pending, run_id: RunId) -> RunId {
        let (event, payload) = fire.event.unzip();
        self.state.in_flight.push(InFlightRun {
            run_id,
            scheduled: fire.scheduled,
            // A prepared run starts at its slot, and so does the retry of
            // one interrupted before it (it waits for the slot). Any other
            // run starts now, even for a slot still to come (a backfilled
            // range reaching past now, and the retries of its runs).
            started: match fire.trigger {
                Trigger::Schedule => self.now().max(fire.scheduled),
                Trigger::Recovery if self.retry_waits_for_slot(fire.scheduled) => {
                    self.now().max(fire.scheduled)
                }
                _ => self.now(),
            },
            attempt: fire.attempt,
            trigger: fire.trigger,
            event,
            payload,
            cancelled: None,
        });
        self.state.counters.runs += 1;
        self.tokens.push(run_id, (CancellationToken::new(), None));
        if self.link.rt.durable {
            self.unrecorded.push(run_id);
        } else {
            self.start_run(myself, run_id);
        }
        run_id
    }

    /// Whether the retry of a run interrupted (`Recovery`) starts
    /// no earlier than its slot: when the slot is one the schedule took, as
    /// a run prepared ahead and interrupted before its slot. The retry of a
    /// backfilled slot still to come runs at once, as the backfilled run did.
    fn retry_waits_for_slot(&self, scheduled: DateTime<Utc>) -> bool {
        self.state.last_slot.is_some_and(|l| scheduled <= l)
    }

    /// Whether a claimed run was cancelled (or is gone).
    fn is_cancelled(&self, run_id: RunId) -> bool {
        self.tokens
            .get(&run_id)
            .is_none_or(|(_, why)| why.is_some())
    }

    /// Starts a claimed run whose record is durable, once admitted by the
    /// concurrency caps (at once when there are none).
    fn start_run(&mut self, myself: &ActorRef<JobMsg>, run_id: RunId) {
        if self.is_cancelled(run_id) {
            // Cancelled while its record was being written: it never starts.
            return drop_unstarted(myself, run_id);
        }
        if !self.link.rt.admission.is_limited() {
            return self.spawn_run(myself, run_id, None);
        }
        let tags = self.tags.clone();
        let admitted = self.link.rt.admission.admit_or_wait(
            run_id,
            tags.clone(),
            self.spec.priority,
            &self.link,
        );
        if admitted {
            self.spawn_run(myself, run_id, Some(tags));
        } else {
            self.waiting_admission.insert(run_id, tags);
            self.state.counters.admission_waits += 1;
        }
    }

    /// Spawns the task of a claimed run. The handler runs off the actor; its
    /// result, panic included, comes back as `RunFinished`. `permit`: the
    /// tags of the admission place the run holds, given back when it ends.
    fn spawn_run(
        &mut self,
        _myself: &ActorRef<JobMsg>,
        run_id: RunId,
        permit: Option<Arc<[String]>>,
    ) {
        let found = self
            .state
            .in_flight
            .iter()
            .find(|r| r.run_id == run_id)
            .zip(self.tokens.get(&run_id));
        let (Some((run, (token, _))), Some(_)) = (found, &self.link.handler) else {
            // Cancelled and finished before it could start (or an orphan,
            // which claims no run): its place, if any, goes back.
            if let Some(tags) = permit {
                self.link.rt.admission.release(&tags);
            }
            return;
        };
        let ctx = JobContext {
            job_id: self.spec.id.clone(),
            run_id,
            scheduled: run.scheduled,
            attempt: run.attempt,
            trigger: run.trigger,
            payload: self.payload.clone(),
            cancel: token.clone(),
            event: run.event.clone().map(|name| {
                let payload = run.payload.clone().unwrap_or_default();
                (name, payload)
            }),
            reporter: crate::handler::Reporter {
                link: self.link.clone(),
            },
        };
        // A prepared run waits for its instant; it is announced when it
        // starts (by its task).
        let prepared = self.prepared.as_deref().filter(|p| p.run_id == run_id);
        let gate = prepared.map(|p| p.slot.clone());
        // With a durable store, the take whose flush the run waits for.
        let durable_at = prepared.map_or(0, |p| p.durable_at);
        if gate.is_none() {
            self.publish(EventKind::Started {
                run_id,
                scheduled: run.scheduled,
                trigger: run.trigger,
                attempt: run.attempt,
            });
        }
        let due_slot = gate.clone();
        let (trigger, attempt) = (run.trigger, run.attempt);
        // A prepared run, and the retry of one interrupted by a crash before
        // its slot, start no earlier than the slot on the wall clock.
        let not_before_slot = gate.is_some()
            || (trigger == Trigger::Recovery && self.retry_waits_for_slot(run.scheduled));
        let limits = Limits {
            jitter: jitter_delay(self.spec.jitter),
            grace: self.link.rt.config.cancel_grace,
            timeout: self.spec.timeout,
        };
        let measure_lateness = matches!(
            run.trigger,
            Trigger::Schedule | Trigger::Manual | Trigger::Event
        );
        let scheduled = run.scheduled;
        let span = tracing::info_span!(
            "run",
            job_id = %self.spec.id,
            run_id = %run_id,
            attempt = run.attempt,
            trigger = ?run.trigger,
        );
        // The task holds the job's link (a per-job reference count), not the
        // scheduler-wide handles.
        let link = self.link.clone();
        let tags = permit;
        let task = async move {
            let rt = &link.rt;
            let Some(handler) = link.handler.as_deref() else {
                // Never for a prepared run (only a job with a handler
                // prepares); if it were, its count would still be settled.
                if gate
                    .as_ref()
                    .is_some_and(|slot| slot.abandon() == crate::ahead::Abandoned::Due)
                {
                    rt.timer.starts().running();
                }
                return None;
            };
            // One flat future: the context is stored once (it is not
            // passed down into nested futures), and what only a slow,
            // jittered or timed run needs is boxed, so the task of a
            // plain run stays small (its cell is allocated with a 128-byte
            // alignment: a large one costs glibc a consolidation pass).
            let mut result = None;
            if let Some(slot) = &gate {
                // A prepared run waits for the timer service to mark its
                // slot come (see `ahead`), or for the job to withdraw or
                // cancel it (removed or shut down meanwhile): then it never
                // runs.
                if slot.wait().await {
                    rt.timer.starts().running();
                    // Its claim is normally durable long before the slot;
                    // a late flush is waited for (or a cancellation).
                    if durable_at != 0
                        && !rt.updates.watermark().reached(durable_at)
                        && Box::pin(durable_wait(&rt.updates, durable_at, ctx.cancel.clone())).await
                    {
                        result = Some(RunResult::Dropped);
                    }
                } else {
                    match slot.abandon() {
                        crate::ahead::Abandoned::Due => rt.timer.starts().running(),
                        // The job forgot the run: nothing to report.
                        crate::ahead::Abandoned::Withdrawn => return None,
                        crate::ahead::Abandoned::Waiting => {}
                    }
                    result = Some(RunResult::Dropped);
                }
            }
            // The wall clock at the start, read once when nothing waits
            // after the reading.
            let mut start_now = None;
            if result.is_none() && not_before_slot {
                // A wall clock stepped back waits for the slot.
                let now = rt.clock.now();
                if ctx.cancel.is_cancelled()
                    || (now < scheduled
                        && Box::pin(wait_for_slot(&*rt.clock, scheduled, ctx.cancel.clone())).await)
                {
                    result = Some(RunResult::Dropped);
                } else if now >= scheduled {
                    start_now = Some(now);
                }
                if result.is_none() && gate.is_some() && link.events().has_subscribers() {
                    let now = rt.clock.now();
                    link.events()
                        .publish(&link.id, now, EventKind::Fired { scheduled, trigger });
                    link.events().publish(
                        &link.id,
                        now,
                        EventKind::Started {
                            run_id,
                            scheduled,
                            trigger,
                            attempt,
                        },
                    );
                    if gate.as_ref().is_some_and(|slot| slot.completes()) {
                        link.events().publish(&link.id, now, EventKind::Completed);
                    }
                }
            }
            if result.is_none() && !limits.jitter.is_zero() {
                start_now = None;
                let token = ctx.cancel.clone();
                if Box::pin(jitter_wait(token, limits.jitter)).await {
                    result = Some(RunResult::Dropped);
                }
            }
            let result = match result {
                Some(result) => result,
                None => {
                    if measure_lateness {
                        let now = start_now.unwrap_or_else(|| rt.clock.now());
                        let late = (now - scheduled).to_std().unwrap_or_default();
                        rt.histograms.record_lateness(late);
                    }
                    let token = ctx.cancel.clone();
                    // A handler can panic in `call` itself, before it
                    // returns a future (a closure's synchronous part): that
                    // is a failed run too, not a task that dies without
                    // reporting and leaves the run in flight for ever.
                    match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(ctx))) {
                        Err(panic) => RunResult::Panicked(panic_message(&panic)),
                        Ok(fut) => {
                            // Unpin (the handler's future is boxed).
                            let mut run = AssertUnwindSafe(fut).catch_unwind();
                            // Most handlers are done at their first poll:
                            // the time limits then cost nothing.
                            match futures::poll!(&mut run) {
                                std::task::Poll::Ready(r) => finished(r),
                                std::task::Poll::Pending => {
                                    Box::pin(supervise(run, token, limits)).await
                                }
                            }
                        }
                    }
                }
            };
            if let Some(tags) = tags {
                rt.admission.release(&tags);
            }
            tracing::debug!(?result, "run ended");
            let msg = JobMsg::RunFinished {
                run_id,
                result: result.clone(),
            };
            link.rt.timer.starts().finished(&link, msg);
            Some(result)
        }
        .instrument(span);
        self.tokens.set_task(&run_id, tokio::spawn(task));
        if let Some(slot) = due_slot {
            // A prepared run: the timer service marks its slot come, unless
            // the run is withdrawn first (the slot decides which).
            let now = self.now();
            let timer = &self.link.rt.timer;
            if scheduled <= now {
                // Its record became durable only after the slot.
                slot.due(timer.starts());
            } else {
                timer.slot_at(deadline_for(now, scheduled), slot);
            }
        }
    }

    /// Makes `value` the job's last result, in its state and where its
    /// runs read it (this actor's link, and the cells runs adopted from a
    /// crashed predecessor still read). `null` clears it: the job has no
    /// result, as before any.
    fn set_last_result(&mut self, value: Option<Arc<serde_json::Value>>) {
        let value = value.filter(|v| !v.is_null());
        self.link.set_last_result(value.clone());
        // Only the cells a run of a predecessor still reads.
        self.adopted_cells
            .retain(|cell| Arc::strong_count(cell) > 1);
        for cell in &self.adopted_cells {
            crate::handler::write_cell(cell, value.clone());
        }
        self.state.last_result = value;
    }

    fn finish_run(&mut self, myself: &ActorRef<JobMsg>, run_id: RunId, result: RunResult) {
        let Some(pos) = self.state.in_flight.iter().position(|r| r.run_id == run_id) else {
            return;
        };
        let run = self.state.in_flight.remove(pos);
        if self.prepared.take_if(|p| p.run_id == run_id).is_some() {
            self.state.last_fire = self.state.last_fire.max(Some(run.scheduled));
        }
        // Only runs started by an event have one.
        let mut event = run.event.zip(run.payload).map(Box::new);
        if self.state.in_flight.is_empty() {
            self.state.progress = None;
        }
        let cancelled = self.tokens.remove(&run_id).and_then(|(_, why)| why);
        let outcome = match (result, cancelled) {
            (RunResult::Ok, _) => Outcome::Succeeded,
            // A timeout before the shutdown stands: its retry waits in the
            // stored state for the next start.
            (RunResult::TimedOut, Some(CancelReason::Shutdown)) => Outcome::TimedOut,
            // A cancel (or remove, replace) during the grace after a
            // timeout is what the user asked last: the run is cancelled,
            // hence not retried. A shutdown interrupts the run: the next
            // start runs its fire again, as after a crash.
            // Its handler ignored the cancel past the grace: the reason
            // says so, for the operator whose handler does not watch its
            // token.
            (RunResult::Abandoned, Some(why)) => match why.cut_outcome() {
                Outcome::Cancelled(text) => Outcome::Cancelled(format!("{text}; {ABANDONED}")),
                other => other,
            },
            (_, Some(why)) => why.cut_outcome(),
            (RunResult::Abandoned, None) => Outcome::Cancelled(ABANDONED.into()),
            (RunResult::TimedOut, None) => Outcome::TimedOut,
            (RunResult::Err(e), None) => Outcome::Failed(e),
            (RunResult::Panicked(p), None) => Outcome::Failed(format!("handler panicked: {p}")),
            (RunResult::Dropped, None) => Outcome::Cancelled("dropped".into()),
        };
        let now = self.now();
        let record = RunRecord {
            run_id,
            scheduled: run.scheduled,
            started: run.started,
            finished: now,
            attempt: run.attempt,
            trigger: run.trigger,
            outcome,
        };
        if let Some(at) = self.results.iter().position(|(id, _)| *id == run_id) {
            let (_, value) = self.results.swap_remove(at);
            if record.outcome == Outcome::Succeeded {
                self.set_last_result(Some(value));
            }
        }
        self.link.rt.histograms.record_duration(record.duration());
        self.count_outcome(&record);
        self.state.last_run = Some(record.clone());
        if record.outcome == Outcome::Interrupted {
            // Cut short by the shutdown: its fire waits in the stored queue
            // for the next start, ahead of the fires queued before, behind
            // the runs cut before it; with its event, stored with the queue.
            if let Some(mut fire) = self.rerun_of(run.scheduled, run.attempt) {
                fire.event = event.take().map(|e| *e);
                let at = self
                    .state
                    .queue
                    .iter()
                    .take_while(|f| f.trigger == Trigger::Recovery)
                    .count();
                self.state.queue.insert(at, fire);
            }
        }
        self.after_outcome(myself, &record, event);
        self.history.push(record);
    }

    /// The fire that runs an interrupted run (by a crash or a shutdown)
    /// again: at-least-once, unless the job says abandon, or has no
    /// handler to run it with. The same attempt: the run did not fail.
    fn rerun_of(&self, scheduled: DateTime<Utc>, attempt: u32) -> Option<Pending> {
        if self.spec.interrupted != InterruptedPolicy::Retry || self.link.handler.is_none() {
            return None;
        }
        let mut fire = Pending::new(scheduled, Trigger::Recovery);
        fire.attempt = attempt;
        Some(fire)
    }

    /// Takes over the runs of the failed actor this one replaced: their
    /// tokens (with why each was cancelled), the records it awaited, the
    /// results they set, the ends of runs that ended as it failed, and
    /// their admission.
    fn adopt(&mut self, myself: &ActorRef<JobMsg>, runs: Vec<crate::runtime::ParkedRun>) {
        let mut admissions = Vec::new();
        for run in runs {
            // A run this actor holds a token of already started under it.
            let held = self.tokens.get(&run.run_id).is_some();
            if !held && self.state.in_flight.iter().any(|r| r.run_id == run.run_id) {
                self.tokens.push(run.run_id, (run.token, run.cancelled));
                if let Some(tags) = run.admission {
                    admissions.push((run.run_id, tags));
                }
                if run.unrecorded {
                    self.unrecorded.push(run.run_id);
                }
                // The result it set before the failure, unless it set a
                // newer one since (sent to this actor).
                if let Some(value) = run.result {
                    if !self.results.iter().any(|(id, _)| *id == run.run_id) {
                        self.results.push((run.run_id, value));
                    }
                }
                for cell in run.cells {
                    let known = Arc::ptr_eq(&cell, &self.link.last_result)
                        || self.adopted_cells.iter().any(|c| Arc::ptr_eq(c, &cell));
                    if !known {
                        // It may hold an older result than this actor's.
                        crate::handler::write_cell(&cell, self.state.last_result.clone());
                        self.adopted_cells.push(cell);
                    }
                }
                if let Some(task) = run.task {
                    // Its `RunFinished` may have died in the predecessor's
                    // mailbox: its result is taken from the task too (a
                    // second `RunFinished` of a run is ignored).
                    let (link, run_id) = (self.link.clone(), run.run_id);
                    tokio::spawn(async move {
                        if let Ok(Some(result)) = task.await {
                            crate::ahead::deliver(&link, JobMsg::RunFinished { run_id, result });
                        }
                    });
                }
            }
        }
        for (run_id, tags) in admissions {
            self.take_over_admission(myself, run_id, tags);
        }
    }

    /// A run waiting for admission was admitted: it starts, unless it was
    /// cancelled meanwhile (then its place goes back at once).
    fn admitted(&mut self, myself: &ActorRef<JobMsg>, run_id: RunId, tags: Arc<[String]>) {
        let asked_here = self.waiting_admission.remove(&run_id).is_some();
        if !asked_here
            && self.tokens.get(&run_id).is_none()
            && self.state.in_flight.iter().any(|r| r.run_id == run_id)
        {
            // Claimed by this job's actor before it crashed and was
            // restarted with the run in flight, and its token not
            // taken over (see `OrphanTokens`): this actor runs it.
            self.tokens.push(run_id, (CancellationToken::new(), None));
        }
        if self.is_cancelled(run_id) {
            // Cancelled while waiting: give the place back at once.
            self.link.rt.admission.release(&tags);
            drop_unstarted(myself, run_id);
        } else {
            // The run starts now: its record's start and duration
            // leave out the wait (its lateness includes it).
            let now = self.now();
            if let Some(run) = self.state.in_flight.iter_mut().find(|r| r.run_id == run_id) {
                run.started = run.started.max(now);
            }
            self.spawn_run(myself, run_id, Some(tags));
        }
    }

    /// A run the failed predecessor left waiting for admission: if it still
    /// waits, it waits again for this actor; if it was admitted, its
    /// `Admitted` died with the predecessor's mailbox (or comes later, and is
    /// then ignored), and this actor starts it in the place taken for it.
    fn take_over_admission(
        &mut self,
        myself: &ActorRef<JobMsg>,
        run_id: RunId,
        tags: Arc<[String]>,
    ) {
        let admission = &self.link.rt.admission;
        if admission.withdraw(run_id) {
            if self.is_cancelled(run_id) {
                drop_unstarted(myself, run_id);
            } else if admission.admit_or_wait(run_id, tags.clone(), self.spec.priority, &self.link)
            {
                self.spawn_run(myself, run_id, Some(tags));
            } else {
                self.waiting_admission.insert(run_id, tags);
            }
        } else if admission.take_admitted(run_id) {
            self.admitted(myself, run_id, tags);
        }
    }

    /// Fire-level bookkeeping once a run ended: retry a failure while the
    /// policy allows; count a failed fire once its retries are exhausted, and
    /// pause the job after `pause_after_failures` failed fires in a row.
    fn after_outcome(
        &mut self,
        myself: &ActorRef<JobMsg>,
        record: &RunRecord,
        event: Option<Box<(String, Arc<serde_json::Value>)>>,
    ) {
        if record.outcome == Outcome::Succeeded {
            self.state.consecutive_failures = 0;
            return;
        }
        if !record.outcome.is_failure() {
            return;
        }
        let random: f64 = rand::random();
        // A job keeps one waiting retry (`JobState::retry_wait`): a run that
        // fails while another fire's retry waits (side by side under
        // `Concurrent`) is not retried, and its fire counts as failed,
        // rather than silently taking the place of the older retry.
        let delay = match self.state.retry_wait {
            Some(_) => None,
            None => self.spec.retry.next_delay(record.attempt, random),
        };
        if let Some(delay) = delay {
            // A delay past the end of chrono's calendar (a backoff of
            // `Duration::MAX`, say) waits until that end: never, in practice.
            let due = chrono::Duration::from_std(delay)
                .ok()
                .and_then(|d| self.now().checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            self.state.retry_wait = Some(RetryWait {
                scheduled: record.scheduled,
                attempt: record.attempt + 1,
                due,
                trigger: Trigger::Retry,
                event,
            });
            self.publish(EventKind::RetryScheduled {
                run_id: record.run_id,
                attempt: record.attempt + 1,
                at: due,
            });
            // During a shutdown the retry waits in the stored state for the
            // next start.
            if self.stopping.is_none() {
                self.arm_retry(myself);
            }
            return;
        }
        if record.attempt > 1 {
            self.publish(EventKind::RetriesExhausted {
                run_id: record.run_id,
                attempts: record.attempt,
            });
        }
        self.count_failed_fire();
    }

    /// A fire failed for good: one more in a row, and the job pauses itself
    /// at `pause_after_failures`.
    fn count_failed_fire(&mut self) {
        self.state.consecutive_failures += 1;
        let failures = self.state.consecutive_failures;
        if self
            .spec
            .pause_after_failures
            .is_some_and(|n| failures >= n)
            && self.state.paused.is_none()
        {
            self.state.paused = Some(PauseInfo {
                note: Some(format!("paused after {failures} failed fires in a row")),
                since: self.now(),
            });
            tracing::warn!(job_id = %self.spec.id, failures, "job paused itself");
            self.publish(EventKind::AutoPaused { failures });
        }
    }

    fn count_outcome(&mut self, record: &RunRecord) {
        let c = &mut self.state.counters;
        let kind = match &record.outcome {
            Outcome::Succeeded => {
                c.succeeded += 1;
                self.state.consecutive_failures = 0;
                EventKind::Succeeded {
                    run_id: record.run_id,
                    duration_ms: record.duration().as_millis() as u64,
                }
            }
            Outcome::Failed(error) => {
                c.failed += 1;
                tracing::warn!(job_id = %self.spec.id, run_id = %record.run_id, %error, "run failed");
                EventKind::Failed {
                    run_id: record.run_id,
                    error: error.clone(),
                }
            }
            Outcome::Cancelled(reason) => {
                c.cancelled += 1;
                EventKind::Cancelled {
                    run_id: record.run_id,
                    reason: reason.clone(),
                }
            }
            Outcome::Interrupted => {
                c.interrupted += 1;
                EventKind::Interrupted {
                    run_id: record.run_id,
                }
            }
            Outcome::Skipped { .. } | Outcome::Coalesced { .. } => return,
            Outcome::TimedOut => {
                c.timed_out += 1;
                tracing::warn!(job_id = %self.spec.id, run_id = %record.run_id, "run timed out");
                EventKind::TimedOut {
                    run_id: record.run_id,
                }
            }
        };
        self.publish(kind);
    }

    /// Starts the next queued fire when nothing is in flight. A waiting
    /// retry counts as in flight (as for the overlap policy): the fires
    /// queued behind a failed run wait for its retries too.
    fn start_queued(&mut self, myself: &ActorRef<JobMsg>) {
        if self.stopping.is_some()
            || !self.state.in_flight.is_empty()
            || self.state.retry_wait.is_some()
        {
            return;
        }
        if self.state.paused.is_some() {
            // Every queued fire is skipped now: one left behind, with
            // nothing in flight to start it, would hold the queue for ever.
            let fires = std::mem::take(&mut self.state.queue);
            for fire in fires {
                self.skip(fire.scheduled, SkipReason::Paused, 1);
            }
        } else if self.link.handler.is_none() || self.state.failed.is_some() {
            // An orphan keeps its queue (stored with its state) for a
            // process that has its handler, as it keeps the job itself; a
            // failed job keeps it for a revive.
        } else if let Some(fire) = self.state.queue.pop_front() {
            let recovery = fire.trigger == Trigger::Recovery;
            self.claim_run(myself, fire);
            // The retries of runs interrupted side by side (a `Concurrent`
            // job's, a backfill's with `AllowAll`) start side by side again,
            // as those runs did; the fires queued behind them still wait.
            while recovery
                && self
                    .state
                    .queue
                    .front()
                    .is_some_and(|f| f.trigger == Trigger::Recovery)
            {
                if let Some(fire) = self.state.queue.pop_front() {
                    self.claim_run(myself, fire);
                }
            }
        }
    }

    /// The runs in flight whose `Started` was published: not waiting for
    /// their record, for admission or (prepared ahead) for their slot.
    fn announced_runs(&self) -> Vec<RunId> {
        let now = self.now();
        let waiting_slot = self.prepared.as_deref().map(|p| p.run_id).filter(|id| {
            let run = self.state.in_flight.iter().find(|r| r.run_id == *id);
            run.is_some_and(|r| r.started > now)
        });
        self.state
            .in_flight
            .iter()
            .map(|r| r.run_id)
            .filter(|id| {
                !self.unrecorded.contains(id)
                    && !self.waiting_admission.contains_key(id)
                    && waiting_slot != Some(*id)
            })
            .collect()
    }

    /// Fires every in-flight run's token; returns the runs cancelled.
    fn cancel_all(&mut self, myself: &ActorRef<JobMsg>, why: CancelReason) -> Vec<RunId> {
        self.cancel_runs(myself, why, None)
    }

    /// Fires the token of the run `only`, or of every run in flight, unless
    /// cancelled already; returns the runs cancelled.
    fn cancel_runs(
        &mut self,
        myself: &ActorRef<JobMsg>,
        why: CancelReason,
        only: Option<RunId>,
    ) -> Vec<RunId> {
        let mut cancelled = Vec::new();
        for (run_id, (token, reason)) in self.tokens.iter_mut() {
            if reason.is_none() && only.is_none_or(|o| o == *run_id) {
                *reason = Some(why);
                token.cancel();
                cancelled.push(*run_id);
            }
        }
        // Stored with the state: a restart records these runs as cancelled,
        // not as interrupted (which would retry them).
        for run in self.state.in_flight.iter_mut() {
            if cancelled.contains(&run.run_id) {
                run.cancelled = Some(why);
            }
        }
        // A prepared run's task waits on its slot, not on its token.
        if let Some(p) = self.prepared.as_deref() {
            if cancelled.contains(&p.run_id) {
                p.slot.cancel();
            }
        }
        // A run waiting for admission has no task to notice its token.
        // One that was admitted already has its `Admitted` on the way, which
        // gives the place back (or `Remove`, which stops before it comes).
        for run_id in &cancelled {
            if self.waiting_admission.contains_key(run_id)
                && self.link.rt.admission.withdraw(*run_id)
            {
                self.waiting_admission.remove(run_id);
                drop_unstarted(myself, *run_id);
            }
        }
        cancelled
    }

    /// On restart: runs in flight at the crash are recorded as interrupted,
    /// and retried (at-least-once) unless the job says abandon; a run that
    /// was cancelled before the crash is recorded as cancelled, and not
    /// retried. The retries go first, side by side as the runs were (see
    /// `start_queued`), then the stored queue, in order.
    fn recover_interrupted(&mut self, myself: &ActorRef<JobMsg>) {
        let now = self.now();
        let mut retries = Vec::new();
        for run in std::mem::take(&mut self.state.in_flight) {
            let outcome = match run.cancelled {
                Some(why) => why.cut_outcome(),
                None => Outcome::Interrupted,
            };
            let retry = outcome == Outcome::Interrupted;
            let record = RunRecord {
                run_id: run.run_id,
                scheduled: run.scheduled,
                // A run prepared ahead of its slot (see `ahead`) had not
                // started: its start is no later than its end.
                started: run.started.min(now),
                finished: now,
                attempt: run.attempt,
                trigger: run.trigger,
                outcome,
            };
            self.count_outcome(&record);
            self.state.last_run = Some(record.clone());
            self.history.push(record);
            if let Some(mut fire) = retry
                .then(|| self.rerun_of(run.scheduled, run.attempt))
                .flatten()
            {
                // With its event: the payload is stored with the run.
                fire.event = run.event.zip(run.payload);
                retries.push(fire);
            }
        }
        for fire in retries.into_iter().rev() {
            self.state.queue.push_front(fire);
        }
        self.start_queued(myself);
    }
}

/// A random delay in `[0, max]`.
fn jitter_delay(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    use rand::Rng;
    Duration::from_nanos(rand::rng().random_range(0..=max.as_nanos() as u64))
}

/// The time limits of one run.
#[derive(Debug, Clone, Copy)]
struct Limits {
    jitter: Duration,
    grace: Duration,
    timeout: Option<Duration>,
}

/// A prepared run's wait for its slot on the wall clock (read again after
/// each sleep, since timers sleep on the monotonic clock): true if the run
/// was cancelled or withdrawn meanwhile.
async fn wait_for_slot(
    clock: &dyn crate::clock::Clock,
    slot: DateTime<Utc>,
    token: CancellationToken,
) -> bool {
    loop {
        let left = (slot - clock.now()).to_std().unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return token.is_cancelled();
        }
        tokio::select! {
            () = tokio::time::sleep(left) => {}
            () = token.cancelled() => return true,
        }
    }
}

/// Waits for take `take` of the update queue to be durable (see
/// `watermark`); true if the run was cancelled first.
async fn durable_wait(
    updates: &crate::registry::Updates,
    take: u64,
    token: CancellationToken,
) -> bool {
    tokio::select! {
        _ = updates.watermark().wait(take) => false,
        _ = token.cancelled() => true,
    }
}

/// The jitter before a run: true if the run was cancelled meanwhile.
async fn jitter_wait(token: CancellationToken, jitter: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(jitter) => false,
        () = token.cancelled() => true,
    }
}

/// The handler's future, with its panic caught.
type CaughtRun = futures::future::CatchUnwind<
    AssertUnwindSafe<futures::future::BoxFuture<'static, Result<(), crate::handler::HandlerError>>>,
>;

/// What a run's outcome, panic included, becomes.
fn finished(r: std::thread::Result<Result<(), crate::handler::HandlerError>>) -> RunResult {
    match r {
        Ok(Ok(())) => RunResult::Ok,
        Ok(Err(e)) => RunResult::Err(e.to_string()),
        Err(panic) => RunResult::Panicked(panic_message(&panic)),
    }
}

/// Drives a handler that did not finish at its first poll. At the timeout
/// the token is cancelled; once the token is cancelled (by the timeout or by
/// the job) the handler has `grace` to return before its future is dropped.
async fn supervise(mut run: CaughtRun, token: CancellationToken, limits: Limits) -> RunResult {
    let cancelled_by_job = match limits.timeout {
        None => tokio::select! {
            biased;
            r = &mut run => return finished(r),
            () = token.cancelled() => true,
        },
        Some(timeout) => tokio::select! {
            biased;
            r = &mut run => return finished(r),
            () = tokio::time::sleep(timeout) => false,
            () = token.cancelled() => true,
        },
    };
    token.cancel();
    let in_grace = tokio::time::timeout(limits.grace, &mut run).await;
    match (cancelled_by_job, in_grace) {
        (false, _) => RunResult::TimedOut,
        (true, Ok(r)) => finished(r),
        (true, Err(_)) => RunResult::Abandoned,
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// Ends a claimed run that was cancelled before its task started: it is
/// recorded as cancelled, and its handler never runs.
fn drop_unstarted(myself: &ActorRef<JobMsg>, run_id: RunId) {
    let _ = myself.cast(JobMsg::RunFinished {
        run_id,
        result: RunResult::Dropped,
    });
}
