//! The domain and the actors of cronactor.
pub mod schedule;

mod clock;
mod error;
mod event;
mod handler;
mod id;
pub mod policy;
mod spec;
mod status;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use event::{Event, EventBus, EventKind, EventStream, Received};
pub use handler::{Handler, HandlerError, Handlers, JobContext};
pub use id::{InvalidJobId, JobId, RunId};
pub use policy::{InterruptedPolicy, MisfirePolicy, OverlapPolicy};
pub use schedule::{Schedule, ScheduleSpec};
pub use spec::{JobSpec, JobSpecBuilder};
pub use status::*;
pub use store::{JobRecord, Loaded, MemoryStore, QuarantinedRecord, SnapshotStore, StoreError, StoreOp};
