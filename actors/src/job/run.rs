//! Starting a claimed run: admission, and the task that waits for its slot,
//! its record and its jitter, calls the handler within its time limits and
//! reports how the run ended (`RunFinished`).

use super::{JobActorState, JobMsg, TARGET};
use crate::clock::deadline_for;
use crate::event::EventKind;
use crate::handler::JobContext;
use crate::id::RunId;
use crate::status::{CancelReason, Trigger};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use ractor::ActorRef;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Fault injection for tests (feature `fault-injection`): the task of a
/// prepared run of the named job holds once it took its slot, before it
/// announces anything, until the test lets it go: the window in which a
/// removal or a give-up claims the run from its task (see
/// `ahead::Slot::claim`).
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub static HOLD_TAKEN: std::sync::Mutex<Option<(String, Arc<TakenHold>)>> =
    std::sync::Mutex::new(None);

/// A hold of [`HOLD_TAKEN`]: the task adds a permit to `reached` when it
/// holds, and goes on with a permit of `release`.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub struct TakenHold {
    /// A permit per task that reached the hold.
    pub reached: tokio::sync::Semaphore,
    /// A permit per task let go.
    pub release: tokio::sync::Semaphore,
}

#[cfg(feature = "fault-injection")]
impl Default for TakenHold {
    fn default() -> Self {
        Self {
            reached: tokio::sync::Semaphore::new(0),
            release: tokio::sync::Semaphore::new(0),
        }
    }
}

#[cfg(feature = "fault-injection")]
async fn hold_taken(id: &crate::id::JobId) {
    let hold = HOLD_TAKEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .filter(|(held, _)| held == id.as_str())
        .map(|(_, hold)| hold.clone());
    if let Some(hold) = hold {
        hold.reached.add_permits(1);
        if let Ok(permit) = hold.release.acquire().await {
            permit.forget();
        }
    }
}

/// How a run task ended, as seen from the task.
#[derive(Debug, Clone)]
pub enum RunResult {
    /// The handler returned Ok.
    Ok,
    /// The handler returned an error.
    Err(String),
    /// The handler panicked.
    Panicked(String),
    /// The run was cancelled before its handler started (waiting for its
    /// slot, its record or its jitter): the handler never ran.
    Dropped,
    /// The run was cancelled and its handler did not stop within the
    /// cancel grace: its future was dropped.
    Abandoned,
    /// The run exceeded its timeout.
    TimedOut,
}

/// The cancellation tokens of a job's runs in flight, with why each was
/// cancelled, and the tasks of those started. A job rarely has more than one
/// run in flight: a vector searched in order costs less than hashing the run
/// id at the claim, the start and the end of every run.
#[derive(Default)]
pub(super) struct RunTokens(pub(super) Vec<(RunId, RunToken, Option<RunTask>)>);

/// A run's cancellation token, with why it was cancelled.
type RunToken = (CancellationToken, Option<CancelReason>);

/// A run's task; its output is the run's result, which its successor takes
/// if the job actor fails before reading the task's `RunFinished` (see
/// `OrphanTokens`). `None`: the task ended without a result to report.
pub(crate) type RunTask = tokio::task::JoinHandle<Option<RunResult>>;

impl RunTokens {
    pub(super) fn get(&self, run_id: &RunId) -> Option<&RunToken> {
        self.0
            .iter()
            .find(|(id, ..)| id == run_id)
            .map(|(_, v, _)| v)
    }

    /// Adds a new run's token (run ids are fresh).
    pub(super) fn push(&mut self, run_id: RunId, entry: RunToken) {
        self.0.push((run_id, entry, None));
    }

    /// Keeps the task of a run started.
    fn set_task(&mut self, run_id: &RunId, task: RunTask) {
        if let Some((.., slot)) = self.0.iter_mut().find(|(id, ..)| id == run_id) {
            *slot = Some(task);
        }
    }

    pub(super) fn remove(&mut self, run_id: &RunId) -> Option<RunToken> {
        let pos = self.0.iter().position(|(id, ..)| id == run_id)?;
        Some(self.0.remove(pos).1)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&RunId, &mut RunToken)> {
        self.0.iter_mut().map(|(id, v, _)| (&*id, v))
    }
}

