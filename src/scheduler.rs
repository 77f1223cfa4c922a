//! [`Scheduler`]: the typed handle a service uses to control its jobs.

use crate::builder::SchedulerBuilder;
use crate::bulk::{BulkReport, JobSelector};
use cronactor_actors::registry::RegistryMsg;
use cronactor_actors::schedule::PreviewFire;
use cronactor_actors::{
    BackfillOverlap, Error, EventBus, EventStream, JobId, JobSpec, JobStatus, Metrics,
    OverlapPolicy, QuarantinedRecord, RunId, RunRecord, ShutdownReport, SupervisorMsg,
    TriggerOutcome, Upserted,
};
use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};
use std::time::Duration;

/// A handle to a running scheduler; cheap to clone, safe to share.
///
/// Each operation is one or more messages to the supervisor actor
/// ([`Scheduler::supervisor`]; a bulk operation sends one per job) and waits
/// for the answer, so the same
/// operations are available to code that prefers ractor's `call!`/`cast!`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{JobContext, JobSpec, ScheduleSpec, Scheduler};
///
/// let scheduler = Scheduler::builder()
///     .handler("greet", |ctx: JobContext| async move {
///         println!("hello from run {}", ctx.run_id);
///         Ok::<(), std::io::Error>(())
///     })
///     .in_memory()
///     .start()
///     .await?;
///
/// let spec = JobSpec::builder("hello", ScheduleSpec::cron("*/5 * * * * *"), "greet").build()?;
/// scheduler.add(spec).await?;
/// scheduler.pause("hello", Some("deploy in progress")).await?;
/// let status = scheduler.status("hello").await?;
/// assert_eq!(status.pause_note.as_deref(), Some("deploy in progress"));
/// scheduler.resume("hello", None).await?;
///
/// let report = scheduler.shutdown(std::time::Duration::from_secs(5)).await?;
/// assert!(report.cancelled.is_empty());
/// # Ok(())
/// # }
/// ```
///
/// Dropping the last clone of the handle without calling
/// [`Scheduler::shutdown`] stops the actors without waiting, as a crash
/// would: runs in flight are not cancelled, a fire prepared ahead of its
/// slot does not start (the next start finds it interrupted), and run
/// state newer than the last group commit may be lost. Call `shutdown` for
/// an orderly stop.
#[derive(Clone, Debug)]
pub struct Scheduler {
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
    pub(crate) registry: ActorRef<RegistryMsg>,
    pub(crate) events: EventBus,
    pub(crate) quarantined: Vec<QuarantinedRecord>,
    pub(crate) call_timeout: Duration,
    /// When the latest answer of a shutdown asked through this handle (or a
    /// clone) may come: a later `shutdown` joins it, and waits as long.
    pub(crate) shutdown_by: std::sync::Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
    pub(crate) _guard: std::sync::Arc<DropGuard>,
}

/// Stops the actors when the last handle is dropped.
#[derive(Debug)]
pub(crate) struct DropGuard {
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
    pub(crate) registry: ActorRef<RegistryMsg>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        // Job actors first, so that none writes to a stopped registry; the
        // registry's post_stop flushes what it holds.
        self.supervisor
            .stop_children(Some("scheduler dropped".into()));
        self.supervisor.stop(Some("scheduler dropped".into()));
        self.registry.stop(Some("scheduler dropped".into()));
    }
}

/// How many single pauses or resumes a bulk call
/// ([`Scheduler::pause_matching`]) keeps in flight: enough for the store's
/// group commit to write hundreds in one flush.
pub const BULK_CONCURRENCY: usize = 256;

fn job_id(id: impl AsRef<str>) -> Result<JobId, Error> {
    Ok(JobId::new(id.as_ref())?)
}

impl Scheduler {
    /// Starts configuring a scheduler.
    pub fn builder() -> SchedulerBuilder {
        SchedulerBuilder::new()
    }

    /// The supervisor actor: every operation of this handle is a
    /// [`SupervisorMsg`] to it.
    pub fn supervisor(&self) -> ActorRef<SupervisorMsg> {
        self.supervisor.clone()
    }

    /// Whether a shutdown was asked for through this handle or a clone of
    /// it: it may still be draining (reads answer until it has answered,
    /// see [`Scheduler::shutdown`]), or be over. A readiness check reports
    /// the service as not ready from then on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let scheduler = cronactor::Scheduler::builder().in_memory().start().await?;
    /// assert!(!scheduler.is_stopping());
    /// scheduler.shutdown(std::time::Duration::from_secs(1)).await?;
    /// assert!(scheduler.is_stopping());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_stopping(&self) -> bool {
        self.shutdown_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// Refuses a read once a shutdown's limit has passed: a shutdown that
    /// timed out leaves the actors running (its flush may still land), and
    /// the scheduler counts as shut down all the same. Before that, reads
    /// answer through the drain and the grace (see [`Scheduler::shutdown`]).
    fn read_allowed(&self) -> Result<(), Error> {
        let by = *self
            .shutdown_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match by {
            Some(by) if by <= tokio::time::Instant::now() => Err(Error::ShutDown),
            _ => Ok(()),
        }
    }

