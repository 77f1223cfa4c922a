//! The job actor: one per job. It owns the job's spec, schedule and state,
//! keeps at most one pending timer of each kind (schedule, retry), decides
//! each fire by pause state, misfire and overlap policy, starts runs as
//! separate tasks and learns their outcome by message.

mod cancel;
mod control;
mod fire;
mod outcome;
mod park;
mod passivate;
mod prepare;
mod run;
mod save;

pub use fire::TriggerOutcome;
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub use park::SLOW_PARK;
pub use run::RunResult;
pub(crate) use run::RunTask;
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub use run::{TakenHold, HOLD_TAKEN};

use crate::error::Error;
use crate::event::EventKind;
use crate::handler::{Handler, RunLink};
use crate::id::RunId;
use crate::policy::OverlapPolicy;
use crate::registry::{Ack, RegistryMsg};
use crate::runtime::Runtime;
use crate::schedule::{PreviewFire, Schedule};
use crate::spec::JobSpec;
use crate::status::{CancelReason, JobState, QueuedFire, RunRecord, Trigger};
use crate::supervisor::SupervisorMsg;
use crate::timer::{TimerKind, TimerTarget};
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use run::RunTokens;
use std::collections::HashMap;
use std::sync::Arc;

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
    /// passivation if still idle and far from the next fire, and that fire
    /// is still the one reported (the supervisor keeps it for the passive
    /// job), else decline.
    #[doc(hidden)]
    Passivate {
        /// The next fire the actor reported with `Idle`.
        next_fire: Option<DateTime<Utc>>,
    },
    /// The runs of the failed actor this one replaced, parked after it
    /// started (see `OrphanTokens::await_parked`).
    #[doc(hidden)]
    Adopt(ParkedRuns),
}

/// The runs a failed job actor left for its successor (see `JobMsg::Adopt`).
#[doc(hidden)]
#[derive(Debug)]
pub struct ParkedRuns(pub(crate) Vec<crate::runtime::ParkedRun>);

/// The target of the job actor's spans and events, `cronactor_actors::job`
/// (see `docs/operations.md`, "Logging"), whichever of its files logs them:
/// those below this one name it, since their own path would be theirs.
const TARGET: &str = module_path!();

/// The reason a job actor gives when it stops for passivation.
pub(crate) const PASSIVATED: &str = "passivated";
/// The reason a job actor stops with once it has read `Remove`.
pub(crate) const REMOVED: &str = "removed";

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
            | JobMsg::Passivate { .. }
            | JobMsg::Adopt(_) => false,
        }
    }
}

/// The most fires a job lists in one preview (`Scheduler::preview`).
pub const MAX_PREVIEW: usize = 10_000;

/// The most fires a job's overlap queue holds after a backfill request
/// (`Scheduler::backfill`). The queue is stored with the job's state and
/// copied at each of its changes, so it is kept short: a larger backfill is
/// split into requests made as the queue drains.
pub const MAX_BACKFILL: usize = 1_000;

/// A fire waiting to run: in the overlap queue (`JobState::queue`, stored
/// with the state), or planned.
type Pending = QueuedFire;

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
    /// Restarted after its actor failed, with the failure: `Restarted` is
    /// announced before anything the new actor publishes.
    pub(crate) restarted: Option<String>,
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
    /// What the actor rarely holds (see [`Rare`]), allocated on first use.
    rare: Option<Box<Rare>>,
    /// Waiting for the runs of the failed actor this one replaced (see
    /// `OrphanTokens::await_parked`), and the messages about those runs
    /// read meanwhile, in their order: the ends of runs that ended, and
    /// `cancel_run`s (answered once the run is adopted, rather than
    /// `UnknownRun` for a run that status lists). They are taken once the
    /// runs (their tokens, why each was cancelled, their results) are
    /// adopted.
    awaiting_park: bool,
    /// Claimed runs waiting for their record to be durable, with the take
    /// of the update queue that carries their claim (0: not posted yet).
    unrecorded: Vec<(RunId, u64)>,
    /// History entries not yet sent to the registry.
    history: Vec<RunRecord>,
    /// Where the state goes to the registry.
    outbox: Arc<crate::registry::Outbox>,
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

