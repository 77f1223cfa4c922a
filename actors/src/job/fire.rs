//! Fires: the schedule timer (arming it, waking at it, the slots due and
//! their misfire plan), skips, the overlap decision, manual triggers,
//! events and backfills, and claiming the runs of the fires that start.

use super::{JobActorState, JobMsg, Pending, Prepared, MAX_BACKFILL, MAX_PREVIEW, TARGET};
use crate::clock::deadline_for;
use crate::error::Error;
use crate::event::EventKind;
use crate::id::RunId;
use crate::policy::{MisfireDecision, OverlapDecision, OverlapPolicy};
use crate::schedule::{NextFire, PreviewFire, Search};
use crate::status::{CancelReason, InFlightRun, Outcome, RunRecord, SkipReason, Trigger};
use crate::timer::TimerKind;
use chrono::{DateTime, Utc};
use ractor::{ActorRef, RpcReplyPort};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The most missed slots enumerated one by one when a job wakes up late; older
/// ones are counted as skipped without being listed.
const MAX_ENUMERATED_SLOTS: usize = 10_000;

/// The missed slots older than the enumerated ones (see
/// [`MAX_ENUMERATED_SLOTS`]): counted, with their range for the history
/// entry that accounts for them, but not listed.
#[derive(Clone, Copy, Debug, Default)]
struct Uncounted {
    slots: u64,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Uncounted {
    fn push(&mut self, slot: DateTime<Utc>) {
        self.slots += 1;
        self.range = Some((self.range.map_or(slot, |(first, _)| first), slot));
    }
}

/// What a requested fire did: the answer of `trigger`, `trigger_with` and
/// `retry_run`, and of each listening job's fire in `emit`'s answer.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{JobContext, JobSpec, OverlapPolicy, ScheduleSpec, Scheduler, SkipReason, TriggerOutcome};
/// use std::time::Duration;
///
/// let scheduler = Scheduler::builder()
///     .handler("slow", |_ctx: JobContext| async {
///         tokio::time::sleep(Duration::from_millis(200)).await;
///         Ok::<(), std::io::Error>(())
///     })
///     .in_memory()
///     .start()
///     .await?;
/// let spec = JobSpec::builder("sync", ScheduleSpec::cron("0 0 * * * *"), "slow")
///     .overlap(OverlapPolicy::Skip)
///     .build()?;
/// scheduler.add(spec).await?;
///
/// assert!(matches!(scheduler.trigger("sync").await?, TriggerOutcome::Started(_)));
/// // The first run is still going: `Skip` skips the second fire.
/// assert_eq!(
///     scheduler.trigger("sync").await?,
///     TriggerOutcome::Skipped(SkipReason::Overlap)
/// );
/// scheduler.shutdown(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerOutcome {
    /// A run started.
    Started(RunId),
    /// The fire was queued behind a run in flight.
    Queued,
    /// The fire was skipped, for this reason.
    Skipped(SkipReason),
}

impl JobActorState {
    /// `JobMsg::Fired`: the timer of generation `generation` went off.
    pub(super) fn fired(&mut self, myself: &ActorRef<JobMsg>, generation: u64, kind: TimerKind) {
        let current = match kind {
            TimerKind::Schedule => self.generation,
            TimerKind::Retry => self.retry_generation,
        };
        // A stale generation is a cancelled timer.
        if generation == current && self.stopping.is_none() {
            let before = self.fingerprint();
            match kind {
                TimerKind::Schedule => self.wake(myself),
                TimerKind::Retry => self.retry_due(myself),
            }
            // A timer armed early for a far fire (see `passive`)
            // that only re-armed changed nothing to save.
            if kind == TimerKind::Retry
                || self.fingerprint() != before
                || !self.unrecorded.is_empty()
            {
                self.save_claims(myself);
            }
        }
    }

