//! The domain and the actors of cronactor.
//!
//! # Layout
//! - Pure domain, unit-tested without a runtime: [`schedule`] (when a job
//!   fires), [`policy`] (overlap and misfire decisions), [`JobSpec`] (what a
//!   job is), [`JobState`] and [`JobStatus`] (what it has done), [`Event`].
//! - Ports: [`Clock`] (wall time) and [`SnapshotStore`] (persistence), with
//!   [`SystemClock`], [`ManualClock`] and [`MemoryStore`] as adapters.
//! - Actors, one module each with its message enum: [`supervisor`],
//!   [`job`], [`registry`]; plus the shared timer service.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod schedule;

mod admission;
mod ahead;
mod clock;
mod error;
mod event;
mod handler;
mod id;
pub mod job;
mod kept;
mod metrics;
mod passive;
mod payload;
pub mod policy;
pub mod registry;
mod runtime;
mod spec;
mod status;
pub mod store;
pub mod supervisor;
mod time_serde;
mod timer;
mod watermark;

pub use admission::AdmissionLimits;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use event::{Event, EventBus, EventKind, EventStream, Received};
pub use handler::{
    Handler, HandlerError, Handlers, JobContext, MAX_RESULT_BYTES, MAX_RESULT_DEPTH,
};
pub use id::{InvalidJobId, JobId, RunId, MAX_JOB_ID_LEN};
pub use job::{JobMsg, TriggerOutcome, MAX_BACKFILL, MAX_PREVIEW};
pub use metrics::{Metrics, Percentiles, StoreStats};
pub use payload::{MAX_EVENT_PAYLOAD_BYTES, MAX_HELD_EVENT_BYTES, MAX_PAYLOAD_DEPTH};
pub use policy::{
    BackfillOverlap, Backoff, InterruptedPolicy, MisfirePolicy, OverlapPolicy, RetryPolicy,
    MAX_QUEUE,
};
pub use runtime::{RuntimeConfig, DEFAULT_FIRE_AHEAD, FIRE_AHEAD_LIVE_JOBS, MAX_EVENT_CAPACITY};
pub use schedule::{Schedule, ScheduleSpec};
pub use spec::{JobSpec, JobSpecBuilder, MAX_JITTER};
pub use status::*;
pub use store::{
    JobRecord, Loaded, MemoryStore, QuarantinedRecord, SnapshotStore, StoreError, StoreOp,
};
pub use supervisor::{ShutdownReport, SupervisorMsg, Upserted};

/// Starts the actors of one scheduler; used by the `cronactor` crate's
/// `Scheduler` builder.
#[doc(hidden)]
pub mod boot;
