//! Passivation and wake-up: a job actor idle and far from its next fire is
//! asked to passivate (`idle`), or stays (`stay_live`); a passive job is
//! woken for a message or its fire (`reactivate`, then `woken` with its
//! state from the registry), or not while shutting down (`not_woken`), and
//! removed without waking it. An add or upsert of a job between live and
//! passive whose `remove` waits with its other messages is held until that
//! removal reached it (`held_for`, `unhold`).

use super::add::Starting;
use super::route::reject_job_msg;
use super::{Start, SupervisorMsg, SupervisorState, WakeSnapshot, TARGET};
use crate::error::Error;
use crate::id::JobId;
use crate::job::JobMsg;
use crate::passive::{Slot, Transit};
use chrono::{DateTime, Utc};
use ractor::{ActorId, ActorRef, RpcReplyPort};

impl SupervisorState {
    /// A passive job being woken when the shutdown came: not respawned; the
    /// messages that waited for it answer `ShutDown`.
    pub(super) fn not_woken(&mut self, id: JobId) {
        let waking = matches!(self.jobs.get(&id), Some(Slot::Transit(t)) if matches!(**t, Transit::Waking { .. }));
        if !waking {
            return;
        }
        if let Some(Slot::Transit(t)) = self.jobs.remove(&id) {
            if let Transit::Waking { waiting } = *t {
                tracing::debug!(target: TARGET, job_id = %id, waiting = waiting.len(), "passive job not woken: shutting down");
                for msg in waiting {
                    reject_job_msg(msg, Error::ShutDown);
                }
            }
        }
    }

    /// Removes a passive job without respawning it: what its actor would
    /// have done (nothing runs, no timer is left).
    pub(super) fn remove_passive(&mut self, id: JobId, reply: RpcReplyPort<Result<(), Error>>) {
        if let Some(Slot::Passive { target, .. }) = self.jobs.remove(&id) {
            target.kill();
        }
        self.unlisten(&id);
        tracing::debug!(target: TARGET, job_id = %id, "passive job removed");
        self.queue_removal(id, reply);
    }

    /// A job actor reported itself idle and far from its next fire: routing
    /// to it stops (messages wait), and it is asked to passivate.
    pub(super) fn idle(&mut self, id: JobId, actor_id: ActorId, next_fire: Option<DateTime<Utc>>) {
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
        if actor.cast(JobMsg::Passivate { next_fire }).is_err() {
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
    pub(super) fn stay_live(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: JobId,
        actor_id: ActorId,
    ) {
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
    pub(super) fn reactivate(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: JobId,
        waiting: Vec<JobMsg>,
    ) {
        if let Some(Slot::Passive { target, .. }) = self.jobs.get(&id) {
            // Its wake-up timer, if still pending, is of no use any more.
            target.kill();
        }
        tracing::debug!(target: TARGET, job_id = %id, "waking passive job");
        self.jobs.insert(
            id.clone(),
            Slot::Transit(Box::new(Transit::Waking { waiting })),
        );
        let registry = self.rt.registry.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let snapshot =
                super::restart::stored(&registry, &id, super::restart::WAKE_SNAPSHOT_WAIT)
                    .await
                    .map(|found| found.map(|(spec, state)| (spec, Box::new(state))));
            let _ = myself.cast(SupervisorMsg::Woken { id, snapshot });
        });
    }

    /// The registry's state for a job being woken: its actor is respawned
    /// and the messages that waited are delivered.
    pub(super) async fn woken(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: JobId,
        snapshot: WakeSnapshot,
    ) {
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
            tracing::error!(target: TARGET, job_id = %id, error = %reason, "cannot wake passive job");
            self.give_up(&id, None, format!("cannot wake the passive job: {reason}"));
            // Refused as for a failed job; a removal removes it.
            for msg in waiting {
                self.deliver(myself, id.clone(), msg, Some("wake"));
            }
            return;
        }
        for msg in waiting {
            self.deliver(myself, id.clone(), msg, None);
        }
    }

    /// The job whose held messages `msg` joins, if any: an add or upsert of
    /// a job between live and passive with a `remove` waiting (it would
    /// otherwise reach the job before the removal, as an update, or be
    /// refused as a duplicate), and any message for a job that has held
    /// messages, so that they keep their order.
    pub(super) fn held_for(&self, msg: &SupervisorMsg) -> Option<JobId> {
        let id = match msg {
            SupervisorMsg::Add(spec, _)
            | SupervisorMsg::AddPaused { spec, .. }
            | SupervisorMsg::Upsert(spec, _) => {
                let removal = matches!(self.jobs.get(&spec.id), Some(Slot::Transit(t)) if t.removal_waiting());
                if removal {
                    return Some(spec.id.clone());
                }
                &spec.id
            }
            SupervisorMsg::Remove(id, _)
            | SupervisorMsg::Pause { id, .. }
            | SupervisorMsg::Resume { id, .. }
            | SupervisorMsg::Trigger(id, _)
            | SupervisorMsg::TriggerWith { id, .. }
            | SupervisorMsg::Backfill { id, .. }
            | SupervisorMsg::SetLastResult { id, .. }
            | SupervisorMsg::Cancel(id, _)
            | SupervisorMsg::CancelRun { id, .. }
            | SupervisorMsg::Preview { id, .. }
            | SupervisorMsg::Forward(id, _) => id,
            _ => return None,
        };
        // Nearly always empty: no lookup then.
        (!self.held.is_empty() && self.held.contains_key(id)).then(|| id.clone())
    }

    /// Lets a job's held messages go on once no `remove` waits with its
    /// other messages any more: into the removal's `removing` entry if its
    /// actor is stopping for it (they go on once it stopped), else to this
    /// supervisor's mailbox.
    pub(super) fn unhold(&mut self, myself: &ActorRef<SupervisorMsg>, id: &JobId) {
        if matches!(self.jobs.get(id), Some(Slot::Transit(t)) if t.removal_waiting()) {
            return;
        }
        if let Some(held) = self.held.remove(id) {
            self.after_removal(myself, id, held);
        }
    }
}