    /// Arms the schedule timer for the first slot after the last one
    /// claimed (or after now, for a job that never fired).
    pub(super) fn arm(&mut self) {
        self.generation += 1;
        let now = self.now();
        let after = self.state.last_slot.unwrap_or(now);
        match self.schedule.next_fire(after, self.state.counters.fires) {
            NextFire::At(t) => self.arm_at(t),
            NextFire::Exhausted => self.complete(),
        }
    }

    pub(super) fn arm_at(&mut self, at: DateTime<Utc>) {
        self.state.next_fire = Some(at);
        // A far fire's timer goes off a little before it, so that the job
        // can passivate meanwhile and be woken by it (see `passive`).
        let now = self.now();
        let mut go_off = if self.link.rt.config.passivate_after.is_some() {
            crate::passive::timer_instant(&self.link.rt.config, at, now)
        } else {
            at
        };
        // A near fire's timer goes off at the start of its fire-ahead window
        // (see `ahead`), unless the runtime was found behind.
        if go_off == at && !self.behind {
            let window = crate::ahead::window(self.link.rt.fire_ahead(), self.state.last_slot, at);
            go_off = crate::ahead::go_off(window, at, now);
        }
        let deadline = deadline_for(self.now(), go_off);
        self.link.rt.timer.arm(
            deadline,
            self.target.clone(),
            TimerKind::Schedule,
            self.generation,
        );
    }

    fn complete(&mut self) {
        self.state.next_fire = None;
        if !self.state.completed {
            self.state.completed = true;
            // The last fire's run waits for its record or for admission:
            // `Completed` comes after its `Started` (see `completes_after`),
            // as it does for a run that starts at once (in memory) or at its
            // slot (prepared ahead, see `ahead::Slot::completes`).
            let waiting = self.state.in_flight.last().filter(|r| {
                self.is_last_slot(r.trigger, r.scheduled)
                    && (self.unrecorded.iter().any(|(id, _)| *id == r.run_id)
                        || self.waits_admission(&r.run_id))
            });
            match waiting {
                Some(run) => {
                    let run_id = run.run_id;
                    self.set_completes_after(Some(run_id));
                }
                // Queued behind a run in flight: `Completed` comes after
                // the `Started` of its run, as above (see
                // `completes_with_queue`). (Until 2026-12-05 it came after
                // its `Queued`, while status did not show the job completed
                // yet.)
                None if self.completes_with_queue() => {}
                None => self.publish(EventKind::Completed),
            }
        }
    }

    /// Whether a fire of `trigger` for `scheduled` is the schedule's last
    /// (once the job completed).
    fn is_last_slot(&self, trigger: Trigger, scheduled: DateTime<Utc>) -> bool {
        matches!(trigger, Trigger::Schedule | Trigger::CatchUp)
            && self.state.last_slot == Some(scheduled)
    }

    /// Whether `fire` is the schedule's last fire (once the job completed).
    pub(super) fn is_last_fire(&self, fire: &Pending) -> bool {
        self.is_last_slot(fire.trigger, fire.scheduled)
    }

    /// Whether the job's `Completed` waits for its last fire, queued behind
    /// a run in flight: the job completed and the fire is still in the
    /// queue. Nothing else is kept: `Completed` is announced when the fire
    /// leaves the queue (after its run's `Started`, see `completes_after`;
    /// once skipped; or before `Removed`), and an upsert that re-arms the
    /// job makes it no longer completed. So the wait holds across a
    /// restart of the actor or of the process, read from the stored state.
    pub(super) fn completes_with_queue(&self) -> bool {
        self.state.completed && self.state.queue.iter().any(|f| self.is_last_fire(f))
    }

    /// Announces `Completed` after the `Started` of the last fire's run, if
    /// the job's completion waited for it (see `completes_after`): not if
    /// the run still waits for admission, nor if it was cancelled (then
    /// after its end).
    pub(super) fn completed_after_start(&mut self, run_id: RunId) {
        if self.completes_after() == Some(run_id)
            && !self.waits_admission(&run_id)
            && !self.is_cancelled(run_id)
        {
            self.set_completes_after(None);
            self.publish(EventKind::Completed);
        }
    }