impl JobActorState {
    /// Whether a claimed run was cancelled (or is gone).
    pub(super) fn is_cancelled(&self, run_id: RunId) -> bool {
        self.tokens
            .get(&run_id)
            .is_none_or(|(_, why)| why.is_some())
    }

    /// Starts a claimed run whose record is durable, once admitted by the
    /// concurrency caps (at once when there are none).
    pub(super) fn start_run(&mut self, myself: &ActorRef<JobMsg>, run_id: RunId) {
        if self.is_cancelled(run_id) {
            // Cancelled while its record was being written: it never starts.
            return drop_unstarted(myself, run_id);
        }
        if !self.link.rt.admission.is_limited() {
            return self.spawn_run(run_id, None);
        }
        let tags = self.tags.clone();
        let admitted = self.link.rt.admission.admit_or_wait(
            run_id,
            tags.clone(),
            self.spec.priority,
            &self.link,
        );
        if admitted {
            self.spawn_run(run_id, Some(tags));
        } else {
            self.rare_mut().waiting_admission.insert(run_id, tags);
            self.state.counters.admission_waits =
                self.state.counters.admission_waits.saturating_add(1);
        }
    }

    /// Spawns the task of a claimed run. The handler runs off the actor; its
    /// result, panic included, comes back as `RunFinished`. `permit`: the
    /// tags of the admission place the run holds, given back when it ends.
    pub(super) fn spawn_run(&mut self, run_id: RunId, permit: Option<Arc<[String]>>) {
        let found = self
            .state
            .in_flight
            .iter()
            .find(|r| r.run_id == run_id)
            .zip(self.tokens.get(&run_id));
        let (Some((run, (token, _))), Some(_)) = (found, &self.link.handler) else {
            // Cancelled and finished before it could start (or an orphan,
            // which claims no run): its place, if any, goes back.
            if let Some(tags) = permit {
                self.link.rt.admission.release(&tags);
            }
            return;
        };
        let ctx = JobContext {
            job_id: self.spec.id.clone(),
            run_id,
            scheduled: run.scheduled,
            attempt: run.attempt,
            trigger: run.trigger,
            payload: self.payload.clone(),
            cancel: token.clone(),
            event: run.event.clone().map(|name| {
                let payload = run.payload.clone().unwrap_or_default();
                (name, payload)
            }),
            reporter: crate::handler::Reporter {
                link: self.link.clone(),
            },
        };
        // A prepared run waits for its instant; it is announced when it
        // starts (by its task).
        let prepared = self.prepared.as_deref().filter(|p| p.run_id == run_id);
        let gate = prepared.map(|p| p.slot.clone());
        // With a durable store, the take whose flush the run waits for.
        let durable_at = prepared.map_or(0, |p| p.durable_at);
        if gate.is_none() {
            self.publish(EventKind::Started {
                run_id,
                scheduled: run.scheduled,
                trigger: run.trigger,
                attempt: run.attempt,
            });
        }
        let due_slot = gate.clone();
        let (trigger, attempt) = (run.trigger, run.attempt);
        // A prepared run, and the retry of one interrupted by a crash before
        // its slot, start no earlier than the slot on the wall clock.
        let not_before_slot = gate.is_some()
            || (trigger == Trigger::Recovery && self.retry_waits_for_slot(run.scheduled));
        let limits = Limits {
            jitter: jitter_delay(self.spec.jitter),
            grace: self.link.rt.config.cancel_grace,
            timeout: self.spec.timeout,
        };
        let measure_lateness = matches!(
            run.trigger,
            Trigger::Schedule | Trigger::Manual | Trigger::Event
        );
        let scheduled = run.scheduled;
        let span = tracing::info_span!(
            target: TARGET,
            "run",
            job_id = %self.spec.id,
            run_id = %run_id,
            attempt = run.attempt,
            trigger = ?run.trigger,
        );
        // The task holds the job's link (a per-job reference count), not the
        // scheduler-wide handles.
        let link = self.link.clone();
        let tags = permit;
        let task = async move {
            let rt = &link.rt;
            let Some(handler) = link.handler.as_deref() else {
                // Never for a prepared run (only a job with a handler
                // prepares); if it were, its count would still be settled.
                if gate
                    .as_ref()
                    .is_some_and(|slot| slot.abandon() == crate::ahead::Abandoned::Due)
                {
                    rt.timer.starts().running();
                }
                return None;
            };
            // One flat future: the context is stored once (it is not
            // passed down into nested futures), and what only a slow,
            // jittered or timed run needs is boxed, so the task of a
            // plain run stays small (its cell is allocated with a 128-byte
            // alignment: a large one costs glibc a consolidation pass).
            let mut result = None;
            // `Fired` announced already (below).
            let mut fired = false;
            // The wall clock when the slot came, unless the run waited
            // since (for its record).
            let mut wall = None;
            // The prepared run's slot came (before any cancellation) and
            // the task has still to announce it: whether it announced its
            // fire already.
            let mut announcing = None;
            if let Some(slot) = &gate {
                // A prepared run waits for the timer service to mark its
                // slot come (see `ahead`), or for the job to withdraw or
                // cancel it (removed or shut down meanwhile): then it never
                // runs.
                let mut came = slot.wait().await;
                while came {
                    rt.timer.starts().running();
                    // The slot came on the monotonic clock before it came
                    // on the wall clock, stepped back meanwhile: the run
                    // waits for its slot again, and the job may still
                    // withdraw it (the step's re-plan does, as any message
                    // that could change what happens at the slot).
                    let now = rt.clock.now();
                    if now >= scheduled || !slot.wait_again() {
                        wall = Some(now);
                        break;
                    }
                    rt.timer.slot_at(deadline_for(now, scheduled), slot.clone());
                    came = slot.wait().await;
                }
                if came {
                    #[cfg(feature = "fault-injection")]
                    Box::pin(hold_taken(&link.id)).await;
                    // Its claim is normally durable long before the slot;
                    // a late flush is waited for (or a cancellation).
                    if durable_at != 0 && !rt.updates.watermark().reached(durable_at) {
                        if ctx.cancel.is_cancelled() {
                            // Cancelled while it waited for its slot: its
                            // fire is announced below, if its job counts it.
                            // (Checked only here, where `Fired` comes before
                            // the wait: the token's check takes its lock,
                            // and a run that starts at once checks it once,
                            // further down.)
                            result = Some(RunResult::Dropped);
                            announcing = Some(false);
                        } else if slot.begin_announcing(false) {
                            // From its slot on the fire is counted (see
                            // `status::Ahead`): it is announced now, as a
                            // fire handled at its slot is before it waits
                            // for its record; `Started` comes once the
                            // record is durable. (Until 2026-12-05 both came
                            // after the wait: status counted a fire no
                            // `Fired` had announced.) Announced between
                            // `begin_announcing` and `announced`, with no
                            // wait between: a job claiming the run (given
                            // up on, removed) meanwhile waits for it.
                            if link.events().has_subscribers() {
                                let now = rt.clock.now();
                                link.events().publish(
                                    &link.id,
                                    now,
                                    EventKind::Fired { scheduled, trigger },
                                );
                                fired = true;
                            }
                            slot.announced(true);
                            announcing = Some(true);
                            wall = None;
                            if Box::pin(durable_wait(&rt.updates, durable_at, ctx.cancel.clone()))
                                .await
                            {
                                result = Some(RunResult::Dropped);
                            }
                        } else {
                            // Claimed by its job: the job announces it.
                            result = Some(RunResult::Dropped);
                        }
                    } else {
                        announcing = Some(false);
                    }
                } else {
                    match slot.abandon() {
                        crate::ahead::Abandoned::Due => rt.timer.starts().running(),
                        // The job forgot the run: nothing to report.
                        crate::ahead::Abandoned::Withdrawn => return None,
                        crate::ahead::Abandoned::Waiting => {}
                    }
                    result = Some(RunResult::Dropped);
                }
            }
            // The wall clock at the start, read once when nothing waits
            // after the reading.
            let mut start_now = None;
            if result.is_none() && not_before_slot {
                // A wall clock stepped back waits for the slot.
                let now = wall.unwrap_or_else(|| rt.clock.now());
                if ctx.cancel.is_cancelled()
                    || (now < scheduled
                        && Box::pin(wait_for_slot(
                            &*rt.clock,
                            scheduled,
                            rt.config.clock_check_interval,
                            ctx.cancel.clone(),
                        ))
                        .await)
                {
                    result = Some(RunResult::Dropped);
                } else if now >= scheduled {
                    start_now = Some(now);
                }
            }
            // A prepared run its task took: whether it starts, and what is
            // announced of it, is settled with the slot (see above).
            if let (Some(slot), Some(fired_before)) = (&gate, announcing) {
                if !slot.begin_announcing(fired_before) {
                    // Claimed by its job (given up on, removed): the job
                    // announces what the run was; it never starts.
                    result = Some(RunResult::Dropped);
                } else {
                    if link.events().has_subscribers() {
                        let now = rt.clock.now();
                        if result.is_none() {
                            if !fired {
                                link.events().publish(
                                    &link.id,
                                    now,
                                    EventKind::Fired { scheduled, trigger },
                                );
                            }
                            link.events().publish(
                                &link.id,
                                now,
                                EventKind::Started {
                                    run_id,
                                    scheduled,
                                    trigger,
                                    attempt,
                                },
                            );
                            if slot.completes() {
                                link.events().publish(&link.id, now, EventKind::Completed);
                            }
                        } else if !fired && slot.counted() {
                            // Cancelled by its job once its slot came,
                            // before anything announced it: the job counts
                            // the fire (and ends the run cancelled, or
                            // interrupted by a shutdown), as a fire handled
                            // at its slot whose run is cancelled before it
                            // starts; it is announced.
                            // (Until 2026-12-05 it was not: `fires` counted
                            // a fire no `Fired` announced.)
                            link.events().publish(
                                &link.id,
                                now,
                                EventKind::Fired { scheduled, trigger },
                            );
                        }
                    }
                    slot.announced(false);
                }
            }
            if result.is_none() && !limits.jitter.is_zero() {
                start_now = None;
                let token = ctx.cancel.clone();
                if Box::pin(jitter_wait(token, limits.jitter)).await {
                    result = Some(RunResult::Dropped);
                }
            }
            let result = match result {
                Some(result) => result,
                None => {
                    if measure_lateness {
                        let now = start_now.unwrap_or_else(|| rt.clock.now());
                        let late = (now - scheduled).to_std().unwrap_or_default();
                        rt.histograms.record_lateness(late);
                    }
                    let token = ctx.cancel.clone();
                    // A handler can panic in `call` itself, before it
                    // returns a future (a closure's synchronous part): that
                    // is a failed run too, not a task that dies without
                    // reporting and leaves the run in flight for ever.
                    match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(ctx))) {
                        Err(panic) => RunResult::Panicked(panic_message(&panic)),
                        Ok(fut) => {
                            // Unpin (the handler's future is boxed).
                            let mut run = AssertUnwindSafe(fut).catch_unwind();
                            // Most handlers are done at their first poll:
                            // the time limits then cost nothing.
                            match futures::poll!(&mut run) {
                                std::task::Poll::Ready(r) => finished(r),
                                std::task::Poll::Pending => {
                                    Box::pin(supervise(run, token, limits)).await
                                }
                            }
                        }
                    }
                }
            };
            if let Some(tags) = tags {
                rt.admission.release(&tags);
            }
            tracing::debug!(target: TARGET, ?result, "run ended");
            let msg = JobMsg::RunFinished {
                run_id,
                result: result.clone(),
            };
            link.rt.timer.starts().finished(&link, msg);
            Some(result)
        }
        .instrument(span);
        self.tokens.set_task(&run_id, tokio::spawn(task));
        if let Some(slot) = due_slot {
            // A prepared run: the timer service marks its slot come, unless
            // the run is withdrawn first (the slot decides which).
            let now = self.now();
            let timer = &self.link.rt.timer;
            if scheduled <= now {
                // Its record became durable only after the slot.
                slot.due(timer.starts());
            } else {
                timer.slot_at(deadline_for(now, scheduled), slot);
            }
        }
    }

    /// A run waiting for admission was admitted: it starts, unless it was
    /// cancelled meanwhile (then its place goes back at once).
    pub(super) fn admitted(
        &mut self,
        myself: &ActorRef<JobMsg>,
        run_id: RunId,
        tags: Arc<[String]>,
    ) {
        let asked_here = self
            .rare
            .as_mut()
            .is_some_and(|r| r.waiting_admission.remove(&run_id).is_some());
        if !asked_here
            && self.tokens.get(&run_id).is_none()
            && self.state.in_flight.iter().any(|r| r.run_id == run_id)
        {
            // Claimed by this job's actor before it crashed and was
            // restarted with the run in flight, and its token not
            // taken over (see `OrphanTokens`): this actor runs it.
            self.tokens.push(run_id, (CancellationToken::new(), None));
        }
        if self.is_cancelled(run_id) {
            // Cancelled while waiting: give the place back at once.
            self.link.rt.admission.release(&tags);
            drop_unstarted(myself, run_id);
        } else {
            // The run starts now: its record's start and duration
            // leave out the wait (its lateness includes it).
            let now = self.now();
            if let Some(run) = self.state.in_flight.iter_mut().find(|r| r.run_id == run_id) {
                run.started = run.started.max(now);
            }
            self.spawn_run(run_id, Some(tags));
            self.completed_after_start(run_id);
        }
    }
}

