//! Handlers: the user's code, registered by name, and the [`JobContext`]
//! every run receives.

use crate::event::{EventBus, EventKind};
use crate::id::{JobId, RunId};
use crate::job::JobMsg;
use crate::status::Trigger;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a run knows about itself.
///
/// A handler receives it by value: the slot it serves, its attempt, the job's
/// payload, the cancellation token to watch in long work, and
/// [`progress`](JobContext::progress) and [`log`](JobContext::log) to report.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{Event, EventKind, JobContext, JobSpec, Received, ScheduleSpec, Scheduler};
/// use std::time::Duration;
///
/// let scheduler = Scheduler::builder()
///     .handler("export", |ctx: JobContext| async move {
///         let rows = ctx.payload["rows"].as_u64().unwrap_or(0);
///         for done in 0..rows {
///             if ctx.cancel.is_cancelled() {
///                 return Err(format!("stopped at row {done}"));
///             }
///             ctx.progress(done as f32 / rows as f32, format!("row {done}"));
///         }
///         ctx.log(format!("attempt {} exported {rows} rows", ctx.attempt));
///         Ok(())
///     })
///     .in_memory()
///     .start()
///     .await?;
/// let spec = JobSpec::builder("nightly-export", ScheduleSpec::cron("0 0 3 * * *"), "export")
///     .payload(serde_json::json!({ "rows": 3 }))
///     .build()?;
/// scheduler.add(spec).await?;
/// let mut events = scheduler.subscribe();
/// scheduler.trigger("nightly-export").await?;
/// let mut logged = Vec::new();
/// while let Some(Received::Event(Event { kind, .. })) = events.recv().await {
///     match kind {
///         EventKind::Log { line, .. } => logged.push(line),
///         EventKind::Succeeded { .. } => break,
///         _ => {}
///     }
/// }
/// assert_eq!(logged, ["attempt 1 exported 3 rows"]);
/// scheduler.shutdown(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job.
    pub job_id: JobId,
    /// This run.
    pub run_id: RunId,
    /// The schedule slot (or trigger time) this run serves.
    pub scheduled: DateTime<Utc>,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// What started the run.
    pub trigger: Trigger,
    /// The job's JSON payload.
    pub payload: Arc<serde_json::Value>,
    /// Cancelled when the run must stop (replace, remove, cancel, timeout,
    /// shutdown); a handler that ignores it is dropped after the cancel grace.
    pub cancel: CancellationToken,
    /// For a run started by a named event: the event's name and payload.
    pub event: Option<(String, Arc<serde_json::Value>)>,
    pub(crate) reporter: Reporter,
}

/// Carries a run's progress and log lines to the event bus and its job.
#[derive(Clone)]
pub(crate) struct Reporter {
    pub(crate) link: Arc<RunLink>,
}

/// What the run tasks of one job actor share with it: one allocation per job
/// actor. A run holds this instead of the scheduler-wide handles (runtime,
/// event bus, clock, handler, supervisor), whose reference counts every run
/// on every worker would otherwise increment and decrement: a per-job count
/// stays in one job's cache lines.
pub(crate) struct RunLink {
    pub(crate) rt: Arc<crate::runtime::Runtime>,
    pub(crate) job: ractor::ActorRef<JobMsg>,
    pub(crate) id: JobId,
    pub(crate) handler: Option<Arc<dyn Handler>>,
    /// The job's last result (`JobState::last_result`) as runs read it:
    /// written by the job's actor when a run's result takes effect, so that
    /// a run reads the newest one when it asks, not the one of its claim.
    /// Shared with the link that replaces this one when the job's handler
    /// changes, and written by the actor restarted after a crash for the
    /// runs it adopted (see `JobActorState::adopted_cells`).
    pub(crate) last_result: ResultCell,
}

/// Where the runs of a job read its last result (see `RunLink::last_result`).
pub(crate) type ResultCell = Arc<std::sync::Mutex<Option<Arc<serde_json::Value>>>>;

/// A new [`ResultCell`] holding `value`.
pub(crate) fn result_cell(value: Option<Arc<serde_json::Value>>) -> ResultCell {
    Arc::new(std::sync::Mutex::new(value))
}

/// Writes `value` in `cell`.
pub(crate) fn write_cell(cell: &ResultCell, value: Option<Arc<serde_json::Value>>) {
    *cell
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
}

