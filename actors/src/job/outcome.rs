//! A run's end: its outcome, counters and history entry, the job's last
//! result, retries (and the rerun of an interrupted run), the pause after
//! failed fires, and the queued fires that start next.

use super::{JobActorState, JobMsg, Pending, RunResult, TARGET};
use crate::clock::deadline_for;
use crate::event::EventKind;
use crate::id::RunId;
use crate::policy::InterruptedPolicy;
use crate::status::{CancelReason, Outcome, PauseInfo, RetryWait, RunRecord, SkipReason, Trigger};
use crate::timer::TimerKind;
use chrono::{DateTime, Utc};
use ractor::ActorRef;
use std::sync::Arc;

/// How a cancelled run whose handler did not stop within the cancel grace
/// ends its outcome's reason.
const ABANDONED: &str = "dropped: the handler did not stop within the cancel grace";

impl JobActorState {
    /// `JobMsg::RunFinished`: a run ended.
    pub(super) fn run_finished(
        &mut self,
        myself: &ActorRef<JobMsg>,
        run_id: RunId,
        result: RunResult,
    ) {
        if self.awaiting_park
            && self.tokens.get(&run_id).is_none()
            && self.state.in_flight.iter().any(|r| r.run_id == run_id)
        {
            // A run of the failed predecessor that ended before it
            // was parked: its end waits for its token and result.
            tracing::debug!(target: TARGET, job_id = %self.spec.id, run_id = %run_id, "run ended before it was adopted");
            self.rare_mut()
                .early
                .push(JobMsg::RunFinished { run_id, result });
        } else {
            self.finish_run(run_id, result);
            self.start_queued(myself);
            self.prepare_at_run_end(myself);
            self.save_claims(myself);
            if self.state.in_flight.is_empty() {
                if let Some(idle) = self.stopping.take() {
                    let _ = idle.send(());
                }
            }
        }
    }

    /// Makes `value` the job's last result, in its state and where its
    /// runs read it (this actor's link, and the cells runs adopted from a
    /// crashed predecessor still read). `null` clears it: the job has no
    /// result, as before any.
    pub(super) fn set_last_result(&mut self, value: Option<Arc<serde_json::Value>>) {
        let value = value.filter(|v| !v.is_null());
        self.link.set_last_result(value.clone());
        // Only the cells a run of a predecessor still reads.
        if let Some(rare) = &mut self.rare {
            rare.adopted_cells
                .retain(|cell| Arc::strong_count(cell) > 1);
            for cell in &rare.adopted_cells {
                crate::handler::write_cell(cell, value.clone());
            }
        }
        self.state.last_result = value;
    }

