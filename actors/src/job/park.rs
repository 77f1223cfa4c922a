//! The runs of a failed job actor: parked for its successor when its state
//! drops, and adopted by the successor (their tokens, records, results and
//! admission).

use super::run::drop_unstarted;
use super::{JobActorState, JobMsg};
use crate::id::RunId;
use ractor::ActorRef;
use std::sync::Arc;
#[cfg(feature = "fault-injection")]
use std::time::Duration;

/// Fault injection for tests (feature `fault-injection`): a job whose failed
/// actor leaves its runs to be parked when its state drops, and how long
/// that then takes (as for an actor failing outside its turns, or a thread
/// descheduled between ractor reporting the failure and dropping the
/// state), so that its successor starts before the runs are parked.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub static SLOW_PARK: std::sync::Mutex<Option<(String, Duration)>> = std::sync::Mutex::new(None);

#[cfg(feature = "fault-injection")]
fn slow_park(id: &str) {
    let slow = SLOW_PARK.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some((_, delay)) = slow.filter(|(slow, _)| slow == id) {
        std::thread::sleep(delay);
    }
}

impl Drop for JobActorState {
    fn drop(&mut self) {
        // Counted live from its construction (`pre_start`).
        self.link
            .rt
            .live_jobs
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        // Timers still pending must not keep the stopped actor allocated.
        self.target.release();
        self.park_runs();
    }
}

impl JobActorState {
    /// A failed actor's runs go on: the actor restarted in its place takes
    /// their tokens, with why each was cancelled, the results they set
    /// (their end applies them) and where they read the job's last result
    /// (none to gather for an idle actor, as a passivated one), and asks
    /// again for the records of those not yet durable. (A removed job
    /// leaves none: see `JobMsg::Remove`.)
    ///
    /// Called when a turn fails, before ractor reports the failure to the
    /// supervisor (see `JobActor::handle`): the supervisor, restarting the
    /// job or giving up on it, then finds the runs parked. A give-up claims
    /// a prepared run and announces its fire before the registry announces
    /// the run `Interrupted` (see `Prepared::give_up`); until 2026-12-06
    /// the runs were parked only when ractor dropped the state, after its
    /// report, and a give-up read first could leave that `Fired` after the
    /// `Interrupted`. Called again when the state drops (nothing left
    /// then, unless the actor failed outside its turns).
    pub(super) fn park_runs(&mut self) {
        let mut cells = Vec::new();
        if !self.tokens.0.is_empty() {
            cells.push(self.link.last_result.clone());
            if let Some(rare) = &self.rare {
                cells.extend(rare.adopted_cells.iter().cloned());
            }
        }
        let mut prepared = self.prepared.take();
        let runs: Vec<crate::runtime::ParkedRun> = std::mem::take(&mut self.tokens.0)
            .into_iter()
            .map(
                |(run_id, (token, cancelled), task)| crate::runtime::ParkedRun {
                    unrecorded: self.unrecorded.iter().any(|(r, _)| *r == run_id),
                    admission: self
                        .rare
                        .as_ref()
                        .and_then(|r| r.waiting_admission.get(&run_id).cloned()),
                    result: self.rare.as_ref().and_then(|r| {
                        r.results
                            .iter()
                            .find(|(id, _)| *id == run_id)
                            .map(|(_, value)| value.clone())
                    }),
                    cells: cells.clone(),
                    completes: self.completes_after() == Some(run_id),
                    prepared: prepared.take_if(|p| p.run_id == run_id).and_then(|p| {
                        let run = self.state.in_flight.iter().find(|r| r.run_id == run_id);
                        run.map(|r| (p, r.scheduled))
                    }),
                    run_id,
                    token,
                    cancelled,
                    task,
                },
            )
            .collect();
        if !runs.is_empty() {
            #[cfg(feature = "fault-injection")]
            slow_park(self.spec.id.as_str());
            let rt = &self.link.rt;
            // Given up on meanwhile: nobody takes them.
            if let Some((at, runs)) =
                rt.orphan_tokens
                    .park(&self.spec.id, self.link.job.get_id(), runs)
            {
                for run in runs {
                    run.stop(rt, &self.spec.id, at);
                }
            }
        }
    }

