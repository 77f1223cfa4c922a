//! `cronactor serve`: the scheduler on the sled store, the jobs of the
//! file, the HTTP API, and the signals (SIGHUP reloads, SIGTERM and SIGINT
//! stop).

use super::command::{run_command, COMMAND_HANDLER};
use super::config::{load, ConfigError, DaemonConfig};
use crate::http::{self, HttpConfig, DEFAULT_ADDR};
use crate::{JobId, JobSpec, Scheduler, Upserted};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// The environment variable holding the API's read-only token.
pub const READ_TOKEN_ENV: &str = "CRONACTOR_READ_TOKEN";
/// The environment variable holding the API's admin token.
pub const ADMIN_TOKEN_ENV: &str = "CRONACTOR_ADMIN_TOKEN";

/// What a command may take beyond its SIGTERM-to-SIGKILL grace to be
/// reaped and reported.
const KILL_MARGIN: Duration = Duration::from_secs(2);

/// What `cronactor serve` is given. Its `Debug` output leaves the tokens
/// out.
#[derive(Clone)]
pub struct DaemonOptions {
    /// The TOML file of jobs.
    pub config: PathBuf,
    /// The directory of the sled store.
    pub store: PathBuf,
    /// The API's address; overrides the file's `[daemon] listen`.
    pub listen: Option<SocketAddr>,
    /// The API's read-only token.
    pub read_token: Option<String>,
    /// The API's admin token.
    pub admin_token: Option<String>,
    /// How long runs may take to stop at shutdown, at least (the daemon
    /// waits longer for a job whose `kill_grace_ms` needs it).
    pub shutdown_grace: Duration,
    /// At a stop, how long the runs in flight may take to end by themselves
    /// before they are cancelled (no new fire starts meanwhile); zero (the
    /// default) cancels them at once.
    pub drain: Duration,
}

impl std::fmt::Debug for DaemonOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |t: &Option<String>| t.as_ref().map(|_| "<redacted>");
        f.debug_struct("DaemonOptions")
            .field("config", &self.config)
            .field("store", &self.store)
            .field("listen", &self.listen)
            .field("read_token", &redact(&self.read_token))
            .field("admin_token", &redact(&self.admin_token))
            .field("shutdown_grace", &self.shutdown_grace)
            .field("drain", &self.drain)
            .finish()
    }
}