    fn finish_run(&mut self, run_id: RunId, result: RunResult) {
        let Some(pos) = self.state.in_flight.iter().position(|r| r.run_id == run_id) else {
            return;
        };
        let run = self.state.in_flight.remove(pos);
        if self.prepared.take_if(|p| p.run_id == run_id).is_some() {
            self.state.last_fire = self.state.last_fire.max(Some(run.scheduled));
        }
        // Only runs started by an event have one.
        let mut event = run.event.zip(run.payload).map(Box::new);
        // The progress shown is of a run in flight: not of this one any
        // more (nor of any, once none is in flight).
        let progress_of = self.rare.as_ref().and_then(|r| r.progress_of);
        if self.state.in_flight.is_empty() || progress_of == Some(run_id) {
            self.state.progress = None;
            if let Some(rare) = &mut self.rare {
                rare.progress_of = None;
            }
        }
        let cancelled = self.tokens.remove(&run_id).and_then(|(_, why)| why);
        // Cancelled before its handler started: it has no duration.
        let ran = !matches!(result, RunResult::Dropped);
        let outcome = match (result, cancelled) {
            (RunResult::Ok, _) => Outcome::Succeeded,
            // A timeout before the shutdown stands: its retry waits in the
            // stored state for the next start.
            (RunResult::TimedOut, Some(CancelReason::Shutdown)) => Outcome::TimedOut,
            // A cancel (or remove, replace) during the grace after a
            // timeout is what the user asked last: the run is cancelled,
            // hence not retried. A shutdown interrupts the run: the next
            // start runs its fire again, as after a crash.
            // Its handler ignored the cancel past the grace: the reason
            // says so, for the operator whose handler does not watch its
            // token.
            (RunResult::Abandoned, Some(why)) => match why.cut_outcome() {
                Outcome::Cancelled(text) => Outcome::Cancelled(format!("{text}; {ABANDONED}")),
                other => other,
            },
            (_, Some(why)) => why.cut_outcome(),
            (RunResult::Abandoned, None) => Outcome::Cancelled(ABANDONED.into()),
            (RunResult::TimedOut, None) => Outcome::TimedOut,
            (RunResult::Err(e), None) => Outcome::Failed(e),
            (RunResult::Panicked(p), None) => Outcome::Failed(format!("handler panicked: {p}")),
            (RunResult::Dropped, None) => Outcome::Cancelled("dropped".into()),
        };
        let now = self.now();
        let record = RunRecord {
            run_id,
            scheduled: run.scheduled,
            started: run.started,
            finished: now,
            attempt: run.attempt,
            trigger: run.trigger,
            outcome,
        };
        let result = self.rare.as_mut().and_then(|rare| {
            let at = rare.results.iter().position(|(id, _)| *id == run_id)?;
            Some(rare.results.swap_remove(at).1)
        });
        if let Some(value) = result {
            if record.outcome == Outcome::Succeeded {
                self.set_last_result(Some(value));
            }
        }
        if ran {
            self.link.rt.histograms.record_duration(record.duration());
        }
        self.count_outcome(&record);
        if !ran {
            // Never started: the job's completion may wait for its end.
            self.completed_after_end(run_id);
        }
        self.state.last_run = Some(record.clone());
        if record.outcome == Outcome::Interrupted {
            // Cut short by the shutdown: its fire waits in the stored queue
            // for the next start, ahead of the fires queued before, behind
            // the runs cut before it; with its event, stored with the queue.
            if let Some(mut fire) = self.rerun_of(run.scheduled, run.attempt) {
                fire.event = event.take().map(|e| *e);
                let at = self
                    .state
                    .queue
                    .iter()
                    .take_while(|f| f.trigger == Trigger::Recovery)
                    .count();
                self.state.queue.insert(at, fire);
            }
        }
        self.after_outcome(&record, event);
        self.history.push(record);
    }

    /// The fire that runs an interrupted run (by a crash or a shutdown)
    /// again: at-least-once, unless the job says abandon, or has no
    /// handler to run it with. The same attempt: the run did not fail.
    pub(super) fn rerun_of(&self, scheduled: DateTime<Utc>, attempt: u32) -> Option<Pending> {
        if self.spec.interrupted != InterruptedPolicy::Retry || self.link.handler.is_none() {
            return None;
        }
        let mut fire = Pending::new(scheduled, Trigger::Recovery);
        fire.attempt = attempt;
        Some(fire)
    }