/// What a job actor rarely holds, boxed and allocated on first use: kept
/// inline, these fields made every live job's actor about 140 bytes larger
/// (the memory per live job, issue #7). Once allocated it stays.
#[derive(Default)]
struct Rare {
    /// Results set by runs in flight (`JobContext::set_result`), taken at
    /// their end: the job's last result if the run succeeded.
    results: Vec<(RunId, Arc<serde_json::Value>)>,
    /// Where the runs this actor adopted from a failed predecessor read the
    /// job's last result (their link's, not this actor's): written with
    /// this actor's own, and let go once no run reads them.
    adopted_cells: Vec<crate::handler::ResultCell>,
    /// The messages about a failed predecessor's runs read while
    /// `awaiting_park`.
    early: Vec<JobMsg>,
    /// The run whose report `state.progress` is, if known (not across a
    /// restart of the actor): its end clears it.
    progress_of: Option<RunId>,
    /// Claimed runs waiting for admission (a concurrency cap), with the
    /// tags they asked with; a run stays here until its `Admitted` comes,
    /// even once cancelled, so that a job that stops first can give back
    /// the place taken for it.
    waiting_admission: HashMap<RunId, Arc<[String]>, foldhash::fast::RandomState>,
    /// The run of the schedule's last fire while it waits for its record or
    /// for admission: the job completed when it handled the fire, and
    /// `Completed` is announced after the run's `Started` (or its end, if
    /// it never starts), as for a run that starts at once.
    completes_after: Option<RunId>,
}

impl JobActorState {
    /// The rarely used fields, allocated now if they were not.
    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Whether the run waits for admission.
    fn waits_admission(&self, run_id: &RunId) -> bool {
        self.rare
            .as_ref()
            .is_some_and(|r| r.waiting_admission.contains_key(run_id))
    }

    /// The run the job's `Completed` waits for (see `Rare::completes_after`).
    fn completes_after(&self) -> Option<RunId> {
        self.rare.as_ref().and_then(|r| r.completes_after)
    }

    /// Sets or clears the run the job's `Completed` waits for.
    fn set_completes_after(&mut self, run_id: Option<RunId>) {
        if run_id.is_some() || self.rare.is_some() {
            self.rare_mut().completes_after = run_id;
        }
    }
}

/// A schedule fire prepared ahead of its instant: its run, and what the
/// job's state was before, to withdraw it as if it had never been prepared.
#[derive(Debug)]
pub(crate) struct Prepared {
    slot: Arc<crate::ahead::Slot>,
    run_id: RunId,
    last_slot: Option<DateTime<Utc>>,
    /// With a durable store, the take of the update queue whose flush the
    /// run waits for after its slot (see `watermark`); 0: none.
    durable_at: u64,
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
        if let Some(reason) = args.restarted {
            // Its actor in place (messages to it wait for this start), and
            // before any event of its own.
            args.runtime.events.publish(
                &args.spec.id,
                args.runtime.clock.now(),
                EventKind::Restarted { reason },
            );
        }
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
            rare: None,
            awaiting_park: false,
            unrecorded: Vec::new(),
            history: Vec::with_capacity(1),
            outbox,
            stopping: None,
            target: args.target,
            idle_reported: false,
            behind: false,
            turn_now: std::cell::Cell::new(None),
            prepared: None,
        };
        // Uncounted when the state drops (see `Runtime::fire_ahead`).
        s.link
            .rt
            .live_jobs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
        s.arm_retry();
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
        // A turn does not wait. One that fails (an error, a panic) parks
        // the job's runs before ractor reports the failure, so that the
        // supervisor finds them (see `JobActorState::park_runs`).
        let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| turn(myself, msg, s)));
        let failure = match turn {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(panic) => run::panic_message(&panic).into(),
        };
        if s.parks_at_failure() {
            s.park_runs();
        }
        Err(failure)
    }
}

