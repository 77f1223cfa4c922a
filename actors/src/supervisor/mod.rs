//! The supervisor actor: spawns and links one job actor per job, routes
//! control messages, restarts a failed job actor from the registry's latest
//! state, and runs the shutdown sequence.
//!
//! Every operation of the `Scheduler` handle is a [`SupervisorMsg`], so a
//! service can drive the scheduler with ractor's `call!` and `cast!`.

use crate::error::Error;
use crate::event::EventKind;
use crate::handler::Handlers;
use crate::id::{JobId, RunId};
use crate::job::{JobActor, JobArgs, JobMsg, TriggerOutcome};
use crate::metrics::Metrics;
use crate::passive::{Slot, Transit};
use crate::registry::{Ack, RegistryMsg};
use crate::runtime::Runtime;
use crate::schedule::PreviewFire;
use crate::spec::JobSpec;
use crate::status::{JobState, JobStatus, Outcome, RunRecord};
use crate::store::JobRecord;
use crate::timer::TimerTarget;
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// At most this many restarts of one job actor within [`RESTART_WINDOW`];
/// past it the job is left stopped (a crash loop).
pub const MAX_RESTARTS: usize = 5;
/// The window of the restart budget.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// What `upsert` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upserted {
    /// The job did not exist and was added.
    Added,
    /// The job existed; its spec was replaced, its state kept.
    Updated,
}

/// What `shutdown` did.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{JobContext, JobSpec, ScheduleSpec, Scheduler};
/// use std::time::Duration;
///
/// let scheduler = Scheduler::builder()
///     .handler("stuck", |_ctx: JobContext| async {
///         // Ignores its cancellation token.
///         tokio::time::sleep(Duration::from_secs(3600)).await;
///         Ok::<(), std::io::Error>(())
///     })
///     .configure(|config| config.cancel_grace = Duration::from_secs(60))
///     .in_memory()
///     .start()
///     .await?;
/// scheduler
///     .add(JobSpec::builder("import", ScheduleSpec::cron("0 0 * * * *"), "stuck").build()?)
///     .await?;
/// scheduler.trigger("import").await?;
/// // Its token is cancelled at once, and the grace runs out first.
/// let report = scheduler.shutdown(Duration::from_millis(100)).await?;
/// assert_eq!(report.cancelled.len(), 1);
/// assert_eq!(report.cancelled[0].0.as_str(), "import");
/// assert_eq!(report.unfinished_jobs.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Runs whose token was cancelled, by job (ordered by job id).
    pub cancelled: Vec<(JobId, RunId)>,
    /// Jobs whose runs had not ended when the grace ran out (ordered by id).
    pub unfinished_jobs: Vec<JobId>,
}

