//! The operator's controls that change the job: pause, resume, and an
//! update of its spec.

use super::{JobActorState, JobMsg};
use crate::error::Error;
use crate::event::EventKind;
use crate::handler::{Handler, RunLink};
use crate::registry::Ack;
use crate::schedule::Schedule;
use crate::spec::JobSpec;
use crate::status::PauseInfo;
use ractor::{ActorRef, RpcReplyPort};
use std::sync::Arc;

impl JobActorState {
    /// `JobMsg::Pause`: pauses the job (refused if it is paused already);
    /// answered once durable.
    pub(super) fn pause(&mut self, note: Option<String>, reply: RpcReplyPort<Result<(), Error>>) {
        if self.state.paused.is_some() {
            let refusal = self.invalid_state("pause");
            self.refuse_when_durable(reply, refusal);
        } else {
            self.state.paused = Some(Box::new(PauseInfo {
                note: note.clone(),
                since: self.now(),
            }));
            self.publish(EventKind::Paused { note });
            self.save(Ack::Reply(reply));
        }
    }

    /// `JobMsg::Resume`: resumes the job (refused if it is not paused);
    /// answered once durable.
    pub(super) fn resume(&mut self, note: Option<String>, reply: RpcReplyPort<Result<(), Error>>) {
        if self.state.paused.is_none() {
            let refusal = self.invalid_state("resume");
            self.refuse_when_durable(reply, refusal);
        } else {
            self.state.paused = None;
            // Resume re-arms from now: slots that passed while paused
            // were counted as skipped by their timers already.
            let now = self.now();
            self.state.last_slot = Some(self.state.last_slot.map_or(now, |l| l.max(now)));
            self.publish(EventKind::Resumed { note });
            self.arm();
            self.save(Ack::Reply(reply));
        }
    }

    /// `JobMsg::Update`: replaces the spec, keeping state and counters;
    /// answered once the new spec is durable.
    pub(super) fn update(
        &mut self,
        myself: &ActorRef<JobMsg>,
        spec: Arc<JobSpec>,
        schedule: Schedule,
        handler: Option<Arc<dyn Handler>>,
        reply: RpcReplyPort<Result<(), Error>>,
    ) {
        let rearm = spec.schedule != self.spec.schedule;
        if spec.handler != self.spec.handler {
            // Runs in flight keep the link they were started with,
            // and read the job's last result where the new one's
            // runs do.
            self.link = Arc::new(RunLink {
                rt: self.link.rt.clone(),
                job: myself.clone(),
                id: self.spec.id.clone(),
                handler,
                last_result: self.link.last_result.clone(),
            });
        }
        self.payload = Arc::new(spec.payload.clone());
        if spec.priority != self.spec.priority {
            // The runs waiting for admission wait on with the new priority
            // (they keep the tags they asked with: see `start_run`).
            let waiting = self.rare.as_ref().map(|r| &r.waiting_admission);
            for run_id in waiting.into_iter().flat_map(|w| w.keys()) {
                self.link
                    .rt
                    .admission
                    .rebind(*run_id, spec.priority, &self.link);
            }
        }
        self.tags = Arc::from(spec.tags.as_slice());
        self.spec = spec;
        self.schedule = schedule;
        if rearm {
            let now = self.now();
            // No longer completed (see `completes_with_queue`): the old
            // schedule's queued last fire runs as any queued fire, and the
            // new schedule's last fire will announce `Completed`.
            self.state.reschedule(&self.schedule, now);
            self.arm();
        }
        self.publish(EventKind::Updated);
        let spec = Some((self.spec.clone(), self.link.handler.is_none()));
        self.outbox.post(
            &self.link.rt.updates,
            &self.state,
            &mut self.history,
            Ack::Reply(reply),
            spec,
        );
        if !self.state.queue.is_empty() && self.state.in_flight.is_empty() {
            // An orphan given a handler it can run with starts the queue
            // it kept: nothing in flight would start it later.
            self.start_queued(myself);
            self.save_claims(myself);
        }
    }
}