    /// Announces `Completed` after the end of the last fire's run that
    /// never started, if the job's completion waited for it.
    pub(super) fn completed_after_end(&mut self, run_id: RunId) {
        if self.completes_after() == Some(run_id) {
            self.set_completes_after(None);
            self.publish(EventKind::Completed);
        }
    }

    /// Handles every slot due by now, then arms the timer for the next one.
    ///
    /// The common case is one slot, on time; after a stall, a restart or a
    /// forward step of the wall clock there may be many, and the misfire
    /// policy decides. If the wall clock is behind the planned slot (it
    /// stepped back), nothing is due and the timer is re-armed.
    pub(super) fn wake(&mut self, myself: &ActorRef<JobMsg>) {
        self.generation += 1;
        let now = self.now();
        let mut after = match self.state.last_slot {
            Some(last) => last,
            None => {
                // A new job: its first slot is the first after now.
                self.state.last_slot = Some(now);
                now
            }
        };
        // The common case is one due slot: it is kept out of the vector,
        // which is only filled (and allocated) once a second slot is due.
        let mut single = None;
        // A ring: a per-second job down for days drops its oldest slot
        // hundreds of thousands of times.
        let mut due = VecDeque::new();
        let mut uncounted = Uncounted::default();
        let mut fired = self.state.counters.fires;
        let next = loop {
            match self.schedule.next_fire(after, fired) {
                NextFire::At(t) if t <= now => {
                    if single.is_none() && due.is_empty() {
                        single = Some(t);
                    } else {
                        due.extend(single.take());
                        if due.len() == MAX_ENUMERATED_SLOTS {
                            if let Some(oldest) = due.pop_front() {
                                uncounted.push(oldest);
                            }
                        }
                        due.push_back(t);
                    }
                    after = t;
                    fired += 1;
                }
                other => break other,
            }
        };
        if let (true, Some(newest)) = (self.behind, single.or(due.back().copied())) {
            // The window that applied to it (before its slot is taken).
            let window =
                crate::ahead::window(self.link.rt.fire_ahead(), self.state.last_slot, newest);
            if crate::ahead::on_time(window, newest, now) {
                self.behind = false;
            }
        }
        if let Some(slot) = single {
            self.handle_due(myself, &[slot], Uncounted::default(), now);
        } else if !due.is_empty() {
            self.handle_due(myself, due.make_contiguous(), uncounted, now);
        }
        match next {
            NextFire::At(t) if self.may_prepare(t, now) => self.prepare(myself, t),
            NextFire::At(t) => {
                let window =
                    crate::ahead::window(self.link.rt.fire_ahead(), self.state.last_slot, t);
                if crate::ahead::came_late(window, t, now) {
                    self.behind = true;
                }
                self.arm_at(t);
            }
            NextFire::Exhausted => self.complete(),
        }
    }