/// One turn of the job actor: handles `msg`.
fn turn(
    myself: ActorRef<JobMsg>,
    msg: JobMsg,
    s: &mut JobActorState,
) -> Result<(), ActorProcessingErr> {
    // A new turn reads the wall clock afresh.
    s.turn_now.set(None);
    if msg.withdraws_prepared() && s.withdraw_prepared() {
        // The slot is given back: what the message does next (or a
        // shutdown) must find it so in the store.
        s.save(Ack::None);
    }
    match msg {
        JobMsg::Fired { generation, kind } => s.fired(&myself, generation, kind),
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
        JobMsg::Cancel(reply) => s.cancel(&myself, reply),
        JobMsg::CancelRun { run_id, reply } => s.cancel_run(&myself, run_id, reply),
        JobMsg::RetryRun { record, reply } => {
            let refused =
                s.link.handler.is_none() || s.state.failed.is_some() || s.state.paused.is_some();
            let outcome = if refused {
                Err(s.invalid_state("retry a run"))
            } else {
                let mut fire = Pending::new(record.scheduled, Trigger::ManualRetry);
                fire.attempt = record.attempt.saturating_add(1);
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
                match &mut s.state.progress {
                    Some(last) => **last = (fraction, message),
                    none => *none = Some(Box::new((fraction, message))),
                }
                s.rare_mut().progress_of = Some(run_id);
                s.save(Ack::None);
            }
        }
        JobMsg::SetResult { run_id, value } => {
            let in_flight = &s.state.in_flight;
            let running = in_flight.iter().any(|r| r.run_id == run_id);
            if running || s.rare.is_some() {
                let results = &mut s.rare.get_or_insert_with(Box::default).results;
                results.retain(|(id, _)| in_flight.iter().any(|r| r.run_id == *id));
                if running {
                    match results.iter_mut().find(|(id, _)| *id == run_id) {
                        Some(slot) => slot.1 = value,
                        None => results.push((run_id, value)),
                    }
                }
            }
        }
        JobMsg::SetLastResult { value, reply } => {
            s.set_last_result(value);
            s.save(Ack::Reply(reply));
        }
        JobMsg::Pause { note, reply } => s.pause(note, reply),
        JobMsg::Resume { note, reply } => s.resume(note, reply),
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
        } => s.update(&myself, spec, schedule, handler, reply),
        JobMsg::Remove(reply) => s.remove(&myself, reply),
        JobMsg::Preview { n, reply } => s.preview(n, reply),
        JobMsg::Replan => {
            if s.stopping.is_none() {
                s.arm();
                // A waiting retry's timer too: its due time is a wall
                // instant, which a forward step may have passed.
                s.arm_retry();
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
        JobMsg::RunFinished { run_id, result } => s.run_finished(&myself, run_id, result),
        JobMsg::Recorded => {
            // Only the runs whose claim's take is durable: one claimed
            // while the flush of an earlier claim ran waits for the
            // next flush, which holds its own.
            let watermark = s.link.rt.updates.watermark();
            let (durable, later): (Vec<_>, Vec<_>) = std::mem::take(&mut s.unrecorded)
                .into_iter()
                .partition(|(_, take)| *take != 0 && watermark.reached(*take));
            s.unrecorded = later;
            for (run_id, _) in durable {
                s.start_run(&myself, run_id);
                s.completed_after_start(run_id);
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
            let early = s.rare.as_mut().map(|r| std::mem::take(&mut r.early));
            for msg in early.unwrap_or_default() {
                let _ = myself.cast(msg);
            }
        }
        JobMsg::Crash => {
            #[cfg(any(test, feature = "fault-injection"))]
            return Err(format!("injected fault in job {}", s.spec.id).into());
        }
        JobMsg::Passivate { next_fire } => {
            s.idle_reported = false;
            // A message read since the report may have moved the next
            // fire (an upsert delivered as the job woke): the actor
            // then stays, and reports itself idle again with the fire
            // the supervisor must keep (a wall-clock step re-arms the
            // passive job's wake-up for it).
            let reported = s.state.next_fire == next_fire;
            if reported && s.passivable() && s.link.rt.supervisor.get().is_some() {
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
}
