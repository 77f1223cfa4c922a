//! Cancelling runs: on request (`cancel`, `cancel_run`), when the job is
//! removed, replaced or shut down, and on restart, the runs in flight at a
//! crash (recorded as interrupted or cancelled).

use super::run::drop_unstarted;
use super::{JobActorState, JobMsg, TARGET};
use crate::error::Error;
use crate::event::EventKind;
use crate::id::RunId;
use crate::registry::{Ack, RegistryMsg};
use crate::status::{CancelReason, Outcome, RunRecord};
use ractor::{ActorRef, RpcReplyPort};

impl JobActorState {
    /// `JobMsg::Cancel`: cancels the runs in flight and a waiting retry;
    /// answered with the runs cancelled.
    pub(super) fn cancel(
        &mut self,
        myself: &ActorRef<JobMsg>,
        reply: RpcReplyPort<Result<Vec<RunId>, Error>>,
    ) {
        // A prepared run was withdrawn first (see `handle`): it is not
        // cancelled, it runs at its instant as if it had not been prepared.
        let mut cancelled = self.cancel_all(myself, CancelReason::Request);
        let dropped = self.state.retry_wait.take();
        let dropped_retry = dropped.is_some();
        if let Some(wait) = dropped {
            self.retry_dropped(&wait, CancelReason::Request.text());
            // The waiting retry's timer becomes stale, and fires
            // queued behind it go on, as behind a cancelled run.
            self.retry_generation += 1;
            self.start_queued(myself);
            if !self.unrecorded.is_empty() {
                // The queued fire's run starts once its record is durable.
                self.save_claims(myself);
            }
        }
        cancelled.sort();
        // Runs cancelled already (an earlier cancel, a `Replace`)
        // may have their mark still on its way to the store: the
        // answer waits for it too, as `cancel_run`'s does.
        let marked = self.state.in_flight.iter().any(|r| r.cancelled.is_some());
        if (dropped_retry || !cancelled.is_empty() || marked) && self.link.rt.durable {
            // A crash must not bring the retry back, nor retry the
            // runs cancelled (their cancel marks are in the state).
            self.answer_when_durable(reply, Ok(cancelled));
        } else {
            // Nothing cancelled, or a store that is not durable:
            // nothing to wait for.
            self.save(Ack::None);
            let _ = reply.send(Ok(cancelled));
        }
    }

