//! Fire-ahead (see `ahead`): preparing the next schedule fire before its
//! instant, and withdrawing it while its run has not started.

use super::{JobActorState, JobMsg, Pending, Prepared, TARGET};
use crate::id::RunId;
use crate::schedule::NextFire;
use crate::status::Trigger;
use chrono::{DateTime, Utc};
use ractor::ActorRef;
use std::sync::Arc;

impl JobActorState {
    /// At a run's end, prepares the next fire at once if it is near (see
    /// `ahead::at_run_end`): the run's outcome and the next claim are
    /// posted together, and the timer armed for the fire is dropped by the
    /// timer service (a newer one replaces it). With a durable store this
    /// holds for a job that is behind too: handled at its slot, its fire
    /// would cost a second state write (the claim), and the fire, not yet
    /// due, still starts at its slot. In memory a job behind handles its
    /// next fire at the slot, which costs less than preparing it.
    pub(super) fn prepare_at_run_end(&mut self, myself: &ActorRef<JobMsg>) {
        let fire_ahead = self.link.rt.fire_ahead();
        let behind = self.behind && !self.link.rt.durable;
        if fire_ahead.is_zero() || behind || self.prepared.is_some() {
            return;
        }
        let Some(next) = self.state.next_fire else {
            return;
        };
        let now = self.now();
        if crate::ahead::at_run_end(fire_ahead, next, now) && self.readiness().is_ready() {
            self.generation += 1;
            self.prepare(myself, next);
        }
    }

    /// Whether the job could prepare a fire, as far as its own state goes.
    fn readiness(&self) -> crate::ahead::Readiness {
        crate::ahead::Readiness {
            paused: self.state.paused.is_some(),
            orphaned: self.link.handler.is_none(),
            failed: self.state.failed.is_some(),
            admission_limited: self.link.rt.admission.is_limited(),
            saturated: self.state.counters.fires == u64::MAX
                || self.state.counters.runs == u64::MAX,
            // Anything going on but history not yet posted.
            busy: !crate::passive::Activity {
                unposted: false,
                ..self.activity()
            }
            .is_idle(),
        }
    }

    /// Whether the next fire, at `next`, is prepared now (see `ahead`).
    pub(super) fn may_prepare(&self, next: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let window = crate::ahead::window(self.link.rt.fire_ahead(), self.state.last_slot, next);
        crate::ahead::may_prepare(self.readiness(), window, next, now)
    }

    /// Prepares the fire at `slot`, before its instant: takes the slot,
    /// claims its run (whose task waits for the instant, see `spawn_run`),
    /// and arms the timer for the fire after it. Until the run starts,
    /// `withdraw_prepared` undoes all of this, and status shows the fire as
    /// still to come (see `status::Ahead`).
    pub(super) fn prepare(&mut self, myself: &ActorRef<JobMsg>, slot: DateTime<Utc>) {
        let run_id = RunId::random();
        // The schedule's last fire completes the job now, but `Completed`
        // is announced by the run's task after `Fired` and `Started`, at
        // the slot, as for a fire handled at its instant.
        // The next fire after this one, found once: it says whether this
        // one is the last, and it is armed below.
        let next = self
            .schedule
            .next_fire(slot, self.state.counters.fires.saturating_add(1));
        let last = next == NextFire::Exhausted;
        // The run is known as prepared before its task is spawned.
        self.prepared = Some(Box::new(Prepared {
            slot: Arc::new(crate::ahead::Slot::new(last)),
            run_id,
            last_slot: self.state.last_slot,
            durable_at: 0,
        }));
        // `last_fire` is set when the run ends (status shows the slot as
        // the last fire from its start).
        self.state.last_slot = Some(slot);
        self.state.counters.fires = self.state.counters.fires.saturating_add(1);
        self.claim_run_as(myself, Pending::new(slot, Trigger::Schedule), run_id);
        match next {
            NextFire::At(t) => self.arm_at(t),
            NextFire::Exhausted => {
                self.state.next_fire = None;
                self.state.completed = true;
            }
        }
    }