/// A random delay in `[0, max]`.
fn jitter_delay(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    use rand::Rng;
    Duration::from_nanos(rand::rng().random_range(0..=max.as_nanos() as u64))
}

/// The time limits of one run.
#[derive(Debug, Clone, Copy)]
struct Limits {
    jitter: Duration,
    grace: Duration,
    timeout: Option<Duration>,
}

/// A prepared run's wait for its slot on the wall clock (read again after
/// each sleep, since timers sleep on the monotonic clock): true if the run
/// was cancelled or withdrawn meanwhile. It sleeps `every` (the clock
/// watch's period) at most at a time: a step forward again past the slot
/// starts the run then, not once a sleep planned before that step ends.
async fn wait_for_slot(
    clock: &dyn crate::clock::Clock,
    slot: DateTime<Utc>,
    every: Duration,
    token: CancellationToken,
) -> bool {
    loop {
        let left = (slot - clock.now()).to_std().unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return token.is_cancelled();
        }
        tokio::select! {
            () = tokio::time::sleep(left.min(every)) => {}
            () = token.cancelled() => return true,
        }
    }
}

/// Waits for take `take` of the update queue to be durable (see
/// `watermark`); true if the run was cancelled first.
async fn durable_wait(
    updates: &crate::registry::Updates,
    take: u64,
    token: CancellationToken,
) -> bool {
    tokio::select! {
        _ = updates.watermark().wait(take) => false,
        _ = token.cancelled() => true,
    }
}

