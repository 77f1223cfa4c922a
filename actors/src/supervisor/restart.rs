//! Supervision of job actors: a failed actor is restarted from the
//! registry's latest state within the restart budget, past it the job is
//! given up on (marked failed), and an upsert revives a failed job.

use super::add::Starting;
use super::{Start, SupervisorMsg, SupervisorState, TARGET};
use crate::error::Error;
use crate::event::EventKind;
use crate::id::JobId;
use crate::registry::{Ack, RegistryMsg};
use crate::spec::JobSpec;
use ractor::{ActorId, ActorRef};
use std::sync::Arc;
use std::time::Duration;

/// At most this many restarts of one job actor within [`RESTART_WINDOW`];
/// past it the job is left stopped (a crash loop).
pub const MAX_RESTARTS: usize = 5;
/// The window of the restart budget.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// How long a restart waits for the registry's state of the job.
const RESTART_SNAPSHOT_WAIT: Duration = Duration::from_secs(5);
/// How long a revival or a wake-up waits for the registry's state.
pub(super) const WAKE_SNAPSHOT_WAIT: Duration = Duration::from_secs(30);

impl SupervisorState {
    /// Gives up on a job that has no actor: marked failed in the registry
    /// (status shows it; upsert revives it, remove removes it), which
    /// publishes `Interrupted` for its runs in flight, then `GaveUp`.
    pub(super) fn give_up(&mut self, id: &JobId, failed: Option<ActorId>, reason: String) {
        // Its runs still going are recorded as interrupted: they stop, the
        // failed actor's own once it parks them if it has not yet. A
        // prepared run's fire that the give-up counts is announced first
        // (see `Prepared::give_up`), before the registry's `Interrupted`.
        let at = self.rt.clock.now();
        for run in self.rt.orphan_tokens.give_up(id, failed, at) {
            run.stop(&self.rt, id, at);
        }
        self.rt.updates.push(RegistryMsg::MarkFailed {
            id: id.clone(),
            reason,
            at,
        });
        self.unlisten(id);
        self.failed.insert(id.clone());
    }

    /// Takes one restart of `id` from its budget: `false` if
    /// [`MAX_RESTARTS`] were made within [`RESTART_WINDOW`].
    fn take_restart(&mut self, id: &JobId) -> bool {
        let now = tokio::time::Instant::now();
        let recent = self.restarts.entry(id.clone()).or_default();
        while recent.front().is_some_and(|t| now - *t > RESTART_WINDOW) {
            recent.pop_front();
        }
        if recent.len() >= MAX_RESTARTS {
            return false;
        }
        recent.push_back(now);
        true
    }

    /// Finishes a removal whose job actor failed before it read `Remove`
    /// (the removal was not queued, and the actor's runs wait for a
    /// successor): the job is restarted from the registry's state, within
    /// the restart budget, its successor taking those runs, then removed
    /// as usual, `caller` answered by that removal. Past the budget, or
    /// with no state to restart from, it is given up on and removed as a
    /// failed job is. The adds and upserts of its id that waited go on
    /// after the removal, in order.
    pub(super) async fn finish_lost_removal(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: JobId,
        failed: ActorId,
        caller: ractor::RpcReplyPort<Result<(), Error>>,
        deferred: Vec<SupervisorMsg>,
    ) {
        tracing::warn!(target: TARGET, job_id = %id, "job actor failed before it read remove: restarted to remove it");
        let restarted = if self.take_restart(&id) {
            match stored(&self.rt.registry, &id, RESTART_SNAPSHOT_WAIT).await {
                Ok(Some((spec, state))) => self
                    .spawn_job(myself, spec, state, Start::Fresh)
                    .map(Starting::detach)
                    .map_err(|e| e.to_string()),
                Ok(None) => {
                    // Not in the registry: nothing to remove.
                    let _ = caller.send(Err(Error::UnknownJob(id)));
                    self.release(myself, deferred);
                    return;
                }
                Err(_) => Err("the registry gave no snapshot".to_owned()),
            }
        } else {
            Err("restart budget exhausted".to_owned())
        };
        match restarted {
            Ok(()) => {
                self.deliver(myself, id.clone(), crate::job::JobMsg::Remove(caller), None);
                self.after_removal(myself, &id, deferred);
            }
            Err(why) => {
                self.give_up(
                    &id,
                    Some(failed),
                    format!("failed before it read remove; {why}"),
                );
                self.remove(myself, id, caller);
                self.release(myself, deferred);
            }
        }
    }

