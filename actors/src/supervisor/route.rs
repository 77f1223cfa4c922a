//! Routing requests to their job: `deliver` (to its actor, waking a
//! passive one, or kept in order while it is between live and passive),
//! the reads the registry answers,
//! the requests checked before they are routed, a run found for
//! `retry_run`, the removal of a job, and the answers for a job with no
//! actor.

use super::{Removing, SupervisorMsg, SupervisorState, TARGET};
use crate::error::Error;
use crate::event::EventKind;
use crate::id::{JobId, RunId};
use crate::job::{JobMsg, TriggerOutcome};
use crate::passive::{Slot, Transit};
use crate::registry::{Ack, RegistryMsg};
use crate::status::Outcome;
use ractor::{ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::time::Duration;

impl SupervisorState {
    /// A read the registry answers (status, list, history, metrics), sent
    /// to it; during a shutdown also `preview` (see below); any other
    /// message is given back.
    pub(super) fn read(&self, msg: SupervisorMsg) -> Result<(), SupervisorMsg> {
        match msg {
            SupervisorMsg::Metrics(reply) => {
                let (live, passive) = crate::passive::count(&self.jobs);
                let (tx, rx) = tokio::sync::oneshot::channel();
                let _ = self.rt.registry.cast(RegistryMsg::Metrics(tx.into()));
                tokio::spawn(async move {
                    if let Ok(mut metrics) = rx.await {
                        metrics.jobs_live = live;
                        metrics.jobs_passive = passive;
                        let _ = reply.send(metrics);
                    }
                });
            }
            SupervisorMsg::Status(id, reply) => {
                let _ = self.rt.registry.cast(RegistryMsg::Status(id, reply));
            }
            SupervisorMsg::List(reply) => {
                let _ = self.rt.registry.cast(RegistryMsg::List(reply));
            }
            SupervisorMsg::History { id, limit, reply } => {
                let _ = self
                    .rt
                    .registry
                    .cast(RegistryMsg::History { id, limit, reply });
            }
            SupervisorMsg::Preview { id, n, reply } => {
                // Only during a shutdown (a live preview goes to the job's
                // actor): no fire starts in this process any more, so the
                // fires still to come are the schedule's after the job's
                // last slot, in the registry's state, which the next start
                // finds. Answered without the job's actor (one stopping, or
                // a passive job that must not wake). A failed job refuses
                // it, as outside a shutdown.
                if self.failed.contains(&id) {
                    let _ = reply.send(Err(self.missing(id, "preview")));
                    return Ok(());
                }
                let rt = self.rt.clone();
                tokio::spawn(async move {
                    let answer = match super::restart::stored(
                        &rt.registry,
                        &id,
                        super::restart::WAKE_SNAPSHOT_WAIT,
                    )
                    .await
                    {
                        Ok(Some((spec, state))) => {
                            spec.compile(rt.config.default_tz).map(|schedule| {
                                let after = rt.clock.now().max(state.last_slot.unwrap_or_default());
                                let n = n.min(crate::job::MAX_PREVIEW);
                                schedule.preview_remaining(after, state.counters.fires, n)
                            })
                        }
                        Ok(None) => Err(Error::UnknownJob(id)),
                        Err(_) => Err(Error::ShutDown),
                    };
                    let _ = reply.send(answer);
                });
            }
            other => return Err(other),
        }
        Ok(())
    }

    /// `SupervisorMsg::Remove`: through the job's actor; a failed job, with
    /// no actor, is removed here.
    pub(super) fn remove(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: JobId,
        reply: RpcReplyPort<Result<(), Error>>,
    ) {
        if self.jobs.contains_key(&id) {
            self.deliver(myself, id, JobMsg::Remove(reply), None);
        } else if self.failed.remove(&id) {
            self.queue_removal(id, reply);
        } else {
            let _ = reply.send(Err(Error::UnknownJob(id)));
        }
    }

    /// Announces the removal of a job with no actor (passive or failed)
    /// and queues it for the store; `reply` is answered once it is durable.
    /// Its restart budget goes with it: a job added again under the id is
    /// a new job.
    pub(super) fn queue_removal(&mut self, id: JobId, reply: RpcReplyPort<Result<(), Error>>) {
        self.restarts.remove(&id);
        self.rt
            .events
            .publish(&id, self.rt.clock.now(), EventKind::Removed);
        self.rt.updates.push(RegistryMsg::Remove {
            id,
            ack: Ack::Reply(reply),
        });
    }

    /// `SupervisorMsg::SetLastResult`: a value the store could not read
    /// back is refused before it reaches the job.
    pub(super) fn set_last_result(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: JobId,
        value: Option<serde_json::Value>,
        reply: RpcReplyPort<Result<(), Error>>,
    ) {
        match value.as_ref().map(crate::handler::check_result).transpose() {
            Err(e) => {
                let _ = reply.send(Err(e));
            }
            Ok(_) => self.deliver(
                myself,
                id,
                JobMsg::SetLastResult {
                    value: value.map(Arc::new),
                    reply,
                },
                Some("set the last result of"),
            ),
        }
    }

    /// `SupervisorMsg::TriggerWith`: an overlap policy a spec refuses is
    /// refused before it reaches the job.
    pub(super) fn trigger_with(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: JobId,
        overlap: crate::OverlapPolicy,
        reply: RpcReplyPort<Result<TriggerOutcome, Error>>,
    ) {
        match overlap.validate().and_then(|()| overlap.validate_limits()) {
            // Refused as in a new spec: `Concurrent { max: 0 }` would
            // start a run on an idle job, `Queue { max: 0 }` count a full
            // queue; a queue above `MAX_QUEUE` is refused too.
            Err(reason) => {
                tracing::debug!(target: TARGET, job_id = %id, %reason, "trigger with an invalid overlap policy");
                let _ = reply.send(Err(Error::InvalidSpec {
                    field: "overlap",
                    reason,
                }));
            }
            Ok(()) => self.deliver(
                myself,
                id,
                JobMsg::TriggerWith { overlap, reply },
                Some("trigger"),
            ),
        }
    }

    /// `SupervisorMsg::RetryRun`: the run is found in the registry (off the
    /// supervisor's turn), then forwarded to its job.
    pub(super) fn retry_run(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        run_id: RunId,
        reply: RpcReplyPort<Result<TriggerOutcome, Error>>,
    ) {
        let registry = self.rt.registry.clone();
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

    /// Delivers a message to a job: to its actor, respawning a passive one
    /// first; kept in order while the job is between live and passive. A
    /// job with no entry answers with the error for `action` (`None`:
    /// unknown job).
    pub(super) fn deliver(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: JobId,
        msg: JobMsg,
        action: Option<&'static str>,
    ) {
        match self.jobs.get_mut(&id) {
            Some(Slot::Live { actor, .. }) => {
                let actor = actor.clone();
                if let JobMsg::Remove(reply) = msg {
                    self.forget(&id, &actor);
                    let caller = relay_removal(reply);
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    // Not sent (the actor is gone, its end not yet read
                    // here): its end finishes the removal, as a failure
                    // before reading `Remove` does.
                    let _ = actor.cast(JobMsg::Remove(tx.into()));
                    pass_on(rx, caller.clone());
                    self.removing.push(Removing {
                        actor: actor.get_id(),
                        id,
                        deferred: Vec::new(),
                        caller,
                    });
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
                if let JobMsg::Remove(reply) = msg {
                    // A removal that waited for the job while it was given
                    // up on (its wake-up or its restart failed): removed as
                    // a failed job is, or `UnknownJob`.
                    self.remove(myself, id, reply);
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

    /// A job whose actor is being removed: no more routing to it.
    fn forget(&mut self, id: &JobId, actor: &ActorRef<JobMsg>) {
        self.jobs.remove(id);
        self.by_actor.remove(&actor.get_id());
        self.unlisten(id);
    }

    /// The error for a request about a job with no actor: a failed job is
    /// in a state that refuses it; any other id is unknown.
    pub(super) fn missing(&self, id: JobId, action: &'static str) -> Error {
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

    /// Sends a message to a job's actor; false (the message answered
    /// `UnknownJob`) if the actor is gone.
    fn route(&self, id: &JobId, job: &ActorRef<JobMsg>, msg: JobMsg) -> bool {
        if let Err(ractor::MessagingErr::SendErr(msg)) = job.cast(msg) {
            tracing::warn!(target: TARGET, job_id = %id, "job actor is gone");
            reject_job_msg(msg, Error::UnknownJob(id.clone()));
            return false;
        }
        true
    }
}

/// The caller of a `remove`, held for the removal (see `Removing::caller`).
fn relay_removal(reply: RpcReplyPort<Result<(), Error>>) -> super::RemoveCaller {
    Arc::new(std::sync::Mutex::new(Some(reply)))
}

/// Passes the answer of a removal on to its caller, unless the supervisor
/// took the caller meanwhile (the actor failed before it read `Remove`:
/// its reply port is then dropped unanswered, and nothing is passed on).
fn pass_on(rx: tokio::sync::oneshot::Receiver<Result<(), Error>>, caller: super::RemoveCaller) {
    tokio::spawn(async move {
        if let Ok(answer) = rx.await {
            let caller = caller.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(caller) = caller {
                let _ = caller.send(answer);
            }
        }
    });
}

pub(super) fn reject_job_msg(msg: JobMsg, err: Error) {
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