impl RunLink {
    pub(crate) fn events(&self) -> &EventBus {
        &self.rt.events
    }

    pub(crate) fn last_result(&self) -> Option<Arc<serde_json::Value>> {
        self.last_result
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_last_result(&self, value: Option<Arc<serde_json::Value>>) {
        write_cell(&self.last_result, value);
    }
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reporter")
    }
}

impl JobContext {
    /// Reports progress: `fraction` done (clamped to 0..=1) and what the run
    /// is doing. It is published as an event and shown in the job's status.
    pub fn progress(&self, fraction: f32, message: impl Into<String>) {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        let message = message.into();
        // As a run's end is: through the supervisor if the job's actor was
        // restarted since the run began.
        crate::ahead::deliver(
            &self.reporter.link,
            JobMsg::Progress {
                run_id: self.run_id,
                fraction,
                message: message.clone(),
            },
        );
        self.reporter.link.events().publish(
            &self.job_id,
            self.reporter.link.rt.clock.now(),
            EventKind::Progress {
                run_id: self.run_id,
                fraction,
                message,
            },
        );
    }

    /// The result the newest successful run of this job that set one left
    /// with [`set_result`](Self::set_result), as of this call: a watermark,
    /// a cursor, a summary to compare with. `None` until a run has set one.
    ///
    /// It is stored with the job's state, so it survives restarts, and is
    /// kept by `upsert`; `remove` drops it. A run sees the result of a run
    /// that succeeded while it was already waiting or running when it
    /// calls this again.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cronactor::{JobContext, JobSpec, ScheduleSpec, Scheduler};
    /// use serde_json::json;
    /// use std::time::Duration;
    ///
    /// // An incremental export: each run goes on from where the last
    /// // successful one stopped.
    /// let scheduler = Scheduler::builder()
    ///     .handler("export", |ctx: JobContext| async move {
    ///         let from = ctx.last_result().and_then(|r| r["upto"].as_u64()).unwrap_or(0);
    ///         let upto = from + 100; // export rows from..upto
    ///         ctx.set_result(json!({ "upto": upto }))?;
    ///         Ok::<(), cronactor::Error>(())
    ///     })
    ///     .in_memory()
    ///     .start()
    ///     .await?;
    /// let spec = JobSpec::builder("export", ScheduleSpec::cron("0 */5 * * * *"), "export").build()?;
    /// scheduler.add(spec).await?;
    /// for _ in 0..3 {
    ///     scheduler.trigger("export").await?;
    ///     while scheduler.status("export").await?.runs_in_flight > 0 {
    ///         tokio::time::sleep(Duration::from_millis(5)).await;
    ///     }
    /// }
    /// let status = scheduler.status("export").await?;
    /// assert_eq!(status.last_result.as_deref(), Some(&json!({ "upto": 300 })));
    /// scheduler.shutdown(Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn last_result(&self) -> Option<Arc<serde_json::Value>> {
        self.reporter.link.last_result()
    }

    /// Sets this run's result, which becomes the job's
    /// [`last_result`](Self::last_result) if the run succeeds (its handler
    /// returns `Ok`), in the same durable write as the run's outcome, as
    /// Temporal hands a scheduled workflow its last completion result and
    /// Quartz persists a stateful job's data map. A run that fails, times
    /// out, is cancelled or interrupted leaves the job's result as it was;
    /// so does a successful run that sets none. Called again, the newest
    /// value wins. `Value::Null` clears the job's result (`last_result`
    /// is then `None`). Call it before the handler returns: a value set
    /// later is ignored once the run's end has reached the job (not
    /// before it: see "Run results" in `docs/semantics.md`).
    ///
    /// # Errors
    /// [`Error::InvalidResult`](crate::Error::InvalidResult) if the value
    /// nests arrays and objects more than [`MAX_RESULT_DEPTH`] levels deep,
    /// or its JSON text is longer than [`MAX_RESULT_BYTES`]; the run's
    /// result is then unchanged.
    pub fn set_result(&self, value: serde_json::Value) -> Result<(), crate::Error> {
        check_result(&value)?;
        // As a run's end is: through the supervisor if the job's actor was
        // restarted since the run began.
        crate::ahead::deliver(
            &self.reporter.link,
            JobMsg::SetResult {
                run_id: self.run_id,
                value: Arc::new(value),
            },
        );
        Ok(())
    }

    /// Publishes a log line of this run as an event.
    pub fn log(&self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!(job_id = %self.job_id, run_id = %self.run_id, %line, "run log");
        self.reporter.link.events().publish(
            &self.job_id,
            self.reporter.link.rt.clock.now(),
            EventKind::Log {
                run_id: self.run_id,
                line,
            },
        );
    }
}

