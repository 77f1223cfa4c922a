//! The HTTP control API (feature `http`): list, inspect and steer jobs,
//! stream their events, scrape metrics.
//!
//! Two ways to run it:
//! - [`router`](crate::http::router) returns an [`axum::Router`] to mount inside a service's own
//!   server (for example under `/scheduler` with `Router::nest`);
//! - [`serve`](crate::http::serve) binds an address (loopback unless an admin token is set) and
//!   serves it until [`ServerHandle::shutdown`](crate::http::ServerHandle::shutdown).
//!
//! Every endpoint is one call on the [`Scheduler`] handle; errors are RFC 9457
//! problem details ([`Problem`](crate::http::Problem)); the OpenAPI document is served at
//! `/openapi.json` ([`openapi`](crate::http::openapi)). The endpoints, tokens and status codes are
//! described in `docs/operations.md`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cronactor::http::{serve, HttpConfig};
//! use cronactor::{JobContext, Scheduler};
//!
//! let scheduler = Scheduler::builder()
//!     .handler("noop", |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) })
//!     .in_memory()
//!     .start()
//!     .await?;
//! let config = HttpConfig::default()
//!     .read_token("reader-secret")
//!     .admin_token("admin-secret");
//! let server = serve(scheduler.clone(), "127.0.0.1:0".parse()?, config).await?;
//! println!("control API on http://{}", server.local_addr());
//! server.shutdown().await?;
//! scheduler.shutdown(std::time::Duration::from_secs(1)).await?;
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "cli")]
pub mod client;
pub mod dto;
mod events;
mod extract;
mod handlers;
mod openapi_doc;
mod problem;
mod prom;

pub use openapi_doc::openapi;
pub use problem::{Problem, PROBLEM_JSON};

use crate::Scheduler;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use events::Hub;
use prom::Prom;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// The default request body limit: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// The default number of events kept for `Last-Event-ID` resume.
pub const DEFAULT_EVENT_BUFFER: usize = 1024;
/// The most events kept for `Last-Event-ID` resume
/// ([`HttpConfig::event_buffer`]): the buffer and the channel to the
/// clients are allocated up front, as the scheduler's event bus is, whose
/// [`event_capacity`](crate::RuntimeConfig::event_capacity) has the same
/// bound.
pub const MAX_EVENT_BUFFER: usize = cronactor_actors::MAX_EVENT_CAPACITY;
/// The default listen address of the daemon and the CLI's default URL.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7700";
/// How long [`serve`] waits for a request's head (the request line and
/// the headers) by default: 10 s from the moment it waits for one, on a new
/// connection or on one kept alive after an answer. A head that is not
/// complete by then is dropped with its connection, unanswered: a client
/// that sends part of a head and stalls cannot hold a connection (and keep
/// a shutdown waiting) for ever. Ten seconds is far more than a head takes
/// on any working link, and also how long an idle connection stays open.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body may go without any data arriving, by default
/// ([`serve`]): 30 s. A body that stalls longer is answered 408
/// `request-timeout` and its connection closed. The limit is on the gaps,
/// not on the whole body, so that a large body on a slow link still
/// arrives; a body is at most [`DEFAULT_BODY_LIMIT`] anyway.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`ServerHandle::shutdown`] waits for requests in flight by
/// default: 10 s. Connections still open then are closed, so that a client
/// that stalls cannot keep the server (and the daemon) from stopping.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Settings of the HTTP layer: tokens, limits, and what it may change.
///
/// Tokens: requests to `GET` endpoints need the read token or the admin
/// token; every other method needs the admin token (a read token gets 403).
/// With no token at all, no token is checked (and [`serve`] then only binds
/// loopback addresses); a cross-origin request that changes something is
/// still refused. `GET /health` and `GET /openapi.json` are always
/// open. [`serve`] refuses a token shorter than 8 characters or with a
/// character other than visible ASCII, and a read token equal to the admin
/// token; [`router`] does not check them.
///
/// ```
/// use cronactor::http::HttpConfig;
/// let config = HttpConfig::default()
///     .read_token("r-9f2c41d7")
///     .admin_token("a-77d1e05b")
///     .body_limit(16 * 1024);
/// assert!(config.has_tokens());
/// assert!(!format!("{config:?}").contains("a-77d1e05b")); // tokens are not printed
/// ```
#[derive(Clone)]
pub struct HttpConfig {
    read_token: Option<String>,
    admin_token: Option<String>,
    body_limit: usize,
    event_buffer: usize,
    preview_fires: usize,
    recent_runs: usize,
    job_changes: bool,
    loopback_hosts_only: bool,
    timeouts: Timeouts,
}