    async fn call<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<Result<T, Error>>) -> SupervisorMsg,
    ) -> Result<T, Error> {
        match self.supervisor.call(build, Some(self.call_timeout)).await {
            Ok(CallResult::Success(answer)) => answer,
            Ok(CallResult::Timeout) => Err(Error::Timeout(self.call_timeout)),
            Ok(CallResult::SenderError) | Err(_) => Err(Error::ShutDown),
        }
    }

    /// Adds a job. Returns once the job is durable in the store and started:
    /// its actor spawned (with the in-memory store, running; a message sent
    /// meanwhile waits in its mailbox), or, for a job whose first fire is more than
    /// [`RuntimeConfig::passivate_after`](crate::RuntimeConfig::passivate_after)
    /// away, passive (no actor until shortly before that fire or the first
    /// message for it; see "Passivation" in `docs/semantics.md`).
    ///
    /// # Errors
    /// [`Error::DuplicateJob`] (also for the id of a failed job, which
    /// [`Scheduler::upsert`] revives), [`Error::UnknownHandler`],
    /// [`Error::InvalidSpec`] or [`Error::Schedule`] for a spec whose fields
    /// were changed after it was built and no longer check,
    /// [`Error::Store`], [`Error::ShutDown`], [`Error::Timeout`].
    pub async fn add(&self, spec: JobSpec) -> Result<(), Error> {
        self.call(|r| SupervisorMsg::Add(Box::new(spec), r)).await
    }

    /// Adds a job already paused, with `note` in its status, in the same
    /// durable write as the job itself (as Temporal creates a schedule
    /// paused): it fires only once resumed, with no window in which it could
    /// fire before a separate `pause`. Its slots until then are skipped and
    /// counted as for any paused job.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cronactor::{JobContext, JobPhase, JobSpec, ScheduleSpec, Scheduler};
    /// use std::time::Duration;
    ///
    /// let scheduler = Scheduler::builder()
    ///     .handler("noop", |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) })
    ///     .in_memory()
    ///     .start()
    ///     .await?;
    /// let spec = JobSpec::builder("billing", ScheduleSpec::cron("* * * * * *"), "noop").build()?;
    /// scheduler.add_paused(spec, Some("enabled after the migration")).await?;
    /// let status = scheduler.status("billing").await?;
    /// assert_eq!(status.phase, JobPhase::Paused);
    /// assert_eq!(status.pause_note.as_deref(), Some("enabled after the migration"));
    /// scheduler.shutdown(Duration::from_secs(1)).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Scheduler::add`].
    pub async fn add_paused(&self, spec: JobSpec, note: Option<&str>) -> Result<(), Error> {
        let note = note.map(str::to_owned);
        self.call(|reply| SupervisorMsg::AddPaused {
            spec: Box::new(spec),
            note,
            reply,
        })
        .await
    }

    /// Adds a job, or replaces an existing job's spec keeping its counters,
    /// history and pause state: the call a service makes at every boot.
    ///
    /// # Errors
    /// As [`Scheduler::add`], without `DuplicateJob`; [`Error::UnknownJob`]
    /// if a failed job's stored state cannot be read to revive it.
    pub async fn upsert(&self, spec: JobSpec) -> Result<Upserted, Error> {
        self.call(|r| SupervisorMsg::Upsert(Box::new(spec), r))
            .await
    }

    /// Removes a job; its runs in flight are cancelled through their tokens.
    ///
    /// # Errors
    /// [`Error::UnknownJob`] if there is no such job.
    pub async fn remove(&self, id: impl AsRef<str>) -> Result<(), Error> {
        let id = job_id(id)?;
        self.call(|r| SupervisorMsg::Remove(id, r)).await
    }

    /// Removes a job if it exists: `Ok(false)` when there was none. With a
    /// durable store, `Ok(false)` comes once a removal of the job by
    /// another call, if one was still on its way to the store, is durable.
    ///
    /// # Errors
    /// As [`Scheduler::remove`], without `UnknownJob`.
    pub async fn try_remove(&self, id: impl AsRef<str>) -> Result<bool, Error> {
        match self.remove(id).await {
            Ok(()) => Ok(true),
            // The job may be gone by a removal still on its way to the
            // store: "there was none" waits until it is durable, so that a
            // crash right after this Ok does not bring the job back.
            Err(Error::UnknownJob(_)) => self.durable_barrier().await.map(|()| false),
            Err(e) => Err(e),
        }
    }

    /// Waits until every write queued for the store so far is durable (at
    /// once with a store that is not durable).
    async fn durable_barrier(&self) -> Result<(), Error> {
        match self
            .registry
            .call(RegistryMsg::Flush, Some(self.call_timeout))
            .await
        {
            Ok(CallResult::Success(answer)) => answer,
            Ok(CallResult::Timeout) => Err(Error::Timeout(self.call_timeout)),
            Ok(CallResult::SenderError) | Err(_) => Err(Error::ShutDown),
        }
    }

    /// Pauses a job: its fires are counted as skipped until it is resumed.
    ///
    /// # Errors
    /// [`Error::UnknownJob`]; [`Error::InvalidState`] if already paused or
    /// failed.
    pub async fn pause(&self, id: impl AsRef<str>, note: Option<&str>) -> Result<(), Error> {
        let id = job_id(id)?;
        let note = note.map(str::to_owned);
        self.call(|reply| SupervisorMsg::Pause { id, note, reply })
            .await
    }

    /// Resumes a paused job from now, with no catch-up burst.
    ///
    /// # Errors
    /// [`Error::UnknownJob`]; [`Error::InvalidState`] if not paused.
    pub async fn resume(&self, id: impl AsRef<str>, note: Option<&str>) -> Result<(), Error> {
        let id = job_id(id)?;
        let note = note.map(str::to_owned);
        self.call(|reply| SupervisorMsg::Resume { id, note, reply })
            .await
    }

    /// Pauses every job `selector` picks, as [`Scheduler::pause`] would one
    /// by one (the same note on each), and reports which it paused and which
    /// it left as they were, with why (see [`JobSelector`] for an example).
    ///
    /// The jobs are those matching when the call starts; a job added later
    /// is not paused. A job already paused keeps its pause and its note
    /// ([`Unchanged::AlreadyPaused`](crate::Unchanged::AlreadyPaused)); a failed job is left
    /// ([`Unchanged::Failed`](crate::Unchanged::Failed)); a job removed meanwhile is skipped
    /// ([`Unchanged::Removed`](crate::Unchanged::Removed)). Completed and orphaned jobs are paused, as
    /// by `pause`. The pauses go out [`BULK_CONCURRENCY`] at a time, so that
    /// the store's group commit writes many in one flush. When this returns
    /// Ok, every job in `changed` and every job reported already paused is
    /// durably paused (a job found paused by a pause not yet flushed, such
    /// as an auto-pause, is reported once that pause is durable), and every
    /// job reported removed or failed is durably so. No tag matching is
    /// `Ok` with an empty report.
    ///
    /// # Errors
    /// [`Error::InvalidSelector`] for an empty tag. [`Error::Store`],
    /// [`Error::Timeout`] or [`Error::ShutDown`] from any job's pause ends
    /// the call with that error: the jobs paused before it stay paused (a
    /// second call reports them as already paused).
    pub async fn pause_matching(
        &self,
        selector: &JobSelector,
        note: Option<&str>,
    ) -> Result<BulkReport, Error> {
        self.bulk(selector, note, |id, note, reply| SupervisorMsg::Pause {
            id,
            note,
            reply,
        })
        .await
    }

    /// Resumes every paused job `selector` picks, as [`Scheduler::resume`]
    /// would one by one; a job not paused is left
    /// ([`Unchanged::NotPaused`](crate::Unchanged::NotPaused)). Otherwise as
    /// [`Scheduler::pause_matching`]: each job resumed or reported not
    /// paused is durably so when this returns Ok.
    ///
    /// # Errors
    /// As [`Scheduler::pause_matching`].
    pub async fn resume_matching(
        &self,
        selector: &JobSelector,
        note: Option<&str>,
    ) -> Result<BulkReport, Error> {
        self.bulk(selector, note, |id, note, reply| SupervisorMsg::Resume {
            id,
            note,
            reply,
        })
        .await
    }

    async fn bulk(
        &self,
        selector: &JobSelector,
        note: Option<&str>,
        build: impl Fn(JobId, Option<String>, RpcReplyPort<Result<(), Error>>) -> SupervisorMsg,
    ) -> Result<BulkReport, Error> {
        use futures::stream::{StreamExt, TryStreamExt};
        selector.validate()?;
        let ids: Vec<JobId> = self
            .list()
            .await?
            .into_iter()
            .filter(|status| selector.matches(status))
            .map(|status| status.id)
            .collect();
        let build = &build;
        let mut report = BulkReport::default();
        futures::stream::iter(ids)
            .map(|id| async move {
                let note = note.map(str::to_owned);
                let answer = self.call(|reply| build(id.clone(), note, reply)).await;
                (id, answer)
            })
            .buffer_unordered(BULK_CONCURRENCY)
            .map(Ok)
            .try_for_each(|(id, answer)| {
                let outcome = crate::bulk::classify(id, answer, &mut report);
                async move { outcome }
            })
            .await?;
        // A job reported removed or failed may owe that to a write still on
        // its way to the store (a removal answered to its caller only once
        // durable, a failure written with the group commit): the report
        // waits until everything queued for the store so far is durable, as
        // `already_paused` does, so that a crash right after this Ok does
        // not bring such a job back running. (The supervisor answers a job
        // being removed only once its removal is queued.)
        let barrier = report
            .unchanged
            .iter()
            .any(|(_, why)| matches!(why, crate::Unchanged::Removed | crate::Unchanged::Failed));
        if barrier {
            self.durable_barrier().await?;
        }
        Ok(report.sorted())
    }

    /// Fires a job now through its overlap policy, leaving its schedule as
    /// it is. With a durable store, returns once the fire is durable: a run
    /// answered as started is recovered as interrupted after a crash.
    ///
    /// # Errors
    /// [`Error::UnknownJob`]; [`Error::InvalidState`] if orphaned or failed.
    pub async fn trigger(&self, id: impl AsRef<str>) -> Result<TriggerOutcome, Error> {
        let id = job_id(id)?;
        self.call(|r| SupervisorMsg::Trigger(id, r)).await
    }

    /// Fires a job now through `overlap` instead of the job's own overlap
    /// policy, for this fire only (as Temporal's trigger with an overlap
    /// policy): `Concurrent` runs it beside the runs in flight, `Replace`
    /// cancels them first, `Skip` runs it only if nothing is in flight, queued
    /// or waiting for a retry.
    /// Otherwise as [`Scheduler::trigger`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cronactor::{JobContext, JobSpec, OverlapPolicy, ScheduleSpec, Scheduler, SkipReason, TriggerOutcome};
    /// use std::time::Duration;
    ///
    /// let scheduler = Scheduler::builder()
    ///     .handler("report", |ctx: JobContext| async move {
    ///         ctx.cancel.cancelled().await;
    ///         Ok::<(), std::io::Error>(())
    ///     })
    ///     .in_memory()
    ///     .start()
    ///     .await?;
    /// let spec = JobSpec::builder("report", ScheduleSpec::cron("0 0 3 * * *"), "report")
    ///     .overlap(OverlapPolicy::Skip)
    ///     .build()?;
    /// scheduler.add(spec).await?;
    /// assert!(matches!(scheduler.trigger("report").await?, TriggerOutcome::Started(_)));
    /// // The job's policy skips a fire while a run is in flight...
    /// assert_eq!(
    ///     scheduler.trigger("report").await?,
    ///     TriggerOutcome::Skipped(SkipReason::Overlap)
    /// );
    /// // ...this fire runs beside it.
    /// let beside = scheduler
    ///     .trigger_with("report", OverlapPolicy::Concurrent { max: None })
    ///     .await?;
    /// assert!(matches!(beside, TriggerOutcome::Started(_)));
    /// assert_eq!(scheduler.status("report").await?.runs_in_flight, 2);
    /// scheduler.shutdown(Duration::from_secs(1)).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Scheduler::trigger`]; [`Error::InvalidSpec`] (field `overlap`)
    /// for a policy a new job's spec refuses (`Concurrent { max: Some(0) }`,
    /// `Queue { max: 0 }`, a `Queue` above [`MAX_QUEUE`](crate::MAX_QUEUE)),
    /// and nothing fires.
    pub async fn trigger_with(
        &self,
        id: impl AsRef<str>,
        overlap: OverlapPolicy,
    ) -> Result<TriggerOutcome, Error> {
        let id = job_id(id)?;
        self.call(|reply| SupervisorMsg::TriggerWith { id, overlap, reply })
            .await
    }

    /// Runs the job's schedule slots in `(from, to]` now, as Temporal's
    /// backfill does: each slot is a run with [`Trigger::Backfill`](crate::Trigger::Backfill) and the
    /// slot as its `scheduled`, queued oldest first behind the runs in flight,
    /// one at a time, whatever the overlap policy. Returns how many slots
    /// were queued, once they are durable (the queue is stored: a restart
    /// runs the rest). The schedule's bounds and exclusions apply; its
    /// `max_fires` and misfire policy do not, and backfilled runs are not
    /// slots of the job (`counters.fires`) nor counted in lateness.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use chrono::{Duration, DurationRound, Utc};
    /// use cronactor::{EventKind, JobContext, JobSpec, Received, ScheduleSpec, Scheduler, Trigger};
    ///
    /// let scheduler = Scheduler::builder()
    ///     .handler("rollup", |ctx: JobContext| async move {
    ///         println!("rolling up the hour of {}", ctx.scheduled);
    ///         Ok::<(), std::io::Error>(())
    ///     })
    ///     .in_memory()
    ///     .start()
    ///     .await?;
    /// let spec = JobSpec::builder("hourly-rollup", ScheduleSpec::cron("0 0 * * * *"), "rollup").build()?;
    /// scheduler.add(spec).await?;
    ///
    /// // The last three hours, which the job missed before it existed.
    /// let hour = Utc::now().duration_trunc(Duration::hours(1))?;
    /// let mut events = scheduler.subscribe();
    /// let queued = scheduler.backfill("hourly-rollup", hour - Duration::hours(3), hour).await?;
    /// assert_eq!(queued, 3);
    /// let mut ended = 0;
    /// while ended < 3 {
    ///     if let Some(Received::Event(e)) = events.recv().await {
    ///         ended += usize::from(matches!(e.kind, EventKind::Succeeded { .. }));
    ///     }
    /// }
    /// let runs = scheduler.history("hourly-rollup", 10).await?;
    /// assert!(runs.iter().all(|r| r.trigger == Trigger::Backfill));
    /// assert_eq!(runs.last().map(|r| r.scheduled), Some(hour - Duration::hours(2)));
    /// scheduler.shutdown(std::time::Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidBackfill`] for an empty range, or one with more slots
    /// than the job's queue has room for (at most
    /// [`MAX_BACKFILL`](crate::MAX_BACKFILL) fires queued), or one that takes
    /// too long to search for slots (split it); [`Error::InvalidState`]
    /// for a paused, orphaned or failed job; [`Error::UnknownJob`].
    pub async fn backfill(
        &self,
        id: impl AsRef<str>,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, Error> {
        self.backfill_with(id, from, to, BackfillOverlap::BufferAll)
            .await
    }

    /// [`Scheduler::backfill`] with the backfill's own overlap:
    /// [`BackfillOverlap::BufferAll`] runs the slots one after another (as
    /// `backfill` does), [`BackfillOverlap::AllowAll`] starts them all now,
    /// beside the runs in flight, as Temporal's backfill with `AllowAll`.
    /// Answers the number of slots queued or started, once durable. The
    /// job's own overlap policy is not consulted for the backfill's runs;
    /// the job's schedule fires meet them as runs in flight.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use chrono::{Duration, DurationRound, Utc};
    /// use cronactor::{BackfillOverlap, JobContext, JobSpec, ScheduleSpec, Scheduler};
    ///
    /// let scheduler = Scheduler::builder()
    ///     .handler("rollup", |ctx: JobContext| async move {
    ///         ctx.cancel.cancelled().await; // runs until shut down
    ///         Ok::<(), std::io::Error>(())
    ///     })
    ///     .in_memory()
    ///     .start()
    ///     .await?;
    /// let spec = JobSpec::builder("hourly-rollup", ScheduleSpec::cron("0 0 * * * *"), "rollup").build()?;
    /// scheduler.add(spec).await?;
    /// let hour = Utc::now().duration_trunc(Duration::hours(1))?;
    /// let started = scheduler
    ///     .backfill_with("hourly-rollup", hour - Duration::hours(4), hour - Duration::hours(1), BackfillOverlap::AllowAll)
    ///     .await?;
    /// assert_eq!(started, 3);
    /// assert_eq!(scheduler.status("hourly-rollup").await?.runs_in_flight, 3);
    /// scheduler.shutdown(std::time::Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Scheduler::backfill`]; with `AllowAll` the bound is on the runs
    /// in flight (at most [`MAX_BACKFILL`](crate::MAX_BACKFILL) started by
    /// one call, counting those already in flight).
    pub async fn backfill_with(
        &self,
        id: impl AsRef<str>,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        overlap: BackfillOverlap,
    ) -> Result<usize, Error> {
        let id = job_id(id)?;
        self.call(|reply| SupervisorMsg::Backfill {
            id,
            from,
            to,
            overlap,
            reply,
        })
        .await
    }

    /// Sets the job's last result (`JobStatus::last_result`, what
    /// [`JobContext::last_result`](crate::JobContext::last_result) reads),
    /// or clears it with `None`: an operator rewinding a watermark
    /// ("reprocess from Monday") or dropping a bad cursor. Answered once
    /// durable. A run in flight that succeeds later with a result of its own
    /// replaces it, as any run's does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cronactor::{JobContext, JobSpec, ScheduleSpec, Scheduler};
    /// use serde_json::json;
    ///
    /// let scheduler = Scheduler::builder()
    ///     .handler("export", |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) })
    ///     .in_memory()
    ///     .start()
    ///     .await?;
    /// let spec = JobSpec::builder("export", ScheduleSpec::cron("0 0 3 * * *"), "export").build()?;
    /// scheduler.add(spec).await?;
    /// scheduler.set_last_result("export", Some(json!({ "upto": "2026-11-30" }))).await?;
    /// let status = scheduler.status("export").await?;
    /// assert_eq!(status.last_result.as_deref(), Some(&json!({ "upto": "2026-11-30" })));
    /// scheduler.set_last_result("export", None).await?;
    /// assert_eq!(scheduler.status("export").await?.last_result, None);
    /// scheduler.shutdown(std::time::Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidResult`] for a value above the size or depth bounds
    /// of a run's result; [`Error::UnknownJob`]; [`Error::InvalidState`]
    /// for a failed job; [`Error::Store`].
    pub async fn set_last_result(
        &self,
        id: impl AsRef<str>,
        value: Option<serde_json::Value>,
    ) -> Result<(), Error> {
        let id = job_id(id)?;
        self.call(|reply| SupervisorMsg::SetLastResult { id, value, reply })
            .await
    }

    /// Cancels a job's runs in flight through their tokens (and drops a
    /// retry waiting for its delay); they end as cancelled and are not
    /// retried. Returns the runs cancelled: empty when nothing ran (a no-op).
    /// A dropped retry is durable when this returns (with a durable store).
    ///
    /// # Errors
    /// [`Error::UnknownJob`]; [`Error::InvalidState`] for a failed job.
    pub async fn cancel(&self, id: impl AsRef<str>) -> Result<Vec<RunId>, Error> {
        let id = job_id(id)?;
        self.call(|r| SupervisorMsg::Cancel(id, r)).await
    }

    /// Cancels one run in flight of a job through its token, as
    /// [`Scheduler::cancel`] cancels them all: it ends as cancelled and is
    /// not retried. The job's other runs and a waiting retry are left alone.
    /// The runs in flight are in [`JobStatus::in_flight`](crate::JobStatus)
    /// and in the `Started` events. Answers once the cancel is durable (with
    /// a durable store); a run cancelled already answers `Ok`, once its
    /// cancel mark is durable too.
    ///
    /// # Errors
    /// [`Error::UnknownJob`]; [`Error::UnknownRun`] if the job has no such
    /// run in flight (it ended, or never was the job's);
    /// [`Error::InvalidState`] for a failed job, as [`Scheduler::cancel`].
    pub async fn cancel_run(&self, id: impl AsRef<str>, run_id: RunId) -> Result<(), Error> {
        let id = job_id(id)?;
        self.call(|reply| SupervisorMsg::CancelRun { id, run_id, reply })
            .await
    }

    /// Runs a failed, timed-out or interrupted run again, with its original
    /// scheduled time and the job's payload, marked as a manual retry.
    ///
    /// # Errors
    /// [`Error::UnknownRun`]; [`Error::InvalidState`] if the run did not
    /// fail, time out or get interrupted (it succeeded, or was cancelled: a
    /// cancel is the operator's decision), or the job is paused or orphaned; [`Error::UnknownJob`] if the job failed
    /// (given up on: it has no actor to run it).
    pub async fn retry_run(&self, run_id: RunId) -> Result<TriggerOutcome, Error> {
        self.call(|r| SupervisorMsg::RetryRun(run_id, r)).await
    }

    /// Emits a named event: every job listening to it
    /// ([`JobSpecBuilder::listen`](crate::JobSpecBuilder::listen)) fires now
    /// through its overlap policy, with the payload in its context.
    ///
    /// # Errors
    /// [`Error::InvalidPayload`] for a payload nested deeper than
    /// [`MAX_PAYLOAD_DEPTH`](crate::MAX_PAYLOAD_DEPTH) or whose JSON text is
    /// longer than [`MAX_EVENT_PAYLOAD_BYTES`](crate::MAX_EVENT_PAYLOAD_BYTES)
    /// (no job fires). A job whose state would hold more than
    /// [`MAX_HELD_EVENT_BYTES`](crate::MAX_HELD_EVENT_BYTES) of event payloads
    /// with this one skips the fire as for a full queue
    /// (`Skipped(QueueFull)`);
    /// [`Error::Store`] if a listening job's fire could not be made durable
    /// (the other jobs fired; an emit sent again fires them again);
    /// [`Error::ShutDown`], [`Error::Timeout`].
    pub async fn emit(
        &self,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<Vec<(JobId, TriggerOutcome)>, Error> {
        let name = name.to_owned();
        self.call(|reply| SupervisorMsg::Emit {
            name,
            payload,
            reply,
        })
        .await
    }

    /// Scheduler-wide metrics: jobs by phase, summed counters, runs in
    /// flight, fire lateness and run duration percentiles.
    ///
    /// # Errors
    /// [`Error::ShutDown`], [`Error::Timeout`].
    pub async fn metrics(&self) -> Result<Metrics, Error> {
        self.read_allowed()?;
        match self
            .supervisor
            .call(SupervisorMsg::Metrics, Some(self.call_timeout))
            .await
        {
            Ok(CallResult::Success(m)) => Ok(m),
            Ok(CallResult::Timeout) => Err(Error::Timeout(self.call_timeout)),
            Ok(CallResult::SenderError) | Err(_) => Err(Error::ShutDown),
        }
    }

    /// One job's status.
    ///
    /// # Errors
    /// [`Error::UnknownJob`].
    pub async fn status(&self, id: impl AsRef<str>) -> Result<JobStatus, Error> {
        let id = job_id(id)?;
        self.read_allowed()?;
        self.call(|r| SupervisorMsg::Status(id, r)).await
    }

    /// Every job's status, ordered by id.
    ///
    /// # Errors
    /// [`Error::ShutDown`], [`Error::Timeout`].
    pub async fn list(&self) -> Result<Vec<JobStatus>, Error> {
        self.read_allowed()?;
        match self
            .supervisor
            .call(SupervisorMsg::List, Some(self.call_timeout))
            .await
        {
            Ok(CallResult::Success(all)) => Ok(all),
            Ok(CallResult::Timeout) => Err(Error::Timeout(self.call_timeout)),
            Ok(CallResult::SenderError) | Err(_) => Err(Error::ShutDown),
        }
    }

    /// A job's next `n` fires from now (at most [`MAX_PREVIEW`](crate::MAX_PREVIEW)),
    /// each with its local time and a note where a DST rule moved or dropped it.
    /// It answers during a shutdown's drain and grace, as the other reads
    /// do: the fires the job's schedule has left after its last slot, which
    /// the next start finds (none of them starts in this process any more).
    ///
    /// # Errors
    /// [`Error::UnknownJob`]; [`Error::InvalidState`] for a failed job;
    /// [`Error::ShutDown`] once a shutdown has answered.
    pub async fn preview(&self, id: impl AsRef<str>, n: usize) -> Result<Vec<PreviewFire>, Error> {
        let id = job_id(id)?;
        self.read_allowed()?;
        self.call(|reply| SupervisorMsg::Preview { id, n, reply })
            .await
    }

    /// A job's newest `limit` history entries, newest first: its runs, and
    /// the slots it skipped or coalesced; at most
    /// [`RuntimeConfig::history_keep`](crate::RuntimeConfig::history_keep),
    /// and none older than `history_max_age` if it is set.
    ///
    /// # Errors
    /// [`Error::UnknownJob`], [`Error::Store`].
    pub async fn history(
        &self,
        id: impl AsRef<str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, Error> {
        let id = job_id(id)?;
        self.read_allowed()?;
        self.call(|reply| SupervisorMsg::History { id, limit, reply })
            .await
    }

    /// A stream of every job's events from now on. A subscriber that falls
    /// behind is told how many events it missed; it never slows the runtime.
    pub fn subscribe(&self) -> EventStream {
        self.events.subscribe()
    }

    /// Records the store quarantined when this scheduler started.
    pub fn quarantined(&self) -> &[QuarantinedRecord] {
        &self.quarantined
    }

    /// Fault injection for tests (feature `fault-injection`): stops every
    /// actor at once, as a crash would, without cancelling runs or flushing
    /// the store.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub async fn kill(&self) {
        self.supervisor
            .stop_children_and_wait(Some("killed".into()), None)
            .await;
        self.supervisor.kill();
        self.registry.kill();
    }

    /// Stops every timer, cancels runs in flight through their tokens, waits
    /// up to `grace` for them to end, flushes the store and stops the actors.
    /// Later calls on any clone of this handle return [`Error::ShutDown`],
    /// from the moment the scheduler reads this one (during the grace too),
    /// but another `shutdown` (below) and the reads (`status`, `list`,
    /// `history`, `metrics`, `preview`), which answer until this shutdown answers, so
    /// that a service can watch its runs end.
    /// A run cut short is interrupted: the next start runs its fire again
    /// under `InterruptedPolicy::Retry` (see `docs/semantics.md`,
    /// "Shutdown"). [`Scheduler::shutdown_after_drain`] lets the runs finish
    /// first.
    ///
    /// A call while a shutdown is in progress joins it: it cuts a drain
    /// short ([`Scheduler::shutdown_after_drain`]: the runs still in flight
    /// are cancelled now, with the first call's grace, as a second Ctrl-C
    /// does to the daemon's drain) and answers that shutdown's report.
    ///
    /// # Errors
    /// [`Error::ShutDown`] if it was already shut down (a call that meets a
    /// shutdown in progress gets its report, and so does one that meets a
    /// shutdown that ended after its caller went away, before stopping the
    /// actors);
    /// [`Error::Timeout`] if the store's final flush did not answer within
    /// `grace` plus the call timeout, or within the limit of the shutdown
    /// it joined if that is later (the scheduler is shut down all the
    /// same: later calls return [`Error::ShutDown`]).
    ///
    /// # Cancellation
    /// If this future is dropped, the shutdown still completes in the
    /// background.
    pub async fn shutdown(&self, grace: Duration) -> Result<ShutdownReport, Error> {
        self.stop_all(grace, |r| SupervisorMsg::Shutdown(grace, r))
            .await
    }

    /// Shuts down after a drain, as a deploy wants: no fire starts any more
    /// (timers, queued fires and retries stay in the stored state for the
    /// next start), the runs in flight have up to `drain` to end by
    /// themselves, and only then are the runs left cancelled, with up to
    /// `grace` to stop, as [`Scheduler::shutdown`] does. As Quartz's
    /// `shutdown(true)`, with a limit. A run that fails during the drain
    /// keeps its retry for the next start.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cronactor::{JobContext, JobSpec, ScheduleSpec, Scheduler};
    /// use std::time::Duration;
    ///
    /// let scheduler = Scheduler::builder()
    ///     .handler("short", |_ctx: JobContext| async {
    ///         tokio::time::sleep(Duration::from_millis(50)).await;
    ///         Ok::<(), std::io::Error>(())
    ///     })
    ///     .in_memory()
    ///     .start()
    ///     .await?;
    /// let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 3 * * *"), "short").build()?;
    /// scheduler.add(spec).await?;
    /// scheduler.trigger("j").await?;
    /// // The run finishes within the drain: nothing is cancelled.
    /// let report = scheduler
    ///     .shutdown_after_drain(Duration::from_secs(5), Duration::from_secs(1))
    ///     .await?;
    /// assert!(report.cancelled.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Scheduler::shutdown`], with `drain + grace` for `grace`.
    ///
    /// # Cancellation
    /// If this future is dropped, the shutdown still completes in the
    /// background.
    pub async fn shutdown_after_drain(
        &self,
        drain: Duration,
        grace: Duration,
    ) -> Result<ShutdownReport, Error> {
        self.stop_all(drain.saturating_add(grace), |reply| SupervisorMsg::Drain {
            drain,
            grace,
            reply,
        })
        .await
    }

    /// How long a shutdown call waits for its report: `limit`, or longer
    /// if a shutdown asked for earlier through this handle may answer later
    /// (a call that joins it is answered with its report, when it comes:
    /// a `shutdown` that cuts a drain short leaves the runs the drain's
    /// grace, not its own).
    fn shutdown_limit(&self, limit: Duration) -> Duration {
        let now = tokio::time::Instant::now();
        // A limit past what the clock can hold (`Duration::MAX`) is about
        // 30 years away, as tokio's own far future.
        let mine = now
            .checked_add(limit)
            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
        let mut by = self
            .shutdown_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let until = by.map_or(mine, |earlier| earlier.max(mine));
        *by = Some(until);
        until.saturating_duration_since(now)
    }

    /// Sends the shutdown `msg` and waits up to `within` plus the call
    /// timeout (or as long as a shutdown already asked for, which it then
    /// joins) for its report, then stops the actors.
    async fn stop_all(
        &self,
        within: Duration,
        msg: impl FnOnce(ractor::RpcReplyPort<ShutdownReport>) -> SupervisorMsg,
    ) -> Result<ShutdownReport, Error> {
        let limit = self.shutdown_limit(within.saturating_add(self.call_timeout));
        let answer = self.supervisor.call(msg, Some(limit)).await;
        let report = match answer {
            Ok(CallResult::Success(report)) => report,
            Ok(CallResult::Timeout) => return Err(Error::Timeout(limit)),
            Ok(CallResult::SenderError) | Err(_) => return Err(Error::ShutDown),
        };
        let _ = self
            .supervisor
            .stop_and_wait(Some("shutdown".into()), None)
            .await;
        let _ = self
            .registry
            .stop_and_wait(Some("shutdown".into()), None)
            .await;
        Ok(report)
    }
}