/// The jitter before a run: true if the run was cancelled meanwhile.
async fn jitter_wait(token: CancellationToken, jitter: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(jitter) => false,
        () = token.cancelled() => true,
    }
}

/// The handler's future, with its panic caught.
type CaughtRun = futures::future::CatchUnwind<
    AssertUnwindSafe<futures::future::BoxFuture<'static, Result<(), crate::handler::HandlerError>>>,
>;

/// What a run's outcome, panic included, becomes.
fn finished(r: std::thread::Result<Result<(), crate::handler::HandlerError>>) -> RunResult {
    match r {
        Ok(Ok(())) => RunResult::Ok,
        Ok(Err(e)) => RunResult::Err(e.to_string()),
        Err(panic) => RunResult::Panicked(panic_message(&panic)),
    }
}

/// Drives a handler that did not finish at its first poll. At the timeout
/// the token is cancelled; once the token is cancelled (by the timeout or by
/// the job) the handler has `grace` to return before its future is dropped.
async fn supervise(mut run: CaughtRun, token: CancellationToken, limits: Limits) -> RunResult {
    let cancelled_by_job = match limits.timeout {
        None => tokio::select! {
            biased;
            r = &mut run => return finished(r),
            () = token.cancelled() => true,
        },
        Some(timeout) => tokio::select! {
            biased;
            r = &mut run => return finished(r),
            () = tokio::time::sleep(timeout) => false,
            () = token.cancelled() => true,
        },
    };
    token.cancel();
    let in_grace = tokio::time::timeout(limits.grace, &mut run).await;
    match (cancelled_by_job, in_grace) {
        (false, _) => RunResult::TimedOut,
        (true, Ok(r)) => finished(r),
        (true, Err(_)) => RunResult::Abandoned,
    }
}

pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// Ends a claimed run that was cancelled before its task started: it is
/// recorded as cancelled, and its handler never runs.
pub(super) fn drop_unstarted(myself: &ActorRef<JobMsg>, run_id: RunId) {
    let _ = myself.cast(JobMsg::RunFinished {
        run_id,
        result: RunResult::Dropped,
    });
}
