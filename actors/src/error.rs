//! The runtime's error type: one variant per way a request can fail, each
//! with the data needed to act on it.

use crate::id::{InvalidJobId, JobId, RunId};
use crate::schedule::ScheduleError;

/// Why a request to the scheduler failed.
///
/// Each variant carries what a caller needs to act on it (the id, the field,
/// the state), and its text says it in one line.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{Error, JobContext, JobSpec, ScheduleSpec, Scheduler};
/// use std::time::Duration;
///
/// let scheduler = Scheduler::builder()
///     .handler("noop", |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) })
///     .in_memory()
///     .start()
///     .await?;
/// let spec = JobSpec::builder("report", ScheduleSpec::cron("0 0 9 * * *"), "noop").build()?;
/// scheduler.add(spec.clone()).await?;
///
/// match scheduler.add(spec).await {
///     Err(Error::DuplicateJob(id)) => assert_eq!(id.as_str(), "report"),
///     other => panic!("{other:?}"),
/// }
/// let err = scheduler.resume("report", None).await.unwrap_err();
/// assert!(matches!(err, Error::InvalidState { action: "resume", .. }));
/// assert!(matches!(scheduler.status("nope").await, Err(Error::UnknownJob(_))));
/// scheduler.shutdown(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The schedule is invalid (see [`ScheduleError`]): it does not parse,
    /// names an unknown zone, or its interval, exclusions, extra expressions
    /// or bounds are invalid.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// The job id breaks the id rules.
    #[error(transparent)]
    InvalidJobId(#[from] InvalidJobId),
    /// A spec field other than the schedule is invalid.
    #[error("invalid job spec: {field}: {reason}")]
    InvalidSpec {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `add` of an id that already exists.
    #[error("job {0} already exists")]
    DuplicateJob(JobId),
    /// The id names no job.
    #[error("no job {0}")]
    UnknownJob(JobId),
    /// The run id names no run the request applies to: none in any job's
    /// history (`retry_run`), or none of the job's runs in flight
    /// (`cancel_run`).
    #[error("no run {0}")]
    UnknownRun(RunId),
    /// The spec names a handler the scheduler does not have.
    #[error("no handler named {0:?} is registered")]
    UnknownHandler(String),
    /// The request does not apply to the job's current state (for example
    /// resuming a job that is not paused, or triggering an orphaned or a
    /// failed job; a completed job can still be triggered).
    #[error("job {id}: cannot {action} while {state}")]
    InvalidState {
        /// The job.
        id: JobId,
        /// The refused action.
        action: &'static str,
        /// The state it is in.
        state: String,
    },
    /// A `backfill` request's range is empty, holds too many slots, or takes
    /// too long to search for slots (exclusions that leave few; split it).
    #[error("invalid backfill: {0}")]
    InvalidBackfill(
        /// What is wrong, with the range.
        String,
    ),
    /// A bulk operation's selector is invalid (an empty tag).
    #[error("invalid job selector: {0}")]
    InvalidSelector(
        /// What is wrong with it.
        String,
    ),
    /// `JobContext::set_result` or `Scheduler::set_last_result` of a value
    /// that cannot be stored with the job's state: its JSON text is longer than
    /// [`MAX_RESULT_BYTES`](crate::MAX_RESULT_BYTES) (the state is written
    /// whole at every change of the job), or it nests arrays and objects
    /// more than [`MAX_RESULT_DEPTH`](crate::MAX_RESULT_DEPTH) levels deep
    /// (it could not be read back, or shown over HTTP).
    #[error("invalid run result: {0}")]
    InvalidResult(
        /// What is wrong with it.
        String,
    ),
    /// An event's payload cannot be stored: it nests arrays and objects
    /// more than [`MAX_PAYLOAD_DEPTH`](crate::MAX_PAYLOAD_DEPTH) levels deep,
    /// or its JSON text is longer than
    /// [`MAX_EVENT_PAYLOAD_BYTES`](crate::MAX_EVENT_PAYLOAD_BYTES).
    #[error("invalid event payload: {0}")]
    InvalidPayload(
        /// What is wrong with it.
        String,
    ),
    /// The scheduler has shut down (or is shutting down).
    #[error("the scheduler is shut down")]
    ShutDown,
    /// The scheduler did not answer in time.
    #[error("the scheduler did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The store failed to read or write.
    #[error("store error: {0}")]
    Store(String),
}