/// The time limits of [`serve`]'s connections (see [`HttpConfig`]).
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    header: Duration,
    body: Duration,
    shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            read_token: None,
            admin_token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            event_buffer: DEFAULT_EVENT_BUFFER,
            preview_fires: 5,
            recent_runs: 10,
            job_changes: true,
            loopback_hosts_only: false,
            timeouts: Timeouts {
                header: DEFAULT_HEADER_TIMEOUT,
                body: DEFAULT_BODY_TIMEOUT,
                shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            },
        }
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |t: &Option<String>| t.as_ref().map(|_| "<redacted>");
        f.debug_struct("HttpConfig")
            .field("read_token", &redact(&self.read_token))
            .field("admin_token", &redact(&self.admin_token))
            .field("body_limit", &self.body_limit)
            .field("event_buffer", &self.event_buffer)
            .field("preview_fires", &self.preview_fires)
            .field("recent_runs", &self.recent_runs)
            .field("job_changes", &self.job_changes)
            .field("header_timeout", &self.timeouts.header)
            .field("body_timeout", &self.timeouts.body)
            .field("shutdown_grace", &self.timeouts.shutdown_grace)
            .finish()
    }
}

impl HttpConfig {
    /// The token of read-only clients (`GET` endpoints).
    pub fn read_token(mut self, token: impl Into<String>) -> Self {
        self.read_token = Some(token.into());
        self
    }

