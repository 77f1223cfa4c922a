//! Handlers: the user's code, registered by name, and the [`JobContext`]
//! every run receives.

use crate::id::{JobId, RunId};
use crate::status::Trigger;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a run knows about itself.
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
    /// Cancelled when the run must stop (replace, remove, shutdown); a handler
    /// that ignores it is dropped after the cancel grace.
    pub cancel: CancellationToken,
}

/// The error a handler returns: any displayable error.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A job handler: an async function of the run's context.
pub trait Handler: Send + Sync + 'static {
    /// Runs the job once.
    fn call(&self, ctx: JobContext) -> BoxFuture<'static, Result<(), HandlerError>>;
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