impl DaemonOptions {
    /// Options with the tokens from [`READ_TOKEN_ENV`] and
    /// [`ADMIN_TOKEN_ENV`] and a 10 s shutdown grace.
    pub fn new(config: impl Into<PathBuf>, store: impl Into<PathBuf>) -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|t| !t.is_empty());
        Self {
            config: config.into(),
            store: store.into(),
            listen: None,
            read_token: env(READ_TOKEN_ENV),
            admin_token: env(ADMIN_TOKEN_ENV),
            shutdown_grace: Duration::from_secs(10),
            drain: Duration::ZERO,
        }
    }
}

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The configuration file is invalid at start.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The scheduler (its store) did not start.
    #[error("cannot start the scheduler: {0}")]
    Start(#[from] crate::StartError),
    /// A job of the file was refused by the scheduler.
    #[error("cannot apply the configuration: {0}")]
    Apply(#[from] crate::Error),
    /// The HTTP API did not start.
    #[error(transparent)]
    Http(#[from] http::HttpError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// What applying a configuration changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Jobs that were not there.
    pub added: Vec<JobId>,
    /// Jobs whose spec changed (counters, history and pause state kept).
    pub updated: Vec<JobId>,
    /// Jobs no longer in the file.
    pub removed: Vec<JobId>,
}

/// Makes the scheduler's jobs those of the file: upserts new and changed
/// specs (`current` holds the specs applied last), removes the others.
///
/// # Errors
/// The scheduler's error if a call fails.
pub async fn apply(
    scheduler: &Scheduler,
    config: &DaemonConfig,
    current: &mut HashMap<JobId, JobSpec>,
) -> Result<Applied, crate::Error> {
    let mut applied = Applied::default();
    for spec in &config.jobs {
        if current.get(&spec.id) == Some(spec) {
            continue;
        }
        match scheduler.upsert(spec.clone()).await? {
            Upserted::Added => applied.added.push(spec.id.clone()),
            Upserted::Updated => applied.updated.push(spec.id.clone()),
        }
        current.insert(spec.id.clone(), spec.clone());
    }
    for status in scheduler.list().await? {
        if !config.jobs.iter().any(|j| j.id == status.id) {
            scheduler.try_remove(status.id.as_str()).await?;
            current.remove(&status.id);
            applied.removed.push(status.id);
        }
    }
    Ok(applied)
}

/// Runs the daemon until SIGTERM or SIGINT. It prints
/// `cronactor: listening on http://ADDR` on stdout once the API is up.
///
/// # Errors
/// [`DaemonError`] if it cannot start; a file made invalid later is logged
/// at reload and the running jobs are kept.
pub async fn serve(options: DaemonOptions) -> Result<(), DaemonError> {
    // First, so that an early SIGHUP does not kill the process.
    let mut hangup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;

    let config = load(&options.config)?;
    // The address and the tokens are checked, and the address bound, before
    // the store is opened: a refused start leaves the store as it was and
    // runs nothing.
    let listen = options.listen.or(config.listen).unwrap_or_else(|| {
        DEFAULT_ADDR
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7700)))
    });
    let mut http_config = HttpConfig::default().job_changes(false);
    if let Some(t) = &options.read_token {
        http_config = http_config.read_token(t.clone());
    }
    if let Some(t) = &options.admin_token {
        http_config = http_config.admin_token(t.clone());
    }
    let bound = http::bind(listen, http_config).await?;
    let cancel_grace = config.max_kill_grace() + KILL_MARGIN;
    // At shutdown, runs get at least their commands' SIGTERM grace (the
    // longest of the file loaded last): cut sooner, a command would be
    // killed before its grace and its run left unfinished in the store.
    let mut shutdown_grace = options.shutdown_grace.max(cancel_grace);
    // Subscribed before the start: `/events` keeps what the start does too
    // (the runs it finds interrupted and runs again, missed slots; with
    // `Last-Event-ID: 0`, a client reads them from the buffer).
    let (scheduler, early) = Scheduler::builder()
        .handler(COMMAND_HANDLER, run_command)
        .time_zone(config.time_zone)
        .configure(|c| c.cancel_grace = c.cancel_grace.max(cancel_grace))
        .store_path(&options.store)
        .start_subscribed()
        .await?;
    // The router's event buffer is fed from here on: `/events` keeps the
    // start's events and the file's changes applied below.
    let ready = bound.prepare(scheduler.clone(), Some(early));
    for q in scheduler.quarantined() {
        tracing::warn!(record = ?q, "a store record was quarantined");
    }
    let mut current = HashMap::new();
    let applied = match apply(&scheduler, &config, &mut current).await {
        Ok(a) => a,
        Err(e) => {
            let _ = scheduler.shutdown(options.shutdown_grace).await;
            return Err(e.into());
        }
    };
    tracing::info!(
        jobs = config.jobs.len(),
        added = applied.added.len(),
        updated = applied.updated.len(),
        removed = applied.removed.len(),
        config = %options.config.display(),
        "jobs loaded"
    );

    let server = ready.serve();
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "cronactor: listening on http://{}",
            server.local_addr()
        );
        let _ = out.flush();
    }

    loop {
        tokio::select! {
            _ = hangup.recv() => {
                if let Some(grace) = reload(&scheduler, &options, &config, &mut current).await {
                    shutdown_grace = options.shutdown_grace.max(grace + KILL_MARGIN);
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!(drain_s = options.drain.as_secs_f64(), "stopping");
    // The API serves on through the drain and the grace: reads answer
    // (`/jobs`, `/health`, `/metrics`, `/events`), so that an operator can
    // watch the runs end; control requests answer 503, as the scheduler
    // refuses them from the stop on. (The store stays locked by this
    // process until it exits: releasing the port earlier would let nothing
    // else start.)
    let report = if options.drain.is_zero() {
        scheduler.shutdown(shutdown_grace).await
    } else {
        // A second SIGTERM or SIGINT cuts the drain short: the runs still
        // going are stopped now, with the grace.
        let draining = scheduler.shutdown_after_drain(options.drain, shutdown_grace);
        tokio::pin!(draining);
        tokio::select! {
            report = &mut draining => report,
            () = async {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            } => {
                tracing::warn!("a second signal: the drain is cut short");
                scheduler.shutdown(shutdown_grace).await
            }
        }
    };
    if let Ok(report) = &report {
        tracing::info!(report = ?report, "scheduler stopped");
    }
    // Bounded by the API's shutdown grace: requests still open then (a
    // client that stalled mid-request) are dropped with their connections.
    server.shutdown().await?;
    Ok(())
}

/// Re-reads and applies the file; the longest kill grace of the file when
/// it was loaded.
async fn reload(
    scheduler: &Scheduler,
    options: &DaemonOptions,
    started: &DaemonConfig,
    current: &mut HashMap<JobId, JobSpec>,
) -> Option<Duration> {
    let config = match load(&options.config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reload refused, the running jobs are kept: {e}");
            return None;
        }
    };
    if config.listen != started.listen || config.time_zone != started.time_zone {
        tracing::warn!("changes to the [daemon] table take effect at the next start");
    }
    match apply(scheduler, &config, current).await {
        Ok(a) => tracing::info!(
            added = ?a.added.iter().map(JobId::as_str).collect::<Vec<_>>(),
            updated = ?a.updated.iter().map(JobId::as_str).collect::<Vec<_>>(),
            removed = ?a.removed.iter().map(JobId::as_str).collect::<Vec<_>>(),
            "configuration reloaded"
        ),
        Err(e) => tracing::error!("reload failed part way: {e}"),
    }
    Some(config.max_kill_grace())
}
