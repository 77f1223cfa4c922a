//! The endpoints: each is one call on the scheduler handle. The
//! `#[utoipa::path]` attributes are the source of the OpenAPI document.
// A `Problem` is returned straight to axum, once per request: its size does
// not matter.
#![allow(clippy::result_large_err)]

use super::dto::{
    variant_name, BackfillRequest, BackfillView, BulkRequest, BulkView, CancelView, EmitView,
    EmittedView, EventView, FireView, HealthView, JobDetail, JobRequest, JobView, MetricsView,
    NoteRequest, RunView, TriggerRequest, TriggerView, UpsertView,
};
use super::events::sse_stream;
use super::extract::{
    ApiQuery, JsonBody, JsonValue, OptionalJsonBody, OptionalJsonValue, PathParam,
};
use super::problem::{Problem, PROBLEM_JSON};
use super::prom::PROMETHEUS_TEXT;
use super::AppState;
use crate::{JobPhase, Upserted};
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

type ApiResult<T> = Result<T, Problem>;

/// The most history entries one request returns.
pub(crate) const MAX_HISTORY: usize = 1000;

/// Percent-encodes a path segment (RFC 3986 unreserved characters pass).
fn encode_segment(s: &str) -> String {
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

fn job_changes_allowed(st: &AppState) -> ApiResult<()> {
    if st.config.job_changes {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "job-changes-disabled",
            "this server does not create, replace or delete jobs over HTTP; \
             change its configuration file and reload it instead",
        ))
    }
}

/// The filter of `GET /jobs`. A parameter it does not know (a typo such
/// as `tags`) is refused: ignored, it would list every job.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only jobs in this phase: `scheduled`, `running`, `paused`,
    /// `completed`, `orphaned` or `failed`.
    state: Option<String>,
    /// Only jobs that carry this tag (not empty); combines with `state`.
    #[param(min_length = 1)]
    tag: Option<String>,
}

fn parse_phase(state: &str) -> ApiResult<JobPhase> {
    // The phase's name in any case, and nothing else around it.
    JobPhase::ALL
        .into_iter()
        .find(|phase| variant_name(phase).eq_ignore_ascii_case(state))
        .ok_or_else(|| {
            let names = JobPhase::ALL.map(|phase| variant_name(&phase));
            let (last, rest) = names.split_last().expect("phases");
            Problem::bad_request(
                "state",
                format!("unknown state {state:?}: use {} or {last}", rest.join(", ")),
            )
        })
}

