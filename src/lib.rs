//! cronactor: an actor-model job-scheduling runtime a Rust service embeds.
//!
//! A supervisor actor owns one actor per job. Each job actor holds its
//! schedule (cron with seconds in an IANA zone, fixed interval, or one-shot),
//! its overlap and misfire policies, its pause state and counters; timer
//! messages trigger runs, which execute off the actor. A registry actor
//! answers status queries and persists snapshots, so a restarted process
//! resumes every job.
//!
//! # Layout
//! - [`Scheduler`] and [`SchedulerBuilder`]: the typed handle and its builder;
//!   [`JobSelector`] and [`BulkReport`] for its bulk pause and resume.
//! - [`schedule`]: schedule evaluation, usable on its own.
//! - Domain types re-exported from `cronactor-actors`: [`JobSpec`],
//!   [`JobStatus`], [`Event`], the policies, the errors.
//! - [`testing`]: a simulated clock to test schedules in paused tokio time.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod builder;
mod bulk;
/// The standalone daemon and the command-line front-end of the `cronactor`
/// binary.
#[cfg(feature = "cli")]
pub mod daemon;
/// The HTTP control API: an axum router, a server, OpenAPI, Prometheus metrics.
#[cfg(feature = "http")]
pub mod http;
/// The tokio runtime a service runs the scheduler on: workers one per CPU.
pub mod runtime;
mod scheduler;
pub mod store;
pub mod testing;

/// The README's Rust example, compiled with the doc tests so that it keeps
/// up with the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

pub use builder::{SchedulerBuilder, StartError};
pub use bulk::{BulkReport, JobSelector, Unchanged};
pub use cronactor_actors::schedule;
pub use cronactor_actors::supervisor::{MAX_RESTARTS, RESTART_WINDOW};
pub use cronactor_actors::{
    AdmissionLimits, BackfillOverlap, Backoff, CancelReason, Clock, Counters, Error, Event,
    EventKind, EventStream, Handler, HandlerError, InFlightRun, InterruptedPolicy, InvalidJobId,
    JobContext, JobId, JobMsg, JobPhase, JobRecord, JobSpec, JobSpecBuilder, JobState, JobStatus,
    Loaded, MemoryStore, Metrics, MisfirePolicy, Outcome, OverlapPolicy, PauseInfo, Percentiles,
    QuarantinedRecord, QueuedFire, Received, RetryPolicy, RetryWait, RunId, RunRecord,
    RuntimeConfig, ScheduleSpec, ShutdownReport, SkipCounts, SkipReason, SnapshotStore, StoreError,
    StoreOp, StoreStats, SupervisorMsg, SystemClock, Trigger, TriggerOutcome, Upserted,
    DEFAULT_FIRE_AHEAD, FIRE_AHEAD_LIVE_JOBS, MAX_BACKFILL, MAX_EVENT_CAPACITY,
    MAX_EVENT_PAYLOAD_BYTES, MAX_HELD_EVENT_BYTES, MAX_JITTER, MAX_JOB_ID_LEN, MAX_PAYLOAD_DEPTH,
    MAX_PREVIEW, MAX_QUEUE, MAX_RESULT_BYTES, MAX_RESULT_DEPTH,
};
pub use scheduler::{Scheduler, BULK_CONCURRENCY};