    /// Whether a failed turn parks the runs at once (see
    /// [`JobActorState::park_runs`]). With the `SLOW_PARK` fault on this
    /// job, they are parked only when the state drops, after ractor's
    /// report, as for an actor failing outside its turns: the tests of the
    /// late park use it.
    pub(super) fn parks_at_failure(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        {
            let slow = SLOW_PARK.lock().unwrap_or_else(|e| e.into_inner());
            if slow
                .as_ref()
                .is_some_and(|(id, _)| id == self.spec.id.as_str())
            {
                return false;
            }
        }
        true
    }
}

impl JobActorState {
    /// Takes over the runs of the failed actor this one replaced: their
    /// tokens (with why each was cancelled), the records it awaited, the
    /// results they set, the ends of runs that ended as it failed, and
    /// their admission.
    pub(super) fn adopt(
        &mut self,
        myself: &ActorRef<JobMsg>,
        runs: Vec<crate::runtime::ParkedRun>,
    ) {
        let mut admissions = Vec::new();
        for run in runs {
            // A run this actor holds a token of already started under it.
            let held = self.tokens.get(&run.run_id).is_some();
            if !held && self.state.in_flight.iter().any(|r| r.run_id == run.run_id) {
                self.tokens.push(run.run_id, (run.token, run.cancelled));
                if let Some(tags) = run.admission {
                    admissions.push((run.run_id, tags));
                }
                if run.unrecorded {
                    self.unrecorded.push((run.run_id, 0));
                }
                if run.completes {
                    // The job's `Completed` waited for this run, still
                    // waiting for its record or for admission: it waits on
                    // under this actor. (Until 2026-12-05 it was lost.)
                    self.set_completes_after(Some(run.run_id));
                }
                // A fire the failed actor prepared ahead stays prepared:
                // a trigger, pause or cancel before its slot withdraws it
                // (until 2026-12-05 the successor took it for a run in
                // flight: a `Replace` trigger cancelled it, a fire counted
                // with no `Fired`, and its slot never ran).
                if self.prepared.is_none() {
                    self.prepared = run.prepared.map(|(p, _)| p);
                }
                // The result it set before the failure, unless it set a
                // newer one since (sent to this actor).
                if let Some(value) = run.result {
                    let results = &mut self.rare_mut().results;
                    if !results.iter().any(|(id, _)| *id == run.run_id) {
                        results.push((run.run_id, value));
                    }
                }
                for cell in run.cells {
                    let known = Arc::ptr_eq(&cell, &self.link.last_result)
                        || self
                            .rare
                            .as_ref()
                            .is_some_and(|r| r.adopted_cells.iter().any(|c| Arc::ptr_eq(c, &cell)));
                    if !known {
                        // It may hold an older result than this actor's.
                        crate::handler::write_cell(&cell, self.state.last_result.clone());
                        self.rare_mut().adopted_cells.push(cell);
                    }
                }
                if let Some(task) = run.task {
                    // Its `RunFinished` may have died in the predecessor's
                    // mailbox: its result is taken from the task too (a
                    // second `RunFinished` of a run is ignored).
                    let (link, run_id) = (self.link.clone(), run.run_id);
                    tokio::spawn(async move {
                        if let Ok(Some(result)) = task.await {
                            crate::ahead::deliver(&link, JobMsg::RunFinished { run_id, result });
                        }
                    });
                }
            }
        }
        for (run_id, tags) in admissions {
            self.take_over_admission(myself, run_id, tags);
        }
    }

    /// A run the failed predecessor left waiting for admission: if it still
    /// waits, it waits on for this actor, in the turn it had (the oldest
    /// first among equals: until 2026-12-05 it queued again, behind the
    /// runs that came after it); if it was admitted, its `Admitted` died
    /// with the predecessor's mailbox (or comes later, and is then ignored),
    /// and this actor starts it in the place taken for it.
    fn take_over_admission(
        &mut self,
        myself: &ActorRef<JobMsg>,
        run_id: RunId,
        tags: Arc<[String]>,
    ) {
        let admission = &self.link.rt.admission;
        let cancelled = self.is_cancelled(run_id);
        if cancelled && admission.withdraw(run_id) {
            drop_unstarted(myself, run_id);
        } else if !cancelled && admission.rebind(run_id, self.spec.priority, &self.link) {
            // Its `Admitted` comes to this actor.
            self.rare_mut().waiting_admission.insert(run_id, tags);
        } else if admission.take_admitted(run_id) {
            self.admitted(myself, run_id, tags);
        }
    }
}