    /// Sends the messages that waited for a removal back to the supervisor,
    /// in order, behind what it has to read.
    pub(super) fn release(&self, myself: &ActorRef<SupervisorMsg>, deferred: Vec<SupervisorMsg>) {
        for msg in deferred {
            if let Err(ractor::MessagingErr::SendErr(msg)) = myself.cast(msg) {
                super::shutdown::reject_after_shutdown(msg);
            }
        }
    }

    /// Messages that go on once the removal of `id` is queued: behind it in
    /// its `removing` entry if its actor is stopping for it, else back to
    /// this supervisor's mailbox at once (see `release`).
    pub(super) fn after_removal(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: &JobId,
        msgs: Vec<SupervisorMsg>,
    ) {
        match self.removing.iter_mut().find(|r| r.id == *id) {
            Some(removing) => removing.deferred.extend(msgs),
            None => self.release(myself, msgs),
        }
    }

    /// Respawns a failed job actor from the registry's latest state, within
    /// the restart budget.
    pub(super) async fn restart(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: JobId,
        failed: ActorId,
        reason: String,
    ) {
        if !self.take_restart(&id) {
            tracing::error!(target: TARGET, job_id = %id, %reason, "restart budget exhausted: job marked failed");
            self.give_up(&id, Some(failed), reason);
            return;
        }
        tracing::warn!(target: TARGET, job_id = %id, %reason, "job actor failed: restarting");
        let (spec, state) = match stored(&self.rt.registry, &id, RESTART_SNAPSHOT_WAIT).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                // Removed meanwhile: nothing to restart.
                tracing::debug!(target: TARGET, job_id = %id, "job removed before its restart");
                return;
            }
            Err(_) => {
                // Marked failed, so that it stays known here: status shows
                // why, `upsert` revives it and `remove` removes it (left
                // out of both maps, it was listed but `UnknownJob` to all).
                tracing::error!(target: TARGET, job_id = %id, "no snapshot to restart from: job marked failed");
                self.give_up(
                    &id,
                    Some(failed),
                    format!("{reason}; not restarted: the registry gave no snapshot"),
                );
                return;
            }
        };
        // The new actor announces `Restarted` first (until 2026-12-06 this
        // supervisor did, after the spawn, so events the new actor
        // published as it started, a missed slot caught up, came before).
        if let Err(e) = self
            .spawn_restarted(myself, spec, state, reason.clone())
            .map(Starting::detach)
        {
            tracing::error!(target: TARGET, job_id = %id, error = %e, "restart failed: job marked failed");
            self.give_up(&id, Some(failed), format!("{reason}; not restarted: {e}"));
        }
    }

    /// Upsert of a failed job: a new spec is a new chance. The actor is
    /// spawned again from the registry's state, with the failure cleared.
    /// A new schedule counts its slots from the upsert, as for an upsert of
    /// a job with an actor (see `JobActorState::update`).
    pub(super) async fn revive(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: Arc<JobSpec>,
    ) -> Result<(), Error> {
        let schedule = self.check(&spec)?;
        let Ok(Some((old, mut state))) =
            stored(&self.rt.registry, &spec.id, WAKE_SNAPSHOT_WAIT).await
        else {
            return Err(Error::UnknownJob(spec.id.clone()));
        };
        state.failed = None;
        state.in_flight.clear();
        if spec.schedule != old.schedule {
            state.reschedule(&schedule, self.rt.clock.now());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.rt.updates.push(RegistryMsg::PutJob {
            spec: spec.clone(),
            state: Box::new(state.clone()),
            orphaned: false,
            ack: Ack::Reply(tx.into()),
        });
        // An upsert: announced as one, before the revived actor's events.
        self.rt
            .events
            .publish(&spec.id, self.rt.clock.now(), EventKind::Updated);
        self.failed.remove(&spec.id);
        self.restarts.remove(&spec.id);
        self.spawn_job(myself, spec, state, Start::Fresh)?
            .wait()
            .await?;
        rx.await.unwrap_or(Err(Error::ShutDown))
    }
}

/// A job's spec and state as the registry holds them, for a restart, a
/// revival or a wake-up: `Ok(None)` if the registry has no such job, an
/// error if it gave no answer within `wait`.
pub(super) async fn stored(
    registry: &ActorRef<RegistryMsg>,
    id: &JobId,
    wait: Duration,
) -> Result<Option<(Arc<JobSpec>, crate::status::JobState)>, String> {
    match registry
        .call(|r| RegistryMsg::Snapshot(id.clone(), r), Some(wait))
        .await
    {
        Ok(ractor::rpc::CallResult::Success(found)) => Ok(found),
        Ok(other) => Err(format!("the registry did not answer: {other:?}")),
        Err(e) => Err(format!("the registry did not answer: {e}")),
    }
}