    fn handle_due(
        &mut self,
        myself: &ActorRef<JobMsg>,
        due: &[DateTime<Utc>],
        uncounted: Uncounted,
        now: DateTime<Utc>,
    ) {
        let newest = *due.last().expect("handle_due is called with slots");
        let oldest = uncounted.range.map_or(due[0], |(first, _)| first);
        let n = due.len() as u64 + uncounted.slots;
        self.state.last_slot = Some(newest);
        self.state.last_fire = Some(newest);
        self.state.counters.fires = self.state.counters.fires.saturating_add(n);
        let skip_all = if self.state.paused.is_some() {
            Some(SkipReason::Paused)
        } else if self.link.handler.is_none() {
            Some(SkipReason::Orphaned)
        } else {
            None
        };
        if let Some(reason) = skip_all {
            if n > 1 {
                self.record_not_run(oldest, newest, reason, n);
            }
            self.skip(newest, reason, n);
            return;
        }
        let age = (now - newest).to_std().unwrap_or(Duration::ZERO);
        if n == 1 && age <= self.link.rt.config.misfire_threshold {
            // One slot, on time: what every misfire policy plans for it.
            self.publish(EventKind::Fired {
                scheduled: newest,
                trigger: Trigger::Schedule,
            });
            self.overlap_fire(myself, Pending::new(newest, Trigger::Schedule));
            return;
        }
        let plan = self.spec.misfire.plan(
            due,
            uncounted.slots,
            now,
            self.link.rt.config.misfire_threshold,
            self.spec.catch_up_window,
        );
        if plan.skipped > 0 {
            // The uncounted slots are older than the enumerated ones and
            // all skipped: the range runs from the first of them.
            let (first, last) = match (uncounted.range, plan.skipped_range) {
                (Some((first, _)), Some((_, last))) => (first, last),
                (Some(range), None) | (None, Some(range)) => range,
                (None, None) => (oldest, newest),
            };
            self.record_not_run(first, last, SkipReason::Misfire, plan.skipped);
            self.skip(last, SkipReason::Misfire, plan.skipped);
        }
        if plan.coalesced > 0 {
            self.state.counters.coalesced =
                self.state.counters.coalesced.saturating_add(plan.coalesced);
            let served = plan.runs.first().map_or(newest, |(slot, _)| *slot);
            let after_skipped = plan.skipped_range.map(|(_, last)| last);
            let coalesced: Vec<_> = due
                .iter()
                .filter(|s| **s < served && after_skipped.is_none_or(|l| **s > l))
                .copied()
                .collect();
            let first = coalesced.first().copied().unwrap_or(served);
            let through = coalesced.last().copied().unwrap_or(served);
            self.history.push(RunRecord {
                run_id: RunId::random(),
                scheduled: first,
                started: now,
                finished: now,
                attempt: 0,
                trigger: Trigger::CatchUp,
                outcome: Outcome::Coalesced {
                    slots: plan.coalesced,
                    through,
                },
            });
        }
        for (i, (slot, decision)) in plan.runs.into_iter().enumerate() {
            let trigger = match decision {
                MisfireDecision::OnTime => Trigger::Schedule,
                MisfireDecision::CatchUp => Trigger::CatchUp,
            };
            self.publish(EventKind::Fired {
                scheduled: slot,
                trigger,
            });
            // The runs of one plan run one after another: the first goes
            // through the overlap policy, the others (catch-ups, then the
            // slot on time) wait in the queue. Through the overlap policy,
            // the slot on time would meet the plan's own first catch-up
            // run and be skipped while older slots ran.
            if i > 0 {
                self.state.queue.push_back(Pending::new(slot, trigger));
            } else {
                self.overlap_fire(myself, Pending::new(slot, trigger));
            }
        }
    }

    /// Writes a history entry for missed slots that will not run, so that
    /// history accounts for every slot of a downtime.
    fn record_not_run(
        &mut self,
        first: DateTime<Utc>,
        through: DateTime<Utc>,
        reason: SkipReason,
        slots: u64,
    ) {
        let now = self.now();
        self.history.push(RunRecord {
            run_id: RunId::random(),
            scheduled: first,
            started: now,
            finished: now,
            attempt: 0,
            trigger: Trigger::CatchUp,
            outcome: Outcome::Skipped {
                reason,
                slots,
                through,
            },
        });
    }

    pub(super) fn skip(&mut self, scheduled: DateTime<Utc>, reason: SkipReason, count: u64) {
        self.state.counters.skipped.add(reason, count);
        tracing::debug!(target: TARGET, job_id = %self.spec.id, ?reason, count, "fire skipped");
        self.publish(EventKind::Skipped {
            scheduled,
            reason,
            count,
        });
    }

