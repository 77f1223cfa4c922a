//! A small blocking client of the HTTP API (feature `cli`), used by the
//! `cronactor` command. Answers are the DTOs of [`super::dto`]; errors carry
//! the server's problem details and map to the CLI's exit codes.
//!
//! ```no_run
//! use cronactor::http::client::Client;
//! let client = Client::new("http://127.0.0.1:7700", std::env::var("CRONACTOR_TOKEN").ok());
//! for job in client.list_jobs(Some("paused"))? {
//!     println!("{} paused: {:?}", job.id, job.pause_note);
//! }
//! # Ok::<(), cronactor::http::client::ClientError>(())
//! ```

use super::dto::{
    BulkRequest, BulkView, CancelView, EmitView, EventView, HealthView, JobDetail, JobView,
    MetricsView, MissedView, NoteRequest, RunView, TriggerView,
};
use super::problem::Problem;
use serde::de::DeserializeOwned;
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: bad usage or input refused as invalid (400, 405, 413, 415).
pub const EXIT_USAGE: i32 = 1;
/// Exit code: no such job or run (404 `unknown-job` or `unknown-run`).
pub const EXIT_NOT_FOUND: i32 = 2;
/// Exit code: conflict with the job's state or an existing id (409).
pub const EXIT_CONFLICT: i32 = 3;
/// Exit code: the server failed or could not be reached (5xx, connection,
/// or a 404 for a path the server does not serve: a wrong base URL).
pub const EXIT_SERVER: i32 = 4;
/// Exit code: authentication or permission refused (401, 403).
pub const EXIT_AUTH: i32 = 5;
/// Exit code: the run followed with `follow --until-done` did not succeed.
pub const EXIT_RUN_FAILED: i32 = 6;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error (problem details).
    #[error("{} (HTTP {})", .0.detail, .0.status)]
    Api(
        /// The server's problem details.
        Box<Problem>,
    ),
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach {url}: {reason}")]
    Connect {
        /// The URL called.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from {url}: {reason}")]
    Decode {
        /// The URL called.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

impl ClientError {
    /// The exit code documented for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Api(p) => match p.status {
                401 | 403 => EXIT_AUTH,
                // Any other 404 (`no-route`, or another server's page) is no
                // answer about a job: a wrong base URL, not "no such job".
                404 if !self.is_not_the_api() => EXIT_NOT_FOUND,
                404 => EXIT_SERVER,
                409 => EXIT_CONFLICT,
                400..=499 => EXIT_USAGE,
                _ => EXIT_SERVER,
            },
            Self::Connect { .. } | Self::Decode { .. } => EXIT_SERVER,
        }
    }

    /// Whether the server answered 404 for the path itself rather than
    /// for a job or a run (`unknown-job`, `unknown-run`): the base URL
    /// names no cronactor API (a wrong prefix, or another server).
    pub fn is_not_the_api(&self) -> bool {
        match self {
            Self::Api(p) if p.status == 404 => !matches!(
                p.kind.as_str(),
                "urn:cronactor:problem:unknown-job" | "urn:cronactor:problem:unknown-run"
            ),
            _ => false,
        }
    }
}

/// One message of the event stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamMessage {
    /// An event, with its sequence number in `seq`.
    Event(EventView),
    /// Events this client will not receive.
    Missed(MissedView),
}