    /// Fire-level bookkeeping once a run ended: retry a failure while the
    /// policy allows; count a failed fire once its retries are exhausted, and
    /// pause the job after `pause_after_failures` failed fires in a row.
    fn after_outcome(
        &mut self,
        record: &RunRecord,
        event: Option<Box<(String, Arc<serde_json::Value>)>>,
    ) {
        if record.outcome == Outcome::Succeeded {
            self.state.consecutive_failures = 0;
            return;
        }
        if !record.outcome.is_failure() {
            return;
        }
        let random: f64 = rand::random();
        // A job keeps one waiting retry (`JobState::retry_wait`): a run that
        // fails while another fire's retry waits (side by side under
        // `Concurrent`) is not retried, and its fire counts as failed,
        // rather than silently taking the place of the older retry.
        let delay = match self.state.retry_wait {
            Some(_) => None,
            None => self.spec.retry.next_delay(record.attempt, random),
        };
        if let Some(delay) = delay {
            // A delay past the end of chrono's calendar (a backoff of
            // `Duration::MAX`, say) waits until that end: never, in practice.
            let due = chrono::Duration::from_std(delay)
                .ok()
                .and_then(|d| self.now().checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            self.state.retry_wait = Some(Box::new(RetryWait {
                scheduled: record.scheduled,
                attempt: record.attempt.saturating_add(1),
                due,
                trigger: Trigger::Retry,
                event,
            }));
            self.publish(EventKind::RetryScheduled {
                run_id: record.run_id,
                attempt: record.attempt.saturating_add(1),
                at: due,
            });
            // During a shutdown the retry waits in the stored state for the
            // next start.
            if self.stopping.is_none() {
                self.arm_retry();
            }
            return;
        }
        if record.attempt > 1 {
            self.publish(EventKind::RetriesExhausted {
                run_id: record.run_id,
                attempts: record.attempt,
            });
        }
        self.count_failed_fire(Some(record.run_id));
    }

    /// A fire failed for good: one more in a row, and the job pauses itself
    /// at `pause_after_failures`. `run_id`: the fire's last run, if it ended
    /// just now (not for a waiting retry dropped), named in the warning.
    pub(super) fn count_failed_fire(&mut self, run_id: Option<RunId>) {
        self.state.consecutive_failures = self.state.consecutive_failures.saturating_add(1);
        let failures = self.state.consecutive_failures;
        if self
            .spec
            .pause_after_failures
            .is_some_and(|n| failures >= n)
            && self.state.paused.is_none()
        {
            self.state.paused = Some(Box::new(PauseInfo {
                note: Some(format!("paused after {failures} failed fires in a row")),
                since: self.now(),
            }));
            tracing::warn!(target: TARGET, job_id = %self.spec.id, run_id = run_id.map(tracing::field::display), failures, "job paused itself");
            self.publish(EventKind::AutoPaused { failures });
        }
    }

    pub(super) fn count_outcome(&mut self, record: &RunRecord) {
        let c = &mut self.state.counters;
        let kind = match &record.outcome {
            Outcome::Succeeded => {
                c.succeeded = c.succeeded.saturating_add(1);
                self.state.consecutive_failures = 0;
                EventKind::Succeeded {
                    run_id: record.run_id,
                    duration_ms: record.duration().as_millis() as u64,
                }
            }
            Outcome::Failed(error) => {
                c.failed = c.failed.saturating_add(1);
                tracing::warn!(target: TARGET, job_id = %self.spec.id, run_id = %record.run_id, %error, "run failed");
                EventKind::Failed {
                    run_id: record.run_id,
                    error: error.clone(),
                }
            }
            Outcome::Cancelled(reason) => {
                c.cancelled = c.cancelled.saturating_add(1);
                EventKind::Cancelled {
                    run_id: record.run_id,
                    reason: reason.clone(),
                }
            }
            Outcome::Interrupted => {
                c.interrupted = c.interrupted.saturating_add(1);
                EventKind::Interrupted {
                    run_id: record.run_id,
                }
            }
            Outcome::Skipped { .. } | Outcome::Coalesced { .. } => return,
            Outcome::TimedOut => {
                c.timed_out = c.timed_out.saturating_add(1);
                tracing::warn!(target: TARGET, job_id = %self.spec.id, run_id = %record.run_id, "run timed out");
                EventKind::TimedOut {
                    run_id: record.run_id,
                }
            }
        };
        self.publish(kind);
    }

    /// Starts the next queued fire when nothing is in flight. A waiting
    /// retry counts as in flight (as for the overlap policy): the fires
    /// queued behind a failed run wait for its retries too.
    pub(super) fn start_queued(&mut self, myself: &ActorRef<JobMsg>) {
        if self.stopping.is_some()
            || !self.state.in_flight.is_empty()
            || self.state.retry_wait.is_some()
        {
            return;
        }
        if self.state.paused.is_some() {
            // Every queued fire is skipped now: one left behind, with
            // nothing in flight to start it, would hold the queue for ever.
            let completes = self.completes_with_queue();
            let fires = std::mem::take(&mut self.state.queue);
            for fire in fires {
                self.skip(fire.scheduled, SkipReason::Paused, 1);
            }
            if completes {
                self.publish(EventKind::Completed);
            }
        } else if self.link.handler.is_none() || self.state.failed.is_some() {
            // An orphan keeps its queue (stored with its state) for a
            // process that has its handler, as it keeps the job itself; a
            // failed job keeps it for a revive.
        } else if let Some(fire) = self.state.queue.pop_front() {
            let recovery = fire.trigger == Trigger::Recovery;
            let completes = self.state.completed && self.is_last_fire(&fire);
            let run_id = RunId::random();
            if completes {
                // The job's `Completed` waited for this fire (see
                // `completes_with_queue`): it comes after the run's
                // `Started` (see `completes_after`).
                self.set_completes_after(Some(run_id));
            }
            self.claim_run_as(myself, fire, run_id);
            if completes && !self.unrecorded.iter().any(|(id, _)| *id == run_id) {
                // Started now, or waiting for admission (then announced
                // once admitted).
                self.completed_after_start(run_id);
            }
            // The retries of runs interrupted side by side (a `Concurrent`
            // job's, a backfill's with `AllowAll`) start side by side again,
            // as those runs did; the fires queued behind them still wait.
            while recovery
                && self
                    .state
                    .queue
                    .front()
                    .is_some_and(|f| f.trigger == Trigger::Recovery)
            {
                if let Some(fire) = self.state.queue.pop_front() {
                    self.claim_run(myself, fire);
                }
            }
        }
    }

    /// Arms the retry timer for the waiting retry, if any.
    pub(super) fn arm_retry(&mut self) {
        self.retry_generation += 1;
        if let Some(wait) = &self.state.retry_wait {
            let deadline = deadline_for(self.now(), wait.due);
            self.link.rt.timer.arm(
                deadline,
                self.target.clone(),
                TimerKind::Retry,
                self.retry_generation,
            );
        }
    }

    /// The backoff delay of a retry ended: run the next attempt.
    pub(super) fn retry_due(&mut self, myself: &ActorRef<JobMsg>) {
        let Some(wait) = self.state.retry_wait.take() else {
            return;
        };
        if self.now() < wait.due {
            // The wall clock stepped back: wait until the retry's wall time.
            self.state.retry_wait = Some(wait);
            self.arm_retry();
            return;
        }
        if self.state.paused.is_some() || self.link.handler.is_none() {
            let (why, reason) = match self.state.paused {
                Some(_) => ("job paused", SkipReason::Paused),
                None => ("handler not registered", SkipReason::Orphaned),
            };
            self.retry_dropped(&wait, why);
            self.skip(wait.scheduled, reason, 1);
            // Fires queued behind the retry are skipped too.
            self.start_queued(myself);
            return;
        }
        self.state.counters.retries = self.state.counters.retries.saturating_add(1);
        let fire = Pending {
            scheduled: wait.scheduled,
            trigger: wait.trigger,
            attempt: wait.attempt,
            event: wait.event.map(|event| *event),
        };
        self.claim_run(myself, fire);
    }

    /// Announces that the waiting retry `wait`, just taken, will never run.
    pub(super) fn retry_dropped(&mut self, wait: &RetryWait, reason: &str) {
        self.publish(EventKind::RetryDropped {
            scheduled: wait.scheduled,
            attempt: wait.attempt,
            reason: reason.into(),
        });
    }
}