    /// Applies the overlap policy to one fire.
    ///
    /// A retry waiting for its backoff counts as a run in flight: the next
    /// fire meets the overlap policy as if the failed run were still going
    /// (`Replace` drops the waiting retry).
    pub(super) fn overlap_fire(
        &mut self,
        myself: &ActorRef<JobMsg>,
        fire: Pending,
    ) -> TriggerOutcome {
        self.overlap_fire_with(myself, fire, self.spec.overlap)
    }

    /// [`Self::overlap_fire`] through `overlap` instead of the job's policy.
    fn overlap_fire_with(
        &mut self,
        myself: &ActorRef<JobMsg>,
        fire: Pending,
        overlap: OverlapPolicy,
    ) -> TriggerOutcome {
        let scheduled = fire.scheduled;
        let busy = self.state.in_flight.len() + usize::from(self.state.retry_wait.is_some());
        let decision = overlap.decide(busy, self.state.queue.len());
        let holds = matches!(
            decision,
            OverlapDecision::Start | OverlapDecision::ReplaceThenStart | OverlapDecision::Enqueue
        );
        if holds && self.event_bytes_past_limit(&fire) {
            self.skip(scheduled, SkipReason::QueueFull, 1);
            return TriggerOutcome::Skipped(SkipReason::QueueFull);
        }
        match decision {
            OverlapDecision::Start => TriggerOutcome::Started(self.claim_run(myself, fire)),
            OverlapDecision::ReplaceThenStart => {
                self.cancel_all(myself, CancelReason::Replaced);
                if let Some(wait) = self.state.retry_wait.take() {
                    self.retry_generation += 1;
                    self.retry_dropped(&wait, CancelReason::Replaced.text());
                    // The fire whose retry is dropped failed for good: it
                    // counts toward `pause_after_failures`, and a job that
                    // pauses itself so does not start this fire.
                    self.count_failed_fire(None);
                    if self.state.paused.is_some() {
                        self.skip(scheduled, SkipReason::Paused, 1);
                        return TriggerOutcome::Skipped(SkipReason::Paused);
                    }
                }
                TriggerOutcome::Started(self.claim_run(myself, fire))
            }
            OverlapDecision::Skip => {
                self.skip(scheduled, SkipReason::Overlap, 1);
                TriggerOutcome::Skipped(SkipReason::Overlap)
            }
            OverlapDecision::Enqueue => {
                self.state.queue.push_back(fire);
                self.publish(EventKind::Queued { scheduled });
                TriggerOutcome::Queued
            }
            OverlapDecision::Drop => {
                self.skip(scheduled, SkipReason::QueueFull, 1);
                TriggerOutcome::Skipped(SkipReason::QueueFull)
            }
        }
    }

    /// Whether holding `fire`'s event payload would take the job's state
    /// past [`MAX_HELD_EVENT_BYTES`](crate::MAX_HELD_EVENT_BYTES) of event
    /// payloads (counted only for a fire that carries one: events are rare
    /// next to schedule fires).
    fn event_bytes_past_limit(&self, fire: &Pending) -> bool {
        use crate::payload::{json_len, MAX_HELD_EVENT_BYTES};
        let Some((_, payload)) = &fire.event else {
            return false;
        };
        let queued = self.state.queue.iter().filter_map(|q| q.event.as_ref());
        let running = self
            .state
            .in_flight
            .iter()
            .filter_map(|r| r.payload.as_ref());
        let waiting = self
            .state
            .retry_wait
            .as_ref()
            .and_then(|w| w.event.as_deref())
            .map(|(_, p)| p);
        let mut held = json_len(payload);
        for p in queued.map(|(_, p)| p).chain(running).chain(waiting) {
            held = held.saturating_add(json_len(p));
            if held > MAX_HELD_EVENT_BYTES {
                return true;
            }
        }
        held > MAX_HELD_EVENT_BYTES
    }