/// A blocking client of one server. Its `Debug` output leaves the token
/// out.
///
/// Blocking: from async code, call it on a blocking thread.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::http::client::Client;
/// use cronactor::http::{serve, HttpConfig};
/// use cronactor::{JobContext, JobSpec, ScheduleSpec, Scheduler};
///
/// let scheduler = Scheduler::builder()
///     .handler("noop", |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) })
///     .in_memory()
///     .start()
///     .await?;
/// scheduler
///     .add(JobSpec::builder("report", ScheduleSpec::cron("0 0 9 * * *"), "noop").build()?)
///     .await?;
/// let server = serve(scheduler.clone(), "127.0.0.1:0".parse()?, HttpConfig::default()).await?;
///
/// let base = format!("http://{}", server.local_addr());
/// let paused = tokio::task::spawn_blocking(move || {
///     let client = Client::new(&base, None);
///     client.pause("report", Some("maintenance"))?;
///     client.list_jobs(Some("paused"))
/// })
/// .await??;
/// assert_eq!(paused.len(), 1);
/// assert_eq!(paused[0].id, "report");
/// assert_eq!(paused[0].pause_note.as_deref(), Some("maintenance"));
///
/// server.shutdown().await?;
/// scheduler.shutdown(std::time::Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The body of a bulk call: the tag, or every job without one.
fn bulk_request(tag: Option<&str>, note: Option<&str>) -> BulkRequest {
    BulkRequest {
        tag: tag.map(str::to_owned),
        all: tag.is_none().then_some(true),
        note: note.map(str::to_owned),
    }
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters pass).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:7700`), with
    /// an optional bearer token.
    pub fn new(base: &str, token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn connect_error(&self, url: &str, e: ureq::Error) -> ClientError {
        ClientError::Connect {
            url: url.to_owned(),
            reason: e.to_string(),
        }
    }

    fn finish<T: DeserializeOwned>(
        &self,
        url: &str,
        answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let mut response = answer.map_err(|e| self.connect_error(url, e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.connect_error(url, e))?;
        if status >= 400 {
            let problem = serde_json::from_str::<Problem>(&text).unwrap_or_else(|_| Problem {
                kind: "about:blank".into(),
                title: "HTTP error".into(),
                status,
                detail: if text.trim().is_empty() {
                    format!("HTTP status {status}")
                } else {
                    text.trim().to_owned()
                },
                field: None,
                job_id: None,
            });
            return Err(ClientError::Api(Box::new(problem)));
        }
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        serde_json::from_str(text).map_err(|e| ClientError::Decode {
            url: url.to_owned(),
            reason: e.to_string(),
        })
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let mut req = self.agent.get(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(&url, req.call())
    }

    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let mut req = self.agent.post(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let answer = match body {
            Some(b) => req.send_json(b),
            None => req.send_empty(),
        };
        self.finish(&url, answer)
    }

    fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let mut req = self.agent.put(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(&url, req.send_json(body))
    }

    fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let mut req = self.agent.delete(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(&url, req.call())
    }

    /// `PUT /jobs/{id}/result` with `Some(value)`, `DELETE /jobs/{id}/result`
    /// with `None`: sets or clears the job's last result.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn set_last_result(
        &self,
        id: &str,
        value: Option<&serde_json::Value>,
    ) -> Result<JobView, ClientError> {
        let path = format!("/jobs/{}/result", segment(id));
        match value {
            Some(v) => self.put(&path, v),
            None => self.delete(&path),
        }
    }

    /// `GET /health`.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn health(&self) -> Result<HealthView, ClientError> {
        self.get("/health")
    }

    /// `GET /jobs`, optionally only the jobs in one phase.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn list_jobs(&self, state: Option<&str>) -> Result<Vec<JobView>, ClientError> {
        self.list_jobs_matching(state, None)
    }

    /// `GET /jobs?state=S&tag=T`: the jobs in one phase, that carry one
    /// tag, or both (`None` leaves a filter out).
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn list_jobs_matching(
        &self,
        state: Option<&str>,
        tag: Option<&str>,
    ) -> Result<Vec<JobView>, ClientError> {
        let query: Vec<String> = [("state", state), ("tag", tag)]
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| format!("{name}={}", segment(v))))
            .collect();
        if query.is_empty() {
            self.get("/jobs")
        } else {
            self.get(&format!("/jobs?{}", query.join("&")))
        }
    }

    /// `POST /bulk/pause`: pauses every job that carries `tag`, or every
    /// job with `tag` `None`.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn pause_matching(
        &self,
        tag: Option<&str>,
        note: Option<&str>,
    ) -> Result<BulkView, ClientError> {
        let body = serde_json::to_value(bulk_request(tag, note)).ok();
        self.post("/bulk/pause", body.as_ref())
    }

    /// `POST /bulk/resume`: resumes every paused job that carries `tag`, or
    /// every paused job with `tag` `None`.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn resume_matching(
        &self,
        tag: Option<&str>,
        note: Option<&str>,
    ) -> Result<BulkView, ClientError> {
        let body = serde_json::to_value(bulk_request(tag, note)).ok();
        self.post("/bulk/resume", body.as_ref())
    }

    /// `GET /jobs/{id}`.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn job(&self, id: &str) -> Result<JobDetail, ClientError> {
        self.get(&format!("/jobs/{}", segment(id)))
    }

    /// `POST /jobs/{id}/pause`.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn pause(&self, id: &str, note: Option<&str>) -> Result<JobView, ClientError> {
        let body = serde_json::to_value(NoteRequest {
            note: note.map(str::to_owned),
        })
        .ok();
        self.post(&format!("/jobs/{}/pause", segment(id)), body.as_ref())
    }

    /// `POST /jobs/{id}/resume`.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn resume(&self, id: &str, note: Option<&str>) -> Result<JobView, ClientError> {
        let body = serde_json::to_value(NoteRequest {
            note: note.map(str::to_owned),
        })
        .ok();
        self.post(&format!("/jobs/{}/resume", segment(id)), body.as_ref())
    }

    /// `POST /jobs/{id}/trigger`.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn trigger(&self, id: &str) -> Result<TriggerView, ClientError> {
        self.post(&format!("/jobs/{}/trigger", segment(id)), None)
    }

    /// `POST /jobs/{id}/trigger` with `{"overlap": ...}`: this fire goes
    /// through `overlap` instead of the job's overlap policy.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn trigger_with(
        &self,
        id: &str,
        overlap: super::dto::OverlapRequest,
    ) -> Result<TriggerView, ClientError> {
        let body = serde_json::json!({ "overlap": overlap });
        self.post(&format!("/jobs/{}/trigger", segment(id)), Some(&body))
    }

    /// `POST /jobs/{id}/backfill`: runs the job's schedule slots in
    /// `(from, to]` now, one after another.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn backfill(
        &self,
        id: &str,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<super::dto::BackfillView, ClientError> {
        self.backfill_with(id, from, to, cronactor_actors::BackfillOverlap::BufferAll)
    }

    /// `POST /jobs/{id}/backfill` with the backfill's own overlap: one
    /// after another (`BufferAll`) or all at once (`AllowAll`).
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn backfill_with(
        &self,
        id: &str,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        overlap: cronactor_actors::BackfillOverlap,
    ) -> Result<super::dto::BackfillView, ClientError> {
        let body = serde_json::json!({ "from": from, "to": to, "overlap": overlap });
        self.post(&format!("/jobs/{}/backfill", segment(id)), Some(&body))
    }

    /// `POST /jobs/{id}/cancel`.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn cancel(&self, id: &str) -> Result<CancelView, ClientError> {
        self.post(&format!("/jobs/{}/cancel", segment(id)), None)
    }

    /// `POST /jobs/{id}/cancel?run=RUN`: one run in flight.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says (404
    /// `unknown-run` when the job has no such run in flight).
    pub fn cancel_run(&self, id: &str, run: &str) -> Result<CancelView, ClientError> {
        self.post(
            &format!("/jobs/{}/cancel?run={}", segment(id), segment(run)),
            None,
        )
    }

    /// `GET /jobs/{id}/history?limit=N`.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn history(&self, id: &str, limit: usize) -> Result<Vec<RunView>, ClientError> {
        self.get(&format!("/jobs/{}/history?limit={limit}", segment(id)))
    }

    /// `GET /metrics/scheduler`.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn metrics(&self) -> Result<MetricsView, ClientError> {
        self.get("/metrics/scheduler")
    }

    /// `POST /events/{name}` with an optional JSON payload.
    ///
    /// # Errors
    /// [`ClientError`] as the server or the connection says.
    pub fn emit(
        &self,
        name: &str,
        payload: Option<&serde_json::Value>,
    ) -> Result<EmitView, ClientError> {
        self.post(&format!("/events/{}", segment(name)), payload)
    }

    /// Opens `GET /events` (optionally one job's, optionally resuming after
    /// an event id): an iterator of messages that ends with the stream.
    ///
    /// # Errors
    /// [`ClientError`] if the stream cannot be opened.
    pub fn events(
        &self,
        job: Option<&str>,
        last_event_id: Option<u64>,
    ) -> Result<EventReader, ClientError> {
        let path = match job {
            Some(j) => format!("/events?job={}", segment(j)),
            None => "/events".to_owned(),
        };
        let url = self.url(&path);
        let mut req = self
            .agent
            .get(&url)
            .header("Accept", "text/event-stream")
            .config()
            .timeout_global(None)
            .build();
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let response = req.call().map_err(|e| self.connect_error(&url, e))?;
        if response.status().as_u16() >= 400 {
            return Err(match self.finish::<serde_json::Value>(&url, Ok(response)) {
                Err(e) => e,
                Ok(_) => ClientError::Decode {
                    url,
                    reason: "an error status without problem details".into(),
                },
            });
        }
        Ok(EventReader {
            url,
            reader: BufReader::new(Box::new(response.into_body().into_reader())),
        })
    }
}

/// The messages of an open event stream, read line by line.
pub struct EventReader {
    url: String,
    reader: BufReader<Box<dyn Read + Send>>,
}

impl EventReader {
    /// The URL of the stream.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("url", &self.url)
            .finish()
    }
}

impl Iterator for EventReader {
    type Item = Result<StreamMessage, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut event = String::new();
        let mut data = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    return Some(Err(ClientError::Connect {
                        url: self.url.clone(),
                        reason: e.to_string(),
                    }))
                }
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if data.is_empty() {
                    event.clear();
                    continue; // a keep-alive comment block
                }
                let decoded = if event == "missed" {
                    serde_json::from_str(&data).map(StreamMessage::Missed)
                } else {
                    serde_json::from_str(&data).map(StreamMessage::Event)
                };
                return Some(decoded.map_err(|e| ClientError::Decode {
                    url: self.url.clone(),
                    reason: e.to_string(),
                }));
            }
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
    }
}
