//! Saving the job's state to the registry (and the claims that start runs
//! once durable), and answering requests once what they changed is durable.

use super::{JobActorState, JobMsg};
use crate::error::Error;
use crate::registry::Ack;
use chrono::{DateTime, Utc};
use ractor::{ActorRef, RpcReplyPort};

impl JobActorState {
    /// What tells whether a wake-up changed the job's state.
    pub(super) fn fingerprint(
        &self,
    ) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>, bool, usize) {
        (
            self.state.last_slot,
            self.state.next_fire,
            self.state.completed,
            self.history.len(),
        )
    }

    /// Answers a trigger, an event, a manual retry or a cancel once the
    /// state it changed is durable, as `add` and `pause` are answered: the
    /// instant after the answer a crash must not undo it (a run answered as
    /// started would vanish without a trace, a dropped retry would come
    /// back). An error, or any answer with a store that is not durable, goes
    /// at once. A failed write makes the answer that error.
    pub(super) fn answer_when_durable<T: Send + 'static>(
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
    pub(super) fn refuse_when_durable(
        &mut self,
        reply: RpcReplyPort<Result<(), Error>>,
        refusal: Error,
    ) {
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
    pub(super) fn save(&mut self, ack: Ack) -> u64 {
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
    pub(super) fn save_claims(&mut self, myself: &ActorRef<JobMsg>) {
        if self.unrecorded.is_empty() {
            self.save(Ack::None);
            return;
        }
        let prepared = self
            .prepared
            .as_ref()
            .map(|p| p.run_id)
            .filter(|id| self.unrecorded.iter().any(|(r, _)| r == id));
        let ack = if self.unrecorded.len() > usize::from(prepared.is_some()) {
            // Other claimed runs: started by `Recorded`.
            Ack::Job(myself.clone())
        } else {
            // Nobody to tell, but flushed at once as a claim must be.
            Ack::Urgent
        };
        let carrier = self.save(ack);
        // The claims not posted before are carried by this take: their
        // runs start once it is durable (see `JobMsg::Recorded`).
        for (_, take) in self.unrecorded.iter_mut().filter(|(_, t)| *t == 0) {
            *take = carrier;
        }
        if let (Some(run_id), Some(p)) = (prepared, self.prepared.as_deref_mut()) {
            p.durable_at = carrier;
            self.unrecorded.retain(|(r, _)| *r != run_id);
            self.start_run(myself, run_id);
        }
    }
}
