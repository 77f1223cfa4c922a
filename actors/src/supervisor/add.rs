//! Adding jobs: checking a spec, `add` and `upsert`, a job started passive
//! when it is far from its first fire, and spawning job actors
//! (`Starting`, a job actor whose `pre_start` runs while the supervisor
//! goes on).

use super::{Start, SupervisorMsg, SupervisorState, Upserted, TARGET};
use crate::error::Error;
use crate::event::EventKind;
use crate::job::{JobActor, JobArgs, JobMsg};
use crate::passive::Slot;
use crate::registry::{Ack, RegistryMsg};
use crate::spec::JobSpec;
use crate::status::JobState;
use crate::timer::TimerTarget;
use ractor::{ActorRef, RpcReplyPort};
use std::sync::Arc;

impl SupervisorState {
    /// Checks a spec against this scheduler: its handler must exist, and its
    /// schedule compiles in the default zone.
    pub(super) fn check(&self, spec: &JobSpec) -> Result<crate::schedule::Schedule, Error> {
        if !self.handlers.contains(&spec.handler) {
            return Err(Error::UnknownHandler(spec.handler.clone()));
        }
        let schedule = spec.compile(self.rt.config.default_tz)?;
        spec.check_limits()?;
        Ok(schedule)
    }

    /// Adds a job, paused with its note when `paused` is set: persists it,
    /// then spawns its actor. The reply comes from the registry once the
    /// record is durable; with the private in-memory store (nothing to make
    /// durable, nobody else reading it) it comes once the actor runs,
    /// without waiting for the registry, which sees the job before any
    /// later query.
    pub(super) async fn add(
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
            first.paused = Some(Box::new(crate::status::PauseInfo {
                note: note.clone(),
                since: now,
            }));
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
        let spawned =
            self.spawn_compiled(myself, spec.clone(), schedule, first, Start::Fresh, None);
        // The supervisor goes on with its next message while the actor
        // starts; a reply that waits for the actor is sent once it runs.
        match spawned {
            Ok(started) => {
                if let Some(reply) = reply {
                    tokio::spawn(async move {
                        let result = started.wait().await;
                        if let Err(e) = &result {
                            tracing::error!(target: TARGET, job_id = %spec.id, error = %e, "cannot start job actor");
                        }
                        let _ = reply.send(result);
                    });
                }
            }
            Err(e) => {
                tracing::error!(target: TARGET, job_id = %spec.id, error = %e, "cannot start job actor");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }

    /// `SupervisorMsg::Upsert`: an existing job gets the new spec (its actor
    /// keeps its state), a failed job is revived, any other is added.
    pub(super) async fn upsert(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: Box<JobSpec>,
        reply: RpcReplyPort<Result<Upserted, Error>>,
    ) {
        if self.jobs.contains_key(&spec.id) {
            let spec = Arc::new(*spec);
            match self.check(&spec) {
                Ok(schedule) => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let msg = JobMsg::Update {
                        spec: spec.clone(),
                        schedule,
                        handler: self.handlers.get(&spec.handler),
                        reply: tx.into(),
                    };
                    self.listen(&spec);
                    self.deliver(myself, spec.id.clone(), msg, None);
                    forward_reply(rx, reply, |r| r.map(|()| Upserted::Updated));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        } else if self.failed.contains(&spec.id) {
            let result = self.revive(myself, Arc::new(*spec)).await;
            let _ = reply.send(result.map(|()| Upserted::Updated));
        } else {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.add(myself, Arc::new(*spec), None, tx.into()).await;
            forward_reply(rx, reply, |r| r.map(|()| Upserted::Added));
        }
    }

    /// The next fire of a job in `state` that needs no actor yet (see
    /// [`crate::passive::plan_without_actor`]).
    pub(super) fn next_fire_without_actor(
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
    pub(super) fn start_passive(
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
        tracing::debug!(target: TARGET, job_id = %spec.id, next_fire = ?next_fire, "job added passive");
        self.jobs
            .insert(spec.id.clone(), Slot::Passive { target, next_fire });
        self.listen(spec);
        self.rt
            .updates
            .push(RegistryMsg::Passivated(spec.id.clone()));
    }

    pub(super) fn spawn_job(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: Arc<JobSpec>,
        state: JobState,
        start: Start,
    ) -> Result<Starting, Error> {
        let schedule = spec.compile(self.rt.config.default_tz)?;
        self.spawn_compiled(myself, spec, schedule, state, start, None)
    }

    /// Spawns the actor of a job whose actor failed, from the registry's
    /// state: the new actor announces `Restarted` with `reason` before any
    /// event of its own (see `JobActor::pre_start`).
    pub(super) fn spawn_restarted(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: Arc<JobSpec>,
        state: JobState,
        reason: String,
    ) -> Result<Starting, Error> {
        let schedule = spec.compile(self.rt.config.default_tz)?;
        self.spawn_compiled(myself, spec, schedule, state, Start::Fresh, Some(reason))
    }

    /// Spawns a job's actor with its schedule already compiled, without
    /// waiting for its `pre_start` (messages sent meanwhile wait in its
    /// mailbox); [`Starting::wait`] waits for it.
    pub(super) fn spawn_compiled(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: Arc<JobSpec>,
        schedule: crate::schedule::Schedule,
        state: JobState,
        start: Start,
        restarted: Option<String>,
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
            restarted,
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

/// A job actor being started: its `pre_start` runs on the runtime's workers
/// while the supervisor goes on.
pub(super) struct Starting(
    tokio::task::JoinHandle<Result<tokio::task::JoinHandle<()>, ractor::SpawnErr>>,
);

impl Starting {
    /// Waits until the actor runs (its `pre_start` has returned).
    pub(super) async fn wait(self) -> Result<(), Error> {
        match self.0.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::Store(format!("job actor failed to start: {e}"))),
            Err(e) => Err(Error::Store(format!("job actor failed to start: {e}"))),
        }
    }

    /// Lets the actor start on its own. Its `pre_start` cannot fail (it
    /// returns `Ok` always); were it to panic, the actor is gone and messages
    /// for it are answered as for a stopped actor.
    pub(super) fn detach(self) {}
}
