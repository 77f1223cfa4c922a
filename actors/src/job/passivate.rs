//! Passivation (see `passive`): whether an idle job may give up its actor,
//! and telling the supervisor at the end of a turn.

use super::{JobActorState, JobMsg};
use crate::supervisor::SupervisorMsg;
use ractor::ActorRef;

impl JobActorState {
    /// What the job has going on, for the passivation decision.
    pub(super) fn activity(&self) -> crate::passive::Activity {
        crate::passive::Activity {
            in_flight: self.state.in_flight.len() + self.tokens.len(),
            queued: self.state.queue.len(),
            unrecorded: self.unrecorded.len(),
            waiting_admission: self.rare.as_ref().map_or(0, |r| r.waiting_admission.len()),
            retry_waiting: self.state.retry_wait.is_some(),
            stopping: self.stopping.is_some(),
            unposted: !self.history.is_empty(),
        }
    }

    /// Whether the job may give up its actor now (see `passive`).
    pub(super) fn passivable(&self) -> bool {
        crate::passive::should_passivate(
            self.link.rt.config.passivate_after,
            &self.activity(),
            self.state.next_fire,
            || self.now(),
        )
    }

    /// At the end of a turn: an idle job far from its next fire tells the
    /// supervisor, which stops routing to it and asks it to passivate.
    pub(super) fn consider_passivation(&mut self, myself: &ActorRef<JobMsg>) {
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
}