    /// `JobMsg::CancelRun`: cancels one run in flight (`Error::UnknownRun` if
    /// the job has no such run in flight).
    pub(super) fn cancel_run(
        &mut self,
        myself: &ActorRef<JobMsg>,
        run_id: RunId,
        reply: RpcReplyPort<Result<(), Error>>,
    ) {
        match self.tokens.get(&run_id).map(|(_, why)| why.is_some()) {
            None if self.awaiting_park
                && self.state.in_flight.iter().any(|r| r.run_id == run_id) =>
            {
                // A run of the failed predecessor not adopted yet:
                // its token comes with it.
                self.rare_mut()
                    .early
                    .push(JobMsg::CancelRun { run_id, reply });
            }
            None => {
                let _ = reply.send(Err(Error::UnknownRun(run_id)));
            }
            Some(cancelled_already) => {
                if !cancelled_already {
                    self.cancel_runs(myself, CancelReason::Request, Some(run_id));
                }
                tracing::debug!(
                    target: TARGET,
                    job_id = %self.spec.id,
                    run_id = %run_id,
                    cancelled_already,
                    "run cancelled by request"
                );
                if self.link.rt.durable {
                    // A crash must not retry it: its cancel mark is
                    // in the state. A run cancelled already (a
                    // `Replace`, a `cancel`) may have its mark still
                    // on its way to the store: the answer waits for
                    // it too.
                    self.answer_when_durable(reply, Ok(()));
                } else {
                    if !cancelled_already {
                        self.save(Ack::None);
                    }
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }

    /// `JobMsg::Remove`: cancels the runs in flight, deletes the job and
    /// stops the actor.
    pub(super) fn remove(
        &mut self,
        myself: &ActorRef<JobMsg>,
        reply: RpcReplyPort<Result<(), Error>>,
    ) {
        self.generation += 1;
        self.retry_generation += 1;
        // The actor stops before its runs end: the runs announced (as
        // fired or started) are announced as cancelled now, then, if the
        // job's completion waited for one of them, `Completed`.
        let announced = self.announced_runs();
        self.cancel_all(myself, CancelReason::Removed);
        for &run_id in &announced {
            self.publish(EventKind::Cancelled {
                run_id,
                reason: "job removed".into(),
            });
        }
        if let Some(run_id) = self.completes_after() {
            if announced.contains(&run_id) {
                self.completed_after_end(run_id);
            }
        }
        // Or for the queued last fire, which will not run.
        if self.completes_with_queue() {
            self.publish(EventKind::Completed);
        }
        // Runs admitted whose `Admitted` is still on its way: the
        // actor stops before it comes, so their places go back now.
        if let Some(rare) = &mut self.rare {
            for (run_id, tags) in rare.waiting_admission.drain() {
                if self.link.rt.admission.take_admitted(run_id) {
                    self.link.rt.admission.release(&tags);
                }
            }
        }
        self.publish(EventKind::Removed);
        // The runs are cancelled and the job is gone: nothing
        // parks their tokens for a successor.
        self.tokens.0.clear();
        self.link.rt.updates.push(RegistryMsg::Remove {
            id: self.spec.id.clone(),
            ack: Ack::Reply(reply),
        });
        myself.stop(Some(super::REMOVED.into()));
    }

    /// The runs in flight that were announced, for a removal: every one
    /// but a prepared run whose task has not announced it. A run handled
    /// at its slot was announced `Fired` (or, for a retry,
    /// `RetryScheduled`) when it was claimed, whether it started or still
    /// waits for its record or for admission: its removal closes it with
    /// `Cancelled`, as a cancel before its start does. (Until 2026-12-05
    /// only runs announced `Started` were: a run waiting for its record or
    /// for admission got no closing event.)
    fn announced_runs(&mut self) -> Vec<RunId> {
        // A prepared run is announced by its task once it took its slot:
        // not before, whatever the wall clock reads (a step back before
        // the slot of a run started, forward past the slot of a run whose
        // slot has not come on the monotonic clock). The removal claims it
        // from its task (see `ahead::Slot::claim`): one the task had not
        // announced never starts, and is not announced at all; one it had
        // is closed here. (Until 2026-12-06 a task that took its slot
        // just before the removal could announce `Fired` and `Started`
        // after `Removed`, or the removal `Cancelled` with no `Fired`.)
        let unannounced = self.prepared.as_deref().and_then(|p| {
            use crate::ahead::Settled;
            match p.slot.claim(self.link.rt.timer.starts()) {
                Settled::Fired | Settled::Announced => None,
                Settled::Waiting | Settled::Due | Settled::Unannounced | Settled::Withdrawn => {
                    Some(p.run_id)
                }
            }
        });
        self.state
            .in_flight
            .iter()
            .map(|r| r.run_id)
            .filter(|id| unannounced != Some(*id))
            .collect()
    }

    /// Fires every in-flight run's token; returns the runs cancelled.
    pub(super) fn cancel_all(
        &mut self,
        myself: &ActorRef<JobMsg>,
        why: CancelReason,
    ) -> Vec<RunId> {
        self.cancel_runs(myself, why, None)
    }

    /// Fires the token of the run `only`, or of every run in flight, unless
    /// cancelled already; returns the runs cancelled.
    fn cancel_runs(
        &mut self,
        myself: &ActorRef<JobMsg>,
        why: CancelReason,
        only: Option<RunId>,
    ) -> Vec<RunId> {
        let mut cancelled = Vec::new();
        // A prepared run's task waits on its slot, not on its token: the
        // slot is told first, and whether the job counts the run on.
        let prepared = self.prepared.as_deref();
        for (run_id, (token, reason)) in self.tokens.iter_mut() {
            if reason.is_none() && only.is_none_or(|o| o == *run_id) {
                *reason = Some(why);
                if let Some(p) = prepared.filter(|p| p.run_id == *run_id) {
                    p.slot.cancel(why != CancelReason::Removed);
                }
                token.cancel();
                cancelled.push(*run_id);
            }
        }
        // Stored with the state: a restart records these runs as cancelled,
        // not as interrupted (which would retry them).
        for run in self.state.in_flight.iter_mut() {
            if cancelled.contains(&run.run_id) {
                run.cancelled = Some(why);
            }
        }
        // A run waiting for admission has no task to notice its token.
        // One that was admitted already has its `Admitted` on the way, which
        // gives the place back (or `Remove`, which stops before it comes).
        for run_id in &cancelled {
            if self.waits_admission(run_id) && self.link.rt.admission.withdraw(*run_id) {
                if let Some(rare) = &mut self.rare {
                    rare.waiting_admission.remove(run_id);
                }
                drop_unstarted(myself, *run_id);
            }
        }
        cancelled
    }

    /// On restart: runs in flight at the crash are recorded as interrupted,
    /// and retried (at-least-once) unless the job says abandon; a run that
    /// was cancelled before the crash is recorded as cancelled, and not
    /// retried. The retries go first, side by side as the runs were (see
    /// `start_queued`), then the stored queue, in order.
    pub(super) fn recover_interrupted(&mut self, myself: &ActorRef<JobMsg>) {
        let now = self.now();
        let mut retries = Vec::new();
        for run in std::mem::take(&mut self.state.in_flight) {
            let outcome = match run.cancelled {
                Some(why) => why.cut_outcome(),
                None => Outcome::Interrupted,
            };
            let retry = outcome == Outcome::Interrupted;
            let record = RunRecord {
                run_id: run.run_id,
                scheduled: run.scheduled,
                // A run prepared ahead of its slot (see `ahead`) had not
                // started: its start is no later than its end.
                started: run.started.min(now),
                finished: now,
                attempt: run.attempt,
                trigger: run.trigger,
                outcome,
            };
            self.count_outcome(&record);
            self.state.last_run = Some(record.clone());
            self.history.push(record);
            if let Some(mut fire) = retry
                .then(|| self.rerun_of(run.scheduled, run.attempt))
                .flatten()
            {
                // With its event: the payload is stored with the run.
                fire.event = run.event.zip(run.payload);
                retries.push(fire);
            }
        }
        for fire in retries.into_iter().rev() {
            self.state.queue.push_front(fire);
        }
        self.start_queued(myself);
    }
}