/// The longest run result, as JSON text, that
/// [`JobContext::set_result`] takes (64 KiB): the result is stored with the
/// job's state, which every change of the job writes whole.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// The deepest nesting of arrays and objects a run result may have (see
/// [`MAX_PAYLOAD_DEPTH`](crate::MAX_PAYLOAD_DEPTH)): lower than a payload's
/// bound, so that the result reads back from the store and from every HTTP
/// view that carries it (`GET /jobs/{id}` holds it two levels down).
pub const MAX_RESULT_DEPTH: usize = 64;

/// Checks a run result against [`MAX_RESULT_DEPTH`] and
/// [`MAX_RESULT_BYTES`].
pub(crate) fn check_result(value: &serde_json::Value) -> Result<(), crate::Error> {
    crate::payload::check_depth_at(value, MAX_RESULT_DEPTH)
        .map_err(|reason| crate::Error::InvalidResult(reason.replace("payload", "result")))?;
    let bytes = crate::payload::json_len(value);
    if bytes > MAX_RESULT_BYTES {
        return Err(crate::Error::InvalidResult(format!(
            "its JSON text is {bytes} bytes, above the limit of {MAX_RESULT_BYTES}"
        )));
    }
    Ok(())
}

/// The error a handler returns: any displayable error.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A job handler: an async function of the run's context.
///
/// Any `Fn(JobContext) -> impl Future<Output = Result<(), E>>` is a handler;
/// a type that holds state (a client, a pool) implements the trait itself.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{Handler, HandlerError, JobContext, JobSpec, ScheduleSpec, Scheduler, TriggerOutcome};
/// use futures::future::BoxFuture;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// struct CountRuns(Arc<AtomicU64>);
///
/// impl Handler for CountRuns {
///     fn call(&self, _ctx: JobContext) -> BoxFuture<'static, Result<(), HandlerError>> {
///         let runs = self.0.clone();
///         Box::pin(async move {
///             runs.fetch_add(1, Ordering::SeqCst);
///             Ok(())
///         })
///     }
/// }
///
/// let runs = Arc::new(AtomicU64::new(0));
/// let scheduler = Scheduler::builder()
///     .handler("count", CountRuns(runs.clone()))
///     .in_memory()
///     .start()
///     .await?;
/// scheduler
///     .add(JobSpec::builder("counter", ScheduleSpec::cron("0 0 * * * *"), "count").build()?)
///     .await?;
/// assert!(matches!(scheduler.trigger("counter").await?, TriggerOutcome::Started(_)));
/// // `shutdown` waits for the run in flight.
/// scheduler.shutdown(Duration::from_secs(5)).await?;
/// assert_eq!(runs.load(Ordering::SeqCst), 1);
/// # Ok(())
/// # }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Runs the job once.
    fn call(&self, ctx: JobContext) -> BoxFuture<'static, Result<(), HandlerError>>;
}

impl std::fmt::Debug for dyn Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handler")
    }
}

impl<F, Fut, E> Handler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<HandlerError> + 'static,
{
    fn call(&self, ctx: JobContext) -> BoxFuture<'static, Result<(), HandlerError>> {
        let fut = (self)(ctx);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

/// The handlers of a scheduler, by name.
///
/// ```
/// use cronactor_actors::{Handlers, JobContext};
///
/// let mut handlers = Handlers::default();
/// handlers.insert("noop", |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) });
/// assert!(handlers.contains("noop"));
/// assert!(handlers.get("missing").is_none());
/// ```
#[derive(Clone, Default)]
pub struct Handlers {
    by_name: HashMap<String, Arc<dyn Handler>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Handlers {
    /// Registers (or replaces) a handler.
    pub fn insert(&mut self, name: impl Into<String>, handler: impl Handler) {
        self.by_name.insert(name.into(), Arc::new(handler));
    }

    /// The handler registered under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Handler>> {
        self.by_name.get(name).cloned()
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}
