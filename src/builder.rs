//! [`SchedulerBuilder`]: handlers, store, clock and settings, then `start`.

use crate::scheduler::Scheduler;
use chrono_tz::Tz;
use cronactor_actors::boot::{boot, boot_on, BootError};
use cronactor_actors::{
    Clock, EventBus, EventStream, Handler, Handlers, MemoryStore, RuntimeConfig, SnapshotStore,
    SystemClock, MAX_EVENT_CAPACITY,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why a scheduler did not start.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cronactor::{Scheduler, StartError};
/// use std::time::Duration;
///
/// let refused = Scheduler::builder()
///     .configure(|config| config.flush_interval = Duration::ZERO)
///     .in_memory()
///     .start()
///     .await;
/// match refused {
///     Err(StartError::InvalidConfig { field, .. }) => assert_eq!(field, "flush_interval"),
///     other => panic!("{other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] cronactor_actors::StoreError),
    /// An actor failed to start.
    #[error("{0}")]
    Spawn(String),
    /// A runtime setting is out of range (for example a zero
    /// `flush_interval`).
    #[error("invalid runtime setting {field}: {reason}")]
    InvalidConfig {
        /// The setting, e.g. `flush_interval`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<BootError> for StartError {
    fn from(e: BootError) -> Self {
        match e {
            BootError::Store(e) => Self::Store(e),
            BootError::Spawn(e) => Self::Spawn(e),
            BootError::InvalidConfig { field, reason } => Self::InvalidConfig { field, reason },
        }
    }
}

enum StoreChoice {
    Memory,
    Path(PathBuf),
    Custom(Arc<dyn SnapshotStore>),
}

/// Configures and starts a [`Scheduler`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{JobContext, Scheduler};
/// let scheduler = Scheduler::builder()
///     .handler("noop", |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) })
///     .time_zone(chrono_tz::Europe::Berlin)
///     .in_memory()
///     .start()
///     .await?;
/// scheduler.shutdown(std::time::Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "a builder does nothing until .start() is called"]
pub struct SchedulerBuilder {
    handlers: Handlers,
    config: RuntimeConfig,
    clock: Arc<dyn Clock>,
    store: StoreChoice,
    call_timeout: Duration,
}

impl SchedulerBuilder {
    pub(crate) fn new() -> Self {
        Self {
            handlers: Handlers::default(),
            config: RuntimeConfig::default(),
            clock: Arc::new(SystemClock),
            store: StoreChoice::Memory,
            call_timeout: Duration::from_secs(30),
        }
    }

    /// Registers a handler under `name`; jobs name the handler they run, so a
    /// job can outlive the process that declared it.
    pub fn handler(mut self, name: impl Into<String>, handler: impl Handler) -> Self {
        self.handlers.insert(name, handler);
        self
    }

    /// The zone of schedules that name none (default UTC).
    pub fn time_zone(mut self, tz: Tz) -> Self {
        self.config.default_tz = tz;
        self
    }

    /// Keeps everything in memory: nothing survives the process.
    pub fn in_memory(mut self) -> Self {
        self.store = StoreChoice::Memory;
        self
    }

    /// Persists jobs in a sled store in directory `dir` (created if missing).
    pub fn store_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store = StoreChoice::Path(dir.into());
        self
    }

    /// Persists jobs through a custom [`SnapshotStore`].
    ///
    /// Every type of the port is exported by this crate, so a store needs no
    /// other dependency; this one counts the writes it passes on:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cronactor::{
    ///     JobId, JobRecord, Loaded, MemoryStore, RunRecord, Scheduler, SnapshotStore,
    ///     StoreError, StoreOp,
    /// };
    /// use futures::future::BoxFuture;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// #[derive(Default)]
    /// struct Counting {
    ///     inner: MemoryStore,
    ///     specs: AtomicUsize,
    /// }
    ///
    /// impl SnapshotStore for Counting {
    ///     fn load(&self) -> Result<Loaded, StoreError> {
    ///         self.inner.load()
    ///     }
    ///     fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
    ///         for op in &ops {
    ///             if let StoreOp::PutJob(record) = op {
    ///                 let _: &JobRecord = record;
    ///                 self.specs.fetch_add(1, Ordering::Relaxed);
    ///             }
    ///         }
    ///         self.inner.apply(ops)
    ///     }
    ///     fn flush(&self) -> BoxFuture<'static, Result<(), StoreError>> {
    ///         self.inner.flush()
    ///     }
    ///     fn history(&self, id: &JobId, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
    ///         self.inner.history(id, limit)
    ///     }
    ///     fn is_durable(&self) -> bool {
    ///         self.inner.is_durable()
    ///     }
    /// }
    ///
    /// let store = Arc::new(Counting::default());
    /// let scheduler = Scheduler::builder()
    ///     .handler("noop", |_: cronactor::JobContext| async { Ok::<(), std::io::Error>(()) })
    ///     .store(store.clone())
    ///     .start()
    ///     .await?;
    /// let spec = cronactor::JobSpec::builder("j", cronactor::ScheduleSpec::cron("@daily"), "noop")
    ///     .build()?;
    /// scheduler.add(spec).await?;
    /// assert_eq!(store.specs.load(Ordering::Relaxed), 1);
    /// scheduler.shutdown(std::time::Duration::from_secs(1)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn store(mut self, store: Arc<dyn SnapshotStore>) -> Self {
        self.store = StoreChoice::Custom(store);
        self
    }

    /// The wall clock (default the system clock); tests use
    /// [`crate::testing::ManualClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// All runtime settings at once.
    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    /// Changes runtime settings in place.
    pub fn configure(mut self, f: impl FnOnce(&mut RuntimeConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// At most `n` runs in flight across all jobs; fires past the cap wait,
    /// highest job priority first ([`JobSpecBuilder::priority`](crate::JobSpecBuilder::priority)).
    /// `start` refuses 0 ([`StartError::InvalidConfig`]).
    pub fn max_concurrent_runs(mut self, n: usize) -> Self {
        self.config.admission.max_runs = Some(n);
        self
    }

    /// At most `n` runs in flight among jobs tagged `tag`
    /// ([`JobSpecBuilder::tag`](crate::JobSpecBuilder::tag)). `start`
    /// refuses 0 and a blank tag ([`StartError::InvalidConfig`]).
    pub fn max_concurrent_runs_for_tag(mut self, tag: impl Into<String>, n: usize) -> Self {
        self.config.admission.per_tag.insert(tag.into(), n);
        self
    }

    /// How long a handle call waits for an answer (default 30 s).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Opens the store, restores persisted jobs and starts the actors.
    ///
    /// # Errors
    /// [`StartError::Store`] if the store cannot be opened or read,
    /// [`StartError::InvalidConfig`] if a runtime setting is out of range.
    pub async fn start(self) -> Result<Scheduler, StartError> {
        self.start_with(None).await
    }

    /// Starts as [`start`](Self::start) does, and returns with the
    /// scheduler a subscription to its events taken before the start
    /// published any: the stream also holds what the start itself does,
    /// which [`Scheduler::subscribe`] comes too late for (the runs found
    /// interrupted by a crash and run again, `Orphaned` for a job whose
    /// handler is missing, the missed slots caught up or skipped, and the
    /// runs that start meanwhile). A service that audits or alerts on
    /// events starts this way.
    ///
    /// The stream is bounded as any subscription
    /// ([`RuntimeConfig::event_capacity`]): a start that publishes more
    /// than that before the stream is read makes it report
    /// `Received::Missed(n)` first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cronactor::{EventKind, JobContext, JobSpec, Received, ScheduleSpec, Scheduler};
    ///
    /// let store = std::sync::Arc::new(cronactor::MemoryStore::new());
    /// let first = Scheduler::builder()
    ///     .handler("mail", |_: JobContext| async { Ok::<(), std::io::Error>(()) })
    ///     .store(store.clone())
    ///     .start()
    ///     .await?;
    /// first
    ///     .add(JobSpec::builder("report", ScheduleSpec::cron("0 0 6 * * *"), "mail").build()?)
    ///     .await?;
    /// first.shutdown(std::time::Duration::from_secs(1)).await?;
    ///
    /// // Restarted without the handler `mail`: the start announces the job
    /// // orphaned, and this stream sees it.
    /// let (scheduler, mut events) = Scheduler::builder().store(store).start_subscribed().await?;
    /// match events.try_recv() {
    ///     Some(Received::Event(e)) => {
    ///         assert!(matches!(e.kind, EventKind::Orphaned { handler } if handler == "mail"))
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// scheduler.shutdown(std::time::Duration::from_secs(1)).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub async fn start_subscribed(self) -> Result<(Scheduler, EventStream), StartError> {
        // An over-large capacity is refused by the start; the bus is not
        // allocated at that size meanwhile.
        let events = EventBus::new(self.config.event_capacity.min(MAX_EVENT_CAPACITY));
        let stream = events.subscribe();
        Ok((self.start_with(Some(events)).await?, stream))
    }

    /// Starts on `events`, or on a new event bus.
    async fn start_with(self, events: Option<EventBus>) -> Result<Scheduler, StartError> {
        let store: Arc<dyn SnapshotStore> = match self.store {
            StoreChoice::Memory => Arc::new(MemoryStore::new()),
            StoreChoice::Custom(store) => store,
            StoreChoice::Path(dir) => open_store(dir)?,
        };
        let booted = match events {
            Some(events) => boot_on(store, self.clock, self.handlers, self.config, events).await?,
            None => boot(store, self.clock, self.handlers, self.config).await?,
        };
        let guard = std::sync::Arc::new(crate::scheduler::DropGuard {
            supervisor: booted.supervisor.clone(),
            registry: booted.registry.clone(),
        });
        Ok(Scheduler {
            _guard: guard,
            supervisor: booted.supervisor,
            registry: booted.registry,
            events: booted.events,
            quarantined: booted.quarantined,
            call_timeout: self.call_timeout,
            shutdown_by: std::sync::Arc::default(),
        })
    }
}

fn open_store(dir: PathBuf) -> Result<Arc<dyn SnapshotStore>, StartError> {
    Ok(Arc::new(crate::store::SledStore::open(dir)?))
}