    /// The token of admin clients (every endpoint).
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// The largest request body accepted (default 64 KiB); larger bodies get
    /// 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How many events are kept for `Last-Event-ID` resume (default 1024),
    /// from 1 to [`MAX_EVENT_BUFFER`]: a value out of that range is taken
    /// as the nearest bound.
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events.clamp(1, MAX_EVENT_BUFFER);
        self
    }

    /// How many next fires `GET /jobs/{id}` lists (default 5).
    pub fn preview_fires(mut self, n: usize) -> Self {
        self.preview_fires = n;
        self
    }

    /// How many recent runs `GET /jobs/{id}` lists (default 10).
    pub fn recent_runs(mut self, n: usize) -> Self {
        self.recent_runs = n;
        self
    }

    /// Whether `POST /jobs`, `PUT /jobs/{id}` and `DELETE /jobs/{id}` are
    /// allowed (default `true`). The daemon turns them off: its jobs come
    /// from its file, and a job of its `command` handler would run any
    /// command its spec names.
    pub fn job_changes(mut self, allowed: bool) -> Self {
        self.job_changes = allowed;
        self
    }

    /// How long [`serve`] waits for a request's head (default
    /// [`DEFAULT_HEADER_TIMEOUT`]); a head still incomplete then is dropped
    /// with its connection. [`serve`] refuses zero. A service that mounts
    /// [`router`] sets its own server's limits.
    pub fn header_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.header = limit;
        self
    }

    /// How long a request body may go without data under [`serve`]
    /// (default [`DEFAULT_BODY_TIMEOUT`]); then 408. [`serve`] refuses zero.
    pub fn body_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.body = limit;
        self
    }

    /// How long [`ServerHandle::shutdown`] waits for requests in flight
    /// (default [`DEFAULT_SHUTDOWN_GRACE`]) before it closes the
    /// connections still open.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.timeouts.shutdown_grace = grace;
        self
    }

    /// Whether a read or admin token is configured.
    pub fn has_tokens(&self) -> bool {
        self.read_token.is_some() || self.admin_token.is_some()
    }

    fn validate(&self) -> Result<(), HttpError> {
        for (name, token) in [("read", &self.read_token), ("admin", &self.admin_token)] {
            if let Some(t) = token {
                // Visible ASCII only: that is what a header value can carry
                // (`HeaderValue::to_str`), so any other token could never
                // be presented and every request would get 401.
                if t.len() < 8 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(HttpError::Config(format!(
                        "the {name} token must be at least 8 characters, visible ASCII without \
                         spaces"
                    )));
                }
            }
        }
        if let (Some(r), Some(a)) = (&self.read_token, &self.admin_token) {
            if r == a {
                return Err(HttpError::Config(
                    "the read token and the admin token must differ".into(),
                ));
            }
        }
        for (name, limit) in [
            ("header", self.timeouts.header),
            ("body", self.timeouts.body),
        ] {
            if limit.is_zero() {
                return Err(HttpError::Config(format!(
                    "the {name} timeout must be longer than zero"
                )));
            }
        }
        Ok(())
    }

    #[allow(clippy::result_large_err)] // answered at once, once per request
    fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<(), Problem> {
        if !self.has_tokens() {
            return Ok(());
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            // The scheme is case-insensitive (RFC 9110, section 11.1).
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| Problem::unauthorized("a bearer token is required"))?;
        let matches = |token: &Option<String>| {
            token
                .as_ref()
                .is_some_and(|t| bool::from(t.as_bytes().ct_eq(presented.as_bytes())))
        };
        let admin = matches(&self.admin_token);
        let read = matches(&self.read_token);
        match scope {
            Scope::Read if admin || read => Ok(()),
            Scope::Admin if admin => Ok(()),
            Scope::Admin if read => Err(Problem::forbidden(
                "read-only-token",
                "this token is read-only; this request needs the admin token",
            )),
            _ => Err(Problem::unauthorized("the bearer token is not valid")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Read,
    Admin,
}

/// Why [`serve`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A non-loopback address without an admin token.
    #[error(
        "refusing to serve on {0} without an admin token: only loopback addresses may serve \
         without authentication"
    )]
    InsecureBind(
        /// The address asked for.
        SocketAddr,
    ),
    /// The configuration is invalid (weak or equal tokens, a zero timeout).
    #[error("invalid HTTP configuration: {0}")]
    Config(
        /// What is wrong.
        String,
    ),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The system's error.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("the HTTP server failed: {0}")]
    Serve(
        /// The system's error.
        std::io::Error,
    ),
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) scheduler: Scheduler,
    pub(crate) config: Arc<HttpConfig>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) prom: Arc<Prom>,
}

/// The routes of the API, as `(method, path)`; the OpenAPI document lists
/// exactly these (a test checks it).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/jobs"),
    ("post", "/jobs"),
    ("get", "/jobs/{id}"),
    ("put", "/jobs/{id}"),
    ("delete", "/jobs/{id}"),
    ("post", "/jobs/{id}/pause"),
    ("post", "/jobs/{id}/resume"),
    ("post", "/bulk/pause"),
    ("post", "/bulk/resume"),
    ("post", "/jobs/{id}/trigger"),
    ("post", "/jobs/{id}/backfill"),
    ("post", "/jobs/{id}/cancel"),
    ("put", "/jobs/{id}/result"),
    ("delete", "/jobs/{id}/result"),
    ("get", "/jobs/{id}/history"),
    ("get", "/metrics"),
    ("get", "/metrics/scheduler"),
    ("get", "/health"),
    ("get", "/events"),
    ("post", "/events/{name}"),
    ("get", "/openapi.json"),
];

/// The API as an [`axum::Router`], to mount in a service's own server.
///
/// It starts a task that numbers the scheduler's events for `GET /events`,
/// so it must be called within a tokio runtime. SSE streams end when the
/// scheduler shuts down. Tokens are checked as [`HttpConfig`] says; binding
/// and exposure are the service's business.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::http::{router, HttpConfig};
/// use cronactor::Scheduler;
///
/// let scheduler = Scheduler::builder().in_memory().start().await?;
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "my service" }))
///     .nest("/scheduler", router(scheduler.clone(), HttpConfig::default()));
/// # drop(app);
/// scheduler.shutdown(std::time::Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
pub fn router(scheduler: Scheduler, config: HttpConfig) -> Router {
    build(scheduler, None, config).0
}