    /// `trigger` (through `overlap` instead of the job's policy, if given):
    /// answered once the claim is durable.
    pub(super) fn trigger(
        &mut self,
        myself: &ActorRef<JobMsg>,
        overlap: Option<OverlapPolicy>,
        reply: RpcReplyPort<Result<TriggerOutcome, Error>>,
    ) {
        let outcome = self.fire_now(myself, Trigger::Manual, None, overlap);
        if outcome.is_ok() {
            self.save_claims(myself);
        }
        self.answer_when_durable(reply, outcome);
    }

    /// A manual trigger or a named event: fire now through the overlap
    /// policy (or `overlap`, for this fire). A completed job can still be
    /// triggered (its schedule is exhausted, its handler is not).
    pub(super) fn fire_now(
        &mut self,
        myself: &ActorRef<JobMsg>,
        trigger: Trigger,
        event: Option<(String, Arc<serde_json::Value>)>,
        overlap: Option<OverlapPolicy>,
    ) -> Result<TriggerOutcome, Error> {
        if self.link.handler.is_none() || self.state.failed.is_some() {
            return Err(self.invalid_state("trigger"));
        }
        let now = self.now();
        self.state.last_fire = Some(now);
        self.publish(EventKind::Fired {
            scheduled: now,
            trigger,
        });
        if self.state.paused.is_some() {
            self.skip(now, SkipReason::Paused, 1);
            return Ok(TriggerOutcome::Skipped(SkipReason::Paused));
        }
        let mut fire = Pending::new(now, trigger);
        fire.event = event;
        let overlap = overlap.unwrap_or(self.spec.overlap);
        Ok(self.overlap_fire_with(myself, fire, overlap))
    }

    /// Queues the schedule's slots in `(from, to]` as backfilled fires,
    /// oldest first, behind the runs in flight and the fires already queued,
    /// whatever the overlap policy (Temporal's buffer-all for backfills).
    /// They are stored with the queue, so a restart runs the rest.
    pub(super) fn backfill(
        &mut self,
        myself: &ActorRef<JobMsg>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        overlap: crate::policy::BackfillOverlap,
    ) -> Result<usize, Error> {
        use crate::policy::BackfillOverlap;
        if self.link.handler.is_none() || self.state.failed.is_some() || self.state.paused.is_some()
        {
            return Err(self.invalid_state("backfill"));
        }
        let range = || format!("({}, {}]", from.to_rfc3339(), to.to_rfc3339());
        if from >= to {
            return Err(Error::InvalidBackfill(format!(
                "the range {} is empty: from must be before to",
                range()
            )));
        }
        // Both the queue and the runs in flight are stored with the job's
        // state: a backfill adds at most `MAX_BACKFILL` to either.
        let (held, place) = match overlap {
            BackfillOverlap::BufferAll => (self.state.queue.len(), "queue"),
            BackfillOverlap::AllowAll => (self.state.in_flight.len(), "runs in flight"),
        };
        let room = MAX_BACKFILL.saturating_sub(held);
        let mut slots = Vec::new();
        let mut cursor = from;
        // One budget for the whole range: the job's actor makes the search,
        // and a schedule whose candidates are nearly all excluded would
        // keep it busy for minutes over a long range.
        let mut work = crate::schedule::SEARCH_WORK;
        loop {
            let slot = match self.schedule.search_within(cursor, &mut work) {
                Search::Found(slot, _) if slot <= to => slot,
                Search::Found(..) | Search::End => break,
                Search::Spent => {
                    return Err(Error::InvalidBackfill(format!(
                        "searching the range {} for the schedule's slots takes more than \
                         {} expression checks (its exclusions leave few of its candidates): \
                         split it",
                        range(),
                        crate::schedule::SEARCH_WORK
                    )));
                }
            };
            if slots.len() == room {
                return Err(Error::InvalidBackfill(format!(
                    "the range {} holds more slots than the job's {place} have room for \
                     ({room} of {MAX_BACKFILL} places free): split it",
                    range()
                )));
            }
            slots.push(slot);
            cursor = slot;
        }
        for &slot in &slots {
            self.publish(EventKind::Fired {
                scheduled: slot,
                trigger: Trigger::Backfill,
            });
            let fire = Pending::new(slot, Trigger::Backfill);
            match overlap {
                BackfillOverlap::AllowAll => {
                    self.claim_run(myself, fire);
                }
                BackfillOverlap::BufferAll => {
                    self.state.queue.push_back(fire);
                    self.publish(EventKind::Queued { scheduled: slot });
                }
            }
        }
        self.start_queued(myself);
        Ok(slots.len())
    }

