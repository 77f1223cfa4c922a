//! Starting the actors of one scheduler, in order: registry, timer service,
//! supervisor (which restores the persisted jobs).

use crate::clock::Clock;
use crate::event::{EventBus, EventKind};
use crate::handler::Handlers;
use crate::id::JobId;
use crate::registry::{RegistryActor, RegistryArgs, RegistryMsg};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::{QuarantinedRecord, SnapshotStore, StoreError};
use crate::supervisor::{SupervisorActor, SupervisorArgs, SupervisorMsg};
use crate::timer::TimerHandle;
use ractor::{Actor, ActorRef};
use std::sync::{Arc, OnceLock};

/// The running actors of one scheduler.
#[derive(Debug)]
pub struct Booted {
    /// The supervisor: the control interface.
    pub supervisor: ActorRef<SupervisorMsg>,
    /// The registry.
    pub registry: ActorRef<RegistryMsg>,
    /// The event bus.
    pub events: EventBus,
    /// Records the store quarantined while loading.
    pub quarantined: Vec<QuarantinedRecord>,
}

/// Why the scheduler did not start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The store could not be loaded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An actor failed to start.
    #[error("actor failed to start: {0}")]
    Spawn(String),
    /// A [`RuntimeConfig`] setting is out of range.
    #[error("invalid runtime setting {field}: {reason}")]
    InvalidConfig {
        /// The setting, e.g. `flush_interval`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Loads the store and starts the actors.
///
/// # Errors
/// [`BootError`] if a setting is out of range, the store cannot be read or
/// an actor cannot start.
pub async fn boot(
    store: Arc<dyn SnapshotStore>,
    clock: Arc<dyn Clock>,
    handlers: Handlers,
    config: RuntimeConfig,
) -> Result<Booted, BootError> {
    // Checked before the bus is allocated at the configured size.
    validate(&config)?;
    let events = EventBus::new(config.event_capacity);
    boot_on(store, clock, handlers, config, events).await
}

fn validate(config: &RuntimeConfig) -> Result<(), BootError> {
    config
        .validate()
        .map_err(|(field, reason)| BootError::InvalidConfig { field, reason })
}

/// [`boot`] on a given event bus, which the caller may have subscribed to
/// already: its subscribers then receive what the start itself publishes
/// (the runs it finds interrupted, missing handlers, missed slots, the
/// runs it starts).
///
/// # Errors
/// As [`boot`].
pub async fn boot_on(
    store: Arc<dyn SnapshotStore>,
    clock: Arc<dyn Clock>,
    handlers: Handlers,
    config: RuntimeConfig,
    events: EventBus,
) -> Result<Booted, BootError> {
    validate(&config)?;
    // Reading a large store takes seconds (100k jobs: about 2 s with sled):
    // on tokio's blocking pool, not on the worker that awaits `boot`, which
    // the embedding service shares (the actors need tokio anyway).
    let loaded = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.load())
            .await
            .map_err(|e| StoreError::Io(format!("loading the store failed: {e}")))??
    };
    for q in &loaded.quarantined {
        tracing::error!(tree = %q.tree, key = %q.key, reason = %q.reason, "store record quarantined");
    }
    let store_id = JobId::new("(store)").expect("a valid id");
    for q in &loaded.quarantined {
        let id = JobId::new(q.key.as_str()).unwrap_or_else(|_| store_id.clone());
        events.publish_sticky(
            &id,
            clock.now(),
            EventKind::Quarantined {
                tree: q.tree.clone(),
                key: q.key.clone(),
                reason: q.reason.clone(),
            },
        );
    }
    let histograms = Arc::new(crate::metrics::Histograms::new());
    let updates = Arc::new(crate::registry::Updates::default());
    let (registry, _) = Actor::spawn(
        None,
        RegistryActor,
        RegistryArgs {
            durable: store.is_durable(),
            store: store.clone(),
            quarantined: loaded.quarantined.clone(),
            default_tz: config.default_tz,
            flush_interval: config.flush_interval,
            history_keep: config.history_keep,
            history_max_age: config.history_max_age,
            clock: clock.clone(),
            histograms: histograms.clone(),
            updates: updates.clone(),
            events: events.clone(),
        },
    )
    .await
    .map_err(|e| BootError::Spawn(e.to_string()))?;
    let admission = crate::admission::Admission::new(config.admission.clone());
    let runtime = Arc::new(Runtime {
        clock,
        events: events.clone(),
        timer: TimerHandle::start(),
        registry: registry.clone(),
        updates,
        supervisor: OnceLock::new(),
        live_jobs: Default::default(),
        config,
        durable: store.is_durable(),
        histograms: histograms.clone(),
        admission,
        orphan_tokens: Default::default(),
    });
    let (supervisor, _) = Actor::spawn(
        None,
        SupervisorActor,
        SupervisorArgs {
            runtime,
            handlers,
            restored: loaded.jobs,
        },
    )
    .await
    .map_err(|e| BootError::Spawn(e.to_string()))?;
    Ok(Booted {
        supervisor,
        registry,
        events,
        quarantined: loaded.quarantined,
    })
}
