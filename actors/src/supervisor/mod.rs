//! The supervisor actor: spawns and links one job actor per job, routes
//! control messages, restarts a failed job actor from the registry's latest
//! state, and runs the shutdown sequence.
//!
//! Every operation of the `Scheduler` handle is a [`SupervisorMsg`], so a
//! service can drive the scheduler with ractor's `call!` and `cast!`.

mod add;
mod clock;
mod events;
mod passivate;
mod restart;
mod route;
mod shutdown;

pub use restart::{MAX_RESTARTS, RESTART_WINDOW};
pub use shutdown::ShutdownReport;

use crate::error::Error;
use crate::handler::Handlers;
use crate::id::{JobId, RunId};
use crate::job::{JobMsg, TriggerOutcome};
use crate::metrics::Metrics;
use crate::passive::{Slot, Transit};
use crate::registry::RegistryMsg;
use crate::runtime::Runtime;
use crate::schedule::PreviewFire;
use crate::spec::JobSpec;
use crate::status::{JobState, JobStatus, RunRecord};
use crate::store::JobRecord;
use chrono::{DateTime, Utc};
use clock::spawn_clock_watch;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use route::reject_job_msg;
use shutdown::{reject_after_shutdown, Stopping};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// What `upsert` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upserted {
    /// The job did not exist and was added.
    Added,
    /// The job existed; its spec was replaced, its state kept.
    Updated,
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

/// The target of the supervisor's events, `cronactor_actors::supervisor`,
/// whichever of its files logs them: those below this one name it, since
/// their own path would be theirs.
const TARGET: &str = module_path!();

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
    /// The recent restarts of each job's actor (the restart budget), until
    /// the job is removed.
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
    /// Adds and upserts of jobs between live and passive whose `remove`
    /// waits with the job's other messages, and the messages for those
    /// jobs that came after them, in order: they go on once the removal
    /// has reached the job (then into its `removing` entry) or was answered
    /// without it (see `unhold`).
    held: HashMap<JobId, Vec<SupervisorMsg>>,
    shutting_down: bool,
    /// The shutdown in progress, once one was read.
    stopping: Option<Stopping>,
}

impl Drop for SupervisorState {
    fn drop(&mut self) {
        // The supervisor ended (a shutdown's end, a dropped last handle, a
        // simulated crash): the scheduler is gone, so its timers stop, and a
        // run prepared ahead of its slot is withdrawn rather than started at
        // the slot by a scheduler no longer there. Its claim stays in the
        // store, for the next start to find interrupted, as after a crash.
        self.rt.timer.close();
    }
}

/// A job actor stopping for `remove` (see `SupervisorState::removing`).
struct Removing {
    actor: ActorId,
    id: JobId,
    deferred: Vec<SupervisorMsg>,
    /// The caller of `remove`, until the removal answers it. The actor is
    /// sent a reply port of the supervisor's own, whose answer a task
    /// passes on: an actor that fails before it reads `Remove` loses that
    /// port with its mailbox, not the caller's, and the supervisor then
    /// finishes the removal with the caller (see `finish_lost_removal`).
    caller: RemoveCaller,
}