    /// Records a run as in flight; it starts once its record is durable (at
    /// once with a store that is not durable).
    pub(super) fn claim_run(&mut self, myself: &ActorRef<JobMsg>, fire: Pending) -> RunId {
        self.claim_run_as(myself, fire, RunId::random())
    }

    /// [`Self::claim_run`], under a given run id.
    pub(super) fn claim_run_as(
        &mut self,
        myself: &ActorRef<JobMsg>,
        fire: Pending,
        run_id: RunId,
    ) -> RunId {
        let (event, payload) = fire.event.unzip();
        self.state.in_flight.push(InFlightRun {
            run_id,
            scheduled: fire.scheduled,
            // A prepared run starts at its slot, and so does the retry of
            // one interrupted before it (it waits for the slot). Any other
            // run starts now, even for a slot still to come (a backfilled
            // range reaching past now, and the retries of its runs).
            started: match fire.trigger {
                Trigger::Schedule => self.now().max(fire.scheduled),
                Trigger::Recovery if self.retry_waits_for_slot(fire.scheduled) => {
                    self.now().max(fire.scheduled)
                }
                _ => self.now(),
            },
            attempt: fire.attempt,
            trigger: fire.trigger,
            event,
            payload,
            cancelled: None,
        });
        self.state.counters.runs = self.state.counters.runs.saturating_add(1);
        self.tokens.push(run_id, (CancellationToken::new(), None));
        if self.link.rt.durable {
            self.unrecorded.push((run_id, 0));
        } else {
            self.start_run(myself, run_id);
        }
        run_id
    }

    /// Whether the retry of a run interrupted (`Recovery`) starts
    /// no earlier than its slot: when the slot is one the schedule took, as
    /// a run prepared ahead and interrupted before its slot. The retry of a
    /// backfilled slot still to come runs at once, as the backfilled run did.
    pub(super) fn retry_waits_for_slot(&self, scheduled: DateTime<Utc>) -> bool {
        self.state.last_slot.is_some_and(|l| scheduled <= l)
    }

    /// `JobMsg::Preview`: the next `n` fires (at most [`MAX_PREVIEW`]).
    pub(super) fn preview(&self, n: usize, reply: RpcReplyPort<Result<Vec<PreviewFire>, Error>>) {
        // A prepared fire that has not started is still to come (one
        // whose task took it has started, even once a wall clock stepped
        // back is before its slot again).
        let not_started = |p: &&Prepared| {
            let run = self.state.in_flight.iter().find(|r| r.run_id == p.run_id);
            !p.slot.taken() && run.is_some_and(|r| r.started > self.now())
        };
        let (last_slot, fired) = match self.prepared.as_deref().filter(not_started) {
            Some(p) => (p.last_slot, self.state.counters.fires.saturating_sub(1)),
            None => (self.state.last_slot, self.state.counters.fires),
        };
        let after = self.now().max(last_slot.unwrap_or_default());
        // Capped: the job computes it on its own actor, and an
        // endless schedule asked for `usize::MAX` fires would keep
        // it busy until the process runs out of memory.
        let fires = self
            .schedule
            .preview_remaining(after, fired, n.min(MAX_PREVIEW));
        let _ = reply.send(Ok(fires));
    }
}