/// Messages to the supervisor: the scheduler's whole control interface.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{JobContext, JobId, JobSpec, ScheduleSpec, Scheduler, SupervisorMsg};
/// use ractor::call;
/// use std::time::Duration;
///
/// let scheduler = Scheduler::builder()
///     .handler("noop", |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) })
///     .in_memory()
///     .start()
///     .await?;
/// scheduler
///     .add(JobSpec::builder("report", ScheduleSpec::cron("0 0 9 * * *"), "noop").build()?)
///     .await?;
///
/// // The handle's methods send these messages; a service can send them too.
/// let supervisor = scheduler.supervisor();
/// let id = JobId::new("report")?;
/// call!(supervisor, |reply| SupervisorMsg::Pause { id: id.clone(), note: Some("maintenance".into()), reply })??;
/// let status = call!(supervisor, SupervisorMsg::Status, id)??;
/// assert_eq!(status.pause_note.as_deref(), Some("maintenance"));
/// scheduler.shutdown(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub enum SupervisorMsg {
    /// Add a job; `DuplicateJob` if the id exists.
    Add(Box<JobSpec>, RpcReplyPort<Result<(), Error>>),
    /// Add a job already paused (with a note), in the same write; as `Add`
    /// otherwise.
    AddPaused {
        /// The job.
        spec: Box<JobSpec>,
        /// The pause note, shown in status.
        note: Option<String>,
        /// Answered as for `Add`.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Add a job, or replace an existing job's spec keeping its state.
    Upsert(Box<JobSpec>, RpcReplyPort<Result<Upserted, Error>>),
    /// Remove a job, cancelling its runs.
    Remove(JobId, RpcReplyPort<Result<(), Error>>),
    /// Pause a job.
    Pause {
        /// The job.
        id: JobId,
        /// A note shown in status.
        note: Option<String>,
        /// Answered once durable.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Resume a paused job.
    Resume {
        /// The job.
        id: JobId,
        /// A note shown in the event.
        note: Option<String>,
        /// Answered once durable.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Fire a job now, through its overlap policy.
    Trigger(JobId, RpcReplyPort<Result<TriggerOutcome, Error>>),
    /// Fire a job now through `overlap` instead of its overlap policy;
    /// `Error::InvalidSpec` (field `overlap`) for a policy a spec refuses.
    TriggerWith {
        /// The job.
        id: JobId,
        /// The overlap policy of this fire.
        overlap: crate::OverlapPolicy,
        /// What the fire did.
        reply: RpcReplyPort<Result<TriggerOutcome, Error>>,
    },
    /// Run a job's schedule slots in `(from, to]` now, one after another.
    Backfill {
        /// The job.
        id: JobId,
        /// The range's start (excluded).
        from: chrono::DateTime<chrono::Utc>,
        /// The range's end (included).
        to: chrono::DateTime<chrono::Utc>,
        /// One after another, or all at once.
        overlap: crate::policy::BackfillOverlap,
        /// How many slots were queued or started.
        reply: RpcReplyPort<Result<usize, Error>>,
    },
    /// Set (or clear, with `None`) a job's last result
    /// (`JobStatus::last_result`), answered once durable.
    SetLastResult {
        /// The job.
        id: JobId,
        /// The new last result.
        value: Option<serde_json::Value>,
        /// Answered once durable.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Cancel a job's runs in flight (a no-op answering an empty list when
    /// nothing runs).
    Cancel(JobId, RpcReplyPort<Result<Vec<RunId>, Error>>),
    /// Cancel one run in flight of a job.
    CancelRun {
        /// The job.
        id: JobId,
        /// The run.
        run_id: RunId,
        /// Answered once the cancel is durable.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Run a failed, timed-out or interrupted run again.
    RetryRun(RunId, RpcReplyPort<Result<TriggerOutcome, Error>>),
    /// Start a run of every job listening to the named event.
    Emit {
        /// The event's name.
        name: String,
        /// Its payload, handed to each run.
        payload: serde_json::Value,
        /// What each listening job did.
        reply: RpcReplyPort<Result<Vec<(JobId, TriggerOutcome)>, Error>>,
    },
    /// Scheduler-wide metrics.
    Metrics(RpcReplyPort<Metrics>),
    /// One job's status.
    Status(JobId, RpcReplyPort<Result<JobStatus, Error>>),
    /// Every job's status, ordered by id.
    List(RpcReplyPort<Vec<JobStatus>>),
    /// A job's next `n` fires.
    Preview {
        /// The job.
        id: JobId,
        /// How many.
        n: usize,
        /// The answer.
        reply: RpcReplyPort<Result<Vec<PreviewFire>, Error>>,
    },
    /// A job's newest runs, newest first.
    History {
        /// The job.
        id: JobId,
        /// How many.
        limit: usize,
        /// The answer.
        reply: RpcReplyPort<Result<Vec<RunRecord>, Error>>,
    },
    /// Stop timers, cancel runs, wait up to the grace, flush the store.
    Shutdown(Duration, RpcReplyPort<ShutdownReport>),
    /// Shut down after a drain: no fire starts any more, the runs in flight
    /// have up to `drain` to end by themselves, then the runs left are
    /// cancelled and have up to `grace`, as for `Shutdown`.
    Drain {
        /// How long the runs in flight may take to end by themselves.
        drain: Duration,
        /// Then, how long the runs cancelled may take to stop.
        grace: Duration,
        /// Answered as for `Shutdown`.
        reply: RpcReplyPort<ShutdownReport>,
    },
    /// Deliver a message to a job's current actor (a run's result after its
    /// actor was restarted).
    Forward(JobId, JobMsg),
    /// The wall clock stepped: every job re-plans.
    ClockStepped,
    /// Fault injection for tests (feature `fault-injection`): make a job
    /// actor fail. Without the feature it does nothing.
    #[doc(hidden)]
    InjectCrash(JobId),
    /// From a job actor: it is idle and far from its next fire (see
    /// `RuntimeConfig::passivate_after`).
    #[doc(hidden)]
    Idle {
        /// The job.
        id: JobId,
        /// Its actor.
        actor: ActorId,
        /// Its next fire.
        next_fire: Option<DateTime<Utc>>,
    },
    /// From a job actor asked to passivate: it is busy again and stays.
    #[doc(hidden)]
    StayLive {
        /// The job.
        id: JobId,
        /// Its actor.
        actor: ActorId,
    },
    /// From the timer service: a passive job's fire is near.
    #[doc(hidden)]
    Wake(JobId),
    /// The registry's state of a passive job being woken.
    #[doc(hidden)]
    Woken {
        /// The job.
        id: JobId,
        /// Its spec and state (`Ok(None)`: unknown to the registry, removed
        /// meanwhile; `Err`: the registry did not answer).
        snapshot: WakeSnapshot,
    },
}

/// A passive job's spec and state, fetched to wake it (`Ok(None)`: unknown
/// to the registry; `Err`: the registry did not answer).
pub type WakeSnapshot = Result<Option<(Arc<JobSpec>, Box<JobState>)>, String>;

/// How a job actor starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// Added, restarted or revived.
    Fresh,
    /// Loaded from the store at boot: runs in flight were interrupted.
    Restored,
    /// Respawned after passivation.
    Reactivated,
}

/// Arguments of the supervisor.
pub struct SupervisorArgs {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) handlers: Handlers,
    pub(crate) restored: Vec<JobRecord>,
}

/// The supervisor actor.
#[derive(Debug, Default)]
pub struct SupervisorActor;

/// The supervisor's state.
pub struct SupervisorState {
    rt: Arc<Runtime>,
    handlers: Handlers,
    /// Every job with an actor or passive (failed jobs are in `failed`).
    jobs: HashMap<JobId, Slot>,
    /// Job actors by actor id (live and passivating jobs).
    by_actor: HashMap<ActorId, JobId>,
    /// Generations of re-armed wake-up timers of passive jobs (after a
    /// wall-clock step), above any job actor's own generations.
    wake_generation: u64,
    restarts: HashMap<JobId, VecDeque<tokio::time::Instant>>,
    /// Jobs by the event names they listen to.
    listeners: HashMap<String, Vec<JobId>>,
    /// Jobs given up on (restart budget exhausted): no actor, kept in the
    /// registry until removed or upserted.
    failed: HashSet<JobId>,
    /// Jobs whose actor was sent `Remove` and has not stopped yet, with the
    /// adds and upserts of their id that came meanwhile: the actor writes
    /// the removal to the registry when it reads `Remove`, so such a write
    /// for the new job must wait until the actor stopped, or the removal
    /// would land after it and delete the new job.
    removing: Vec<Removing>,
    shutting_down: bool,
    /// The shutdown in progress, once one was read.
    stopping: Option<Stopping>,
}

/// A shutdown in progress. A later `shutdown` cuts its drain short (the
/// runs still in flight get their cancel and the first call's grace, as a
/// second Ctrl-C does), and every later `shutdown` or drain is answered
/// with its report.
struct Stopping {
    cut: Arc<tokio::sync::Notify>,
    waiting: Arc<std::sync::Mutex<Joined>>,
}

/// The later calls a shutdown answers with its report, and the report once
/// it is known: a call read after that is answered at once (the supervisor
/// runs until a caller stops it, which the first caller may never do if it
/// went away).
#[derive(Default)]
struct Joined {
    replies: Vec<RpcReplyPort<ShutdownReport>>,
    report: Option<ShutdownReport>,
}

/// A job actor stopping for `remove` (see `SupervisorState::removing`).
struct Removing {
    actor: ActorId,
    id: JobId,
    deferred: Vec<SupervisorMsg>,
}

impl Actor for SupervisorActor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let _ = args.runtime.supervisor.set(myself.clone());
        args.runtime.timer.set_supervisor(myself.clone());
        let mut s = SupervisorState {
            rt: args.runtime,
            handlers: args.handlers,
            jobs: HashMap::new(),
            by_actor: HashMap::new(),
            restarts: HashMap::new(),
            listeners: HashMap::new(),
            failed: HashSet::new(),
            removing: Vec::new(),
            shutting_down: false,
            stopping: None,
            wake_generation: u64::MAX / 2,
        };
        // Every actor is started at once and their `pre_start`s run in
        // parallel on the runtime's workers; boot ends when all have run.
        let mut starting = Vec::with_capacity(args.restored.len());
        let now = s.rt.clock.now();
        for record in args.restored {
            let spec = Arc::new(record.spec);
            let orphaned = !s.handlers.contains(&spec.handler);
            if record.state.failed.is_some() {
                // Given up on before the restart: restored as it was, with
                // no actor (its schedule does not fire, it listens to no
                // event) until `upsert` revives it or `remove` removes it.
                s.rt.updates.push(RegistryMsg::Restore {
                    spec: spec.clone(),
                    state: Box::new(record.state),
                    orphaned,
                });
                tracing::warn!(job_id = %spec.id, "job restored failed: upsert revives it");
                s.failed.insert(spec.id.clone());
                continue;
            }
            let schedule = match spec.compile(s.rt.config.default_tz) {
                Ok(schedule) => schedule,
                Err(e) => {
                    s.rt.updates.push(RegistryMsg::Restore {
                        spec: spec.clone(),
                        state: Box::new(record.state),
                        orphaned,
                    });
                    tracing::error!(job_id = %spec.id, error = %e, "cannot restore job");
                    // Given up on, with the reason: status shows it, `remove`
                    // removes it and `upsert` of a spec that compiles
                    // revives it (with no entry here it was listed but
                    // answered `UnknownJob` to both).
                    s.give_up(&spec.id, format!("cannot restore the job: {e}"));
                    continue;
                }
            };
            // An orphan gets its actor, which reports the missing handler.
            let passive = (!orphaned)
                .then(|| s.next_fire_without_actor(&schedule, &record.state, now))
                .flatten();
            if let Some(next) = passive {
                // Nothing to recover or catch up, and far from its next
                // fire: restored passive, with no actor until shortly
                // before that fire.
                let mut state = record.state;
                state.next_fire = Some(next);
                s.rt.updates.push(RegistryMsg::Restore {
                    spec: spec.clone(),
                    state: Box::new(state),
                    orphaned,
                });
                s.start_passive(&spec, Some(next), now);
                continue;
            }
            s.rt.updates.push(RegistryMsg::Restore {
                spec: spec.clone(),
                state: Box::new(record.state.clone()),
                orphaned,
            });
            match s.spawn_compiled(
                &myself,
                spec.clone(),
                schedule,
                record.state,
                Start::Restored,
            ) {
                Ok(started) => starting.push((spec.id.clone(), started)),
                Err(e) => {
                    tracing::error!(job_id = %spec.id, error = %e, "cannot restore job");
                    s.give_up(&spec.id, format!("cannot restore the job: {e}"));
                }
            }
        }
        for (id, started) in starting {
            if let Err(e) = started.wait().await {
                tracing::error!(job_id = %id, error = %e, "cannot restore job");
            }
        }
        spawn_clock_watch(&s.rt, myself);
        Ok(s)
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        s: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if s.shutting_down {
            match msg {
                // A `retry_run` whose run was found before the shutdown was
                // read: no fire starts any more.
                SupervisorMsg::Forward(id, msg @ JobMsg::RetryRun { .. }) => {
                    tracing::debug!(job_id = %id, "retry_run refused: shutting down");
                    reject_job_msg(msg, Error::ShutDown);
                }
                // A run's end (or admission) for a restarted job's actor,
                // which waits for it to stop.
                SupervisorMsg::Forward(id, msg) => s.deliver(&myself, id, msg, None),
                // A passive job woken for messages is not respawned any
                // more: they are answered now, not when the supervisor
                // stops after the drain and the grace.
                SupervisorMsg::Woken { id, .. } => s.not_woken(id),
                // Another shutdown: it cuts a drain short, and is answered
                // with the report of the one in progress.
                SupervisorMsg::Shutdown(_, reply) => s.join_shutdown(reply, true),
                SupervisorMsg::Drain { reply, .. } => s.join_shutdown(reply, false),
                msg => reject_after_shutdown(msg),
            }
            return Ok(());
        }
        let removing = match &msg {
            SupervisorMsg::Add(spec, _)
            | SupervisorMsg::AddPaused { spec, .. }
            | SupervisorMsg::Upsert(spec, _) => s.removing.iter_mut().find(|r| r.id == spec.id),
            // A second removal answers `UnknownJob` once the first is queued
            // for the store (see `deliver`).
            SupervisorMsg::Remove(id, _) => s.removing.iter_mut().find(|r| r.id == *id),
            _ => None,
        };
        if let Some(removing) = removing {
            // Handled once the removed job's actor has stopped.
            removing.deferred.push(msg);
            return Ok(());
        }
        match msg {
            SupervisorMsg::Add(spec, reply) => {
                // A failed job (given up on) still exists: `upsert` revives it.
                if s.jobs.contains_key(&spec.id) || s.failed.contains(&spec.id) {
                    let _ = reply.send(Err(Error::DuplicateJob(spec.id.clone())));
                } else {
                    s.add(&myself, Arc::new(*spec), None, reply).await;
                }
            }
            SupervisorMsg::AddPaused { spec, note, reply } => {
                if s.jobs.contains_key(&spec.id) || s.failed.contains(&spec.id) {
                    let _ = reply.send(Err(Error::DuplicateJob(spec.id.clone())));
                } else {
                    s.add(&myself, Arc::new(*spec), Some(note), reply).await;
                }
            }
            SupervisorMsg::Upsert(spec, reply) => {
                if s.jobs.contains_key(&spec.id) {
                    let spec = Arc::new(*spec);
                    match s.check(&spec) {
                        Ok(schedule) => {
                            let (tx, rx) = tokio::sync::oneshot::channel();
                            let msg = JobMsg::Update {
                                spec: spec.clone(),
                                schedule,
                                handler: s.handlers.get(&spec.handler),
                                reply: tx.into(),
                            };
                            s.listen(&spec);
                            s.deliver(&myself, spec.id.clone(), msg, None);
                            forward_reply(rx, reply, |r| r.map(|()| Upserted::Updated));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                } else if s.failed.contains(&spec.id) {
                    let result = s.revive(&myself, Arc::new(*spec)).await;
                    let _ = reply.send(result.map(|()| Upserted::Updated));
                } else {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    s.add(&myself, Arc::new(*spec), None, tx.into()).await;
                    forward_reply(rx, reply, |r| r.map(|()| Upserted::Added));
                }
            }
            SupervisorMsg::Remove(id, reply) => {
                if s.jobs.contains_key(&id) {
                    s.deliver(&myself, id, JobMsg::Remove(reply), None);
                } else if s.failed.remove(&id) {
                    s.rt.events
                        .publish(&id, s.rt.clock.now(), EventKind::Removed);
                    s.rt.updates.push(RegistryMsg::Remove {
                        id,
                        ack: Ack::Reply(reply),
                    });
                } else {
                    let _ = reply.send(Err(Error::UnknownJob(id)));
                }
            }
            SupervisorMsg::Pause { id, note, reply } => {
                s.deliver(&myself, id, JobMsg::Pause { note, reply }, Some("pause"))
            }
            SupervisorMsg::SetLastResult { id, value, reply } => {
                match value.as_ref().map(crate::handler::check_result).transpose() {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(_) => s.deliver(
                        &myself,
                        id,
                        JobMsg::SetLastResult {
                            value: value.map(Arc::new),
                            reply,
                        },
                        Some("set the last result of"),
                    ),
                }
            }
            SupervisorMsg::Resume { id, note, reply } => {
                s.deliver(&myself, id, JobMsg::Resume { note, reply }, Some("resume"))
            }
            SupervisorMsg::Trigger(id, reply) => {
                s.deliver(&myself, id, JobMsg::Trigger(reply), Some("trigger"))
            }
            SupervisorMsg::TriggerWith { id, overlap, reply } => {
                match overlap.validate().and_then(|()| overlap.validate_limits()) {
                    // Refused as in a new spec: `Concurrent { max: 0 }` would
                    // start a run on an idle job, `Queue { max: 0 }` count a full
                    // queue; a queue above `MAX_QUEUE` is refused too.
                    Err(reason) => {
                        tracing::debug!(job_id = %id, %reason, "trigger with an invalid overlap policy");
                        let _ = reply.send(Err(Error::InvalidSpec {
                            field: "overlap",
                            reason,
                        }));
                    }
                    Ok(()) => s.deliver(
                        &myself,
                        id,
                        JobMsg::TriggerWith { overlap, reply },
                        Some("trigger"),
                    ),
                }
            }
            SupervisorMsg::Backfill {
                id,
                from,
                to,
                overlap,
                reply,
            } => s.deliver(
                &myself,
                id,
                JobMsg::Backfill {
                    from,
                    to,
                    overlap,
                    reply,
                },
                Some("backfill"),
            ),
            SupervisorMsg::Cancel(id, reply) => {
                s.deliver(&myself, id, JobMsg::Cancel(reply), Some("cancel"))
            }
            SupervisorMsg::CancelRun { id, run_id, reply } => s.deliver(
                &myself,
                id,
                JobMsg::CancelRun { run_id, reply },
                Some("cancel a run"),
            ),
            SupervisorMsg::RetryRun(run_id, reply) => {
                let registry = s.rt.registry.clone();
                let supervisor = myself.clone();
                tokio::spawn(async move {
                    let found = registry
                        .call(
                            |r| RegistryMsg::FindRun(run_id, r),
                            Some(Duration::from_secs(30)),
                        )
                        .await;
                    let Ok(ractor::rpc::CallResult::Success(Some((id, record)))) = found else {
                        let _ = reply.send(Err(Error::UnknownRun(run_id)));
                        return;
                    };
                    if !(record.outcome.is_failure() || record.outcome == Outcome::Interrupted) {
                        let _ = reply.send(Err(Error::InvalidState {
                            id,
                            action: "retry a run",
                            state: format!("run {run_id} did not fail"),
                        }));
                        return;
                    }
                    // Through the supervisor: the job may be passive.
                    let msg = JobMsg::RetryRun {
                        record: Box::new(record),
                        reply,
                    };
                    if let Err(ractor::MessagingErr::SendErr(SupervisorMsg::Forward(id, msg))) =
                        supervisor.cast(SupervisorMsg::Forward(id, msg))
                    {
                        reject_job_msg(msg, Error::UnknownJob(id));
                    }
                });
            }
            SupervisorMsg::Emit {
                name,
                payload,
                reply,
            } => s.emit(&myself, name, payload, reply),
            SupervisorMsg::Metrics(reply) => {
                let (live, passive) = crate::passive::count(&s.jobs);
                let (tx, rx) = tokio::sync::oneshot::channel();
                let _ = s.rt.registry.cast(RegistryMsg::Metrics(tx.into()));
                tokio::spawn(async move {
                    if let Ok(mut metrics) = rx.await {
                        metrics.jobs_live = live;
                        metrics.jobs_passive = passive;
                        let _ = reply.send(metrics);
                    }
                });
            }
            SupervisorMsg::Preview { id, n, reply } => {
                s.deliver(&myself, id, JobMsg::Preview { n, reply }, Some("preview"))
            }
            SupervisorMsg::Status(id, reply) => {
                let _ = s.rt.registry.cast(RegistryMsg::Status(id, reply));
            }
            SupervisorMsg::List(reply) => {
                let _ = s.rt.registry.cast(RegistryMsg::List(reply));
            }
            SupervisorMsg::History { id, limit, reply } => {
                let _ =
                    s.rt.registry
                        .cast(RegistryMsg::History { id, limit, reply });
            }
            SupervisorMsg::Forward(id, msg) => s.deliver(&myself, id, msg, None),
            SupervisorMsg::ClockStepped => {
                tracing::warn!("wall clock stepped: every job re-plans");
                s.clock_stepped();
            }
            SupervisorMsg::InjectCrash(id) => {
                if s.jobs.contains_key(&id) {
                    s.deliver(&myself, id, JobMsg::Crash, None);
                }
            }
            SupervisorMsg::Idle {
                id,
                actor,
                next_fire,
            } => s.idle(id, actor, next_fire),
            SupervisorMsg::StayLive { id, actor } => s.stay_live(&myself, id, actor),
            SupervisorMsg::Wake(id) => {
                if matches!(s.jobs.get(&id), Some(Slot::Passive { .. })) {
                    s.reactivate(&myself, id, Vec::new());
                }
            }
            SupervisorMsg::Woken { id, snapshot } => s.woken(&myself, id, snapshot).await,
            SupervisorMsg::Shutdown(grace, reply) => {
                s.shutting_down = true;
                s.shutdown(Duration::ZERO, grace, reply);
            }
            SupervisorMsg::Drain {
                drain,
                grace,
                reply,
            } => {
                s.shutting_down = true;
                s.shutdown(drain, grace, reply);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        s: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // The default would stop the supervisor on the first child exit.
        let stopped = match &evt {
            SupervisionEvent::ActorTerminated(cell, ..)
            | SupervisionEvent::ActorFailed(cell, _) => Some(cell.get_id()),
            _ => None,
        };
        if let Some(pos) = stopped.and_then(|a| s.removing.iter().position(|r| r.actor == a)) {
            // A removed job's actor stopped, its removal queued: the adds
            // and upserts of its id that waited go on, in order.
            for msg in s.removing.swap_remove(pos).deferred {
                if let Err(ractor::MessagingErr::SendErr(msg)) = myself.cast(msg) {
                    reject_after_shutdown(msg);
                }
            }
            return Ok(());
        }
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let Some(id) = s.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                let passivated = reason.as_deref() == Some(crate::job::PASSIVATED);
                match s.jobs.remove(&id) {
                    Some(Slot::Transit(t)) if passivated && !s.shutting_down => {
                        if let Transit::Passivating {
                            target,
                            next_fire,
                            waiting,
                            ..
                        } = *t
                        {
                            s.jobs
                                .insert(id.clone(), Slot::Passive { target, next_fire });
                            if !waiting.is_empty() {
                                s.reactivate(&myself, id, waiting);
                            }
                        }
                    }
                    Some(Slot::Transit(t)) => {
                        let (Transit::Passivating { waiting, .. } | Transit::Waking { waiting }) =
                            *t;
                        for msg in waiting {
                            let err = if s.shutting_down {
                                Error::ShutDown
                            } else {
                                Error::UnknownJob(id.clone())
                            };
                            reject_job_msg(msg, err);
                        }
                    }
                    _ => {}
                }
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(id) = s.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                let waiting = match s.jobs.remove(&id) {
                    Some(Slot::Transit(t)) => match *t {
                        Transit::Passivating { waiting, .. } | Transit::Waking { waiting } => {
                            waiting
                        }
                    },
                    _ => Vec::new(),
                };
                if !s.shutting_down {
                    s.restart(&myself, id.clone(), err.to_string()).await;
                }
                for msg in waiting {
                    s.deliver(&myself, id.clone(), msg, None);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl SupervisorState {
    /// Checks a spec against this scheduler: its handler must exist, and its
    /// schedule compiles in the default zone.
    fn check(&self, spec: &JobSpec) -> Result<crate::schedule::Schedule, Error> {
        if !self.handlers.contains(&spec.handler) {
            return Err(Error::UnknownHandler(spec.handler.clone()));
        }
        let schedule = spec.compile(self.rt.config.default_tz)?;
        spec.check_limits()?;
        Ok(schedule)
    }

    /// Persists a new job, then spawns its actor. The reply comes from the
    /// registry once the record is durable; with the private in-memory store
    /// (nothing to make durable, nobody else reading it) it comes once the
    /// actor runs, without waiting for the registry, which sees the job
    /// before any later query.
    /// Adds a job, paused with its note when `paused` is set.
    async fn add(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: Arc<JobSpec>,
        paused: Option<Option<String>>,
        reply: RpcReplyPort<Result<(), Error>>,
    ) {
        let schedule = match self.check(&spec) {
            Ok(schedule) => schedule,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let (ack, reply) = if self.rt.updates.is_private() {
            (Ack::None, Some(reply))
        } else {
            (Ack::Reply(reply), None)
        };
        let now = self.rt.clock.now();
        // A new job's slots count from now (a one-shot's passed instant
        // excepted: see `slots_counted_after`), and the record says so: a
        // restart after a crash then catches up (misfire policy) the slots
        // after the add, instead of counting from the restart.
        let mut first = JobState {
            last_slot: Some(schedule.slots_counted_after(now)),
            ..JobState::default()
        };
        // Added paused: the events say so after `Added`, as for a pause.
        let pause_event = paused.map(|note| {
            first.paused = Some(crate::status::PauseInfo {
                note: note.clone(),
                since: now,
            });
            EventKind::Paused { note }
        });
        if let Some(next) = self.next_fire_without_actor(&schedule, &first, now) {
            // Far from its first fire: no actor until shortly before it.
            first.next_fire = Some(next);
            self.rt.updates.push(RegistryMsg::PutJob {
                spec: spec.clone(),
                state: Box::new(first),
                orphaned: false,
                ack,
            });
            self.rt.events.publish(&spec.id, now, EventKind::Added);
            if let Some(kind) = pause_event {
                self.rt.events.publish(&spec.id, now, kind);
            }
            self.start_passive(&spec, Some(next), now);
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        }
        self.rt.updates.push(RegistryMsg::PutJob {
            spec: spec.clone(),
            state: Box::new(first.clone()),
            orphaned: false,
            ack,
        });
        self.rt.events.publish(&spec.id, now, EventKind::Added);
        if let Some(kind) = pause_event {
            self.rt.events.publish(&spec.id, now, kind);
        }
        let spawned = self.spawn_compiled(myself, spec.clone(), schedule, first, Start::Fresh);
        // The supervisor goes on with its next message while the actor
        // starts; a reply that waits for the actor is sent once it runs.
        match spawned {
            Ok(started) => {
                if let Some(reply) = reply {
                    tokio::spawn(async move {
                        let result = started.wait().await;
                        if let Err(e) = &result {
                            tracing::error!(job_id = %spec.id, error = %e, "cannot start job actor");
                        }
                        let _ = reply.send(result);
                    });
                }
            }
            Err(e) => {
                tracing::error!(job_id = %spec.id, error = %e, "cannot start job actor");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }

    /// The next fire of a job in `state` that needs no actor yet (see
    /// [`crate::passive::plan_without_actor`]).
    fn next_fire_without_actor(
        &self,
        schedule: &crate::schedule::Schedule,
        state: &JobState,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        crate::passive::plan_without_actor(self.rt.config.passivate_after, schedule, state, now)
    }

    /// Starts a job passive, without an actor (added or restored so): its
    /// slot and wake-up timer for `next_fire`, as a passivated actor leaves
    /// them, its event subscriptions, and its state packed in the registry
    /// from now on.
    fn start_passive(
        &mut self,
        spec: &JobSpec,
        next_fire: Option<chrono::DateTime<chrono::Utc>>,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        const GENERATION: u64 = 1;
        let target = TimerTarget::new(spec.id.clone(), None);
        target.set_passive(GENERATION);
        if let Some(next) = next_fire {
            let go_off = crate::passive::timer_instant(&self.rt.config, next, now);
            let deadline = crate::clock::deadline_for(now, go_off);
            self.rt.timer.arm(
                deadline,
                target.clone(),
                crate::timer::TimerKind::Schedule,
                GENERATION,
            );
        }
        tracing::debug!(job_id = %spec.id, next_fire = ?next_fire, "job added passive");
        self.jobs
            .insert(spec.id.clone(), Slot::Passive { target, next_fire });
        self.listen(spec);
        self.rt
            .updates
            .push(RegistryMsg::Passivated(spec.id.clone()));
    }

    fn spawn_job(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: Arc<JobSpec>,
        state: JobState,
        start: Start,
    ) -> Result<Starting, Error> {
        let schedule = spec.compile(self.rt.config.default_tz)?;
        self.spawn_compiled(myself, spec, schedule, state, start)
    }

    /// Spawns a job's actor with its schedule already compiled, without
    /// waiting for its `pre_start` (messages sent meanwhile wait in its
    /// mailbox); [`Starting::wait`] waits for it.
    fn spawn_compiled(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: Arc<JobSpec>,
        schedule: crate::schedule::Schedule,
        state: JobState,
        start: Start,
    ) -> Result<Starting, Error> {
        let target = TimerTarget::new(spec.id.clone(), None);
        let args = JobArgs {
            handler: self.handlers.get(&spec.handler),
            spec: spec.clone(),
            schedule,
            state,
            runtime: self.rt.clone(),
            restored: start == Start::Restored,
            reactivated: start == Start::Reactivated,
            target: target.clone(),
        };
        let (job, started) =
            ractor::ActorRuntime::spawn_linked_instant(None, JobActor, args, myself.get_cell())
                .map_err(|e| Error::Store(format!("job actor failed to start: {e}")))?;
        self.by_actor.insert(job.get_id(), spec.id.clone());
        self.jobs
            .insert(spec.id.clone(), Slot::Live { actor: job, target });
        if start != Start::Reactivated {
            self.listen(&spec);
        }
        Ok(Starting(started))
    }

    /// Delivers a message to a job: to its actor, respawning a passive one
    /// first; kept in order while the job is between live and passive. A
    /// job with no entry answers with the error for `action` (`None`:
    /// unknown job).
    fn deliver(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: JobId,
        msg: JobMsg,
        action: Option<&'static str>,
    ) {
        match self.jobs.get_mut(&id) {
            Some(Slot::Live { actor, .. }) => {
                let actor = actor.clone();
                if matches!(msg, JobMsg::Remove(_)) {
                    self.forget(&id, &actor);
                    if self.route(&id, &actor, msg) {
                        self.removing.push(Removing {
                            actor: actor.get_id(),
                            id,
                            deferred: Vec::new(),
                        });
                    }
                } else {
                    self.route(&id, &actor, msg);
                }
            }
            Some(Slot::Transit(t)) => match &mut **t {
                Transit::Passivating { waiting, .. } | Transit::Waking { waiting } => {
                    waiting.push(msg)
                }
            },
            Some(Slot::Passive { .. }) => match msg {
                JobMsg::Remove(reply) => self.remove_passive(id, reply),
                // A passive job has no run in flight: no need to wake it.
                JobMsg::CancelRun { run_id, reply } => {
                    let _ = reply.send(Err(Error::UnknownRun(run_id)));
                }
                msg => self.reactivate(myself, id, vec![msg]),
            },
            None => {
                if let Some(removing) = self.removing.iter_mut().find(|r| r.id == id) {
                    // Its actor has not stopped yet, so its removal may not
                    // be queued for the store: the message waits for that,
                    // as an add of the id does (then `UnknownJob`, or the
                    // job added meanwhile), so that whoever waits for the
                    // store after this answer waits for the removal too
                    // (a bulk pause reporting the job removed).
                    removing.deferred.push(SupervisorMsg::Forward(id, msg));
                    return;
                }
                let err = match action {
                    Some(action) => self.missing(id, action),
                    None => Error::UnknownJob(id),
                };
                reject_job_msg(msg, err);
            }
        }
    }

    /// A passive job being woken when the shutdown came: not respawned; the
    /// messages that waited for it answer `ShutDown`.
    fn not_woken(&mut self, id: JobId) {
        let waking = matches!(self.jobs.get(&id), Some(Slot::Transit(t)) if matches!(**t, Transit::Waking { .. }));
        if !waking {
            return;
        }
        if let Some(Slot::Transit(t)) = self.jobs.remove(&id) {
            if let Transit::Waking { waiting } = *t {
                tracing::debug!(job_id = %id, waiting = waiting.len(), "passive job not woken: shutting down");
                for msg in waiting {
                    reject_job_msg(msg, Error::ShutDown);
                }
            }
        }
    }

    /// A job whose actor is being removed: no more routing to it.
    fn forget(&mut self, id: &JobId, actor: &ActorRef<JobMsg>) {
        self.jobs.remove(id);
        self.by_actor.remove(&actor.get_id());
        self.unlisten(id);
    }

    /// Removes a passive job without respawning it: what its actor would
    /// have done (nothing runs, no timer is left).
    fn remove_passive(&mut self, id: JobId, reply: RpcReplyPort<Result<(), Error>>) {
        if let Some(Slot::Passive { target, .. }) = self.jobs.remove(&id) {
            target.kill();
        }
        self.unlisten(&id);
        tracing::debug!(job_id = %id, "passive job removed");
        self.rt
            .events
            .publish(&id, self.rt.clock.now(), EventKind::Removed);
        self.rt.updates.push(RegistryMsg::Remove {
            id,
            ack: Ack::Reply(reply),
        });
    }

    /// A job actor reported itself idle and far from its next fire: routing
    /// to it stops (messages wait), and it is asked to passivate.
    fn idle(&mut self, id: JobId, actor_id: ActorId, next_fire: Option<DateTime<Utc>>) {
        let Some(slot) = self.jobs.get_mut(&id) else {
            return;
        };
        let Slot::Live { actor, .. } = slot else {
            return;
        };
        if actor.get_id() != actor_id {
            return; // an earlier incarnation
        }
        let placeholder = Slot::Transit(Box::new(Transit::Waking {
            waiting: Vec::new(),
        }));
        let Slot::Live { actor, target } = std::mem::replace(slot, placeholder) else {
            return;
        };
        if actor.cast(JobMsg::Passivate).is_err() {
            *slot = Slot::Live { actor, target };
            return;
        }
        *slot = Slot::Transit(Box::new(Transit::Passivating {
            actor,
            target,
            next_fire,
            waiting: Vec::new(),
        }));
    }

    /// A job actor asked to passivate is busy again: routing resumes, with
    /// the messages that waited.
    fn stay_live(&mut self, myself: &ActorRef<SupervisorMsg>, id: JobId, actor_id: ActorId) {
        let Some(Slot::Transit(t)) = self.jobs.get(&id) else {
            return;
        };
        if !matches!(&**t, Transit::Passivating { actor, .. } if actor.get_id() == actor_id) {
            return;
        }
        let Some(Slot::Transit(t)) = self.jobs.remove(&id) else {
            return;
        };
        if let Transit::Passivating {
            actor,
            target,
            waiting,
            ..
        } = *t
        {
            self.jobs.insert(id.clone(), Slot::Live { actor, target });
            for msg in waiting {
                self.deliver(myself, id.clone(), msg, None);
            }
        }
    }

    /// Starts respawning a passive job: its state comes from the registry
    /// (asked off the supervisor's turn); `waiting` is delivered after.
    fn reactivate(&mut self, myself: &ActorRef<SupervisorMsg>, id: JobId, waiting: Vec<JobMsg>) {
        if let Some(Slot::Passive { target, .. }) = self.jobs.get(&id) {
            // Its wake-up timer, if still pending, is of no use any more.
            target.kill();
        }
        tracing::debug!(job_id = %id, "waking passive job");
        self.jobs.insert(
            id.clone(),
            Slot::Transit(Box::new(Transit::Waking { waiting })),
        );
        let registry = self.rt.registry.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let snapshot = registry
                .call(
                    |r| RegistryMsg::Snapshot(id.clone(), r),
                    Some(Duration::from_secs(30)),
                )
                .await;
            let snapshot = match snapshot {
                Ok(ractor::rpc::CallResult::Success(found)) => {
                    Ok(found.map(|(spec, state)| (spec, Box::new(state))))
                }
                Ok(other) => Err(format!("the registry did not answer: {other:?}")),
                Err(e) => Err(format!("the registry did not answer: {e}")),
            };
            let _ = myself.cast(SupervisorMsg::Woken { id, snapshot });
        });
    }

    /// The registry's state for a job being woken: its actor is respawned
    /// and the messages that waited are delivered.
    async fn woken(&mut self, myself: &ActorRef<SupervisorMsg>, id: JobId, snapshot: WakeSnapshot) {
        let waiting = match self.jobs.get(&id) {
            Some(Slot::Transit(t)) if matches!(**t, Transit::Waking { .. }) => {
                match self.jobs.remove(&id) {
                    Some(Slot::Transit(t)) => match *t {
                        Transit::Waking { waiting } => waiting,
                        Transit::Passivating { .. } => return,
                    },
                    _ => return,
                }
            }
            _ => return,
        };
        let spawned = match snapshot {
            Ok(Some((spec, state))) => self
                .spawn_job(myself, spec, *state, Start::Reactivated)
                .map(Starting::detach)
                .map_err(|e| e.to_string()),
            Ok(None) => {
                // Removed meanwhile: nothing to wake.
                for msg in waiting {
                    reject_job_msg(msg, Error::UnknownJob(id.clone()));
                }
                return;
            }
            Err(reason) => Err(reason),
        };
        if let Err(reason) = spawned {
            // The job is still in the registry: it is marked failed, as when
            // its restart budget runs out, so that status shows it and
            // upsert (a revival) or remove still work.
            tracing::error!(job_id = %id, error = %reason, "cannot wake passive job");
            self.give_up(&id, format!("cannot wake the passive job: {reason}"));
            for msg in waiting {
                reject_job_msg(msg, self.missing(id.clone(), "wake"));
            }
            return;
        }
        for msg in waiting {
            self.deliver(myself, id.clone(), msg, None);
        }
    }

    /// The wall clock stepped: live jobs re-plan; passive jobs' wake-up
    /// timers are armed again against the new clock.
    fn clock_stepped(&mut self) {
        let lead = chrono::Duration::from_std(crate::passive::effective_lead(&self.rt.config))
            .unwrap_or(chrono::Duration::zero());
        for slot in self.jobs.values_mut() {
            match slot {
                Slot::Live { actor, .. } => {
                    let _ = actor.cast(JobMsg::Replan);
                }
                Slot::Transit(t) => match &mut **t {
                    Transit::Passivating { waiting, .. } | Transit::Waking { waiting } => {
                        waiting.push(JobMsg::Replan)
                    }
                },
                Slot::Passive {
                    target,
                    next_fire: Some(next),
                } => {
                    self.wake_generation += 1;
                    if target.rearm_passive(self.wake_generation) {
                        // What a live job's re-plan announces: the same slot.
                        if self.rt.events.has_subscribers() {
                            self.rt.events.publish(
                                target.id(),
                                self.rt.clock.now(),
                                EventKind::Replanned {
                                    next_fire: Some(*next),
                                },
                            );
                        }
                        let deadline =
                            crate::clock::deadline_for(self.rt.clock.now(), *next - lead);
                        self.rt.timer.arm(
                            deadline,
                            target.clone(),
                            crate::timer::TimerKind::Schedule,
                            self.wake_generation,
                        );
                    }
                }
                Slot::Passive { .. } => {}
            }
        }
    }

    /// Indexes the events a job listens to (replacing its earlier entries).
    fn listen(&mut self, spec: &JobSpec) {
        self.unlisten(&spec.id);
        for name in &spec.listens {
            self.listeners
                .entry(name.clone())
                .or_default()
                .push(spec.id.clone());
        }
    }

    fn unlisten(&mut self, id: &JobId) {
        self.listeners.retain(|_, ids| {
            ids.retain(|j| j != id);
            !ids.is_empty()
        });
    }

    /// Sends the event to every listening job and answers with what each did.
    fn emit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        name: String,
        payload: serde_json::Value,
        reply: RpcReplyPort<Result<Vec<(JobId, TriggerOutcome)>, Error>>,
    ) {
        // Refused before any job fires: a run's state keeps the payload,
        // and one the store cannot read back would get the job's record
        // quarantined at the next start.
        if let Err(reason) = crate::payload::check_depth(&payload) {
            tracing::warn!(event = %name, %reason, "event refused");
            let _ = reply.send(Err(Error::InvalidPayload(reason)));
            return;
        }
        let payload = Arc::new(payload);
        let mut waits = Vec::new();
        let ids: Vec<JobId> = self
            .listeners
            .get(&name)
            .into_iter()
            .flatten()
            .filter(|id| self.jobs.contains_key(*id))
            .cloned()
            .collect();
        for id in ids {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let msg = JobMsg::Event {
                name: name.clone(),
                payload: payload.clone(),
                reply: tx.into(),
            };
            self.deliver(myself, id.clone(), msg, None);
            waits.push((id, rx));
        }
        tokio::spawn(async move {
            let mut out = Vec::with_capacity(waits.len());
            let mut store_error = None;
            for (id, rx) in waits {
                match rx.await {
                    Ok(Ok(outcome)) => out.push((id, outcome)),
                    // A fire whose claim could not be made durable: the
                    // answer must not say the event was taken.
                    Ok(Err(Error::Store(e))) => {
                        tracing::error!(job_id = %id, event = %name, error = %e, "event fire not durable");
                        store_error.get_or_insert(Error::Store(format!("job {id}: {e}")));
                    }
                    // A job removed, failed or stopping meanwhile does not
                    // fire, as one that no longer listens.
                    Ok(Err(_)) | Err(_) => {}
                }
            }
            let _ = reply.send(store_error.map_or(Ok(out), Err));
        });
    }

    /// Gives up on a job that has no actor: marked failed in the registry
    /// (status shows it; upsert revives it, remove removes it), which
    /// publishes `Interrupted` for its runs in flight, then `GaveUp`.
    fn give_up(&mut self, id: &JobId, reason: String) {
        // Its runs still going are recorded as interrupted: they stop.
        for run in self.rt.orphan_tokens.take(id) {
            run.token.cancel();
            // A run waiting for admission stops waiting; one admitted whose
            // message no actor will read gives its place back.
            if let Some(tags) = run.admission {
                let admission = &self.rt.admission;
                if !admission.withdraw(run.run_id) && admission.take_admitted(run.run_id) {
                    admission.release(&tags);
                }
            }
        }
        self.rt.updates.push(RegistryMsg::MarkFailed {
            id: id.clone(),
            reason,
            at: self.rt.clock.now(),
        });
        self.unlisten(id);
        self.failed.insert(id.clone());
    }

    /// Respawns a failed job actor from the registry's latest state, within
    /// the restart budget.
    async fn restart(&mut self, myself: &ActorRef<SupervisorMsg>, id: JobId, reason: String) {
        let now = tokio::time::Instant::now();
        let recent = self.restarts.entry(id.clone()).or_default();
        while recent.front().is_some_and(|t| now - *t > RESTART_WINDOW) {
            recent.pop_front();
        }
        if recent.len() >= MAX_RESTARTS {
            tracing::error!(job_id = %id, %reason, "restart budget exhausted: job marked failed");
            self.give_up(&id, reason);
            return;
        }
        recent.push_back(now);
        tracing::warn!(job_id = %id, %reason, "job actor failed: restarting");
        let snapshot = self
            .rt
            .registry
            .call(
                |r| RegistryMsg::Snapshot(id.clone(), r),
                Some(Duration::from_secs(5)),
            )
            .await;
        let Ok(ractor::rpc::CallResult::Success(Some((spec, state)))) = snapshot else {
            tracing::error!(job_id = %id, "no snapshot to restart from");
            return;
        };
        match self
            .spawn_job(myself, spec, state, Start::Fresh)
            .map(Starting::detach)
        {
            Ok(()) => {
                self.rt
                    .events
                    .publish(&id, self.rt.clock.now(), EventKind::Restarted { reason })
            }
            Err(e) => tracing::error!(job_id = %id, error = %e, "restart failed"),
        }
    }

    /// The error for a request about a job with no actor: a failed job is
    /// in a state that refuses it; any other id is unknown.
    fn missing(&self, id: JobId, action: &'static str) -> Error {
        if self.failed.contains(&id) {
            Error::InvalidState {
                id,
                action,
                state: "failed".into(),
            }
        } else {
            Error::UnknownJob(id)
        }
    }

    /// Upsert of a failed job: a new spec is a new chance. The actor is
    /// spawned again from the registry's state, with the failure cleared.
    async fn revive(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: Arc<JobSpec>,
    ) -> Result<(), Error> {
        self.check(&spec)?;
        let snapshot = self
            .rt
            .registry
            .call(
                |r| RegistryMsg::Snapshot(spec.id.clone(), r),
                Some(Duration::from_secs(30)),
            )
            .await;
        let Ok(ractor::rpc::CallResult::Success(Some((_, mut state)))) = snapshot else {
            return Err(Error::UnknownJob(spec.id.clone()));
        };
        state.failed = None;
        state.in_flight.clear();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.rt.updates.push(RegistryMsg::PutJob {
            spec: spec.clone(),
            state: Box::new(state.clone()),
            orphaned: false,
            ack: Ack::Reply(tx.into()),
        });
        self.failed.remove(&spec.id);
        self.restarts.remove(&spec.id);
        self.spawn_job(myself, spec, state, Start::Fresh)?
            .wait()
            .await?;
        rx.await.unwrap_or(Err(Error::ShutDown))
    }

    /// Sends a message to a job's actor; false (the message answered
    /// `UnknownJob`) if the actor is gone.
    fn route(&self, id: &JobId, job: &ActorRef<JobMsg>, msg: JobMsg) -> bool {
        if let Err(ractor::MessagingErr::SendErr(msg)) = job.cast(msg) {
            tracing::warn!(job_id = %id, "job actor is gone");
            reject_job_msg(msg, Error::UnknownJob(id.clone()));
            return false;
        }
        true
    }

    /// Stops every job (timers off, runs cancelled), waits up to `grace` for
    /// their runs to end, flushes the store, then answers.
    /// Stops every job: with a `drain`, first lets the runs in flight end
    /// by themselves for up to `drain` (no new fire starts); then cancels
    /// the runs left and waits up to `grace` for them; then flushes.
    fn shutdown(&mut self, drain: Duration, grace: Duration, reply: RpcReplyPort<ShutdownReport>) {
        // With each actor, whether it was asked to passivate: such an actor
        // may stop on its own before it reads `Stop` (which is then dropped
        // unread), and it only passivates with nothing in flight.
        let mut actors: Vec<(JobId, ActorRef<JobMsg>, bool)> = self
            .jobs
            .iter()
            .filter_map(|(id, slot)| match slot {
                Slot::Live { actor, .. } => Some((id.clone(), actor.clone(), false)),
                Slot::Transit(t) => match &**t {
                    Transit::Passivating { actor, .. } => Some((id.clone(), actor.clone(), true)),
                    Transit::Waking { .. } => None,
                },
                Slot::Passive { .. } => None,
            })
            .collect();
        // The report lists jobs by id, the same from one shutdown to the next.
        actors.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // `Drain` or `Stop` sent now, before any later message of this
        // supervisor: no timer or queued fire starts a run once the shutdown
        // is read.
        let mut drains = Vec::new();
        let mut stopped = None;
        if drain.is_zero() {
            stopped = Some(send_stops(&actors));
        } else {
            for (_, job, _) in &actors {
                let (idle_tx, idle_rx) = tokio::sync::oneshot::channel();
                if job
                    .cast(JobMsg::Drain {
                        idle: idle_tx.into(),
                    })
                    .is_ok()
                {
                    drains.push(idle_rx);
                }
            }
        }
        let stopping = Stopping {
            cut: Arc::new(tokio::sync::Notify::new()),
            waiting: Arc::default(),
        };
        let (cut, waiting) = (stopping.cut.clone(), stopping.waiting.clone());
        self.stopping = Some(stopping);
        let registry = self.rt.registry.clone();
        tokio::spawn(async move {
            let drained = deadline_in(drain);
            let cut_short = cut.notified();
            tokio::pin!(cut_short);
            for idle in drains {
                // An actor that stopped (passivated) was idle.
                tokio::select! {
                    _ = tokio::time::timeout_at(drained, idle) => {}
                    () = &mut cut_short => {
                        tracing::info!("drain cut short by a shutdown");
                        break;
                    }
                }
            }
            let waits = stopped.unwrap_or_else(|| send_stops(&actors));
            let deadline = deadline_in(grace);
            let mut report = ShutdownReport::default();
            for (id, cancelled, idle, passivating) in waits {
                if let Ok(runs) = cancelled.await {
                    report
                        .cancelled
                        .extend(runs.into_iter().map(|r| (id.clone(), r)));
                }
                match tokio::time::timeout_at(deadline, idle).await {
                    Ok(Ok(())) => {}
                    // Passivated before it read `Stop`: it was idle.
                    Ok(Err(_)) if passivating => {}
                    _ => report.unfinished_jobs.push(id),
                }
            }
            for (_, job, _) in actors {
                job.stop(Some("scheduler shutdown".into()));
            }
            let _ = registry
                .call(RegistryMsg::Flush, Some(Duration::from_secs(30)))
                .await;
            let others = {
                let mut joined = waiting.lock().unwrap_or_else(|e| e.into_inner());
                joined.report = Some(report.clone());
                std::mem::take(&mut joined.replies)
            };
            for other in others {
                let _ = other.send(report.clone());
            }
            let _ = reply.send(report);
        });
    }

    /// A `shutdown` (`cut`: it cuts a drain short) or a drain read while a
    /// shutdown is in progress: answered with that shutdown's report.
    fn join_shutdown(&mut self, reply: RpcReplyPort<ShutdownReport>, cut: bool) {
        let Some(stopping) = &self.stopping else {
            drop(reply);
            return;
        };
        let mut joined = stopping.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(report) = &joined.report {
            // Finished: its first caller may be gone without stopping this
            // supervisor.
            let _ = reply.send(report.clone());
            return;
        }
        if cut {
            stopping.cut.notify_one();
        }
        joined.replies.push(reply);
    }
}

/// The instant `after` from now, on tokio's clock; a duration past what
/// the clock can hold (`Duration::MAX`: no limit) is about 30 years away,
/// as tokio's own far future, instead of an overflow panic.
fn deadline_in(after: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// What a shutdown waits for from each job it sent `Stop`: the runs
/// cancelled, the end of its runs, and whether it was passivating.
type StopWait = (
    JobId,
    tokio::sync::oneshot::Receiver<Vec<RunId>>,
    tokio::sync::oneshot::Receiver<()>,
    bool,
);

/// Sends every job actor `Stop`.
fn send_stops(actors: &[(JobId, ActorRef<JobMsg>, bool)]) -> Vec<StopWait> {
    let mut waits = Vec::with_capacity(actors.len());
    for (id, job, passivating) in actors {
        let (cancelled_tx, cancelled_rx) = tokio::sync::oneshot::channel();
        let (idle_tx, idle_rx) = tokio::sync::oneshot::channel();
        let msg = JobMsg::Stop {
            cancelled: cancelled_tx.into(),
            idle: idle_tx.into(),
        };
        if job.cast(msg).is_ok() {
            waits.push((id.clone(), cancelled_rx, idle_rx, *passivating));
        }
    }
    waits
}

/// Maps the answer of a forwarded request into the caller's reply type once
/// it arrives, without blocking the supervisor.
fn forward_reply<T: Send + 'static, U: Send + 'static>(
    rx: tokio::sync::oneshot::Receiver<Result<T, Error>>,
    reply: RpcReplyPort<Result<U, Error>>,
    map: impl FnOnce(Result<T, Error>) -> Result<U, Error> + Send + 'static,
) {
    tokio::spawn(async move {
        let r = rx.await.unwrap_or(Err(Error::ShutDown));
        let _ = reply.send(map(r));
    });
}

fn reject_after_shutdown(msg: SupervisorMsg) {
    fn e<T>() -> Result<T, Error> {
        Err(Error::ShutDown)
    }
    match msg {
        SupervisorMsg::Add(_, r) | SupervisorMsg::Remove(_, r) => drop(r.send(e())),
        SupervisorMsg::AddPaused { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::Pause { reply, .. } | SupervisorMsg::Resume { reply, .. } => {
            drop(reply.send(e()))
        }
        SupervisorMsg::SetLastResult { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::Upsert(_, r) => drop(r.send(e())),
        SupervisorMsg::Trigger(_, r) | SupervisorMsg::RetryRun(_, r) => drop(r.send(e())),
        SupervisorMsg::TriggerWith { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::Cancel(_, r) => drop(r.send(e())),
        SupervisorMsg::CancelRun { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::Backfill { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::Emit { reply, .. } => drop(reply.send(e())),
        // No answer at all: a caller's `call` fails as for a stopped
        // supervisor (`ShutDown`), instead of reading empty metrics or an
        // empty list as the truth, or a second shutdown stopping the
        // actors while the first still waits for its runs and its flush.
        SupervisorMsg::Metrics(r) => drop(r),
        SupervisorMsg::Status(_, r) => drop(r.send(e())),
        SupervisorMsg::Preview { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::History { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::List(r) => drop(r),
        SupervisorMsg::Shutdown(_, r) | SupervisorMsg::Drain { reply: r, .. } => drop(r),
        SupervisorMsg::Forward(_, msg) => drop(msg),
        SupervisorMsg::Woken { id, .. } => {
            tracing::debug!(job_id = %id, "passive job not woken: shutting down");
        }
        SupervisorMsg::ClockStepped
        | SupervisorMsg::InjectCrash(_)
        | SupervisorMsg::Idle { .. }
        | SupervisorMsg::StayLive { .. }
        | SupervisorMsg::Wake(_) => {}
    }
}

fn reject_job_msg(msg: JobMsg, err: Error) {
    match msg {
        JobMsg::Pause { reply, .. } | JobMsg::Resume { reply, .. } => drop(reply.send(Err(err))),
        JobMsg::SetLastResult { reply, .. } => drop(reply.send(Err(err))),
        JobMsg::Remove(reply) | JobMsg::Update { reply, .. } => drop(reply.send(Err(err))),
        JobMsg::Trigger(reply)
        | JobMsg::TriggerWith { reply, .. }
        | JobMsg::RetryRun { reply, .. }
        | JobMsg::Event { reply, .. } => drop(reply.send(Err(err))),
        JobMsg::Cancel(reply) => drop(reply.send(Err(err))),
        JobMsg::CancelRun { reply, .. } => drop(reply.send(Err(err))),
        JobMsg::Backfill { reply, .. } => drop(reply.send(Err(err))),
        JobMsg::Preview { reply, .. } => drop(reply.send(Err(err))),
        _ => {}
    }
}

/// Compares the wall clock with tokio's clock every `clock_check_interval`;
/// a difference that changes by more than `clock_jump_threshold` is a step
/// (NTP correction, VM resume), and every job re-plans.
fn spawn_clock_watch(rt: &Arc<Runtime>, supervisor: ActorRef<SupervisorMsg>) {
    let clock = rt.clock.clone();
    let every = rt.config.clock_check_interval;
    let threshold =
        chrono::Duration::from_std(rt.config.clock_jump_threshold).unwrap_or(chrono::Duration::MAX);
    tokio::spawn(async move {
        let mono0 = tokio::time::Instant::now();
        let wall0 = clock.now();
        let skew = |clock: &dyn crate::clock::Clock| {
            let mono = chrono::Duration::from_std(mono0.elapsed()).unwrap_or(chrono::Duration::MAX);
            (clock.now() - wall0) - mono
        };
        let mut last = skew(&*clock);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = skew(&*clock);
            if (now - last).abs() > threshold
                && supervisor.cast(SupervisorMsg::ClockStepped).is_err()
            {
                return;
            }
            last = now;
            if supervisor.get_status() == ractor::ActorStatus::Stopped {
                return;
            }
        }
    });
}

/// A job actor being started: its `pre_start` runs on the runtime's workers
/// while the supervisor goes on.
struct Starting(tokio::task::JoinHandle<Result<tokio::task::JoinHandle<()>, ractor::SpawnErr>>);

impl Starting {
    /// Waits until the actor runs (its `pre_start` has returned).
    async fn wait(self) -> Result<(), Error> {
        match self.0.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::Store(format!("job actor failed to start: {e}"))),
            Err(e) => Err(Error::Store(format!("job actor failed to start: {e}"))),
        }
    }

    /// Lets the actor start on its own. Its `pre_start` cannot fail (it
    /// returns `Ok` always); were it to panic, the actor is gone and messages
    /// for it are answered as for a stopped actor.
    fn detach(self) {}
}