/// The router; its event buffer is fed from `early` if given (see
/// [`Hub::spawn_collector`]).
fn build(
    scheduler: Scheduler,
    early: Option<crate::EventStream>,
    config: HttpConfig,
) -> (Router, Arc<Hub>) {
    let hub = Arc::new(Hub::new(config.event_buffer));
    let prom = Arc::new(Prom::new());
    hub.spawn_collector(scheduler.clone(), early, prom.clone());
    let state = AppState {
        scheduler,
        config: Arc::new(config.clone()),
        hub: hub.clone(),
        prom,
    };
    use handlers as h;
    let protected = Router::new()
        .route("/jobs", get(h::list_jobs).post(h::create_job))
        .route(
            "/jobs/{id}",
            get(h::show_job).put(h::upsert_job).delete(h::delete_job),
        )
        .route("/jobs/{id}/pause", post(h::pause_job))
        .route("/jobs/{id}/resume", post(h::resume_job))
        // Not `/jobs/pause`: that path would shadow `GET /jobs/{id}` of a
        // job named `pause` (a static route wins, and its other methods 405).
        .route("/bulk/pause", post(h::bulk_pause))
        .route("/bulk/resume", post(h::bulk_resume))
        .route("/jobs/{id}/trigger", post(h::trigger_job))
        .route("/jobs/{id}/backfill", post(h::backfill_job))
        .route("/jobs/{id}/cancel", post(h::cancel_job))
        .route(
            "/jobs/{id}/result",
            put(h::set_job_result).delete(h::clear_job_result),
        )
        .route("/jobs/{id}/history", get(h::job_history))
        .route("/metrics", get(h::prometheus))
        .route("/metrics/scheduler", get(h::scheduler_metrics))
        .route("/events", get(h::events))
        .route("/events/{name}", post(h::emit_event))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard));
    let public = Router::new()
        .route("/health", get(h::health))
        .route("/openapi.json", get(h::openapi_json))
        .route_layer(middleware::from_fn_with_state(state.clone(), host_guard));
    let router = protected
        .merge(public)
        .fallback(h::no_route)
        .method_not_allowed_fallback(h::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.body_limit))
        .with_state(state);
    (router, hub)
}

/// Refuses requests whose `Host` is not a loopback name when the server
/// runs without tokens (against DNS rebinding).
fn host_allowed(config: &HttpConfig, headers: &HeaderMap) -> bool {
    if !config.loopback_hosts_only {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn misdirected() -> Response {
    Problem::forbidden(
        "host-not-allowed",
        "without tokens this server only answers requests for a loopback host name",
    )
    .into_response()
}

async fn host_guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if !host_allowed(&st.config, req.headers()) {
        return misdirected();
    }
    next.run(req).await
}

/// Checks the host, the token and, without tokens, refuses cross-origin
/// mutations (a browser page must not steer a local scheduler).
async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if !host_allowed(&st.config, req.headers()) {
        return misdirected();
    }
    let scope = if matches!(*req.method(), Method::GET | Method::HEAD) {
        Scope::Read
    } else {
        Scope::Admin
    };
    if scope == Scope::Admin
        && !st.config.has_tokens()
        && req.headers().contains_key(header::ORIGIN)
    {
        return Problem::forbidden(
            "cross-origin",
            "cross-origin requests may not change anything on a server without tokens",
        )
        .into_response();
    }
    if let Err(problem) = st.config.authorize(req.headers(), scope) {
        tracing::debug!(path = %req.uri().path(), status = problem.status, "request refused");
        return problem.into_response();
    }
    next.run(req).await
}

/// A running server, from [`serve`].
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: CancellationToken,
    end_streams: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// The address it listens on (with the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, ends the event streams and waits for
    /// requests in flight, for the shutdown grace at most
    /// ([`HttpConfig::shutdown_grace`], 10 s by default): the connections
    /// still open then are closed. Dropping the handle instead leaves the
    /// server running as long as the runtime does.
    ///
    /// # Errors
    /// [`HttpError::Serve`] if the server had failed.
    pub async fn shutdown(self) -> Result<(), HttpError> {
        self.end_streams.cancel();
        self.stop.cancel();
        match self.task.await {
            Ok(result) => result.map_err(HttpError::Serve),
            Err(join) => Err(HttpError::Serve(std::io::Error::other(join.to_string()))),
        }
    }
}