/// Lists jobs, ordered by id.
#[utoipa::path(
    get, path = "/jobs", tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "Every job (in the phase, with the tag asked for)", body = Vec<JobView>),
        (status = 400, description = "Unknown state, an empty tag, or an unknown query parameter", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("read_token" = []), ("admin_token" = []))
)]
pub(crate) async fn list_jobs(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<JobView>>> {
    let phase = q.state.as_deref().map(parse_phase).transpose()?;
    let tag = q.tag.map(crate::JobSelector::Tag);
    if let Some(tag) = &tag {
        tag.validate()
            .map_err(|_| Problem::bad_request("tag", "the tag is empty"))?;
    }
    let jobs = st.scheduler.list().await?;
    Ok(Json(
        jobs.iter()
            .filter(|j| phase.is_none_or(|p| j.phase == p))
            .filter(|j| tag.as_ref().is_none_or(|t| t.matches(j)))
            .map(JobView::from)
            .collect(),
    ))
}

/// One job: its status, its next fires and its newest runs.
#[utoipa::path(
    get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job id (percent-encoded)")),
    responses(
        (status = 200, description = "The job", body = JobDetail),
        (status = 400, description = "Invalid job id (empty, longer than 200 bytes, or with a control character)", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such job", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("read_token" = []), ("admin_token" = []))
)]
pub(crate) async fn show_job(
    State(st): State<AppState>,
    PathParam(id): PathParam,
) -> ApiResult<Json<JobDetail>> {
    let status = st.scheduler.status(&id).await?;
    let next = match st.scheduler.preview(&id, st.config.preview_fires).await {
        Ok(next) => next,
        // A failed job (given up on) has no actor to plan its fires: it
        // fires no more until an upsert revives it.
        Err(crate::Error::InvalidState { state, .. }) if state == "failed" => Vec::new(),
        // The shutdown answered between the status and the preview.
        Err(crate::Error::ShutDown) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let runs = st.scheduler.history(&id, st.config.recent_runs).await?;
    Ok(Json(JobDetail {
        job: JobView::from(&status),
        next_fires: next.iter().map(FireView::from).collect(),
        recent_runs: runs.iter().map(RunView::from).collect(),
    }))
}

/// How `POST /jobs` creates the job. An unknown parameter is refused (a
/// misspelt `paused` read as absent would create the job active).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateQuery {
    /// Create the job paused (`true`): it fires once resumed.
    #[serde(default)]
    paused: bool,
    /// The pause note, with `paused=true`.
    note: Option<String>,
}

/// Creates a job (paused with `?paused=true`).
#[utoipa::path(
    post, path = "/jobs", tag = "jobs",
    params(CreateQuery),
    request_body(content = JobRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = JobView,
            headers(("location" = String, description = "The job's URL"))),
        (status = 400, description = "Invalid spec: `field` names the field, `detail` the reason; a note without `paused=true`, or an unknown query parameter", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token, or job changes disabled", body = Problem, content_type = PROBLEM_JSON),
        (status = 408, description = "Body stalled (no data within the body timeout)", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "A job with this id exists", body = Problem, content_type = PROBLEM_JSON),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn create_job(
    State(st): State<AppState>,
    OriginalUri(uri): OriginalUri,
    ApiQuery(q): ApiQuery<CreateQuery>,
    JsonBody(request): JsonBody<JobRequest>,
) -> ApiResult<Response> {
    job_changes_allowed(&st)?;
    if q.note.is_some() && !q.paused {
        return Err(Problem::bad_request("note", "a note goes with paused=true"));
    }
    let spec = request.to_spec(None)?;
    let id = spec.id.clone();
    if q.paused {
        st.scheduler.add_paused(spec, q.note.as_deref()).await?;
    } else {
        st.scheduler.add(spec).await?;
    }
    tracing::info!(job_id = %id, paused = q.paused, "job created over HTTP");
    let status = st.scheduler.status(id.as_str()).await?;
    // Beside the path this request came to (`/scheduler/jobs` when a
    // service nests the router under `/scheduler`), not at the root.
    let location = format!(
        "{}/{}",
        uri.path().trim_end_matches('/'),
        encode_segment(id.as_str())
    );
    let mut response = (StatusCode::CREATED, Json(JobView::from(&status))).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Creates a job or replaces its spec, keeping its counters, history and
/// pause state.
#[utoipa::path(
    put, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job id (percent-encoded)")),
    request_body(content = JobRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced", body = UpsertView),
        (status = 201, description = "Created", body = UpsertView),
        (status = 400, description = "Invalid spec", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token, or job changes disabled", body = Problem, content_type = PROBLEM_JSON),
        (status = 408, description = "Body stalled (no data within the body timeout)", body = Problem, content_type = PROBLEM_JSON),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn upsert_job(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    JsonBody(request): JsonBody<JobRequest>,
) -> ApiResult<Response> {
    job_changes_allowed(&st)?;
    let spec = request.to_spec(Some(&id))?;
    let upserted = st.scheduler.upsert(spec).await?;
    let created = matches!(upserted, Upserted::Added);
    tracing::info!(job_id = %id, created, "job upserted over HTTP");
    let status = st.scheduler.status(&id).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = UpsertView {
        created,
        job: JobView::from(&status),
    };
    Ok((code, Json(body)).into_response())
}

/// Removes a job; its runs in flight are cancelled.
#[utoipa::path(
    delete, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job id (percent-encoded)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Invalid job id (empty, longer than 200 bytes, or with a control character)", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token, or job changes disabled", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such job", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn delete_job(
    State(st): State<AppState>,
    PathParam(id): PathParam,
) -> ApiResult<StatusCode> {
    job_changes_allowed(&st)?;
    st.scheduler.remove(&id).await?;
    tracing::info!(job_id = %id, "job removed over HTTP");
    Ok(StatusCode::NO_CONTENT)
}

/// Pauses a job: its fires are skipped and counted until it is resumed.
#[utoipa::path(
    post, path = "/jobs/{id}/pause", tag = "control",
    params(("id" = String, Path, description = "The job id (percent-encoded)")),
    request_body(content = Option<NoteRequest>, content_type = "application/json",
        description = "Optional: a note shown in status"),
    responses(
        (status = 200, description = "Paused", body = JobView),
        (status = 400, description = "Invalid body", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such job", body = Problem, content_type = PROBLEM_JSON),
        (status = 408, description = "Body stalled (no data within the body timeout)", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "Already paused", body = Problem, content_type = PROBLEM_JSON),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn pause_job(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    OptionalJsonBody(body): OptionalJsonBody<NoteRequest>,
) -> ApiResult<Json<JobView>> {
    let note = body.and_then(|b| b.note);
    st.scheduler.pause(&id, note.as_deref()).await?;
    tracing::info!(job_id = %id, note = ?note, "job paused over HTTP");
    Ok(Json(JobView::from(&st.scheduler.status(&id).await?)))
}

/// Resumes a paused job from now, without a catch-up burst.
#[utoipa::path(
    post, path = "/jobs/{id}/resume", tag = "control",
    params(("id" = String, Path, description = "The job id (percent-encoded)")),
    request_body(content = Option<NoteRequest>, content_type = "application/json",
        description = "Optional: a note for the event"),
    responses(
        (status = 200, description = "Resumed", body = JobView),
        (status = 400, description = "Invalid body", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such job", body = Problem, content_type = PROBLEM_JSON),
        (status = 408, description = "Body stalled (no data within the body timeout)", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "Not paused", body = Problem, content_type = PROBLEM_JSON),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn resume_job(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    OptionalJsonBody(body): OptionalJsonBody<NoteRequest>,
) -> ApiResult<Json<JobView>> {
    let note = body.and_then(|b| b.note);
    st.scheduler.resume(&id, note.as_deref()).await?;
    tracing::info!(job_id = %id, note = ?note, "job resumed over HTTP");
    Ok(Json(JobView::from(&st.scheduler.status(&id).await?)))
}

/// Pauses every job of a tag, or every job, as single pauses would (see
/// `Scheduler::pause_matching`).
#[utoipa::path(
    post, path = "/bulk/pause", tag = "control",
    request_body(content = BulkRequest, content_type = "application/json",
        description = "`{\"tag\": \"db\"}` or `{\"all\": true}`, with an optional note"),
    responses(
        (status = 200, description = "The jobs paused (durable) and those left as they were", body = BulkView),
        (status = 400, description = "Invalid body: `field` names the field", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token", body = Problem, content_type = PROBLEM_JSON),
        (status = 408, description = "Body stalled (no data within the body timeout)", body = Problem, content_type = PROBLEM_JSON),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = PROBLEM_JSON),
        (status = 500, description = "Store failure (the jobs paused before it stay paused)", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn bulk_pause(
    State(st): State<AppState>,
    JsonBody(body): JsonBody<BulkRequest>,
) -> ApiResult<Json<BulkView>> {
    bulk(&st, body, true).await
}

/// A bulk pause (`pause`) or resume, and its log line.
async fn bulk(st: &AppState, body: BulkRequest, pause: bool) -> ApiResult<Json<BulkView>> {
    let selector = body
        .selector()
        .map_err(|(field, detail)| Problem::bad_request(field, detail))?;
    let note = body.note.as_deref();
    let report = if pause {
        st.scheduler.pause_matching(&selector, note).await?
    } else {
        st.scheduler.resume_matching(&selector, note).await?
    };
    tracing::info!(
        selector = %selector,
        note = ?body.note,
        changed = report.changed.len(),
        unchanged = report.unchanged.len(),
        "jobs {} in bulk over HTTP",
        if pause { "paused" } else { "resumed" }
    );
    Ok(Json(BulkView::from(&report)))
}

/// Resumes every paused job of a tag, or every paused job, as single
/// resumes would (see `Scheduler::resume_matching`).
#[utoipa::path(
    post, path = "/bulk/resume", tag = "control",
    request_body(content = BulkRequest, content_type = "application/json",
        description = "`{\"tag\": \"db\"}` or `{\"all\": true}`, with an optional note"),
    responses(
        (status = 200, description = "The jobs resumed (durable) and those left as they were", body = BulkView),
        (status = 400, description = "Invalid body: `field` names the field", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token", body = Problem, content_type = PROBLEM_JSON),
        (status = 408, description = "Body stalled (no data within the body timeout)", body = Problem, content_type = PROBLEM_JSON),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = PROBLEM_JSON),
        (status = 500, description = "Store failure (the jobs resumed before it stay resumed)", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn bulk_resume(
    State(st): State<AppState>,
    JsonBody(body): JsonBody<BulkRequest>,
) -> ApiResult<Json<BulkView>> {
    bulk(&st, body, false).await
}

/// Fires a job now, through its overlap policy (or the body's, for this
/// fire).
#[utoipa::path(
    post, path = "/jobs/{id}/trigger", tag = "control",
    params(("id" = String, Path, description = "The job id (percent-encoded)")),
    request_body(content = Option<TriggerRequest>, content_type = "application/json",
        description = "Optional: `{\"overlap\": ...}`, the overlap policy of this fire"),
    responses(
        (status = 202, description = "What the fire did: started, queued or skipped", body = TriggerView),
        (status = 400, description = "Invalid body, or an overlap policy a job spec refuses (`field`: `overlap`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such job", body = Problem, content_type = PROBLEM_JSON),
        (status = 408, description = "Body stalled (no data within the body timeout)", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The job cannot run (orphaned, failed)", body = Problem, content_type = PROBLEM_JSON),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn trigger_job(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    OptionalJsonBody(body): OptionalJsonBody<TriggerRequest>,
) -> ApiResult<(StatusCode, Json<TriggerView>)> {
    let outcome = match body.and_then(|b| b.overlap) {
        // A policy a spec refuses is a fault of this body, as a policy
        // that does not parse: `invalid-request`, not `invalid-spec`.
        Some(overlap) => match st.scheduler.trigger_with(&id, overlap.into()).await {
            Err(crate::Error::InvalidSpec {
                field: "overlap",
                reason,
            }) => {
                return Err(Problem::bad_request(
                    "overlap",
                    format!("overlap: {reason}"),
                ))
            }
            other => other?,
        },
        None => st.scheduler.trigger(&id).await?,
    };
    let view = TriggerView::from(&outcome);
    tracing::info!(
        job_id = %id,
        run_id = view.run_id.as_deref(),
        outcome = %view.outcome,
        "job triggered over HTTP"
    );
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Runs a job's schedule slots in `(from, to]` now, one after another (see
/// `Scheduler::backfill`).
#[utoipa::path(
    post, path = "/jobs/{id}/backfill", tag = "control",
    params(("id" = String, Path, description = "The job id (percent-encoded)")),
    request_body(content = BackfillRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "The slots queued, durable", body = BackfillView),
        (status = 400, description = "Invalid body, an empty range or too many slots", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such job", body = Problem, content_type = PROBLEM_JSON),
        (status = 408, description = "Body stalled (no data within the body timeout)", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The job cannot run (paused, orphaned, failed)", body = Problem, content_type = PROBLEM_JSON),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn backfill_job(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    JsonBody(request): JsonBody<BackfillRequest>,
) -> ApiResult<(StatusCode, Json<BackfillView>)> {
    let queued = st
        .scheduler
        .backfill_with(&id, request.from, request.to, request.overlap)
        .await?;
    tracing::info!(job_id = %id, queued, from = %request.from, to = %request.to, "job backfilled over HTTP");
    Ok((
        StatusCode::ACCEPTED,
        Json(BackfillView { job_id: id, queued }),
    ))
}

/// The run of `POST /jobs/{id}/cancel`. An unknown parameter is refused (a
/// misspelt `run` read as absent would cancel every run of the job).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelQuery {
    /// Only this run in flight (its id, up to 16 hex digits), instead of every
    /// run and the waiting retry.
    #[param(pattern = "^0*[0-9a-fA-F]{1,16}$")]
    run: Option<String>,
}

/// Cancels a job's runs in flight (and a retry waiting for its delay), or
/// one of them.
#[utoipa::path(
    post, path = "/jobs/{id}/cancel", tag = "control",
    params(("id" = String, Path, description = "The job id (percent-encoded)"), CancelQuery),
    responses(
        (status = 200, description = "The runs cancelled (empty when nothing ran)", body = CancelView),
        (status = 400, description = "Malformed run id, or an unknown query parameter", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such job, or no such run in flight", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The job failed (given up on): it has no actor to cancel its runs", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn cancel_job(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    ApiQuery(q): ApiQuery<CancelQuery>,
) -> ApiResult<Json<CancelView>> {
    if let Some(run) = q.run {
        let run_id: cronactor_actors::RunId = run.parse().map_err(|_| {
            Problem::bad_request(
                "run",
                format!("{run:?} is not a run id (up to 16 hex digits)"),
            )
        })?;
        st.scheduler.cancel_run(&id, run_id).await?;
        tracing::info!(job_id = %id, run_id = %run_id, "run cancelled over HTTP");
        return Ok(Json(CancelView {
            job_id: id,
            cancelled: vec![run_id.to_string()],
        }));
    }
    let runs = st.scheduler.cancel(&id).await?;
    tracing::info!(job_id = %id, cancelled = runs.len(), "runs cancelled over HTTP");
    Ok(Json(CancelView {
        job_id: id,
        cancelled: runs.iter().map(ToString::to_string).collect(),
    }))
}

/// The history parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    /// How many runs, newest first (1 to 1000, default 20).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// A job's newest runs, newest first.
#[utoipa::path(
    get, path = "/jobs/{id}/history", tag = "jobs",
    params(("id" = String, Path, description = "The job id (percent-encoded)"), HistoryQuery),
    responses(
        (status = 200, description = "The runs", body = Vec<RunView>),
        (status = 400, description = "Invalid limit, or an unknown query parameter", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such job", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("read_token" = []), ("admin_token" = []))
)]
pub(crate) async fn job_history(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Vec<RunView>>> {
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > MAX_HISTORY {
        return Err(Problem::bad_request(
            "limit",
            format!("limit must be between 1 and {MAX_HISTORY}, not {limit}"),
        ));
    }
    let runs = st.scheduler.history(&id, limit).await?;
    Ok(Json(runs.iter().map(RunView::from).collect()))
}

/// Scheduler-wide metrics as JSON.
#[utoipa::path(
    get, path = "/metrics/scheduler", tag = "metrics",
    responses(
        (status = 200, description = "The metrics", body = MetricsView),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("read_token" = []), ("admin_token" = []))
)]
pub(crate) async fn scheduler_metrics(State(st): State<AppState>) -> ApiResult<Json<MetricsView>> {
    Ok(Json(MetricsView::from(&st.scheduler.metrics().await?)))
}

/// Metrics in the Prometheus text format: per-job counters by outcome and
/// skip reason, runs in flight, fire lateness and run duration histograms.
#[utoipa::path(
    get, path = "/metrics", tag = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("read_token" = []), ("admin_token" = []))
)]
pub(crate) async fn prometheus(State(st): State<AppState>) -> ApiResult<Response> {
    let text = st.prom.render(&st.scheduler).await?;
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response())
}

/// Liveness: 200 while the scheduler answers (through a shutdown's drain
/// and grace too: the process is alive, finishing its runs), 503 once it
/// is shut down. Needs no token.
#[utoipa::path(
    get, path = "/health", tag = "metrics",
    responses(
        (status = 200, description = "The scheduler answers", body = HealthView),
        (status = 503, description = "Scheduler shut down or not answering", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(())
)]
pub(crate) async fn health(State(st): State<AppState>) -> ApiResult<Json<HealthView>> {
    let m = st.scheduler.metrics().await?;
    Ok(Json(HealthView {
        status: if st.scheduler.is_stopping() {
            "stopping"
        } else {
            "ok"
        }
        .into(),
        jobs: m.jobs_by_phase.values().sum(),
        runs_in_flight: m.runs_in_flight,
    }))
}

/// The parameters of the event stream. An unknown parameter is refused (a
/// misspelt `job` read as absent would stream every job's events, as a
/// misspelt `tag` would list every job).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Only this job's events.
    job: Option<String>,
    /// Resume after this event id (as the `Last-Event-ID` header does, for
    /// clients that cannot set headers).
    last_event_id: Option<u64>,
}

/// Live events as Server-Sent Events.
///
/// Every message has `id:` (the event's sequence number), `event:` (its
/// kind) and `data:` (an `EventView`). A client that reconnects with
/// `Last-Event-ID` first receives the buffered events after that id; if
/// some are no longer buffered, or the client falls behind, a message of
/// type `missed` (a `MissedView`, without id) says so.
#[utoipa::path(
    get, path = "/events", tag = "events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "The event stream", body = EventView, content_type = "text/event-stream"),
        (status = 400, description = "Invalid Last-Event-ID or job id, or an unknown query parameter", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("read_token" = []), ("admin_token" = []))
)]
pub(crate) async fn events(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Response> {
    let header_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Problem::bad_request("Last-Event-ID", "Last-Event-ID must be an event id")
                })?,
        ),
    };
    // A filter no job id can match (empty, too long, a control character)
    // would stream nothing: refused, as an empty tag is by `GET /jobs`.
    if let Some(job) = &q.job {
        crate::JobId::new(job.as_str()).map_err(|e| Problem::bad_request("job", e.to_string()))?;
    }
    if st.hub.end_streams.is_cancelled() {
        return Err(crate::Error::ShutDown.into());
    }
    let sub = st.hub.subscribe(header_id.or(q.last_event_id));
    let stream = sse_stream(&st.hub, sub, q.job);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Sets the job's last result (the body, any JSON), as an operator
/// rewinding a watermark does; the job as it is then.
#[utoipa::path(
    put, path = "/jobs/{id}/result", tag = "control",
    params(("id" = String, Path, description = "The job id (percent-encoded)")),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "The new last result (any JSON)"),
    responses(
        (status = 200, description = "Set, durable", body = JobView),
        (status = 400, description = "Invalid body, or a result too large or too deep", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such job", body = Problem, content_type = PROBLEM_JSON),
        (status = 408, description = "Body stalled (no data within the body timeout)", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The job failed", body = Problem, content_type = PROBLEM_JSON),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn set_job_result(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    JsonValue(value): JsonValue,
) -> ApiResult<Json<JobView>> {
    st.scheduler.set_last_result(&id, Some(value)).await?;
    tracing::info!(job_id = %id, "job's last result set over HTTP");
    Ok(Json(JobView::from(&st.scheduler.status(&id).await?)))
}

/// Clears the job's last result; the job as it is then.
#[utoipa::path(
    delete, path = "/jobs/{id}/result", tag = "control",
    params(("id" = String, Path, description = "The job id (percent-encoded)")),
    responses(
        (status = 200, description = "Cleared, durable", body = JobView),
        (status = 400, description = "Invalid job id (empty, longer than 200 bytes, or with a control character)", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such job", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The job failed", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn clear_job_result(
    State(st): State<AppState>,
    PathParam(id): PathParam,
) -> ApiResult<Json<JobView>> {
    st.scheduler.set_last_result(&id, None).await?;
    tracing::info!(job_id = %id, "job's last result cleared over HTTP");
    Ok(Json(JobView::from(&st.scheduler.status(&id).await?)))
}

/// Emits a named event: every job listening to it fires now, with the body
/// (any JSON, or nothing) as the event's payload.
#[utoipa::path(
    post, path = "/events/{name}", tag = "events",
    params(("name" = String, Path, description = "The event's name")),
    request_body(content = Option<serde_json::Value>, content_type = "application/json",
        description = "Optional: the event's payload (any JSON)"),
    responses(
        (status = 200, description = "The jobs fired", body = EmitView),
        (status = 400, description = "Invalid name or body", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Read-only token", body = Problem, content_type = PROBLEM_JSON),
        (status = 408, description = "Body stalled (no data within the body timeout)", body = Problem, content_type = PROBLEM_JSON),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Scheduler shut down", body = Problem, content_type = PROBLEM_JSON),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn emit_event(
    State(st): State<AppState>,
    PathParam(name): PathParam,
    OptionalJsonValue(payload): OptionalJsonValue,
) -> ApiResult<Json<EmitView>> {
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(Problem::bad_request(
            "name",
            "the event name must be non-empty, without control characters",
        ));
    }
    let fired = st
        .scheduler
        .emit(&name, payload.unwrap_or(serde_json::Value::Null))
        .await?;
    tracing::info!(event = %name, jobs = fired.len(), "event emitted over HTTP");
    Ok(Json(EmitView {
        event: name,
        fired: fired
            .iter()
            .map(|(job, outcome)| EmittedView {
                job_id: job.to_string(),
                outcome: TriggerView::from(outcome),
            })
            .collect(),
    }))
}

/// This API's OpenAPI 3 document. Needs no token.
#[utoipa::path(
    get, path = "/openapi.json", tag = "metrics",
    responses((status = 200, description = "The OpenAPI document", body = Object)),
    security(())
)]
pub(crate) async fn openapi_json() -> Response {
    Json(super::openapi()).into_response()
}

pub(crate) async fn no_route(uri: Uri) -> Problem {
    Problem::no_route(uri.path())
}

pub(crate) async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed()
}