    /// Withdraws the prepared run if it has not started: the job is as if
    /// the fire had never been prepared, and its timer is armed for the
    /// instant again. Called first for every message that could change what
    /// happens at that instant (`JobMsg::withdraws_prepared`). True if a run
    /// was withdrawn.
    pub(super) fn withdraw_prepared(&mut self) -> bool {
        let Some(p) = self.prepared.take() else {
            return false;
        };
        let Some(pos) = self
            .state
            .in_flight
            .iter()
            .position(|r| r.run_id == p.run_id)
        else {
            return false;
        };
        // A later slot was handled meanwhile (the run's record took longer
        // than a period to be written): the slots up to it are taken, and
        // the run stays, as if it had started.
        let later_handled = self.state.last_slot != Some(self.state.in_flight[pos].scheduled);
        if later_handled || !p.slot.withdraw() {
            // Its handler started: it is an ordinary run in flight now,
            // its slot the last fire, which tells status it started even
            // once a wall clock stepped back is before its slot again (see
            // `status::ahead_of`).
            let scheduled = self.state.in_flight[pos].scheduled;
            self.state.last_fire = self.state.last_fire.max(Some(scheduled));
            self.prepared = Some(p);
            return false;
        }
        self.state.in_flight.remove(pos);
        if let Some((token, _)) = self.tokens.remove(&p.run_id) {
            // The task, waiting for the instant, ends without a word.
            token.cancel();
        }
        self.unrecorded.retain(|(r, _)| *r != p.run_id);
        self.state.counters.runs -= 1;
        self.state.counters.fires -= 1;
        self.state.last_slot = p.last_slot;
        // A job with a next fire to prepare was not completed; preparing the
        // last fire of its schedule completed it.
        self.state.completed = false;
        tracing::debug!(target: TARGET, job_id = %self.spec.id, run_id = %p.run_id, "prepared run withdrawn");
        self.arm();
        true
    }
}

impl Prepared {
    /// The job is given up on at `at` (its actor gone) with this run
    /// prepared, for the slot `scheduled`. The give-up records the run
    /// interrupted, a fire counted, if its slot is at or before `at` on the
    /// wall clock, and withdraws it otherwise (as the registry does, see
    /// `status::is_ahead`): the run's slot is settled to agree. The give-up
    /// claims the run from its task ([`crate::ahead::Slot::claim`]): a fire
    /// counted that its task had not announced is announced here (`Fired`,
    /// before the registry's `Interrupted`), and the run never starts; a
    /// run its task announced is the task's (its `Fired` and `Started` came
    /// before the claim). (Until 2026-12-05 neither announced a run whose
    /// task had not taken it: `Interrupted` came with no `Fired`; until
    /// 2026-12-06 a task that took its slot just before the give-up could
    /// announce `Fired` after the `Interrupted`.) Then the run's token is
    /// cancelled by the caller.
    pub(crate) fn give_up(
        &self,
        rt: &crate::runtime::Runtime,
        id: &crate::id::JobId,
        scheduled: DateTime<Utc>,
        at: DateTime<Utc>,
    ) {
        use crate::ahead::Settled;
        let counted = scheduled <= at;
        let announce = match self.slot.claim(rt.timer.starts()) {
            // Its task had not announced it: the give-up does.
            Settled::Waiting | Settled::Due | Settled::Unannounced => counted,
            Settled::Fired | Settled::Announced | Settled::Withdrawn => false,
        };
        if announce {
            rt.events.publish(
                id,
                at,
                crate::event::EventKind::Fired {
                    scheduled,
                    trigger: Trigger::Schedule,
                },
            );
        }
        // Its task stops waiting (a task that took the run and announced
        // it sees its token cancelled).
        self.slot.cancel(false);
    }
}