/// Serves the API on `addr` until [`ServerHandle::shutdown`].
///
/// # Errors
/// [`HttpError::InsecureBind`] for a non-loopback address without an admin
/// token, [`HttpError::Config`] for tokens shorter than 8 characters, with a
/// character other than visible ASCII, or equal, or a zero header or body
/// timeout, [`HttpError::Bind`] if the address cannot be bound.
pub async fn serve(
    scheduler: Scheduler,
    addr: SocketAddr,
    config: HttpConfig,
) -> Result<ServerHandle, HttpError> {
    let bound = bind(addr, config).await?;
    Ok(bound.serve(scheduler))
}

/// A checked configuration and its bound listener, not serving yet: the
/// daemon binds before it opens its store, so that a refused address or
/// token leaves the store untouched.
pub(crate) struct Bound {
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    config: HttpConfig,
}

/// Checks the configuration against `addr` and binds it.
pub(crate) async fn bind(addr: SocketAddr, mut config: HttpConfig) -> Result<Bound, HttpError> {
    config.validate()?;
    if !addr.ip().is_loopback() && config.admin_token.is_none() {
        return Err(HttpError::InsecureBind(addr));
    }
    config.loopback_hosts_only = !config.has_tokens();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    Ok(Bound {
        listener,
        local,
        config,
    })
}

/// A bound listener and its router, not serving yet; `/events` already
/// buffers the scheduler's events.
pub(crate) struct Ready {
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    app: Router,
    hub: Arc<Hub>,
    timeouts: Timeouts,
}

impl Bound {
    /// Serves the API on the bound listener until [`ServerHandle::shutdown`].
    pub(crate) fn serve(self, scheduler: Scheduler) -> ServerHandle {
        self.prepare(scheduler, None).serve()
    }

    /// Builds the router without serving it yet: `/events` buffers the
    /// scheduler's events from `early` if given (a subscription taken
    /// before it started, see `SchedulerBuilder::start_subscribed`), or
    /// from now on, until the API is served.
    pub(crate) fn prepare(self, scheduler: Scheduler, early: Option<crate::EventStream>) -> Ready {
        let timeouts = self.config.timeouts;
        let (app, hub) = build(scheduler, early, self.config);
        Ready {
            listener: self.listener,
            local: self.local,
            app,
            hub,
            timeouts,
        }
    }
}

impl Ready {
    /// Serves the API until [`ServerHandle::shutdown`].
    pub(crate) fn serve(self) -> ServerHandle {
        let Self {
            listener,
            local,
            app,
            hub,
            timeouts,
        } = self;
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, app, timeouts, stop.clone()));
        tracing::info!(addr = %local, "HTTP control API listening");
        ServerHandle {
            addr: local,
            stop,
            end_streams: hub.end_streams.clone(),
            task,
        }
    }
}

/// Serves connections from `listener` until `stop`, then shuts them down
/// gracefully for the grace at most and drops those still open.
///
/// The loop of `axum::serve`, with hyper's HTTP/1 connections given a timer
/// and a header read timeout, and request bodies a timeout: `axum::serve`
/// sets neither, so a client that sent part of a request and stalled held
/// its connection for ever, and its graceful shutdown waited for it.
async fn accept_loop(
    mut listener: tokio::net::TcpListener,
    app: Router,
    timeouts: Timeouts,
    stop: CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use tower_http::timeout::RequestBodyTimeout;

    let mut http1 = hyper::server::conn::http1::Builder::new();
    // hyper enforces the header read timeout only with a timer.
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    let service = RequestBodyTimeout::new(app, timeouts.body);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            // axum's `Listener` retries failed accepts (with a pause when
            // out of file descriptors) rather than failing the server.
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = stop.cancelled() => break,
        };
        let conn = http1.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%peer, %error, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = timeouts.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            grace_s = grace.as_secs_f64(),
            "HTTP connections still open after the shutdown grace are closed"
        );
    }
    connections.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests;