/// See [`Removing::caller`].
type RemoveCaller = Arc<std::sync::Mutex<Option<RpcReplyPort<Result<(), Error>>>>>;

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
            held: HashMap::new(),
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
                    s.give_up(&spec.id, None, format!("cannot restore the job: {e}"));
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
                None,
            ) {
                Ok(started) => starting.push((spec.id.clone(), started)),
                Err(e) => {
                    tracing::error!(job_id = %spec.id, error = %e, "cannot restore job");
                    s.give_up(&spec.id, None, format!("cannot restore the job: {e}"));
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
                SupervisorMsg::Woken { id, .. } => {
                    s.not_woken(id.clone());
                    s.unhold(&myself, &id);
                }
                // Another shutdown: it cuts a drain short, and is answered
                // with the report of the one in progress.
                SupervisorMsg::Shutdown(_, reply) => s.join_shutdown(reply, true),
                SupervisorMsg::Drain { reply, .. } => s.join_shutdown(reply, false),
                // Reads keep answering until the shutdown has answered (its
                // drain, its grace, its final flush), so that a service can
                // watch its runs end; anything else is refused.
                msg => {
                    let rest = if s.shutdown_answered() {
                        Err(msg)
                    } else {
                        s.read(msg)
                    };
                    if let Err(msg) = rest {
                        reject_after_shutdown(msg);
                    }
                }
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
        if let Some(id) = s.held_for(&msg) {
            // Handled once the removal waiting with the job reached it.
            s.held.entry(id).or_default().push(msg);
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
            SupervisorMsg::Upsert(spec, reply) => s.upsert(&myself, spec, reply).await,
            SupervisorMsg::Remove(id, reply) => s.remove(&myself, id, reply),
            SupervisorMsg::Pause { id, note, reply } => {
                s.deliver(&myself, id, JobMsg::Pause { note, reply }, Some("pause"))
            }
            SupervisorMsg::SetLastResult { id, value, reply } => {
                s.set_last_result(&myself, id, value, reply)
            }
            SupervisorMsg::Resume { id, note, reply } => {
                s.deliver(&myself, id, JobMsg::Resume { note, reply }, Some("resume"))
            }
            SupervisorMsg::Trigger(id, reply) => {
                s.deliver(&myself, id, JobMsg::Trigger(reply), Some("trigger"))
            }
            SupervisorMsg::TriggerWith { id, overlap, reply } => {
                s.trigger_with(&myself, id, overlap, reply)
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
            SupervisorMsg::RetryRun(run_id, reply) => s.retry_run(&myself, run_id, reply),
            SupervisorMsg::Emit {
                name,
                payload,
                reply,
            } => s.emit(&myself, name, payload, reply),
            SupervisorMsg::Preview { id, n, reply } => {
                s.deliver(&myself, id, JobMsg::Preview { n, reply }, Some("preview"))
            }
            msg @ (SupervisorMsg::Metrics(_)
            | SupervisorMsg::Status(..)
            | SupervisorMsg::List(_)
            | SupervisorMsg::History { .. }) => {
                // Always a read: nothing is given back.
                let _ = s.read(msg);
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
            SupervisorMsg::StayLive { id, actor } => {
                s.stay_live(&myself, id.clone(), actor);
                s.unhold(&myself, &id);
            }
            SupervisorMsg::Wake(id) => {
                if matches!(s.jobs.get(&id), Some(Slot::Passive { .. })) {
                    s.reactivate(&myself, id, Vec::new());
                }
            }
            SupervisorMsg::Woken { id, snapshot } => {
                s.woken(&myself, id.clone(), snapshot).await;
                s.unhold(&myself, &id);
            }
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
            let removing = s.removing.swap_remove(pos);
            let read_remove = matches!(
                &evt,
                SupervisionEvent::ActorTerminated(_, _, reason) if reason.as_deref() == Some(crate::job::REMOVED)
            );
            if !read_remove && !s.shutting_down {
                // It failed (or stopped) before it read `Remove`: the removal
                // is not queued, and its runs wait for a successor.
                let caller = removing
                    .caller
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                if let Some(caller) = caller {
                    s.finish_lost_removal(
                        &myself,
                        removing.id,
                        removing.actor,
                        caller,
                        removing.deferred,
                    )
                    .await;
                    return Ok(());
                }
            }
            if read_remove {
                // The job is gone: a job added under its id later is a new
                // one, with the whole restart budget.
                s.restarts.remove(&removing.id);
            }
            // A removed job's actor stopped, its removal queued: the adds
            // and upserts of its id that waited go on, in order.
            s.release(&myself, removing.deferred);
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
                                s.reactivate(&myself, id.clone(), waiting);
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
                s.unhold(&myself, &id);
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
                    s.restart(&myself, id.clone(), cell.get_id(), err.to_string())
                        .await;
                }
                for msg in waiting {
                    s.deliver(&myself, id.clone(), msg, None);
                }
                s.unhold(&myself, &id);
            }
            _ => {}
        }
        Ok(())
    }
}
